"""The owner's terms, the agency's rules, and the ask-first workflow, each through the real gate.

Every test builds a real Gate over a real SQLite file; only time (ManualClock) and the vendor's
camera (an adapter that declares its capabilities) are replaced.
"""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import pytest
from camgate import (
    AccessDenied,
    CameraClass,
    ConsentTerms,
    NotFound,
    PluginError,
    ValidationError,
)
from camgate.codec import load
from camgate.errors import AnswerPending, RequestExpired
from camgate.hookspecs import hookimpl
from camgate.notify import OwnerNotice
from camgate.rules import AgencyRules

if TYPE_CHECKING:
    from conftest import World

# ---------------------------------------------------------------------------- the owner's terms


def test_old_records_without_the_new_terms_still_load(world: World) -> None:
    world.enrol("alice", ["a1"], scopes=["live"])
    # a record written by the foundation: only scopes and max_session_s
    world.gate.store.query(
        "UPDATE consents SET doc=json_remove(json_remove(doc, '$.terms.mode'), '$.terms.ends_at')"
        if world.gate.store.engine == "sqlite"
        else "UPDATE consents SET doc=(doc::jsonb #- '{terms,mode}' #- '{terms,ends_at}')::text"
    )
    record = world.gate.store.active_consent("a1")
    assert record is not None and record.terms.mode == "pre-authorised"
    assert world.request().grant.camera_id == "a1"


def test_incident_kind_term(world: World) -> None:
    world.enrol("alice", ["a1"], incident_kinds=["burglary"])
    reasons = world.refusal()
    assert reasons == {
        "terms.incident-kind": "the owner does not accept shooting incidents (accepted: burglary)"
    }


def test_radius_term(world: World) -> None:
    world.enrol("alice", ["a1"], max_radius_m=20.0)
    assert "the owner allows at most 20 m" in world.refusal()["terms.radius"]
    world.enrol("alice", ["a1"], max_radius_m=100.0)
    assert world.request().grant.camera_id == "a1"


def test_quiet_hours_are_in_the_owners_time_zone(world: World) -> None:
    # 12:00 UTC is 06:00 in Chicago (CST, November): inside 22:00-07:00 there, not in UTC
    world.enrol("alice", ["a1"], quiet_hours=["22:00", "07:00"])
    assert "America/Chicago" in world.refusal()["terms.quiet-hours"]
    world.clock.advance(3600)  # 07:00 in Chicago: quiet hours are over
    signed = world.request(duration_s=7200)
    # the grant ends when the next quiet hours would begin? no: 22:00 is 15 h away; 2 h it is
    assert signed.grant.expires_at - signed.grant.issued_at == timedelta(hours=2)


def test_a_grant_ends_when_a_term_stops_holding(world: World) -> None:
    world.clock.advance(13 * 3600 + 1800)  # 01:30 UTC, 19:30 in Chicago
    world.incident = world.gate.report_incident("shooting", world.incident.position, 1000.0)
    world.enrol("alice", ["a1"], quiet_hours=["20:00", "07:00"])
    signed = world.request(duration_s=7200)
    assert signed.grant.expires_at - signed.grant.issued_at == timedelta(minutes=30)
    world.enrol("bob", ["b1"], ends_at=world.clock.now() + timedelta(minutes=10))
    signed = world.request("b1", duration_s=7200)
    assert signed.grant.expires_at - signed.grant.issued_at == timedelta(minutes=10)
    world.clock.advance(600)
    assert "ended on" in world.refusal("b1")["terms.end-date"]


def test_lookback_term(world: World) -> None:
    world.enrol("alice", ["a1"], max_lookback_s=3600.0)
    now = world.clock.now()
    old = (now - timedelta(hours=3), now - timedelta(hours=2))
    assert "from the last 1 h only" in world.refusal(scope="recorded", window=old)["terms.lookback"]
    recent = (now - timedelta(minutes=30), now - timedelta(minutes=10))
    assert world.request(scope="recorded", window=recent).grant.scope == "recorded"


def test_max_session_reason_is_plain(world: World) -> None:
    world.enrol("alice", ["a1"], max_session_s=600.0)
    assert world.refusal(duration_s=3600)["terms.max-session"] == (
        "1 h asked; the owner allows at most 10 min"
    )


