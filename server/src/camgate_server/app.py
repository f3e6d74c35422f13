"""The FastAPI application: :func:`create_app` wires the gate, the accounts and the routes.

The server is one more client of :class:`camgate.Gate`: every route authenticates the caller
(:func:`caller_of`), asks the policy table (:mod:`camgate_server.policy`) through
:func:`require`, and then calls the gate's public API; nothing here decides access to a camera.
"""

import hmac
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any, Literal, TypeVar

import anyio.to_thread
from camgate import Gate
from camgate.activity import owner_history
from camgate.errors import AnswerPending, CamgateError, NotFound, ValidationError
from camgate.models import Camera, GeoPoint, Grant, Incident, Owner, Scope, new_id
from fastapi import APIRouter, Depends, FastAPI, Header, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from camgate_server import problems
from camgate_server.accounts import Account, AccountStore, Caller, LoginLimiter, proxy_caller
from camgate_server.errors import CsrfRejected, Forbidden, NotAuthenticated
from camgate_server.events import EventFeed, event_stream
from camgate_server.parsing import (
    USERNAME_PATTERN,
    parse_bearer,
    parse_event_id,
    parse_near,
    parse_window,
)
from camgate_server.policy import Action, Role, allowed
from camgate_server.settings import PROXY_SECRET_HEADER, ServerSettings

__all__ = ["CSRF_HEADER", "caller_of", "create_app", "require"]

#: The header a session's state-changing request carries its CSRF token in.
CSRF_HEADER = "X-CSRF-Token"
_SAFE = frozenset({"GET", "HEAD", "OPTIONS"})
_T = TypeVar("_T")


def _gate(request: Request) -> Gate:
    gate: Gate = request.app.state.gate
    return gate


def _accounts(request: Request) -> AccountStore:
    accounts: AccountStore = request.app.state.accounts
    return accounts


def _settings(request: Request) -> ServerSettings:
    settings: ServerSettings = request.app.state.settings
    return settings


async def _thread(fn: Callable[..., _T], *args: Any) -> _T:
    return await anyio.to_thread.run_sync(fn, *args)


async def caller_of(request: Request) -> Caller:
    """Who is calling: an ``Authorization: Bearer`` API token, else a person the agency's
    trusted proxy vouches for (only when ``settings.proxy`` is set and the request carries
    its secret header), else the session cookie.

    A session's state-changing request (anything but GET, HEAD, OPTIONS) must carry the
    session's CSRF token in :data:`CSRF_HEADER` (synchronizer token, compared in constant
    time): CsrfRejected otherwise. A token needs none: a browser never attaches it on its own.
    NotAuthenticated when neither credential is valid.
    """
    accounts, settings = _accounts(request), _settings(request)
    bearer = parse_bearer(request.headers.get("authorization"))
    if bearer is not None:
        return await _thread(accounts.token_caller, bearer)
    proxy = settings.proxy
    vouched = None if proxy is None else request.headers.get(PROXY_SECRET_HEADER)
    if proxy is not None and vouched is not None:
        if not hmac.compare_digest(vouched.encode(), proxy.secret.encode()):
            raise NotAuthenticated("the proxy's secret is wrong")
        caller = proxy_caller(
            proxy,
            request.headers.get(proxy.user_header, ""),
            request.headers.get(proxy.groups_header, ""),
        )
    else:
        cookie = request.cookies.get(settings.cookie_name)
        caller = await _thread(accounts.session_caller, cookie)
    if request.method not in _SAFE:
        sent = request.headers.get(CSRF_HEADER, "")
        if caller.csrf is None or not hmac.compare_digest(sent.encode(), caller.csrf.encode()):
            raise CsrfRejected(f"a state-changing request needs the session's {CSRF_HEADER}")
    return caller


