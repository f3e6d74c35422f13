"""The PostGIS geofence index answers as camgate's own index does, on a real PostgreSQL+PostGIS.

One server and one database for the module; every example re-syncs the table (``sync`` makes
it hold exactly the example's cameras). Cameras cluster round the query (and some sit exactly
on its boundary, placed with ``Geod.fwd``), centres include the poles and the antimeridian.

The earth model is the same on both sides — PostGIS measures ``geography`` on the WGS84
spheroid with GeographicLib, pyproj's ``Geod`` runs the same algorithm — so the answers may
differ only for a camera within :data:`BOUNDARY_TOLERANCE_M` (plus a part in 10⁹ of the
radius) of the boundary: floating-point rounding, measured under 10⁻⁸ m. The tests allow
differences in that band only, and require the superset queries to keep every camera in it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest
from camgate import Gate
from camgate.errors import ConfigError, StorageError, ValidationError
from camgate.geofence import Area, CameraIndex, Corridor, Disc
from camgate.geofence.postgis import BOUNDARY_TOLERANCE_M, PostgisIndex, covering_disc
from camgate.models import Camera, GeoPoint, Owner
from camgate.testing.pgserver import PostgresServer, postgis_database
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pyproj import Geod

GEOD = Geod(ellps="WGS84")
FEW = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

lat_st = st.one_of(
    st.floats(-90, 90), st.sampled_from([90.0, -90.0, 89.999, -89.99, 0.0]), st.floats(88, 90)
)
lon_st = st.one_of(st.floats(-180, 180), st.floats(179, 180), st.floats(-180, -179))


@pytest.fixture(scope="module")
def dsn(postgres: PostgresServer) -> str:
    return postgis_database(postgres)


@pytest.fixture(scope="module")
def index(dsn: str) -> Iterator[PostgisIndex]:
    with PostgisIndex(dsn) as ix:
        ix.ensure_schema()
        yield ix


def _band(radius: float) -> float:
    return BOUNDARY_TOLERANCE_M + radius * 1e-9


def _scene(center: GeoPoint, radius: float, seed: int, n: int) -> tuple[Any, Any]:
    """Positions round ``center``: in, out, a fifth exactly on the radius, a few anywhere."""
    rng = np.random.default_rng(seed)
    az = rng.uniform(0, 360, n)
    dist = radius * rng.uniform(0, 2.0, n) ** 2
    dist[: n // 5] = radius
    lon, lat, _ = GEOD.fwd(np.full(n, center.lon), np.full(n, center.lat), az, dist)
    lat = np.concatenate([np.asarray(lat, float), rng.uniform(-90, 90, 5)])
    lon = np.concatenate([np.asarray(lon, float), rng.uniform(-180, 180, 5)])
    return np.clip(lat, -90, 90), lon


def _ids(n: int) -> list[str]:
    return [f"cam{i}" for i in range(n)]


def _own(lat: Any, lon: Any, cell: float = 500.0) -> CameraIndex:
    own = CameraIndex(cell)
    own.add_points(_ids(len(lat)), lat, lon)
    return own


# ---------------------------------------------------------------------- the same answers


@FEW
@given(lat_st, lon_st, st.floats(0.0, 50_000.0), st.integers(0, 2**32 - 1), st.integers(0, 120))
def test_radius_query_agrees_with_camgates_index_outside_the_band(
    index: PostgisIndex, lat: float, lon: float, radius: float, seed: int, n: int
) -> None:
    center = GeoPoint(lat, lon)
    la, lo = _scene(center, radius, seed, n)
    index.sync_points(_ids(len(la)), la, lo)
    theirs = dict(index.within(center, radius))
    ours = dict(_own(la, lo).within(center, radius))
    _f, _b, dist = GEOD.inv(np.full(len(la), lon), np.full(len(la), lat), lo, la)
    exact = dict(zip(_ids(len(la)), np.atleast_1d(dist).tolist(), strict=True))
    for camera_id in set(theirs) ^ set(ours):
        assert abs(exact[camera_id] - radius) <= _band(radius), camera_id
    for camera_id in set(theirs) & set(ours):
        assert theirs[camera_id] == pytest.approx(ours[camera_id], abs=1e-6)
    assert [i for i, _d in index.within(center, radius)] == list(theirs)  # nearest first, stable
    assert set(ours) <= set(index.near_ids(center, radius))


@st.composite
def shapes(draw: st.DrawFn) -> tuple[Any, GeoPoint, float]:
    """A disc, a corridor or a star-shaped area round a random centre, and its size (m)."""
    center = GeoPoint(draw(st.floats(-85, 85)), draw(lon_st))
    size = draw(st.floats(20.0, 30_000.0))
    seed = draw(st.integers(0, 2**31))
    rng = np.random.default_rng(seed)
    kind = draw(st.sampled_from(["disc", "corridor", "area"]))
    if kind == "disc":
        return Disc(center, size), center, size
    if kind == "corridor":
        k = draw(st.integers(2, 5))
        lo, la, _ = GEOD.fwd(
            np.full(k, center.lon),
            np.full(k, center.lat),
            rng.uniform(0, 360, k),
            size * rng.uniform(0, 3, k),
        )
        width = draw(st.floats(1.0, 2_000.0))
        return (
            Corridor.along(list(zip(la.tolist(), lo.tolist(), strict=True)), width),
            center,
            size * 3,
        )
    k = draw(st.integers(3, 10))
    az = np.sort(rng.uniform(0, 360, k))
    lo, la, _ = GEOD.fwd(
        np.full(k, center.lon), np.full(k, center.lat), az, size * rng.uniform(0.3, 1, k)
    )
    ring = [[float(x), float(y)] for x, y in zip(lo, la, strict=True)]
    try:
        area = Area.from_geojson({"type": "Polygon", "coordinates": [[*ring, ring[0]]]})
    except ValidationError:
        assume(False)  # a degenerate random ring, refused as it should be
        raise
    return area, center, size


@FEW
@given(shapes(), st.integers(0, 2**32 - 1))
def test_shape_query_equals_camgates_index_exactly(
    index: PostgisIndex, drawn: tuple[Any, GeoPoint, float], seed: int
) -> None:
    """Same cameras, not just up to a band: PostGIS narrows, camgate's exact test decides."""
    shape, center, size = drawn
    la, lo = _scene(center, size, seed, 150)
    index.sync_points(_ids(len(la)), la, lo)
    own = _own(la, lo)
    slots = shape.candidates(own)
    expected = sorted(
        own.ids(np.asarray(slots)[shape.contains(own.lat[slots], own.lon[slots])].tolist())
    )
    assert index.in_shape(shape) == expected
    assert expected == sorted(np.asarray(_ids(len(la)))[shape.contains(la, lo)].tolist())


