"""Clip export: a grant's footage written to a file (MP4, fragmented MP4, MPEG-TS, HLS).

A clip is read through the same guard as any stream, written under a private partial name
registered for retention before its first byte, hashed and audited (``clip.exported``) before
it is moved to its final name; whatever fails, what was written is removed and ``clip.failed``
says why (docs/media.md, docs/retention.md).
"""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread

from camgate.clock import Clock
from camgate.codec import dump
from camgate.errors import (
    AdapterError,
    CameraProtocolError,
    CamgateError,
    GrantMismatch,
    ValidationError,
)
from camgate.grants import GrantVerifier, SignedGrant
from camgate.media import Cut, Gap, HlsWriter, Muxer, WindowCut
from camgate.media.files import Folder, PrivateFile
from camgate.models import Clip, Grant, MediaPacket, Scope, StreamInfo
from camgate.retention import Export
from camgate.vocab import AuditKind

if TYPE_CHECKING:
    from camgate.edge.guard import GuardedStream
    from camgate.retention import Retention

__all__ = ["CLIP_FORMATS", "ClipExport"]

#: What :meth:`Edge.record_clip` writes: an MP4 file, a fragmented MP4 file, an MPEG-TS file,
#: or an HLS directory (VOD playlist ``index.m3u8`` plus segments).
CLIP_FORMATS = ("mp4", "fmp4", "ts", "hls")

log = logging.getLogger("camgate.edge")  # the edge logs as one, as before its split


