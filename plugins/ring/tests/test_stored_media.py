"""Snapshots and recordings through a real gate from the simulated Partner API: the latest image
since the grant, its capture time checked (Ring has no "take one now": battery cameras keep old
ones), and a recorded window replayed and exported with no picture outside it."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import av
import pytest
from camgate import Camera, ConsentTerms, Gate, GeoPoint, Owner, SignedGrant, Waiver
from camgate.errors import CameraUnreachable
from camgate.testing import read_picture_clock
from camgate_ring.recorded import pieces
from camgate_ring.testing import RingSimulator, exported_clip_inside

pytestmark = pytest.mark.anyio

HOME = GeoPoint(32.2988, -90.1848)


@pytest.fixture(scope="module")
def snap_sim() -> Iterator[RingSimulator]:
    """SIM1 on a battery (its latest image 10 minutes old), SIM2 on line power, SIM3 a cloud
    that serves an hour-old image whatever is asked."""
    with RingSimulator(devices=3, battery={1: 60}, stale=frozenset({3})) as running:
        yield running


class Place:
    """A gate with Alice's three Ring cameras enrolled for snapshots and an open incident."""

    def __init__(self, gate: Gate, incident_id: str) -> None:
        self.gate = gate
        self.incident_id = incident_id

    async def grant(
        self, camera_id: str, window: tuple[datetime, datetime] | None = None
    ) -> SignedGrant:
        """A snapshot grant for ``camera_id``, or a recorded one for ``window``."""
        return await self.gate.request_access(
            self.incident_id,
            camera_id,
            "snapshot" if window is None else "recorded",
            requested_by="officer-7",
            duration_s=60,
            window=window,
        )


@pytest.fixture
async def place(snap_sim: RingSimulator, tmp_path: Path) -> AsyncIterator[Place]:
    opened = Gate.open(tmp_path / "camgate.db")
    try:
        waiver = opened.publish_waiver(Waiver("w1", "I agree to share my camera."))
        opened.add_owner(Owner("alice", "Alice"))
        for i, source in enumerate(snap_sim.sources, start=1):
            opened.add_camera(
                Camera(
                    id=f"cam{i}", adapter="ring", source=source, owner_id="alice", position=HOME
                ),
                settings=snap_sim.settings,
            )
        opened.enrol(
            "alice",
            ["cam1", "cam2", "cam3"],
            waiver_version="w1",
            waiver_sha256=waiver.sha256,
            terms=ConsentTerms(scopes=["snapshot", "recorded"]),
        )
        incident = opened.report_incident("burglary", HOME, radius_m=300)
        yield Place(opened, incident.id)
    finally:
        await opened.aclose()


async def test_a_snapshot_is_an_image_taken_after_the_grant(
    snap_sim: RingSimulator, place: Place
) -> None:
    grant = await place.grant("cam2")
    snap = await place.gate.edge.snapshot("cam2", grant)
    assert snap.jpeg[:2] == b"\xff\xd8" and (snap.width, snap.height) == (320, 240)
    with av.open(io.BytesIO(snap.jpeg)) as container:
        picture = next(container.decode(video=0))
    clock = read_picture_clock(picture)
    assert clock is not None and clock > grant.grant.issued_at - timedelta(milliseconds=1)
    assert abs((clock - snap.taken_at).total_seconds()) < 0.002  # X-Media-Timestamp is true
    (asked,) = [e for e in snap_sim.log() if e["path"].endswith("/media/image/download")][-1:]
    assert asked["status"] == 200 and asked["bearer"]


@pytest.mark.parametrize(
    ("camera", "said"), [("cam1", "no media for that time"), ("cam3", "stale")]
)
async def test_an_old_image_is_never_served(place: Place, camera: str, said: str) -> None:
    grant = await place.grant(camera)
    with pytest.raises(CameraUnreachable, match=said):
        await place.gate.edge.snapshot(camera, grant)


async def test_a_recorded_window_is_replayed_and_exported_with_nothing_outside_it(
    snap_sim: RingSimulator, place: Place, tmp_path: Path
) -> None:
    now = datetime.now(UTC)
    window = (now - timedelta(seconds=90), now - timedelta(seconds=86))
    grant = await place.grant("cam2", window)
    times = []
    async with await place.gate.edge.open_recorded("cam2", grant) as stream:
        decoder = None
        async for packet in stream:
            if decoder is None:
                assert packet.is_keyframe and packet.stream.codec == "h264"
                decoder = av.CodecContext.create("h264", "r")
            assert window[0] <= packet.wallclock <= window[1]  # type: ignore[operator]
            for frame in decoder.decode(av.Packet(packet.data)):
                times.append(read_picture_clock(frame))
    assert len(times) >= 15 and None not in times
    assert all(window[0] <= t <= window[1] for t in times)  # type: ignore[operator]
    asked = [e for e in snap_sim.log() if e["path"].endswith("/media/video/download")]
    assert asked[-1]["status"] == 200 and asked[-1]["bearer"]
    clip = tmp_path / "clip.mp4"
    await place.gate.edge.record_clip("cam2", await place.grant("cam2", window), clip)
    await exported_clip_inside(clip, window)


async def test_a_window_before_the_recordings_is_unreachable(place: Place) -> None:
    now = datetime.now(UTC)
    grant = await place.grant(
        "cam2", (now - timedelta(hours=3), now - timedelta(hours=2, minutes=59))
    )
    with pytest.raises(CameraUnreachable, match="no media for that time"):
        await place.gate.edge.open_recorded("cam2", grant)


def test_a_long_window_is_asked_for_in_pieces_of_fifteen_minutes() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    parts = pieces(start, start + timedelta(minutes=40))
    assert [d for _s, d in parts] == [900_000, 900_000, 600_000]
    assert [s - parts[0][0] for s, _d in parts] == [0, 900_000, 1_800_000]
