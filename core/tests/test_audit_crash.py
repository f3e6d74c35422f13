"""Crash safety with real processes: SIGKILL at random moments leaves a log that verifies, and
every grant whose media reached the consumer has its durable ``access.start`` record.

The child process runs a real gate against the GStreamer RTSP server: it streams live video
(writing one line per packet handed to it into a ledger with unbuffered ``os.write``, which the
kernel keeps when the process dies) while eight threads append records as fast as they can, so
kills land mid-stream and mid-commit. Run on both audit stores: with PostgreSQL the child
inherits CAMGATE_AUDIT_DSN, and the killed client's open transaction is rolled back by the
server.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import anyio
import pytest
from camgate import Camera, ConsentTerms, Gate, GeoPoint, Owner, Waiver
from camgate.audit import AuditLog
from camgate.store import Store
from camgate_rtsp.testing.server import RtspTestServer

pytestmark = pytest.mark.rtsp

CHILD = r"""
import os, sys, threading, anyio
from camgate import Gate

db, ledger, incident = sys.argv[1], sys.argv[2], sys.argv[3]
fd = os.open(ledger, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
gate = Gate.open(db)

def load(i):
    n = 0
    while True:
        gate.audit.append("load", {"owner": "alice", "writer": i, "n": n})
        n += 1

for i in range(8):
    threading.Thread(target=load, args=(i,), daemon=True).start()

async def main():
    while True:
        signed = await gate.request_access(incident, "cam-a", "live", requested_by="t",
                                           duration_s=30)
        stream = await gate.edge.open_live("cam-a", signed)
        async with stream:
            n = 0
            async for _packet in stream:
                n += 1
                os.write(fd, f"{signed.grant.id} {n}\n".encode())
                if n >= 40:
                    break

anyio.run(main)
"""


def setup_world(db: Path, url: str) -> str:
    async def build() -> str:
        async with Gate.open(db) as gate:
            waiver = gate.publish_waiver(Waiver("w1", "I agree."))
            gate.add_owner(Owner("alice", "Alice"))
            home = GeoPoint(32.2988, -90.1848)
            gate.add_camera(
                Camera(id="cam-a", adapter="rtsp", source=url, owner_id="alice", position=home)
            )
            gate.enrol(
                "alice",
                ["cam-a"],
                waiver_version="w1",
                waiver_sha256=waiver.sha256,
                terms=ConsentTerms(scopes=["live"]),
            )
            return gate.report_incident("burglary", home, radius_m=300).id

    return anyio.run(build)


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def test_sigkill_at_random_moments_leaves_a_verifying_log_and_no_unrecorded_media(
    tmp_path: Path, server: RtspTestServer, audit_store: str
) -> None:
    db = tmp_path / "camgate.db"
    incident = setup_world(db, server.url("/cam1"))
    ledger = tmp_path / "served.txt"
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    rng = random.Random()
    for _round in range(4):
        target = len(lines(ledger)) + rng.randint(1, 120)
        child = subprocess.Popen([sys.executable, str(script), str(db), str(ledger), incident])
        deadline = time.monotonic() + 60
        while len(lines(ledger)) < target:  # a random moment: after `target` packets served
            assert child.poll() is None, "the child died on its own"
            assert time.monotonic() < deadline, "the child served too few packets"
            time.sleep(0.005)
        os.kill(child.pid, signal.SIGKILL)
        assert child.wait() == -signal.SIGKILL

        store = Store(db)
        assert store.query("PRAGMA integrity_check") == [("ok",)]
        log = AuditLog(store)
        result = log.verify()
        assert result.ok, result
        started = {r.body["grant"]["id"] for r in log.records("access.start")}
        served = {line.split()[0] for line in lines(ledger)}
        assert served and served <= started, served - started
        assert sum(1 for _ in log.records("load")) > 0
        log.close()
        store.close()
    dump = [json.loads(x) for x in AuditLog(Store(db)).export_jsonl()]
    assert any(x["type"] == "checkpoint" for x in dump)
