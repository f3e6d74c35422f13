"""The pages' server side, in-process: who may open which page, the pages' settings, and the
interim /pages/api routes (camgate_server.pages.api). The browser tests are in browser/."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from camgate import Gate
from camgate.errors import ValidationError
from camgate_server.pages import PagesSettings
from camgate_server.pages.api import request_status
from fastapi import FastAPI

from .conftest import CENTRE, WAIVER, Logins, Session

pytestmark = pytest.mark.anyio


def _config(page: httpx.Response) -> dict[str, Any]:
    found = re.search(r'<script type="application/json" id="config">(.*?)</script>', page.text)
    assert found is not None
    config: dict[str, Any] = json.loads(found[1])
    return config


async def test_each_page_is_for_its_roles(
    client: httpx.AsyncClient, sessions: dict[str, Session]
) -> None:
    anonymous = await client.get("/portal")
    assert (anonymous.status_code, anonymous.headers["location"]) == (303, "/?next=/portal")
    for who, page, status in (
        ("alice", "/portal", 200),
        ("alice", "/console", 403),
        ("operator", "/console", 200),
        ("operator", "/portal", 403),
        ("auditor", "/console", 200),
        ("admin", "/portal", 403),
    ):
        answer = await sessions[who].get(page)
        assert answer.status_code == status, (who, page)
        assert answer.headers["content-type"].startswith("text/html")
        assert "script-src 'self'" in answer.headers["content-security-policy"]
    console = _config(await sessions["operator"].get("/console"))
    assert console["canRequest"] is True and "investigation" in console["purposes"]
    assert console["tileUrl"] is None  # no tiles unless configured
    audit = _config(await sessions["auditor"].get("/console"))
    assert audit["canRequest"] is False and audit["canReport"] is False
    for page in ("/", "/invite", "/static/common.js", "/static/vendor/leaflet/leaflet.js"):
        assert (await client.get(page)).status_code == 200, page


def test_the_tile_source_is_a_checked_setting() -> None:
    tiles = PagesSettings("https://tiles.example.org/{z}/{x}/{y}.png", "© Example")
    assert "img-src 'self' data: blob: https://tiles.example.org;" in tiles.csp()
    assert "tiles.example" not in PagesSettings().csp()
    for bad in ("http://tiles.example.org/{z}/{x}/{y}.png", "https://tiles.example.org/{z}/{x}"):
        with pytest.raises(ValidationError):
            PagesSettings(bad)


async def test_a_configured_tile_url_reaches_the_console(app: FastAPI, logins: Logins) -> None:
    officer = await logins("operator")
    app.state.pages = PagesSettings("https://tiles.example.org/{z}/{x}/{y}.png", "<b>©</b>")
    page = await officer.get("/console")
    config = _config(page)
    assert config["tileUrl"] == "https://tiles.example.org/{z}/{x}/{y}.png"
    assert config["tileAttribution"] == "<b>©</b>"  # JSON, and "<" cannot close the block
    assert "<b>" not in page.text
    assert "https://tiles.example.org" in page.headers["content-security-policy"]


async def test_an_owner_reads_the_waiver_and_only_their_cameras(
    logins: Logins,
) -> None:
    bob = await logins("bob")
    alice = await logins("alice")
    officer = await logins("operator")
    waiver = (await alice.get("/pages/api/waiver")).json()
    assert waiver == {"version": WAIVER.version, "sha256": WAIVER.sha256, "text": WAIVER.text}
    mine = (await alice.get("/pages/api/my-cameras")).json()["cameras"]
    by = {c["id"]: c for c in mine}
    assert set(by) == {"a1", "a2", "far"}
    assert by["a1"]["consent"]["terms"]["mode"] == "pre-authorised"
    assert by["a1"]["consent"]["waiver_sha256"] == WAIVER.sha256
    assert by["far"]["consent"] is None
    bobs = (await bob.get("/pages/api/my-cameras")).json()["cameras"]
    assert [c["id"] for c in bobs] == ["b1"]
    assert (await officer.get("/pages/api/my-cameras")).status_code == 403


async def test_enrolment_is_the_owners_own(logins: Logins, gate: Gate) -> None:
    bob = await logins("bob")
    alice = await logins("alice")
    officer = await logins("operator")
    body = {
        "cameras": ["far"],
        "waiver_version": WAIVER.version,
        "waiver_sha256": WAIVER.sha256,
        "mode": "ask",
        "scopes": ["live"],
    }
    made = await alice.send("POST", "/pages/api/enrol", json=body)
    assert made.status_code == 201, made.text
    consent = gate.store.active_consent("far")
    assert consent is not None and str(consent.terms.mode) == "ask"
    bob = await bob.send("POST", "/pages/api/enrol", json=body)
    assert bob.status_code == 404  # alice's camera does not exist for bob
    wrong = await alice.send("POST", "/pages/api/enrol", json=body | {"waiver_sha256": "0" * 64})
    assert (wrong.status_code, wrong.json()["error"]) == (422, "ValidationError")
    officer = await officer.send("POST", "/pages/api/enrol", json=body)
    assert officer.status_code == 403
    no_csrf = await alice.client.post("/pages/api/enrol", json=body)
    assert (no_csrf.status_code, no_csrf.json()["error"]) == (403, "CsrfRejected")


async def _ask(officer: Session, camera: str) -> httpx.Response:
    made = await officer.send(
        "POST",
        "/incidents",
        json={"kind": "burglary", "lat": CENTRE.lat, "lon": CENTRE.lon, "radius_m": 300},
    )
    return await officer.send(
        "POST", f"/incidents/{made.json()['id']}/requests", json={"camera": camera, "scope": "live"}
    )


async def test_a_requests_status_follows_it_to_its_end(logins: Logins, gate: Gate) -> None:
    bob = await logins("bob")
    officer = await logins("operator")

    async def status(request_id: str) -> dict[str, Any]:
        answer = await officer.get(f"/pages/api/requests/{request_id}")
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body

    refused = (await _ask(officer, "b1")).json()["request"]
    assert (await status(refused))["status"] == "waiting"
    await bob.send("POST", f"/requests/{refused}/answer", json={"approve": False})
    said_no = await status(refused)
    assert said_no["status"] == "refused" and said_no["reasons"], said_no

    asked = (await _ask(officer, "b1")).json()["request"]
    await bob.send("POST", f"/requests/{asked}/answer", json={"approve": True})
    assert (await status(asked))["status"] == "granted"
    await bob.send("POST", "/owners/me/revoke")
    ended = await status(asked)
    assert ended["status"] == "ended"
    assert ended["reason"].startswith("the owner revoked consent at ")

    now = (await _ask(officer, "a1")).json()
    assert now["status"] == "granted"
    later = datetime.fromisoformat(now["grant"]["expires_at"]) + timedelta(seconds=1)
    expired = request_status(gate, now["request"], later)
    assert expired["status"] == "ended" and "expired" in expired["reason"]

    assert (await bob.get(f"/pages/api/requests/{asked}")).status_code == 403
    assert (await officer.get("/pages/api/requests/req_nope")).status_code == 404


async def test_an_unanswered_request_is_no_answer_after_its_deadline(
    logins: Logins, gate: Gate
) -> None:
    officer = await logins("operator")
    held = (await _ask(officer, "b1")).json()
    past = datetime.fromisoformat(held["deadline"]) + timedelta(seconds=1)
    assert request_status(gate, held["request"], past)["status"] == "no-answer"


async def test_an_approved_request_is_waiting_until_its_grant_is_issued(
    logins: Logins, gate: Gate
) -> None:
    """The owner's yes is stored before the grant is issued (the gate decides again between
    the two): a poll in between saw "refused" with no reason, a final state the console
    never left. It is still "waiting" then."""
    officer = await logins("operator")
    held = (await _ask(officer, "b1")).json()
    asked = gate.store.get_request(held["request"])
    # The state between the answer and the grant: the held request closed with a yes.
    assert gate.store.resolve_pending(asked.id, "yes", gate.clock.now())
    assert request_status(gate, asked.id, gate.clock.now())["status"] == "waiting"
