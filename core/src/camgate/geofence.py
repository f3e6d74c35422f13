"""Geofences: which cameras an incident may reach.

The foundation's zone is a radius around the incident, measured as the geodesic distance on the
WGS84 ellipsoid (pyproj ``Geod``), which stays right near the poles and across the antimeridian
where a flat-earth approximation does not. Polygons, fields of view, exclusions and a spatial index
are the geofence issue's; they plug into the same hook.

Built in (registered as the plugin ``camgate.geofence``): ``geofence.radius``.
"""

from __future__ import annotations

from datetime import datetime

from pyproj import Geod

from camgate.hookspecs import hookimpl
from camgate.models import Camera, GeoPoint, Incident, Verdict, Vote

__all__ = ["RadiusGeofence", "bearing_deg", "distance_m"]

_WGS84 = Geod(ellps="WGS84")


def distance_m(a: GeoPoint, b: GeoPoint) -> float:
    """Geodesic distance in metres between two WGS84 points."""
    _fwd, _back, dist = _WGS84.inv(a.lon, a.lat, b.lon, b.lat)
    return float(dist)


def bearing_deg(a: GeoPoint, b: GeoPoint) -> float:
    """Initial geodesic bearing from ``a`` to ``b`` in degrees, 0 to 360 clockwise from north."""
    fwd, _back, _dist = _WGS84.inv(a.lon, a.lat, b.lon, b.lat)
    return float(fwd) % 360.0


class RadiusGeofence:
    """Allow a camera within the incident's radius; deny one outside it."""

    @hookimpl
    def camgate_geofence_vote(self, incident: Incident, camera: Camera, now: datetime) -> Vote:
        """Allow when the geodesic distance is at most ``incident.radius_m``; deny otherwise."""
        dist = distance_m(incident.position, camera.position)
        if dist <= incident.radius_m:
            return Vote(
                "geofence.radius",
                Verdict.ALLOW,
                f"camera is {dist:.0f} m from the incident (radius {incident.radius_m:.0f} m)",
            )
        return Vote(
            "geofence.radius",
            Verdict.DENY,
            f"camera is {dist:.0f} m from the incident, "
            f"outside its {incident.radius_m:.0f} m radius",
        )
