"""The seal: the log's latest signed checkpoint, pinned in a file beside the store.

A log's own checkpoints live in the same database as its records, so someone who can delete
records can delete the checkpoints that would betray them (or empty the file, or replace it).
The seal is a copy of the latest checkpoint kept in a separate file (``<store>.seal`` for the
SQLite log, ``<store>.<database>.seal`` for a PostgreSQL log), replaced atomically after each
checkpoint commits (written to a temporary file, fsynced, renamed over the old one, the
directory fsynced), and only ever moved forward. Verification treats it as a known checkpoint:
a log cut back below it — checkpoints and all, down to a 0-byte file — is reported
``truncated``, and a log whose seal file is gone is ``unpinned``, never OK. The seal is signed,
so it cannot be forged without the hub's key. But it lives beside the store: whoever can
write that directory can put back an older signed checkpoint of the log (they are all in the
log's own table) and cut the records after it. That is what outside witnesses are for:
checkpoints kept away from the directory — every owner notice carries one — read here by
:func:`read_witnesses` and given to verification (``camgate audit verify --witness``).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
from pathlib import Path

from camgate.audit.chain import Checkpoint
from camgate.errors import AuditError, ValidationError

__all__ = ["read_seal", "read_witnesses", "seal_path", "write_seal"]

_RECORD_KEYS = frozenset({"kind", "body", "hash"})


def seal_path(store_path: str | Path, database: str | None = None) -> Path:
    """The seal file of the log kept in the store ``store_path`` (``database`` None), or in
    the PostgreSQL database named (without password) by ``database``, beside that store."""
    base = Path(store_path)
    if database is None:
        return base.with_suffix(".seal")
    tag = hashlib.sha256(database.encode()).hexdigest()[:12]
    return base.with_suffix(f".pg-{tag}.seal")


def read_seal(path: Path) -> Checkpoint | None:
    """The checkpoint pinned in ``path`` (None when there is no such file); AuditError naming
    the file when it cannot be read or is not a checkpoint."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise AuditError(f"cannot read the audit seal {path}: {exc}") from None
    try:
        cp = Checkpoint.from_json(json.loads(text))
        cp.seq  # noqa: B018 - the payload must name a record
        str(cp.payload["head"])
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise AuditError(f"the audit seal {path} is not a signed checkpoint ({exc!r})") from None
    return cp


def write_seal(path: Path, cp: Checkpoint) -> None:
    """Pin ``cp`` in ``path`` unless a later checkpoint of the same log is pinned there already.

    Atomic and durable: a crash leaves the old seal or the new one, never a torn file. Several
    processes sealing one log take turns on a lock file (``<seal>.lock``). Raises OSError when
    the file cannot be written (a full disk, say).
    """
    lock = os.open(f"{path}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        with contextlib.suppress(AuditError):
            old = read_seal(path)
            same_log = old is not None and old.payload.get("log") == cp.payload.get("log")
            if same_log and old is not None and old.seq >= cp.seq:
                return
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(cp.to_json(), fh, sort_keys=True)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
    finally:
        os.close(lock)


def read_witnesses(text: str, *, source: str = "witness") -> list[Checkpoint]:
    """Every signed checkpoint in ``text``: one checkpoint (``camgate audit checkpoint``), an
    owner notice or a list of them (its ``witness``), a webhook body (``{"notices": [...]}``),
    an owner's slice, or JSON Lines of any of these (an export: its checkpoint lines).

    A checkpoint is any JSON object with a ``payload`` object and a ``signature`` string;
    records (objects with ``kind``, ``body`` and ``hash``, or ``"type": "record"``) are not
    searched, so text inside a record body is never taken for a witness. Signatures are not
    checked here (verification does, against the hub's key). ValidationError naming ``source``
    when the text is not JSON (or JSON Lines) or holds no checkpoint at all.
    """
    try:
        try:
            docs = [json.loads(text)]
        except ValueError:
            docs = [json.loads(line) for line in text.splitlines() if line.strip()]
    except ValueError as exc:
        raise ValidationError(
            f"{source}: not JSON or JSON Lines (a notice, checkpoint or export): {exc}"
        ) from None
    except RecursionError:
        raise ValidationError(f"{source}: JSON nested too deeply") from None
    found: list[Checkpoint] = []
    stack: list[object] = list(reversed(docs))
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(reversed(item))
        elif isinstance(item, dict):
            if item.get("type") == "record" or item.keys() >= _RECORD_KEYS:
                continue
            payload, signature = item.get("payload"), item.get("signature")
            if isinstance(payload, dict) and isinstance(signature, str):
                if type(payload.get("seq")) is not int or payload["seq"] < 1:
                    raise ValidationError(f"{source}: a checkpoint without a record seq")
                found.append(Checkpoint(dict(payload), signature))
                continue
            stack.extend(reversed(list(item.values())))
    if not found:
        raise ValidationError(
            f"{source}: no signed checkpoint in it (expected an owner notice, a checkpoint "
            "or an audit export)"
        )
    return found
