"""Re-encoding to H.264: the path privacy masks take, and the browser-compatible transcode.

:class:`Reencoder` decodes a camera's video, hands each picture to a hook, and encodes it with
libx264 at low latency (``preset`` ultrafast, ``tune`` zerolatency: no lookahead, no B-frames).
Two transforms stand on it:

- :class:`camgate.media.masks.MaskTransform` fills the owner's polygons in the hook;
- :class:`BrowserTranscode` leaves the picture alone: it turns what a browser cannot play
  (H.265: Chromium's Media Source Extensions and hls.js refuse HEVC) into H.264, and lets H.264
  pass untouched.

One output shape per stream: a camera that changes resolution mid-stream, or comes back at
another one after a gap (the transform flushed), is decoded (and masked) at its new size and
then scaled — letterboxed when the aspect changed — to the size the stream started with; the
output's :class:`~camgate.models.StreamInfo` stays the same object, so one MP4 or fMP4 file, or
one MSE source buffer, holds the whole stream.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any, TypedDict, Unpack, cast

import av
import av.error
import numpy as np
from av.video.codeccontext import VideoCodecContext
from av.video.frame import PictureType

from camgate.errors import CameraProtocolError
from camgate.models import MediaPacket, StreamInfo

__all__ = ["BROWSER_CODECS", "BrowserTranscode", "EncoderOptions", "Reencoder", "fit"]

#: Video codecs every current browser plays from MSE and hls.js: passed through as they are.
BROWSER_CODECS = ("h264",)

_PLANAR_420 = ("yuv420p", "yuvj420p")


def _parameter_sets(data: bytes) -> bytes | None:
    """SPS and PPS (NAL types 7 and 8) of an Annex B H.264 keyframe, as Annex B extradata."""
    out = []
    for nal in data.split(b"\x00\x00\x01"):
        nal = nal.rstrip(b"\x00")
        if nal and nal[0] & 0x1F in (7, 8):
            out.append(b"\x00\x00\x00\x01" + nal)
    return b"".join(out) or None


def fit(frame: av.VideoFrame, width: int, height: int) -> av.VideoFrame:
    """``frame`` scaled to ``width`` x ``height`` (8-bit 4:2:0), its aspect kept: a picture of
    another aspect is centred between black bars. A new frame; ``frame`` is not written to."""
    scale = min(width / frame.width, height / frame.height)
    w = min(width, max(2, round(frame.width * scale / 2) * 2))
    h = min(height, max(2, round(frame.height * scale / 2) * 2))
    scaled = frame.reformat(width=w, height=h, format="yuv420p")
    if (w, h) == (width, height):
        out = scaled
    else:
        out = av.VideoFrame(width, height, "yuv420p")
        left, top = (width - w) // 4 * 2, (height - h) // 4 * 2  # even: chroma stays aligned
        for n, (src, dst) in enumerate(zip(scaled.planes, out.planes, strict=True)):
            sub = 1 if n == 0 else 2
            a = np.frombuffer(cast(Any, src), np.uint8).reshape(-1, src.line_size)
            b = np.frombuffer(cast(Any, dst), np.uint8).reshape(-1, dst.line_size)
            b[:] = 16 if n == 0 else 128  # black
            y, x = top // sub, left // sub
            b[y : y + src.height, x : x + src.width] = a[: src.height, : src.width]
    out.pts = frame.pts
    if frame.time_base is not None:
        out.time_base = frame.time_base
    return out


class EncoderOptions(TypedDict, total=False):
    """How a :class:`Reencoder` encodes: libx264's ``preset``, ``tune`` and ``crf``, its
    ``threads`` (0: x264 chooses) and the decoder's ``decode_threads``."""

    preset: str
    tune: str
    crf: int
    threads: int
    decode_threads: int


