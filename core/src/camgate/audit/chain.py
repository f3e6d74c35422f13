"""The audit log's format, with no storage: records, owner sub-chains, checkpoints, Merkle proofs.

A record is ``{seq, at, kind, body, owners, prev}``; its hash is SHA-256 over the canonical JSON
(:func:`camgate.codec.canonical`) of those fields, with ``owners`` left out when it is empty (so
records written before owner sub-chains existed still verify). ``prev`` is the previous record's
hash (:data:`GENESIS` for the first). ``owners`` maps each owner the record is about to the hash of
that owner's previous record (``GENESIS`` for their first): one sub-chain per owner, woven into
the global chain.

A checkpoint signs the chain head with Ed25519::

    payload = {v, log, seq, head, at, owners, owners_root, prev, key}
    signature = Ed25519(b"camgate-audit-checkpoint-v1\\n" + canonical(payload))

``owners_root`` is the RFC 9162 Merkle tree hash over every owner's head at ``seq``, leaves
sorted by owner id, leaf ``= SHA-256(0x00 || canonical({"head", "owner", "seq"}))``, node ``=
SHA-256(0x01 || left || right)``; ``prev`` is the SHA-256 of the previous checkpoint's signed
message. The prefix keeps a checkpoint signature from ever being taken for a grant signature
(grants sign canonical JSON, which starts with ``{``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from typing import Any

import attrs
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from camgate.codec import canonical
from camgate.errors import ConfigError, ValidationError

__all__ = [
    "CHECKPOINT_PREFIX",
    "GENESIS",
    "AuditRecord",
    "Checkpoint",
    "ChainVerifier",
    "VerifyResult",
    "check_public_key",
    "leaf_hash",
    "merkle_path",
    "merkle_root",
    "preimage",
    "record_hash",
    "verify_merkle_path",
]

GENESIS = "0" * 64
CHECKPOINT_PREFIX = b"camgate-audit-checkpoint-v1\n"
_encode_str = json.encoder.encode_basestring


@attrs.frozen
class AuditRecord:
    """One entry of the chain; ``owners`` maps each owner it is about to their previous hash."""

    seq: int
    at: str
    kind: str
    body: dict[str, Any]
    prev: str
    hash: str
    owners: dict[str, str] = attrs.field(factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The record as exported (every field, hash included)."""
        return attrs.asdict(self)


def preimage(seq: int, at: str, kind: str, body: str, owners: str, prev: str) -> bytes:
    """The exact bytes hashed for a record, built from its stored canonical texts.

    Equal to ``canonical({"at", "body", "kind", "owners"?, "prev", "seq"})`` when ``body`` and
    ``owners`` are canonical JSON texts (the writer stores them so); it is string joining, not
    JSON encoding, which is what makes verification fast.
    """
    own = "" if owners == "{}" else ',"owners":' + owners
    text = (
        f'{{"at":{_encode_str(at)},"body":{body},"kind":{_encode_str(kind)}{own}'
        f',"prev":"{prev}","seq":{seq}}}'
    )
    return text.encode()


def record_hash(
    seq: int,
    at: str,
    kind: str,
    body: dict[str, Any],
    prev: str,
    owners: dict[str, str] | None = None,
) -> str:
    """SHA-256 (hex) of the canonical JSON of a record's fields other than its hash."""
    content: dict[str, Any] = {"seq": seq, "at": at, "kind": kind, "body": body, "prev": prev}
    if owners:
        content["owners"] = owners
    return hashlib.sha256(canonical(content)).hexdigest()


# ---------------------------------------------------------------------- Merkle tree (RFC 9162)


def leaf_hash(owner: str, head: str, seq: int) -> bytes:
    """The Merkle leaf of one owner's sub-chain head (the record ``seq`` with hash ``head``):
    SHA-256 of 0x00 and ``canonical({"head", "owner", "seq"})``, built by string joining."""
    text = f'\x00{{"head":{_encode_str(head)},"owner":{_encode_str(owner)},"seq":{int(seq)}}}'
    return hashlib.sha256(text.encode()).digest()


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    return 1 << ((n - 1).bit_length() - 1)  # the largest power of two smaller than n


