"""Two ``camgate serve --db postgresql://…`` hubs on one database, as behind a load balancer:
an account made through hub A signs in there, and its session cookie works on hub B; the owner
revokes on B and the officer's live socket on A (a real RTSP camera) ends at once.

Both hubs are real processes (uvicorn on loopback, ports the OS chose) sharing one real
PostgreSQL database; their local files (the hub key, the audit seal) share one folder."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from camgate import Camera, ConsentTerms, Gate, GeoPoint, Owner, Waiver
from camgate.testing import CliProcess
from camgate_rtsp.testing.server import RtspTestServer
from camgate_server.accounts import AccountStore
from camgate_server.live import CloseCode
from camgate_server.policy import Role
from camgate_server.settings import ServerSettings
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

pytestmark = pytest.mark.rtsp

HOME = GeoPoint(32.2988, -90.1848)
PASSWORD = "two servers password 0123456789"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _setup(dsn: str, rtsp: RtspTestServer) -> None:
    """Alice's cam-a (live, pre-authorised) in the shared store; the agency's admin, and
    Alice's owner account, in the shared accounts tables."""
    gate = Gate.open(dsn)
    try:
        waiver = gate.publish_waiver(Waiver("w1", "I agree to share my camera."))
        gate.add_owner(Owner("alice", "Alice"))
        gate.add_camera(Camera(id="cam-a", adapter="rtsp", source=rtsp.url("/cam1"),
                               owner_id="alice", position=HOME))  # fmt: skip
        gate.enrol("alice", ["cam-a"], waiver_version="w1", waiver_sha256=waiver.sha256,
                   terms=ConsentTerms(scopes=["live"]))  # fmt: skip
    finally:
        anyio.run(gate.aclose)
    accounts = AccountStore(dsn, settings=ServerSettings(secure_cookies=False))
    try:
        accounts.create_account("admin", PASSWORD, Role.ADMIN)
        accounts.create_account("alice", PASSWORD, Role.OWNER, owner_id="alice")
    finally:
        accounts.close()


@pytest.fixture
def hubs(
    tmp_path: Path, postgres: Any, hub_camera: RtspTestServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[str, str]]:
    """The base URLs of hub A and hub B."""
    monkeypatch.chdir(tmp_path)  # local files of a PostgreSQL store: the working directory
    monkeypatch.delenv("CAMGATE_HOME", raising=False)
    dsn = str(postgres.create_database())
    _setup(dsn, hub_camera)
    procs: list[CliProcess] = []
    urls = []
    try:
        for _ in "AB":
            port = _free_port()
            proc = CliProcess("--db", dsn, "serve", "--port", str(port), "--insecure-cookies")
            procs.append(proc)
            urls.append(f"http://127.0.0.1:{port}")
        for proc in procs:
            proc.wait_said("Uvicorn running")
        yield urls[0], urls[1]
    finally:
        for proc in procs:
            proc.stop()


def _login(url: str, username: str) -> tuple[httpx.Client, str]:
    client = httpx.Client(base_url=url, timeout=30)
    answer = client.post("/session", json={"username": username, "password": PASSWORD})
    assert answer.status_code == 200, answer.text
    return client, str(answer.json()["csrf_token"])


def test_an_account_made_on_hub_a_signs_in_and_is_revoked_through_hub_b(
    hubs: tuple[str, str],
) -> None:
    a, b = hubs
    admin, admin_csrf = _login(a, "admin")
    body = {"username": "officer", "password": PASSWORD, "role": "operator"}
    made = admin.post("/accounts", headers={"X-CSRF-Token": admin_csrf}, json=body)
    assert made.status_code == 201, made.text
    officer, csrf = _login(a, "officer")
    session = officer.cookies["camgate_session"]
    cookie = f"camgate_session={session}"
    with httpx.Client(base_url=b, timeout=30) as on_b:
        me = on_b.get("/session", headers={"Cookie": cookie})
        assert me.status_code == 200, me.text
        assert me.json()["account"]["username"] == "officer"
        assert on_b.get("/session").status_code == 401  # B judges by the cookie, not by luck

    headers = {"X-CSRF-Token": csrf}
    incident = officer.post("/incidents", headers=headers, json={
        "kind": "burglary", "lat": HOME.lat, "lon": HOME.lon, "radius_m": 300})  # fmt: skip
    assert incident.status_code == 201, incident.text
    asked = officer.post(f"/incidents/{incident.json()['id']}/requests", headers=headers,
                         json={"camera": "cam-a", "scope": "live", "duration_s": 120})  # fmt: skip
    assert asked.status_code == 201, asked.text
    live = a.replace("http://", "ws://") + f"/live/{asked.json()['grant']['id']}"
    alice, alice_csrf = _login(b, "alice")
    with connect(live, additional_headers={"Cookie": cookie, "Origin": a},
                 open_timeout=30, max_size=None) as ws:  # fmt: skip
        for _ in range(5):  # media flows on A
            assert isinstance(ws.recv(timeout=30), bytes)
        revoked = alice.post("/owners/me/revoke", headers={"X-CSRF-Token": alice_csrf})
        assert revoked.status_code == 200, revoked.text
        deadline = time.monotonic() + 30
        with contextlib.suppress(ConnectionClosed):
            while time.monotonic() < deadline:
                ws.recv(timeout=30)
        assert (ws.close_code, ws.close_reason) == (CloseCode.REVOKED, "ConsentRevoked")
    # Logging out on B ends the session A issued.
    with httpx.Client(base_url=b, timeout=30) as on_b:
        out = on_b.delete("/session", headers={"Cookie": cookie, "X-CSRF-Token": csrf})
        assert out.status_code == 204, out.text
    assert officer.get("/session").status_code == 401
    for client in (admin, officer, alice):
        client.close()
