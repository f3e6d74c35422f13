"""The promises the foundation enforces, end to end against the real RTSP server.

No grant → nothing; forged, expired, replayed, wrong-camera and wrong-scope grants refused;
revocation ends the stream and no packet arrives after it; audit before media.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from datetime import timedelta
from pathlib import Path

import anyio
import anyio.lowlevel
import pytest
from camgate import (
    AccessDenied,
    Camera,
    ConsentRevoked,
    GeoPoint,
    GrantExpired,
    GrantForged,
    GrantMismatch,
    GrantReplayed,
    GrantSigner,
    NotFound,
    Scope,
    ValidationError,
)
from camgate.clock import SystemClock

from .conftest import World

pytestmark = pytest.mark.anyio


def _kinds(world: World) -> list[str]:
    return [r.kind for r in world.gate.audit.records()]


async def test_granted_live_stream_is_audited_before_the_first_packet(world: World) -> None:
    signed = await world.grant("live")
    seen_at_first_packet: list[str] = []
    async with await world.gate.edge.open_live("cam-a", signed) as stream:
        async for packet in stream:
            seen_at_first_packet = _kinds(world)
            assert packet.is_keyframe
            break
    assert seen_at_first_packet[-1] == "access.start"
    end = [r for r in world.gate.audit.records("access.end")][-1]
    assert end.body["reason"] == "closed" and end.body["packets"] == 1
    assert end.body["bytes"] > 0
    assert world.gate.audit.verify().ok


async def test_refused_request_gets_nothing_and_says_why(world: World) -> None:
    with pytest.raises(AccessDenied) as info:
        await world.grant("live", camera="cam-b")
    reasons = info.value.decision.reasons
    assert reasons == ["core.scope: the owner does not allow live access (allowed: recorded)"]
    # the owner was told, with the reason
    notice = world.gate.store.notices("bob")[-1]
    assert notice["event"] == "refused" and notice["reasons"] == reasons
    # and without a token there is no way to media
    with pytest.raises(GrantForged):
        await world.gate.edge.open_live("cam-b", "")
    assert "access.start" not in _kinds(world)


async def test_forged_grants_are_refused(world: World) -> None:
    real = await world.grant("live")
    other_hub = GrantSigner.generate()
    with pytest.raises(GrantForged, match="does not verify"):
        await world.gate.edge.open_live("cam-a", other_hub.sign(real.grant))
    payload, sig = real.token.split(".")
    with pytest.raises(GrantForged):
        await world.gate.edge.open_live("cam-a", f"{payload[:-2]}AA.{sig}")
    assert "access.start" not in _kinds(world)


async def test_replayed_grant_is_refused(world: World) -> None:
    signed = await world.grant("snapshot")
    await world.gate.edge.snapshot("cam-a", signed)
    with pytest.raises(GrantReplayed, match="already redeemed"):
        await world.gate.edge.snapshot("cam-a", signed)


async def test_wrong_camera_and_wrong_scope_are_refused(world: World) -> None:
    signed = await world.grant("snapshot")
    with pytest.raises(GrantMismatch, match="not 'cam-b'"):
        await world.gate.edge.snapshot("cam-b", signed)
    with pytest.raises(GrantMismatch, match="snapshot access, not live"):
        await world.gate.edge.open_live("cam-a", signed)
    # neither attempt used the grant up
    snap = await world.gate.edge.snapshot("cam-a", signed)
    assert snap.width == 640


class ShiftedClock(SystemClock):
    """The system clock, moved forward on demand (both wall and monotonic time)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def now(self):  # type: ignore[no-untyped-def]
        return super().now() + timedelta(seconds=self.offset)

    def monotonic(self) -> float:
        return super().monotonic() + self.offset


async def test_expired_grant_is_refused(world: World) -> None:
    signed = await world.grant("live", duration_s=30)
    clock = ShiftedClock()
    world.gate.edge.clock = clock
    clock.offset = 31
    with pytest.raises(GrantExpired, match="expired at"):
        await world.gate.edge.open_live("cam-a", signed)


async def test_live_stream_ends_when_the_grant_expires(world: World) -> None:
    signed = await world.grant("live", duration_s=2.0)
    stream = await world.gate.edge.open_live("cam-a", signed)
    deadline = signed.grant.expires_at
    last = None
    with anyio.fail_after(10):
        async for packet in stream:
            last = packet
    assert stream.stats().end_reason == "expired"
    assert last is not None
    assert world.gate.clock.now() >= deadline
    # At the deadline, not at some later packet or check (slack for a loaded machine).
    assert world.gate.clock.now() - deadline < timedelta(seconds=1.5)


