"""Edges at owners' sites over NATS, end to end: a real nats-server (JetStream), a real RTSP
camera, the hub's gate and link in this process, and the edge as a real subprocess
(``camgate edge serve``) with its own SQLite store and audit log.

Each test starts its own NATS server (a free port, its own store directory) and edge: nothing is
shared across tests but the RTSP camera server of the module.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import nats
import pytest
from camgate import Camera, ConsentTerms, Gate, GeoPoint, Incident, Owner, SignedGrant, Waiver
from camgate.audit import AuditLog
from camgate.edgenet import HubLink, fetch_edge_audit, open_remote_live
from camgate.edgenet.wire import LEASE_BUCKET
from camgate.errors import ConsentRevoked
from camgate.store import Store
from camgate.testing import CliProcess
from camgate.testing.natsserver import NatsServer, server_for_tests
from camgate.vocab import EndReason
from camgate_rtsp.testing.server import Mount, RtspTestServer, serving

HOME = GeoPoint(32.2988, -90.1848)
#: The edges' staleness limit in these tests (s); the hub beats every BEAT_S. An edge confirms
#: it is up to date only on a beat with nothing queued after it, so an edge starved of CPU for
#: longer than BEAT_S at every beat (a loaded CI machine) cannot confirm: beats 0.2 s apart made
#: the first test fail so once; these are the shipped defaults' ratio (0.5 s, 5 s) halved.
STALENESS_S = 3.0
BEAT_S = 0.4


@pytest.fixture(scope="module")
def cameras() -> Iterator[RtspTestServer]:
    with serving([Mount("/cam1", gop_frames=15), Mount("/cam2", gop_frames=15)]) as server:
        yield server


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def natsd() -> Iterator[NatsServer]:
    with server_for_tests() as server:
        yield server


async def until(check: Callable[[], Any], timeout_s: float = 15.0, what: str = "") -> Any:
    """Wait for ``check()`` to be truthy (polled); fail saying ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what or check}")
        await anyio.sleep(0.02)


class EdgeProcess(CliProcess):
    """``camgate edge serve`` as a subprocess; its output lines collected by a thread."""

    def __init__(self, db: Path, edge_id: str, url: str, hub_key: bytes) -> None:
        self.db = db
        super().__init__(
            "--db", str(db), "edge", "serve", "--id", edge_id, "--nats", url,
            "--hub-key", hub_key.hex(), "--staleness", str(STALENESS_S),
        )  # fmt: skip

    def audit_key(self) -> bytes:
        """The edge's own audit key, as ``camgate --db edge.sqlite edge key`` prints it."""
        done = subprocess.run(
            [sys.executable, "-m", "camgate.cli", "--db", str(self.db), "edge", "key"],
            capture_output=True,
            text=True,
            check=True,
        )
        return bytes.fromhex(done.stdout.strip())

    def access_ends(self) -> list[dict[str, Any]]:
        """The ``access.end`` bodies in the edge's own audit log (read-only)."""
        store = Store(self.db, read_only=True)
        try:
            log = AuditLog(store, read_only=True)
            try:
                return [r.body for r in log.records() if r.kind == "access.end"]
            finally:
                log.close()
        finally:
            store.close()


class Site:
    """The hub (gate + link, in this process) and one edge process at Alice and Bob's site:
    ``cam-a`` (Alice, live) and ``cam-b`` (Bob, live), both behind edge ``site1``."""

    def __init__(self, tmp: Path, natsd: NatsServer, cameras: RtspTestServer) -> None:
        self.natsd = natsd
        self.gate = gate = Gate.open(tmp / "hub.db")
        waiver = gate.publish_waiver(Waiver("w1", "I agree to share my camera."))
        self.edge_db = tmp / "edge.sqlite"
        edge_store = Store(self.edge_db)
        for owner, cam, path in (("alice", "cam-a", "/cam1"), ("bob", "cam-b", "/cam2")):
            camera = Camera(
                id=cam, adapter="rtsp", source=cameras.url(path), owner_id=owner, position=HOME
            )
            gate.add_owner(Owner(owner, owner.title()))
            gate.add_camera(camera)
            # The edge's own store: the same camera, with what only the site holds.
            edge_store.add_owner(Owner(owner, owner.title()))
            edge_store.add_camera(camera)
            gate.enrol(
                owner,
                [cam],
                waiver_version="w1",
                waiver_sha256=waiver.sha256,
                terms=ConsentTerms(scopes=["live"]),
            )
        edge_store.close()
        self.incident: Incident = gate.report_incident("burglary", HOME, radius_m=300)
        self.link = HubLink(gate, natsd.url, {"site1": ["cam-a", "cam-b"]}, beat_s=BEAT_S)
        self.edge: EdgeProcess | None = None

    def start_edge(self) -> EdgeProcess:
        self.edge = EdgeProcess(self.edge_db, "site1", self.natsd.url, self.gate.public_key)
        return self.edge

    async def grant(self, camera: str) -> SignedGrant:
        return await self.gate.request_access(
            self.incident.id, camera, "live", requested_by="officer-7", duration_s=60
        )

    def acks(self) -> list[dict[str, Any]]:
        return [r.body for r in self.gate.audit.records() if r.kind == "edge.ack"]


