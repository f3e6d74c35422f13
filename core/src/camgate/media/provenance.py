"""Provenance: match an exported clip to the access that produced it.

Every clip the edge writes is hashed (SHA-256) into its ``clip.exported`` audit record, beside
the grant id; MP4 files also carry the grant id in their own tags (``camgate_grant``). Given a
file, :func:`find_clip` re-hashes it and returns the audit records that exported exactly these
bytes — a file that was altered after export matches none.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import av
import av.error

from camgate.errors import ValidationError
from camgate.media.mux import sha256_file
from camgate.vocab import AuditKind

if TYPE_CHECKING:
    from camgate.audit import AuditLog, AuditRecord

__all__ = ["clip_tags", "find_clip"]


def clip_tags(path: str | Path) -> dict[str, str]:
    """The container's tags (e.g. ``camgate_grant``); ValidationError when it is not media."""
    try:
        with av.open(str(path)) as container:
            return {str(k): str(v) for k, v in container.metadata.items()}
    except (av.error.FFmpegError, OSError) as exc:
        raise ValidationError(f"{Path(path).name}: not a readable media file ({exc})") from None


def find_clip(audit: AuditLog, path: str | Path) -> list[AuditRecord]:
    """The ``clip.exported`` records whose SHA-256 is this file's (an HLS segment or playlist
    matches its clip's record too). Empty when nobody exported these bytes."""
    try:
        digest = sha256_file(path)
    except OSError as exc:
        raise ValidationError(f"cannot read {Path(path).name}: {exc.strerror}") from None
    found = []
    for record in audit.records(AuditKind.CLIP_EXPORTED):
        segments = record.body.get("segments") or {}
        if record.body.get("sha256") == digest or digest in segments.values():
            found.append(record)
    return found
