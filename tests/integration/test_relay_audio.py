"""Sound through the relay on a real RTSP server (issue #14, item 5): an audio grant that joins an
upstream opened without sound gets sound — after a video-only consumer, and after the GOP cache's
warrant — and the video consumers get no gap; the camera is asked for sound only while an audio
grant is attached (docs/media.md, "Sound and the relay")."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import anyio
import pytest
from camgate import Camera, ConsentTerms, Gate, GeoPoint, Owner, Waiver
from camgate.edge import GuardedStream
from camgate.models import MediaPacket
from camgate.relay import RelaySettings, UpstreamStatistics
from camgate_rtsp.testing.server import Mount, RtspTestServer

pytestmark = pytest.mark.anyio

HOME = GeoPoint(32.2988, -90.1848)
TICKS = 3000  # one frame at 30 fps in the RTP clock (90 kHz)


@pytest.fixture(scope="module")
def av_server() -> Iterator[RtspTestServer]:
    with RtspTestServer(
        [Mount("/av", gop_frames=15, audio=True), Mount("/mute", gop_frames=15)]
    ) as server:
        yield server


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def gate(tmp_path: Path, av_server: RtspTestServer) -> AsyncIterator[Gate]:
    """Alice shares her camera's live view and its sound."""
    gate = Gate.open(tmp_path / "camgate.db")
    try:
        waiver = gate.publish_waiver(Waiver("w1", "I agree to share my camera."))
        gate.add_owner(Owner("alice", "Alice"))
        for camera, path in (("cam-av", "/av"), ("cam-mute", "/mute")):
            source = av_server.url(path)
            gate.add_camera(Camera(camera, "rtsp", source, owner_id="alice", position=HOME))
        gate.enrol(
            "alice",
            ["cam-av", "cam-mute"],
            waiver_version="w1",
            waiver_sha256=waiver.sha256,
            terms=ConsentTerms(scopes=["live"], audio=True),
        )
        yield gate
    finally:
        await gate.aclose()


async def open_live(
    gate: Gate, incident_id: str, *, audio: bool, camera: str = "cam-av"
) -> GuardedStream:
    grant = await gate.request_access(
        incident_id, camera, "live", requested_by="officer-7", duration_s=60, audio=audio
    )
    return await gate.edge.open_live(camera, grant)


async def until(condition: Callable[[], bool], timeout_s: float = 15.0) -> None:
    """Wait until ``condition()`` holds (polled: the relay's statistics are a snapshot)."""
    with anyio.fail_after(timeout_s):
        while True:
            if condition():
                return
            await anyio.sleep(0.05)


def upstream(gate: Gate, camera: str = "cam-av") -> UpstreamStatistics | None:
    return gate.edge.relay_statistics().upstream(camera)


def plays(server: RtspTestServer, path: str = "/av") -> int:
    return sum(1 for e in server.requests() if e.kind == "play" and e.path == path)


async def read_until(
    stream: AsyncIterator[MediaPacket], into: list[MediaPacket], done: anyio.Event
) -> None:
    async for packet in stream:
        into.append(packet)
        if done.is_set():
            return


async def sound(stream: GuardedStream, seconds: float) -> list[MediaPacket]:
    """Read ``stream`` until its audio spans ``seconds`` of media time."""
    got: list[MediaPacket] = []
    with anyio.fail_after(20):
        async for packet in stream:
            got.append(packet)
            audio = [p for p in got if p.stream.kind == "audio" and p.pts is not None]
            if len(audio) > 1:
                span = (audio[-1].pts - audio[0].pts) * audio[0].stream.time_base  # type: ignore[operator]
                if span >= seconds:
                    return got
    raise AssertionError("the stream ended before its sound")


def frame_steps(video: list[MediaPacket]) -> list[tuple[int, int]]:
    """The steps between frames that are not one frame apart, within each connection's run
    (split at discontinuities), as (index, step in RTP ticks): empty when no frame is missing.
    A step within half a frame of one frame counts as one frame: FFmpeg's RTP reader moves a
    stream's clock by a few ticks when an RTCP sender report re-syncs it, which loses nothing;
    a missing frame makes a step of two."""
    odd: list[tuple[int, int]] = []
    for i, (a, b) in enumerate(itertools.pairwise(video), 1):
        step = b.pts - a.pts  # type: ignore[operator]
        if not b.discontinuity and abs(step - TICKS) > TICKS // 2:
            odd.append((i, step))
    return odd


