"""The audit log's SQLite backend: group commit, checkpoints written in the same transaction.

Group commit, chaining and the checkpoint policy are :mod:`camgate.audit.base` (shared with
PostgreSQL); here a batch is written in one ``BEGIN IMMEDIATE ... COMMIT`` (``synchronous=FULL``,
WAL), so each append is durable when it returns while the fsync is shared by the batch.

The chain's head and each owner's head are read inside the write transaction, so several
processes appending to one file (the hub and the CLI) still extend one chain.
"""

from __future__ import annotations

import functools
import sqlite3
import uuid
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from camgate.audit.base import ChainingBackend, Entry, Row, WriteTx, _Pending, rows_sql
from camgate.audit.chain import GENESIS
from camgate.audit.fastverify import NativeScan
from camgate.errors import AuditError
from camgate.store import connect, sqlite_errors, storage_error

__all__ = ["Entry", "Row", "SQLiteAuditBackend", "_Pending"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY, at TEXT NOT NULL, kind TEXT NOT NULL, body TEXT NOT NULL,
    prev TEXT NOT NULL, hash TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS audit_owner_records (
    owner TEXT NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (owner, seq)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS audit_owner_heads (
    owner TEXT PRIMARY KEY, seq INTEGER NOT NULL, hash TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS audit_checkpoints (
    seq INTEGER PRIMARY KEY, at TEXT NOT NULL, payload TEXT NOT NULL, signature TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS audit_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


def _lenient_text(raw: bytes) -> str:
    return raw.decode("utf-8", "replace")


def read_rows(
    path: Path, after: int | None, until: int | None, *, lenient: bool = False
) -> Iterator[Row]:
    """Rows ``after < seq <= until`` (None: unbounded) of the log in ``path``, in seq order.

    Text that is not UTF-8 (camgate never writes any; someone else did) raises
    ``sqlite3.OperationalError``, or with ``lenient`` is read with U+FFFD in place of the bad
    bytes — so the record's hash no longer matches and verification names it.
    """
    conn = connect(path, read_only=True, timeout=30.0)
    if lenient:
        conn.text_factory = _lenient_text
    try:
        with sqlite_errors(path):
            conn.execute("BEGIN")
            if _has_log(conn):
                yield from conn.execute(rows_sql(after, until))
    finally:
        conn.close()


def _has_log(conn: sqlite3.Connection) -> bool:
    """True when the file has the audit table (a 0-byte or foreign file has none: no rows)."""
    found = conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='audit'")
    return found.fetchone() is not None


class _SQLiteTx:
    """The audit tables inside ``BEGIN IMMEDIATE`` (SQLite's one writer lock)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def head(self) -> tuple[int, str]:
        row = self.db.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
        return (row[0], row[1]) if row else (0, GENESIS)

    def owner_heads(self, owners: Collection[str]) -> dict[str, tuple[str, int]]:
        heads = {}
        for owner in owners:
            h = self.db.execute(
                "SELECT hash, seq FROM audit_owner_heads WHERE owner=?", (owner,)
            ).fetchone()
            if h:
                heads[owner] = (h[0], h[1])
        return heads

    def insert(
        self,
        rows: list[Row],
        owner_rows: list[tuple[str, int]],
        heads: dict[str, tuple[str, int]],
    ) -> None:
        self.db.executemany(
            "INSERT INTO audit (seq, at, kind, body, owners, prev, hash) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        self.db.executemany("INSERT INTO audit_owner_records VALUES (?, ?)", owner_rows)
        self.db.executemany(
            "INSERT OR REPLACE INTO audit_owner_heads VALUES (?, ?, ?)",
            [(o, s, h) for o, (h, s) in heads.items()],
        )

    def last_checkpoint(self) -> tuple[int, str, str, str] | None:
        row = self.db.execute(
            "SELECT seq, at, payload, signature FROM audit_checkpoints ORDER BY seq DESC LIMIT 1"
        ).fetchone()
        return (row[0], row[1], row[2], row[3]) if row else None

    def all_owner_heads(self) -> list[tuple[str, str, int]]:
        return [
            (o, h, s)
            for o, h, s in self.db.execute(
                "SELECT owner, hash, seq FROM audit_owner_heads ORDER BY owner"
            )
        ]

    def insert_checkpoint(self, seq: int, at: str, payload: str, signature: str) -> None:
        self.db.execute(
            "INSERT INTO audit_checkpoints VALUES (?, ?, ?, ?)", (seq, at, payload, signature)
        )


class SQLiteAuditBackend(ChainingBackend):
    """The audit tables in a SQLite file, written through a connection of their own.

    ``sign`` (bytes → Ed25519 signature) and ``public_key`` enable checkpoints: one every
    ``checkpoint_every`` records, or at the first commit ``checkpoint_interval_s`` after the last
    one, and whenever :meth:`checkpoint` is called. ``group_commit=False`` commits each record on
    its own (the naive baseline the benchmark compares with).

    The first writer pins its public key in ``audit_meta``; a writer with another key is refused
    (:meth:`~camgate.audit.base.ChainingBackend._check_pinned_key`). ``read_only`` opens the
    file with ``mode=ro`` (:func:`camgate.store.connect`): no table is created, nothing is
    written, a file without the audit tables reads as an empty log (``log_id`` None), and
    appends fail.
    """

    def __init__(self, path: str | Path, *, read_only: bool = False, **options: Any) -> None:
        super().__init__(**options)  # sign, public_key, checkpoint_every/_interval_s, group_commit
        self.path = Path(path)
        self.read_only = read_only
        if read_only:
            self._sign = None  # a reader never signs
            self._conn = connect(
                self.path, read_only=True, check_same_thread=False, isolation_level=None
            )
            with sqlite_errors(self.path):
                found = (
                    self._conn.execute("SELECT value FROM audit_meta WHERE key='log'").fetchone()
                    if _has_log(self._conn)
                    else None
                )
            self.log_id = None if found is None else str(found[0])
            return
        try:
            self._conn = self._connect()
            self._conn.executescript(_SCHEMA)
            cols = {r[1] for r in self._conn.execute("PRAGMA table_info(audit)")}
            if "owners" not in cols:
                self._conn.execute("ALTER TABLE audit ADD COLUMN owners TEXT NOT NULL DEFAULT '{}'")
            row = self._conn.execute("SELECT value FROM audit_meta WHERE key='log'").fetchone()
            if row is None:
                self._conn.execute(
                    "INSERT OR IGNORE INTO audit_meta VALUES ('log', ?)", (uuid.uuid4().hex,)
                )
                row = self._conn.execute("SELECT value FROM audit_meta WHERE key='log'").fetchone()
            pinned = None
            if self._sign is not None and self.public_key is not None:
                self._conn.execute(
                    "INSERT OR IGNORE INTO audit_meta VALUES ('key', ?)", (self.public_key.hex(),)
                )
                pinned = self._conn.execute(
                    "SELECT value FROM audit_meta WHERE key='key'"
                ).fetchone()
        except sqlite3.Error as exc:
            raise AuditError(f"cannot open the audit log: {storage_error(exc, self.path)}") from exc
        self.log_id = row[0]
        self._check_pinned_key(None if pinned is None else str(pinned[0]), str(self.path))

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path, check_same_thread=False, isolation_level=None, timeout=30.0
        )
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        return conn

    @contextmanager
    def _transaction(self) -> Iterator[WriteTx]:
        db = self._conn
        db.execute("BEGIN IMMEDIATE")
        try:
            yield _SQLiteTx(db)
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def _store_error(self, exc: BaseException) -> str | None:
        if isinstance(exc, sqlite3.Error):
            return str(storage_error(exc, self.path))
        return super()._store_error(exc)

    def _close_store(self) -> None:
        self._conn.close()

    # ------------------------------------------------------------------ reading

    def rows(self, after: int | None = 0, until: int | None = None) -> Iterator[Row]:
        """Stored texts ``(seq, at, kind, body, owners, prev, hash)`` in order, from a fresh
        read connection (a consistent snapshot, not blocking appends). ``after`` None: from
        the very first row, whatever its seq. Text that is not UTF-8 is read with U+FFFD in
        place of the bad bytes (see :func:`read_rows`)."""
        return read_rows(self.path, after, until, lenient=True)

    def range_reader(self) -> Callable[[int | None, int | None], Iterator[Row]]:
        """A picklable ``rows`` for worker processes (parallel verification)."""
        return functools.partial(read_rows, self.path)

    def native_scanner(self) -> NativeScan | None:
        """The compiled range check bound to this file, when ``camgate-native`` is installed
        (None otherwise: verification then runs the Python fast path)."""
        try:
            from camgate_native import scan_sqlite
        except ImportError:
            return None
        return functools.partial(scan_sqlite, self.path)

    def _read(self, sql: str, params: Sequence[Any]) -> list[Any]:
        conn = connect(self.path, read_only=True, timeout=30.0)
        try:
            with sqlite_errors(self.path):
                return conn.execute(sql, tuple(params)).fetchall() if _has_log(conn) else []
        finally:
            conn.close()
