"""Privacy masks burnt into the picture: decode, fill the owner's polygons, re-encode (libx264).

The decode and encode are :class:`camgate.media.transcode.Reencoder`'s, shared with the
browser transcode.

Polygons are in normalised image coordinates (0..1), so one mask serves every resolution. Each
resolution is rasterised once into plane masks (a luma mask and a 4:2:0 chroma mask, numpy
booleans); a frame is then filled plane by plane with ``numpy.copyto`` — no per-pixel Python and
no RGB conversion. Rasterisation is conservative: a pixel is filled when its centre lies inside
a polygon, when it holds a corner, or when it touches a filled pixel (one pixel of dilation), and
a chroma sample is filled when any of its four luma pixels is.

:class:`MaskTransform` is a :class:`~camgate.media.transform.PacketTransform`: the relay applies
it once per camera for live streams, the edge for clips. :func:`mask_jpeg` masks a snapshot.
Nothing the transform returns carries an unmasked picture: a packet it cannot decode is dropped
(a gap, counted in ``dropped``), never passed through.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any, Unpack, cast

import av
import av.error
import numpy as np
import numpy.typing as npt

from camgate.errors import CameraProtocolError
from camgate.media.jpeg import encode_jpeg
from camgate.media.transcode import EncoderOptions, Reencoder

__all__ = ["FILL", "MaskTransform", "PlaneMasks", "mask_jpeg", "rasterise"]

Polygon = Sequence[tuple[float, float]]
BoolArray = npt.NDArray[np.bool_]

#: The fill: black, as (Y, U, V) for limited-range video and for full-range (JPEG) pictures.
FILL = {"limited": (16, 128, 128), "full": (0, 128, 128)}

_PLANAR_420 = ("yuv420p", "yuvj420p")


def rasterise(polygons: Sequence[Polygon], width: int, height: int) -> BoolArray:
    """A (height, width) boolean array: True where a pixel must be filled (see module doc)."""
    if width <= 0 or height <= 0:
        raise CameraProtocolError(f"cannot mask a {width}x{height} picture")
    # Even-odd rule on pixel centres, by scanline: each edge that crosses a row's centre line
    # toggles "inside" from its crossing point rightwards; a cumulative sum counts the toggles.
    toggles = np.zeros((height, width + 1), dtype=np.int32)
    rows = (np.arange(height) + 0.5) / height
    for polygon in polygons:
        pts = np.asarray(polygon, dtype=np.float64)
        x0, y0 = pts[:, 0], pts[:, 1]
        x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
        for ax, ay, bx, by in zip(x0, y0, x1, y1, strict=True):
            if ay == by:
                continue
            lo, hi = min(ay, by), max(ay, by)
            hit = np.nonzero((rows >= lo) & (rows < hi))[0]
            if hit.size == 0:
                continue
            xs = ax + (rows[hit] - ay) * (bx - ax) / (by - ay)  # crossing, normalised
            cols = np.clip(np.ceil(xs * width - 0.5), 0, width).astype(np.intp)
            np.add.at(toggles, (hit, cols), 1)
    inside = (np.cumsum(toggles, axis=1)[:, :width] % 2).astype(bool)
    for polygon in polygons:  # corners: a sliver thinner than a pixel still covers its ends
        for x, y in polygon:
            inside[min(height - 1, int(y * height)), min(width - 1, int(x * width))] = True
    grown = inside.copy()  # one pixel of dilation (8-neighbourhood)
    grown[1:, :] |= inside[:-1, :]
    grown[:-1, :] |= inside[1:, :]
    step = grown.copy()
    step[:, 1:] |= grown[:, :-1]
    step[:, :-1] |= grown[:, 1:]
    return step


class PlaneMasks:
    """The masks of one resolution: ``luma`` (h, w) and ``chroma`` (ceil(h/2), ceil(w/2))."""

    def __init__(self, polygons: Sequence[Polygon], width: int, height: int) -> None:
        self.width = width
        self.height = height
        self.luma = rasterise(polygons, width, height)
        padded = np.zeros((height + height % 2, width + width % 2), dtype=bool)
        padded[:height, :width] = self.luma
        h2, w2 = padded.shape[0] // 2, padded.shape[1] // 2
        self.chroma: BoolArray = np.asarray(padded.reshape(h2, 2, w2, 2).any(axis=(1, 3)))
        self.empty = not bool(self.luma.any())
        self._pieces = (_pieces(self.luma), _pieces(self.chroma))

    def fill(self, frame: av.VideoFrame, *, full_range: bool = False) -> None:
        """Fill the masked pixels of a planar 4:2:0 ``frame`` in place."""
        values = FILL["full" if full_range else "limited"]
        for plane, pieces, value in zip(
            frame.planes, (self._pieces[0], self._pieces[1], self._pieces[1]), values, strict=True
        ):
            view = np.frombuffer(cast(Any, plane), np.uint8).reshape(-1, plane.line_size)
            fill = np.uint8(value)
            for rows, cols, where in pieces:
                if where is None:
                    view[rows, cols] = fill  # a solid rectangle: a plain memset per row
                else:
                    np.copyto(view[rows, cols], fill, where=where)


Piece = tuple[slice, slice, "BoolArray | None"]


def _pieces(mask: BoolArray) -> list[Piece]:
    """Split a mask into bands of rows, each cut to its columns' extent: a band that is fully
    masked is filled as a rectangle, others through the mask. Only masked areas are touched."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return []
    pieces: list[Piece] = []
    # Bands: runs of consecutive masked rows with the same column extent.
    first = mask[rows].argmax(axis=1)
    last = mask.shape[1] - mask[rows][:, ::-1].argmax(axis=1)
    start = 0
    for n in range(1, rows.size + 1):
        if (
            n == rows.size
            or rows[n] != rows[n - 1] + 1
            or first[n] != first[start]
            or last[n] != last[start]
        ):
            r = slice(int(rows[start]), int(rows[n - 1]) + 1)
            c = slice(int(first[start]), int(last[start]))
            sub = mask[r, c]
            pieces.append((r, c, None if bool(sub.all()) else np.ascontiguousarray(sub)))
            start = n
    return pieces


