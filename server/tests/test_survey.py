"""``GET /incidents/{id}/cameras``: the incident map, through the app (in-process HTTP).

The fixture's gate (server/tests/conftest.py): alice's a1 (50 m) and a2 (120 m) pre-authorised
for live and snapshot, bob's b1 (80 m) ask-first for live, alice's ``far`` 5 km away.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from camgate import Gate
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .conftest import CENTRE, PASSWORD, Logins, Session

pytestmark = pytest.mark.anyio


async def _incident(officer: Session, radius_m: float = 300) -> str:
    made = await officer.send(
        "POST",
        "/incidents",
        json={"kind": "burglary", "lat": CENTRE.lat, "lon": CENTRE.lon, "radius_m": radius_m},
    )
    assert made.status_code == 201, made.text
    incident: str = made.json()["id"]
    return incident


def _surveys(gate: Gate) -> list[dict[str, Any]]:
    return [r.body for r in gate.audit.records() if r.kind == "survey"]


async def test_the_map_has_each_cameras_outcome_and_reasons(logins: Logins, gate: Gate) -> None:
    officer = await logins("operator")
    incident = await _incident(officer)
    answer = await officer.get(f"/incidents/{incident}/cameras")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    by = {row["camera"]: row for row in body["cameras"]}
    assert set(by) == {"a1", "a2", "b1"}  # far is 5 km out: not a candidate
    assert by["a1"]["outcome"] == by["a2"]["outcome"] == "allowed"
    assert by["a1"]["outcome_reasons"] == []
    assert by["b1"]["outcome"] == "ask"
    assert any("ask" in r for r in by["b1"]["outcome_reasons"]), by["b1"]
    assert body["counts"] == {"candidates": 3, "allowed": 2, "ask": 1, "denied": 0}
    assert body["area"] == {"lat": CENTRE.lat, "lon": CENTRE.lon, "radius_m": 300.0}
    assert "investigation" in body["purposes"]
    assert by["a1"]["distance_m"] == pytest.approx(50, abs=1)


async def test_a_refused_camera_says_why(logins: Logins) -> None:
    officer = await logins("operator")
    incident = await _incident(officer)
    answer = await (await logins("supervisor")).get(
        f"/incidents/{incident}/cameras", params={"scope": "snapshot"}
    )
    assert answer.status_code == 200, answer.text
    rows = {row["camera"]: row for row in answer.json()["cameras"]}
    assert rows["a1"]["outcome"] == "allowed"  # alice shares snapshots, bob only live
    assert rows["b1"]["outcome"] == "denied"
    reasons = rows["b1"]["outcome_reasons"]
    assert reasons and all(": " in r for r in reasons), reasons
    assert any("snapshot" in r for r in reasons), reasons
    assert answer.json()["counts"]["denied"] == 1


async def test_one_survey_audit_record_names_the_caller(logins: Logins, gate: Gate) -> None:
    officer = await logins("operator")
    incident = await _incident(officer)
    before = len(_surveys(gate))
    answer = await (await logins("auditor")).get(f"/incidents/{incident}/cameras")
    assert answer.status_code == 200
    surveys = _surveys(gate)
    assert len(surveys) == before + 1
    me = (await (await logins("auditor")).get("/session")).json()["account"]["id"]
    last = surveys[-1]
    assert last["requested_by"] == me
    assert (last["incident"], last["candidates"], last["allowed"], last["ask"]) == (
        incident,
        3,
        2,
        1,
    )
    # counts only: no camera, no owner
    assert set(last) == {"incident", "scope", "purpose", "requested_by", "at"} | {
        "candidates",
        "allowed",
        "ask",
        "denied",
    }


async def test_geojson_by_accept_or_format(logins: Logins) -> None:
    officer = await logins("operator")
    incident = await _incident(officer)
    for kw in ({"headers": {"Accept": "application/geo+json"}}, {"params": {"format": "geojson"}}):
        answer = await (await logins("admin")).get(f"/incidents/{incident}/cameras", **kw)
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("application/geo+json")
        geo = answer.json()
        assert geo["type"] == "FeatureCollection"
        assert geo["counts"]["candidates"] == 3
        feature = next(f for f in geo["features"] if f["id"] == "b1")
        assert feature["geometry"]["type"] == "Point"
        lon, lat = feature["geometry"]["coordinates"]
        assert lat > CENTRE.lat and lon == pytest.approx(CENTRE.lon)
        assert feature["properties"]["outcome"] == "ask"


async def test_who_may_see_the_map(sessions: dict[str, Session], gate: Gate) -> None:
    """Staff who read incidents may; an owner may not (403, and the gate is not asked)."""
    incident = await _incident(sessions["operator"])
    expected = {"admin": 200, "operator": 200, "supervisor": 200, "auditor": 200}
    for who in sessions:
        before = len(_surveys(gate))
        answer = await sessions[who].get(f"/incidents/{incident}/cameras")
        status = expected.get(who, 403)
        assert answer.status_code == status, (who, answer.text)
        if status == 403:
            assert answer.json()["error"] == "Forbidden"
            assert "b1" not in answer.text and "a2" not in answer.text
            assert len(_surveys(gate)) == before  # refused before the gate was asked
        else:
            assert len(_surveys(gate)) == before + 1


async def test_anonymous_is_401_and_unknown_incident_404(client: Any, logins: Logins) -> None:
    officer = await logins("operator")
    incident = await _incident(officer)
    assert (await client.get(f"/incidents/{incident}/cameras")).status_code == 401
    missing = await officer.get("/incidents/inc_nope/cameras")
    assert missing.status_code == 404
    assert missing.json()["error"] == "NotFound"


async def test_bad_query_values_are_422(logins: Logins) -> None:
    officer = await logins("operator")
    incident = await _incident(officer)
    for params in ({"scope": "x-ray"}, {"duration_s": "-1"}, {"duration_s": "nan"}):
        answer = await officer.get(f"/incidents/{incident}/cameras", params=params)
        assert answer.status_code == 422, (params, answer.text)
        assert answer.json()["error"] == "ValidationError"


async def test_a_purpose_outside_the_agencys_list_is_refused_with_its_reason(
    logins: Logins,
) -> None:
    officer = await logins("operator")
    incident = await _incident(officer)
    answer = await officer.get(
        f"/incidents/{incident}/cameras", params={"purpose": "face-recognition"}
    )
    assert answer.status_code == 200
    rows = answer.json()["cameras"]
    assert rows and all(row["outcome"] == "denied" for row in rows)
    assert all(any("face-recognition" in r for r in row["outcome_reasons"]) for row in rows)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    scope=st.text(max_size=12),
    purpose=st.text(max_size=40),
    duration=st.one_of(st.floats(allow_nan=True), st.text(max_size=8)),
)
def test_any_query_is_an_answer_or_a_clear_422(
    live_server: str, scope: str, purpose: str, duration: float | str
) -> None:
    """Whatever the query says, the map answers 200 or a ValidationError problem: never a 500."""
    cookies, incident = _signed_in_officer(live_server)
    params = {"scope": scope, "purpose": purpose, "duration_s": str(duration)}
    with httpx.Client(base_url=live_server, cookies=cookies) as officer:
        answer = officer.get(f"/incidents/{incident}/cameras", params=params)
    assert answer.status_code in (200, 422), answer.text
    if answer.status_code == 422:
        assert answer.json()["error"] == "ValidationError"


_OFFICERS: dict[str, tuple[dict[str, str], str]] = {}


def _signed_in_officer(server: str) -> tuple[dict[str, str], str]:
    """An officer's session cookies and an incident on ``server``, made once per server (a
    login's argon2 check is slow on purpose)."""
    if server not in _OFFICERS:
        with httpx.Client(base_url=server) as officer:
            logged = officer.post("/session", json={"username": "operator", "password": PASSWORD})
            csrf = {"X-CSRF-Token": logged.json()["csrf_token"]}
            body = {"kind": "burglary", "lat": CENTRE.lat, "lon": CENTRE.lon, "radius_m": 300}
            incident = officer.post("/incidents", json=body, headers=csrf).json()["id"]
            _OFFICERS[server] = (dict(officer.cookies), incident)
    return _OFFICERS[server]