# ---------------------------------------------------------------------------- the agency's rules


def test_banned_purpose_is_refused(jackson: World) -> None:
    jackson.enrol("alice", ["a1"])
    reasons = jackson.refusal(purpose="investigation, face_recognition")
    assert reasons == {"agency.purpose": "face-recognition is banned by Jackson RTCC"}


def test_live_view_only_for_listed_kinds(jackson: World) -> None:
    jackson.enrol("alice", ["a1"])
    jackson.incident = jackson.gate.report_incident("Burglary", jackson.incident.position, 1000.0)
    assert "live view only for: armed-robbery, shooting" in jackson.refusal()["agency.live-kinds"]
    assert jackson.request(scope="snapshot").grant.scope == "snapshot"


def test_sensitive_place_is_never_reachable(jackson: World) -> None:
    jackson.camera("a2", "alice", 310.0)
    jackson.enrol("alice", ["a2"])
    assert "women's clinic" in jackson.refusal("a2", scope="snapshot")["agency.sensitive-place"]


def test_enrolment_caps_per_class(jackson: World) -> None:
    for i in range(6):
        jackson.camera(f"p{i}", "bob", 10.0 * i)
        jackson.camera(f"c{i}", "bob", 10.0 * i, cls="city")
    jackson.enrol("bob", ["b1", "p0", "p1", "p2"])
    jackson.enrol("bob", ["c0", "c1", "c2", "c3", "c4"])
    before = jackson.state()
    with pytest.raises(ValidationError, match="caps enrolment at 5 private cameras"):
        jackson.enrol("bob", ["p3", "p4"])
    with pytest.raises(ValidationError, match="5 city"):
        jackson.enrol("bob", ["c5"])
    assert jackson.state() == before
    jackson.enrol("bob", ["p3", "b1"])  # b1 is enrolled already: still 5
    anyio.run(jackson.gate.revoke, "bob")
    jackson.enrol("bob", ["p4", "p5", "c5"])
    assert CameraClass("city") in {c.camera_class for c in jackson.gate.store.enrolled_cameras()}


def test_rules_from_toml(tmp_path: Path) -> None:
    path = tmp_path / "rules.toml"
    path.write_text(
        '[agency]\nname = "Jackson RTCC"\nbanned_purposes = ["face recognition"]\n'
        "[agency.enrolment_caps]\ncity = 5\nprivate = 5\n"
        '[[agency.sensitive_places]]\nname = "clinic"\nlat = 32.3\nlon = -90.18\nradius_m = 75\n'
    )
    rules = AgencyRules.from_toml(path)
    assert rules.banned_purposes == {"face-recognition"}
    assert rules.cap(CameraClass.CITY) == 5 and rules.sensitive_places[0].radius_m == 75
    path.write_text('[agency]\nbanned = ["x"]\n')
    with pytest.raises(ValidationError, match="unknown keys \\['banned'\\]"):
        AgencyRules.from_toml(path)


# ---------------------------------------------------------------------------- ask first


def test_ask_first_holds_the_request_and_tells_the_owner(world: World) -> None:
    world.enrol("alice", ["a1"], mode="ask", ask_timeout_s=120.0)
    with pytest.raises(AnswerPending) as held:
        world.request(duration_s=300, purpose="investigation", note="find the getaway car")
    pending = held.value.pending
    assert pending.deadline - pending.asked_at == timedelta(seconds=120)
    notice = world.gate.store.notices("alice")[-1]
    assert notice["event"] == "ask" and notice["request_id"] == pending.request_id

    text = load(OwnerNotice, notice).summary()
    assert "officer-7 asks for live access to camera a1 for a shooting incident 50 m away" in text
    assert 'for 300 s (purpose: investigation) (note: "find the getaway car")' in text
    assert "no answer means no" in text
    assert world.gate.store.grant_for_request(pending.request_id) is None
    assert [p.request_id for p in world.gate.pending("alice")] == [pending.request_id]


