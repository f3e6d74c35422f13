"""The store on PostgreSQL: a connection with sqlite3's surface, and a LISTEN thread.

:class:`PgConnection` is what :class:`camgate.store.Store` (and the modules that write through
``Store.transaction()``) get instead of a ``sqlite3.Connection``: ``execute``/``executemany``
return a cursor with ``rowcount``, ``fetchone``, ``fetchall`` and iteration. The store's SQL is
SQLite's; :func:`translate` rewrites the few forms PostgreSQL spells otherwise (``?``
placeholders, ``INSERT OR IGNORE``/``OR REPLACE``, ``json_extract``, ``IS ?``), once per
statement text. Every table has a ``rowid`` column (insertion order), so ``ORDER BY rowid``
needs no rewriting.

Failures are :class:`~camgate.errors.StorageError` naming the database by
:func:`~camgate.audit.postgres.redact_dsn` (never its password, and the driver's exception is
not chained: its text may hold it). A connection lost mid-transaction rolled the transaction
back on the server; the next call connects again.

:class:`Listener` keeps a ``LISTEN camgate_changes`` connection in a daemon thread: the triggers
of ``sql/postgres/0001_baseline.sql`` NOTIFY at the commit of every change to consent, the
registry, incidents, zones and decisions, and each notification bumps a counter in memory —
:meth:`Store.data_version` on PostgreSQL, read per packet by the edge guard without a query.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, NoReturn

from camgate.errors import StorageError
from camgate.extras import needs_extra

with needs_extra("postgres", "a camgate store in PostgreSQL"):
    import psycopg

    from camgate.audit.postgres import _fail, _scrub, redact_dsn

__all__ = ["CHANNEL", "WRITE_LOCK", "Cursor", "Listener", "PgConnection", "translate"]

#: The NOTIFY channel of committed changes (the triggers' ``pg_notify``).
CHANNEL = "camgate_changes"
#: ``pg_advisory_xact_lock`` key every store write transaction takes first (see Store).
WRITE_LOCK = 0x63616D68
#: ``pg_advisory_xact_lock`` key schema migrations run under.
MIGRATION_LOCK = 0x63616D69

_OR_IGNORE = re.compile(r"^\s*INSERT\s+OR\s+IGNORE\s+INTO\b", re.IGNORECASE)
_OR_REPLACE = re.compile(r"^\s*INSERT\s+OR\s+REPLACE\s+INTO\s+(\w+)\s*(\(([^)]*)\))?", re.I)
_REPLACE_VERB = re.compile(r"^\s*INSERT\s+OR\s+REPLACE\s+INTO", re.IGNORECASE)
_JSON_EXTRACT = re.compile(r"json_extract\(\s*([\w.]+)\s*,\s*'\$\.(\w+)'\s*\)")
_IS_PARAM = re.compile(r"\bIS\s+\?")
_CAST_REAL = re.compile(r"\bAS\s+REAL\)", re.IGNORECASE)
_VALUES = re.compile(r"\bVALUES\s*\(([^)]*)\)", re.IGNORECASE)

_ROLLED_BACK = "the transaction was rolled back; nothing of it was written"

#: Per table: its columns in order, and those of its primary key.
Tables = dict[str, tuple[tuple[str, ...], tuple[str, ...]]]


def translate(sql: str, tables: Tables, with_params: bool) -> str:
    """SQLite's ``sql`` as PostgreSQL reads it (``tables``: for ``INSERT OR REPLACE``, which
    becomes ``ON CONFLICT (primary key) DO UPDATE`` of every other column and a new rowid, as
    SQLite's delete-and-insert gives). ``with_params``: ``?`` become ``%s`` (and ``%`` is
    doubled); without parameters the text is passed as is."""
    out = _JSON_EXTRACT.sub(r"(\1::jsonb ->> '\2')", sql)
    out = _CAST_REAL.sub("AS DOUBLE PRECISION)", out)
    out = _IS_PARAM.sub("IS NOT DISTINCT FROM ?", out)
    if _OR_IGNORE.match(out):
        out = _OR_IGNORE.sub("INSERT INTO", out, count=1) + " ON CONFLICT DO NOTHING"
    elif m := _OR_REPLACE.match(out):
        table = m.group(1)
        if table not in tables:
            raise StorageError(f"INSERT OR REPLACE into unknown table {table!r}")
        columns, key = tables[table]
        if m.group(3):
            given = [c.strip() for c in m.group(3).split(",")]
        else:
            values = _VALUES.search(out)
            count = len(values.group(1).split(",")) if values else len(columns)
            given = list(columns[:count])
        updates = [f"{c} = EXCLUDED.{c}" for c in given if c not in key]
        if "rowid" in columns and "rowid" not in given:
            updates.append("rowid = DEFAULT")
        action = f"DO UPDATE SET {', '.join(updates)}" if updates else "DO NOTHING"
        out = _REPLACE_VERB.sub("INSERT INTO", out, count=1)
        out += f" ON CONFLICT ({', '.join(key)}) {action}"
    if with_params:
        out = out.replace("%", "%%").replace("?", "%s")
    return out


_TABLES_SQL = """
SELECT c.relname, a.attname, coalesce(a.attnum = ANY(i.indkey), false)
FROM pg_class c
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
LEFT JOIN pg_index i ON i.indrelid = c.oid AND i.indisprimary
WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind = 'r'
ORDER BY c.relname, a.attnum
"""


class Cursor:
    """What :meth:`PgConnection.execute` returns: sqlite3's cursor surface (a statement
    without rows fetches none, as in SQLite)."""

    def __init__(self, cur: psycopg.Cursor[Any]) -> None:
        self._cur = cur
        #: Rows the statement changed (-1 when not known).
        self.rowcount = cur.rowcount

    def fetchone(self) -> tuple[Any, ...] | None:
        """The next row, or None."""
        return None if self._cur.description is None else self._cur.fetchone()

    def fetchall(self) -> list[tuple[Any, ...]]:
        """Every remaining row."""
        return [] if self._cur.description is None else self._cur.fetchall()

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        return iter(self.fetchall())


class PgConnection:
    """One psycopg connection to ``dsn`` with the ``sqlite3.Connection`` surface the store uses.

    Autocommit, except inside :meth:`transaction`; ``synchronous_commit`` is on, so a commit
    returned once it is flushed to the server's WAL. Connects on first use and again after the
    server went away. Not thread-safe: the store serialises its use under its locks.
    """

    def __init__(
        self,
        dsn: str,
        *,
        conn: psycopg.Connection[Any] | None = None,
        tables: Tables | None = None,
    ) -> None:
        self._dsn = dsn
        self.where = redact_dsn(dsn)
        #: ``conn`` given: another's connection inside its open transaction (never reconnected).
        self._borrowed = conn is not None
        self._conn: psycopg.Connection[Any] | None = conn
        self._tables: Tables | None = tables
        self._sql: dict[tuple[str, bool], str] = {}
        self._in_tx = False

    def __repr__(self) -> str:
        return f"PgConnection({self.where!r})"

    def fail(self, exc: BaseException, doing: str = "") -> NoReturn:
        """Raise the StorageError for the driver error ``exc`` (password-free, not chained)."""
        if not doing:
            doing = (
                _ROLLED_BACK
                if self._in_tx or self._borrowed
                else "connection lost; the next call connects again"
            )
        what = f" ({doing})" if doing else ""
        _fail(f"PostgreSQL store {self.where}{what}: {_scrub(self._dsn, exc)}", StorageError)

    def _live(self) -> psycopg.Connection[Any]:
        conn = self._conn
        if conn is not None and (self._borrowed or (not conn.closed and not conn.broken)):
            return conn
        if conn is not None:
            conn.close()
            self._conn = None
        try:
            conn = psycopg.connect(self._dsn, autocommit=True, connect_timeout=10)
            conn.execute("SET synchronous_commit = on")
        except psycopg.Error as exc:
            self.fail(exc, "cannot connect; is the server running?")
        self._conn = conn
        return conn

    @property
    def in_transaction(self) -> bool:
        """Whether a transaction is open on the connection."""
        conn = self._conn
        return conn is not None and not conn.closed and conn.info.transaction_status != 0

    def tables(self) -> Tables:
        """Every table's columns and primary key (read once)."""
        if self._tables is None:
            found: dict[str, tuple[list[str], list[str]]] = {}
            for table, column, key in self._live().execute(_TABLES_SQL).fetchall():
                cols, keys = found.setdefault(table, ([], []))
                cols.append(column)
                if key:
                    keys.append(column)
            self._tables = {t: (tuple(c), tuple(k)) for t, (c, k) in found.items()}
        return self._tables

    def forget_tables(self) -> None:
        """Read the tables again on next need (after a migration changed them)."""
        self._tables = None
        self._sql.clear()

    def _translated(self, sql: str, with_params: bool) -> str:
        key = (sql, with_params)
        out = self._sql.get(key)
        if out is None:
            needs = _OR_REPLACE.match(sql) is not None
            out = self._sql[key] = translate(sql, self.tables() if needs else {}, with_params)
        return out

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        """Run one statement (or, without parameters, several) and return its cursor."""
        conn = self._live()
        try:
            if params:
                return Cursor(conn.execute(self._translated(sql, True), tuple(params)))
            return Cursor(conn.execute(self._translated(sql, False)))
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            self.fail(exc)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> Cursor:
        """Run one statement once per row of parameters."""
        conn = self._live()
        cur = conn.cursor()
        try:
            cur.executemany(self._translated(sql, True), [tuple(r) for r in rows])
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            self.fail(exc)
        return Cursor(cur)

    @contextmanager
    def transaction(self, lock: int | None = WRITE_LOCK) -> Iterator[PgConnection]:
        """One transaction, committed when the block ends (rolled back on an exception); first
        takes the advisory transaction lock ``lock`` (None: none)."""
        conn = self._live()
        try:
            with conn.transaction():
                self._in_tx = True
                if lock is not None:
                    conn.execute("SELECT pg_advisory_xact_lock(%s)", (lock,))
                yield self
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            self.fail(exc, _ROLLED_BACK)
        finally:
            self._in_tx = False

    def close(self) -> None:
        """Close the connection (not a borrowed one). Idempotent."""
        if self._conn is not None and not self._borrowed:
            self._conn.close()
            self._conn = None


