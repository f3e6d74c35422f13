"""Retention: expiry from the owner's terms and the agency's policy (shorter wins), deletions
audited before the file goes, evidence holds — on a real gate, store and files."""

from __future__ import annotations

import fcntl
import hashlib
import os
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from camgate.errors import ConfigError, NotFound, ValidationError
from camgate.rules import AgencyRules

if TYPE_CHECKING:
    from conftest import World

DAY = 86400.0


@pytest.fixture
def city(world: World) -> World:
    """The agency keeps footage 30 days (the default); Alice allows 7, Bob says nothing."""
    assert world.gate.rules.retention_days == 30
    world.enrol("alice", ["a1"], retention_days=7)
    world.enrol("bob", ["b1"])
    return world


def _file(tmp: Path, name: str, data: bytes) -> Path:
    path = tmp / name
    path.write_bytes(data)
    return path


def _register(w: World, tmp: Path, cam: str, name: str) -> tuple[Path, str]:
    grant = w.request(cam, "snapshot").grant
    path = _file(tmp, name, f"jpeg of {cam} {name}".encode())
    art = w.gate.retention.register(path, "snapshot", camera_id=cam, grant_id=grant.id)
    assert art.incident_id == w.incident.id
    return path, art.id


def test_expiry_is_the_shorter_of_owner_terms_and_agency_policy(
    city: World, tmp_path: Path
) -> None:
    now = city.clock.now()
    _register(city, tmp_path, "a1", "a.jpg")
    _register(city, tmp_path, "b1", "b.jpg")
    by_cam = {a.camera_id: a for a in city.gate.retention.artifacts()}
    assert by_cam["a1"].expires_at == now + timedelta(days=7)  # the owner's 7 < the agency's 30
    assert by_cam["b1"].expires_at == now + timedelta(days=30)  # no owner term: the agency's
    record = next(
        r for r in city.gate.audit.records("artifact.registered") if r.body["camera"] == "a1"
    )
    assert record.body["retention"] == {"owner_days": 7, "agency_days": 30.0}
    assert record.body["sha256"] == hashlib.sha256(b"jpeg of a1 a.jpg").hexdigest()
    assert "alice" in record.owners  # it joins the owner's sub-chain


def test_run_deletes_what_expired_after_recording_it(city: World, tmp_path: Path) -> None:
    a_path, a_id = _register(city, tmp_path, "a1", "a.jpg")
    gone_path, gone_id = _register(city, tmp_path, "a1", "gone.jpg")
    b_path, _ = _register(city, tmp_path, "b1", "b.jpg")
    gone_path.unlink()  # someone removed it by hand: recorded as missing
    city.clock.advance(7 * DAY)

    dry = city.gate.retention.run(dry_run=True)
    assert {d["artifact"] for d in dry.deleted} == {a_id, gone_id}
    assert a_path.exists() and not list(city.gate.audit.records("retention.deleted"))

    run = city.gate.retention.run()
    assert {d["artifact"] for d in run.deleted} == {a_id, gone_id}
    assert not a_path.exists() and b_path.exists()
    records = {r.body["artifact"]: r for r in city.gate.audit.records("retention.deleted")}
    assert records[a_id].body["found"] == "present" and records[a_id].body["intact"] is True
    assert records[a_id].body["sha256"] == hashlib.sha256(b"jpeg of a1 a.jpg").hexdigest()
    assert records[gone_id].body["found"] == "missing"
    assert "alice" in records[a_id].owners
    states = {a.id: a.state for a in city.gate.retention.artifacts()}
    assert states[a_id] == states[gone_id] == "deleted"
    assert city.gate.retention.run().deleted == []  # nothing twice

    city.clock.advance(23 * DAY)
    assert [d["camera"] for d in city.gate.retention.run().deleted] == ["b1"]
    assert not b_path.exists()
    assert city.gate.audit.verify().ok


