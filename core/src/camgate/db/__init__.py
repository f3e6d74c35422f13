"""What the store runs on: the engine a target names, its SQL dialect and its migrations.

:class:`camgate.store.Store` keeps one copy of its logic and writes SQLite's SQL; on PostgreSQL
:mod:`camgate.db.pg` gives it a connection with the same ``execute(...).fetchall()/rowcount``
surface that translates the few SQLite-only forms. :mod:`camgate.db.migrations` applies the
versioned schema files under ``camgate/db/sql/<engine>/``.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["DB_ENV", "is_postgres"]

#: The environment variable naming the store (a SQLite path or a PostgreSQL DSN).
DB_ENV = "CAMGATE_DB"


def is_postgres(target: str | Path) -> bool:
    """Whether ``target`` is a PostgreSQL DSN (``postgresql://`` or ``postgres://`` URL) rather
    than the path of a SQLite file."""
    return isinstance(target, str) and target.lower().startswith(("postgresql://", "postgres://"))
