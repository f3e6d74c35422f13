"""Our own async client for Wyze's cloud API, on httpx.

What it promises:

- **Login** (:meth:`WyzeClient.login`): email, the password MD5-hashed three times (never sent
  or kept in clear), the developer ``key_id``/``api_key`` (an expired key, by the
  ``api_key_expires`` setting, is refused before Wyze is asked, with the date; one expiring
  within :data:`KEY_WARNING_DAYS` is logged), and a second factor (authenticator app or SMS)
  asked of the embedder's ``factor`` callback. At most one login attempt per
  ``login_interval_s`` (Wyze allows about one per 30 s) per auth host in this process: a
  second attempt *waits* for its turn; a 429 from the login endpoint is waited out once.
- **Tokens** (:class:`Tokens`) are handed to ``on_tokens`` (the token file) **before** they are
  used. A reply with code 2001 (access token expired) is answered with one refresh and one
  retry; a second 2001 or a refused refresh is a CameraAuthError asking for ``camgate wyze
  link``.
- **Rate limit.** When a reply says ``X-RateLimit-Remaining`` ≤ :data:`RATE_FLOOR`, the next
  call waits until ``X-RateLimit-Reset-By``; a wait longer than ``max_rate_wait_s`` is an
  AdapterError saying when Wyze will answer again, never an unbounded sleep.
- **Hosts** are settings; redirects are never followed, proxies never taken from the
  environment, TLS verified. Event files are fetched only from ``media_hosts`` (https, or http
  to a loopback host), never more than ``max_clip_bytes``.
- **Secrets.** No password, token or API key in any message, log record or repr.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractContextManager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import anyio
import attrs
import httpx
from camgate.adapters import Secret, http_errors, read_capped
from camgate.errors import (
    AdapterError,
    CameraAuthError,
    CameraProtocolError,
    CameraUnreachable,
    ConfigError,
    ValidationError,
)
from camgate.media.files import write_private
from camgate.media.webrtc import IceServer
from camgate.models import redact_address

from camgate_wyze.kvs import check_signaling_url, parse_ice_servers
from camgate_wyze.replies import (
    LoginReply,
    TokenExpired,
    WyzeDevice,
    WyzeEvent,
    envelope_data,
    parse_devices,
    parse_events,
    parse_json,
    parse_login,
    parse_reset_by,
)
from camgate_wyze.settings import WyzeSettings, is_loopback

__all__ = [
    "Challenge",
    "RATE_FLOOR",
    "Tokens",
    "WyzeClient",
    "load_tokens",
    "save_tokens",
    "triple_md5",
]

log = logging.getLogger(__name__)

#: Wyze's app identity, sent as the app does (public constants of Wyze's app, not secrets).
APP_API_KEY = "WMXHYf79Nr5gIlt3r0r7p9Tcw5bvs6BB4U8O8nGJ"
APP_NAME = "com.hualai.WyzeCam"
APP_VERSION = "2.50.0"
SC = "a626948714654991afd3c0dbd7cdb901"
#: The per-endpoint ``sv`` the classic API expects.
SV = {
    "/app/user/refresh_token": "d91914dd28b7492ab9dd17f7707d35a3",
    "/app/v2/home_page/get_object_list": "c417b62d72ee44bf933054bdca183e77",
    "/app/v2/device/get_event_list": "bdcb412e230049c0be0916e75022d3f3",
}
#: Back off when Wyze says this many requests or fewer are left.
RATE_FLOOR = 10
#: Warn this many days before the API key's yearly expiry.
KEY_WARNING_DAYS = 30
#: ``get_event_list`` answers at most this many events per call.
EVENTS_PER_CALL = 20
#: The most pages of events read for one window (20 events each).
MAX_EVENT_PAGES = 50
_BODY_LIMIT = 4 * 1024 * 1024
#: The last login attempt per auth host (monotonic), shared by every client of the process.
_LAST_LOGIN: dict[str, float] = {}


_QUERY = re.compile(r"\?[^\s\"']*")


class _HideQueries(logging.Filter):
    """Cuts every query out of a record of httpx's or websockets' loggers: Wyze's event-file
    and signalling URLs are pre-signed (their query is a credential). The record is kept."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Replace the record's message by its text with each ``?query`` shown as ``?***``."""
        text = record.getMessage()
        if "?" in text:
            record.msg, record.args = _QUERY.sub("?***", text), ()
        return True


_HIDE_QUERIES = _HideQueries()
for _name in ("httpx", "websockets.client"):
    if _HIDE_QUERIES not in logging.getLogger(_name).filters:
        logging.getLogger(_name).addFilter(_HIDE_QUERIES)


