"""Items 17 and 18: huge radii and windows, and malformed zones and rules, give camgate's own
clear error (a one-line message and exit 1 through the CLI), never a hang or a traceback.

Before: ``geofence query --radius 3e9`` hung with growing memory (``np.prod`` of the cube counts
overflowed int64, so the index walked billions of cubes); ``incident report --window 1e300`` was
accepted and every later request failed with ``OverflowError``; rules ``enrolment_caps = [1]``,
GeoJSON ``"features": [null]``, deeply nested arrays, a 1e12-metre EPSG:3857 polygon and
``--corridor "32 -90"`` each ended in a traceback.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

import anyio
import numpy as np
import pytest
from camgate import Gate
from camgate.errors import ValidationError
from camgate.geofence import Area, CameraIndex, Corridor, Disc
from camgate.models import (
    MAX_DURATION_S,
    MAX_RADIUS_M,
    AccessRequest,
    ConsentTerms,
    GeoPoint,
    Incident,
)
from camgate.rules import AgencyRules

from tests.security._models import CENTRE, assert_clean_error, cli, make_store

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


@pytest.fixture
def world(tmp_path: Path) -> tuple[Path, str]:
    db = tmp_path / "g.db"
    return db, make_store(db)


# ------------------------------------------------------------------ item 17: radii and windows


def _query(db: Path, radius: str, *before: str) -> subprocess.CompletedProcess[str]:
    place = ["--lat", "32.3", "--lon", "-90.18", "--radius", radius]
    return cli(db, *before, "geofence", "query", *place, timeout=30)


def test_cli_geofence_query_with_a_huge_radius_is_refused_at_once(world: tuple[Path, str]) -> None:
    db, _incident = world
    for radius in ("3e9", "1e308", "inf", "nan", "-5", "0"):
        started = time.monotonic()
        assert_clean_error(_query(db, radius), "radius")
        assert time.monotonic() - started < 30


def _report(db: Path, radius: str, *window: str) -> subprocess.CompletedProcess[str]:
    place = ["--kind", "shooting", "--lat", "32.3", "--lon", "-90.18", "--radius", radius]
    return cli(db, "incident", "report", *place, *window)


def test_cli_incident_window_beyond_the_maximum_is_refused(world: tuple[Path, str]) -> None:
    db, _incident = world
    for window in ("1e300", "inf", str(MAX_DURATION_S * 2)):
        assert_clean_error(_report(db, "500", "--window", window), "window_s")
    assert_clean_error(_report(db, "3e9"), "radius_m")


def test_models_bound_every_radius_and_duration() -> None:
    big = MAX_RADIUS_M * 1.01
    with pytest.raises(ValidationError, match="radius_m"):
        Incident("inc_1", "shooting", CENTRE, NOW, big)
    with pytest.raises(ValidationError, match="window_s"):
        Incident("inc_1", "shooting", CENTRE, NOW, 100.0, window_s=1e300)
    with pytest.raises(ValidationError, match="duration_s"):
        AccessRequest("req_1", "inc_1", "a1", "live", "o7", NOW, duration_s=1e300)
    with pytest.raises(ValidationError, match="max_radius_m"):
        ConsentTerms(scopes=["live"], max_radius_m=1e300)
    for field in ("max_session_s", "max_lookback_s"):
        with pytest.raises(ValidationError, match=field):
            ConsentTerms(scopes=["live"], **{field: 1e300})
    with pytest.raises(ValidationError, match="retention_days"):
        ConsentTerms(scopes=["live"], retention_days=1e300)
    with pytest.raises(ValidationError, match="retention_days"):
        AgencyRules(retention_days=1e300)
    with pytest.raises(ValidationError, match="radius_m"):
        Disc.around(32.3, -90.1, 3e9)
    with pytest.raises(ValidationError, match="half_width_m"):
        Corridor.along([(32.3, -90.1), (32.4, -90.1)], 3e9)
    # The largest allowed values work end to end.
    assert Incident("inc_1", "k", CENTRE, NOW, MAX_RADIUS_M, window_s=MAX_DURATION_S).window_end


def test_a_request_on_an_incident_with_the_longest_window_works(world: tuple[Path, str]) -> None:
    db, _incident = world

    async def run() -> str:
        async with Gate.open(db) as gate:
            incident = gate.report_incident("shooting", CENTRE, 500.0, window_s=MAX_DURATION_S)
            signed = await gate.request_access(incident.id, "a1", "snapshot", requested_by="o7")
            return signed.grant.id

    assert anyio.run(run).startswith("grt_")


@pytest.mark.parametrize("radius", [3e9, 1e300, float("inf"), 2.6e7])
def test_the_index_never_overflows_or_walks_unbounded_cubes(radius: float) -> None:
    index = CameraIndex(10.0)
    lat = np.linspace(-80, 80, 50)
    index.add_points([f"c{i}" for i in range(50)], lat, np.linspace(-170, 170, 50))
    started = time.monotonic()
    found = index.candidates_near(GeoPoint(0.0, 0.0), radius)
    assert time.monotonic() - started < 5
    assert len(found) == 50  # the whole Earth is within reach
    box = index.candidates_in_ecef_box(np.array([-1e300, -1e300, -1e300]), np.array([1e300] * 3))
    assert len(box) == 50
    assert len(index.candidates_in_ecef_box(np.array([np.nan] * 3), np.array([np.nan] * 3))) == 0


# ------------------------------------------------------------------ item 18: tracebacks


def test_rules_with_caps_as_a_list_are_a_clear_error(
    world: tuple[Path, str], tmp_path: Path
) -> None:
    db, _incident = world
    for body in (
        "[agency]\nenrolment_caps = [1]\n",
        "agency = 3\n",
        "[agency]\nsensitive_places = [1]\n",
        "[agency]\nsensitive_places = [{name = 'x', lat = 'a', lon = 1, radius_m = 5}]\n",
        "[agency]\nbanned_purposes = [1, 2]\nname = 5\n",
        "[agency]\nretention_days = 'x'\n",
        "[agency]\npurposes = 'investigation'\n",
        "[agency]\nsensitive_cameras = [{a = 1}]\n",
        "\xff\xfe",
    ):
        rules = tmp_path / "rules.toml"
        rules.write_bytes(
            body.encode("utf-8", "surrogateescape") if body != "\xff\xfe" else b"\xff\xfe"
        )
        assert_clean_error(_query(db, "100", "--rules", str(rules)), "rules")


def _zone(db: Path, tmp_path: Path, doc: object, *extra: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "zone.geojson"
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc), encoding="utf-8")
    return cli(db, "geofence", "zone-add", "--role", "exclusion", "--geojson", str(path), *extra)


SQUARE = [[[0, 0], [1, 0], [1, 1], [0, 1], [0, 0]]]


@pytest.mark.parametrize(
    "doc",
    [
        {"type": "FeatureCollection", "features": [None]},
        {"type": "FeatureCollection", "features": [1, "x"]},
        {"type": "FeatureCollection", "features": {"a": 1}},
        {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [[None]]}},
        {"type": "Polygon", "coordinates": "abc"},
        {"type": "MultiPolygon", "coordinates": [SQUARE, None]},
        {"type": ["Polygon"], "coordinates": SQUARE},
        {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1], [0, 0]], 5]},
        {"type": "Polygon", "coordinates": [[["a", 0], [1, 0], [1, 1], [0, 0]]]},
        {"type": "Polygon", "coordinates": [[[1e308, 0], [1, 0], [1, 1], [1e308, 0]]]},
        "[" * 100_000 + "]" * 100_000,
        '{"type": "Polygon", "coordinates": ' + "[" * 50_000 + "]" * 50_000 + "}",
        {"type": "Polygon", "coordinates": json.loads("[" * 500 + "0" + "]" * 500)},
        '{"type": "FeatureCollection", "features": ['
        + '{"type": "FeatureCollection", "features": [' * 3000
        + "]}" * 3000
        + "]}",
        "",
        "null",
    ],
)
def test_malformed_geojson_is_a_clear_error(
    world: tuple[Path, str], tmp_path: Path, doc: object
) -> None:
    db, _incident = world
    assert_clean_error(_zone(db, tmp_path, doc), "")


def test_a_huge_projected_polygon_is_a_clear_error(world: tuple[Path, str], tmp_path: Path) -> None:
    db, _incident = world
    side = 1e12
    doc = {
        "type": "Polygon",
        "coordinates": [[[0, 0], [side, 0], [side, side], [0, side], [0, 0]]],
    }
    started = time.monotonic()
    result = _zone(db, tmp_path, doc, "--crs", "EPSG:3857")
    assert_clean_error(result, "geometry 0")
    assert time.monotonic() - started < 30
    # A square a kilometre wide in EPSG:3857 still loads.
    ok = {"type": "Polygon", "coordinates": [[[0, 0], [1e3, 0], [1e3, 1e3], [0, 1e3], [0, 0]]]}
    assert _zone(db, tmp_path, ok, "--crs", "EPSG:3857").returncode == 0


def test_a_projected_polygon_too_long_to_densify_is_refused() -> None:
    # 2 000 km of edges at a vertex every 20 m would be 4e5 vertices per edge: refused cleanly.
    side = 5e6
    doc = {"type": "Polygon", "coordinates": [[[0, 0], [side, 0], [side, side], [0, side], [0, 0]]]}
    with pytest.raises(ValidationError, match="vertices"):
        Area.from_geojson(doc, crs="EPSG:3857")


@pytest.mark.parametrize(
    "route", ["32 -90", "32,-90", "32,-90 x,y", "32,-90,1 33,-90", "", "32,-90 91,0", "nan,0 1,1"]
)
def test_malformed_corridor_is_a_clear_error(world: tuple[Path, str], route: str) -> None:
    db, _incident = world
    result = cli(
        db, "geofence", "zone-add", "--role", "exclusion", "--corridor", route, "--width", "50"
    )
    assert_clean_error(result, "corridor")


@pytest.mark.parametrize("disc", ["32", "32,-90", "a,b,c", "32,-90,1e12"])
def test_malformed_disc_is_a_clear_error(world: tuple[Path, str], disc: str) -> None:
    db, _incident = world
    result = cli(db, "geofence", "zone-add", "--role", "exclusion", "--disc", disc)
    assert_clean_error(result, "disc")


def test_a_stored_term_above_its_limit_loads_as_the_limit(world: tuple[Path, str]) -> None:
    """Consent stored before the limits keeps working, never looser than the limit."""
    db, incident = world
    con = sqlite3.connect(db)
    with con:
        (cid, doc) = con.execute("SELECT id, doc FROM consents").fetchone()
        data = json.loads(doc)
        data["terms"] |= {"max_lookback_s": 1e300, "max_radius_m": 1e9, "max_session_s": 1e300}
        con.execute("UPDATE consents SET doc=? WHERE id=?", (json.dumps(data), cid))
    con.close()

    async def run() -> tuple[ConsentTerms, str]:
        async with Gate.open(db) as gate:
            record = gate.store.active_consent("a1")
            assert record is not None
            signed = await gate.request_access(incident, "a1", "snapshot", requested_by="o7")
            return record.terms, signed.grant.id

    terms, grant = anyio.run(run)
    assert terms.max_lookback_s == MAX_DURATION_S and terms.max_session_s == MAX_DURATION_S
    assert terms.max_radius_m == MAX_RADIUS_M and grant.startswith("grt_")
