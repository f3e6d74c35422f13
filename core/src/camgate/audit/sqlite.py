"""The audit log's SQLite backend: group commit, checkpoints written in the same transaction.

Group commit without a background thread (leader/follower): an appender puts its entry on the
pending list; if no commit is under way it becomes the leader, takes every pending entry, writes
them in one ``BEGIN IMMEDIATE ... COMMIT`` (``synchronous=FULL``, WAL), then wakes the others.
Entries that arrive during that commit wait for the next one. Each :meth:`append` returns only
after the COMMIT that holds its record, so durability per record is unchanged while the fsync is
shared by every record of the batch.

The chain's head and each owner's head are read inside the write transaction, so several
processes appending to one file (the hub and the CLI) still extend one chain.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import attrs

from camgate.audit.chain import GENESIS, AuditRecord, Checkpoint, leaf_hash, merkle_root, preimage
from camgate.codec import canonical
from camgate.errors import AuditError

__all__ = ["Entry", "SQLiteAuditBackend"]

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

Row = tuple[int, str, str, str, str, str, str]


@attrs.frozen
class Entry:
    """A record waiting to be chained: its canonical body text and the owners it is about."""

    kind: str
    at: str
    body: str
    owners: tuple[str, ...]


class _Pending:
    __slots__ = ("done", "entry", "error", "record")

    def __init__(self, entry: Entry) -> None:
        self.entry = entry
        self.record: AuditRecord | None = None
        self.error: BaseException | None = None
        self.done = False


class SQLiteAuditBackend:
    """The audit tables in a SQLite file, written through a connection of their own.

    ``sign`` (bytes → Ed25519 signature) and ``public_key`` enable checkpoints: one every
    ``checkpoint_every`` records, or at the first commit ``checkpoint_interval_s`` after the last
    one, and whenever :meth:`checkpoint` is called. ``group_commit=False`` commits each record on
    its own (the naive baseline the benchmark compares with).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        sign: Callable[[bytes], bytes] | None = None,
        public_key: bytes | None = None,
        checkpoint_every: int = 4096,
        checkpoint_interval_s: float = 60.0,
        group_commit: bool = True,
    ) -> None:
        self.path = Path(path)
        self._sign, self.public_key = sign, public_key
        self.checkpoint_every, self.checkpoint_interval_s = checkpoint_every, checkpoint_interval_s
        self._group = group_commit
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
        except sqlite3.Error as exc:
            raise AuditError(f"cannot open the audit log in {self.path}: {exc}") from exc
        self.log_id: str = row[0]
        self._cv = threading.Condition()
        self._pending: list[_Pending] = []
        self._leading = False
        self._closed = False

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path, check_same_thread=False, isolation_level=None, timeout=30.0
        )
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        return conn

    # ------------------------------------------------------------------ writing

    def append(self, entry: Entry) -> AuditRecord:
        """Chain and commit one entry; return its record once the COMMIT holding it is done."""
        mine = _Pending(entry)
        with self._cv:
            if self._closed:
                raise AuditError("the audit log is closed")
            self._pending.append(mine)
            while self._leading and not mine.done:
                self._cv.wait()
            if not mine.done:
                self._leading = True
                batch = self._pending if self._group else [mine]
                if self._group:
                    self._pending = []
                else:
                    self._pending.remove(mine)
        if not mine.done:
            try:
                self._commit(batch, force_checkpoint=False)
            except BaseException as exc:
                for p in batch:
                    p.error = exc
            finally:
                with self._cv:
                    for p in batch:
                        p.done = True
                    self._leading = False
                    self._cv.notify_all()
        if mine.error is not None:
            raise _as_audit_error(entry.kind, mine.error)
        assert mine.record is not None
        return mine.record

    def checkpoint(self) -> Checkpoint | None:
        """Sign the current head now (None when there is no key or nothing new to sign)."""
        with self._cv:
            while self._leading:
                self._cv.wait()
            self._leading = True
        try:
            return self._commit([], force_checkpoint=True)
        except Exception as exc:
            raise _as_audit_error("checkpoint", exc) from exc
        finally:
            with self._cv:
                self._leading = False
                self._cv.notify_all()

    def _commit(self, batch: list[_Pending], *, force_checkpoint: bool) -> Checkpoint | None:
        db = self._conn
        db.execute("BEGIN IMMEDIATE")
        try:
            row = db.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
            seq, prev = row if row else (0, GENESIS)
            heads: dict[str, tuple[str, int]] = {}
            rows: list[tuple[Any, ...]] = []
            owner_rows: list[tuple[str, int]] = []
            for p in batch:
                e = p.entry
                seq += 1
                links: dict[str, str] = {}
                for owner in e.owners:
                    if owner not in heads:
                        h = db.execute(
                            "SELECT hash, seq FROM audit_owner_heads WHERE owner=?", (owner,)
                        ).fetchone()
                        heads[owner] = (h[0], h[1]) if h else (GENESIS, 0)
                    links[owner] = heads[owner][0]
                owners_text = canonical(links).decode()
                digest = hashlib.sha256(
                    preimage(seq, e.at, e.kind, e.body, owners_text, prev)
                ).hexdigest()
                rows.append((seq, e.at, e.kind, e.body, owners_text, prev, digest))
                for owner in links:
                    heads[owner] = (digest, seq)
                    owner_rows.append((owner, seq))
                p.record = AuditRecord(seq, e.at, e.kind, json.loads(e.body), prev, digest, links)
                prev = digest
            db.executemany(
                "INSERT INTO audit (seq, at, kind, body, owners, prev, hash) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            db.executemany("INSERT INTO audit_owner_records VALUES (?, ?)", owner_rows)
            db.executemany(
                "INSERT OR REPLACE INTO audit_owner_heads VALUES (?, ?, ?)",
                [(o, s, h) for o, (h, s) in heads.items()],
            )
            cp = self._maybe_checkpoint(db, seq, prev, force=force_checkpoint)
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        return cp

    def _maybe_checkpoint(
        self, db: sqlite3.Connection, seq: int, head: str, *, force: bool
    ) -> Checkpoint | None:
        if self._sign is None or self.public_key is None or seq == 0:
            return None
        last = db.execute(
            "SELECT seq, at, payload, signature FROM audit_checkpoints ORDER BY seq DESC LIMIT 1"
        ).fetchone()
        now = datetime.now(UTC)
        if last is not None:
            if last[0] >= seq:
                return None
            age = (now - datetime.fromisoformat(last[1])).total_seconds()
            if (
                not force
                and seq - last[0] < self.checkpoint_every
                and age < self.checkpoint_interval_s
            ):
                return None
            prev_cp = Checkpoint(json.loads(last[2]), last[3]).digest()
        else:
            prev_cp = GENESIS
        leaves = db.execute(
            "SELECT owner, hash, seq FROM audit_owner_heads ORDER BY owner"
        ).fetchall()
        root = merkle_root([leaf_hash(o, h, s) for o, h, s in leaves])
        payload = {
            "v": 1,
            "log": self.log_id,
            "seq": seq,
            "head": head,
            "at": now.isoformat(),
            "owners": len(leaves),
            "owners_root": root.hex(),
            "prev": prev_cp,
            "key": self.public_key.hex(),
        }
        cp = Checkpoint(payload, "")
        cp = Checkpoint(payload, self._sign(cp.message()).hex())
        db.execute(
            "INSERT INTO audit_checkpoints VALUES (?, ?, ?, ?)",
            (seq, payload["at"], canonical(payload).decode(), cp.signature),
        )
        return cp

    def close(self) -> None:
        """Close the connection once no commit is under way. Idempotent."""
        with self._cv:
            while self._leading:
                self._cv.wait()
            self._closed = True
            self._conn.close()

    # ------------------------------------------------------------------ reading

    def rows(self, after: int = 0, until: int | None = None) -> Iterator[Row]:
        """Stored texts ``(seq, at, kind, body, owners, prev, hash)`` in order, from a fresh
        read connection (a consistent snapshot, not blocking appends)."""
        conn = sqlite3.connect(self.path, timeout=30.0)
        try:
            sql = "SELECT seq, at, kind, body, owners, prev, hash FROM audit WHERE seq > ?"
            params: tuple[int, ...] = (after,)
            if until is not None:
                sql += " AND seq <= ?"
                params = (after, until)
            conn.execute("BEGIN")
            yield from conn.execute(sql + " ORDER BY seq", params)
        finally:
            conn.close()

    def owner_rows(self, owner: str, after: int, until: int) -> list[Row]:
        """Every stored record about ``owner`` with ``after < seq <= until``, in order."""
        return self._read(
            "SELECT a.seq, a.at, a.kind, a.body, a.owners, a.prev, a.hash "
            "FROM audit_owner_records o JOIN audit a ON a.seq = o.seq "
            "WHERE o.owner = ? AND o.seq > ? AND o.seq <= ? ORDER BY o.seq",
            (owner, after, until),
        )

    def owner_heads_at(self, seq: int) -> list[tuple[str, str, int]]:
        """Every owner's head ``(owner, hash, seq)`` as of record ``seq``, sorted by owner."""
        return [
            (o, h, s)
            for o, s, h in self._read(
                "SELECT o.owner, o.seq, a.hash FROM ("
                "  SELECT owner, MAX(seq) AS seq FROM audit_owner_records WHERE seq <= ?"
                "  GROUP BY owner) o JOIN audit a ON a.seq = o.seq ORDER BY o.owner",
                (seq,),
            )
        ]

    def checkpoints(self) -> list[Checkpoint]:
        """Every stored checkpoint, oldest first."""
        return [
            Checkpoint(json.loads(p), s)
            for p, s in self._read(
                "SELECT payload, signature FROM audit_checkpoints ORDER BY seq", ()
            )
        ]

    def _read(self, sql: str, params: Sequence[Any]) -> list[Any]:
        conn = sqlite3.connect(self.path, timeout=30.0)
        try:
            return conn.execute(sql, tuple(params)).fetchall()
        finally:
            conn.close()


def _as_audit_error(kind: str, exc: BaseException) -> BaseException:
    if isinstance(exc, AuditError):
        return exc
    if isinstance(exc, sqlite3.Error | OSError | ValueError | TypeError):
        err = AuditError(f"audit record {kind!r} could not be written: {exc}")
        err.__cause__ = exc
        return err
    return exc