def _masked_copy(frame: av.VideoFrame, masks: PlaneMasks) -> av.VideoFrame:
    """A 4:2:0 copy of ``frame`` with the masks filled (decoder frames are never written to:
    the decoder still predicts later pictures from them)."""
    name = frame.format.name
    if name in _PLANAR_420:
        out = av.VideoFrame(frame.width, frame.height, name)
        for src, dst in zip(frame.planes, out.planes, strict=True):
            a = np.frombuffer(cast(Any, src), np.uint8).reshape(-1, src.line_size)
            b = np.frombuffer(cast(Any, dst), np.uint8).reshape(-1, dst.line_size)
            rows, cols = min(a.shape[0], b.shape[0]), min(src.width, dst.width)
            b[:rows, :cols] = a[:rows, :cols]
    else:  # 10-bit, 4:2:2, ...: convert (a new frame) to the 8-bit 4:2:0 we encode anyway
        out = frame.reformat(format="yuv420p")
    out.pts = frame.pts
    if frame.time_base is not None:
        out.time_base = frame.time_base
    masks.fill(out, full_range=out.format.name == "yuvj420p")
    return out


class MaskTransform(Reencoder):
    """Re-encode a camera's video with its privacy masks filled (a PacketTransform).

    A :class:`~camgate.media.transcode.Reencoder` (libx264 ``preset`` ultrafast, ``tune``
    zerolatency by default; the camera's GOP; the source packets' timestamps; two decoder frame
    threads; an undecodable packet dropped up to the next keyframe, counted in ``dropped``)
    whose pictures are filled with the polygons, rasterised once per resolution. A resolution
    change mid-stream rebuilds the masks for the new size and fills the picture at that size;
    the filled picture is then scaled to the size the stream started with (letterboxed if the
    aspect changed), so the output keeps one shape and an MP4 clip keeps going.

    Not thread-safe: one transform per stream, fed from one thread at a time.
    """

    def __init__(self, polygons: Sequence[Polygon], **options: Unpack[EncoderOptions]) -> None:
        super().__init__(**options)
        self.polygons = [tuple((float(x), float(y)) for x, y in p) for p in polygons]
        self._masks: PlaneMasks | None = None

    def __repr__(self) -> str:
        return f"<MaskTransform polygons={len(self.polygons)} frames={self.frames}>"

    def _masks_for(self, width: int, height: int) -> PlaneMasks:
        if self._masks is None or (self._masks.width, self._masks.height) != (width, height):
            self._masks = PlaneMasks(self.polygons, width, height)
        return self._masks

    def picture(self, frame: av.VideoFrame) -> av.VideoFrame:
        """A copy of ``frame`` with the masks filled, at the frame's own size."""
        return _masked_copy(frame, self._masks_for(frame.width, frame.height))


def mask_jpeg(jpeg: bytes, polygons: Sequence[Polygon], *, quality: int = 3) -> bytes:
    """Decode a JPEG, fill the polygons and encode it again (CameraProtocolError if not a JPEG)."""
    try:
        with av.open(io.BytesIO(jpeg), "r", format="image2pipe") as container:
            frame = next(iter(container.decode(video=0)), None)
    except av.error.FFmpegError:
        raise CameraProtocolError("the snapshot is not a decodable JPEG") from None
    if frame is None:
        raise CameraProtocolError("the snapshot is not a decodable JPEG: no picture")
    masked = _masked_copy(frame, PlaneMasks(polygons, frame.width, frame.height))
    return encode_jpeg(masked, quality)[0]
