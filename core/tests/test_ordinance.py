"""Ordinance rules (issue #23): the program's sunset and renewal, live-time caps, protected
activities — through the real gate on a real SQLite file, the CLI as a real process, and live
time watched from a real RTSP server (GStreamer)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import pytest
from camgate import AccessDenied, Camera, ConsentTerms, Gate, GeoPoint, Owner, Waiver
from camgate.errors import AnswerPending, RequestExpired, ValidationError
from camgate.models import Decision
from camgate.policy import AgencyPolicy
from camgate.rules import AgencyRules
from camgate.testing import ManualClock
from camgate_rtsp.testing.server import RtspTestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

if TYPE_CHECKING:
    from conftest import World

CENTRE = GeoPoint(32.2988, -90.1848)  # the conftest's
START = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)  # ManualClock's default start


def camgate(db: Path, *args: str, rules: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAMGATE_")}
    extra = ["--rules", str(rules)] if rules else []
    return subprocess.run(
        [sys.executable, "-m", "camgate.cli", "--db", str(db), *extra, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


def world_with(w: World, **rules: Any) -> World:
    """The conftest's world (a real gate over a real store) under these agency rules."""
    w.gate.host.unregister("camgate.agency")
    w.gate.host.register(AgencyPolicy(AgencyRules(name="Jackson RTCC", **rules)), "camgate.agency")
    w.enrol("alice", ["a1"])
    w.enrol("bob", ["b1"])
    return w


# ---------------------------------------------------------------------------- the rules file


def _toml(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "rules.toml"
    path.write_text("[agency]\nname = 'Jackson RTCC'\n" + body, encoding="utf-8")
    return path


def test_a_rules_file_with_every_ordinance_rule_loads(tmp_path: Path) -> None:
    rules = AgencyRules.from_toml(
        _toml(
            tmp_path,
            """
version = "2026-pilot"
purposes = ["investigation", "crowd-safety"]
program_start = 2026-03-01T00:00:00-06:00
program_end = 2026-04-15T00:00:00-05:00
[agency.live_caps]
per_incident_h = 24
per_officer_day_h = 8
per_camera_week_h = 10.5
[[agency.protected_activities]]
name = "lawful protest"
incident_kinds = ["Protest", "demonstration"]
purposes = ["investigation"]
""",
        )
    )
    assert rules.version == "2026-pilot"
    assert rules.program_end == datetime(2026, 4, 15, 5, 0, tzinfo=UTC)
    assert rules.live_caps.per_incident_s == 24 * 3600
    assert rules.live_caps.per_camera_week_s == 10.5 * 3600
    (protest,) = rules.protected_activities
    assert protest.incident_kinds == {"protest", "demonstration"}
    assert rules.program_state(datetime(2026, 3, 10, tzinfo=UTC)) == "running"
    assert rules.program_state(datetime(2026, 2, 10, tzinfo=UTC)) == "before"
    assert rules.program_state(datetime(2026, 4, 15, 5, 0, tzinfo=UTC)) == "ended"


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ("program_end = 2026-04-15\n", "program_end=2026-04-15: a date alone names no moment"),
        ("program_end = 2026-04-15T00:00:00\n", "give the time zone offset"),
        ("program_end = 'soon'\n", "program_end='soon': give a date and time"),
        (
            "program_start = 2026-05-01T00:00:00Z\nprogram_end = 2026-04-01T00:00:00Z\n",
            "is not after program_start",
        ),
        ("[agency.live_caps]\nper_day_h = 8\n", "live_caps: unknown keys ['per_day_h']"),
        ("[agency.live_caps]\nper_incident_h = -1\n", "live_caps.per_incident_h=-1"),
        ("[agency.live_caps]\nper_incident_h = 'a day'\n", "must be a number of hours"),
        ("live_caps = [1]\n", "live_caps=[1]: must be a table"),
        (
            "[[agency.protected_activities]]\nname = 'protest'\n",
            "needs name and incident_kinds",
        ),
        (
            "[[agency.protected_activities]]\nname = 'p'\nincident_kinds = []\n",
            "list at least one incident kind",
        ),
        (
            "[[agency.protected_activities]]\nname = 'p'\nincident_kinds = ['protest']\n"
            "purposes = ['crowd-watch']\n",
            "names purposes crowd-watch that are not in purposes",
        ),
        ("[agency.approval]\nrole = 'captain'\n", "approval: needs role and approvers"),
        (
            "[agency.approval]\nrole = 'captain'\napprovers = ['a']\ntimeout_min = 0\n",
            "approval.timeout_min=0: must be a number above zero",
        ),
        (
            "[agency.approval]\nrole = 'captain'\napprovers = ['../x']\n",
            "approval.approvers",
        ),
        (
            "[agency.approval]\nrole = 'captain'\napprovers = ['a']\nscopes = ['video']\n",
            "approval.scopes: unknown scopes ['video']",
        ),
    ],
)
def test_bad_ordinance_rules_are_clear_errors(tmp_path: Path, body: str, words: str) -> None:
    path = _toml(tmp_path, body)
    with pytest.raises(ValidationError, match="agency rules in") as bad:
        AgencyRules.from_toml(path)
    assert words in str(bad.value)
    # the CLI: one line, exit 1, nothing created
    db = tmp_path / "g.db"
    done = camgate(db, "consent", "program", rules=path)
    assert done.returncode == 1
    assert words in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not db.exists()


