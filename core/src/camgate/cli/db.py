"""The store's schema: ``camgate db upgrade|status`` (docs/deployment.md, "PostgreSQL")."""

from __future__ import annotations

import argparse
from pathlib import Path

from camgate.cli._common import Builder, print_json
from camgate.db import is_postgres
from camgate.db.migrations import Status, latest
from camgate.errors import StorageError
from camgate.store import Store

__all__ = ["add_parsers"]


def _status(target: str) -> Status:
    """The schema status of ``target`` without changing anything."""
    engine = "postgres" if is_postgres(target) else "sqlite"
    if engine == "sqlite" and not Path(target).exists():
        return Status("sqlite", 0, latest("sqlite"))
    store = Store(target, read_only=True)
    try:
        return store.schema_status()
    finally:
        store.close()


def _show(status: Status, where: str, as_json: bool) -> None:
    if as_json:
        print_json({"store": where} | status.to_json())
    else:
        print(
            f"{where}: {status.engine} schema version {status.current} of {status.latest}"
            + (f" ({status.pending} to apply: camgate db upgrade)" if status.pending else "")
        )


def cmd_db_status(args: argparse.Namespace) -> int:
    """Show the schema version of the store (``--db``: a SQLite file or a PostgreSQL DSN) and
    the newest this camgate ships; changes nothing. A store newer than this camgate is an
    error. Exit 0 whether or not versions are pending (``--json`` says how many)."""
    status = _status(args.db)
    _show(status, _where(args.db), args.json)
    return 0


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    """Bring the store's schema to this camgate's version: apply every missing migration, in
    one transaction, under a lock other camgate processes wait on (``BEGIN IMMEDIATE`` on
    SQLite, an advisory lock on PostgreSQL). Creates the store when missing. Running it again
    changes nothing. A store newer than this camgate is refused (an error, nothing written)."""
    before = _status(args.db)
    store = Store(args.db)  # opening applies what is missing
    try:
        after = store.schema_status()
    finally:
        store.close()
    if after.current != after.latest:  # pragma: no cover - Store raised already
        raise StorageError(f"{_where(args.db)}: schema {after.current}, not {after.latest}")
    applied = list(range(before.current + 1, after.current + 1))
    if args.json:
        print_json({"store": _where(args.db), "applied": applied} | after.to_json())
    elif applied:
        print(f"{_where(args.db)}: applied schema versions {', '.join(map(str, applied))}")
    else:
        print(f"{_where(args.db)}: schema version {after.current} is current; nothing to do")
    return 0


def _where(target: str) -> str:
    if is_postgres(target):
        from camgate.audit.postgres import redact_dsn

        return redact_dsn(target)
    return target


def add_parsers(b: Builder) -> None:
    """Add ``db upgrade`` and ``db status`` to the ``camgate`` parser."""
    db = b.group("db", "the store's schema: versioned migrations")
    for name, func, help_text in (
        ("upgrade", cmd_db_upgrade, "apply the missing schema migrations"),
        ("status", cmd_db_status, "show the schema version and what is pending"),
    ):
        p = b.add(db, name, func, help_text)
        p.add_argument(
            "--db",
            default=argparse.SUPPRESS,
            help="the store (a SQLite file or a postgresql:// DSN; default: the global --db)",
        )
        p.add_argument("--json", action="store_true")