async def test_revocation_ends_the_stream_and_nothing_arrives_after(world: World) -> None:
    signed = await world.grant("live")
    stream = await world.gate.edge.open_live("cam-a", signed)
    arrivals: list[float] = []
    revoked_at: list[float] = []
    outcome: list[BaseException] = []
    flowing = anyio.Event()

    async def consume() -> None:
        try:
            async for packet in stream:
                arrivals.append(packet.arrival)
                if len(arrivals) == 15:
                    flowing.set()
        except ConsentRevoked as exc:
            outcome.append(exc)

    async with anyio.create_task_group() as tg:
        tg.start_soon(consume)
        await flowing.wait()
        revoked_at.append(time.monotonic())
        cameras = await world.gate.revoke("alice")
        closed_when_returned = stream.closed_at is not None
        closed_after = time.monotonic() - revoked_at[0]
    assert cameras == ["cam-a"]
    assert outcome and isinstance(outcome[0], ConsentRevoked)
    assert max(arrivals) < revoked_at[0]
    assert stream.stats().end_reason == "revoked"
    assert closed_when_returned  # the camera connection is closed when revoke() returns
    assert closed_after < 3.0  # and revoke() waits for no packet, no time-out
    with pytest.raises(AccessDenied, match="the owner revoked consent"):
        await world.grant("live")
    kinds = _kinds(world)
    assert kinds.index("consent.revoked") < len(kinds) - 1
    end = [r for r in world.gate.audit.records("access.end")][-1]
    assert end.body["reason"] == "revoked"
    assert [n["event"] for n in world.gate.store.notices("alice")] == [
        "granted",
        "revoked",
        "refused",
    ]


async def test_revocation_from_another_process_ends_the_stream(
    world: World, tmp_path: Path
) -> None:
    signed = await world.grant("live")
    stream = await world.gate.edge.open_live("cam-a", signed)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAMGATE_")}
    got = 0
    with anyio.fail_after(20):
        async for _packet in stream:
            got += 1
            if got == 10:
                break
        cli = await anyio.run_process(
            [
                sys.executable,
                "-m",
                "camgate.cli",
                "--db",
                str(world.gate.store.path),
                "revoke",
                "--owner",
                "alice",
            ],
            env=env,
        )
        assert json.loads(cli.stdout)["revoked"] == ["cam-a"]
        done = time.monotonic()
        with pytest.raises(ConsentRevoked):
            async for late in stream:
                assert late.arrival < done  # only packets that arrived before the commit
        seen_after = time.monotonic() - done
    assert stream.stats().end_reason == "revoked"
    assert seen_after < 3.0  # at the next packet (33 ms), not when the grant runs out (30 s)


async def test_clip_and_snapshot_are_audited_with_their_hash(world: World, tmp_path: Path) -> None:
    live = await world.grant("live")
    clip = await world.gate.edge.record_clip("cam-a", live, tmp_path / "clip.mp4", 3.0)
    probe = await anyio.run_process(
        [
            "ffprobe",
            "-v",
            "error",
            "-show_entries",
            "format=duration:stream=codec_name",
            "-of",
            "json",
            clip.path,
        ]
    )
    info = json.loads(probe.stdout)
    assert info["streams"][0]["codec_name"] == "h264"
    assert abs(float(info["format"]["duration"]) - 3.0) <= 0.5
    exported = next(world.gate.audit.records("clip.exported")).body
    import hashlib

    assert exported["sha256"] == hashlib.sha256(Path(clip.path).read_bytes()).hexdigest()


async def test_revocation_while_recording_deletes_the_partial_clip(
    world: World, tmp_path: Path
) -> None:
    live = await world.grant("live")
    target = tmp_path / "partial.mp4"

    async def revoke_once_recording() -> None:
        # Wait for the condition (packets flowing into the clip), not for a fixed time.
        while not any(s.stats().packets >= 10 for s in world.gate.edge.live_streams()):  # noqa: ASYNC110
            await anyio.sleep(0.01)  # the guard exposes no event to wait on
        await world.gate.revoke("alice")

    async with anyio.create_task_group() as tg:
        tg.start_soon(revoke_once_recording)
        with pytest.raises(ConsentRevoked):
            await world.gate.edge.record_clip("cam-a", live, target, 10.0)
    assert not target.exists()
    assert "clip.exported" not in _kinds(world)


async def test_geofence_incident_and_enrolment_are_enforced(world: World) -> None:
    gate = world.gate
    far = gate.add_camera(
        Camera(
            id="cam-far",
            adapter="rtsp",
            source=world.server.url("/cam1"),
            owner_id="alice",
            position=GeoPoint(32.35, -90.18),
        )
    )
    with pytest.raises(AccessDenied, match="not enrolled"):
        await world.grant("live", camera=far.id)
    gate.enrol(
        "alice",
        [far.id],
        waiver_version="w1",
        waiver_sha256=world.waiver.sha256,
        terms=gate.store.active_consent("cam-a").terms,
    )  # type: ignore[union-attr]
    with pytest.raises(AccessDenied, match="outside its 300 m radius"):
        await world.grant("live", camera=far.id)
    gate.close_incident(world.incident.id)
    with pytest.raises(AccessDenied, match="the incident is closed"):
        await world.grant("live")
    with pytest.raises(AccessDenied, match="cannot serve recorded"):
        await gate.request_access(
            world.incident.id,
            "cam-a",
            Scope.RECORDED,
            requested_by="o",
            window=(gate.clock.now() - timedelta(hours=1), gate.clock.now()),
        )


