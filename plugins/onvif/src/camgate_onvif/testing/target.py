"""The onvif adapter's conformance target: simulated devices, their request logs, faults.

Built by the adapter factory's ``conformance_target`` (see :mod:`camgate_onvif.plugin`); it has the
shape of core's ``camgate.targets.Target`` without importing the suite. Cameras are
the ``main`` profiles of two simulated devices. The backdoor merges the devices' own log of
every HTTP connection and SOAP request (:attr:`OnvifSimulator.connections`, ``requests``; the
media operations ask for media) with the RTSP server's log of every client request, each mapped
to its camera source. (The replay server's requests are not in it yet: the suite does not
check recorded grants.)

Faults staged for the robustness checks, each reached with a password the suite watches for:

``auth``          the simulated device, with the wrong password (``ter:NotAuthorized``)
``server-error``  a device that answers HTTP 500 to GetCapabilities and has no GetServices
``refused``       a loopback port nobody listens on
``timeout``       a loopback peer that accepts the connection and never answers
``not-protocol``  a loopback peer that answers in HTML, not SOAP
``offline``       a device path the simulator does not serve (404)
``drops``         a device with an RTSP server of its own, killed after the first packet
``rate-limited``  a loopback peer answering HTTP 429 Too Many Requests with Retry-After

The target's ``settings`` list both devices under ``devices`` with an owner and a position, so
``discover()`` finds their cameras (``budget.discovery``).
"""

from __future__ import annotations

import contextlib
import secrets
import socket
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from typing import Any

import attrs
from camgate.testing import fault_peer
from camgate_rtsp.testing.target import VendorEvent

from camgate_onvif.testing.simulator import MEDIA_OPERATIONS, OnvifSimulator, Quirks

__all__ = ["FAULT_SECRET", "OnvifBackdoor", "OnvifFault", "OnvifTarget"]

#: The password of every fault's settings; an error message that contains it leaks a secret.
FAULT_SECRET = "onvif-fault-pa55:w0rd"  # noqa: S105 (a test password, there to be caught)


class OnvifBackdoor:
    """The simulated devices' SOAP log and the RTSP server's log, read without the adapter."""

    def __init__(self, sim: OnvifSimulator) -> None:
        self.sim = sim

    def _source(self, device: int | None, profile: str | None) -> str | None:
        if device is None or profile is None:
            return None
        return f"{self.sim.device_url(device)}#profile={profile}"

    def events(self) -> list[VendorEvent]:
        """Every SOAP and RTSP request so far, in time order."""
        with self.sim._lock:
            soap, connections = list(self.sim.requests), list(self.sim.connections)
        events = [
            VendorEvent(
                r.at,
                f"soap.{r.connection}",
                r.operation,
                self._source(r.device, r.profile),
                r.operation in MEDIA_OPERATIONS,
            )
            for r in soap
        ]
        events += [
            VendorEvent(at, f"soap.{number}", kind, None, False) for at, number, kind in connections
        ]
        for e in self.sim.rtsp.requests():
            device, profile = None, None
            parts = (e.path or "").strip("/").split("/")
            if len(parts) >= 2 and parts[0].startswith("dev") and parts[0][3:].isdigit():
                device, profile = int(parts[0][3:]), parts[1]
            events.append(
                VendorEvent(e.at, e.client, e.kind, self._source(device, profile), e.media)
            )
        return sorted(events, key=lambda e: e.at)

    def open_clients(self) -> set[str]:
        """HTTP (SOAP, snapshot) and RTSP connections open now."""
        with self.sim._lock:
            connections = list(self.sim.connections)
        soap: set[str] = set()
        for _at, number, kind in connections:
            if kind == "connect":
                soap.add(f"soap.{number}")
            else:
                soap.discard(f"soap.{number}")
        return soap | set(self.sim.rtsp.open_clients())


@attrs.define
class OnvifFault:
    """One staged fault (see the module docstring)."""

    source: str
    settings: Mapping[str, Any]
    secret: str = FAULT_SECRET
    within_s: float = 3.0
    sim: OnvifSimulator | None = None

    @property
    def mid_stream(self) -> bool:
        """True for ``drops``: the fault happens when :meth:`trigger` is called."""
        return self.sim is not None

    def trigger(self) -> None:
        """Kill the fault device's RTSP server (``drops``); a no-op for the others."""
        if self.sim is not None:
            self.sim.rtsp.kill()


