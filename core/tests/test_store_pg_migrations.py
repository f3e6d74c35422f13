"""Versioned schema migrations on both engines: a file made before them upgrades in place, a
newer schema is refused, concurrent upgrades apply each version once, and the CLI."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest
from camgate.cli import main
from camgate.db.migrations import latest, migrations
from camgate.errors import ConfigError
from camgate.store import Store

MAIN_DUMP = Path(__file__).parent / "data" / "store_f833688.sql"


def _target(engine: str, tmp_path: Path, postgres: Any) -> str:
    return postgres.create_database() if engine == "postgres" else str(tmp_path / "s.db")


def test_every_version_exists_for_both_engines() -> None:
    for engine in ("sqlite", "postgres"):
        assert [m.version for m in migrations(engine)] == list(range(1, latest(engine) + 1))
    assert [m.name for m in migrations("sqlite")] == [m.name for m in migrations("postgres")]


def test_a_store_made_before_migrations_upgrades_in_place(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "main.db"
    db = sqlite3.connect(path)
    db.executescript(MAIN_DUMP.read_text())
    db.close()
    assert main(["--db", str(path), "db", "status"]) == 0
    assert f"schema version 0 of {latest('sqlite')}" in capsys.readouterr().out
    assert main(["db", "upgrade", "--db", str(path)]) == 0
    applied = ", ".join(str(v) for v in range(1, latest("sqlite") + 1))
    assert f"applied schema versions {applied}" in capsys.readouterr().out
    store = Store(path)
    try:
        assert store.schema_status().pending == 0
        assert [o.id for o in store.owners()] == ["alice"]
        assert store.get_camera("a1").owner_id == "alice"
        assert store.get_waiver("w1").text == "I agree."
        before = store.changes()
        assert before is not None and before.cameras == 1  # the old counters were kept
        store.add_owner(store.get_owner("alice"))  # the old triggers still count
        after = store.changes()
        assert after is not None and after.consents == before.consents + 1
        index = store.query("SELECT name FROM sqlite_master WHERE name='grants_request'")
        assert index == [("grants_request",)]  # version 2 was applied
        columns = [row[1] for row in store.query("PRAGMA table_info(artifacts)")]
        assert columns[-1] == "node"  # version 5 was applied
    finally:
        store.close()
    assert main(["db", "upgrade", "--db", str(path)]) == 0
    assert "is current; nothing to do" in capsys.readouterr().out


@pytest.mark.parametrize("engine", ["sqlite", "postgres"])
def test_a_schema_newer_than_this_camgate_is_refused(
    engine: str, tmp_path: Path, request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]
) -> None:
    postgres = request.getfixturevalue("postgres") if engine == "postgres" else None
    target = _target(engine, tmp_path, postgres)
    store = Store(target, home=tmp_path)
    newer = latest(engine) + 1
    with store.transaction() as db:
        db.execute("INSERT INTO schema_version VALUES (?, 'future', 'later')", (newer,))
    store.close()
    with pytest.raises(ConfigError, match=f"schema version {newer} is newer than this camgate"):
        Store(target, home=tmp_path)
    assert main(["db", "status", "--db", target]) == 1
    assert "newer than this camgate" in capsys.readouterr().err


def test_hubs_starting_at_once_apply_each_version_once(tmp_path: Path, postgres: Any) -> None:
    dsn = postgres.create_database()
    stores: list[Store] = []
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def open_one() -> None:
        start.wait()
        try:
            stores.append(Store(dsn, home=tmp_path))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert errors == []
        rows = stores[0].query("SELECT version FROM schema_version ORDER BY version")
        assert rows == [(v,) for v in range(1, latest("postgres") + 1)]
    finally:
        for s in stores:
            s.close()


def test_db_commands_on_postgres(
    tmp_path: Path, postgres: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    dsn = postgres.create_database()
    assert main(["db", "status", "--db", dsn, "--json"]) == 0
    out = capsys.readouterr().out
    assert '"current": 0' in out and '"engine": "postgres"' in out
    assert main(["db", "upgrade", "--db", dsn]) == 0
    assert "applied schema versions 1" in capsys.readouterr().out
    assert main(["db", "status", "--db", dsn]) == 0
    assert f"version {latest('postgres')} of {latest('postgres')}" in capsys.readouterr().out
