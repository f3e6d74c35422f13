"""Ring (WHEP and the app's signalling): time to the first decoded frame with and without a
keyframe request on join, and revocation to the peer connection closed at Ring, against the
simulated Ring (camgate_ring.testing) in the same run.

The simulator's WHEP peer (aiortc, its own process) sends 320x240@15 H.264 with a keyframe every
2 s of the camera's clock, and each viewer joins at a random point of that interval (as a viewer
of a running camera does). Measured per trial, from the call to ``RingAdapter.open_live`` (offer
with ICE gathered, POST with the bearer token, answer, ICE, DTLS, first keyframe) until PyAV has
decoded a picture from the first packet handed over. The simulated camera models the random
join by staying silent for the join point after the connection (its keyframes are scheduled
from the connection), which a running camera does not: ``as_if_running`` also gives each time
less that join point.

Measured:

- ``keyframe_request``: camgate's default (``keyframe_on_join``), an RTCP PLI as soon as the
  first packet shows the peer;
- ``no_request``: ``keyframe_on_join = false``, the camera's own schedule (the baseline);

and the same two over the app backend (``backend = "app"``: ticket, signalling websocket,
offer/answer, ``activate_session``) against the same simulator. The four run in random order in
each trial; each session is ended at Ring afterwards (DELETE, or the signalling ``close``).
Then revocation, over each path in turn: a real gate (SQLite file) grants live access to the
simulated camera, the stream is read, the owner revokes, and the time is taken from
``gate.revoke()`` called to the simulator's peer connection closed (its ``closed_at``, the same
CLOCK_MONOTONIC as ours: both processes run on this machine), and to ``revoke()`` returned.

Usage: uv run python bench/ring_first_frame.py [--trials 30] [--revocations 30]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import attrs
import av
from camgate import Camera, ConsentTerms, Gate, GeoPoint, Owner, Waiver

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import summary, write_result
from camgate_ring import RingAdapter
from camgate_ring.testing import RingSimulator, app_backend_settings

GOP_S = 2.0
HOME = GeoPoint(32.2988, -90.1848)
DEVICE = "ava1.ring.device.SIM1"
CAMERA = Camera(id="door", adapter="ring", source=DEVICE, owner_id="alice", position=HOME)


async def first_frame(
    adapter: RingAdapter, camera: Camera, sessions: Callable[[], dict[str, Any]]
) -> tuple[float, float]:
    """Seconds from ``open_live`` to a picture decoded from the first packet handed over, and
    the session's join point (seconds the simulated camera stayed silent after connecting)."""
    before = set(sessions())
    t0 = time.monotonic()
    stream = await adapter.open_live(camera, None)  # type: ignore[arg-type]
    try:
        codec = av.CodecContext.create("h264", "r")
        async for packet in stream:
            if codec.decode(av.Packet(packet.data)):
                took = time.monotonic() - t0
                break
        else:
            raise RuntimeError("the stream ended before a picture")
    finally:
        await stream.aclose()
    (session,) = set(sessions()) - before
    return took, float(sessions()[session]["join_delay"])


async def revocation(
    gate: Gate,
    sessions: Callable[[], dict[str, Any]],
    camera_id: str,
    incident_id: str,
    waiver: Waiver,
) -> tuple[float, float]:
    """One revocation of ``camera_id``'s live view: (revoke() called → peer connection closed at
    the simulator, whose sessions ``sessions`` returns; → revoke() returned), in seconds."""
    gate.enrol(
        "alice",
        [camera_id],
        waiver_version=waiver.version,
        waiver_sha256=waiver.sha256,
        terms=ConsentTerms(scopes=["live"]),
    )
    signed = await gate.request_access(incident_id, camera_id, "live", requested_by="bench")
    before = set(sessions())
    stream = await gate.edge.open_live(camera_id, signed)
    try:
        seen = 0
        wanted = random.randint(1, 15)
        async for _packet in stream:
            seen += 1
            if seen == wanted:
                break
        (session,) = set(sessions()) - before
        started = time.monotonic()
        await gate.revoke("alice")
        returned = time.monotonic()
    finally:
        await stream.aclose()
    deadline = time.monotonic() + 30
    while (closed_at := sessions()[session]["closed_at"]) is None:
        if time.monotonic() > deadline:
            raise RuntimeError("the simulator's peer connection was never closed")
        await anyio.sleep(0.05)
    return closed_at - started, returned - started