class Reencoder:
    """Decode a camera's video and encode it again as H.264 (a PacketTransform).

    Encodes with libx264 (``preset`` ultrafast, ``tune`` zerolatency and CRF 23 by default: no
    lookahead, no B-frames, so the encoder adds no delay). The decoder uses ``decode_threads``
    frame threads (2 by default: one frame of delay, 33 ms at 30 fps, for about twice the
    decode rate on two cores; 1 for none). A keyframe goes out wherever the camera sent one, so
    the GOP is the source's. Output timestamps, arrival and wall-clock times are the source
    packet's. The output keeps the size of its first picture (see the module doc); a packet the
    decoder refuses is dropped and everything up to the next source keyframe with it
    (``dropped`` counts them), never passed through. Audio and other non-video packets pass
    through untouched. Subclasses change the picture in :meth:`picture`.

    Not thread-safe: one transform per stream, fed from one thread at a time (the relay and
    the guard feed it from a worker thread, off the event loop).
    """

    def __init__(self, **options: Unpack[EncoderOptions]) -> None:
        self._options = {
            "preset": options.get("preset", "ultrafast"),
            "tune": options.get("tune", "zerolatency"),
            "crf": str(options.get("crf", 23)),
            "forced-idr": "1",
        }
        self._threads = options.get("threads", 0)
        self._decode_threads = options.get("decode_threads", 2)
        self._decoder: VideoCodecContext | None = None
        self._source: StreamInfo | None = None
        self._encoder: VideoCodecContext | None = None
        self._info: StreamInfo | None = None
        self._size: tuple[int, int] | None = None
        self._fresh = False
        self._pending: dict[int, MediaPacket] = {}
        self._need_keyframe = True
        #: Pictures encoded so far.
        self.frames = 0
        #: Source packets dropped (undecodable, or waiting for a keyframe).
        self.dropped = 0
        #: Pictures scaled to the output size because the camera changed resolution.
        self.resized = 0

    @property
    def info(self) -> StreamInfo | None:
        """What the output stream looks like (None before the first picture)."""
        return self._info

    def picture(self, frame: av.VideoFrame) -> av.VideoFrame:
        """The picture to encode for the decoded ``frame``: by default the frame itself, in
        8-bit 4:2:0. A subclass that writes to it must copy first (the decoder predicts later
        pictures from its own frames)."""
        if frame.format.name in _PLANAR_420:
            return frame
        out = frame.reformat(format="yuv420p")  # 10-bit, 4:2:2, ...: what we encode anyway
        out.pts = frame.pts
        if frame.time_base is not None:
            out.time_base = frame.time_base
        return out

    def passes(self, packet: MediaPacket) -> bool:
        """True when this video packet goes out as it is (never, by default)."""
        return False

    def _open_decoder(self, info: StreamInfo) -> VideoCodecContext:
        try:
            decoder = cast(VideoCodecContext, av.CodecContext.create(info.codec, "r"))
        except (av.error.FFmpegError, ValueError):
            raise CameraProtocolError(f"cannot decode {info.codec!r} to re-encode it") from None
        if info.extradata:
            decoder.extradata = info.extradata
        if self._decode_threads > 1:
            # Frame threads: the decoder runs beside the encoder on another core, at the cost
            # of (threads - 1) frames of delay. 1 = slice threads only, no delay.
            decoder.thread_type = "AUTO"
            decoder.thread_count = self._decode_threads
        self._source = info
        return decoder

    def _open_encoder(self, width: int, height: int, time_base: Fraction) -> VideoCodecContext:
        encoder = av.CodecContext.create("libx264", "w")
        encoder.width = width
        encoder.height = height
        encoder.pix_fmt = "yuv420p"
        encoder.time_base = time_base
        encoder.gop_size = 1000  # keyframes come where the camera put them (forced below)
        encoder.thread_count = self._threads
        encoder.options = dict(self._options) | {"sc_threshold": "0"}
        encoder.open()
        self._fresh = True  # the output's description is checked at its first keyframe
        return encoder

    def feed(self, packet: MediaPacket) -> list[MediaPacket]:
        """Decode and re-encode one packet; returns the packets ready to go out."""
        if packet.stream.kind != "video":
            return [packet]
        if self.passes(packet):
            # What the re-encoder still holds came first; then the camera's own packets.
            held = self.flush() if self._decoder is not None or self._encoder is not None else []
            self._need_keyframe = True
            return [*held, packet]
        if self._need_keyframe:
            if not packet.is_keyframe:
                self.dropped += 1
                return []
            self._need_keyframe = False
        if packet.is_keyframe and (
            self._decoder is None or packet.stream.extradata != self._source_extradata()
        ):
            out = self._flush_decoder()  # the pictures the old decoder still holds
            self._decoder = self._open_decoder(packet.stream)
        else:
            out = []
        assert self._decoder is not None
        src = av.Packet(packet.data)
        src.pts, src.dts = packet.pts, packet.dts
        src.time_base = packet.stream.time_base
        if packet.pts is not None:
            self._pending[packet.pts] = packet
        try:
            frames = self._decoder.decode(src)
        except av.error.FFmpegError:
            self.dropped += 1
            self._need_keyframe = True  # a gap until the camera's next keyframe
            return out
        for frame in frames:
            out += self._encode(frame, packet.stream.time_base)
        return out

    def _source_extradata(self) -> bytes | None:
        return None if self._source is None else self._source.extradata

    def _encode(self, frame: av.VideoFrame, time_base: Fraction) -> list[MediaPacket]:
        picture = self.picture(frame)
        # One shape per stream (module doc), across flushes too: a camera reopened after a gap
        # at another resolution is scaled to the size the stream started with.
        size = self._size = self._size or (picture.width, picture.height)
        if (picture.width, picture.height) != size:
            picture = fit(picture, *size)
            self.resized += 1
        if self._encoder is None:
            self._encoder = self._open_encoder(*size, time_base)
            picture.pict_type = PictureType.I
        else:
            picture.pict_type = PictureType.I if frame.key_frame else PictureType.NONE
        self.frames += 1
        return self._wrap(self._encoder.encode(picture))

    def _wrap(self, packets: list[Any]) -> list[MediaPacket]:
        assert self._encoder is not None
        out = []
        for p in packets:
            data = bytes(p)
            if self._fresh:
                self._fresh = False
                info = StreamInfo(
                    codec="h264",
                    time_base=self._encoder.time_base,
                    width=self._encoder.width,
                    height=self._encoder.height,
                    extradata=_parameter_sets(data),
                )
                if info != self._info:  # the same after a flush: the same object, one track
                    self._info = info
            assert self._info is not None  # set at the encoder's first packet, just above
            source = self._pending.pop(p.pts, None) if p.pts is not None else None
            for stale in [k for k in self._pending if p.pts is not None and k < p.pts]:
                del self._pending[stale]  # a frame the decoder never returned
            out.append(
                MediaPacket(
                    data=data,
                    pts=p.pts,
                    dts=p.dts,
                    is_keyframe=p.is_keyframe,
                    stream=self._info,
                    arrival=source.arrival if source else 0.0,
                    duration=source.duration if source else None,
                    wallclock=source.wallclock if source else None,
                )
            )
        return out

    def _drain_encoder(self) -> list[MediaPacket]:
        if self._encoder is None:
            return []
        try:
            out = self._wrap(self._encoder.encode(None))
        finally:
            self._encoder = None
        return out

    def _flush_decoder(self) -> list[MediaPacket]:
        out: list[MediaPacket] = []
        if self._decoder is not None:
            try:
                frames = self._decoder.decode(None)
            except av.error.FFmpegError:
                frames = []
            for frame in frames:
                out += self._encode(frame, frame.time_base or Fraction(1, 90000))
            self._decoder = None
        return out

    def flush(self) -> list[MediaPacket]:
        """The stream ended: decode what the decoder holds and drain the encoder."""
        return self._flush_decoder() + self._drain_encoder()


class BrowserTranscode(Reencoder):
    """Video every browser plays: H.265 (or any codec not in :data:`BROWSER_CODECS`) re-encoded
    to H.264 at low latency; H.264 passes through untouched (no decode, no cost).

    The cost of a transcode is a decode and an encode per picture: at 1080p on one core of the
    bench machine, about what ffmpeg's CLI reaches with the same libx264 settings (see
    docs/benchmarks.md, bench/transcode.py), and the picture is the encoder's, not the
    camera's (CRF 23). Masked streams are H.264 already (the masks' re-encoder) and pass.
    """

    def __repr__(self) -> str:
        return f"<BrowserTranscode frames={self.frames}>"

    def passes(self, packet: MediaPacket) -> bool:
        """True for H.264: browsers play it as it is."""
        return packet.stream.codec in BROWSER_CODECS
