"""The conformance target's witnesses, on their own (the whole suite runs against ring in
conformance/tests/test_suite.py): the backdoor sees the WHEP session open and close, and the
suite's recorder sees the ICE datagrams' destinations, which are exactly the candidates the
simulator offered (the target's ``endpoints``)."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import pytest
from camgate.errors import ConfigError
from camgate.models import Camera, GeoPoint, Grant
from camgate.plugins import PluginHost
from camgate_conformance.recorder import Recorder
from camgate_conformance.target import resolve_target
from camgate_ring import RingAdapter
from camgate_ring.testing import RingSimulator
from camgate_ring.testing.target import RingTarget, sign_in

pytestmark = pytest.mark.anyio


def _grant(camera: Camera) -> Grant:
    now = datetime.now(UTC)
    return Grant(
        id="g1",
        request_id="r1",
        camera_id=camera.id,
        incident_id="i1",
        scope="live",
        issued_at=now,
        expires_at=now + timedelta(minutes=1),
    )


async def _one_packet(adapter: RingAdapter, camera: Camera, target: RingTarget) -> set[str]:
    """Open the camera's live stream, read one packet, note the clients open at the
    simulator, close the stream; the clients noted."""
    assert target.backdoor is not None
    stream = await adapter.open_live(camera, _grant(camera))
    async for _packet in stream:
        break
    opened = target.backdoor.open_clients()
    await stream.aclose()
    return opened


async def test_the_recorder_sees_the_ice_destinations_the_target_declares() -> None:
    with RingTarget() as target, Recorder() as recorder:
        assert target.backdoor is not None
        camera = Camera(
            id="door",
            adapter="ring",
            source=target.sources[0],
            owner_id="o",
            position=GeoPoint(0, 0),
        )
        since = time.monotonic()
        async with RingAdapter.from_settings(target.settings) as adapter:
            opened = await _one_packet(adapter, camera, target)
        datagrams = {(c.host, c.port) for c in recorder.connects() if c.via == "udp sendto"}
        offered = target.backdoor.candidates()
        assert datagrams and datagrams <= offered <= target.endpoints
        # A destination the target did not declare would be named by the egress check.
        assert not {(c.host, c.port) for c in recorder.connects()} - target.endpoints
        events = target.backdoor.events()
        offers = [e for e in events if e.kind == "whep-offer" and e.at >= since]
        assert len(offers) == 1 and offers[0].media and offers[0].camera == target.sources[0]
        assert opened == {offers[0].client}
        with anyio.fail_after(10):
            while target.backdoor.open_clients():  # noqa: ASYNC110 (another process: polled)
                await anyio.sleep(0.05)
        closed = [e for e in target.backdoor.events() if e.kind == "closed"]
        assert [e.client for e in closed] == [offers[0].client] and closed[0].at > offers[0].at


async def test_the_app_target_sees_the_live_view_and_its_end_and_holds_footage() -> None:
    """``--target SIM:app``: the suite's variant reaches the app-backend target, whose backdoor
    sees the live view (over the websocket) as a media request for the camera and its close,
    and whose declared footage is a recorded event."""
    host = PluginHost()
    with pytest.raises(ConfigError, match="no simulated target 'cloud'"):
        resolve_target(host, "ring", "SIM:cloud")
    target = resolve_target(host, "ring", "SIM:app")
    assert isinstance(target, RingTarget) and target.backend == "app"
    with target:
        assert target.backdoor is not None and target.sources == ["1001", "1002"]
        camera = Camera(
            id="door", adapter="ring", source="1001", owner_id="o", position=GeoPoint(0, 0)
        )
        since = time.monotonic()
        async with RingAdapter.from_settings(target.settings) as adapter:
            opened = await _one_packet(adapter, camera, target)
            first, last = target.recorded_span
            events = await adapter.history("1001")
            assert any(e.start < first and e.end is not None and last < e.end for e in events)
        views = [e for e in target.backdoor.events() if e.kind == "live-view" and e.at >= since]
        assert len(views) == 1 and views[0].media and views[0].camera == "1001"
        assert opened == {views[0].client}
        with anyio.fail_after(10):
            while target.backdoor.open_clients():  # noqa: ASYNC110 (another process: polled)
                await anyio.sleep(0.05)


async def test_a_dropped_app_session_leaves_no_peer_connection_tasks(tmp_path: Path) -> None:
    """Ring (here: its process) vanishing mid-stream ends the stream; closing it then stops
    every task of the peer connection (a cancelled close used to leave aiortc's running)."""
    with RingSimulator(devices=1) as sim:
        settings = sign_in(sim, tmp_path / "account.json")
        camera = Camera(
            id="door", adapter="ring", source="1001", owner_id="o", position=GeoPoint(0, 0)
        )
        before = set(asyncio.all_tasks())
        async with RingAdapter.from_settings({**settings, "read_timeout_s": 2.0}) as adapter:
            stream = await adapter.open_live(camera, _grant(camera))
            with anyio.fail_after(30):
                async for _packet in stream:
                    assert sim.process is not None
                    sim.process.kill()
            await stream.aclose()
        with anyio.fail_after(10):
            while set(asyncio.all_tasks()) - before - {asyncio.current_task()}:  # noqa: ASYNC110
                await anyio.sleep(0.05)