# ---------------------------------------------------------------------------- sunset and renewal


def _alice_enrolled(gate: Gate) -> Gate:
    """``gate`` (opened with its key file, for the CLI) with alice's camera a1 enrolled for
    snapshots."""
    waiver = gate.publish_waiver(Waiver("w1", "I agree."))
    gate.add_owner(Owner("alice", "Alice"))
    gate.add_camera(Camera("a1", "rtsp", "rtsp://127.0.0.1:9/a1", "alice", CENTRE))
    gate.enrol(
        "alice", ["a1"], waiver_version="w1", waiver_sha256=waiver.sha256,
        terms=ConsentTerms(scopes=["snapshot"]),
    )  # fmt: skip
    return gate


def test_after_the_program_ends_every_request_is_refused_and_owners_are_told_once(
    tmp_path: Path, world: World
) -> None:
    end = START + timedelta(hours=2)
    w = world_with(world, version="pilot-1", program_end=end)
    _sunset_in_process(w, end)
    assert len(list(w.gate.audit.records("program.notice"))) == 1
    assert w.gate.audit.verify().ok


def _sunset_in_process(w: World, end: datetime) -> None:
    # a grant never outlives the program
    signed = w.request(duration_s=4 * 3600)
    assert signed.grant.expires_at == end
    w.clock.advance(2 * 3600)
    reasons = w.refusal("b1", "snapshot")
    assert reasons == {
        "agency.program": "the Jackson RTCC program (rules version pilot-1) ended on "
        "2026-11-21 14:00+00:00; every request is refused unless the program is renewed"
    }
    told = [n for n in w.gate.store.notices("alice") if n["event"] == "program-ended"]
    assert len(told) == 1 and "ended on 2026-11-21T14:00:00+00:00" in told[0]["reasons"][0]
    assert [n["event"] for n in w.gate.store.notices("bob")].count("program-ended") == 1
    # once: more requests, another call, another process — no second notice
    w.refusal("a1")
    assert w.gate.program_notices() == []


