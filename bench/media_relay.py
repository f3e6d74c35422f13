"""Fast start and relay: first decoded frame cold/warm, relay throughput, fan-out, memory soak.

(a) Time to first decoded frame from a live RTSP server whose encoder runs continuously (1920x1080
    at 30 fps, 2 s GOP); each client joins at its own random point of the GOP; ``--trials`` each,
    in random order per trial:
    - PyAV with FFmpeg's defaults (``av.open(url)``, decode until a frame comes out);
    - camgate cold: ``Edge.open_live`` with a grant already issued (redeem, durable
      ``access.start``, RTSP open with the fast-start options, first keyframe, decode);
    - camgate warm: the same, with the edge's GOP cache on (an incident near the camera keeps
      the cached GOP; the consumer starts from its keyframe).
(b) Relay throughput of H.264 1080p30 pass-through: a file's packets pumped through the relay
    to one consumer, packets per CPU-second of this process, against ``ffmpeg -c copy`` of the
    same file (same loop count) to a null muxer, packets per CPU-second of ffmpeg.
(c) 50 concurrent consumers of one camera (through the gate, one grant each), one deliberately
    slow: the others must lose no packet (pts contiguous, same count), the slow one is dropped to
    keyframes.
(d) RSS of this process with 100 cameras x 2 consumers (GOP cache on), sampled every few seconds
    for ``--soak-s`` seconds (default 600). Upstream: one GStreamer server process with 4 mounts
    at 320x180@15 fps; camera i opens its own RTSP session on mount i % 4, so there are 100
    upstream sessions (and reader threads) at a cost the 2-core machine can carry.

Usage: uv run python bench/media_relay.py [--trials 30] [--soak-s 600] [--skip a,b,c,d]
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import anyio.to_thread
import av

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, summary, write_result
from camgate import Camera, ConsentTerms, Gate, GeoPoint, Owner, Waiver
from camgate.errors import CameraUnreachable
from camgate.models import Grant, MediaPacket, StreamInfo
from camgate.relay import Relay, RelaySettings
from camgate_rtsp.adapter import RtspAdapter, RtspSettings
from camgate_rtsp.testing.server import Mount, RtspTestServer

HOME = GeoPoint(32.2988, -90.1848)


def decoder(info: StreamInfo) -> Any:
    """An H.264/H.265 decoder that returns a frame for a keyframe at once (no frame threads)."""
    ctx = av.CodecContext.create(info.codec, "r")
    if info.extradata:
        ctx.extradata = info.extradata
    ctx.thread_type = "SLICE"
    ctx.flags |= 1 << 19  # AV_CODEC_FLAG_LOW_DELAY
    return ctx


def decodes(ctx: Any, packet: MediaPacket) -> bool:
    """Feed one packet; True once a frame came out."""
    pkt = av.Packet(packet.data)
    pkt.pts, pkt.dts = packet.pts, packet.dts
    return bool(ctx.decode(pkt))


# ---------------------------------------------------------------------------------- (a)


def pyav_first_frame(url: str) -> float:
    """PyAV with FFmpeg's defaults: open → first decoded frame, in seconds."""
    t0 = time.monotonic()
    container = av.open(url)
    try:
        for frame in container.decode(video=0):
            if frame is not None:
                return time.monotonic() - t0
    finally:
        container.close()
    raise RuntimeError("the stream ended before a frame")


def enrol(gate: Gate, cameras: list[tuple[str, str]]) -> None:
    """Alice's cameras ``(id, source)`` enrolled for live view."""
    waiver = gate.publish_waiver(Waiver("w1", "I agree."))
    gate.add_owner(Owner("alice", "Alice"))
    for camera_id, source in cameras:
        gate.add_camera(
            Camera(id=camera_id, adapter="rtsp", source=source, owner_id="alice", position=HOME)
        )
    gate.enrol(
        "alice",
        [c for c, _ in cameras],
        waiver_version="w1",
        waiver_sha256=waiver.sha256,
        terms=ConsentTerms(scopes=["live"]),
    )


