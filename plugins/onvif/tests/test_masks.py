"""Owner masks pushed with Media2 end up in the camera's own picture (the simulator draws them)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import av
import numpy as np
import pytest
from camgate_onvif.replay import ReplayStream
from camgate_onvif.testing.simulator import OnvifSimulator

from .conftest import open_world

pytestmark = pytest.mark.anyio

# x 0.1..0.4, y 0.1..0.5 of a 640x360 picture: pixels x 64..256, y 36..180
SQUARE = [[0.1, 0.1], [0.4, 0.1], [0.4, 0.5], [0.1, 0.5]]


@pytest.fixture
def masking_sim() -> Iterator[OnvifSimulator]:
    with OnvifSimulator(1, masks_in_picture=True, gop_frames=30) as sim:
        yield sim


def _last_picture(packets: list[Any]) -> Any:
    codec: Any = av.CodecContext.create("h264", "r")
    if packets[0].stream.extradata:
        codec.extradata = packets[0].stream.extradata
    frames = []
    for packet in packets:
        frames += codec.decode(av.Packet(packet.data))
    return frames[-1].to_ndarray(format="gray").astype(np.int16)


async def _packets(stream: Any, count: int) -> list[Any]:
    packets = []
    with anyio.fail_after(10):
        async for packet in stream:
            packets.append(packet)
            if len(packets) == count:
                break
    return packets


async def test_masks_pushed_to_the_camera_are_filled_in_its_picture(
    tmp_path: Path, masking_sim: OnvifSimulator
) -> None:
    # The picture before any mask, straight from the camera's RTSP server.
    before = await ReplayStream.open(masking_sim.rtsp.url("/dev1/main"), require=None)
    try:
        reference = _last_picture(await _packets(before, 20))
    finally:
        await before.aclose()
    world = open_world(tmp_path, masking_sim, masks={"cam-a": [SQUARE]})
    try:
        token = await world.grant("live")
        async with await world.gate.edge.open_live("cam-a", token) as stream:
            masked = _last_picture(await _packets(stream, 20))
    finally:
        await world.gate.aclose()
    assert masking_sim.operations().count("CreateMask") == 1
    # Inside the square (a few pixels in from its edges): the mask's black.
    assert masked[44:172, 72:248].mean() < 20 and reference[44:172, 72:248].mean() > 60
    # Elsewhere the picture is the camera's own, within codec tolerance (the rows below 260
    # hold the test pattern's moving noise, the top-left rows its clock text).
    diff = np.abs(masked - reference)
    assert diff[196:260, :].mean() < 5
    assert diff[56:260, 272:].mean() < 5
