"""Time to first packet: the RTSP adapter against PyAV's defaults, same server, same run.

A client joins a live H.264 stream (640x360@30, keyframe every 2 s; the encoder runs
continuously, so each join lands at a random point of the GOP). Measured per trial from the call
to open until a *keyframe* is in hand — the first packet a consumer can decode — and, for PyAV's
defaults, also until the first packet of any kind. Trials alternate between the two clients.

Usage: uv run python bench/first_packet.py [--trials 30]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

import anyio
import av

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import summary, write_result
from camgate_rtsp.adapter import RtspLiveStream, RtspSettings
from camgate_rtsp.testserver import Mount, RtspTestServer


def pyav_defaults(url: str) -> tuple[float, float]:
    t0 = time.monotonic()
    container = av.open(url)
    first = keyframe = None
    try:
        for packet in container.demux(container.streams.video[0]):
            if packet.size == 0:
                continue
            now = time.monotonic() - t0
            first = now if first is None else first
            if packet.is_keyframe:
                keyframe = now
                break
    finally:
        container.close()
    if first is None or keyframe is None:
        raise RuntimeError("the stream ended before a keyframe")
    return first, keyframe


async def camgate_adapter(url: str) -> float:
    t0 = time.monotonic()
    stream = await RtspLiveStream.open(url, RtspSettings())
    try:
        async for packet in stream:
            assert packet.is_keyframe
            return time.monotonic() - t0
    finally:
        await stream.aclose()
    raise RuntimeError("stream ended")


async def main_async(trials: int, gop_s: float) -> None:
    with RtspTestServer([Mount("/cam1", fps=30, gop_frames=round(30 * gop_s))]) as server:
        url = server.url("/cam1")
        ours, base_first, base_key = [], [], []
        for i in range(trials):
            await anyio.sleep(random.uniform(0, gop_s))  # join at a random point of the GOP
            if i % 2 == 0:
                ours.append(await camgate_adapter(url))
                first, key = await anyio.to_thread.run_sync(pyav_defaults, url)
            else:
                first, key = await anyio.to_thread.run_sync(pyav_defaults, url)
                ours.append(await camgate_adapter(url))
            base_first.append(first)
            base_key.append(key)
            print(
                f"trial {i + 1}/{trials}: camgate {ours[-1]:.3f} s, pyav {key:.3f} s",
                file=sys.stderr,
            )
    write_result(
        "first_packet",
        {
            "what": "open -> first keyframe in hand, GStreamer RTSP server, 640x360@30 H.264",
            "gop_s": gop_s,
            "camgate": {"rtsp_adapter_first_keyframe": summary(ours)},
            "baseline": {
                "pyav_defaults_first_keyframe": summary(base_key),
                "pyav_defaults_first_packet_any": summary(base_first),
            },
            "ratio_median_camgate_over_pyav": round(
                statistics.median(ours) / statistics.median(base_key), 3
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
