"""Recorded footage for the simulated ONVIF device: H.264 whose every picture carries its time.

:func:`encode_recording` encodes ``seconds`` of 640x360 H.264 (libx264 through PyAV, a keyframe
every ``gop`` frames, SPS/PPS in front of every keyframe) in which frame ``i`` shows its index
as a 16-bit code: two rows of eight blocks across the top of the picture, a bright block for
a 1 bit and a dark one for a 0. :func:`read_code` reads the index back from a decoded picture,
so a test that received a replay can tell exactly which recorded moments it was given — the
codec changes pixel values a little, never a block's side of mid-grey. With ``picture_clock``
the bottom quarter also carries the capture time itself (camgate's picture clock, read by the
conformance suite without knowing the recording).

A :class:`Recording` pins the frames to wall-clock time: frame ``i`` was taken at
``start + i / fps``.
"""

from __future__ import annotations

import functools
from datetime import datetime, timedelta
from fractions import Fraction
from typing import Any

import attrs
from camgate.testing import draw_picture_clock, picture_luma

__all__ = ["Frame", "Recording", "code_picture", "encode_recording", "read_code", "split_nals"]

_BITS = 16
_COLUMNS = 8
_BRIGHT, _DARK = 235, 16


@attrs.frozen
class Frame:
    """One recorded access unit: its NAL units (no start codes) and whether it is a keyframe."""

    index: int
    nals: tuple[bytes, ...] = attrs.field(repr=False)
    keyframe: bool


@attrs.frozen
class Recording:
    """Frames pinned to wall-clock time: frame ``i`` was taken at ``start + i / fps``."""

    start: datetime
    fps: int
    frames: tuple[Frame, ...] = attrs.field(repr=False)
    sps: bytes = attrs.field(repr=False)
    pps: bytes = attrs.field(repr=False)

    @property
    def end(self) -> datetime:
        """The moment just after the last frame."""
        return self.time_of(len(self.frames))

    def time_of(self, index: int) -> datetime:
        """When frame ``index`` was taken."""
        return self.start + timedelta(seconds=index / self.fps)

    def index_at(self, moment: datetime) -> int:
        """The first frame taken at or after ``moment`` (may be ``len(frames)``)."""
        seconds = (moment - self.start) / timedelta(seconds=1)
        index = -int(-seconds * self.fps // 1)  # ceiling
        return min(max(index, 0), len(self.frames))

    def keyframe_before(self, index: int) -> int:
        """The keyframe at or before ``index`` (playback of a range starts there)."""
        index = min(index, len(self.frames) - 1)
        while index > 0 and not self.frames[index].keyframe:
            index -= 1
        return index


def code_picture(index: int, width: int, height: int, taken_at: datetime | None = None) -> Any:
    """The RGB picture (numpy array) of frame ``index``: its code on top of a grey gradient,
    and with ``taken_at`` the picture clock (:func:`camgate.testing.draw_picture_clock`) in the
    bottom quarter."""
    import numpy as np

    row = np.linspace(60, 190, width, dtype=np.uint8)
    luma = np.tile(row, (height, 1))
    block_w, block_h = width // _COLUMNS, height // 6
    for bit in range(_BITS):
        r, c = divmod(bit, _COLUMNS)
        value = _BRIGHT if index >> bit & 1 else _DARK
        luma[r * block_h : (r + 1) * block_h, c * block_w : (c + 1) * block_w] = value
    if taken_at is not None:
        draw_picture_clock(luma, taken_at)
    return np.stack([luma] * 3, axis=-1)


def read_code(picture: Any) -> int:
    """The frame index a decoded picture of a recording carries (``picture``: an RGB or
    grey numpy array, or a PyAV ``VideoFrame``)."""
    luma = picture_luma(picture)
    height, width = luma.shape
    block_w, block_h = width // _COLUMNS, height // 6
    index = 0
    for bit in range(_BITS):
        r, c = divmod(bit, _COLUMNS)
        # The block's centre half: clear of the codec's smearing at its edges.
        block = luma[
            r * block_h + block_h // 4 : (r + 1) * block_h - block_h // 4,
            c * block_w + block_w // 4 : (c + 1) * block_w - block_w // 4,
        ]
        if float(block.mean()) > (_BRIGHT + _DARK) / 2:
            index |= 1 << bit
    return index


def split_nals(annexb: bytes) -> list[bytes]:
    """The NAL units of an H.264 Annex B byte stream, without their start codes."""
    nals: list[bytes] = []
    i, n = 0, len(annexb)
    start = -1
    while i + 3 <= n:
        if annexb[i] == 0 and annexb[i + 1] == 0 and annexb[i + 2] == 1:
            if start >= 0:
                nals.append(annexb[start:i].rstrip(b"\x00"))
            i += 3
            start = i
        else:
            i += 1
    if start >= 0 and start < n:
        nals.append(annexb[start:])
    return [nal for nal in nals if nal]


@functools.lru_cache(maxsize=4)
def _encoded(
    seconds: int, fps: int, gop: int, width: int, height: int, clock_from: datetime | None = None
) -> tuple[Frame, ...]:
    import av

    enc: Any = av.CodecContext.create("libx264", "w")
    enc.width, enc.height, enc.pix_fmt = width, height, "yuv420p"
    enc.time_base = Fraction(1, fps)
    enc.framerate = Fraction(fps, 1)
    enc.options = {
        "preset": "ultrafast",
        "tune": "zerolatency",
        "g": str(gop),
        "keyint_min": str(gop),
        "sc_threshold": "0",
        "bf": "0",
        "crf": "18",
        "x264-params": "repeat-headers=1",
    }
    frames: list[Frame] = []

    def take(packets: Any) -> None:
        for packet in packets:
            frames.append(Frame(len(frames), tuple(split_nals(bytes(packet))), packet.is_keyframe))

    for i in range(seconds * fps):
        taken_at = None if clock_from is None else clock_from + timedelta(seconds=i / fps)
        picture = av.VideoFrame.from_ndarray(
            code_picture(i, width, height, taken_at), format="rgb24"
        )
        picture = picture.reformat(format="yuv420p")
        picture.pts = i
        take(enc.encode(picture))
    take(enc.encode(None))
    return tuple(frames)


def encode_recording(
    start: datetime,
    seconds: int = 30,
    *,
    fps: int = 10,
    gop: int = 10,
    width: int = 640,
    height: int = 360,
    picture_clock: bool = False,
) -> Recording:
    """``seconds`` of coded footage taken from ``start`` (encoded once per process and
    shape, ~1 s, then reused). With ``picture_clock`` every picture also carries the moment it
    was taken as the picture clock (then encoded once per ``start``)."""
    frames = _encoded(seconds, fps, gop, width, height, start if picture_clock else None)
    first = frames[0].nals
    sps = next(n for n in first if n[0] & 0x1F == 7)
    pps = next(n for n in first if n[0] & 0x1F == 8)
    return Recording(start, fps, frames, sps, pps)
