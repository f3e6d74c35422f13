"""Geodesy on the WGS84 ellipsoid: distances, bearings, Earth-centred coordinates, sectors.

Every distance and azimuth comes from pyproj's ``Geod`` (Karney's algorithm), which is exact to
nanometres and has no trouble near the poles or across the antimeridian. The functions taking
arrays are vectorised: one call to ``Geod.inv`` for any number of points.

Earth-centred, Earth-fixed (ECEF) coordinates are what the spatial index sorts cameras by: the
straight-line distance between two points on the ellipsoid is never more than the geodesic
distance along it, so "within ``r`` metres along the surface" implies "within ``r`` metres in
ECEF" everywhere on Earth, with no special case for a pole or the antimeridian.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from pyproj import Geod

from camgate.errors import ValidationError
from camgate.models import GeoPoint

__all__ = [
    "WGS84",
    "bearing_deg",
    "check_latlon",
    "densify",
    "distance_m",
    "ecef",
    "inverse",
    "off_axis_deg",
    "point",
    "sector_gap_m",
]

Floats = npt.NDArray[np.float64]

#: The one ellipsoid camgate measures on.
WGS84 = Geod(ellps="WGS84")
_A = 6378137.0
_F = 1 / 298.257223563
_E2 = _F * (2 - _F)


def check_latlon(lat: Any, lon: Any, what: str = "point") -> None:
    """Raise :class:`ValidationError` naming ``what`` unless every lat/lon is a finite WGS84 value.

    Latitudes must lie in [-90, 90] and longitudes in [-180, 180] degrees.
    """
    la = np.asarray(lat, dtype=float)
    lo = np.asarray(lon, dtype=float)
    for name, values, limit in (("latitude", la, 90.0), ("longitude", lo, 180.0)):
        bad = ~np.isfinite(values) | (np.abs(values) > limit)
        if bad.any():
            value = float(values[bad].flat[0]) if values.ndim else float(values)
            raise ValidationError(
                f"{what}: {name} {value!r} is not a finite number in [-{limit:g}, {limit:g}]"
            )


def point(lat: float, lon: float, what: str = "point") -> GeoPoint:
    """A validated :class:`GeoPoint`; the error names ``what`` and the bad coordinate."""
    check_latlon(lat, lon, what)
    return GeoPoint(float(lat), float(lon))


def distance_m(a: GeoPoint, b: GeoPoint) -> float:
    """Geodesic distance in metres between two WGS84 points."""
    _fwd, _back, dist = WGS84.inv(a.lon, a.lat, b.lon, b.lat)
    return float(dist)


def bearing_deg(a: GeoPoint, b: GeoPoint) -> float:
    """Initial geodesic bearing from ``a`` to ``b`` in degrees, 0 to 360 clockwise from north."""
    fwd, _back, _dist = WGS84.inv(a.lon, a.lat, b.lon, b.lat)
    return float(fwd) % 360.0


def inverse(lat1: Any, lon1: Any, lat2: Any, lon2: Any) -> tuple[Floats, Floats]:
    """Azimuths (degrees, 0 to 360 from north) and distances (m) from points 1 to points 2.

    Arguments are scalars or arrays that broadcast together; one ``Geod.inv`` call.
    """
    la1, lo1, la2, lo2 = np.broadcast_arrays(
        np.asarray(lat1, float), np.asarray(lon1, float), np.asarray(lat2, float),
        np.asarray(lon2, float),
    )  # fmt: skip
    if la1.size == 0:
        empty = np.empty(la1.shape)
        return empty, empty.copy()
    fwd, _back, dist = WGS84.inv(lo1.ravel(), la1.ravel(), lo2.ravel(), la2.ravel())
    az = np.asarray(fwd, float).reshape(la1.shape) % 360.0
    return az, np.asarray(dist, float).reshape(la1.shape)


def ecef(lat: Any, lon: Any) -> Floats:
    """Earth-centred, Earth-fixed coordinates (m) of WGS84 points on the ellipsoid, shape (n, 3)."""
    phi = np.radians(np.atleast_1d(np.asarray(lat, float)))
    lam = np.radians(np.atleast_1d(np.asarray(lon, float)))
    sin_phi = np.sin(phi)
    n = _A / np.sqrt(1.0 - _E2 * sin_phi * sin_phi)
    p = n * np.cos(phi)
    return np.stack([p * np.cos(lam), p * np.sin(lam), n * (1.0 - _E2) * sin_phi], axis=-1)


def parallel_radius(lat: float) -> float:
    """Distance (m) from the Earth's axis of the parallel at ``lat``; 0 at the poles."""
    phi = math.radians(lat)
    return float(_A / math.sqrt(1.0 - _E2 * math.sin(phi) ** 2) * math.cos(phi))


def axial_height(lat: float) -> float:
    """ECEF ``z`` (m) of the parallel at ``lat``."""
    phi = math.radians(lat)
    return float(_A / math.sqrt(1.0 - _E2 * math.sin(phi) ** 2) * (1.0 - _E2) * math.sin(phi))


def off_axis_deg(azimuth: Any, heading: Any) -> Floats:
    """Unsigned angle in degrees (0 to 180) between azimuths and a camera's heading."""
    diff: Floats = (np.asarray(azimuth, float) - np.asarray(heading, float) + 180.0) % 360.0
    return np.abs(diff - 180.0)


def sector_gap_m(dist: Any, off_axis: Any, range_m: float, half_angle: float) -> Floats:
    """How far (m) points lie outside a sector; 0 inside it.

    ``dist`` and ``off_axis`` locate the points from the sector's apex (geodesic distance,
    angle off the axis); the sector reaches ``range_m`` and opens ``half_angle`` degrees either
    side of its axis. The gap outside the angle is measured in the plane tangent at the apex,
    which for the few hundred metres a camera sees is exact to millimetres.
    """
    d = np.asarray(dist, float)
    off = np.asarray(off_axis, float)
    inside_angle = off <= half_angle
    gap_inside = np.maximum(d - range_m, 0.0)
    beyond = np.radians(np.clip(off - half_angle, 0.0, 180.0))
    along = d * np.cos(beyond)
    across = d * np.sin(beyond)
    to_end = np.sqrt(np.maximum(d * d + range_m * range_m - 2 * d * range_m * np.cos(beyond), 0))
    gap_edge = np.where(along <= 0, d, np.where(along >= range_m, to_end, across))
    gap: Floats = np.where(inside_angle, gap_inside, gap_edge)
    return gap


def densify(route: Sequence[GeoPoint], step_m: float) -> tuple[Floats, Floats]:
    """Latitudes and longitudes along a geodesic polyline, no two neighbours over ``step_m`` apart.

    Every vertex of ``route`` is kept; each leg is split along its geodesic (``Geod.npts``).
    """
    lats: list[float] = [route[0].lat]
    lons: list[float] = [route[0].lon]
    for a, b in itertools.pairwise(route):
        length = distance_m(a, b)
        extra = max(0, math.ceil(length / step_m) - 1)
        if extra:
            for lon, lat in WGS84.npts(a.lon, a.lat, b.lon, b.lat, extra):
                lats.append(lat)
                lons.append(lon)
        lats.append(b.lat)
        lons.append(b.lon)
    return np.asarray(lats), np.asarray(lons)
