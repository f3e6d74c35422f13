"""Areas from GeoJSON in any CRS, corridors, and clear errors for bad input.

Polygons are star-shaped round a random centre (near the poles and across the antimeridian
too); the indexed query (candidates, then the exact test) must equal a scan of every camera.
The same polygon given in a projected CRS must answer as in WGS84 — except within a band of
``BAND_M`` metres of its edges: an edge straight in the projected CRS is not straight in
longitude/latitude, so points that close to an edge may legitimately differ.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from camgate.errors import ValidationError
from camgate.geofence import Area, CameraIndex, Corridor, Disc
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pyproj import Geod, Transformer

GEOD = Geod(ellps="WGS84")
FAST = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
#: Edges straight in UTM or Web Mercator vs straight in lon/lat, for polygons of at most 3 km.
BAND_M = 5.0


def star(lat: float, lon: float, size_m: float, seed: int, k: int) -> list[list[float]]:
    """A closed star-shaped ring of k vertices round (lat, lon), as [lon, lat] positions."""
    rng = np.random.default_rng(seed)
    az = np.sort(rng.uniform(0, 360, k))
    dist = size_m * rng.uniform(0.3, 1.0, k)
    lons, lats, _ = GEOD.fwd(np.full(k, lon), np.full(k, lat), az, dist)
    ring = [[float(x), float(y)] for x, y in zip(lons, lats, strict=True)]
    return [*ring, ring[0]]


def scatter(lat: float, lon: float, size_m: float, seed: int, n: int) -> tuple:
    rng = np.random.default_rng(seed + 1)
    lons, lats, _ = GEOD.fwd(
        np.full(n, lon), np.full(n, lat), rng.uniform(0, 360, n), size_m * rng.uniform(0, 1.5, n)
    )
    return np.asarray(lats, float), np.asarray(lons, float)


def polygon(ring: list[list[float]]) -> dict:
    return {"type": "Polygon", "coordinates": [ring]}


@FAST
@given(
    st.one_of(st.floats(-88, 88), st.floats(80, 88), st.floats(-88, -80)),
    st.one_of(st.floats(-180, 180), st.floats(179.5, 180), st.floats(-180, -179.5)),
    st.floats(20, 50_000),
    st.integers(0, 2**31),
    st.integers(3, 12),
    st.sampled_from([50.0, 1000.0, 20_000.0]),
)
def test_indexed_area_query_equals_a_scan(
    lat: float, lon: float, size: float, seed: int, k: int, cell: float
) -> None:
    try:
        area = Area.from_geojson(polygon(star(lat, lon, size, seed, k)))
    except ValidationError:
        assume(False)  # a degenerate random ring (self-touching): refused, as it should be
        raise
    lats, lons = scatter(lat, lon, size, seed, 300)
    index = CameraIndex(cell)
    index.add_points([str(i) for i in range(len(lats))], lats, lons)
    slots = area.candidates(index)
    found = set(np.asarray(slots)[area.contains(index.lat[slots], index.lon[slots])].tolist())
    expected = set(np.flatnonzero(area.contains(lats, lons)).tolist())
    assert found == expected


def _utm(lat: float, lon: float) -> str:
    zone = int((lon + 180) // 6) % 60 + 1
    return f"EPSG:{32600 + zone if lat >= 0 else 32700 + zone}"


@FAST
@given(
    st.floats(-70, 70),
    st.floats(-179, 179),
    st.floats(50, 3000),
    st.integers(0, 2**31),
    st.integers(3, 9),
    st.booleans(),
)
def test_projected_geojson_answers_as_wgs84(
    lat: float, lon: float, size: float, seed: int, k: int, mercator: bool
) -> None:
    ring = star(lat, lon, size, seed, k)
    crs = "EPSG:3857" if mercator else _utm(lat, lon)
    to_proj = Transformer.from_crs("OGC:CRS84", crs, always_xy=True)
    projected = [list(to_proj.transform(x, y)) for x, y in ring]
    projected[-1] = projected[0]
    try:
        in_wgs84 = Area.from_geojson(polygon(ring))
        doc = {**polygon(projected), "crs": {"type": "name", "properties": {"name": crs}}}
        in_proj = Area.from_geojson(json.dumps(doc))
    except ValidationError:
        assume(False)
        raise
    lats, lons = scatter(lat, lon, size, seed, 300)
    edge = Corridor.along([(y, x) for x, y in ring], 1.0).distance_m(lats, lons)
    clear = edge > BAND_M
    assert np.array_equal(in_wgs84.contains(lats, lons)[clear], in_proj.contains(lats, lons)[clear])


def test_an_area_across_the_antimeridian_one_ring_or_cut_in_two() -> None:
    one = Area.from_geojson(
        polygon([[179.9, 10], [-179.9, 10], [-179.9, 11], [179.9, 11], [179.9, 10]])
    )
    cut = Area.from_geojson(
        {
            "type": "MultiPolygon",
            "coordinates": [
                [[[179.9, 10], [180, 10], [180, 11], [179.9, 11], [179.9, 10]]],
                [[[-180, 10], [-179.9, 10], [-179.9, 11], [-180, 11], [-180, 10]]],
            ],
        }
    )
    lat = np.array([10.5, 10.5, 10.5, 10.5])
    lon = np.array([179.95, -179.95, 180.0, 0.0])
    assert one.contains(lat, lon).tolist() == [True, True, True, False]
    assert cut.contains(lat, lon).tolist() == [True, True, True, False]


def test_corridor_distance_matches_geodesic_distance_to_the_route() -> None:
    corridor = Corridor.along([(32.30, -90.20), (32.30, -90.10)], 100.0)
    az, _back, length = GEOD.inv(-90.20, 32.30, -90.10, 32.30)
    mid_lon, mid_lat, mid_az = GEOD.fwd(-90.20, 32.30, az, length / 2)  # on the geodesic
    # 80 m left of the route's middle, 150 m right of it, 50 m past its end
    lon, lat, _ = GEOD.fwd(
        [mid_lon, mid_lon, -90.10], [mid_lat, mid_lat, 32.30],
        [mid_az - 90, mid_az + 90, _back + 180],
        [80, 150, 50],
    )  # fmt: skip
    dist = corridor.distance_m(lat, lon)
    assert np.allclose(dist, [80, 150, 50], atol=0.01)
    assert corridor.contains(lat, lon).tolist() == [True, False, True]


# ---------------------------------------------------------------------------- bad input

SQUARE = [[0, 0], [1, 0], [1, 1], [0, 1], [0, 0]]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Disc.around(91, 0, 100), "latitude 91"),
        (lambda: Disc.around(math.nan, 0, 100), "latitude nan"),
        (lambda: Disc.around(0, 181, 100), "longitude 181"),
        (lambda: Disc.around(0, 0, -5), "radius_m=-5: must be greater than zero"),
        (lambda: Disc.around(0, 0, math.inf), "must be a finite number"),
        (lambda: Corridor.along([(0, 0), (0, 1)], -1), "half_width_m=-1"),
        (lambda: Corridor.along([(0, 0)], 10), "at least two points"),
        (lambda: Corridor.along([(0, 0), (95, 1)], 10), "route point 1: latitude 95"),
        (lambda: Area.from_geojson(polygon(SQUARE[:-1])), "the ring is not closed"),
        (
            lambda: Area.from_geojson(polygon([[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]])),
            "Self-intersection",
        ),
        (lambda: Area.from_geojson(polygon(SQUARE), crs="EPSG:999999"), "unknown CRS"),
        (lambda: Area.from_geojson(polygon(SQUARE), crs="not a crs"), "unknown CRS 'not a crs'"),
        (lambda: Area.from_geojson(polygon([[0, 0], [1, 0], [0, 0]])), "at least 4 positions"),
        (
            lambda: Area.from_geojson(polygon([[0, 0], [1, math.nan], [1, 1], [0, 0]])),
            "NaN",
        ),
        (lambda: Area.from_geojson(polygon([[0, 0], [1, 0], [1, 91], [0, 0]])), "latitude 91"),
        (
            lambda: Area.from_geojson(
                polygon(
                    [[-180, 80], [-60, 80], [60, 80], [180, 80], [180, 85], [-180, 85], [-180, 80]]
                )
            ),
            "round a pole",
        ),
        (lambda: Area.from_geojson({"type": "Point", "coordinates": [0, 0]}), "not an area"),
        (lambda: Area.from_geojson("{not json"), "not GeoJSON"),
    ],
)
def test_bad_input_is_a_clear_validation_error(make: object, message: str) -> None:
    with pytest.raises(ValidationError, match=message.replace("(", r"\(")):
        make()  # type: ignore[operator]


def test_unknown_crs_named_in_the_document_is_refused() -> None:
    doc = {**polygon(SQUARE), "crs": {"type": "name", "properties": {"name": "EPSG:0"}}}
    with pytest.raises(ValidationError, match="unknown CRS 'EPSG:0'"):
        Area.from_geojson(doc)
