"""Geofence query speed: the indexed 500 m query against a brute-force vectorised pyproj scan.

For 10 000, 100 000 and 1 000 000 cameras spread uniformly over a 100 km x 100 km area round
Jackson, Mississippi (built with numpy, indexed in one bulk load), measured in the same run:

- ``indexed``: ``CameraIndex.within(centre, 500)`` — grid candidates, then the exact geodesic
  test (``Geod.inv``) on the survivors; the answer is exactly the scan's (checked every query);
- ``brute_force``: one vectorised ``Geod.inv`` from the centre to every camera, then ``<= 500``;
- ``add_one``: adding (enrolling) one camera to the built index; ``move_one`` and
  ``remove_one`` likewise.

The ratio is brute-force median / indexed median. Query centres are random cameras' positions.

Usage: uv run python bench/geofence.py [--sizes 10000,100000,1000000] [--queries 200]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from pyproj import Geod

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import summary, write_result
from camgate.geofence import CameraIndex
from camgate.models import GeoPoint

GEOD = Geod(ellps="WGS84")
CENTRE = (32.2988, -90.1848)
SPAN_DEG = 0.9  # about 100 km of latitude, 85 km of longitude here
RADIUS_M = 500.0


def run_size(n: int, queries: int, brute_runs: int, rng: np.random.Generator) -> dict[str, object]:
    lat = CENTRE[0] + rng.uniform(-SPAN_DEG / 2, SPAN_DEG / 2, n)
    lon = CENTRE[1] + rng.uniform(-SPAN_DEG / 2, SPAN_DEG / 2, n)
    ids = [f"cam-{i}" for i in range(n)]
    index = CameraIndex(cell_m=RADIUS_M)
    t0 = time.perf_counter()
    index.add_points(ids, lat, lon)
    build_s = time.perf_counter() - t0
    picks = rng.integers(0, n, queries)
    indexed, brute, found = [], [], []
    for q, i in enumerate(picks.tolist()):
        centre = GeoPoint(float(lat[i]), float(lon[i]))
        t0 = time.perf_counter()
        hits = index.within(centre, RADIUS_M)
        indexed.append(time.perf_counter() - t0)
        found.append(len(hits))
        if q < brute_runs:
            t0 = time.perf_counter()
            _f, _b, dist = GEOD.inv(np.full(n, centre.lon), np.full(n, centre.lat), lon, lat)
            scan = np.flatnonzero(dist <= RADIUS_M)
            brute.append(time.perf_counter() - t0)
            assert {int(h[4:]) for h, _ in hits} == set(scan.tolist()), "index != scan"
    adds, moves, removes = [], [], []
    for k in range(200):
        new_lat = CENTRE[0] + float(rng.uniform(-SPAN_DEG / 2, SPAN_DEG / 2))
        new_lon = CENTRE[1] + float(rng.uniform(-SPAN_DEG / 2, SPAN_DEG / 2))
        t0 = time.perf_counter()
        index.add_points([f"new-{k}"], [new_lat], [new_lon])
        adds.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        index.add_points([f"new-{k}"], [new_lat + 0.001], [new_lon])
        moves.append(time.perf_counter() - t0)
    for k in range(200):
        t0 = time.perf_counter()
        index.remove(f"new-{k}")
        removes.append(time.perf_counter() - t0)
    ind, bru = summary(indexed), summary(brute)
    print(
        f"n={n}: indexed {ind['median_ms']} ms, brute force {bru['median_ms']} ms, "
        f"build {build_s:.2f} s",
        file=sys.stderr,
    )
    return {
        "cameras": n,
        "build_s": round(build_s, 3),
        "mean_cameras_found": round(float(np.mean(found)), 1),
        "indexed": ind,
        "brute_force": bru,
        "ratio_brute_over_indexed_median": round(bru["median_ms"] / max(ind["median_ms"], 1e-6), 1),
        "add_one": summary(adds),
        "add_one_median_us": round(statistics.median(adds) * 1e6, 1),
        "move_one_median_us": round(statistics.median(moves) * 1e6, 1),
        "remove_one_median_us": round(statistics.median(removes) * 1e6, 1),
        "move_one": summary(moves),
        "remove_one": summary(removes),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--brute-runs", type=int, default=15)
    parser.add_argument("--seed", type=int, default=4)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    sizes = [int(s) for s in args.sizes.split(",")]
    write_result(
        "geofence",
        {
            "what": "cameras within 500 m (geodesic): grid index vs a vectorised Geod.inv scan",
            "area": "uniform over 0.9 x 0.9 degrees round Jackson, MS (~100 x 85 km)",
            "radius_m": RADIUS_M,
            "cell_m": RADIUS_M,
            "results": [run_size(n, args.queries, args.brute_runs, rng) for n in sizes],
        },
    )


if __name__ == "__main__":
    main()
