"""The geofence query at 1 M cameras: PostGIS vs camgate's own index vs a brute-force scan.

One city-like set of cameras per size (default 10 000, issue #20's city, and 1 000 000): three
in four in 400 neighbourhoods (Gaussian clusters of sigma 200 m to 1.5 km, whose centres lie at
an exponentially distributed distance from downtown, 12 km on average), the rest spread
uniformly over a 60 km x 60 km metro area round Jackson, Mississippi. Measured in the same
run, on the same data:

- ``load``: camgate's ``CameraIndex.add_points`` (bulk, in memory) vs
  ``PostgisIndex.sync_points`` into an empty table (COPY, insert, GiST index maintained: one
  durable transaction), and a re-sync of the same cameras (nothing changes: what a hub does
  when it starts);
- ``query`` at each radius: ``CameraIndex.within`` vs ``PostgisIndex.within`` (``ST_DWithin`` +
  ``ST_Distance`` on geography, over loopback TCP to a real PostgreSQL with PostGIS, fsync on),
  interleaved in random order per query, centred on random cameras (incidents happen where
  cameras are); every answer of both is compared (``answers_differing`` must be 0);
- ``brute_force``: one vectorised ``Geod.inv`` to every camera (a few queries: it is slow);
- ``upsert_one`` / ``delete_one`` on PostGIS (each a durable commit) vs ``add``/``remove`` on
  camgate's index (memory only).

Usage: uv run python bench/geofence_engines.py [--sizes 10000,1000000] [--queries 300]
       [--radii 500,2000] [--brute-runs 10]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
from pyproj import Geod

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import summary, write_result
from camgate.geofence import CameraIndex
from camgate.geofence.postgis import PostgisIndex
from camgate.models import Camera, GeoPoint
from camgate.testing.pgserver import PostgresServer, postgis_database

GEOD = Geod(ellps="WGS84")
CENTRE = (32.2988, -90.1848)
METRO_M = 60_000.0
CLUSTERS = 400


def city(n: int, rng: np.random.Generator) -> tuple[Any, Any]:
    """Latitudes and longitudes of ``n`` cameras: clustered neighbourhoods plus a background."""
    clustered = n * 3 // 4
    # Neighbourhood centres: distance from downtown ~ exponential (dense core, long tail).
    c_dist = np.minimum(rng.exponential(12_000.0, CLUSTERS), METRO_M / 2)
    c_lon, c_lat, _ = GEOD.fwd(
        np.full(CLUSTERS, CENTRE[1]), np.full(CLUSTERS, CENTRE[0]),
        rng.uniform(0, 360, CLUSTERS), c_dist,
    )  # fmt: skip
    # A neighbourhood's share grows with its area, its density varies (log-normal, ~2x).
    sigma = rng.uniform(200.0, 1_500.0, CLUSTERS)
    weight = sigma**2 * rng.lognormal(0.0, 0.7, CLUSTERS)
    which = rng.choice(CLUSTERS, clustered, p=weight / weight.sum())
    spread = sigma[which]
    lon1, lat1, _ = GEOD.fwd(
        np.asarray(c_lon)[which], np.asarray(c_lat)[which],
        rng.uniform(0, 360, clustered), np.abs(rng.normal(0, 1, clustered)) * spread,
    )  # fmt: skip
    rest = n - clustered
    half_deg_lat = METRO_M / 2 / 111_000
    half_deg_lon = half_deg_lat / np.cos(np.radians(CENTRE[0]))
    lat2 = CENTRE[0] + rng.uniform(-half_deg_lat, half_deg_lat, rest)
    lon2 = CENTRE[1] + rng.uniform(-half_deg_lon, half_deg_lon, rest)
    return np.concatenate([lat1, lat2]), np.concatenate([lon1, lon2])


def timed(fn: Any, *args: Any) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - t0, out


def run_size(
    server: PostgresServer,
    n: int,
    args: argparse.Namespace,
    rng: np.random.Generator,
    shuffle: random.Random,
) -> dict[str, Any]:
    """Load ``n`` cameras into both indexes (a fresh database), then query and update both."""
    lat, lon = city(n, rng)
    ids = [f"cam-{i}" for i in range(n)]
    own = CameraIndex(cell_m=500.0)
    own_load_s, _ = timed(own.add_points, ids, lat, lon)
    print(f"camgate index: {n} cameras loaded in {own_load_s:.2f} s", file=sys.stderr)
    dsn = postgis_database(server)
    with PostgisIndex(dsn) as pg:
        pg.ensure_schema()
        pg_load_s, _ = timed(pg.sync_points, ids, lat, lon)
        print(f"PostGIS: {n} cameras loaded in {pg_load_s:.2f} s", file=sys.stderr)
        pg_resync_s, changed = timed(pg.sync_points, ids, lat, lon)
        assert changed == 0, changed
        with psycopg.connect(dsn, autocommit=True) as conn:  # as autovacuum would, later
            conn.execute("VACUUM ANALYZE geofence_positions")
        results = []
        for radius in [float(r) for r in args.radii.split(",")]:
            results.append(query_round(own, pg, lat, lon, radius, args, rng, shuffle))
        upserts, deletes, adds, removes = [], [], [], []
        for k in range(100):
            cam = Camera(f"new-{k}", "rtsp", "rtsp://192.0.2.1/x", "o", GeoPoint(*CENTRE))
            upserts.append(timed(pg.upsert, cam)[0])
            adds.append(timed(own.add, cam)[0])
        for k in range(100):
            deletes.append(timed(pg.delete, f"new-{k}")[0])
            removes.append(timed(own.remove, f"new-{k}")[0])
    return {
        "cameras": n,
        "load_s": {
            "camgate_index": round(own_load_s, 2),
            "postgis_sync_empty": round(pg_load_s, 2),
            "postgis_resync_unchanged": round(pg_resync_s, 2),
        },
        "queries": results,
        "updates": {
            "postgis_upsert_one": summary(upserts),
            "postgis_delete_one": summary(deletes),
            "camgate_add_one": summary(adds),
            "camgate_remove_one": summary(removes),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,1000000")
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--radii", default="500,2000")
    parser.add_argument("--brute-runs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=20)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    shuffle = random.Random(args.seed)
    with PostgresServer() as server:
        sizes = [run_size(server, int(n), args, rng, shuffle) for n in args.sizes.split(",")]
    write_result(
        "geofence_engines",
        {
            "what": "cameras within a radius (geodesic): PostGIS vs camgate's index vs a scan",
            "distribution": (
                f"3/4 in {CLUSTERS} Gaussian neighbourhoods (sigma 200 m-1.5 km), 1/4 uniform over "
                "60 x 60 km round Jackson, MS"
            ),
            "postgres": "Debian's PostgreSQL + PostGIS 3, loopback TCP, fsync on, default settings",
            "sizes": sizes,
        },
    )


def query_round(
    own: CameraIndex,
    pg: PostgisIndex,
    lat: Any,
    lon: Any,
    radius: float,
    args: argparse.Namespace,
    rng: np.random.Generator,
    shuffle: random.Random,
) -> dict[str, Any]:
    n = len(lat)
    times: dict[str, list[float]] = {"camgate_index": [], "postgis": []}
    found, differing = [], 0
    picks = rng.integers(0, n, args.queries).tolist()
    for _warm in range(5):  # warm both (caches, the server's plan)
        centre = GeoPoint(float(lat[picks[_warm]]), float(lon[picks[_warm]]))
        own.within(centre, radius)
        pg.within(centre, radius)
    for i in picks:
        centre = GeoPoint(float(lat[i]), float(lon[i]))
        answers = {}
        order = ["camgate_index", "postgis"]
        shuffle.shuffle(order)
        for engine in order:
            fn = own.within if engine == "camgate_index" else pg.within
            elapsed, hits = timed(fn, centre, radius)
            times[engine].append(elapsed)
            answers[engine] = {h for h, _d in hits}
        differing += answers["camgate_index"] != answers["postgis"]
        found.append(len(answers["postgis"]))
    brute = []
    for i in picks[: args.brute_runs]:
        centre = GeoPoint(float(lat[i]), float(lon[i]))
        t0 = time.perf_counter()
        _f, _b, dist = GEOD.inv(np.full(n, centre.lon), np.full(n, centre.lat), lon, lat)
        hits = np.flatnonzero(dist <= radius)
        brute.append(time.perf_counter() - t0)
        assert {f"cam-{h}" for h in hits.tolist()} == {h for h, _d in own.within(centre, radius)}
    own_s, pg_s, brute_s = (
        summary(times["camgate_index"]),
        summary(times["postgis"]),
        summary(brute),
    )
    print(
        f"r={radius:g} m: camgate index {own_s['median_ms']} ms, PostGIS {pg_s['median_ms']} ms, "
        f"brute force {brute_s['median_ms']} ms; {np.mean(found):.0f} cameras found",
        file=sys.stderr,
    )
    return {
        "radius_m": radius,
        "queries": len(picks),
        "mean_cameras_found": round(float(np.mean(found)), 1),
        "max_cameras_found": int(np.max(found)),
        "answers_differing": int(differing),
        "camgate_index": own_s,
        "postgis": pg_s,
        "brute_force": brute_s,
        "ratio_postgis_over_camgate_median": round(
            pg_s["median_ms"] / max(own_s["median_ms"], 1e-6), 1
        ),
        "ratio_brute_over_postgis_median": round(
            brute_s["median_ms"] / max(pg_s["median_ms"], 1e-6), 1
        ),
    }


if __name__ == "__main__":
    main()
