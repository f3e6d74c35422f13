"""The relay and the GOP cache on real RTSP servers: fan-out, slow consumers, reconnects, and the
cache's promise rules (docs/media.md, "Fast start and relay")."""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import anyio
import attrs
import pytest
from camgate import Camera, ConsentRevoked, Gate, Incident
from camgate.edge import GuardedStream
from camgate.errors import ValidationError
from camgate.models import MediaPacket
from camgate.relay import RelaySettings, UpstreamStatistics
from camgate.testing import DeclaringAdapters
from camgate_rtsp.adapter import RtspAdapter, RtspSettings
from camgate_rtsp.testing.server import Mount, RtspTestServer

from .conftest import World

TICKS = 3000  # one frame at 30 fps in the RTP clock (90 kHz)

pytestmark = pytest.mark.anyio


def use_relay(world: World, **settings: Any) -> Gate:
    """Give the world's edge a relay with ``settings`` (before any stream is open)."""
    world.gate.edge.configure_relay(RelaySettings(**settings))
    return world.gate


def upstream(world: World, camera: str) -> UpstreamStatistics | None:
    """The camera's relay upstream as the edge's read-only statistics show it now."""
    return world.gate.edge.relay_statistics().upstream(camera)


async def open_live(world: World, incident_id: str, camera: str = "cam-a") -> GuardedStream:
    grant = await world.gate.request_access(
        incident_id, camera, "live", requested_by="officer-7", duration_s=60
    )
    return await world.gate.edge.open_live(camera, grant)


def plays(world: World, path: str) -> int:
    return sum(1 for e in world.server.requests() if e.kind == "play" and e.path == path)


async def take(stream: AsyncIterator[MediaPacket], n: int) -> list[MediaPacket]:
    out = []
    with anyio.fail_after(10):
        async for packet in stream:
            out.append(packet)
            if len(out) == n:
                break
    return out


def contiguous(packets: list[MediaPacket]) -> bool:
    """True when no frame is missing: each pts follows the previous by one frame."""
    pts = [p.pts for p in packets]
    return all(b - a == TICKS for a, b in itertools.pairwise(pts))  # type: ignore[operator]


async def test_consumers_share_one_upstream_and_get_the_same_packets(world: World) -> None:
    before = plays(world, "/cam1")
    streams = [await world.gate.edge.open_live("cam-a", await world.grant()) for _ in range(3)]
    try:
        server = world.server  # its log is another process's output: wait for the PLAY in it
        assert await anyio.to_thread.run_sync(
            lambda: server.wait_requests(lambda _: plays(world, "/cam1") > before, 5)
        )
        assert plays(world, "/cam1") - before == 1  # one RTSP session for three consumers
        runs: list[list[MediaPacket]] = [[] for _ in streams]

        async def read(i: int) -> None:
            runs[i] = await take(streams[i], 45)

        async with anyio.create_task_group() as tg:  # all read at once, as live viewers do
            for i in range(len(streams)):
                tg.start_soon(read, i)
        for run in runs:
            assert run[0].is_keyframe
            assert contiguous(run)
        # Every consumer saw the same packets (from its own starting keyframe on).
        common = set.intersection(*({p.pts for p in run} for run in runs))
        assert len(common) >= 15
        for run in runs:
            assert [p.data for p in run if p.pts in common] == [
                p.data for p in runs[0] if p.pts in common
            ]
    finally:
        for s in streams:
            await s.aclose()
    # The last consumer's close closes the camera connection (no cache).
    assert upstream(world, "cam-a") is None
    audit = list(world.gate.audit.records("access.end"))
    assert len(audit) == 3 and all(r.body["packets"] >= 45 for r in audit)


async def test_a_slow_consumer_is_dropped_to_a_keyframe_and_the_others_lose_nothing(
    world: World,
) -> None:
    use_relay(world, queue_packets=40)  # 1.3 s: a stalled fast reader is not dropped
    fast = [await world.gate.edge.open_live("cam-a", await world.grant()) for _ in range(2)]
    slow = await world.gate.edge.open_live("cam-a", await world.grant())
    try:
        first = await take(slow, 1)
        assert first[0].is_keyframe
        runs: list[list[MediaPacket]] = []

        async def read(s: GuardedStream) -> None:
            runs.append(await take(s, 75))  # 2.5 s of video, while `slow` reads nothing

        async with anyio.create_task_group() as tg:
            for s in fast:
                tg.start_soon(read, s)
        for run in runs:
            assert contiguous(run)
            assert not any(p.discontinuity for p in run)
        # The slow consumer's queue (40) overflowed: it lost packets, then restarts at a
        # keyframe marked as a discontinuity, and continues without holes from there.
        rest = await take(slow, 60)
        marked = [i for i, p in enumerate(rest) if p.discontinuity]
        assert marked, "the slow consumer was never dropped to a keyframe"
        assert all(rest[i].is_keyframe for i in marked)
        assert contiguous(rest[marked[-1] :])
        assert slow._upstream.dropped > 0  # type: ignore[attr-defined]
    finally:
        for s in [*fast, slow]:
            await s.aclose()


