"""Wyze live routes: time to the first decoded picture, over each route, against the simulator.

The Wyze simulator (camgate_wyze.testing) on loopback, both routes with a keyframe every 2 s:
camera 1 on Wyze's RTSP firmware (camgate-rtsp's GStreamer test server, 320x240@10), camera 2
a v4 over the cloud (signalling request, KVS-style websocket, an aiortc peer sending
320x240@15). Per trial, from the call to ``open_live`` to the first picture PyAV decodes from
the packets handed over, in random interleaved order in the same run:

- ``rtsp_firmware``: WyzeAdapter, camera 1;
- ``cloud_webrtc``: WyzeAdapter, camera 2 (signalling URL from the API, offer with ICE
  gathered, answer, ICE, DTLS, first keyframe);
- ``plain_rtsp`` (the baseline): camgate-rtsp's RtspAdapter on camera 1's RTSP URL, without
  Wyze's layer.

Ratios: each route's median over the baseline's.

Usage: uv run python bench/wyze_live.py [--trials 30]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import av

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import summary, write_result
from camgate.adapters import Adapter
from camgate.models import Camera, GeoPoint, Grant, Scope
from camgate_rtsp.adapter import RtspAdapter
from camgate_wyze.adapter import WyzeAdapter
from camgate_wyze.testing import WyzeSimulator


def _grant(camera: Camera) -> Grant:
    now = datetime.now(UTC)
    return Grant("g1", "r1", camera.id, "i1", Scope("live"), now, now + timedelta(minutes=5))


async def first_picture(adapter: Adapter, camera: Camera) -> float:
    """Seconds from ``open_live`` to the first decoded picture."""
    t0 = time.monotonic()
    stream = await adapter.open_live(camera, _grant(camera))
    decoder = av.CodecContext.create("h264", "r")
    try:
        async for packet in stream:
            if decoder.decode(av.Packet(packet.data)):
                return time.monotonic() - t0
    finally:
        await stream.aclose()
    raise RuntimeError("the stream ended before a picture")


async def main(trials: int) -> None:
    with WyzeSimulator(cameras=2, rtsp=1, events_at=[]) as sim:
        wyze = WyzeAdapter.from_settings(sim.settings)
        rtsp_url = sim.settings["cameras"][sim.macs[0]]["rtsp_url"]
        plain = RtspAdapter.from_settings(
            {"credentials": {rtsp_url: sim.settings["credentials"][sim.macs[0]]}}
        )
        cams = {
            "rtsp_firmware": (wyze, Camera("w1", "wyze", sim.macs[0], "o", GeoPoint(0, 0))),
            "cloud_webrtc": (wyze, Camera("w2", "wyze", sim.macs[1], "o", GeoPoint(0, 0))),
            "plain_rtsp": (plain, Camera("p1", "rtsp", rtsp_url, "o", GeoPoint(0, 0))),
        }
        order = [name for name in cams for _ in range(trials)]
        random.shuffle(order)
        samples: dict[str, list[float]] = {name: [] for name in cams}
        for name in order:
            adapter, camera = cams[name]
            samples[name].append(await first_picture(adapter, camera))
        await wyze.aclose()
    figures = {name: summary(values) for name, values in samples.items()}
    base = figures["plain_rtsp"]["median_ms"]
    write_result(
        "wyze_live",
        {
            "setup": {
                "trials": trials,
                "gop_s": 2.0,
                "rtsp": "GStreamer RTSP test server, 320x240@10 H.264, digest, TCP",
                "webrtc": "KVS-style websocket + aiortc peer, 320x240@15 H.264, loopback",
                "measure": "open_live call to the first picture PyAV decodes",
            },
            **figures,
            "median_over_plain_rtsp": {
                name: round(figures[name]["median_ms"] / base, 2)
                for name in ("rtsp_firmware", "cloud_webrtc")
            },
        },
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=30)
    args = parser.parse_args()
    anyio.run(main, args.trials)