def test_a_changed_file_is_deleted_and_the_change_recorded(city: World, tmp_path: Path) -> None:
    path, _ = _register(city, tmp_path, "a1", "a.jpg")
    path.write_bytes(b"edited")
    city.clock.advance(8 * DAY)
    city.gate.retention.run()
    record = next(iter(city.gate.audit.records("retention.deleted")))
    assert record.body["intact"] is False
    assert record.body["sha256_found"] == hashlib.sha256(b"edited").hexdigest()


def test_hold_keeps_footage_past_expiry_until_released(city: World, tmp_path: Path) -> None:
    path, art = _register(city, tmp_path, "a1", "a.jpg")
    retention = city.gate.retention
    hold = retention.place_hold(city.incident.id, "case 2026-1142", by="det-3")
    assert [h.incident_id for h in retention.holds()] == [city.incident.id]
    with pytest.raises(ValidationError, match="on hold since"):
        retention.place_hold(city.incident.id, "again")
    city.clock.advance(10 * DAY)
    run = retention.run()
    assert run.deleted == [] and [h["artifact"] for h in run.held] == [art]
    assert path.exists()

    retention.release_hold(city.incident.id, reason="case closed", by="det-3")
    assert retention.holds() == []
    assert [d["artifact"] for d in retention.run().deleted] == [art]
    assert not path.exists()
    kinds = [r.kind for r in city.gate.audit.records() if r.kind.startswith("hold.")]
    assert kinds == ["hold.placed", "hold.released"]
    placed = next(city.gate.audit.records("hold.placed"))
    assert placed.body == {"incident": city.incident.id, "reason": hold.reason, "by": "det-3"}
    assert city.gate.audit.verify().ok


def test_bad_input_is_refused_and_changes_nothing(city: World, tmp_path: Path) -> None:
    retention = city.gate.retention
    before = (city.state(), retention.artifacts(), retention.holds())
    with pytest.raises(NotFound):
        retention.place_hold("inc_nope", "case 1")
    with pytest.raises(ValidationError, match="needs a reason"):
        retention.place_hold(city.incident.id, "  ")
    with pytest.raises(NotFound, match="not on hold"):
        retention.release_hold(city.incident.id)
    with pytest.raises(ValidationError, match="no such file"):
        retention.register(tmp_path / "nope.mp4", "clip", camera_id="a1")
    real = _file(tmp_path, "x.bin", b"x")
    with pytest.raises(ValidationError, match="kind="):
        retention.register(real, "Clip!", camera_id="a1")
    with pytest.raises(ValidationError, match="SHA-256"):
        retention.register(real, "cache", camera_id="a1", sha256="0" * 64)
    with pytest.raises(NotFound):
        retention.register(real, "cache", camera_id="nope")
    assert (city.state(), retention.artifacts(), retention.holds()) == before
    with pytest.raises(ValidationError, match="retention_days"):
        AgencyRules(retention_days=0)


def test_a_folder_is_registered_and_deleted_whole(city: World, tmp_path: Path) -> None:
    hls = tmp_path / "hls"
    hls.mkdir()
    (hls / "seg1.ts").write_bytes(b"one")
    (hls / "index.m3u8").write_bytes(b"#EXTM3U")
    art = city.gate.retention.register(hls, "hls", camera_id="b1")
    city.clock.advance(31 * DAY)
    assert [d["artifact"] for d in city.gate.retention.run().deleted] == [art.id]
    assert not hls.exists()


def test_one_run_at_a_time(city: World, tmp_path: Path) -> None:
    path, _ = _register(city, tmp_path, "a1", "a.jpg")
    city.clock.advance(8 * DAY)
    lock = os.open(f"{city.gate.store.path}.retention.lock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)  # as a run in another process would hold it
        with pytest.raises(ConfigError, match="another retention run"):
            city.gate.retention.run()
        assert path.exists() and len(city.gate.retention.run(dry_run=True).deleted) == 1
    finally:
        os.close(lock)
    assert len(city.gate.retention.run().deleted) == 1 and not path.exists()
