"""``WS /live/{grant}`` for a camera behind a remote edge, every part a real process: a
nats-server (JetStream), a GStreamer RTSP camera, ``camgate edge serve`` with the camera's own
store, ``camgate edge hub`` reading which edge serves the camera from the registry (``camgate
edge assign``, made while it runs), and ``camgate serve --nats`` on loopback. The officer's socket
carries fMP4 that PyAV decodes; the owner's revocation over HTTP closes it with the revoked code;
with the edge down, a socket closes at once with EdgeUnreachable."""

from __future__ import annotations

import contextlib
import io
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import attrs
import av
import httpx
import pytest
from camgate import Camera, ConsentTerms, Gate, GeoPoint, Owner, Waiver
from camgate.audit import AuditLog
from camgate.store import Store
from camgate.testing import CliProcess, run_cli
from camgate.testing import wait_until as until
from camgate.testing.natsserver import NatsServer, server_for_tests
from camgate_rtsp.testing.server import RtspTestServer
from camgate_server.accounts import AccountStore
from camgate_server.live import CloseCode
from camgate_server.policy import Role
from camgate_server.settings import ServerSettings
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

pytestmark = pytest.mark.rtsp

HOME = GeoPoint(32.2988, -90.1848)
PASSWORD = "remote live password 0123456789"
STALENESS_S = 2.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@attrs.define
class World:
    """The hub's store and accounts, the edge's store, and the running processes."""

    tmp: Path
    natsd: NatsServer
    hub_key: bytes
    url: str = ""
    procs: dict[str, CliProcess] = attrs.field(factory=dict)

    @property
    def hub_db(self) -> Path:
        return self.tmp / "hub.db"

    def cli(self, *args: str) -> str:
        return run_cli("--db", str(self.hub_db), *args).stdout

    def start_edge(self) -> CliProcess:
        edge = self.procs["edge"] = CliProcess(
            "--db", str(self.tmp / "edge.sqlite"), "edge", "serve", "--id", "site1",
            "--nats", self.natsd.url, "--hub-key", self.hub_key.hex(),
            "--staleness", str(STALENESS_S),
        )  # fmt: skip
        edge.wait_said("edge site1: serving")
        return edge

    def login(self, username: str) -> tuple[httpx.Client, str]:
        client = httpx.Client(base_url=self.url, timeout=30)
        answer = client.post("/session", json={"username": username, "password": PASSWORD})
        assert answer.status_code == 200, answer.text
        return client, answer.json()["csrf_token"]

    def edge_records(self, kind: str) -> list[dict[str, Any]]:
        """The edge's own audit records of ``kind`` (read-only)."""
        store = Store(self.tmp / "edge.sqlite", read_only=True)
        try:
            log = AuditLog(store, read_only=True)
            try:
                return [r.body for r in log.records(kind)]
            finally:
                log.close()
        finally:
            store.close()


def _make_stores(tmp: Path, rtsp: RtspTestServer) -> bytes:
    """Alice's cam-a and Bob's cam-b (live, pre-authorised) on the hub, whose registry has no
    way to them (a closed port), and at the edge's site, where they really are; the accounts:
    an operator and Alice. The hub's key."""
    gate = Gate.open(tmp / "hub.db")
    edge_store = Store(tmp / "edge.sqlite")
    waiver = gate.publish_waiver(Waiver("w1", "I agree to share my camera."))
    for owner, cam in (("alice", "cam-a"), ("bob", "cam-b")):
        camera = Camera(id=cam, adapter="rtsp", source=rtsp.url("/cam1"), owner_id=owner,
                        position=HOME)  # fmt: skip
        for store in (gate.store, edge_store):
            store.add_owner(Owner(owner, owner.title()))
        gate.add_camera(attrs.evolve(camera, source=f"rtsp://127.0.0.1:9/{cam}"))
        edge_store.add_camera(camera)
        gate.enrol(owner, [cam], waiver_version="w1", waiver_sha256=waiver.sha256,
                   terms=ConsentTerms(scopes=["live", "snapshot"]))  # fmt: skip
    key = gate.public_key
    edge_store.close()
    anyio.run(gate.aclose)
    accounts = AccountStore(tmp / "hub.accounts.db", settings=ServerSettings(secure_cookies=False))
    try:
        accounts.create_account("operator", PASSWORD, Role.OPERATOR)
        accounts.create_account("alice", PASSWORD, Role.OWNER, owner_id="alice")
    finally:
        accounts.close()
    return key


@pytest.fixture
def world(tmp_path: Path, hub_camera: RtspTestServer) -> Iterator[World]:
    with server_for_tests() as natsd:
        w = World(tmp_path, natsd, _make_stores(tmp_path, hub_camera))
        try:
            hub = w.procs["hub"] = CliProcess("--db", str(w.hub_db), "edge", "hub",
                                        "--nats", natsd.url, "--beat", "0.2")  # fmt: skip
            hub.wait_said("hub link: serving")
            port = _free_port()
            server = w.procs["serve"] = CliProcess(
                "--db", str(w.hub_db), "serve", "--port", str(port), "--insecure-cookies",
                "--accounts", str(tmp_path / "hub.accounts.db"), "--nats", natsd.url,
            )  # fmt: skip
            server.wait_said("Uvicorn running")
            w.url = f"http://127.0.0.1:{port}"
            yield w
        finally:
            for proc in reversed(w.procs.values()):
                proc.stop()


