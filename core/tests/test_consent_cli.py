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