async def test_upstream_loss_gives_a_gap_marker_then_the_stream_resumes(world: World) -> None:
    use_relay(world, backoff_initial_s=0.1, backoff_max_s=0.5, give_up_s=15)
    server = RtspTestServer([Mount("/flaky", gop_frames=15)])
    server.start()
    try:
        world.enrol_camera("cam-f", server.url("/flaky"))
        grant = await world.grant(camera="cam-f")
        async with await world.gate.edge.open_live("cam-f", grant) as s:
            before = await take(s, 10)
            assert not any(p.discontinuity for p in before)
            server.kill()  # the camera vanishes...
            await anyio.sleep(0.5)
            server.start()  # ...and comes back at the same address
            with anyio.fail_after(20):
                async for packet in s:
                    if packet.discontinuity:
                        break
            assert packet.is_keyframe
            # The renewal is on record before the gap's first packet was handed over.
            (renewed,) = [r.body for r in world.gate.audit.records("access.renewed")]
            assert (renewed["grant"], renewed["camera"], renewed["renewal"]) == (
                grant.grant.id,
                "cam-f",
                1,
            )
            assert renewed["cause"] in ("ended", "lost: CameraUnreachable"), renewed
            after = await take(s, 10)  # and the stream goes on
            assert not any(p.discontinuity for p in after)
            up = upstream(world, "cam-f")
            assert up is not None and up.reconnects >= 1
    finally:
        server.stop()


async def test_a_renewal_the_log_refuses_serves_nothing_more(world: World) -> None:
    """The audit log refuses the renewal's record (a real SQLite trigger on the store file):
    the consumer gets the error and not one packet of the unrecorded connection."""
    import sqlite3

    from camgate.errors import CamgateError

    use_relay(world, backoff_initial_s=0.1, backoff_max_s=0.5, give_up_s=15)
    server = RtspTestServer([Mount("/refused", gop_frames=15)])
    server.start()
    try:
        world.enrol_camera("cam-r", server.url("/refused"))
        async with await world.gate.edge.open_live("cam-r", await world.grant(camera="cam-r")) as s:
            await take(s, 5)
            with sqlite3.connect(world.gate.store.path) as db:
                db.execute(
                    "CREATE TRIGGER refuse_renewals BEFORE INSERT ON audit "
                    "WHEN NEW.kind = 'access.renewed' BEGIN SELECT RAISE(ABORT, 'refused'); END"
                )
            server.kill()
            await anyio.sleep(0.5)
            server.start()
            served_gap = False
            with anyio.fail_after(20), pytest.raises(CamgateError):
                async for packet in s:
                    served_gap = served_gap or packet.discontinuity
            assert not served_gap
        assert list(world.gate.audit.records("access.renewed")) == []
        assert [r.body["reason"] for r in world.gate.audit.records("access.end")][-1] == "error"
    finally:
        server.stop()


async def test_a_camera_gone_for_good_ends_its_consumers_with_an_error(world: World) -> None:
    from camgate.errors import CameraUnreachable

    use_relay(world, backoff_initial_s=0.1, give_up_s=1.0)
    server = RtspTestServer([Mount("/gone")])
    server.start()
    try:
        world.enrol_camera("cam-g", server.url("/gone"))
        async with await world.gate.edge.open_live("cam-g", await world.grant(camera="cam-g")) as s:
            await take(s, 3)
            server.kill()
            with anyio.fail_after(10), pytest.raises(CameraUnreachable):
                async for _packet in s:
                    pass
    finally:
        server.stop()


async def warm_up(world: World, camera: str = "cam-a", packets: int = 10) -> Incident:
    """Turn the cache on, open an incident near the cameras and wait for ``camera``'s cache."""
    use_relay(world, gop_cache=True)
    incident = world.gate.report_incident("burglary", world.cam.position, radius_m=300)
    with anyio.fail_after(10):
        while True:
            up = upstream(world, camera)
            if up is not None and up.cached >= packets:
                return incident
            await anyio.sleep(0.05)


