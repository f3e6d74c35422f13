"""The resources: owners, cameras (JSON and GeoJSON, near a point), incidents, access requests
(granted, held, refused with every reason), an owner's revocation and accesses."""

from __future__ import annotations

from typing import Any

import pytest
from camgate import Gate

from .conftest import BACKENDS, CENTRE, both_backends

pytestmark = pytest.mark.anyio
anyio_backend = pytest.fixture(params=BACKENDS)(both_backends)  # backend-neutral: both

INCIDENT = {"kind": "burglary", "lat": CENTRE.lat, "lon": CENTRE.lon, "radius_m": 300}


async def _incident(operator: Any) -> str:
    made = await operator.send("POST", "/incidents", json=INCIDENT)
    assert made.status_code == 201, made.text
    assert made.json()["status"] == "open"
    incident_id: str = made.json()["id"]
    return incident_id


async def _ask(operator: Any, camera: str, incident_id: str | None = None) -> Any:
    """The operator's request for ``camera``'s live view, under a new incident by default."""
    incident_id = incident_id or await _incident(operator)
    return await operator.send(
        "POST", f"/incidents/{incident_id}/requests", json={"camera": camera, "scope": "live"}
    )


async def test_cameras_near_a_point_as_json_and_geojson(sessions: dict[str, Any]) -> None:
    operator = sessions["operator"]
    near = {"near": f"{CENTRE.lat},{CENTRE.lon}", "radius": "100"}
    answer = await operator.get("/cameras", params=near)
    assert answer.headers["content-type"].startswith("application/json")
    cameras = answer.json()["cameras"]
    assert [c["id"] for c in cameras] == ["a1", "b1"]  # nearest first, a2 (120 m) outside
    assert all("source" not in c for c in cameras)  # a camera URL may carry credentials
    assert 45 < cameras[0]["distance_m"] < 55
    by_query = await operator.get("/cameras", params={**near, "format": "geojson"})
    by_accept = await operator.get(
        "/cameras", params=near, headers={"Accept": "application/geo+json"}
    )
    for geo in (by_query, by_accept):
        assert geo.headers["content-type"].startswith("application/geo+json")
        body = geo.json()
        assert body["type"] == "FeatureCollection"
        first = body["features"][0]
        assert first["id"] == "a1" and first["geometry"]["type"] == "Point"
        lon, lat = first["geometry"]["coordinates"]
        assert lon == pytest.approx(CENTRE.lon) and lat > CENTRE.lat
    for bad in ({"near": "91,0"}, {"near": "1;2"}, {"near": "1,2", "radius": "-5"},
                {"radius": "10"}):  # fmt: skip
        refused = await operator.get("/cameras", params=bad)
        assert refused.status_code == 422
        assert refused.json()["error"] == "ValidationError"


async def test_the_accounts_are_listed_without_their_secrets(logins: Any) -> None:
    """GET /accounts: every account by username, its role and owner; nothing secret."""
    admin = await logins("admin")
    token = await admin.send(
        "POST", "/tokens",
        json={"account": (await admin.get("/session")).json()["account"]["id"],
              "name": "x", "scopes": ["owners:read"], "ttl_s": 60},
    )  # fmt: skip
    assert token.status_code == 201, token.text
    listed = await (await logins("auditor")).get("/accounts")
    assert listed.status_code == 200, listed.text
    accounts = listed.json()["accounts"]
    assert [a["username"] for a in accounts] == sorted(a["username"] for a in accounts)
    by_name = {a["username"]: a for a in accounts}
    assert set(by_name) >= {"admin", "operator", "auditor", "alice", "bob"}
    assert by_name["alice"]["role"] == "owner" and by_name["alice"]["owner"] == "alice"
    assert by_name["operator"]["role"] == "operator" and by_name["operator"]["owner"] is None
    assert all(set(a) == {"id", "username", "role", "owner"} for a in accounts)
    for secret in ("argon2", token.json()["token"], admin.csrf, "password"):
        assert secret not in listed.text


async def test_owners_are_made_and_read_by_the_agency(sessions: dict[str, Any]) -> None:
    made = await sessions["admin"].send(
        "POST", "/owners", json={"id": "carol", "name": "Carol", "contact": "carol@example.org"}
    )
    assert made.status_code == 201
    read = await sessions["auditor"].get("/owners/carol")
    assert read.json() == made.json() == {
        "id": "carol", "name": "Carol", "contact": "carol@example.org", "time_zone": "UTC"
    }  # fmt: skip
    assert (await sessions["auditor"].get("/owners/nobody")).status_code == 404
    mine = await sessions["alice"].get("/owners/me")
    assert mine.json()["id"] == "alice"