def require(action: Action) -> Callable[[Request], Awaitable[Caller]]:
    """A dependency: the authenticated caller, when the policy table allows it ``action``
    (and, for an API token, its scopes name it); Forbidden otherwise."""

    async def dependency(request: Request) -> Caller:
        caller = await caller_of(request)
        if not allowed(caller.account.role, action, caller.scopes):
            why = "the token's scopes do not" if caller.scopes is not None else "the role does not"
            raise Forbidden(f"{why} allow {action}")
        return caller

    dependency.__name__ = f"require_{action.name.lower()}"
    return dependency


def _own_owner(caller: Caller) -> str:
    if caller.account.owner_id is None:
        raise Forbidden("only an owner has an owner's own resources")
    return caller.account.owner_id


# ---------------------------------------------------------------------- bodies and answers


class LoginBody(BaseModel):
    """A login: username and password."""

    model_config = ConfigDict(extra="forbid")
    username: str = Field(max_length=64)
    password: SecretStr = Field(max_length=1024)


class SessionOut(BaseModel):
    """The session: who, its CSRF token (send it as X-CSRF-Token), and until when."""

    account: dict[str, str | None]
    csrf_token: str
    expires_at: datetime | None = None


class AccountBody(BaseModel):
    """A new staff or machine account (owners join by invite)."""

    model_config = ConfigDict(extra="forbid")
    username: str = Field(pattern=USERNAME_PATTERN)
    password: SecretStr = Field(min_length=12, max_length=1024)
    role: Literal["admin", "operator", "supervisor", "auditor"]


class TokenBody(BaseModel):
    """A new API token for an account: a name, the actions it may take, how long it lasts."""

    model_config = ConfigDict(extra="forbid")
    account: str
    name: str = Field(min_length=1, max_length=100)
    scopes: list[Action] = Field(min_length=1)
    ttl_s: float = Field(gt=0)


class TokenOut(BaseModel):
    """A new API token: ``token`` is shown this once and never again."""

    id: str
    token: str
    expires_at: datetime
    scopes: list[Action]


class OwnerBody(BaseModel):
    """A new owner."""

    model_config = ConfigDict(extra="forbid")
    id: str | None = Field(default=None, max_length=64)
    name: str = Field(min_length=1, max_length=200)
    contact: str | None = Field(default=None, max_length=320)
    time_zone: str = "UTC"


class InviteOut(BaseModel):
    """A single-use invite: ``code`` is shown this once; send the owner ``path``."""

    owner: str
    code: str
    path: str
    expires_at: datetime


class AcceptBody(BaseModel):
    """Using an invite: the code from the link, and the owner's chosen username and password."""

    model_config = ConfigDict(extra="forbid")
    code: str = Field(max_length=64)
    username: str = Field(pattern=USERNAME_PATTERN)
    password: SecretStr = Field(min_length=12, max_length=1024)


class IncidentBody(BaseModel):
    """A reported incident: what, where, how far it reaches, for how long."""

    model_config = ConfigDict(extra="forbid")
    kind: str = Field(min_length=1, max_length=100)
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    radius_m: float = Field(gt=0)
    window_s: float = Field(default=12 * 3600.0, gt=0)


class RequestBody(BaseModel):
    """An access request under an incident: one camera, one scope, for what and how long."""

    model_config = ConfigDict(extra="forbid")
    camera: str = Field(max_length=64)
    scope: Scope
    purpose: str | list[str] = "investigation"
    duration_s: float = Field(default=60.0, gt=0)
    note: str = Field(default="", max_length=1000)
    #: The recorded footage wanted (``scope`` recorded only, and then both): ISO 8601 with a
    #: time zone, ``from`` before ``to``.
    window_from: datetime | None = Field(default=None, alias="from")
    window_to: datetime | None = Field(default=None, alias="to")

    def window(self) -> tuple[datetime, datetime] | None:
        """``(from, to)``, None when neither is given (:func:`parse_window`)."""
        return parse_window(self.window_from, self.window_to)


class AnswerBody(BaseModel):
    """An owner's answer to a held ask-first request."""

    model_config = ConfigDict(extra="forbid")
    approve: bool


