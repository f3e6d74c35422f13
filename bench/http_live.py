"""Revocation over HTTP: from the owner's ``POST /owners/me/revoke`` to the close of an officer's
``WS /live/{grant}``, over N trials, against the in-process revocation in the same run.

Each HTTP trial re-enrols Alice's camera, has the officer ask for a live grant over HTTP, opens
the live socket (the real GStreamer RTSP server behind the gate, uvicorn on loopback, the
``websockets`` client), reads a random number of fMP4 segments, waits a random fraction of a
frame interval, then Alice revokes over HTTP. Measured:

- ``to_socket_closed``: the POST is sent → the close frame (code 4001) is received;
- ``to_post_answered``: the POST is sent → its 200 answer is received.

Baseline in the same run and process, same camera: ``Gate.revoke`` called in-process → the
guarded stream's consumer gets ``ConsentRevoked`` (``bench/revocation.py``'s trial, its
``to_consumer``): everything above it is the HTTP API's and the WebSocket's share.

Usage: uv run python bench/http_live.py [--trials 50]
"""

from __future__ import annotations

import argparse
import random
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

import anyio
import httpx
import uvicorn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import summary, write_result
from camgate import Camera, ConsentTerms, Gate, GeoPoint, Owner, Waiver
from camgate_rtsp.testing.server import Mount, RtspTestServer
from camgate_server.accounts import AccountStore
from camgate_server.app import create_app
from camgate_server.settings import ServerSettings
from revocation import trial as revocation_trial
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

HOME = GeoPoint(32.2988, -90.1848)
PASSWORD = "bench password 12345"
SETTINGS = ServerSettings(secure_cookies=False)
WAIVER = Waiver("w1", "I agree.")


def _world(tmp: Path, url: str) -> Gate:
    gate = Gate.open(tmp / "bench.db")
    gate.publish_waiver(WAIVER)
    gate.add_owner(Owner("alice", "Alice"))
    gate.add_camera(Camera(id="cam-a", adapter="rtsp", source=url, owner_id="alice",
                           position=HOME))  # fmt: skip
    return gate


def _enrol(gate: Gate) -> None:
    gate.enrol("alice", ["cam-a"], waiver_version=WAIVER.version, waiver_sha256=WAIVER.sha256,
               terms=ConsentTerms(scopes=["live"]))  # fmt: skip


class Server:
    """The app under uvicorn on 127.0.0.1 in a thread (as server/tests' fixture runs it)."""

    def __init__(self, gate: Gate, accounts: AccountStore) -> None:
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self.base = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        config = uvicorn.Config(create_app(gate, accounts, SETTINGS), log_level="warning")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )

    def __enter__(self) -> Server:
        self._thread.start()
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=30)
        self._sock.close()


def _login(base: str, username: str) -> tuple[httpx.Client, dict[str, str]]:
    client = httpx.Client(base_url=base, timeout=30)
    answer = client.post("/session", json={"username": username, "password": PASSWORD})
    answer.raise_for_status()
    return client, {"X-CSRF-Token": answer.json()["csrf_token"]}


def _read_until_closed(ws: ClientConnection, closed_at: list[float]) -> None:
    try:
        while True:
            ws.recv(timeout=30)
    except ConnectionClosed:
        closed_at.append(time.monotonic())