async def test_a_granted_request_carries_every_vote(sessions: dict[str, Any]) -> None:
    operator = sessions["operator"]
    incident_id = await _incident(operator)
    read = await sessions["auditor"].get(f"/incidents/{incident_id}")
    assert read.json()["kind"] == "burglary"
    # An owner never reads the crime map: only requests for their own cameras tell of one.
    assert (await sessions["alice"].get(f"/incidents/{incident_id}")).status_code == 403
    granted = await _ask(operator, "a1", incident_id)
    assert granted.status_code == 201, granted.text
    body = granted.json()
    assert body["status"] == "granted"
    assert body["decision"]["allowed"] is True
    votes = body["decision"]["votes"]
    assert votes and all(v["verdict"] in ("allow", "abstain") for v in votes)
    assert all(v["reason"] for v in votes)
    assert body["grant"]["camera"] == "a1" and body["grant"]["scope"] == "live"
    assert "token" not in body["grant"]  # the grant's bearer token never leaves the server
    # Alice sees the access in her history, with who asked.
    history = (await sessions["alice"].get("/owners/me/accesses")).json()
    assert history["summary"]["granted"] == 1
    assert history["requests"][0]["camera"] == "a1"
    # Bob's history does not show it.
    assert (await sessions["bob"].get("/owners/me/accesses")).json()["summary"]["requests"] == 0


async def test_a_refused_request_is_a_403_problem_with_the_reasons(
    sessions: dict[str, Any],
) -> None:
    refused = await _ask(sessions["operator"], "far")
    assert refused.status_code == 403
    assert refused.headers["content-type"] == "application/problem+json"
    problem = refused.json()
    assert problem["error"] == "AccessDenied"
    assert problem["reasons"] and all(": " in r for r in problem["reasons"])
    assert problem["decision"]["allowed"] is False
    denials = [v for v in problem["decision"]["votes"] if v["verdict"] == "deny"]
    assert [f"{v['policy']}: {v['reason']}" for v in denials] == problem["reasons"]


async def test_an_ask_first_request_waits_for_its_owner(
    sessions: dict[str, Any], gate: Gate
) -> None:
    held = await _ask(sessions["operator"], "b1")
    assert held.status_code == 202
    request_id = held.json()["request"]
    assert held.json()["status"] == "waiting"
    assert [p.request_id for p in gate.pending("bob")] == [request_id]
    waiting = (await sessions["bob"].get("/owners/me/pending")).json()["pending"]
    assert [(w["request"], w["camera"], w["scope"]) for w in waiting] == [
        (request_id, "b1", "live")
    ]
    assert (await sessions["alice"].get("/owners/me/pending")).json()["pending"] == []
    assert (await sessions["operator"].get("/owners/me/pending")).status_code == 403
    no = await sessions["bob"].send(
        "POST", f"/requests/{request_id}/answer", json={"approve": False}
    )
    assert no.status_code == 200
    assert no.json()["allowed"] is False
    assert gate.pending("bob") == []


async def test_an_owner_revokes_and_later_requests_are_refused(
    sessions: dict[str, Any],
) -> None:
    operator = sessions["operator"]
    incident_id = await _incident(operator)
    revoked = await sessions["alice"].send("POST", "/owners/me/revoke")
    assert revoked.status_code == 200
    assert revoked.json() == {"owner": "alice", "cameras": ["a1", "a2"]}
    after = await _ask(operator, "a1", incident_id)
    assert after.status_code == 403
    assert any("revoked" in r for r in after.json()["reasons"])
    history = (await sessions["alice"].get("/owners/me/accesses")).json()
    assert history["summary"]["revocations"] == 1


async def test_a_supervisor_closes_an_incident(sessions: dict[str, Any]) -> None:
    incident_id = await _incident(sessions["operator"])
    closed = await sessions["supervisor"].send("POST", f"/incidents/{incident_id}/close")
    assert closed.json()["status"] == "closed"
    late = await _ask(sessions["operator"], "a1", incident_id)
    assert late.status_code == 403