def merkle_root(leaves: Sequence[bytes]) -> bytes:
    """RFC 9162 Merkle tree hash of leaf hashes (SHA-256 of nothing for no leaves)."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    level = list(leaves)
    # Bottom-up pairing gives the RFC's tree: a lone last node is promoted unchanged.
    while len(level) > 1:
        paired = [_node(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
    return level[0]


def merkle_path(leaves: Sequence[bytes], index: int) -> list[bytes]:
    """The inclusion proof (audit path) of leaf ``index``, per RFC 9162 section 2.1.3.1."""
    if len(leaves) <= 1:
        return []
    k = _split(len(leaves))
    if index < k:
        return [*merkle_path(leaves[:k], index), merkle_root(leaves[k:])]
    return [*merkle_path(leaves[k:], index - k), merkle_root(leaves[:k])]


def verify_merkle_path(
    leaf: bytes, index: int, size: int, path: Sequence[bytes], root: bytes
) -> bool:
    """True when ``path`` proves ``leaf`` is leaf ``index`` of the ``size``-leaf tree ``root``."""
    if index >= size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = _node(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = _node(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


# ---------------------------------------------------------------------- checkpoints


@attrs.frozen
class Checkpoint:
    """A signed statement of the chain head at record ``seq`` and of every owner's head."""

    payload: dict[str, Any]
    signature: str  # hex

    @property
    def seq(self) -> int:
        """The last record this checkpoint covers."""
        return int(self.payload["seq"])

    @property
    def head(self) -> str:
        """The hash of record ``seq``."""
        return str(self.payload["head"])

    def message(self) -> bytes:
        """The exact bytes signed."""
        return CHECKPOINT_PREFIX + canonical(self.payload)

    def digest(self) -> str:
        """SHA-256 of the signed message: what the next checkpoint's ``prev`` names."""
        return hashlib.sha256(self.message()).hexdigest()

    def signature_ok(self, public_key: bytes) -> bool:
        """True when the signature is the holder of ``public_key``'s over this payload."""
        try:
            Ed25519PublicKey.from_public_bytes(public_key).verify(
                bytes.fromhex(self.signature), self.message()
            )
        except (InvalidSignature, ValueError):
            return False
        return True

    def to_json(self) -> dict[str, Any]:
        """As exported: ``{"type": "checkpoint", "payload": ..., "signature": hex}``."""
        return {"type": "checkpoint", "payload": self.payload, "signature": self.signature}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Checkpoint:
        """Read an exported checkpoint line."""
        return cls(dict(data["payload"]), str(data["signature"]))


# ---------------------------------------------------------------------- verification


