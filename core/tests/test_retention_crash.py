"""`camgate retention run` killed with SIGKILL mid-run, several times, as a real process: the log
verifies after every kill, no file is gone without its durable ``retention.deleted`` record, and
the run that finally completes leaves exactly one record per file."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

from camgate import Camera, ConsentTerms, Gate, GeoPoint, Owner, Waiver
from camgate.audit import AuditLog
from camgate.retention import Retention
from camgate.store import Store

FILES = 150


def _world(tmp: Path) -> tuple[Path, list[Path]]:
    db = tmp / "g.db"
    gate = Gate.open(db)
    waiver = gate.publish_waiver(Waiver("w1", "I agree."))
    gate.add_owner(Owner("alice", "Alice"))
    gate.add_camera(Camera("a1", "rtsp", "rtsp://127.0.0.1:9/a1", "alice", GeoPoint(32.3, -90.18)))
    gate.enrol(
        "alice", ["a1"], waiver_version="w1", waiver_sha256=waiver.sha256,
        terms=ConsentTerms(scopes=["snapshot"], retention_days=1),
    )  # fmt: skip
    files = []
    long_ago = gate.clock.now() - timedelta(days=2)
    for i in range(FILES):
        path = tmp / f"snap-{i:03}.jpg"
        path.write_bytes(os.urandom(2048))
        gate.retention.register(path, "snapshot", camera_id="a1", created_at=long_ago)
        files.append(path)
    gate.audit.close()
    gate.store.close()
    return db, files


def _check(db: Path, files: list[Path]) -> tuple[Counter[str], Counter[str]]:
    """The log verifies and every file that is gone has its deletion record. Returns how many
    records each path has, and how many artifacts are in each state."""
    store = Store(db)
    audit = AuditLog(store)
    try:
        result = audit.verify()
        assert result.ok, result.problem
        artifacts = Retention(store, audit).artifacts()
        paths = {a.id: a.path for a in artifacts}
        recorded = Counter(paths[r.body["artifact"]] for r in audit.records("retention.deleted"))
    finally:
        audit.close()
        store.close()
    gone = {str(f.absolute()) for f in files if not f.exists()}
    assert gone <= set(recorded), f"deleted without a record: {sorted(gone - set(recorded))[:3]}"
    return recorded, Counter(str(a.state) for a in artifacts)


def test_sigkill_during_retention_run_loses_no_record(tmp_path: Path) -> None:
    db, files = _world(tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAMGATE_")}
    cmd = [sys.executable, "-m", "camgate.cli", "--db", str(db), "retention", "run", "--json"]
    rng = random.Random(8)
    kills = 0
    states: Counter[str] = Counter()
    for _ in range(8):  # until two runs were killed mid-way (a loaded machine may miss one)
        if kills >= 2 or not any(f.exists() for f in files):
            break
        before = sum(f.exists() for f in files)
        child = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        # Kill once this run has deleted something: mid-run, at a random moment after that.
        while sum(f.exists() for f in files) == before and child.poll() is None:
            assert time.monotonic() < deadline, "the run did not start deleting"
            time.sleep(0.005)
        time.sleep(rng.uniform(0, 0.05))
        if child.poll() is None:
            child.send_signal(signal.SIGKILL)
            kills += 1
        child.wait()
        states += _check(db, files)[1]
    print("states seen after the kills:", dict(states))
    assert kills >= 2  # 150 files take long enough that most runs are killed mid-way
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    recorded = _check(db, files)[0]
    assert not any(f.exists() for f in files)
    assert set(recorded) == {str(f.absolute()) for f in files}
    assert set(recorded.values()) == {1}, "a file's deletion was recorded twice"
