"""Residents' privacy zones (issue #23 item 5): refused until the owner attests a mask covers it."""

from __future__ import annotations

import json
import math

import anyio
import pytest
from camgate import GeoPoint, ValidationError
from camgate.errors import NotFound
from camgate.gate.residents import (
    MAX_ZONE_RADIUS_M,
    POLICY,
    REFUSAL,
    PrivacyZone,
    parse_zone,
    zone_in_view,
)
from camgate.geofence.shapes import Area, Disc
from camgate.models import AccessRequest, new_id
from camgate.store import Store
from camgate.testing import camera_north_of
from hypothesis import given, settings
from hypothesis import strategies as st

from .conftest import CENTRE, World

MASK = [[(0.0, 0.0), (0.5, 0.0), (0.5, 0.5)]]


def _north(metres: float) -> str:
    return f"{CENTRE.lat + metres / 111_000},{CENTRE.lon},10"


def _kinds(world: World) -> list[str]:
    return [r[0] for r in world.gate.store.query("SELECT kind FROM audit ORDER BY seq")]


def test_zone_refuses_live_and_snapshot_until_a_mask_is_attested(world: World) -> None:
    world.enrol("alice", ["a1"])
    world.enrol("bob", ["b1"])
    world.request("a1")  # granted before the zone
    zone = world.gate.register_zone(_north(60.0), by="clerk-1")  # next to a1 (50 m north)
    assert "zone.registered" in _kinds(world)
    assert world.refusal("a1", "live")[POLICY] == REFUSAL
    assert world.refusal("a1", "snapshot")[POLICY] == REFUSAL
    start = world.clock.now()
    world.clock.advance(120)
    world.request("a1", "recorded", window=(start, world.clock.now()))  # not refused
    # the owner is asked once, whatever number of refusals follow
    asks = [n for n in world.gate.store.notices("alice") if n["event"] == "privacy-zone"]
    assert len(asks) == 1 and zone.id in asks[0]["reasons"][0]
    world.refusal("a1", "live")
    assert len([n for n in world.gate.store.notices("alice") if n["event"] == "privacy-zone"]) == 1
    # no masks: nothing to attest; not the owner: refused
    with pytest.raises(ValidationError, match="no privacy masks"):
        world.gate.attest_zone_mask("a1", zone.id, by="alice")
    anyio.run(world.gate.set_masks, "alice", "a1", MASK)
    with pytest.raises(ValidationError, match="owner"):
        world.gate.attest_zone_mask("a1", zone.id, by="bob")
    world.gate.attest_zone_mask("a1", zone.id, by="alice")
    assert "zone.mask-attested" in _kinds(world)
    world.request("a1")  # eligible again, masked
    for cached in (True, False):
        decision = world.gate.decide(_req(world, "a1"), cached=cached)
        assert decision.allowed
    # a mask change makes the attestation lapse
    anyio.run(world.gate.set_masks, "alice", "a1", [[(0.1, 0.1), (0.6, 0.1), (0.6, 0.6)]])
    assert world.refusal("a1", "live")[POLICY] == REFUSAL
    # removal at the resident's request: eligible again, audited
    world.gate.remove_zone(zone.id, by="clerk-1")
    assert "zone.removed" in _kinds(world)
    world.request("a1")
    with pytest.raises(NotFound):
        world.gate.remove_zone(zone.id, by="clerk-1")


def _req(world: World, cam: str, scope: str = "live") -> AccessRequest:
    return AccessRequest(
        id=new_id("req"),
        incident_id=world.incident.id,
        camera_id=cam,
        scope=scope,
        requested_by="officer-7",
        requested_at=world.clock.now(),
    )


def test_a_camera_facing_away_does_not_cover_the_zone(world: World) -> None:
    home = PrivacyZone.from_json(
        {
            "id": "pz-1",
            "shape": Disc(GeoPoint(CENTRE.lat + 100 / 111_000, CENTRE.lon), 10.0).to_json(),
            "registered_at": "2026-01-01T00:00:00+00:00",
            "registered_by": "clerk",
        }
    )
    facing = camera_north_of("f", "o", CENTRE, 0.0, heading_deg=0.0, fov_deg=60.0, range_m=150.0)
    away = camera_north_of("g", "o", CENTRE, 0.0, heading_deg=180.0, fov_deg=60.0, range_m=150.0)
    short = camera_north_of("h", "o", CENTRE, 0.0, heading_deg=0.0, fov_deg=60.0, range_m=50.0)
    blind = camera_north_of("i", "o", CENTRE, 0.0)  # no heading: within the default range
    far = camera_north_of("j", "o", CENTRE, -200.0)
    assert zone_in_view(facing, home)
    assert not zone_in_view(away, home)
    assert not zone_in_view(short, home)
    assert zone_in_view(blind, home)
    assert not zone_in_view(far, home)


