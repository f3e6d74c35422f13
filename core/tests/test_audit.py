"""The audit chain verifies when untouched and names the first record that was tampered with."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from camgate.audit import AuditLog, record_hash
from camgate.store import Store


@pytest.fixture
def log(tmp_path: Path) -> AuditLog:
    audit = AuditLog(Store(tmp_path / "a.db"))
    for i in range(10):
        audit.append("event", {"n": i, "text": f"record {i}"})
    return audit


def test_untouched_chain_verifies(log: AuditLog) -> None:
    result = log.verify()
    assert result.ok and result.records == 10


def test_edited_body_is_found(log: AuditLog, tmp_path: Path) -> None:
    store = log._store
    with store.transaction() as db:
        db.execute("UPDATE audit SET body=? WHERE seq=4", (json.dumps({"n": 99}),))
    result = log.verify()
    assert not result.ok and result.first_bad == 4 and "hash" in result.problem


def test_deleted_record_is_found(log: AuditLog) -> None:
    with log._store.transaction() as db:
        db.execute("DELETE FROM audit WHERE seq=6")
    result = log.verify()
    assert not result.ok and result.first_bad == 7


def test_rehashed_edit_breaks_the_next_link(log: AuditLog) -> None:
    rec = next(r for r in log.records() if r.seq == 3)
    body = {"n": 3, "text": "rewritten"}
    digest = record_hash(3, rec.at, rec.kind, body, rec.prev)
    with log._store.transaction() as db:
        db.execute("UPDATE audit SET body=?, hash=? WHERE seq=3", (json.dumps(body), digest))
    result = log.verify()
    assert not result.ok and result.first_bad == 4 and "link" in result.problem


def test_export_is_one_json_object_per_line(log: AuditLog) -> None:
    lines = list(log.export_jsonl())
    assert len(lines) == 10
    assert json.loads(lines[0])["prev"] == "0" * 64
