"""Recorded clips from the simulated Arlo library through a real gate: the recordings that
overlap the granted window are fetched (presigned MP4, host allow-list), demuxed without
re-encoding and cut to the window; every picture of the exported clip was taken inside it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import av
import pytest
from camgate import Camera, ConsentTerms, Gate, GeoPoint, Owner, Waiver
from camgate.errors import CameraProtocolError, CameraUnreachable
from camgate.testing import read_picture_clock
from camgate_arlo import wire
from camgate_arlo.testing import ArloSimulator
from camgate_rtsp.testing import gstreamer_available

pytestmark = pytest.mark.anyio

HOME = GeoPoint(32.2988, -90.1848)


@pytest.fixture(scope="module")
def library() -> Iterator[ArloSimulator]:
    """One camera whose library holds 12 s of recordings (three of 4 s), ending 2 s ago."""
    reason = gstreamer_available()
    if reason is not None:
        pytest.skip(reason)
    now = time.time()
    with ArloSimulator(cameras=1, recorded=(now - 14.0, now - 2.0)) as sim:
        yield sim


async def grant_clip(
    sim: ArloSimulator, tmp_path: Path, window: tuple[datetime, datetime], **settings: object
) -> Path:
    gate = Gate.open(tmp_path / "camgate.db")
    try:
        waiver = gate.publish_waiver(Waiver("w1", "I agree to share my camera."))
        gate.add_owner(Owner("alice", "Alice"))
        gate.add_camera(
            Camera(id="door", adapter="arlo", source="SIMCAM1", owner_id="alice", position=HOME),
            settings=dict(sim.settings) | settings,
        )
        gate.enrol(
            "alice",
            ["door"],
            waiver_version="w1",
            waiver_sha256=waiver.sha256,
            terms=ConsentTerms(scopes=["recorded"]),
        )
        incident = gate.report_incident("burglary", HOME, radius_m=300)
        token = await gate.request_access(
            incident.id, "door", "recorded", requested_by="officer-7", window=window
        )
        clip = tmp_path / "clip.mp4"
        with anyio.fail_after(60):
            await gate.edge.record_clip("door", token, clip)
        return clip
    finally:
        await gate.aclose()


async def test_a_clip_spanning_two_recordings_is_cut_to_the_window(
    library: ArloSimulator, tmp_path: Path
) -> None:
    assert library.recorded is not None
    first = datetime.fromtimestamp(library.recorded[0], UTC)
    window = (first + timedelta(seconds=2.5), first + timedelta(seconds=6.5))  # 2nd starts at 4
    start = len(library.log())
    clip = await grant_clip(library, tmp_path, window)
    with av.open(str(clip)) as container:
        times = [read_picture_clock(f) for f in container.decode(video=0)]
    assert times and all(t is not None for t in times)
    assert all(window[0] <= t <= window[1] for t in times if t is not None)
    assert max(t for t in times if t is not None) >= first + timedelta(seconds=5)  # both
    fetched = [e["path"] for e in library.log()[start:] if e.get("path", "").startswith("/media/")]
    assert len(fetched) == 2  # the third recording lies outside the window: not fetched


async def test_a_window_without_recordings_is_a_clear_error(
    library: ArloSimulator, tmp_path: Path
) -> None:
    later = datetime.now(UTC) + timedelta(hours=1)
    with pytest.raises(CameraUnreachable, match="no recording"):
        await grant_clip(
            library, tmp_path, (later - timedelta(hours=3), later - timedelta(hours=2))
        )


async def test_a_recording_on_another_host_is_not_fetched(
    library: ArloSimulator, tmp_path: Path
) -> None:
    assert library.recorded is not None
    first = datetime.fromtimestamp(library.recorded[0], UTC)
    with pytest.raises(CameraProtocolError, match="allow-list"):
        await grant_clip(
            library, tmp_path, (first, first + timedelta(seconds=3)), media_hosts=[".arlo.com"]
        )


def test_library_entries_are_parsed_or_skipped() -> None:
    items = wire.parse_library(
        [
            {
                "deviceId": "A",
                "utcCreatedDate": 1_700_000_000_000,
                "mediaDurationSecond": 4,
                "contentType": "video/mp4",
                "presignedContentUrl": "https://x.arlo.com/a.mp4",
            },
            {
                "deviceId": "B",
                "utcCreatedDate": "yesterday",
                "mediaDurationSecond": 4,
                "presignedContentUrl": "https://x.arlo.com/b.mp4",
            },
            {
                "deviceId": "C",
                "utcCreatedDate": 1,
                "mediaDurationSecond": -1,
                "presignedContentUrl": "https://x.arlo.com/c.mp4",
            },
            "junk",
        ],
        "t",
    )
    assert [(i.device_id, i.duration_s) for i in items] == [("A", 4.0)]
    assert "a.mp4" not in repr(items[0])
