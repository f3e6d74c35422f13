"""Where verification's time goes: CPU nanoseconds per record of each step, on SQLite.

Builds a log like ``bench/audit.py``'s (1 000 owners, a checkpoint every 4 096 records) and
times, in CPU time of this process (median of ``--runs``), each piece of one verification pass
on its own: SQLite walking the table, Python's ``sqlite3`` handing the rows over, building the
hashed bytes, SHA-256, and the whole fast path and sequential verifier. It also times the
alternatives tried for issue #8 — the hashed text built by SQLite in the SELECT (``||`` and
``printf``), rows read as undecoded bytes — so their cost can be checked on another machine.

Usage: uv run python bench/audit_verify_costs.py [--records 200000] [--runs 3] [--dir DIR]
Prints JSON; writes nothing under bench/results.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from audit import build
from camgate.audit.chain import ChainVerifier, preimage
from camgate.audit.fastverify import scan_range
from camgate.audit.sqlite import SQLiteAuditBackend, read_rows
from camgate.grants import GrantSigner

COLUMNS = "seq, at, kind, body, owners, prev, hash"
_QUOTE = "'\"'"
SQL_PREIMAGE = (
    "'{\"at\":' || json_quote(at) || ',\"body\":' || body || ',\"kind\":' || json_quote(kind)"
    " || CASE WHEN owners = '{}' THEN '' ELSE ',\"owners\":' || owners END"
    f" || ',\"prev\":' || {_QUOTE} || prev || {_QUOTE} || ',\"seq\":' || seq || '}}'"
)
SQL_PRINTF = (
    'printf(\'{"at":%s,"body":%s,"kind":%s%s,"prev":"%s","seq":%d}\', json_quote(at),'
    " body, json_quote(kind), CASE WHEN owners = '{}' THEN '' ELSE ',\"owners\":' || owners END,"
    " prev, seq)"
)


def fetch(path: Path, columns: str, *, raw: bool = False) -> Callable[[], None]:
    def run() -> None:
        conn = sqlite3.connect(path)
        if raw:
            conn.text_factory = bytes
        cur = conn.execute(f"SELECT {columns} FROM audit ORDER BY seq")
        while cur.fetchmany(4096):
            pass
        conn.close()

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--dir", default=".", help="where the scratch database goes (real disk)")
    args = parser.parse_args()
    n = args.records
    signer = GrantSigner.generate()
    work = Path(tempfile.mkdtemp(prefix="camgate-bench-costs-", dir=args.dir))
    try:
        db = work / "costs.db"
        build(SQLiteAuditBackend(db, sign=signer.sign_message, public_key=signer.public_key), n)
        backend = SQLiteAuditBackend(db, public_key=signer.public_key)
        cps = backend.checkpoints()
        rows = list(read_rows(db, None, None))
        texts = [preimage(*r[:6]) for r in rows]
        sha = hashlib.sha256
        steps: dict[str, Callable[[], object]] = {
            "sqlite_walk_only (count(*))": lambda: (
                sqlite3.connect(db).execute("SELECT count(*) FROM audit").fetchone()
            ),
            "fetch_seq_only": fetch(db, "seq"),
            "fetch_7_columns_str": fetch(db, COLUMNS),
            "fetch_7_columns_bytes": fetch(db, COLUMNS, raw=True),
            "fetch_sql_built_preimage_and_hash (||)": fetch(db, f"{SQL_PREIMAGE}, hash"),
            "fetch_sql_built_preimage_and_hash (printf)": fetch(db, f"{SQL_PRINTF}, hash"),
            "python_preimage (fetched rows)": lambda: [preimage(*r[:6]) for r in rows],
            "sha256_hexdigest (built preimages)": lambda: [sha(t).hexdigest() for t in texts],
            "fast_path_scan_range (all checks)": lambda: scan_range(
                backend.range_reader(), None, None, 0, [c.seq for c in cps]
            ),
            "sequential_verifier (all checks)": lambda: ChainVerifier(cps, signer.public_key).run(
                backend.rows()
            ),
        }
        sql_text = sqlite3.connect(db).execute(f"SELECT {SQL_PREIMAGE} FROM audit ORDER BY seq")
        agree = all(t == s.encode() for t, (s,) in zip(texts, sql_text.fetchall(), strict=True))
        out: dict[str, object] = {
            "records": n,
            "sqlite": sqlite3.sqlite_version,
            "sql_built_preimage_equals_python": agree,
        }
        for name, step in steps.items():
            samples = []
            for _ in range(args.runs):
                c0 = time.process_time()
                step()
                samples.append(time.process_time() - c0)
            out[name] = {"cpu_ns_per_record": round(statistics.median(samples) / n * 1e9)}
            print(name, out[name], flush=True)
        print(json.dumps(out, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
