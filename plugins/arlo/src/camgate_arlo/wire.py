"""Arlo's wire formats, sans I/O: every parser of what Arlo's hosts send (fuzzed in
``tests/test_wire.py``).

What they promise: each takes untrusted bytes or decoded JSON and returns a typed value, or
raises :class:`~camgate.errors.CameraProtocolError` (or, for Arlo's own error codes, the
:class:`~camgate.errors.AdapterError` subclass :func:`arlo_error` maps them to) whose message
carries no token and no more than a short, printable excerpt of Arlo's text. Nothing here
keeps more than :data:`MAX_BODY` bytes.

Arlo's replies come in two envelopes: ``{"success": bool, "data": ...}`` (the API host) and
``{"meta": {"code": 200, "error": N, "message": ...}, "data": ...}`` (the login host).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs, urlsplit

import attrs
from camgate.errors import AdapterError, CameraAuthError, CameraProtocolError, CameraUnreachable

__all__ = [
    "BROWSER_UNTRUSTED",
    "CAMERA_TYPES",
    "DEVICE_OFFLINE",
    "FACTOR_INVALID",
    "MAX_BODY",
    "ArloDevice",
    "Factor",
    "LibraryItem",
    "Reply",
    "SseDecoder",
    "arlo_error",
    "AuthData",
    "egress_token",
    "parse_auth",
    "parse_event",
    "parse_devices",
    "parse_factors",
    "parse_library",
    "parse_reply",
    "parse_snapshot_event",
    "parse_stream_url",
]

#: The largest reply body the parsers read (Arlo's JSON documents are small).
MAX_BODY = 4 * 1024 * 1024
#: The longest line an event stream may send before it is a protocol error.
MAX_EVENT_LINE = 256 * 1024
#: "Browser is not trusted": the client skipped pairing (or its trust was withdrawn).
BROWSER_UNTRUSTED = 9204
#: "Invalid factor data": a wrong or expired one-time code.
FACTOR_INVALID = 9261
#: The device is offline.
DEVICE_OFFLINE = 2059


def _short(value: object, limit: int = 80) -> str:
    text = value if isinstance(value, str) else ""
    return "".join(ch if ch.isprintable() else " " for ch in text)[:limit]


@attrs.frozen
class Reply:
    """One Arlo reply: ``ok`` when it says success; ``data`` its payload; ``error`` Arlo's
    numeric error code when it gives one; ``message`` Arlo's text, printable and short."""

    ok: bool
    data: Any
    error: int | None = None
    message: str = ""


