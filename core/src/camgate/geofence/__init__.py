"""Geofences: which cameras an incident may reach — geodesic, field-of-view aware, indexed.

Zones are plugins on the geofence hooks (:mod:`camgate.hookspecs`): the incident's radius, search
areas and escape-route corridors drawn for an incident, an agency's exclusion zones and its
jurisdiction (:mod:`camgate.geofence.zones`). Distances and azimuths are geodesic on WGS84
(pyproj ``Geod``), right near the poles and across the antimeridian; polygons come from GeoJSON
in any CRS (:mod:`camgate.geofence.shapes`). A camera with a heading, an angle of view and a
range covers a geodesic sector (:mod:`camgate.geofence.view`). A grid of Earth-centred cubes
(:mod:`camgate.geofence.index`) finds the few cameras worth the exact test, and
:func:`~camgate.geofence.survey.survey` ranks them by how well they see the place. See
docs/geofence.md.
"""

from __future__ import annotations

from camgate.geofence.geodesy import bearing_deg, distance_m
from camgate.geofence.index import CameraIndex, StoreIndex
from camgate.geofence.shapes import Area, Corridor, Disc, Shape
from camgate.geofence.survey import Sighting, survey
from camgate.geofence.view import View, has_fov, view_of
from camgate.geofence.zones import (
    Exclusions,
    IncidentZones,
    Jurisdiction,
    RadiusGeofence,
    Zone,
    ZoneBook,
    ZoneRole,
)

__all__ = [
    "Area",
    "CameraIndex",
    "Corridor",
    "Disc",
    "Exclusions",
    "IncidentZones",
    "Jurisdiction",
    "RadiusGeofence",
    "Shape",
    "Sighting",
    "StoreIndex",
    "View",
    "Zone",
    "ZoneBook",
    "ZoneRole",
    "bearing_deg",
    "distance_m",
    "has_fov",
    "survey",
    "view_of",
]
