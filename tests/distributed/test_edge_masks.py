"""The owner's privacy masks set at the hub reach a remote edge, end to end: a real nats-server,
a real RTSP camera, the hub's gate and link in this process, the edge a real ``camgate edge
serve`` subprocess with its own store. The pictures are decoded and their pixels checked."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import av
import nats
import pytest
from camgate import Camera, ConsentTerms, Gate, GeoPoint, Owner, SignedGrant, Waiver
from camgate.edgenet import HubLink, fetch_remote_snapshot
from camgate.errors import ConsentRevoked
from camgate.models import MediaPacket
from camgate.store import Store
from camgate.testing import picture_luma, until
from camgate.testing.natsserver import NatsServer, server_for_tests
from camgate.vocab import EndReason
from camgate_rtsp.testing.server import RtspTestServer

from .test_edge_nats import EdgeProcess, _run_link, open_when_served

HOME = GeoPoint(32.2988, -90.1848)
#: The owner's mask: the picture's lower-left quarter.
QUARTER = [[(0.0, 0.5), (0.5, 0.5), (0.5, 1.0), (0.0, 1.0)]]


@pytest.fixture
def natsd() -> Iterator[NatsServer]:
    with server_for_tests() as server:
        yield server


class Hub:
    """The hub (gate and link in this process) and edge ``site1`` holding Alice's ``cam-a``."""

    def __init__(self, tmp: Path, nats_url: str, source: str) -> None:
        self.gate = gate = Gate.open(tmp / "hub.db")
        waiver = gate.publish_waiver(Waiver("w1", "I agree to share my camera."))
        camera = Camera(
            id="cam-a", adapter="rtsp", source=source, owner_id="alice",
            position=HOME,
        )  # fmt: skip
        edge_store = Store(tmp / "edge.sqlite")
        for store in (gate, edge_store):
            store.add_owner(Owner("alice", "Alice"))
            store.add_camera(camera)
        edge_store.close()
        gate.enrol("alice", ["cam-a"], waiver_version="w1", waiver_sha256=waiver.sha256,
                   terms=ConsentTerms(scopes=["live", "snapshot"]))  # fmt: skip
        self.incident = gate.report_incident("burglary", HOME, radius_m=300)
        self.link = HubLink(gate, nats_url, {"site1": ["cam-a"]}, beat_s=0.2, reconcile_s=0.5)
        self.edge_db = tmp / "edge.sqlite"
        self.edge: EdgeProcess | None = None

    def start_edge(self) -> EdgeProcess:
        self.edge = EdgeProcess(self.edge_db, "site1", self.link.nats_url, self.gate.public_key)
        return self.edge

    async def grant(self, scope: str) -> SignedGrant:
        return await self.gate.request_access(
            self.incident.id, "cam-a", scope, requested_by="officer-7", duration_s=60
        )


@pytest.fixture
async def hub(tmp_path: Path, natsd: NatsServer, hub_camera: RtspTestServer) -> AsyncIterator[Hub]:
    h = Hub(tmp_path, natsd.url, hub_camera.url("/cam1"))
    try:
        async with anyio.create_task_group() as tg:
            await tg.start(_run_link, h.link)
            edge = h.start_edge()
            await until(lambda: edge.said("edge site1: serving") or edge.proc.poll() is not None,
                        "the edge serving")  # fmt: skip
            assert edge.proc.poll() is None, "\n".join(edge.lines)
            yield h
            tg.cancel_scope.cancel()
    finally:
        if h.edge is not None:
            h.edge.stop()
        await h.gate.aclose()


