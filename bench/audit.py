"""Audit log throughput on SQLite: durable appends with concurrent writers, and verification.

Appends: W threads (1, 8, 64) each append records as fast as they can for a fixed count; every
append returns only after the COMMIT holding its record (WAL, synchronous=FULL). Measured with
group commit (camgate's AuditLog) and, in the same run, a naive baseline committing each record
on its own (``group_commit=False``: same chaining, one transaction per record). Each record is
about one of 1 000 owners, with a body shaped like an ``access.start``.

Verify: a log of N records (default 1 000 000, built with large batches) verified end to end by
``AuditLog.verify`` — hashes, links, owner sub-chains, checkpoint signatures and owners' roots.

Usage: uv run python bench/audit.py [--records 1000000] [--appends 2000] [--dir DIR]
The database lives on a real disk (``--dir``, default the current directory), not tmpfs.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_result
from camgate.audit import AuditLog
from camgate.audit.sqlite import Entry, SQLiteAuditBackend
from camgate.codec import canonical
from camgate.grants import GrantSigner

OWNERS = 1000


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


def appends(path: Path, writers: int, total: int, group: bool, signer: GrantSigner) -> float:
    backend = SQLiteAuditBackend(
        path, sign=signer.sign_message, public_key=signer.public_key, group_commit=group
    )
    per = max(1, total // writers)
    start = threading.Barrier(writers + 1)

    def work(w: int) -> None:
        start.wait()
        for j in range(per):
            i = w * per + j
            backend.append(
                Entry("access.start", "2026-10-01T10:00:00+00:00", body(i), (f"o{i % OWNERS}",))
            )

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


def build(path: Path, n: int, signer: GrantSigner) -> None:
    backend = SQLiteAuditBackend(path, sign=signer.sign_message, public_key=signer.public_key)
    from camgate.audit.sqlite import _Pending

    batch = 5000
    for start in range(0, n, batch):
        pending = [
            _Pending(
                Entry("access.start", "2026-10-01T10:00:00+00:00", body(i), (f"o{i % OWNERS}",))
            )
            for i in range(start, min(n, start + batch))
        ]
        backend._commit(pending, force_checkpoint=False)
    backend.checkpoint()
    backend.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--appends", type=int, default=2000, help="records per append run")
    parser.add_argument("--dir", default=".", help="where the scratch databases go (real disk)")
    args = parser.parse_args()
    signer = GrantSigner.generate()
    work = Path(tempfile.mkdtemp(prefix="camgate-bench-audit-", dir=args.dir))
    try:
        rows = []
        for writers in (1, 8, 64):
            naive = appends(work / f"naive{writers}.db", writers, args.appends, False, signer)
            group = appends(work / f"group{writers}.db", writers, args.appends, True, signer)
            rows.append(
                {
                    "writers": writers,
                    "group_commit_per_s": round(group),
                    "naive_per_s": round(naive),
                    "speedup": round(group / naive, 2),
                }
            )
            print(rows[-1], flush=True)
        db = work / "verify.db"
        t0 = time.perf_counter()
        build(db, args.records, signer)
        built = time.perf_counter() - t0
        log = AuditLog(backend=SQLiteAuditBackend(db, public_key=signer.public_key))
        t0 = time.perf_counter()
        result = log.verify()
        elapsed = time.perf_counter() - t0
        assert result.ok and result.records == args.records, result
        verify = {
            "records": result.records,
            "checkpoints": result.checkpoints,
            "owners": OWNERS,
            "seconds": round(elapsed, 2),
            "records_per_s": round(result.records / elapsed),
            "build_seconds": round(built, 1),
            "bytes": db.stat().st_size,
        }
        print(verify, flush=True)
        write_result(
            "audit",
            {
                "store": "sqlite (WAL, synchronous=FULL)",
                "appends_per_run": args.appends,
                "appends": rows,
                "verify": verify,
                "targets": {"speedup_at_64": 5.0, "verify_records_per_s": 500_000},
            },
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
