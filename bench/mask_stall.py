"""Event-loop stalls while the relay masks a 1080p camera: in the loop (before) vs a worker thread.

A 1920x1080 H.264 stream at 30 fps (``bench/media_masks.py``'s camera-like file, GOP 30) is
replayed in real time into camgate's ``Relay`` with the camera's privacy masks on (two boxes),
one consumer reading it. Beside it a ticker task asks the event loop for a 10 ms sleep, over
and over; how late each wake-up comes is the stall every other task of the process (other
streams, requests, a revocation) would have suffered at that moment.

Three modes, interleaved, the same packets and the same relay code:

- ``in_loop``: the transform's ``feed`` runs on the event loop (the relay's code before this
  change; kept selectable through the transform's ``in_loop`` attribute);
- ``worker_thread``: the relay's default now: each ``feed`` in a worker thread;
- ``unmasked``: no transform, for scale.

Reported per mode: the ticker's lateness (median, p99, max over every wake-up of every run),
packets delivered, and how long the 30 fps input took to get through (1.0 = real time).
Usage: uv run python bench/mask_stall.py [--seconds 10] [--repeats 3]
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import summary, write_result
from camgate import Camera, GeoPoint
from camgate.errors import CameraUnreachable
from camgate.media import MaskTransform
from camgate.models import MediaPacket
from camgate.relay import Relay, RelaySettings
from media_masks import make_input, polygons, read_packets
from media_relay import live_grant

FPS = 30
TICK_S = 0.010


class InLoopMaskTransform(MaskTransform):
    """The masks fed on the event loop, as the relay did before (for comparison only)."""

    in_loop = True


class PacedStream:
    """A LiveStream replaying packets at the camera's rate (30 fps, wall clock)."""

    def __init__(self, packets: list[MediaPacket]) -> None:
        self.info = packets[0].stream
        self._packets = packets

    def __aiter__(self) -> AsyncIterator[MediaPacket]:
        return self._items()

    async def _items(self) -> AsyncIterator[MediaPacket]:
        t0 = time.monotonic()
        for n, packet in enumerate(self._packets):
            await anyio.sleep(max(0.0, t0 + n / FPS - time.monotonic()))
            yield packet

    async def aclose(self) -> None:
        """Nothing to close."""


async def one_run(mode: str, packets: list[MediaPacket]) -> tuple[list[float], int, float]:
    """Stream ``packets`` through the relay in ``mode``: (lateness samples, delivered, wall s)."""
    factories = {
        "in_loop": lambda _camera: InLoopMaskTransform(polygons()),
        "worker_thread": lambda _camera: MaskTransform(polygons()),
        "unmasked": None,
    }
    relay = Relay(
        RelaySettings(queue_packets=100_000, backoff_initial_s=0.01, give_up_s=0.01),
        transform_factory=factories[mode],
    )
    camera = Camera(id="cam", adapter="file", source="file", owner_id="o", position=GeoPoint(0, 0))
    opened = [0]

    async def opener() -> Any:
        opened[0] += 1
        if opened[0] > 1:  # the input is played once: its end is a camera gone for good
            raise CameraUnreachable("the input ended")
        return PacedStream(packets)

    late: list[float] = []
    delivered = 0
    done = anyio.Event()

    async def ticker() -> None:
        while not done.is_set():
            t = time.monotonic()
            await anyio.sleep(TICK_S)
            late.append(max(0.0, time.monotonic() - t - TICK_S))

    t0 = time.monotonic()
    async with anyio.create_task_group() as tg:
        tg.start_soon(ticker)
        sub = relay.subscribe(camera, live_grant(camera.id), opener, time.monotonic())
        await sub.wait_open()
        with contextlib.suppress(CameraUnreachable):
            async for _packet in sub:
                delivered += 1
        wall = time.monotonic() - t0
        done.set()
        await sub.aclose()
        await relay.aclose()
    return late, delivered, wall


async def bench(packets: list[MediaPacket], repeats: int) -> dict[str, Any]:
    modes = ("in_loop", "worker_thread", "unmasked")
    late: dict[str, list[float]] = {m: [] for m in modes}
    delivered: dict[str, list[int]] = {m: [] for m in modes}
    walls: dict[str, list[float]] = {m: [] for m in modes}
    for _ in range(repeats):
        for mode in modes:  # interleaved, so load spikes hit every mode alike
            samples, got, wall = await one_run(mode, packets)
            late[mode] += samples
            delivered[mode].append(got)
            walls[mode].append(wall)
    input_s = len(packets) / FPS
    out: dict[str, Any] = {}
    for mode in modes:
        out[mode] = {
            "loop_lateness": summary(late[mode]),
            "packets_delivered": delivered[mode],
            "time_vs_realtime": [round(w / input_s, 2) for w in walls[mode]],
        }
    before, after = out["in_loop"]["loop_lateness"], out["worker_thread"]["loop_lateness"]
    out["ratio_in_loop_over_worker"] = {
        "max": round(before["max_ms"] / max(after["max_ms"], 0.01), 1),
        "p99": round(before["p99_ms"] / max(after["p99_ms"], 0.01), 1),
    }
    return out


def main() -> int:
    """Run every mode and write bench/results/mask_stall.json."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0, help="input length (30 fps)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "1080p.h264"
        make_input(path, "1920x1080", args.seconds)
        packets = read_packets(path)
    results = anyio.run(bench, packets, args.repeats)
    write_result(
        "mask_stall",
        {
            "what": "event-loop lateness (10 ms sleeps) while the relay masks 1080p30 H.264",
            "input": {"size": "1920x1080", "fps": FPS, "packets": len(packets)},
            "tick_s": TICK_S,
            "results": results,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
