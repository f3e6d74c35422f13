"""The app backend's live view against the simulator: ticket, signalling websocket (offer,
answer, activate_session, close), a real aiortc peer sending H.264 through a real gate into an
MP4 that ffmpeg decodes; revocation ends the session at Ring; refusals before any media."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import av
import pytest
from camgate import Camera, ConsentTerms, EndReason, Gate, GeoPoint, Owner, Waiver
from camgate.errors import (
    AccountUnlinked,
    AdapterError,
    CameraAuthError,
    CameraUnreachable,
    ValidationError,
)
from camgate.media import Mp4Writer
from camgate.media.webrtc import WebRtcReceiver
from camgate.models import MediaPacket
from camgate.testing.webrtc import read_counter
from camgate_ring import RingAdapter
from camgate_ring.adapter import RingSettings
from camgate_ring.signalling import request_ticket, signalling_connect
from camgate_ring.testing import TICKET_PATH, RingSimulator, app_backend_settings, until

pytestmark = pytest.mark.anyio

HOME = GeoPoint(32.2988, -90.1848)


@pytest.fixture(scope="module")
def app_sim() -> Iterator[RingSimulator]:
    """A battery doorbell (app id 1001), a line-powered stick-up cam (1002), one offline
    (1003), one whose live view a Ring mode turned off (1004)."""
    with RingSimulator(
        devices=4,
        battery={1: 71},
        offline=frozenset({3}),
        live_view_disabled=frozenset({4}),
    ) as running:
        yield running


@pytest.fixture
async def app_settings(app_sim: RingSimulator, tmp_path: Path) -> dict[str, Any]:
    """Settings of an app-backend account the owner signed in (password, then the code)."""
    return await app_backend_settings(app_sim, tmp_path / "ring-app.json")


@pytest.fixture
async def gate(app_settings: dict[str, Any], tmp_path: Path) -> AsyncIterator[Gate]:
    """A gate over real files with Alice's Ring cameras enrolled for live video through the app
    backend: ``door`` (line power, app id 1002), ``side`` (offline), ``porch`` (live view
    off), and ``bell`` (the battery doorbell, its sessions capped at 1.5 s)."""
    opened = Gate.open(tmp_path / "camgate.db")
    try:
        waiver = opened.publish_waiver(Waiver("w1", "I agree to share my camera."))
        opened.add_owner(Owner("alice", "Alice"))
        capped = {**app_settings, "app_battery_cap_s": 1.5}
        cameras = {"door": "1002", "side": "1003", "porch": "1004", "bell": "1001"}
        for camera_id, source in cameras.items():
            opened.add_camera(
                Camera(
                    id=camera_id, adapter="ring", source=source, owner_id="alice", position=HOME
                ),
                settings=capped if camera_id == "bell" else app_settings,
            )
        opened.enrol(
            "alice",
            list(cameras),
            waiver_version="w1",
            waiver_sha256=waiver.sha256,
            terms=ConsentTerms(scopes=["live"]),
        )
        yield opened
    finally:
        await opened.aclose()


async def grant(gate: Gate, camera_id: str = "door") -> Any:
    incident = gate.report_incident("burglary", HOME, radius_m=300)
    return await gate.request_access(
        incident.id, camera_id, "live", requested_by="officer-7", duration_s=60
    )


async def test_live_over_the_app_signalling_into_an_mp4_and_close_tells_ring(
    app_sim: RingSimulator, gate: Gate, tmp_path: Path
) -> None:
    signed = await grant(gate)
    before = set(app_sim.signalling())
    packets: list[MediaPacket] = []
    async with await gate.edge.open_live("door", signed) as stream:
        with anyio.fail_after(30):
            async for packet in stream:
                packets.append(packet)
                if len(packets) == 30:
                    break
        (session_id,) = set(app_sim.signalling()) - before
        state = app_sim.signalling()[session_id]
        assert state["doorbot_id"] == 1002 and state["activated"]
        assert state["forced_keyframes"] >= 1  # the keyframe asked for on join
    await until(lambda: app_sim.signalling()[session_id]["closed"], "the peer connection closed")
    assert app_sim.signalling()[session_id]["closed_by_client"] == 0
    assert packets[0].is_keyframe
    assert (packets[0].stream.width, packets[0].stream.height) == (320, 240)
    target = tmp_path / "live.mp4"
    with Mp4Writer(target, packets[0].stream) as mp4:
        for packet in packets:
            mp4.write(packet)
    decoded = await anyio.run_process(
        ["ffmpeg", "-v", "error", "-i", str(target), "-f", "null", "-"], check=True
    )
    assert decoded.stderr == b""
    with av.open(str(target)) as container:
        counters = [read_counter(f.to_ndarray(format="gray")) for f in container.decode(video=0)]
    assert counters == list(range(counters[0], counters[0] + 30))


async def test_revocation_ends_the_app_session_at_ring(
    app_sim: RingSimulator, gate: Gate, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    signed = await grant(gate)
    before = set(app_sim.signalling())
    stream = await gate.edge.open_live("door", signed)
    try:
        with anyio.fail_after(30):
            async for _packet in stream:
                break
        (session_id,) = set(app_sim.signalling()) - before
        await gate.revoke("alice")
        await until(lambda: app_sim.signalling()[session_id]["closed"], "the peer closed")
        await until(
            lambda: app_sim.signalling()[session_id]["closed_by_client"] == 0, "the close message"
        )
    finally:
        await stream.aclose()
    assert "token=" not in caplog.text  # the socket URL carries the ticket: never logged


@pytest.mark.parametrize(
    ("camera_id", "said"), [("side", "offline"), ("porch", "live view is turned off")]
)
async def test_offline_or_live_view_off_is_refused_before_any_media_request(
    app_sim: RingSimulator, gate: Gate, camera_id: str, said: str
) -> None:
    signed = await grant(gate, camera_id)
    start = len(app_sim.log())
    with anyio.fail_after(20), pytest.raises(CameraUnreachable, match=said):
        await gate.edge.open_live(camera_id, signed)
    assert TICKET_PATH not in [e["path"] for e in app_sim.log()[start:]]


async def test_a_bad_ticket_is_refused_with_ring_close_code_5(app_sim: RingSimulator) -> None:
    receiver = WebRtcReceiver()
    with anyio.fail_after(20), pytest.raises(CameraAuthError, match="refused the live view"):
        await signalling_connect(app_sim.signalling_url, "not-a-ticket", 1002, receiver)


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("backend", "cloud"),
        ("signalling_url", "ws://192.0.2.7/ws"),
        ("signalling_url", "https://example.org/ws"),
        ("app_snapshot_url", "http://192.0.2.7/snapshots"),
        ("app_media_hosts", "evil/path"),
        ("app_media_hosts", [7]),
    ],
)
def test_bad_backend_settings_are_clear_errors(setting: str, value: object) -> None:
    with pytest.raises(ValidationError, match=setting):
        RingSettings.from_mapping({setting: value})


async def test_a_504_and_an_asset_error_are_waited_out_then_named(
    app_sim: RingSimulator, app_settings: dict[str, Any]
) -> None:
    """Ring's 504 and its asset errors (a 404 with ``{"errors": [7019]}``) are retried after
    their waits (shortened here), at most twice; one that persists is named."""
    adapter = RingAdapter.from_settings(
        {**app_settings, "app_gateway_wait_s": 0.05, "app_asset_wait_s": 0.05}
    )
    try:
        app_sim.app_faults((504, {}), (404, {"errors": [7019]}))
        start = len(app_sim.log())
        devices = await adapter.app_client().app_devices()
        assert "1002" in [d.id for d in devices]
        statuses = [e["status"] for e in app_sim.log()[start:]]
        assert statuses[:2] == [504, 404] and statuses[-1] == 200
        app_sim.app_faults(*[(404, {"errors": [7062]})] * 3)
        with pytest.raises(CameraUnreachable, match="updating its firmware.*7062"):
            await adapter.app_client().get_json("/clients_api/ring_devices")
        app_sim.app_faults(*[(504, {})] * 3)
        with pytest.raises(AdapterError, match="504"):
            await adapter.app_client().get_json("/clients_api/ring_devices")
    finally:
        await adapter.aclose()


async def test_pings_keep_the_session_and_their_absence_is_close_code_6(
    app_settings: dict[str, Any], tmp_path: Path
) -> None:
    """The client pings (every 5 s by default; 0.2 s here) and Ring counts them; a client that
    stops pinging is ended by Ring with close code 6, and its packets end."""
    with RingSimulator(devices=2, ping_timeout_s=2.0) as strict:
        settings = await app_backend_settings(strict, tmp_path / "strict.json")
        adapter = RingAdapter.from_settings(settings)
        try:
            client = adapter.app_client()
            await client.app_devices()
            pinging = await signalling_connect(
                strict.signalling_url,
                await request_ticket(client, settings["app_ticket_url"]),
                1002,
                WebRtcReceiver(),
                ping_interval_s=0.2,
            )
            silent = await signalling_connect(
                strict.signalling_url,
                await request_ticket(client, settings["app_ticket_url"]),
                1001,
                WebRtcReceiver(),
                ping_interval_s=60.0,
            )
            try:
                await until(lambda: silent.ended_by is not None, "Ring's close of the silent one")
                assert silent.ended_by == (6, "Timeout waiting for ping")
                with anyio.fail_after(10):
                    async for _packet in silent.receiver.packets():
                        pass  # ends: Ring closed the session
                sessions = strict.signalling()
                kept = sessions[pinging.session_id]
                assert kept["pings"] >= 2 and kept["closed_by_ring"] is None
                assert sessions[silent.session_id]["closed_by_ring"] == [
                    6,
                    "Timeout waiting for ping",
                ]
            finally:
                await pinging.aclose()
                await silent.aclose()
        finally:
            await adapter.aclose()


def renewals(gate: Gate) -> list[dict[str, Any]]:
    """The ``access.renewed`` records so far."""
    return [dict(r.body) for r in gate.audit.records("access.renewed")]


async def test_app_sessions_are_capped_and_renewed_within_the_grant(
    app_sim: RingSimulator, gate: Gate
) -> None:
    """camgate applies Ring's Partner caps to the app's sessions (shortened here: 1.5 s on a
    battery): the stream is renewed by the edge's relay, each new session's first packet a
    keyframe marked as a discontinuity; a revocation ends the renewals."""
    before = set(app_sim.signalling())
    signed = await grant(gate, "bell")
    stream = await gate.edge.open_live("bell", signed)
    marks: list[bool] = []
    with anyio.fail_after(60):
        async for packet in stream:
            if packet.discontinuity:
                assert packet.is_keyframe
                # Each renewal is on record before its first packet is handed over.
                assert len(renewals(gate)) == marks.count(True) + 1
            marks.append(packet.discontinuity)
            if marks.count(True) == 2:
                break
    await gate.revoke("alice")
    await stream.aclose()
    assert [(r["grant"], r["renewal"], r["cause"]) for r in renewals(gate)] == [
        (signed.grant.id, n, "camgate's live-session cap (1.5 s)") for n in (1, 2)
    ]
    sessions = {k: v for k, v in app_sim.signalling().items() if k not in before}
    assert len(sessions) == 3
    assert all(s["doorbot_id"] == 1001 and s["sent"] > 0 for s in sessions.values())
    assert sum(s["closed_by_client"] == 0 for s in sessions.values()) >= 2
    await until(
        lambda: all(app_sim.signalling()[k]["closed"] for k in sessions), "every peer closed"
    )
    assert len(set(app_sim.signalling()) - before) == 3  # none renewed after the revocation


async def test_a_sign_in_ended_at_ring_ends_every_stream_of_the_account(
    app_sim: RingSimulator, gate: Gate
) -> None:
    """The app backend's account (one account file, two adapters: ``bell`` has its own cap
    setting) loses its sign-in at Ring while ``door`` and ``bell`` stream: ``bell``'s renewal
    finds the refresh refused, both streams end (``account-unlinked``), and every camera of the
    account is named in one ``account.unlinked`` record and told."""
    streams = {
        cam: await gate.edge.open_live(cam, await grant(gate, cam)) for cam in ("door", "bell")
    }
    for stream in streams.values():
        with anyio.fail_after(30):
            await anext(aiter(stream))
    app_sim.revoke_link("app")

    async def drain(cam: str) -> None:
        with contextlib.suppress(AccountUnlinked):
            async for _packet in streams[cam]:
                pass

    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            for cam in streams:
                tg.start_soon(drain, cam)
    assert {s.stats().end_reason for s in streams.values()} == {EndReason.ACCOUNT_UNLINKED}
    (record,) = [r.body for r in gate.audit.records("account.unlinked")]
    assert record["cameras"] == ["bell", "door", "porch", "side"]
    told = [n["camera_id"] for n in gate.store.notices("alice") if n["event"] == "link-lost"]
    assert sorted(told) == ["bell", "door", "porch", "side"]