def test_yes_issues_the_grant_to_the_waiting_caller(world: World) -> None:
    world.enrol("alice", ["a1"], mode="ask")

    async def main() -> None:
        got: list[Any] = []
        async with anyio.create_task_group() as tg:

            async def ask() -> None:
                got.append(
                    await world.gate.request_access(
                        world.incident.id, "a1", "live", requested_by="officer-7"
                    )
                )

            tg.start_soon(ask)
            while not world.gate.pending("alice"):  # noqa: ASYNC110 - a condition across threads
                await anyio.sleep(0.01)
            (pending,) = world.gate.pending("alice")
            decision = await world.gate.answer(pending.request_id, True, owner_id="alice")
            assert decision.allowed
        assert got[0].grant.request_id == pending.request_id

    anyio.run(main)
    events = [n["event"] for n in world.gate.store.notices("alice")]
    assert events == ["ask", "granted"]


class _SlowOutbox:
    """The outbox, but each notice takes ``delay`` seconds to accept (or is declined).

    The answering side stores its decision, then tells the owner, then issues the grant: a
    slow notifier widens the moment in which a waiter sees the request answered but not yet
    concluded.
    """

    def __init__(self, world: World, delay: float, accept: bool = True) -> None:
        self.inner = world.gate.host.pm.get_plugin("camgate.outbox")
        self.delay, self.accept = delay, accept

    @hookimpl
    def camgate_notify_owner(self, notice: OwnerNotice) -> bool:
        if notice.event == "granted":
            time.sleep(self.delay)
            if not self.accept:
                return False
        return bool(self.inner.camgate_notify_owner(notice))


def _answer_from_a_thread(world: World, rid: str, outbox: _SlowOutbox) -> dict[str, Any]:
    """Answer yes in a worker thread while this side waits; what each side ended with."""
    world.gate.host.pm.unregister(name="camgate.outbox")
    world.gate.host.pm.register(outbox, name="camgate.outbox")
    out: dict[str, Any] = {}

    async def main() -> None:
        async def owner() -> None:
            try:
                out["answer"] = await world.gate.answer(rid, True)
            except Exception as exc:
                out["answer"] = exc

        async def officer() -> None:
            try:
                out["waiter"] = await world.gate.wait_for_answer(rid, poll_s=0.01)
            except Exception as exc:
                out["waiter"] = exc

        async with anyio.create_task_group() as tg:
            tg.start_soon(officer)
            await anyio.sleep(0.05)
            tg.start_soon(owner)

    anyio.run(main)
    return out


def test_a_waiter_is_not_told_no_while_the_yes_is_being_concluded(world: World) -> None:
    world.enrol("alice", ["a1"], mode="ask")
    with pytest.raises(AnswerPending) as held:
        world.request()
    rid = held.value.pending.request_id
    out = _answer_from_a_thread(world, rid, _SlowOutbox(world, 0.5))
    assert out["answer"].allowed
    assert not isinstance(out["waiter"], Exception), out["waiter"]
    assert out["waiter"].grant.request_id == rid


