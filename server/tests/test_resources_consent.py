"""Waivers, enrolments and terms, masks, requests and grants, audit verification, an owner's
audit slice with its proof, the transparency report, the owner and incident lists (who may is
in test_roles.py; here, what each answers)."""

from __future__ import annotations

from typing import Any

import pytest
from camgate import Gate
from camgate.audit import OwnerSlice, verify_owner_slice

from .conftest import BACKENDS, CENTRE, WAIVER, both_backends

pytestmark = pytest.mark.anyio
anyio_backend = pytest.fixture(params=BACKENDS)(both_backends)  # backend-neutral: both

INCIDENT = {"kind": "burglary", "lat": CENTRE.lat, "lon": CENTRE.lon, "radius_m": 300}


async def _incident(sessions: dict[str, Any]) -> str:
    made = await sessions["operator"].send("POST", "/incidents", json=INCIDENT)
    assert made.status_code == 201
    incident_id: str = made.json()["id"]
    return incident_id


async def _ask(sessions: dict[str, Any], incident: str, camera: str) -> Any:
    return await sessions["operator"].send(
        "POST", f"/incidents/{incident}/requests", json={"camera": camera, "scope": "live"}
    )


async def test_an_owner_changes_their_own_terms(sessions: dict[str, Any]) -> None:
    alice = sessions["alice"]
    listed = (await alice.get("/waivers")).json()["waivers"]
    assert listed == [{"version": WAIVER.version, "sha256": WAIVER.sha256, "text": WAIVER.text}]
    before = (await alice.get("/owners/me/enrolments")).json()["enrolments"]
    assert [e["camera_ids"] for e in before] == [["a1", "a2"]]
    body = {
        "cameras": ["a1"],
        "waiver_version": WAIVER.version,
        "waiver_sha256": WAIVER.sha256,
        "terms": {"scopes": ["live"], "mode": "ask"},
    }
    changed = await alice.send("POST", "/owners/me/enrolments", json=body)
    assert changed.status_code == 201, changed.text
    assert changed.json()["terms"]["mode"] == "ask"
    # The new terms stand: a request for a1 now waits for alice; a2 keeps the old terms.
    incident = await _incident(sessions)
    assert (await _ask(sessions, incident, "a1")).status_code == 202
    assert (await _ask(sessions, incident, "a2")).status_code == 201
    staff_view = await sessions["auditor"].get("/owners/alice/enrolments")
    assert len(staff_view.json()["enrolments"]) == 2
    # Another owner's camera does not exist for alice; bad terms and a wrong hash are 422.
    theirs = await alice.send("POST", "/owners/me/enrolments", json=body | {"cameras": ["b1"]})
    assert theirs.status_code == 404
    bad_terms = body | {"terms": {"scopes": ["teleport"]}}
    wrong_hash = body | {"waiver_sha256": "0" * 64}
    for bad in (bad_terms, wrong_hash):
        refused = await alice.send("POST", "/owners/me/enrolments", json=bad)
        assert refused.status_code == 422, refused.text
        assert refused.json()["error"] == "ValidationError"
    assert len((await alice.get("/owners/me/enrolments")).json()["enrolments"]) == 2


async def test_waivers_are_published_once_per_text(sessions: dict[str, Any]) -> None:
    admin = sessions["admin"]
    made = await admin.send("POST", "/waivers", json={"version": "2027-1", "text": "Newer."})
    assert made.status_code == 201 and len(made.json()["sha256"]) == 64
    other = await admin.send("POST", "/waivers", json={"version": "2027-1", "text": "Else."})
    assert other.status_code == 422
    versions = [w["version"] for w in (await admin.get("/waivers")).json()["waivers"]]
    assert versions == [WAIVER.version, "2027-1"]


async def test_an_owner_sets_masks_on_their_camera(gate: Gate, sessions: dict[str, Any]) -> None:
    bob = sessions["bob"]
    assert (await bob.get("/cameras/b1/masks")).json()["polygons"] == []
    square = [[0.1, 0.1], [0.4, 0.1], [0.4, 0.4], [0.1, 0.4]]
    put = await bob.send("PUT", "/cameras/b1/masks", json={"polygons": [square]})
    assert put.status_code == 200, put.text
    read = await sessions["operator"].get("/cameras/b1/masks")
    assert read.json()["polygons"] == [square] and read.json()["set_by"] == "bob"
    assert any(r.kind == "masks.set" for r in gate.audit.records())
    line = await bob.send("PUT", "/cameras/b1/masks", json={"polygons": [[[0, 0], [1, 1]]]})
    assert line.status_code == 422
    cleared = await bob.send("PUT", "/cameras/b1/masks", json={"polygons": []})
    assert cleared.json()["polygons"] == []


