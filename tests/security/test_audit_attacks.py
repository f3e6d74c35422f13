"""Attacks on the audit log and its store (issue #12, items 5, 7 and the database parts of 18).

Real parts only: SQLite files edited with a plain sqlite3 connection as someone with the file
would, a real PostgreSQL server (``camgate.testing.pgserver``), real ``camgate`` processes
(``run_cli``), a real read-only mount and a real full filesystem (tmpfs mounted here; we run as
root in CI).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from camgate.audit import AUDIT_DSN_ENV, AuditLog
from camgate.errors import AuditError
from camgate.grants import GrantSigner
from camgate.store import Store
from camgate.testing import run_cli

DOC = Path(__file__).resolve().parents[2] / "docs" / "audit.md"
OWNERS = ["alice", "bob", "carol"]


# ---------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def postgres() -> Iterator[Any]:
    """A real PostgreSQL server for this module (as core/tests/conftest.py starts one)."""
    from camgate.testing.pgserver import server_for_tests

    with server_for_tests() as server:
        yield server


@pytest.fixture(params=["sqlite", "postgres"])
def store_dsn(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str | None:
    """Runs a test once per audit store: None for SQLite, else a fresh database's DSN."""
    monkeypatch.delenv(AUDIT_DSN_ENV, raising=False)
    if request.param == "postgres":
        return str(request.getfixturevalue("postgres").create_database())
    return None


class Log(AuditLog):
    """An AuditLog whose close() also closes its store (these tests then edit the files)."""

    def close(self) -> None:
        super().close()
        assert self._store is not None
        self._store.close()


def make_log(db: Path, dsn: str | None, n: int = 40, every: int = 10) -> AuditLog:
    log = Log(Store(db), dsn=dsn, checkpoint_every=every)
    for i in range(n):
        log.append("event", {"n": i, "owner": OWNERS[i % 3], "text": f"record {i}"})
    return log


def execute(db: Path, dsn: str | None, sql: str) -> None:
    """Run ``sql`` on the log's database as an attacker with the file would (no camgate)."""
    if dsn is not None:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(sql)  # type: ignore[arg-type]
        return
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        conn.executescript(sql)
    finally:
        conn.close()


def cli(db: Path, dsn: str | None, *args: str) -> subprocess.CompletedProcess[str]:
    extra = ["--audit-dsn", dsn] if dsn else []
    done = run_cli("--db", str(db), *extra, *args, check=False)
    assert "Traceback" not in done.stderr, done.stderr
    return done


