"""Durable decisions per second on SQLite vs PostgreSQL, with 1 and 2 hub processes.

A decision here is the whole durable path of ``Gate.request_access(..., wait=False)`` for a
snapshot: the request and its decision stored, the grant signed and stored, the owner's notice
queued and the audit record appended (on SQLite in the store's file, one transaction; on
PostgreSQL in the same database, through an intent). Every commit is durable (SQLite
``synchronous=FULL``; PostgreSQL ``fsync=on``, ``synchronous_commit=on``).

Each configuration starts ``hubs`` worker processes on one store (a SQLite file, or a database
of a throwaway PostgreSQL server on loopback, :mod:`camgate.testing.pgserver`), each with its
own gate over the same key; they start together and each makes ``--decisions`` decisions in a
row over 200 enrolled cameras. Reported per configuration: decisions/s (all hubs together:
decisions over the longest hub's wall time), the per-decision latency (median, p95, p99), and
the ratio to SQLite with the same number of hubs, measured in the same run.

With ``--waits``, a thread samples ``pg_stat_activity`` (every 5 ms) while the PostgreSQL hubs
run and reports, per configuration, what their backends were doing: running, idle between
statements, or waiting (``wait_event_type:wait_event``; a heavyweight-lock wait also names the
lock: ``advisory`` or the relation) — where two hubs wait for each other.

Usage: uv run python bench/decisions_engines.py [--decisions 300] [--cameras 200] [--waits]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import summary, write_result
from camgate import ConsentTerms, Gate, GeoPoint, Owner, Waiver
from camgate.gate import builtin_plugins
from camgate.grants import GrantSigner
from camgate.plugins import PluginHost
from camgate.store import Store
from camgate.testing import DeclaringAdapters, camera_north_of

CENTRE = GeoPoint(32.2988, -90.1848)


def _gate(target: str, home: Path) -> Gate:
    store = Store(target, home=home)
    host = PluginHost(
        builtins=builtin_plugins(store, None) | {"adapters": DeclaringAdapters()},
        entry_points=False,
    )
    signer = GrantSigner.load_or_create(home / "hub.key")
    return Gate(store=store, host=host, signer=signer)


def populate(target: str, home: Path, cameras: int) -> str:
    """Owners, cameras enrolled for snapshots, one open incident; returns the incident id."""
    gate = _gate(target, home)
    try:
        waiver = gate.publish_waiver(Waiver("w1", "I agree."))
        for i in range(cameras):
            owner = f"o{i}"
            gate.add_owner(Owner(owner, f"Owner {i}"))
            gate.add_camera(camera_north_of(f"c{i}", owner, CENTRE, 10.0 + i))
            gate.enrol(
                owner,
                [f"c{i}"],
                waiver_version="w1",
                waiver_sha256=waiver.sha256,
                terms=ConsentTerms(scopes=["snapshot"]),
            )
        return gate.report_incident("burglary", CENTRE, radius_m=5000).id
    finally:
        gate.store.close()
        gate.audit.close()


def worker(target: str, home: str, incident: str, n: int, cameras: int, go: str) -> None:
    """One hub: wait for ``go``, make ``n`` decisions, print JSON (latencies, wall time)."""
    import anyio

    gate = _gate(target, Path(home))
    pid = os.getpid()

    async def run() -> dict[str, Any]:
        samples = []
        start = time.perf_counter()
        for i in range(n):
            t0 = time.perf_counter()
            await gate.request_access(
                incident, f"c{(pid + i) % cameras}", "snapshot", requested_by="bench", wait=False
            )
            samples.append(time.perf_counter() - t0)
        return {"wall_s": time.perf_counter() - start, "samples": samples}

    print("ready", flush=True)
    while not os.path.exists(go):  # every hub starts at once
        time.sleep(0.001)
    try:
        out = anyio.run(run)
    finally:
        anyio.run(gate.aclose)
    print(json.dumps(out), flush=True)


_WAITS_SQL = """
SELECT a.state, coalesce(a.wait_event_type || ':' || a.wait_event, 'running'),
       (SELECT l.locktype || coalesce(':' || l.relation::regclass::text, '')
        FROM pg_locks l WHERE l.pid = a.pid AND NOT l.granted LIMIT 1)
