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
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import cli_fps, fps_comparison, write_result
from camgate.media import BrowserTranscode
from camgate.models import MediaPacket
from media_masks import read_packets

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


def camgate_fps(packets: list[MediaPacket]) -> float:
    """Frames per second through the browser transcode (every frame must come out)."""
    transform = BrowserTranscode()
    t0 = time.perf_counter()
    out = [p for packet in packets for p in transform.feed(packet)] + transform.flush()
    elapsed = time.perf_counter() - t0
    if len(out) != len(packets) or {p.stream.codec for p in out} != {"h264"}:
        raise RuntimeError(f"{len(out)} H.264 packets out for {len(packets)} in")
    return len(packets) / elapsed


def ffmpeg_args(path: Path, same: bool) -> list[str]:
    """ffmpeg decoding the file and encoding with libx264 (our settings or its defaults)."""
    args = ["ffmpeg", "-v", "error", "-f", "hevc", "-i", str(path), "-c:v", "libx264"]
    if same:
        args += ["-preset", "ultrafast", "-tune", "zerolatency", "-crf", "23"]
    return [*args, "-f", "null", "-"]


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
            packets = read_packets(path, "hevc")
            runs: dict[str, list[float]] = {"camgate": [], "ffmpeg_same": [], "ffmpeg_default": []}
            for _ in range(args.repeats):  # interleaved, so load spikes hit all three alike
                runs["camgate"].append(camgate_fps(packets))
                runs["ffmpeg_same"].append(cli_fps(ffmpeg_args(path, True), len(packets)))
                runs["ffmpeg_default"].append(cli_fps(ffmpeg_args(path, False), len(packets)))
            result = fps_comparison(runs, len(packets))
            result["realtime_streams_at_30fps"] = round(result["median_fps"]["camgate"] / 30, 1)
            results[label] = result
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
