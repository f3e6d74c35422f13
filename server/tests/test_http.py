"""Through real HTTP (uvicorn on 127.0.0.1): a whole session, and no secret — password, session
cookie, CSRF token, API token, invite code — in any later answer, any log line, or the OpenAPI
document. Every error is a problem document."""

from __future__ import annotations

import json
import logging

import anyio
import httpx
import pytest
from camgate_server.accounts import AccountStore
from fastapi import FastAPI

from .conftest import CENTRE, PASSWORD


def test_a_session_over_real_http_never_shows_a_secret_again(
    live_server: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    later: list[httpx.Response] = []
    with httpx.Client(base_url=live_server, follow_redirects=False) as admin:
        logged = admin.post("/session", json={"username": "admin", "password": PASSWORD})
        assert logged.status_code == 200
        cookie = admin.cookies["camgate_session"]
        csrf = logged.json()["csrf_token"]
        assert "HttpOnly" in logged.headers["set-cookie"]
        headers = {"X-CSRF-Token": csrf}
        operator_id = admin.post(
            "/accounts",
            json={"username": "cad", "password": "machine password 123", "role": "operator"},
            headers=headers,
        ).json()["id"]
        made = admin.post(
            "/tokens",
            json={
                "account": operator_id,
                "name": "cad",
                "scopes": ["incidents:report", "requests:create", "cameras:read"],
                "ttl_s": 600,
            },
            headers=headers,
        )
        token = made.json()["token"]
        invite = admin.post("/owners/alice/invites", headers=headers).json()["code"]
        later.append(admin.get("/session"))  # shows the CSRF token, by design; nothing else
        later.append(admin.get("/cameras"))
        later.append(admin.get("/owners/alice"))
        later.append(admin.post("/incidents", json={}, headers=headers))  # 403
    with httpx.Client(base_url=live_server) as machine:
        bearer = {"Authorization": f"Bearer {token}"}
        incident = machine.post(
            "/incidents",
            json={"kind": "robbery", "lat": CENTRE.lat, "lon": CENTRE.lon, "radius_m": 300},
            headers=bearer,
        )
        assert incident.status_code == 201
        granted = machine.post(
            f"/incidents/{incident.json()['id']}/requests",
            json={"camera": "a1", "scope": "live"},
            headers=bearer,
        )
        assert granted.status_code == 201
        later += [incident, granted]
        later.append(machine.get("/cameras", headers={"Authorization": f"Bearer {token}x"}))
        # Validation errors never echo what was sent (a password may be in the wrong field).
        later.append(machine.post("/session", json={"username": PASSWORD, "password": 1}))
        later.append(
            machine.post("/session", json={"username": "a", "password": "p", "extra": PASSWORD})
        )
        later.append(machine.post("/invites/accept", json={"code": invite, "username": "A B",
                                                           "password": PASSWORD}))  # fmt: skip
        later.append(machine.get("/openapi.json"))
    assert [r.status_code for r in later[-5:-1]] == [401, 422, 422, 422]
    secrets = {"password": PASSWORD, "cookie": cookie, "token": token, "invite": invite}
    for response in later:
        text = response.text + json.dumps(dict(response.headers))
        for name, secret in secrets.items():
            assert secret not in text, f"{name} in {response.request.url}"
        if response.status_code >= 400:
            assert response.headers["content-type"] == "application/problem+json"
    secrets["csrf"] = csrf
    # The server's logs (uvicorn's, camgate's): not the test's own client (httpx, httpcore),
    # whose debug trace prints the headers it received.
    logged = "\n".join(
        r.getMessage() for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))
    )
    for name, secret in secrets.items():
        assert secret not in logged, f"{name} in the logs"
    assert "POST /session" in logged  # the access log was captured at all


def test_the_openapi_document_marks_passwords_write_only(live_server: str) -> None:
    document = httpx.get(f"{live_server}/openapi.json").json()
    login = document["components"]["schemas"]["LoginBody"]["properties"]["password"]
    assert login["format"] == "password" and login["writeOnly"] is True
    assert PASSWORD not in json.dumps(document)
    assert "/owners/me/revoke" in document["paths"]


def test_unknown_routes_and_methods_are_problem_documents(live_server: str) -> None:
    with httpx.Client(base_url=live_server) as client:
        missing = client.get("/nothing-here")
        wrong = client.put("/cameras")
        anonymous = client.get("/cameras")
    assert (missing.status_code, missing.json()["error"]) == (404, "NotFound")
    assert (wrong.status_code, wrong.json()["error"]) == (405, "MethodNotAllowed")
    assert (anonymous.status_code, anonymous.json()["error"]) == (401, "NotAuthenticated")
    assert anonymous.headers["www-authenticate"].startswith("Bearer")
    for answer in (missing, wrong, anonymous):
        assert answer.headers["content-type"] == "application/problem+json"
        assert answer.json()["status"] == answer.status_code


async def _anonymous_cameras(app: FastAPI) -> httpx.Response:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://testserver", cookies={"camgate_session": "s" * 43}
    ) as client:
        return await client.get("/cameras")


def test_an_unexpected_failure_is_a_500_problem_that_says_nothing_of_it(
    app: FastAPI, accounts: AccountStore, caplog: pytest.LogCaptureFixture
) -> None:
    accounts.close()  # every lookup now fails inside sqlite3 with a ProgrammingError
    answer = anyio.run(_anonymous_cameras, app)
    assert answer.status_code == 500
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["error"] == "InternalError"
    assert answer.json()["detail"] == "the server could not complete the request"
    assert "sqlite" not in answer.text.lower() and "closed" not in answer.text
