"""``browser=True`` on a recorded grant (ONVIF replay): H.264 passes, masks still apply."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import av
import pytest

from .conftest import World
from .test_recorded_clip import MASK

pytestmark = pytest.mark.anyio


async def _clip(world: World, path: Path, browser: bool = True) -> tuple[list[bytes], bool]:
    """A 2 s recorded clip: its packets and whether it was masked."""
    rec = world.sim.recording
    start = rec.start + timedelta(seconds=5.5)
    token = await world.grant("recorded", window=(start, start + timedelta(seconds=2)))
    clip = await world.gate.edge.record_clip("cam-a", token, path, browser=browser)
    exported = [r.body for r in world.gate.audit.records("clip.exported")][-1]
    with av.open(clip.path) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        return [bytes(p) for p in container.demux(stream) if p.size], exported["masked"]


async def test_recorded_browser_clip_passes_h264_and_keeps_the_masks(
    world: World, tmp_path: Path
) -> None:
    plain, masked = await _clip(world, tmp_path / "plain.mp4")
    assert plain and masked is False, "a transcode that did nothing is not a mask"
    as_is, _ = await _clip(world, tmp_path / "as-is.mp4", browser=False)
    assert plain == as_is, "H.264 passes as it is: the camera's bytes, not an encoder's"
    await world.gate.set_masks("alice", "cam-a", MASK)
    again, masked = await _clip(world, tmp_path / "masked.mp4")
    assert masked is True and len(again) == len(plain)
    with av.open(str(tmp_path / "masked.mp4")) as container:
        grey = next(iter(container.decode(video=0))).to_ndarray(format="gray")
    assert int(grey[: 180 - 2, : 320 - 2].max()) <= 24, "the mask is burnt in"