def _grant(officer: httpx.Client, csrf: str, camera: str, scope: str = "live") -> str:
    headers = {"X-CSRF-Token": csrf}
    incident = officer.post("/incidents", headers=headers, json={
        "kind": "burglary", "lat": HOME.lat, "lon": HOME.lon, "radius_m": 300})  # fmt: skip
    assert incident.status_code == 201, incident.text
    asked = officer.post(f"/incidents/{incident.json()['id']}/requests", headers=headers,
                         json={"camera": camera, "scope": scope, "duration_s": 120})  # fmt: skip
    assert asked.status_code == 201, asked.text
    return str(asked.json()["grant"]["id"])


def _socket(w: World, cookie: str, grant_id: str) -> ClientConnection:
    url = w.url.replace("http://", "ws://") + f"/live/{grant_id}"
    return connect(url, additional_headers={"Cookie": cookie, "Origin": w.url},
                   open_timeout=30, max_size=None)  # fmt: skip


@contextlib.contextmanager
def _fresh_socket(w: World, cookie: str, grant_id: str) -> Iterator[tuple[ClientConnection, bytes]]:
    """A socket and its first message, opened again while the edge refuses as not yet up to
    date (EdgeStale, before it redeems the grant: the grant is not used up)."""
    deadline = time.monotonic() + 30
    while True:
        with _socket(w, cookie, grant_id) as ws:
            try:
                first = ws.recv(timeout=30)
            except ConnectionClosed:
                assert (ws.close_code, ws.close_reason) == (CloseCode.REVOKED, "EdgeStale")
            else:
                assert isinstance(first, bytes)
                yield ws, first
                return
        assert time.monotonic() < deadline, "the edge never came up to date"
        time.sleep(0.1)


def _until_closed(ws: ClientConnection) -> list[bytes | str]:
    """What the server still sends until it closes the socket (each message within 30 s)."""
    got: list[bytes | str] = []
    with contextlib.suppress(ConnectionClosed):
        while True:
            got.append(ws.recv(timeout=30))
    return got


def test_a_remote_edges_camera_over_the_live_socket_until_its_owner_revokes(
    world: World, tmp_path: Path
) -> None:
    w = world
    w.start_edge()
    # Assigned while the hub's link runs: it reads the registry and tells the edge.
    assert "site1: serves cam-a, cam-b" in w.cli("edge", "assign", "site1", "cam-a", "cam-b")
    assert json.loads(w.cli("edge", "list")) == {"cam-a": "site1", "cam-b": "site1"}
    officer, csrf = w.login("operator")
    alice, alice_csrf = w.login("alice")
    cookie = f"camgate_session={officer.cookies['camgate_session']}"
    grant_id = _grant(officer, csrf, "cam-a")
    with _fresh_socket(w, cookie, grant_id) as (ws, init):
        media = [ws.recv(timeout=30) for _ in range(20)]
        # The edge verified the grant offline and audited the access in its own log.
        started = w.edge_records("access.start")
        assert [s["camera"] for s in started] == ["cam-a"]
        path = tmp_path / "remote.mp4"
        path.write_bytes(init + b"".join(m for m in media if isinstance(m, bytes)))
        with av.open(str(path)) as container:
            assert container.streams.video[0].codec_context.name == "h264"
            assert sum(1 for _ in container.decode(video=0)) >= 10
        # The owner revokes over HTTP: the hub's link tells the edge, which ends the stream.
        revoked = alice.post("/owners/me/revoke", headers={"X-CSRF-Token": alice_csrf})
        assert revoked.status_code == 200, revoked.text
        _until_closed(ws)
        assert (ws.close_code, ws.close_reason) == (CloseCode.REVOKED, "ConsentRevoked")
    ends = until(lambda: w.edge_records("access.end"))
    assert ends[0]["reason"] == "revoked"
    # A second socket on the same grant: the edge redeemed it once.
    with _socket(w, cookie, grant_id) as again:
        assert _until_closed(again) == []
        assert again.close_code in (CloseCode.USED, CloseCode.REVOKED), again.close_reason
    officer.close()
    alice.close()


def test_a_snapshot_through_the_edge_and_with_the_edge_down_a_clear_refusal(
    world: World,
) -> None:
    """``GET /grants/{id}/snapshot`` of a camera behind the edge: the edge's masked, audited
    JPEG. Then, the edge stopped: a snapshot is 502 and a live socket closes at once with 4007,
    both ``EdgeUnreachable``."""
    w = world
    edge = w.start_edge()
    w.cli("edge", "assign", "site1", "cam-b")
    officer, csrf = w.login("operator")
    cookie = f"camgate_session={officer.cookies['camgate_session']}"
    url = f"/grants/{_grant(officer, csrf, 'cam-b', 'snapshot')}/snapshot"

    def fetched() -> httpx.Response | None:  # again while the edge is not up to date yet
        answer = officer.get(url)
        stale = answer.status_code != 200 and answer.json().get("error") == "EdgeStale"
        return None if stale else answer

    got = until(fetched)
    assert got.status_code == 200, got.text
    assert got.headers["content-type"] == "image/jpeg"
    with av.open(io.BytesIO(got.content)) as container:
        picture = next(container.decode(video=0))
        assert picture.width > 0
    (ended,) = w.edge_records("access.end")
    assert ended["sha256"] == got.headers["X-Camgate-Sha256"]  # audited at the edge
    edge.stop()
    url = f"/grants/{_grant(officer, csrf, 'cam-b', 'snapshot')}/snapshot"
    down = officer.get(url)
    assert (down.status_code, down.json()["error"]) == (502, "EdgeUnreachable")
    asked = time.monotonic()
    with _socket(w, cookie, _grant(officer, csrf, "cam-b")) as ws:
        assert _until_closed(ws) == []
        assert (ws.close_code, ws.close_reason) == (CloseCode.CAMERA_ENDED, "EdgeUnreachable")
    assert time.monotonic() - asked < 10  # NATS says at once that no edge listens
    officer.close()
