"""The conformance target's witnesses, on their own (the whole suite runs against ring in
conformance/tests/test_suite.py): the backdoor sees the WHEP session open and close, and the
suite's recorder sees the ICE datagrams' destinations, which are exactly the candidates the
simulator offered (the target's ``endpoints``)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import anyio
import pytest
from camgate.models import Camera, GeoPoint, Grant
from camgate_conformance.recorder import Recorder
from camgate_ring import RingAdapter
from camgate_ring.testing.target import RingTarget

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
            stream = await adapter.open_live(camera, _grant(camera))
            async for _packet in stream:
                break
            opened = target.backdoor.open_clients()
            await stream.aclose()
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
