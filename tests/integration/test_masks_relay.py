"""Masks and the relay: no consumer ever gets a picture masked otherwise than the owner asks.

Found by an independent review: a warm upstream kept masking with what it was built with after
another process changed the masks, and a transform's error made the relay reconnect for ever
instead of failing. (A consumer attached while masks change is handed nothing the old upstream
queued: core/tests/test_relay_stateful.py.)
"""

from __future__ import annotations

import os
import sys
from typing import Any

import anyio
import av
import pytest
from camgate.errors import CameraProtocolError
from camgate.models import Incident, MediaPacket
from camgate.relay import RelaySettings, UpstreamStatistics

from .conftest import World
from .test_relay import take

pytestmark = pytest.mark.anyio


async def _warm(world: World) -> tuple[Incident, UpstreamStatistics]:
    edge = world.gate.edge
    edge.configure_relay(RelaySettings(gop_cache=True))
    incident = world.gate.report_incident("burglary", world.cam.position, radius_m=300)
    with anyio.fail_after(10):
        while True:
            up = edge.relay_statistics().upstream(world.cam.id)
            if up is not None and up.cached >= 10:
                return incident, up
            await anyio.sleep(0.05)


def _lumas(packets: list[MediaPacket]) -> list[float]:
    ctx: Any = av.CodecContext.create(packets[0].stream.codec, "r")
    if packets[0].stream.extradata:
        ctx.extradata = packets[0].stream.extradata
    return [
        float(frame.to_ndarray(format="gray").mean())
        for p in packets
        for frame in ctx.decode(av.Packet(p.data))
    ]


async def test_masks_set_by_another_process_reach_a_warm_camera(world: World) -> None:
    incident, stale = await _warm(world)
    await anyio.run_process(  # the owner masks the whole picture through the CLI
        [sys.executable, "-m", "camgate.cli", "--db", str(world.gate.store.path), "masks", "set",
         world.cam.id, "--owner", "alice", "--polygon", "0,0 1,0 1,1 0,1"],
        env={k: v for k, v in os.environ.items() if not k.startswith("CAMGATE_")},
    )  # fmt: skip
    world.gate.edge.mask_transform(world.cam)  # a replay's guard builds its own: no effect here
    grant = await world.gate.request_access(
        incident.id, world.cam.id, "live", requested_by="o", duration_s=60
    )
    async with await world.gate.edge.open_live(world.cam.id, grant) as stream:
        packets = await take(stream, 30)
    now = world.gate.edge.relay_statistics().upstream(world.cam.id)
    assert stream.masked  # and the stale upstream and its cache are gone:
    assert now is None or now.serial != stale.serial
    lumas = _lumas(packets)
    assert lumas and max(lumas) < 40, lumas  # every picture served is the mask's fill


class _Broken:
    def feed(self, packet: MediaPacket) -> list[MediaPacket]:
        raise CameraProtocolError("cannot decode to apply masks")

    def flush(self) -> list[MediaPacket]:
        return []


async def test_a_transform_error_ends_consumers_without_reconnecting(world: World) -> None:
    edge = world.gate.edge
    edge.configure_relay(RelaySettings(), lambda camera: _Broken())
    grant = await world.grant()
    async with await edge.open_live(world.cam.id, grant) as stream:
        with anyio.fail_after(10), pytest.raises(CameraProtocolError, match="apply masks"):
            async for _packet in stream:
                pass
    up = edge.relay_statistics().upstream(world.cam.id)
    assert up is None or up.finished
