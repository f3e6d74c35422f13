"""AccountStore on PostgreSQL: two stores on one database (as two hubs have) share accounts,
sessions, API tokens and invites; an invite raced by two processes makes one account; no
password, session id or token appears in an error or repr. A real PostgreSQL server
(:mod:`camgate.testing.pgserver`), one fresh database per test."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from camgate.errors import StorageError, ValidationError
from camgate_server.accounts import AccountStore
from camgate_server.errors import InviteInvalid, NotAuthenticated
from camgate_server.policy import Action, Role

from .conftest import PASSWORD, SETTINGS

SECRET = "Pw-never-shown-7c1e"


@pytest.fixture(scope="module")
def postgres() -> Iterator[Any]:
    """A real PostgreSQL server for this module."""
    from camgate.testing.pgserver import server_for_tests

    with server_for_tests() as server:
        yield server


@pytest.fixture
def dsn(postgres: Any) -> str:
    """A fresh database's DSN."""
    return str(postgres.create_database())


@pytest.fixture
def hubs(dsn: str) -> Iterator[tuple[AccountStore, AccountStore]]:
    """Two AccountStores on one fresh database: hub A's and hub B's."""
    a = AccountStore(dsn, settings=SETTINGS)
    b = AccountStore(dsn, settings=SETTINGS)
    yield a, b
    a.close()
    b.close()


def test_an_account_and_its_session_made_on_one_hub_work_on_the_other(
    hubs: tuple[AccountStore, AccountStore],
) -> None:
    a, b = hubs
    made = a.create_account("jdoe", PASSWORD, Role.OPERATOR)
    assert b.verify_password("jdoe", PASSWORD) == made
    assert [acc.username for acc in b.list_accounts()] == ["jdoe"]
    with pytest.raises(ValidationError, match="taken"):
        b.create_account("jdoe", PASSWORD, Role.ADMIN)

    session_id, csrf, _ = a.open_session(made)
    caller = b.session_caller(session_id)
    assert (caller.account, caller.csrf) == (made, csrf)
    b.close_session(caller)  # logout on B ends the session on A
    with pytest.raises(NotAuthenticated):
        a.session_caller(session_id)


def test_a_token_made_on_one_hub_is_revoked_on_the_other(
    hubs: tuple[AccountStore, AccountStore],
) -> None:
    a, b = hubs
    bridge = a.create_account("cadbridge", PASSWORD, Role.OPERATOR)
    token_id, token, _ = a.create_token(bridge, "CAD", [Action.INCIDENTS_REPORT], 3600)
    assert b.token_caller(token).scopes == {Action.INCIDENTS_REPORT}
    b.revoke_token(token_id)
    with pytest.raises(NotAuthenticated):
        a.token_caller(token)


_ACCEPT = """
import sys
from camgate_server.accounts import AccountStore
from camgate_server.errors import InviteInvalid
dsn, code, username, password = sys.argv[1:]
store = AccountStore(dsn)
try:
    account = store.accept_invite(code, username, password)
except InviteInvalid:
    print("refused")
else:
    print("made", account.owner_id)
"""


def _waiting_on_locks(admin: Any) -> int:
    row = admin.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
        "AND query LIKE 'UPDATE invites%%'"
    ).fetchone()
    return int(row[0])


def test_an_invite_raced_by_two_processes_makes_one_account(
    hubs: tuple[AccountStore, AccountStore], dsn: str
) -> None:
    """Both processes read the invite unused, then both try to spend it: the test holds the
    invite's row lock until both wait on it, so the race happens on every run."""
    import psycopg

    a, _ = hubs
    admin_account = a.create_account("admin1", PASSWORD, Role.ADMIN)
    code, _ = a.create_invite("alice", admin_account)
    with psycopg.connect(dsn, autocommit=True) as admin, psycopg.connect(dsn) as holder:
        holder.execute("SELECT 1 FROM invites FOR UPDATE")
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", _ACCEPT, dsn, code, name, PASSWORD],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for name in ("alice1", "alice2")
        ]
        deadline = time.monotonic() + 120
        while _waiting_on_locks(admin) < 2:
            assert time.monotonic() < deadline, [p.poll() for p in procs]
            assert all(p.poll() is None for p in procs), [p.communicate() for p in procs]
            time.sleep(0.05)
        holder.rollback()
        outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert sorted(out.strip() for out, _ in outs) == ["made alice", "refused"]
    owners = [acc.username for acc in a.list_accounts() if acc.role is Role.OWNER]
    assert len(owners) == 1
    with pytest.raises(InviteInvalid):
        a.accept_invite(code, "alice3", PASSWORD)


def test_no_password_or_secret_in_errors_or_reprs(postgres: Any) -> None:
    dead = f"postgresql://camgate:{SECRET}@127.0.0.1:1/nowhere"
    with pytest.raises(StorageError) as failed:
        AccountStore(dead, settings=SETTINGS)
    assert SECRET not in str(failed.value)
    assert failed.value.__cause__ is None and failed.value.__context__ is None

    dsn = postgres.create_database().replace("postgres@", f"postgres:{SECRET}@")
    store = AccountStore(dsn, settings=SETTINGS)
    try:
        assert SECRET not in repr(store) and SECRET not in store.where
        account = store.create_account("jdoe", PASSWORD, Role.OPERATOR)
        session_id, _, _ = store.open_session(account)
        with pytest.raises(ValidationError) as taken:
            store.create_account("jdoe", PASSWORD, Role.OPERATOR)
        for text in (str(taken.value), repr(store), repr(store.session_caller(session_id))):
            assert PASSWORD not in text and session_id not in text and SECRET not in text
        assert taken.value.__cause__ is None
    finally:
        store.close()


def test_camgate_serve_creates_an_admin_in_the_database_and_names_it_without_password(
    postgres: Any, tmp_path: Path
) -> None:
    dsn = postgres.create_database().replace("postgres@", f"postgres:{SECRET}@")
    env = {**os.environ, "CAMGATE_ADMIN_PASSWORD": PASSWORD, "CAMGATE_HOME": str(tmp_path)}
    made = subprocess.run(
        [sys.executable, "-m", "camgate.cli", "serve", "--db", dsn, "--create-admin", "root"],
        env=env, capture_output=True, text=True, timeout=120, check=False, cwd=tmp_path,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert "created admin root" in made.stdout and "postgresql://postgres@" in made.stdout
    assert SECRET not in made.stdout + made.stderr and PASSWORD not in made.stdout + made.stderr
    assert list(tmp_path.iterdir()) == []  # no accounts file: the database holds them
    store = AccountStore(dsn, settings=SETTINGS)
    try:
        assert store.verify_password("root", PASSWORD).role is Role.ADMIN
    finally:
        store.close()
