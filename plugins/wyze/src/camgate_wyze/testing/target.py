"""The wyze adapter's conformance target: the simulated Wyze cloud beside camgate-rtsp's
RTSP target, which plays the RTSP firmware.

It has the shape of core's ``camgate.targets.Target`` without importing the suite. Its two
cameras (sources: their MACs) are linked to a simulated account: one a v4 on the cloud WebRTC
route (the simulator's KVS-style websocket and aiortc peer), the other enrolled with the RTSP
target's ``/cam1`` (picture clock) as its ``rtsp_url``. ``first`` says which route the first
camera takes, the camera the suite's media checks use: ``"webrtc"`` (the factory's target) or
``"rtsp"``. Every camera has contiguous event clips (picture clock burnt in) covering
:attr:`WyzeTarget.recorded_span`. The backdoor is both servers' logs: the RTSP server's
requests (cameras mapped to MACs) and the cloud's (signalling requests and offers, and
``get_event_list`` and clip fetches, ask for media; signalling websockets are connections).

A camera's source holds no address, so the suite's recorder cannot stand between the adapter
and the servers; the servers' addresses (cloud, signalling websocket, RTSP) are declared as
``endpoints``. The faults are the RTSP
target's (camgate_rtsp.testing.target), each reached through a Wyze camera whose
``rtsp_url`` is the fault's address.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import attrs
from camgate_rtsp.testing.target import RtspFault, RtspTarget, VendorEvent

from camgate_wyze.testing import WyzeSimulator

__all__ = ["VendorEvent", "WyzeBackdoor", "WyzeFault", "WyzeTarget"]

#: The MAC of the camera every fault is staged on.
FAULT_MAC = "D03F27FFFFFF"
#: Event clips of the target: this many, each this long, back to back.
EVENTS, CLIP_S = 6, 4.0


class WyzeBackdoor:
    """The RTSP server's and the cloud's logs, read without going through the adapter."""

    def __init__(self, target: WyzeTarget) -> None:
        self.target = target

    def events(self) -> list[VendorEvent]:
        """Every event of both servers so far, in time order."""
        t = self.target
        assert t.rtsp.backdoor is not None
        by_url = t.rtsp_macs()
        found = [
            VendorEvent(e.at, f"rtsp {e.client}", e.kind, by_url.get(e.camera or ""), e.media)
            for e in t.rtsp.backdoor.events()
        ]
        found += [
            VendorEvent(e["at"], f"cloud {e['client']}", e["kind"], e["camera"], e["media"])
            for e in t.cloud.log(connections=True)
        ]
        return sorted(found, key=lambda e: e.at)

    def open_clients(self) -> set[str]:
        """Connections open now, to either server."""
        t = self.target
        assert t.rtsp.backdoor is not None
        open_ = {f"rtsp {c}" for c in t.rtsp.backdoor.open_clients()}
        for e in t.cloud.log(connections=True):
            if e["kind"] == "connect":
                open_.add(f"cloud {e['client']}")
            elif e["kind"] == "closed":
                open_.discard(f"cloud {e['client']}")
        return open_


@attrs.define
class WyzeFault:
    """An RTSP fault reached through a Wyze camera (see the module docstring)."""

    inner: RtspFault
    source: str
    settings: dict[str, Any]

    @property
    def secret(self) -> str:
        """The fault's password (the RTSP credentials of its camera)."""
        return self.inner.secret

    @property
    def within_s(self) -> float:
        """How long the adapter may take to report it."""
        return self.inner.within_s

    @property
    def mid_stream(self) -> bool:
        """True for ``drops``."""
        return self.inner.mid_stream

    @property
    def endpoints(self) -> list[tuple[str, int]]:
        """The fault's peer (its RTSP address): the Wyze camera's source holds none."""
        parts = urlsplit(self.inner.source)
        return [(str(parts.hostname), int(parts.port or 554))]

    def trigger(self) -> None:
        """Make the fault happen now (``drops``)."""
        self.inner.trigger()


