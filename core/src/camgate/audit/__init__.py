"""The tamper-evident audit log: every decision, grant, access and revocation, hash-chained.

Layout (the format is in :mod:`camgate.audit.chain`, storage in :mod:`camgate.audit.sqlite`):

- each record is hash-chained to the one before it (an edit, deletion or reordering breaks the
  chain at that record) and to the previous record about each owner it concerns (one sub-chain
  per owner);
- signed checkpoints (Ed25519, the hub's key) commit to the chain head and to a Merkle root over
  every owner's head, so a truncation or a rewritten history is detected, and an owner can check
  their own slice between two checkpoints with :func:`verify_owner_slice`;
- :meth:`AuditLog.append` returns only when its record is durable (group commit shares one fsync
  between concurrent appends); the gate appends before the media a record describes flows.

The backend is a seam: :class:`AuditBackend` is what a store must provide (SQLite by default,
PostgreSQL when a DSN is given: ``AuditLog(store, dsn=...)`` or ``CAMGATE_AUDIT_DSN``) —
chaining happens inside the backend's write transaction, with the format, group commit and
checkpoint policy shared (:mod:`camgate.audit.base`).
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import attrs

from camgate.audit.base import Entry, Row
from camgate.audit.chain import (
    GENESIS,
    AuditRecord,
    ChainVerifier,
    Checkpoint,
    VerifyResult,
    leaf_hash,
    merkle_path,
    record_hash,
    verify_merkle_path,
    verify_records,
)
from camgate.audit.fastverify import default_workers, fast_verify
from camgate.audit.seal import read_seal, seal_path
from camgate.audit.sqlite import SQLiteAuditBackend
from camgate.codec import canonical
from camgate.errors import AuditError, ConfigError, NotFound, StorageError
from camgate.grants import GrantSigner
from camgate.store import Store, connect

__all__ = [
    "GENESIS",
    "AuditBackend",
    "AuditLog",
    "AUDIT_DSN_ENV",
    "AuditRecord",
    "Checkpoint",
    "OwnerSlice",
    "SliceResult",
    "VerifyResult",
    "hub_signer",
    "record_hash",
    "subjects",
    "verify_owner_slice",
    "verify_records",
]


class AuditBackend(Protocol):
    """What an audit store provides. Chaining and checkpoints happen in its write transaction."""

    public_key: bytes | None
    log_id: str | None

    def append(self, entry: Entry) -> AuditRecord:
        """Chain and durably commit one entry; return its record."""

    def checkpoint(self) -> Checkpoint | None:
        """Sign the current head now."""

    def rows(self, after: int | None = 0, until: int | None = None) -> Iterator[Row]:
        """Stored texts of the records ``after < seq <= until`` in order (None: unbounded)."""

    def owner_rows(self, owner: str, after: int, until: int) -> list[Row]:
        """Stored texts of one owner's records in ``(after, until]``."""

    def owner_heads_at(self, seq: int) -> list[tuple[str, str, int]]:
        """Every owner's head as of record ``seq``, sorted by owner."""

    def checkpoints(self) -> list[Checkpoint]:
        """Every checkpoint, oldest first."""

    def close(self) -> None:
        """Release the connection."""


_log = logging.getLogger(__name__)

AUDIT_DSN_ENV = "CAMGATE_AUDIT_DSN"
"""Environment variable naming a PostgreSQL database for the audit log (unset: SQLite)."""

_OWNER_KEYS = frozenset({"owner", "owner_id"})
_CAMERA_KEYS = frozenset({"camera", "camera_id"})
_CAMERA_LIST_KEYS = frozenset({"camera_ids", "cameras"})