async def edge_first_frame(gate: Gate, incident_id: str) -> tuple[float, float, float]:
    """camgate: open_live (grant issued beforehand) → first decoded frame; the first packet in
    hand (before decoding); and the cache offset."""
    grant = await gate.request_access(
        incident_id, "cam", "live", requested_by="bench", duration_s=60
    )
    t0 = time.monotonic()
    stream = await gate.edge.open_live("cam", grant)
    first: float | None = None
    try:
        ctx = decoder(stream.info)
        async for packet in stream:
            first = first or time.monotonic() - t0
            if decodes(ctx, packet):
                elapsed = time.monotonic() - t0
                start = list(gate.audit.records("access.start"))[-1]
                return elapsed, first, float(start.body.get("cache_offset_s", 0.0))
    finally:
        await stream.aclose()
    raise RuntimeError("the stream ended before a frame")


async def first_frame_bench(trials: int, gop_s: float, workdir: Path) -> dict[str, Any]:
    fps = 30
    mount = Mount("/cam", width=1920, height=1080, fps=fps, gop_frames=round(fps * gop_s))
    results: dict[str, list[float]] = {"pyav": [], "cold": [], "warm": []}
    packets: dict[str, list[float]] = {"cold": [], "warm": []}
    offsets: list[float] = []
    with RtspTestServer([mount], startup_timeout=30) as server:
        url = server.url("/cam")
        cold = Gate.open(workdir / "cold.db")
        warm = Gate.open(workdir / "warm.db", relay_settings=RelaySettings(gop_cache=True))
        try:
            incidents = {}
            for name, gate in (("cold", cold), ("warm", warm)):
                enrol(gate, [("cam", url)])
                incidents[name] = gate.report_incident("burglary", HOME, radius_m=300).id
            with anyio.fail_after(10):  # the warm gate's cache fills from the next keyframe
                while not (up := warm.edge.relay_statistics().upstream("cam")) or not up.cached:  # noqa: ASYNC110
                    await anyio.sleep(0.05)
            clients = list(results)
            for i in range(trials):
                random.shuffle(clients)
                for client in clients:
                    await anyio.sleep(random.uniform(0, gop_s))  # a random point of the GOP
                    if client == "pyav":
                        results["pyav"].append(
                            await anyio.to_thread.run_sync(pyav_first_frame, url)
                        )
                    else:
                        gate = cold if client == "cold" else warm
                        took, first, offset = await edge_first_frame(gate, incidents[client])
                        results[client].append(took)
                        packets[client].append(first)
                        if client == "warm":
                            offsets.append(offset)
                print(
                    f"(a) trial {i + 1}/{trials}: "
                    + ", ".join(f"{k} {v[-1] * 1000:.0f} ms" for k, v in results.items()),
                    file=sys.stderr,
                )
        finally:
            await cold.aclose()
            await warm.aclose()
    med = {k: statistics.median(v) for k, v in results.items()}
    return {
        "what": "open -> first decoded frame, GStreamer RTSP server, 1920x1080@30 H.264, "
        "encoder running continuously, client joins at a random point of the GOP",
        "gop_s": gop_s,
        "baseline_pyav_defaults": summary(results["pyav"]),
        "camgate_cold": summary(results["cold"]),
        "camgate_warm": summary(results["warm"]),
        "camgate_cold_first_packet": summary(packets["cold"]),
        "camgate_warm_first_packet": summary(packets["warm"]),
        "warm_cache_offset_s": summary(offsets) | {"unit": "reported in ms"},
        "ratio_median_cold_over_pyav": round(med["cold"] / med["pyav"], 3),
        "ratio_median_warm_over_pyav": round(med["warm"] / med["pyav"], 4),
        "target_cold_median_s": gop_s / 2 + 0.2,
        "target_warm_median_s": 0.020,
        "cold_meets_target": med["cold"] <= gop_s / 2 + 0.2,
        "warm_meets_target": med["warm"] <= 0.020,
    }


# ---------------------------------------------------------------------------------- (b)