def triple_md5(password: str) -> str:
    """The password as Wyze's login takes it: MD5 hex digest, applied three times."""
    text = password
    for _ in range(3):
        text = hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()
    return text


def _secret(value: str | Secret) -> Secret:
    return value if isinstance(value, Secret) else Secret(value)


@attrs.frozen
class Tokens:
    """The linked account's tokens (Secrets, never in a repr), its user id and the phone id
    they were issued to (Wyze ties tokens to it)."""

    access_token: Secret = attrs.field(converter=_secret, repr=False)
    refresh_token: Secret = attrs.field(converter=_secret, repr=False)
    user_id: str = ""
    phone_id: str = attrs.field(factory=lambda: str(uuid.uuid4()))

    def to_json(self) -> dict[str, str]:
        """The tokens as a JSON object, for the token file: the only place they are revealed."""
        return {
            "access_token": self.access_token.reveal(),
            "refresh_token": self.refresh_token.reveal(),
            "user_id": self.user_id,
            "phone_id": self.phone_id,
        }

    @classmethod
    def from_json(cls, value: Any) -> Tokens:
        """Tokens from :meth:`to_json`'s shape; ValidationError (naming no value) otherwise."""
        if not isinstance(value, Mapping) or not all(
            isinstance(value.get(k), str) and value.get(k)
            for k in ("access_token", "refresh_token", "phone_id")
        ):
            raise ValidationError("Wyze token file: not the tokens camgate wyze link writes")
        return cls(
            value["access_token"],
            value["refresh_token"],
            str(value.get("user_id", "")),
            value["phone_id"],
        )


