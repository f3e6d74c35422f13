"""The agency's single sign-on through a trusted reverse proxy (``ServerSettings.proxy``)."""

from __future__ import annotations

import httpx
import pytest
from camgate import Gate
from camgate.errors import ValidationError
from camgate_server.accounts import AccountStore
from camgate_server.app import create_app
from camgate_server.settings import PROXY_SECRET_HEADER, ProxyAuth, ServerSettings

from .conftest import BACKENDS, CENTRE, both_backends

pytestmark = pytest.mark.anyio
anyio_backend = pytest.fixture(params=BACKENDS)(both_backends)  # backend-neutral: both

SECRET = "a proxy secret of at least thirty-two characters"
PROXY = ProxyAuth(SECRET, {"rtcc-officers": "operator", "rtcc-audit": "auditor"})
INCIDENT = {"kind": "burglary", "lat": CENTRE.lat, "lon": CENTRE.lon, "radius_m": 300}


def _client(gate: Gate, accounts: AccountStore, proxy: ProxyAuth | None) -> httpx.AsyncClient:
    app = create_app(gate, accounts, ServerSettings(secure_cookies=False, proxy=proxy))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


def _vouch(user: str, groups: str, secret: str = SECRET) -> dict[str, str]:
    return {PROXY_SECRET_HEADER: secret, "X-Forwarded-User": user, "X-Forwarded-Groups": groups}


async def test_a_person_the_proxy_vouches_for_acts_with_the_mapped_role(
    gate: Gate, accounts: AccountStore
) -> None:
    async with _client(gate, accounts, PROXY) as client:
        officer = _vouch("JDoe", "staff, rtcc-officers")
        me = await client.get("/session", headers=officer)
        assert me.json()["account"] == {
            "id": "sso:jdoe", "username": "jdoe", "role": "operator", "owner": None
        }  # fmt: skip
        csrf = me.json()["csrf_token"]
        # A state change needs the CSRF token, as from a session.
        assert (await client.post("/incidents", json=INCIDENT, headers=officer)).status_code == 403
        made = await client.post(
            "/incidents", json=INCIDENT, headers={**officer, "X-CSRF-Token": csrf}
        )
        assert made.status_code == 201
        granted = await client.post(
            f"/incidents/{made.json()['id']}/requests",
            json={"camera": "a1", "scope": "live"},
            headers={**officer, "X-CSRF-Token": csrf},
        )
        assert granted.status_code == 201
        assert gate.store.get_request(granted.json()["request"]).requested_by == "sso:jdoe"
        # Another person's CSRF token does not pass.
        other = (await client.get("/session", headers=_vouch("asmith", "rtcc-officers"))).json()
        crossed = await client.post(
            "/incidents", json=INCIDENT, headers={**officer, "X-CSRF-Token": other["csrf_token"]}
        )
        assert crossed.status_code == 403
        # An auditor reads and reports nothing.
        auditor = _vouch("eve", "rtcc-audit")
        assert (await client.get("/cameras", headers=auditor)).status_code == 200
        csrf_a = (await client.get("/session", headers=auditor)).json()["csrf_token"]
        refused = await client.post(
            "/incidents", json=INCIDENT, headers={**auditor, "X-CSRF-Token": csrf_a}
        )
        assert refused.status_code == 403


async def test_the_proxy_headers_are_believed_only_with_the_secret(
    gate: Gate, accounts: AccountStore
) -> None:
    async with _client(gate, accounts, PROXY) as client:
        wrong = await client.get("/cameras", headers=_vouch("jdoe", "rtcc-officers", "x" * 40))
        assert wrong.status_code == 401
        unsigned = {"X-Forwarded-User": "jdoe", "X-Forwarded-Groups": "rtcc-officers"}
        assert (await client.get("/cameras", headers=unsigned)).status_code == 401
        nobody = await client.get("/cameras", headers=_vouch("jdoe", "staff"))
        assert nobody.status_code == 403
        both = await client.get("/cameras", headers=_vouch("jdoe", "rtcc-officers,rtcc-audit"))
        assert both.status_code == 403 and "more than one" in both.json()["detail"]
        bad_name = await client.get("/cameras", headers=_vouch("Robert'); --", "rtcc-officers"))
        assert bad_name.status_code == 401
        for answer in (wrong, nobody, both, bad_name):
            assert SECRET not in answer.text
    # Without ProxyAuth the headers mean nothing, secret or not.
    async with _client(gate, accounts, None) as client:
        ignored = await client.get("/cameras", headers=_vouch("jdoe", "rtcc-officers"))
        assert ignored.status_code == 401


def test_proxy_settings_refuse_owners_unknown_roles_and_short_secrets() -> None:
    with pytest.raises(ValidationError):
        ProxyAuth(SECRET, {"residents": "owner"})
    with pytest.raises(ValidationError):
        ProxyAuth(SECRET, {"x": "sheriff"})
    with pytest.raises(ValidationError):
        ProxyAuth("short", {"x": "auditor"})
    assert SECRET not in repr(PROXY) and SECRET not in repr(ServerSettings(proxy=PROXY))
