"""Recorded footage from the Ring Partner API, cut to a grant's window, without re-encoding.

Ring serves a device's recording as an MP4 of at most 15 minutes
(``POST /v1/devices/{id}/media/video/download`` with ``timestamp`` and ``duration``).
:func:`clip_packets` turns one such file into camgate packets: the H.264 access units as they
are (converted from MP4's length-prefixed form to Annex B by FFmpeg's ``h264_mp4toannexb``
bitstream filter, as the live path delivers them), each stamped with its capture time (the
clip's start plus its presentation time). Nothing outside the window is returned: packets
before the window's start are dropped up to the first keyframe inside it, and packets after its
end are dropped. :class:`RingRecordedStream` downloads the window in 15-minute pieces, one at a
time, as the consumer reads.
"""

from __future__ import annotations

import io
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta

import anyio
import attrs
import av
import av.bitstream
import av.error
from camgate.errors import CameraProtocolError, CameraUnreachable
from camgate.models import MediaPacket, StreamInfo

from camgate_ring.partner import MAX_CLIP_MS

__all__ = ["RingRecordedStream", "clip_packets", "pieces"]


def clip_packets(
    data: bytes, start: datetime, window: tuple[datetime, datetime], *, first: bool = True
) -> list[MediaPacket]:
    """The packets of the MP4 ``data`` whose recording began at ``start`` (UTC) that lie inside
    ``window``, from the first keyframe inside it (module docstring); ``first=False`` marks the
    first packet a discontinuity (a later piece: its timestamps restart). CameraProtocolError
    when ``data`` is not an MP4 holding H.264 video."""
    low, high = window
    try:
        with av.open(io.BytesIO(data), "r", format="mp4") as container:
            if not container.streams.video:
                raise CameraProtocolError("Ring's clip holds no video")
            stream = container.streams.video[0]
            if stream.codec_context.name != "h264":
                raise CameraProtocolError("Ring's clip is not H.264")
            base = stream.time_base
            if base is None or base <= 0:
                raise CameraProtocolError("Ring's clip has no time base")
            info = StreamInfo(
                codec="h264",
                time_base=base,
                width=stream.codec_context.width,
                height=stream.codec_context.height,
            )
            annexb = av.bitstream.BitStreamFilterContext("h264_mp4toannexb", stream)
            raw = [*container.demux(stream)]
            converted = [out for p in raw if p.size for out in annexb.filter(p)]
            converted += annexb.filter(None)
    except av.error.FFmpegError:
        raise CameraProtocolError("Ring's clip is not a readable MP4") from None
    packets: list[MediaPacket] = []
    for p in converted:
        if p.pts is None:
            continue
        taken = start + timedelta(seconds=float(p.pts * base))
        if taken > high:
            break
        if taken < low or (not packets and not p.is_keyframe):
            continue
        packets.append(
            MediaPacket(
                data=bytes(p),
                pts=p.pts,
                dts=p.dts,
                is_keyframe=p.is_keyframe,
                stream=info,
                arrival=time.monotonic(),
                duration=p.duration,
                wallclock=taken,
                discontinuity=not first and not packets,
            )
        )
    return packets


def pieces(start: datetime, end: datetime) -> list[tuple[int, int]]:
    """``(start_ms, duration_ms)`` pieces of at most 15 minutes covering ``start``..``end``
    (whole milliseconds inside it: the start rounded up, the end down)."""
    low, high = math.ceil(start.timestamp() * 1000), math.floor(end.timestamp() * 1000)
    return [(at, min(MAX_CLIP_MS, high - at)) for at in range(low, high, MAX_CLIP_MS)]


class RingRecordedStream:
    """A grant window's recording as a camgate :class:`~camgate.adapters.LiveStream`: the
    pieces are downloaded one at a time as the consumer reads (``download(start_ms,
    duration_ms)`` gives the MP4 and how many ms it holds); iteration ends after the window or
    the last piece Ring holds. ``info`` is the first piece's stream. :meth:`aclose` stops it."""

    def __init__(
        self,
        download: Callable[[int, int], Awaitable[tuple[bytes, int]]],
        window: tuple[datetime, datetime],
        first: list[MediaPacket],
        rest: list[tuple[int, int]],
    ) -> None:
        self._download = download
        self._window = window
        self._first = first
        self._rest = rest
        self._closed = False
        self.info: StreamInfo = first[0].stream

    def __repr__(self) -> str:
        low, high = self._window
        return f"RingRecordedStream({low.isoformat()}..{high.isoformat()})"

    @classmethod
    async def open(
        cls,
        download: Callable[[int, int], Awaitable[tuple[bytes, int]]],
        window: tuple[datetime, datetime],
        parts: list[tuple[int, int]] | None = None,
    ) -> RingRecordedStream:
        """Download the window's first piece (errors surface here); CameraUnreachable when
        the window holds no picture Ring recorded. ``parts`` are the ``(start_ms,
        duration_ms)`` recordings to ask for, oldest first (default: :func:`pieces` of the
        window; the app backend's are its recorded events)."""
        parts = pieces(*window) if parts is None else list(parts)
        if not parts:
            raise CameraUnreachable("Ring: the window holds no recording (it has not begun)")
        packets: list[MediaPacket] = []
        while parts and not packets:  # a piece may hold nothing inside the window
            packets = await _piece(download, parts.pop(0), window, first=True)
        if not packets:
            raise CameraUnreachable("Ring's recording holds no picture inside the window")
        return cls(download, window, packets, parts)

    def __aiter__(self) -> AsyncIterator[MediaPacket]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[MediaPacket]:
        batch, self._first = self._first, []
        while True:
            for packet in batch:
                if self._closed:
                    return
                yield attrs.evolve(packet, arrival=time.monotonic())
            if self._closed or not self._rest:
                return
            part = self._rest.pop(0)
            batch = await _piece(self._download, part, self._window, first=False)

    async def aclose(self) -> None:
        """Stop: no further piece is downloaded. Idempotent."""
        self._closed = True
        self._rest = []


async def _piece(
    download: Callable[[int, int], Awaitable[tuple[bytes, int]]],
    part: tuple[int, int],
    window: tuple[datetime, datetime],
    *,
    first: bool,
) -> list[MediaPacket]:
    start_ms, duration_ms = part
    data, _held = await download(start_ms, duration_ms)
    start = datetime.fromtimestamp(start_ms / 1000, UTC)
    return await anyio.to_thread.run_sync(lambda: clip_packets(data, start, window, first=first))
