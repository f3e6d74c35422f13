"""Wyze's replies, read without I/O (every function here is fuzzed: tests/test_replies.py).

Each parser takes the bytes or the decoded JSON Wyze sent and returns typed values, or raises a
camgate error that names no token and quotes at most a short, scrubbed piece of the reply:

- the classic API's envelope ``{"code": "1", "msg", "data"}``: :func:`envelope_data` (code
  ``2001`` is :class:`TokenExpired`, the other auth codes CameraAuthError, anything else an
  AdapterError);
- the login reply: :func:`parse_login` (tokens, or the second factors the account asks for);
- ``get_object_list``: :func:`parse_devices` (cameras only);
- ``get_event_list``: :func:`parse_events`;
- the ``X-RateLimit-Reset-By`` header: :func:`parse_reset_by`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import attrs
from camgate.adapters import Secret
from camgate.errors import AdapterError, CameraAuthError, CameraProtocolError

__all__ = [
    "LoginReply",
    "TokenExpired",
    "WyzeDevice",
    "WyzeEvent",
    "envelope_data",
    "parse_devices",
    "parse_events",
    "parse_json",
    "parse_login",
    "parse_reset_by",
]

#: Envelope codes that mean the account's tokens are no good (2001: the access token expired,
#: answered by a refresh; the others: refresh token invalid or the login gone).
AUTH_CODES = frozenset({"2001", "2002", "2003", "2005"})
#: Longest piece of a reply quoted in an error.
QUOTE = 80
_TOKENISH = re.compile(r"[A-Za-z0-9_\-\.]{24,}")


class TokenExpired(CameraAuthError):
    """Wyze answered code 2001: the access token expired (the client refreshes and retries)."""


def _quote(text: object) -> str:
    """A short piece of vendor text for a message, long token-like runs cut out."""
    return _TOKENISH.sub("…", str(text))[:QUOTE]


def parse_json(body: bytes, where: str) -> Any:
    """``body`` as JSON; CameraProtocolError (quoting nothing of it) when it is not."""
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        raise CameraProtocolError(f"{where}: the reply is not JSON") from None


def _mapping(value: Any, where: str, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise CameraProtocolError(f"{where}: {what} is not a JSON object")
    return value


def envelope_data(body: bytes, where: str) -> Mapping[str, Any]:
    """The ``data`` of a classic-API reply whose ``code`` is ``"1"`` (``data`` null → ``{}``).

    Code 2001 → :class:`TokenExpired`; the other codes of :data:`AUTH_CODES` → CameraAuthError;
    any other code → AdapterError quoting ``msg`` (scrubbed, cut short); a body that is not the
    envelope → CameraProtocolError."""
    reply = _mapping(parse_json(body, where), where, "the reply")
    code = str(reply.get("code", ""))
    msg = _quote(reply.get("msg", ""))
    if code == "2001":
        raise TokenExpired(f"{where}: the access token expired (Wyze code 2001)")
    if code in AUTH_CODES:
        raise CameraAuthError(
            f"{where}: Wyze refused the account's tokens (code {code}: {msg}); "
            "link the account again (camgate wyze link)"
        )
    if code != "1":
        raise AdapterError(f"{where}: Wyze answered code {_quote(code)[:12]!r} ({msg})")
    data = reply.get("data")
    if data is None:
        return {}
    return _mapping(data, where, "the reply's data")


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


@attrs.frozen
class LoginReply:
    """What the login endpoint said: tokens (``access_token``/``refresh_token``, Secrets) or,
    when they are empty, the second factors the account asks for: ``mfa_options``
    (``"TotpVerificationCode"``, ``"PrimaryPhone"``), the authenticator app's id for TOTP
    (``totp_app_id``) and the session for an SMS code (``sms_session_id``)."""

    access_token: Secret = attrs.field(repr=False)
    refresh_token: Secret = attrs.field(repr=False)
    user_id: str = ""
    mfa_options: tuple[str, ...] = ()
    totp_app_id: str = ""
    sms_session_id: str = ""

    @property
    def needs_factor(self) -> bool:
        """True when Wyze asks for a second factor before it gives tokens."""
        return not self.access_token.reveal()


def parse_login(body: bytes, where: str) -> LoginReply:
    """The login endpoint's JSON reply (tokens or a second-factor challenge).

    A reply with neither tokens nor factors is CameraProtocolError; one with an ``errorCode``
    or ``description`` (a refused login) is CameraAuthError quoting its description."""
    reply = _mapping(parse_json(body, where), where, "the login reply")
    access, refresh = _text(reply.get("access_token")), _text(reply.get("refresh_token"))
    raw_options = reply.get("mfa_options")
    options = (
        tuple(o for o in raw_options if isinstance(o, str)) if isinstance(raw_options, list) else ()
    )
    if not access and not options:
        if "errorCode" in reply or "description" in reply:
            raise CameraAuthError(
                f"{where}: Wyze refused the login ({_quote(reply.get('description', ''))})"
            )
        raise CameraProtocolError(f"{where}: the login reply has neither tokens nor factors")
    if access and not refresh:
        raise CameraProtocolError(f"{where}: the login reply has no refresh token")
    details = reply.get("mfa_details")
    totp = ""
    if isinstance(details, Mapping):
        apps = details.get("totp_apps")
        if isinstance(apps, list) and apps and isinstance(apps[0], Mapping):
            totp = _text(apps[0].get("app_id"))
    return LoginReply(
        Secret(access),
        Secret(refresh),
        _text(reply.get("user_id")),
        options,
        totp,
        _text(reply.get("sms_session_id")),
    )


@attrs.frozen
class WyzeDevice:
    """One camera of the account: ``mac`` (Wyze's device id), ``nickname``, ``model``
    (``product_model``, e.g. ``WYZE_CAKP2JFUS`` for a v3), ``online`` (``conn_state`` 1) and
    ``firmware``."""

    mac: str
    nickname: str
    model: str
    online: bool
    firmware: str = ""


def _devices_list(data: Mapping[str, Any], where: str) -> list[Any]:
    devices = data.get("device_list", [])
    if not isinstance(devices, list):
        raise CameraProtocolError(f"{where}: device_list is not a list")
    return devices


def parse_devices(data: Mapping[str, Any], where: str) -> list[WyzeDevice]:
    """The cameras (``product_type`` ``Camera``) of a ``get_object_list`` reply's data.

    Other devices (plugs, locks…) are left out; an entry that is not an object, or a camera
    without a ``mac``, is CameraProtocolError."""
    cameras = []
    for item in _devices_list(data, where):
        entry = _mapping(item, where, "a device")
        if entry.get("product_type") != "Camera":
            continue
        mac = _text(entry.get("mac"))
        if not mac:
            raise CameraProtocolError(f"{where}: a camera without a mac")
        state = entry.get("conn_state")
        cameras.append(
            WyzeDevice(
                mac=mac,
                nickname=_text(entry.get("nickname")),
                model=_text(entry.get("product_model")),
                online=state == 1 or state == "1",
                firmware=_text(entry.get("firmware_ver")),
            )
        )
    return cameras


@attrs.frozen
class WyzeEvent:
    """One recorded event: its id, the camera's mac, when it happened (aware UTC) and the
    URLs of its video files (``file_list`` entries of type 2; images, type 1, are kept apart in
    ``images`` and never served as snapshots)."""

    event_id: str
    mac: str
    at: datetime
    videos: tuple[str, ...]
    images: tuple[str, ...] = ()


#: Event times Wyze can send: milliseconds since 1970, up to the year 2100.
_MAX_MS = 4_102_444_800_000


def _event(item: Any, where: str) -> WyzeEvent:
    entry = _mapping(item, where, "an event")
    ts = entry.get("event_ts")
    if isinstance(ts, str) and ts.isdigit():
        ts = int(ts)
    if isinstance(ts, bool) or not isinstance(ts, int) or not 0 <= ts <= _MAX_MS:
        raise CameraProtocolError(f"{where}: an event without a valid event_ts")
    files = entry.get("file_list") or []
    if not isinstance(files, list):
        raise CameraProtocolError(f"{where}: an event's file_list is not a list")
    videos, images = [], []
    for f in files:
        file = _mapping(f, where, "an event file")
        url = _text(file.get("url"))
        if not url:
            continue
        kind = file.get("type")
        if kind in (2, "2"):
            videos.append(url)
        elif kind in (1, "1"):
            images.append(url)
    return WyzeEvent(
        event_id=_text(entry.get("event_id")) or str(ts),
        mac=_text(entry.get("device_mac")),
        at=datetime.fromtimestamp(0, UTC) + timedelta(milliseconds=ts),
        videos=tuple(videos),
        images=tuple(images),
    )


def parse_events(data: Mapping[str, Any], where: str) -> list[WyzeEvent]:
    """The events of a ``get_event_list`` reply's data, in the order Wyze sent them.

    An event without a valid ``event_ts`` or with a malformed ``file_list`` is
    CameraProtocolError."""
    events = data.get("event_list", [])
    if not isinstance(events, list):
        raise CameraProtocolError(f"{where}: event_list is not a list")
    return [_event(item, where) for item in events]


# "Thu Nov 09 2023 15:10:53 GMT+0000 (Coordinated Universal Time)": JavaScript's Date text.
_JS_DATE = re.compile(
    r"[A-Za-z]{3} ([A-Za-z]{3}) (\d{1,2}) (\d{4}) (\d{2}):(\d{2}):(\d{2}) GMT([+-]\d{4})"
)


def parse_reset_by(value: str) -> datetime | None:
    """When Wyze's rate limit resets, from ``X-RateLimit-Reset-By`` (aware UTC), or None when
    the header cannot be read. Takes JavaScript's ``Date`` text (what Wyze sends), HTTP dates
    and ISO 8601."""
    text = value.strip()[:100]
    match = _JS_DATE.match(text)
    if match:
        mon, day, year, hh, mm, ss, offset = match.groups()
        try:
            at = datetime.strptime(
                f"{mon} {day} {year} {hh}:{mm}:{ss} {offset}", "%b %d %Y %H:%M:%S %z"
            )
        except ValueError:
            return None
        return at.astimezone(UTC)
    try:
        at = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        try:
            at = datetime.fromisoformat(text)
        except ValueError:
            return None
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    try:
        return at.astimezone(UTC)
    except (OverflowError, ValueError):
        return None