def _settings(device_url: str, password: str = FAULT_SECRET) -> dict[str, Any]:
    return {
        "credentials": {device_url: {"username": "admin", "password": password}},
        "timeout_s": 1.5,
        "connect_timeout_s": 1.5,
        "read_timeout_s": 1.5,
    }


def _jitter() -> float:
    return secrets.randbelow(10**6) / 1e6


def _at(port: int) -> str:
    return f"http://127.0.0.1:{port}/dev1/onvif/device_service"


class OnvifTarget:
    """Two simulated ONVIF devices (one RTSP server), with their request logs as the backdoor."""

    def __init__(self, gop_frames: int = 30) -> None:
        # Recorded pictures carry their capture time: the suite reads it from the picture.
        self.sim = OnvifSimulator(2, gop_frames=gop_frames, picture_clock=True)
        self.description = "simulated ONVIF devices on loopback (SOAP and RTSP logs as backdoor)"
        self.sources: list[str] = []
        self.settings: dict[str, Any] = {}
        self.audio_source: str | None = None
        self.backdoor: OnvifBackdoor | None = None

    def __enter__(self) -> OnvifTarget:
        self.sim.start()
        self.sources = [f"{self.sim.device_url(d)}#profile=main" for d in (1, 2)]
        self.settings = dict(self.sim.settings)
        # Where the devices are and whose they are, for discover(); arbitrary owners and places.
        self.settings["devices"] = [
            {
                "url": self.sim.device_url(d),
                "owner_id": secrets.token_hex(6),
                "position": [40 + _jitter(), -74 + _jitter()],
            }
            for d in (1, 2)
        ]
        self.backdoor = OnvifBackdoor(self.sim)
        # The recorded footage is encoded on first use (about 1 s quiet, several on a loaded
        # machine): encode it now, so a replay is answered as a device's is, not after the
        # adapter's read timeout.
        _ = self.sim.recording
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    #: Snapshots carry the moment they were taken as the picture clock (the suite reads it).
    snapshot_clock = True

    @property
    def recorded_span(self) -> tuple[datetime, datetime]:
        """When the devices' recorded footage starts and ends (UTC): where the suite may ask
        for a recorded window (``gating.recorded-window`` reads the time from the pictures)."""
        return self.sim.recording_start, self.sim.recording_start + timedelta(
            seconds=self.sim.recording_s
        )

    def close(self) -> None:
        """Stop the simulator and its RTSP server."""
        self.sim.close()

    def fault(self, name: str) -> AbstractContextManager[OnvifFault] | None:
        """Stage ``name`` (see the module docstring); None for faults ONVIF has no form of here."""
        stage = getattr(self, "_fault_" + name.replace("-", "_"), None)
        return None if stage is None else contextlib.contextmanager(stage)()

    def _fault_auth(self) -> Iterator[OnvifFault]:
        yield OnvifFault(self.sources[0], _settings(self.sim.device_url(1)))

    def _fault_server_error(self) -> Iterator[OnvifFault]:
        quirks = Quirks(capabilities_500=True, no_get_services=True)
        with OnvifSimulator(1, quirks=quirks, rtsp_server=self.sim.rtsp) as sim:
            yield OnvifFault(sim.sources[0], _settings(sim.device_url(1), sim.password))

    def _fault_refused(self) -> Iterator[OnvifFault]:
        with socket.create_server(("127.0.0.1", 0)) as sock:
            port = sock.getsockname()[1]
        yield OnvifFault(_at(port), _settings(_at(port)))

    def _fault_timeout(self) -> Iterator[OnvifFault]:
        with fault_peer("silent") as port:
            yield OnvifFault(_at(port), _settings(_at(port)), within_s=4.0)

    def _fault_not_protocol(self) -> Iterator[OnvifFault]:
        with fault_peer("http") as port:
            yield OnvifFault(_at(port), _settings(_at(port)), within_s=4.0)

    def _fault_offline(self) -> Iterator[OnvifFault]:
        url = f"http://127.0.0.1:{self.sim.port}/dev9/onvif/device_service"
        yield OnvifFault(url, _settings(url))

    def _fault_rate_limited(self) -> Iterator[OnvifFault]:
        with fault_peer("http-429") as port:
            yield OnvifFault(_at(port), _settings(_at(port)))

    def _fault_drops(self) -> Iterator[OnvifFault]:
        with OnvifSimulator(1) as sim:
            yield OnvifFault(
                sim.sources[0], _settings(sim.device_url(1), sim.password), within_s=4.0, sim=sim
            )