def http_trials(gate: Gate, accounts: AccountStore, trials: int) -> dict[str, list[float]]:
    to_close: list[float] = []
    to_answer: list[float] = []
    with Server(gate, accounts) as server:
        officer, officer_csrf = _login(server.base, "officer")
        alice, alice_csrf = _login(server.base, "alice")
        incident = officer.post(
            "/incidents",
            json={"kind": "burglary", "lat": HOME.lat, "lon": HOME.lon, "radius_m": 200},
            headers=officer_csrf,
        ).json()["id"]
        ws_base = server.base.replace("http://", "ws://")
        cookie = f"camgate_session={officer.cookies['camgate_session']}"
        for i in range(trials):
            _enrol(gate)
            asked = officer.post(
                f"/incidents/{incident}/requests",
                json={"camera": "cam-a", "scope": "live", "duration_s": 120},
                headers=officer_csrf,
            )
            asked.raise_for_status()
            grant = asked.json()["grant"]["id"]
            headers = {"Cookie": cookie, "Origin": server.base}
            with connect(f"{ws_base}/live/{grant}", additional_headers=headers) as ws:
                for _ in range(random.randint(2, 4)):  # the init segment, then video
                    ws.recv(timeout=30)
                closed_at: list[float] = []

                def read_until_closed(
                    ws: ClientConnection = ws, out: list[float] = closed_at
                ) -> None:
                    try:
                        while True:
                            ws.recv(timeout=30)
                    except ConnectionClosed:
                        out.append(time.monotonic())

                reader = threading.Thread(target=read_until_closed)
                reader.start()  # the close frame is timed as it arrives, not after the POST
                time.sleep(random.uniform(0, 0.033))  # anywhere in a frame interval
                sent = time.monotonic()
                answer = alice.post("/owners/me/revoke", headers=alice_csrf)
                answered = time.monotonic()
                answer.raise_for_status()
                reader.join(timeout=60)
                if not closed_at or ws.close_code != 4001:
                    raise RuntimeError(f"closed with {ws.close_code} {ws.close_reason}")
                closed = closed_at[0]
            to_close.append(closed - sent)
            to_answer.append(answered - sent)
            print(
                f"trial {i + 1}/{trials}: socket closed {(closed - sent) * 1000:.1f} ms, "
                f"POST answered {(answered - sent) * 1000:.1f} ms",
                file=sys.stderr,
            )
        officer.close()
        alice.close()
    return {"to_socket_closed": to_close, "to_post_answered": to_answer}


async def in_process_trials(gate: Gate, trials: int) -> list[float]:
    """Gate.revoke in-process → the consumer's ConsentRevoked (the baseline): the trial of
    bench/revocation.py (``to_consumer``) on the same camera."""
    incident = gate.report_incident("burglary", HOME, radius_m=200)
    return [
        (await revocation_trial(gate, incident.id, WAIVER, random.randint(3, 20), False))[0]
        for _ in range(trials)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=50)
    args = parser.parse_args()
    mount = Mount("/cam1", width=640, height=360, fps=30, gop_frames=30)
    with RtspTestServer([mount]) as rtsp, tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        accounts = AccountStore(folder / "bench.accounts.db", settings=SETTINGS)
        accounts.create_account("officer", PASSWORD, "operator")
        accounts.create_account("alice", PASSWORD, "owner", owner_id="alice")
        gate = _world(folder, rtsp.url("/cam1"))
        try:
            http = http_trials(gate, accounts, args.trials)
        finally:
            anyio.run(gate.aclose)
        (folder / "base").mkdir()
        base_gate = _world(folder / "base", rtsp.url("/cam1"))

        async def baseline() -> list[float]:
            try:
                return await in_process_trials(base_gate, args.trials)
            finally:
                await base_gate.aclose()

        in_process = anyio.run(baseline)
        accounts.close()
    budget_ms = 500.0
    closed = summary(http["to_socket_closed"])
    base = summary(in_process)
    write_result(
        "http_live",
        {
            "what": "POST /owners/me/revoke -> WS /live/{grant} closed (4001), uvicorn on "
            "loopback, real GStreamer RTSP server, 640x360@30 H.264, GOP 1 s",
            "budget_ms": budget_ms,
            "camgate_http": {
                "to_socket_closed": closed,
                "to_post_answered": summary(http["to_post_answered"]),
            },
            "baseline": {"in_process_revoke_to_consumer": base},
            "ratio_socket_closed_vs_in_process_median": round(
                closed["median_ms"] / max(base["median_ms"], 1e-6), 1
            ),
            "within_budget": closed["p99_ms"] <= budget_ms,
        },
    )


if __name__ == "__main__":
    main()