def stdlib_script(tmp_path: Path) -> Path:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.DOTALL)
    path = tmp_path / "verify_audit.py"
    path.write_text(next(b for b in blocks if b.startswith('"""verify_audit.py')))
    return path


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A real tmpfs of ``size`` mounted at ``path`` (we run as root), unmounted afterwards."""
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


# ---------------------------------------------------------------------- item 7: truncation


def test_deleting_every_record_and_checkpoint_is_truncated_not_ok(
    tmp_path: Path, store_dsn: str | None
) -> None:
    db = tmp_path / "a.db"
    make_log(db, store_dsn).close()
    wipe = "DELETE FROM audit; DELETE FROM audit_checkpoints; DELETE FROM audit_owner_records;"
    execute(db, store_dsn, wipe + " DELETE FROM audit_owner_heads;")
    done = cli(db, store_dsn, "audit", "verify")
    assert done.returncode == 1 and "TRUNCATED" in done.stdout, done.stdout + done.stderr
    result = AuditLog(Store(db), dsn=store_dsn, read_only=True).verify()
    assert not result.ok and result.status == "truncated" and result.records == 0


def test_a_zero_byte_store_is_truncated_and_a_fresh_one_empty(tmp_path: Path) -> None:
    db = tmp_path / "a.db"
    make_log(db, None).close()
    for suffix in ("-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    db.write_bytes(b"")
    done = cli(db, None, "audit", "verify")
    assert done.returncode == 1 and "TRUNCATED" in done.stdout, done.stdout + done.stderr
    fresh = tmp_path / "fresh.db"
    AuditLog(Store(fresh)).close()
    done = cli(fresh, None, "audit", "verify", "--json")
    assert done.returncode == 1 and json.loads(done.stdout)["status"] == "empty"


def test_cutting_below_the_last_checkpoint_and_deleting_it_is_truncated(
    tmp_path: Path, store_dsn: str | None
) -> None:
    db = tmp_path / "a.db"
    log = make_log(db, store_dsn)
    last = log.checkpoints()[-1].seq
    log.close()
    execute(
        db,
        store_dsn,
        f"DELETE FROM audit WHERE seq >= {last - 3}; "
        f"DELETE FROM audit_checkpoints WHERE seq >= {last - 3};",
    )
    done = cli(db, store_dsn, "audit", "verify")  # no --against: the seal is the witness
    assert done.returncode == 1, done.stdout
    assert f"TRUNCATED at record {last - 3}" in done.stdout, done.stdout


def test_export_refuses_a_truncated_log_and_a_forced_export_fails_every_verifier(
    tmp_path: Path, store_dsn: str | None
) -> None:
    db = tmp_path / "a.db"
    log = make_log(db, store_dsn)
    assert log.public_key is not None
    key = log.public_key.hex()
    last = log.checkpoints()[-1].seq
    log.close()
    execute(
        db,
        store_dsn,
        f"DELETE FROM audit WHERE seq > {last - 5}; "
        f"DELETE FROM audit_checkpoints WHERE seq > {last - 5};",
    )
    done = cli(db, store_dsn, "audit", "export")
    assert done.returncode == 1 and done.stdout == "", done.stdout
    assert "truncated" in done.stderr and f"record {last - 4}" in done.stderr, done.stderr
    forced = cli(db, store_dsn, "audit", "export", "--allow-unverified")
    assert forced.returncode == 0, forced.stderr
    assert json.loads(forced.stdout.splitlines()[0])["verified"] is False
    path = tmp_path / "forced.jsonl"
    path.write_text(forced.stdout, encoding="utf-8")
    script = subprocess.run(
        [sys.executable, "-I", "-S", str(stdlib_script(tmp_path)), str(path), key],
        capture_output=True,
        text=True,
        check=False,
    )
    assert script.returncode == 1 and "FAILED" in script.stdout, script.stdout + script.stderr
    report = run_cli(
        "report", "--period", "2026", "--out", str(tmp_path / "r"), "--export", str(path),
        "--key", key, check=False,
    )  # fmt: skip
    assert report.returncode == 1 and "Traceback" not in report.stderr, report.stderr


def test_a_record_that_is_not_utf8_is_named_by_export_not_a_traceback(tmp_path: Path) -> None:
    db = tmp_path / "a.db"
    make_log(db, None).close()
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("UPDATE audit SET body = CAST(x'7b226e223affff7d' AS TEXT) WHERE seq = 17")
    conn.close()
    done = cli(db, None, "audit", "export")
    assert done.returncode == 1 and done.stdout == "", done.stdout
    assert "at record 17" in done.stderr, done.stderr
    forced = cli(db, None, "audit", "export", "--allow-unverified")
    assert forced.returncode == 0, forced.stderr
    lines = [json.loads(x) for x in forced.stdout.splitlines()]
    assert lines[0]["first_bad"] == 17
    assert sum(1 for x in lines if x["type"] in ("record", "unreadable")) == 40


def test_records_left_unsealed_are_sealed_on_an_idle_system(
    tmp_path: Path, store_dsn: str | None
) -> None:
    log = Log(
        Store(tmp_path / "a.db"), dsn=store_dsn, checkpoint_every=10_000, checkpoint_interval_s=1
    )
    for i in range(3):
        log.append("event", {"n": i, "owner": "alice"})
    deadline = time.monotonic() + 60
    while not log.checkpoints() or log.checkpoints()[-1].seq < 3:
        assert time.monotonic() < deadline, "the idle timer never sealed the records"
        time.sleep(0.05)
    result = log.verify()
    assert result.ok and result.unsealed == 0
    log.append("event", {"n": 3, "owner": "bob"})
    log.close()  # a short-lived process seals what it appended when it closes
    again = AuditLog(Store(tmp_path / "a.db"), dsn=store_dsn, read_only=True)
    assert again.checkpoints()[-1].seq == 4 and again.verify().unsealed == 0


# ---------------------------------------------------------------------- item 18: the store


def test_a_damaged_page_is_a_clear_error_naming_the_file(tmp_path: Path) -> None:
    db = tmp_path / "a.db"
    make_log(db, None, n=400).close()
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode=DELETE")  # every page in the file itself, no WAL
    conn.close()
    data = bytearray(db.read_bytes())
    page = 4096
    for off in range(page, len(data), page):  # the pages holding records (the schema is intact)
        if b"record 1" in data[off : off + page] and b"CREATE" not in data[off : off + page]:
            data[off + 8 : off + page] = os.urandom(page - 8)
    db.write_bytes(bytes(data))
    for args in (("audit", "verify"), ("audit", "export"), ("report", "--period", "2026",
                 "--out", str(tmp_path / "r"))):  # fmt: skip
        done = cli(db, None, *args)
        assert done.returncode == 1, done.stdout
        assert str(db) in done.stderr and "damaged" in done.stderr, done.stderr


def test_a_slice_file_that_is_not_a_slice_is_a_clear_error(tmp_path: Path) -> None:
    db = tmp_path / "a.db"
    log = make_log(db, None)
    assert log.public_key is not None
    log.close()
    for text in ("{}", "[]", '{"owner": 1, "end": {"payload": 3}}', "not json"):
        bad = tmp_path / "slice.json"
        bad.write_text(text)
        done = cli(db, None, "audit", "verify", "--slice", str(bad))
        assert done.returncode == 1 and "not an owner's slice" in done.stderr, done.stderr


def test_a_bad_key_is_bad_key_not_broken(tmp_path: Path) -> None:
    db = tmp_path / "a.db"
    make_log(db, None).close()
    for key in ("abcd", "zz", "00" * 31):
        done = cli(db, None, "audit", "verify", "--key", key)
        assert done.returncode == 1 and "bad key" in done.stderr, done.stdout + done.stderr
        assert "BROKEN" not in done.stdout


def test_a_deleted_key_is_never_recreated_and_verify_says_so(
    tmp_path: Path, store_dsn: str | None
) -> None:
    db = tmp_path / "a.db"
    make_log(db, store_dsn).close()
    key = db.with_suffix(".key")
    key.unlink()
    done = cli(db, store_dsn, "owner", "add", "--id", "o1", "--name", "O")
    assert done.returncode == 1 and str(key) in done.stderr and "missing" in done.stderr
    assert not key.exists()  # not silently recreated
    done = cli(db, store_dsn, "audit", "verify")
    assert done.returncode == 1 and "signing key missing" in done.stderr, done.stderr
    assert "BROKEN" not in done.stdout and not key.exists()
    # A replaced key (someone made a new one): the log's own key is pinned, writers are refused
    # and verify names the key, not a broken record.
    GrantSigner.load_or_create(tmp_path / "other.key")
    key.write_bytes((tmp_path / "other.key").read_bytes())
    done = cli(db, store_dsn, "owner", "add", "--id", "o1", "--name", "O")
    assert done.returncode == 1 and "sealed with key" in done.stderr, done.stderr
    done = cli(db, store_dsn, "audit", "verify")
    assert done.returncode == 1 and "ANOTHER KEY" in done.stdout, done.stdout + done.stderr


def test_read_only_commands_work_on_a_read_only_mount(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "ro", "64m") as mnt:
        db = mnt / "city.db"
        run_cli("--db", str(db), "owner", "add", "--id", "o1", "--name", "Owner One")
        make_log(db, None).close()
        before = sorted(p.name for p in mnt.iterdir())
        subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)
        verify = cli(db, None, "audit", "verify", "--json")
        assert verify.returncode == 0 and json.loads(verify.stdout)["records"] == 40, (
            verify.stdout + verify.stderr
        )
        export = cli(db, None, "audit", "export")
        assert export.returncode == 0 and len(export.stdout.splitlines()) > 40, export.stderr
        history = cli(db, None, "owner", "history", "o1")
        assert history.returncode == 0, history.stderr
        report = cli(db, None, "report", "--period", "2026", "--out", str(tmp_path / "rep"))
        assert report.returncode == 0, report.stderr
        explain = cli(db, None, "consent", "explain", "r-none")
        assert explain.returncode == 1 and "no decision" in explain.stderr, explain.stderr
        writes = cli(db, None, "owner", "add", "--id", "o2", "--name", "O")
        assert writes.returncode == 1 and str(db) in writes.stderr, writes.stderr
        assert sorted(p.name for p in mnt.iterdir()) == before


def test_a_full_disk_is_a_clear_disk_full_error(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "small", "4m") as mnt:
        db = mnt / "city.db"
        run_cli("--db", str(db), "owner", "add", "--id", "o1", "--name", "Owner One")
        filler = mnt / "filler"
        # The suppress is outermost: closing the file flushes, which may fail with ENOSPC too.
        with contextlib.suppress(OSError), open(filler, "wb") as fh:
            while True:
                fh.write(b"\0" * 65536)
                fh.flush()
        done = cli(db, None, "owner", "add", "--id", "o2", "--name", "x" * 100_000)
        assert done.returncode == 1, done.stdout
        assert "disk full" in done.stderr and str(db) in done.stderr, done.stderr
        filler.unlink()
        # The audit log's own writes, in a real process that fills the disk while it appends:
        # a clear AuditError, the file named.
        child = subprocess.run(
            [sys.executable, "-c", _APPEND_UNTIL_FULL, str(db), str(filler)],
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        assert "Traceback" not in child.stderr, child.stderr
        assert child.stdout.startswith("AuditError:") and "disk full" in child.stdout, child.stdout


_APPEND_UNTIL_FULL = """
import sys
from camgate.audit import AuditLog
from camgate.errors import CamgateError
from camgate.store import Store
log = AuditLog(Store(sys.argv[1]))
log.append("event", {"owner": "o1"})
try:
    with open(sys.argv[2], "wb") as fh:
        while True:
            fh.write(bytes(65536))
            fh.flush()
