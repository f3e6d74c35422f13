"""`camgate consent answer`, `explain` and `request --no-wait`, run as real processes on one store.

The owner answers from another process while the officer's side waits: the store is shared.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import anyio
import pytest
from camgate import AccessDenied, Camera, ConsentTerms, Gate, GeoPoint, Owner, Waiver

CENTRE = GeoPoint(32.2988, -90.1848)


def camgate(db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAMGATE_")}
    return subprocess.run(
        [sys.executable, "-m", "camgate.cli", "--db", str(db), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "camgate.db"
    gate = Gate.open(path)
    waiver = gate.publish_waiver(Waiver("w1", "I agree."))
    gate.add_owner(Owner("alice", "Alice"))
    gate.add_camera(Camera("a1", "rtsp", "rtsp://127.0.0.1:9/a1", "alice", CENTRE))
    gate.enrol(
        "alice",
        ["a1"],
        waiver_version="w1",
        waiver_sha256=waiver.sha256,
        terms=ConsentTerms(scopes=["snapshot"], mode="ask"),
    )
    gate.report_incident("shooting", CENTRE, 500.0)
    gate.store.close()
    return path


def _incident(db: Path) -> str:
    gate = Gate.open(db)
    try:
        return str(gate.store.query("SELECT id FROM incidents")[0][0])
    finally:
        gate.store.close()


def test_no_wait_then_answer_yes_then_explain(db: Path) -> None:
    inc = _incident(db)
    args = ["request", "--incident", inc, "--camera", "a1", "--scope", "snapshot", "--by", "o7"]
    held = camgate(db, *args, "--no-wait")
    assert held.returncode == 4, held.stderr
    rid = json.loads(held.stdout)["request"]
    shown = camgate(db, "consent", "explain", rid)
    assert "waiting for the owner's answer until" in shown.stdout
    answered = camgate(db, "consent", "answer", rid, "--yes", "--owner", "alice")
    assert answered.returncode == 0, answered.stderr
    assert json.loads(answered.stdout) == {
        "request": rid,
        "answer": "yes",
        "allowed": True,
        "reasons": [],
    }
    again = camgate(db, "consent", "answer", rid, "--no")
    assert again.returncode == 1 and "already answered (yes)" in again.stderr
    shown = camgate(db, "consent", "explain", rid)
    assert "allowed" in shown.stdout and "the owner said yes to this request" in shown.stdout


def test_answer_to_a_request_never_made(db: Path) -> None:
    out = camgate(db, "consent", "answer", "req_nope", "--yes")
    assert out.returncode == 1 and "no ask-first request 'req_nope'" in out.stderr
    out = camgate(db, "consent", "answer", "req_nope")
    assert out.returncode == 2  # --yes or --no is required


def test_a_waiting_caller_sees_an_answer_from_another_process(db: Path) -> None:
    inc = _incident(db)

    result: dict[str, object] = {}

    async def main() -> None:
        async with Gate.open(db) as gate, anyio.create_task_group() as tg:

            async def officer() -> None:
                try:
                    await gate.request_access(inc, "a1", "snapshot", requested_by="o7")
                except AccessDenied as refusal:
                    result["refused"] = refusal.decision.reasons

            tg.start_soon(officer)
            while not gate.pending("alice"):  # noqa: ASYNC110 - a condition across threads
                await anyio.sleep(0.01)
            rid = gate.pending("alice")[0].request_id
            cli = [sys.executable, "-m", "camgate.cli", "--db", str(db)]
            owner = await anyio.run_process([*cli, "consent", "answer", rid, "--no"], check=False)
            assert owner.returncode == 0, owner.stderr

    anyio.run(main)
    assert result["refused"] == ["terms.mode: the owner said no to this request"]


def test_enrol_with_terms_and_malformed_terms(db: Path) -> None:
    gate = Gate.open(db)
    gate.add_camera(Camera("a2", "rtsp", "rtsp://127.0.0.1:9/a2", "alice", CENTRE))
    sha = gate.store.get_waiver("w1").sha256
    before = gate.store.query("SELECT * FROM consents")
    gate.store.close()
    base = ["enrol", "--owner", "alice", "--camera", "a2", "--waiver", "w1", "--allow", "live"]
    bad = camgate(db, *base, "--quiet-hours", "22-07")
    assert bad.returncode == 1 and "quiet_hours" in bad.stderr and "HH:MM" in bad.stderr
    bad = camgate(db, *base, "--waiver-sha256", sha[::-1])
    assert bad.returncode == 1 and "SHA-256 does not match" in bad.stderr
    gate = Gate.open(db)
    assert gate.store.query("SELECT * FROM consents") == before
    gate.store.close()
    ok = camgate(
        db,
        *base,
        "--mode",
        "ask",
        "--ask-timeout",
        "60",
        "--incident-kind",
        "shooting",
        "--max-radius",
        "300",
        "--quiet-hours",
        "22:00-07:00",
        "--max-lookback",
        "3600",
        "--ends-at",
        "2030-01-01T00:00:00+00:00",
    )
    assert ok.returncode == 0, ok.stderr
    terms = json.loads(ok.stdout)["terms"]
    assert terms["mode"] == "ask" and terms["quiet_hours"] == ["22:00", "07:00"]
    assert terms["incident_kinds"] == ["shooting"] and terms["ends_at"].startswith("2030")


def test_agency_rules_from_a_file(db: Path, tmp_path: Path) -> None:
    rules = tmp_path / "jackson.toml"
    rules.write_text('[agency]\nname = "Jackson RTCC"\nbanned_purposes = ["face recognition"]\n')
    inc = _incident(db)
    out = camgate(
        db,
        "--rules",
        str(rules),
        "request",
        "--incident",
        inc,
        "--camera",
        "a1",
        "--scope",
        "snapshot",
        "--by",
        "o7",
        "--purpose",
        "face recognition",
    )
    assert out.returncode == 3, out.stderr
    assert json.loads(out.stdout)["reasons"] == [
        "agency.purpose: face-recognition is banned by Jackson RTCC"
    ]
    log = camgate(db, "audit", "export").stdout.splitlines()
    assert any('"decision"' in line and "face-recognition is banned" in line for line in log)