def subjects(body: Any) -> tuple[set[str], set[str]]:
    """The owner ids and camera ids a record body names, at any depth.

    Keys ``owner``/``owner_id`` name an owner; ``camera``/``camera_id`` a camera;
    ``camera_ids``/``cameras`` a list of cameras. This is how a record is tied to the owners it
    is about (cameras through their owner), which decides the sub-chains it joins.
    """
    owners: set[str] = set()
    cameras: set[str] = set()
    stack = [body]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key, value in item.items():
                if key in _OWNER_KEYS and isinstance(value, str):
                    owners.add(value)
                elif key in _CAMERA_KEYS and isinstance(value, str):
                    cameras.add(value)
                elif key in _CAMERA_LIST_KEYS and isinstance(value, list):
                    cameras.update(v for v in value if isinstance(v, str))
                elif isinstance(value, dict | list):
                    stack.append(value)
        elif isinstance(item, list):
            stack.extend(item)
    return owners, cameras


def _history(store_path: Path) -> str | None:
    """What shows that the SQLite store at ``store_path`` already has an audit log (None:
    nothing), read without writing anything."""
    for seal in [seal_path(store_path), *store_path.parent.glob(f"{store_path.stem}.pg-*.seal")]:
        if seal.exists():
            return f"is sealed ({seal})"
    if not store_path.exists() or store_path.stat().st_size == 0:
        return None
    conn = connect(store_path, read_only=True)
    try:
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if not {"audit", "audit_checkpoints"} <= names:
            return None
        records = conn.execute("SELECT count(*) FROM audit").fetchone()[0]
        cps = conn.execute("SELECT count(*) FROM audit_checkpoints").fetchone()[0]
    except sqlite3.Error as exc:
        raise StorageError(f"cannot read {store_path}: {exc}") from exc
    finally:
        conn.close()
    return f"holds {records} records and {cps} checkpoints" if records or cps else None


def hub_signer(store_path: str | Path, key_path: str | Path | None = None) -> GrantSigner:
    """The hub's signing key for the store at ``store_path`` (``key_path``, default ``.key``
    beside it), created (mode 0600) only for a store whose audit log has no record, checkpoint
    or seal yet. A missing key for a log that has them is ConfigError naming the file: a new
    key could not vouch for the old checkpoints, and verification would report every record
    after them unproven — restore the key file instead."""
    store_path = Path(store_path)
    key = Path(key_path) if key_path is not None else store_path.with_suffix(".key")
    if key.exists():
        return GrantSigner.load(key)
    history = _history(store_path)
    if history is not None:
        raise ConfigError(
            f"the signing key {key} is missing, but the audit log in {store_path} {history}; "
            "a key is never recreated for a log that has records: restore the key file"
        )
    return GrantSigner.load_or_create(key)


def _to_record(row: Row) -> AuditRecord:
    seq, at, kind, body, owners, prev, digest = row
    return AuditRecord(seq, at, kind, json.loads(body), prev, digest, json.loads(owners))


