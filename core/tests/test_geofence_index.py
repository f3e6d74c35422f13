"""The indexed geofence query returns exactly what a brute-force pyproj scan returns.

Random centres include the poles and the antimeridian; random cameras cluster round the centre
(so boundaries are exercised) with a few anywhere on Earth. The reference is written here
straight on ``pyproj.Geod``, independent of camgate's helpers.
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
from camgate.geofence import CameraIndex, Disc, RadiusGeofence, survey
from camgate.models import Camera, GeoPoint, Incident
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyproj import Geod

GEOD = Geod(ellps="WGS84")
NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

lat_st = st.one_of(
    st.floats(-90, 90),
    st.sampled_from([90.0, -90.0, 89.999, -89.99, 0.0]),
    st.floats(88, 90),
    st.floats(-90, -88),
)
lon_st = st.one_of(
    st.floats(-180, 180), st.floats(179, 180), st.floats(-180, -179), st.sampled_from([180.0])
)


@st.composite
def scenes(draw: st.DrawFn) -> tuple[GeoPoint, float, np.ndarray, np.ndarray, float]:
    """A centre, a radius, camera positions clustered round it, and a grid cell size."""
    center = GeoPoint(draw(lat_st), draw(lon_st))
    radius = draw(st.floats(1.0, 20_000.0))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    n = draw(st.integers(0, 150))
    az = rng.uniform(0, 360, n)
    dist = radius * rng.uniform(0, 2.0, n) ** 2
    lon, lat, _ = GEOD.fwd(np.full(n, center.lon), np.full(n, center.lat), az, dist)
    k = draw(st.integers(0, 20))
    lat = np.concatenate([np.asarray(lat, float), rng.uniform(-90, 90, k)])
    lon = np.concatenate([np.asarray(lon, float), rng.uniform(-180, 180, k)])
    cell = draw(st.sampled_from([10.0, 100.0, 500.0, 5_000.0, 100_000.0]))
    return center, radius, lat, lon, cell


def brute_within(center: GeoPoint, radius: float, lat: np.ndarray, lon: np.ndarray) -> set[int]:
    if len(lat) == 0:
        return set()
    _f, _b, dist = GEOD.inv(np.full(len(lat), center.lon), np.full(len(lat), center.lat), lon, lat)
    return {i for i, d in enumerate(np.atleast_1d(dist)) if d <= radius}


@FAST
@given(scenes())
def test_radius_query_equals_brute_force_scan(scene: tuple) -> None:
    center, radius, lat, lon, cell = scene
    index = CameraIndex(cell)
    index.add_points([str(i) for i in range(len(lat))], lat, lon)
    found = {int(i) for i, _d in index.within(center, radius)}
    assert found == brute_within(center, radius, lat, lon)


@FAST
@given(scenes(), st.data())
def test_incremental_updates_equal_brute_force_scan(scene: tuple, data: st.DataObject) -> None:
    """Enrol one by one, move some, remove some: the index stays exactly right, no rebuild."""
    center, radius, lat, lon, cell = scene
    lat, lon = lat.copy(), lon.copy()
    index = CameraIndex(cell)
    for i in range(len(lat)):
        index.add(_camera(str(i), lat[i], lon[i]))
    alive = set(range(len(lat)))
    for i in sorted(data.draw(st.sets(st.sampled_from(range(len(lat))))) if len(lat) else []):
        if data.draw(st.booleans()):
            index.remove(str(i))
            alive.discard(i)
        else:  # move it: to the centre's antipode side or right next to the centre
            lat[i], lon[i] = data.draw(lat_st), data.draw(lon_st)
            index.add(_camera(str(i), lat[i], lon[i]))
    assert len(index) == len(alive)
    keep = sorted(alive)
    expected = {keep[j] for j in brute_within(center, radius, lat[keep], lon[keep])}
    assert {int(i) for i, _d in index.within(center, radius)} == expected


def _camera(
    cid: str, lat: float, lon: float, heading: float | None = None, fov: float | None = None,
    range_m: float | None = None,
) -> Camera:  # fmt: skip
    return Camera(
        id=cid,
        adapter="rtsp",
        source=f"rtsp://cam/{cid}",
        owner_id="o",
        position=GeoPoint(float(lat), float(lon)),
        heading_deg=heading,
        fov_deg=fov,
        range_m=range_m,
    )


@FAST
@given(scenes(), st.data())
def test_field_of_view_query_equals_brute_force_scan(scene: tuple, data: st.DataObject) -> None:
    """Radius + fields of view through the index == a scan: near, and the sector covers it."""
    center, radius, lat, lon, cell = scene
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    cameras = []
    for i in range(len(lat)):
        if rng.random() < 0.25:
            cameras.append(_camera(str(i), lat[i], lon[i]))
            continue
        cameras.append(
            _camera(
                str(i),
                lat[i],
                lon[i],
                heading=float(rng.uniform(0, 360)),
                fov=float(rng.choice([360.0, rng.uniform(1, 180)])),
                range_m=None if rng.random() < 0.2 else float(rng.uniform(1, 2 * radius)),
            )
        )
    index = CameraIndex(cell)
    index.add_points([c.id for c in cameras], lat, lon, cameras)
    incident = Incident("inc", "test", center, NOW, radius)
    radius_zone = RadiusGeofence()
    rows = survey(
        incident,
        index,
        [Disc(center, radius)],
        lambda cam: [radius_zone.camgate_geofence_vote(incident, cam, NOW)],
    )
    found = {r.camera.id for r in rows if r.reachable}

    expected = set()
    for cam in cameras:
        p = cam.position
        _f, _b, d_in = GEOD.inv(center.lon, center.lat, p.lon, p.lat)
        if d_in > radius:
            continue
        if cam.heading_deg is None or cam.fov_deg is None:
            expected.add(cam.id)
            continue
        az, _b, d = GEOD.inv(p.lon, p.lat, center.lon, center.lat)
        off = abs((az - cam.heading_deg + 180.0) % 360.0 - 180.0)
        in_range = cam.range_m is None or d <= cam.range_m
        if d == 0 or (in_range and off <= cam.fov_deg / 2):
            expected.add(cam.id)
    assert found == expected
    ranked = [r.score for r in rows if r.reachable]
    assert ranked == sorted(ranked, reverse=True)


def test_a_camera_that_moves_leaves_its_old_place() -> None:
    index = CameraIndex(200)
    index.add(_camera("a", 32.3, -90.18))
    assert [i for i, _ in index.within(GeoPoint(32.3, -90.18), 50)] == ["a"]
    index.add(_camera("a", 32.4, -90.18))
    assert index.within(GeoPoint(32.3, -90.18), 50) == []
    assert [i for i, _ in index.within(GeoPoint(32.4, -90.18), 50)] == ["a"]
    assert index.remove("a") and not index.remove("a") and len(index) == 0
