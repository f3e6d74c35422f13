"""The re-encoder: H.265 → H.264 for browsers, one output shape, and never on the event loop.

Inputs are real: the GStreamer RTSP server's H.264 and libx265's H.265 (as a camera sends it);
outputs are decoded by ffmpeg.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path

import attrs
import av
import numpy as np
import pytest
from camgate import Camera, GeoPoint, Grant, MediaPacket, StreamInfo
from camgate.media import BrowserTranscode, Chain, MaskTransform, Muxer, chain
from camgate.media.transcode import fit
from camgate.relay import Relay, RelaySettings
from camgate_rtsp.adapter import RtspAdapter, RtspSettings
from camgate_rtsp.testing.server import RtspTestServer
from hypothesis import given, settings
from hypothesis import strategies as st

from .test_media import (
    POLYGONS,
    _decode_all,
    _ffmpeg_decodes,
    _hevc_packets,
    _inside,
    _probe,
    big,
    media_server,
    small,
)

__all__ = ["big", "media_server", "small"]  # test_media's module-scoped fixtures, shared

pytestmark = pytest.mark.anyio


def _run(transform: object, packets: list[MediaPacket]) -> list[MediaPacket]:
    out = [o for p in packets for o in transform.feed(p)]  # type: ignore[attr-defined]
    return out + transform.flush()  # type: ignore[attr-defined]


def _write(path: Path, packets: list[MediaPacket], fmt: str = "mp4") -> Path:
    with Muxer(path, packets[0].stream, format=fmt) as mux:
        for packet in packets:
            mux.write(packet)
    return path


async def test_h265_becomes_h264_every_picture_in_place(tmp_path: Path) -> None:
    source = _hevc_packets(count=40, gop=10)
    transform = BrowserTranscode()
    out = _run(transform, source)
    assert {p.stream.codec for p in out} == {"h264"} and len(out) == len(source)
    assert [p.is_keyframe for p in out] == [p.is_keyframe for p in source], "the camera's GOP"
    assert [p.pts for p in out] == [p.pts for p in source]
    for fmt in ("mp4", "fmp4", "ts"):
        path = _write(tmp_path / f"clip.{fmt}", out, fmt)
        assert _ffmpeg_decodes(path) == len(source), fmt
    info = _probe(tmp_path / "clip.mp4", "stream=codec_name,width,height")
    assert info["streams"] == [{"codec_name": "h264", "width": 320, "height": 240}]
    raw = tmp_path / "source.hevc"
    raw.write_bytes(b"".join(p.data for p in source))
    for want, got in zip(_decode_all(raw), _decode_all(tmp_path / "clip.mp4"), strict=True):
        assert abs(float(want.mean()) - float(got.mean())) < 2, "the camera's picture"


async def test_h264_passes_as_it_is(rtsp_server: RtspTestServer) -> None:
    from .test_media import _capture

    packets = await _capture(rtsp_server.url("/cam1"), 30)
    transform = BrowserTranscode()
    out = _run(transform, packets)
    assert [id(p) for p in out] == [id(p) for p in packets] and transform.frames == 0


def _frame(width: int, height: int, luma: int) -> av.VideoFrame:
    picture = np.full((height * 3 // 2, width), 128, dtype=np.uint8)
    picture[:height] = luma
    frame = av.VideoFrame.from_ndarray(picture, format="yuv420p")
    frame.pts = 7
    return frame


def test_fit_letterboxes_a_new_aspect() -> None:
    out = fit(_frame(320, 240, 200), 640, 360)  # 4:3 into 16:9: bars left and right
    assert (out.width, out.height, out.format.name, out.pts) == (640, 360, "yuv420p", 7)
    grey = out.to_ndarray()[:360]  # the Y plane as it is (limited range: black is 16)
    assert grey[:, :70].max() == 16 and grey[:, -70:].max() == 16, "black bars"
    assert abs(int(grey[:, 90:550].mean()) - 200) <= 2, "the picture, 480 wide, centred"
    same = fit(_frame(320, 180, 90), 640, 360).to_ndarray()[:360]  # same aspect: no bars
    assert abs(int(same.mean()) - 90) <= 1


def test_a_masked_stream_that_changes_aspect_keeps_its_size(tmp_path: Path) -> None:
    """A camera switching from 16:9 to 4:3: masked at its new size, letterboxed, one file."""
    first = _hevc_packets(count=10, gop=10)  # 320x240 (4:3)
    info = StreamInfo(codec="hevc", time_base=Fraction(1, 90000), width=480, height=270)
    encoder = av.CodecContext.create("libx265", "w")
    encoder.width, encoder.height, encoder.pix_fmt = 480, 270, "yuv420p"
    encoder.time_base = Fraction(1, 90000)
    encoder.options = {"preset": "ultrafast", "x265-params": "log-level=error:bframes=0"}
    wide: list[MediaPacket] = []
    for n in range(11):
        frame = _frame(480, 270, 180) if n < 10 else None
        if frame is not None:
            frame.pts = (100 + n) * 3000
        for p in encoder.encode(frame):
            wide.append(
                MediaPacket(bytes(p), p.pts, p.dts, p.is_keyframe, info, 0.0, duration=3000)
            )
    transform = MaskTransform(POLYGONS)  # type: ignore[arg-type]
    out = _run(transform, first + wide)
    assert {(p.stream.width, p.stream.height) for p in out} == {(320, 240)}
    assert transform.resized == 10
    frames = _decode_all(_write(tmp_path / "switched.mp4", out))
    assert len(frames) == 20
    inside = _inside(POLYGONS, 320, 240)
    assert all(int(f[inside].max()) <= 24 for f in frames[:10])
    # 480x270 into 320x240: 320x180 between bars of 30 rows; the masks at the picture's size.
    last = frames[-1]
    assert last[:28].max() <= 20 and last[-28:].max() <= 20, "letterbox bars"
    picture = _inside(POLYGONS, 320, 180)
    assert int(last[30:210][picture].max()) <= 24, "the masks follow the new picture"
    assert last[30:210][~picture].mean() > 150


def test_chain_feeds_and_flushes_in_order() -> None:
    class Tag:
        def __init__(self, name: str, hold: bool) -> None:
            self.name, self.hold, self.held = name, hold, []

        def feed(self, packet: MediaPacket) -> list[MediaPacket]:
            tagged = MediaPacket(packet.data + self.name.encode(), 0, 0, True, packet.stream, 0.0)
            if self.hold:
                self.held.append(tagged)
                return []
            return [tagged]

        def flush(self) -> list[MediaPacket]:
            out, self.held = self.held, []
            return out

    info = StreamInfo(codec="h264", time_base=Fraction(1, 90000), width=2, height=2)
    first, second = Tag("a", hold=True), Tag("b", hold=False)
    both = chain(None, first, second)
    assert isinstance(both, Chain) and chain(None, second) is second and chain(None) is None
    assert both.feed(MediaPacket(b"1", 0, 0, True, info, 0.0)) == []
    assert [p.data for p in both.flush()] == [b"1ab"], "what the first held goes through"


class _Recording:
    """A pass-through transform that notes which thread each call ran on."""

    def __init__(self, in_loop: bool = False) -> None:
        self.in_loop = in_loop
        self.threads: list[int] = []

    def feed(self, packet: MediaPacket) -> list[MediaPacket]:
        self.threads.append(threading.get_ident())
        return [packet]

    def flush(self) -> list[MediaPacket]:
        self.threads.append(threading.get_ident())
        return []


@pytest.mark.parametrize("in_loop", [False, True])
async def test_the_relay_feeds_its_transform_off_the_event_loop(
    rtsp_server: RtspTestServer, in_loop: bool
) -> None:
    """A re-encode takes tens of ms at 1080p: the relay must never run it on the loop (a
    transform that says it is cheap, ``in_loop``, stays there)."""
    transform = _Recording(in_loop)
    relay = Relay(RelaySettings(), transform_factory=lambda _camera: transform)
    camera = Camera(
        id="cam", adapter="rtsp", source=rtsp_server.url("/cam1"), owner_id="o",
        position=GeoPoint(32.3, -90.18),
    )  # fmt: skip
    now = datetime.now(UTC)
    grant = Grant(
        id="grt", request_id="req", camera_id="cam", incident_id="inc", scope="live",
        issued_at=now, expires_at=now + timedelta(minutes=1), consent_id="con",
    )  # fmt: skip
    adapter = RtspAdapter(RtspSettings())
    sub = relay.subscribe(camera, grant, lambda: adapter.open_live(camera, grant), time.monotonic())
    try:
        await sub.wait_open()
        got = 0
        async for _packet in sub:
            got += 1
            if got == 10:
                break
    finally:
        await sub.aclose()
        await relay.aclose()
    loop = threading.get_ident()
    assert len(transform.threads) >= 10
    if in_loop:
        assert set(transform.threads) == {loop}
    else:
        assert loop not in transform.threads


async def test_a_camera_back_at_another_size_after_a_gap_keeps_the_output_size(
    big: list[MediaPacket], small: list[MediaPacket], tmp_path: Path
) -> None:
    """A camera reopened (a gap: the relay flushes the transform) at another resolution: the
    output keeps its size and its description, so one MP4 still holds the masked stream."""
    transform = MaskTransform(POLYGONS)  # type: ignore[arg-type]
    before = [o for p in big[:30] for o in transform.feed(p)] + transform.flush()  # the gap
    # Timestamps go on after the gap here (a restarted clock is the muxer's matter).
    offset = big[29].pts + 3000 - small[0].pts  # type: ignore[operator]
    later = [
        attrs.evolve(p, pts=p.pts + offset, dts=(p.dts or 0) + offset)  # type: ignore[operator]
        for p in small
    ]
    after = _run(transform, later)
    assert len(before) == 30 and len(after) == len(small)
    assert {id(p.stream) for p in before + after} == {id(before[0].stream)}
    assert (before[0].stream.width, before[0].stream.height) == (640, 360)
    assert _ffmpeg_decodes(_write(tmp_path / "gap.mp4", before + after, "fmp4")) == 30 + len(small)


@settings(max_examples=40, deadline=None)
@given(
    src=st.tuples(st.integers(1, 200), st.integers(1, 200)),
    dst=st.tuples(st.integers(1, 200), st.integers(1, 200)),
)
def test_fit_always_gives_the_output_size_and_never_shows_outside_the_picture(
    src: tuple[int, int], dst: tuple[int, int]
) -> None:
    """Any size into any size: exactly the output's size, the picture inside, black around."""
    width, height = src[0] * 2, src[1] * 2
    out = fit(_frame(width, height, 235), dst[0] * 2, dst[1] * 2)
    assert (out.width, out.height) == (dst[0] * 2, dst[1] * 2)
    luma = out.to_ndarray()[: out.height]
    bright = luma > 200
    rows, cols = np.flatnonzero(bright.any(axis=1)), np.flatnonzero(bright.any(axis=0))
    assert rows.size and cols.size, "some of the picture is shown"
    # The picture is one centred rectangle; everything else is black.
    box = luma[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    assert box.min() > 200
    assert int(luma.sum()) - int(box.sum()) == 16 * (luma.size - box.size)
    assert abs((rows[0]) - (out.height - 1 - rows[-1])) <= 2
    assert abs((cols[0]) - (out.width - 1 - cols[-1])) <= 2