async def test_waiver_hash_mismatch_changes_nothing(world: World) -> None:
    before = len(world.gate.store.consents("alice"))
    with pytest.raises(ValidationError, match="does not match the published text"):
        world.gate.enrol(
            "alice",
            ["cam-a"],
            waiver_version="w1",
            waiver_sha256="0" * 64,
            terms=world.gate.store.active_consent("cam-a").terms,
        )  # type: ignore[union-attr]
    assert len(world.gate.store.consents("alice")) == before


async def test_a_silent_camera_still_ends_at_expiry_and_on_revocation(world: World) -> None:
    """Neither the deadline nor a revocation waits for the camera to send another packet."""
    from camgate_rtsp.testing.server import Mount, RtspTestServer

    server = RtspTestServer([Mount("/quiet")])
    server.start()
    try:
        world.enrol_camera("cam-q", server.url("/quiet"))
        # Expiry: the camera freezes (SIGSTOP keeps its socket open but sends nothing).
        signed = await world.grant("live", camera="cam-q", duration_s=2.0)
        stream = await world.gate.edge.open_live("cam-q", signed)
        await stream.__anext__()
        os.kill(server.pid, signal.SIGSTOP)  # type: ignore[arg-type]
        try:
            with anyio.fail_after(10), pytest.raises(StopAsyncIteration):
                while True:
                    await stream.__anext__()
            late = world.gate.clock.now() - signed.grant.expires_at
        finally:
            os.kill(server.pid, signal.SIGCONT)  # type: ignore[arg-type]
        assert stream.stats().end_reason == "expired"
        # well before the camera's read time-out (5 s), which a wait for a packet would take
        assert timedelta(0) <= late < timedelta(seconds=2.5)
        # Revocation: frozen again, the consumer waiting on a packet that will not come.
        signed = await world.grant("live", camera="cam-q", duration_s=30.0)
        frozen = await world.gate.edge.open_live("cam-q", signed)
        await frozen.__anext__()
        os.kill(server.pid, signal.SIGSTOP)  # type: ignore[arg-type]
        try:
            told: list[float] = []

            async def consume() -> None:
                with pytest.raises(ConsentRevoked):
                    while True:
                        await frozen.__anext__()
                told.append(time.monotonic())

            async with anyio.create_task_group() as tg:
                tg.start_soon(consume)
                await anyio.lowlevel.checkpoint()
                t0 = time.monotonic()
                await world.gate.revoke("alice")
        finally:
            os.kill(server.pid, signal.SIGCONT)  # type: ignore[arg-type]
        assert told[0] - t0 < 2.5  # told at once, not after the read time-out (5 s)
        assert frozen.stats().end_reason == "revoked"
    finally:
        server.stop()


async def test_credentials_added_later_reach_the_adapter(world: World) -> None:
    from camgate import Credentials

    from .conftest import SECRET

    # the rtsp adapter is built (and cached) by a first access without these credentials
    await world.gate.edge.snapshot("cam-a", await world.grant("snapshot"))
    world.gate.add_camera(
        Camera(
            id="cam-s",
            adapter="rtsp",
            source=world.server.url("/secure"),
            owner_id="alice",
            position=world.cam.position,
        ),
        Credentials("officer", SECRET),
    )
    world.gate.enrol(
        "alice",
        ["cam-s"],
        waiver_version="w1",
        waiver_sha256=world.waiver.sha256,
        terms=world.gate.store.active_consent("cam-a").terms,
    )  # type: ignore[union-attr]
    snap = await world.gate.edge.snapshot("cam-s", await world.grant("snapshot", camera="cam-s"))
    assert (snap.width, snap.height) == (640, 360)


async def test_a_removed_camera_leaves_at_once(world: World) -> None:
    signed = await world.grant("live")
    stream = await world.gate.edge.open_live("cam-a", signed)
    await stream.__anext__()
    before = [c.id for c, _ in world.gate.reachable(world.incident.id)]
    await world.gate.remove_camera("cam-a")
    with pytest.raises(ConsentRevoked):
        await stream.__anext__()
    assert stream.stats().end_reason == "revoked"
    after = [c.id for c, _ in world.gate.reachable(world.incident.id)]
    assert "cam-a" in before and "cam-a" not in after
    with pytest.raises(NotFound):
        await world.grant("live")
    assert "camera.removed" in _kinds(world)