class Listener:
    """``LISTEN camgate_changes`` in a daemon thread; :meth:`version` grows with every
    notification and every :meth:`bump`.

    While the listening connection is down (server restarting, network cut) nothing can be
    known about other processes' commits, so :meth:`version` then returns a new number on
    every call: whatever is cached on it is read again (and a query that cannot reach the
    server fails with StorageError).
    """

    def __init__(self, dsn: str, *, poll_s: float = 0.25) -> None:
        self._dsn = dsn
        self._poll = poll_s
        self._n = 0
        self._up = False
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="camgate-listen", daemon=True)
        self._thread.start()

    def version(self) -> int:
        """The counter (a new value on every call while the listener is down)."""
        with self._lock:
            if not self._up:
                self._n += 1
            return self._n

    def bump(self) -> None:
        """Count a change (this process's own commits)."""
        with self._lock:
            self._n += 1

    @property
    def listening(self) -> bool:
        """Whether the LISTEN connection is up (notifications are being received)."""
        return self._up

    def _set_up(self, up: bool) -> None:
        with self._lock:
            self._up = up
            self._n += 1

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with psycopg.connect(self._dsn, autocommit=True, connect_timeout=10) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self._set_up(True)
                    while not self._stop.is_set():
                        for _ in conn.notifies(timeout=self._poll):
                            self.bump()
            except psycopg.Error:
                pass
            self._set_up(False)
            self._stop.wait(self._poll)

    def close(self) -> None:
        """Stop listening (within one poll interval). Idempotent."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
