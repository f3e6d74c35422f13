"""Live video from the simulated Arlo cloud: startStream with the Android User-Agent → RTSPS
with the certificate verified → packets that ffmpeg decodes; revocation closes the connection
at the simulator and sends the idle notification; a renewal before Arlo's cap is a
discontinuity; every URL Arlo hands back is checked first."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import anyio
import av
import pytest
from camgate import Camera, ConsentTerms, Gate, GeoPoint, Incident, Owner, SignedGrant, Waiver
from camgate.adapters import Secret
from camgate.errors import CameraAuthError, CameraProtocolError
from camgate.media import Mp4Writer
from camgate.models import MediaPacket
from camgate.testing import read_picture_clock
from camgate_arlo import ArloAdapter
from camgate_arlo.adapter import rtsps_url
from camgate_arlo.testing import ArloSimulator, self_signed
from camgate_rtsp.adapter import RtspLiveStream

pytestmark = pytest.mark.anyio

HOME = GeoPoint(32.2988, -90.1848)


async def until(condition: Callable[[], bool], what: str, limit: float = 20.0) -> None:
    """Wait for ``condition`` (polled), failing after ``limit`` seconds (a generous bound)."""
    deadline = time.monotonic() + limit
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await anyio.sleep(0.05)


class World:
    """A gate over real files with Alice's Arlo camera ``door`` (``SIMCAM1``) enrolled for
    live video and snapshots, and an open incident beside it."""

    def __init__(self, gate: Gate, settings: dict[str, Any]) -> None:
        self.gate = gate
        waiver = gate.publish_waiver(Waiver("w1", "I agree to share my camera."))
        gate.add_owner(Owner("alice", "Alice"))
        gate.add_camera(
            Camera(id="door", adapter="arlo", source="SIMCAM1", owner_id="alice", position=HOME),
            settings=settings,
        )
        gate.enrol(
            "alice",
            ["door"],
            waiver_version="w1",
            waiver_sha256=waiver.sha256,
            terms=ConsentTerms(scopes=["live", "snapshot"]),
        )
        self.incident: Incident = gate.report_incident("burglary", HOME, radius_m=300)

    async def grant(self, scope: str = "live") -> SignedGrant:
        return await self.gate.request_access(
            self.incident.id, "door", scope, requested_by="officer-7", duration_s=60
        )


@pytest.fixture
async def world(arlo: ArloSimulator, tmp_path: Path) -> AsyncIterator[World]:
    opened = Gate.open(tmp_path / "camgate.db")
    try:
        yield World(opened, dict(arlo.settings))
    finally:
        await opened.aclose()


def sessions(sim: ArloSimulator, device: str = "SIMCAM1") -> list[dict[str, Any]]:
    return [s for s in sim.state().values() if s["device"] == device]


async def test_live_through_a_grant_decodes_and_revocation_ends_it_at_arlo(
    arlo: ArloSimulator, world: World, tmp_path: Path
) -> None:
    grant = await world.grant()
    before = len(sessions(arlo))
    packets: list[MediaPacket] = []
    stream = await world.gate.edge.open_live("door", grant)
    try:
        with anyio.fail_after(30):
            async for packet in stream:
                packets.append(packet)
                if len(packets) == 12:
                    break
        (session,) = sessions(arlo)[before:]
        assert session["used"] and session["ended"] is None and session["open"] == 1
        await world.gate.revoke("alice")
        await until(lambda: sessions(arlo)[before]["ended"] == "idle", "the idle notification")
        await until(lambda: sessions(arlo)[before]["open"] == 0, "the RTSPS connection to close")
    finally:
        await stream.aclose()
    agents = [e["user_agent"] for e in arlo.log() if e.get("path", "").endswith("startStream")]
    assert "Android" in agents[-1]

    assert packets[0].is_keyframe and packets[0].stream.codec == "h264"
    assert (packets[0].stream.width, packets[0].stream.height) == (640, 360)
    target = tmp_path / "live.mp4"
    with Mp4Writer(target, packets[0].stream) as mp4:
        for packet in packets:
            mp4.write(packet)
    decoded = await anyio.run_process(
        ["ffmpeg", "-v", "error", "-i", str(target), "-f", "null", "-"], check=True
    )
    assert decoded.stderr == b""
    with av.open(str(target)) as container:
        clocks = [read_picture_clock(f) for f in container.decode(video=0)]
    assert len(clocks) == 12 and all(c is not None for c in clocks)


async def test_a_certificate_the_settings_do_not_trust_is_refused(
    arlo: ArloSimulator, tmp_path: Path
) -> None:
    other, _key = self_signed(str(tmp_path))
    camera = Camera(id="door", adapter="arlo", source="SIMCAM1", owner_id="a", position=HOME)
    for ca_file in (other, None):  # another authority; the system's trust store
        settings = dict(arlo.settings) | {"ca_file": ca_file}
        adapter = ArloAdapter.from_settings(settings)
        before = len(sessions(arlo))
        try:
            with pytest.raises(CameraProtocolError, match="certificate"):
                await adapter.open_live(camera, None)  # type: ignore[arg-type]
        finally:
            await adapter.aclose()
        # Nothing was relayed, and Arlo was told the stream is over.
        (session,) = sessions(arlo)[before:]
        assert not session["used"] and session["ended"] == "idle"


async def test_a_stream_url_on_another_host_is_not_opened(arlo: ArloSimulator) -> None:
    adapter = ArloAdapter.from_settings(dict(arlo.settings) | {"stream_hosts": [".arlo.com"]})
    camera = Camera(id="door", adapter="arlo", source="SIMCAM2", owner_id="a", position=HOME)
    start = len(arlo.log())
    try:
        with pytest.raises(CameraProtocolError, match="allow-list") as info:
            await adapter.open_live(camera, None)  # type: ignore[arg-type]
    finally:
        await adapter.aclose()
    assert "egressToken" not in str(info.value)
    assert not [e for e in arlo.log()[start:] if e["host"] == "rtsps"]
    with pytest.raises(CameraProtocolError, match="allow-list"):
        rtsps_url("rtsp://arlo.com.evil.example:443/x", (".arlo.com",))
    assert (
        rtsps_url("rtsp://a.b.arlo.com/x?y=1", (".arlo.com",)) == "rtsps://a.b.arlo.com:443/x?y=1"
    )


async def test_a_desktop_user_agent_gets_no_rtsp_and_says_so(arlo: ArloSimulator) -> None:
    adapter = ArloAdapter.from_settings(arlo.settings)
    try:
        device = await adapter.device("SIMCAM2")
        with pytest.raises(CameraProtocolError, match="not RTSP"):
            await adapter.client().start_stream(device, "Mozilla/5.0 (iPad; CPU OS 17_0)")
    finally:
        await adapter.aclose()


async def test_a_stream_nobody_connects_to_in_the_window_is_refused(
    arlo: ArloSimulator,
) -> None:
    arlo.configure(connect_window_s=0.2)
    adapter = ArloAdapter.from_settings(arlo.settings)
    try:
        device = await adapter.device("SIMCAM2")
        url = await adapter.client().start_stream(device, adapter.settings.user_agent)
        target = rtsps_url(url, adapter.settings.stream_hosts)
        await anyio.sleep(0.5)  # the window is time itself: let it pass
        with pytest.raises(CameraAuthError):
            stream = await RtspLiveStream.open(Secret(target), adapter.settings.rtsp_settings())
            await stream.aclose()
    finally:
        await adapter.aclose()


async def test_the_stream_renews_before_arlos_cap_as_an_audited_discontinuity(
    arlo: ArloSimulator, tmp_path: Path
) -> None:
    arlo.configure(session_cap_s=3.0)
    settings = dict(arlo.settings) | {"stream_cap_s": 3.0, "renew_margin_s": 1.0}
    gate = Gate.open(tmp_path / "camgate.db")
    try:
        world = World(gate, settings)
        before = len(sessions(arlo))
        gaps: list[MediaPacket] = []
        async with await gate.edge.open_live("door", await world.grant()) as stream:
            with anyio.fail_after(30):
                async for packet in stream:
                    if packet.discontinuity:
                        gaps.append(packet)
                        break
        end = next(gate.audit.records("access.end"))
    finally:
        await gate.aclose()
    assert gaps[0].is_keyframe
    # The access record says the camera was reached through two Arlo sessions.
    assert end.body["upstream"] == {"sessions": "2"}
    first, second = sessions(arlo)[before:]
    assert first["ended"] == "idle"  # ended by us before Arlo's cap, not by the cap
    assert second["used"]