class AuditLog:
    """Append-only, hash-chained, checkpointed log (in the store's file by default).

    ``AuditLog(store)`` keeps the log in the store's SQLite file and signs checkpoints with the
    hub's key beside it (``.key``, created when missing), or with ``signer``. With ``dsn`` (or,
    when no ``dsn`` or ``backend`` is passed, the ``CAMGATE_AUDIT_DSN`` environment variable) the
    log lives in that PostgreSQL database instead, shared by every process pointed at it (they
    must share the hub's key to sign its checkpoints). ``owner_of`` maps a camera id to its owner
    (the store's registry by default).

    With a store, every checkpoint is also pinned in a seal file beside it
    (:mod:`camgate.audit.seal`; ``seal`` names another file), which verification checks, so a
    log cut back with its checkpoints is ``truncated``. ``read_only`` opens the log for
    reading only: nothing is created or written (no key, no table, no journal), the key beside
    the store is read when it exists (for :meth:`verify`), and appends fail.
    """

    def __init__(
        self,
        store: Store | None = None,
        *,
        signer: GrantSigner | None = None,
        backend: AuditBackend | None = None,
        owner_of: Callable[[str], str | None] | None = None,
        checkpoint_every: int = 4096,
        checkpoint_interval_s: float = 60.0,
        dsn: str | None = None,
        read_only: bool = False,
        seal: str | Path | None = None,
    ) -> None:
        self._store = store
        self.key_path = Path(store.path).with_suffix(".key") if store is not None else None
        self.seal_path: Path | None = Path(seal) if seal is not None else None
        if backend is None:
            dsn = dsn or os.environ.get(AUDIT_DSN_ENV) or None
            if dsn is None and store is not None and store.dsn is not None:
                dsn = store.dsn  # a store in PostgreSQL keeps its audit log there too
            if store is None and (dsn is None or (signer is None and not read_only)):
                raise AuditError("AuditLog needs a store, or a DSN and a signer, or a backend")
            if signer is None and store is not None:
                if not read_only:
                    signer = hub_signer(store.path)
                elif self.key_path is not None and self.key_path.exists():
                    signer = GrantSigner.load(self.key_path)
            options: dict[str, Any] = {
                "sign": None if signer is None else signer.sign_message,
                "public_key": None if signer is None else signer.public_key,
                "checkpoint_every": checkpoint_every,
                "checkpoint_interval_s": checkpoint_interval_s,
                "read_only": read_only,
            }
            if dsn is not None:
                from camgate.audit.postgres import PostgresAuditBackend, redact_dsn

                if self.seal_path is None and store is not None:
                    self.seal_path = seal_path(store.path, redact_dsn(dsn))
                backend = PostgresAuditBackend(dsn, seal=self.seal_path, **options)
            else:
                assert store is not None
                if self.seal_path is None:
                    self.seal_path = seal_path(store.path)
                backend = SQLiteAuditBackend(store.path, seal=self.seal_path, **options)
            if not read_only:
                self._seal_leftovers(backend)
        self.backend: AuditBackend = backend
        if owner_of is None and store is not None:
            owner_of = self._registry_owner
        self._owner_of = owner_of

    @staticmethod
    def _seal_leftovers(backend: Any) -> None:
        """Sign what a dead process left unsealed (see ChainingBackend.seal_leftovers); a failure
        is logged, not raised: the records are durable, only their signature waits."""
        try:
            backend.seal_leftovers()
        except Exception as exc:
            _log.warning("audit log: could not sign the records left unsealed: %s", exc)

    def _registry_owner(self, camera_id: str) -> str | None:
        assert self._store is not None
        rows = self._store.query("SELECT owner_id FROM cameras WHERE id=?", (camera_id,))
        return rows[0][0] if rows else None

    @property
    def public_key(self) -> bytes | None:
        """The Ed25519 key checkpoints are signed with (raw 32 bytes), if any."""
        return self.backend.public_key

    def append(self, kind: str, body: dict[str, Any], at: datetime | None = None) -> AuditRecord:
        """Append one record and return it once it is durable on disk.

        ``kind`` is an :class:`camgate.vocab.AuditKind` (its text is what is stored and hashed).
        The record joins the sub-chain of every owner it names (directly or through a camera).
        Raises AuditError when the record cannot be written; callers must then not serve media.
        """
        return self.backend.append(self.entry(kind, body, at))

    @property
    def shares_store(self) -> bool:
        """True when the log lives in the store's own SQLite file, or in the PostgreSQL
        database the store is in, so a store change and its record can commit in one
        transaction (:meth:`append_with`)."""
        backend, store = self.backend, self._store
        if store is None:
            return False
        if store.dsn is not None:
            from camgate.audit.postgres import PostgresAuditBackend

            return isinstance(backend, PostgresAuditBackend) and backend.dsn == store.dsn
        return (
            isinstance(backend, SQLiteAuditBackend)
            and backend.path.resolve() == Path(store.path).resolve()
        )

    def append_with(
        self, kind: str, change: Callable[[], dict[str, Any]], at: datetime | None = None
    ) -> AuditRecord:
        """Make a store change and append its record in one transaction (:attr:`shares_store`).

        ``change`` runs with the log's write lock held and every store write of this thread
        joined to the transaction; it returns the record's body. Both commit, or neither.
        """
        store = self._store
        if store is None or not self.shares_store:
            raise AuditError("append_with needs the audit log in the store's own database")
        backend = self.backend
        if isinstance(backend, SQLiteAuditBackend):

            def make(tx: Any) -> Entry:
                with store.joined(tx.db):
                    body = change()
                return self.entry(kind, body, at)

            return backend.append_within(make)
        from camgate.audit.postgres import PostgresAuditBackend
        from camgate.db.pg import WRITE_LOCK

        assert isinstance(backend, PostgresAuditBackend)  # shares_store says so

        def make_pg(tx: Any) -> Entry:
            with store.joined_postgres(tx.conn):
                body = change()
            return self.entry(kind, body, at)

        # The store's lock, then its advisory lock, then the log's: the order every writer of
        # the store keeps (a store transaction that appends takes them so), so none deadlock.
        with store.write_lock(), backend.first_lock(WRITE_LOCK):
            return backend.append_within(make_pg)

    def has_record(self, kind: str, body: dict[str, Any], after: int) -> bool:
        """True when a record of ``kind`` with exactly this body has a seq above ``after``."""
        has = getattr(self.backend, "has_record", None)
        if has is None:
            raise AuditError("this audit backend cannot look records up")
        return bool(has(kind, canonical(body).decode(), after))

    def last_seq(self) -> int:
        """The highest record seq stored (0 for an empty log)."""
        last = getattr(self.backend, "last_seq", None)
        return int(last()) if last is not None else 0

    def entry(self, kind: str, body: dict[str, Any], at: datetime | None = None) -> Entry:
        """The entry :meth:`append` chains for ``body``: its canonical text and its owners."""
        kind = str(kind)  # an AuditKind is stored (and hashed) as its plain text
        when = (at or datetime.now(UTC)).isoformat()
        try:
            text = canonical(body).decode()  # the exact JSON that is hashed
            owners, cameras = subjects(json.loads(text))
        except (ValueError, TypeError) as exc:
            raise AuditError(f"audit record {kind!r} could not be written: {exc}") from exc
        if self._owner_of is not None:
            for camera in cameras:
                owner = self._owner_of(camera)
                if owner is not None:
                    owners.add(owner)
        return Entry(kind, when, text, tuple(sorted(owners)))

    def checkpoint(self) -> Checkpoint | None:
        """Sign the current chain head now (None when there is nothing new or no key)."""
        return self.backend.checkpoint()

    def witness(self) -> dict[str, Any] | None:
        """A checkpoint to hand to someone outside the store's directory (an owner's notice).

        Signs the current head first when records are unsealed, so the checkpoint covers every
        record written so far (the one a notice is about included), then returns the log's
        latest checkpoint as exported (``{"type": "checkpoint", "payload", "signature"}``;
        the payload names ``seq``, ``head``, ``at``, ``log`` and ``key``). Whoever keeps it can
        later prove the log was not cut back below it: ``camgate audit verify --witness``.
        None when the log has no checkpoint (no key) or cannot be read; a failure to sign is
        logged and the latest stored checkpoint is returned instead: a notice is never lost
        over its witness.
        """
        try:
            self.backend.checkpoint()
        except Exception as exc:
            _log.warning("audit log: could not sign a checkpoint for a witness: %s", exc)
        latest = getattr(self.backend, "latest_checkpoint", None)
        try:
            cps = [latest()] if latest is not None else self.backend.checkpoints()[-1:]
            cp = cps[0] if cps else None
        except Exception as exc:
            _log.warning("audit log: could not read the latest checkpoint: %s", exc)
            return None
        return None if cp is None else cp.to_json()

    def close(self) -> None:
        """Release the log's connection."""
        self.backend.close()

    def records(self, kind: str | None = None) -> Iterator[AuditRecord]:
        """Every record in order (or only those of one kind)."""
        for row in self.backend.rows():
            if kind is None or row[2] == kind:
                yield _to_record(row)

    def checkpoints(self) -> list[Checkpoint]:
        """Every checkpoint, oldest first."""
        return self.backend.checkpoints()

    def verify(
        self,
        *,
        public_key: bytes | None = None,
        known: Iterable[Checkpoint] = (),
        workers: int | None = None,
        records_per_worker: int = 50_000,
    ) -> VerifyResult:
        """Check the chain, every owner sub-chain and every checkpoint; name the first bad record.

        Checkpoint signatures are checked against ``public_key`` (default: this log's key).
        ``known`` are witnesses: checkpoints kept outside the store's directory (an owner's
        notice, an earlier export). Each must carry a valid signature (else ValidationError);
        a log cut back below one of them is ``truncated``, one rewritten under it ``broken``.
        With at least one witness a passing log is ``verified``; without, ``consistent``: the
        seal beside the store can be rolled back by whoever can write that directory (see
        :class:`VerifyResult`).

        A large log is checked in ranges by ``workers`` processes (default: one per CPU, at most
        8; one per ``records_per_worker`` records) and the ranges merged
        (:mod:`camgate.audit.fastverify`) — on SQLite with ``camgate-native`` installed, by
        threads running its compiled scan; if anything fails there, the log is verified again
        record by record, so the result — and the first bad record it names — is the same.

        The seal file (when this log has one) is checked as a known checkpoint: a log cut back
        below it is ``truncated``, a missing seal leaves a non-empty log ``unpinned``, and a log
        with no record is ``empty`` (see :class:`VerifyResult`). With no key at all (none given,
        no key file) a log with checkpoints cannot be checked: ConfigError naming the key file.
        """
        key = public_key if public_key is not None else self.public_key
        cps = self.backend.checkpoints()
        seal = read_seal(self.seal_path) if self.seal_path is not None else None
        known = list(known)
        if key is None and (cps or seal is not None or known):
            where = self.key_path if self.key_path is not None else "the hub's key"
            raise ConfigError(
                f"signing key missing: {where} does not exist, so the checkpoints cannot be "
                "checked; give the hub's public key (--key HEX)"
            )

        def verifier() -> ChainVerifier:
            return ChainVerifier(
                cps,
                key,
                known,
                seal=seal,
                sealed=self.seal_path is not None,
                log_id=self.backend.log_id,
            )

        range_reader = getattr(self.backend, "range_reader", None)
        last_seq = getattr(self.backend, "last_seq", None)
        native_scanner = getattr(self.backend, "native_scanner", None)
        if range_reader is not None and last_seq is not None:
            fast = fast_verify(
                verifier(),
                range_reader(),
                last_seq(),
                workers=default_workers() if workers is None else workers,
                records_per_worker=records_per_worker,
                native=None if native_scanner is None else native_scanner(),
            )
            if fast is not None:
                return fast
        return verifier().run(self.backend.rows(after=None))

    def export_jsonl(
        self, *, public_key: bytes | None = None, unverified: bool = False
    ) -> Iterator[str]:
        """The log as JSON Lines: a header, then each record, each checkpoint after its record.

        Lines are ``{"type": "log", ...}``, ``{"type": "record", ...}`` and
        ``{"type": "checkpoint", "payload": ..., "signature": ...}``; docs/audit.md says how a
        third party verifies them.

        The log is verified first (:meth:`verify`, against ``public_key`` or this log's key):
        one that does not verify raises AuditError naming the verdict and the first bad record,
        before any line is produced. With ``unverified`` it is exported anyway, marked: the
        header carries ``"verified": false`` and the verdict, a record that cannot be read is
        an ``{"type": "unreadable", "seq": ...}`` line, and the seal, when the log no longer
        holds the checkpoint it pins, ends the export — so no verifier passes the file.
        """
        result = self.verify(public_key=public_key, workers=1)
        if not result.ok and not unverified:
            where = f" at record {result.first_bad}" if result.first_bad is not None else ""
            raise AuditError(
                f"the audit log does not verify ({result.status}{where}: {result.problem}); "
                "nothing exported"
            )
        cps = self.backend.checkpoints()
        header: dict[str, Any] = {"type": "log", "format": 1, "log": self.backend.log_id}
        if self.public_key is not None:
            header["key"] = self.public_key.hex()
        if not result.ok:
            header |= {
                "verified": False,
                "status": result.status,
                "first_bad": result.first_bad,
                "problem": result.problem,
            }
        yield json.dumps(header, sort_keys=True)
        i = 0
        for row in self.backend.rows(after=None):
            try:
                line = json.dumps({"type": "record", **_to_record(row).to_json()}, sort_keys=True)
            except (ValueError, TypeError) as exc:
                line = json.dumps({"type": "unreadable", "seq": str(row[0]), "problem": str(exc)})
            yield line
            while i < len(cps) and cps[i].seq == row[0]:
                yield json.dumps(cps[i].to_json(), sort_keys=True)
                i += 1
        seal = read_seal(self.seal_path) if self.seal_path is not None else None
        if seal is not None and all(c.signature != seal.signature for c in cps):
            yield json.dumps(seal.to_json(), sort_keys=True)

    def owner_slice(
        self, owner: str, since: int | None = None, until: int | None = None
    ) -> OwnerSlice:
        """Every record about ``owner`` between two checkpoints, with the proof nothing is missing.

        ``since``/``until`` are checkpoint seqs (``since`` None: from the start of the log;
        ``until`` None: the latest checkpoint). Raises NotFound when there is no such checkpoint
        or the owner has no record by ``until`` (proofs of absence are not offered).
        """
        cps = {c.seq: c for c in self.backend.checkpoints()}
        if not cps:
            raise NotFound("the audit log has no checkpoint yet")
        end_seq = max(cps) if until is None else until
        if end_seq not in cps or (since is not None and since not in cps):
            raise NotFound(f"no checkpoint at record {until if end_seq not in cps else since}")
        start = cps[since] if since is not None else None
        if start is not None and start.seq >= end_seq:
            raise NotFound("the first checkpoint must come before the second")

        def proof(cp: Checkpoint) -> tuple[dict[str, Any], int, list[str]] | None:
            heads = self.backend.owner_heads_at(cp.seq)
            leaves = [leaf_hash(o, h, s) for o, h, s in heads]
            for i, (o, h, s) in enumerate(heads):
                if o == owner:
                    path = [p.hex() for p in merkle_path(leaves, i)]
                    return {"owner": o, "head": h, "seq": s}, i, path
            return None

        end = proof(cps[end_seq])
        if end is None:
            raise NotFound(f"owner {owner!r} has no audit record by record {end_seq}")
        begin = proof(start) if start is not None else None
        if begin is None:
            start = None  # nothing about the owner before `since`: prove from the beginning
        after = start.seq if start is not None else 0
        rows = self.backend.owner_rows(owner, after, end_seq)
        return OwnerSlice(
            owner=owner,
            start=start,
            start_leaf=begin[0] if begin else None,
            start_index=begin[1] if begin else 0,
            start_path=begin[2] if begin else [],
            end=cps[end_seq],
            end_leaf=end[0],
            end_index=end[1],
            end_path=end[2],
            records=[_to_record(r) for r in rows],
        )