class FileStream:
    """A LiveStream over a media file's video packets, read ``loops`` times as fast as possible."""

    def __init__(self, path: Path, loops: int) -> None:
        self._path = path
        self._loops = loops
        with av.open(str(path)) as c:
            s = c.streams.video[0]
            self.info = StreamInfo(
                codec=s.codec_context.name,
                time_base=s.time_base or Fraction(1, 90000),
                width=s.codec_context.width,
                height=s.codec_context.height,
                extradata=bytes(s.codec_context.extradata or b""),
            )

    def __aiter__(self) -> AsyncIterator[MediaPacket]:
        return self._packets()

    async def _packets(self) -> AsyncIterator[MediaPacket]:
        info = self.info
        with av.open(str(self._path)) as c:
            for _ in range(self._loops):  # seek back, as ffmpeg's -stream_loop does
                c.seek(0)
                for n, p in enumerate(c.demux(c.streams.video[0])):
                    if p.size == 0:
                        continue
                    yield MediaPacket(
                        bytes(p), p.pts, p.dts, p.is_keyframe, info, time.monotonic(), p.duration
                    )
                    if n % 64 == 0:
                        await anyio.lowlevel.checkpoint()

    async def aclose(self) -> None:
        """Nothing to close."""


def make_input(workdir: Path, seconds: int) -> Path:
    path = workdir / "in1080p30.mp4"
    subprocess.run(
        [
            "ffmpeg", "-v", "error", "-y", "-f", "lavfi",
            "-i", f"testsrc2=size=1920x1080:rate=30:duration={seconds}",
            "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency",
            "-g", "60", "-b:v", "4M", str(path),
        ],
        check=True,
    )  # fmt: skip
    return path


