"""JPEG stills: the first picture of a run of packets, and a check that bytes are a JPEG."""

from __future__ import annotations

import io
from collections.abc import Iterable
from fractions import Fraction
from typing import cast

import av
import av.error
from av.video.codeccontext import VideoCodecContext

from camgate.errors import CameraProtocolError
from camgate.models import MediaPacket

__all__ = ["decode_jpeg", "encode_jpeg", "jpeg_from_packets"]


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
            return encode_jpeg(frame, quality)
    if decoder is not None:
        for frame in decoder.decode(None):
            return encode_jpeg(frame, quality)
    raise CameraProtocolError("the stream ended before a picture could be decoded")


def encode_jpeg(frame: av.VideoFrame, quality: int = 3) -> tuple[bytes, int, int]:
    """Encode one decoded picture as a JPEG: (bytes, width, height)."""
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
