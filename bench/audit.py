"""Audit log throughput on SQLite and PostgreSQL: durable appends with concurrent writers, and
verification.

Appends: W threads (1, 8, 64) each append records as fast as they can for a fixed count; every
append returns only after the COMMIT holding its record (SQLite: WAL, synchronous=FULL;
PostgreSQL: synchronous_commit=on, fsync=on). Measured with group commit (camgate's backends)
and, in the same run, a naive baseline committing each record on its own
(``group_commit=False``: same chaining, one transaction per record). Each record is about one of
1 000 owners, with a body shaped like an ``access.start``. PostgreSQL is a real server started
for the run (Debian's package, the same helper as the tests), its data on the same disk.

Verify: a log of N records (default 1 000 000, built with large batches) verified end to end —
hashes, links, owner sub-chains, checkpoint signatures and owners' roots — by the sequential
verifier (the baseline: what ``AuditLog.verify`` did before the fast path), by the Python fast
path with 1 and with W worker processes (default: the CPUs available), and on SQLite by the
compiled scan of camgate-native with 1 and W threads (``native_*``: what ``AuditLog.verify``
runs when it is installed). Each is run ``--runs`` times, interleaved; medians are reported, in
wall-clock time and per CPU-second (this process and its ended worker processes), with the load
average before and after. ``bench/audit_verify_costs.py`` breaks
one pass down into its steps.

Usage: uv run python bench/audit.py [--records 1000000] [--appends 2000] [--repeat 3]
       [--runs 3] [--pg-records N] [--dir DIR]
The databases live on a real disk (``--dir``, default the current directory), not tmpfs.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_result
from camgate.audit import AuditLog
from camgate.audit.base import ChainingBackend, Entry, _Pending
from camgate.audit.chain import ChainVerifier
from camgate.audit.fastverify import default_workers, fast_verify
from camgate.audit.postgres import PostgresAuditBackend
from camgate.audit.sqlite import SQLiteAuditBackend
from camgate.codec import canonical
from camgate.grants import GrantSigner
from camgate.testing.pgserver import PostgresServer

OWNERS = 1000
AT = "2026-10-01T10:00:00+00:00"


def body(i: int) -> str:
    grant = {
        "id": f"grt_{i:016x}",
        "camera_id": f"cam-{i % OWNERS}",
        "incident_id": "inc_3f9a0c12d4e5b6a7",
        "scope": "live",
        "issued_at": "2026-10-01T10:00:00+00:00",
        "expires_at": "2026-10-01T10:10:00+00:00",
    }
    return canonical({"grant": grant, "camera": f"cam-{i % OWNERS}"}).decode()


def appends(backend: ChainingBackend, writers: int, total: int) -> float:
    """Durable appends per second with ``writers`` threads appending ``total`` records."""
    per = max(1, total // writers)
    start = threading.Barrier(writers + 1)

    def work(w: int) -> None:
        start.wait()
        for j in range(per):
            i = w * per + j
            backend.append(Entry("access.start", AT, body(i), (f"o{i % OWNERS}",)))

    threads = [threading.Thread(target=work, args=(w,)) for w in range(writers)]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    backend.close()
    return per * writers / elapsed


def append_rows(
    name: str, make: Callable[[bool], ChainingBackend], total: int, repeat: int
) -> list[dict[str, Any]]:
    rows = []
    for writers in (1, 8, 64):
        naive, group = [], []
        for _ in range(repeat):  # interleaved, so both see the same noise
            naive.append(appends(make(False), writers, total))
            group.append(appends(make(True), writers, total))
        row = {
            "store": name,
            "writers": writers,
            "group_commit_per_s": round(statistics.median(group)),
            "naive_per_s": round(statistics.median(naive)),
            "speedup": round(statistics.median(group) / statistics.median(naive), 2),
            "group_runs": [round(x) for x in group],
            "naive_runs": [round(x) for x in naive],
        }
        print(row, flush=True)
        rows.append(row)
    return rows


def build(backend: ChainingBackend, n: int) -> None:
    """Write ``n`` records in batches of 5 000 (checkpoints every 4 096), then seal the head."""
    batch = 5000
    for start in range(0, n, batch):
        pending = [
            _Pending(Entry("access.start", AT, body(i), (f"o{i % OWNERS}",)))
            for i in range(start, min(n, start + batch))
        ]
        backend._commit(pending, force_checkpoint=False)
    backend.checkpoint()
    backend.close()


def cpu_seconds() -> float:
    """CPU time of this process and of its children that have ended (the worker processes of
    the fast path are joined before ``verify`` returns)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def verify_runs(backend: ChainingBackend, n: int, runs: int, workers: int) -> dict[str, Any]:
    """Sequential baseline, the Python fast path (1 and ``workers`` processes) and the compiled
    scan (1 and ``workers`` threads: what ``AuditLog.verify`` runs when camgate-native is
    installed), ``runs`` times each."""
    log = AuditLog(backend=backend)
    cps = backend.checkpoints()

    def python(w: int) -> Any:
        verifier = ChainVerifier(cps, backend.public_key)
        reader = backend.range_reader()  # type: ignore[attr-defined]
        found = fast_verify(verifier, reader, backend.last_seq(), workers=w)
        assert found is not None, "the Python fast path doubted an untouched log"
        return found

    modes: dict[str, Callable[[], Any]] = {
        "sequential": lambda: ChainVerifier(cps, backend.public_key).run(backend.rows()),
        "python_1": lambda: python(1),
        f"python_{workers}": lambda: python(workers),
    }
    if getattr(backend, "native_scanner", lambda: None)() is not None:
        modes["native_1"] = lambda: log.verify(workers=1)
        modes[f"native_{workers}"] = lambda: log.verify(workers=workers)
    times: dict[str, list[float]] = {m: [] for m in modes}
    cpu: dict[str, list[float]] = {m: [] for m in modes}
    load_before = os.getloadavg()
    for _ in range(runs):
        for mode, run in modes.items():  # interleaved, so all see the same noise
            c0, t0 = cpu_seconds(), time.perf_counter()
            result = run()
            times[mode].append(time.perf_counter() - t0)
            cpu[mode].append(cpu_seconds() - c0)
            assert result.ok and result.records == n, (mode, result)
    out: dict[str, Any] = {
        "records": n,
        "checkpoints": len(cps),
        "owners": OWNERS,
        "load_average_1_5_15_min": {
            "before": [round(x, 2) for x in load_before],
            "after": [round(x, 2) for x in os.getloadavg()],
        },
    }
    base = statistics.median(times["sequential"])
    for mode, samples in times.items():
        med = statistics.median(samples)
        out[mode] = {
            "median_s": round(med, 3),
            "records_per_s": round(n / med),
            "runs_records_per_s": [round(n / s) for s in samples],
            "speedup_vs_sequential": round(base / med, 2),
        }
        # CPU time (this process and its finished worker processes): less disturbed by the
        # other jobs on a shared machine than wall-clock time.
        out[mode]["records_per_cpu_s"] = round(n / statistics.median(cpu[mode]))
    print(out, flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--records", type=int, default=1_000_000, help="records to verify")
    parser.add_argument("--pg-records", type=int, default=None, help="(default: --records)")
    parser.add_argument("--appends", type=int, default=2000, help="records per append run")
    parser.add_argument("--repeat", type=int, default=3, help="append runs per setting")
    parser.add_argument("--runs", type=int, default=3, help="verify runs per mode")
    parser.add_argument("--workers", type=int, default=default_workers())
    parser.add_argument("--dir", default=".", help="where the scratch databases go (real disk)")
    parser.add_argument(
        "--verify-only",
        action="store_true",
        help="verification only (results/audit-verify, audit-verify-postgresql)",
    )
    parser.add_argument(
        "--store",
        choices=["sqlite", "postgresql"],
        default="sqlite",
        help="the store --verify-only verifies (sqlite)",
    )
    args = parser.parse_args()
    pg_records = args.records if args.pg_records is None else args.pg_records
    signer = GrantSigner.generate()
    keys: dict[str, Any] = {"sign": signer.sign_message, "public_key": signer.public_key}
    work = Path(tempfile.mkdtemp(prefix="camgate-bench-audit-", dir=args.dir))
    try:
        if args.verify_only and args.store == "postgresql":
            with PostgresServer(base_dir=Path(args.dir).resolve()) as server:
                dsn = server.create_database()
                build(PostgresAuditBackend(dsn, **keys), pg_records)
                result = verify_runs(
                    PostgresAuditBackend(dsn, public_key=signer.public_key),
                    pg_records,
                    args.runs,
                    args.workers,
                )
            write_result("audit-verify-postgresql", {"store": "postgresql", "verify": result})
            return
        if args.verify_only:
            db = work / "verify.db"
            build(SQLiteAuditBackend(db, **keys), args.records)
            result = verify_runs(
                SQLiteAuditBackend(db, public_key=signer.public_key),
                args.records,
                args.runs,
                args.workers,
            )
            write_result("audit-verify", {"store": "sqlite", "verify": result})
            return
        counter = iter(range(10**6))
        rows = append_rows(
            "sqlite",
            lambda group: SQLiteAuditBackend(
                work / f"a{next(counter)}.db", group_commit=group, **keys
            ),
            args.appends,
            args.repeat,
        )
        with PostgresServer(base_dir=Path(args.dir).resolve()) as server:
            rows += append_rows(
                "postgresql",
                lambda group: PostgresAuditBackend(
                    server.create_database(), group_commit=group, **keys
                ),
                args.appends,
                args.repeat,
            )
            pg_dsn = server.create_database()
            t0 = time.perf_counter()
            build(PostgresAuditBackend(pg_dsn, **keys), pg_records)
            pg_built = time.perf_counter() - t0
            pg_verify = verify_runs(
                PostgresAuditBackend(pg_dsn, public_key=signer.public_key),
                pg_records,
                args.runs,
                args.workers,
            )
            pg_verify["build_seconds"] = round(pg_built, 1)
        db = work / "verify.db"
        t0 = time.perf_counter()
        build(SQLiteAuditBackend(db, **keys), args.records)
        built = time.perf_counter() - t0
        verify = verify_runs(
            SQLiteAuditBackend(db, public_key=signer.public_key),
            args.records,
            args.runs,
            args.workers,
        )
        verify["build_seconds"] = round(built, 1)
        verify["bytes"] = db.stat().st_size
        write_result(
            "audit",
            {
                "stores": {
                    "sqlite": "WAL, synchronous=FULL",
                    "postgresql": "15 (Debian), fsync=on, synchronous_commit=on, loopback TCP",
                },
                "appends_per_run": args.appends,
                "repeat": args.repeat,
                "appends": rows,
                "verify_workers": args.workers,
                "verify": verify,
                "verify_postgresql": pg_verify,
                "targets": {"speedup_at_64": 5.0, "verify_records_per_s": 500_000},
            },
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
