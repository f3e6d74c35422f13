"""Live video from the simulated Ring Partner API through a real gate: incident → grant →
WHEP session → packets → an MP4 that ffmpeg decodes; closing sends DELETE at the simulator."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import av
import pytest
from camgate import (
    Camera,
    ConsentTerms,
    EndReason,
    Gate,
    GeoPoint,
    Incident,
    Owner,
    SignedGrant,
    Waiver,
)
from camgate.errors import AccountUnlinked, CameraUnreachable
from camgate.media import Mp4Writer
from camgate.models import MediaPacket
from camgate.testing.webrtc import read_counter
from camgate_ring.testing import RingSimulator, until

pytestmark = pytest.mark.anyio

HOME = GeoPoint(32.2988, -90.1848)
DEVICE = "ava1.ring.device.SIM2"


class World:
    """A gate with Alice, the waiver ``w1`` and an open incident at :data:`HOME`."""

    def __init__(self, gate: Gate, settings: dict[str, Any]) -> None:
        self.gate = gate
        self.settings = settings
        self.waiver = gate.publish_waiver(Waiver("w1", "I agree to share my camera."))
        gate.add_owner(Owner("alice", "Alice"))
        self.incident: Incident = gate.report_incident("burglary", HOME, radius_m=300)

    def enrol(self, camera_id: str, device: str) -> None:
        """Add Alice's Ring camera ``camera_id`` (the simulator's ``device``) for live video."""
        self.gate.add_camera(
            Camera(id=camera_id, adapter="ring", source=device, owner_id="alice", position=HOME),
            settings=self.settings,
        )
        self.gate.enrol(
            "alice",
            [camera_id],
            waiver_version="w1",
            waiver_sha256=self.waiver.sha256,
            terms=ConsentTerms(scopes=["live"]),
        )

    async def grant(self, camera_id: str = "door") -> SignedGrant:
        """A live grant for ``camera_id`` under the open incident."""
        return await self.gate.request_access(
            self.incident.id, camera_id, "live", requested_by="officer-7", duration_s=60
        )


def renewals(gate: Gate) -> list[dict[str, Any]]:
    """The ``access.renewed`` records so far (each live-cap renewal, audited)."""
    return [dict(r.body) for r in gate.audit.records("access.renewed")]


@pytest.fixture
async def world(sim: RingSimulator, tmp_path: Path) -> AsyncIterator[World]:
    """A gate over real files with Alice's Ring camera ``door`` (the simulator's line-powered
    device) enrolled for live video, and an open incident beside it."""
    opened = Gate.open(tmp_path / "camgate.db")
    try:
        world = World(opened, sim.settings)
        world.enrol("door", DEVICE)
        yield world
    finally:
        await opened.aclose()


async def test_incident_grant_live_packets_mp4_and_delete_on_close(
    sim: RingSimulator, world: World, tmp_path: Path
) -> None:
    grant = await world.grant()
    before = set(sim.state())
    packets: list[MediaPacket] = []
    async with await world.gate.edge.open_live("door", grant) as stream:
        with anyio.fail_after(30):
            async for packet in stream:
                packets.append(packet)
                if len(packets) == 30:
                    break
        (session_id,) = set(sim.state()) - before
        assert sim.state()[session_id]["device"] == DEVICE
        assert not sim.state()[session_id]["deleted"]
        # The receiver asked for a keyframe on join (the sender's own come every 2 s).
        assert sim.state()[session_id]["forced_keyframes"] >= 1
    # Closing the stream ended the session at Ring: DELETE on its Location, peer closed.
    await until(lambda: sim.state()[session_id]["deleted"], "the DELETE")
    await until(lambda: sim.state()[session_id]["closed"], "the peer connection to close")
    deletes = [
        e
        for e in sim.log()
        if e["method"] == "DELETE" and e["path"].endswith(session_id) and e["status"] == 204
    ]
    assert len(deletes) == 1 and deletes[0]["bearer"]

    # The stream starts at a keyframe, with the size its SPS gives.
    assert packets[0].is_keyframe
    assert packets[0].stream.codec == "h264"
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
    assert len(counters) == 30
    assert counters == list(range(counters[0], counters[0] + 30))  # none missing, in order


async def test_a_whep_401_refreshes_the_token_and_retries_once(
    sim: RingSimulator, world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    grant = await world.grant()
    sim.expire_tokens()  # the adapter still believes its access token valid: Ring says 401
    start = len(sim.log())
    async with await world.gate.edge.open_live("door", grant) as stream:
        with anyio.fail_after(30):
            async for packet in stream:
                assert packet.is_keyframe
                break
        shown = [repr(stream), str(stream)]
    whep = f"/v1/devices/{DEVICE}/media/streaming/whep/sessions"
    calls = [(e["method"], e["path"], e["status"]) for e in sim.log()[start:]]
    assert calls[:3] == [("POST", whep, 401), ("POST", "/oauth/token", 200), ("POST", whep, 201)]
    # No token of the account in any log record or repr, before or after the rotation.
    tokens = json.loads(Path(sim.settings["token_file"]).read_text())
    secrets = {
        tokens["access_token"],
        tokens["refresh_token"],
        sim.settings["access_token"],
        sim.settings["refresh_token"],
        sim.settings["client_secret"],
    }
    for text in [caplog.text, *shown]:
        for secret in secrets:
            assert secret not in text


async def test_revocation_ends_the_whep_session_at_ring(sim: RingSimulator, world: World) -> None:
    grant = await world.grant()
    before = set(sim.state())
    stream = await world.gate.edge.open_live("door", grant)
    try:
        with anyio.fail_after(30):
            async for _packet in stream:
                break
        (session_id,) = set(sim.state()) - before
        revoked = time.monotonic()
        await world.gate.revoke("alice")
        await until(lambda: sim.state()[session_id]["deleted"], "the DELETE after revocation")
        await until(lambda: sim.state()[session_id]["closed"], "the peer connection to close")
        took = time.monotonic() - revoked
    finally:
        await stream.aclose()
    # Reported, not asserted tightly (a busy machine): the budget is the conformance suite's.
    print(f"revocation -> DELETE and peer closed at Ring: {took:.3f} s")
    assert [e["status"] for e in sim.log() if e["path"].endswith(session_id)][-1] == 204


@pytest.mark.parametrize(
    ("source", "said"),
    [("ava1.ring.device.SIM3", "offline"), ("ava1.ring.device.GONE", "no such")],
)
async def test_an_offline_or_removed_device_is_unreachable(
    sim: RingSimulator, world: World, source: str, said: str
) -> None:
    world.enrol("side", source)
    grant = await world.grant("side")
    with anyio.fail_after(20), pytest.raises(CameraUnreachable, match=said):
        await world.gate.edge.open_live("side", grant)


async def test_sessions_ring_ends_at_its_cap_are_renewed_within_the_grant(tmp_path: Path) -> None:
    """Ring's 30 s / 60 s caps, shortened: each session the simulator ends is replaced by the
    edge's relay (a new WHEP session), the new one's first packet a keyframe marked as a
    discontinuity; a revocation ends the renewals."""
    with RingSimulator(devices=2, battery={1: 50}, live_caps=(1.5, 3.0)) as capped:
        opened = Gate.open(tmp_path / "camgate.db")
        try:
            world = World(opened, capped.settings)
            world.enrol("door", "ava1.ring.device.SIM1")  # on a battery: 1.5 s sessions
            grant = await world.grant()
            stream = await world.gate.edge.open_live("door", grant)
            marks: list[bool] = []
            with anyio.fail_after(60):
                async for packet in stream:
                    if packet.discontinuity:
                        assert packet.is_keyframe
                        # Each renewal is on record before its first packet is handed over.
                        assert len(renewals(world.gate)) == marks.count(True) + 1
                    marks.append(packet.discontinuity)
                    if marks.count(True) == 2:
                        break
            await world.gate.revoke("alice")
            await stream.aclose()
            assert [(r["grant"], r["camera"], r["renewal"]) for r in renewals(world.gate)] == [
                (grant.grant.id, "door", 1),
                (grant.grant.id, "door", 2),
            ]
            assert all("Ring ended the live session" in r["cause"] for r in renewals(world.gate))
            sessions = capped.state()
            assert len(sessions) == 3
            assert sum(s["capped"] for s in sessions.values()) >= 2
            await until(
                lambda: all(s["closed"] for s in capped.state().values()), "every session closed"
            )
            # Packets flowed in each session; none is renewed after the revocation.
            assert all(s["sent"] > 0 for s in sessions.values())
            assert len(capped.state()) == 3
        finally:
            await opened.aclose()


async def test_a_link_revoked_at_ring_ends_every_stream_of_the_account_and_tells_them(
    tmp_path: Path,
) -> None:
    """The owner withdraws camgate's link in Ring while two of the account's cameras stream:
    the first call that needs a token (the battery camera's renewal at its 1.5 s cap) finds
    the refresh refused, and both streams end at once (``account-unlinked``) — the line-powered
    one long before its own 60 s cap — their peer connections close, and it is audited
    once with the owner told, no token anywhere in it."""
    with RingSimulator(devices=2, battery={1: 50}, live_caps=(1.5, 60.0)) as ring:
        opened = Gate.open(tmp_path / "camgate.db")
        try:
            world = World(opened, ring.settings)
            world.enrol("bell", "ava1.ring.device.SIM1")  # on a battery: 1.5 s sessions
            world.enrol("door", DEVICE)  # line power: 60 s
            grants = {cam: await world.grant(cam) for cam in ("bell", "door")}
            streams = {cam: await opened.edge.open_live(cam, g) for cam, g in grants.items()}
            for stream in streams.values():
                with anyio.fail_after(30):
                    await anext(aiter(stream))
            ring.revoke_link()
            ended: dict[str, BaseException | None] = {}

            async def drain(cam: str) -> None:
                try:
                    async for _packet in streams[cam]:
                        pass
                    ended[cam] = None
                except AccountUnlinked as exc:
                    ended[cam] = exc

            with anyio.fail_after(20):
                async with anyio.create_task_group() as tg:
                    for cam in streams:
                        tg.start_soon(drain, cam)
            # The camera whose renewal met the refusal gets the error; the other just ends.
            assert isinstance(ended["bell"], AccountUnlinked) and ended["door"] is None
            assert {cam: s.stats().end_reason for cam, s in streams.items()} == {
                "bell": EndReason.ACCOUNT_UNLINKED,
                "door": EndReason.ACCOUNT_UNLINKED,
            }
            # Every peer connection is closed (a DELETE cannot succeed: Ring refuses the token).
            await until(
                lambda: all(s["closed"] for s in ring.state().values()), "every peer closed"
            )
            ends = {r.body["grant"]: r.body["reason"] for r in opened.audit.records("access.end")}
            assert {ends[g.grant.id] for g in grants.values()} == {"account-unlinked"}
            (record,) = [r.body for r in opened.audit.records("account.unlinked")]
            assert record["adapter"] == "ring" and record["cameras"] == ["bell", "door"]
            assert "the link is lost" in record["error"]
            account = opened.edge._adapter("ring", "door").account_key(
                opened.store.get_camera("door")
            )
            assert record["account"] == account and account.startswith("ring-")
            told = [n for n in opened.store.notices("alice") if n["event"] == "link-lost"]
            assert sorted(n["camera_id"] for n in told) == ["bell", "door"]
            assert "link the account again" in told[0]["reasons"][0]
            text = json.dumps([record, told])
            for key in ("access_token", "refresh_token", "client_secret"):
                assert str(ring.settings[key]) not in text
            # A new grant now is refused at once, with the same clear error (not a hang).
            with anyio.fail_after(20), pytest.raises(AccountUnlinked, match="link is lost"):
                await opened.edge.open_live("door", await world.grant("door"))
        finally:
            await opened.aclose()
