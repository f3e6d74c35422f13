"""The audit log: chain, owner sub-chains, signed checkpoints, tampering of every kind, slices.

Every test that touches a log runs on both stores (the ``audit_store`` fixture: SQLite, and a
real PostgreSQL server). Tampering is done the way an attacker with the database would: a plain
sqlite3 or psycopg connection to the real store, bypassing camgate.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import random
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest
from camgate.audit import (
    GENESIS,
    AuditLog,
    Checkpoint,
    OwnerSlice,
    record_hash,
    verify_owner_slice,
    verify_records,
)
from camgate.audit.chain import (
    leaf_hash,
    merkle_path,
    merkle_root,
    preimage,
    verify_merkle_path,
)
from camgate.cli import main
from camgate.codec import canonical
from camgate.errors import NotFound
from camgate.grants import GrantSigner
from camgate.store import Store
from hypothesis import given, settings
from hypothesis import strategies as st

OWNERS = ["alice", "bob", "carol"]


def make_log(path: Path, n: int = 40, every: int = 10) -> AuditLog:
    log = AuditLog(Store(path), checkpoint_every=every)
    for i in range(n):
        log.append("event", {"n": i, "owner": OWNERS[i % 3], "text": f"record {i}"})
    return log


@pytest.fixture
def log(tmp_path: Path, audit_store: str) -> AuditLog:
    return make_log(tmp_path / "a.db")


class Raw:
    """A plain connection to the log's database (sqlite3 or psycopg), autocommitting; SQL is
    written with ``?`` placeholders for both."""

    def __init__(self, log: AuditLog) -> None:
        self.dsn: str | None = getattr(log.backend, "_dsn", None)  # a PostgreSQL log
        if self.dsn:
            self.pg: psycopg.Connection[Any] | None = psycopg.connect(self.dsn, autocommit=True)
        else:
            self.pg = None
            self.lite = sqlite3.connect(log._store.path if log._store else "", isolation_level=None)

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        if self.pg is not None:
            return self.pg.execute(sql.replace("?", "%s"), params)  # type: ignore[arg-type]
        return self.lite.execute(sql, params)


def raw(log: AuditLog) -> Raw:
    return Raw(log)


def forge_from(log: AuditLog, first: int, body: dict[str, Any]) -> None:
    """Rewrite record ``first`` and re-chain everything after it consistently (no key needed)."""
    db = raw(log)
    rows = db.execute("SELECT seq, at, kind, body, owners, prev, hash FROM audit ORDER BY seq")
    heads: dict[str, str] = {}
    prev = GENESIS
    for seq, at, kind, text, owners, _prev, digest in rows.fetchall():
        data = json.loads(text) if seq != first else body
        links = {o: heads.get(o, GENESIS) for o in json.loads(owners)}
        if seq >= first:
            digest = record_hash(seq, at, kind, data, prev, links)
            db.execute(
                "UPDATE audit SET body=?, owners=?, prev=?, hash=? WHERE seq=?",
                (canonical(data).decode(), canonical(links).decode(), prev, digest, seq),
            )
        for o in links:
            heads[o] = digest
        prev = digest


def test_untouched_log_verifies_with_its_checkpoints(log: AuditLog) -> None:
    result = log.verify()
    assert result.ok and result.records == 40
    assert result.checkpoints == len(log.checkpoints()) >= 4
    assert result.unsealed == 40 - log.checkpoints()[-1].seq


def test_edited_body_is_found(log: AuditLog) -> None:
    raw(log).execute("UPDATE audit SET body=? WHERE seq=4", (json.dumps({"n": 99}),))
    result = log.verify()
    assert not result.ok and result.first_bad == 4 and "hash" in result.problem


def test_deleted_record_is_found(log: AuditLog) -> None:
    raw(log).execute("DELETE FROM audit WHERE seq=6")
    result = log.verify()
    assert not result.ok and result.first_bad == 7


def test_reordered_records_are_found(log: AuditLog) -> None:
    db = raw(log)
    db.execute("UPDATE audit SET seq=-1 WHERE seq=5")
    db.execute("UPDATE audit SET seq=5 WHERE seq=6")
    db.execute("UPDATE audit SET seq=6 WHERE seq=-1")
    result = log.verify()
    assert not result.ok and result.first_bad == 5


def test_rehashed_edit_breaks_the_next_link(log: AuditLog) -> None:
    rec = next(r for r in log.records() if r.seq == 3)
    body = {"n": 3, "owner": rec.body["owner"], "text": "rewritten"}
    digest = record_hash(3, rec.at, rec.kind, body, rec.prev, rec.owners)
    raw(log).execute("UPDATE audit SET body=?, hash=? WHERE seq=3", (json.dumps(body), digest))
    result = log.verify()
    assert not result.ok and result.first_bad == 4 and "link" in result.problem


def test_truncation_below_a_checkpoint_is_found(log: AuditLog) -> None:
    last = log.checkpoints()[-1].seq
    raw(log).execute("DELETE FROM audit WHERE seq >= ?", (last - 3,))
    result = log.verify()
    assert not result.ok and result.first_bad == last - 3 and "truncated" in result.problem


def test_truncation_with_its_checkpoints_is_found_against_an_earlier_export(
    log: AuditLog,
) -> None:
    earlier = [
        Checkpoint.from_json(json.loads(x)) for x in log.export_jsonl() if '"checkpoint"' in x
    ]
    cut = earlier[-2].seq
    db = raw(log)
    db.execute("DELETE FROM audit WHERE seq > ?", (cut - 2,))
    db.execute("DELETE FROM audit_checkpoints WHERE seq > ?", (cut - 2,))
    # The seal beside the store pins the last checkpoint: the cut is seen without a witness.
    result = log.verify()
    assert not result.ok and result.status == "truncated" and "seal" in result.problem
    # Delete the seal too, and the file alone proves nothing: that is what witnesses are for.
    assert log.seal_path is not None
    log.seal_path.unlink()
    assert log.verify().status == "unpinned"
    result = log.verify(known=earlier)
    assert not result.ok and result.first_bad == cut - 1 and "truncated" in result.problem


def test_consistently_forged_tail_is_found_by_the_checkpoint(log: AuditLog) -> None:
    cps = [c.seq for c in log.checkpoints()]
    target = cps[1] + 3  # between the second and third checkpoints
    forge_from(log, target, {"n": -1, "owner": "alice", "text": "nothing happened"})
    result = log.verify()
    assert not result.ok and "rewritten" in result.problem
    assert result.first_bad == cps[1] + 1 <= target  # the first record no signature vouches for


def test_forged_tail_with_forged_checkpoints_fails_the_signature(log: AuditLog) -> None:
    forge_from(log, 25, {"n": -1, "owner": "alice"})
    other = GrantSigner.generate()
    db = raw(log)
    for seq, payload in db.execute("SELECT seq, payload FROM audit_checkpoints").fetchall():
        head = db.execute("SELECT hash FROM audit WHERE seq=?", (seq,)).fetchone()[0]
        forged = Checkpoint(json.loads(payload) | {"head": head}, "")
        sig = other.sign_message(forged.message()).hex()
        db.execute(
            "UPDATE audit_checkpoints SET payload=?, signature=? WHERE seq=?",
            (canonical(forged.payload).decode(), sig, seq),
        )
    result = log.verify()
    assert not result.ok and "signature" in result.problem and result.first_bad == 1


def test_a_removed_checkpoint_is_found(log: AuditLog) -> None:
    middle = log.checkpoints()[1].seq
    raw(log).execute("DELETE FROM audit_checkpoints WHERE seq=?", (middle,))
    result = log.verify()
    assert not result.ok and "checkpoint before it is gone" in result.problem


def test_retagging_a_record_away_from_its_owner_is_found(log: AuditLog) -> None:
    rec = next(r for r in log.records() if r.seq == 33)
    digest = record_hash(33, rec.at, rec.kind, rec.body, rec.prev)  # no owners any more
    db = raw(log)
    db.execute("UPDATE audit SET owners='{}', hash=? WHERE seq=33", (digest,))
    db.execute("UPDATE audit SET prev=? WHERE seq=34", (digest,))
    assert not log.verify().ok


def test_records_carry_their_owners_through_cameras(tmp_path: Path, audit_store: str) -> None:
    from camgate.models import Camera, GeoPoint, Owner

    store = Store(tmp_path / "s.db")
    store.add_owner(Owner(id="alice", name="Alice"))
    store.add_camera(
        Camera(
            id="cam-a",
            owner_id="alice",
            adapter="rtsp",
            source="rtsp://h/x",
            position=GeoPoint(32.3, -90.2),
        )
    )
    log = AuditLog(store)
    first = log.append("access.start", {"grant": {"camera_id": "cam-a"}})
    second = log.append("consent.revoked", {"owner": "alice", "cameras": ["cam-a"]})
    third = log.append("incident.reported", {"kind": "burglary"})
    assert first.owners == {"alice": GENESIS}
    assert second.owners == {"alice": first.hash}
    assert third.owners == {}


def test_concurrent_appenders_share_commits_and_keep_one_chain(
    tmp_path: Path, audit_store: str
) -> None:
    log = AuditLog(Store(tmp_path / "c.db"), checkpoint_every=50)
    other = AuditLog(Store(tmp_path / "c.db"), checkpoint_every=50)  # a second writer, own conn
    seqs: list[int] = []
    lock = threading.Lock()

    def work(i: int) -> None:
        for j in range(25):
            rec = (log if i % 2 else other).append("event", {"owner": OWNERS[j % 3], "i": i})
            with lock:
                seqs.append(rec.seq)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(seqs) == list(range(1, 401))
    result = log.verify()
    assert result.ok and result.records == 400 and result.checkpoints >= 7


def test_verify_records_in_memory(log: AuditLog) -> None:
    assert verify_records(log.records()).ok


# ---------------------------------------------------------------------- owner slices


def test_owner_slice_between_checkpoints_verifies(log: AuditLog) -> None:
    cps = [c.seq for c in log.checkpoints()]
    piece = log.owner_slice("bob", cps[1], cps[3])
    assert piece.records and all(cps[1] < r.seq <= cps[3] for r in piece.records)
    assert all(r.body["owner"] == "bob" for r in piece.records)
    assert log.public_key is not None
    result = verify_owner_slice(OwnerSlice.from_json(piece.to_json()), log.public_key)
    assert result.ok, result.problem
    whole = log.owner_slice("bob")
    assert verify_owner_slice(whole, log.public_key).ok
    assert len(whole.records) == sum(1 for r in log.records() if r.body["owner"] == "bob") - sum(
        1 for r in log.records() if r.body["owner"] == "bob" and r.seq > whole.end.seq
    )


@pytest.mark.parametrize("tamper", ["omit", "edit", "reorder", "other-key", "wrong-proof"])
def test_owner_slice_with_anything_changed_fails(log: AuditLog, tamper: str) -> None:
    cps = [c.seq for c in log.checkpoints()]
    data = log.owner_slice("carol", cps[0], cps[3]).to_json()
    key = log.public_key
    assert key is not None
    if tamper == "omit":
        del data["records"][1]
    elif tamper == "edit":
        data["records"][0]["body"]["text"] = "changed"
    elif tamper == "reorder":
        data["records"][0], data["records"][1] = data["records"][1], data["records"][0]
    elif tamper == "other-key":
        key = GrantSigner.generate().public_key
    else:
        data["end_index"] = (data["end_index"] + 1) % data["end"]["payload"]["owners"]
    assert not verify_owner_slice(OwnerSlice.from_json(data), key).ok


def test_owner_slice_of_an_unknown_owner_is_not_found(log: AuditLog) -> None:
    with pytest.raises(NotFound):
        log.owner_slice("mallory")


# ---------------------------------------------------------------------- format


def _rfc_root(leaves: list[bytes]) -> bytes:
    if len(leaves) == 1:
        return leaves[0]
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    return hashlib.sha256(b"\x01" + _rfc_root(leaves[:k]) + _rfc_root(leaves[k:])).digest()


@pytest.mark.parametrize("n", range(1, 18))
def test_merkle_tree_is_rfc_9162_and_every_path_verifies(n: int) -> None:
    leaves = [leaf_hash(f"o{i}", "ab" * 32, i) for i in range(n)]
    root = merkle_root(leaves)
    assert root == _rfc_root(leaves)
    for i in range(n):
        path = merkle_path(leaves, i)
        assert verify_merkle_path(leaves[i], i, n, path, root)
        assert not verify_merkle_path(leaves[(i + 1) % n], i, n, path, root) or n == 1


_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)


@given(
    seq=st.integers(1, 10**9),
    at=st.text(),
    kind=st.text(),
    body=st.dictionaries(st.text(), _json, max_size=4),
    owners=st.dictionaries(st.text(min_size=1), st.just("cd" * 32), max_size=3),
)
def test_fast_preimage_is_the_canonical_json(
    seq: int, at: str, kind: str, body: dict[str, Any], owners: dict[str, str]
) -> None:
    body = json.loads(canonical(body))
    text = preimage(seq, at, kind, canonical(body).decode(), canonical(owners).decode(), "e" * 64)
    digest = hashlib.sha256(text).hexdigest()
    assert digest == record_hash(seq, at, kind, body, "e" * 64, owners)


@given(owner=st.text(), head=st.text(), seq=st.integers())
def test_fast_leaf_hash_is_the_canonical_json(owner: str, head: str, seq: int) -> None:
    expected = hashlib.sha256(b"\x00" + canonical({"head": head, "owner": owner, "seq": seq}))
    assert leaf_hash(owner, head, seq) == expected.digest()


# ---------------------------------------------------------------------- command line


def test_cli_verify_export_slice_and_a_tampered_file(
    log: AuditLog, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(tmp_path / "a.db")
    assert main(["--db", db, "audit", "verify", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["ok"] and out["records"] == 40 and out["checkpoints"] >= 4
    assert main(["--db", db, "audit", "checkpoint"]) == 0
    capsys.readouterr()
    assert main(["--db", db, "audit", "export"]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert lines[0]["type"] == "log" and lines[-1]["type"] == "checkpoint"
    assert lines[-1]["payload"]["seq"] == 40
    export = tmp_path / "export.jsonl"
    export.write_text("".join(json.dumps(x) + "\n" for x in lines))
    assert main(["--db", db, "audit", "slice", "alice"]) == 0
    slice_file = tmp_path / "alice.json"
    slice_file.write_text(capsys.readouterr().out)
    assert log.public_key is not None
    key = log.public_key.hex()
    assert main(["--db", db, "audit", "verify", "--slice", str(slice_file), "--key", key]) == 0
    assert "none left out" in capsys.readouterr().out
    raw(log).execute("DELETE FROM audit WHERE seq > 30")
    raw(log).execute("DELETE FROM audit_checkpoints WHERE seq > 30")
    # The seal beside the store pins record 40: the cut is seen even without --against.
    assert main(["--db", db, "audit", "verify"]) == 1
    assert "TRUNCATED at record 31" in capsys.readouterr().out
    assert main(["--db", db, "audit", "verify", "--against", str(export)]) == 1
    assert "TRUNCATED at record 31" in capsys.readouterr().out


# ---------------------------------------------------------------------- several processes

WRITER = r"""
import os, sys, threading, time
from camgate.audit import AuditLog
from camgate.store import Store

