"""Media helpers on PyAV: remux packets to MP4 without re-encoding, and a keyframe to JPEG.

They work on :class:`~camgate.models.MediaPacket` objects, whatever adapter produced them, so the
edge writes every clip and snapshot the same way after its guard has let the packets through.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import Any, Self, cast

import av
import av.error
from av.video.codeccontext import VideoCodecContext

from camgate.errors import CameraProtocolError, ValidationError
from camgate.models import MediaPacket, StreamInfo

__all__ = ["Mp4Writer", "decode_jpeg", "jpeg_from_packets", "sha256_file"]


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class Mp4Writer:
    """Write video packets into an MP4 file, as they are (no re-encoding).

    Timestamps are shifted so the file starts at zero; the writer skips packets until the first
    keyframe so the file plays from its first frame. ``duration`` is the span written so far in
    seconds (last end minus first start).
    """

    def __init__(self, path: str | Path, info: StreamInfo) -> None:
        if info.kind != "video":
            raise ValidationError(f"Mp4Writer writes video, got a {info.kind} stream")
        self.path = Path(path)
        self.info = info
        self._container = av.open(str(self.path), "w", format="mp4")
        stream: Any = self._container.add_stream(info.codec)
        stream.width = info.width
        stream.height = info.height
        if info.extradata:
            stream.codec_context.extradata = info.extradata
        stream.time_base = info.time_base
        self._stream = stream
        self._origin: int | None = None
        self._last_end = 0
        self._prev_dts: int | None = None
        self.packets = 0

    @property
    def started(self) -> bool:
        """True once the first keyframe was written."""
        return self._origin is not None

    @property
    def duration(self) -> float:
        """Seconds of video written so far."""
        return float(self._last_end * self.info.time_base)

    def write(self, packet: MediaPacket) -> None:
        """Mux one packet (ignored until the first keyframe; non-video packets are skipped)."""
        if packet.stream.kind != "video" or packet.pts is None:
            return
        if self._origin is None:
            if not packet.is_keyframe:
                return
            self._origin = packet.dts if packet.dts is not None else packet.pts
        pts = packet.pts - self._origin
        dts = (packet.dts if packet.dts is not None else packet.pts) - self._origin
        if self._prev_dts is not None and dts <= self._prev_dts:
            dts = self._prev_dts + 1  # a camera repeating a timestamp must not break the muxer
        pts = max(pts, dts)
        self._prev_dts = dts
        out = av.Packet(packet.data)
        out.pts, out.dts = pts, dts
        out.time_base = self.info.time_base
        out.stream = self._stream
        if packet.is_keyframe:
            out.is_keyframe = True
        try:
            self._container.mux(out)
        except av.error.FFmpegError as exc:
            raise CameraProtocolError(f"cannot write packet to {self.path.name}: {exc}") from exc
        self.packets += 1
        frame = packet.duration or _frame_ticks(self.info)
        self._last_end = max(self._last_end, pts + frame)

    def close(self) -> None:
        """Finish the file (writes the index). Idempotent."""
        if self._container is not None:
            try:
                self._container.close()
            finally:
                self._container = None  # type: ignore[assignment]

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _frame_ticks(info: StreamInfo) -> int:
    # Without a packet duration assume 30 fps, the commonest camera rate.
    return max(1, round(1 / (30 * info.time_base)))


def jpeg_from_packets(
    packets: Iterable[MediaPacket], *, quality: int = 3
) -> tuple[bytes, int, int]:
    """Decode packets until the first picture and return it as (JPEG bytes, width, height).

    ``quality`` is MJPEG's qscale (2 best .. 31 worst). Raises CameraProtocolError when the
    packets end before a picture could be decoded.
    """
    decoder: VideoCodecContext | None = None
    for packet in packets:
        if packet.stream.kind != "video":
            continue
        if decoder is None:
            if not packet.is_keyframe:
                continue
            decoder = cast(VideoCodecContext, av.CodecContext.create(packet.stream.codec, "r"))
            if packet.stream.extradata:
                decoder.extradata = packet.stream.extradata
        try:
            frames = decoder.decode(av.Packet(packet.data))
        except av.error.FFmpegError:
            continue  # a damaged packet: try the next one
        for frame in frames:
            return _encode_jpeg(frame, quality)
    if decoder is not None:
        for frame in decoder.decode(None):
            return _encode_jpeg(frame, quality)
    raise CameraProtocolError("the stream ended before a picture could be decoded")


def _encode_jpeg(frame: av.VideoFrame, quality: int) -> tuple[bytes, int, int]:
    encoder = av.CodecContext.create("mjpeg", "w")
    encoder.width = frame.width
    encoder.height = frame.height
    encoder.pix_fmt = "yuvj420p"
    encoder.time_base = Fraction(1, 25)
    encoder.options = {"qmin": str(quality), "qmax": str(quality)}
    picture = frame.reformat(format="yuvj420p")
    data = b"".join(bytes(p) for p in encoder.encode(picture))
    data += b"".join(bytes(p) for p in encoder.encode(None))
    return data, frame.width, frame.height


def decode_jpeg(data: bytes) -> tuple[int, int]:
    """Decode a JPEG and return its (width, height); CameraProtocolError when it is not one."""
    try:
        with av.open(io.BytesIO(data), "r", format="image2pipe") as container:
            for frame in container.decode(video=0):
                return frame.width, frame.height
    except av.error.FFmpegError as exc:
        raise CameraProtocolError(f"not a decodable JPEG: {exc}") from exc
    raise CameraProtocolError("not a decodable JPEG: no picture")