# ---------------------------------------------------------------------- JSON of the models


def _owner_json(owner: Owner) -> dict[str, Any]:
    return {
        "id": owner.id,
        "name": owner.name,
        "contact": owner.contact,
        "time_zone": owner.time_zone,
    }


def _camera_json(camera: Camera, distance_m: float | None = None) -> dict[str, Any]:
    """A camera as the API shows it. Never its ``source``: a URL may carry credentials, and
    nobody reaches a camera but through the edge."""
    body: dict[str, Any] = {
        "id": camera.id,
        "owner": camera.owner_id,
        "adapter": camera.adapter,
        "class": str(camera.camera_class),
        "position": {"lat": camera.position.lat, "lon": camera.position.lon},
        "heading_deg": camera.heading_deg,
        "fov_deg": camera.fov_deg,
        "range_m": camera.range_m,
        "label": camera.label,
    }
    if distance_m is not None:
        body["distance_m"] = round(distance_m, 1)
    return body


def _geojson(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "id": item["id"],
                "geometry": {
                    "type": "Point",
                    "coordinates": [item["position"]["lon"], item["position"]["lat"]],
                },
                "properties": {k: v for k, v in item.items() if k not in ("id", "position")},
            }
            for item in items
        ],
    }


def grant_json(grant: Grant) -> dict[str, Any]:
    """A grant as the API shows it: never its signed token (media is reached through the
    server's grant-bound routes)."""
    return {
        "id": grant.id,
        "camera": grant.camera_id,
        "scope": str(grant.scope),
        "issued_at": grant.issued_at.isoformat(),
        "expires_at": grant.expires_at.isoformat(),
        "audio": grant.audio,
        # The recorded footage it reaches (a recorded grant), else null.
        "from": grant.window_start.isoformat() if grant.window_start else None,
        "to": grant.window_end.isoformat() if grant.window_end else None,
    }


def visible_camera(caller: Caller, gate: Gate, camera_id: str) -> Camera:
    """The camera, when the caller may see it; NotFound for an unknown camera, and for another
    owner's camera to an owner (its existence is not disclosed)."""
    camera = gate.store.get_camera(camera_id)
    if caller.account.role is Role.OWNER and camera.owner_id != caller.account.owner_id:
        raise NotFound(f"no camera {camera_id!r}")
    return camera


def _incident_json(incident: Incident) -> dict[str, Any]:
    return {
        "id": incident.id,
        "kind": incident.kind,
        "position": {"lat": incident.position.lat, "lon": incident.position.lon},
        "radius_m": incident.radius_m,
        "reported_at": incident.reported_at.isoformat(),
        "window_s": incident.window_s,
        "status": str(incident.status),
    }


# ---------------------------------------------------------------------- routes

router = APIRouter(responses=problems.RESPONSES)


@router.post("/session", tags=["authentication"])
async def login(body: LoginBody, request: Request, response: Response) -> SessionOut:
    """Log in with a username and password: sets the session cookie (HttpOnly, SameSite=Strict,
    Secure unless turned off for loopback tests) and returns the session's CSRF token.

    Failed logins are counted per username and per client address; past the limit the answer
    is 429 with Retry-After, before the password is looked at."""
    accounts, settings = _accounts(request), _settings(request)
    limiter = request.app.state.limiter
    address = request.client.host if request.client else "unknown"
    username = body.username.strip().lower()
    limiter.check(username, address)
    try:
        account = await _thread(
            accounts.verify_password, username, body.password.get_secret_value()
        )
    except NotAuthenticated:
        limiter.failed(username, address)
        raise
    limiter.succeeded(username)
    session_id, csrf, expires = await _thread(accounts.open_session, account)
    response.set_cookie(
        settings.cookie_name,
        session_id,
        max_age=int(settings.session_ttl_s),
        httponly=True,
        secure=settings.secure_cookies,
        samesite="strict",
        path="/",
    )
    return SessionOut(account=account.to_json(), csrf_token=csrf, expires_at=expires)