def test_a_renewal_is_a_new_rules_version_that_owners_see(tmp_path: Path) -> None:
    db = tmp_path / "g.db"
    first = _toml(tmp_path, "version = 'pilot-1'\nprogram_end = 2026-01-15T00:00:00-06:00\n")
    _alice_enrolled(Gate.open(db)).store.close()
    done = camgate(db, "consent", "program", rules=first)
    assert json.loads(done.stdout)["notices_sent"] == ["program-ended"], done.stderr
    # told once, whichever process looks again
    assert json.loads(camgate(db, "consent", "program", rules=first).stdout)["notices_sent"] == []
    renewed = tmp_path / "renewed.toml"
    renewed.write_text(
        "[agency]\nname = 'Jackson RTCC'\nversion = 'renewal-1'\n"
        "program_start = 2026-11-01T00:00:00-05:00\nprogram_end = 2027-11-01T00:00:00-05:00\n",
        encoding="utf-8",
    )
    status = json.loads(camgate(db, "consent", "program", rules=renewed).stdout)
    assert status == {
        "agency": "Jackson RTCC",
        "version": "renewal-1",
        "program_start": "2026-11-01T00:00:00-05:00",
        "program_end": "2027-11-01T00:00:00-05:00",
        "state": "running",
        "notices_sent": ["program-renewed"],
    }
    assert json.loads(camgate(db, "consent", "program", rules=renewed).stdout)["notices_sent"] == []
    gate = Gate.open(db)
    try:
        (notice,) = [n for n in gate.store.notices("alice") if n["event"] == "program-renewed"]
        assert "renewed its camera program as rules version renewal-1" in notice["reasons"][0]
        assert "replacing version pilot-1" in notice["reasons"][0]
    finally:
        gate.store.close()


def test_before_the_program_starts_nothing_is_reached(world: World) -> None:
    w = world_with(world, program_start=START + timedelta(days=1))
    assert "starts on 2026-11-22 12:00+00:00" in w.refusal()["agency.program"]
    w.clock.advance(86400)
    w.incident = w.gate.report_incident("shooting", CENTRE, 1000.0)
    assert w.request().grant.camera_id == "a1"


# ---------------------------------------------------------------------------- protected activity


@pytest.fixture
def protest(world: World) -> World:
    return world_with(
        world,
        purposes=["investigation", "missing-person", "crowd-safety"],
        protected_activities=[
            {"name": "lawful protest", "incident_kinds": ["protest"], "purposes": None},
            {
                "name": "religious service",
                "incident_kinds": ["worship"],
                "purposes": ["investigation"],
            },
        ],
    )


def test_a_protected_activity_is_refused_whatever_the_purpose(protest: World) -> None:
    protest.incident = protest.gate.report_incident("Protest", CENTRE, 1000.0)
    for purpose in ("investigation", "crowd-safety", "missing-person, investigation"):
        reasons = protest.refusal(purpose=purpose)
        assert set(reasons) == {"agency.protected-activity"}
        assert "(lawful protest): a protected activity" in reasons["agency.protected-activity"]
    protest.incident = protest.gate.report_incident("worship", CENTRE, 1000.0)
    assert (
        protest.refusal(purpose="investigation")["agency.protected-activity"]
        == "Jackson RTCC does not use cameras for investigation of worship incidents "
        "(religious service): a protected activity"
    )
    assert protest.request(purpose="missing-person").grant.camera_id == "a1"


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    spelling=st.sampled_from(
        [
            "PROTEST",
            "protest",
            "\uff30\uff52\uff4f\uff54\uff45\uff53\uff54",
            "pro\u00adtest",
            "pro\u200btest",
            " protest ",
        ]
    )
)
def test_a_protected_kind_is_not_dodged_by_spelling(protest: World, spelling: str) -> None:
    protest.incident = protest.gate.report_incident(spelling, CENTRE, 1000.0)
    assert "agency.protected-activity" in protest.refusal(purpose="crowd-safety")


@settings(max_examples=200, deadline=None)
@given(kind=st.text(max_size=30), purpose=st.text(max_size=30))
def test_protected_activity_check_never_crashes(kind: str, purpose: str) -> None:
    rules = AgencyRules(
        purposes=["investigation"],
        protected_activities=[{"name": "p", "incident_kinds": ["protest"]}],
    )
    try:
        found = rules.protected_activity_of(kind, purpose)
    except ValidationError:
        return  # a purpose naming nothing: a clear error, as for any request
    assert all("(p)" in f for f in found)


# ---------------------------------------------------------------------------- live-time caps

CAPS = {"per_incident_h": 1, "per_officer_day_h": 0.5, "per_camera_week_h": 2}


def _open(db: Path, clock: ManualClock) -> Gate:
    return Gate.open(db, clock=clock, rules=AgencyRules(name="Jackson RTCC", live_caps=CAPS))