def _quarter(luma: Any) -> tuple[float, float]:
    """The mean brightness inside the masked quarter (clear of its edges) and outside it."""
    h, w = luma.shape
    inside = luma[h // 2 + h // 16 : h - h // 16, w // 16 : w // 2 - w // 16]
    outside = luma[: h // 2, w // 2 :]
    return float(inside.mean()), float(outside.mean())


async def _snapshot(nc: Any, hub: Hub) -> tuple[float, float]:
    while True:  # the edge may not have heard its first heartbeat yet: a refusal, not a use
        try:
            jpeg = await fetch_remote_snapshot(nc, "site1", "cam-a", await hub.grant("snapshot"))
            break
        except ConsentRevoked as exc:
            if "up to date" not in str(exc):
                raise
            await anyio.sleep(0.05)
    with av.open(io.BytesIO(jpeg)) as container:
        frame = next(container.decode(video=0))
    return _quarter(picture_luma(frame))


async def _live_frame(stream: Any) -> tuple[float, float]:
    """The first decoded picture of a remote stream."""
    packets: list[MediaPacket] = []
    ctx: Any = None
    with anyio.fail_after(20):
        async for packet in stream:
            if ctx is None:
                ctx = av.CodecContext.create(packet.stream.codec, "r")
                if packet.stream.extradata:
                    ctx.extradata = packet.stream.extradata
            packets.append(packet)
            for frame in ctx.decode(av.Packet(packet.data)):
                return _quarter(picture_luma(frame))
    pytest.fail(f"the stream ended after {len(packets)} packets without a picture")


@pytest.mark.anyio
async def test_masks_set_at_the_hub_end_the_remote_stream_and_mask_what_the_edge_serves(
    hub: Hub,
) -> None:
    nc = await nats.connect(hub.link.nats_url)
    try:
        inside, outside = await _snapshot(nc, hub)
        assert inside > 30 and outside > 30, (inside, outside)  # a picture, not masked yet
        stream = await open_when_served(nc, "cam-a", await hub.grant("live"))
        inside, _outside = await _live_frame(stream)
        assert inside > 30, inside
        # The owner masks the lower-left quarter at the hub: the remote stream, masked
        # otherwise, ends with masks-changed.
        await hub.gate.set_masks("alice", "cam-a", QUARTER)
        with anyio.fail_after(15):
            async for _packet in stream:
                pass
        assert stream.end_reason is EndReason.MASKS_CHANGED
        # The edge's next still and live picture are masked: the quarter solid black.
        inside, outside = await _snapshot(nc, hub)
        assert inside < 12 < 30 < outside, (inside, outside)
        again = await open_when_served(nc, "cam-a", await hub.grant("live"))
        inside, outside = await _live_frame(again)
        assert inside < 12 < 30 < outside, (inside, outside)
        # Cleared at the hub: the edge's stream ends again and the picture is whole.
        await hub.gate.set_masks("alice", "cam-a", [])
        with anyio.fail_after(15):
            async for _packet in again:
                pass
        assert again.end_reason is EndReason.MASKS_CHANGED
        inside, _outside = await _snapshot(nc, hub)
        assert inside > 30, inside
    finally:
        await nc.close()
    # The edge's own log says why its streams ended.
    assert hub.edge is not None
    reasons = [e["reason"] for e in hub.edge.access_ends() if e["camera"] == "cam-a"]
    assert reasons.count("masks-changed") == 2, reasons


@pytest.mark.anyio
async def test_masks_changed_without_a_record_reach_the_edge_by_the_full_comparison(
    hub: Hub,
) -> None:
    """Masks written to the hub's store with no ``masks.set`` record (a restored store, a
    repair): the link's periodic comparison (``reconcile_s``) still sends them."""
    from datetime import UTC, datetime

    from camgate.models import PrivacyMask

    nc = await nats.connect(hub.link.nats_url)
    try:
        assert (await _snapshot(nc, hub))[0] > 30
        mask = PrivacyMask("cam-a", QUARTER, datetime.now(UTC), "alice")
        await anyio.to_thread.run_sync(hub.gate.store.set_masks, mask)
        with anyio.fail_after(20):
            while True:
                inside, _outside = await _snapshot(nc, hub)
                if inside < 12:
                    break
                await anyio.sleep(0.1)
    finally:
        await nc.close()


@pytest.mark.anyio
async def test_an_edge_refuses_a_camera_until_it_holds_the_masks_the_hub_names(
    tmp_path: Path,
) -> None:
    """Fail closed: the hub's state names masks; while the edge's store has not taken them the
    camera is refused, once it has the grant holds. (In process: the refusal is the state's,
    not the network's.)"""
    from datetime import UTC, datetime

    from camgate.audit import AuditLog
    from camgate.edgenet import SiteEdge, wire
    from camgate.grants import GrantVerifier
    from camgate.models import PrivacyMask
    from camgate.plugins import PluginHost
    from camgate.vocab import GrantProblem

    hub = Hub(tmp_path, "nats://127.0.0.1:9", "rtsp://127.0.0.1:9/cam1")  # neither is dialled
    store = Store(tmp_path / "site.sqlite")  # this edge's store: cam-a not registered yet
    audit = AuditLog(store)
    edge = SiteEdge(store=store, host=PluginHost(), verifier=GrantVerifier(hub.gate.public_key),
                    audit=audit, staleness_s=60.0)  # fmt: skip
    try:
        grant = (await hub.grant("live")).grant
        camera = hub.gate.store.get_camera("cam-a")
        now = datetime.now(UTC)
        edge.confirm(now, now)
        mask = PrivacyMask("cam-a", QUARTER, now, "alice")
        state = wire.ConsentState("cam-a", grant.consent_id, ("live",), now, mask)
        assert await edge.apply(state) is None  # the store refuses them: camera unknown there
        assert edge.grant_problem(camera, grant, now) is GrantProblem.MASKS_CHANGED
        store.add_owner(Owner("alice", "Alice"))
        store.add_camera(camera)
        await edge.apply(state)  # the same state again (a replay): now the masks are held
        assert edge.grant_problem(camera, grant, now) is None
        assert store.masks("cam-a") == mask
        # A hub that holds no masks for a camera leaves the edge's own.
        await edge.apply(wire.ConsentState("cam-a", grant.consent_id, ("live",), now))
        assert edge.grant_problem(camera, grant, now) is None
        assert store.masks("cam-a") == mask
    finally:
        await edge.aclose()
        audit.close()
        store.close()
        await hub.gate.aclose()
