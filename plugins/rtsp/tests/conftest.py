"""Fixtures: a real GStreamer RTSP server on loopback, and a gate with enrolled cameras."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from camgate import (
    Camera,
    ConsentTerms,
    Gate,
    GeoPoint,
    Incident,
    Owner,
    Waiver,
)
from camgate_rtsp.testing.server import Mount, RtspTestServer, gstreamer_available

SECRET = "pa:ss w@rd/ü"
HOME = GeoPoint(32.2988, -90.1848)


@pytest.fixture(scope="session")
def rtsp_server() -> Iterator[RtspTestServer]:
    """One server for the session: open cameras, a digest-protected one, one without video."""
    reason = gstreamer_available()
    if reason:
        pytest.fail(f"the GStreamer RTSP server is not usable: {reason} (run scripts/setup.sh)")
    server = RtspTestServer(
        [
            Mount("/cam1", gop_frames=30),
            Mount("/cam2", gop_frames=30),
            Mount("/secure", username="officer", password=SECRET),
            Mount("/audio-only", video=False, audio=True),
        ]
    )
    with server:
        yield server


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class World:
    """A gate with Alice's camera enrolled (live + snapshot) and an open incident near it."""

    def __init__(self, gate: Gate, server: RtspTestServer) -> None:
        self.gate = gate
        self.server = server
        waiver = gate.publish_waiver(Waiver("w1", "I agree to share my camera."))
        self.waiver = waiver
        gate.add_owner(Owner("alice", "Alice"))
        gate.add_owner(Owner("bob", "Bob"))
        self.cam = gate.add_camera(
            Camera(
                id="cam-a",
                adapter="rtsp",
                source=server.url("/cam1"),
                owner_id="alice",
                position=HOME,
            )
        )
        self.cam_b = gate.add_camera(
            Camera(
                id="cam-b",
                adapter="rtsp",
                source=server.url("/cam2"),
                owner_id="bob",
                position=GeoPoint(HOME.lat + 0.001, HOME.lon),
            )
        )
        gate.enrol(
            "alice",
            ["cam-a"],
            waiver_version="w1",
            waiver_sha256=waiver.sha256,
            terms=ConsentTerms(scopes=["live", "snapshot"]),
        )
        gate.enrol(
            "bob",
            ["cam-b"],
            waiver_version="w1",
            waiver_sha256=waiver.sha256,
            terms=ConsentTerms(scopes=["recorded"]),
        )
        self.incident: Incident = gate.report_incident("burglary", HOME, radius_m=300)

    def enrol_camera(
        self,
        camera_id: str,
        source: str,
        scopes: tuple[str, ...] = ("live", "snapshot"),
        *,
        battery: bool = False,
    ) -> Camera:
        """Register one more of Alice's cameras at ``source`` and enrol it under ``scopes``."""
        camera = self.gate.add_camera(
            Camera(
                id=camera_id,
                adapter="rtsp",
                source=source,
                owner_id="alice",
                position=self.cam.position,
                battery=battery,
            )
        )
        self.gate.enrol(
            "alice",
            [camera_id],
            waiver_version="w1",
            waiver_sha256=self.waiver.sha256,
            terms=ConsentTerms(scopes=scopes),
        )
        return camera

    async def grant(self, scope: str = "live", camera: str = "cam-a", duration_s: float = 30.0):  # type: ignore[no-untyped-def]
        return await self.gate.request_access(
            self.incident.id, camera, scope, requested_by="officer-7", duration_s=duration_s
        )


@pytest.fixture
async def world(tmp_path: Path, rtsp_server: RtspTestServer) -> AsyncIterator[World]:
    gate = Gate.open(tmp_path / "camgate.db")
    try:
        yield World(gate, rtsp_server)
    finally:
        await gate.aclose()
