"""A camera whose parameter sets come only in-band (no SDP ones, no extradata): every format
still gets them from the first keyframe, and the file decodes whole."""

from __future__ import annotations

import subprocess
from fractions import Fraction
from pathlib import Path

import attrs
import av
import numpy as np
import pytest
from camgate.media import Muxer
from camgate.media.mux import holds_picture, inband_parameter_sets
from camgate.models import MediaPacket, StreamInfo
from hypothesis import given, settings
from hypothesis import strategies as st

TB = Fraction(1, 90000)


def _inband_h264(frames: int) -> list[tuple[bytes, int, bool]]:
    """H.264 from libx264 with SPS/PPS repeated in-band and no global header."""
    ctx = av.CodecContext.create("libx264", "w")
    ctx.width, ctx.height, ctx.pix_fmt = 160, 96, "yuv420p"
    ctx.time_base = Fraction(1, 30)
    ctx.options = {"preset": "ultrafast", "tune": "zerolatency", "g": "15"}
    out: list[tuple[bytes, int, bool]] = []
    for i in range(frames):
        picture = np.full((96, 160, 3), (i * 8) % 256, dtype=np.uint8)
        frame = av.VideoFrame.from_ndarray(picture, format="rgb24").reformat(format="yuv420p")
        frame.pts = i
        out += [(bytes(p), i * 3000, p.is_keyframe) for p in ctx.encode(frame)]
    out += [(bytes(p), len(out) * 3000, p.is_keyframe) for p in ctx.encode(None)]
    return out


@pytest.mark.parametrize("format", ["mp4", "fmp4", "ts"])
def test_inband_parameter_sets_reach_the_file(tmp_path: Path, format: str) -> None:
    info = StreamInfo(codec="h264", time_base=TB, width=160, height=96)  # no extradata
    packets = _inband_h264(60)
    assert inband_parameter_sets("h264", packets[0][0])  # the encoder repeats them in-band
    target = tmp_path / f"clip.{format}"
    with Muxer(target, info, format=format) as muxer:
        for data, pts, key in packets:
            muxer.write(MediaPacket(data, pts, pts, key, info, arrival=pts / 90000))
    path = target
    decoded = subprocess.run(
        ["ffmpeg", "-v", "error", "-xerror", "-i", str(path), "-f", "null", "-"],
        capture_output=True,
        text=True,
    )
    assert decoded.returncode == 0, decoded.stderr
    with av.open(str(path)) as container:
        assert sum(1 for _ in container.decode(video=0)) == 60


def test_parameter_sets_are_found_for_h264_and_h265() -> None:
    sps, pps, idr = b"\x67\x42\x00\x1e\xab", b"\x68\xce\x3c\x80", b"\x65\x88\x84\x00"
    unit = b"\x00\x00\x00\x01" + sps + b"\x00\x00\x01" + pps + b"\x00\x00\x01" + idr
    assert inband_parameter_sets("h264", unit) == (
        b"\x00\x00\x00\x01" + sps + b"\x00\x00\x00\x01" + pps
    )
    vps, hsps = b"\x40\x01\x0c\x01", b"\x42\x01\x01\x01"
    assert inband_parameter_sets("hevc", b"\x00\x00\x01" + vps + b"\x00\x00\x01" + hsps)
    assert inband_parameter_sets("h264", b"\x00\x00\x01" + idr) is None
    assert inband_parameter_sets("mjpeg", unit) is None


@settings(max_examples=300)
@given(codec=st.sampled_from(["h264", "hevc", "aac"]), data=st.binary(max_size=512))
def test_any_bytes_give_parameter_sets_or_none(codec: str, data: bytes) -> None:
    found = inband_parameter_sets(codec, data)
    assert found is None or (found.startswith(b"\x00\x00\x00\x01") and len(found) > 5)


@pytest.mark.parametrize("format", ["mp4", "fmp4", "ts"])
def test_an_access_unit_without_a_picture_is_left_out(tmp_path: Path, format: str) -> None:
    """A camera that went away mid-frame leaves an access unit holding only its delimiter
    (what FFmpeg's RTP reader hands over): the file skips it, so players decode every
    picture without an error, across the gap that follows."""
    info = StreamInfo(codec="h264", time_base=TB, width=160, height=96)
    packets = _inband_h264(60)
    assert packets[30][2]  # a keyframe starts the second half (g=15)
    aud = b"\x00\x00\x00\x01\x09\x30"
    target = tmp_path / f"clip.{format}"
    with Muxer(target, info, format=format) as muxer:
        for data, pts, key in packets[:30]:
            muxer.write(MediaPacket(data, pts, pts, key, info, arrival=pts / 90000))
        cut = MediaPacket(aud, 30 * 3000, 30 * 3000, False, info, arrival=1.0)
        assert muxer.write(cut) == 0
        for data, pts, key in packets[30:]:  # the camera is back after 2 s, a new timeline
            at, arrival = pts - 30 * 3000, 2.0123 + pts / 90000
            again = MediaPacket(data, at, at, key, info, arrival=arrival)
            muxer.write(attrs.evolve(again, discontinuity=at == 0))
        assert [round(g.missing_s, 1) for g in muxer.gaps] == [2.0]
    decoded = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(target), "-f", "null", "-"],
        capture_output=True,
        text=True,
    )
    assert decoded.returncode == 0 and decoded.stderr == "", decoded.stderr
    with av.open(str(target)) as container:
        assert sum(1 for _ in container.decode(video=0)) == 60
    # The picture after the gap sits on the camera's frame grid: ffmpeg's CLI, which guesses
    # the frame rate from the timestamps, sees 30 fps and keeps every picture.
    counted = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(target), "-f", "framemd5", "-"],
        capture_output=True,
        text=True,
    )
    assert sum(1 for line in counted.stdout.splitlines() if not line.startswith("#")) == 60


@settings(max_examples=300)
@given(codec=st.sampled_from(["h264", "hevc", "mjpeg"]), data=st.binary(max_size=256))
def test_any_bytes_hold_a_picture_or_not(codec: str, data: bytes) -> None:
    info = StreamInfo(codec=codec, time_base=TB, width=16, height=16)
    held = holds_picture(MediaPacket(b"\x00\x00\x01" + data, 0, 0, False, info, arrival=0.0))
    assert isinstance(held, bool)
    assert holds_picture(MediaPacket(data, 0, 0, False, info, arrival=0.0)) or data.startswith(
        b"\x00\x00"
    )
