"""Review finding F1: a change another process left half-made, seen by a hub that is running.

A hub is opened first and stays open; a child process revokes alice's consent and SIGKILLs
itself at an exact point (_gate.py ``--kill``). The running hub — not a reopened one — must then
refuse a grant under the revoked consent whenever the revocation's record exists (or is written
by its recovery), and send the owner's ``revoked`` notice the dead process owed. With the audit
log in PostgreSQL the revocation is in force before its record is appended, so even a crash just
before the append closes access (the running hub writes the missing record). Also: an intent
whose pid now belongs to another process (pid reuse) is settled, not taken for under way.
"""

from __future__ import annotations

import importlib.util
import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
from camgate.audit import AUDIT_DSN_ENV
from camgate.errors import AccessDenied

_spec = importlib.util.spec_from_file_location("_gate", Path(__file__).with_name("_gate.py"))
assert _spec is not None and _spec.loader is not None
_gate = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_gate)


postgres = _gate.postgres  # a real PostgreSQL server for this module

# (audit store, kill point, whether the revocation must stand afterwards). In SQLite the change
# and its record are one transaction: killed inside it, neither stands.
POINTS = [
    ("sqlite", "in-tx", False),
    ("sqlite", "at-notice", True),
    ("postgres", "before-record", True),
    ("postgres", "after-record", True),
    ("postgres", "at-notice", True),
]


def _audit_store(store: str, request: pytest.FixtureRequest, mp: pytest.MonkeyPatch) -> None:
    if store == "postgres":
        mp.setenv(AUDIT_DSN_ENV, request.getfixturevalue("postgres").create_database())
    else:
        mp.delenv(AUDIT_DSN_ENV, raising=False)


def _setup(db: Path) -> str:
    done = _gate.run_child(db, "setup")
    assert done.returncode == 0, done.stderr
    incident: str = json.loads(done.stdout.strip().splitlines()[-1])["incident"]
    return incident


def _revoke_and_die(db: Path, point: str) -> None:
    kind = "revoked" if point == "at-notice" else "consent.revoked"
    done = _gate.run_child(db, "revoke", "--kill", kind, point)
    assert done.returncode == -signal.SIGKILL, (done.returncode, done.stderr)


async def _ask(hub: Any, incident: str) -> Any:
    return await hub.request_access(incident, "a1", "live", requested_by="officer-7")


def _revoked_notices(hub: Any) -> list[dict[str, Any]]:
    return [n for n in hub.store.notices("alice") if n["event"] == "revoked"]


@pytest.mark.parametrize(
    ("store", "point", "stands"), POINTS, ids=[f"{s}-{p}" for s, p, _ in POINTS]
)
def test_a_running_hub_honours_a_revocation_a_crashed_process_left(
    tmp_path: Path,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    store: str,
    point: str,
    stands: bool,
) -> None:
    _audit_store(store, request, monkeypatch)
    db = tmp_path / "g.db"
    incident = _setup(db)
    hub = _gate.build_gate(db)  # already running when the child crashes
    _revoke_and_die(db, point)

    async def go() -> None:
        if stands:
            with pytest.raises(AccessDenied, match="revoked"):
                await _ask(hub, incident)
        else:
            signed = await _ask(hub, incident)
            assert (
                hub.edge.grant_problem(hub.store.get_camera("a1"), signed.grant, hub.clock.now())
                is None
            )
        records = [r.body for r in hub.audit.records("consent.revoked")]
        assert bool(records) == stands, records
        # The owner is told exactly once, by the running hub if the dead process could not.
        assert len(_revoked_notices(hub)) == (1 if stands else 0)
        assert not hub.store.owed_notices()
        assert not hub.store.intents()
        await hub.aclose()

    anyio.run(go)


def test_an_intent_whose_pid_was_reused_is_settled(
    tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    _audit_store("postgres", request, monkeypatch)
    db = tmp_path / "g.db"
    incident = _setup(db)
    hub = _gate.build_gate(db)
    _revoke_and_die(db, "after-record")  # leaves its intent and the notice it owed
    # Another process now holds the dead one's pid (as after pid reuse): a live pid that is not
    # the writer.
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        with hub.store.transaction() as tx:
            tx.execute("UPDATE audit_intents SET pid=?", (other.pid,))
            tx.execute("UPDATE owed_notices SET pid=?", (other.pid,))
        assert hub.store.intents()

        async def go() -> None:
            with pytest.raises(AccessDenied, match="revoked"):
                await _ask(hub, incident)
            assert not hub.store.intents()
            assert len(_revoked_notices(hub)) == 1
            await hub.aclose()

        anyio.run(go)
    finally:
        other.kill()
        other.wait()