async def test_an_audio_grant_joining_a_video_only_upstream_gets_sound_without_a_video_gap(
    gate: Gate, av_server: RtspTestServer
) -> None:
    incident = gate.report_incident("burglary", HOME, radius_m=300)
    before = plays(av_server)
    video = await open_live(gate, incident.id, audio=False)
    seen: list[MediaPacket] = []
    done = anyio.Event()
    async with anyio.create_task_group() as tg:
        tg.start_soon(read_until, video, seen, done)
        await until(lambda: len(seen) >= 20)
        up = upstream(gate)
        assert up is not None and not up.audio  # opened for a grant without sound
        officer = await open_live(gate, incident.id, audio=True)
        assert officer.audio_info is not None and officer.audio_info.codec == "aac"
        got = await sound(officer, 1.0)
        done.set()
    await video.aclose()
    # The officer's stream starts at the new connection's keyframe, with sound.
    assert got[0].is_keyframe and got[0].stream.kind == "video"
    assert sum(p.stream.kind == "audio" for p in got) >= 10
    # One more RTSP session, now with sound; the first one was replaced, not kept beside it.
    assert plays(av_server) - before == 2
    up = upstream(gate)
    assert up is not None and up.audio and up.switches == 1 and up.reconnects == 0
    # The video consumer: no frame lost on either connection, the switch marked once, at a
    # keyframe, and its grant's guard handed over no sound.
    frames = [p for p in seen if p.stream.kind == "video"]
    marks = [p for p in frames if p.discontinuity]
    assert len(marks) == 1 and marks[0].is_keyframe
    assert frame_steps(frames) == [], f"{len(frames)} frames"
    assert not any(p.stream.kind == "audio" for p in seen) and video.dropped_audio > 0
    await officer.aclose()
    assert upstream(gate) is None  # the last consumer closed the connection (no cache)


async def test_an_audio_grant_gets_sound_from_a_warm_upstream_and_leaving_drops_it(
    gate: Gate, av_server: RtspTestServer
) -> None:
    gate.edge.configure_relay(RelaySettings(gop_cache=True))
    incident = gate.report_incident("burglary", HOME, radius_m=300)
    await until(lambda: (u := upstream(gate)) is not None and u.cached >= 5)
    up = upstream(gate)
    assert up is not None and not up.audio  # the cache's warrant never asks the camera for sound
    officer = await open_live(gate, incident.id, audio=True)
    try:
        got = await sound(officer, 1.0)
        assert got[0].is_keyframe
        assert sum(p.stream.kind == "audio" for p in got) >= 10
        up = upstream(gate)
        assert up is not None and up.audio and up.switches == 1
    finally:
        await officer.aclose()
    # Nobody with an audio grant is left, the cache lives on: back to a connection without sound.
    await until(lambda: (u := upstream(gate)) is not None and not u.audio and u.switches >= 2)
    up = upstream(gate)
    assert up is not None and up.warm and up.consumers == 0
    # A video-only consumer now starts from the cache, and gets no sound.
    viewer = await open_live(gate, incident.id, audio=False)
    try:
        assert viewer.audio_info is None
        with anyio.fail_after(10):
            async for packet in viewer:
                assert packet.stream.kind == "video"
                break
    finally:
        await viewer.aclose()


async def test_no_switch_for_sound_a_camera_does_not_offer(
    gate: Gate, av_server: RtspTestServer
) -> None:
    incident = gate.report_incident("burglary", HOME, radius_m=300)
    before = plays(av_server, "/mute")
    async with await open_live(gate, incident.id, audio=False, camera="cam-mute") as video:
        async with await open_live(gate, incident.id, audio=True, camera="cam-mute") as officer:
            assert officer.audio_info is None
            with anyio.fail_after(10):
                async for packet in officer:
                    assert packet.stream.kind == "video"
                    break
            up = upstream(gate, "cam-mute")
            assert up is not None and up.switches == 0 and up.consumers == 2
        assert video.info.codec == "h264"
    assert plays(av_server, "/mute") - before == 1  # the camera was not opened a second time