def test_a_waiter_is_told_when_the_answering_side_never_concludes(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("camgate.gate.asking.CONCLUDE_GRACE_S", 0.3)
    world.enrol("alice", ["a1"], mode="ask")
    with pytest.raises(AnswerPending) as held:
        world.request()
    rid = held.value.pending.request_id
    out = _answer_from_a_thread(world, rid, _SlowOutbox(world, 0.0, accept=False))
    assert isinstance(out["answer"], PluginError) and "no notifier accepted" in str(out["answer"])
    assert isinstance(out["waiter"], PluginError)
    assert "answered (yes) but no decision or grant followed" in str(out["waiter"])


def test_no_refuses_and_explains(world: World) -> None:
    world.enrol("alice", ["a1"], mode="ask")
    with pytest.raises(AnswerPending) as held:
        world.request()
    rid = held.value.pending.request_id
    decision = anyio.run(world.gate.answer, rid, False)
    assert decision.reasons == ["terms.mode: the owner said no to this request"]
    with pytest.raises(AccessDenied, match="the owner said no"):
        anyio.run(world.gate.wait_for_answer, rid)


def test_a_yes_is_judged_again_when_given(world: World) -> None:
    world.enrol("alice", ["a1"], mode="ask")
    with pytest.raises(AnswerPending) as held:
        world.request()
    world.gate.close_incident(world.incident.id)
    decision = anyio.run(world.gate.answer, held.value.pending.request_id, True)
    assert not decision.allowed and "core.incident: the incident is closed" in decision.reasons


def test_no_answer_by_the_deadline_is_a_no_and_a_late_answer_is_refused(world: World) -> None:
    world.enrol("alice", ["a1"], mode="ask", ask_timeout_s=60.0)
    with pytest.raises(AnswerPending) as held:
        world.request()
    rid = held.value.pending.request_id
    world.clock.advance(60)
    before = world.state()
    with pytest.raises(RequestExpired, match="counts as no; the answer was not recorded"):
        anyio.run(world.gate.answer, rid, True)
    after = world.state()
    # the expiry (a consequence of time) is recorded once; the late answer is not
    assert world.gate.store.get_pending(rid).outcome == "expired"
    with pytest.raises(RequestExpired):
        anyio.run(world.gate.answer, rid, True)
    assert world.state() == after != before
    with pytest.raises(AccessDenied, match="did not answer by"):
        anyio.run(world.gate.wait_for_answer, rid)
    assert world.gate.store.grant_for_request(rid) is None


def test_revocation_refuses_held_requests_at_once(world: World) -> None:
    world.enrol("alice", ["a1"], mode="ask")
    with pytest.raises(AnswerPending) as held:
        world.request()
    rid = held.value.pending.request_id
    anyio.run(world.gate.revoke, "alice")
    with pytest.raises(AccessDenied, match="core.opt-in: the owner revoked consent"):
        anyio.run(world.gate.wait_for_answer, rid)
    with pytest.raises(ValidationError, match="refused when the owner revoked consent"):
        anyio.run(world.gate.answer, rid, True)
    assert world.gate.pending() == []


def test_expire_pending_settles_what_nobody_waits_for(world: World) -> None:
    world.enrol("alice", ["a1"], mode="ask", ask_timeout_s=30.0)
    with pytest.raises(AnswerPending) as held:
        world.request()
    assert world.gate.expire_pending() == []
    world.clock.advance(31)
    assert world.gate.expire_pending() == [held.value.pending.request_id]
    assert world.gate.expire_pending() == []
    assert [n["event"] for n in world.gate.store.notices("alice")] == ["ask", "refused"]


# ---------------------------------------------------------------------------- bad input


def test_bad_input_is_a_clear_error_and_changes_nothing(world: World) -> None:
    world.enrol("alice", ["a1"], mode="ask")
    with pytest.raises(AnswerPending) as held:
        world.request()
    rid = held.value.pending.request_id
    before = world.state()
    sha = world.waiver.sha256
    cases: list[tuple[type[Exception], str, Any]] = [
        (NotFound, "no camera 'nope'", lambda: world.enrol("alice", ["nope"])),
        (ValidationError, "does not belong", lambda: world.enrol("alice", ["b1"])),
        (ValidationError, "names a camera twice", lambda: world.enrol("alice", ["a1", "a1"])),
        (
            ValidationError,
            "mode='sometimes'",
            lambda: world.enrol("alice", ["a1"], mode="sometimes"),
        ),
        (ValidationError, "quiet_hours", lambda: world.enrol("alice", ["a1"], quiet_hours=["9"])),
        (ValidationError, "max_radius_m", lambda: world.enrol("alice", ["a1"], max_radius_m=-1)),
        (
            ValidationError,
            "already passed",
            lambda: world.enrol("alice", ["a1"], ends_at=world.clock.now()),
        ),
        (
            ValidationError,
            "SHA-256 does not match",
            lambda: world.gate.enrol(
                "alice",
                ["a1"],
                waiver_version="w1",
                waiver_sha256=sha[::-1],
                terms=ConsentTerms(scopes=["live"]),
            ),
        ),
        (NotFound, "never made", lambda: anyio.run(world.gate.answer, "req_nope", True)),
        (
            ValidationError,
            "not for a camera of 'bob'",
            lambda: anyio.run(lambda: world.gate.answer(rid, True, owner_id="bob")),
        ),
        (ValidationError, "True \\(yes\\) or False", lambda: anyio.run(world.gate.answer, rid, 1)),
        (NotFound, "no camera 'nope'", lambda: world.request("nope")),
    ]
    for error, message, call in cases:
        with pytest.raises(error, match=message):
            call()
        assert world.state() == before, message
    anyio.run(world.gate.answer, rid, False)
    after = world.state()
    with pytest.raises(ValidationError, match="already answered \\(no\\)"):
        anyio.run(world.gate.answer, rid, True)
    assert world.state() == after
