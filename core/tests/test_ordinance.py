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

import pytest
from camgate import Camera, ConsentTerms, Gate, GeoPoint, Owner, Waiver
from camgate.errors import ValidationError
from camgate.policy import AgencyPolicy
from camgate.rules import AgencyRules
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
    gate = Gate.open(db)
    waiver = gate.publish_waiver(Waiver("w1", "I agree."))
    gate.add_owner(Owner("alice", "Alice"))
    gate.add_camera(Camera("a1", "rtsp", "rtsp://127.0.0.1:9/a1", "alice", CENTRE))
    gate.enrol(
        "alice", ["a1"], waiver_version="w1", waiver_sha256=waiver.sha256,
        terms=ConsentTerms(scopes=["snapshot"]),
    )  # fmt: skip
    gate.store.close()
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