def load_tokens(path: str | Path) -> Tokens | None:
    """The tokens in the token file, None when there is none; ValidationError for a file
    that is not one."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        raise ValidationError(f"Wyze token file {str(path)!r} is not JSON") from None
    return Tokens.from_json(value)


def save_tokens(path: str | Path, tokens: Tokens) -> None:
    """Write ``tokens`` to the token file (owner-only, replaced atomically, synced)."""
    write_private(path, json.dumps(tokens.to_json()).encode(), replace=True)


@attrs.frozen
class Challenge:
    """A second factor Wyze asks for: ``kind`` ``"totp"`` (a code from the authenticator
    app) or ``"sms"`` (a code Wyze just texted to the account's phone)."""

    kind: str


#: The embedder's answer to a :class:`Challenge`: the code the owner typed.
FactorCallback = Callable[[Challenge], Awaitable[str]]


def _mapped(where: str) -> AbstractContextManager[None]:
    """httpx's errors as camgate's (:func:`camgate.adapters.http_errors`)."""
    return http_errors(where, "Wyze")


def _check_status(response: httpx.Response, where: str) -> None:
    status = response.status_code
    if status == 200:
        return
    if status in (401, 403):
        raise CameraAuthError(f"{where}: Wyze refused the request ({status})")
    if status == 404:
        raise CameraUnreachable(f"{where}: no such resource (404)")
    if status == 429:
        retry = response.headers.get("retry-after", "?")[:16]
        raise AdapterError(f"{where}: Wyze is rate-limiting (429, retry after {retry})")
    if 300 <= status < 400:
        raise CameraProtocolError(f"{where}: Wyze redirects ({status}); not followed")
    if status >= 500:
        raise AdapterError(f"{where}: Wyze failed ({status})")
    raise CameraProtocolError(f"{where}: unexpected answer {status}")


class WyzeClient:
    """One account's connection to Wyze's cloud (see the module docstring).

    ``tokens`` are the linked account's (None before :meth:`login`); ``on_tokens`` is called
    with every new pair before it is used (by default nothing: tokens live in memory only)."""

    def __init__(
        self,
        settings: WyzeSettings,
        tokens: Tokens | None = None,
        *,
        on_tokens: Callable[[Tokens], None] | None = None,
    ) -> None:
        self.settings = settings
        self.tokens = tokens
        self._on_tokens = on_tokens
        self._resume_at = 0.0  # monotonic; calls wait until then (rate limit)
        self._reset_text = ""
        timeout = httpx.Timeout(settings.read_timeout_s, connect=settings.connect_timeout_s)
        # No connection kept between calls (max_keepalive_connections=0): nothing idles
        # towards Wyze between accesses.
        self._http = httpx.AsyncClient(
            timeout=timeout,
            follow_redirects=False,
            trust_env=False,
            limits=httpx.Limits(max_keepalive_connections=0),
        )

    def __repr__(self) -> str:
        return f"WyzeClient(api={self.settings.api_url!r}, linked={self.tokens is not None})"

    async def aclose(self) -> None:
        """Close the connections. Idempotent."""
        await self._http.aclose()

    # ------------------------------------------------------------------ the API key
    def check_key(self, today: date | None = None) -> None:
        """Refuse an expired API key (CameraAuthError with its date); log one that expires
        within :data:`KEY_WARNING_DAYS`. A missing key id or key is a ConfigError."""
        s = self.settings
        if not s.key_id or not s.api_key.reveal():
            raise ConfigError(
                "Wyze needs the developer key_id and api_key settings "
                "(developer-api-console.wyze.com)"
            )
        expires = s.api_key_expires
        if expires is None:
            return
        today = today or datetime.now(UTC).date()
        if expires <= today:
            raise CameraAuthError(
                f"Wyze API key {s.key_id!r} expired on {expires.isoformat()}: create a new key "
                "in Wyze's developer console and set api_key and api_key_expires"
            )
        if expires - today <= timedelta(days=KEY_WARNING_DAYS):
            log.warning(
                "Wyze API key %r expires on %s: renew it before then",
                s.key_id,
                expires.isoformat(),
            )

    # ------------------------------------------------------------------ login
    def _login_headers(self) -> dict[str, str]:
        return {
            "x-api-key": APP_API_KEY,
            "keyid": self.settings.key_id,
            "apikey": self.settings.api_key.reveal(),
            "user-agent": f"{APP_NAME}/{APP_VERSION} camgate",
        }

    async def _login_turn(self) -> None:
        """Wait until this process may make its next login attempt to this auth host."""
        host = self.settings.auth_url
        now = time.monotonic()
        last = _LAST_LOGIN.get(host)
        # Reserve the next free turn before sleeping: concurrent logins queue up, one a turn.
        turn = now if last is None else max(now, last + self.settings.login_interval_s)
        _LAST_LOGIN[host] = turn
        if turn > now:
            log.info("Wyze login: waiting %.1f s (one attempt per interval)", turn - now)
            await anyio.sleep(turn - now)

    async def _login_post(self, body: Mapping[str, Any]) -> LoginReply:
        url = self.settings.auth_url + "/api/user/login"
        where = redact_address(url)
        for attempt in range(2):
            await self._login_turn()
            try:
                with _mapped(where):
                    response = await self._http.post(
                        url, json=dict(body), headers=self._login_headers()
                    )
            finally:
                # Count the interval from when Wyze surely had the attempt: its answer.
                _LAST_LOGIN[self.settings.auth_url] = time.monotonic()
            if response.status_code == 429 and attempt == 0:
                continue  # Wyze's own limit: wait for the next turn once
            if response.status_code in (400, 401, 403):
                reason = "check the email, password, key_id and api_key (keys expire yearly)"
                try:
                    parse_login(response.content, where)
                except CameraAuthError as exc:
                    raise CameraAuthError(f"{exc}; {reason}") from None
                except CameraProtocolError:
                    pass
                raise CameraAuthError(
                    f"{where}: Wyze refused the login ({response.status_code}); {reason}"
                )
            _check_status(response, where)
            return parse_login(response.content, where)
        raise AdapterError(f"{where}: Wyze kept rate-limiting the login")  # pragma: no cover

    async def _send_sms(self, reply: LoginReply) -> str:
        url = self.settings.auth_url + "/user/login/sendSmsCode"
        where = redact_address(url)
        params = {
            "mfaPhoneType": "Primary",
            "sessionId": reply.sms_session_id,
            "userId": reply.user_id,
        }
        with _mapped(where):
            response = await self._http.post(url, params=params, headers=self._login_headers())
        _check_status(response, where)
        value = parse_json(response.content, where)
        session = value.get("session_id") if isinstance(value, Mapping) else None
        if not isinstance(session, str) or not session:
            raise CameraProtocolError(f"{where}: no SMS session in the reply")
        return session

    async def login(
        self, email: str, password: str | Secret, factor: FactorCallback | None = None
    ) -> Tokens:
        """Log in (see the module docstring); the new tokens go to ``on_tokens`` and are
        returned. A second factor without a ``factor`` callback is a CameraAuthError."""
        self.check_key()
        hashed = triple_md5(_secret(password).reveal())
        body: dict[str, Any] = {"email": email, "password": hashed}
        reply = await self._login_post(body)
        if reply.needs_factor:
            if factor is None:
                raise CameraAuthError(
                    "Wyze asks for a second factor: link with camgate wyze link (it asks for it)"
                )
            if "TotpVerificationCode" in reply.mfa_options:
                code = await factor(Challenge("totp"))
                body |= {
                    "mfa_type": "TotpVerificationCode",
                    "verification_id": reply.totp_app_id,
                    "verification_code": code.strip(),
                }
            elif "PrimaryPhone" in reply.mfa_options:
                session = await self._send_sms(reply)
                code = await factor(Challenge("sms"))
                body |= {
                    "mfa_type": "PrimaryPhone",
                    "verification_id": session,
                    "verification_code": code.strip(),
                }
            else:
                raise CameraAuthError("Wyze asks for a second factor camgate does not know")
            reply = await self._login_post(body)
            if reply.needs_factor:
                raise CameraAuthError("Wyze refused the second factor's code")
        tokens = Tokens(reply.access_token, reply.refresh_token, reply.user_id)
        self._store(tokens)
        return tokens

    def _store(self, tokens: Tokens) -> None:
        if self._on_tokens is not None:
            self._on_tokens(tokens)
        self.tokens = tokens

    # ------------------------------------------------------------------ the classic API
    def _envelope(self, path: str, params: Mapping[str, Any]) -> dict[str, Any]:
        tokens = self._linked()
        return {
            "sc": SC,
            "sv": SV[path],
            "app_name": APP_NAME,
            "app_version": APP_VERSION,
            "app_ver": f"{APP_NAME}___{APP_VERSION}",
            "phone_system_type": "1",
            "phone_id": tokens.phone_id,
            "access_token": tokens.access_token.reveal(),
            "ts": int(time.time() * 1000),
            **params,
        }

    def _linked(self) -> Tokens:
        if self.tokens is None:
            raise CameraAuthError("Wyze: the account is not linked (camgate wyze link)")
        return self.tokens

    async def _rate_wait(self, where: str) -> None:
        wait = self._resume_at - time.monotonic()
        if wait <= 0:
            return
        if wait > self.settings.max_rate_wait_s:
            raise AdapterError(
                f"{where}: Wyze's rate limit is nearly spent; it resets at "
                f"{self._reset_text or 'an unknown time'} (more than "
                f"{self.settings.max_rate_wait_s:g} s from now): not waiting"
            )
        log.info("Wyze rate limit nearly spent: waiting %.1f s", wait)
        await anyio.sleep(wait)

    def _note_rate(self, response: httpx.Response) -> None:
        remaining = response.headers.get("x-ratelimit-remaining", "").strip()
        if not remaining.isdigit() or int(remaining) > RATE_FLOOR:
            return
        reset = parse_reset_by(response.headers.get("x-ratelimit-reset-by", ""))
        now = datetime.now(UTC)
        if reset is None:
            # No readable reset time: wait the longest we allow ourselves, then try.
            wait = self.settings.max_rate_wait_s
            self._reset_text = ""
        else:
            wait = max(0.0, (reset - now).total_seconds())
            self._reset_text = reset.isoformat(timespec="seconds")
        self._resume_at = time.monotonic() + wait

    async def _post(self, path: str, params: Mapping[str, Any]) -> Mapping[str, Any]:
        url = self.settings.api_url + path
        where = redact_address(url)
        await self._rate_wait(where)
        with _mapped(where):
            response = await self._http.post(url, json=self._envelope(path, params))
            body = await read_capped(response.aiter_bytes(), _BODY_LIMIT, where)
        self._note_rate(response)
        _check_status(response, where)
        return envelope_data(body, where)

    async def refresh(self) -> Tokens:
        """Trade the refresh token for new tokens (handed to ``on_tokens`` first)."""
        old = self._linked()
        try:
            data = await self._post(
                "/app/user/refresh_token", {"refresh_token": old.refresh_token.reveal()}
            )
        except CameraAuthError:
            raise CameraAuthError(
                "Wyze refused the refresh token: link the account again (camgate wyze link)"
            ) from None
        access, refresh = data.get("access_token"), data.get("refresh_token")
        if not isinstance(access, str) or not access or not isinstance(refresh, str):
            raise CameraProtocolError("Wyze's refresh reply has no tokens")
        tokens = Tokens(access, refresh or old.refresh_token, old.user_id, old.phone_id)
        self._store(tokens)
        return tokens

    async def call(self, path: str, params: Mapping[str, Any]) -> Mapping[str, Any]:
        """POST ``params`` in the envelope to ``path``; the reply's ``data``. Code 2001 is
        answered with one refresh and one retry."""
        try:
            return await self._post(path, params)
        except TokenExpired:
            await self.refresh()
        try:
            return await self._post(path, params)
        except TokenExpired:
            raise CameraAuthError(
                "Wyze: the access token expired again right after a refresh"
            ) from None

    async def cameras(self) -> list[WyzeDevice]:
        """The account's cameras (``get_object_list``), other devices left out."""
        path = "/app/v2/home_page/get_object_list"
        return parse_devices(await self.call(path, {}), redact_address(self.settings.api_url))

    async def events(self, mac: str, start: datetime, end: datetime) -> list[WyzeEvent]:
        """The camera's events inside ``[start, end)``, oldest first: ``get_event_list``
        asked for at most :data:`EVENTS_PER_CALL` at a time, paged back by time (the window
        narrowed to before the oldest event of each full page)."""
        path = "/app/v2/device/get_event_list"
        where = redact_address(self.settings.api_url + path)
        begin_ms = int(start.timestamp() * 1000)
        end_ms = int(end.timestamp() * 1000)
        found: dict[str, WyzeEvent] = {}
        for _ in range(MAX_EVENT_PAGES):
            params = {
                "device_mac_list": [mac],
                "begin_time": begin_ms,
                "end_time": end_ms,
                "count": EVENTS_PER_CALL,
                "order_by": 2,
            }
            page = parse_events(await self.call(path, params), where)
            inside = [e for e in page if start <= e.at < end]
            for event in inside:
                found.setdefault(event.event_id, event)
            if len(page) < EVENTS_PER_CALL or not inside:
                break
            oldest = min(int(e.at.timestamp() * 1000) for e in inside)
            if oldest - 1 < begin_ms or oldest - 1 >= end_ms:
                break
            end_ms = oldest - 1
        return sorted(found.values(), key=lambda e: e.at)

    # ------------------------------------------------------------------ cloud WebRTC
    async def _signaling_once(self, mac: str) -> tuple[str, list[IceServer]]:
        url = f"{self.settings.webrtc_url}/signaling/device/{quote(mac, safe='')}"
        where = redact_address(url)
        await self._rate_wait(where)
        headers = {"authorization": f"Bearer {self._linked().access_token.reveal()}"}
        with _mapped(where):
            response = await self._http.get(url, params={"use_trickle": "true"}, headers=headers)
            body = await read_capped(response.aiter_bytes(), _BODY_LIMIT, where)
        self._note_rate(response)
        if response.status_code == 401:
            raise TokenExpired(f"{where}: the access token was refused (401)")
        _check_status(response, where)
        value = parse_json(body, where)
        if isinstance(value, Mapping) and isinstance(value.get("results"), Mapping):
            value = value["results"]
        if not isinstance(value, Mapping):
            raise CameraProtocolError(f"{where}: the signalling reply is not a JSON object")
        signaling = check_signaling_url(value.get("signalingUrl"), self.settings.signaling_hosts)
        return signaling, parse_ice_servers(value.get("servers"))

    async def signaling(self, mac: str) -> tuple[str, list[IceServer]]:
        """The camera's pre-signed KVS signalling URL and ICE servers (a 401 is answered with
        one refresh and one retry). The URL is checked (:func:`check_signaling_url`) and
        never shown."""
        try:
            return await self._signaling_once(mac)
        except TokenExpired:
            await self.refresh()
        try:
            return await self._signaling_once(mac)
        except TokenExpired:
            raise CameraAuthError("Wyze refused the access token right after a refresh") from None

    # ------------------------------------------------------------------ event files
    def check_media_url(self, url: str) -> str:
        """``url`` when it is an https URL (http only to a loopback host) on one of the
        ``media_hosts``; CameraProtocolError (naming the redacted URL) otherwise."""
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        secure = parts.scheme == "https" or (parts.scheme == "http" and is_loopback(host))
        if not secure or host not in self.settings.media_hosts:
            raise CameraProtocolError(
                f"event file {redact_address(url)}: not on an allowed media host; refused"
            )
        return url

    async def fetch_video(self, url: str) -> bytes:
        """One event file, no redirect followed, at most ``max_clip_bytes``."""
        self.check_media_url(url)
        where = redact_address(url)
        limit = self.settings.max_clip_bytes
        with _mapped(where):
            async with self._http.stream("GET", url) as response:
                _check_status(response, where)
                length = response.headers.get("content-length", "")
                if length.isdigit() and int(length) > limit:
                    raise CameraProtocolError(
                        f"{where}: the event file is {length} bytes, above max_clip_bytes"
                    )
                return await read_capped(response.aiter_bytes(), limit, where)