async def test_a_warm_consumer_starts_at_a_cached_keyframe_at_most_one_gop_back(
    world: World,
) -> None:
    incident = await warm_up(world)
    await anyio.sleep(0.5)
    before = upstream(world, "cam-a")
    async with await open_live(world, incident.id) as stream:
        after = upstream(world, "cam-a")
        first = await take(stream, 1)
    # It starts at the keyframe the cache held when it joined (the one of `before`, or a newer
    # one that came meanwhile), never further back; a cache is one GOP (30 frames) at most.
    assert before is not None and after is not None
    assert first[0].is_keyframe and before.cached_keyframes == 1
    assert before.cache_start_pts is not None and after.cache_start_pts is not None
    assert before.cache_start_pts <= first[0].pts <= after.cache_start_pts  # type: ignore[operator]
    assert all(c.cached <= 30 for c in (before, after))
    start = next(world.gate.audit.records("access.start"))
    assert start.body["start"] == "cached"  # no wait for the camera's next keyframe
    # Wall-clock age of that keyframe: about one GOP (1 s); more only when the machine stalls.
    assert 0 < start.body["cache_offset_s"] < 3.0
    assert next(world.gate.audit.records("cache.warm")).body["cameras"] == ["cam-a"]


async def test_no_cache_for_a_battery_camera_or_without_live_consent(world: World) -> None:
    world.enrol_camera("cam-bat", world.server.url("/cam2"), battery=True)
    before = plays(world, "/cam2")
    await warm_up(world)  # cam-a is cached: the control
    assert upstream(world, "cam-bat") is None  # battery camera: never
    assert upstream(world, "cam-b") is None  # Bob allows no live view
    assert plays(world, "/cam2") == before  # neither camera was even contacted
    bat = world.gate.store.get_camera("cam-bat")
    assert world.gate.edge.cache_allowed(bat) == "battery camera"


async def test_closing_the_incident_drops_the_cache_and_its_connection(world: World) -> None:
    incident = await warm_up(world)
    assert upstream(world, "cam-a") is not None
    world.gate.close_incident(incident.id)
    up = upstream(world, "cam-a")
    assert up is None or (up.cached == 0 and not up.warm)  # dropped at once, synchronously
    with anyio.fail_after(5):
        while upstream(world, "cam-a") is not None:  # noqa: ASYNC110 - the pump closing
            await anyio.sleep(0.02)
    server = world.server
    assert await anyio.to_thread.run_sync(
        lambda: server.wait_requests(lambda _: not server.open_clients(), 5)
    )
    closed = list(world.gate.audit.records("incident.closed"))
    assert closed[-1].body["caches_dropped"] == ["cam-a"]


async def test_revocation_drops_the_cache_and_ends_consumers_at_once(world: World) -> None:
    incident = await warm_up(world)
    stream = await open_live(world, incident.id)
    await take(stream, 3)
    assert upstream(world, "cam-a") is not None
    await world.gate.revoke("alice")
    # On return: the cache is gone and the upstream's connection closed.
    assert upstream(world, "cam-a") is None
    with pytest.raises(ConsentRevoked):
        await stream.__anext__()
    # A new incident does not warm a camera whose owner revoked.
    world.gate.report_incident("robbery", world.cam.position, radius_m=300)
    assert upstream(world, "cam-a") is None


class KeyframeOnDemand(RtspAdapter):
    """An RTSP camera whose vendor has a keyframe call: here, the test server's control pipe."""

    def __init__(self, server: RtspTestServer) -> None:
        super().__init__(RtspSettings())
        self.server = server
        self.calls: list[float] = []

    async def request_keyframe(self, camera: Camera) -> bool:
        self.calls.append(time.monotonic())
        self.server.force_keyframe(urlsplit(camera.source).path)
        return True


async def test_the_edge_asks_for_a_keyframe_at_grant_time_and_on_a_cold_open(
    world: World,
) -> None:
    server = RtspTestServer([Mount("/slow-gop", gop_frames=3000)])  # a keyframe every 100 s
    server.start()
    try:
        adapter = KeyframeOnDemand(server)
        world.gate.host.register(DeclaringAdapters("keyed", lambda _s: adapter), "keyed")
        camera = world.enrol_camera("cam-k", server.url("/slow-gop"))
        world.gate.add_camera(attrs.evolve(camera, adapter="keyed"))
        grant = await world.grant(camera="cam-k")
        assert len(adapter.calls) == 1  # at grant time, before anything opened
        t0 = time.monotonic()
        async with await world.gate.edge.open_live("cam-k", grant) as stream:
            first = await take(stream, 1)
        assert len(adapter.calls) == 2  # and once the cold upstream was open
        assert first[0].is_keyframe
        assert time.monotonic() - t0 < 4.0  # not the 50 s a 100 s GOP costs on average
    finally:
        server.stop()


