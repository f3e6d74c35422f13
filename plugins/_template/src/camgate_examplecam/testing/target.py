"""The Example Cam conformance target: the simulator, its log as the backdoor, staged faults.

It has the shape of core's ``camgate.targets.Target`` without importing the suite.
Cameras ``/cam1`` and ``/cam2`` (Digest-protected), ``/locked`` (another password) and
``/broken`` (always 500). Faults, each reached with :data:`FAULT_SECRET`, which the suite
watches for in every error, repr and log record:

``auth``          ``/locked`` with the wrong password (401)
``rate-limited``  a loopback peer answering HTTP 429 with Retry-After
``server-error``  ``/broken`` (500)
``timeout``       a loopback peer that accepts the connection and never answers
``not-protocol``  a loopback peer that answers in RTSP, not HTTP
``refused``       a loopback port nobody listens on
``offline``       a path the simulator does not serve (404)
``drops``         a second simulator, killed after the first packet
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager
from typing import Any

import attrs
from camgate.testing import fault_peer

from camgate_examplecam.testing import ExampleSimulator

__all__ = ["ExampleBackdoor", "ExampleFault", "ExampleTarget", "VendorEvent"]

#: The password of every fault's settings; an error that shows it leaks a secret.
FAULT_SECRET = "fault-pa55:w0rd"  # noqa: S105 (a test password, there to be caught)
#: The password of the target's cameras.
CAMERA_SECRET = "cam-pa55:w0rd/x"  # noqa: S105
_LOCKED = {"username": "owner", "password": "the-right-one"}


@attrs.frozen
class VendorEvent:
    """A server event as the suite reads it: ``camera`` is the source it concerns."""

    at: float
    client: str
    kind: str
    camera: str | None
    media: bool


class ExampleBackdoor:
    """The simulator's own log, read without going through the adapter."""

    def __init__(self, sim: ExampleSimulator) -> None:
        self.sim = sim

    def events(self) -> list[VendorEvent]:
        """Every event so far, with the camera source it concerns."""
        return [
            VendorEvent(e.at, e.client, e.kind, self.sim.url(e.path) if e.path else None, e.media)
            for e in self.sim.events()
        ]

    def open_clients(self) -> set[str]:
        """Connections open now."""
        return self.sim.open_clients()


@attrs.define
class ExampleFault:
    """One staged fault (see the module docstring)."""

    source: str
    settings: Mapping[str, Any]
    secret: str = FAULT_SECRET
    within_s: float = 3.0
    sim: ExampleSimulator | None = None

    @property
    def mid_stream(self) -> bool:
        """True for ``drops``: the fault happens when :meth:`trigger` is called."""
        return self.sim is not None

    def trigger(self) -> None:
        """Kill the fault's own simulator (``drops``); a no-op for the others."""
        if self.sim is not None:
            self.sim.kill()


def _settings(source: str, username: str = "viewer") -> dict[str, Any]:
    return {
        "credentials": {source: {"username": username, "password": FAULT_SECRET}},
        "connect_timeout_s": 1.5,
        "read_timeout_s": 1.5,
    }


class ExampleTarget:
    """Two cameras on a simulated Example Cam, with its request log as the backdoor."""

    description = "simulated Example Cam on loopback (request log as backdoor)"
    #: Snapshots carry the picture clock: the suite reads their time from the picture.
    snapshot_clock = True

    def __init__(self) -> None:
        viewer = {"username": "viewer", "password": CAMERA_SECRET}
        self.sim = ExampleSimulator(
            {"/cam1": viewer, "/cam2": viewer, "/locked": _LOCKED}, errors={"/broken": 500}
        )
        self.sources: list[str] = []
        self.settings: dict[str, Any] = {}
        self.audio_source: str | None = None
        self.backdoor: ExampleBackdoor | None = None

    def __enter__(self) -> ExampleTarget:
        self.sim.__enter__()
        self.sources = [self.sim.url("/cam1"), self.sim.url("/cam2")]
        creds = self.sim.settings["credentials"]
        self.settings = {"credentials": {s: creds[s] for s in self.sources}}
        self.backdoor = ExampleBackdoor(self.sim)
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the simulator."""
        self.sim.close()

    def fault(self, name: str) -> AbstractContextManager[ExampleFault] | None:
        """Stage ``name`` (see the module docstring); None for a fault not staged."""
        stages: dict[str, Callable[[], Iterator[ExampleFault]]] = {
            "auth": self._auth,
            "rate-limited": lambda: self._peer("http-429"),
            "server-error": self._server_error,
            "timeout": lambda: self._peer("silent", within_s=4.0),
            "not-protocol": lambda: self._peer("rtsp-500", within_s=4.0),
            "refused": self._refused,
            "offline": self._offline,
            "drops": self._drops,
        }
        stage = stages.get(name)
        return None if stage is None else contextlib.contextmanager(stage)()

    def _auth(self) -> Iterator[ExampleFault]:
        source = self.sim.url("/locked")
        yield ExampleFault(source, _settings(source, "owner"))

    def _server_error(self) -> Iterator[ExampleFault]:
        source = self.sim.url("/broken")
        yield ExampleFault(source, _settings(source))

    def _offline(self) -> Iterator[ExampleFault]:
        source = self.sim.url("/no-such-camera")
        yield ExampleFault(source, _settings(source))

    def _peer(self, mode: str, within_s: float = 3.0) -> Iterator[ExampleFault]:
        with fault_peer(mode) as port:
            source = f"http://127.0.0.1:{port}/cam1"
            yield ExampleFault(source, _settings(source), within_s=within_s)

    def _refused(self) -> Iterator[ExampleFault]:
        with socket.create_server(("127.0.0.1", 0)) as sock:
            port = sock.getsockname()[1]
        source = f"http://127.0.0.1:{port}/cam1"
        yield ExampleFault(source, _settings(source))

    def _drops(self) -> Iterator[ExampleFault]:
        with ExampleSimulator({"/cam1": None}) as sim:
            yield ExampleFault(sim.url("/cam1"), _settings(sim.url("/cam1")), within_s=4.0, sim=sim)
