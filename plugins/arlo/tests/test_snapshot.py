"""Snapshots from the simulated Arlo cloud: full-frame snapshot asked, its event awaited on the
event stream, the presigned JPEG fetched and its capture time checked; a stream that locks up is
reconnected (logging in again when Arlo asks); a snapshot that never comes is a clear error."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import av
import pytest
from camgate import Camera, GeoPoint
from camgate.errors import CameraProtocolError, CameraUnreachable
from camgate.grants import Grant
from camgate.testing import read_picture_clock
from camgate_arlo import ArloAdapter
from camgate_arlo.testing import ArloSimulator

pytestmark = pytest.mark.anyio

HOME = GeoPoint(32.2988, -90.1848)
CAMERA = Camera(id="door", adapter="arlo", source="SIMCAM1", owner_id="a", position=HOME)


class FakeGrantId:
    """The adapter reads only ``grant.id`` for a snapshot."""

    id = "grant-1"


GRANT: Grant = FakeGrantId()  # type: ignore[assignment]


def subscribes(sim: ArloSimulator, since: int) -> int:
    return sum(1 for e in sim.log()[since:] if e.get("path") == "/hmsweb/client/subscribe")


async def test_a_snapshot_is_fetched_after_its_event_and_is_fresh(
    arlo: ArloSimulator, tmp_path: Path
) -> None:
    adapter = ArloAdapter.from_settings(arlo.settings)
    asked = datetime.now(UTC)
    start = len(arlo.log())
    try:
        snap = await adapter.snapshot(CAMERA, GRANT)
    finally:
        await adapter.aclose()
    assert (snap.width, snap.height) == (640, 360) and snap.grant_id == "grant-1"
    assert snap.taken_at >= asked - timedelta(seconds=1)
    target = tmp_path / "snap.jpg"
    target.write_bytes(snap.jpeg)
    with av.open(str(target)) as container:
        frame = next(container.decode(video=0))
    clock = read_picture_clock(frame)
    assert clock is not None and clock >= asked - timedelta(milliseconds=50)
    order = [e["path"] for e in arlo.log()[start:] if "path" in e]
    assert order[-3:-1] == [
        "/hmsweb/client/subscribe",
        "/hmsweb/users/devices/fullFrameSnapshot",
    ]
    assert order[-1].startswith("/media/SIMCAM1-")


async def test_a_locked_event_stream_is_reconnected(arlo: ArloSimulator) -> None:
    adapter = ArloAdapter.from_settings(arlo.settings | {"event_stall_s": 0.5})
    arlo.lock_events(1)
    start = len(arlo.log())
    try:
        snap = await adapter.snapshot(CAMERA, GRANT)
    finally:
        await adapter.aclose()
    assert snap.width == 640
    assert subscribes(arlo, start) == 2


async def test_a_locked_stream_and_an_expired_session_log_in_again(
    arlo: ArloSimulator, tmp_path: Path
) -> None:
    settings = arlo.settings | {"event_stall_s": 0.5, "session_file": str(tmp_path / "s.json")}
    adapter = ArloAdapter.from_settings(settings)
    try:
        await adapter.devices()
        arlo.lock_events(1)
        arlo.expire()  # the adapter still believes its session valid: Arlo says 401
        start = len(arlo.log())
        snap = await adapter.snapshot(CAMERA, GRANT)
    finally:
        await adapter.aclose()
    paths = [e.get("path", "") for e in arlo.log()[start:]]
    assert "/api/auth" in paths and "/api/startAuth" in paths  # trusted: no factor asked
    assert "/api/getFactors" not in paths
    assert subscribes(arlo, start) == 3  # 401, locked, answered
    assert snap.width == 640


async def test_no_snapshot_event_is_a_clear_error(arlo: ArloSimulator) -> None:
    adapter = ArloAdapter.from_settings(
        arlo.settings | {"event_stall_s": 0.4, "snapshot_timeout_s": 1.5}
    )
    arlo.lock_events(100)
    try:
        with anyio.fail_after(10), pytest.raises(CameraUnreachable, match="no snapshot event"):
            await adapter.snapshot(CAMERA, GRANT)
    finally:
        arlo.lock_events(0)
        await adapter.aclose()


async def test_a_presigned_url_on_another_host_is_not_fetched(arlo: ArloSimulator) -> None:
    adapter = ArloAdapter.from_settings(arlo.settings | {"media_hosts": [".amazonaws.com"]})
    start = len(arlo.log())
    try:
        with pytest.raises(CameraProtocolError, match="allow-list") as info:
            await adapter.snapshot(CAMERA, GRANT)
    finally:
        await adapter.aclose()
    assert "Signature" not in str(info.value)
    assert not [e for e in arlo.log()[start:] if e.get("path", "").startswith("/media/")]


def test_a_stale_image_is_refused() -> None:
    adapter = ArloAdapter.from_settings({})
    asked = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    with pytest.raises(CameraProtocolError, match="stale"):
        adapter._capture_time("Thu, 01 Jan 2026 11:59:50 GMT", asked)
    assert adapter._capture_time("Thu, 01 Jan 2026 11:59:59 GMT", asked) == asked
    later = adapter._capture_time("Thu, 01 Jan 2026 12:00:03 GMT", asked)
    assert later == asked + timedelta(seconds=3)
    with pytest.raises(CameraProtocolError, match="malformed"):
        adapter._capture_time("yesterday", asked)