@pytest.fixture
async def site(tmp_path: Path, natsd: NatsServer, cameras: RtspTestServer) -> AsyncIterator[Site]:
    s = Site(tmp_path, natsd, cameras)
    try:
        async with anyio.create_task_group() as tg:
            await tg.start(_run_link, s.link)
            edge = s.start_edge()
            await until(lambda: edge.said("edge site1: serving") or edge.proc.poll() is not None)
            assert edge.proc.poll() is None, "\n".join(edge.lines)
            yield s
            tg.cancel_scope.cancel()
    finally:
        if s.edge is not None:
            s.edge.stop()
        await s.gate.aclose()


async def _run_link(link: HubLink, *, task_status: anyio.abc.TaskStatus[None]) -> None:
    await link.run(ready=lambda: task_status.started())


async def open_when_served(nc: Any, camera: str, token: SignedGrant, timeout_s: float = 15.0):
    """Open ``camera`` on edge site1, retrying while the edge says it is not up to date yet
    (a refusal before redemption: the grant is not used up)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return await open_remote_live(nc, "site1", camera, token)
        except ConsentRevoked as exc:
            if "up to date" not in str(exc) or time.monotonic() > deadline:
                raise
            await anyio.sleep(0.05)


async def read_packets(stream: Any, n: int) -> None:
    with anyio.fail_after(15):
        async for _packet in stream:
            n -= 1
            if n <= 0:
                return


@pytest.mark.anyio
async def test_revocation_on_the_hub_ends_the_remote_stream_and_is_acknowledged(
    site: Site,
) -> None:
    nc = await nats.connect(site.natsd.url)
    try:
        stream = await open_when_served(nc, "cam-a", await site.grant("cam-a"))
        await read_packets(stream, 10)  # real H.264 from the camera, through the edge
        nc2 = await nats.connect(site.natsd.url)  # a second consumer, which will vanish
        other = await open_remote_live(nc2, "site1", "cam-b", await site.grant("cam-b"))
        await read_packets(other, 3)
        revoked_at = time.monotonic()
        await site.gate.revoke("alice")
        with pytest.raises(ConsentRevoked), anyio.fail_after(10):
            async for _packet in stream:
                pass
        assert stream.end_reason is EndReason.REVOKED
        assert time.monotonic() - revoked_at < STALENESS_S  # by the message, not staleness
        acks = await until(site.acks, what="edge.ack in the hub's audit log")
        assert acks[0]["edge"] == "site1"
        assert acks[0]["camera"] == "cam-a"
        assert acks[0]["streams_ended"] == 1
        # Bob's camera is untouched.
        await read_packets(other, 5)
        # Its consumer goes away without closing the stream: the edge closes it.
        await nc2.close()
        # The hub fetches the edge's own audit log and verifies it with the edge's key.
        assert site.edge is not None
        key = await anyio.to_thread.run_sync(site.edge.audit_key)
        assert key != site.gate.public_key  # the edge signs with a key of its own
        records, verdict = await fetch_edge_audit(nc, "site1", key)
        assert verdict.ok, verdict
        kinds = [(r.kind, r.body.get("camera"), r.body.get("reason")) for r in records]
        assert ("access.end", "cam-a", "revoked") in kinds
        # Against any other key (here the hub's) its checkpoints do not verify.
        _records, wrong = await fetch_edge_audit(nc, "site1", site.gate.public_key)
        assert not wrong.ok
    finally:
        await nc.close()
    ends = await until(
        lambda: [e for e in site.edge.access_ends() if e["camera"] == "cam-a"],  # type: ignore[union-attr]
        what="access.end in the edge's log",
    )
    assert ends[0]["reason"] == "revoked"
    gone = await until(
        lambda: [e for e in site.edge.access_ends() if e["camera"] == "cam-b"],  # type: ignore[union-attr]
        what="the edge closing the stream of a consumer gone (its grant runs 60 s)",
    )
    assert gone[0]["reason"] == "closed"


@pytest.mark.anyio
async def test_cut_off_edge_stops_within_the_staleness_limit_and_replays(site: Site) -> None:
    edge = site.edge
    assert edge is not None
    nc = await nats.connect(site.natsd.url, max_reconnect_attempts=-1, reconnect_time_wait=0.2)
    try:
        stream = await open_when_served(nc, "cam-a", await site.grant("cam-a"))
        await read_packets(stream, 5)
        early = await site.grant("cam-a")  # issued before the revocation, not yet used
        site.natsd.stop()  # the edge is cut off from the hub
        cut = time.monotonic()
        await site.gate.revoke("alice")  # the edge cannot hear it
        await until(
            lambda: [e for e in edge.access_ends() if e["camera"] == "cam-a"],
            timeout_s=STALENESS_S + 5,
            what="the edge ending its stream by itself",
        )
        waited = time.monotonic() - cut
        ends = edge.access_ends()
        assert ends[0]["reason"] == "revoked"
        # the limit, plus the time to write and read back the record on a busy machine
        assert waited < STALENESS_S + 3.0, waited
        assert not site.acks()
        # NATS comes back: the edge replays the revocation (and acknowledges it) and serves
        # again only what is still allowed.
        site.natsd.start()
        await until(site.acks, timeout_s=20, what="the replayed revocation's edge.ack")
        bob = await open_when_served(nc, "cam-b", await site.grant("cam-b"), timeout_s=20)
        await read_packets(bob, 3)
        with pytest.raises(ConsentRevoked, match="not in force"):
            await open_remote_live(nc, "site1", "cam-a", early)
        # The incident closes on the hub: Bob's stream under it ends at the edge.
        site.gate.close_incident(site.incident.id)
        with anyio.fail_after(10):
            async for _packet in bob:
                pass
        assert bob.end_reason is EndReason.INCIDENT_CLOSED
    finally:
        await nc.close()


@pytest.mark.anyio
async def test_second_edge_with_the_same_identity_is_refused(site: Site) -> None:
    second = EdgeProcess(site.edge_db.with_name("edge2.sqlite"), "site1", site.natsd.url,
                         site.gate.public_key)  # fmt: skip
    try:
        code = second.proc.wait(timeout=60)
    finally:
        second.stop()
    assert code == 1
    assert any("in use by another edge" in line for line in second.lines), second.lines
    assert site.edge is not None and site.edge.proc.poll() is None  # the first still serves


@pytest.mark.anyio
async def test_hub_link_as_its_own_process_carries_another_process_revocation(
    tmp_path: Path, natsd: NatsServer, cameras: RtspTestServer
) -> None:
    """``camgate edge hub`` beside the hub's store, the edge given ``camgate edge key``'s key,
    the revocation made by a third process (``camgate revoke``): it reaches the edge's stream
    and the edge's acknowledgement lands in the hub's log."""
    s = Site(tmp_path, natsd, cameras)
    cli = [sys.executable, "-m", "camgate.cli", "--db", str(tmp_path / "hub.db")]
    key = await anyio.run_process([*cli, "edge", "key"])
    assert bytes.fromhex(key.stdout.decode().strip()) == s.gate.public_key
    hub = subprocess.Popen(  # noqa: ASYNC220 - a long-running process, read by a thread
        [*cli, "edge", "hub", "--nats", natsd.url, "--edge", "site1=cam-a,cam-b",
         "--beat", str(BEAT_S)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    nc = await nats.connect(natsd.url)
    try:
        assert hub.stdout is not None
        line = await anyio.to_thread.run_sync(hub.stdout.readline)
        assert "hub link: serving" in line, line
        edge = s.start_edge()
        await until(lambda: edge.said("edge site1: serving") or edge.proc.poll() is not None)
        stream = await open_when_served(nc, "cam-a", await s.grant("cam-a"))
        await read_packets(stream, 5)
        await anyio.run_process([*cli, "revoke", "--owner", "alice"])
        with pytest.raises(ConsentRevoked), anyio.fail_after(10):
            async for _packet in stream:
                pass
        acks = await until(s.acks, what="edge.ack written by the hub link process")
        assert acks[0]["camera"] == "cam-a"
    finally:
        await nc.close()
        hub.terminate()
        hub.wait(timeout=20)
        if s.edge is not None:
            s.edge.stop()
        await s.gate.aclose()


@pytest.mark.anyio
async def test_an_edge_whose_identity_is_taken_meanwhile_stops_serving(site: Site) -> None:
    """Another edge takes the id while this one runs (its lease entry replaced): at its next
    renewal this edge ends its streams and exits with the reason."""
    edge = site.edge
    assert edge is not None
    nc = await nats.connect(site.natsd.url)
    try:
        stream = await open_when_served(nc, "cam-a", await site.grant("cam-a"))
        await read_packets(stream, 3)
        kv = await nc.jetstream().key_value(LEASE_BUCKET)
        await kv.delete("site1")
        await kv.create("site1", b'{"edge": "site1", "impostor": true}')
        with pytest.raises(ConsentRevoked), anyio.fail_after(15):
            async for _packet in stream:
                pass
        code = await anyio.to_thread.run_sync(lambda: edge.proc.wait(timeout=15))
    finally:
        await nc.close()
    assert code == 1
    assert edge.said("was taken by another edge"), edge.lines
    # It left the other edge's lease alone.
    entry = await _lease(site.natsd.url)
    assert b"impostor" in entry


async def _lease(url: str) -> bytes:
    nc = await nats.connect(url)
    try:
        entry = await (await nc.jetstream().key_value(LEASE_BUCKET)).get("site1")
        return entry.value or b""
    finally:
        await nc.close()