@router.get("/session", tags=["authentication"])
async def session(request: Request) -> SessionOut:
    """The current session's account and CSRF token (a reloaded page reads it here; a person
    signed in through the agency's proxy reads theirs here too)."""
    caller = await caller_of(request)
    if caller.csrf is None:
        raise Forbidden("an API token has no session")
    return SessionOut(account=caller.account.to_json(), csrf_token=caller.csrf)


@router.delete("/session", status_code=204, tags=["authentication"])
async def logout(request: Request, response: Response) -> None:
    """Log out: the session ends on the server and the cookie is cleared."""
    caller = await caller_of(request)
    await _thread(_accounts(request).close_session, caller)
    settings = _settings(request)
    response.delete_cookie(
        settings.cookie_name,
        httponly=True,
        secure=settings.secure_cookies,
        samesite="strict",
        path="/",
    )


@router.get("/accounts", tags=["accounts"])
async def list_accounts(
    request: Request,
    caller: Annotated[Caller, Depends(require(Action.ACCOUNTS_READ))],
) -> dict[str, list[dict[str, str | None]]]:
    """Every account: id, username, role and, for an owner's, the owner (admin, auditor).
    Never a password hash, a session or a token."""
    accounts = await _thread(_accounts(request).list_accounts)
    return {"accounts": [account.to_json() for account in accounts]}


@router.post("/accounts", status_code=201, tags=["accounts"])
async def create_account(
    body: AccountBody,
    request: Request,
    caller: Annotated[Caller, Depends(require(Action.ACCOUNTS_WRITE))],
) -> dict[str, str | None]:
    """Create a staff or machine account (admin)."""
    account = await _thread(
        lambda: _accounts(request).create_account(
            body.username, body.password.get_secret_value(), Role(body.role)
        )
    )
    return account.to_json()


@router.post("/tokens", status_code=201, tags=["accounts"])
async def create_token(
    body: TokenBody,
    request: Request,
    caller: Annotated[Caller, Depends(require(Action.TOKENS_CREATE))],
) -> TokenOut:
    """Create an API token for an account (admin); its scopes must be actions the account's
    role allows. The token is in this answer only."""
    accounts = _accounts(request)
    account = await _thread(accounts.get_account, body.account)
    token_id, token, expires = await _thread(
        accounts.create_token, account, body.name, body.scopes, body.ttl_s
    )
    return TokenOut(id=token_id, token=token, expires_at=expires, scopes=sorted(set(body.scopes)))


@router.delete("/tokens/{token_id}", status_code=204, tags=["accounts"])
async def revoke_token(
    token_id: str,
    request: Request,
    caller: Annotated[Caller, Depends(require(Action.TOKENS_CREATE))],
) -> None:
    """Revoke an API token at once (admin)."""
    await _thread(_accounts(request).revoke_token, token_id)


@router.post("/owners", status_code=201, tags=["owners"])
async def create_owner(
    body: OwnerBody,
    request: Request,
    caller: Annotated[Caller, Depends(require(Action.OWNERS_WRITE))],
) -> dict[str, Any]:
    """Register an owner (admin)."""
    owner = Owner(body.id or new_id("own"), body.name, body.contact, body.time_zone)
    gate = _gate(request)
    await _thread(gate.add_owner, owner)
    return _owner_json(owner)


@router.get("/owners/me", tags=["owners"])
async def my_owner(
    request: Request, caller: Annotated[Caller, Depends(require(Action.OWN_ACCESSES))]
) -> dict[str, Any]:
    """The calling owner's own record."""
    owner = await _thread(_gate(request).store.get_owner, _own_owner(caller))
    return _owner_json(owner)