def _code(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit() and len(value) < 10:
        return int(value)
    return None


def parse_reply(content: bytes, where: str) -> Reply:
    """Arlo's reply envelope (either shape); CameraProtocolError when it is neither."""
    try:
        body = json.loads(content[:MAX_BODY])
    except (ValueError, UnicodeDecodeError):
        raise CameraProtocolError(f"{where}: Arlo's reply is not JSON") from None
    if not isinstance(body, Mapping):
        raise CameraProtocolError(f"{where}: Arlo's reply is not a JSON object")
    data = body.get("data")
    if "meta" in body:
        meta = body["meta"]
        if not isinstance(meta, Mapping):
            raise CameraProtocolError(f"{where}: Arlo's reply has a malformed meta")
        code = _code(meta.get("code"))
        ok = code == 200
        error = None if ok else _code(meta.get("error")) or code
        return Reply(ok, data, error, _short(meta.get("message")))
    if "success" in body:
        success = body["success"]
        if not isinstance(success, bool):
            raise CameraProtocolError(f"{where}: Arlo's reply has a malformed success")
        if success:
            return Reply(True, data)
        detail = data if isinstance(data, Mapping) else {}
        return Reply(False, data, _code(detail.get("error")), _short(detail.get("message")))
    raise CameraProtocolError(f"{where}: Arlo's reply has neither success nor meta")


def arlo_error(reply: Reply, where: str) -> AdapterError:
    """The camgate error for a failed reply: 9204 and 9261 are CameraAuthError (saying what
    to do), 2059 CameraUnreachable, anything else an AdapterError naming Arlo's code."""
    said = f" ({reply.message})" if reply.message else ""
    if reply.error == BROWSER_UNTRUSTED:
        return CameraAuthError(
            f"{where}: Arlo does not trust this client (9204{said}); link the account again "
            "with `camgate arlo link` so it is paired"
        )
    if reply.error == FACTOR_INVALID:
        return CameraAuthError(
            f"{where}: Arlo refused the verification code (9261{said}); ask for a new one"
        )
    if reply.error == DEVICE_OFFLINE:
        return CameraUnreachable(f"{where}: the Arlo device is offline (2059{said})")
    code = "no code" if reply.error is None else str(reply.error)
    return AdapterError(f"{where}: Arlo refused the request ({code}{said})")


def _text(value: object, what: str, where: str, limit: int = 4096) -> str:
    if not isinstance(value, str) or not value or len(value) > limit:
        raise CameraProtocolError(f"{where}: Arlo's {what} is missing or malformed")
    return value


def _token(value: object, where: str) -> str:
    token = _text(value, "token", where)
    if not all(0x21 <= ord(ch) <= 0x7E for ch in token):
        raise CameraProtocolError(f"{where}: Arlo's token is malformed")
    return token


@attrs.frozen
class AuthData:
    """What a login step answered: the token, the user id, ``expiresIn`` as Arlo gave it (a
    lifetime in seconds, or an expiry in UNIX seconds or milliseconds: see
    :func:`camgate_arlo.client.expiry`), whether the login is complete, and the browser code
    (``finishAuth``'s, for pairing)."""

    token: str = attrs.field(repr=False)
    user_id: str
    expires_in: float
    completed: bool
    browser_code: str | None = attrs.field(default=None, repr=False)


def parse_auth(data: Any, where: str) -> AuthData:
    """The ``data`` of ``/api/auth``, ``startAuth`` (trusted) or ``finishAuth``: a token, the
    user id, ``expiresIn`` and ``authCompleted`` (an ``accessToken`` level is unwrapped)."""
    if isinstance(data, Mapping) and isinstance(data.get("accessToken"), Mapping):
        data = data["accessToken"]
    if not isinstance(data, Mapping):
        raise CameraProtocolError(f"{where}: Arlo's login reply is not an object")
    token = _token(data.get("token"), where)
    user = _text(data.get("userId"), "user id", where, 256)
    raw = data.get("expiresIn", 3600)
    if isinstance(raw, bool) or not isinstance(raw, int | float | str):
        raise CameraProtocolError(f"{where}: Arlo's token lifetime is malformed")
    try:
        expires = float(raw)
    except ValueError:
        raise CameraProtocolError(f"{where}: Arlo's token lifetime is malformed") from None
    if not math.isfinite(expires) or expires <= 0:
        raise CameraProtocolError(f"{where}: Arlo's token lifetime is malformed")
    completed = data.get("authCompleted", True)
    browser = data.get("browserAuthCode")
    return AuthData(
        token,
        user,
        expires,
        completed is not False,
        browser if isinstance(browser, str) and browser else None,
    )


@attrs.frozen
class Factor:
    """One second factor the account has: ``factor_id``, ``kind`` (``EMAIL``, ``SMS``,
    ``PUSH``…, upper case) and ``name`` (what Arlo shows, e.g. a masked address)."""

    factor_id: str
    kind: str
    name: str


def parse_factors(data: Any, where: str) -> list[Factor]:
    """``getFactors``' ``data.items``; entries without an id or type are skipped."""
    items = data.get("items") if isinstance(data, Mapping) else None
    if not isinstance(items, list):
        raise CameraProtocolError(f"{where}: Arlo's factor list is malformed")
    factors = []
    for item in items:
        if not isinstance(item, Mapping):
            continue
        factor_id, kind = item.get("factorId"), item.get("factorType")
        if not isinstance(factor_id, str) or not factor_id or not isinstance(kind, str):
            continue
        name = item.get("displayName") or item.get("factorNickname") or kind
        factors.append(Factor(factor_id[:256], kind.upper()[:32], _short(name)))
    return factors


#: The device types that are cameras (a doorbell has a camera); base stations carry none.
CAMERA_TYPES = frozenset({"camera", "doorbell", "arloq", "arloqs"})


@attrs.frozen
class ArloDevice:
    """One device of the account: ``device_id`` (a camera's is its ``Camera.source``),
    ``name``, ``device_type`` (``basestation``, ``camera``, ``doorbell``…), ``parent_id`` (the
    base station it answers through; itself for a camera that connects on its own),
    ``xcloud_id`` (sent as the ``xcloudId`` header), ``model_id`` and ``state``
    (``provisioned``…)."""

    device_id: str
    name: str
    device_type: str
    parent_id: str
    xcloud_id: str
    model_id: str
    state: str

    @property
    def is_camera(self) -> bool:
        """True for a device with a camera (camera, doorbell, Arlo Q)."""
        return self.device_type in CAMERA_TYPES


def parse_devices(data: Any, where: str) -> list[ArloDevice]:
    """``GET /hmsweb/v2/users/devices``' ``data``: a list of devices; entries without a
    device id are skipped, other fields default to the empty string (``parentId`` to the
    device itself)."""
    if not isinstance(data, list):
        raise CameraProtocolError(f"{where}: Arlo's device list is not a list")
    devices = []
    for item in data:
        if not isinstance(item, Mapping):
            continue
        device_id = item.get("deviceId")
        if not isinstance(device_id, str) or not device_id or len(device_id) > 256:
            continue

        def field(key: str, item: Mapping[str, Any] = item) -> str:
            value = item.get(key)
            return value[:256] if isinstance(value, str) else ""

        devices.append(
            ArloDevice(
                device_id=device_id,
                name=_short(item.get("deviceName"), 128),
                device_type=field("deviceType").lower(),
                parent_id=field("parentId") or device_id,
                xcloud_id=field("xCloudId"),
                model_id=field("modelId"),
                state=field("state"),
            )
        )
    return devices


def parse_stream_url(data: Any, where: str) -> str:
    """``startStream``'s ``data.url``: an ``rtsp://`` or ``rtsps://`` URL with a host (Arlo
    writes ``rtsp://…:443/…?egressToken=…`` for what is RTSP over TLS);
    CameraProtocolError otherwise (an HLS or DASH URL means the User-Agent was not one Arlo
    answers with RTSPS for)."""
    url = data.get("url") if isinstance(data, Mapping) else None
    if not isinstance(url, str) or not url or len(url) > 4096:
        raise CameraProtocolError(f"{where}: Arlo's startStream reply has no URL")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (validates the port)
    except ValueError:
        raise CameraProtocolError(f"{where}: Arlo's stream URL does not parse") from None
    if parts.scheme.lower() not in ("rtsp", "rtsps"):
        raise CameraProtocolError(
            f"{where}: Arlo answered a {_short(parts.scheme, 16) or 'schemeless'} stream, not "
            "RTSP (the User-Agent setting picks the format)"
        )
    if not parts.hostname or parts.username is not None or parts.password is not None:
        raise CameraProtocolError(f"{where}: Arlo's stream URL has no host")
    if any(ch.isspace() for ch in url):
        raise CameraProtocolError(f"{where}: Arlo's stream URL is malformed")
    return url


@attrs.frozen
class LibraryItem:
    """One recording of the library: ``device_id``, ``created_ms`` (``utcCreatedDate``, UNIX
    milliseconds), ``duration_s``, ``content_type`` and ``url`` (the presigned MP4, a
    secret: it carries the signature)."""

    device_id: str
    created_ms: int
    duration_s: float
    content_type: str
    url: str = attrs.field(repr=False)


def parse_library(data: Any, where: str) -> list[LibraryItem]:
    """``POST /hmsweb/users/library``'s ``data``: a list of recordings; entries without a
    device id, a creation time, a positive duration or a URL are skipped."""
    if not isinstance(data, list):
        raise CameraProtocolError(f"{where}: Arlo's library is not a list")
    items = []
    for item in data:
        if not isinstance(item, Mapping):
            continue
        device, created = item.get("deviceId"), item.get("utcCreatedDate")
        duration, url = item.get("mediaDurationSecond"), item.get("presignedContentUrl")
        kind = item.get("contentType")
        if not isinstance(device, str) or not device or len(device) > 256:
            continue
        if isinstance(created, bool) or not isinstance(created, int) or created <= 0:
            continue
        if isinstance(duration, bool) or not isinstance(duration, int | float):
            continue
        if not math.isfinite(duration) or not 0 < duration <= 86_400:
            continue
        if not isinstance(url, str) or not url or len(url) > 8192:
            continue
        items.append(
            LibraryItem(
                device, created, float(duration), kind if isinstance(kind, str) else "", url
            )
        )
    return items


def parse_event(text: str) -> Mapping[str, Any] | None:
    """One event's JSON object (an SSE ``data`` field), None when it is not an object."""
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, Mapping) else None


