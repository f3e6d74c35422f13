"""Zone shapes: a disc, an area (polygons from GeoJSON in any CRS), a corridor along a route.

Every shape answers two questions the same way everywhere on Earth:

- ``contains(lat, lon)`` — vectorised and exact: which of these points are in the zone;
- ``candidates(index)`` — which indexed cameras *may* be in it (a superset, never missing one),
  so that a query only runs the exact test on a few survivors.

Semantics, chosen to match what an agency draws and what GeoJSON means:

- :class:`Disc`: points whose geodesic distance (WGS84) from the centre is at most the radius.
- :class:`Area`: polygons whose edges are straight in the CRS they were drawn in. Polygons in a
  projected CRS are densified there (a vertex at least every ``DENSIFY_STEP`` units of that
  CRS) before their vertices are transformed to WGS84 with pyproj, so a straight edge of a
  police beat drawn in a UTM zone stays where it was drawn; in WGS84 an edge is straight in
  longitude/latitude, as RFC 7946 says. Points on an edge count as inside. An area may cross the
  antimeridian (as one ring or cut in two, as RFC 7946 asks); an area that contains a pole is
  refused.
- :class:`Corridor`: points within ``half_width_m`` (geodesic) of a route of geodesic legs —
  a buffer along the suspect's direction of travel.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import attrs
import numpy as np
import numpy.typing as npt
import shapely  # type: ignore[import-untyped]  # no stubs shipped; types-shapely not pinned
from pyproj import CRS, Transformer
from pyproj.exceptions import CRSError

from camgate.errors import ValidationError
from camgate.geofence.geodesy import check_latlon, densify, inverse, point
from camgate.models import MAX_RADIUS_M, GeoPoint

if TYPE_CHECKING:
    from camgate.geofence.index import CameraIndex, Slots

__all__ = ["DENSIFY_STEP", "Area", "Corridor", "Disc", "Shape", "shape_from_json"]

Bools = npt.NDArray[np.bool_]
Floats = npt.NDArray[np.float64]

#: Densify edges of polygons given in a projected CRS to this many of its units (metres, feet).
DENSIFY_STEP = 20.0
#: Legs of a corridor's route are split to at most this many metres for the distance test.
_LEG_M = 1000.0
_WGS84_NAMES = {"EPSG:4326", "OGC:CRS84", "URN:OGC:DEF:CRS:OGC:1.3:CRS84", "CRS84"}
#: An area holds at most this many vertices, after densifying a projected CRS's edges: a
#: polygon larger than that (4 000 km of edges at 20 m) is refused, not densified.
MAX_VERTICES = 200_000
#: Features and collections nest at most this deep in a GeoJSON document.
_MAX_NESTING = 16


class Shape(Protocol):
    """What a zone source hands the gate: a region it can test points against and index."""

    def contains(self, lat: Any, lon: Any) -> Bools:
        """Which of the points (arrays of degrees) are in the shape."""

    def candidates(self, index: CameraIndex) -> Slots:
        """Slots of ``index`` that may be in the shape (a superset, never missing one)."""

    def to_json(self) -> dict[str, Any]:
        """JSON-ready data that :func:`shape_from_json` turns back into the same shape."""


def _non_negative_radius(value: float, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValidationError(f"{what}={value!r}: must be a finite number of metres")
    if value <= 0:
        raise ValidationError(f"{what}={value!r}: must be greater than zero (metres)")
    if value > MAX_RADIUS_M:
        raise ValidationError(f"{what}={value!r}: must be at most {MAX_RADIUS_M:g} metres")
    return float(value)


# --------------------------------------------------------------------------- disc


@attrs.frozen
class Disc:
    """Points within ``radius_m`` metres (geodesic, WGS84) of ``center``."""

    center: GeoPoint
    radius_m: float

    def __attrs_post_init__(self) -> None:
        _non_negative_radius(self.radius_m, "radius_m")

    @classmethod
    def around(cls, lat: float, lon: float, radius_m: float) -> Disc:
        """A disc from raw numbers; bad values are a :class:`ValidationError` naming them."""
        return cls(point(lat, lon, "disc centre"), _non_negative_radius(radius_m, "radius_m"))

    def contains(self, lat: Any, lon: Any) -> Bools:
        """Exact: geodesic distance from the centre at most the radius."""
        _az, dist = inverse(self.center.lat, self.center.lon, lat, lon)
        return np.asarray(dist <= self.radius_m)

    def candidates(self, index: CameraIndex) -> Slots:
        """The cameras within the radius as a straight line (a superset of the geodesic disc)."""
        return index.candidates_near(self.center, self.radius_m)

    def to_json(self) -> dict[str, Any]:
        """``{"type": "disc", "center": [lon, lat], "radius_m": r}``."""
        return {
            "type": "disc",
            "center": [self.center.lon, self.center.lat],
            "radius_m": self.radius_m,
        }


# --------------------------------------------------------------------------- area


def _crs_of(data: Mapping[str, Any], crs: Any) -> CRS:
    given = crs
    if given is None:
        member = data.get("crs")
        if isinstance(member, Mapping):
            props = member.get("properties")
            given = props.get("name") if isinstance(props, Mapping) else None
    if given is None:
        return CRS.from_user_input("OGC:CRS84")
    if not isinstance(given, str | int | CRS):
        raise ValidationError(f"unknown CRS {given!r}: give a name such as 'EPSG:32615'")
    try:
        return CRS.from_user_input(given)
    except (CRSError, TypeError, ValueError) as exc:
        raise ValidationError(f"unknown CRS {given!r}: {exc}") from None


def _geometries(data: object, depth: int = 0) -> list[Mapping[str, Any]]:
    if not isinstance(data, Mapping):
        raise ValidationError(f"GeoJSON: expected an object, got {type(data).__name__}")
    if depth > _MAX_NESTING:
        raise ValidationError(f"GeoJSON: features nest more than {_MAX_NESTING} deep")
    kind = data.get("type")
    if kind == "FeatureCollection":
        features = data.get("features") or []
        if not isinstance(features, list):
            raise ValidationError("GeoJSON: a FeatureCollection's features must be a list")
        return [g for f in features for g in _geometries(f, depth + 1)]
    if kind == "Feature":
        geometry = data.get("geometry")
        if not isinstance(geometry, Mapping):
            raise ValidationError("a GeoJSON Feature without a geometry")
        return _geometries(geometry, depth + 1)
    if kind in ("Polygon", "MultiPolygon"):
        return [data]
    raise ValidationError(
        f"GeoJSON type {str(kind)[:40]!r} is not an area: give a Polygon, a MultiPolygon, "
        "or Features/FeatureCollections of them"
    )


def _ring(raw: Any, where: str) -> npt.NDArray[np.float64]:
    try:
        ring = np.asarray(raw, dtype=float)
    except (TypeError, ValueError, RecursionError, OverflowError):
        raise ValidationError(f"{where}: positions must be [x, y] numbers") from None
    if ring.ndim != 2 or ring.shape[1] < 2:
        raise ValidationError(f"{where}: positions must be [x, y] numbers")
    ring = ring[:, :2]
    if not np.isfinite(ring).all():
        raise ValidationError(f"{where}: a coordinate is not a finite number (NaN or infinite)")
    if len(ring) < 4:
        raise ValidationError(f"{where}: a ring needs at least 4 positions, got {len(ring)}")
    if not np.array_equal(ring[0], ring[-1]):
        raise ValidationError(
            f"{where}: the ring is not closed: it starts at {ring[0].tolist()} and ends at "
            f"{ring[-1].tolist()} (GeoJSON repeats the first position last)"
        )
    return ring


def _unwrap(lon: Floats, where: str) -> Floats:
    steps = np.diff(lon)
    steps = (steps + 180.0) % 360.0 - 180.0
    out = np.concatenate([[lon[0]], lon[0] + np.cumsum(steps)])
    if abs(out[-1] - out[0]) > 1e-6:
        raise ValidationError(f"{where}: the ring goes round a pole; split it into two areas")
    out[-1] = out[0]
    return out


def _polygon(
    rings: Any, where: str, source: CRS, to_wgs84: Transformer, budget: list[int]
) -> shapely.Polygon:
    """One GeoJSON polygon's rings, checked, densified in a projected CRS, in WGS84.

    ``budget`` holds how many vertices the area may still add (:data:`MAX_VERTICES`): the
    vertices and, in a projected CRS, the length of the edges are checked before densifying.
    """
    if not isinstance(rings, list) or not rings:
        raise ValidationError(f"{where}: no rings")
    drawn = [_ring(r, f"{where} ring {i}") for i, r in enumerate(rings)]
    for i, ring in enumerate(drawn):
        lon, lat = (np.asarray(v, float) for v in to_wgs84.transform(ring[:, 0], ring[:, 1]))
        check_latlon(lat, lon, f"{where} ring {i} (in WGS84)")
    poly = shapely.Polygon(drawn[0], drawn[1:])
    if not shapely.is_valid(poly):
        raise ValidationError(f"{where}: {shapely.is_valid_reason(poly)}")
    vertices = sum(len(r) for r in drawn)
    if not source.is_geographic:
        vertices += int(min(shapely.length(poly) / DENSIFY_STEP, 2.0 * MAX_VERTICES))
    if vertices > budget[0]:
        raise ValidationError(
            f"{where}: too large: it would need more than {MAX_VERTICES} vertices (edges are "
            f"densified every {DENSIFY_STEP:g} units of a projected CRS); draw a smaller area"
        )
    budget[0] -= vertices
    if not source.is_geographic:
        poly = shapely.segmentize(poly, DENSIFY_STEP)
        if not isinstance(poly, shapely.Polygon) or poly.is_empty or not shapely.is_valid(poly):
            # GEOS can turn a sliver (a side 1e-55 units long) into an empty or multi polygon.
            raise ValidationError(f"{where}: degenerate (it vanishes when its edges are densified)")
    rings_wgs = []
    for i, ring in enumerate([poly.exterior, *poly.interiors]):
        x, y = np.asarray(ring.coords).T
        lon, lat = to_wgs84.transform(x, y)
        lon, lat = np.asarray(lon, float), np.asarray(lat, float)
        check_latlon(lat, lon, f"{where} ring {i} (in WGS84)")
        rings_wgs.append(np.column_stack([_unwrap(lon, f"{where} ring {i}"), lat]))
    return shapely.Polygon(rings_wgs[0], rings_wgs[1:])


@attrs.frozen(eq=False)
class Area:
    """One or more polygons (with holes) in WGS84; edges straight in the CRS they were drawn in.

    Build one with :meth:`from_geojson`. ``geometry`` is a shapely (Multi)Polygon in
    longitude/latitude, each ring unwrapped across the antimeridian (longitudes may pass 180).
    """

    geometry: shapely.MultiPolygon

    @classmethod
    def from_geojson(cls, data: Mapping[str, Any] | str, crs: Any = None) -> Area:
        """An area from GeoJSON (a dict or its text) in ``crs``, or the document's ``crs``.

        ``crs`` is anything pyproj understands (``"EPSG:32615"``, ``"urn:ogc:def:crs:EPSG::3857"``);
        without it, a legacy ``crs`` member of the document, else WGS84 longitude/latitude.
        Raises :class:`ValidationError` naming the problem: an unknown CRS, a ring that is not
        closed, a self-intersecting polygon, NaN, a position off the Earth, a ring round a pole.
        """
        if isinstance(data, str):
            try:
                data = json.loads(data)
            except (json.JSONDecodeError, RecursionError) as exc:
                why = exc if isinstance(exc, json.JSONDecodeError) else "nested too deeply"
                raise ValidationError(f"not GeoJSON: {why}") from None
        if not isinstance(data, Mapping):
            raise ValidationError("GeoJSON must be an object")
        source = _crs_of(data, crs)
        to_wgs84 = Transformer.from_crs(source, "OGC:CRS84", always_xy=True)
        polygons: list[shapely.Polygon] = []
        budget = [MAX_VERTICES]
        for g, geometry in enumerate(_geometries(data)):
            coords = geometry.get("coordinates")
            parts = [coords] if geometry["type"] == "Polygon" else coords
            if not isinstance(parts, list) or not parts:
                raise ValidationError(f"geometry {g}: no coordinates")
            for p, rings in enumerate(parts):
                where = f"geometry {g} polygon {p}"
                try:
                    polygons.append(_polygon(rings, where, source, to_wgs84, budget))
                except shapely.errors.GEOSException as exc:
                    raise ValidationError(f"{where}: {exc}") from None
        if not polygons:
            raise ValidationError("GeoJSON holds no polygon")
        return cls(shapely.MultiPolygon(polygons))

    def contains(self, lat: Any, lon: Any) -> Bools:
        """Exact for the polygon as defined: inside or on an edge, tried at lon, lon ± 360."""
        la = np.asarray(lat, float)
        lo = np.asarray(lon, float)
        inside = np.zeros(np.broadcast(la, lo).shape, bool)
        for shift in (0.0, 360.0, -360.0):
            inside |= shapely.intersects_xy(self.geometry, lo + shift, la)
        return inside

    def candidates(self, index: CameraIndex) -> Slots:
        """Cameras in the latitude/longitude box of each polygon (exact ECEF bounds of the box)."""
        found = []
        for poly in self.geometry.geoms:
            west, south, east, north = poly.bounds
            found.append(index.candidates_in_latlon_box(south, north, west, east))
        return np.unique(np.concatenate(found)) if found else np.zeros(0, np.int64)

    def boundary(self, step_m: float = 5.0) -> tuple[Floats, Floats]:
        """Latitudes and longitudes along every ring, at most ``step_m`` metres apart."""
        lats, lons = [], []
        for poly in self.geometry.geoms:
            for ring in [poly.exterior, *poly.interiors]:
                pts = [GeoPoint(y, (x + 180.0) % 360.0 - 180.0) for x, y in ring.coords]
                la, lo = densify(pts, step_m)
                lats.append(la)
                lons.append(lo)
        return np.concatenate(lats), np.concatenate(lons)

    def to_json(self) -> dict[str, Any]:
        """``{"type": "area", "geojson": <MultiPolygon in WGS84>}``."""
        polys = []
        for poly in self.geometry.geoms:
            rings = []
            for ring in [poly.exterior, *poly.interiors]:
                rings.append([[(x + 180.0) % 360.0 - 180.0, y] for x, y in ring.coords])
            polys.append(rings)
        return {"type": "area", "geojson": {"type": "MultiPolygon", "coordinates": polys}}


# --------------------------------------------------------------------------- corridor


def _points(value: Sequence[GeoPoint]) -> tuple[GeoPoint, ...]:
    return tuple(value)


@attrs.frozen(eq=False)
class Corridor:
    """Points within ``half_width_m`` metres of a route of geodesic legs (an escape route).

    The distance to the route is the geodesic distance to its nearest point, computed leg by
    leg (legs split to at most a kilometre) from geodesic distances and azimuths: exact to
    millimetres for corridors up to several kilometres wide.
    """

    route: tuple[GeoPoint, ...] = attrs.field(converter=_points)
    half_width_m: float

    def __attrs_post_init__(self) -> None:
        if len(self.route) < 2:
            raise ValidationError("a corridor's route needs at least two points")
        _non_negative_radius(self.half_width_m, "half_width_m")

    @classmethod
    def along(cls, points: Sequence[tuple[float, float]], half_width_m: float) -> Corridor:
        """A corridor from ``(lat, lon)`` pairs; bad values are a :class:`ValidationError`."""
        route = [point(lat, lon, f"route point {i}") for i, (lat, lon) in enumerate(points)]
        return cls(tuple(route), _non_negative_radius(half_width_m, "half_width_m"))

    def vertices(self, step_m: float = _LEG_M) -> tuple[Floats, Floats]:
        """Latitudes and longitudes along the route, at most ``step_m`` metres apart."""
        return densify(self.route, step_m)

    def distance_m(self, lat: Any, lon: Any) -> Floats:
        """Geodesic distance (m) from each point to the nearest point of the route."""
        la = np.atleast_1d(np.asarray(lat, float))
        lo = np.atleast_1d(np.asarray(lon, float))
        vla, vlo = self.vertices()
        leg_az, leg_len = inverse(vla[:-1], vlo[:-1], vla[1:], vlo[1:])
        az_a, d_a = inverse(vla[None, :-1], vlo[None, :-1], la[:, None], lo[:, None])
        _az_b, d_b = inverse(vla[None, 1:], vlo[None, 1:], la[:, None], lo[:, None])
        delta = np.radians(az_a - leg_az[None, :])
        along = d_a * np.cos(delta)
        across = np.abs(d_a * np.sin(delta))
        dist = np.where(along <= 0, d_a, np.where(along >= leg_len[None, :], d_b, across))
        return np.asarray(dist.min(axis=1))

    def contains(self, lat: Any, lon: Any) -> Bools:
        """Points whose distance to the route is at most the half-width."""
        return np.asarray(self.distance_m(lat, lon) <= self.half_width_m)

    def candidates(self, index: CameraIndex) -> Slots:
        """Cameras within half-width + half a step of a vertex placed at least every step."""
        step = max(self.half_width_m, 50.0)
        vla, vlo = self.vertices(step)
        found = [
            index.candidates_near(GeoPoint(la, lo), self.half_width_m + step / 2 + 1.0)
            for la, lo in zip(vla.tolist(), vlo.tolist(), strict=True)
        ]
        return np.unique(np.concatenate(found))

    def to_json(self) -> dict[str, Any]:
        """``{"type": "corridor", "route": [[lon, lat], ...], "half_width_m": w}``."""
        return {
            "type": "corridor",
            "route": [[p.lon, p.lat] for p in self.route],
            "half_width_m": self.half_width_m,
        }


def shape_from_json(data: Mapping[str, Any]) -> Disc | Area | Corridor:
    """Rebuild a shape from :meth:`to_json` data (validated again)."""
    kind = data.get("type")
    if kind == "disc":
        lon, lat = data["center"]
        return Disc.around(lat, lon, data["radius_m"])
    if kind == "area":
        return Area.from_geojson(data["geojson"])
    if kind == "corridor":
        return Corridor.along([(lat, lon) for lon, lat in data["route"]], data["half_width_m"])
    raise ValidationError(f"unknown zone shape {kind!r} (disc, area, corridor)")
