"""The simulated Wyze cloud: a real HTTP server on loopback, run as its own process.

``python -m camgate_wyze.testing.server CONFIG.json`` writes the event clips, then prints
``READY <base url> <signalling websocket base>``; it stops when its stdin closes. It speaks,
as docs/wyze.md describes:

- ``POST /api/user/login`` (auth host): ``keyid``/``apikey``/``x-api-key`` headers checked
  (401 otherwise), the triple-MD5 password (400 ``UserNamePasswordError``), a second factor
  when configured (``totp``: ``mfa_options`` + ``mfa_details.totp_apps``; ``sms``:
  ``sms_session_id``, then ``POST /user/login/sendSmsCode`` gives the session the code is
  checked against), and a login rate limit: an attempt sooner than ``login_interval_s`` after
  the previous one is answered 429.
- the classic API (``POST /app/...``, JSON envelope with ``sc``, the endpoint's ``sv`` and the
  access token): ``refresh_token``, ``v2/home_page/get_object_list`` (cameras and a plug),
  ``v2/device/get_event_list`` (``count`` ≤ 20, newest first). Replies are
  ``{"code", "msg", "data"}``: code 2001 for an expired or unknown access token, 2002 for an
  unknown refresh token. Every reply carries ``X-RateLimit-Remaining`` and
  ``X-RateLimit-Reset-By`` (JavaScript date text); a spent quota is answered 429.
- ``GET /signaling/device/<mac>`` (bearer token): ``{"results": {"signalingUrl", "servers"}}``,
  the signalling URL a websocket of this process speaking KVS messages (:func:`serve_ws`).
- ``GET /media/<event>.mp4``: the event's clip (H.264, 10 fps, a keyframe a second, the picture
  clock burnt in); ``/media/away.mp4`` redirects to another host.

The backdoor (never used by the adapter): ``GET /_sim/log`` (every request: ``at``
(``time.monotonic()``), ``client``, ``kind``, ``camera`` (a MAC), ``media``, ``status``,
``code``; never a token), ``POST /_sim/issue`` (a token pair, as a login gives),
``POST /_sim/expire`` (every access token expires now), ``POST /_sim/quota``
(``{"remaining": N, "reset_in_s": S}``).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import secrets
import sys
import time
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import av
from camgate.testing import draw_picture_clock
from camgate.testing.webrtc import Request, read_request, respond, sdp_candidates, start_session

from camgate_wyze.client import APP_API_KEY, SC, SV

STATUS_TEXT = {200: "OK", 302: "Found", 400: "Bad Request", 401: "Unauthorized",
               404: "Not Found", 429: "Too Many Requests"}  # fmt: skip
_FPS = 10


def write_clip(path: Path, started: datetime, seconds: float, size: tuple[int, int]) -> None:
    """An MP4 event clip: H.264 at 10 fps, a keyframe a second, each picture's capture time
    (``started`` + its media time) burnt in as the picture clock."""
    import numpy as np

    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=_FPS)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.codec_context.gop_size = _FPS
        stream.codec_context.max_b_frames = 0
        stream.codec_context.options = {"preset": "ultrafast"}
        for i in range(round(seconds * _FPS)):
            luma = np.full((size[1], size[0]), 80 + (i * 7) % 100, dtype=np.uint8)
            draw_picture_clock(luma, started + timedelta(seconds=i / _FPS))
            yuv = np.concatenate(
                [luma, np.full((size[1] // 2, size[0]), 128, dtype=np.uint8)], axis=0
            )
            frame = av.VideoFrame.from_ndarray(yuv, format="yuv420p")
            frame.pts = i
            frame.time_base = Fraction(1, _FPS)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def _md5x3(text: str) -> str:
    for _ in range(3):
        text = hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()
    return text


def _js_date(at: datetime) -> str:
    return at.strftime("%a %b %d %Y %H:%M:%S GMT+0000 (Coordinated Universal Time)")


class Wyze:
    """The simulated account, its tokens, events and what was asked of it."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.access: dict[str, float] = {}  # access token -> expiry (time.time())
        self.refresh: set[str] = set()
        self.last_login: float | None = None
        self.sms_sessions: set[str] = set()
        self.log: list[dict[str, Any]] = []
        self.remaining = int(config.get("quota", 300))
        self.reset_at = datetime.now(UTC) + timedelta(seconds=3600)
        self.base = ""
        self.ws_base = ""

    def issue(self) -> dict[str, Any]:
        """A new token pair."""
        access, refresh = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        self.access[access] = time.time() + float(self.config.get("access_ttl_s", 7200))
        self.refresh.add(refresh)
        return {"access_token": access, "refresh_token": refresh, "user_id": "sim-user"}

    # ------------------------------------------------------------------ auth host
    def login(self, request: Request) -> tuple[int, dict[str, Any]]:
        c, h = self.config, request.headers
        if (h.get("keyid"), h.get("apikey"), h.get("x-api-key")) != (
            c["key_id"], c["api_key"], APP_API_KEY,
        ):  # fmt: skip
            return 401, {"errorCode": 1001, "description": "InvalidApiKey"}
        now = time.monotonic()
        if self.last_login is not None and now - self.last_login < c["login_interval_s"]:
            self.last_login = now
            return 429, {"errorCode": 1003, "description": "TooManyLoginAttempts"}
        self.last_login = now
        body = json.loads(request.body or b"{}")
        if body.get("email") != c["email"] or body.get("password") != _md5x3(c["password"]):
            return 400, {"errorCode": 1000, "description": "UserNamePasswordError"}
        mfa = c.get("mfa")
        kind = body.get("mfa_type")
        if mfa is None:
            return 200, self.issue()
        if kind is None:
            if mfa == "totp":
                return 200, {
                    "access_token": "",
                    "mfa_options": ["TotpVerificationCode"],
                    "mfa_details": {"totp_apps": [{"app_id": "totp-app-1", "app_name": "x"}]},
                }
            return 200, {
                "access_token": "",
                "mfa_options": ["PrimaryPhone"],
                "sms_session_id": "sms-session",
                "user_id": "sim-user",
            }
        ok = body.get("verification_code") == c["code"] and (
            (kind == "TotpVerificationCode" and body.get("verification_id") == "totp-app-1")
            or (kind == "PrimaryPhone" and body.get("verification_id") in self.sms_sessions)
        )
        if not ok:
            return 400, {"errorCode": 1007, "description": "VerificationCodeError"}
        return 200, self.issue()

    def send_sms(self, request: Request) -> tuple[int, dict[str, Any]]:
        query = parse_qs(request.query)
        if query.get("sessionId") != ["sms-session"]:
            return 400, {"errorCode": 1008, "description": "bad session"}
        session = secrets.token_hex(8)
        self.sms_sessions.add(session)
        return 200, {"session_id": session}

    # ------------------------------------------------------------------ classic API
    def api(self, request: Request) -> tuple[int, dict[str, Any]]:
        body = json.loads(request.body or b"{}")
        path = request.path
        if body.get("sc") != SC or body.get("sv") != SV.get(path):
            return 200, {"code": "1002", "msg": "ParameterError", "data": None}
        if path == "/app/user/refresh_token":
            if body.get("refresh_token") not in self.refresh:
                return 200, {"code": "2002", "msg": "RefreshTokenError", "data": None}
            return 200, {"code": "1", "msg": "", "data": self.issue()}
        if self.access.get(body.get("access_token", ""), 0.0) <= time.time():
            return 200, {"code": "2001", "msg": "AccessTokenError", "data": None}
        if path == "/app/v2/home_page/get_object_list":
            return 200, {"code": "1", "msg": "", "data": {"device_list": self.devices()}}
        if path == "/app/v2/device/get_event_list":
            return 200, {"code": "1", "msg": "", "data": {"event_list": self.events(body)}}
        return 404, {"code": "404", "msg": "no such endpoint"}

    def devices(self) -> list[dict[str, Any]]:
        """``device_list``: the cameras, and a plug (not a camera) the adapter must skip."""
        cams = [
            {
                "mac": cam["mac"],
                "nickname": cam["nickname"],
                "product_model": cam["model"],
                "product_type": "Camera",
                "conn_state": 1 if cam.get("online", True) else 0,
                "firmware_ver": "4.36.14.3497",
                "device_params": {},
            }
            for cam in self.config["cameras"]
        ]
        plug = {"mac": "7C78B2000001", "product_type": "Plug", "product_model": "WLPP1"}
        return [*cams, plug]

    def events(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        """Events of the asked cameras inside ``[begin_time, end_time]``, newest first, at
        most ``count`` (never more than 20)."""
        macs = set(body.get("device_mac_list") or [])
        begin, end = int(body.get("begin_time", 0)), int(body.get("end_time", 0))
        count = min(int(body.get("count", 20)), 20)
        chosen = sorted(
            (e for e in self.config["events"] if e["mac"] in macs and begin <= e["ts_ms"] <= end),
            key=lambda e: -e["ts_ms"],
        )[:count]
        return [
            {
                "event_id": e["event_id"],
                "device_mac": e["mac"],
                "event_ts": e["ts_ms"],
                "event_category": 1,
                "file_list": [
                    {"type": 1, "url": f"{self.base}/media/{e['event_id']}.jpg"},
                    {"type": 2, "url": f"{self.base}/media/{e['file']}"},
                ],
            }
            for e in chosen
        ]

    def rate_headers(self) -> dict[str, str]:
        """The rate-limit headers, the quota spent by one request (reset when due)."""
        now = datetime.now(UTC)
        if now >= self.reset_at:
            self.remaining = int(self.config.get("quota", 300))
            self.reset_at = now + timedelta(seconds=3600)
        self.remaining -= 1
        return {
            "X-RateLimit-Remaining": str(max(self.remaining, 0)),
            "X-RateLimit-Reset-By": _js_date(self.reset_at),
        }


def _json(value: Any) -> bytes:
    return json.dumps(value).encode()


async def handle(wyze: Wyze, request: Request) -> tuple[int, bytes, dict[str, str]]:
    """One request to the simulated cloud (backdoor included)."""
    plain = {"Content-Type": "application/json"}
    path = request.path
    if path == "/api/user/login" and request.method == "POST":
        status, value = wyze.login(request)
        return status, _json(value), plain
    if path == "/user/login/sendSmsCode" and request.method == "POST":
        status, value = wyze.send_sms(request)
        return status, _json(value), plain
    if path.startswith("/app/") and request.method == "POST":
        headers = plain | wyze.rate_headers()
        if wyze.remaining < 0:
            return 429, _json({"code": "429", "msg": "rate limited"}), headers
        status, value = wyze.api(request)
        return status, _json(value), headers
    if path.startswith("/signaling/device/") and request.method == "GET":
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        if wyze.access.get(token, 0.0) <= time.time():
            return 401, _json({"message": "Unauthorized"}), plain
        mac = path.rsplit("/", 1)[1]
        url = f"{wyze.ws_base}/{mac}?X-Amz-Signature={secrets.token_hex(16)}"
        return 200, _json({"results": {"signalingUrl": url, "servers": []}}), plain
    if path == "/media/away.mp4":
        return 302, b"", {"Location": "http://192.0.2.1/media/ev1.mp4"}
    if path.startswith("/media/") and path.endswith(".mp4"):
        clip = Path(wyze.config["clip_dir"]) / path.removeprefix("/media/")
        if "/" in path.removeprefix("/media/") or not clip.is_file():
            return 404, b"", {}
        return 200, clip.read_bytes(), {"Content-Type": "video/mp4"}
    if path == "/_sim/log":
        return 200, _json(wyze.log), plain
    if path == "/_sim/issue" and request.method == "POST":
        return 200, _json(wyze.issue()), plain
    if path == "/_sim/expire" and request.method == "POST":
        wyze.access = {token: 0.0 for token in wyze.access}
        return 200, b"{}", plain
    if path == "/_sim/quota" and request.method == "POST":
        value = json.loads(request.body)
        wyze.remaining = int(value["remaining"])
        wyze.reset_at = datetime.now(UTC) + timedelta(seconds=float(value["reset_in_s"]))
        return 200, b"{}", plain
    return 404, b"", {}


def _kind(request: Request) -> tuple[str, str | None, bool]:
    """The log's ``kind``, ``camera`` and ``media`` of a request."""
    path = request.path
    if path.startswith("/media/"):
        name = path.removeprefix("/media/")
        return "clip", name.split("-", 1)[0] if "-" in name else None, True
    if path.startswith("/signaling/device/"):
        return "signaling", path.rsplit("/", 1)[-1], True
    kind = path.rsplit("/", 1)[-1] or path
    camera = None
    if path.endswith("get_event_list"):
        with contextlib.suppress(ValueError, TypeError, IndexError):
            camera = json.loads(request.body)["device_mac_list"][0]
        return kind, camera, True
    return kind, camera, False


def _b64(value: dict[str, Any]) -> str:
    return base64.b64encode(json.dumps(value).encode()).decode()


async def serve_ws(wyze: Wyze, config: dict[str, Any]) -> Any:
    """The KVS-style signalling websocket: an ``SDP_OFFER`` is answered (``SDP_ANSWER``) by an
    aiortc peer sending H.264 with a frame counter in the picture (a keyframe every
    ``keyframe_interval`` s); an offline camera gets a ``STATUS_RESPONSE`` 400. When the
    viewer's peer connection closes, ``session-closed`` is logged; when the websocket closes,
    ``closed``, and the peer is closed too."""
    from websockets.asyncio.server import serve

    offline = {c["mac"] for c in config["cameras"] if not c.get("online", True)}

    def note(client: str, kind: str, camera: str | None, media: bool = False, **more: Any) -> None:
        wyze.log.append(
            {"at": time.monotonic(), "client": client, "kind": kind, "camera": camera,
             "media": media, "status": None, "code": None, **more}
        )  # fmt: skip

    async def handler(socket: Any) -> None:
        peer = socket.remote_address
        client = f"ws {peer[0]}:{peer[1]}"
        mac = socket.request.path.split("?", 1)[0].strip("/")
        note(client, "connect", None)
        sessions = []
        try:
            async for text in socket:
                message = json.loads(text)
                if message.get("action") != "SDP_OFFER":
                    continue
                note(client, "sdp_offer", mac, media=True)
                if mac in offline:
                    status = {"statusCode": "400", "description": "device offline"}
                    await socket.send(
                        json.dumps({"messageType": "STATUS_RESPONSE", "statusResponse": status})
                    )
                    continue
                offer = json.loads(base64.b64decode(message["messagePayload"]))["sdp"]
                session, answer = await start_session(
                    offer, interval=float(config.get("keyframe_interval", 2.0)), join_delay=0.2
                )
                sessions.append(session)

                @session.pc.on("connectionstatechange")
                def _closed(s: Any = session) -> None:
                    if s.pc.connectionState in ("closed", "failed"):
                        note(client, "session-closed", mac)

                # Where the viewer will send (the conformance target declares these).
                note(client, "sdp_answer", mac, candidates=sdp_candidates(answer))
                payload = _b64({"type": "answer", "sdp": answer})
                await socket.send(
                    json.dumps({"messageType": "SDP_ANSWER", "messagePayload": payload})
                )
        except Exception:  # noqa: S110 - a viewer gone mid-message: log the close
            pass
        finally:
            note(client, "closed", None)
            for session in sessions:
                await session.pc.close()

    return await serve(handler, "127.0.0.1", 0)


async def main(config: dict[str, Any]) -> None:
    wyze = Wyze(config)

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted = time.monotonic()
        peer = writer.get_extra_info("peername")
        client = f"{peer[0]}:{peer[1]}"
        logged = False

        def note(kind: str, at: float) -> None:
            wyze.log.append(
                {"at": at, "client": client, "kind": kind, "camera": None, "media": False,
                 "status": None, "code": None}
            )  # fmt: skip

        try:
            with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
                request = await read_request(reader)
                if not request.path.startswith("/_sim/"):
                    # The backdoor's own connections are not the adapter's: left out.
                    note("connect", accepted)
                    logged = True
                status, body, headers = await handle(wyze, request)
                if logged:
                    kind, camera, media = _kind(request)
                    code = None
                    if request.path.startswith("/app/") and status == 200:
                        code = json.loads(body).get("code")
                    wyze.log.append(
                        {
                            "at": time.monotonic(),
                            "client": client,
                            "kind": kind,
                            "camera": camera,
                            "media": media,
                            "status": status,
                            "code": code,
                        }
                    )
                await respond(
                    writer, f"{status} {STATUS_TEXT.get(status, 'Status')}", body, headers
                )
        finally:
            if logged:
                note("closed", time.monotonic())

    for event in config["events"]:
        started = datetime.fromtimestamp(event["ts_ms"] / 1000, UTC)
        clip = Path(config["clip_dir"]) / event["file"]
        if not clip.exists():
            write_clip(clip, started, float(config.get("clip_seconds", 4.0)), (320, 240))
    ws_server = await serve_ws(wyze, config)
    wyze.ws_base = f"ws://127.0.0.1:{ws_server.sockets[0].getsockname()[1]}"
    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    wyze.base = f"http://127.0.0.1:{port}"
    print(f"READY {wyze.base} {wyze.ws_base}", flush=True)
    loop = asyncio.get_running_loop()
    stdin_closed = loop.run_in_executor(None, sys.stdin.read)
    async with server:
        await asyncio.wait(
            [asyncio.ensure_future(server.serve_forever()), stdin_closed],
            return_when=asyncio.FIRST_COMPLETED,
        )


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main(json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))))
    sys.exit(0)
