"""Masked re-encode throughput: camgate's MaskTransform against ffmpeg's CLI with drawbox.

Same input, same run: an H.264 file as a camera sends it (libx264 ultrafast/zerolatency, GOP 30,
testsrc2 pattern), at 640x360 and at 1920x1080. Two privacy masks, both rectangles so ffmpeg's
``drawbox`` can draw exactly the same areas.

- camgate: packets read into memory first, then timed through ``MaskTransform.feed``/``flush``
  (decode, fill the planes with numpy, libx264 ultrafast/zerolatency) — frames per second;
- ffmpeg default: ``ffmpeg -i in.mp4 -vf drawbox,drawbox -c:v libx264 -f null -`` (x264's
  default preset, medium) — wall time of the process, frames per second;
- ffmpeg same settings: the same plus ``-preset ultrafast -tune zerolatency -crf 23``, the
  encoder settings camgate uses — the fair comparison.

Each figure is the median of ``--repeats`` runs. Usage:
uv run python bench/media_masks.py [--seconds 10] [--repeats 3]
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
from camgate.media import MaskTransform
from camgate.models import MediaPacket, StreamInfo

#: Two rectangles (normalised x, y, w, h): a neighbour's window and a garden.
BOXES = [(0.10, 0.10, 0.30, 0.25), (0.55, 0.50, 0.35, 0.40)]


def make_input(path: Path, size: str, seconds: float) -> None:
    """Encode a camera-like H.264 file with the ffmpeg CLI."""
    subprocess.run(
        [
            "ffmpeg", "-v", "error", "-y", "-f", "lavfi",
            "-i", f"testsrc2=size={size}:rate=30", "-t", f"{seconds:g}",
            "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency",
            "-g", "30", "-pix_fmt", "yuv420p", "-bsf:v", "h264_mp4toannexb", "-f", "h264",
            str(path),
        ],
        check=True,
    )  # fmt: skip


def read_packets(path: Path, codec: str = "h264") -> list[MediaPacket]:
    """The file's packets as an adapter would hand them over (90 kHz clock, Annex B): raw
    ``h264`` or ``hevc``."""
    out = []
    with av.open(str(path), format=codec) as container:
        stream = container.streams.video[0]
        ctx = stream.codec_context
        info = StreamInfo(
            codec=codec, time_base=stream.time_base, width=ctx.width, height=ctx.height
        )
        for n, packet in enumerate(container.demux(stream)):
            if packet.size == 0:
                continue
            out.append(
                MediaPacket(bytes(packet), n * 3000, n * 3000, packet.is_keyframe, info, 0.0, 3000)
            )
    return out


def polygons() -> list[list[tuple[float, float]]]:
    """The boxes as polygons."""
    return [[(x, y), (x + w, y), (x + w, y + h), (x, y + h)] for x, y, w, h in BOXES]


def camgate_fps(packets: list[MediaPacket]) -> float:
    """Frames per second through the mask transform."""
    transform = MaskTransform(polygons())
    t0 = time.perf_counter()
    produced = 0
    for packet in packets:
        produced += len(transform.feed(packet))
    produced += len(transform.flush())
    elapsed = time.perf_counter() - t0
    if produced != len(packets):
        raise RuntimeError(f"{produced} packets out for {len(packets)} in")
    return len(packets) / elapsed


def ffmpeg_fps(path: Path, frames: int, width: int, height: int, same: bool) -> float:
    """Frames per second of ffmpeg decode + drawbox + libx264 (wall time of the process)."""
    boxes = ",".join(
        f"drawbox=x={round(x * width)}:y={round(y * height)}:w={round(w * width)}:"
        f"h={round(h * height)}:color=black:t=fill"
        for x, y, w, h in BOXES
    )
    args = ["ffmpeg", "-v", "error", "-f", "h264", "-i", str(path), "-vf", boxes, "-c:v", "libx264"]
    if same:
        args += ["-preset", "ultrafast", "-tune", "zerolatency", "-crf", "23"]
    t0 = time.perf_counter()
    subprocess.run([*args, "-f", "null", "-"], check=True)
    return frames / (time.perf_counter() - t0)


def main() -> int:
    """Run both sizes and write bench/results/media_masks.json."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0, help="input length (30 fps)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    results: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, (width, height) in {"640x360": (640, 360), "1080p": (1920, 1080)}.items():
            path = Path(tmp) / f"{label}.h264"
            make_input(path, f"{width}x{height}", args.seconds)
            packets = read_packets(path)
            runs: dict[str, list[float]] = {"camgate": [], "ffmpeg_default": [], "ffmpeg_same": []}
            for _ in range(args.repeats):  # interleaved, so load spikes hit all three alike
                runs["camgate"].append(camgate_fps(packets))
                runs["ffmpeg_default"].append(ffmpeg_fps(path, len(packets), width, height, False))
                runs["ffmpeg_same"].append(ffmpeg_fps(path, len(packets), width, height, True))
            med = {k: round(statistics.median(v), 1) for k, v in runs.items()}
            results[label] = {
                "frames": len(packets),
                "median_fps": med,
                "runs_fps": {k: [round(x, 1) for x in v] for k, v in runs.items()},
                "ratio_vs_ffmpeg_default": round(med["camgate"] / med["ffmpeg_default"], 2),
                "ratio_vs_ffmpeg_same_settings": round(med["camgate"] / med["ffmpeg_same"], 2),
            }
    write_result(
        "media_masks",
        {
            "what": "masked re-encode frames/s: camgate MaskTransform vs ffmpeg CLI drawbox",
            "masks": BOXES,
            "target": "camgate >= 1.1x ffmpeg",
            "results": results,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
