"""What every audit store shares: group commit, chaining a batch, and the checkpoint policy.

A store (SQLite, PostgreSQL) subclasses :class:`ChainingBackend` and provides one thing: a write
transaction (:meth:`ChainingBackend._transaction`) that yields a :class:`WriteTx`, which has
already taken the store's write lock (SQLite ``BEGIN IMMEDIATE``; PostgreSQL a row lock), and
offers a few reads and writes of the audit tables. Everything else — who leads a group commit,
how entries are chained, when a checkpoint is due and what it signs — is here, once.

Group commit without a background thread (leader/follower): an appender puts its entry on the
pending list; if no commit is under way it becomes the leader, takes every pending entry, chains
and commits them in one transaction, then wakes the others. Entries that arrive during that
commit wait for the next one. Each :meth:`ChainingBackend.append` returns only after the COMMIT
that holds its record, so durability per record is unchanged while the flush is shared by every
record of the batch.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import attrs

from camgate.audit.chain import GENESIS, AuditRecord, Checkpoint, leaf_hash, merkle_root, preimage
from camgate.audit.seal import read_seal, write_seal
from camgate.codec import canonical
from camgate.errors import AuditError, CamgateError

__all__ = ["ChainingBackend", "Entry", "Row", "WriteTx"]

_log = logging.getLogger(__name__)

Row = tuple[int, str, str, str, str, str, str]
"""A stored record's texts: ``(seq, at, kind, body, owners, prev, hash)``."""


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


class WriteTx(Protocol):
    """The audit tables inside one write transaction that holds the store's write lock."""

    def head(self) -> tuple[int, str]:
        """The last record's ``(seq, hash)``, or ``(0, GENESIS)`` for an empty log."""

    def owner_heads(self, owners: Collection[str]) -> dict[str, tuple[str, int]]:
        """``owner -> (hash, seq)`` of each named owner's last record (absent: none yet)."""

    def insert(
        self,
        rows: list[Row],
        owner_rows: list[tuple[str, int]],
        heads: dict[str, tuple[str, int]],
    ) -> None:
        """Insert records, their ``(owner, seq)`` index rows, and the owners' new heads."""

    def last_checkpoint(self) -> tuple[int, str, str, str] | None:
        """The latest checkpoint's ``(seq, at, payload text, signature)``."""

    def all_owner_heads(self) -> list[tuple[str, str, int]]:
        """Every owner's head ``(owner, hash, seq)``, sorted by owner."""

    def insert_checkpoint(self, seq: int, at: str, payload: str, signature: str) -> None:
        """Store a signed checkpoint."""


def chain(
    batch: list[_Pending], seq: int, prev: str, heads: dict[str, tuple[str, int]]
) -> tuple[list[Row], list[tuple[str, int]], dict[str, tuple[str, int]], int, str]:
    """Chain ``batch`` after record ``seq`` (hash ``prev``), given the owners' current heads.

    Sets each pending entry's record; returns the rows, the owner index rows, the owners' new
    heads (only those that moved), and the new chain head ``(seq, hash)``.
    """
    rows: list[Row] = []
    owner_rows: list[tuple[str, int]] = []
    moved: dict[str, tuple[str, int]] = {}
    sha, dumps = hashlib.sha256, canonical
    for p in batch:
        e = p.entry
        seq += 1
        links = {owner: heads.get(owner, (GENESIS, 0))[0] for owner in e.owners}
        owners_text = dumps(links).decode()
        digest = sha(preimage(seq, e.at, e.kind, e.body, owners_text, prev)).hexdigest()
        rows.append((seq, e.at, e.kind, e.body, owners_text, prev, digest))
        for owner in links:
            heads[owner] = moved[owner] = (digest, seq)
            owner_rows.append((owner, seq))
        p.record = AuditRecord(seq, e.at, e.kind, json.loads(e.body), prev, digest, links)
        prev = digest
    return rows, owner_rows, moved, seq, prev


def rows_sql(after: int | None, until: int | None) -> str:
    """The SELECT of the stored texts of rows ``after < seq <= until`` (None: unbounded), in
    seq order, for SQLite and PostgreSQL alike.

    The first range (``after`` None) also takes every row whose seq is NULL, which no
    comparison admits: ranges must cover every row of the table, whatever an attacker put in
    it, so that some range sees it and doubts.
    """
    if after is None:
        where = "" if until is None else f"WHERE (seq IS NULL OR seq <= {int(until)})"
    elif until is None:
        where = f"WHERE seq > {int(after)}"
    else:
        where = f"WHERE seq > {int(after)} AND seq <= {int(until)}"
    # S608: the only values joined in are int() of the bounds.
    return f"SELECT seq, at, kind, body, owners, prev, hash FROM audit {where} ORDER BY seq"  # noqa: S608