def parse_snapshot_event(event: Mapping[str, Any], device_id: str) -> str | None:
    """The presigned image URL when ``event`` announces a full-frame snapshot of
    ``device_id`` (``resource: cameras/<id>``, ``presignedFullFrameSnapshotUrl`` in its
    properties), None for any other event."""
    if event.get("resource") != f"cameras/{device_id}":
        return None
    properties = event.get("properties")
    if not isinstance(properties, Mapping):
        return None
    url = properties.get("presignedFullFrameSnapshotUrl")
    if not isinstance(url, str) or not url or len(url) > 8192:
        return None
    return url


def egress_token(url: str) -> str | None:
    """The ``egressToken`` query parameter of a stream URL (a secret), None without one."""
    values = parse_qs(urlsplit(url).query).get("egressToken")
    return values[0] if values else None


class SseDecoder:
    """Server-sent events, incrementally: :meth:`feed` bytes as they arrive (cut anywhere)
    and get every event completed by them as its ``data`` text (multi-line data joined with
    ``\\n``); comments and other fields are dropped. A line longer than
    :data:`MAX_EVENT_LINE` is a CameraProtocolError, so memory stays bounded."""

    def __init__(self, where: str) -> None:
        self._where = where
        self._buffer = b""
        self._data: list[str] = []

    def feed(self, chunk: bytes) -> list[str]:
        """The events ``chunk`` completes, in order."""
        self._buffer += chunk
        events: list[str] = []
        while True:
            cut = self._buffer.find(b"\n")
            if cut < 0:
                break
            line, self._buffer = self._buffer[:cut], self._buffer[cut + 1 :]
            if line.endswith(b"\r"):
                line = line[:-1]
            if not line:
                if self._data:
                    events.append("\n".join(self._data))
                    self._data = []
                continue
            name, _, value = line.partition(b":")
            if name == b"data":
                text = value.removeprefix(b" ").decode("utf-8", "replace")
                if sum(len(d) for d in self._data) + len(text) > MAX_EVENT_LINE:
                    raise CameraProtocolError(f"{self._where}: an event is too long")
                self._data.append(text)
        if len(self._buffer) > MAX_EVENT_LINE:
            raise CameraProtocolError(f"{self._where}: an event line is too long")
        return events