@attrs.frozen
class OwnerSlice:
    """One owner's records between two signed checkpoints, with Merkle proofs of their heads.

    ``start`` None means from the beginning of the log (the owner's first record then links to
    GENESIS). See docs/audit.md for what it proves.
    """

    owner: str
    start: Checkpoint | None
    start_leaf: dict[str, Any] | None
    start_index: int
    start_path: list[str]
    end: Checkpoint
    end_leaf: dict[str, Any]
    end_index: int
    end_path: list[str]
    records: list[AuditRecord]

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form (what ``camgate audit slice`` prints)."""
        return {
            "owner": self.owner,
            "start": self.start.to_json() if self.start else None,
            "start_leaf": self.start_leaf,
            "start_index": self.start_index,
            "start_path": self.start_path,
            "end": self.end.to_json(),
            "end_leaf": self.end_leaf,
            "end_index": self.end_index,
            "end_path": self.end_path,
            "records": [r.to_json() for r in self.records],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> OwnerSlice:
        """Read a slice printed by ``camgate audit slice``."""
        return cls(
            owner=data["owner"],
            start=Checkpoint.from_json(data["start"]) if data.get("start") else None,
            start_leaf=data.get("start_leaf"),
            start_index=int(data.get("start_index", 0)),
            start_path=list(data.get("start_path", [])),
            end=Checkpoint.from_json(data["end"]),
            end_leaf=data["end_leaf"],
            end_index=int(data["end_index"]),
            end_path=list(data["end_path"]),
            records=[AuditRecord(**r) for r in data["records"]],
        )


@attrs.frozen
class SliceResult:
    """Whether an owner's slice is complete and authentic between its two checkpoints."""

    ok: bool
    owner: str
    records: int
    since: int
    until: int
    problem: str = ""

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form."""
        return attrs.asdict(self)


def verify_owner_slice(piece: OwnerSlice, public_key: bytes) -> SliceResult:
    """Check that ``piece`` holds every record about its owner between its two checkpoints.

    Both checkpoints must be signed by ``public_key``; the owner's head at each must be a leaf of
    that checkpoint's owners' Merkle root; and the records, each with a correct hash, must link
    one to the next from the first head (or GENESIS) to the second. A record left out, added,
    edited or reordered breaks one of these.
    """
    since = piece.start.seq if piece.start else 0
    until = piece.end.seq

    def bad(problem: str) -> SliceResult:
        return SliceResult(False, piece.owner, len(piece.records), since, until, problem)

    prev, after = GENESIS, 0
    for name, cp, leaf, index, path in (
        ("first", piece.start, piece.start_leaf, piece.start_index, piece.start_path),
        ("second", piece.end, piece.end_leaf, piece.end_index, piece.end_path),
    ):
        if cp is None:
            continue
        if not cp.signature_ok(public_key):
            return bad(f"the {name} checkpoint's signature does not verify")
        if leaf is None or leaf.get("owner") != piece.owner:
            return bad(f"the {name} checkpoint's proof is not about {piece.owner!r}")
        ok = verify_merkle_path(
            leaf_hash(leaf["owner"], leaf["head"], int(leaf["seq"])),
            index,
            int(cp.payload["owners"]),
            [bytes.fromhex(p) for p in path],
            bytes.fromhex(cp.payload["owners_root"]),
        )
        if not ok:
            return bad(f"the owner's head is not in the {name} checkpoint's owners root")
        if name == "first":
            prev, after = leaf["head"], since
    for r in piece.records:
        if not after < r.seq <= until:
            return bad(f"record {r.seq} is outside records {after + 1}..{until} or out of order")
        if record_hash(r.seq, r.at, r.kind, r.body, r.prev, r.owners) != r.hash:
            return bad(f"record {r.seq}: content does not match its hash")
        if r.owners.get(piece.owner) != prev:
            return bad(f"record {r.seq}: the owner's sub-chain is broken (a record left out?)")
        prev, after = r.hash, r.seq
    if piece.end_leaf.get("head") != prev:
        return bad("the records do not end at the owner's head signed in the second checkpoint")
    return SliceResult(True, piece.owner, len(piece.records), since, until)