class ChainingBackend(ABC):
    """Group commit, chaining and checkpoints over a store's :class:`WriteTx`.

    ``sign`` (bytes → Ed25519 signature) and ``public_key`` enable checkpoints: one every
    ``checkpoint_every`` records, or at the first commit ``checkpoint_interval_s`` after the last
    one, and whenever :meth:`checkpoint` is called. ``group_commit=False`` commits each record on
    its own (the naive baseline the benchmark compares with).

    Records are not left unsealed on an idle system: ``checkpoint_interval_s`` after a commit
    that left records without a checkpoint, a timer signs them, and :meth:`close` signs what
    this process left unsealed. Each checkpoint is pinned in the ``seal`` file (when given)
    once its transaction committed (:mod:`camgate.audit.seal`).
    """

    log_id: str | None  # None: a read-only log whose store has no audit tables yet
    _keep_cause = True  # False where a driver's message could carry a secret (it is scrubbed)

    def __init__(
        self,
        *,
        sign: Callable[[bytes], bytes] | None = None,
        public_key: bytes | None = None,
        checkpoint_every: int = 4096,
        checkpoint_interval_s: float = 60.0,
        group_commit: bool = True,
        seal: Path | None = None,
    ) -> None:
        self._sign, self.public_key = sign, public_key
        self.seal = seal
        self._unsealed = False  # this process committed records no checkpoint covers yet
        self._timer: threading.Timer | None = None
        self.checkpoint_every, self.checkpoint_interval_s = checkpoint_every, checkpoint_interval_s
        self._group = group_commit
        self._cv = threading.Condition()
        self._pending: list[_Pending] = []
        self._leading = False
        self._exclusive = 0  # committers waiting in _lead(): they go before the next batch
        self._closed = False

    @abstractmethod
    def _transaction(self) -> AbstractContextManager[WriteTx]:
        """A write transaction holding the store's write lock; commits on a clean exit."""

    def _store_error(self, exc: BaseException) -> str | None:
        """The message for a store-level failure (None: not a store error, re-raise as is)."""
        return str(exc) if isinstance(exc, OSError | ValueError | TypeError) else None

    @abstractmethod
    def _close_store(self) -> None:
        """Close the store's connections."""

    # ------------------------------------------------------------------ reading

    @abstractmethod
    def _read(self, sql: str, params: Sequence[Any]) -> list[Any]:
        """Run one read-only query (``?`` placeholders) on a fresh snapshot; all its rows."""

    def owner_rows(self, owner: str, after: int, until: int) -> list[Row]:
        """Every stored record about ``owner`` with ``after < seq <= until``, in order."""
        return [
            (int(r[0]), r[1], r[2], r[3], r[4], r[5], r[6])
            for r in self._read(
                "SELECT a.seq, a.at, a.kind, a.body, a.owners, a.prev, a.hash "
                "FROM audit_owner_records o JOIN audit a ON a.seq = o.seq "
                "WHERE o.owner = ? AND o.seq > ? AND o.seq <= ? ORDER BY o.seq",
                (owner, after, until),
            )
        ]

    def owner_heads_at(self, seq: int) -> list[tuple[str, str, int]]:
        """Every owner's head ``(owner, hash, seq)`` as of record ``seq``, sorted by owner
        (in code-point order, as the Merkle tree wants; sorted here, not by the database's
        collation)."""
        return sorted(
            (o, h, int(s))
            for o, s, h in self._read(
                "SELECT o.owner, o.seq, a.hash FROM ("
                "  SELECT owner, MAX(seq) AS seq FROM audit_owner_records WHERE seq <= ?"
                "  GROUP BY owner) o JOIN audit a ON a.seq = o.seq",
                (seq,),
            )
        )

    def last_seq(self) -> int:
        """The highest record seq stored (0 for an empty log)."""
        rows = self._read("SELECT max(seq) FROM audit", ())
        top = rows[0][0] if rows else 0
        # Only integers are ever written; anything else (a rewritten table) places no bound:
        # 0 makes the fast path one range, whose first row then fails the seq check.
        return top if type(top) is int and top > 0 else 0

    def checkpoints(self) -> list[Checkpoint]:
        """Every stored checkpoint, oldest first. One whose payload is not a JSON object (a
        tampered row) is kept as an unreadable checkpoint at its row's seq, which verification
        then rejects, rather than stopping the reader."""
        found = []
        for seq, p, s in self._read(
            "SELECT seq, payload, signature FROM audit_checkpoints ORDER BY seq", ()
        ):
            try:
                payload = json.loads(p)
            except (ValueError, TypeError):
                payload = None
            if not isinstance(payload, dict) or type(payload.get("seq")) is not int:
                payload = {"seq": seq if type(seq) is int else 0, "head": "", "unreadable": True}
            found.append(Checkpoint(payload, str(s)))
        return found

    def latest_checkpoint(self) -> Checkpoint | None:
        """The log's latest stored checkpoint (None when it has none)."""
        rows = self._read(
            "SELECT payload, signature FROM audit_checkpoints ORDER BY seq DESC LIMIT 1", ()
        )
        if not rows:
            return None
        payload, signature = rows[0]
        try:
            return Checkpoint.from_json({"payload": json.loads(payload), "signature": signature})
        except (ValueError, TypeError):
            return None  # a tampered row: verification names it

    # ------------------------------------------------------------------ writing

    def seal_leftovers(self) -> Checkpoint | None:
        """On a writable open: sign the records a dead process left after the latest checkpoint,
        and bring a seal file that lags the log's latest checkpoint up to it (a process killed
        between a checkpoint's commit and its seal). Returns the checkpoint now sealed, if any.

        Sealing only moves forward, and only this hub's key signs. Nothing is done when the
        seal file is missing, unreadable or another log's while the log has records: that is the
        ``unpinned`` (or ``truncated``) verdict's evidence, not for an open to paper over (the
        next regular checkpoint writes a new seal, as before).
        """
        if self._sign is None or self.public_key is None or self.seal is None:
            return None
        latest, last = self.latest_checkpoint(), self.last_seq()
        if latest is None and last == 0:
            return None  # a new log: its first commit signs a checkpoint
        try:
            seal = read_seal(self.seal)
        except AuditError:
            return None
        if seal is None or seal.payload.get("log") != self.log_id:
            return None
        if last > (latest.seq if latest is not None else 0):
            return self.checkpoint()  # writes the seal too
        if latest is not None:
            write_seal(self.seal, latest)  # a no-op unless the seal lags behind
        return latest

    def append(self, entry: Entry) -> AuditRecord:
        """Chain and commit one entry; return its record once the COMMIT holding it is done."""
        mine = _Pending(entry)
        with self._cv:
            if self._closed:
                raise AuditError("the audit log is closed")
            self._pending.append(mine)
            while (self._leading or self._exclusive) and not mine.done:
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
            raise self._as_audit_error(entry.kind, mine.error)
        assert mine.record is not None
        return mine.record

    def append_within(self, make: Callable[[WriteTx], Entry]) -> AuditRecord:
        """Commit one record in the same write transaction as other work on the store.

        ``make`` runs inside the transaction, after its write lock is taken; it does its work
        through the transaction (the SQLite backend's ``tx.db``) and returns the entry to chain.
        Its work and the record commit together or not at all; if it raises, neither does.
        """
        with self._lead():
            try:
                with self._transaction() as tx:
                    mine = _Pending(make(tx))
                    cp, wrote = self._chain_into(tx, [mine], force_checkpoint=False)
                self._sealed_after_commit(cp, wrote)
            except CamgateError:
                raise  # the work refused (nothing was written): its own error
            except Exception as exc:
                raise self._as_audit_error("change", exc) from exc
        assert mine.record is not None
        return mine.record

    def has_record(self, kind: str, body: str, after: int) -> bool:
        """True when a record of ``kind`` with exactly the body text ``body`` has a seq above
        ``after`` (a bounded look, for settling an interrupted change)."""
        return bool(
            self._read(
                "SELECT 1 FROM audit WHERE seq > ? AND kind = ? AND body = ? LIMIT 1",
                (after, kind, body),
            )
        )

    def checkpoint(self) -> Checkpoint | None:
        """Sign the current head now (None when there is no key or nothing new to sign)."""
        with self._lead():
            try:
                return self._commit([], force_checkpoint=True)
            except Exception as exc:
                error = self._as_audit_error("checkpoint", exc)
        raise error  # outside the handler: no implicit link to a driver error that was scrubbed

    @contextmanager
    def _lead(self) -> Iterator[None]:
        """Be the only committer (no group commit runs meanwhile) for the block."""
        with self._cv:
            if self._closed:
                raise AuditError("the audit log is closed")
            # Announced first, so group commits queue behind it instead of starving it.
            self._exclusive += 1
            try:
                while self._leading:
                    self._cv.wait()
            finally:
                self._exclusive -= 1
            self._leading = True
        try:
            yield
        finally:
            with self._cv:
                self._leading = False
                self._cv.notify_all()

    def close(self) -> None:
        """Sign what this process left unsealed, then close the store once no commit is under
        way. Idempotent."""
        self._seal_pending()
        with self._cv:
            if self._timer is not None:
                self._timer.cancel()
            while self._leading:
                self._cv.wait()
            if not self._closed:
                self._closed = True
                self._close_store()

    def _commit(self, batch: list[_Pending], *, force_checkpoint: bool) -> Checkpoint | None:
        with self._transaction() as tx:
            cp, wrote = self._chain_into(tx, batch, force_checkpoint=force_checkpoint)
        self._sealed_after_commit(cp, wrote)
        return cp

    def _chain_into(
        self, tx: WriteTx, batch: list[_Pending], *, force_checkpoint: bool
    ) -> tuple[Checkpoint | None, bool]:
        """Chain ``batch`` into the open transaction ``tx``; return the checkpoint written (if
        any) and whether any record was."""
        seq, prev = tx.head()
        wanted = {o for p in batch for o in p.entry.owners}
        heads = tx.owner_heads(wanted) if wanted else {}
        rows, owner_rows, moved, seq, prev = chain(batch, seq, prev, heads)
        if rows:
            tx.insert(rows, owner_rows, moved)
        return self._maybe_checkpoint(tx, seq, prev, force=force_checkpoint), bool(rows)

    def _sealed_after_commit(self, cp: Checkpoint | None, wrote: bool) -> None:
        """After a commit: copy a new checkpoint to the seal file, or arm the timer that signs
        records left unsealed."""
        if cp is not None:
            self._unsealed = False
            if self.seal is not None:
                write_seal(self.seal, cp)
        elif wrote and self._sign is not None:
            self._unsealed = True
            self._arm_timer()

    def _arm_timer(self) -> None:
        """Sign the records just committed ``checkpoint_interval_s`` from now, if no append
        does it first (called by the commit's leader)."""
        with self._cv:
            if self._timer is not None or self._closed:
                return
            self._timer = threading.Timer(self.checkpoint_interval_s, self._on_timer)
            self._timer.daemon = True
            self._timer.start()

    def _on_timer(self) -> None:
        with self._cv:
            self._timer = None
        self._seal_pending()

    def _seal_pending(self) -> None:
        """Checkpoint the records this process left unsealed (errors are logged: the records
        themselves are durable, only their signature waits for the next checkpoint)."""
        if not self._unsealed or self._closed:
            return
        try:
            self.checkpoint()
        except Exception as exc:  # a timer or close() has no caller to tell
            _log.warning("audit log: could not sign the unsealed records: %s", exc)

    def _check_pinned_key(self, pinned: str | None, where: str) -> None:
        """Raise AuditError when the log is pinned to another key than this process signs with
        (the first writer pins its key; a hub whose ``.key`` was lost or replaced is refused)."""
        if pinned is None or self.public_key is None or pinned == self.public_key.hex():
            return
        self._close_store()
        raise AuditError(
            f"the audit log in {where} is sealed with key {pinned[:16]}…, not this hub's key "
            f"{self.public_key.hex()[:16]}…: the signing key (.key beside the store) is not the "
            "one the log was started with; restore it (processes sharing a log must share the "
            "hub's key)"
        )

    def _maybe_checkpoint(
        self, tx: WriteTx, seq: int, head: str, *, force: bool
    ) -> Checkpoint | None:
        if self._sign is None or self.public_key is None or seq == 0:
            return None
        last = tx.last_checkpoint()
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
        leaves = tx.all_owner_heads()
        root = merkle_root([leaf_hash(o, h, s) for o, h, s in leaves])
        payload: dict[str, Any] = {
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
        cp = Checkpoint(payload, self._sign(Checkpoint(payload, "").message()).hex())
        tx.insert_checkpoint(seq, payload["at"], canonical(payload).decode(), cp.signature)
        return cp

    def _as_audit_error(self, kind: str, exc: BaseException) -> BaseException:
        if isinstance(exc, AuditError):
            return exc
        message = self._store_error(exc)
        if message is None:
            return exc
        err = AuditError(f"audit record {kind!r} could not be written: {message}")
        err.__cause__ = exc if self._keep_cause else None
        return err
