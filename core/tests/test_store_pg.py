"""The store on a real PostgreSQL: no password shown, a server restart mid-transaction leaves
nothing half-written, and several processes racing stay correct (redemption, answers to a
held request, enrolment caps)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest
from camgate import Gate, Owner, Waiver
from camgate.codec import dump
from camgate.errors import StorageError
from camgate.models import GeoPoint, PendingRequest
from camgate.store import Store, local_path
from camgate.testing import camera_north_of
from camgate.testing import wait_until as _until
from camgate.testing.pgserver import PostgresServer

SECRET = "Sup3rS3cretPw"


def test_no_password_in_errors_or_reprs(tmp_path: Path, postgres: Any) -> None:
    dead = f"postgresql://camgate:{SECRET}@127.0.0.1:1/nowhere"
    with pytest.raises(StorageError) as failed:
        Store(dead, home=tmp_path)
    assert SECRET not in str(failed.value) and "127.0.0.1:1/nowhere" in str(failed.value)
    assert failed.value.__cause__ is None and failed.value.__context__ is None
    # Trust authentication ignores the password: the store opens, and never shows it.
    dsn = postgres.create_database().replace("postgres@", f"postgres:{SECRET}@")
    store = Store(dsn, home=tmp_path)
    try:
        assert SECRET not in repr(store) and SECRET not in store.where
        dbname = dsn.rsplit("/", 1)[1]
        assert store.path == local_path(dsn, tmp_path) == tmp_path / f"{dbname}.pg"
    finally:
        store.close()


def test_a_restart_mid_transaction_writes_nothing_and_the_store_reconnects(
    tmp_path: Path, own_server: PostgresServer
) -> None:
    store = Store(own_server.create_database(), home=tmp_path)
    try:
        store.add_owner(Owner("alice", "Alice"))
        rolled_back = "rolled back; nothing of it was written"
        with pytest.raises(StorageError, match=rolled_back) as cut, store.transaction() as db:
            db.execute("INSERT INTO owners VALUES (?, ?)", ("bob", "{}"))
            own_server.pause()
            db.execute("INSERT INTO owners VALUES (?, ?)", ("carol", "{}"))
        assert store.where in str(cut.value)
        with pytest.raises(StorageError, match="connection lost|cannot connect"):
            store.owners()  # the server is down: a clear error, not a driver's
        own_server.resume()
        assert [o.id for o in store.owners()] == ["alice"]  # neither bob nor carol
        store.add_owner(Owner("dave", "Dave"))  # the store connected again
        assert [o.id for o in store.owners()] == ["alice", "dave"]
    finally:
        if not own_server._started:
            own_server.resume()
        store.close()


def test_while_the_listener_is_cut_off_every_look_is_a_change(
    tmp_path: Path, own_server: PostgresServer
) -> None:
    """Fail closed: with the LISTEN connection down, nothing can be known about other hubs'
    commits, so the guard's version moves on every packet (and consent is read again)."""
    store = Store(own_server.create_database(), home=tmp_path)
    listener = store._listener
    assert listener is not None
    try:
        _until(lambda: listener.listening)
        assert store.live_version() == store.live_version()  # quiet: no query, no change
        own_server.pause()
        _until(lambda: not listener.listening)
        assert store.live_version() != store.live_version()
        own_server.resume()
        _until(lambda: listener.listening)
        assert store.live_version() == store.live_version()
    finally:
        if not own_server._started:
            own_server.resume()
        store.close()


# ---------------------------------------------------------------------- races between processes

