"""The picture clock (issue 13, item 2): a capture time burnt into a picture survives H.264,
and whatever a hostile adapter hands over, the reader answers a time or None, never raises."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from fractions import Fraction

import av
import numpy as np
from camgate.testing import draw_picture_clock, read_picture_clock
from camgate_conformance.checks import _clock_range
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays


def test_the_clock_survives_an_h264_round_trip_to_the_millisecond() -> None:
    start = datetime(2026, 12, 6, 3, 20, 58, 575000, tzinfo=UTC)
    encoder = av.CodecContext.create("libx264", "w")
    encoder.width, encoder.height, encoder.pix_fmt = 320, 240, "yuv420p"
    encoder.time_base = Fraction(1, 10)
    encoder.options = {"preset": "ultrafast", "tune": "zerolatency", "crf": "30"}
    taken = [start + timedelta(milliseconds=100 * i + 7) for i in range(12)]
    packets = []
    for i, when in enumerate(taken):
        luma = np.random.default_rng(i).integers(0, 255, (240, 320), dtype=np.uint8)
        draw_picture_clock(luma, when)
        frame = av.VideoFrame.from_ndarray(luma, format="gray").reformat(format="yuv420p")
        frame.pts = i
        packets += encoder.encode(frame)
    packets += encoder.encode(None)
    decoder = av.CodecContext.create("h264", "r")
    read = [read_picture_clock(p) for packet in packets for p in decoder.decode(packet)]
    assert read == taken


def test_a_picture_without_the_clock_reads_as_none() -> None:
    assert read_picture_clock(np.full((360, 640), 128, dtype=np.uint8)) is None
    assert read_picture_clock(np.zeros((8, 8), dtype=np.uint8)) is None


@settings(max_examples=150, deadline=None)
@given(arrays(np.uint8, st.tuples(st.integers(0, 80), st.integers(0, 80))))
def test_any_picture_reads_as_a_time_or_none(picture: np.ndarray) -> None:
    found = read_picture_clock(picture)
    assert found is None or found.tzinfo is UTC


def test_a_code_past_the_calendar_reads_as_none() -> None:
    picture = np.zeros((64, 64), dtype=np.uint8)
    draw_picture_clock(picture, datetime(9999, 12, 31, tzinfo=UTC))
    # Flip the highest time bits by hand, fixing the checksum: a valid code, an impossible time.
    millis = (1 << 48) - 1
    code = 0xA5 | millis << 8 | (sum(millis.to_bytes(6, "little")) & 0xFF) << 56
    for bit in range(64):
        r, c = divmod(bit, 16)
        y, x = 48 + r * 4, c * 4
        picture[y : y + 4, x : x + 4] = 235 if code >> bit & 1 else 16
    assert read_picture_clock(picture) is None


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.text(max_size=80),
        st.builds(
            lambda a, b: f"PLAY rtsp://h/x RTSP/1.0 Range: clock={a}-{b}",
            st.from_regex(r"\d{8}T\d{6}(\.\d{1,6})?Z", fullmatch=True),
            st.from_regex(r"(\d{8}T\d{6}(\.\d{1,6})?Z)?", fullmatch=True),
        ),
    )
)
def test_a_replay_range_from_the_adapter_parses_or_reads_as_none(detail: str) -> None:
    """The Range header the recorder logged comes from the adapter: any text, no traceback."""
    found = _clock_range(detail)
    assert found is None or found[0].tzinfo is UTC
