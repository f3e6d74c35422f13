"""What the fast decision path keeps or skips never hides a change: zones held for one decision,
vote hooks called without pluggy's machinery, votes built without their checks."""

from __future__ import annotations

from collections.abc import Generator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import anyio
import attrs
from camgate import AccessRequest, Camera, ConsentTerms, Gate, GeoPoint, Owner, Waiver
from camgate.geofence import Disc, Zone, ZoneBook, ZoneRole
from camgate.hookspecs import hookimpl
from camgate.models import ConsentRecord, Decision, Incident, Verdict, Vote, new_id
from camgate.policy import PolicyContext, TermsPolicy
from camgate.store import Store
from camgate.testing import camera_north_of

CENTRE = GeoPoint(32.2988, -90.1848)
WAIVER = Waiver("2026-1", "I share my camera on my terms.")


def _world(path: Path) -> tuple[Gate, str]:
    gate = Gate.open(path)
    gate.publish_waiver(WAIVER)
    gate.add_owner(Owner("alice", "Alice"))
    camera: Camera = attrs.evolve(
        camera_north_of("a1", "alice", CENTRE, 50.0),
        adapter="rtsp",
        source="rtsp://127.0.0.1/a1",
    )
    gate.add_camera(camera)
    gate.enrol(
        "alice", ["a1"], waiver_version=WAIVER.version, waiver_sha256=WAIVER.sha256,
        terms=ConsentTerms(scopes={"live"}),
    )  # fmt: skip
    return gate, gate.report_incident("shooting", CENTRE, 300.0).id


def _decide(gate: Gate, incident_id: str) -> Decision:
    request = AccessRequest(
        id=new_id("req"),
        incident_id=incident_id,
        camera_id="a1",
        scope="live",
        requested_by="officer",
        requested_at=gate.clock.now(),
    )
    return gate.decide(request)


def test_a_zone_another_writer_adds_is_seen_by_the_next_decision(tmp_path: Path) -> None:
    gate, incident_id = _world(tmp_path / "g.db")
    other = Store(tmp_path / "g.db")  # another writer, as another process
    try:
        assert _decide(gate, incident_id).allowed  # the fact cache and the zones are warm
        assert _decide(gate, incident_id).allowed
        clinic = camera_north_of("x", "alice", CENTRE, 50.0).position
        zone = Zone.new(ZoneRole.EXCLUSION, Disc(clinic, 10.0), name="Clinic", kind="clinic")
        ZoneBook(other).add(zone)
        refused = _decide(gate, incident_id)
        assert not refused.allowed
        assert "geofence.exclusion: camera is inside Clinic (clinic)" in refused.reasons
        (row,) = gate.survey(incident_id, record=False).rows
        assert str(row.outcome) == "denied"
        ZoneBook.for_store(gate.store).remove(zone.id)  # this process's own write
        assert _decide(gate, incident_id).allowed
        assert str(gate.survey(incident_id, record=False).rows[0].outcome) == "allowed"
    finally:
        other.close()
        anyio.run(gate.aclose)


class _Deny:
    @hookimpl
    def camgate_consent_vote(self, ctx: PolicyContext) -> Vote:
        return Vote("test.deny", Verdict.DENY, f"no to {ctx.camera.id}")


class _Wrapper:
    def __init__(self) -> None:
        self.calls = 0

    @hookimpl(wrapper=True)
    def camgate_consent_vote(self, ctx: PolicyContext) -> Generator[None, Any, Any]:
        self.calls += 1
        result = yield
        return [*result, Vote("test.wrapper", Verdict.ABSTAIN, "wrapped")]


def test_vote_hooks_keep_pluggys_order_wrappers_and_tracing(tmp_path: Path) -> None:
    gate, incident_id = _world(tmp_path / "g.db")
    try:
        plain = _decide(gate, incident_id)
        # Registered behind the facade's back: called at the next decision, last in order.
        gate.host.pm.register(_Deny(), name="deny")
        denied = _decide(gate, incident_id)
        assert denied.votes[: len(plain.votes)] == plain.votes
        assert denied.votes[len(plain.votes) :] == (Vote("test.deny", Verdict.DENY, "no to a1"),)
        wrapper = _Wrapper()
        gate.host.register(wrapper, "wrapper")  # a wrapper: pluggy runs the hook again
        wrapped = _decide(gate, incident_id)
        assert wrapper.calls == 1
        extra = Vote("test.wrapper", Verdict.ABSTAIN, "wrapped")
        assert extra in wrapped.votes
        assert tuple(v for v in wrapped.votes if v != extra) == denied.votes
        gate.host.unregister("wrapper")
        gate.host.pm.unregister(name="deny")
        assert _decide(gate, incident_id).votes == plain.votes
        traced: list[str] = []
        undo = gate.host.pm.add_hookcall_monitoring(
            lambda name, _impls, _kwargs: traced.append(name), lambda *_a: None
        )
        try:
            assert _decide(gate, incident_id).votes == plain.votes
        finally:
            undo()
        assert {"camgate_consent_vote", "camgate_geofence_vote"} <= set(traced)
    finally:
        anyio.run(gate.aclose)


def test_a_vote_built_without_checks_is_the_same_vote() -> None:
    known = Vote.known("terms.radius", Verdict.ALLOW, "12 m from the incident")
    checked = Vote("terms.radius", "allow", "12 m from the incident")
    assert known == checked and hash(known) == hash(checked) and repr(known) == repr(checked)
    assert known.verdict is Verdict.ALLOW


def test_an_end_date_is_written_in_its_own_time_zone_whatever_was_judged_before() -> None:
    utc = datetime(2026, 12, 7, 3, 30, tzinfo=UTC)
    chicago = utc.astimezone(timezone(timedelta(hours=-6)))  # the same moment: 21:30 the 6th
    assert utc == chicago
    now = utc - timedelta(days=1)
    request = AccessRequest(
        id=new_id("req"),
        incident_id="inc",
        camera_id="a1",
        scope="live",
        requested_by="officer",
        requested_at=now,
    )
    incident = Incident(id="inc", kind="shooting", position=CENTRE, reported_at=now, radius_m=300.0)
    reasons = []
    for ends_at in (utc, chicago):
        consent = ConsentRecord(
            id="cns",
            owner_id="alice",
            camera_ids=("a1",),
            waiver_version=WAIVER.version,
            waiver_sha256=WAIVER.sha256,
            accepted_at=now,
            terms=ConsentTerms(scopes={"live"}, ends_at=ends_at),
        )
        camera = camera_north_of("a1", "alice", CENTRE, 50.0)
        ctx = PolicyContext(request, camera, incident, consent, WAIVER, 50.0, now)
        votes = TermsPolicy().camgate_consent_vote(ctx) or []
        reasons += [v.reason for v in votes if v.policy == "terms.end-date"]
    assert reasons == ["consent runs until 2026-12-07", "consent runs until 2026-12-06"]