except OSError:
    pass
try:
    for i in range(100000):
        log.append("event", {"n": i, "owner": "o1", "pad": "y" * 50000})
except CamgateError as exc:
    print(f"{type(exc).__name__}: {exc}")
"""


# ---------------------------------------------------------------------- item 5: DSN passwords


def _dsn_shapes(host: str, port: int, password: str) -> list[str]:
    return [
        f"postgresql://postgres:{password}@{host}:{port}/postgres",
        f"postgres://postgres:{password}@{host}:{port}/postgres?sslmode=disable",
        f"postgresql://postgres@{host}:{port}/postgres?password={password}",
        f"postgresql://{host}:{port}/postgres?user=postgres&password={password}&x=1",
        f"host={host} port={port} user=postgres password={password} dbname=postgres",
        f"host={host} port={port} password='{password}' dbname=postgres",
        f"password = {password} host={host} port={port}",
    ]


@pytest.mark.parametrize(
    "password", ["secret%zz", "Se%cr'et%G1", "pa@ss/wo?rd%", "wh ite\\spa'ce%x"]
)
def test_no_part_of_a_dsn_password_reaches_an_error(
    tmp_path: Path, postgres: Any, password: str
) -> None:
    from camgate.audit.postgres import PostgresAuditBackend

    port = int(postgres.dsn.rsplit(":", 1)[1].split("/")[0])
    # A closed port (connection refused) and the real server (trust auth: it may let us in).
    shapes = _dsn_shapes("127.0.0.1", 1, password) + _dsn_shapes("127.0.0.1", port, password)
    pieces = {password[i : i + 4] for i in range(len(password) - 3)}
    for dsn in shapes:
        try:
            backend = PostgresAuditBackend(dsn)
        except AuditError as exc:
            text = str(exc) + repr(exc.__cause__) + repr(exc.__context__)
        else:
            text = repr(backend) + backend.where
            backend.close()
        assert not any(p in text for p in pieces), (dsn, text)
    done = run_cli(
        "--db", str(tmp_path / "c.db"), "--audit-dsn", shapes[0], "audit", "verify", check=False
    )
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert not any(p in done.stderr + done.stdout for p in pieces), done.stderr


def test_a_log_sealed_in_postgresql_refuses_its_seal_going_missing(
    tmp_path: Path, postgres: Any
) -> None:
    dsn = str(postgres.create_database(f"seal_{uuid.uuid4().hex[:8]}"))
    log = make_log(tmp_path / "a.db", dsn)
    assert log.seal_path is not None and log.seal_path.exists()
    log.close()
    log.seal_path.unlink()
    result = AuditLog(Store(tmp_path / "a.db"), dsn=dsn, read_only=True).verify()
    assert result.status == "unpinned" and not result.ok


# ---------------------------------------------------------------------- the verifiers agree


def _three_ways(log: AuditLog) -> list[tuple[bool, str, int | None]]:
    """The verdict of the compiled scan, the Python fast path and the sequential verifier."""
    from camgate.audit.chain import ChainVerifier
    from camgate.audit.fastverify import fast_verify
    from camgate.audit.seal import read_seal

    backend: Any = log.backend
    assert log.seal_path is not None

    def verifier() -> ChainVerifier:
        return ChainVerifier(
            backend.checkpoints(),
            log.public_key,
            seal=read_seal(log.seal_path),  # type: ignore[arg-type]
            sealed=True,
            log_id=backend.log_id,
        )

    found = []
    for native in (backend.native_scanner(), None):
        fast = fast_verify(
            verifier(), backend.range_reader(), backend.last_seq(), workers=2,
            records_per_worker=10, native=native,
        )  # fmt: skip
        result = fast if fast is not None else verifier().run(backend.rows(after=None))
        found.append((result.ok, result.status, result.first_bad))
    seq = verifier().run(backend.rows(after=None))
    found.append((seq.ok, seq.status, seq.first_bad))
    return found


def test_the_compiled_scan_the_fast_path_and_the_sequential_verifier_agree(
    tmp_path: Path, store_dsn: str | None
) -> None:
    db = tmp_path / "a.db"
    log = make_log(db, store_dsn, n=60)
    assert log.verify().ok and len(set(_three_ways(log))) == 1
    last = log.checkpoints()[-1].seq
    keep = last - 7
    execute(
        db, store_dsn, f"DELETE FROM audit WHERE seq > {keep}; "
        f"DELETE FROM audit_checkpoints WHERE seq > {keep};",
    )  # fmt: skip
    ways = _three_ways(log)
    assert ways == [(False, "truncated", last - 6)] * 3, ways
    assert log.seal_path is not None
    log.seal_path.unlink()
    ways = _three_ways(log)
    assert ways == [(False, "unpinned", last - 6)] * 3, ways
    execute(db, store_dsn, "DELETE FROM audit; DELETE FROM audit_checkpoints;")
    ways = _three_ways(log)
    assert ways == [(False, "empty", None)] * 3, ways
    log.close()


def test_records_appended_to_an_export_after_its_last_checkpoint_are_not_counted(
    tmp_path: Path,
) -> None:
    from camgate.audit import record_hash

    db = tmp_path / "a.db"
    log = make_log(db, None, n=12)
    assert log.public_key is not None
    key = log.public_key.hex()
    log.close()
    lines = run_cli("--db", str(db), "audit", "export").stdout.splitlines()
    last = json.loads(lines[-1])
    assert last["type"] == "checkpoint"  # closing the log sealed every record
    head = last["payload"]["head"]
    # Forge a chain-consistent record after the last checkpoint (no key needed for that).
    at, body = "2026-11-02T10:00:00+00:00", {"n": 99, "text": "forged"}
    forged = {"seq": 13, "at": at, "kind": "event", "body": body, "prev": head, "owners": {}}
    forged["hash"] = record_hash(13, at, "event", body, head)
    path = tmp_path / "forged.jsonl"
    path.write_text("\n".join([*lines, json.dumps({"type": "record", **forged})]) + "\n")
    out = tmp_path / "rep"
    run_cli("report", "--period", "2026", "--out", str(out), "--export", str(path), "--key", key)
    report = json.loads((out / "report.json").read_text())
    assert report["log"]["records"] == 12, report["log"]


# ---------------------------------------------------------------------- F2: the seal rolled back


def _gate(db: Path, dsn: str | None) -> Any:
    """A gate on ``db`` (the hub's key beside it), with an adapter that only declares itself."""
    from camgate import Gate
    from camgate.audit import hub_signer
    from camgate.gate import builtin_plugins
    from camgate.plugins import PluginHost
    from camgate.testing import DeclaringAdapters

    store = Store(db)
    host = PluginHost(
        builtins=builtin_plugins(store) | {"adapters": DeclaringAdapters()}, entry_points=False
    )
    return Gate(store=store, host=host, signer=hub_signer(db), audit_dsn=dsn)


def _session(db: Path, dsn: str | None, i: int) -> dict[str, Any] | None:
    """One process's work, as /work/wt/review-notes/seal_rollback.py does it; the second
    session also enrols a camera and revokes it, and returns the owner's revocation notice."""
    import anyio
    from camgate import ConsentTerms, GeoPoint, Owner, Waiver
    from camgate.testing import camera_north_of

    g = _gate(db, dsn)
    notice = None
    try:
        if i == 0:
            g.publish_waiver(Waiver("w1", "I agree."))
        g.add_owner(Owner(f"o{i}", f"Owner {i}"))
        centre = GeoPoint(32.3, -90.18)
        g.report_incident("burglary", centre, 300.0)
        if i == 1:
            g.add_camera(camera_north_of("c1", "o1", centre, 40.0))
            waiver = g.store.get_waiver("w1")
            terms = ConsentTerms(scopes=["live"])
            g.enrol("o1", ["c1"], waiver_version="w1", waiver_sha256=waiver.sha256, terms=terms)
            anyio.run(g.revoke, "o1")
            notice = g.store.notices("o1")[-1]
    finally:
        anyio.run(g.aclose)
    return notice


def _roll_the_seal_back(db: Path, dsn: str | None, seal: Path) -> tuple[int, str]:
    """The attack of seal_rollback.py: put the log's oldest signed checkpoint (from its own
    table, no key needed) in the seal file and cut the log back to it. Returns its seq and
    its ``at``."""
    from camgate.audit.chain import Checkpoint

    if dsn is not None:
        with psycopg.connect(dsn) as conn:
            row = conn.execute(
                "select seq, payload, signature from audit_checkpoints order by seq"
            ).fetchone()
    else:
        conn3 = sqlite3.connect(db)
        row = conn3.execute(
            "select seq, payload, signature from audit_checkpoints order by seq"
        ).fetchone()
        conn3.close()
    assert row is not None
    seq, payload, sig = row
    old = Checkpoint(json.loads(payload), sig)
    seal.write_text(json.dumps(old.to_json(), sort_keys=True))
    execute(
        db,
        dsn,
        f"delete from audit where seq > {seq}; delete from audit_checkpoints where seq > {seq}; "
        f"delete from audit_owner_records where seq > {seq};",
    )
    return int(seq), str(old.payload["at"])


def test_a_rolled_back_seal_is_not_ok_and_an_owners_notice_proves_the_cut(
    tmp_path: Path, store_dsn: str | None
) -> None:
    """F2: someone who can write the store's directory rolls the seal back to an older signed
    checkpoint and cuts the log to it. Verification with no outside witness no longer says
    OK: it says what it proved (consistent up to that checkpoint) and that it cannot rule a
    cut-back out; the owner's notice, which carries a later checkpoint, makes it TRUNCATED."""
    db = tmp_path / "g.db"
    assert _session(db, store_dsn, 0) is None
    notice = _session(db, store_dsn, 1)
    assert notice is not None and notice["event"] == "revoked"
    witness = notice["witness"]
    assert witness is not None and witness["type"] == "checkpoint"
    revoked = [
        r.seq for r in AuditLog(Store(db), dsn=store_dsn, read_only=True).records("consent.revoked")
    ]
    assert witness["payload"]["seq"] >= revoked[-1]  # the notice's own record is covered
    saved = tmp_path / "notice.json"  # what the owner keeps, away from the hub's machine
    saved.write_text(json.dumps(notice))
    before = cli(db, store_dsn, "audit", "verify", "--witness", str(saved))
    assert before.returncode == 0 and before.stdout.startswith("audit log verified"), before

    reader = AuditLog(Store(db), dsn=store_dsn, read_only=True)
    assert reader.seal_path is not None
    seq, at = _roll_the_seal_back(db, store_dsn, reader.seal_path)
    assert seq < witness["payload"]["seq"]

    done = cli(db, store_dsn, "audit", "verify")
    assert done.returncode == 0, done.stdout + done.stderr
    assert not done.stdout.startswith("audit log verified"), done.stdout
    assert done.stdout.startswith("audit log consistent"), done.stdout
    assert f"up to the checkpoint signed at {at} (seq {seq})" in done.stdout, done.stdout
    assert "cannot rule out" in done.stdout and "cut back" in done.stdout, done.stdout
    as_json = json.loads(cli(db, store_dsn, "audit", "verify", "--json").stdout)
    assert as_json["status"] == "consistent" and as_json["witnessed_seq"] is None, as_json
    assert (as_json["signed_seq"], as_json["signed_at"]) == (seq, at)

    for given in (str(saved), json.dumps(notice), json.dumps(witness)):
        done = cli(db, store_dsn, "audit", "verify", "--witness", given)
        assert done.returncode == 1, done.stdout + done.stderr
        assert f"TRUNCATED at record {seq + 1}" in done.stdout, done.stdout
    result = reader.verify(known=_witness_checkpoints(notice))
    assert (result.ok, result.status) == (False, "truncated")


def _witness_checkpoints(doc: Any) -> list[Any]:
    from camgate.audit.seal import read_witnesses

    return read_witnesses(json.dumps(doc))


def test_a_witness_not_signed_by_the_hub_is_refused_and_another_logs_is_a_replacement(
    tmp_path: Path,
) -> None:
    db = tmp_path / "a.db"
    log = make_log(db, None)
    witness = log.checkpoints()[-1].to_json()
    log.close()
    forged = json.loads(json.dumps(witness))
    forged["payload"]["seq"] = 10_000  # claims a longer log: its signature no longer holds
    done = cli(db, None, "audit", "verify", "--witness", json.dumps(forged))
    assert done.returncode == 1 and "not signed by the key" in done.stderr, done.stderr
    for junk in ("{}", "not json", "[1, 2]", str(tmp_path / "missing.json")):
        done = cli(db, None, "audit", "verify", "--witness", junk)
        assert done.returncode == 1 and done.stderr.startswith("camgate: "), done.stderr
    # The same hub (same key) started another log in its place: the owner's witness names
    # the old log, so the new log is a replacement, never "verified".
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    log.seal_path.unlink()  # type: ignore[union-attr]
    make_log(db, None, n=60).close()
    done = cli(db, None, "audit", "verify", "--witness", json.dumps(witness))
    assert done.returncode == 1 and "TRUNCATED" in done.stdout and "replaced" in done.stdout


def test_records_a_killed_process_left_unsealed_are_sealed_by_the_next_writable_open(
    tmp_path: Path, store_dsn: str | None
) -> None:
    """A process SIGKILLed after appending (no close, no timer) leaves records no checkpoint
    covers. The next process that opens the log for writing — here a Gate that appends
    nothing — signs them at once; a missing seal is not papered over the same way."""
    import anyio
    from camgate import Gate

    db = tmp_path / "g.db"
    make_log(db, store_dsn, n=10).close()
    child = subprocess.run(
        [
            sys.executable,
            "-c",
            "import os, signal, sys\n"
            "from camgate.audit import AuditLog\n"
            "from camgate.store import Store\n"
            "log = AuditLog(Store(sys.argv[1]), dsn=sys.argv[2] or None,\n"
            "               checkpoint_every=10**6, checkpoint_interval_s=3600)\n"
            "for i in range(3):\n"
            "    log.append('event', {'n': i, 'owner': 'alice'})\n"
            "os.kill(os.getpid(), signal.SIGKILL)\n",
            str(db),
            store_dsn or "",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr
    reader = AuditLog(Store(db), dsn=store_dsn, read_only=True)
    result = reader.verify()
    assert (result.records, result.unsealed) == (13, 3), result
    assert reader.seal_path is not None
    kept = reader.seal_path.read_bytes()

    gate = Gate.open(db, entry_points=False, audit_dsn=store_dsn)
    try:
        assert gate.audit.checkpoints()[-1].seq == 13  # signed at open, before any append
    finally:
        anyio.run(gate.aclose)
    result = reader.verify()
    assert (result.ok, result.unsealed, result.signed_seq) == (True, 0, 13), result
    assert json.loads(reader.seal_path.read_text())["payload"]["seq"] == 13

    # Without its seal, an open leaves the verdict for the auditor to see.
    reader.seal_path.write_bytes(kept)
    execute(db, store_dsn, "DELETE FROM audit_checkpoints WHERE seq = 13;")
    reader.seal_path.unlink()
    anyio.run(Gate.open(db, entry_points=False, audit_dsn=store_dsn).aclose)
    assert reader.verify().status == "unpinned"