@attrs.frozen
class VerifyResult:
    """What verification found.

    ``ok`` when every hash, link and checkpoint holds and nothing suggests records are missing;
    ``first_bad`` names the first record at fault (for a rewrite detected only by a checkpoint,
    the first record after the last good checkpoint, since a consistent forgery cannot be placed
    more exactly). ``unsealed`` counts the records after the last checkpoint, which no signature
    covers yet; ``signed_seq`` and ``signed_at`` name that last checkpoint (0 and "" when there
    is none). ``status`` says which verdict, as a word:

    - ``verified`` (``ok``): every check holds, and so does every outside witness given — a
      checkpoint kept away from the log (an owner's notice, an earlier export);
      ``witnessed_seq`` is the latest of them: the log provably was not cut below it;
    - ``consistent`` (``ok``): every check holds, but no outside witness was given. The log
      reaches its own seal, yet someone who can write the store's directory can roll the seal
      back to an older signed checkpoint of the log and cut the records after it: this verdict
      cannot rule that out (docs/audit.md, "What verification proves");
    - ``broken`` (a record, link or checkpoint fails); ``truncated`` (a checkpoint, the seal or
      a witness signs records the log no longer has, or the seal or a witness belongs to
      another log); ``empty`` (no record and nothing that proves there never was one);
      ``unpinned`` (the log's seal is missing, so nothing proves it was not cut back); ``key``
      (the checkpoints are signed with another key than the one verified against: the signing
      key is missing or replaced); ``unsigned`` (an export with no checkpoint at all,
      :func:`camgate.report.verify_export`).

    ``ok`` is True for ``verified`` and ``consistent`` only: nothing wrong was found. Callers
    that need the log's length proven check ``status == "verified"``.
    """

    ok: bool
    records: int
    head: str
    first_bad: int | None = None
    problem: str = ""
    checkpoints: int = 0
    unsealed: int = 0
    status: str = "consistent"
    signed_seq: int = 0
    signed_at: str = ""
    witnessed_seq: int | None = None

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form."""
        return attrs.asdict(self)


class _Bad(Exception):
    def __init__(self, seq: int, problem: str, status: str = "broken") -> None:
        super().__init__(problem)
        self.seq, self.problem, self.status = seq, problem, status


def _hex(text: object) -> bytes:
    """``text`` as bytes when it is hex, else nothing (a payload field anyone may have written)."""
    try:
        return bytes.fromhex(text) if isinstance(text, str) else b""
    except ValueError:
        return b""


def check_public_key(key: bytes) -> bytes:
    """``key`` if it is a usable Ed25519 public key (32 bytes, a curve point); else ConfigError."""
    if len(key) != 32:
        raise ConfigError(
            f"bad key: an Ed25519 public key is 32 bytes (64 hex digits), not {len(key)}"
        )
    try:
        Ed25519PublicKey.from_public_bytes(key)
    except ValueError as exc:
        raise ConfigError(f"bad key: not an Ed25519 public key ({exc})") from None
    return key


def _same_content(
    seq: int, at: str, kind: str, body: str, owners: str, prev: str, digest: str
) -> bool:
    # Stored texts that are valid JSON but not canonical (written by hand): judge the content,
    # as a third party reading the export would.
    try:
        return record_hash(seq, at, kind, json.loads(body), prev, json.loads(owners)) == digest
    except ValueError:
        return False


class ChainVerifier:
    """Checks rows in order: seq, links, hashes, owner sub-chains, and checkpoints as they come.

    Feed :meth:`rows` the stored texts ``(seq, at, kind, body, owners, prev, hash)``; checkpoints
    are checked when the record they sign is reached: the signature against ``public_key``, the
    head, the owners' Merkle root, and the link to the previous checkpoint. ``known`` are
    checkpoints obtained elsewhere (an earlier export, a witness): each must be in the log.

    ``seal`` is the log's pinned latest checkpoint (the seal file beside the store, see
    :mod:`camgate.audit.seal`): it must verify against ``public_key`` and be in the log, so a log
    cut back below it, checkpoints and all, is ``truncated``. ``sealed`` True says a seal is
    expected: its absence (``seal`` None) then leaves a non-empty log ``unpinned``. A log with no
    record is ``empty`` unless a checkpoint or seal says more: never ``ok``. A ``public_key`` that
    is not an Ed25519 key raises ConfigError ("bad key"); checkpoints that name another key than
    ``public_key`` give the verdict ``key``.
    """

    def __init__(
        self,
        checkpoints: Iterable[Checkpoint],
        public_key: bytes | None,
        known: Iterable[Checkpoint] = (),
        *,
        seal: Checkpoint | None = None,
        sealed: bool = False,
        log_id: str | None = None,
    ) -> None:
        self._cps = sorted(checkpoints, key=lambda c: c.seq)
        self._key = None if public_key is None else check_public_key(public_key)
        self._known = sorted(known, key=lambda c: c.seq)
        for cp in self._known:
            if self._key is None or not cp.signature_ok(self._key):
                raise ValidationError(
                    f"witness: the checkpoint of record {cp.seq} is not signed by the key "
                    "verified against: not a checkpoint of this hub's log (or no key to check "
                    "it with)"
                )
        self._seal, self._sealed, self._log_id = seal, sealed, log_id
        self._heads: dict[str, tuple[str, int]] = {}
        self._leaves: dict[str, bytes] = {}
        self._dirty: set[str] = set()
        self.count = 0
        self.head = GENESIS
        self._cp_done = 0
        self._last_good_cp = 0
        self._prev_cp = GENESIS

    def run(self, rows: Iterable[tuple[int, str, str, str, str, str, str]]) -> VerifyResult:
        """Verify every row and the checkpoints; return the result (never raises on bad data)."""
        try:
            self._rows(rows)
            self._finish()
        except _Bad as bad:
            return self.failed(bad)
        return self.passed()

    def failed(self, bad: _Bad) -> VerifyResult:
        """The result for the problem ``bad`` found so far."""
        return VerifyResult(
            False, self.count, self.head, bad.seq, bad.problem, self._cp_done, 0, bad.status
        )

    def passed(self) -> VerifyResult:
        """The result once every row passed :meth:`_finish` (``empty`` for no record at all)."""
        if self.count == 0:
            return VerifyResult(
                False,
                0,
                self.head,
                None,
                "the audit log is empty: no record, no checkpoint, "
                "nothing that proves it never held any",
                0,
                0,
                "empty",
            )
        last = self._cps[-1] if self._cps else None
        witnessed = self._known[-1].seq if self._known else None
        return VerifyResult(
            True,
            self.count,
            self.head,
            None,
            "",
            self._cp_done,
            self.count - (last.seq if last is not None else 0),
            "verified" if witnessed is not None else "consistent",
            last.seq if last is not None else 0,
            str(last.payload.get("at", "")) if last is not None else "",
            witnessed,
        )

    def _rows(self, rows: Iterable[tuple[int, str, str, str, str, str, str]]) -> None:
        sha, loads, heads, dirty = hashlib.sha256, json.loads, self._heads, self._dirty
        prev, n = self.head, self.count
        next_cp = self._cps[0].seq if self._cps else -1
        for seq, at, kind, body, owners, link, digest in rows:
            n += 1
            if seq != n:
                self.count, self.head = n, prev
                raise _Bad(seq, f"expected record {n}, found {seq} (a record is missing or moved)")
            if link != prev:
                self.count, self.head = n, prev
                raise _Bad(seq, "link to the previous record broken")
            try:
                same = sha(preimage(seq, at, kind, body, owners, link)).hexdigest() == digest or (
                    _same_content(seq, at, kind, body, owners, link, digest)
                )
            except (TypeError, UnicodeEncodeError):  # not text, or a lone surrogate (an export)
                same = False
            if not same:
                self.count, self.head = n, prev
                raise _Bad(seq, "content does not match its hash")
            if owners != "{}":
                try:
                    links = loads(owners)
                    pairs = list(links.items())
                except (ValueError, AttributeError):
                    self.count, self.head = n, prev
                    raise _Bad(seq, "owner links are not a JSON object") from None
                for owner, oprev in pairs:
                    if oprev != heads.get(owner, (GENESIS, 0))[0]:
                        self.count, self.head = n, prev
                        raise _Bad(seq, f"owner {owner!r}'s sub-chain link broken")
                    heads[owner] = (digest, seq)
                    dirty.add(owner)
            prev = digest
            if seq == next_cp:
                self.count, self.head = n, prev
                self._checkpoint(self._cps[self._cp_done])
                next_cp = self._cps[self._cp_done].seq if self._cp_done < len(self._cps) else -1
        self.count, self.head = n, prev

    def owners_root(self) -> tuple[bytes, int]:
        """The Merkle root over every owner's head so far, and the number of owners."""
        for owner in self._dirty:
            digest, seq = self._heads[owner]
            self._leaves[owner] = leaf_hash(owner, digest, seq)
        self._dirty.clear()
        return merkle_root([self._leaves[o] for o in sorted(self._leaves)]), len(self._leaves)

    def _checkpoint(self, cp: Checkpoint) -> None:
        after = self._last_good_cp + 1
        named = cp.payload.get("key")
        if self._key is not None and named != self._key.hex() and cp.signature_ok(_hex(named)):
            raise _Bad(
                after,
                f"checkpoint at record {cp.seq} is signed with key {str(named)[:16]}…, not with "
                f"the key verified against ({self._key.hex()[:16]}…): the signing key is "
                "missing or does not match the key the log is pinned to",
                "key",
            )
        if self._key is not None and not cp.signature_ok(self._key):
            raise _Bad(after, f"checkpoint at record {cp.seq}: signature does not verify")
        if cp.payload.get("prev") != self._prev_cp:
            raise _Bad(after, f"checkpoint at record {cp.seq}: the checkpoint before it is gone")
        if cp.head != self.head:
            raise _Bad(
                after,
                f"record {cp.seq}'s hash differs from the signed checkpoint: history after "
                f"record {after - 1} was rewritten",
            )
        root, size = self.owners_root()
        if cp.payload.get("owners_root") != root.hex() or cp.payload.get("owners") != size:
            raise _Bad(after, f"checkpoint at record {cp.seq}: owners' heads do not match")
        self._cp_done += 1
        self._last_good_cp = cp.seq
        self._prev_cp = cp.digest()

    def _finish(self) -> None:
        end = self.count
        if self._cp_done < len(self._cps):
            cp = self._cps[self._cp_done]
            raise _Bad(
                end + 1,
                f"log truncated: a checkpoint signs record {cp.seq}, log ends at {end}",
                "truncated",
            )
        mine = {c.seq: c for c in self._cps}
        known = [(c.seq, c) for c in self._known]
        if self._seal is not None:
            self._check_seal(self._seal, end)
            known.append((self._seal.seq, self._seal))
        for seq, cp in known:
            what = "the seal" if cp is self._seal else "a witness"
            theirs = cp.payload.get("log")
            if cp is not self._seal and self._log_id is not None and theirs != self._log_id:
                raise _Bad(
                    1,
                    f"{what} (record {seq}) belongs to log {theirs!r}, not to this log "
                    f"({self._log_id!r}): the log was replaced",
                    "truncated",
                )
            if seq > end:
                raise _Bad(
                    end + 1,
                    f"log truncated: {what} signs record {seq}, log ends at {end}",
                    "truncated",
                )
            if seq not in mine or mine[seq].signature != cp.signature:
                raise _Bad(
                    seq,
                    f"{what} at record {seq} is not in the log (cut back and regrown, or "
                    "rewritten?)",
                )
        if self._sealed and self._seal is None and (end or self._cps):
            raise _Bad(
                end + 1,
                "the log's seal file is missing: nothing proves the log was not cut back "
                "(verify --witness NOTICE or --against an earlier export; the next checkpoint "
                "writes a new seal)",
                "unpinned",
            )

    def _check_seal(self, seal: Checkpoint, end: int) -> None:
        if self._key is not None and not seal.signature_ok(self._key):
            status = "key" if seal.payload.get("key") != self._key.hex() else "broken"
            raise _Bad(end + 1, "the seal's signature does not verify against the key", status)
        if self._log_id is not None and seal.payload.get("log") != self._log_id:
            raise _Bad(
                1,
                f"the seal belongs to log {seal.payload.get('log')!r}, not to this log "
                f"({self._log_id!r}): the log was replaced",
                "truncated",
            )


def verify_records(records: Iterable[AuditRecord]) -> VerifyResult:
    """Check records in memory (no checkpoints): consecutive seq from 1, links and hashes."""
    rows = (
        (
            r.seq,
            r.at,
            r.kind,
            canonical(r.body).decode(),
            canonical(r.owners).decode(),
            r.prev,
            r.hash,
        )
        for r in records
    )
    return ChainVerifier((), None).run(rows)
