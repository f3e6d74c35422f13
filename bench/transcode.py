"""H.265 → H.264 for browsers: camgate's BrowserTranscode against ffmpeg's CLI, same input.

Same run, same file: H.265 as a camera sends it (libx265 ultrafast/zerolatency, GOP 30,
testsrc2 pattern, Annex B), at 640x360 and at 1920x1080.

- camgate: the file's packets read into memory first, then timed through
  ``BrowserTranscode.feed``/``flush`` (decode with two frame threads, libx264 ultrafast /
  zerolatency / CRF 23) — frames per second;
- ffmpeg same settings: ``ffmpeg -f hevc -i in.hevc -c:v libx264 -preset ultrafast -tune
  zerolatency -crf 23 -f null -`` — wall time of the process (start-up included, as a CLI
  transcode pays it), frames per second; the fair comparison;
- ffmpeg default: the same without the low-latency options (x264's medium preset with
  lookahead and B-frames), for scale.

Runs are interleaved (a load spike hits all three alike); each figure is the median of
``--repeats``; the ratios are camgate's median over ffmpeg's. Usage:
uv run python bench/transcode.py [--seconds 10] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_result
from camgate.media import BrowserTranscode
from camgate.models import MediaPacket, StreamInfo

SIZES = {"640x360": (640, 360), "1080p": (1920, 1080)}


def make_input(path: Path, width: int, height: int, seconds: float) -> None:
    """Encode a camera-like H.265 file with the ffmpeg CLI."""
    subprocess.run(
        [
            "ffmpeg", "-v", "error", "-y", "-f", "lavfi",
            "-i", f"testsrc2=size={width}x{height}:rate=30", "-t", f"{seconds:g}",
            "-c:v", "libx265", "-preset", "ultrafast", "-tune", "zerolatency",
            "-x265-params", "keyint=30:min-keyint=30:scenecut=0:log-level=error",
            "-pix_fmt", "yuv420p", "-f", "hevc", str(path),
        ],
        check=True,
    )  # fmt: skip


def read_packets(path: Path) -> list[MediaPacket]:
    """The file's packets as an adapter would hand them over (90 kHz clock, Annex B)."""
    out = []
    with av.open(str(path), format="hevc") as container:
        stream = container.streams.video[0]
        ctx = stream.codec_context
        info = StreamInfo(
            codec="hevc", time_base=stream.time_base, width=ctx.width, height=ctx.height
        )
        for n, packet in enumerate(container.demux(stream)):
            if packet.size:
                out.append(
                    MediaPacket(
                        bytes(packet), n * 3000, n * 3000, packet.is_keyframe, info, 0.0, 3000
                    )
                )
    return out


def camgate_fps(packets: list[MediaPacket]) -> float:
    """Frames per second through the browser transcode (every frame must come out)."""
    transform = BrowserTranscode()
    t0 = time.perf_counter()
    out = [p for packet in packets for p in transform.feed(packet)] + transform.flush()
    elapsed = time.perf_counter() - t0
    if len(out) != len(packets) or {p.stream.codec for p in out} != {"h264"}:
        raise RuntimeError(f"{len(out)} H.264 packets out for {len(packets)} in")
    return len(packets) / elapsed


def ffmpeg_fps(path: Path, frames: int, same: bool) -> float:
    """Frames per second of ffmpeg decode + libx264 (wall time of the process)."""
    args = ["ffmpeg", "-v", "error", "-f", "hevc", "-i", str(path), "-c:v", "libx264"]
    if same:
        args += ["-preset", "ultrafast", "-tune", "zerolatency", "-crf", "23"]
    t0 = time.perf_counter()
    subprocess.run([*args, "-f", "null", "-"], check=True)
    return frames / (time.perf_counter() - t0)


def main() -> int:
    """Run both sizes and write bench/results/transcode.json."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0, help="input length (30 fps)")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    results: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, (width, height) in SIZES.items():
            path = Path(tmp) / f"{label}.hevc"
            make_input(path, width, height, args.seconds)
            packets = read_packets(path)
            runs: dict[str, list[float]] = {"camgate": [], "ffmpeg_same": [], "ffmpeg_default": []}
            for _ in range(args.repeats):
                runs["camgate"].append(camgate_fps(packets))
                runs["ffmpeg_same"].append(ffmpeg_fps(path, len(packets), True))
                runs["ffmpeg_default"].append(ffmpeg_fps(path, len(packets), False))
            med = {k: round(statistics.median(v), 1) for k, v in runs.items()}
            results[label] = {
                "frames": len(packets),
                "median_fps": med,
                "runs_fps": {k: [round(x, 1) for x in v] for k, v in runs.items()},
                "ratio_vs_ffmpeg_same_settings": round(med["camgate"] / med["ffmpeg_same"], 2),
                "ratio_vs_ffmpeg_default": round(med["camgate"] / med["ffmpeg_default"], 2),
                "realtime_streams_at_30fps": round(med["camgate"] / 30, 1),
            }
    write_result(
        "transcode",
        {
            "what": "H.265 -> H.264 frames/s: camgate BrowserTranscode vs ffmpeg CLI libx264",
            "results": results,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
