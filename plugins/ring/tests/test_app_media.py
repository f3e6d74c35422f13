"""The app backend's stored media against the simulator, through a real gate: history paged by
``older_than``, recordings through ``share/play`` (a checked signed URL, no redirect, a size
cap) cut to the grant's window and exported to an MP4 ffmpeg decodes, and snapshots whose
capture time is checked (a battery camera's stale image is refused, never served)."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import anyio
import av
import pytest
from camgate import Camera, ConsentTerms, Gate, GeoPoint, Owner, Waiver
from camgate.errors import CameraProtocolError, CameraUnreachable
from camgate.testing import read_picture_clock
from camgate_ring import RingAdapter
from camgate_ring.app_media import app_history, check_media_url, recording
from camgate_ring.testing import RingSimulator, app_backend_settings, exported_clip_inside

pytestmark = pytest.mark.anyio

HOME = GeoPoint(32.2988, -90.1848)
CAMERAS = {"bell": "1001", "door": "1002", "stale": "1003"}


@pytest.fixture(scope="module")
def media_sim() -> Iterator[RingSimulator]:
    """A battery doorbell (1001: its latest image ten minutes old), a line-powered camera
    (1002), and one whose cloud serves an hour-old image (1003)."""
    with RingSimulator(devices=3, battery={1: 64}, stale=frozenset({3})) as running:
        yield running


@pytest.fixture(scope="module")
def media_settings(
    media_sim: RingSimulator, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """The owner signed in once for the module (Ring limits verification codes)."""
    path = tmp_path_factory.mktemp("ring-app") / "account.json"
    return anyio.run(app_backend_settings, media_sim, path)


@pytest.fixture
async def gate(media_settings: dict[str, Any], tmp_path: Path) -> AsyncIterator[Gate]:
    opened = Gate.open(tmp_path / "camgate.db")
    try:
        waiver = opened.publish_waiver(Waiver("w1", "I agree to share my camera."))
        opened.add_owner(Owner("alice", "Alice"))
        for camera_id, source in CAMERAS.items():
            opened.add_camera(
                Camera(
                    id=camera_id, adapter="ring", source=source, owner_id="alice", position=HOME
                ),
                settings=media_settings,
            )
        opened.enrol(
            "alice",
            list(CAMERAS),
            waiver_version="w1",
            waiver_sha256=waiver.sha256,
            terms=ConsentTerms(scopes=["snapshot", "recorded"]),
        )
        yield opened
    finally:
        await opened.aclose()


@pytest.fixture
async def adapter(media_settings: dict[str, Any]) -> AsyncIterator[RingAdapter]:
    made = RingAdapter.from_settings(media_settings)
    try:
        yield made
    finally:
        await made.aclose()


async def ask(gate: Gate, camera_id: str, scope: str, window: Any = None) -> Any:
    incident = gate.report_incident("burglary", HOME, radius_m=300)
    return await gate.request_access(
        incident.id, camera_id, scope, requested_by="officer-7", duration_s=60, window=window
    )


async def test_history_is_paged_by_older_than(
    media_sim: RingSimulator, adapter: RingAdapter
) -> None:
    start = len(media_sim.log())
    events = await app_history(adapter.app_client(), "1002", page_size=3)
    assert [e.id for e in events] == [str(100_200 + k) for k in range(7, 0, -1)]
    assert all(e.recorded and e.end == e.start + timedelta(seconds=20) for e in events)
    asked = [e["path"] for e in media_sim.log()[start:] if "/history" in e["path"]]
    assert len(asked) == 3  # 3 + 3 + 1 events
    dings = await adapter.history("1002", ("ding",))
    assert [e.id for e in dings] == ["100206", "100203"]
    assert all(e.event_type == "ding" and e.device_id == "1002" for e in dings)


async def test_a_recorded_window_over_two_events_is_cut_to_it_and_exported(
    media_sim: RingSimulator, adapter: RingAdapter, gate: Gate, tmp_path: Path
) -> None:
    """The window runs from 14 s into one event to 4 s into the next: the packets of both,
    each stamped with its capture time inside the window, the second event's first packet a
    keyframe marked as a discontinuity; the signed URLs are fetched without the token."""
    by_id = {e.id: e for e in await adapter.history("1002", ("motion", "ding"))}
    first, second = by_id["100204"], by_id["100205"]
    window = (first.start + timedelta(seconds=14), second.start + timedelta(seconds=4))
    start = len(media_sim.log())
    clocks = []
    marks = []
    async with await gate.edge.open_recorded(
        "door", await ask(gate, "door", "recorded", window)
    ) as stream:
        decoder = av.CodecContext.create("h264", "r")
        async for packet in stream:
            assert window[0] <= packet.wallclock <= window[1]  # type: ignore[operator]
            marks.append(packet.discontinuity)
            if packet.discontinuity:
                assert packet.is_keyframe
            for frame in decoder.decode(av.Packet(packet.data)):
                clocks.append(read_picture_clock(frame))
    assert marks.count(True) == 1 and not marks[0]
    assert None not in clocks and all(window[0] <= c <= window[1] for c in clocks)  # type: ignore[operator]
    assert any(c < first.start + timedelta(seconds=21) for c in clocks)  # type: ignore[operator]
    assert any(c > second.start for c in clocks)  # type: ignore[operator]
    log = media_sim.log()[start:]
    plays = [e for e in log if e["path"].endswith("/share/play")]
    downloads = [e for e in log if e["path"].startswith("/recordings/")]
    assert [e["path"] for e in plays] == [
        "/clients_api/dings/100204/share/play",
        "/clients_api/dings/100205/share/play",
    ]
    assert all(e["bearer"] for e in plays) and not any(e["bearer"] for e in downloads)
    assert [e["status"] for e in downloads] == [200, 200]
    clip = tmp_path / "clip.mp4"
    await gate.edge.record_clip("door", await ask(gate, "door", "recorded", window), clip)
    await exported_clip_inside(clip, window)


async def test_a_window_without_events_is_unreachable(adapter: RingAdapter, gate: Gate) -> None:
    by_id = {e.id: e for e in await adapter.history("1002")}
    quiet = by_id["100203"].start + timedelta(seconds=30)  # between two events
    grant = await ask(gate, "door", "recorded", (quiet, quiet + timedelta(seconds=5)))
    with pytest.raises(CameraUnreachable, match="no recorded event in the window"):
        await gate.edge.open_recorded("door", grant)


async def test_a_recording_url_elsewhere_a_redirect_or_too_big_is_refused(
    media_sim: RingSimulator, adapter: RingAdapter
) -> None:
    client = adapter.app_client()
    await client.app_devices()  # the session first: the faults are for share/play
    media_sim.app_faults((200, {"url": "http://192.0.2.9/clip.mp4?X-Amz-Signature=s3cr3t"}))
    with pytest.raises(CameraProtocolError, match="not an allowed media host") as refused:
        await recording(client, "100204")
    assert "s3cr3t" not in str(refused.value)
    media_sim.app_faults((200, {"url": f"{media_sim.base}/recordings/elsewhere"}))
    with pytest.raises(CameraProtocolError, match="redirects; not followed"):
        await recording(client, "100204")
    with pytest.raises(CameraProtocolError, match="larger than 4096 bytes"):
        await recording(client, "100204", max_bytes=4096)
    assert (await recording(client, "100204"))[4:8] == b"ftyp"


def test_media_urls_are_checked_against_the_allow_list() -> None:
    base, hosts = "https://api.ring.com", ("ring.com", "s3.amazonaws.com")
    for good in (
        "https://ring-transcoded.s3.amazonaws.com/a.mp4?X-Amz-Signature=x",
        "https://download.ring.com/x.mp4",
        "https://api.ring.com/clips/1.mp4",
    ):
        assert check_media_url(good, base, hosts) == good
    for bad in (
        "http://download.ring.com/x.mp4",
        "https://evilring.com/x.mp4",
        "https://ring.com.evil.example/x.mp4",
        "https://user:pw@download.ring.com/x.mp4",
        "https://10.0.0.1/x.mp4",
        "file:///etc/passwd",
        None,
        "",
    ):
        with pytest.raises(CameraProtocolError):
            check_media_url(bad, base, hosts)


async def test_a_snapshot_is_an_image_taken_after_the_grant(
    media_sim: RingSimulator, gate: Gate
) -> None:
    grant = await ask(gate, "door", "snapshot")
    snap = await gate.edge.snapshot("door", grant)
    with av.open(io.BytesIO(snap.jpeg)) as container:
        clock = read_picture_clock(next(container.decode(video=0)))
    assert clock is not None and clock >= grant.grant.issued_at - timedelta(milliseconds=1)
    assert abs((clock - snap.taken_at).total_seconds()) < 0.002  # x-time-millis is true
    (asked,) = [e for e in media_sim.log() if e["path"] == "/snapshots/next/1002"][-1:]
    assert asked["status"] == 200 and asked["bearer"]


@pytest.mark.parametrize("camera_id", ["bell", "stale"])
async def test_a_stale_image_is_refused_never_served(gate: Gate, camera_id: str) -> None:
    grant = await ask(gate, camera_id, "snapshot")
    with pytest.raises(CameraUnreachable, match="stale"):
        await gate.edge.snapshot(camera_id, grant)
