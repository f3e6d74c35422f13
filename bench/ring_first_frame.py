"""Ring (Partner API, WHEP): time to the first decoded frame with and without a keyframe
request on join, and revocation to the peer connection closed at Ring, against the simulated
Ring (camgate_ring.testing) in the same run.

The simulator's WHEP peer (aiortc, its own process) sends 320x240@15 H.264 with a keyframe every
2 s of the camera's clock, and each viewer joins at a random point of that interval (as a viewer
of a running camera does). Measured per trial, from the call to ``RingAdapter.open_live`` (offer
with ICE gathered, POST with the bearer token, answer, ICE, DTLS, first keyframe) until PyAV has
decoded a picture from the first packet handed over:

- ``keyframe_request``: camgate's default (``keyframe_on_join``), an RTCP PLI as soon as the
  first packet shows the peer;
- ``no_request``: ``keyframe_on_join = false``, the camera's own schedule (the baseline).

The two run in random order in each trial; each session is DELETEd afterwards. Then revocation:
a real gate (SQLite file) grants live access to the simulated camera, the stream is read, the
owner revokes, and the time is taken from ``gate.revoke()`` called to the simulator's peer
connection closed (its ``closed_at``, the same CLOCK_MONOTONIC as ours: both processes run on
this machine), and to ``revoke()`` returned.

Usage: uv run python bench/ring_first_frame.py [--trials 30] [--revocations 30]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import anyio
import av
from camgate import Camera, ConsentTerms, Gate, GeoPoint, Owner, Waiver

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import summary, write_result
from camgate_ring import RingAdapter
from camgate_ring.testing import RingSimulator

GOP_S = 2.0
HOME = GeoPoint(32.2988, -90.1848)
DEVICE = "ava1.ring.device.SIM1"
CAMERA = Camera(id="door", adapter="ring", source=DEVICE, owner_id="alice", position=HOME)


async def first_frame(adapter: RingAdapter) -> float:
    """Seconds from ``open_live`` to a picture decoded from the first packet handed over."""
    t0 = time.monotonic()
    stream = await adapter.open_live(CAMERA, None)  # type: ignore[arg-type]
    try:
        codec = av.CodecContext.create("h264", "r")
        async for packet in stream:
            if codec.decode(av.Packet(packet.data)):
                return time.monotonic() - t0
    finally:
        await stream.aclose()
    raise RuntimeError("the stream ended before a picture")


async def revocation(
    gate: Gate, sim: RingSimulator, incident_id: str, waiver: Waiver
) -> tuple[float, float]:
    """One revocation: (revoke() called → peer connection closed at the simulator, → revoke()
    returned), in seconds."""
    gate.enrol(
        "alice",
        ["door"],
        waiver_version=waiver.version,
        waiver_sha256=waiver.sha256,
        terms=ConsentTerms(scopes=["live"]),
    )
    signed = await gate.request_access(incident_id, "door", "live", requested_by="bench")
    before = set(sim.state())
    stream = await gate.edge.open_live("door", signed)
    try:
        seen = 0
        wanted = random.randint(1, 15)
        async for _packet in stream:
            seen += 1
            if seen == wanted:
                break
        (session,) = set(sim.state()) - before
        started = time.monotonic()
        await gate.revoke("alice")
        returned = time.monotonic()
    finally:
        await stream.aclose()
    deadline = time.monotonic() + 30
    while (closed_at := sim.state()[session]["closed_at"]) is None:
        if time.monotonic() > deadline:
            raise RuntimeError("the simulator's peer connection was never closed")
        await anyio.sleep(0.05)
    return closed_at - started, returned - started


async def main_async(trials: int, revocations: int) -> None:
    with_request: list[float] = []
    without: list[float] = []
    to_closed: list[float] = []
    to_return: list[float] = []
    with RingSimulator(devices=1, keyframe_interval=GOP_S, join_delay=None) as sim:
        adapters = {
            "keyframe_request": RingAdapter.from_settings(sim.settings),
            "no_request": RingAdapter.from_settings({**sim.settings, "keyframe_on_join": False}),
        }
        try:
            for adapter in adapters.values():
                await adapter.devices()  # signed in before the clock starts
            order = list(adapters)
            for i in range(trials):
                random.shuffle(order)
                for name in order:
                    took = await first_frame(adapters[name])
                    (with_request if name == "keyframe_request" else without).append(took)
                print(
                    f"trial {i + 1}/{trials}: with request {with_request[-1]:.3f} s, "
                    f"without {without[-1]:.3f} s",
                    file=sys.stderr,
                )
        finally:
            for adapter in adapters.values():
                await adapter.aclose()
        with tempfile.TemporaryDirectory() as tmp:
            gate = Gate.open(Path(tmp) / "bench.db")
            try:
                waiver = gate.publish_waiver(Waiver("w1", "I agree."))
                gate.add_owner(Owner("alice", "Alice"))
                gate.add_camera(CAMERA, settings=sim.settings)
                incident = gate.report_incident("burglary", HOME, radius_m=200)
                for i in range(revocations):
                    closed, returned = await revocation(gate, sim, incident.id, waiver)
                    to_closed.append(closed)
                    to_return.append(returned)
                    print(
                        f"revocation {i + 1}/{revocations}: peer closed {closed * 1000:.1f} ms, "
                        f"revoke() returned {returned * 1000:.1f} ms",
                        file=sys.stderr,
                    )
            finally:
                await gate.aclose()
    write_result(
        "ring_first_frame",
        {
            "what": "Ring WHEP (simulated Partner API): open_live -> first decoded picture, "
            "320x240@15 H.264, random join within the GOP; revoke() -> peer closed at Ring",
            "gop_s": GOP_S,
            "camgate": {"first_picture_keyframe_request_on_join": summary(with_request)},
            "baseline": {"first_picture_no_keyframe_request": summary(without)},
            "ratio_median_request_over_none": round(
                statistics.median(with_request) / statistics.median(without), 3
            ),
            "revocation": {
                "to_peer_closed_at_ring": summary(to_closed),
                "to_revoke_returned": summary(to_return),
            },
        },
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--revocations", type=int, default=30)
    args = parser.parse_args()
    anyio.run(main_async, args.trials, args.revocations)


if __name__ == "__main__":
    main()