async def test_a_request_reads_with_its_decision_and_grant(sessions: dict[str, Any]) -> None:
    incident = await _incident(sessions)
    granted = (await _ask(sessions, incident, "a1")).json()
    read = await sessions["auditor"].get(f"/requests/{granted['request']}")
    body = read.json()
    assert body["status"] == "granted" and body["grant"]["id"] == granted["grant"]["id"]
    assert body["decision"]["votes"] and "token" not in str(body["grant"])
    held = (await _ask(sessions, incident, "b1")).json()
    waiting = await sessions["bob"].get(f"/requests/{held['request']}")
    assert waiting.json()["status"] == "waiting" and waiting.json()["decision"] is None
    answer = await sessions["bob"].send(
        "POST", f"/requests/{held['request']}/answer", json={"approve": False}
    )
    assert answer.status_code == 200
    refused = await sessions["operator"].get(f"/requests/{held['request']}")
    assert refused.json()["status"] == "refused" and refused.json()["grant"] is None
    assert (await sessions["alice"].get(f"/requests/{held['request']}")).status_code == 404
    assert (await sessions["auditor"].get("/requests/req_nothere")).status_code == 404


async def test_the_audit_verifies_and_an_owner_gets_a_proven_slice(
    gate: Gate, sessions: dict[str, Any]
) -> None:
    incident = await _incident(sessions)
    await _ask(sessions, incident, "a1")
    await _ask(sessions, incident, "b1")
    verified = (await sessions["auditor"].get("/audit/verify")).json()
    assert verified["ok"] is True and verified["status"] == "consistent"
    mine = (await sessions["alice"].get("/owners/me/audit")).json()
    assert mine["verified"]["ok"] is True
    piece = OwnerSlice.from_json(mine["slice"])
    assert piece.owner == "alice" and piece.records
    # The owner checks the proof again on their own, with the hub's public key.
    assert verify_owner_slice(piece, gate.audit.public_key or b"").ok
    assert all("alice" in r.owners for r in piece.records)  # the records about her only
    staff = (await sessions["auditor"].get("/owners/bob/audit")).json()
    assert OwnerSlice.from_json(staff["slice"]).owner == "bob"
    assert (await sessions["auditor"].get("/owners/nobody/audit")).status_code == 404


async def test_the_transparency_report_as_json(sessions: dict[str, Any]) -> None:
    incident = await _incident(sessions)
    await _ask(sessions, incident, "a1")
    read = (await sessions["auditor"].get(f"/incidents/{incident}")).json()
    period = read["reported_at"][:4]
    report = await sessions["supervisor"].get("/report", params={"period": period, "k": 1})
    assert report.status_code == 200, report.text
    body = report.json()
    assert body["log"]["verified"] is True and body["period"] == period
    assert body["requests"]  # the request by incident kind and outcome, counts only
    assert "alice" not in report.text and "bob" not in report.text  # counts, never owners
    for bad in ({"period": "2026-13"}, {"period": "yesterday"}, {"period": "2026", "k": 0}):
        assert (await sessions["auditor"].get("/report", params=bad)).status_code == 422


async def test_owners_and_incidents_are_listed(sessions: dict[str, Any]) -> None:
    owners = (await sessions["auditor"].get("/owners")).json()["owners"]
    assert [o["id"] for o in owners] == ["alice", "bob"]
    first = await _incident(sessions)
    second = await _incident(sessions)
    closed = await sessions["supervisor"].send("POST", f"/incidents/{first}/close")
    assert closed.status_code == 200
    listed = (await sessions["operator"].get("/incidents")).json()["incidents"]
    assert [i["id"] for i in listed] == [first, second]
    still = await sessions["operator"].get("/incidents", params={"status": "open"})
    assert [i["id"] for i in still.json()["incidents"]] == [second]
    assert (await sessions["operator"].get("/incidents?status=maybe")).status_code == 422
