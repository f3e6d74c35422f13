"""Regression tests for holes an independent review found, each on real parts.

Races between revocation and opening, grants outliving the consent or incident they were issued
under, consent following a camera id to a new owner, revocations undone by a failing or
cancelled caller, streams left open by a cancelled consumer, credentials following a camera's
changed address, and the store's file permissions.
"""

from __future__ import annotations

import os
import signal
import stat
import sys

import anyio
import pytest
from camgate import (
    AccessDenied,
    Camera,
    ConsentRevoked,
    Credentials,
    GrantExpired,
    NotFound,
)
from camgate.models import MAX_DURATION_S
from camgate_rtsp.testing.server import Mount, RtspTestServer

from .conftest import SECRET, World

pytestmark = pytest.mark.anyio


async def test_a_revocation_completed_while_the_camera_connects_is_seen(world: World) -> None:
    server = RtspTestServer([Mount("/slow")])
    server.start()
    try:
        world.enrol_camera("cam-s", server.url("/slow"), ("live",))
        signed = await world.grant("live", camera="cam-s")
        os.kill(server.pid, signal.SIGSTOP)  # type: ignore[arg-type]  # the camera is slow
        opened: list[object] = []
        try:
            async with anyio.create_task_group() as tg:

                async def opener() -> None:
                    opened.append(await world.gate.edge.open_live("cam-s", signed))

                tg.start_soon(opener)
                # wait until the edge has redeemed the grant and is inside the adapter
                while not any(r.kind == "access.start" for r in world.gate.audit.records()):  # noqa: ASYNC110
                    await anyio.sleep(0.01)
                await world.gate.revoke("alice")  # completes while the adapter connects
                os.kill(server.pid, signal.SIGCONT)  # type: ignore[arg-type]
        finally:
            os.kill(server.pid, signal.SIGCONT)  # type: ignore[arg-type]
        stream = opened[0]
        with anyio.fail_after(10), pytest.raises(ConsentRevoked):
            await stream.__anext__()  # type: ignore[attr-defined]
        assert stream.stats().packets == 0  # type: ignore[attr-defined]
    finally:
        server.stop()


async def test_a_grant_dies_with_its_consent_even_after_re_enrolment(world: World) -> None:
    live = await world.grant("live")
    later = await world.grant("live")
    stream = await world.gate.edge.open_live("cam-a", live)
    await stream.__anext__()
    # Another process revokes and re-enrols Alice with snapshot-only terms.
    code = (
        "import anyio, sys\n"
        "from camgate import Gate, ConsentTerms\n"
        "async def main():\n"
        "    async with Gate.open(sys.argv[1]) as g:\n"
        "        await g.revoke('alice')\n"
        "        w = g.store.get_waiver('w1')\n"
        "        g.enrol('alice', ['cam-a'], waiver_version='w1', waiver_sha256=w.sha256,\n"
        "                terms=ConsentTerms(scopes=['snapshot']))\n"
        "anyio.run(main)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAMGATE_")}
    await anyio.run_process([sys.executable, "-c", code, str(world.gate.store.path)], env=env)
    with anyio.fail_after(10), pytest.raises(ConsentRevoked):
        while True:
            await stream.__anext__()
    # a grant issued under the old consent cannot be redeemed either
    with pytest.raises(ConsentRevoked):
        await world.gate.edge.open_live("cam-a", later)
    # and new live requests are refused under the new terms
    with pytest.raises(AccessDenied, match="does not allow live access"):
        await world.grant("live")


async def test_consent_does_not_follow_a_camera_id_to_a_new_owner(world: World) -> None:
    await world.gate.remove_camera("cam-a")
    world.gate.add_camera(
        Camera(
            id="cam-a",
            adapter="rtsp",
            source=world.server.url("/cam1"),
            owner_id="bob",
            position=world.cam.position,
        )
    )
    with pytest.raises(AccessDenied, match="core.opt-in"):
        await world.grant("live")
    assert world.gate.store.active_consent("cam-a") is None