class WyzeTarget:
    """Two Wyze cameras on Wyze's RTSP firmware with a simulated cloud account."""

    def __init__(self, first: str = "webrtc") -> None:
        if first not in ("webrtc", "rtsp"):
            raise ValueError("WyzeTarget(first=...): 'webrtc' or 'rtsp'")
        #: The route of the first camera, the one the suite's media checks use.
        self.first = first
        #: Only the RTSP target's ``/cam1`` burns each picture's capture time in; the cloud
        #: peer sends a frame counter.
        self.snapshot_clock = first == "rtsp"
        self.description = (
            f"simulated Wyze cloud (KVS WebRTC) + GStreamer RTSP firmware on loopback, "
            f"first camera over {first} (both logs as backdoor)"
        )
        self.rtsp = RtspTarget(gop_frames=20)
        start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)
        self._starts = [start + timedelta(seconds=CLIP_S * i) for i in range(EVENTS)]
        self.cloud = WyzeSimulator(
            cameras=2,
            rtsp=0,
            events_at=self._starts,
            clip_seconds=CLIP_S,
            login_interval_s=0.5,
            events_everywhere=True,
        )
        self.recorded_span = (start, start + timedelta(seconds=CLIP_S * EVENTS))
        self.sources: list[str] = []
        self.settings: dict[str, Any] = {}
        self.audio_source: str | None = None
        self.backdoor: WyzeBackdoor | None = None
        self._fixed: list[tuple[str, int]] = []

    def rtsp_macs(self) -> dict[str, str]:
        """The RTSP target's ``/cam1`` URL, mapped to the MAC of the camera it plays."""
        return {self.rtsp.sources[0]: self.cloud.macs[0 if self.first == "rtsp" else 1]}

    def __enter__(self) -> WyzeTarget:
        try:
            self.rtsp.__enter__()
            self.cloud.__enter__()
        except BaseException:
            self.close()
            raise
        self.sources = list(self.cloud.macs)
        rtsp_creds = self.rtsp.settings["credentials"]
        base = self.cloud.settings_for()
        # One camera on the RTSP firmware, the other a v4 over the cloud WebRTC route.
        for url, mac in self.rtsp_macs().items():
            base["cameras"][mac]["rtsp_url"] = url
            base["credentials"][mac] = rtsp_creds[url]
        self.settings = base
        self.backdoor = WyzeBackdoor(self)
        cloud = urlsplit(self.cloud.base)
        rtsp = urlsplit(self.rtsp.sources[0])
        signalling = urlsplit(self.cloud.ws_base)
        self._fixed = [
            (str(cloud.hostname), int(cloud.port or 0)),
            (str(signalling.hostname), int(signalling.port or 0)),
            (str(rtsp.hostname), int(rtsp.port or 0)),
        ]
        return self

    @property
    def endpoints(self) -> list[tuple[str, int]]:
        """Where the adapter may connect or send: the cloud API, the signalling socket, the RTSP
        firmware's server, and every ICE candidate the simulated peers offered in their SDP
        answers (the UDP destinations of the cloud WebRTC route; a Wyze source is a MAC, not
        an address, so the suite cannot tell them itself)."""
        found = list(self._fixed)
        if self._fixed:
            for entry in self.cloud.log(connections=True):
                found += [(str(h), int(p)) for h, p in entry.get("candidates", ())]
        return found

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop both servers."""
        self.cloud.close()
        self.rtsp.close()

    def fault(self, name: str) -> AbstractContextManager[WyzeFault] | None:
        """The RTSP target's fault ``name``, through a Wyze camera; None when it has none."""
        inner = self.rtsp.fault(name)
        return None if inner is None else contextlib.contextmanager(self._wrap)(inner)

    def _wrap(self, inner: AbstractContextManager[RtspFault]) -> Iterator[WyzeFault]:
        with inner as fault:
            settings = self.cloud.settings_for(
                connect_timeout_s=fault.settings.get("connect_timeout_s", 1.5),
                read_timeout_s=fault.settings.get("read_timeout_s", 1.5),
            )
            (cred,) = fault.settings["credentials"].values()
            settings["cameras"] = {
                FAULT_MAC: {
                    "owner_id": "owner-1",
                    "position": [52.5, 13.4],
                    "rtsp_url": fault.source,
                }
            }
            settings["credentials"] = {FAULT_MAC: cred}
            yield WyzeFault(fault, FAULT_MAC, settings)
