"""What the audit log's readers and the retention run cost, against baselines in the same run.

Views: a log of R requests (default 10 000; five records each — decision, grant.issued,
access.start, access.end, owner.notified — so 50 000 records) about 1 000 owners, appended
through ``AuditLog.append`` by 32 threads. Timed: ``owner_history`` for one owner, and
``build_report`` for the month; the baseline is ``AuditLog.verify`` over the same log (which
reads and hashes every record once), so the ratios say what a view adds to one full pass.

Retention: F files (default 500) registered and expired, then deleted by ``Retention.run``
(each deletion: a 'deleting' mark, a durable audit record, the unlink, a 'deleted' mark);
the baseline unlinks F files of the same size with no record at all.

Usage: uv run python bench/audit_views.py [--requests 10000] [--files 500] [--dir DIR]
The database lives on a real disk (``--dir``, default the current directory), not tmpfs.
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
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_result
from camgate import Camera, ConsentTerms, Gate, GeoPoint, Owner, Waiver
from camgate.activity import owner_history
from camgate.audit import AuditLog
from camgate.report import Period, build_report
from camgate.store import Store

OWNERS = 1000
START = datetime(2026, 11, 1, tzinfo=UTC)


def request_records(i: int) -> list[tuple[str, dict[str, object], datetime]]:
    """The five records the gate writes for one granted, watched live request."""
    cam, at = f"cam-{i % OWNERS}", START + timedelta(seconds=40 * i)
    req = {
        "id": f"req_{i:016x}",
        "incident_id": f"inc_{i // 50:016x}",
        "camera_id": cam,
        "scope": "live",
        "requested_by": "officer-7",
        "requested_at": at.isoformat(),
        "purpose": "investigation",
        "duration_s": 60.0,
    }
    votes = [{"policy": "core.opt-in", "verdict": "allow", "reason": "enrolled"}]
    grant = {"id": f"grt_{i:016x}", "request_id": req["id"], "camera_id": cam, "scope": "live"}
    grant |= {"incident_id": req["incident_id"]}
    notice = {"owner_id": f"owner-{i % OWNERS}", "camera_id": cam, "event": "granted"}
    notice |= {"request_id": req["id"], "incident_kind": ("burglary", "shooting")[i % 2]}
    notice |= {"distance_m": float(50 + i % 400)}
    return [
        ("decision", {"request": req, "decision": {"allowed": True, "votes": votes}}, at),
        ("grant.issued", grant, at),
        ("access.start", {"grant": grant, "camera": cam}, at),
        ("access.end", {"grant": grant["id"], "camera": cam, "reason": "expired"}, at),
        ("owner.notified", notice, at),
    ]


def build_log(store: Store, requests: int, writers: int = 32) -> AuditLog:
    audit = AuditLog(store, owner_of=lambda cam: f"owner-{cam.split('-')[1]}")

    def work(w: int) -> None:
        for i in range(w, requests, writers):
            for kind, body, at in request_records(i):
                audit.append(kind, body, at)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return audit


def timed(func: object, repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        t = time.perf_counter()
        func()  # type: ignore[operator]
        samples.append(time.perf_counter() - t)
    return statistics.median(samples)


def views(folder: Path, requests: int) -> dict[str, object]:
    store = Store(folder / "views.db")
    store.add_owner(Owner("owner-7", "Owner Seven"))
    t = time.perf_counter()
    audit = build_log(store, requests)
    built = time.perf_counter() - t
    records = list(audit.records())
    verify_s = timed(lambda: audit.verify(), 3)
    history_s = timed(lambda: owner_history(store, audit, "owner-7"), 3)
    report_s = timed(lambda: build_report(list(audit.records()), Period.parse("2026-11")), 3)
    history = owner_history(store, audit, "owner-7")
    audit.close()
    store.close()
    return {
        "records": len(records),
        "owner_requests": history["summary"]["requests"],
        "build_s": round(built, 2),
        "baseline_verify_median_s": round(verify_s, 3),
        "owner_history_median_s": round(history_s, 3),
        "report_median_s": round(report_s, 3),
        "owner_history_vs_verify": round(history_s / verify_s, 2),
        "report_vs_verify": round(report_s / verify_s, 2),
    }


def retention(folder: Path, files: int) -> dict[str, object]:
    gate = Gate.open(folder / "ret.db")
    waiver = gate.publish_waiver(Waiver("w1", "I agree."))
    gate.add_owner(Owner("alice", "Alice"))
    gate.add_camera(Camera("a1", "rtsp", "rtsp://127.0.0.1:9/a1", "alice", GeoPoint(32.3, -90.2)))
    gate.enrol(
        "alice", ["a1"], waiver_version="w1", waiver_sha256=waiver.sha256,
        terms=ConsentTerms(scopes=["snapshot"]),
    )  # fmt: skip
    data = os.urandom(64 * 1024)
    old = gate.clock.now() - timedelta(days=60)
    for i in range(files):
        path = folder / f"f{i}.jpg"
        path.write_bytes(data)
        gate.retention.register(path, "snapshot", camera_id="a1", created_at=old)
    t = time.perf_counter()
    deleted = len(gate.retention.run().deleted)
    run_s = time.perf_counter() - t
    assert deleted == files and gate.audit.verify().ok
    gate.audit.close()
    gate.store.close()
    naive = []
    for i in range(files):
        path = folder / f"n{i}.jpg"
        path.write_bytes(data)
        naive.append(path)
    t = time.perf_counter()
    for path in naive:
        path.unlink()
    naive_s = time.perf_counter() - t
    return {
        "files": files,
        "file_bytes": len(data),
        "deletions_per_s": round(files / run_s, 1),
        "baseline_unlinks_per_s": round(files / naive_s, 1),
        "per_deletion_ms": round(run_s / files * 1000, 2),
        "baseline_per_unlink_ms": round(naive_s / files * 1000, 3),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--files", type=int, default=500)
    parser.add_argument("--dir", default=".", help="where the temporary databases go")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="camgate-bench-views-", dir=args.dir))
    try:
        result = {
            "note": "shared 2-core machine, noisy: compare ratios within one run",
            "views": views(folder, args.requests),
            "retention": retention(folder, args.files),
        }
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    write_result("audit_views", result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
