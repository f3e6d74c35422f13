"""The store's change counters, the fact cache they validate, and the survey's audit record."""

from __future__ import annotations

import json
import sqlite3
from datetime import timedelta
from pathlib import Path

import anyio
import attrs
import pytest
from camgate import Camera, ConsentTerms, Gate, GeoPoint, Owner, Waiver
from camgate.cli import main
from camgate.facts import FactCache
from camgate.models import IncidentStatus
from camgate.store import Store
from camgate.testing import camera_north_of

CENTRE = GeoPoint(32.2988, -90.1848)
WAIVER = Waiver("2026-1", "I share my camera on my terms.")


def _camera(camera_id: str, north: float) -> Camera:
    """An RTSP camera (the adapter the CLI loads too) ``north`` metres north of the centre."""
    return attrs.evolve(
        camera_north_of(camera_id, "alice", CENTRE, north),
        adapter="rtsp",
        source=f"rtsp://127.0.0.1/{camera_id}",
    )


def _world(path: Path) -> tuple[Gate, str]:
    gate = Gate.open(path)
    gate.publish_waiver(WAIVER)
    gate.add_owner(Owner("alice", "Alice"))
    for name, north in (("a1", 50.0), ("a2", 120.0), ("far", 5000.0)):
        gate.add_camera(_camera(name, north))
    gate.enrol(
        "alice", ["a1", "a2"], waiver_version=WAIVER.version, waiver_sha256=WAIVER.sha256,
        terms=ConsentTerms(scopes={"live"}),
    )  # fmt: skip
    return gate, gate.report_incident("shooting", CENTRE, 300.0).id


def test_every_write_to_a_fact_bumps_its_counter_whoever_writes(tmp_path: Path) -> None:
    gate, incident_id = _world(tmp_path / "g.db")
    other = Store(tmp_path / "g.db")  # another writer, as another process
    try:
        before = gate.store.changes()
        assert before is not None
        other.add_camera(_camera("a1", 60.0))
        moved = gate.store.changes()
        assert moved is not None and moved.cameras > before.cameras
        other.revoke_consent_ids(other.active_consent_ids("alice"), gate.clock.now())
        revoked = gate.store.changes()
        assert revoked is not None and revoked.consents > moved.consents
        incident = other.get_incident(incident_id)
        other.add_incident(attrs.evolve(incident, status=IncidentStatus.CLOSED))
        closed = gate.store.changes()
        assert closed is not None and closed.incidents > revoked.incidents
        # Records that are not facts of a decision move nothing: an audit record, a survey.
        gate.audit.append("note", {"text": "hello"})
        gate.survey(incident_id)
        assert gate.store.changes() == closed
    finally:
        other.close()
        anyio.run(gate.aclose)


def test_a_decision_sees_another_writers_change_at_once(tmp_path: Path) -> None:
    gate, incident_id = _world(tmp_path / "g.db")
    other = Store(tmp_path / "g.db")
    try:
        rows = {r.camera_id: r for r in gate.survey(incident_id, record=False).rows}
        assert str(rows["a1"].outcome) == "allowed"
        other.revoke_consent_ids(other.active_consent_ids("alice"), gate.clock.now())
        rows = {r.camera_id: r for r in gate.survey(incident_id, record=False).rows}
        assert str(rows["a1"].outcome) == "denied"
        assert "core.opt-in: the owner revoked consent" in rows["a1"].reasons
    finally:
        other.close()
        anyio.run(gate.aclose)


def test_an_older_file_gets_counters_and_read_only_keeps_nothing(tmp_path: Path) -> None:
    path = tmp_path / "g.db"
    gate, incident_id = _world(path)
    anyio.run(gate.aclose)
    db = sqlite3.connect(path)  # make it a file of an older camgate: no counters
    for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type='trigger'").fetchall():
        db.execute(f"DROP TRIGGER {name}")
    db.execute("DROP TABLE fact_changes")
    db.execute("DROP TABLE schema_version")  # older camgate: no versioned migrations either
    db.commit()
    db.close()
    read_only = Store(path, read_only=True)
    try:
        assert read_only.changes() is None
        cache = FactCache(read_only)
        cache.incident(incident_id)
        cache.incident(incident_id)
        assert cache.hits == 0  # nothing kept without counters
    finally:
        read_only.close()
    store = Store(path)  # opened for writing: the counters are made
    try:
        assert store.changes() is not None
    finally:
        store.close()


def test_geofence_query_decides_every_camera_and_records_one_survey(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "g.db"
    gate, incident_id = _world(db)
    anyio.run(gate.aclose)
    args = ["--db", str(db), "geofence", "query", "--incident", incident_id, "--json"]
    assert main(args) == 0
    out = json.loads(capsys.readouterr().out)
    outcomes = {c["camera"]: (c["outcome"], c["outcome_reasons"]) for c in out["cameras"]}
    assert set(outcomes) == {"a1", "a2"}
    assert outcomes["a1"] == ("allowed", [])
    assert out["counts"] == {"candidates": 2, "allowed": 2, "ask": 0, "denied": 0}
    assert main([*args[:-1], "--scope", "snapshot", "--json"]) == 0
    denied = json.loads(capsys.readouterr().out)
    assert {c["outcome"] for c in denied["cameras"]} == {"denied"}
    assert any(
        "core.scope: the owner does not allow snapshot access" in r
        for c in denied["cameras"]
        for r in c["outcome_reasons"]
    )
    store = Store(db, read_only=True)
    try:
        rows = store.query("SELECT body FROM audit WHERE kind='survey' ORDER BY seq")
    finally:
        store.close()
    bodies = [json.loads(r[0]) for r in rows]
    assert [(b["incident"], b["scope"], b["candidates"], b["denied"]) for b in bodies] == [
        (incident_id, "live", 2, 0),
        (incident_id, "snapshot", 2, 2),
    ]
    assert all("cameras" not in b and "camera" not in b for b in bodies)


def test_a_survey_outside_the_window_denies_every_camera(tmp_path: Path) -> None:
    gate, incident_id = _world(tmp_path / "g.db")
    try:
        later = gate.clock.now() + timedelta(hours=13)
        survey = gate.survey(incident_id, at=later, record=False)
        assert survey.counts["denied"] == survey.counts["candidates"] == 2
    finally:
        anyio.run(gate.aclose)
