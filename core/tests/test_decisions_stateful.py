"""Stateful property test: the fast decision path and the survey say what a fresh reading says.

A real SQLite file; rules change it between decisions — through the gate (enrol, revoke, new
terms, report and close incidents, move a camera, hand it to another owner, publish a waiver,
change the agency's rules) and through a second :class:`Store` on the same file, as another
process would (close an incident, revoke, move a camera), which the gate hears of only through
the store's change counters. After every change:

- ``Gate.decide`` (facts from the cache) returns the same votes (the ordinance rules' too:
  program dates, live-time caps, protected activities; residents' privacy zones registered,
  removed, masked and attested, here or by the other writer) — outcome and every reason — as
  ``Gate.decide(cached=False)``, which reads every fact afresh;
- ``Gate.survey`` lists exactly the cameras inside the incident's radius, and each row's
  decision equals the reference decision on the same request; a recorded survey adds exactly
  one ``survey`` audit record with its counts.

``test_a_stale_cache_is_caught`` proves the test has teeth: with the counters frozen (the
cache never invalidated) the machine fails; ``test_a_stale_zone_map_is_caught`` the same for
the privacy zones' counter.
"""

from __future__ import annotations

import contextlib
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import attrs
import pytest
from camgate import AccessRequest, ConsentTerms, Gate, GeoPoint, Owner, Waiver
from camgate.errors import NotFound, ValidationError
from camgate.gate import builtin_plugins
from camgate.gate.residents import PrivacyZone, parse_zone
from camgate.geofence import distance_m
from camgate.grants import GrantSigner
from camgate.models import IncidentStatus, PrivacyMask, new_id
from camgate.plugins import PluginHost
from camgate.policy import AgencyPolicy
from camgate.rules import AgencyRules, SensitivePlace
from camgate.store import Store
from camgate.testing import DeclaringAdapters, ManualClock, camera_north_of
from hypothesis import Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

CENTRE = GeoPoint(32.2988, -90.1848)
OWNERS = {"alice": "America/Chicago", "bob": "UTC"}
CAMERAS = {"a1": ("alice", 50.0), "a2": ("alice", 400.0), "b1": ("bob", 150.0), "b2": ("bob", 260)}
# Metres north of the centre a camera may move to, and incident radii: never within 10 m of
# each other, so "inside the radius" is never a rounding question.
OFFSETS = [20.0, 120.0, 230.0, 480.0, 900.0]
RADII = [100.0, 300.0, 600.0]
SCOPES = ["live", "snapshot", "recorded"]
#: Metres north of the centre a resident's privacy zone (15 m round) may lie.
ZONES = [60.0, 200.0, 450.0]
KINDS = ["shooting", "burglary"]
PURPOSES = ["investigation", "missing-person", "face-recognition", "investigation, shopping"]
#: A sensitive place where camera a2 starts.
CLINIC = camera_north_of("clinic", "nobody", CENTRE, 400.0).position
WAIVERS = [Waiver("2026-1", "I share my camera on my terms."), Waiver("2026-2", "Version two.")]
RULES = [
    AgencyRules(name="Plain"),
    AgencyRules(
        name="Jackson",
        purposes=["investigation", "missing-person"],
        live_incident_kinds=["shooting"],
        banned_purposes=["face-recognition"],
        sensitive_places=[SensitivePlace("clinic", CLINIC, 30)],
        required_waivers=["2026-2"],
    ),
    AgencyRules(  # the ordinance rules: a program that ends, live-time caps, protected activity
        name="Ordinance",
        purposes=["investigation", "missing-person"],
        version="pilot",
        program_start=datetime(2026, 11, 21, 6, 0, tzinfo=UTC),
        program_end=datetime(2026, 11, 22, 18, 0, tzinfo=UTC),
        live_caps={"per_incident_h": 1, "per_officer_day_h": 0.02, "per_camera_week_h": 2},
        protected_activities=[
            {"name": "a", "incident_kinds": ["burglary"], "purposes": ["missing-person"]}
        ],
    ),
]  # fmt: skip

