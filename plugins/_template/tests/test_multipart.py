"""The MJPEG stream reader takes untrusted bytes: whole parts out, however the bytes are cut,
and nothing but CameraProtocolError for anything else, with memory bounded."""

from __future__ import annotations

import pytest
from camgate.errors import CameraProtocolError
from camgate_examplecam.multipart import MAX_HEADER_BYTES, MultipartReader
from hypothesis import given, settings
from hypothesis import strategies as st

LIMIT = 4096
pictures = st.lists(st.binary(max_size=300).filter(lambda b: b"--frame" not in b), max_size=6)


def _body(parts: list[bytes], lengths: bool) -> bytes:
    out = b""
    for part in parts:
        head = b"Content-Type: image/jpeg\r\n"
        if lengths:
            head += b"Content-Length: %d\r\n" % len(part)
        out += b"--frame\r\n" + head + b"\r\n" + part + b"\r\n"
    return out + (b"--frame\r\n" if not lengths else b"")


def _feed(reader: MultipartReader, body: bytes, cuts: list[int]) -> list[bytes]:
    found: list[bytes] = []
    start = 0
    for cut in [*sorted({c % (len(body) + 1) for c in cuts}), len(body)]:
        found += reader.feed(body[start:cut])
        start = cut
    return found


@settings(max_examples=200, deadline=None)
@given(pictures, st.booleans(), st.lists(st.integers(0, 10_000), max_size=8))
def test_every_part_comes_out_whole_however_the_bytes_are_cut(
    parts: list[bytes], lengths: bool, cuts: list[int]
) -> None:
    found = _feed(MultipartReader("frame", LIMIT), _body(parts, lengths), cuts)
    # Without Content-Length a part ends at the next boundary: the last one needs it.
    assert found == parts


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=3000), st.integers(1, 5000), st.booleans())
def test_any_bytes_give_parts_or_a_protocol_error_with_memory_bounded(
    junk: bytes, repeat: int, framed: bool
) -> None:
    # Up to 15 MB of hostile bytes, 64 at a time: the reader never holds more than one
    # picture's limit, one header block and one chunk.
    body = (b"--frame\r\n" if framed else b"") + junk * repeat
    reader = MultipartReader("frame", 100)
    try:
        for start in range(0, min(len(body), 20_000), 64):
            reader.feed(body[start : start + 64])
            assert len(reader._buffer) <= 100 + MAX_HEADER_BYTES + 64
    except CameraProtocolError:
        pass


def test_a_picture_over_the_limit_is_refused() -> None:
    reader = MultipartReader("frame", 10)
    with pytest.raises(CameraProtocolError, match="over the limit"):
        reader.feed(b"--frame\r\nContent-Length: 11\r\n\r\n")
    endless = MultipartReader("frame", 10)
    with pytest.raises(CameraProtocolError, match="over the limit"):
        endless.feed(b"--frame\r\n\r\n" + b"x" * 11)
