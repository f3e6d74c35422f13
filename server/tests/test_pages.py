"""The pages' server side, in-process: who may open which page and the pages' settings. The
browser tests are in browser/."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import pytest
from camgate.errors import ValidationError
from camgate_server.pages import PagesSettings
from fastapi import FastAPI

from .conftest import Logins, Session

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
        ("admin", "/admin", 200),
        ("auditor", "/admin", 200),
        ("operator", "/admin", 403),
        ("alice", "/admin", 403),
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
    admin = _config(await sessions["admin"].get("/admin"))
    assert admin["canPublish"] is True and "investigation" in admin["rules"]["purposes"]
    auditor = _config(await sessions["auditor"].get("/admin"))
    assert auditor["canPublish"] is False and auditor["canInvite"] is False
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


async def test_the_interim_page_routes_are_gone(logins: Logins) -> None:
    """The pages call the API's own waiver, enrolment and request resources now."""
    alice = await logins("alice")
    for path in ("/pages/api/waiver", "/pages/api/my-cameras", "/pages/api/requests/x"):
        assert (await alice.get(path)).status_code == 404, path
