"""The rtsp adapter's conformance target: the GStreamer test server, its request log, faults.

Built by the adapter factory's ``conformance_target`` (see :mod:`camgate_rtsp.plugin`); it has the
shape of core's ``camgate.targets.Target`` without importing the suite. Cameras are
``/cam1`` and ``/cam2`` (video) and ``/cam3`` (video and an AAC tone); ``/cam1``, the camera the
snapshot check uses, carries each picture's capture time (the picture clock of
:mod:`camgate.testing`, burnt in by the server: it costs the server CPU, so only there). The
backdoor is the server's own log of every client request (:meth:`RtspTestServer.requests`),
mapped to camera sources.

Faults staged for the robustness checks, each reached with a password the suite watches for:

``auth``          a digest-protected mount, with the wrong password (401)
``refused``       a loopback port nobody listens on
``timeout``       a loopback peer that accepts the connection and never answers
``not-protocol``  a loopback peer that answers in HTTP
``offline``       a path the server does not serve (404: the camera is not there)
``drops``         a second server, killed after the first packet
``rate-limited``  a loopback peer answering RTSP 503 Service Unavailable with Retry-After
``server-error``  a loopback peer answering RTSP 500 Internal Server Error
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager
from typing import Any

import attrs
from camgate.testing import fault_peer

from camgate_rtsp.testing.server import Mount, RequestEvent, RtspTestServer

__all__ = ["RtspBackdoor", "RtspFault", "RtspTarget", "VendorEvent"]

#: The password of every fault's settings; an error message that contains it leaks a secret.
FAULT_SECRET = "fault-pa55:w0rd"  # noqa: S105 (a test password, there to be caught)
_LOCKED_PASSWORD = "the-right-one"  # noqa: S105
#: The password of the target's cameras (digest); it too must never show.
CAMERA_SECRET = "cam-pa55:w0rd/x"  # noqa: S105


@attrs.frozen
class VendorEvent:
    """A :class:`RequestEvent` with the camera source it concerns (None for connect/closed)."""

    at: float
    client: str
    kind: str
    camera: str | None
    media: bool


class RtspBackdoor:
    """The test server's request log, read without going through the adapter."""

    def __init__(self, server: RtspTestServer) -> None:
        self.server = server

    def _camera(self, event: RequestEvent) -> str | None:
        if event.path is None:
            return None
        for mount in self.server.mounts:
            if event.path == mount.path or event.path.startswith(mount.path + "/"):
                return self.server.url(mount.path)
        return self.server.url(event.path)

    def events(self) -> list[VendorEvent]:
        """Every client event so far, with its camera source."""
        return [
            VendorEvent(e.at, e.client, e.kind, self._camera(e), e.media)
            for e in self.server.requests()
        ]

    def open_clients(self) -> set[str]:
        """Client connections open now."""
        return self.server.open_clients()


@attrs.define
class RtspFault:
    """One staged fault (see the module docstring)."""

    source: str
    settings: Mapping[str, Any]
    secret: str = FAULT_SECRET
    within_s: float = 3.0
    server: RtspTestServer | None = None

    @property
    def mid_stream(self) -> bool:
        """True for ``drops``: the fault happens when :meth:`trigger` is called."""
        return self.server is not None

    def trigger(self) -> None:
        """Kill the fault's own server (``drops``); a no-op for the others."""
        if self.server is not None:
            self.server.kill()


def _settings(source: str, password: str = FAULT_SECRET) -> dict[str, Any]:
    return {
        "credentials": {source: {"username": "officer", "password": password}},
        "connect_timeout_s": 1.5,
        "read_timeout_s": 1.5,
    }