async def _watch_then_refuse(db: Path, url: str, clock: ManualClock) -> dict[str, Any]:
    gate = _open(db, clock)
    try:
        waiver = gate.publish_waiver(Waiver("w1", "I agree."))
        gate.add_owner(Owner("alice", "Alice"))
        for cam in ("p1", "p2"):
            gate.add_camera(Camera(cam, "rtsp", url, "alice", CENTRE))
        gate.enrol(
            "alice", ["p1", "p2"], waiver_version="w1", waiver_sha256=waiver.sha256,
            terms=ConsentTerms(scopes=["live", "snapshot"]),
        )  # fmt: skip
        inc = gate.report_incident("shooting", CENTRE, 500.0)

        async def ask(cam: str, minutes: float, by: str = "o1") -> Any:
            return await gate.request_access(
                inc.id, cam, "live", requested_by=by, duration_s=minutes * 60
            )

        signed = await ask("p1", 20)
        # Issued, not yet watched: the whole 20 min are held against every cap.
        with pytest.raises(AccessDenied) as early:
            await ask("p2", 15)
        (why,) = early.value.decision.reasons
        assert why == (
            "agency.live-time: Jackson RTCC allows 30 min of live view for o1 in the last "
            "24 h; 20 min used, 10 min left; 15 min asked"
        )
        async with await gate.edge.open_live("p1", signed) as stream:
            got = 0
            async for _packet in stream:
                got += 1
                if got == 3:
                    break
            clock.advance(300)  # five minutes watched, then the officer closes the stream
        # Only the five minutes actually watched count now.
        second = await ask("p2", 25)
        assert second.grant.scope == "live"
        with pytest.raises(AccessDenied) as refused:
            await ask("p1", 1)
        allowance = gate.live_ledger.allowance(
            gate.rules.live_caps, incident_id=inc.id, officer="o1", camera_id="p1",
            now=clock.now(),
        )  # fmt: skip
        return {
            "incident": inc.id,
            "refused": refused.value.decision.request_id,
            "reasons": refused.value.decision.reasons,
            "caps": allowance.caps,
        }
    finally:
        await gate.aclose()


def test_live_time_is_counted_from_what_was_watched_and_survives_a_restart(
    tmp_path: Path, server: RtspTestServer
) -> None:
    db = tmp_path / "g.db"
    clock = ManualClock()
    seen = anyio.run(_watch_then_refuse, db, server.url("/cam1"), clock)
    assert seen["caps"] == (
        ("this incident", 3600.0, 1800.0),  # 5 min watched + 25 min granted, not yet watched
        ("o1 in the last 24 h", 1800.0, 1800.0),
        ("this camera in the last 7 days", 7200.0, 300.0),
    )
    assert seen["reasons"] == [
        "agency.live-time: Jackson RTCC allows 30 min of live view for o1 in the last 24 h; "
        "30 min used, 0 s left; 1 min asked"
    ]
    # A new gate (a restart) reads the same use back from the audit log, and its fast and
    # reference decisions agree on it.
    gate = _open(db, clock)
    try:
        again = gate.live_ledger.allowance(
            gate.rules.live_caps, incident_id=seen["incident"], officer="o1", camera_id="p1",
            now=clock.now(),
        )  # fmt: skip
        assert again.caps == seen["caps"]
        request = gate.store.get_request(seen["refused"])
        assert gate.decide(request, at=clock.now()) == gate.decide(
            request, at=clock.now(), cached=False
        )
        clock.advance(26 * 60)  # the second grant ran out unwatched: its time is free again
        assert gate.live_ledger.allowance(
            gate.rules.live_caps,
            incident_id=seen["incident"],
            officer="o1",
            camera_id="p1",
            now=clock.now(),
        ).remaining_s == pytest.approx(1500.0)
    finally:
        gate.store.close()
    done = camgate(db, "consent", "explain", seen["refused"])
    assert done.returncode == 0, done.stderr
    assert "30 min used, 0 s left; 1 min asked (agency.live-time)" in done.stdout


# ---------------------------------------------------------------------- second-person approval

