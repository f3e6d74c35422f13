"""Shared by the benchmarks: summary statistics and the JSON result file."""

from __future__ import annotations

import json
import platform
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def summary(samples: list[float]) -> dict[str, float]:
    """Median, p95, p99, min, max and count of samples in seconds (reported in ms)."""
    ordered = sorted(samples)

    def pct(p: float) -> float:
        k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
        return ordered[k]

    return {
        "n": len(ordered),
        "median_ms": round(statistics.median(ordered) * 1000, 2),
        "p95_ms": round(pct(95) * 1000, 2),
        "p99_ms": round(pct(99) * 1000, 2),
        "min_ms": round(ordered[0] * 1000, 2),
        "max_ms": round(ordered[-1] * 1000, 2),
    }


def write_result(name: str, result: dict[str, Any]) -> Path:
    """Write ``bench/results/<name>.json`` and print the JSON."""
    RESULTS.mkdir(exist_ok=True)
    result = {
        "benchmark": name,
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "cpus": __import__("os").cpu_count(),
        },
        **result,
    }
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return path


def cli_fps(args: list[str], frames: int) -> float:
    """Frames per second of a command (ffmpeg) working through ``frames`` frames: wall time of
    the whole process, start-up included."""
    t0 = time.perf_counter()
    subprocess.run(args, check=True)
    return frames / (time.perf_counter() - t0)


def fps_comparison(
    runs: dict[str, list[float]], frames: int, ours: str = "camgate"
) -> dict[str, Any]:
    """Medians of interleaved frames-per-second runs, every run, and ``ours`` median over each
    other's (``ratio_vs_<name>``)."""
    med = {k: round(statistics.median(v), 1) for k, v in runs.items()}
    return {
        "frames": frames,
        "median_fps": med,
        "runs_fps": {k: [round(x, 1) for x in v] for k, v in runs.items()},
        **{f"ratio_vs_{k}": round(med[ours] / med[k], 2) for k in runs if k != ours},
    }
