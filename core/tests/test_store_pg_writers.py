"""Hubs on other machines or in containers: whether another process's leftovers are its own
unfinished work or a dead process's is asked of PostgreSQL (its writer lease), not of this
machine's ``/proc``, which cannot see it.

The other hub is a real subprocess on the shared database, and, to stand for a container, a
process in a pid namespace of its own (``unshare --pid``): there its pid names another process
of this machine, or none, so ``/proc`` alone takes the running hub for dead.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from camgate import Gate, Owner
from camgate.db.pg import PgConnection
from camgate.db.writers import lease_held, process_alive, process_identity, writer_lease
from camgate.errors import StorageError
from camgate.store import Store
from camgate.testing import wait_until
from camgate.testing._servers import require
from camgate.testing.pgserver import PostgresServer
from camgate.vocab import AuditKind

#: The other hub: owes alice a notice and leaves an intent, then runs until killed.
OTHER_HUB = textwrap.dedent(
    """
    import json, sys
    from datetime import UTC, datetime
    from camgate.notify import OwnerNotice
    from camgate.store import Store

    store = Store(sys.argv[1], home=sys.argv[2])
    now = datetime.now(UTC)
    store.owe_notices(
        [OwnerNotice(id="ntc-other", owner_id="alice", camera_id="cam-1", event="revoked", at=now)]
    )
    store.add_intent("consent.enrolled", json.dumps({"id": "cns-other"}), now.isoformat(), 0)
    print("ready", flush=True)
    sys.stdin.read()
    """
)


def _namespaces() -> str | None:
    """Why a pid namespace cannot be made here (None: it can)."""
    if shutil.which("unshare") is None:
        return "unshare (util-linux) is not installed"
    done = subprocess.run(
        ["unshare", "--pid", "--fork", "--kill-child", "--mount-proc", "true"],
        capture_output=True,
        text=True,
        check=False,
    )
    return None if done.returncode == 0 else f"cannot make a pid namespace: {done.stderr.strip()}"


@pytest.fixture
def gate(tmp_path: Path, postgres: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Gate]:
    monkeypatch.setenv("CAMGATE_HOME", str(tmp_path))
    monkeypatch.delenv("CAMGATE_AUDIT_DSN", raising=False)
    opened = Gate.open(postgres.create_database(), entry_points=False)
    try:
        opened.add_owner(Owner("alice", "Alice"))
        yield opened
    finally:
        anyio.run(opened.aclose)


@pytest.mark.parametrize("contained", [False, True], ids=["process", "pid-namespace"])
def test_another_hubs_leftovers_wait_while_it_runs_and_are_settled_once_it_dies(
    gate: Gate, tmp_path: Path, contained: bool
) -> None:
    if contained:
        require(_namespaces(), "CAMGATE_SKIP_NAMESPACES", "pid namespace")
    prefix = ["unshare", "--pid", "--fork", "--kill-child", "--mount-proc"] if contained else []
    assert gate.store.dsn is not None
    other = subprocess.Popen(
        [*prefix, sys.executable, "-c", OTHER_HUB, gate.store.dsn, str(tmp_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert other.stdout is not None
        said = other.stdout.readline()
        assert said.strip() == "ready", said + other.stdout.read()
        [(notice, pid, started)] = gate.store.owed_notices()
        [intent] = gate.store.intents()
        assert notice["id"] == "ntc-other" and intent[5:] == (pid, started)
        if contained:
            # Its pid means another process here, or none: /proc alone takes it for dead.
            assert not process_alive(pid, started)
        assert gate.store.writer_alive(pid, started)
        gate._settle_interrupted()  # before every decision: its work is under way, left alone
        assert gate.store.intents() == [intent] and len(gate.store.owed_notices()) == 1
    finally:
        other.send_signal(signal.SIGKILL)  # unshare's --kill-child takes the hub with it
        other.wait(timeout=20)
    # The server ends a killed process's session at once, and its lease with it.
    wait_until(lambda: not gate.store.writer_alive(pid, started), "the lease released", 20)
    gate._settle_interrupted()
    assert gate.store.intents() == [] and gate.store.owed_notices() == []
    told = [r for r in gate.audit.records() if r.kind == AuditKind.OWNER_NOTIFIED]
    assert [r.body["id"] for r in told] == ["ntc-other"]


def test_the_lease_is_one_per_process_and_database_and_held_again_after_a_restart(
    tmp_path: Path, own_server: PostgresServer
) -> None:
    dsn = own_server.create_database()
    me, started = os.getpid(), process_identity()
    watcher = PgConnection(dsn)  # what another hub would ask
    first, second = Store(dsn, home=tmp_path), Store(dsn, home=tmp_path)
    try:
        assert not lease_held(watcher, me, started)  # taken only before a row names us
        first.owe_notices([])
        second.owe_notices([])
        assert first._lease is second._lease is not None  # one session for the process
        assert lease_held(watcher, me, started)
        first.close()
        assert lease_held(watcher, me, started)  # the other store still uses it
        own_server.pause()
        with pytest.raises(StorageError):
            lease_held(watcher, me, started)
        own_server.resume()
        # The store's own connection was cut: the first write says so, and the next connects
        # again. The keeper connects again and takes the lock back within a poll or two.
        with pytest.raises(StorageError, match="rolled back"):
            second.owe_notices([])
        second.owe_notices([])
        wait_until(lambda: lease_held(watcher, me, started), "the lease taken again", 10)
        second.close()
        wait_until(lambda: not lease_held(watcher, me, started), "the lease given back", 10)
    finally:
        first.close()
        second.close()
        watcher.close()


def test_a_second_dsn_spelling_of_the_same_database_shares_the_lease(
    tmp_path: Path, postgres: Any
) -> None:
    """Another lease of this process on the same database cannot take the lock its first one
    holds; a store using it is not refused: the database says this process holds it."""
    dsn = postgres.create_database()
    other_spelling = dsn + ("&" if "?" in dsn else "?") + "application_name=second"
    first, second = Store(dsn, home=tmp_path), Store(other_spelling, home=tmp_path)
    try:
        first.owe_notices([])
        second.owe_notices([])  # returns: the lock is held, by the first lease
        assert first._lease is not second._lease
        assert first._lease is not None and first._lease.held
        assert second._lease is not None and not second._lease.held
    finally:
        first.close()
        second.close()


def test_the_lease_never_shows_the_password(postgres: Any) -> None:
    secret = "Le4seS3cret"
    dsn = postgres.create_database().replace("postgres@", f"postgres:{secret}@")
    lease = writer_lease(dsn)
    try:
        assert secret not in repr(lease)
    finally:
        lease.release()