APPROVAL = {
    "role": "captain",
    "approvers": ["cpt-ross", "cpt-lee", "officer-7"],
    "timeout_min": 30,
    "scopes": ["live"],
}


@pytest.fixture
def captains(world: World) -> World:
    return world_with(world, approval=APPROVAL)


def _held(w: World, cam: str = "a1", scope: str = "live") -> str:
    with pytest.raises(AnswerPending, match="waits for a captain's approval until") as held:
        w.request(cam, scope)
    return held.value.pending.request_id


def _approve(
    w: World, request_id: str, by: str, yes: bool = True, reason: str = "shots fired"
) -> Any:
    return anyio.run(lambda: w.gate.approve(request_id, approver=by, approved=yes, reason=reason))


def test_a_live_request_waits_for_a_captain_other_than_the_requester(captains: World) -> None:
    w = captains
    assert w.request("a1", "snapshot").grant.scope == "snapshot"  # no approval for snapshots
    rid = _held(w)
    assert w.gate.store.grant_for_request(rid) is None
    before = w.state()
    for by, reason, words in [
        ("officer-7", "ok", "a second person approves"),  # the requester, though an approver
        ("sgt-pepper", "ok", "is not among those who approve as captain"),
        ("cpt-ross", "  ", "state why"),
    ]:
        with pytest.raises(ValidationError, match=words):
            _approve(w, rid, by, reason=reason)
    assert w.state() == before  # nothing recorded
    decision = _approve(w, rid, "cpt-ross", reason="shots fired, suspect fleeing north")
    assert decision.allowed
    (vote,) = [v for v in decision.votes if v.policy == "agency.approval"]
    assert vote.reason == "approved by captain cpt-ross: shots fired, suspect fleeing north"
    grant, _token = w.gate.store.grant_for_request(rid)
    assert grant.approved_by == "captain cpt-ross"
    assert grant.approval_reason == "shots fired, suspect fleeing north"
    (record,) = w.gate.audit.records("approval.answered")
    assert record.body["approver"] == "cpt-ross" and record.body["answer"] == "yes"
    (issued,) = [r for r in w.gate.audit.records("grant.issued") if r.body["request_id"] == rid]
    assert issued.body["approved_by"] == "captain cpt-ross"
    with pytest.raises(ValidationError, match="already answered"):
        _approve(w, rid, "cpt-lee")


def test_a_refusal_and_a_missed_deadline_both_mean_no(captains: World) -> None:
    w = captains
    rid = _held(w)
    decision = _approve(w, rid, "cpt-lee", yes=False, reason="no exigency shown")
    assert decision.reasons == [
        "agency.approval: captain cpt-lee did not approve: no exigency shown"
    ]
    late = _held(w)
    w.clock.advance(30 * 60)
    with pytest.raises(RequestExpired):
        _approve(w, late, "cpt-ross")
    refused = Decision.from_json(w.gate.store.decision_json(late))
    assert refused.reasons == [
        "agency.approval: no captain approved it by 2026-11-21T12:30:00+00:00, which counts as no"
    ]
    assert w.gate.store.grant_for_request(late) is None
    events = [n["event"] for n in w.gate.store.notices("alice")]
    assert events.count("refused") == 2  # the owner hears of both refusals


def test_a_waiting_officer_gets_the_grant_when_a_captain_approves(captains: World) -> None:
    w = captains

    async def scene() -> Any:
        got: dict[str, Any] = {}
        async with anyio.create_task_group() as tg:

            async def officer() -> None:
                got["grant"] = await w.gate.request_access(
                    w.incident.id, "a1", "live", requested_by="officer-7"
                )

            tg.start_soon(officer)
            # the officer's request is held in a worker thread: wait for that condition
            while not w.gate.store.open_approval_waits():  # noqa: ASYNC110
                await anyio.sleep(0.01)
            (wait,) = w.gate.approval_waits()
            await w.gate.approve(
                wait["request"]["id"], approver="cpt-ross", approved=True, reason="armed suspect"
            )
        return got["grant"]

    signed = anyio.run(scene)
    assert signed.grant.approved_by == "captain cpt-ross"