@router.post("/owners/me/revoke", tags=["owners"])
async def revoke(
    request: Request, caller: Annotated[Caller, Depends(require(Action.OWN_REVOKE))]
) -> dict[str, Any]:
    """Revoke every consent of the calling owner: live streams end at once, later requests are
    refused. Returns the cameras whose consent was revoked."""
    cameras = await _gate(request).revoke(_own_owner(caller))
    return {"owner": caller.account.owner_id, "cameras": cameras}


@router.get("/owners/me/accesses", tags=["owners"])
async def my_accesses(
    request: Request, caller: Annotated[Caller, Depends(require(Action.OWN_ACCESSES))]
) -> dict[str, Any]:
    """Every access to the calling owner's cameras (who, why, which incident, scope, when, how
    long), built from the owner's slice of the audit log."""
    gate = _gate(request)
    return await _thread(owner_history, gate.store, gate.audit, _own_owner(caller))


@router.get("/owners/me/pending", tags=["owners"])
async def my_pending(
    request: Request, caller: Annotated[Caller, Depends(require(Action.REQUESTS_ANSWER))]
) -> dict[str, Any]:
    """The requests held for the calling owner's answer (ask-first terms), oldest first: who
    asks, for which camera, incident, scope and purpose, and until when the owner may answer."""
    gate = _gate(request)
    owner_id = _own_owner(caller)

    def held() -> list[dict[str, Any]]:
        waiting = []
        for pending in gate.pending(owner_id):
            asked = gate.store.get_request(pending.request_id)
            waiting.append(
                {
                    "request": pending.request_id,
                    "camera": pending.camera_id,
                    "incident": asked.incident_id,
                    "scope": str(asked.scope),
                    "purpose": asked.purpose,
                    "duration_s": asked.duration_s,
                    "requested_by": asked.requested_by,
                    "note": asked.note,
                    "asked_at": pending.asked_at.isoformat(),
                    "deadline": pending.deadline.isoformat(),
                }
            )
        return waiting

    return {"owner": owner_id, "pending": await _thread(held)}


@router.get("/owners/{owner_id}", tags=["owners"])
async def get_owner(
    owner_id: str,
    request: Request,
    caller: Annotated[Caller, Depends(require(Action.OWNERS_READ))],
) -> dict[str, Any]:
    """An owner (admin, auditor)."""
    return _owner_json(await _thread(_gate(request).store.get_owner, owner_id))


@router.post("/owners/{owner_id}/invites", status_code=201, tags=["owners"])
async def invite(
    owner_id: str,
    request: Request,
    caller: Annotated[Caller, Depends(require(Action.INVITES_CREATE))],
) -> InviteOut:
    """A single-use, expiring invite for an owner to make their account (admin). The code is
    in this answer only; send the owner the path."""
    await _thread(_gate(request).store.get_owner, owner_id)  # NotFound for an unknown owner
    code, expires = await _thread(_accounts(request).create_invite, owner_id, caller.account)
    return InviteOut(owner=owner_id, code=code, path=f"/invite#{code}", expires_at=expires)


@router.post("/invites/accept", status_code=201, tags=["owners"])
async def accept_invite(body: AcceptBody, request: Request) -> dict[str, str | None]:
    """Use an invite: creates the owner's account. The code works once, until it expires."""
    account: Account = await _thread(
        _accounts(request).accept_invite,
        body.code,
        body.username.strip().lower(),
        body.password.get_secret_value(),
    )
    return account.to_json()


