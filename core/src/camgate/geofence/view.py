"""Fields of view: a camera with a heading, an angle of view and a range covers a geodesic sector.

The sector's apex is the camera; it opens ``fov_deg / 2`` either side of ``heading_deg``
(degrees clockwise from north, measured as the geodesic azimuth from the camera) and reaches
``range_m`` metres of geodesic distance (unbounded when the range is unknown). A point is
covered when its distance is at most the range and its azimuth from the camera is at most half
the angle of view off the heading; the camera's own position counts as covered.

A camera has a field of view when both ``heading_deg`` and ``fov_deg`` are known; one without
falls back to distance alone.
"""

from __future__ import annotations

from typing import Any

import attrs
import numpy as np

from camgate.geofence.geodesy import WGS84, inverse, off_axis_deg, sector_gap_m
from camgate.models import Camera, GeoPoint

__all__ = ["View", "covers_disc", "has_fov", "sees_any", "view_of"]

#: Stands in for an unknown range: longer than any distance on Earth.
_UNBOUNDED_M = 1e8


def has_fov(camera: Camera) -> bool:
    """True when the camera's heading and angle of view are both known."""
    return camera.heading_deg is not None and camera.fov_deg is not None


def _sector(camera: Camera) -> tuple[float, float, float]:
    assert camera.heading_deg is not None and camera.fov_deg is not None
    reach = camera.range_m if camera.range_m is not None else _UNBOUNDED_M
    return camera.heading_deg, camera.fov_deg / 2.0, reach


@attrs.frozen
class View:
    """How a camera sees one place: distance, angle off its axis, whether its sector covers it.

    ``off_axis_deg`` and ``covers`` are None when the camera has no field of view.
    """

    distance_m: float
    off_axis_deg: float | None
    covers: bool | None


def view_of(camera: Camera, place: GeoPoint) -> View:
    """How ``camera`` sees ``place`` (geodesic distance and azimuth from the camera).

    One point, so plain floats (one ``Geod.inv`` call, no arrays): the same numbers as
    :func:`inverse` and :func:`off_axis_deg`. The place is covered when it lies within half the
    angle of view and the range (:func:`sector_gap_m` is 0 exactly there), or is the camera's
    own position.
    """
    last = _LAST[0]
    if last[0] is camera and last[1] is place:  # asked again for the same objects
        return last[2]
    fwd, _back, dist = WGS84.inv(camera.position.lon, camera.position.lat, place.lon, place.lat)
    d = float(dist)
    if not has_fov(camera):
        view = View(d, None, None)
    else:
        heading, half, reach = _sector(camera)
        off = abs((float(fwd) % 360.0 - heading + 180.0) % 360.0 - 180.0)
        view = View(d, off, d == 0.0 or (off <= half and d <= reach))
    _LAST[0] = (camera, place, view)
    return view


#: The last view worked out, by the identity of its (frozen) camera and place: a survey ranks
#: a camera (:func:`camgate.geofence.survey.survey`) and the radius geofence votes on it with
#: the same two objects, one geodesic computation for both. Replaced in one assignment, so a
#: thread reads a whole entry.
_LAST: list[tuple[object, object, View]] = [(None, None, View(0.0, None, None))]


def sees_any(camera: Camera, lat: Any, lon: Any) -> bool:
    """True when the camera's sector covers at least one of the points (no FOV: False)."""
    return covers_disc(camera, lat, lon, 0.0)


def covers_disc(camera: Camera, lat: Any, lon: Any, radius_m: float) -> bool:
    """True when the sector reaches within ``radius_m`` of any point (no FOV: False).

    With ``radius_m`` > 0 this says whether the camera sees any part of a disc round a place,
    measured in the plane tangent at the camera (exact to millimetres over a camera's range).
    """
    if not has_fov(camera):
        return False
    heading, half, reach = _sector(camera)
    az, dist = inverse(camera.position.lat, camera.position.lon, lat, lon)
    gap = sector_gap_m(dist, off_axis_deg(az, heading), reach, half)
    return bool(np.any(gap <= radius_m))
