"""Time to first packet: the RTSP adapter against PyAV's defaults, same server, same run.

A client joins a live H.264 stream (640x360@30, keyframe every 2 s; the encoder runs
continuously). Measured per trial from the call to open until a *keyframe* is in hand — the first
packet a consumer can decode. Three clients per trial, in random order, each joining at its own
random point of the GOP:

- camgate's RTSP adapter (TCP, small probe, no analysis delay, packets from the first keyframe);
- PyAV with FFmpeg's defaults (``av.open(url)``), also timed to its first packet of any kind;
- PyAV's defaults with only TCP transport set, to separate the transport from the probing.

Usage: uv run python bench/first_packet.py [--trials 30] [--gop 2]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

import anyio
import anyio.to_thread
import av

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import summary, write_result
from camgate_rtsp.adapter import RtspLiveStream, RtspSettings
from camgate_rtsp.testing.server import Mount, RtspTestServer


def pyav(url: str, options: dict[str, str] | None = None) -> tuple[float, float]:
    """Open with PyAV; seconds to the first packet and to the first keyframe."""
    t0 = time.monotonic()
    container = av.open(url, options=options or {})
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
    """Open with the RTSP adapter; seconds to the first packet (always a keyframe)."""
    t0 = time.monotonic()
    stream = await RtspLiveStream.open(url, RtspSettings())
    try:
        async for packet in stream:
            if not packet.is_keyframe:
                raise RuntimeError("the adapter handed over a non-keyframe first")
            return time.monotonic() - t0
    finally:
        await stream.aclose()
    raise RuntimeError("stream ended")


async def main_async(trials: int, gop_s: float) -> None:
    ours: list[float] = []
    base_first: list[float] = []
    base_key: list[float] = []
    base_tcp: list[float] = []
    with RtspTestServer([Mount("/cam1", fps=30, gop_frames=round(30 * gop_s))]) as server:
        url = server.url("/cam1")
        clients = ["camgate", "pyav", "pyav-tcp"]
        for i in range(trials):
            random.shuffle(clients)
            for client in clients:
                await anyio.sleep(random.uniform(0, gop_s))  # its own random point of the GOP
                if client == "camgate":
                    ours.append(await camgate_adapter(url))
                elif client == "pyav":
                    first, key = await anyio.to_thread.run_sync(pyav, url)
                    base_first.append(first)
                    base_key.append(key)
                else:
                    tcp = {"rtsp_transport": "tcp"}
                    base_tcp.append((await anyio.to_thread.run_sync(pyav, url, tcp))[1])
            print(
                f"trial {i + 1}/{trials}: camgate {ours[-1]:.3f} s, pyav {base_key[-1]:.3f} s, "
                f"pyav tcp {base_tcp[-1]:.3f} s",
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
                "pyav_defaults_over_tcp_first_keyframe": summary(base_tcp),
            },
            "ratio_median_camgate_over_pyav": round(
                statistics.median(ours) / statistics.median(base_key), 3
            ),
            "ratio_median_camgate_over_pyav_tcp": round(
                statistics.median(ours) / statistics.median(base_tcp), 3
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
