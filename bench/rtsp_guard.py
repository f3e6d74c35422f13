"""What the RTSP guard costs: relay throughput and live-stream CPU, against the direct path.

(a) Raw relay: a camera thread sends interleaved ``$`` frames (1400-byte payloads, as RTP over
    TCP) as fast as a reader takes them; the reader takes ``--mib`` MiB straight from the camera
    (direct) or through :class:`~camgate_rtsp.guard.RtspGuard` (guard), alternating in random
    order per trial. MiB/s per trial; median and the guard/direct ratio.
(b) Live stream: GStreamer's RTSP server serves 1280x720 at 30 fps, ~6 Mb/s; for ``--live-s``
    seconds per trial, FFmpeg demuxes it straight from the server (``av.open`` on the camera's
    URL, the path before the guard) or through an ``RtspGuard`` (the same loop, the reader's
    path now). Packets per CPU-second of this process (the server is another process, not
    counted); median and ratio; and the median time ``av.open`` takes (plus the guard's start).

Usage: uv run python bench/rtsp_guard.py [--trials 7] [--mib 256] [--live-s 5] [--skip a,b]
"""

from __future__ import annotations

import argparse
import contextlib
import random
import resource
import socket
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

import av

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_result
from camgate_rtsp.adapter import RtspSettings
from camgate_rtsp.guard import RtspGuard
from camgate_rtsp.testing.server import Mount, RtspTestServer

FRAME = b"$\x00" + (1400).to_bytes(2, "big") + bytes(1400)


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _flood_camera() -> tuple[socket.socket, threading.Thread]:
    """A listener whose every connection gets interleaved frames until the reader hangs up."""
    listener = socket.create_server(("127.0.0.1", 0))
    block = FRAME * 64

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                try:
                    while True:
                        conn.sendall(block)
                except OSError:
                    pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return listener, thread


def _read(port: int, total: int) -> float:
    started = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port)) as sock:
        left = total
        while left > 0:
            chunk = sock.recv(1 << 20)
            if not chunk:
                raise RuntimeError("the relay ended early")
            left -= len(chunk)
    return total / (1 << 20) / (time.perf_counter() - started)


def bench_raw(trials: int, mib: int) -> dict[str, Any]:
    listener, _ = _flood_camera()
    port = listener.getsockname()[1]
    samples: dict[str, list[float]] = {"direct": [], "guard": []}
    try:
        for _ in range(trials):
            for mode in random.sample(["direct", "guard"], 2):
                if mode == "direct":
                    samples[mode].append(_read(port, mib << 20))
                else:
                    url = f"rtsp://127.0.0.1:{port}/x"
                    with RtspGuard(url, url, connect_timeout_s=5) as guard:
                        samples[mode].append(_read(guard.port, mib << 20))
    finally:
        listener.close()
    medians = {mode: statistics.median(values) for mode, values in samples.items()}
    return {
        "mib_per_trial": mib,
        "mib_per_s": {mode: [round(v, 1) for v in values] for mode, values in samples.items()},
        "median_mib_per_s": {mode: round(v, 1) for mode, v in medians.items()},
        "guard_over_direct": round(medians["guard"] / medians["direct"], 3),
    }


def _packets(url: str, seconds: float, guarded: bool) -> tuple[int, float, float]:
    """Demux ``url`` for ``seconds`` (after the open), straight or through a guard: packets,
    CPU seconds, and the seconds ``av.open`` took (with the guard's start when guarded)."""
    options = RtspSettings().open_options()
    started = time.perf_counter()
    with RtspGuard(url, url, connect_timeout_s=5) if guarded else contextlib.nullcontext() as g:
        target = g.local_url(url) if g is not None else url
        with av.open(target, "r", options=options, timeout=(5, 5)) as container:
            opened = time.perf_counter() - started
            stream = container.streams.video[0]
            cpu, deadline, count = _cpu(), time.monotonic() + seconds, 0
            for packet in container.demux(stream):
                count += packet.size > 0
                if time.monotonic() >= deadline:
                    break
            return count, _cpu() - cpu, opened


def bench_live(trials: int, seconds: float) -> dict[str, Any]:
    mount = Mount("/hd", width=1280, height=720, fps=30, gop_frames=60, bitrate_kbps=6000)
    samples: dict[str, list[float]] = {"direct": [], "guard": []}
    packets: dict[str, list[int]] = {"direct": [], "guard": []}
    opens: dict[str, list[float]] = {"direct": [], "guard": []}
    with RtspTestServer([mount]) as server:
        url = server.url("/hd")
        for _ in range(trials):
            for mode in random.sample(["direct", "guard"], 2):
                count, cpu, opened = _packets(url, seconds, guarded=mode == "guard")
                opens[mode].append(opened)
                packets[mode].append(count)
                samples[mode].append(count / cpu if cpu > 0 else float("inf"))
    medians = {mode: statistics.median(values) for mode, values in samples.items()}
    return {
        "seconds_per_trial": seconds,
        "packets": packets,
        "packets_per_cpu_s": {mode: [round(v) for v in values] for mode, values in samples.items()},
        "median_packets_per_cpu_s": {mode: round(v) for mode, v in medians.items()},
        "guard_over_direct": round(medians["guard"] / medians["direct"], 3),
        "median_open_ms": {
            mode: round(statistics.median(v) * 1000, 1) for mode, v in opens.items()
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=7)
    parser.add_argument("--mib", type=int, default=256)
    parser.add_argument("--live-s", type=float, default=5.0)
    parser.add_argument("--skip", default="")
    args = parser.parse_args()
    skip = set(args.skip.split(","))
    result: dict[str, Any] = {"trials": args.trials}
    if "a" not in skip:
        result["raw_relay"] = bench_raw(args.trials, args.mib)
    if "b" not in skip:
        result["live_stream"] = bench_live(args.trials, args.live_s)
    write_result("rtsp_guard", result)


if __name__ == "__main__":
    main()
