"""A recorded grant exported as a clip: cut to the window, masked, traceable (ONVIF replay)."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import anyio
import av
import pytest
from camgate.media import clip_tags, find_clip

from .conftest import World

pytestmark = pytest.mark.anyio

MASK = [[(0.0, 0.0), (0.5, 0.0), (0.5, 0.5), (0.0, 0.5)]]


async def test_recorded_clip_holds_only_the_window_masked_and_tagged(
    world: World, tmp_path: Path
) -> None:
    await world.gate.set_masks("alice", "cam-a", MASK)
    rec = world.sim.recording  # footage the simulated device recorded before the test
    start, end = rec.start + timedelta(seconds=5.5), rec.start + timedelta(seconds=7.5)
    token = await world.grant("recorded", window=(start, end))
    clip = await world.gate.edge.record_clip("cam-a", token, tmp_path / "rec.mp4")
    assert start <= clip.started_at < end
    done = await anyio.run_process(
        ["ffprobe", "-v", "error", "-show_entries", "frame=pts_time,key_frame", "-of", "json",
         clip.path],
    )  # fmt: skip
    assert done.stderr == b""
    frames = json.loads(done.stdout)["frames"]
    assert frames[0]["key_frame"] == 1
    captured = [clip.started_at + timedelta(seconds=float(f["pts_time"])) for f in frames]
    assert all(start <= at < end for at in captured)
    # from the window's first keyframe (6.0 s) to its end: every frame recorded in 6.0..7.5 s
    assert len(frames) == round(1.5 * rec.fps)
    with av.open(clip.path) as container:
        grey = next(iter(container.decode(video=0))).to_ndarray(format="gray")
    assert int(grey[: 180 - 2, : 320 - 2].max()) <= 24, "the mask is burnt in"
    assert clip_tags(clip.path)["camgate_grant"] == token.grant.id
    assert [r.body["grant_id"] for r in find_clip(world.gate.audit, clip.path)] == [token.grant.id]
