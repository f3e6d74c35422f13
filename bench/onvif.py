"""Time to first decoded frame through the ONVIF adapter, with and without SetSynchronizationPoint.

A simulated ONVIF device (SOAP on loopback) hands out the RTSP URI of a GStreamer encoder that
runs continuously with a keyframe every 2 s (640x360@30 H.264), so a client joins at a random
point of the GOP. Per trial, measured from the call to ``open_live`` (GetStreamUri, RTSP
DESCRIBE/SETUP/PLAY, SetSynchronizationPoint when on) until the first frame is *decoded*. The
device is connected once before the trials (clock, services, profiles), as the edge keeps it.
The two clients alternate in random order, each after its own random wait inside the GOP.

Usage: uv run python bench/onvif.py [--trials 30] [--gop 2]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import anyio.to_thread
import av

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import summary, write_result
from camgate.models import Camera, GeoPoint, Grant
from camgate_onvif.adapter import OnvifAdapter
from camgate_onvif.testing.simulator import OnvifSimulator


def _grant() -> Grant:
    now = datetime.now(UTC)
    return Grant(
        id="bench",
        request_id="bench",
        camera_id="cam",
        incident_id="bench",
        scope="live",
        issued_at=now,
        expires_at=now + timedelta(hours=1),
    )


async def first_frame(adapter: OnvifAdapter, camera: Camera) -> float:
    """Seconds from open_live to the first decoded picture."""
    t0 = time.monotonic()
    stream = await adapter.open_live(camera, _grant())
    decoder = None
    try:
        async for packet in stream:
            if decoder is None:
                decoder = av.CodecContext.create(packet.stream.codec, "r")
                if packet.stream.extradata:
                    decoder.extradata = packet.stream.extradata
            frames = await anyio.to_thread.run_sync(decoder.decode, av.Packet(packet.data))
            if frames:
                return time.monotonic() - t0
    finally:
        await stream.aclose()
    raise RuntimeError("the stream ended before a frame was decoded")


async def main_async(trials: int, gop_s: float) -> None:
    results: dict[bool, list[float]] = {True: [], False: []}
    with OnvifSimulator(1, gop_frames=round(30 * gop_s)) as sim:
        camera = Camera(
            id="cam",
            adapter="onvif",
            source=sim.sources[0],
            owner_id="bench",
            position=GeoPoint(0, 0),
        )
        adapters = {
            sync: OnvifAdapter.from_settings(sim.settings | {"sync_point": sync})
            for sync in (True, False)
        }
        for adapter in adapters.values():
            await adapter.device(camera.source)  # connected once, as the edge keeps it
        order = [True, False]
        for i in range(trials):
            random.shuffle(order)
            for sync in order:
                await anyio.sleep(random.uniform(0, gop_s))  # its own point of the GOP
                results[sync].append(await first_frame(adapters[sync], camera))
            print(
                f"trial {i + 1}/{trials}: sync point {results[True][-1]:.3f} s, "
                f"without {results[False][-1]:.3f} s",
                file=sys.stderr,
            )
        for adapter in adapters.values():
            await adapter.aclose()
        sync_points = len(sim.sync_points)
    write_result(
        "onvif",
        {
            "what": "ONVIF open_live -> first decoded frame; simulated device, GStreamer encoder "
            "640x360@30 H.264 running continuously",
            "gop_s": gop_s,
            "with_sync_point": summary(results[True]),
            "without_sync_point": summary(results[False]),
            "sync_points_received_by_device": sync_points,
            "target_median_ms_with_sync_point": 300,
            "ratio_median_with_over_without": round(
                statistics.median(results[True]) / statistics.median(results[False]), 3
            ),
        },
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--gop", type=float, default=2.0, help="keyframe interval in seconds")
    args = parser.parse_args()
    anyio.run(main_async, args.trials, args.gop)


if __name__ == "__main__":
    main()