db, name, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
log = AuditLog(Store(db), checkpoint_every=64)
open(db + "." + name + ".ready", "w").close()
while not os.path.exists(db + ".go"):  # start together
    time.sleep(0.005)

def work(t):
    for n in range(count):
        log.append("event", {"owner": ["alice", "bob", "carol"][n % 3], "w": name, "t": t, "n": n})

threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
for t in threads:
    t.start()
for t in threads:
    t.join()
log.close()
"""


def test_two_processes_append_to_one_log_at_once(tmp_path: Path, audit_store: str) -> None:
    import subprocess
    import sys

    db = tmp_path / "shared.db"
    AuditLog(Store(db)).close()  # the hub's key and the tables exist before both start
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    procs = [
        subprocess.Popen([sys.executable, str(script), str(db), name, "60"])
        for name in ("p1", "p2")
    ]
    deadline = time.monotonic() + 60
    while not all(Path(f"{db}.{name}.ready").exists() for name in ("p1", "p2")):
        assert time.monotonic() < deadline and all(p.poll() is None for p in procs)
        time.sleep(0.01)
    Path(f"{db}.go").touch()
    assert [p.wait(timeout=90) for p in procs] == [0, 0]
    log = AuditLog(Store(db))
    result = log.verify()
    assert result.ok, result
    assert result.records == 2 * 4 * 60 and result.checkpoints >= 2 * 4 * 60 // 64
    seen = {(r.body["w"], r.body["t"], r.body["n"]) for r in log.records("event")}
    assert seen == {(w, t, n) for w in ("p1", "p2") for t in range(4) for n in range(60)}
    writers = [r.body["w"] for r in log.records("event")]
    switches = sum(1 for a, b in itertools.pairwise(writers) if a != b)
    assert switches > 0  # the two processes really interleaved in one chain
    assert log.public_key is not None
    assert verify_owner_slice(log.owner_slice("bob"), log.public_key).ok


# ---------------------------------------------------------------------- parallel verification


def _retag(seq: int) -> Any:
    def tamper(log: AuditLog) -> None:
        rec = next(r for r in log.records() if r.seq == seq)
        digest = record_hash(seq, rec.at, rec.kind, rec.body, rec.prev)  # no owners any more
        raw(log).execute("UPDATE audit SET owners='{}', hash=? WHERE seq=?", (digest, seq))
        raw(log).execute("UPDATE audit SET prev=? WHERE seq=?", (digest, seq + 1))

    return tamper


def _swap(log: AuditLog) -> None:
    db = raw(log)
    db.execute("UPDATE audit SET seq=-1 WHERE seq=15")
    db.execute("UPDATE audit SET seq=15 WHERE seq=16")
    db.execute("UPDATE audit SET seq=16 WHERE seq=-1")


def _rehash(log: AuditLog) -> None:
    rec = next(r for r in log.records() if r.seq == 14)
    body = {"n": 13, "owner": rec.body["owner"], "text": "rewritten"}
    digest = record_hash(14, rec.at, rec.kind, body, rec.prev, rec.owners)
    raw(log).execute("UPDATE audit SET body=?, hash=? WHERE seq=14", (canonical(body), digest))


TAMPERS: dict[str, Any] = {
    "edit": lambda log: raw(log).execute("UPDATE audit SET body='{\"n\":99}' WHERE seq=27"),
    "delete": lambda log: raw(log).execute("DELETE FROM audit WHERE seq=14"),
    "delete-first": lambda log: raw(log).execute("DELETE FROM audit WHERE seq=1"),
    "stray-row": lambda log: raw(log).execute(
        "INSERT INTO audit SELECT -5, at, kind, body, owners, prev, hash FROM audit WHERE seq=3"
    ),
    "stray-row-at-the-lowest-seq": lambda log: raw(log).execute(
        "INSERT INTO audit SELECT -9223372036854775808, at, kind, body, owners, prev, hash "
        "FROM audit WHERE seq=3"
    ),
    "reorder": _swap,
    "rehash": _rehash,
    "truncate": lambda log: raw(log).execute(
        "DELETE FROM audit WHERE seq >= ?", (log.checkpoints()[-1].seq - 3,)
    ),
    "forge-tail": lambda log: forge_from(log, 24, {"n": -1, "owner": "alice"}),
    "retag-cross-range": _retag(26),  # bob's next record (29) is in the next range
    "retag-in-range": _retag(33),
    "drop-checkpoint": lambda log: raw(log).execute(
        "DELETE FROM audit_checkpoints WHERE seq=?", (log.checkpoints()[1].seq,)
    ),
}


def _native(log: AuditLog) -> Any:
    """The compiled scanner bound to the log's store, SQLite or PostgreSQL (camgate-native is
    part of the workspace: its absence is a failure, not a skip)."""
    native = log.backend.native_scanner()  # type: ignore[attr-defined]
    assert native is not None, "camgate-native is not installed (scripts/setup.sh builds it)"
    return native


@pytest.mark.parametrize("tamper", [None, *TAMPERS])
def test_parallel_verification_agrees_with_the_sequential_one(
    log: AuditLog, tamper: str | None
) -> None:
    from camgate.audit.base import ChainingBackend
    from camgate.audit.chain import ChainVerifier
    from camgate.audit.fastverify import fast_verify

    native = _native(log)
    if tamper is not None:
        TAMPERS[tamper](log)
    backend = log.backend
    assert isinstance(backend, ChainingBackend)
    cps = log.checkpoints()
    sequential = ChainVerifier(cps, log.public_key).run(log.backend.rows(after=None))
    assert sequential.ok == (tamper is None), sequential
    # Python ranges in processes, and the compiled scan in threads.
    for engine in [None, native]:
        fast = fast_verify(
            ChainVerifier(cps, log.public_key),
            backend.range_reader(),  # type: ignore[attr-defined]
            backend.last_seq(),
            workers=3,  # ranges (0, 13], (13, 26], (26, ...)
            records_per_worker=1,
            native=engine,
        )
        if tamper is None:
            assert fast == sequential  # the fast path decided, with the same result
        else:
            assert fast is None  # it saw it, and leaves the naming to the sequential
    for workers in (1, 3):
        assert log.verify(workers=workers, records_per_worker=1) == sequential


_awkward = st.text(st.characters(codec="utf-8"), max_size=6)  # quotes, controls, any script
# PostgreSQL's text holds no NUL; tabs, newlines and backslashes must come back byte for byte.
_awkward_pg = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=6)
_owner_ids = ["al", 'b"ob', "c\x01", "dé", "", "t\tab\\"]


def _scans_agree(log: AuditLog, n: int, cuts: list[int]) -> None:
    """Over the ranges ``cuts`` makes of ``log`` (``n`` records), the C scan finds what the
    Python scan finds (itself, or by handing a range it doubts to the Python scan)."""
    from camgate.audit.fastverify import native_range, scan_range

    native = _native(log)
    reader = log.backend.range_reader()  # type: ignore[attr-defined]
    cps = [c.seq for c in log.checkpoints()]
    bounds = sorted({0, n, *(min(c, n) for c in cuts)})
    for lo, hi in itertools.pairwise(bounds):
        mine = [c for c in cps if lo < c <= hi]
        assert native_range(native, reader, lo, hi, lo, mine) == scan_range(
            reader, lo, hi, lo, mine
        )
        # the C scan alone: "all good" is only said where Python says so too
        found = native(lo, hi, lo, mine)
        if found is not None:
            assert scan_range(reader, lo, hi, lo, mine).ok


def _fill(log: AuditLog, entries: list[tuple[str, list[str]]]) -> None:
    for i, (kind, owners) in enumerate(entries):
        log.append(kind, {"n": i, "who": [{"owner": o} for o in owners]})


def _log_shapes(kinds: st.SearchStrategy[str]) -> Any:
    """Up to 30 entries (a kind, the owners a record is about), a checkpoint interval, cuts."""
    return given(
        entries=st.lists(
            st.tuples(kinds, st.lists(st.sampled_from(_owner_ids))), min_size=1, max_size=30
        ),
        every=st.integers(1, 7),
        cuts=st.lists(st.integers(0, 30), max_size=3),
    )


@settings(max_examples=40, deadline=None)
@_log_shapes(_awkward)
def test_compiled_scan_agrees_with_the_python_scan(
    tmp_path_factory: pytest.TempPathFactory,
    entries: list[tuple[str, list[str]]],
    every: int,
    cuts: list[int],
) -> None:
    """On any SQLite log — kinds with quotes and control characters, owner ids that need
    escapes, records about several owners or none — and any ranges, the scans agree."""
    log = AuditLog(Store(tmp_path_factory.mktemp("native") / "a.db"), checkpoint_every=every)
    _fill(log, entries)
    _scans_agree(log, len(entries), cuts)


@settings(max_examples=25, deadline=None)
@_log_shapes(_awkward_pg)
def test_compiled_scan_agrees_with_the_python_scan_on_postgres(
    tmp_path_factory: pytest.TempPathFactory,
    postgres: Any,
    entries: list[tuple[str, list[str]]],
    every: int,
    cuts: list[int],
) -> None:
    """The same on PostgreSQL, whose rows the C scan reads from COPY's binary format: text
    with tabs, newlines, backslashes and other controls read as psycopg reads it."""
    store = Store(tmp_path_factory.mktemp("native") / "a.db")
    log = AuditLog(store, dsn=postgres.create_database(), checkpoint_every=every)
    try:
        _fill(log, entries)
        _scans_agree(log, len(entries), cuts)
    finally:
        log.close()


# Found when the ranges are merged with the checkpoints (signatures, roots), not by a range scan.
_MERGE_FINDS = {"forge-tail", "drop-checkpoint"}


@pytest.mark.parametrize("tamper", [t for t in TAMPERS if t not in _MERGE_FINDS])
def test_the_compiled_scan_doubts_every_tampering_of_records(log: AuditLog, tamper: str) -> None:
    native = _native(log)
    cps = [c.seq for c in log.checkpoints()]
    assert native(None, None, 0, cps) is not None
    TAMPERS[tamper](log)
    assert native(None, None, 0, cps) is None


def _forge_last(log: AuditLog, column: str, text: bytes | Callable[[bytes], bytes]) -> None:
    """Rewrite the last record's ``column`` with raw ``text`` (or ``text(stored)``, stored as
    TEXT) and give it the hash of the bytes a byte-level reader would join: what an attacker
    would try on a verifier that parses less strictly than Python."""
    db = raw(log)
    seq, at, kind, body, owners, prev = db.execute(
        "SELECT seq, at, kind, body, owners, prev FROM audit ORDER BY seq DESC LIMIT 1"
    ).fetchone()
    parts = {"at": at, "kind": kind, "body": body, "owners": owners}
    if callable(text):
        text = text(parts[column].encode())
    raw_parts = {k: v.encode() for k, v in parts.items()} | {column: text}
    own = b"" if raw_parts["owners"] == b"{}" else b',"owners":' + raw_parts["owners"]
    joined = (
        b'{"at":' + json.dumps(at, ensure_ascii=False).encode() + b',"body":' + raw_parts["body"]
        + b',"kind":' + json.dumps(kind, ensure_ascii=False).encode() + own
        + b',"prev":"' + prev.encode() + b'","seq":' + str(seq).encode() + b"}"
    )  # fmt: skip
    digest = hashlib.sha256(joined).hexdigest()
    value: bytes | str = text if db.pg is None else text.decode()  # PostgreSQL holds only UTF-8
    db.execute(
        f"UPDATE audit SET {column}=CAST(? AS TEXT), hash=? WHERE seq=?", (value, digest, seq)
    )


_FORGED: dict[str, tuple[str, bytes | Callable[[bytes], bytes]]] = {
    # JSON forbids a raw control character
    "control-char-owner": ("owners", b'{"al\x01ice":"' + b"0" * 64 + b'"}'),
    "trailing-comma": ("owners", lambda old: old[:-1] + b",}"),  # JSON refuses it too
    # not UTF-8 (Python cannot even read it as text), and a surrogate (strict UTF-8 refuses it):
    # only SQLite can hold these, PostgreSQL stores valid UTF-8 only
    "not-utf8": ("body", b'{"n":"\xff\xfe"}'),
    "surrogate": ("body", b'{"n":"\xed\xa0\x80"}'),
}


@pytest.mark.parametrize(
    ("store", "forged"),
    [
        *itertools.product(["sqlite", "postgres"], ["control-char-owner", "trailing-comma"]),
        ("sqlite", "not-utf8"),
        ("sqlite", "surrogate"),
    ],
)
def test_the_compiled_scan_is_not_more_lenient_than_python(
    tmp_path: Path, request: pytest.FixtureRequest, store: str, forged: str
) -> None:
    dsn = request.getfixturevalue("postgres").create_database() if store == "postgres" else None
    column, text = _FORGED[forged]
    log = AuditLog(Store(tmp_path / "a.db"), dsn=dsn, checkpoint_every=100)
    for i in range(5):  # the last record is in the unsealed tail
        log.append("event", {"n": i, "owner": OWNERS[i % 3], "text": f"record {i}"})
    native = _native(log)
    _forge_last(log, column, text)
    assert native(None, None, 0, []) is None
    result = log.verify()
    assert not result.ok and result.first_bad == 5, result


@pytest.mark.parametrize(
    ("column", "sql_type"), [("seq", "TEXT"), ("seq", "NUMERIC"), ("at", "VARCHAR")]
)
def test_a_postgres_column_of_another_type_is_doubted(
    tmp_path: Path, postgres: Any, column: str, sql_type: str
) -> None:
    """A seq stored as text or numeric (or a timestamp as varchar) is another value to psycopg
    than an int (a str): the C scan checks the columns' types and doubts, and the log verifies
    (or not) exactly as Python says."""
    dsn = postgres.create_database()
    log = AuditLog(Store(tmp_path / "a.db"), dsn=dsn, checkpoint_every=10)
    for i in range(30):
        log.append("event", {"n": i, "owner": OWNERS[i % 3]})
    native = _native(log)
    cps = [c.seq for c in log.checkpoints()]
    assert native(None, None, 0, cps) is not None
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"ALTER TABLE audit ALTER COLUMN {column} TYPE {sql_type}")
    assert native(None, None, 0, cps) is None
    assert log.verify(workers=3, records_per_worker=1) == log.verify(workers=1)
    log.close()


def test_the_compiled_postgres_scan_reads_awkward_text_as_written(
    tmp_path: Path, postgres: Any
) -> None:
    """Text with tabs, newlines, carriage returns, backslashes, other controls and ``\\N`` (which
    COPY's text format would escape) comes back as it was hashed: the C scan says "all good"."""
    log = AuditLog(Store(tmp_path / "a.db"), dsn=postgres.create_database(), checkpoint_every=2)
    awkward = "a\tb\\c\nd\re\x01f\x7f\u00e9\u2028\U0001f600\\N"
    for i in range(5):
        log.append(awkward, {"n": i, "owner": OWNERS[i % 3], "text": awkward * i, awkward: i})
    native = _native(log)
    found = native(None, None, 0, [c.seq for c in log.checkpoints()])
    assert found is not None and found[0] == 5
    assert log.verify().ok
    log.close()


@pytest.mark.parametrize("where", ["database", "client"])
def test_text_that_is_not_utf8_end_to_end_is_left_to_python(
    tmp_path: Path, postgres: Any, where: str
) -> None:
    """psycopg decodes in the connection's client encoding, and PostgreSQL's conversion tables
    and Python's codecs disagree on some characters: EUC_JP's 0xA1C1 is U+FF5E to the server,
    U+301C to Python. A record forged with the hash of the server's reading must fail, so the C
    scan (which would read UTF-8) doubts unless both encodings are UTF8."""
    if where == "database":
        name = f"eucjp_{random.randrange(10**12)}"
        with psycopg.connect(postgres.create_database(), autocommit=True) as conn:
            conn.execute(
                f"CREATE DATABASE {name} ENCODING 'EUC_JP' LC_COLLATE 'C' LC_CTYPE 'C' "
                "TEMPLATE template0"
            )
        dsn = postgres.create_database().rsplit("/", 1)[0] + f"/{name}"
    else:
        dsn = postgres.create_database() + "?client_encoding=EUC_JP"
    log = AuditLog(Store(tmp_path / "a.db"), dsn=dsn, checkpoint_every=100)
    for i in range(5):
        log.append("event", {"n": i, "owner": OWNERS[i % 3]})
    native = _native(log)
    plain = dsn.split("?")[0] + "?client_encoding=UTF8"
    with psycopg.connect(plain, autocommit=True) as conn:
        row = conn.execute(
            "SELECT seq, at, kind, body, owners, prev FROM audit ORDER BY seq DESC LIMIT 1"
        ).fetchone()
        assert row is not None
        seq, at, kind, body, owners, prev = row
        body = body[:-1] + ',"x":"\uff5e"}'
        digest = record_hash(seq, at, kind, json.loads(body), prev, json.loads(owners))
        conn.execute("UPDATE audit SET body=%s, hash=%s WHERE seq=%s", (body, digest, seq))
    assert native(None, None, 0, []) is None
    result = log.verify()
    assert not result.ok and result.first_bad == 5, result
    assert log.verify(workers=3, records_per_worker=1) == result
    log.close()


@pytest.mark.parametrize(
    "dsn",
    [
        "postgresql://u:s3cr3t-pw@127.0.0.1:1/db",  # well formed: libpq's own error
        "postgresql://u:s3cr3t%ZZpw@127.0.0.1/db",  # libpq would quote the bad token
        "postgresql://u:s3cr3t-pw@[s3cr3t/db",  # ... or the whole URI
        "host=127.0.0.1 password=s3cr3t pw",  # ... or the text after the password
    ],
)
def test_the_compiled_postgres_scan_never_shows_the_password(dsn: str) -> None:
    from camgate_native import scan_postgres

    with pytest.raises(OSError, match="cannot read the audit log from PostgreSQL") as failed:
        scan_postgres(dsn, None, None, 0, [])
    assert "s3cr3t" not in str(failed.value)


def test_the_compiled_postgres_scan_names_a_database_without_a_log(postgres: Any) -> None:
    from camgate_native import scan_postgres

    with pytest.raises(OSError, match='relation "audit" does not exist'):
        scan_postgres(postgres.create_database(), None, None, 0, [])


def test_the_compiled_scan_names_a_file_it_cannot_read(tmp_path: Path) -> None:
    log = make_log(tmp_path / "a.db", n=3)
    native = _native(log)
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.close()
    from camgate_native import scan_sqlite

    with pytest.raises(OSError, match=r"cannot read the audit log in .*other\.db: no such table"):
        scan_sqlite(other, None, None, 0, [])
    assert native(None, None, 0, [c.seq for c in log.checkpoints()]) is not None


@pytest.mark.parametrize(
    ("column", "value"),
    [("seq", None), ("seq", "41"), ("seq", 1e300), ("seq", b"x"), ("at", None), ("kind", b"k")],
)
def test_a_rebuilt_table_with_values_of_other_types_is_named(
    tmp_path: Path, column: str, value: Any
) -> None:
    """An attacker with the file can rebuild the table so that a column holds NULL, text,
    a real or a blob where camgate writes integers or text: every verifier refuses the log,
    none raises, and the compiled scan does not say "all good"."""
    log = make_log(tmp_path / "a.db", n=40, every=10)
    native = _native(log)
    db = sqlite3.connect(log.backend.path, isolation_level=None)  # type: ignore[attr-defined]
    db.executescript(
        """BEGIN;
        CREATE TABLE audit2 (seq, at, kind, body, prev, hash, owners);
        INSERT INTO audit2 SELECT seq, at, kind, body, prev, hash, owners FROM audit;
        DROP TABLE audit; ALTER TABLE audit2 RENAME TO audit; COMMIT;"""
    )
    if column == "seq":  # one more row, whose seq is not an integer
        db.execute("INSERT INTO audit SELECT ?, at, kind, body, prev, hash, owners FROM audit "
                   "WHERE seq=40", (value,))  # fmt: skip
    else:  # the last record's text replaced
        db.execute(f"UPDATE audit SET {column}=? WHERE seq=40", (value,))
    db.close()
    assert native(None, None, 0, [c.seq for c in log.checkpoints()]) is None
    result = log.verify()
    assert not result.ok, result
    assert log.verify(workers=3, records_per_worker=1) == result


def test_owner_ids_built_to_collide_do_not_slow_the_compiled_scan_down(tmp_path: Path) -> None:
    """Owner ids whose FNV-1a hashes agree in their low 24 bits (blocks that collide there,
    joined: the low bits of FNV-1a's state depend only on low bits) once made the compiled
    scan's owner map probe linearly for ever. It now hashes from a random seed, mixes all 64
    bits into the slot, and doubts past 64 probes; the result is the Python scan's."""
    from camgate.audit.fastverify import native_range, scan_range

    mask, prime = (1 << 24) - 1, 1099511628211

    def step(state: int, data: bytes) -> int:
        for byte in data:
            state = ((state ^ byte) * prime) & mask
        return state

    state, blocks, rnd = 1469598103934665603 & mask, [], random.Random(8)
    while len(blocks) < 13:  # pairs of 6-letter blocks that collide from the current state
        seen: dict[int, bytes] = {}
        while True:
            block = bytes(rnd.choice(b"abcdefghijklmnopqrstuvwxyz") for _ in range(6))
            h = step(state, block)
            if h in seen and seen[h] != block:
                blocks.append((seen[h], block))
                state = h
                break
            seen[h] = block
    names = [
        b"".join(pair[(i >> j) & 1] for j, pair in enumerate(blocks)).decode()
        for i in range(1 << len(blocks))
    ]
    log = AuditLog(Store(tmp_path / "a.db"), checkpoint_every=2)
    log.append("event", {"who": [{"owner": o} for o in names]})
    log.append("event", {"who": [{"owner": o} for o in names[::-1]]})
    native = _native(log)
    reader = log.backend.range_reader()  # type: ignore[attr-defined]
    cps = [c.seq for c in log.checkpoints()]
    assert native_range(native, reader, None, None, 0, cps) == scan_range(
        reader, None, None, 0, cps
    )
    assert log.verify().ok