async def main_async(trials: int, revocations: int) -> None:
    times: dict[str, list[float]] = {}
    to_closed: dict[str, list[float]] = {"whep": [], "app": []}
    to_return: dict[str, list[float]] = {"whep": [], "app": []}
    app_camera = attrs.evolve(CAMERA, source="1001")  # the app's id of the same device
    with (
        RingSimulator(devices=1, keyframe_interval=GOP_S, join_delay=None) as sim,
        tempfile.TemporaryDirectory() as folder,
    ):
        app = await app_backend_settings(sim, Path(folder) / "ring-app.json")
        adapters = {
            "whep_keyframe_request": (RingAdapter.from_settings(sim.settings), CAMERA, sim.state),
            "whep_no_request": (
                RingAdapter.from_settings({**sim.settings, "keyframe_on_join": False}),
                CAMERA,
                sim.state,
            ),
            "app_keyframe_request": (RingAdapter.from_settings(app), app_camera, sim.signalling),
            "app_no_request": (
                RingAdapter.from_settings({**app, "keyframe_on_join": False}),
                app_camera,
                sim.signalling,
            ),
        }
        times = {name: [] for name in adapters}
        adjusted: dict[str, list[float]] = {name: [] for name in adapters}
        try:
            for adapter, _camera, _sessions in adapters.values():
                if adapter.settings.backend == "app":
                    await adapter.app_client().app_devices()  # signed in before the clock
                else:
                    await adapter.devices()
            order = list(adapters)
            for i in range(trials):
                random.shuffle(order)
                for name in order:
                    took, silent = await first_frame(*adapters[name])
                    times[name].append(took)
                    adjusted[name].append(took - silent)
                print(
                    f"trial {i + 1}/{trials}: "
                    + ", ".join(f"{name} {times[name][-1]:.3f} s" for name in adapters),
                    file=sys.stderr,
                )
        finally:
            for adapter, _camera, _sessions in adapters.values():
                await adapter.aclose()
        with tempfile.TemporaryDirectory() as tmp:
            gate = Gate.open(Path(tmp) / "bench.db")
            try:
                waiver = gate.publish_waiver(Waiver("w1", "I agree."))
                gate.add_owner(Owner("alice", "Alice"))
                gate.add_camera(CAMERA, settings=sim.settings)
                gate.add_camera(attrs.evolve(app_camera, id="door-app"), settings=app)
                incident = gate.report_incident("burglary", HOME, radius_m=200)
                paths = {"whep": ("door", sim.state), "app": ("door-app", sim.signalling)}
                for i in range(revocations):
                    for path, (camera_id, sessions) in paths.items():
                        closed, returned = await revocation(
                            gate, sessions, camera_id, incident.id, waiver
                        )
                        to_closed[path].append(closed)
                        to_return[path].append(returned)
                        print(
                            f"revocation {i + 1}/{revocations} ({path}): peer closed "
                            f"{closed * 1000:.1f} ms, revoke() returned {returned * 1000:.1f} ms",
                            file=sys.stderr,
                        )
            finally:
                await gate.aclose()
    write_result(
        "ring_first_frame",
        {
            "what": "simulated Ring, WHEP (Partner API) and the app's signalling: open_live -> "
            "first decoded picture, 320x240@15 H.264, random join within the GOP; "
            "revoke() -> peer closed at Ring",
            "gop_s": GOP_S,
            "camgate": {
                "whep_first_picture_keyframe_request_on_join": summary(
                    times["whep_keyframe_request"]
                ),
                "app_first_picture_keyframe_request_on_join": summary(
                    times["app_keyframe_request"]
                ),
            },
            "baseline": {
                "whep_first_picture_no_keyframe_request": summary(times["whep_no_request"]),
                "app_first_picture_no_keyframe_request": summary(times["app_no_request"]),
            },
            "as_if_running": {
                "what": "each time less the session's join point: the simulated camera is "
                "silent that long after connecting, a real one sends at once",
                **{name: summary(values) for name, values in adjusted.items()},
                **{
                    f"ratio_median_{path}_request_over_none": round(
                        statistics.median(adjusted[f"{path}_keyframe_request"])
                        / statistics.median(adjusted[f"{path}_no_request"]),
                        3,
                    )
                    for path in ("whep", "app")
                },
            },
            **{
                f"ratio_median_{path}_request_over_none": round(
                    statistics.median(times[f"{path}_keyframe_request"])
                    / statistics.median(times[f"{path}_no_request"]),
                    3,
                )
                for path in ("whep", "app")
            },
            "revocation": {
                path: {
                    "to_peer_closed_at_ring": summary(to_closed[path]),
                    "to_revoke_returned": summary(to_return[path]),
                }
                for path in ("whep", "app")
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