@router.get(
    "/cameras", tags=["cameras"], responses={200: {"content": {"application/geo+json": {}}}}
)
async def cameras(
    request: Request,
    caller: Annotated[Caller, Depends(require(Action.CAMERAS_READ))],
    near: Annotated[str | None, Query(max_length=64, description="lat,lon")] = None,
    radius: Annotated[float | None, Query(description="metres (default 500)")] = None,
    format: Annotated[Literal["json", "geojson"] | None, Query()] = None,
) -> Response:
    """Cameras (an owner sees only their own), optionally those within ``radius`` metres of
    ``near``, nearest first. GeoJSON with ``?format=geojson`` or ``Accept:
    application/geo+json``."""
    gate = _gate(request)
    owner_only = caller.account.owner_id if caller.account.role is Role.OWNER else None

    def listing() -> list[dict[str, Any]]:
        if near is None:
            if radius is not None:
                raise ValidationError("radius needs near")
            return [_camera_json(c) for c in gate.store.cameras(owner_only)]
        center, radius_m = parse_near(near, radius)
        index = gate.camera_index.get()
        found = []
        for camera_id, distance in index.within(center, radius_m):
            camera = gate.store.get_camera(camera_id)
            if owner_only is None or camera.owner_id == owner_only:
                found.append(_camera_json(camera, distance))
        return found

    items = await _thread(listing)
    geo = format == "geojson" or (
        format is None and "application/geo+json" in request.headers.get("accept", "")
    )
    if geo:
        return JSONResponse(_geojson(items), media_type="application/geo+json")
    return JSONResponse({"cameras": items})


@router.get("/cameras/{camera_id}", tags=["cameras"])
async def camera(
    camera_id: str,
    request: Request,
    caller: Annotated[Caller, Depends(require(Action.CAMERAS_READ))],
) -> dict[str, Any]:
    """One camera. Another owner's camera is 404 to an owner, as if it did not exist."""
    return _camera_json(await _thread(visible_camera, caller, _gate(request), camera_id))


@router.post("/incidents", status_code=201, tags=["incidents"])
async def report_incident(
    body: IncidentBody,
    request: Request,
    caller: Annotated[Caller, Depends(require(Action.INCIDENTS_REPORT))],
) -> dict[str, Any]:
    """Report an incident (operator, supervisor): cameras inside its geofence become
    reachable for its window."""
    gate = _gate(request)
    incident = await _thread(
        lambda: gate.report_incident(
            body.kind, GeoPoint(body.lat, body.lon), body.radius_m, window_s=body.window_s
        )
    )
    return _incident_json(incident)


@router.get("/incidents/{incident_id}", tags=["incidents"])
async def get_incident(
    incident_id: str,
    request: Request,
    caller: Annotated[Caller, Depends(require(Action.INCIDENTS_READ))],
) -> dict[str, Any]:
    """One incident (every role reads)."""
    return _incident_json(await _thread(_gate(request).store.get_incident, incident_id))


@router.post("/incidents/{incident_id}/close", tags=["incidents"])
async def close_incident(
    incident_id: str,
    request: Request,
    caller: Annotated[Caller, Depends(require(Action.INCIDENTS_CLOSE))],
) -> dict[str, Any]:
    """Close an incident (supervisor): it reaches no camera any more."""
    return _incident_json(await _thread(_gate(request).close_incident, incident_id))


@router.post(
    "/incidents/{incident_id}/requests",
    status_code=201,
    tags=["requests"],
    responses={202: {"description": "held until the owner answers"}, 403: {}},
)
async def request_access(
    incident_id: str,
    body: RequestBody,
    request: Request,
    response: Response,
    caller: Annotated[Caller, Depends(require(Action.REQUESTS_CREATE))],
) -> dict[str, Any]:
    """Ask for one scope of one camera under an incident (operator). 201 with the decision
    (every vote and reason) and the grant's id; 202 when the owner is asked first; 403 (a
    problem document carrying the reasons and votes) when refused. The grant's token is never
    sent: media is reached through the server's grant-bound routes."""
    gate = _gate(request)
    try:
        signed = await gate.request_access(
            incident_id,
            body.camera,
            body.scope,
            requested_by=caller.account.id,
            duration_s=body.duration_s,
            purpose=body.purpose,
            note=body.note,
            window=body.window(),
            wait=False,
        )
    except AnswerPending as held:
        response.status_code = 202
        p = held.pending
        return {
            "request": p.request_id,
            "camera": p.camera_id,
            "status": "waiting",
            "deadline": p.deadline.isoformat(),
        }
    grant = signed.grant
    decision = await _thread(gate.store.decision_json, grant.request_id)
    return {
        "request": grant.request_id,
        "status": "granted",
        "decision": decision,
        "grant": grant_json(grant),
    }


