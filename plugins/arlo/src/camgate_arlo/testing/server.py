"""The simulated Arlo cloud: real HTTP servers and an RTSPS front on loopback, run as its own
process.

``python -m camgate_arlo.testing.server CONFIG.json`` prints ``READY <auth> <api> <events>
<rtsps port>`` once it listens, and stops when its stdin closes. It speaks Arlo's protocol as
docs/arlo.md describes it:

- **login host**: ``POST /api/auth`` (e-mail, base64 password; ``authCompleted: false`` for an
  account with a second factor), ``POST /api/getFactorId`` (BROWSER: a factor id for a paired
  client whose trust cookie and device id match, else 9204), ``GET /api/getFactors``,
  ``POST /api/startAuth`` (a factor → ``factorAuthCode``, the one-time code "sent"; the
  trusted browser factor → a complete token), ``POST /api/finishAuth`` (the code, or a PUSH
  approved through the backdoor; a wrong code → 9261), ``POST /api/startPairingFactor`` (sets
  the trust cookie), ``GET /api/validateAccessToken``. The token travels base64 here.
- **API host**: ``GET /hmsweb/users/session/v3``, ``GET /hmsweb/v2/users/devices``,
  ``POST /hmsweb/users/devices/startStream`` (RTSPS URL for an Android/arlo User-Agent, HLS
  for iPad/Mac, DASH otherwise; 2059 for an offline device), ``POST
  /hmsweb/users/devices/notify/<parent>`` (``idle`` ends the stream),
  ``POST /hmsweb/users/devices/fullFrameSnapshot`` (an event with a presigned URL follows),
  ``GET /media/<name>`` (the presigned JPEG, with ``Last-Modified``). The raw token in
  ``Authorization``; 401 for a missing or expired one.
- **events host**: ``GET /hmsweb/client/subscribe``, server-sent events, ``{"status":
  "connected"}`` first; a locked stream (backdoor) accepts and then stays silent.
- **RTSPS**: TLS (the simulator's own certificate) in front of GStreamer's RTSP server; the
  first request must carry a live ``egressToken`` used within ``connect_window_s`` of
  ``startStream``; the session ends after ``session_cap_s`` or at ``idle``.

The backdoor, on the API host under ``/_sim/`` (never used by the adapter, never logged):
``log`` (every request: host, method, path, status, user agent, client, kind, camera, media;
every connection's ``connect``/``closed``; RTSPS ``play``), ``otp``, ``approve``, ``link`` (a
complete, paired session), ``expire``, ``lock`` (the next N event streams go silent),
``fault`` (``{"auth": "403"|"429"|null}``: Cloudflare's refusals), ``offline``, ``drop`` (end
the streams of these devices now; they are offline from then on), ``config`` (the stream cap,
connect window and snapshot delay, changed at run time), ``state`` (stream sessions). Devices
listed in the config's ``broken`` answer 500 to startStream and snapshots.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import email.utils
import functools
import io
import json
import secrets
import ssl
import sys
import time
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import av
import numpy as np
from camgate.testing import draw_picture_clock
from camgate.testing.webrtc import Request, read_request, respond

OK = "200 OK"


def _json(body: Any) -> bytes:
    return json.dumps(body).encode()


def _meta(code: int, data: Any = None, error: int | None = None, message: str = "") -> bytes:
    meta: dict[str, Any] = {"code": code}
    if error is not None:
        meta |= {"error": error, "message": message}
    return _json({"meta": meta, "data": data if data is not None else {}})


def _success(data: Any = None) -> bytes:
    return _json({"success": True, "data": data if data is not None else {}})


def _failure(error: str, message: str) -> bytes:
    return _json({"success": False, "data": {"error": error, "message": message}})


def snapshot_jpeg(taken_at: datetime, width: int = 640, height: int = 360) -> bytes:
    """A grey JPEG carrying ``taken_at`` as the picture clock (camgate.testing)."""
    luma = np.full((height, width), 96, dtype=np.uint8)
    draw_picture_clock(luma, taken_at)
    frame = av.VideoFrame.from_ndarray(luma, format="gray").reformat(format="yuvj420p")
    codec = av.CodecContext.create("mjpeg", "w")
    codec.width, codec.height, codec.pix_fmt = width, height, "yuvj420p"
    codec.time_base = Fraction(1, 25)
    codec.options = {"qscale": "3"}
    packets = [*codec.encode(frame), *codec.encode(None)]
    return b"".join(bytes(p) for p in packets)


def recorded_mp4(start: float, seconds: float, fps: int = 10) -> bytes:
    """An MP4 of ``seconds`` of H.264 (320x240, a keyframe every second), each picture
    carrying its capture time (``start`` + its media time, UNIX seconds) as the picture
    clock: a recording as Arlo's library holds one."""
    out = io.BytesIO()
    with av.open(out, "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        stream.options = {"preset": "ultrafast", "g": str(fps), "bf": "0"}
        for i in range(round(seconds * fps)):
            luma = np.full((240, 320), 80 + (i * 7) % 60, dtype=np.uint8)
            draw_picture_clock(luma, datetime.fromtimestamp(start + i / fps, UTC))
            frame = av.VideoFrame.from_ndarray(luma, format="gray").reformat(format="yuv420p")
            frame.pts = i
            frame.time_base = Fraction(1, fps)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return out.getvalue()


class Arlo:
    """The simulated account, its sessions and streams, and what was asked of it."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.devices: list[dict[str, Any]] = config["devices"]
        self.offline: set[str] = set(config.get("offline", []))
        self.tokens: dict[str, dict[str, Any]] = {}  # token -> complete, expires
        self.pending: dict[str, dict[str, Any]] = {}  # factorAuthCode -> factor, otp, approved
        self.browser_codes: set[str] = set()
        self.trusted: dict[str, str] = {}  # device id -> trust cookie value
        self.streams: dict[str, dict[str, Any]] = {}  # egress token -> session
        self.subscribers: list[asyncio.Queue[dict[str, Any] | None]] = []
        self.media: dict[str, tuple[bytes, float]] = {}
        self.log: list[dict[str, Any]] = []
        self.locks = 0
        self.auth_fault: str | None = None
        self.last_otp: str | None = None
        self.urls: dict[str, str] = {}
        self.user = "SIMUSER-1"
        self.library: list[dict[str, Any]] = []  # deviceId, start, seconds, name
        for clip in config.get("library", []):
            name = f"{clip['deviceId']}-rec-{secrets.token_hex(6)}.mp4"
            data = recorded_mp4(float(clip["start"]), float(clip["seconds"]))
            self.media[name] = (data, float(clip["start"]) + float(clip["seconds"]))
            self.library.append(clip | {"name": name})

    def issue(self, complete: bool) -> str:
        token = "2_" + secrets.token_urlsafe(24)
        ttl = float(self.config.get("token_ttl_s", 3600))
        self.tokens[token] = {"complete": complete, "expires": time.time() + ttl}
        return token

    def auth_reply(self, token: str) -> dict[str, Any]:
        info = self.tokens[token]
        return {
            "token": token,
            "userId": self.user,
            "expiresIn": int(info["expires"] * 1000),
            "authCompleted": info["complete"],
            "authenticated": int(time.time()),
        }

    def valid(self, token: str, complete: bool = True) -> bool:
        info = self.tokens.get(token)
        if info is None:
            return False
        return bool(info["expires"] > time.time() and (info["complete"] or not complete))

    def device(self, device_id: str) -> dict[str, Any] | None:
        return next((d for d in self.devices if d["deviceId"] == device_id), None)

    def record(self, host: str, request: Request, status: int, client: str) -> None:
        camera: str | None = None
        path = request.path
        media = path.startswith("/media/") or path.endswith(
            ("/startStream", "/fullFrameSnapshot", "/library")
        )
        if path.startswith("/media/"):
            camera = path.removeprefix("/media/").split("-", 1)[0]
        elif path.startswith("/hmsweb/users/devices/"):
            with contextlib.suppress(ValueError, AttributeError):
                camera = str(json.loads(request.body).get("resource", "")).removeprefix("cameras/")
        self.log.append(
            {
                "at": time.monotonic(),
                "host": host,
                "method": request.method,
                "path": path,
                "status": status,
                "user_agent": request.headers.get("user-agent", ""),
                "client": client,
                "kind": path.rstrip("/").rsplit("/", 1)[-1] or "request",
                "camera": camera or None,
                "media": media,
            }
        )

    def connection(self, host: str, kind: str, client: str) -> None:
        """A connection to one of the hosts opened (``connect``) or ended (``closed``)."""
        self.log.append({"at": time.monotonic(), "host": host, "kind": kind, "client": client})

    def publish(self, event: dict[str, Any]) -> None:
        for queue in self.subscribers:
            queue.put_nowait(event)

    def end_stream(self, session: dict[str, Any], why: str) -> None:
        if session["ended"]:
            return
        session["ended"] = why
        for writer in list(session["writers"]):
            writer.transport.abort()  # at once: no TLS close_notify exchange to wait for


def _cookies(request: Request) -> dict[str, str]:
    cookies = {}
    for part in request.headers.get("cookie", "").split(";"):
        name, _, value = part.strip().partition("=")
        if name:
            cookies[name] = value
    return cookies


async def auth_host(arlo: Arlo, request: Request) -> tuple[str, bytes, dict[str, str]]:
    """One request to the login host: (status, body, extra headers)."""
    if request.method == "OPTIONS":  # a browser's preflight, as pyaarlo sends it
        return OK, b"", {"Access-Control-Allow-Origin": "*"}
    if arlo.auth_fault:
        status = {"403": "403 Forbidden", "429": "429 Too Many Requests"}[arlo.auth_fault]
        page = b"<!DOCTYPE html><title>Just a moment...</title><p>cloudflare</p>"
        return status, page, {"Content-Type": "text/html", "Server": "cloudflare"}
    try:
        body = json.loads(request.body) if request.body else {}
    except ValueError:
        return "400 Bad Request", _meta(400, error=400, message="bad json"), {}
    given = request.headers.get("authorization", "")
    try:
        token = base64.b64decode(given, validate=True).decode() if given else ""
    except ValueError:
        token = ""
    device_id = request.headers.get("x-user-device-id", "")
    account = arlo.config["account"]
    path = request.path
    if path == "/api/auth":
        password = base64.b64decode(str(body.get("password", ""))).decode(errors="replace")
        if body.get("email") != account["email"] or password != account["password"]:
            return "401 Unauthorized", _meta(401, error=2040, message="Invalid credentials"), {}
        token = arlo.issue(complete=not arlo.config.get("two_factor", True))
        return OK, _meta(200, arlo.auth_reply(token)), {}
    if not arlo.valid(token, complete=False):
        return "401 Unauthorized", _meta(401, error=2015, message="Token is invalid"), {}
    if path == "/api/getFactorId":
        trust = arlo.trusted.get(device_id)
        if trust is None or _cookies(request).get(f"browser_trust_{device_id[:8]}") != trust:
            return OK, _meta(400, error=9204, message="Browser is not trusted"), {}
        return OK, _meta(200, {"factorId": f"browser-{device_id}"}), {}
    if path == "/api/getFactors":
        items = [
            {
                "factorId": f"factor-{kind.lower()}",
                "factorType": kind,
                "displayName": {"EMAIL": "o***@example.org", "SMS": "+1 ***-***-0199"}.get(
                    kind, "Arlo app"
                ),
                "factorNickname": kind.title(),
                "factorRole": "PRIMARY" if i == 0 else "SECONDARY",
            }
            for i, kind in enumerate(arlo.config.get("factors", ["EMAIL", "SMS", "PUSH"]))
        ]
        return OK, _meta(200, {"items": items}), {}
    if path == "/api/startAuth":
        factor_id = str(body.get("factorId", ""))
        if factor_id.startswith("browser-"):
            if arlo.trusted.get(factor_id.removeprefix("browser-")) is None:
                return OK, _meta(400, error=9204, message="Browser is not trusted"), {}
            return OK, _meta(200, arlo.auth_reply(arlo.issue(complete=True))), {}
        kind = factor_id.removeprefix("factor-").upper()
        if kind not in arlo.config.get("factors", ["EMAIL", "SMS", "PUSH"]):
            return OK, _meta(400, error=9261, message="Invalid factor data"), {}
        code = secrets.token_urlsafe(12)
        otp = f"{secrets.randbelow(10**6):06d}"
        arlo.pending[code] = {"kind": kind, "otp": otp, "approved": False}
        arlo.last_otp = None if kind == "PUSH" else otp
        return OK, _meta(200, {"factorAuthCode": code}), {}
    if path == "/api/finishAuth":
        pending = arlo.pending.get(str(body.get("factorAuthCode", "")))
        if pending is None:
            return OK, _meta(400, error=9261, message="Invalid factor data"), {}
        if pending["kind"] == "PUSH":
            if not pending["approved"]:
                # Arlo's exact pending code is not known; pyaarlo needs a numeric error.
                return OK, _meta(400, error=400, message="Waiting for the push approval"), {}
        elif body.get("otp") != pending["otp"]:
            return OK, _meta(400, error=9261, message="Invalid factor data"), {}
        arlo.pending.pop(str(body["factorAuthCode"]))
        reply = arlo.auth_reply(arlo.issue(complete=True))
        browser = secrets.token_urlsafe(12)
        arlo.browser_codes.add(browser)
        return OK, _meta(200, reply | {"browserAuthCode": browser}), {}
    if path == "/api/startPairingFactor":
        if body.get("factorAuthCode") not in arlo.browser_codes or not device_id:
            return OK, _meta(400, error=9261, message="Invalid factor data"), {}
        arlo.browser_codes.discard(body["factorAuthCode"])
        trust = secrets.token_urlsafe(16)
        arlo.trusted[device_id] = trust
        cookie = f"browser_trust_{device_id[:8]}={trust}; Path=/; Secure; HttpOnly"
        return OK, _meta(200), {"Set-Cookie": cookie}
    if path == "/api/validateAccessToken":
        if not arlo.valid(token):
            return "401 Unauthorized", _meta(401, error=2015, message="Token is invalid"), {}
        return OK, _meta(200, {"valid": True}), {}
    return "404 Not Found", _meta(404, error=404, message="no such path"), {}


async def api_host(arlo: Arlo, request: Request) -> tuple[str, bytes, dict[str, str]]:
    """One request to the API host: (status, body, extra headers)."""
    path = request.path
    if path.startswith("/media/"):
        item = arlo.media.get(path.removeprefix("/media/"))
        if item is None or "X-Amz-Signature=" not in request.query:
            return "403 Forbidden", b"<Error>AccessDenied</Error>", {}
        data, taken = item
        modified = email.utils.formatdate(taken, usegmt=True)
        kind = "video/mp4" if path.endswith(".mp4") else "image/jpeg"
        return OK, data, {"Content-Type": kind, "Last-Modified": modified}
    token = request.headers.get("authorization", "")
    if not arlo.valid(token):
        return "401 Unauthorized", _failure("2015", "Your session has expired"), {}
    try:
        body = json.loads(request.body) if request.body else {}
    except ValueError:
        return "400 Bad Request", _failure("400", "bad json"), {}
    if path == "/hmsweb/users/session/v3":
        return OK, _success({"userId": arlo.user, "accountStatus": "registered"}), {}
    if path == "/hmsweb/v2/users/devices":
        return OK, _success(arlo.devices), {}
    if path == "/hmsweb/users/automation/definitions":  # modes: none defined (as pyaarlo reads)
        return OK, _success({}), {}
    if path == "/hmsweb/users/devices/automation/active":
        return OK, _success([]), {}
    if path == "/hmsweb/users/library":
        return OK, _success(_library(arlo, body)), {}
    if path in ("/hmsweb/users/devices/startStream", "/hmsweb/users/devices/fullFrameSnapshot"):
        camera_id = str(body.get("properties", {}).get("cameraId", "")) or str(
            body.get("resource", "")
        ).removeprefix("cameras/")
        device = arlo.device(camera_id)
        if device is None:
            return OK, _failure("2217", "Device not found"), {}
        if request.headers.get("xcloudid") != device["xCloudId"]:
            return OK, _failure("2050", "Wrong xcloudId"), {}
        if camera_id in arlo.offline:
            return OK, _failure("2059", "Device is offline."), {}
        if camera_id in arlo.config.get("broken", []):
            return "500 Internal Server Error", b"upstream failure", {}
        if path.endswith("fullFrameSnapshot"):
            asyncio.get_running_loop().create_task(_snapshot_later(arlo, camera_id))
            return OK, _success(), {}
        return OK, _success({"url": _stream_url(arlo, device, request)}), {}
    if path.startswith("/hmsweb/users/devices/notify/"):
        camera_id = str(body.get("resource", "")).removeprefix("cameras/")
        if body.get("properties", {}).get("activityState") == "idle":
            for session in arlo.streams.values():
                if session["device"] == camera_id:
                    arlo.end_stream(session, "idle")
        return OK, _success(), {}
    return "404 Not Found", _failure("404", "no such path"), {}


def _library(arlo: Arlo, body: dict[str, Any]) -> list[dict[str, Any]]:
    """The recordings made on the days ``dateFrom``..``dateTo`` (YYYYMMDD, UTC)."""
    first, last = str(body.get("dateFrom", "")), str(body.get("dateTo", ""))
    items = []
    for clip in arlo.library:
        day = datetime.fromtimestamp(clip["start"], UTC).strftime("%Y%m%d")
        if not first <= day <= last:
            continue
        signature = secrets.token_hex(16)
        items.append(
            {
                "deviceId": clip["deviceId"],
                "name": clip["name"].removesuffix(".mp4"),
                "createdDate": day,
                "utcCreatedDate": int(clip["start"] * 1000),
                "mediaDurationSecond": clip["seconds"],
                "contentType": "video/mp4",
                "reason": "motionRecord",
                "presignedContentUrl": f"{arlo.urls['api']}/media/{clip['name']}"
                f"?X-Amz-Expires=300&X-Amz-Signature={signature}",
            }
        )
    return items


def _stream_url(arlo: Arlo, device: dict[str, Any], request: Request) -> str:
    agent = request.headers.get("user-agent", "").lower()
    egress = secrets.token_urlsafe(24)
    mount = device["mount"]
    if "android" in agent or "arlo" in agent:
        arlo.streams[egress] = {
            "device": device["deviceId"],
            "issued": time.monotonic(),
            "used": False,
            "ended": None,
            "writers": set(),
        }
        port = arlo.config["rtsps_port"]
        return f"rtsp://127.0.0.1:{port}{mount}?egressToken={egress}"
    if "ipad" in agent or "mac" in agent:
        return f"https://127.0.0.1/hls{mount}/index.m3u8?egressToken={egress}"
    return f"https://127.0.0.1/dash{mount}/manifest.mpd?egressToken={egress}"


async def _snapshot_later(arlo: Arlo, camera_id: str) -> None:
    await asyncio.sleep(float(arlo.config.get("snapshot_delay_s", 0.2)))
    taken = datetime.now(UTC)
    name = f"{camera_id}-{secrets.token_hex(6)}.jpg"
    arlo.media[name] = (snapshot_jpeg(taken), taken.timestamp())
    url = (
        f"{arlo.urls['api']}/media/{name}?X-Amz-Expires=300&X-Amz-Signature={secrets.token_hex(16)}"
    )
    arlo.publish(
        {
            "resource": f"cameras/{camera_id}",
            "action": "fullFrameSnapshotAvailable",
            "from": camera_id,
            "properties": {"presignedFullFrameSnapshotUrl": url},
        }
    )


def _chunk(data: bytes) -> bytes:
    """``data`` as one chunk of a ``Transfer-Encoding: chunked`` body."""
    return b"%x\r\n%s\r\n" % (len(data), data)


async def subscribe(
    arlo: Arlo, request: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> int:
    """The event stream; returns the status it answered."""
    if not arlo.valid(request.headers.get("authorization", "")):
        await respond(writer, "401 Unauthorized", _failure("2015", "Your session has expired"))
        return 401
    # Chunked, as Arlo's front ends stream it: a client that reads the stream in fixed-size
    # pieces (pyaarlo's SSE reader asks for 1 024 bytes) gets each event as its chunk arrives.
    head = (
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
        "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    writer.write(head.encode())
    locked = arlo.locks > 0
    arlo.locks -= 1 if locked else 0
    queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
    if not locked:
        arlo.subscribers.append(queue)
        writer.write(_chunk(b'event: message\ndata: {"status": "connected"}\n\n'))
    try:
        gone = asyncio.ensure_future(reader.read(1))
        while True:
            got = asyncio.ensure_future(queue.get())
            done, _ = await asyncio.wait({gone, got}, return_when=asyncio.FIRST_COMPLETED)
            if gone in done:
                got.cancel()
                break
            event = got.result()
            writer.write(_chunk(f"event: message\ndata: {json.dumps(event)}\n\n".encode()))
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(ValueError):
            arlo.subscribers.remove(queue)
        writer.close()
    return 200


async def http_client(
    arlo: Arlo, host: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """One connection to one of the HTTP hosts (one request, then closed); logged as
    ``connect`` and ``closed`` around the request (the backdoor's own connections are not)."""
    peer = writer.get_extra_info("peername")
    client = f"{host}:{peer[0]}:{peer[1]}" if peer else host
    try:
        request = await read_request(reader)
    except (asyncio.IncompleteReadError, ValueError, ConnectionError):
        writer.close()
        return
    if host == "api" and request.path.startswith("/_sim/"):
        with contextlib.suppress(ConnectionError, OSError):
            status, body, headers = backdoor(arlo, request)
            await respond(writer, status, body, {"Content-Type": "application/json", **headers})
        return
    arlo.connection(host, "connect", client)
    try:
        if host in ("events", "api") and request.path == "/hmsweb/client/subscribe":
            # Arlo serves its event stream on the API host; ``events`` is a host of its own
            # here so a test can tell the adapter uses the events_base_url setting.
            arlo.record(host, request, 200, client)
            await subscribe(arlo, request, reader, writer)
            return
        handler = auth_host if host == "auth" else api_host
        status, body, headers = await handler(arlo, request)
        if host == "events":
            status, body, headers = "404 Not Found", b"{}", {}
        arlo.record(host, request, int(status.split()[0]), client)
        await respond(writer, status, body, {"Content-Type": "application/json", **headers})
    except (ConnectionError, OSError):
        writer.close()
    finally:
        arlo.connection(host, "closed", client)


def backdoor(arlo: Arlo, request: Request) -> tuple[str, bytes, dict[str, str]]:
    """The test's side door (module docstring)."""
    body = json.loads(request.body) if request.body else {}
    name = request.path.removeprefix("/_sim/")
    if name == "log":
        return OK, _json(arlo.log), {}
    if name == "otp":
        return OK, _json({"otp": arlo.last_otp}), {}
    if name == "approve":
        for pending in arlo.pending.values():
            pending["approved"] = True
        return OK, _json({}), {}
    if name == "link":
        device_id = f"sim-{secrets.token_hex(8)}"
        trust = secrets.token_urlsafe(16)
        arlo.trusted[device_id] = trust
        token = arlo.issue(complete=True)
        return (
            OK,
            _json(
                {
                    "token": token,
                    "user_id": arlo.user,
                    "expires_at": arlo.tokens[token]["expires"],
                    "device_id": device_id,
                    "cookies": {f"browser_trust_{device_id[:8]}": trust},
                }
            ),
            {},
        )
    if name == "expire":
        for info in arlo.tokens.values():
            info["expires"] = 0.0
        return OK, _json({}), {}
    if name == "lock":
        arlo.locks = int(body.get("count", 1))
        arlo.subscribers.clear()  # the streams open now go silent too
        return OK, _json({}), {}
    if name == "fault":
        arlo.auth_fault = body.get("auth")
        return OK, _json({}), {}
    if name == "drop":
        arlo.offline |= set(body.get("devices", []))  # and it stays away (2059)
        for session in arlo.streams.values():
            if session["device"] in body.get("devices", []):
                arlo.end_stream(session, "dropped")
        return OK, _json({}), {}
    if name == "config":
        allowed = {"session_cap_s", "connect_window_s", "snapshot_delay_s"}
        arlo.config |= {k: float(v) for k, v in body.items() if k in allowed}
        return OK, _json({}), {}
    if name == "offline":
        arlo.offline = set(body.get("devices", []))
        return OK, _json({}), {}
    if name == "state":
        state = {
            token[:8]: {k: v for k, v in s.items() if k != "writers"} | {"open": len(s["writers"])}
            for token, s in arlo.streams.items()
        }
        return OK, _json(state), {}
    return "404 Not Found", b"{}", {}


async def rtsps_client(
    arlo: Arlo, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """One RTSPS connection: check the egress token of its first request, then relay to
    GStreamer's RTSP server until either side closes or the session ends."""
    peer = writer.get_extra_info("peername")
    client = f"{peer[0]}:{peer[1]}" if peer else "?"
    client = f"rtsps:{client}"
    arlo.log.append({"at": time.monotonic(), "host": "rtsps", "kind": "connect", "client": client})
    session: dict[str, Any] | None = None
    try:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            return
        line = head.split(b"\r\n", 1)[0].decode("latin-1")
        parts = line.split(" ")
        url = parts[1] if len(parts) == 3 else ""
        token = (parse_qs(urlsplit(url).query).get("egressToken") or [""])[0]
        session = arlo.streams.get(token)
        window = float(arlo.config.get("connect_window_s", 30))
        fresh = session is not None and (
            session["used"] or time.monotonic() - session["issued"] <= window
        )
        if session is None or session["ended"] or not fresh:
            cseq = next(
                (
                    h.split(b":", 1)[1].strip()
                    for h in head.split(b"\r\n")
                    if h.lower().startswith(b"cseq")
                ),
                b"1",
            )
            writer.write(b"RTSP/1.0 401 Unauthorized\r\nCSeq: " + cseq + b"\r\n\r\n")
            await writer.drain()
            return
        session["used"] = True
        session["writers"].add(writer)
        arlo.log.append(
            {
                "at": time.monotonic(),
                "host": "rtsps",
                "kind": "play",
                "client": client,
                "camera": session["device"],
                "media": True,
            }
        )
        backend = arlo.config["backend"]
        up_reader, up_writer = await asyncio.open_connection(backend[0], backend[1])
        up_writer.write(head)

        async def copy(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError, OSError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(copy(reader, up_writer), copy(up_reader, writer))
    except (ConnectionError, OSError, ssl.SSLError):
        pass
    finally:
        if session is not None:
            session["writers"].discard(writer)
        writer.close()
        arlo.log.append(
            {"at": time.monotonic(), "host": "rtsps", "kind": "closed", "client": client}
        )


async def cap_streams(arlo: Arlo) -> None:
    """End every stream session ``session_cap_s`` after its startStream."""
    cap = float(arlo.config.get("session_cap_s", 1800))
    while True:
        await asyncio.sleep(0.1)
        now = time.monotonic()
        for session in arlo.streams.values():
            if not session["ended"] and now - session["issued"] >= cap:
                arlo.end_stream(session, "cap")


async def main() -> None:
    """Start the hosts, print READY, run until stdin closes."""
    config = json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))  # noqa: ASYNC240
    arlo = Arlo(config)
    servers = {}
    for host in ("auth", "api", "events"):
        servers[host] = await asyncio.start_server(
            functools.partial(http_client, arlo, host), "127.0.0.1", 0
        )
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(config["cert_file"], config["key_file"])
    rtsps = await asyncio.start_server(
        functools.partial(rtsps_client, arlo), "127.0.0.1", 0, ssl=tls
    )
    arlo.config["rtsps_port"] = rtsps.sockets[0].getsockname()[1]
    for host, server in servers.items():
        arlo.urls[host] = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    capper = asyncio.ensure_future(cap_streams(arlo))
    print(
        "READY",
        arlo.urls["auth"],
        arlo.urls["api"],
        arlo.urls["events"],
        arlo.config["rtsps_port"],
        flush=True,
    )
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)
    capper.cancel()
    for server in (*servers.values(), rtsps):
        server.close()


if __name__ == "__main__":
    asyncio.run(main())
