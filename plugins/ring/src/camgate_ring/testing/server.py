"""The simulated Ring Partner API: a real HTTP server on loopback, run as its own process.

``python -m camgate_ring.testing.server CONFIG.json`` prints ``READY <base url>`` once it
listens. It speaks, as Ring documents them (docs/ring.md):

- ``GET``/``POST /oauth/authorize``: an authorisation page the owner approves or denies
  (PKCE S256 required), redirecting with a code (60 s, single use) or ``access_denied``.
- ``POST /oauth/token`` (form): ``authorization_code`` grants (code, redirect and PKCE
  verifier checked) and ``refresh_token`` grants with rotation (each refresh issues a
  new refresh token and spends the old one: ``400 invalid_grant`` when it is reused), checked
  client id and secret; access tokens live ``access_ttl_s`` seconds.
- ``GET /v1/users/me`` and ``GET /v1/devices[?include=status]`` (JSON:API), bearer required:
  ``401 Invalid Client`` for a missing, unknown or expired token.
- ``POST /v1/devices/{id}/media/streaming/whep/sessions`` (WHEP: SDP offer → ``201``, the
  answer, an absolute ``Location``) with an aiortc peer from :mod:`camgate.testing.webrtc`
  sending H.264 with a frame counter in the picture; ``DELETE`` on the Location → ``204``.
- ``GET /v1/history/devices/{id}/events`` (paged by ``page[key]``, ``links.next``).
- ``POST /v1/devices/{id}/media/image/download`` (``latest_in_range``/``at_timestamp``): a
  JPEG with the picture clock and ``X-Media-Timestamp``, 416 when none is in the range.
- ``POST /v1/devices/{id}/media/video/download``: an MP4 of the asked range whose pictures
  carry the picture clock; 416 outside the recordings, 206 when cut at now.
- The app (consumer) API: ``POST /oauth/token`` with ``client_id=ring_official_android`` (the
  password grant with 2FA and its limit, single-use refresh tokens), ``POST
  /clients_api/session``, ``GET /clients_api/ring_devices``, ``…/dings/active``, the
  location groups, ``…/doorbots/{id}/history`` (paged by ``older_than``),
  ``…/dings/{id}/share/play`` (a signed URL on this server's ``/recordings/``, which serves
  the event's MP4) and the app's snapshots (``GET /snapshots/next/{id}``, dated by
  ``x-time-millis``, a battery camera's ten minutes old); with ``tls`` in the configuration,
  the same server also listens with TLS (the port is the third word of ``READY``), for
  clients that only speak to Ring's HTTPS hosts.
- The app's live view: ``POST /api/v1/clap/ticket/request/signalsocket`` (bearer,
  ``hardware_id``) → ``{"ticket": …}``, and the signalling websocket (the fourth word of
  ``READY``; :func:`signalling`), whose sessions ``GET /_sim/signalling`` shows.
- Ring's live caps: a WHEP session still running after the device's ``live_cap_s`` (30 s on a
  battery, 60 s on line power, unless the simulator is told otherwise) is ended by the server.
- ``429`` with ``Retry-After`` on the next N API requests, on demand; ``503`` "Device is
  currently offline" for a WHEP request to an offline device.

The backdoor (never used by the adapter): ``GET /_sim/log`` (every request: method, path,
status, whether it carried a bearer token, the grant type; never a token),
``GET /_sim/state`` (WHEP sessions), ``POST /_sim/link`` (a new token pair, as account linking
gives), ``POST /_sim/webhook`` (send a signed delivery to a URL: ``url``, ``type``, ``device``,
``sub_type``, ``times``, ``age_s``, ``tamper``), ``POST /_sim/expire`` (every access token
expires now), ``POST /_sim/revoke`` (``{"backend": "partner"|"app"}``: the owner withdrew the
link in Ring, every token of that backend refused: API calls 401, refreshes ``400
invalid_grant``), ``POST /_sim/rate-limit``
(``{"count": N, "retry_after": S}``), ``POST /_sim/app-faults`` (the next app API replies:
``[{"status": 504, "body": …}, …]``), ``GET /_sim/signalling`` (the app's live-view sessions).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import fractions
import hashlib
import hmac
import html
import io
import json
import random
import secrets
import ssl
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

import av
import httpx
import numpy as np
from camgate.media.jpeg import encode_jpeg
from camgate.testing import draw_picture_clock
from camgate.testing.webrtc import (
    SESSIONS,
    Request,
    read_request,
    respond,
    sdp_candidates,
    start_session,
)

WHEP = "/media/streaming/whep/sessions"


class Ring:
    """The simulated account, its tokens and what was asked of it."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.devices: list[dict[str, Any]] = config["devices"]
        self.access: dict[str, float] = {}  # access token -> expiry (time.time())
        self.refresh: str | None = None  # the one valid refresh token
        self.spent: set[str] = set()
        self.limit = {"count": 0, "retry_after": 1}
        self.log: list[dict[str, Any]] = []
        self.whep: dict[str, dict[str, Any]] = {}  # session id -> device, deleted
        self.codes: dict[str, dict[str, Any]] = {}  # authorisation code -> redirect, PKCE
        self.base = ""
        self.started_ms = int(time.time() * 1000)
        self.app_refresh: str | None = None  # the app's one valid refresh token
        self.app_access: set[str] = set()  # the app's access tokens (the rest are partner's)
        self.codes_sent: list[float] = []  # when 2FA codes were "sent"
        self.hardware_ids: set[str] = set()  # the app's authorised client devices
        self.sessions = 0
        self.app_faults: list[tuple[int, Any]] = []  # the next app API replies, on demand
        self.tickets: set[str] = set()  # signalling tickets issued, each usable once
        self.signalling: dict[str, dict[str, Any]] = {}  # live-view session id -> what happened
        self.signed: dict[str, str] = {}  # recording URL signature -> its ding id

    def issue(self) -> dict[str, Any]:
        """A new token pair; the previous refresh token is spent."""
        if self.refresh is not None:
            self.spent.add(self.refresh)
        access, self.refresh = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        ttl = float(self.config["access_ttl_s"])
        self.access[access] = time.time() + ttl
        return {
            "access_token": access,
            "refresh_token": self.refresh,
            "expires_in": ttl,
            "scope": "ava.v1:read",
            "token_type": "Bearer",
        }

    def issue_app(self) -> dict[str, Any]:
        """A new app token pair; the previous app refresh token is spent (single use)."""
        access, self.app_refresh = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        self.access[access] = time.time() + 3600.0
        self.app_access.add(access)
        return {
            "access_token": access,
            "refresh_token": self.app_refresh,
            "expires_in": 3600,
            "scope": "client",
            "token_type": "bearer",
            "created_at": int(time.time()),
        }

    def authorised(self, request: Request) -> bool:
        given = request.headers.get("authorization", "")
        token = given.removeprefix("Bearer ") if given.startswith("Bearer ") else ""
        return self.access.get(token, 0.0) > time.time()


