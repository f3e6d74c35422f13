"""The owner portal and the operator console: HTML pages the server serves itself.

Plain HTML with a little JavaScript (``static/*.js``) that calls the JSON API with the
session's cookie and sends the session's CSRF token on every state-changing fetch. No CDN:
Leaflet is vendored into ``static/vendor`` from npm (server/web/vendor.py). The map's tile
source is a setting (:class:`PagesSettings`); without one the map draws no tiles and every
camera is still on it and in the table beside it.

Each page checks the session on the server before it is sent: without one it redirects to the
sign-in page, and a role the page is not for gets 403 (an officer never sees the owner portal,
an owner never sees the console). docs/pages.md says what each page does.
"""

from __future__ import annotations

import functools
import html
import json
import os
import string
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import attrs
from camgate.codec import dump
from camgate.errors import ValidationError
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from camgate_server.accounts import Caller
from camgate_server.app import caller_of
from camgate_server.errors import NotAuthenticated
from camgate_server.policy import Action, Role, allowed

__all__ = ["STATIC", "PagesSettings", "install", "router"]

HERE = Path(__file__).parent
#: The pages' static files (scripts, styles, the vendored Leaflet), served at ``/static``.
STATIC = HERE / "static"
_TEMPLATES = HERE / "templates"
_LEAFLET = (
    '<link rel="stylesheet" href="/static/vendor/leaflet/leaflet.css">\n'
    '  <script src="/static/vendor/leaflet/leaflet.js" defer></script>\n'
    '  <script src="/static/media.js" defer></script>'
)
#: Scripts a page loads besides common.js and its own: the console the map and the player,
#: the portal the audit slice's check and the mask drawing.
_EXTRA = {
    "console": _LEAFLET,
    "portal": '<script src="/static/slice.js" defer></script>\n'
    '  <script src="/static/masks.js" defer></script>',
}
_STAFF = frozenset({Role.ADMIN, Role.OPERATOR, Role.SUPERVISOR, Role.AUDITOR})

router = APIRouter(include_in_schema=False)


def _tile_url(value: str | None) -> str | None:
    if not value:
        return None
    parts = urlsplit(value)
    if parts.scheme != "https" or not parts.hostname:
        raise ValidationError("the tile URL is https://host/…/{z}/{x}/{y}.png (no plain HTTP)")
    if not all(f"{{{k}}}" in value for k in "zxy"):
        raise ValidationError("the tile URL names {z}, {x} and {y}")
    return value


@attrs.frozen
class PagesSettings:
    """How the pages look outward: the map's tile source.

    ``tile_url`` is a Leaflet tile template (``https://tiles.example/{z}/{x}/{y}.png``); None
    (the default) draws no tiles, so the pages reach nothing but this server. The pages'
    Content-Security-Policy lets images come from the tile host only when one is set.
    ``tile_attribution`` is shown on the map (tile providers require it).
    """

    tile_url: str | None = attrs.field(default=None, converter=_tile_url)
    tile_attribution: str = ""

    @classmethod
    def from_env(cls) -> PagesSettings:
        """From ``$CAMGATE_TILE_URL`` and ``$CAMGATE_TILE_ATTRIBUTION`` (both optional)."""
        return cls(
            os.environ.get("CAMGATE_TILE_URL") or None,
            os.environ.get("CAMGATE_TILE_ATTRIBUTION", ""),
        )

    def csp(self) -> str:
        """The pages' Content-Security-Policy: scripts, styles and fetches (the live socket
        included) from this server only; images also from the tile host; images and video
        also from the page's own ``blob:`` URLs (Media Source Extensions, downloads shown in
        the page); no framing, no plugins, no form posts away."""
        images = "'self' data: blob:"
        if self.tile_url:
            parts = urlsplit(self.tile_url)
            images += f" {parts.scheme}://{parts.netloc}"
        return (
            "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
            f"img-src {images}; media-src 'self' blob:; font-src 'self'; base-uri 'none'; "
            "form-action 'self'; "
            "frame-ancestors 'none'"
        )


def _settings(request: Request) -> PagesSettings:
    settings: PagesSettings = request.app.state.pages
    return settings


@functools.cache
def _template(name: str) -> string.Template:
    """``templates/<name>.html``, read once."""
    return string.Template((_TEMPLATES / f"{name}.html").read_text(encoding="utf-8"))


