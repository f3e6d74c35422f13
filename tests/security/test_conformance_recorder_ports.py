"""The recorder stays in front of every port a camera names (issue 13, ONVIF egress).

A camera answers with other ports of its own (ONVIF stream, snapshot and replay URIs). An
adapter keeps the configured host — the recorder's — and takes the reported port, so the recorder
must listen on that port of its own host before the answer reaches the adapter; otherwise the
adapter either fails or goes past the recorder to the camera.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest
from camgate_conformance.recorder import Recorder


@pytest.fixture
def camera() -> Iterator[tuple[int, int]]:
    """An HTTP 'device' (first port) whose answer names its 'RTSP server' (second port)."""
    http = socket.create_server(("127.0.0.1", 0))
    rtsp = socket.create_server(("127.0.0.1", 0))
    rtsp_port = rtsp.getsockname()[1]
    body = f"<Uri>rtsp://127.0.0.1:{rtsp_port}/dev1/main</Uri>".encode()
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)

    def serve() -> None:
        for listener, reply in ((http, answer), (rtsp, b"RTSP/1.0 200 OK\r\nCSeq: 1\r\n\r\n")):
            conn, _ = listener.accept()
            with conn:
                conn.recv(4096)
                conn.sendall(reply)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield http.getsockname()[1], rtsp_port
    thread.join(5)
    http.close()
    rtsp.close()


def _ask(address: tuple[str, int], request: bytes) -> bytes:
    with socket.create_connection(address, timeout=5) as sock:
        sock.sendall(request)
        return sock.recv(4096)


def test_a_port_the_camera_names_is_proxied_on_the_recorders_host(
    camera: tuple[int, int],
) -> None:
    http_port, rtsp_port = camera
    with Recorder() as recorder:
        host, port = recorder.proxy("127.0.0.1", http_port)
        assert host != "127.0.0.1" and port == http_port  # a mirror host, the same port
        answer = _ask((host, port), b"POST /onvif HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
        # The answer is relayed unchanged: the recorder witnesses, it does not rewrite.
        assert f"rtsp://127.0.0.1:{rtsp_port}/dev1/main".encode() in answer
        # The adapter keeps the configured host and takes the reported port: the recorder.
        assert _ask((host, rtsp_port), b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n\r\n").startswith(
            b"RTSP/1.0 200"
        )
        assert ("127.0.0.1", rtsp_port) in recorder.upstreams()
        assert (host, rtsp_port) in recorder.listen_addresses()
        kinds = [e.kind for e in recorder.events()]
        assert "learned" in kinds and kinds.count("connect") == 2
