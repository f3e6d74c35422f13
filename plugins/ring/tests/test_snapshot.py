"""Snapshots through a real gate from the simulated Partner API: the latest image since the
grant, its capture time checked (Ring has no "take one now": battery cameras keep old ones)."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path

import av
import pytest
from camgate import Camera, ConsentTerms, Gate, GeoPoint, Owner, SignedGrant, Waiver
from camgate.errors import CameraUnreachable
from camgate.testing import read_picture_clock
from camgate_ring.testing import RingSimulator

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

    async def grant(self, camera_id: str) -> SignedGrant:
        """A snapshot grant for ``camera_id``."""
        return await self.gate.request_access(
            self.incident_id, camera_id, "snapshot", requested_by="officer-7", duration_s=60
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
            terms=ConsentTerms(scopes=["snapshot"]),
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
