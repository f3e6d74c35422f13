"""The tamper-evident audit log: every decision, grant, access and revocation, hash-chained.

Each record is ``{seq, at, kind, body, prev}``; its hash is SHA-256 over the canonical JSON of
those fields, and ``prev`` is the previous record's hash (64 zeros for the first). Editing,
deleting or reordering a record breaks the chain at that record, which :meth:`AuditLog.verify`
names. :meth:`AuditLog.append` returns only when the record is durable, and the gate appends
before the media a record describes flows.

Signed checkpoints of the chain head (to detect truncation), group commit and an external store
are the audit issue's; this module keeps the chain and its verification in one place.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import attrs

from camgate.codec import canonical
from camgate.errors import AuditError
from camgate.store import Store

__all__ = ["GENESIS", "AuditLog", "AuditRecord", "VerifyResult", "record_hash"]

GENESIS = "0" * 64


@attrs.frozen
class AuditRecord:
    """One entry of the chain."""

    seq: int
    at: str
    kind: str
    body: dict[str, Any]
    prev: str
    hash: str

    def to_json(self) -> dict[str, Any]:
        """The record as exported (every field, hash included)."""
        return attrs.asdict(self)


def record_hash(seq: int, at: str, kind: str, body: dict[str, Any], prev: str) -> str:
    """SHA-256 (hex) of the canonical JSON of a record's fields other than its hash."""
    content = {"seq": seq, "at": at, "kind": kind, "body": body, "prev": prev}
    return hashlib.sha256(canonical(content)).hexdigest()


@attrs.frozen
class VerifyResult:
    """What verification found: ``ok``, how many records were checked, the first bad one."""

    ok: bool
    records: int
    head: str
    first_bad: int | None = None
    problem: str = ""

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form."""
        return attrs.asdict(self)


class AuditLog:
    """Append-only, hash-chained log in the store's ``audit`` table."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def append(self, kind: str, body: dict[str, Any], at: datetime | None = None) -> AuditRecord:
        """Append one record and return it once it is durable on disk.

        Raises AuditError when the record cannot be written; callers must then not serve media.
        """
        when = (at or datetime.now(UTC)).isoformat()
        try:
            body = json.loads(canonical(body))  # the exact JSON that is hashed
            with self._store.transaction() as db:
                row = db.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
                seq, prev = (row[0] + 1, row[1]) if row else (1, GENESIS)
                digest = record_hash(seq, when, kind, body, prev)
                db.execute(
                    "INSERT INTO audit VALUES (?, ?, ?, ?, ?, ?)",
                    (seq, when, kind, canonical(body).decode(), prev, digest),
                )
        except (OSError, ValueError, TypeError) as exc:
            raise AuditError(f"audit record {kind!r} could not be written: {exc}") from exc
        except Exception as exc:
            if exc.__class__.__module__ == "sqlite3":
                raise AuditError(f"audit record {kind!r} could not be written: {exc}") from exc
            raise
        return AuditRecord(seq, when, kind, body, prev, digest)

    def records(self, kind: str | None = None) -> Iterator[AuditRecord]:
        """Every record in order (or only those of one kind)."""
        sql = "SELECT seq, at, kind, body, prev, hash FROM audit"
        params: tuple[Any, ...] = ()
        if kind is not None:
            sql += " WHERE kind=?"
            params = (kind,)
        for seq, at, k, body, prev, digest in self._store.query(sql + " ORDER BY seq", params):
            yield AuditRecord(seq, at, k, json.loads(body), prev, digest)

    def verify(self) -> VerifyResult:
        """Recompute the chain; name the first record whose hash or link is wrong."""
        return verify_records(self.records())

    def export_jsonl(self) -> Iterator[str]:
        """The log as JSON Lines, one record per line, for a third party to verify."""
        for record in self.records():
            yield json.dumps(record.to_json(), sort_keys=True)


def verify_records(records: Iterator[AuditRecord]) -> VerifyResult:
    """Check a sequence of records: consecutive seq from 1, links and hashes all correct."""
    prev = GENESIS
    count = 0
    for expected_seq, record in enumerate(records, start=1):
        count = expected_seq
        if record.seq != expected_seq:
            return VerifyResult(False, count, prev, record.seq, f"expected seq {expected_seq}")
        if record.prev != prev:
            return VerifyResult(
                False, count, prev, record.seq, "link to the previous record broken"
            )
        digest = record_hash(record.seq, record.at, record.kind, record.body, record.prev)
        if digest != record.hash:
            return VerifyResult(False, count, prev, record.seq, "content does not match its hash")
        prev = record.hash
    return VerifyResult(True, count, prev)