def test_status_names_no_owner_and_counts_attested(world: World) -> None:
    world.enrol("alice", ["a1"])
    world.enrol("bob", ["b1"])
    zone = world.gate.register_zone(_north(80.0), by="clerk-1")
    status = world.gate.zone_status(zone.id)
    assert status["cameras_affected"] == 2 and status["cameras_attested"] == 0
    text = json.dumps(status)
    for secret in ("alice", "bob", "a1", "b1"):
        assert f'"{secret}"' not in text
    anyio.run(world.gate.set_masks, "bob", "b1", MASK)
    world.gate.attest_zone_mask("b1", zone.id, by="bob")
    assert world.gate.zone_status(zone.id)["cameras_attested"] == 1


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("32.3,-90.18,500", "at most"),
        ("nan,-90.18,10", "finite"),
        ("32.3,inf", "finite"),
        ("91,0,10", "lat"),
        ("32.3", "LAT,LON"),
        ("a,b", "not numbers"),
        ("", "empty"),
        ("{nope", "JSON"),
        ('{"type": "Point", "coordinates": [0, 0]}', "Polygon"),
        (
            json.dumps(
                {
                    "type": "Polygon",
                    "coordinates": [[[0, 0], [0.0005, 0.0005], [0.0005, 0], [0, 0.0005], [0, 0]]],
                }
            ),
            "Self-intersection",
        ),
        (
            json.dumps(
                {
                    "type": "Polygon",
                    "coordinates": [[[0, 0], [0.01, 0], [0.01, 0.01], [0, 0.01], [0, 0]]],
                }
            ),
            "a home",
        ),
    ],
)
def test_bad_zones_get_clear_errors_and_change_nothing(world: World, text: str, why: str) -> None:
    before = world.state()
    with pytest.raises(ValidationError, match=why):
        world.gate.register_zone(text, by="clerk-1")
    assert world.state() == before
    assert world.gate.privacy_zones() == []


def test_a_polygon_zone() -> None:
    square = {
        "type": "Polygon",
        "coordinates": [[[0, 0], [0.0005, 0], [0.0005, 0.0005], [0, 0.0005], [0, 0]]],
    }
    shape = parse_zone(json.dumps(square))
    assert isinstance(shape, Area)
    assert shape.contains(0.00025, 0.00025).item()


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.text(max_size=60),
        st.lists(st.one_of(st.floats(), st.integers(-1000, 1000)), min_size=0, max_size=4).map(
            lambda xs: ",".join(map(str, xs))
        ),
        st.recursive(
            st.one_of(st.none(), st.floats(), st.integers(), st.text(max_size=5)),
            lambda kids: (
                st.lists(kids, max_size=5)
                | st.dictionaries(st.sampled_from(["type", "coordinates", "geometry"]), kids)
            ),
            max_leaves=20,
        ).map(json.dumps),
    )
)
def test_fuzz_the_zone_parser(text: str) -> None:
    """Anything: a shape no larger than a home, or a ValidationError."""
    try:
        shape = parse_zone(text)
    except ValidationError:
        return
    if isinstance(shape, Disc):
        assert math.isfinite(shape.radius_m) and shape.radius_m <= MAX_ZONE_RADIUS_M


def test_a_zone_written_by_another_connection_is_seen_at_once(world: World) -> None:
    """The fast path's zone map is rebuilt when the zones counter moves (any connection)."""
    world.enrol("alice", ["a1"])
    assert world.gate.decide(_req(world, "a1")).allowed  # the map is built (empty)
    other = Store(world.gate.store.target, home=world.gate.store.path.parent)
    try:
        zone = Disc(GeoPoint(CENTRE.lat + 50 / 111_000, CENTRE.lon), 10.0)
        doc = {
            "id": "pz-other",
            "shape": zone.to_json(),
            "registered_at": "2026-01-01T00:00:00+00:00",
            "registered_by": "clerk",
        }
        other.put_privacy_zone("pz-other", doc)
    finally:
        other.close()
    for cached in (True, False):
        decision = world.gate.decide(_req(world, "a1"), cached=cached)
        assert [v.reason for v in decision.denials] == [REFUSAL]


def test_the_annual_report_counts_zones_honoured(world: World) -> None:
    from camgate.report import Period, build_report, render_html

    world.enrol("alice", ["a1"])
    zone = world.gate.register_zone(_north(60.0), by="clerk-1")
    world.refusal("a1", "live")
    anyio.run(world.gate.set_masks, "alice", "a1", MASK)
    world.gate.attest_zone_mask("a1", zone.id, by="alice")
    world.gate.remove_zone(zone.id, by="clerk-1")
    records = list(world.gate.audit.records())
    year = Period.parse(str(world.clock.now().year))
    section = build_report(records, year, k=1)["ordinance"]
    assert section["zones_honoured"]["cells"]["zones"] == {
        "registered": 1,
        "removed": 1,
        "cameras asked": 1,
        "masks attested": 1,
    }
    assert section["refusals_by_rule"]["cells"]["refusals"][POLICY] == 1
    published = build_report(records, year, k=5)  # small counts suppressed as the rest
    assert published["ordinance"]["zones_honoured"]["cells"]["zones"]["registered"] is None
    page = render_html(published)
    assert "Privacy zones of homes honoured" in page
    assert zone.id not in page and "alice" not in page.lower()


def test_a_long_range_camera_far_from_the_zone_is_found_by_the_fast_path(world: World) -> None:
    """The zone map's spatial pre-filter reaches as far as the longest camera range."""
    world.gate.add_camera(
        camera_north_of("far", "alice", CENTRE, -400.0, heading_deg=0.0, fov_deg=20.0,
                        range_m=600.0)
    )  # fmt: skip
    world.enrol("alice", ["far"])
    world.gate.register_zone(_north(60.0), by="clerk-1")
    for cached in (True, False):
        decision = world.gate.decide(_req(world, "far"), cached=cached)
        assert [v.reason for v in decision.denials] == [REFUSAL]
