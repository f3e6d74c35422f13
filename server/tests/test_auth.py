"""Authentication: session cookies and their CSRF tokens, expiry, logout, API tokens and their
scopes, the login rate limit, single-use invites."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from camgate import Gate
from camgate_server.accounts import AccountStore
from camgate_server.app import create_app
from camgate_server.settings import ServerSettings
from fastapi import FastAPI

from .conftest import BACKENDS, CENTRE, PASSWORD, SETTINGS, MovableClock, both_backends, login

pytestmark = pytest.mark.anyio
anyio_backend = pytest.fixture(params=BACKENDS)(both_backends)  # backend-neutral: both

INCIDENT = {"kind": "burglary", "lat": CENTRE.lat, "lon": CENTRE.lon, "radius_m": 200}


async def test_a_session_cookie_is_httponly_strict_and_secure_when_asked(
    gate: Gate, accounts: AccountStore
) -> None:
    for secure in (True, False):
        settings = ServerSettings(secure_cookies=secure)
        app = create_app(gate, accounts, settings)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="https://testserver"
        ) as client:
            answer = await client.post(
                "/session", json={"username": "operator", "password": PASSWORD}
            )
        cookie = answer.headers["set-cookie"]
        assert answer.status_code == 200
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
        assert ("Secure" in cookie) is secure
        assert cookie.startswith("__Host-camgate_session=" if secure else "camgate_session=")
        assert "Domain" not in cookie


async def test_a_state_change_without_the_csrf_token_is_403(app: FastAPI) -> None:
    session = await login(app, "operator")
    client = session.client
    missing = await client.post("/incidents", json=INCIDENT)
    wrong = await client.post("/incidents", json=INCIDENT, headers={"X-CSRF-Token": "x" * 43})
    for answer in (missing, wrong):
        assert answer.status_code == 403
        assert answer.json()["error"] == "CsrfRejected"
    # A read needs none; the right token passes.
    assert (await client.get("/cameras")).status_code == 200
    assert (await session.send("POST", "/incidents", json=INCIDENT)).status_code == 201
    # Logging out is a state change too.
    assert (await client.delete("/session")).status_code == 403
    await client.aclose()


async def test_an_expired_session_is_401_and_logout_ends_one(
    app: FastAPI, clock: MovableClock
) -> None:
    session = await login(app, "auditor")
    assert (await session.get("/cameras")).status_code == 200
    clock.advance(SETTINGS.session_ttl_s + 1)
    expired = await session.get("/cameras")
    assert expired.status_code == 401
    assert expired.json()["error"] == "NotAuthenticated"
    assert "expired" in expired.json()["detail"]

    again = await login(app, "auditor")
    assert (await again.send("DELETE", "/session")).status_code == 204
    assert (await again.get("/cameras")).status_code == 401
    cookie = again.client.cookies.get("camgate_session")
    assert cookie is None  # the server cleared it
    await session.client.aclose()
    await again.client.aclose()


async def _token(admin: Any, account: str, scopes: list[str], ttl_s: float = 3600) -> str:
    answer = await admin.send(
        "POST",
        "/tokens",
        json={"account": account, "name": "cad", "scopes": scopes, "ttl_s": ttl_s},
    )
    assert answer.status_code == 201, answer.text
    token: str = answer.json()["token"]
    return token


async def test_a_token_acts_only_within_its_scopes(
    app: FastAPI, client: httpx.AsyncClient, accounts: AccountStore, clock: MovableClock
) -> None:
    admin = await login(app, "admin")
    operator = await login(app, "operator")
    me = (await operator.get("/session")).json()["account"]["id"]
    token = await _token(admin, me, ["cameras:read"])
    bearer = {"Authorization": f"Bearer {token}"}
    assert (await client.get("/cameras", headers=bearer)).status_code == 200
    # The operator's role may report incidents; this token's scopes do not: 403, no CSRF asked.
    refused = await client.post("/incidents", json=INCIDENT, headers=bearer)
    assert refused.status_code == 403
    assert "scopes" in refused.json()["detail"]
    writer = await _token(admin, me, ["incidents:report"])
    made = await client.post(
        "/incidents", json=INCIDENT, headers={"Authorization": f"Bearer {writer}"}
    )
    assert made.status_code == 201
    # A scope beyond the account's role is refused when the token is made.
    beyond = await admin.send(
        "POST",
        "/tokens",
        json={"account": me, "name": "x", "scopes": ["owners:write"], "ttl_s": 60},
    )
    assert beyond.status_code == 422
    # Revoked, then expired: 401.
    token_id = token.split("_")[1]
    assert (await admin.send("DELETE", f"/tokens/{token_id}")).status_code == 204
    assert (await client.get("/cameras", headers=bearer)).status_code == 401
    clock.advance(3601)
    late = await client.get("/cameras", headers={"Authorization": f"Bearer {writer}"})
    assert late.status_code == 401
    # A token with the right shape and a wrong secret is 401 too.
    forged = writer[:-4] + ("AAAA" if not writer.endswith("AAAA") else "BBBB")
    clock.advance(-3601)
    assert (
        await client.get("/cameras", headers={"Authorization": f"Bearer {forged}"})
    ).status_code == 401
    await admin.client.aclose()
    await operator.client.aclose()


async def test_failed_logins_are_limited_per_account_then_429(
    client: httpx.AsyncClient,
) -> None:
    wrong = {"username": "operator", "password": "not the password at all"}
    for _ in range(SETTINGS.login_failures_per_account):
        assert (await client.post("/session", json=wrong)).status_code == 401
    locked = await client.post("/session", json={"username": "operator", "password": PASSWORD})
    assert locked.status_code == 429
    assert locked.json()["error"] == "TooManyAttempts"
    assert 1 <= int(locked.headers["Retry-After"]) <= SETTINGS.login_window_s
    # Another account from the same address is not locked by these.
    other = await client.post("/session", json={"username": "auditor", "password": PASSWORD})
    assert other.status_code == 200


async def test_failed_logins_are_limited_per_address(client: httpx.AsyncClient) -> None:
    for i in range(SETTINGS.login_failures_per_address):
        answer = await client.post("/session", json={"username": f"guess{i}", "password": "x"})
        assert answer.status_code == 401
    locked = await client.post("/session", json={"username": "auditor", "password": PASSWORD})
    assert locked.status_code == 429
    assert "Retry-After" in locked.headers


async def test_an_invite_makes_one_owner_account_once(
    app: FastAPI, client: httpx.AsyncClient, clock: MovableClock
) -> None:
    admin = await login(app, "admin")
    invite = (await admin.send("POST", "/owners/bob/invites")).json()
    body = {"code": invite["code"], "username": "bob2", "password": "bob's own long password"}
    made = await client.post("/invites/accept", json=body)
    assert made.status_code == 201
    assert made.json()["role"] == "owner" and made.json()["owner"] == "bob"
    twice = await client.post("/invites/accept", json={**body, "username": "bob3"})
    assert twice.status_code == 410
    assert twice.json()["error"] == "InviteInvalid"
    # The new owner logs in and sees Bob's cameras only.
    logged = await client.post("/session", json={"username": "bob2", "password": body["password"]})
    assert logged.status_code == 200
    assert [c["id"] for c in (await client.get("/cameras")).json()["cameras"]] == ["b1"]
    # An invite not used in time is refused; so is one for an unknown owner.
    assert (await admin.send("POST", "/owners/nobody/invites")).status_code == 404
    late = (await admin.send("POST", "/owners/alice/invites")).json()
    clock.advance(SETTINGS.invite_ttl_s + 1)
    expired = await client.post(
        "/invites/accept", json={**body, "code": late["code"], "username": "al"}
    )
    assert expired.status_code == 410
    await admin.client.aclose()


async def test_a_login_sent_as_a_cross_site_form_would_be_is_refused(
    client: httpx.AsyncClient,
) -> None:
    """A form or ``text/plain`` body (what another site can make a browser send without a
    preflight) is not read as JSON: no login CSRF."""
    body = f'{{"username": "operator", "password": "{PASSWORD}"}}'
    for kind in ("text/plain", "application/x-www-form-urlencoded"):
        answer = await client.post("/session", content=body, headers={"Content-Type": kind})
        assert answer.status_code == 422
        assert "set-cookie" not in answer.headers
