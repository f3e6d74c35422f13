"""The cost of camgate's own RTSP client (ONVIF replay) against FFmpeg's, on the same stream.

ONVIF replay needs headers FFmpeg cannot send, so camgate_onvif.replay reads RTSP and
depacketises H.264 in Python. This measures what that costs: both clients read the same
GStreamer mount (640x360@30 H.264, 1 Mbit/s, running continuously) for ``--packets`` access
units, one after the other in random order per trial; per client the process CPU time
(``time.process_time``, all threads: FFmpeg reads in a worker thread) per access unit, and the
wall time from the first to the last packet (both should be the encoder's 30 fps). The RTSP
server is another process and not counted. The baseline is camgate-rtsp's ``RtspLiveStream``
(PyAV/FFmpeg, the live path).

Usage: uv run python bench/onvif_replay.py [--trials 10] [--packets 150]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import summary, write_result
from camgate_onvif.replay import ReplayStream
from camgate_rtsp.adapter import RtspLiveStream, RtspSettings
from camgate_rtsp.testing.server import Mount, RtspTestServer


async def read(stream: Any, packets: int) -> tuple[float, float]:
    """(CPU seconds per access unit, wall seconds first→last packet) reading ``packets``."""
    count, first, cpu0 = 0, 0.0, 0.0
    try:
        async for _packet in stream:
            if count == 0:  # from the first packet on: joining the GOP is not the client's cost
                first, cpu0 = time.monotonic(), time.process_time()
            count += 1
            if count == packets:
                break
    finally:
        await stream.aclose()
    return (time.process_time() - cpu0) / (packets - 1), time.monotonic() - first


async def main_async(trials: int, packets: int) -> None:
    cpu: dict[str, list[float]] = {"camgate": [], "ffmpeg": []}
    wall: dict[str, list[float]] = {"camgate": [], "ffmpeg": []}
    with RtspTestServer([Mount("/cam", gop_frames=30)]) as server:
        url = server.url("/cam")

        async def camgate() -> Any:
            return await ReplayStream.open(url, require=None)

        async def ffmpeg() -> Any:
            return await RtspLiveStream.open(url, RtspSettings())

        clients = {"camgate": camgate, "ffmpeg": ffmpeg}
        order = list(clients)
        for i in range(trials):
            random.shuffle(order)
            for name in order:
                per_unit, seconds = await read(await clients[name](), packets)
                cpu[name].append(per_unit)
                wall[name].append(seconds)
            print(
                f"trial {i + 1}/{trials}: CPU per access unit camgate "
                f"{cpu['camgate'][-1] * 1e6:.0f} us, ffmpeg {cpu['ffmpeg'][-1] * 1e6:.0f} us",
                file=sys.stderr,
            )
    write_result(
        "onvif_replay",
        {
            "what": "process CPU per H.264 access unit reading RTSP over TCP: camgate's replay "
            "client (Python depacketiser) vs camgate-rtsp's FFmpeg reader, same GStreamer "
            "mount 640x360@30, 1 Mbit/s",
            "packets_per_trial": packets,
            "cpu_per_unit_camgate": summary(cpu["camgate"]),
            "cpu_per_unit_ffmpeg": summary(cpu["ffmpeg"]),
            "wall_camgate": summary(wall["camgate"]),
            "wall_ffmpeg": summary(wall["ffmpeg"]),
            "ratio_median_cpu_camgate_over_ffmpeg": round(
                statistics.median(cpu["camgate"]) / statistics.median(cpu["ffmpeg"]), 3
            ),
        },
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--packets", type=int, default=150)
    args = parser.parse_args()
    anyio.run(main_async, args.trials, args.packets)


if __name__ == "__main__":
    main()