@FEW
@given(
    st.floats(-89, 89),
    st.floats(-180, 180),
    st.floats(0.001, 30),
    st.floats(0.001, 30),
    st.integers(0, 2**32 - 1),
)
def test_latlon_box_query_never_misses_a_camera(
    index: PostgisIndex, south: float, west: float, dlat: float, dlon: float, seed: int
) -> None:
    """Boxes across the antimeridian (east past 180) and up to the poles included."""
    north = min(south + dlat, 90.0)
    east = west + dlon
    rng = np.random.default_rng(seed)
    la = np.concatenate(
        [rng.uniform(south, north, 60), rng.uniform(-90, 90, 60), [south, north, north]]
    )
    lo = np.concatenate(
        [rng.uniform(west, east, 60), rng.uniform(-180, 180, 60), [west, east, west]]
    )
    lo = (lo + 180.0) % 360.0 - 180.0
    index.sync_points(_ids(len(la)), la, lo)
    unwrapped = np.where(lo < west, lo + 360.0, lo)
    inside = (la >= south) & (la <= north) & (unwrapped >= west) & (unwrapped <= east)
    found = set(index.latlon_box_ids(south, north, west, east))
    assert set(np.asarray(_ids(len(la)))[inside].tolist()) <= found


def test_covering_disc_of_a_huge_box_is_none_and_bad_boxes_are_refused() -> None:
    assert covering_disc(-70, 10, 0, 30) is None
    assert covering_disc(0, 10, 0, 100) is None
    with pytest.raises(ValidationError, match="empty"):
        covering_disc(10, 0, 0, 1)
    with pytest.raises(ValidationError, match="finite"):
        covering_disc(math.nan, 0, 0, 1)


# ---------------------------------------------------------------------- edge cases


def test_antimeridian_poles_and_zero_radius(index: PostgisIndex) -> None:
    index.sync_points(
        ["east", "west", "north", "north2", "south", "here", "metre"],
        [10.0, 10.0, 90.0, 89.9999, -90.0, 32.3, 32.3],
        [179.9999, -179.9999, 0.0, 123.0, 45.0, -90.2, -90.2 + 1.1e-5],
    )
    across = index.within(GeoPoint(10.0, 180.0), 100.0)
    assert {i for i, _d in across} == {"east", "west"}
    assert all(d == pytest.approx(10.96, abs=0.01) for _i, d in across)
    pole = index.within(GeoPoint(90.0, -120.0), 12.0)
    assert [i for i, _d in pole] == ["north", "north2"]
    assert pole[0][1] == pytest.approx(0.0, abs=1e-6)
    assert [i for i, _d in index.within(GeoPoint(-90.0, 0.0), 0.0)] == ["south"]
    assert index.within(GeoPoint(32.3, -90.2), 0.0) == [("here", 0.0)]
    assert index.near_ids(GeoPoint(32.3, -90.2), 0.0) == ["here"]
    everything = index.within(GeoPoint(0.0, 0.0), math.inf)
    assert len(everything) == 7