_CHILD = textwrap.dedent(
    """
    import json, os, sys, time
    from datetime import UTC, datetime
    op, dsn, home, go, arg = sys.argv[1:6]
    if op == "enrol":
        from camgate import ConsentTerms, Gate
        from camgate.rules import AgencyRules
        gate = Gate.open(dsn, key_path=os.path.join(home, "hub.key"), entry_points=False,
                         rules=AgencyRules(enrolment_caps={"private": 2}))
        store = gate.store
    else:
        from camgate.store import Store, local_path
        store = Store(dsn, home=home)
    print("ready", flush=True)
    while not os.path.exists(go):  # the start signal: every child is ready
        time.sleep(0.002)
    now = datetime.now(UTC)
    if op == "redeem-and-answer":
        answer = {"outcome": "approved", "by": str(os.getpid())}
        print(json.dumps([store.redeem(arg, now), store.resolve_pending(arg, "yes", now),
                          store.close_approval_wait(arg, answer)]))
    else:
        sha = store.get_waiver("w1").sha256
        try:
            gate.enrol("o" + arg, ["c" + arg], waiver_version="w1", waiver_sha256=sha,
                       terms=ConsentTerms(scopes=["live"]))
            print(json.dumps(True))
        except Exception as exc:
            print(json.dumps(str(exc)))
    """
)


def _race(op: str, dsn: str, home: Path, args: list[str]) -> list[Any]:
    """Start one child per arg, let them go at once, return what each printed."""
    go = home / f"go-{op}"
    children = [
        subprocess.Popen(
            [sys.executable, "-c", _CHILD, op, dsn, str(home), str(go), arg],
            stdout=subprocess.PIPE,
            text=True,
            env=os.environ | {"CAMGATE_HOME": str(home)},  # seals beside the test's files
        )
        for arg in args
    ]
    try:
        for child in children:
            assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        go.touch()
        results = []
        for child in children:
            out, _ = child.communicate(timeout=120)
            assert child.returncode == 0
            results.append(json.loads(out.strip().splitlines()[-1]))
        return results
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()


def test_racing_redemptions_answers_and_approvals_have_one_winner(
    tmp_path: Path, postgres: Any
) -> None:
    dsn = postgres.create_database()
    store = Store(dsn, home=tmp_path)
    now = datetime.now(UTC)
    held = PendingRequest("req-1", "a1", "alice", now, now + timedelta(minutes=5))
    with store.transaction() as db:
        db.execute(
            "INSERT INTO pending VALUES (?, ?, ?, NULL, ?)",
            ("req-1", "alice", held.deadline.isoformat(), json.dumps(dump(held))),
        )
    store.add_approval_wait("req-1", held.deadline, {"request_id": "req-1"})
    store.close()
    results = _race("redeem-and-answer", dsn, tmp_path, ["req-1"] * 4)
    assert sorted(r[0] for r in results) == [False, False, False, True]  # one redemption
    assert sorted(r[1] for r in results) == [False, False, False, True]  # one answer
    assert sorted(r[2] for r in results) == [False, False, False, True]  # one approval
    store = Store(dsn, home=tmp_path)
    try:
        assert store.get_pending("req-1").outcome == "yes"
        wait = store.approval_wait("req-1")
        assert wait is not None and wait["outcome"] == "approved"
    finally:
        store.close()


def test_racing_enrolments_never_pass_the_cap(
    tmp_path: Path, postgres: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CAMGATE_HOME", str(tmp_path))
    dsn = postgres.create_database()
    gate = Gate.open(dsn, key_path=tmp_path / "hub.key", entry_points=False)
    try:
        gate.publish_waiver(Waiver("w1", "I agree."))
        for i in range(4):
            gate.store.add_owner(Owner(f"o{i}", f"Owner {i}"))
            cam = camera_north_of(f"c{i}", f"o{i}", GeoPoint(32.3, -90.18), 50.0 + i)
            gate.store.add_camera(cam)
    finally:
        anyio.run(gate.aclose)
    results = _race("enrol", dsn, tmp_path, [str(i) for i in range(4)])
    assert results.count(True) == 2, results
    assert all("caps enrolment at 2 private cameras" in r for r in results if r is not True)
    store = Store(dsn, home=tmp_path)
    try:
        assert len(store.enrolled_cameras()) == 2
    finally:
        store.close()