class ClipExport:
    """The clip-export part of :class:`~camgate.edge.Edge` (a mixin)."""

    if TYPE_CHECKING:
        verifier: GrantVerifier
        clock: Clock
        retention: Retention | None

        async def open_live(
            self, camera_id: str, token: str | SignedGrant, *, browser: bool = False
        ) -> GuardedStream: ...

        async def open_recorded(
            self, camera_id: str, token: str | SignedGrant, *, browser: bool = False
        ) -> GuardedStream: ...

        async def _audit(
            self, kind: AuditKind, body: dict[str, Any], at: datetime | None = None
        ) -> None: ...

    async def record_clip(
        self,
        camera_id: str,
        token: str | SignedGrant,
        path: str | Path,
        duration_s: float | None = None,
        *,
        format: str = "mp4",
        browser: bool = False,
        window: tuple[datetime, datetime] | None = None,
    ) -> Clip:
        """Write a clip under a live grant (``duration_s`` seconds from the next keyframe) or a
        recorded grant (the grant's window, cut on capture times: see docs/media.md).

        ``browser=True`` writes video every browser plays (H.265 transcoded to H.264, as for
        :meth:`open_live`); by default the camera's video is kept as it is.

        ``window`` (a recorded grant only) cuts the clip to a part of the grant's window;
        GrantMismatch when it reaches outside it, ValidationError unless start < end.

        ``format`` is one of :data:`CLIP_FORMATS`; for ``hls`` ``path`` is a directory. Video
        passes through as it is unless the owner set privacy masks: then it is re-encoded with
        the masks burnt in. MP4 files carry the grant id in their tags (``camgate_grant``). If
        consent is revoked while recording, the partial output is deleted and ConsentRevoked
        raised. The clip's SHA-256 (of the file, or of the HLS playlist with every segment's
        hash beside it) is appended to the audit log (``clip.exported``) before this returns,
        and the output is registered for retention (``artifact.registered``, with its expiry).

        The clip is written as ``.NAME.partial`` beside ``path`` (private mode, see
        :mod:`camgate.media.files`), registered for retention before its first byte, and moved
        to ``path`` only once complete and audited, replacing a file (or an empty folder)
        there in one rename; ValidationError when ``path`` is a folder with files in it. A
        write error (a full disk) raises ExportError naming the file; whatever failed, what was
        written is removed and ``clip.failed`` says what was not exported and why.

        A live clip lasts ``duration_s`` of real time and ends on a display-order boundary
        (B-frames complete); a camera reconnecting meanwhile leaves a gap in its timeline
        (``gaps`` in ``clip.exported``). When the camera stops sending after the clip started,
        what was recorded is kept: the returned Clip has ``partial=True`` and ``reason`` ("the
        camera stopped sending after 4.0 s: ..."), audited the same way. See docs/media.md.
        """
        if format not in CLIP_FORMATS:
            raise ValidationError(f"format={format!r}: must be one of {', '.join(CLIP_FORMATS)}")
        grant = self.verifier.verify(token)
        cut: WindowCut | None = None
        if grant.scope is Scope.RECORDED:
            if grant.window_start is None or grant.window_end is None:
                raise GrantMismatch(f"grant {grant.id} covers no recorded window")
            cut = WindowCut(*(window or (grant.window_start, grant.window_end)))
            if cut.start < grant.window_start or cut.end > grant.window_end:
                raise GrantMismatch(
                    f"window {cut.start.isoformat()}..{cut.end.isoformat()} is outside grant "
                    f"{grant.id}'s {grant.window_start.isoformat()}..{grant.window_end.isoformat()}"
                )
        elif window is not None:
            raise GrantMismatch(f"grant {grant.id} is for {grant.scope} access: no window")
        elif not (duration_s is not None and duration_s > 0 and math.isfinite(duration_s)):
            raise ValidationError(f"duration_s={duration_s!r}: must be a positive number")
        path = Path(path)
        if grant.scope is Scope.RECORDED:
            stream = await self.open_recorded(camera_id, token, browser=browser)
        else:
            stream = await self.open_live(camera_id, token, browser=browser)
        started = self.clock.now()
        writer: Muxer | None = None
        try:
            export = await anyio.to_thread.run_sync(
                lambda: Export(
                    self.retention,
                    path,
                    "clip",
                    camera_id=camera_id,
                    grant_id=stream.grant.id,
                    incident_id=stream.grant.incident_id,
                    directory=format == "hls",
                    replace=True,  # as before: a file (or empty folder) at path is replaced
                )
            )
        except BaseException:
            with anyio.CancelScope(shield=True):
                await stream.aclose()
            raise
        rec = _Recording()
        try:
            await self._record(rec, stream, export, format, cut, duration_s)
            writer = rec.writer
            if writer is not None:
                await anyio.to_thread.run_sync(writer.close)
            if writer is None or not writer.started:
                raise CameraProtocolError("the stream ended before its first keyframe")  # noqa: TRY301
        except BaseException as exc:
            writer = rec.writer
            with anyio.CancelScope(shield=True):
                await self._clip_failed(export, writer, stream, path, format, exc)
            raise
        if cut is not None and cut.first is not None:
            started = cut.first
        return await self._clip_done(export, writer, stream, format, started, rec.stopped)

    async def _record(
        self,
        rec: _Recording,
        stream: GuardedStream,
        export: Export,
        format: str,
        cut: WindowCut | None,
        duration_s: float | None,
    ) -> None:
        """Write ``stream`` into ``export`` until the window or ``duration_s`` of real time is
        over; ``rec`` gets the writer (as soon as it exists: a failure closes it), and why
        the clip is shorter than asked (None when it is not).

        A live clip ends before the first picture at or past ``duration_s`` that displays
        after everything written (:meth:`Muxer.reaches`), or when, waiting for the camera to
        come back, ``duration_s`` (plus a second) of real time has passed since its first
        picture. When the camera stops sending after the clip has started (an adapter
        error), what was written is kept: the reason is returned, not raised."""
        writer: Muxer | None = None
        began: float | None = None  # when the first picture was written (event loop time)
        live = duration_s is not None and cut is None
        async with stream:
            with anyio.CancelScope() as timer:
                async for packet in _until_error(stream):  # masked by the guard
                    if isinstance(packet, AdapterError):
                        if writer is None or not writer.started or writer.duration <= 0:
                            raise packet
                        rec.stopped = (
                            f"the camera stopped sending after {writer.duration:.1f} s: {packet}"
                        )
                        break
                    if cut is not None:
                        verdict = cut(packet)
                        if verdict is Cut.STOP:
                            break
                        if verdict is Cut.SKIP:
                            continue
                    if writer is None:
                        if packet.stream.kind != "video":
                            continue
                        writer = rec.writer = _clip_writer(
                            export.out.folder or export.out.sink(),
                            format,
                            packet.stream,
                            stream.grant,
                            stream.audio_info,
                        )
                    if live and duration_s is not None and writer.reaches(packet, duration_s):
                        break
                    change = writer.shape_change(packet) if writer.started else None
                    if change is not None:  # an MP4 holds one shape: keep what it has
                        rec.stopped = change
                        break
                    writer.write(packet)
                    if live and duration_s is not None and writer.started:
                        # Real time, not stream time: a reconnect must not stretch the clip.
                        # While packets flow (a consumer behind real time, a busy mask
                        # re-encoder) the clip ends on its pictures; the timer ends a wait.
                        now = anyio.current_time()
                        began = now if began is None else began
                        timer.deadline = max(began + duration_s + 1.0, now + _STALL_S)
            if timer.cancelled_caught and writer is not None and duration_s is not None:
                missing = duration_s - writer.duration
                if missing > 0:  # the camera was reconnecting when the time was up
                    writer.gaps.append(Gap(writer.duration, missing))
        if live and rec.stopped is None and writer is not None and duration_s is not None:
            end = stream.stats().end_reason
            if writer.duration < duration_s - 0.5 and not writer.gaps and end is not None:
                rec.stopped = f"the stream ended ({end}) after {writer.duration:.1f} s"

    async def _clip_failed(
        self,
        export: Export,
        writer: Muxer | None,
        stream: GuardedStream,
        path: Path,
        format: str,
        exc: BaseException,
    ) -> None:
        """A clip that did not complete: close the writer (its own error is secondary), remove
        what it wrote with its retention record, and audit what was not exported and why."""
        if writer is not None:
            try:
                writer.close()
            except CamgateError:
                log.debug("closing the failed clip's writer failed too", exc_info=True)
        written = await anyio.to_thread.run_sync(export.out.size)
        reason = str(exc) if isinstance(exc, CamgateError) else type(exc).__name__
        await anyio.to_thread.run_sync(lambda: export.discard(reason))
        await self._audit(
            AuditKind.CLIP_FAILED,
            {
                "grant": stream.grant.id,
                "camera": stream.camera.id,
                "path": str(path),
                "format": format,
                "error": reason,
                "bytes_written": written,
                "exported": False,
                "removed": True,
            },
        )

    async def _clip_done(
        self,
        export: Export,
        writer: Muxer,
        stream: GuardedStream,
        format: str,
        started: datetime,
        stopped: str | None = None,
    ) -> Clip:
        """Hash the complete clip (still under its partial name), audit ``clip.exported``,
        finish its retention row and only then move it to its final name. ``stopped`` (why
        the clip is shorter than asked) makes it a partial clip: kept, and audited as such."""
        path = export.final
        try:  # through the export's descriptor: ExportError if its partial name was swapped
            files = await anyio.to_thread.run_sync(export.out.hashes)
        except BaseException as exc:
            with anyio.CancelScope(shield=True):
                await self._clip_failed(export, None, stream, path, format, exc)
            raise
        body: dict[str, Any] = {}
        size = sum(length for _, length in files.values())
        if format == "hls":
            digest = files["index.m3u8"][0]
            body["segments"] = {n: h for n, (h, _) in sorted(files.items()) if n.endswith(".ts")}
        else:
            ((digest, _),) = files.values()
        clip = Clip(
            grant_id=stream.grant.id,
            camera_id=stream.camera.id,
            path=str(path),
            duration_s=writer.duration,
            size=size,
            sha256=digest,
            started_at=started,
            partial=stopped is not None,
            reason=stopped,
        )
        if writer.gaps:
            body["gaps"] = [{"at_s": g.at_s, "missing_s": g.missing_s} for g in writer.gaps]
        try:
            await self._audit(
                AuditKind.CLIP_EXPORTED,
                dump(clip) | body | {"format": format, "masked": stream.masked},
            )
            sha = None if format == "hls" else digest
            await anyio.to_thread.run_sync(lambda: export.commit(sha256=sha, created_at=started))
        except BaseException:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(lambda: export.discard("not exported"))
            raise
        return clip


