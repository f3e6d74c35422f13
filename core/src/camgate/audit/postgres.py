"""The audit log's PostgreSQL backend: one log shared by several camgate processes.

Same tables, same chain format and the same group commit as SQLite (:mod:`camgate.audit.base`);
what differs is how writers are serialized. Each batch is one transaction that first takes a
row lock on the log's row in ``audit_meta`` (``SELECT ... FOR UPDATE``), then reads the chain
head and the owners' heads, inserts, and commits. Processes queue on that lock, so any number of
them extend one chain; inside a process the leader/follower group commit shares one transaction
(and one WAL flush) between concurrent appenders. ``synchronous_commit`` is set ``on`` for the
session, so COMMIT returns only once the record is flushed to the server's WAL: an append is
durable when it returns (given the server runs with ``fsync=on``, the default).

Record texts are stored as ``text``, not ``jsonb``: the hash is over the exact canonical bytes,
which ``jsonb`` would not keep.

The DSN may hold a password; it never appears in a repr, a log line or an error from here
(:func:`redact_dsn`); prefer ``PGPASSWORD`` or ``~/.pgpass``, which libpq reads itself.
"""

from __future__ import annotations

import functools
import re
import threading
import urllib.parse
import uuid
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, NoReturn

from camgate.audit.base import ChainingBackend, Row, WriteTx, rows_sql
from camgate.audit.chain import GENESIS
from camgate.audit.fastverify import NativeScan
from camgate.errors import AuditError, CamgateError
from camgate.extras import needs_extra

with needs_extra("postgres", "the PostgreSQL audit log"):
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

