"""Access requests per second over HTTP against the same requests made in-process.

One store: ``--cameras`` cameras (default 200) of as many owners, each enrolled pre-authorised
for live view, near one open incident. Measured in one run, at 1, 16 and 64 concurrent clients,
interleaved level by level on two copies of that store:

- ``http``: ``POST /incidents/{id}/requests`` (the decision, its audit records, the grant) to
  ``camgate serve`` running as its own process on loopback (uvicorn, one worker, access log on
  as shipped), by clients sharing one keep-alive pool, authenticated with an API token;
- ``in_process``: ``await Gate.request_access(...)`` with the same arguments, the same number
  of concurrent tasks, in this process (the baseline: what an agency embedding camgate pays).

Each level sends ``--requests`` requests (default 400) round-robin over the cameras; every one
is granted (checked). Reported per level and path: requests per second (wall time of the level),
the latency of each request (median, p95, p99), and HTTP's share of the in-process rate.

Usage: uv run python bench/http_decisions.py [--cameras 200] [--requests 400]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import summary, write_result
from camgate import Camera, ConsentTerms, Gate, GeoPoint, Owner, Waiver
from camgate_server.accounts import AccountStore
from camgate_server.settings import ServerSettings

CENTRE = GeoPoint(32.2988, -90.1848)
LEVELS = (1, 16, 64)
PASSWORD = "a bench password, never used elsewhere"


def build(folder: Path, cameras: int) -> tuple[Path, str]:
    """The store (and the incident's id): cameras within 300 m of the incident."""
    db = folder / "city.db"
    gate = Gate.open(db)
    waiver = gate.publish_waiver(Waiver("bench-1", "I share my camera."))
    for i in range(cameras):
        owner = f"o{i}"
        gate.add_owner(Owner(owner, f"Owner {i}"))
        north = (i % 50) * 5.0
        east = (i // 50) * 0.00005
        gate.add_camera(
            Camera(
                id=f"c{i}",
                adapter="rtsp",
                source=f"rtsp://127.0.0.1:9/c{i}",
                owner_id=owner,
                position=GeoPoint(CENTRE.lat + north / 111_000, CENTRE.lon + east),
            )
        )
        gate.enrol(
            owner,
            [f"c{i}"],
            waiver_version=waiver.version,
            waiver_sha256=waiver.sha256,
            terms=ConsentTerms(scopes={"live"}),
        )
    incident = gate.report_incident("burglary", CENTRE, 1000.0)
    anyio.run(gate.aclose)
    return db, incident.id


async def run_level(
    concurrency: int, total: int, cameras: int, one: Any
) -> tuple[float, list[float]]:
    """``total`` calls of ``one(camera_id)`` by ``concurrency`` workers: (wall s, latencies)."""
    latencies: list[float] = []
    next_index = 0

    async def worker() -> None:
        nonlocal next_index
        while next_index < total:
            i = next_index
            next_index += 1
            t0 = time.perf_counter()
            await one(f"c{i % cameras}")
            latencies.append(time.perf_counter() - t0)

    start = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for _ in range(concurrency):
            tg.start_soon(worker)
    return time.perf_counter() - start, latencies


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def serve(db: Path) -> tuple[subprocess.Popen[bytes], str, str]:
    """``camgate serve`` on the store, and an API token of an operator that may request."""
    accounts = AccountStore(db.with_name("city.accounts.db"), settings=ServerSettings())
    operator = accounts.create_account("bench-operator", PASSWORD, "operator")
    _, token, _ = accounts.create_token(operator, "bench", ["requests:create"], 3600)
    accounts.close()
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "camgate.cli", "--db", str(db), "serve", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            httpx.get(f"{base}/openapi.json", timeout=5)
            return server, base, token
        except httpx.TransportError:
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("camgate serve did not start") from None
            time.sleep(0.05)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cameras", type=int, default=200)
    parser.add_argument("--requests", type=int, default=400)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="camgate-bench-") as tmp:
        folder = Path(tmp)
        (folder / "http").mkdir()
        (folder / "local").mkdir()
        db, incident = build(folder / "http", args.cameras)
        local_db = folder / "local" / "city.db"
        for f in db.parent.iterdir():
            shutil.copyfile(f, folder / "local" / f.name)
        server, base, token = serve(db)
        try:
            levels = anyio.run(
                _levels, base, token, local_db, incident, args.cameras, args.requests
            )
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=60)
    write_result(
        "http_decisions",
        {
            "what": "POST /incidents/{id}/requests (granted) over HTTP vs Gate.request_access "
            "in-process, same store and requests",
            "cameras": args.cameras,
            "requests_per_level": args.requests,
            "levels": levels,
        },
    )
    return 0


async def _levels(
    base: str, token: str, local_db: Path, incident: str, cameras: int, total: int
) -> dict[str, Any]:
    gate = Gate.open(local_db)
    headers = {"Authorization": f"Bearer {token}"}
    limits = httpx.Limits(max_connections=max(LEVELS), max_keepalive_connections=max(LEVELS))
    out: dict[str, Any] = {}
    try:
        async with httpx.AsyncClient(
            base_url=base, headers=headers, limits=limits, timeout=120
        ) as client:

            async def over_http(camera: str) -> None:
                answer = await client.post(
                    f"/incidents/{incident}/requests", json={"camera": camera, "scope": "live"}
                )
                if answer.status_code != 201:
                    raise RuntimeError(f"HTTP {answer.status_code}: {answer.text[:200]}")

            async def in_process(camera: str) -> None:
                await gate.request_access(incident, camera, "live", requested_by="bench")

            # Warm both paths (connections, caches) before measuring.
            await run_level(4, 40, cameras, over_http)
            await run_level(4, 40, cameras, in_process)
            for level in LEVELS:
                local_s, local_lat = await run_level(level, total, cameras, in_process)
                http_s, http_lat = await run_level(level, total, cameras, over_http)
                local_rps, http_rps = total / local_s, total / http_s
                out[str(level)] = {
                    "in_process": {"requests_per_s": round(local_rps, 1), **summary(local_lat)},
                    "http": {"requests_per_s": round(http_rps, 1), **summary(http_lat)},
                    "ratio_http_vs_in_process": round(http_rps / local_rps, 2),
                }
                print(f"{level:>3} clients: {out[str(level)]}", file=sys.stderr, flush=True)
    finally:
        await gate.aclose()
    return out


if __name__ == "__main__":
    os.environ.pop("CAMGATE_AUDIT_DSN", None)  # both paths on the store's own SQLite log
    sys.exit(main())