#: A live clip waits at least this long (seconds) for the next packet before its real-time
#: end applies (packets still flowing behind real time are written, not cut).
_STALL_S = 2.0


class _Recording:
    """What :meth:`Edge._record` has done so far: the clip's writer (once the first video
    packet arrived) and why the clip ends short (None while it does not)."""

    def __init__(self) -> None:
        self.writer: Muxer | None = None
        self.stopped: str | None = None


async def _until_error(stream: GuardedStream) -> AsyncIterator[MediaPacket | AdapterError]:
    """``stream``'s packets, then the camera's error (an AdapterError) as the last item
    instead of raising it, so a clip can keep what it wrote before the camera stopped."""
    while True:
        try:
            packet = await stream.__anext__()
        except StopAsyncIteration:
            return
        except AdapterError as exc:
            yield exc
            return
        yield packet


def _clip_writer(
    out: Folder | PrivateFile, format: str, info: StreamInfo, grant: Grant, audio: StreamInfo | None
) -> Muxer:
    if isinstance(out, Folder):
        return HlsWriter(out, info, audio=audio)
    tags = {"camgate_grant": grant.id, "camgate_camera": grant.camera_id}
    if format == "ts":
        tags = {"service_provider": "camgate", "service_name": f"grant {grant.id}"}
    tags |= {"comment": f"camgate grant {grant.id}"}
    return Muxer(out, info, format=format, audio=audio, metadata=tags)