def _json(body: Any) -> bytes:
    return json.dumps(body).encode()


def _error(status: int, title: str) -> bytes:
    return _json({"errors": [{"status": str(status), "title": title}]})


STATUS_TEXT = {
    200: "OK",
    201: "Created",
    302: "Found",
    204: "No Content",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    206: "Partial Content",
    415: "Unsupported Media Type",
    416: "Range Not Satisfiable",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


async def handle(ring: Ring, request: Request) -> tuple[int, bytes, dict[str, str]]:
    """(status, body, headers) for one request."""
    path, method = request.path, request.method
    kind = {"Content-Type": "application/vnd.api+json"}
    if path.startswith("/_sim/"):
        return await backdoor(ring, request)
    if method == "POST" and path == "/oauth/token":
        form = {k: v[0] for k, v in parse_qs(request.body.decode()).items()}
        if form.get("client_id") == APP_CLIENT:
            return app_token(ring, request, form)
        if (
            form.get("client_id") != ring.config["client_id"]
            or form.get("client_secret") != ring.config["client_secret"]
        ):
            return 401, _json({"error": "invalid_client"}), {}
        if form.get("grant_type") == "authorization_code":
            return exchange(ring, form)
        if form.get("grant_type") != "refresh_token":
            return 400, _json({"error": "unsupported_grant_type"}), {}
        if form.get("refresh_token") != ring.refresh or ring.refresh is None:
            return 400, _json({"error": "invalid_grant"}), {}
        return 200, _json(ring.issue()), {"Content-Type": "application/json"}
    if path == "/oauth/authorize":
        return authorize(ring, request)
    if path.startswith(("/clients_api/", "/groups/v1/")):
        return app_api(ring, request)
    if method == "GET" and path.startswith("/recordings/"):
        return await asyncio.to_thread(signed_recording, ring, request)
    if method == "GET" and path.startswith("/snapshots/next/"):
        return app_snapshot(ring, request)
    if method == "POST" and path == TICKET_PATH:
        if not ring.authorised(request):
            return _plain(401, {"error": "Unauthorized"})
        if request.headers.get("hardware_id", "") not in ring.hardware_ids:
            return _plain(404, {"error": "Session hardware_id not found"})
        ticket = secrets.token_urlsafe(24)
        ring.tickets.add(ticket)
        return _plain(200, {"ticket": ticket})
    if not path.startswith("/v1/"):
        return 404, _error(404, "Not Found"), kind
    if ring.limit["count"] > 0:
        ring.limit["count"] -= 1
        headers = {**kind, "Retry-After": str(ring.limit["retry_after"])}
        return 429, _error(429, "Rate Limit Exceeded"), headers
    if not ring.authorised(request):
        return 401, _error(401, "Invalid Client"), kind
    if method == "GET" and path == "/v1/users/me":
        return 200, _json({"data": {"type": "users", "id": "ava1.ring.account.SIM"}}), kind
    if method == "GET" and path.startswith("/v1/history/devices/"):
        return history_page(ring, path, request.query)
    if method == "GET" and path == "/v1/devices":
        return 200, _json(devices_document(ring, "include=status" in request.query)), kind
    parts = path.split("/")
    device = unquote(parts[3]) if len(parts) > 3 else ""
    known = any(d["id"] == device for d in ring.devices)
    prefix = f"/v1/devices/{parts[3] if len(parts) > 3 else ''}{WHEP}"
    if method == "POST" and path == prefix and known:
        found_device = next(d for d in ring.devices if d["id"] == device)
        if not found_device.get("online", True):
            return 503, _error(503, "Device is currently offline"), kind
        if found_device.get("broken"):
            return 500, _error(500, "Internal Server Error"), kind
        if request.headers.get("content-type") != "application/sdp":
            return 415, _error(415, "Unsupported Media Type"), kind
        session, answer = await start_session(
            request.body.decode(),
            interval=float(ring.config["keyframe_interval"]),
            join_delay=join_point(ring.config),
        )
        ring.whep[session.id] = {
            "device": device,
            "deleted": False,
            "candidates": sdp_candidates(answer),
            "capped": False,
        }
        cap = float(found_device.get("live_cap_s", 60.0))
        asyncio.get_running_loop().call_later(
            cap, lambda: asyncio.ensure_future(end_at_cap(ring, session.id))
        )
        location = f"{ring.base}{prefix}/{session.id}"
        return 201, answer.encode(), {"Content-Type": "application/sdp", "Location": location}
    image = f"/v1/devices/{parts[3] if len(parts) > 3 else ''}/media/image/download"
    if method == "POST" and path == image and known:
        return snapshot(ring, device, request.body)
    if method == "POST" and path == image.replace("/image/", "/video/") and known:
        return await asyncio.to_thread(clip, ring, device, request.body)
    if method == "DELETE" and path.startswith(prefix + "/") and known:
        found = ring.whep.get(path.rsplit("/", 1)[1])
        if found is None or found["deleted"]:
            return 404, _error(404, "Not Found"), kind
        found["deleted"] = True
        session = SESSIONS[path.rsplit("/", 1)[1]]
        session.deleted = True
        await session.pc.close()
        return 204, b"", {}
    return 404, _error(404, "Not Found"), kind


APP_CLIENT = "ring_official_android"
#: Ring's limit on verification codes: this many in :data:`CODE_WINDOW_S`.
CODE_LIMIT, CODE_WINDOW_S = 10, 600.0


def _plain(status: int, body: Any) -> tuple[int, bytes, dict[str, str]]:
    return status, _json(body), {"Content-Type": "application/json"}


def app_token(
    ring: Ring, request: Request, form: dict[str, str]
) -> tuple[int, bytes, dict[str, str]]:
    """The app's token endpoint: the password grant with 2FA (412 and a code "sent"; a wrong
    code 400 ``Verification Code…``; more than 10 codes in 10 minutes refused with ``too many
    requests from dependency service``) and single-use refresh tokens."""
    app = ring.config["app"]
    grant = form.get("grant_type")
    if grant == "refresh_token":
        if form.get("refresh_token") != ring.app_refresh or ring.app_refresh is None:
            return _plain(400, {"error": "invalid_grant"})
        return _plain(200, ring.issue_app())
    if grant != "password" or form.get("scope") != "client":
        return _plain(400, {"error": "unsupported_grant_type"})
    if form.get("username") != app["username"] or form.get("password") != app["password"]:
        return _plain(401, {"error": "invalid_grant", "error_description": "invalid user"})
    if not request.headers.get("hardware_id"):
        return _plain(400, {"error": "invalid_request"})
    code = request.headers.get("2fa-code")
    if not code:
        now = time.time()
        ring.codes_sent = [t for t in ring.codes_sent if t > now - CODE_WINDOW_S]
        if len(ring.codes_sent) >= CODE_LIMIT:
            return _plain(
                400,
                {
                    "error": "invalid_request",
                    "error_description": "too many requests from dependency service",
                },
            )
        ring.codes_sent.append(now)
        return _plain(412, {"next_time_in_secs": 60, "phone": "+1xxxxxxx89", "tsv_state": "sms"})
    if code != app["code"]:
        return _plain(400, {"error": "Verification Code is invalid or expired"})
    ring.hardware_ids.add(request.headers["hardware_id"])
    return _plain(200, ring.issue_app())


def app_api(ring: Ring, request: Request) -> tuple[int, bytes, dict[str, str]]:
    """``POST /clients_api/session`` and ``GET /clients_api/ring_devices`` (every group; each
    camera with its position, battery and ``settings.live_view_disabled``), bearer and
    ``hardware_id`` required."""
    if ring.app_faults:
        status, body = ring.app_faults.pop(0)
        return _plain(status, body)
    if not ring.authorised(request):
        return _plain(401, {"error": "Unauthorized"})
    hardware_id = request.headers.get("hardware_id", "")
    if hardware_id not in ring.hardware_ids:
        return _plain(404, {"error": f"Session hardware_id not found: {hardware_id}"})
    if request.method == "POST" and request.path == "/clients_api/session":
        ring.sessions += 1
        return _plain(201, {"profile": {"id": 1, "email": ring.config["app"]["username"]}})
    if request.method == "GET" and request.path == "/clients_api/ring_devices":
        groups: dict[str, list[Any]] = {g: [] for g in ("doorbots", "authorized_doorbots")}
        groups |= {"stickup_cams": [], "chimes": [], "other": [], "base_stations": []}
        for i, device in enumerate(ring.devices, start=1):
            battery = device.get("battery", 255)
            groups["doorbots" if i % 2 else "stickup_cams"].append(
                {
                    "id": 1000 + i,
                    "description": device["name"],
                    "kind": "doorbell_v3" if i % 2 else "stickup_cam_v4",
                    "device_id": f"sim{i:04d}",
                    "location_id": "loc-1",
                    "latitude": 32.2988 + i / 1000,
                    "longitude": -90.1848,
                    "battery_life": None if battery == 255 else str(battery),
                    "alerts": {"connection": "online" if device.get("online", True) else "offline"},
                    "settings": {"live_view_disabled": bool(device.get("live_view_disabled"))},
                    "features": {"show_recordings": True},
                    "time_zone": "America/Chicago",
                }
            )
        groups["chimes"].append({"id": 9001, "description": "Chime", "kind": "chime"})
        return _plain(200, groups)
    if request.method == "GET" and request.path == "/clients_api/dings/active":
        return _plain(200, [])
    if request.method == "GET" and request.path.startswith("/groups/v1/locations/"):
        return _plain(200, {"device_groups": []})
    parts = request.path.split("/")
    if request.method == "GET" and len(parts) == 6 and parts[2:6:2] == ["dings", "share"]:
        return share_play(ring, parts[3], request.query) if parts[5] == "play" else _plain(404, {})
    if request.method == "GET" and len(parts) == 5 and parts[2:5:2] == ["doorbots", "history"]:
        return _plain(200, app_history(ring, parts[3], parse_qs(request.query)))
    return _plain(404, {"error": "Not Found"})


#: Recorded events per device in the app's history, and how long each one's recording lasts.
HISTORY_EVENTS, EVENT_SECONDS = 7, 20


def ding_start_ms(ring: Ring, ding_id: int) -> int:
    """When the app's event ``ding_id`` (``<doorbot id> * 100 + k``) began (epoch ms)."""
    return ring.started_ms - 600_000 + 60_000 * (ding_id % 100)


def share_play(ring: Ring, ding: str, query: str) -> tuple[int, bytes, dict[str, str]]:
    """``GET /clients_api/dings/{id}/share/play``: the recording's signed URL (on this
    server's ``/recordings/``, valid for that ding only) as ``{"url": …}`` with
    ``disable_redirect=true``, else a 302 to it; 404 for an unknown event."""
    if not ding.isdigit() or app_doorbot(ring, int(ding) // 100) is None:
        return _plain(404, {"error": "Not Found"})
    if not 1 <= int(ding) % 100 <= HISTORY_EVENTS:
        return _plain(404, {"error": "Not Found"})
    signature = secrets.token_urlsafe(16)
    ring.signed[signature] = ding
    url = f"{ring.base}/recordings/{ding}.mp4?X-Amz-Signature={signature}"
    if "disable_redirect=true" not in query:
        return 302, b"", {"Location": url}
    return _plain(200, {"url": url})


def signed_recording(ring: Ring, request: Request) -> tuple[int, bytes, dict[str, str]]:
    """``GET /recordings/{ding}.mp4?X-Amz-Signature=…`` (no bearer: the URL is signed): the
    event's MP4 (:data:`EVENT_SECONDS` from its start, every picture with its clock); 403 for
    a signature this server did not give for that ding. ``/recordings/elsewhere`` redirects to
    another host (for the test that no redirect is followed)."""
    if request.path == "/recordings/elsewhere":
        return 302, b"", {"Location": "http://192.0.2.9/stolen.mp4"}
    signature = parse_qs(request.query).get("X-Amz-Signature", [""])[0]
    ding = request.path.removeprefix("/recordings/").removesuffix(".mp4")
    if ring.signed.get(signature) != ding:
        return 403, b"<Error>AccessDenied</Error>", {"Content-Type": "application/xml"}
    device = app_doorbot(ring, int(ding) // 100)
    assert device is not None
    order = {"timestamp": ding_start_ms(ring, int(ding)), "duration": EVENT_SECONDS * 1000}
    return clip(ring, device["id"], _json(order))


def app_snapshot(ring: Ring, request: Request) -> tuple[int, bytes, dict[str, str]]:
    """``GET /snapshots/next/{doorbot id}?after-ms=…`` (bearer): the device's latest image
    whatever ``after-ms`` asks (a battery camera's is ten minutes old, a ``stale_snapshot``
    device's an hour), dated by ``x-time-millis``: the client must check it."""
    if not ring.authorised(request):
        return _plain(401, {"error": "Unauthorized"})
    doorbot = request.path.removeprefix("/snapshots/next/")
    device = app_doorbot(ring, int(doorbot)) if doorbot.isdigit() else None
    if device is None:
        return _plain(404, {"error": "Not Found"})
    now_ms = int(time.time() * 1000)
    if device.get("stale_snapshot"):
        taken = now_ms - 3_600_000
    else:
        taken = now_ms - int(float(device.get("snapshot_age_s", 0.0)) * 1000)
    return 200, clock_jpeg(taken), {"Content-Type": "image/jpeg", "x-time-millis": str(taken)}


def app_history(ring: Ring, doorbot: str, query: dict[str, list[str]]) -> list[dict[str, Any]]:
    """``GET /clients_api/doorbots/{id}/history?limit=N[&older_than=ID]``: the device's events,
    newest first (ids ``<device id>00 + k``), paged by ``older_than``."""
    if not doorbot.isdigit():
        return []
    base = int(doorbot) * 100
    events: list[dict[str, Any]] = [
        {
            "id": base + k,
            "created_at": datetime.fromtimestamp(ding_start_ms(ring, base + k) / 1000, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "kind": "ding" if k % 3 == 0 else "motion",
            "duration": EVENT_SECONDS,
            "answered": False,
            "favorite": False,
            "recording": {"status": "ready"},
            "snapshot_url": "",
            "events": [],
        }
        for k in range(HISTORY_EVENTS, 0, -1)
    ]
    older = query.get("older_than", [""])[0]
    if older.isdigit():
        events = [e for e in events if int(e["id"]) < int(older)]
    limit = query.get("limit", ["30"])[0]
    return events[: int(limit) if limit.isdigit() else 30]


def _loopback_or_https(uri: str) -> bool:
    parts = urlsplit(uri)
    if parts.scheme == "https":
        return bool(parts.hostname)
    return parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost", "::1")


def authorize(ring: Ring, request: Request) -> tuple[int, bytes, dict[str, str]]:
    """The authorisation page: ``GET`` shows what the partner asks for with approve and deny
    buttons; ``POST`` (the same parameters plus ``decision``) redirects to ``redirect_uri`` with
    a code (valid 60 s, once, bound to the redirect and the PKCE challenge) or
    ``error=access_denied``."""
    query = request.query if request.method == "GET" else request.body.decode(errors="replace")
    params = {k: v[0] for k, v in parse_qs(query).items()}
    redirect = params.get("redirect_uri", "")
    if (
        params.get("client_id") != ring.config["client_id"]
        or params.get("response_type") != "code"
        or not _loopback_or_https(redirect)
    ):
        return 400, b"<p>invalid authorisation request</p>", {"Content-Type": "text/html"}
    if params.get("code_challenge_method") != "S256" or not params.get("code_challenge"):
        return 400, b"<p>PKCE (S256) required</p>", {"Content-Type": "text/html"}
    if request.method == "GET":
        fields = "".join(
            f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
            for k, v in params.items()
        )
        page = (
            '<form method="post" action="/oauth/authorize">'
            f"<p>camgate asks to reach your Ring devices.</p>{fields}"
            '<button name="decision" value="approve">Approve</button>'
            '<button name="decision" value="deny">Deny</button></form>'
        )
        return 200, page.encode(), {"Content-Type": "text/html"}
    reply = {"state": params.get("state", "")}
    if params.get("decision") == "approve":
        code = secrets.token_urlsafe(24)
        ring.codes[code] = {
            "redirect_uri": redirect,
            "challenge": params["code_challenge"],
            "expires": time.time() + 60.0,
        }
        reply = {"code": code, **reply}
    else:
        reply = {"error": "access_denied", **reply}
    return 302, b"", {"Location": f"{redirect}?{urlencode(reply)}"}


def exchange(ring: Ring, form: dict[str, str]) -> tuple[int, bytes, dict[str, str]]:
    """``grant_type=authorization_code``: a known, unused, unexpired code whose redirect
    matches and whose PKCE verifier hashes to its challenge gets a token pair."""
    found = ring.codes.pop(form.get("code", ""), None)
    verifier = form.get("code_verifier", "")
    challenge = (
        base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    )
    if (
        found is None
        or found["expires"] < time.time()
        or found["redirect_uri"] != form.get("redirect_uri")
        or found["challenge"] != challenge
    ):
        return 400, _json({"error": "invalid_grant"}), {"Content-Type": "application/json"}
    return 200, _json(ring.issue()), {"Content-Type": "application/json"}


def join_point(config: dict[str, Any]) -> float:
    """How far into the camera's stream a new viewer joins: the configured ``join_delay``, or
    (None) a random point of the keyframe interval, as a viewer of a running camera does."""
    if config["join_delay"] is not None:
        return float(config["join_delay"])
    interval = float(config["keyframe_interval"])
    return random.uniform(0.1, max(0.1, interval - 0.1))  # noqa: S311 (a test peer)


#: Where the app asks for a signalling ticket (under ``prd-api-us.prd.rings.solutions``).
TICKET_PATH = "/api/v1/clap/ticket/request/signalsocket"


def app_doorbot(ring: Ring, doorbot_id: Any) -> dict[str, Any] | None:
    """The device the app knows as ``doorbot_id`` (``1000 + index``), None when none is."""
    if not isinstance(doorbot_id, int) or not 1001 <= doorbot_id <= 1000 + len(ring.devices):
        return None
    return ring.devices[doorbot_id - 1001]


async def signalling(ring: Ring, socket: Any) -> None:
    """The app's signalling socket: a ticket (single use) and a User-Agent required (else
    ``close`` code 5 / the socket closed); ``live_view`` → ``session_created``, ``sdp`` (the
    aiortc peer's answer); ``activate_session``, ``ping`` → ``pong``; no ping for
    ``ping_timeout_s`` → ``close`` code 6; the client's ``close`` or the socket dropping ends the
    peer connection; Ring's live cap ends it too (``close`` code 0)."""
    request = socket.request
    query = parse_qs(urlsplit(request.path).query)
    ticket = query.get("token", [""])[0]
    if "user-agent" not in {k.lower() for k in request.headers}:
        await socket.close()
        return
    if ticket not in ring.tickets:
        reason = {"code": 5, "text": "Unauthorized: invalid or expired token"}
        await socket.send(json.dumps({"method": "close", "body": {"reason": reason}}))
        await socket.close()
        return
    ring.tickets.discard(ticket)
    session: Any = None
    entry: dict[str, Any] = {}

    async def say(method: str, **body: Any) -> None:
        await socket.send(json.dumps({"method": method, "body": body}))

    async def end(code: int, text: str) -> None:
        entry["closed_by_ring"] = [code, text]
        with contextlib.suppress(Exception):
            await say("close", reason={"code": code, "text": text})
            await socket.close()

    try:
        while True:
            timeout = float(ring.config.get("ping_timeout_s", 10.0))
            try:
                raw = await asyncio.wait_for(socket.recv(), timeout if session else None)
            except TimeoutError:
                await end(6, "Timeout waiting for ping")
                return
            message = json.loads(raw)
            method, body = message.get("method"), message.get("body", {})
            if method == "close":
                entry["closed_by_client"] = message.get("reason", {}).get("code")
                return
            if method == "live_view" and session is None:
                device = app_doorbot(ring, body.get("doorbot_id"))
                if device is None or not device.get("online", True):
                    await end(0, "Device is offline")
                    return
                if device.get("broken"):
                    await end(1, "Internal server error")
                    return
                session, answer = await start_session(
                    body["sdp"],
                    interval=float(ring.config["keyframe_interval"]),
                    join_delay=join_point(ring.config),
                )
                entry = {
                    "doorbot_id": body["doorbot_id"],
                    "device": str(body["doorbot_id"]),
                    "partner_device": device["id"],
                    "mono": time.monotonic(),
                    "candidates": sdp_candidates(answer),
                    "activated": False,
                    "pings": 0,
                    "closed_by_client": None,
                    "closed_by_ring": None,
                }
                ring.signalling[session.id] = entry
                ids = {"doorbot_id": body["doorbot_id"], "session_id": session.id}
                await say("session_created", **ids)
                await say("sdp", sdp=answer, type="answer", **ids)
                cap = float(device.get("live_cap_s", 60.0))
                asyncio.get_running_loop().call_later(
                    cap, lambda: asyncio.ensure_future(end(0, "Session cap reached"))
                )
            elif session is not None and body.get("session_id") == session.id:
                if method == "activate_session":
                    entry["activated"] = True
                elif method == "ping":
                    entry["pings"] += 1
                    await say("pong", session_id=session.id)
    except Exception:  # noqa: S110 (the socket dropped: end as Ring does)
        pass
    finally:
        if session is not None:
            await session.pc.close()


async def end_at_cap(ring: Ring, session_id: str) -> None:
    """Ring's cap: end a live session still running (its peer connection closed by Ring)."""
    session = SESSIONS[session_id]
    if session.closed_at is None and not ring.whep[session_id]["deleted"]:
        ring.whep[session_id]["capped"] = True
        await session.pc.close()


def devices_document(ring: Ring, include_status: bool) -> dict[str, Any]:
    """``GET /v1/devices`` as JSON:API, with the status resources when asked."""
    data, included = [], []
    for device in ring.devices:
        status_id = f"{device['id']}.status"
        data.append(
            {
                "type": "devices",
                "id": device["id"],
                "attributes": {"name": device["name"]},
                "relationships": {
                    "status": {
                        "data": {"type": "device-status", "id": status_id},
                        "links": {"related": f"/v1/devices/{device['id']}/status"},
                    }
                },
            }
        )
        included.append(
            {
                "type": "device-status",
                "id": status_id,
                "attributes": {
                    "online": device.get("online", True),
                    "battery_status": {"percentage": device.get("battery", 255)},
                },
            }
        )
    document: dict[str, Any] = {"meta": {"time": "2026-01-01T00:00:00Z"}, "data": data}
    if include_status:
        document["included"] = included
    return document


async def backdoor(ring: Ring, request: Request) -> tuple[int, bytes, dict[str, str]]:
    """The suite's view of the simulator (never used by the adapter)."""
    plain = {"Content-Type": "application/json"}
    if request.path == "/_sim/log":
        return 200, _json(ring.log), plain
    if request.path in ("/_sim/state", "/_sim/signalling"):
        kept = ring.whep if request.path == "/_sim/state" else ring.signalling
        state = {
            key: {
                **SESSIONS[key].state(),
                **value,
                "sent": len(SESSIONS[key].sent),
                "closed_at": SESSIONS[key].closed_at,
            }
            for key, value in kept.items()
        }
        return 200, _json(state), plain
    if request.path == "/_sim/link" and request.method == "POST":
        return 200, _json(ring.issue()), plain
    if request.path == "/_sim/app":
        app = {
            "hardware_ids": sorted(ring.hardware_ids),
            "sessions": ring.sessions,
            "codes_sent": len(ring.codes_sent),
            "started_ms": ring.started_ms,
        }
        return 200, _json(app), plain
    if request.path == "/_sim/webhook" and request.method == "POST":
        return 200, _json(await send_webhook(ring, json.loads(request.body))), plain
    if request.path == "/_sim/app-faults" and request.method == "POST":
        ring.app_faults += [(int(f["status"]), f["body"]) for f in json.loads(request.body)]
        return 200, b"{}", plain
    if request.path == "/_sim/revoke" and request.method == "POST":
        # The owner removed the partner from "My Apps" (or ended the app's sign-in): every
        # token of that backend is refused from now on (API 401, refresh 400 invalid_grant).
        app = json.loads(request.body or b"{}").get("backend") == "app"
        for token in ring.access:
            if (token in ring.app_access) == app:
                ring.access[token] = 0.0
        if app:
            ring.app_refresh = None
        else:
            ring.refresh = None
        return 200, b"{}", plain
    if request.path == "/_sim/expire" and request.method == "POST":
        ring.access = {token: 0.0 for token in ring.access}
        return 200, b"{}", plain
    if request.path == "/_sim/rate-limit" and request.method == "POST":
        ring.limit = {**ring.limit, **json.loads(request.body)}
        return 200, b"{}", plain
    return 404, b"", {}


async def send_webhook(ring: Ring, order: dict[str, Any]) -> list[int]:
    """POST one signed delivery (payload v1.1) to ``order["url"]`` ``times`` times (a retry
    repeats its request id), its ``meta.time`` ``age_s`` in the past, its signature broken with
    ``tamper``; the statuses the receiver answered."""
    now = time.time() - float(order.get("age_s", 0.0))
    device, kind = order.get("device"), order["type"]
    stamp = int(now * 1000)
    data: dict[str, Any] = {
        "id": f"{device or 'account'}_{order.get('sub_type') or kind}_{stamp}",
        "type": kind,
        "attributes": {
            "source": device or "ava1.ring.account.SIM",
            "source_type": "devices" if device else "accounts",
            "timestamp": stamp,
        },
    }
    if device:
        data["relationships"] = {"devices": {"links": {"self": f"/v1/devices/{device}"}}}
    if order.get("sub_type"):
        data["subType"] = order["sub_type"]
    moment = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now))
    meta = {
        "version": "1.1",
        "time": f"{moment}.{int(now % 1 * 1e9):09d}Z",
        "request_id": str(uuid.uuid4()),
        "account_id": "ava1.ring.account.SIM",
    }
    body = _json({"meta": meta, "data": data})
    key = ring.config["signing_key"].encode()
    signature = "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()
    if order.get("tamper"):
        signature = signature[:-4] + ("0000" if not signature.endswith("0000") else "1111")
    headers = {"Content-Type": "application/json", "X-Signature": signature}
    statuses = []
    async with httpx.AsyncClient(timeout=5.0, trust_env=False) as client:
        for _ in range(int(order.get("times", 1))):
            answer = await client.post(order["url"], content=body, headers=headers)
            statuses.append(answer.status_code)
    return statuses


#: Events per device in the Partner history, and how many a page holds.
PARTNER_EVENTS, PAGE_SIZE = 7, 3


def history_page(ring: Ring, path: str, query: str) -> tuple[int, bytes, dict[str, str]]:
    """``GET /v1/history/devices/{id}/events?event_types=…[&page[key]=N]``: the device's
    events (every 6 minutes over the last hour before the simulator started, motion with
    ``human`` and ``vehicle`` sub-types and dings), newest first, :data:`PAGE_SIZE` a page,
    ``links.next`` while more remain."""
    kind = {"Content-Type": "application/vnd.api+json"}
    parts = path.split("/")
    device = unquote(parts[4]) if len(parts) == 6 and parts[5] == "events" else ""
    if not any(d["id"] == device for d in ring.devices):
        return 404, _error(404, "Not Found"), kind
    params = {k: v[0] for k, v in parse_qs(query).items()}
    wanted = set(params.get("event_types", "motion,ding,on_demand").split(","))
    events = []
    for k in range(PARTNER_EVENTS):
        start = ring.started_ms - 360_000 * (k + 1)
        event_type = "ding" if k % 3 == 2 else "motion"
        sub = None if event_type == "ding" else ("human" if k % 2 == 0 else "vehicle")
        if event_type not in wanted and f"{event_type}.{sub}" not in wanted:
            continue
        attributes: dict[str, Any] = {
            "event_type": event_type,
            "start": start,
            "end": start + 20_000,
        }
        if sub:
            attributes["sub_type"] = sub
        events.append(
            {
                "type": "history-events",
                "id": f"{device}.event.{k}",
                "attributes": attributes,
                "relationships": {"source": {"data": {"type": "devices", "id": device}}},
            }
        )
    offset = int(params["page[key]"]) if params.get("page[key]", "").isdigit() else 0
    document: dict[str, Any] = {"data": events[offset : offset + PAGE_SIZE], "links": {}}
    if offset + PAGE_SIZE < len(events):
        types = params.get("event_types", "motion,ding,on_demand")
        document["links"]["next"] = f"{path}?event_types={types}&page[key]={offset + PAGE_SIZE}"
    return 200, _json(document), kind


def _online(
    ring: Ring, device_id: str
) -> tuple[dict[str, Any], tuple[int, bytes, dict[str, str]] | None]:
    """The device, and the 503 Ring answers when it is offline (None when it is online)."""
    device = next(d for d in ring.devices if d["id"] == device_id)
    if device.get("online", True):
        return device, None
    kind = {"Content-Type": "application/vnd.api+json"}
    return device, (503, _error(503, "Device is currently offline"), kind)


def snapshot(ring: Ring, device_id: str, body: bytes) -> tuple[int, bytes, dict[str, str]]:
    """``POST …/media/image/download``: the device's latest image in the asked range as a JPEG
    with the picture clock of its capture time and ``X-Media-Timestamp``. A device's latest
    image is ``snapshot_age_s`` old (battery cameras: 600 s); none in the range is 416; a
    ``stale_snapshot`` device serves an hour-old image whatever the range (a misbehaving
    cloud, which the adapter must refuse)."""
    kind = {"Content-Type": "application/vnd.api+json"}
    device, refused = _online(ring, device_id)
    if refused is not None:
        return refused
    try:
        order = json.loads(body)
        if order["type"] == "latest_in_range":
            start, end = int(order["start_timestamp"]), int(order["end_timestamp"])
        else:
            start = end = int(order["timestamp"])  # at_timestamp
    except (ValueError, KeyError, TypeError):
        return 400, _error(400, "Bad Request"), kind
    now_ms = int(time.time() * 1000)
    if device.get("stale_snapshot"):
        taken = now_ms - 3_600_000
    else:
        # A camera keeps images up to its latest: the latest one in the range.
        taken = min(now_ms - int(float(device.get("snapshot_age_s", 0.0)) * 1000), end)
        if taken < start:
            return 416, _error(416, "TIMESTAMP_NOT_FOUND"), kind
    return 200, clock_jpeg(taken), {"Content-Type": "image/jpeg", "X-Media-Timestamp": str(taken)}


def clock_jpeg(taken_ms: int) -> bytes:
    """A 320x240 JPEG whose picture clock shows ``taken_ms`` (epoch ms)."""
    luma = np.tile(np.linspace(40, 200, 320, dtype=np.uint8), (240, 1))
    draw_picture_clock(luma, datetime.fromtimestamp(taken_ms / 1000, UTC))
    jpeg, _w, _h = encode_jpeg(av.VideoFrame.from_ndarray(luma, format="gray"), quality=3)
    return jpeg


#: The simulated recordings: frames per second and keyframe interval (frames).
CLIP_FPS, CLIP_GOP = 5, 10
#: How far back a device's recordings reach (seconds before the simulator started).
RECORDED_BACK_S = 3600.0


def clip(ring: Ring, device_id: str, body: bytes) -> tuple[int, bytes, dict[str, str]]:
    """``POST …/media/video/download`` (``timestamp`` epoch ms, ``duration`` ms ≤ 15 min): an
    MP4 (H.264, 320x240, 5 fps, a keyframe every 2 s, the first at ``timestamp``) whose every
    picture carries the picture clock of its capture time. Recordings reach
    :data:`RECORDED_BACK_S` before the simulator started, up to now; a range that starts
    outside is 416, one that runs past now is cut there (206 with ``X-Media-Length``)."""
    kind = {"Content-Type": "application/vnd.api+json"}
    _device, refused = _online(ring, device_id)
    if refused is not None:
        return refused
    try:
        order = json.loads(body)
        start, duration = int(order["timestamp"]), int(order["duration"])
    except (ValueError, KeyError, TypeError):
        return 400, _error(400, "Bad Request"), kind
    now_ms = int(time.time() * 1000)
    if not 0 < duration <= 900_000:
        return 400, _error(400, "Bad Request"), kind
    if not ring.started_ms - RECORDED_BACK_S * 1000 <= start < now_ms:
        return 416, _error(416, "TIMESTAMP_NOT_FOUND"), kind
    end = min(start + duration, now_ms)
    out = io.BytesIO()
    with av.open(out, "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=CLIP_FPS)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        stream.codec_context.gop_size = CLIP_GOP
        stream.codec_context.options = {
            "preset": "ultrafast",
            "tune": "zerolatency",
            "x264-params": f"keyint={CLIP_GOP}:min-keyint={CLIP_GOP}:scenecut=0:bframes=0",
        }
        count = max(1, (end - start) * CLIP_FPS // 1000)
        for i in range(count):
            luma = np.tile(np.linspace(40, 200, 320, dtype=np.uint8), (240, 1))
            taken = start + i * 1000 // CLIP_FPS
            draw_picture_clock(luma, datetime.fromtimestamp(taken / 1000, UTC))
            frame = av.VideoFrame.from_ndarray(luma, format="gray").reformat(format="yuv420p")
            frame.pts, frame.time_base = i, fractions.Fraction(1, CLIP_FPS)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    status = 200 if end == start + duration else 206
    headers = {"Content-Type": "video/mp4", "X-Media-Timestamp": str(start)}
    if status == 206:
        headers["X-Media-Length"] = str(end - start)
    return status, out.getvalue(), headers


def whep_client(request: Request, status: int, headers: dict[str, str]) -> str | None:
    """The WHEP session a request started (its ``Location``) or ended (its path), else None."""
    if request.method == "POST" and status == 201 and "Location" in headers:
        return headers["Location"].rsplit("/", 1)[1]
    if request.method == "DELETE" and WHEP in request.path:
        return request.path.rsplit("/", 1)[1]
    return None


async def main(config: dict[str, Any]) -> None:
    ring = Ring(config)

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            request = await read_request(reader)
            status, body, headers = await handle(ring, request)
            entry: dict[str, Any] = {}
            if not request.path.startswith("/_sim/"):
                entry = {
                    "method": request.method,
                    "path": request.path,
                    "status": status,
                    "bearer": request.headers.get("authorization", "").startswith("Bearer "),
                    "grant_type": parse_qs(request.body.decode(errors="replace")).get(
                        "grant_type", [None]
                    )[0]
                    if request.path == "/oauth/token"
                    else None,
                    "time": time.time(),
                    "mono": time.monotonic(),
                    "hardware_id": request.headers.get("hardware_id"),
                    "client": whep_client(request, status, headers),
                }
                ring.log.append(entry)
            try:
                await respond(
                    writer, f"{status} {STATUS_TEXT.get(status, 'Status')}", body, headers
                )
            finally:
                if entry:
                    entry["closed"] = time.monotonic()  # each connection serves one request

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    ring.base = f"http://127.0.0.1:{port}"
    tls_port = 0
    if config.get("tls"):
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(config["tls"]["cert"], config["tls"]["key"])
        secure = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=context)
        tls_port = secure.sockets[0].getsockname()[1]
    from websockets.asyncio.server import serve as ws_serve

    socket_server = await ws_serve(lambda ws: signalling(ring, ws), "127.0.0.1", 0)
    ws_port = next(iter(socket_server.sockets)).getsockname()[1]
    print(f"READY {ring.base} {tls_port} ws://127.0.0.1:{ws_port}/ws", flush=True)
    async with server, socket_server:
        await server.serve_forever()


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main(json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))))
    sys.exit(0)