def _render(request: Request, page: str, title: str, config: dict[str, Any]) -> HTMLResponse:
    """``templates/<page>.html`` inside the layout, with ``config`` as a JSON data block."""
    settings = _settings(request)
    config = config | {"tileUrl": settings.tile_url, "tileAttribution": settings.tile_attribution}
    # A JSON data block is not run as a script; "<" escaped so no text can close the element.
    data = json.dumps(config).replace("<", "\\u003c")
    text = _template("layout").substitute(
        title=html.escape(title),
        body=_template(page).template,
        page=page,
        config=data,
        map=_EXTRA.get(page, ""),  # only the console loads the map library
    )
    return HTMLResponse(text, headers=_headers(settings))


def _headers(settings: PagesSettings) -> dict[str, str]:
    return {
        "Content-Security-Policy": settings.csp(),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-store",
    }


async def _who(request: Request, roles: frozenset[Role]) -> Caller | Response:
    """The signed-in caller when their role may see this page; else the answer to send: a
    redirect to sign in (no session), or 403 (a role the page is not for)."""
    try:
        caller = await caller_of(request)
    except NotAuthenticated:
        target = quote(request.url.path, safe="/")
        return RedirectResponse(f"/?next={target}", status_code=303)
    if caller.account.role not in roles:
        return _render_forbidden(request, caller)
    return caller


def _render_forbidden(request: Request, caller: Caller) -> HTMLResponse:
    answer = _render(request, "forbidden", "Not for your account", {"role": caller.account.role})
    answer.status_code = 403
    return answer


@router.get("/", response_class=HTMLResponse)
async def sign_in(request: Request) -> Response:
    """The sign-in page; after signing in, an owner goes to the portal and staff to the
    console (or to ``?next=``, a path on this server)."""
    return _render(request, "index", "Sign in — camgate", {})


@router.get("/invite", response_class=HTMLResponse)
async def invite(request: Request) -> Response:
    """Accept an invitation: the code is the link's fragment (``/invite#<code>``), which the
    browser never sends to any server, so it is in no access log."""
    return _render(request, "invite", "Accept your invitation — camgate", {})


@router.get("/portal", response_class=HTMLResponse)
async def portal(request: Request) -> Response:
    """The owner portal (owners only): waiver and terms, cameras, requests waiting for the
    owner's answer, every access and refusal, revocation."""
    who = await _who(request, frozenset({Role.OWNER}))
    if isinstance(who, Response):
        return who
    return _render(request, "portal", "Your cameras — camgate", {"owner": who.account.owner_id})


@router.get("/console", response_class=HTMLResponse)
async def console(request: Request) -> Response:
    """The operator console (staff): report an incident, the map of its cameras with each
    outcome and reasons, requests and their answers. Only an operator may request access;
    the others read."""
    who = await _who(request, _STAFF)
    if isinstance(who, Response):
        return who
    gate = request.app.state.gate
    config = {
        "role": str(who.account.role),
        "purposes": sorted(gate.rules.purposes),
        "canReport": who.account.role in (Role.OPERATOR, Role.SUPERVISOR),
        "canRequest": who.account.role is Role.OPERATOR,
    }
    return _render(request, "console", "Incident console — camgate", config)


@router.get("/admin", response_class=HTMLResponse)
async def admin(request: Request) -> Response:
    """The admin and auditor page (admin, supervisor, auditor): owners (an admin invites
    one), the accounts and their roles (admin, auditor), the agency's rules and caps (read
    only, sent with the page), waivers (an admin publishes), the transparency report with its
    charts. Operators and owners get 403."""
    who = await _who(request, frozenset({Role.ADMIN, Role.SUPERVISOR, Role.AUDITOR}))
    if isinstance(who, Response):
        return who
    role = who.account.role
    rules = {k: v for k, v in dump(request.app.state.gate.rules).items() if not k.startswith("_")}
    config = {
        "role": str(role),
        "rules": rules,
        "canPublish": role is Role.ADMIN,
        "canInvite": role is Role.ADMIN,
        "canReadOwners": role in (Role.ADMIN, Role.AUDITOR),
        "canReadAccounts": allowed(role, Action.ACCOUNTS_READ),
    }
    return _render(request, "admin", "Administration and oversight — camgate", config)


def install(app: FastAPI, settings: PagesSettings | None = None) -> None:
    """Add the pages and their static files (``/static``) to ``app``. ``settings`` default
    to :meth:`PagesSettings.from_env`; they are read from ``app.state.pages`` at each
    request, so a test may replace them."""
    app.state.pages = settings or PagesSettings.from_env()
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