def ffmpeg_copy(path: Path, loops: int) -> tuple[float, float]:
    """``ffmpeg -c copy`` of the file ``loops`` times to a null muxer: (CPU s, wall s)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    subprocess.run(
        [
            "ffmpeg", "-v", "error", "-stream_loop", str(loops - 1), "-i", str(path),
            "-map", "0:v", "-c", "copy", "-f", "null", "-",
        ],
        check=True,
    )  # fmt: skip
    wall = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, wall


async def relay_pass_through(source: Any) -> tuple[int, float, float]:
    """Pump ``source`` through the relay to one consumer: (packets received, CPU s, wall s)."""
    relay = Relay(
        RelaySettings(
            queue_packets=1_000_000, backoff_initial_s=0.01, backoff_max_s=0.01, give_up_s=0.01
        )
    )
    camera = Camera(id="file", adapter="file", source="file", owner_id="o", position=HOME)
    opened = [0]

    async def opener() -> Any:
        opened[0] += 1
        if opened[0] > 1:  # the input is read once: its end is a camera gone for good
            raise CameraUnreachable("the input ended")
        return source

    sub = relay.subscribe(camera, live_grant(camera.id), opener, time.monotonic())
    t0, c0 = time.monotonic(), time.process_time()
    await sub.wait_open()
    received = 0
    with contextlib.suppress(CameraUnreachable):
        async for _packet in sub:
            received += 1
    cpu, wall = time.process_time() - c0, time.monotonic() - t0
    await sub.aclose()
    await relay.aclose()
    return received, cpu, wall


class MemoryStream:
    """A LiveStream over packets already demuxed (the relay's own cost, without demuxing)."""

    def __init__(self, packets: list[MediaPacket], loops: int) -> None:
        self.info = packets[0].stream
        self._packets = packets
        self._loops = loops

    def __aiter__(self) -> AsyncIterator[MediaPacket]:
        return self._items()

    async def _items(self) -> AsyncIterator[MediaPacket]:
        for _ in range(self._loops):
            for n, packet in enumerate(self._packets):
                yield packet
                if n % 64 == 0:
                    await anyio.lowlevel.checkpoint()

    async def aclose(self) -> None:
        """Nothing to close."""


async def throughput_bench(workdir: Path, loops: int) -> dict[str, Any]:
    path = await anyio.to_thread.run_sync(make_input, workdir, 10)
    with av.open(str(path)) as c:
        per_loop = sum(1 for p in c.demux(c.streams.video[0]) if p.size)
    ff_cpu, ff_wall = await anyio.to_thread.run_sync(ffmpeg_copy, path, loops)
    got, cpu, wall = await relay_pass_through(FileStream(path, loops))
    ff_rate = per_loop * loops / ff_cpu
    ours = got / cpu
    demuxed = [p async for p in FileStream(path, 1)]
    got_mem, cpu_mem, wall_mem = await relay_pass_through(MemoryStream(demuxed, loops))
    return {
        "what": "H.264 1920x1080@30 pass-through, packets per CPU-second (demux included)",
        "packets": per_loop * loops,
        "relay_packets_received": got,
        "camgate_relay": {
            "cpu_s": round(cpu, 3),
            "wall_s": round(wall, 3),
            "pps_per_core": round(ours),
        },
        "baseline_ffmpeg_copy": {
            "cpu_s": round(ff_cpu, 3),
            "wall_s": round(ff_wall, 3),
            "pps_per_core": round(ff_rate),
        },
        "ratio_relay_over_ffmpeg": round(ours / ff_rate, 3),
        "relay_only_packets_demuxed_beforehand": {
            "packets": got_mem,
            "cpu_s": round(cpu_mem, 3),
            "wall_s": round(wall_mem, 3),
            "pps_per_core": round(got_mem / cpu_mem),
        },
        "target_ratio": 0.5,
    }


# ---------------------------------------------------------------------------------- (c)


async def fan_out_bench(workdir: Path, consumers: int, seconds: float) -> dict[str, Any]:
    mount = Mount("/cam", width=1920, height=1080, fps=30, gop_frames=60, bitrate_kbps=4000)
    with RtspTestServer([mount], startup_timeout=30) as server:
        gate = Gate.open(workdir / "fan.db", relay_settings=RelaySettings(queue_packets=64))
        try:
            enrol(gate, [("cam", server.url("/cam"))])
            incident = gate.report_incident("burglary", HOME, radius_m=300)
            streams = []
            for _ in range(consumers):
                grant = await gate.request_access(
                    incident.id, "cam", "live", requested_by="bench", duration_s=120
                )
                streams.append(await gate.edge.open_live("cam", grant))
            runs: list[list[int]] = [[] for _ in streams]
            marks: list[int] = [0 for _ in streams]
            start_at = anyio.current_time()

            async def read(i: int, slow: bool) -> None:
                with anyio.move_on_at(start_at + seconds):
                    async for packet in streams[i]:
                        runs[i].append(packet.pts or 0)
                        marks[i] += packet.discontinuity
                        if slow:
                            await anyio.sleep(0.25)  # 4 packets/s against 30 arriving

            async with anyio.create_task_group() as tg:
                for i in range(consumers):
                    tg.start_soon(read, i, i == consumers - 1)
            for s in streams:
                await s.aclose()
        finally:
            await gate.aclose()
    fast = runs[:-1]
    lost = []
    for run in fast:
        steps = [b - a for a, b in itertools.pairwise(run)]
        lost.append(sum(max(0, round(d / 3000) - 1) for d in steps))
    return {
        "what": f"{consumers} consumers of one 1080p30 camera through the gate for {seconds} s, "
        "the last reads 4 packets/s",
        "fast_consumers": len(fast),
        "fast_packets_min": min(len(r) for r in fast),
        "fast_packets_max": max(len(r) for r in fast),
        "fast_packets_lost_total": sum(lost),
        "fast_discontinuities_total": sum(marks[:-1]),
        "slow_packets": len(runs[-1]),
        "slow_discontinuities": marks[-1],
        "others_lose_nothing": sum(lost) == 0 and sum(marks[:-1]) == 0,
    }


# ---------------------------------------------------------------------------------- (d)


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def live_grant(camera_id: str) -> Grant:
    """The verified live grant (a day long) the edge would subscribe with."""
    now = datetime.now(UTC)
    return Grant(
        id="grt",
        request_id="req",
        camera_id=camera_id,
        incident_id="inc",
        scope="live",
        issued_at=now,
        expires_at=now + timedelta(days=1),
        consent_id="con",
    )


async def soak_bench(soak_s: float, cameras: int, per_camera: int) -> dict[str, Any]:
    mounts = [Mount(f"/m{i}", width=320, height=180, fps=15, gop_frames=30) for i in range(4)]
    with RtspTestServer(mounts, startup_timeout=30) as server:
        relay = Relay(RelaySettings(gop_cache=True))
        adapter = RtspAdapter(RtspSettings(connect_timeout_s=15, read_timeout_s=15))
        received = [0]
        samples: list[tuple[float, float]] = []
        try:
            subs = []
            for i in range(cameras):
                camera = Camera(
                    id=f"cam{i}",
                    adapter="rtsp",
                    source=server.url(f"/m{i % 4}"),
                    owner_id="o",
                    position=HOME,
                )

                async def opener(camera: Camera = camera) -> Any:
                    return await RtspAdapter.open_live(adapter, camera, None)  # type: ignore[arg-type]

                relay.warm(camera, opener)
                subs += [
                    relay.subscribe(camera, live_grant(camera.id), opener, time.monotonic())
                    for _ in range(per_camera)
                ]
            with anyio.fail_after(120):
                for sub in subs:
                    await sub.wait_open()

            async def drain(sub: Any) -> None:
                async for _packet in sub:
                    received[0] += 1

            t0 = time.monotonic()
            async with anyio.create_task_group() as tg:
                for sub in subs:
                    tg.start_soon(drain, sub)
                while (now := time.monotonic() - t0) < soak_s:
                    samples.append((round(now, 1), round(rss_mib(), 1)))
                    print(f"(d) t={now:.0f}s rss={samples[-1][1]} MiB", file=sys.stderr)
                    await anyio.sleep(min(10.0, max(1.0, soak_s / 60)))
                samples.append((round(time.monotonic() - t0, 1), round(rss_mib(), 1)))
                tg.cancel_scope.cancel()
            ups = relay.upstreams()
            cached = sum(u.cached for u in ups)
        finally:
            await relay.aclose()
    rss = [r for _, r in samples]
    first_min = [r for t, r in samples if t <= 60] or rss[:1]
    last_min = [r for t, r in samples if t >= samples[-1][0] - 60] or rss[-1:]
    return {
        "what": f"{cameras} cameras x {per_camera} consumers, GOP cache on, 4 mounts at "
        f"320x180@15 on one GStreamer server, {soak_s:g} s",
        "soak_s": soak_s,
        "packets_received": received[0],
        "packets_cached_at_end": cached,
        "rss_mib_start": rss[0],
        "rss_mib_peak": max(rss),
        "rss_mib_median_first_minute": statistics.median(first_min),
        "rss_mib_median_last_minute": statistics.median(last_min),
        "rss_growth_last_over_first_minute": round(
            statistics.median(last_min) / statistics.median(first_min), 3
        ),
        "samples": samples,
    }


# ---------------------------------------------------------------------------------- main


async def main_async(args: argparse.Namespace) -> None:
    skip = set(args.skip.split(",")) if args.skip else set()
    # Parts skipped keep their figures from an earlier run (each part says when and how it ran).
    previous = RESULTS / "media_relay.json"
    old = json.loads(previous.read_text()) if skip and previous.exists() else {}
    result: dict[str, Any] = {
        "note": "a shared, noisy 2-core machine; quote medians and ratios; each part carries "
        "its own baseline, measured in the same run as the part",
    }
    command = " ".join(["uv run python bench/media_relay.py", *sys.argv[1:]])
    stamp = {"measured_at": datetime.now(UTC).isoformat(timespec="seconds"), "command": command}
    parts = {
        "a": ("first_frame", lambda w: first_frame_bench(args.trials, args.gop, w)),
        "b": ("throughput", lambda w: throughput_bench(w, args.loops)),
        "c": ("fan_out", lambda w: fan_out_bench(w, 50, args.fan_out_s)),
        "d": ("memory_soak", lambda w: soak_bench(args.soak_s, 100, 2)),
    }
    with tempfile.TemporaryDirectory() as tmp:
        for key, (name, run) in parts.items():
            if key in skip:
                if name in old:
                    kept = {"measured_at": old.get("when"), "command": old.get("command")}
                    result[name] = kept | old[name]
                continue
            result[name] = stamp | await run(Path(tmp))
    write_result("media_relay", result)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--gop", type=float, default=2.0, help="keyframe interval in seconds")
    parser.add_argument("--loops", type=int, default=100, help="(b): times the 10 s input is read")
    parser.add_argument("--fan-out-s", type=float, default=10.0, help="(c): seconds of reading")
    parser.add_argument("--soak-s", type=float, default=600.0, help="(d): seconds of soak")
    parser.add_argument("--skip", default="", help="comma-separated parts to skip: a,b,c,d")
    args = parser.parse_args()
    anyio.run(main_async, args)


if __name__ == "__main__":
    main()