def test_after_approval_an_ask_first_owner_is_asked(captains: World) -> None:
    w = captains
    w.enrol("bob", ["b1"], mode="ask")
    rid = _held(w, "b1")
    assert w.gate.pending("bob") == []  # the owner is not bothered before a captain approves
    assert _approve(w, rid, "cpt-ross").allowed
    (pending,) = w.gate.pending("bob")
    assert pending.request_id == rid
    decision = anyio.run(lambda: w.gate.answer(rid, True, owner_id="bob"))
    assert decision.allowed
    assert w.gate.store.grant_for_request(rid)[0].approved_by == "captain cpt-ross"


def test_approval_from_the_cli(tmp_path: Path) -> None:
    db = tmp_path / "g.db"
    rules = _toml(
        tmp_path,
        "[agency.approval]\nrole = 'captain'\napprovers = ['cpt-ross']\ntimeout_min = 60\n"
        "emergency_kinds = ['shooting']\n",
    )
    gate = _alice_enrolled(Gate.open(db, rules=AgencyRules.from_toml(rules)))
    burglary = gate.report_incident("burglary", CENTRE, 500.0).id
    gate.store.close()
    asked = camgate(
        db, "request", "--incident", burglary, "--camera", "a1", "--scope", "snapshot",
        "--by", "o-17", "--no-wait", "--out", str(tmp_path), rules=rules,
    )  # fmt: skip
    assert asked.returncode == 4, asked.stderr
    rid = json.loads(asked.stdout)["request"]
    listed = json.loads(camgate(db, "consent", "approvals", rules=rules).stdout)
    assert [(a["request"], a["requested_by"], a["role"]) for a in listed] == [
        (rid, "o-17", "captain")
    ]
    assert listed[0]["why"] == [
        "needs approval by a captain other than o-17 (outside declared emergencies (shooting))"
    ]
    explained = camgate(db, "consent", "explain", rid)
    assert "waiting for a captain's approval until" in explained.stdout
    done = camgate(
        db, "consent", "approve", rid, "--by", "cpt-ross", "--yes", "--reason", "stolen car seen",
        rules=rules,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["allowed"] is True
    explained = camgate(db, "consent", "explain", rid)
    assert "approved by captain cpt-ross: stolen car seen" in explained.stdout


# ---------------------------------------------------------------------- the annual report


def test_the_annual_report_has_the_ordinance_section(captains: World) -> None:
    from camgate.report import Period, build_report, render_html

    w = captains
    w.request("a1", "snapshot")  # granted, no approval needed
    _approve(w, _held(w), "cpt-ross", reason="armed robbery in progress")  # granted
    _approve(w, _held(w), "cpt-lee", yes=False, reason="no exigency")  # refused
    late = _held(w)
    w.clock.advance(31 * 60)
    w.gate.expire_approvals()  # no answer: refused
    assert w.gate.store.grant_for_request(late) is None
    w.refusal("a1", "snapshot", purpose="face-recognition")  # not in the vocabulary
    records = list(w.gate.audit.records())
    year = Period.parse("2026")
    section = build_report(records, year, k=1)["ordinance"]
    assert section["approvals"]["cells"]["answers"] == {"yes": 1, "no": 1, "expired": 1}
    assert section["refusals_by_rule"]["cells"]["refusals"] == {
        "agency.approval": 2,
        "agency.purpose": 1,
    }
    assert section["uses_by_purpose"]["cells"]["investigation"] == {
        "granted": 2,
        "refused": 2,
        "no-answer": 0,
        "waiting": 0,
    }
    assert section["owners_notified"] == 1  # alice, the only owner asked about
    assert section["program_notices"] == {}
    # small counts are suppressed as in the monthly report
    published = build_report(records, year, k=5)
    assert published["ordinance"]["approvals"]["cells"]["answers"]["yes"] is None
    assert published["ordinance"]["owners_notified"] is None
    page = render_html(published)
    assert "Surveillance-use ordinance" in page and "Approvals by a second person" in page
    assert "alice" not in page.lower()  # counts only: no owner named
