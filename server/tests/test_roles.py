"""Who may do what, through the routes: every role against every action (allowed and
forbidden), an owner's view of another owner's resources (404), an officer approving (403)."""

from __future__ import annotations

from typing import Any

import pytest
from camgate import Gate
from camgate.errors import AnswerPending
from fastapi import FastAPI

from .conftest import BACKENDS, CENTRE, PEOPLE, both_backends, login

pytestmark = pytest.mark.anyio
anyio_backend = pytest.fixture(params=BACKENDS)(both_backends)  # backend-neutral: both

EVERYONE = frozenset(PEOPLE)
STAFF = frozenset({"admin", "operator", "supervisor", "auditor"})
OVERSIGHT = frozenset({"admin", "supervisor", "auditor"})

#: action → (method, path, body, success status, who succeeds). ``{inc}`` is an open incident
#: near the cameras, ``{held}`` bob's request held for his answer. Anyone else gets 403,
#: except where ``NOT_FOUND`` says 404.
CASES: dict[str, tuple[str, str, dict[str, Any] | None, int, frozenset[str]]] = {
    "read owner": ("GET", "/owners/alice", None, 200, frozenset({"admin", "auditor"})),
    "create owner": ("POST", "/owners", {"name": "Carol"}, 201, frozenset({"admin"})),
    "invite owner": ("POST", "/owners/alice/invites", None, 201, frozenset({"admin"})),
    "create account": (
        "POST",
        "/accounts",
        {"username": "newop", "password": "another long password", "role": "operator"},
        201,
        frozenset({"admin"}),
    ),
    "list accounts": ("GET", "/accounts", None, 200, frozenset({"admin", "auditor"})),
    "list cameras": ("GET", "/cameras", None, 200, EVERYONE),
    "read alice's camera": ("GET", "/cameras/a1", None, 200, STAFF | {"alice"}),
    "read bob's camera": ("GET", "/cameras/b1", None, 200, STAFF | {"bob"}),
    "report incident": (
        "POST",
        "/incidents",
        {"kind": "burglary", "lat": CENTRE.lat, "lon": CENTRE.lon, "radius_m": 200},
        201,
        frozenset({"operator", "supervisor"}),
    ),
    "read incident": ("GET", "/incidents/{inc}", None, 200, STAFF),
    "close incident": ("POST", "/incidents/{inc}/close", None, 200, frozenset({"supervisor"})),
    "request access": (
        "POST",
        "/incidents/{inc}/requests",
        {"camera": "a1", "scope": "live"},
        201,
        frozenset({"operator"}),
    ),
    "approve request": (
        "POST",
        "/requests/{held}/answer",
        {"approve": True},
        200,
        frozenset({"bob"}),
    ),
    "revoke own consent": ("POST", "/owners/me/revoke", None, 200, frozenset({"alice", "bob"})),
    "own accesses": ("GET", "/owners/me/accesses", None, 200, frozenset({"alice", "bob"})),
    "list owners": ("GET", "/owners", None, 200, frozenset({"admin", "auditor"})),
    "list incidents": ("GET", "/incidents", None, 200, STAFF),
    "read waivers": ("GET", "/waivers", None, 200, EVERYONE),
    "publish waiver": (
        "POST", "/waivers", {"version": "2027-1", "text": "New text."}, 201, frozenset({"admin"})
    ),
    "read own enrolments": ("GET", "/owners/me/enrolments", None, 200, frozenset({"alice", "bob"})),
    "read alice's enrolments": ("GET", "/owners/alice/enrolments", None, 200, OVERSIGHT),
    "read bob's masks": ("GET", "/cameras/b1/masks", None, 200, STAFF | {"bob"}),
    "set bob's masks": (
        "PUT", "/cameras/b1/masks", {"polygons": [[[0, 0], [0.5, 0], [0, 0.5]]]}, 200,
        frozenset({"bob"}),
    ),
    "read bob's request": ("GET", "/requests/{held}", None, 200, STAFF | {"bob"}),
    "verify audit": ("GET", "/audit/verify", None, 200, OVERSIGHT),
    "own audit slice": ("GET", "/owners/me/audit", None, 200, frozenset({"alice", "bob"})),
    "alice's audit slice": ("GET", "/owners/alice/audit", None, 200, OVERSIGHT),
    "transparency report": ("GET", "/report?period=2026", None, 200, OVERSIGHT),
}  # fmt: skip
#: Where an owner is told "not found" rather than "forbidden": another owner's resource.
NOT_FOUND = {("read alice's camera", "bob"), ("read bob's camera", "alice"),
             ("approve request", "alice"), ("read bob's masks", "alice"),
             ("set bob's masks", "alice"), ("read bob's request", "alice")}  # fmt: skip


def expected(action: str, user: str) -> int:
    _, _, _, ok, who = CASES[action]
    if user in who:
        return ok
    return 404 if (action, user) in NOT_FOUND else 403


async def _held_request(gate: Gate, incident_id: str) -> str:
    try:
        await gate.request_access(incident_id, "b1", "live", requested_by="op1", wait=False)
    except AnswerPending as held:
        return held.pending.request_id
    raise AssertionError("bob's terms ask first: the request should be held")


@pytest.mark.parametrize("user", sorted(PEOPLE))
@pytest.mark.parametrize("action", sorted(CASES))
async def test_the_policy_table_through_the_routes(
    app: FastAPI, gate: Gate, action: str, user: str
) -> None:
    method, path, body, _, _ = CASES[action]
    incident = gate.report_incident("robbery", CENTRE, 300.0)
    held = await _held_request(gate, incident.id) if "{held}" in path else ""
    session = await login(app, user)
    try:
        url = path.format(inc=incident.id, held=held)
        if method == "GET":
            answer = await session.get(url)
        else:
            answer = await session.send(method, url, json=body)
    finally:
        await session.client.aclose()
    assert answer.status_code == expected(action, user), answer.text
    if answer.status_code >= 400:
        problem = answer.json()
        assert answer.headers["content-type"] == "application/problem+json"
        assert problem["error"] == ("NotFound" if answer.status_code == 404 else "Forbidden")
        assert problem["type"] == f"urn:camgate:problem:{problem['error']}"


async def test_an_owner_lists_only_their_own_cameras(sessions: dict[str, Any]) -> None:
    alice = await sessions["alice"].get("/cameras")
    assert {c["id"] for c in alice.json()["cameras"]} == {"a1", "a2", "far"}
    staff = await sessions["auditor"].get("/cameras")
    assert {c["id"] for c in staff.json()["cameras"]} == {"a1", "a2", "b1", "far"}
    near = await sessions["bob"].get("/cameras", params={"near": f"{CENTRE.lat},{CENTRE.lon}"})
    assert [c["id"] for c in near.json()["cameras"]] == ["b1"]
