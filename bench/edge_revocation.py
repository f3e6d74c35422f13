"""Revocation from the hub to a live stream on a remote edge over NATS, against in-process.

A real nats-server (JetStream), a real GStreamer RTSP camera, the hub's gate with its NATS link
(camgate.edgenet.HubLink) in this process, and the edge as a separate process (``camgate edge
serve``) with its own store. Each remote trial enrols Alice's camera, grants live access, opens
the stream on the edge over NATS (packets carried over NATS to this process), reads a random
number of packets, then revokes on the hub. Measured:

- ``remote.to_consumer``: revoke() called → the remote stream's iteration raises ConsentRevoked
  (the hub link saw the commit, published the signed state, the edge applied it, ended the
  stream and told the consumer);
- ``remote.to_ack``: revoke() called → the edge's acknowledgement is in the hub's audit log.

Baseline in the same run, interleaved trial by trial: the in-process revocation (the hub's own
edge, the same camera): revoke() called → the consumer's ConsentRevoked.

Usage: uv run python bench/edge_revocation.py [--trials 50]
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
import nats

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import summary, write_result
from camgate import Camera, ConsentRevoked, ConsentTerms, Gate, GeoPoint, Owner, Waiver
from camgate.edgenet import HubLink, RemoteStream, open_remote_live
from camgate.store import Store
from camgate.testing.natsserver import NatsServer
from camgate_rtsp.testing.server import Mount, RtspTestServer

HOME = GeoPoint(32.2988, -90.1848)


def enrol(gate: Gate, waiver: Waiver) -> None:
    gate.enrol(
        "alice",
        ["cam-a"],
        waiver_version=waiver.version,
        waiver_sha256=waiver.sha256,
        terms=ConsentTerms(scopes=["live"]),
    )


async def open_remote(nc: Any, token: Any) -> RemoteStream:
    """Open on the edge, retrying while it has not heard of the new consent yet (a refusal
    before redemption leaves the grant unused)."""
    deadline = time.monotonic() + 20
    while True:
        try:
            return await open_remote_live(nc, "site1", "cam-a", token)
        except ConsentRevoked:
            if time.monotonic() > deadline:
                raise
            await anyio.sleep(0.02)


async def revoke_during(gate: Gate, stream: Any, packets: int) -> tuple[float, float]:
    """Read ``packets`` packets, then revoke at a random point between packets; when revoke()
    was called, and the time from then to the consumer's ConsentRevoked."""
    seen = 0
    async for _packet in stream:
        seen += 1
        if seen == packets:
            break
    ended = 0.0

    async def consume() -> None:
        nonlocal ended
        try:
            async for _packet in stream:
                pass
        except ConsentRevoked:
            ended = time.monotonic()

    async with anyio.create_task_group() as tg:
        tg.start_soon(consume)
        await anyio.sleep(random.uniform(0, 0.066))
        started = time.monotonic()
        await gate.revoke("alice")
    await stream.aclose()
    if not ended:
        why = getattr(stream, "end_reason", None) or stream.stats().end_reason
        raise RuntimeError(f"the stream did not end for the revocation: it ended {why}")
    return started, ended - started


async def main_async(trials: int) -> None:
    with (
        RtspTestServer([Mount("/cam1", gop_frames=30)]) as server,
        NatsServer() as natsd,
        tempfile.TemporaryDirectory() as tmp,
    ):
        gate = Gate.open(Path(tmp) / "hub.db")
        waiver = gate.publish_waiver(Waiver("w1", "I agree."))
        camera = Camera(
            id="cam-a", adapter="rtsp", source=server.url("/cam1"), owner_id="alice", position=HOME
        )
        gate.add_owner(Owner("alice", "Alice"))
        gate.add_camera(camera)
        edge_db = Path(tmp) / "edge.sqlite"
        store = Store(edge_db)
        store.add_owner(Owner("alice", "Alice"))
        store.add_camera(camera)
        store.close()
        incident = gate.report_incident("burglary", HOME, radius_m=200)
        link = HubLink(gate, natsd.url, {"site1": ["cam-a"]})
        edge = subprocess.Popen(  # noqa: ASYNC220 - started once, before any trial
            [
                sys.executable, "-m", "camgate.cli", "--db", str(edge_db), "edge", "serve",
                "--id", "site1", "--nats", natsd.url, "--hub-key", gate.public_key.hex(),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        remote, acks, local = [], [], []
        nc = await nats.connect(natsd.url)
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(link.run)
                assert edge.stdout is not None
                line = await anyio.to_thread.run_sync(edge.stdout.readline)
                if "serving" not in line:
                    raise RuntimeError(f"the edge did not start: {line!r}")
                for i in range(trials):
                    # remote: hub -> NATS -> edge process
                    enrol(gate, waiver)
                    token = await gate.request_access(
                        incident.id, "cam-a", "live", requested_by="bench", duration_s=60
                    )
                    stream = await open_remote(nc, token)
                    before = link.acks
                    started, took = await revoke_during(gate, stream, random.randint(3, 20))
                    remote.append(took)
                    await link.wait_for_acks(before + 1)
                    acks.append(time.monotonic() - started)
                    # baseline: in-process, the hub's own edge
                    enrol(gate, waiver)
                    token = await gate.request_access(
                        incident.id, "cam-a", "live", requested_by="bench", duration_s=60
                    )
                    here = await gate.edge.open_live("cam-a", token)
                    local.append((await revoke_during(gate, here, random.randint(3, 20)))[1])
                    print(
                        f"trial {i + 1}/{trials}: remote {remote[-1] * 1000:.1f} ms "
                        f"(ack {acks[-1] * 1000:.1f} ms), in-process {local[-1] * 1000:.1f} ms",
                        file=sys.stderr,
                    )
                tg.cancel_scope.cancel()
        finally:
            await nc.close()
            edge.terminate()
            edge.wait(timeout=30)
            await gate.aclose()
    budget_ms = 100.0
    rem = summary(remote)
    base = summary(local)
    write_result(
        "edge_revocation",
        {
            "what": "revoke() on the hub -> live stream ended on a remote edge process over NATS "
            "(JetStream, loopback), real GStreamer RTSP camera 640x360@30 H.264",
            "budget_p99_ms": budget_ms,
            "remote": {
                "to_consumer": rem,
                "to_ack_recorded": summary(acks),
            },
            "baseline": {"in_process_to_consumer": base},
            "ratio_remote_vs_in_process_median": round(
                rem["median_ms"] / max(base["median_ms"], 1e-6), 2
            ),
            "within_budget": rem["p99_ms"] <= budget_ms,
        },
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=50)
    args = parser.parse_args()
    anyio.run(main_async, args.trials)


if __name__ == "__main__":
    main()
