"""Fuzz the conformance recorder's parsers: bytes from a hostile adapter or camera.

The recorder reads what the adapter sends the camera and what the camera answers. Whatever
those bytes are, its parsers must not raise (a crashed recorder would leave the suite without
its own witness) and must not grow without bound.
"""

from __future__ import annotations

import socket
import time

from camgate_conformance.recorder import Recorder, _Direction, _sdp_audio_controls
from hypothesis import given, settings
from hypothesis import strategies as st

_PIECES = st.sampled_from(
    [
        b"DESCRIBE rtsp://h/cam RTSP/1.0\r\nCSeq: 1\r\n\r\n",
        b"SETUP rtsp://h/cam/stream=1 RTSP/1.0\r\n\r\n",
        b"RTSP/1.0 200 OK\r\nContent-Length: 30\r\n\r\nm=audio 0 RTP/AVP 0\r\na=control:x",
        b"POST /onvif HTTP/1.1\r\nContent-Length: 5\r\n\r\n<Bod",
        b"Content-Length: -1\r\n",
        b"Content-Length: 99999999999\r\n\r\n",
        b"Transfer-Encoding: chunked\r\n\r\n",
        b"GET / HTTP/1.1\r\nUpgrade: websocket\r\n\r\n",
        b"$\x00\xff\xff",
        b"\x16\x03\x01",
        b"\r\n\r\n",
    ]
)
_STREAMS = st.lists(st.one_of(_PIECES, st.binary(max_size=64)), max_size=12)


@settings(max_examples=300, deadline=None)
@given(_STREAMS)
def test_a_direction_cuts_any_byte_stream_without_raising(chunks: list[bytes]) -> None:
    direction = _Direction()
    for chunk in chunks:
        for head, body in direction.feed(chunk):
            assert isinstance(head, bytes) and isinstance(body, bytes)
    assert direction.count == sum(map(len, chunks))
    assert len(direction.buffer) <= (1 << 20) + 64


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_sdp_parsing_never_raises(body: bytes) -> None:
    assert isinstance(_sdp_audio_controls(body), set)


@settings(max_examples=25, deadline=None)
@given(_STREAMS)
def test_the_recorder_survives_hostile_bytes_and_keeps_relaying(chunks: list[bytes]) -> None:
    """Garbage from the adapter side: the recorder logs, relays, and still works after."""
    camera = socket.create_server(("127.0.0.1", 0))
    camera.settimeout(5)
    with Recorder() as recorder:
        host, port = recorder.proxy(*camera.getsockname()[:2])
        with socket.create_connection((host, port), timeout=5) as adapter:
            peer, _ = camera.accept()
            with peer:
                for chunk in chunks:
                    adapter.sendall(chunk)
                adapter.sendall(b"PING")
                got = b""
                deadline = time.monotonic() + 5
                peer.settimeout(5)
                while not got.endswith(b"PING") and time.monotonic() < deadline:
                    got += peer.recv(65536)
                assert got == b"".join(chunks) + b"PING"
        assert all(t.is_alive() for t in recorder.threads)
    camera.close()
