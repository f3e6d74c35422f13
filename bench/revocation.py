"""Revocation latency: from the owner's revoke to the end of a live stream, over N trials.

Each trial enrols Alice's camera, grants live access, opens the stream from the real GStreamer
RTSP server, reads a random number of packets, then revokes. Measured:

- ``to_consumer``: revoke() called → the consumer's iteration raises ConsentRevoked;
- ``to_closed``: revoke() called → the RTSP connection to the camera is closed;
- ``to_return``: revoke() called → revoke() returns (closed, durable, audited, owner notified);
- ``cross_process``: the revocation made by another process (``camgate revoke``), seen by the
  guard's store poll → the consumer's ConsentRevoked (measured from the CLI's commit).

Baseline in the same run: the time to close the same RTSP session directly with PyAV
(``container.close()`` from the reading thread), i.e. the floor for closing a connection.

Usage: uv run python bench/revocation.py [--trials 50]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import threading
import time
from pathlib import Path

import anyio
import av

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import summary, write_result
from camgate import Camera, ConsentRevoked, ConsentTerms, Gate, GeoPoint, Owner, Waiver
from camgate_rtsp.testing.server import Mount, RtspTestServer

HOME = GeoPoint(32.2988, -90.1848)


async def trial(
    gate: Gate, incident_id: str, waiver: Waiver, packets: int, cross_process: bool
) -> tuple[float, float, float]:
    gate.enrol(
        "alice",
        ["cam-a"],
        waiver_version=waiver.version,
        waiver_sha256=waiver.sha256,
        terms=ConsentTerms(scopes=["live"]),
    )
    signed = await gate.request_access(
        incident_id, "cam-a", "live", requested_by="bench", duration_s=60
    )
    stream = await gate.edge.open_live("cam-a", signed)
    seen = 0
    started = ended = returned = 0.0
    try:
        async for _packet in stream:
            seen += 1
            if seen == packets:
                break
        if cross_process:
            env = {k: v for k, v in os.environ.items() if not k.startswith("CAMGATE_")}
            await anyio.run_process(
                [
                    sys.executable,
                    "-m",
                    "camgate.cli",
                    "--db",
                    str(gate.store.path),
                    "revoke",
                    "--owner",
                    "alice",
                ],
                env=env,
            )
            started = time.monotonic()  # the revocation is committed now
            try:
                async for _packet in stream:
                    pass
            except ConsentRevoked:
                ended = time.monotonic()
            returned = ended
        else:

            async def consume() -> None:
                nonlocal ended
                try:
                    async for _packet in stream:
                        pass
                except ConsentRevoked:
                    ended = time.monotonic()

            async with anyio.create_task_group() as tg:
                tg.start_soon(consume)
                await anyio.sleep(random.uniform(0, 0.066))  # land anywhere between packets
                started = time.monotonic()
                await gate.revoke("alice")
                returned = time.monotonic()
    finally:
        await stream.aclose()
    closed = (stream.closed_at or returned) - started
    return ended - started, closed, returned - started


def pyav_close_baseline(url: str, trials: int) -> list[float]:
    """Time for PyAV itself to close a reading RTSP session (signal → container closed)."""
    out = []

    def run(ready: threading.Event, stop: threading.Event, closed: threading.Event) -> None:
        c = av.open(url, options={"rtsp_transport": "tcp"})
        for i, _p in enumerate(c.demux(c.streams.video[0])):
            if i == 5:
                ready.set()
            if stop.is_set():
                break
        c.close()
        closed.set()

    for _ in range(trials):
        ready, stop, closed = threading.Event(), threading.Event(), threading.Event()
        t = threading.Thread(target=run, args=(ready, stop, closed))
        t.start()
        ready.wait(10)
        time.sleep(random.uniform(0, 0.066))
        t0 = time.monotonic()
        stop.set()
        closed.wait(10)
        out.append(time.monotonic() - t0)
        t.join()
    return out


async def main_async(trials: int, cross_trials: int) -> None:
    with (
        RtspTestServer([Mount("/cam1", gop_frames=30)]) as server,
        tempfile.TemporaryDirectory() as tmp,
    ):
        gate = Gate.open(Path(tmp) / "bench.db")
        waiver = gate.publish_waiver(Waiver("w1", "I agree."))
        gate.add_owner(Owner("alice", "Alice"))
        gate.add_camera(
            Camera(
                id="cam-a",
                adapter="rtsp",
                source=server.url("/cam1"),
                owner_id="alice",
                position=HOME,
            )
        )
        incident = gate.report_incident("burglary", HOME, radius_m=200)
        to_consumer, to_closed, to_return, cross = [], [], [], []
        for i in range(trials):
            a, b, c = await trial(gate, incident.id, waiver, random.randint(3, 20), False)
            to_consumer.append(a)
            to_closed.append(b)
            to_return.append(c)
            print(
                f"trial {i + 1}/{trials}: consumer {a * 1000:.2f} ms, "
                f"closed {b * 1000:.2f} ms, returned {c * 1000:.2f} ms",
                file=sys.stderr,
            )
        for i in range(cross_trials):
            a, _, _ = await trial(gate, incident.id, waiver, random.randint(3, 20), True)
            cross.append(a)
            print(f"cross-process {i + 1}/{cross_trials}: {a * 1000:.2f} ms", file=sys.stderr)
        await gate.aclose()
        baseline = pyav_close_baseline(server.url("/cam1"), min(trials, 30))
    budget_ms = 500.0
    closed = summary(to_closed)
    write_result(
        "revocation",
        {
            "what": "revoke() -> live stream ended, real GStreamer RTSP server, 640x360@30 H.264",
            "budget_ms": budget_ms,
            "camgate": {
                "to_consumer": summary(to_consumer),
                "to_connection_closed": closed,
                "to_revoke_returned": summary(to_return),
                "cross_process_to_consumer": summary(cross) if cross else None,
            },
            "baseline": {"pyav_close_reading_session": summary(baseline)},
            "ratio_closed_vs_pyav_close_median": round(
                closed["median_ms"] / max(summary(baseline)["median_ms"], 1e-6), 2
            ),
            "within_budget": closed["p99_ms"] <= budget_ms,
        },
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=50)
    parser.add_argument("--cross-trials", type=int, default=20)
    args = parser.parse_args()
    anyio.run(main_async, args.trials, args.cross_trials)


if __name__ == "__main__":
    main()