terms_strategy = st.builds(
    ConsentTerms,
    scopes=st.sets(st.sampled_from(SCOPES)) | st.just(set(SCOPES)),
    mode=st.sampled_from(["ask", "pre-authorised"]),
    incident_kinds=st.sampled_from([None, {"shooting"}, set(KINDS)]),
    max_radius_m=st.sampled_from([None, 200.0, 1000.0]),
    quiet_hours=st.sampled_from([None, ("22:00", "07:00"), ("12:00", "13:00")]),
    max_session_s=st.sampled_from([None, 60.0]),
    max_lookback_s=st.sampled_from([None, 3600.0]),
)


class Decisions(RuleBasedStateMachine):
    """The gate's cached decisions and surveys against fresh readings of the same file."""

    #: Set by the teeth test: the counters never move, so the cache is never invalidated.
    frozen_counters = False
    #: Set by the zones teeth test: the privacy-zone counter never moves.
    frozen_zones = False

    @initialize()
    def open(self) -> None:
        self.tmp = tempfile.TemporaryDirectory()
        path = Path(self.tmp.name) / "camgate.db"
        self.clock = ManualClock()
        store = Store(path)
        self.gate = Gate(
            store=store,
            host=PluginHost(
                builtins=builtin_plugins(store, RULES[0]) | {"adapters": DeclaringAdapters()},
                entry_points=False,
            ),
            signer=GrantSigner.generate(),
            clock=self.clock,
        )
        if self.frozen_counters:
            seen = store.changes()
            store.changes = lambda: seen  # type: ignore[method-assign]
        if self.frozen_zones:
            count = store.zone_changes()
            store.zone_changes = lambda: count  # type: ignore[method-assign]
        #: Another writer on the same file, as another process would be.
        self.other = Store(path)
        self.gate.publish_waiver(WAIVERS[0])
        for owner, zone in OWNERS.items():
            self.gate.add_owner(Owner(owner, owner.title(), time_zone=zone))
        for camera, (owner, north) in CAMERAS.items():
            self.gate.add_camera(camera_north_of(camera, owner, CENTRE, north))
        self.incidents: list[str] = []
        self.surveys = 0

    def teardown(self) -> None:
        if hasattr(self, "gate"):
            anyio.run(self.gate.aclose)
            self.other.close()
            self.tmp.cleanup()

    # ------------------------------------------------------------------ changes

    @rule(
        owner=st.sampled_from(sorted(OWNERS)),
        waiver=st.sampled_from(WAIVERS),
        terms=terms_strategy,
        data=st.data(),
    )
    def enrol(self, owner: str, waiver: Waiver, terms: ConsentTerms, data: Any) -> None:
        """Enrol (or enrol again, with new terms) some of the owner's cameras."""
        mine = [c.id for c in self.gate.store.cameras(owner)]
        if not mine:
            return
        chosen = data.draw(st.lists(st.sampled_from(mine), min_size=1, unique=True))
        with contextlib.suppress(NotFound):  # the waiver is not published yet
            self.gate.enrol(
                owner, chosen, waiver_version=waiver.version, waiver_sha256=waiver.sha256,
                terms=terms,
            )  # fmt: skip

    @rule(owner=st.sampled_from(sorted(OWNERS)))
    def revoke(self, owner: str) -> None:
        anyio.run(self.gate.revoke, owner)

    @rule(owner=st.sampled_from(sorted(OWNERS)))
    def revoke_elsewhere(self, owner: str) -> None:
        """Another process revokes the owner's records (no audit: only the counters tell)."""
        self.other.revoke_consent_ids(self.other.active_consent_ids(owner), self.clock.now())

    @rule(kind=st.sampled_from(KINDS), radius=st.sampled_from(RADII))
    def report(self, kind: str, radius: float) -> None:
        self.incidents.append(self.gate.report_incident(kind, CENTRE, radius).id)

    @rule(data=st.data(), elsewhere=st.booleans())
    def close(self, data: Any, elsewhere: bool) -> None:
        if not self.incidents:
            return
        incident_id = data.draw(st.sampled_from(self.incidents))
        if elsewhere:
            incident = self.other.get_incident(incident_id)
            self.other.add_incident(attrs.evolve(incident, status=IncidentStatus.CLOSED))
        else:
            self.gate.close_incident(incident_id)

    @rule(
        camera=st.sampled_from(sorted(CAMERAS)),
        north=st.sampled_from(OFFSETS),
        owner=st.sampled_from(sorted(OWNERS)),
        elsewhere=st.booleans(),
    )
    def move(self, camera: str, north: float, owner: str, elsewhere: bool) -> None:
        """Move a camera, maybe to another owner (whose consent then does not cover it)."""
        moved = camera_north_of(camera, owner, CENTRE, north)
        if elsewhere:
            self.other.add_camera(moved)
        else:
            self.gate.add_camera(moved)

    @rule(waiver=st.sampled_from(WAIVERS))
    def publish(self, waiver: Waiver) -> None:
        self.gate.publish_waiver(waiver)

    @rule(rules=st.sampled_from(RULES))
    def change_rules(self, rules: AgencyRules) -> None:
        self.gate.host.unregister("camgate.agency")
        self.gate.host.register(AgencyPolicy(rules), "camgate.agency", builtin=True)

    # residents' privacy zones: registered, removed, masks set and attested (here or elsewhere)

    @rule(north=st.sampled_from(ZONES), elsewhere=st.booleans())
    def register_zone(self, north: float, elsewhere: bool) -> None:
        home = f"{CENTRE.lat + north / 111_000},{CENTRE.lon},15"
        if elsewhere:
            zone = PrivacyZone(new_id("pz"), parse_zone(home), self.clock.now(), "clerk")
            self.other.put_privacy_zone(zone.id, zone.to_json())
        else:
            self.gate.register_zone(home, by="clerk")

    @rule(data=st.data())
    def remove_zone(self, data: Any) -> None:
        zones = [z.id for z in self.gate.privacy_zones()]
        if zones:
            self.gate.remove_zone(data.draw(st.sampled_from(zones)), by="clerk")

    @rule(camera=st.sampled_from(sorted(CAMERAS)), corner=st.sampled_from([0.2, 0.5]),
          elsewhere=st.booleans())  # fmt: skip
    def set_masks(self, camera: str, corner: float, elsewhere: bool) -> None:
        owner = self.gate.store.get_camera(camera).owner_id
        polygons = [[(0.0, 0.0), (corner, 0.0), (corner, corner)]]
        if elsewhere:
            self.other.set_masks(PrivacyMask(camera, polygons, self.clock.now(), owner))
        else:
            anyio.run(self.gate.set_masks, owner, camera, polygons)

    @rule(camera=st.sampled_from(sorted(CAMERAS)), data=st.data())
    def attest(self, camera: str, data: Any) -> None:
        zones = [z.id for z in self.gate.privacy_zones()]
        if not zones:
            return
        owner = self.gate.store.get_camera(camera).owner_id
        with contextlib.suppress(ValidationError):  # no masks, or the zone is out of its view
            self.gate.attest_zone_mask(camera, data.draw(st.sampled_from(zones)), by=owner)

    @rule(seconds=st.sampled_from([60.0, 3600.0, 6 * 3600.0, 13 * 3600.0]))
    def wait(self, seconds: float) -> None:
        self.clock.advance(seconds)

    # ------------------------------------------------------------------ decisions

    def _request(self, camera: str, incident: str, scope: str, purpose: str) -> AccessRequest:
        now = self.clock.now()
        recorded = scope == "recorded"
        return AccessRequest(
            id=new_id("req"),
            incident_id=incident,
            camera_id=camera,
            scope=scope,
            requested_by="officer",
            requested_at=now,
            purpose=purpose,
            duration_s=120.0,
            window_start=now.replace(microsecond=0) - _hours(2) if recorded else None,
            window_end=now.replace(microsecond=0) - _hours(1) if recorded else None,
        )

    @rule(
        camera=st.sampled_from(sorted(CAMERAS)),
        scope=st.sampled_from(SCOPES),
        purpose=st.sampled_from(PURPOSES),
        answer=st.sampled_from([None, True, False]),
        data=st.data(),
    )
    def decide(self, camera: str, scope: str, purpose: str, answer: bool | None, data: Any) -> None:
        if not self.incidents:
            return
        request = self._request(camera, data.draw(st.sampled_from(self.incidents)), scope, purpose)
        fast = self.gate.decide(request, owner_answer=answer)
        reference = self.gate.decide(request, owner_answer=answer, cached=False)
        assert fast.votes == reference.votes
        assert (fast.allowed, fast.consent_id) == (reference.allowed, reference.consent_id)

    @rule(
        scope=st.sampled_from(SCOPES), purpose=st.sampled_from(PURPOSES), record=st.booleans(),
        data=st.data(),
    )  # fmt: skip
    def survey(self, scope: str, purpose: str, record: bool, data: Any) -> None:
        if not self.incidents:
            return
        incident = self.gate.store.get_incident(data.draw(st.sampled_from(self.incidents)))
        window = None
        if scope == "recorded":
            now = self.clock.now().replace(microsecond=0)
            window = (now - _hours(2), now - _hours(1))
        before = sum(1 for _ in self.gate.audit.records("survey"))
        result = self.gate.survey(
            incident.id, scope=scope, purpose=purpose, duration_s=120.0, window=window,
            requested_by="officer", record=record,
        )  # fmt: skip
        inside = {
            c.id
            for c in self.gate.store.cameras()
            if distance_m(incident.position, c.position) <= incident.radius_m
        }
        assert {row.camera_id for row in result.rows} == inside
        for row in result.rows:
            request = self._request(row.camera_id, incident.id, scope, purpose)
            request = attrs.evolve(request, id=row.decision.request_id, requested_at=result.at)
            if window is not None:
                request = attrs.evolve(request, window_start=window[0], window_end=window[1])
            reference = self.gate.decide(request, cached=False)
            assert row.decision.votes == reference.votes
            assert row.decision.allowed == reference.allowed
            assert (str(row.outcome) == "denied") == (not reference.allowed)
        records = list(self.gate.audit.records("survey"))
        assert len(records) == before + record
        if record:
            body = records[-1].body
            assert body["incident"] == incident.id
            assert body["candidates"] == len(result.rows)
            assert body["allowed"] + body["ask"] + body["denied"] == len(result.rows)

    @invariant()
    def counters_only_grow(self) -> None:
        if not hasattr(self, "gate") or self.frozen_counters:
            return
        now = self.gate.store.changes()
        assert now is not None
        last = getattr(self, "_last_changes", now)
        assert all(a >= b for a, b in zip(now, last, strict=True))
        self._last_changes = now


def _hours(n: float) -> Any:
    from datetime import timedelta

    return timedelta(hours=n)


SETTINGS = settings(
    max_examples=60,
    stateful_step_count=30,
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
)


def test_fast_path_matches_the_reference() -> None:
    run_state_machine_as_test(Decisions, settings=SETTINGS)


def test_a_stale_cache_is_caught() -> None:
    """With the change counters frozen, some sequence makes the cached answer stale."""

    class Frozen(Decisions):
        frozen_counters = True

    with pytest.raises(AssertionError):
        run_state_machine_as_test(
            Frozen, settings=settings(SETTINGS, max_examples=200, phases=[Phase.generate])
        )


def test_a_stale_zone_map_is_caught() -> None:
    """With the privacy-zone counter frozen, some sequence makes the zone map stale."""

    class Frozen(Decisions):
        frozen_zones = True

    with pytest.raises(AssertionError):
        run_state_machine_as_test(
            Frozen, settings=settings(SETTINGS, max_examples=200, phases=[Phase.generate])
        )