def test_a_query_on_an_empty_index_finds_nothing(index: PostgisIndex) -> None:
    index.sync([])
    assert len(index) == 0
    assert index.within(GeoPoint(0, 0), 1e6) == []
    assert index.in_shape(Disc(GeoPoint(0, 0), 1000)) == []


# ---------------------------------------------------------------------- updates


def _cam(camera_id: str, lat: float, lon: float) -> Camera:
    return Camera(camera_id, "rtsp", f"rtsp://192.0.2.1/{camera_id}", "alice", GeoPoint(lat, lon))


def test_sync_upsert_and_delete_follow_the_cameras(index: PostgisIndex) -> None:
    here = GeoPoint(32.2988, -90.1848)
    assert index.sync([_cam("a", 32.2990, -90.1850), _cam("b", 32.2991, -90.1849)]) == 2
    assert index.sync([_cam("a", 32.2990, -90.1850), _cam("b", 32.2991, -90.1849)]) == 0
    # b moves across town, c enrols, a leaves: three rows change, nothing else is written.
    assert index.sync([_cam("b", 32.35, -90.10), _cam("c", 32.2989, -90.1848)]) == 3
    assert index.camera_ids() == ["b", "c"]
    assert [i for i, _d in index.within(here, 100)] == ["c"]
    index.upsert(_cam("b", 32.2988, -90.1848))
    assert [i for i, _d in index.within(here, 100)] == ["b", "c"]
    assert index.delete("b") is True
    assert index.delete("b") is False
    assert index.camera_ids() == ["c"]


def test_bad_input_is_a_clear_error_and_changes_nothing(index: PostgisIndex) -> None:
    index.sync([_cam("keep", 1.0, 2.0)])
    with pytest.raises(ValidationError, match="twice"):
        index.sync_points(["x", "x"], [0, 0], [0, 0])
    with pytest.raises(ValidationError, match="latitude 91"):
        index.sync_points(["x", "y"], [0, 91], [0, 0])
    with pytest.raises(ValidationError, match="same length"):
        index.sync_points(["x"], [0, 1], [0, 1])
    with pytest.raises(ValidationError, match="non-empty"):
        index.sync_points([""], [0], [0])
    with pytest.raises(ValidationError, match="radius"):
        index.within(GeoPoint(0, 0), math.nan)
    with pytest.raises(ValidationError, match="radius"):
        index.near_ids(GeoPoint(0, 0), -1)
    with pytest.raises(ValidationError, match="lon=200"):
        index.within(GeoPoint(0, 200), 10)
    assert index.camera_ids() == ["keep"]


def test_fed_from_a_stores_cameras(index: PostgisIndex, tmp_path: Path) -> None:
    gate = Gate.open(tmp_path / "g.db")
    try:
        gate.add_owner(Owner("alice", "Alice"))
        gate.add_camera(_cam("porch", 32.2990, -90.1850))
        gate.add_camera(_cam("far", 32.3500, -90.1000))
        index.sync(gate.store.cameras())
        incident = GeoPoint(32.2988, -90.1848)
        assert [i for i, _d in index.within(incident, 200)] == ["porch"]
        assert [i for i, _d in index.within(incident, 200)] == [
            i for i, _d in gate.camera_index.get().within(incident, 200)
        ]
    finally:
        gate.store.close()


# ---------------------------------------------------------------------- errors


def test_a_role_that_may_not_create_postgis_gets_a_config_error(postgres: PostgresServer) -> None:
    plain = postgres.create_database()
    with psycopg.connect(postgres.dsn, autocommit=True) as conn:
        conn.execute("CREATE ROLE geofence_plain LOGIN")
    as_plain = plain.replace(f"{postgres.user}@", "geofence_plain@")
    try:
        with (
            PostgisIndex(as_plain) as ix,
            pytest.raises(ConfigError, match="superuser must run CREATE EXTENSION postgis"),
        ):
            ix.ensure_schema()
    finally:
        with psycopg.connect(postgres.dsn, autocommit=True) as conn:
            conn.execute("DROP ROLE geofence_plain")


def test_server_failures_are_storage_errors_without_the_password(postgres: PostgresServer) -> None:
    secret = "s3cr3t-Pa55word"
    port = postgres.port
    with pytest.raises(StorageError) as caught:
        PostgisIndex(f"postgresql://nobody:{secret}@127.0.0.1:{port}/nowhere", connect_timeout=5)
    assert secret not in str(caught.value)
    assert "nowhere" in str(caught.value)
    dsn = postgres.create_database()
    ix = PostgisIndex(dsn)
    assert secret not in repr(ix)
    ix.close()
    with pytest.raises(StorageError, match="cannot query the geofence index"):
        ix.within(GeoPoint(0, 0), 10)