async def test_a_caller_that_gives_up_cannot_undo_a_revocation(world: World) -> None:
    signed = await world.grant("live")
    stream = await world.gate.edge.open_live("cam-a", signed)
    await stream.__anext__()
    with anyio.move_on_after(0):  # the caller's time-out fires at the first checkpoint
        await world.gate.revoke("alice")
    assert world.gate.store.active_consent("cam-a") is None
    assert any(r.kind == "consent.revoked" for r in world.gate.audit.records())
    with pytest.raises(AccessDenied, match="revoked"):
        await world.grant("live")
    with pytest.raises(ConsentRevoked):
        await stream.__anext__()


async def test_a_cancelled_consumer_still_closes_and_audits(world: World) -> None:
    signed = await world.grant("live")
    stream = await world.gate.edge.open_live("cam-a", signed)
    got = 0
    with anyio.CancelScope() as consumer:
        async with stream:
            async for _packet in stream:
                got += 1
                if got == 3:
                    consumer.cancel()  # cancelled while waiting for the next packet
    assert stream.stats().end_reason == "closed"
    assert stream not in world.gate.edge.live_streams()
    ends = [r.body for r in world.gate.audit.records("access.end")]
    assert ends and ends[-1]["grant"] == signed.grant.id and ends[-1]["packets"] > 0


async def test_grants_never_outlive_their_incident(world: World) -> None:
    # The longest duration a request may ask (366 days), far beyond the incident's window.
    signed = await world.grant("live", duration_s=MAX_DURATION_S)
    assert signed.grant.expires_at == world.incident.window_end
    stream = await world.gate.edge.open_live("cam-a", signed)
    await stream.__anext__()
    world.gate.close_incident(world.incident.id)
    with anyio.fail_after(10), pytest.raises(StopAsyncIteration):
        while True:
            await stream.__anext__()
    assert stream.stats().end_reason == "incident-closed"


async def test_redeeming_after_the_incident_closed_is_refused(world: World) -> None:
    signed = await world.grant("snapshot")
    world.gate.close_incident(world.incident.id)
    with pytest.raises(GrantExpired, match="incident is closed"):
        await world.gate.edge.snapshot("cam-a", signed)


async def test_credentials_do_not_follow_a_changed_address(world: World) -> None:
    cam = Camera(
        id="cam-sec",
        adapter="rtsp",
        source=world.server.url("/secure"),
        owner_id="alice",
        position=world.cam.position,
    )
    world.gate.add_camera(cam, Credentials("officer", SECRET))
    assert "cam-sec" in world.gate.store.credentials()
    moved = Camera(
        id="cam-sec",
        adapter="rtsp",
        source="rtsp://192.0.2.66:554/x",
        owner_id="alice",
        position=world.cam.position,
    )
    world.gate.add_camera(moved)
    assert "cam-sec" not in world.gate.store.credentials()
    await world.gate.remove_camera("cam-sec")
    with pytest.raises(NotFound):
        world.gate.store.get_camera("cam-sec")


async def test_the_store_file_is_private(world: World) -> None:
    for suffix in ("", "-wal", "-shm"):
        path = world.gate.store.path.with_name(world.gate.store.path.name + suffix)
        if path.exists():
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


async def test_a_cancelled_open_leaves_no_reader_behind(world: World) -> None:
    import threading

    from camgate_rtsp.adapter import RtspLiveStream, RtspSettings

    server = RtspTestServer([Mount("/frozen")])
    server.start()
    try:
        os.kill(server.pid, signal.SIGSTOP)  # type: ignore[arg-type]
        with anyio.move_on_after(0.3):
            await RtspLiveStream.open(server.url("/frozen"), RtspSettings(connect_timeout_s=1))
        os.kill(server.pid, signal.SIGCONT)  # type: ignore[arg-type]
        with anyio.fail_after(5):
            # the reader thread (named after the camera) ends once PyAV's open returns
            while any(t.name.startswith("rtsp ") for t in threading.enumerate()):  # noqa: ASYNC110
                await anyio.sleep(0.05)
    finally:
        os.kill(server.pid, signal.SIGCONT)  # type: ignore[arg-type]
        server.stop()
