"""Fixtures of the ONVIF attack tests: the GStreamer RTSP server, simulators on it, a listener
that records whether anything (credentials above all) reached another port of the host."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from typing import Any

import attrs
import pytest
from camgate_onvif.adapter import OnvifAdapter, OnvifSettings
from camgate_onvif.testing.simulator import OnvifSimulator
from camgate_rtsp.testing.server import RtspTestServer, serving


@pytest.fixture(scope="module")
def rtsp_server() -> Iterator[RtspTestServer]:
    """The RTSP server behind the simulated devices' stream URIs."""
    with serving(OnvifSimulator.mounts(1, gop_frames=30)) as server:
        yield server


@pytest.fixture
def make_sim(rtsp_server: RtspTestServer) -> Iterator[Any]:
    """Start a simulator on the shared RTSP server (``make_sim(**kwargs)``); all are stopped
    after the test."""
    with contextlib.ExitStack() as stack:
        yield lambda **kw: stack.enter_context(
            OnvifSimulator(1, rtsp_server=rtsp_server, gop_frames=30, **kw)
        )


def adapter(sim: OnvifSimulator, **settings: Any) -> OnvifAdapter:
    """An adapter reaching ``sim`` (its settings plus ``settings``; keys the adapter does not
    know are left out, so a test can also run against an older adapter)."""
    known = attrs.fields_dict(OnvifSettings)
    merged = {k: v for k, v in (sim.settings | settings).items() if k in known}
    return OnvifAdapter.from_settings(merged)


class Listener:
    """A TCP listener on loopback that records every connection and what arrived on it, and
    answers each request with a 401 asking for Basic credentials (HTTP or RTSP)."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.sock.getsockname()[1])
        self.received: list[bytes] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._talk, args=(conn,), daemon=True).start()

    def _talk(self, conn: socket.socket) -> None:
        data = b""
        with conn:
            conn.settimeout(5)
            try:
                while chunk := conn.recv(65536):
                    data += chunk
                    with self._lock:
                        self.received.append(chunk)
                    if b"\r\n\r\n" in data:
                        proto = (
                            b"RTSP/1.0"
                            if data.startswith((b"DESCRIBE", b"OPTIONS"))
                            else (b"HTTP/1.1")
                        )
                        cseq = b""
                        for line in data.split(b"\r\n"):
                            if line.lower().startswith(b"cseq:"):
                                cseq = line + b"\r\n"
                        conn.sendall(
                            proto
                            + b" 401 Unauthorized\r\n"
                            + cseq
                            + b'WWW-Authenticate: Basic realm="x"\r\nContent-Length: 0\r\n\r\n'
                        )
                        data = b""
            except OSError:
                return

    @property
    def anything(self) -> bytes:
        """Everything that arrived, joined."""
        with self._lock:
            return b"".join(self.received)

    def close(self) -> None:
        """Stop listening."""
        self.sock.close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    """A listener on another port of the camera's host (loopback)."""
    lst = Listener()
    yield lst
    lst.close()


def camera(sim: OnvifSimulator, index: int = 0, cam_id: str = "cam-a") -> Any:
    """A camera of ``sim`` (its ``index``-th source)."""
    from camgate.models import Camera, GeoPoint

    return Camera(
        id=cam_id,
        adapter="onvif",
        source=sim.sources[index],
        owner_id="alice",
        position=GeoPoint(32.3, -90.18),
    )


def grant(cam: Any, scope: str, window: tuple[Any, Any] | None = None, consent: str = "c1") -> Any:
    """A grant of ``scope`` on ``cam`` (the adapter trusts the edge's guard for its checks)."""
    from datetime import UTC, datetime, timedelta

    from camgate.models import Grant

    now = datetime.now(UTC)
    start, end = window if window is not None else (None, None)
    return Grant(
        id="g1",
        request_id="r1",
        camera_id=cam.id,
        incident_id="i1",
        scope=scope,
        issued_at=now,
        expires_at=now + timedelta(minutes=5),
        window_start=start,
        window_end=end,
        consent_id=consent,
    )