class RtspTarget:
    """Three cameras on a real GStreamer RTSP server, with its request log as the backdoor."""

    def __init__(self, gop_frames: int = 30) -> None:
        self.server = RtspTestServer(
            [
                # Credentials on every camera: the suite looks for them in every error, repr
                # and log record, not only in the fault cases'.
                Mount(
                    "/cam1",
                    gop_frames=gop_frames,
                    username="viewer",
                    password=CAMERA_SECRET,
                    picture_clock=True,
                ),
                Mount("/cam2", gop_frames=gop_frames, username="viewer", password=CAMERA_SECRET),
                Mount(
                    "/cam3",
                    gop_frames=gop_frames,
                    audio=True,
                    username="viewer",
                    password=CAMERA_SECRET,
                ),
                Mount(
                    "/locked", gop_frames=gop_frames, username="owner", password=_LOCKED_PASSWORD
                ),
            ]
        )
        self.description = "GStreamer RTSP test server on loopback (request log as backdoor)"
        self.sources: list[str] = []
        self.settings: dict[str, Any] = {}
        self.audio_source: str | None = None
        self.backdoor: RtspBackdoor | None = None
        #: The first camera burns each picture's capture time in (camgate.testing's picture
        #: clock): the suite reads a snapshot's time from the picture, not the adapter's stamp.
        self.snapshot_clock = True

    def __enter__(self) -> RtspTarget:
        self.server.start()
        self.sources = [self.server.url("/cam1"), self.server.url("/cam2")]
        self.audio_source = self.server.url("/cam3")
        self.settings = {
            "credentials": {
                url: {"username": "viewer", "password": CAMERA_SECRET}
                for url in [*self.sources, self.audio_source]
            }
        }
        self.backdoor = RtspBackdoor(self.server)
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the server."""
        self.server.stop()

    def fault(self, name: str) -> AbstractContextManager[RtspFault] | None:
        """Stage ``name`` (see the module docstring); None for faults RTSP has no form of."""
        stage = {
            "auth": self._auth,
            "refused": self._refused,
            "timeout": self._timeout,
            "not-protocol": self._not_protocol,
            "offline": self._offline,
            "drops": self._drops,
            "rate-limited": self._rate_limited,
            "server-error": self._server_error,
        }.get(name)
        return None if stage is None else contextlib.contextmanager(stage)()

    def _auth(self) -> Iterator[RtspFault]:
        source = self.server.url("/locked")
        yield RtspFault(
            source,
            _settings(source)
            | {"credentials": {source: {"username": "owner", "password": FAULT_SECRET}}},
        )

    def _refused(self) -> Iterator[RtspFault]:
        with socket.create_server(("127.0.0.1", 0)) as sock:
            port = sock.getsockname()[1]
        source = f"rtsp://127.0.0.1:{port}/cam1"
        yield RtspFault(source, _settings(source))

    def _timeout(self) -> Iterator[RtspFault]:
        with fault_peer("silent") as port:
            source = f"rtsp://127.0.0.1:{port}/cam1"
            yield RtspFault(source, _settings(source), within_s=4.0)

    def _not_protocol(self) -> Iterator[RtspFault]:
        with fault_peer("http") as port:
            source = f"rtsp://127.0.0.1:{port}/cam1"
            yield RtspFault(source, _settings(source), within_s=4.0)

    def _rate_limited(self) -> Iterator[RtspFault]:
        with fault_peer("rtsp-503") as port:
            source = f"rtsp://127.0.0.1:{port}/cam1"
            yield RtspFault(source, _settings(source))

    def _server_error(self) -> Iterator[RtspFault]:
        with fault_peer("rtsp-500") as port:
            source = f"rtsp://127.0.0.1:{port}/cam1"
            yield RtspFault(source, _settings(source))

    def _offline(self) -> Iterator[RtspFault]:
        source = self.server.url("/no-such-camera")
        yield RtspFault(source, _settings(source))

    def _drops(self) -> Iterator[RtspFault]:
        with RtspTestServer([Mount("/cam1")]) as server:
            source = server.url("/cam1")
            yield RtspFault(source, _settings(source), within_s=4.0, server=server)
