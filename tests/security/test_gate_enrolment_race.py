"""Issue 12, item 10: enrolment caps hold against writers racing in separate processes
(attacker: a careless embedder running several enrolment workers, or bad luck).

Six real processes enrol one camera each at the same moment under a cap of 2 on their class;
exactly two are enrolled, every trial. The cap check and the insert are one transaction that
takes SQLite's write lock first (BEGIN IMMEDIATE), so a writer checks a count no other writer can
change before it commits.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import time
from pathlib import Path

import anyio
import pytest
from camgate.audit import AUDIT_DSN_ENV

_spec = importlib.util.spec_from_file_location("_gate", Path(__file__).with_name("_gate.py"))
assert _spec is not None and _spec.loader is not None
_gate = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_gate)

WRITERS = 6
CAP = 2


postgres = _gate.postgres  # a real PostgreSQL server for this module


@pytest.mark.parametrize(
    ("audit", "trial"), [("sqlite", 0), ("sqlite", 1), ("sqlite", 2), ("postgres", 0)]
)
def test_six_processes_enrolling_at_once_respect_a_cap_of_two(
    tmp_path: Path,
    audit: str,
    trial: int,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> None:
    # With the audit log in PostgreSQL the store's write lock covers the check and the intent
    # (docs/architecture.md); the cap counts enrolments under way.
    if audit == "postgres":
        dsn = request.getfixturevalue("postgres").create_database()
        monkeypatch.setenv(AUDIT_DSN_ENV, dsn)
    else:
        monkeypatch.delenv(AUDIT_DSN_ENV, raising=False)
    db = tmp_path / "g.db"
    done = _gate.run_child(db, "setup-race", str(WRITERS))
    assert done.returncode == 0, done.stderr
    sync = tmp_path / "sync"
    sync.mkdir()
    cams = [f"r{i}" for i in range(1, WRITERS + 1)]
    children = [
        subprocess.Popen(
            [sys.executable, _gate.__file__, str(db), "race-enrol", cam, str(sync), "--cap", "2"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for cam in cams
    ]
    try:
        deadline = time.monotonic() + 120
        while len(list(sync.glob("ready-*"))) < WRITERS:  # every writer is waiting for the go
            assert time.monotonic() < deadline, "the writers did not start"
            assert all(c.poll() is None for c in children), [c.communicate() for c in children]
            time.sleep(0.01)
        (sync / "go").touch()
        outputs = [c.communicate(timeout=120) for c in children]
    finally:
        for c in children:
            if c.poll() is None:
                c.kill()
    assert all(c.returncode == 0 for c in children), [err for _out, err in outputs]
    answers = [json.loads(out.strip().splitlines()[-1]) for out, _err in outputs]
    assert sum(1 for a in answers if not a.startswith("refused")) == CAP, answers
    gate = _gate.build_gate(db)
    assert len(gate.store.enrolled_cameras()) == CAP
    assert len(list(gate.audit.records("consent.enrolled"))) == CAP
    anyio.run(gate.aclose)