async def test_a_plain_rtsp_camera_cannot_be_asked_for_a_keyframe(world: World) -> None:
    assert await RtspAdapter(RtspSettings()).request_keyframe(world.cam) is False
    assert await world.gate.edge.live_grant_issued((await world.grant()).grant) is False


async def test_a_revocation_committed_by_another_process_drops_the_cache(world: World) -> None:
    import sys

    await warm_up(world)
    assert upstream(world, "cam-a") is not None
    db = str(world.gate.store.path)
    cli = await anyio.run_process(
        [sys.executable, "-m", "camgate.cli", "--db", db, "revoke", "--owner", "alice"],
        env={k: v for k, v in os.environ.items() if not k.startswith("CAMGATE_")},
    )
    assert b"cam-a" in cli.stdout
    with anyio.fail_after(5):
        while upstream(world, "cam-a") is not None:  # noqa: ASYNC110 - seen at the next packet
            await anyio.sleep(0.02)
    server = world.server
    assert await anyio.to_thread.run_sync(
        lambda: server.wait_requests(lambda _: not server.open_clients(), 5)
    )


async def test_a_camera_the_adapter_refuses_fails_the_open_with_its_error(world: World) -> None:
    world.enrol_camera("cam-x", "http://127.0.0.1:9/not-rtsp")
    with anyio.fail_after(5), pytest.raises(ValidationError, match="not an rtsp"):
        await world.gate.edge.open_live("cam-x", await world.grant(camera="cam-x"))
    end = list(world.gate.audit.records("access.end"))[-1]
    assert end.body["reason"] == "error" and end.body["error"] == "ValidationError"
    assert upstream(world, "cam-x") is None


class KeyframesOnly:
    """A real (if simple) transform: relay keyframes only, as a low-bandwidth view would."""

    def __init__(self) -> None:
        self.fed = 0
        self.flushed = 0

    def feed(self, packet: MediaPacket) -> list[MediaPacket]:
        self.fed += 1
        return [packet] if packet.is_keyframe else []

    def flush(self) -> list[MediaPacket]:
        self.flushed += 1
        return []


async def test_the_embedders_transform_runs_per_consumer_after_the_grant(
    world: World,
) -> None:
    made: list[KeyframesOnly] = []

    def factory(camera: Camera) -> KeyframesOnly | None:
        made.append(KeyframesOnly())
        return made[-1]

    world.gate.edge.configure_relay(RelaySettings(gop_cache=True), factory)
    incident = world.gate.report_incident("burglary", world.cam.position, radius_m=300)
    with anyio.fail_after(15):  # the warm cache runs before any grant: no transform there
        while True:
            up = upstream(world, "cam-a")
            if up is not None and up.cached >= 5:
                break
            await anyio.sleep(0.05)
    assert made == []
    streams = [await open_live(world, incident.id) for _ in range(2)]
    try:
        runs = [await take(s, 3) for s in streams]
        up = upstream(world, "cam-a")
        assert up is not None
        assert len(made) == 2  # one transform per consumer, made after its grant was redeemed
        for transform in made:
            assert transform.fed >= 3  # fed that consumer's granted packets only
            assert transform.fed <= up.packets_in
        assert up.packets_in > 60  # 3 keyframes of a 30-frame GOP: the rest were dropped
        for run in runs:
            assert all(p.is_keyframe for p in run)
    finally:
        for s in streams:
            await s.aclose()


class BreaksOnTheFifth(KeyframesOnly):
    """A transform that fails, as a re-encoder meeting a frame it cannot handle would."""

    def feed(self, packet: MediaPacket) -> list[MediaPacket]:
        if self.fed == 5:
            raise ValidationError("the transform cannot handle this frame")
        self.fed += 1
        return [packet]


async def test_a_failing_transform_ends_its_consumers_with_its_error(world: World) -> None:
    world.gate.edge.configure_relay(RelaySettings(), lambda _camera: BreaksOnTheFifth())
    async with await world.gate.edge.open_live("cam-a", await world.grant()) as stream:
        with anyio.fail_after(5), pytest.raises(ValidationError, match="cannot handle"):
            async for _packet in stream:
                pass
    assert upstream(world, "cam-a") is None  # and the connection is closed
    end = list(world.gate.audit.records("access.end"))[-1]
    assert end.body["reason"] == "error"