FROM pg_stat_activity a
WHERE a.datname = current_database() AND a.pid <> pg_backend_pid()
  AND a.backend_type = 'client backend' AND a.query NOT LIKE 'LISTEN%%'
"""


class WaitSampler:
    """Samples what the hubs' PostgreSQL backends are doing, every ``every_s``, until stopped:
    the share of samples per ``state / wait event [/ lock]``."""

    def __init__(self, dsn: str, every_s: float = 0.005) -> None:
        import psycopg

        self._conn = psycopg.connect(dsn, autocommit=True)
        self._every = every_s
        self._seen: Counter[str] = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._every):
            for state, wait, lock in self._conn.execute(_WAITS_SQL).fetchall():
                self._seen[" / ".join(x for x in (state, wait, lock) if x)] += 1

    def stop(self) -> dict[str, float]:
        """Stop; the share (0-1) of backend samples per activity, largest first."""
        self._stop.set()
        self._thread.join()
        self._conn.close()
        total = sum(self._seen.values()) or 1
        return {k: round(n / total, 3) for k, n in self._seen.most_common()}


def configuration(target: str, home: Path, incident: str, hubs: int, args: Any) -> dict[str, Any]:
    go = home / f"go-{hubs}-{time.monotonic_ns()}"
    me = str(Path(__file__).resolve())
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                me,
                "--worker",
                target,
                str(home),
                incident,
                str(args.decisions),
                str(args.cameras),
                str(go),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(hubs)
    ]
    for p in procs:
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    sampler = WaitSampler(target) if args.waits and target.startswith("postgres") else None
    go.touch()
    results = []
    for p in procs:
        out, _ = p.communicate(timeout=1800)
        if p.returncode != 0:
            raise SystemExit(f"a hub failed ({p.returncode})")
        results.append(json.loads(out.strip().splitlines()[-1]))
    samples = [s for r in results for s in r["samples"]]
    wall = max(r["wall_s"] for r in results)
    out = {
        "hubs": hubs,
        "decisions": len(samples),
        "decisions_per_s": round(len(samples) / wall, 1),
        "latency": summary(samples),
    }
    if sampler is not None:
        out["backend_activity"] = sampler.stop()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--decisions", type=int, default=300, help="per hub")
    parser.add_argument("--cameras", type=int, default=200)
    parser.add_argument(
        "--waits", action="store_true", help="sample PostgreSQL wait events (see above)"
    )
    parser.add_argument("--worker", nargs=6, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        target, home, incident, n, cameras, go = args.worker
        worker(target, home, incident, int(n), int(cameras), go)
        return
    from camgate.testing.pgserver import PostgresServer

    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp, PostgresServer() as server:
        for hubs in (1, 2):
            for engine in ("sqlite", "postgres"):
                home = Path(tmp) / f"{engine}-{hubs}"
                home.mkdir()
                target = server.create_database() if engine == "postgres" else str(home / "s.db")
                incident = populate(target, home, args.cameras)
                results[f"{engine}_{hubs}_hub{'s' if hubs > 1 else ''}"] = configuration(
                    target, home, incident, hubs, args
                )
    for key, value in results.items():
        engine, rest = key.split("_", 1)
        base = results[f"sqlite_{rest}"]
        value["ratio_vs_sqlite"] = {
            "decisions_per_s": round(value["decisions_per_s"] / base["decisions_per_s"], 2),
            "median": round(value["latency"]["median_ms"] / base["latency"]["median_ms"], 2),
            "p99": round(value["latency"]["p99_ms"] / base["latency"]["p99_ms"], 2),
        }
    write_result(
        "decisions_engines",
        {"decisions_per_hub": args.decisions, "cameras": args.cameras, "results": results},
    )


if __name__ == "__main__":
    main()