__all__ = ["PostgresAuditBackend", "redact_dsn"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS audit (
    seq BIGINT PRIMARY KEY, at TEXT NOT NULL, kind TEXT NOT NULL, body TEXT NOT NULL,
    owners TEXT NOT NULL DEFAULT '{}', prev TEXT NOT NULL, hash TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS audit_owner_records (
    owner TEXT NOT NULL, seq BIGINT NOT NULL, PRIMARY KEY (owner, seq));
CREATE TABLE IF NOT EXISTS audit_owner_heads (
    owner TEXT PRIMARY KEY, seq BIGINT NOT NULL, hash TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS audit_checkpoints (
    seq BIGINT PRIMARY KEY, at TEXT NOT NULL, payload TEXT NOT NULL, signature TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS audit_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
_SCHEMA_LOCK = 0x63616D67  # pg_advisory_xact_lock key: creating the tables once at a time


def redact_dsn(dsn: str) -> str:
    """The DSN's user, host, port and database, never its password (or anything else): no
    4-character run of any text that may be the password (:func:`hide_password`) survives,
    even where a malformed DSN made libpq read part of it as a host or a user."""
    parts = _parse(dsn)
    if parts is None:
        return "postgresql://(unreadable DSN)"
    user = f"{parts['user']}@" if parts.get("user") else ""
    host = str(parts.get("host") or "")
    port = f":{parts['port']}" if parts.get("port") else ""
    return hide_password(dsn, f"postgresql://{user}{host}{port}/{parts.get('dbname') or ''}")


def _parse(dsn: str) -> dict[str, Any] | None:
    try:
        return conninfo_to_dict(dsn)
    except (psycopg.Error, ValueError, TypeError):
        return None


_URI = re.compile(r"\s*postgres(?:ql)?://", re.IGNORECASE)
_NEXT_QUERY_KEY = re.compile(r"&[A-Za-z_%0-9]+=")
_NEXT_KEY = re.compile(r"\s+[A-Za-z_]+\s*=")
_PASSWORD_KEY = re.compile(r"password\s*=\s*", re.IGNORECASE)
_QUOTED = re.compile(r'"([^"]*)"|\'([^\']*)\'')
_MIN_RUN = 4  # no run of this many characters of a password candidate is ever shown


def password_candidates(dsn: str) -> set[str]:
    """Every text of ``dsn`` that may be its password or part of it, whether or not libpq can
    parse the DSN: the parsed password; in a URL, everything between the first ``:`` of the
    user part and the last ``@``, and each ``password=`` query value to the next parameter; in
    key=value form, each ``password`` value (quoted, or to the next ``key=``); each also
    percent-decoded and unescaped. Deliberately generous: hiding too much costs a less
    specific message, hiding too little a password."""
    found: set[str] = set()
    parsed = _parse(dsn)
    if parsed and parsed.get("password"):
        found.add(str(parsed["password"]))
    uri = _URI.match(dsn)
    if uri:
        rest = dsn[uri.end() :]
        userinfo = rest[: max(rest.rfind("@"), 0)]
        if ":" in userinfo:
            found.add(userinfo.split(":", 1)[1])
        for key in re.finditer(r"[?&]([^=&]*)=", rest):
            if "password" in urllib.parse.unquote(key.group(1)).lower():
                value = rest[key.end() :]
                stop = _NEXT_QUERY_KEY.search(value)
                found.add(value[: stop.start()] if stop else value)
    else:
        for key in _PASSWORD_KEY.finditer(dsn):
            value = dsn[key.end() :]
            if value.startswith("'"):
                end = re.search(r"(?<!\\)'", value[1:])
                found.add(value[1 : end.start() + 1] if end else value[1:])
            stop = _NEXT_KEY.search(value)
            found.add(value[: stop.start()] if stop else value)
    for text in list(found):
        found.add(urllib.parse.unquote(text, errors="replace"))
        found.add(text.replace("\\'", "'").replace("\\\\", "\\"))
    return {t for t in found if t}


def hide_password(dsn: str, text: str) -> str:
    """``text`` with every run of at least four characters that occurs in one of ``dsn``'s
    :func:`password_candidates` replaced by ``***`` (and shorter candidates where they stand
    whole)."""
    candidates = password_candidates(dsn)
    if not candidates:
        return text
    hidden = [False] * len(text)
    for secret in candidates:
        if len(secret) < _MIN_RUN:
            start = text.find(secret)
            while start >= 0 and len(secret) >= 3:
                hidden[start : start + len(secret)] = [True] * len(secret)
                start = text.find(secret, start + 1)
            continue
        for i in range(len(text) - _MIN_RUN + 1):
            n = _MIN_RUN
            if text[i : i + n] not in secret:
                continue
            while i + n < len(text) and text[i : i + n + 1] in secret:
                n += 1
            hidden[i : i + n] = [True] * n
    out, i = [], 0
    while i < len(text):
        if hidden[i]:
            while i < len(text) and hidden[i]:
                i += 1
            out.append("***")
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def _fail(message: str, error: type[CamgateError] = AuditError) -> NoReturn:
    """Raise ``error(message)`` (AuditError by default) linked to no other exception: the
    driver's exception, whose text may hold the password, is neither its cause nor its context
    (which ``from None`` only hides from tracebacks; loggers and error trackers walk it)."""
    err = error(message)
    try:
        raise err
    finally:
        err.__cause__ = err.__context__ = None
        err.__suppress_context__ = True


@contextmanager
def _snapshot(dsn: str) -> Iterator[psycopg.Connection[Any]]:
    """A read-only REPEATABLE READ transaction; errors say where, never the password."""
    try:
        conn = psycopg.connect(dsn, connect_timeout=30)
    except psycopg.Error as exc:
        _fail(f"cannot read the audit log in {redact_dsn(dsn)}: {_scrub(dsn, exc)}")
    try:
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        yield conn
    except psycopg.Error as exc:
        _fail(f"cannot read the audit log in {redact_dsn(dsn)}: {_scrub(dsn, exc)}")
    finally:
        conn.close()


def read_rows(dsn: str, after: int | None, until: int | None) -> Iterator[Row]:
    """Rows ``after < seq <= until`` (None: unbounded) of the log at ``dsn``, in seq order."""
    with _snapshot(dsn) as conn, conn.cursor(name="audit_rows") as cur:
        cur.itersize = 20_000
        cur.execute(rows_sql(after, until))
        yield from cur


def _scrub(dsn: str, exc: BaseException) -> str:
    """The first line of a driver error about ``dsn``, safe to show: quoted texts other than
    the DSN's parsed host, port, user and database become ``"…"`` (libpq quotes the pieces of
    a DSN it cannot read, the password among them), then :func:`hide_password`."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    parsed = _parse(dsn) or {}
    fields = ("host", "hostaddr", "port", "user", "dbname")
    shown = {str(parsed[k]) for k in fields if parsed.get(k)}

    def quoted(m: re.Match[str]) -> str:
        inner = m.group(1) if m.group(1) is not None else m.group(2)
        return m.group(0) if inner in shown else m.group(0)[0] + "…" + m.group(0)[0]

    return hide_password(dsn, _QUOTED.sub(quoted, text))


class _PgTx:
    """The audit tables inside a transaction holding the log's row lock."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn

    def head(self) -> tuple[int, str]:
        row = self.conn.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
        return (int(row[0]), str(row[1])) if row else (0, GENESIS)

    def owner_heads(self, owners: Collection[str]) -> dict[str, tuple[str, int]]:
        rows = self.conn.execute(
            "SELECT owner, hash, seq FROM audit_owner_heads WHERE owner = ANY(%s)",
            (list(owners),),
        ).fetchall()
        return {o: (h, int(s)) for o, h, s in rows}

    def insert(
        self,
        rows: list[Row],
        owner_rows: list[tuple[str, int]],
        heads: dict[str, tuple[str, int]],
    ) -> None:
        with self.conn.cursor() as cur:
            with cur.copy(
                "COPY audit (seq, at, kind, body, owners, prev, hash) FROM STDIN"
            ) as copy:
                for row in rows:
                    copy.write_row(row)
            if owner_rows:
                with cur.copy("COPY audit_owner_records (owner, seq) FROM STDIN") as copy:
                    for owner_row in owner_rows:
                        copy.write_row(owner_row)
            if heads:
                cur.executemany(
                    "INSERT INTO audit_owner_heads (owner, seq, hash) VALUES (%s, %s, %s) "
                    "ON CONFLICT (owner) DO UPDATE SET seq = EXCLUDED.seq, hash = EXCLUDED.hash",
                    [(o, s, h) for o, (h, s) in sorted(heads.items())],
                )

    def last_checkpoint(self) -> tuple[int, str, str, str] | None:
        row = self.conn.execute(
            "SELECT seq, at, payload, signature FROM audit_checkpoints ORDER BY seq DESC LIMIT 1"
        ).fetchone()
        return (int(row[0]), row[1], row[2], row[3]) if row else None

    def all_owner_heads(self) -> list[tuple[str, str, int]]:
        rows = self.conn.execute("SELECT owner, hash, seq FROM audit_owner_heads").fetchall()
        return sorted((o, h, int(s)) for o, h, s in rows)  # code-point order, any collation

    def insert_checkpoint(self, seq: int, at: str, payload: str, signature: str) -> None:
        self.conn.execute(
            "INSERT INTO audit_checkpoints (seq, at, payload, signature) VALUES (%s, %s, %s, %s)",
            (seq, at, payload, signature),
        )


class PostgresAuditBackend(ChainingBackend):
    """The audit tables in a PostgreSQL database named by ``dsn`` (a libpq URL or key=value).

    Several processes may append to one database at once (a row lock serializes chaining);
    within a process, concurrent appends share a transaction (group commit). Checkpoint options
    as :class:`~camgate.audit.sqlite.SQLiteAuditBackend`. The DSN's password is never shown:
    ``repr`` and errors name the database by :func:`redact_dsn`.
    """

    _keep_cause = False  # psycopg's messages are scrubbed of the password and not chained

    def __init__(self, dsn: str, *, read_only: bool = False, **options: Any) -> None:
        super().__init__(**options)  # sign, public_key, checkpoint_every/_interval_s, group_commit
        self._dsn = dsn
        self._first_lock = threading.local()
        self.where = redact_dsn(dsn)
        if read_only:  # create nothing, pin nothing: read the log's id if there is a log
            self._sign = None
            self._conn: psycopg.Connection[Any] | None = None
            try:
                found = (
                    self._read("SELECT value FROM audit_meta WHERE key='log'", ())
                    if self._has_log()
                    else []
                )
            except AuditError as exc:  # already scrubbed; said as any open would say it
                _fail(str(exc).replace("cannot read", "cannot open", 1))
            self.log_id = str(found[0][0]) if found else None
            return
        try:
            self._conn = self._connect()
            with self._conn.transaction():
                self._conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
                for statement in filter(str.strip, _SCHEMA.split(";")):
                    self._conn.execute(statement)
                self._conn.execute(
                    "INSERT INTO audit_meta VALUES ('log', %s) ON CONFLICT DO NOTHING",
                    (uuid.uuid4().hex,),
                )
                row = self._conn.execute("SELECT value FROM audit_meta WHERE key='log'").fetchone()
                sealed = None
                if self._sign is not None and self.public_key is not None:
                    self._conn.execute(
                        "INSERT INTO audit_meta VALUES ('key', %s) ON CONFLICT DO NOTHING",
                        (self.public_key.hex(),),
                    )
                    sealed = self._conn.execute(
                        "SELECT value FROM audit_meta WHERE key='key'"
                    ).fetchone()
        except psycopg.Error as exc:
            _fail(f"cannot open the audit log in {self.where}: {self._scrub(exc)}")
        assert row is not None
        self.log_id = str(row[0])
        self._check_pinned_key(None if sealed is None else str(sealed[0]), self.where)

    def __repr__(self) -> str:
        return f"PostgresAuditBackend({self.where!r}, log={self.log_id!r})"

    @property
    def dsn(self) -> str:
        """The database's DSN (may hold a password: never show it; :attr:`where` is safe)."""
        return self._dsn

    def _connect(self) -> psycopg.Connection[Any]:
        conn = psycopg.connect(self._dsn, autocommit=True, connect_timeout=30)
        conn.execute("SET synchronous_commit = on")
        return conn

    def _scrub(self, exc: BaseException) -> str:
        return _scrub(self._dsn, exc)

    @contextmanager
    def _transaction(self) -> Iterator[WriteTx]:
        conn = self._conn
        if conn is None:
            raise AuditError(f"the audit log in {self.where} was opened read-only")
        with conn.transaction():
            first = getattr(self._first_lock, "key", None)
            if first is not None:  # the store's write lock, always taken before the log's
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (first,))
            conn.execute("SELECT 1 FROM audit_meta WHERE key = 'log' FOR UPDATE")
            yield _PgTx(conn)

    @contextmanager
    def first_lock(self, key: int) -> Iterator[None]:
        """Within the block, this thread's write transactions take the advisory transaction
        lock ``key`` before the log's row lock (:meth:`camgate.audit.AuditLog.append_with`
        joins the store's writes, which hold the store's lock, to the log's transaction: the
        two locks are then taken in the store's order, never the other way round)."""
        self._first_lock.key = key
        try:
            yield
        finally:
            self._first_lock.key = None

    def _store_error(self, exc: BaseException) -> str | None:
        if isinstance(exc, psycopg.Error | OSError | ValueError | TypeError):
            return f"{self.where}: {self._scrub(exc)}"
        return None

    def _close_store(self) -> None:
        if self._conn is not None:
            self._conn.close()

    def _has_log(self) -> bool:
        found = self._read("SELECT to_regclass('audit_meta') IS NOT NULL", ())
        return bool(found and found[0][0])

    # ------------------------------------------------------------------ reading

    def rows(self, after: int | None = 0, until: int | None = None) -> Iterator[Row]:
        """Stored texts ``(seq, at, kind, body, owners, prev, hash)`` in order, from one
        snapshot (a server-side cursor: memory stays flat however long the log). ``after``
        None: from the very first row, whatever its seq."""
        return read_rows(self._dsn, after, until)

    def range_reader(self) -> Callable[[int | None, int | None], Iterator[Row]]:
        """A picklable ``rows`` for worker processes (parallel verification)."""
        return functools.partial(read_rows, self._dsn)

    def native_scanner(self) -> NativeScan | None:
        """The compiled range check bound to this database, when ``camgate-native`` is installed
        (None otherwise: verification then runs the Python fast path)."""
        try:
            from camgate_native import scan_postgres
        except ImportError:
            return None
        return functools.partial(scan_postgres, self._dsn)

    def _read(self, sql: str, params: Sequence[Any]) -> list[Any]:
        with _snapshot(self._dsn) as conn:
            return conn.execute(sql.replace("?", "%s"), tuple(params)).fetchall()