@router.post("/requests/{request_id}/answer", tags=["requests"])
async def answer(
    request_id: str,
    body: AnswerBody,
    request: Request,
    caller: Annotated[Caller, Depends(require(Action.REQUESTS_ANSWER))],
) -> dict[str, Any]:
    """An owner's yes or no to a request held for them. A request for another owner's camera
    is 404; an officer (any role but owner) is 403."""
    gate = _gate(request)
    owner_id = _own_owner(caller)
    pending = await _thread(gate.store.get_pending, request_id)
    if pending.owner_id != owner_id:
        raise NotFound(f"no request {request_id!r} waiting for you")
    decision = await gate.answer(request_id, body.approve, owner_id=owner_id)
    return decision.to_json()


@router.get(
    "/events",
    tags=["events"],
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {"schema": {"type": "string"}}}}},
)
async def events(
    request: Request,
    caller: Annotated[Caller, Depends(require(Action.EVENTS_READ))],
    last_event_id: Annotated[str | None, Header(max_length=32)] = None,
    after: Annotated[
        str | None, Query(max_length=32, description="resume after this event id")
    ] = None,
) -> StreamingResponse:
    """Server-sent events (``text/event-stream``): a request awaiting the owner
    (``request.waiting``), a decision with every vote (``decision``), a grant issued
    (``grant.issued``), access started and ended (``access.started``, ``access.ended``), a
    revocation (``revocation``), read from the audit log, so events raised by another process
    on the same store arrive too. Each event's ``id`` is its audit record's seq: send it back
    as ``Last-Event-ID`` (or ``?after=``) to resume without losing one; without it the stream
    starts at the present. An owner sees only events about their own cameras; staff see the
    agency's. Comment lines are heartbeats; the stream ends when the caller's session or token
    does, or the server shuts down."""
    feed: EventFeed = request.app.state.events
    resume = parse_event_id(last_event_id if last_event_id is not None else after)
    cursor = resume if resume is not None else await feed.head()

    async def still_allowed() -> bool:
        try:
            again = await caller_of(request)
        except CamgateError:
            return False
        return again.account.id == caller.account.id and allowed(
            again.account.role, Action.EVENTS_READ, again.scopes
        )

    return event_stream(feed, caller, cursor, still_allowed)


def create_app(
    gate: Gate, accounts: AccountStore, settings: ServerSettings | None = None
) -> FastAPI:
    """The HTTP API over ``gate``, with people and machines from ``accounts``.

    The caller keeps ownership of both (closes them); the app only reads them from its state.
    Every error is answered as a problem document (:mod:`camgate_server.problems`). Before
    stopping the server, call ``app.state.events.close()`` (:class:`EventFeed`): event streams
    never end on their own, and uvicorn waits for open responses (``camgate serve`` does it
    when a signal arrives).
    """
    settings = settings or accounts.settings
    app = FastAPI(
        title="camgate",
        summary="Consent-gated access to privately owned security cameras.",
        version="0.1.0",
    )
    app.state.gate = gate
    app.state.accounts = accounts
    app.state.settings = settings
    app.state.limiter = LoginLimiter(settings, gate.clock.monotonic)
    app.state.events = EventFeed(gate, settings)
    problems.install(app)
    app.include_router(router)
    # Modules of their own, importing this module's dependencies: the consent resources, the
    # incident map, the HTML pages (issue #19), the live socket and the grant-bound downloads.
    from camgate_server import downloads, live, pages, resources_consent, survey

    app.include_router(resources_consent.router)
    app.include_router(survey.router)
    app.include_router(live.router)
    app.include_router(downloads.router)
    pages.install(app)
    return app
