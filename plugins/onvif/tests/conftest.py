"""Fixtures: one GStreamer RTSP server for the session, ONVIF simulators on it, a gate."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from camgate import ConsentTerms, Gate, GeoPoint, Incident, Owner, Waiver
from camgate.models import Camera
from camgate_onvif.testing.simulator import OnvifSimulator
from camgate_rtsp.testing.server import Mount, RtspTestServer, serving

HOME = GeoPoint(32.2988, -90.1848)
#: A mount of the shared GStreamer server behind RTSP digest auth (for the replay client).
SECURE = {"username": "officer", "password": "rtsp pa:ss/é"}


@pytest.fixture(scope="session")
def rtsp_server() -> Iterator[RtspTestServer]:
    """The RTSP server behind every simulated device's stream URIs (main and sub)."""
    mounts = [*OnvifSimulator.mounts(1, gop_frames=60), Mount("/secure", **SECURE)]
    with serving(mounts) as server:
        yield server


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def make_sim(rtsp_server: RtspTestServer) -> Iterator[Any]:
    """Start a simulator (quirks, skew...) on the shared RTSP server; stopped after the test."""
    started: list[OnvifSimulator] = []

    def make(**kwargs: Any) -> OnvifSimulator:
        sim = OnvifSimulator(1, rtsp_server=rtsp_server, gop_frames=60, **kwargs)
        sim.start()
        started.append(sim)
        return sim

    yield make
    for sim in started:
        sim.close()


class World:
    """A gate with Alice's ONVIF camera (main profile) enrolled for live, snapshot, recorded."""

    def __init__(self, gate: Gate, sim: OnvifSimulator) -> None:
        self.gate = gate
        self.sim = sim
        waiver = gate.publish_waiver(Waiver("w1", "I agree to share my camera."))
        gate.add_owner(Owner("alice", "Alice"))
        gate.add_owner(Owner("bob", "Bob"))
        self.cam = gate.add_camera(
            Camera(
                id="cam-a", adapter="onvif", source=sim.sources[0], owner_id="alice", position=HOME
            )
        )
        gate.add_camera(
            Camera(
                id="cam-b", adapter="onvif", source=sim.sources[1], owner_id="bob", position=HOME
            )
        )
        gate.enrol(
            "alice",
            ["cam-a"],
            waiver_version="w1",
            waiver_sha256=waiver.sha256,
            terms=ConsentTerms(scopes=["live", "snapshot", "recorded"]),
        )
        gate.enrol(
            "bob",
            ["cam-b"],
            waiver_version="w1",
            waiver_sha256=waiver.sha256,
            terms=ConsentTerms(scopes=["recorded"]),
        )
        self.incident: Incident = gate.report_incident("burglary", HOME, radius_m=300)

    async def grant(self, scope: str = "live", camera: str = "cam-a", **kw: Any) -> Any:
        return await self.gate.request_access(
            self.incident.id, camera, scope, requested_by="officer-7", **kw
        )


def open_world(tmp_path: Path, sim: OnvifSimulator, **settings: Any) -> World:
    """A World whose edge reaches ``sim`` with its settings (plus ``settings``)."""
    gate = Gate.open(tmp_path / "camgate.db", adapter_settings={"onvif": sim.settings | settings})
    return World(gate, sim)


@pytest.fixture
async def world(tmp_path: Path, make_sim: Any) -> AsyncIterator[World]:
    w = open_world(tmp_path, make_sim())
    try:
        yield w
    finally:
        await w.gate.aclose()
