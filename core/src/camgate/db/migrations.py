"""Versioned schema migrations: numbered SQL files per engine, applied once each, in order.

``camgate/db/sql/<engine>/NNNN_name.sql`` (engine ``sqlite`` or ``postgres``) is version NNNN.
The ``schema_version`` table lists the versions applied (number, name, when). An upgrade runs
every missing version in one transaction, serialised with other processes: ``BEGIN IMMEDIATE``
on SQLite (the file's write lock), an advisory transaction lock on PostgreSQL, and reads the
applied versions again under that lock, so two hubs starting at once apply each file once. A
store whose applied version is newer than the files this camgate ships is refused with
:class:`~camgate.errors.ConfigError` (an older camgate must not write a schema it cannot read).

Version 1 is the schema camgate had before migrations existed; its SQLite file is all
``IF NOT EXISTS``, so a file made by an older camgate takes it as is (and is given the columns
later added by hand, :func:`_baseline_fixups`).
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any

from camgate.errors import ConfigError

if TYPE_CHECKING:
    from camgate.db.pg import PgConnection

__all__ = ["Migration", "Status", "latest", "migrations", "upgrade_postgres", "upgrade_sqlite"]

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_TABLE = (
    "CREATE TABLE IF NOT EXISTS schema_version "
    "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
)


@dataclass(frozen=True)
class Migration:
    """One schema version: its number, name and SQL text."""

    version: int
    name: str
    sql: str


@dataclass(frozen=True)
class Status:
    """Where a store's schema stands: the version applied (0: none) and the newest shipped."""

    engine: str
    current: int
    latest: int

    @property
    def pending(self) -> int:
        """How many versions an upgrade would apply."""
        return max(self.latest - self.current, 0)

    def to_json(self) -> dict[str, Any]:
        """The status as JSON (``camgate db status --json``)."""
        return {
            "engine": self.engine,
            "current": self.current,
            "latest": self.latest,
            "pending": self.pending,
        }


@cache
def migrations(engine: str) -> tuple[Migration, ...]:
    """Every migration shipped for ``engine`` (``sqlite`` or ``postgres``), in version order;
    versions are 1, 2, ... without gaps (anything else is a packaging error)."""
    folder = resources.files("camgate.db") / "sql" / engine
    found = []
    for entry in folder.iterdir():
        m = _NAME.match(entry.name)
        if m:
            found.append(Migration(int(m.group(1)), m.group(2), entry.read_text(encoding="utf-8")))
    found.sort(key=lambda mig: mig.version)
    if [mig.version for mig in found] != list(range(1, len(found) + 1)):
        raise ConfigError(f"camgate's {engine} migrations are not numbered 1..n")
    return tuple(found)


def latest(engine: str) -> int:
    """The newest schema version this camgate ships for ``engine``."""
    return len(migrations(engine))


def _check(engine: str, current: int, where: str) -> None:
    if current > latest(engine):
        raise ConfigError(
            f"{where}: schema version {current} is newer than this camgate knows "
            f"({latest(engine)}); upgrade camgate (a store is never opened by an older one)"
        )


def _statements(script: str) -> list[str]:
    """SQLite statements of ``script`` (trigger bodies kept whole)."""
    out, buf = [], ""
    for line in script.splitlines(keepends=True):
        if line.lstrip().startswith("--") and not buf.strip():
            continue
        buf += line
        if sqlite3.complete_statement(buf):
            out.append(buf.strip())
            buf = ""
    if buf.strip():
        out.append(buf.strip())
    return out


_ADD_COLUMN = re.compile(r"^ALTER\s+TABLE\s+(\w+)\s+ADD\s+COLUMN\s+(\w+)", re.IGNORECASE)


def _column_there(db: sqlite3.Connection, statement: str) -> bool:
    """Whether ``statement`` adds a column the table already has. SQLite has no ``ADD COLUMN
    IF NOT EXISTS``, and a file an older camgate made without ``schema_version`` takes every
    version again (version 1 is all ``IF NOT EXISTS`` for it): a column there is applied."""
    m = _ADD_COLUMN.match(statement)
    if m is None:
        return False
    return any(row[1] == m.group(2) for row in db.execute(f"PRAGMA table_info({m.group(1)})"))


def _baseline_fixups(db: sqlite3.Connection) -> None:
    """Columns added to version 1's tables before migrations existed (NULL in old rows)."""
    for table, columns in (
        ("audit_intents", {"started": "TEXT"}),
        ("owed_notices", {"pid": "INTEGER", "started": "TEXT"}),
    ):
        have = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
        for name, kind in columns.items():
            if name not in have:
                db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")


def sqlite_status(db: sqlite3.Connection, where: str) -> Status:
    """The schema status of an open SQLite file (read only)."""
    have = db.execute(
        "SELECT count(*) FROM sqlite_master WHERE type='table' AND name='schema_version'"
    ).fetchone()[0]
    current = 0
    if have:
        current = int(
            db.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()[0]
        )
    _check("sqlite", current, where)
    return Status("sqlite", current, latest("sqlite"))


def upgrade_sqlite(db: sqlite3.Connection, where: str) -> list[int]:
    """Apply the missing versions to the SQLite file of ``db`` (autocommit mode) in one
    ``BEGIN IMMEDIATE`` transaction; return the versions applied."""
    db.execute("BEGIN IMMEDIATE")
    try:
        db.execute(_TABLE)
        current = int(
            db.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()[0]
        )
        _check("sqlite", current, where)
        applied = []
        for mig in migrations("sqlite")[current:]:
            for statement in _statements(mig.sql):
                if not _column_there(db, statement):
                    db.execute(statement)
            if mig.version == 1:
                _baseline_fixups(db)
            db.execute(
                "INSERT INTO schema_version VALUES (?, ?, ?)",
                (mig.version, mig.name, datetime.now(UTC).isoformat()),
            )
            applied.append(mig.version)
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    return applied


def postgres_status(conn: PgConnection) -> Status:
    """The schema status of a PostgreSQL store (read only)."""
    row = conn.execute("SELECT to_regclass('schema_version') IS NOT NULL").fetchone()
    current = 0
    if row and row[0]:
        current = int(
            conn.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchall()[0][0]
        )
    _check("postgres", current, conn.where)
    return Status("postgres", current, latest("postgres"))


def upgrade_postgres(conn: PgConnection) -> list[int]:
    """Apply the missing versions to a PostgreSQL store in one transaction, under the
    migrations' advisory lock; return the versions applied."""
    from camgate.db.pg import MIGRATION_LOCK

    applied = []
    with conn.transaction(lock=MIGRATION_LOCK):
        conn.execute(_TABLE)
        rows = conn.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchall()
        current = int(rows[0][0])
        _check("postgres", current, conn.where)
        for mig in migrations("postgres")[current:]:
            conn.execute(mig.sql)
            conn.execute(
                "INSERT INTO schema_version VALUES (?, ?, ?)",
                (mig.version, mig.name, datetime.now(UTC).isoformat()),
            )
            applied.append(mig.version)
    conn.forget_tables()
    return applied
