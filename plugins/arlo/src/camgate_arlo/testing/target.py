"""The Arlo conformance target: the simulator, its log as the backdoor, staged faults.

It has the shape of core's ``camgate.targets.Target`` without importing the suite. Cameras
``SIMCAM1`` and ``SIMCAM2``; ``SIMCAM3`` answers 500. Arlo's cameras are addressed by device
id, not by a network address, so the suite's recorder cannot stand between the adapter and
Arlo's hosts: they are declared as ``endpoints`` (the login, API and events hosts and the RTSPS
front), and the backdoor is the witness of what was asked. Faults, each with
:data:`FAULT_SECRET` as the account password the suite watches for:

``auth``          a wrong password and no session (401 at the login host)
``rate-limited``  a loopback peer answering HTTP 429 with Retry-After as the API host
``server-error``  ``SIMCAM3`` (500 to startStream and snapshots)
``timeout``       a loopback peer that accepts and never answers, as the API host
``not-protocol``  a loopback peer answering RTSP, not HTTP, as the API host
``refused``       a loopback port nobody listens on, as the API host
``offline``       a device the account does not have
``drops``         the live stream ended at the simulator after the first packet, the camera
                  offline from then on (the edge's reconnection fails)
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import attrs
from camgate.testing import fault_peer

from camgate_arlo.testing import ArloSimulator

__all__ = ["FAULT_SECRET", "ArloBackdoor", "ArloFault", "ArloTarget", "VendorEvent"]

#: The account password of every fault's settings; an error that shows it leaks a secret.
FAULT_SECRET = "fault-arlo-pa55:w0rd"  # noqa: S105 (a test password, there to be caught)


@attrs.frozen
class VendorEvent:
    """A simulator event as the suite reads it: ``camera`` is the device id it concerns."""

    at: float
    client: str
    kind: str
    camera: str | None
    media: bool


class ArloBackdoor:
    """The simulator's own log, read without going through the adapter."""

    def __init__(self, sim: ArloSimulator) -> None:
        self.sim = sim

    def events(self) -> list[VendorEvent]:
        """Every connection, request and RTSPS play so far (never the backdoor's own)."""
        return [
            VendorEvent(
                e["at"], e["client"], e["kind"], e.get("camera"), bool(e.get("media", False))
            )
            for e in self.sim.log()
            if "client" in e
        ]

    def open_clients(self) -> set[str]:
        """Connections open now: connected and not closed."""
        open_now: set[str] = set()
        for event in self.events():
            if event.kind == "connect":
                open_now.add(event.client)
            elif event.kind == "closed":
                open_now.discard(event.client)
        return open_now


@attrs.define
class ArloFault:
    """One staged fault (see the module docstring)."""

    source: str
    settings: Mapping[str, Any]
    secret: str = FAULT_SECRET
    within_s: float = 4.0
    drop: Callable[[], None] | None = None
    #: The fault's peer (a host in ``settings``): the suite lets the adapter reach it.
    endpoints: tuple[tuple[str, int], ...] = ()

    @property
    def mid_stream(self) -> bool:
        """True for ``drops``: the fault happens when :meth:`trigger` is called."""
        return self.drop is not None

    def trigger(self) -> None:
        """End the stream at the simulator (``drops``); a no-op for the others."""
        if self.drop is not None:
            self.drop()


class ArloTarget:
    """Two cameras on the simulated Arlo cloud, with its request log as the backdoor."""

    description = "simulated Arlo cloud on loopback (request log as backdoor)"
    #: Snapshots carry the picture clock: the suite reads their time from the picture.
    snapshot_clock = True

    def __init__(self) -> None:
        now = time.time()
        #: Twelve seconds of recordings per camera, ending a few seconds ago.
        self.span = (now - 16.0, now - 4.0)
        self.sim = ArloSimulator(cameras=3, broken=("SIMCAM3",), recorded=self.span)
        self.sources: list[str] = []
        self.settings: dict[str, Any] = {}
        self.audio_source: str | None = None
        self.backdoor: ArloBackdoor | None = None
        self.endpoints: list[tuple[str, int]] = []

    def __repr__(self) -> str:
        return "ArloTarget()"

    @property
    def recorded_span(self) -> tuple[datetime, datetime]:
        """The footage each camera's library holds; its pictures carry the picture clock."""
        return (
            datetime.fromtimestamp(self.span[0], UTC),
            datetime.fromtimestamp(self.span[1], UTC),
        )

    def __enter__(self) -> ArloTarget:
        try:
            self.sim.__enter__()
        except BaseException:
            self.sim.close()
            raise
        self.sources = ["SIMCAM1", "SIMCAM2"]
        self.settings = dict(self.sim.settings)
        self.backdoor = ArloBackdoor(self.sim)
        for url in (self.sim.auth, self.sim.api, self.sim.events):
            parts = urlsplit(url)
            assert parts.hostname is not None and parts.port is not None
            self.endpoints.append((parts.hostname, parts.port))
        self.endpoints.append(("127.0.0.1", self.sim.rtsps_port))
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the simulator."""
        self.sim.close()

    def _settings(self, **hosts: str) -> dict[str, Any]:
        """The target's settings with the fault's password, short time-outs, no session file,
        and ``hosts`` replaced."""
        settings = {k: v for k, v in self.settings.items() if k != "session_file"}
        return settings | {
            "password": FAULT_SECRET,
            "request_timeout_s": 1.5,
            "connect_timeout_s": 1.5,
            "read_timeout_s": 1.5,
            "snapshot_timeout_s": 3.0,
            **hosts,
        }

    def fault(self, name: str) -> AbstractContextManager[ArloFault] | None:
        """Stage ``name`` (see the module docstring); None for a fault not staged."""
        stages: dict[str, Callable[[], Iterator[ArloFault]]] = {
            "auth": self._auth,
            "rate-limited": lambda: self._peer("http-429"),
            "server-error": lambda: self._plain("SIMCAM3"),
            "timeout": lambda: self._peer("silent"),
            "not-protocol": lambda: self._peer("rtsp-500"),
            "refused": self._refused,
            "offline": lambda: self._plain("SIMGONE"),
            "drops": self._drops,
        }
        stage = stages.get(name)
        return None if stage is None else contextlib.contextmanager(stage)()

    def _auth(self) -> Iterator[ArloFault]:
        settings = self._settings()
        settings.pop("session", None)  # no session: the wrong password is tried
        yield ArloFault("SIMCAM1", settings)

    def _plain(self, source: str) -> Iterator[ArloFault]:
        yield ArloFault(source, self._settings())

    def _at(self, port: int) -> ArloFault:
        settings = self._settings(api_base_url=f"http://127.0.0.1:{port}")
        return ArloFault("SIMCAM1", settings, endpoints=(("127.0.0.1", port),))

    def _peer(self, mode: str) -> Iterator[ArloFault]:
        with fault_peer(mode) as port:
            yield self._at(port)

    def _refused(self) -> Iterator[ArloFault]:
        with socket.create_server(("127.0.0.1", 0)) as sock:
            port = sock.getsockname()[1]
        yield self._at(port)

    def _drops(self) -> Iterator[ArloFault]:
        try:
            yield ArloFault(
                "SIMCAM2", self._settings(), drop=lambda: self.sim.drop("SIMCAM2"), within_s=4.0
            )
        finally:
            self.sim.set_offline()  # back online for the checks that follow
