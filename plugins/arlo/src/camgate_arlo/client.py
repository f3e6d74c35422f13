"""Our own async client for the Arlo cloud, on httpx.

What it promises:

- **Hosts.** The login (auth) host, the API host and the events host are settings; every URL
  Arlo hands back (a stream, a presigned image) is checked against an allow-list before it is
  used (:func:`allowed_url`). Redirects are never followed, no proxy is taken from the
  environment, TLS verification is never turned off.
- **Login** (:meth:`ArloClient.login`): ``POST /api/auth`` with the e-mail and the base64
  password. When Arlo says the login is not complete, the client asks whether this client
  is a trusted browser (``getFactorId`` with ``BROWSER``); trusted, ``startAuth`` with that
  factor completes it. Untrusted (9204), the factor flow runs through the embedder's
  :class:`LoginPrompt`: ``getFactors`` → the prompt chooses → ``startAuth`` → the prompt
  gives the one-time code (EMAIL, SMS) and ``finishAuth`` checks it, or (PUSH) ``finishAuth``
  is polled until the owner approves. The browser is then paired (``startPairingFactor``) so
  the next login needs no factor. Every login ends with ``validateAccessToken`` and the
  session call (``GET /hmsweb/users/session/v3``). Without a prompt an untrusted client is a
  CameraAuthError (9204) telling the owner to run ``camgate arlo link``.
- **Sessions** (:class:`ArloSession`: token, user id, expiry, this client's device id and
  trust cookie) are handed to ``on_session`` before they are used and re-used until they
  expire; an API call answered 401 logs in again once (no prompt: a trusted client only).
- **The login transport** is pluggable (:class:`LoginTransport`): the login host sits behind
  Cloudflare, which refuses TLS fingerprints that are not a browser's. httpx is the default;
  an embedder may pass a transport that impersonates a browser, for the login host only.
- **Secrets.** No password, token, egress token or cookie appears in a message, log record or
  repr; Arlo's text is cut short and made printable.

Errors (camgate.errors): a refused password (401), 9204 and 9261 → CameraAuthError; 2059 (device
offline), no connection, a time-out → CameraUnreachable; Cloudflare's 403/429, 5xx and other
refusals → AdapterError; a body that is not Arlo's → CameraProtocolError.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import re
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from http.cookies import CookieError, SimpleCookie
from typing import Any, Protocol

import anyio
import attrs
import httpx
from camgate import settings as kit
from camgate.adapters import Secret, http_errors, read_capped
from camgate.errors import (
    AdapterError,
    CameraAuthError,
    CameraProtocolError,
    CameraUnreachable,
    ConfigError,
    ValidationError,
)
from camgate.models import redact_address

from camgate_arlo import wire
from camgate_arlo.wire import ArloDevice, Factor, Reply

__all__ = [
    "ANDROID_USER_AGENT",
    "ArloClient",
    "ArloSession",
    "HttpxLoginTransport",
    "LoginPrompt",
    "LoginReply",
    "LoginTransport",
    "allowed_url",
    "check_base_url",
    "expiry",
]

log = logging.getLogger(__name__)

#: The User-Agent Arlo answers ``startStream`` with an RTSPS URL for (Arlo picks the stream
#: format from it: Android → RTSPS, iPad/Mac → HLS, Linux desktop → DASH).
ANDROID_USER_AGENT = (
    "Mozilla/5.0 (Linux; Android 11; Pixel 5 Build/RQ3A.211001.001; wv) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Version/4.0 Chrome/114.0.5735.196 Mobile Safari/537.36 arlo"
)
#: The User-Agent of the login and API calls (a desktop browser, as Arlo's web client).
BROWSER_USER_AGENT = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/114.0.0.0 Safari/537.36"
)


class _ScrubCookies(logging.Filter):
    """Takes cookie values out of httpcore's trace records (at DEBUG it logs every response's
    headers, and the login host's trust cookie is a credential)."""

    _COOKIE = re.compile(r"(b'(?:set-)?cookie', b')[^']*", re.IGNORECASE)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = self._COOKIE.sub(r"\1***", message)
        if clean != message:
            record.msg, record.args = clean, ()
        return True


logging.getLogger("httpcore.http11").addFilter(_ScrubCookies())

#: A session this close to its expiry (seconds) is renewed by a login before use.
EXPIRY_MARGIN_S = 60.0


def check_base_url(url: str, what: str) -> str:
    """An Arlo host setting: :func:`camgate.kit.check_base_url` for vendor ``arlo``."""
    return kit.check_base_url(url, what, "arlo")


def allowed_url(url: str, hosts: Sequence[str], schemes: Sequence[str], what: str) -> str:
    """``url`` when its scheme is one of ``schemes`` and its host is in ``hosts`` (an entry
    with a leading dot allows that domain's subdomains); plain ``http`` only to a loopback
    host. CameraProtocolError naming only the redacted address otherwise: Arlo's reply never
    sends the client anywhere else."""
    shown = redact_address(url)
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError):
        raise CameraProtocolError(f"Arlo's {what} URL does not parse") from None
    scheme, host = parsed.scheme.lower(), parsed.host.lower().rstrip(".")
    if scheme not in schemes or not host or parsed.userinfo:
        raise CameraProtocolError(f"Arlo's {what} URL {shown} is not one the adapter opens")
    if scheme == "http" and not kit.is_loopback(host):
        raise CameraProtocolError(f"Arlo's {what} URL {shown} is plain http: refused")
    for entry in hosts:
        entry = entry.lower()
        if host == entry.lstrip(".") or (entry.startswith(".") and host.endswith(entry)):
            return url
    raise CameraProtocolError(
        f"Arlo's {what} URL points to a host not in the allow-list ({shown}): not followed"
    )


def expiry(expires_in: float, now: float) -> float:
    """The UNIX time a token expires, from Arlo's ``expiresIn``: an expiry in milliseconds
    (above 10¹¹), an expiry in seconds (above 10⁹), or else a lifetime in seconds."""
    if expires_in > 1e11:
        return expires_in / 1000.0
    if expires_in > 1e9:
        return expires_in
    return now + expires_in


def _secret(value: str | Secret) -> Secret:
    return value if isinstance(value, Secret) else Secret(value)


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


@attrs.frozen
class ArloSession:
    """A logged-in Arlo session, what the adapter persists as the account's credential:
    ``token`` (the API host's Authorization), ``user_id``, ``expires_at`` (UNIX seconds),
    ``device_id`` (this client's identity as a browser: kept across logins, so pairing
    lasts) and ``cookies`` (the login host's trust cookies). Nothing secret shows in a repr."""

    token: Secret = attrs.field(converter=_secret, repr=False)
    user_id: str
    expires_at: float
    device_id: str
    cookies: Mapping[str, str] = attrs.field(factory=dict, repr=False)

    @property
    def web_id(self) -> str:
        """The ``from`` of notifications: ``<userId>_web``."""
        return f"{self.user_id}_web"

    def to_json(self) -> dict[str, Any]:
        """The session as a JSON object (for the credential store): the only place the token
        and cookies are revealed."""
        return {
            "token": self.token.reveal(),
            "user_id": self.user_id,
            "expires_at": self.expires_at,
            "device_id": self.device_id,
            "cookies": dict(self.cookies),
        }

    @classmethod
    def from_json(cls, value: Any) -> ArloSession:
        """A session from :meth:`to_json`'s shape (or its JSON text); ValidationError naming
        no value otherwise."""
        if isinstance(value, str | Secret):
            text = value.reveal() if isinstance(value, Secret) else value
            try:
                value = json.loads(text)
            except ValueError:
                raise ValidationError("arlo session: not JSON") from None
        if not isinstance(value, Mapping):
            raise ValidationError("arlo session: not a JSON object")
        token, user, device = value.get("token"), value.get("user_id"), value.get("device_id")
        expires, cookies = value.get("expires_at", 0.0), value.get("cookies", {})
        if not all(isinstance(v, str) for v in (token, user, device)):
            raise ValidationError("arlo session: token, user_id and device_id must be strings")
        if isinstance(expires, bool) or not isinstance(expires, int | float):
            raise ValidationError("arlo session: expires_at must be a number")
        if not isinstance(cookies, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in cookies.items()
        ):
            raise ValidationError("arlo session: cookies must map names to values")
        assert isinstance(token, str) and isinstance(user, str) and isinstance(device, str)
        return cls(token, user, float(expires), device, dict(cookies))


@attrs.frozen
class LoginReply:
    """What a login transport got back: the status, the ``Set-Cookie`` headers and the body
    (at most :data:`camgate_arlo.wire.MAX_BODY` bytes)."""

    status: int
    set_cookies: list[str]
    content: bytes


class LoginTransport(Protocol):
    """How the client reaches the login host: one JSON request, one reply. The default is
    :class:`HttpxLoginTransport`. Cloudflare in front of Arlo's login host refuses TLS
    handshakes that do not look like a browser's (403, or 429): a transport that impersonates
    a browser's TLS fingerprint (e.g. one on curl_cffi) plugs in here, for the login host
    only. A transport must verify TLS, follow no redirect and read no proxy from the
    environment."""

    async def send(
        self, method: str, url: str, headers: Mapping[str, str], body: Any
    ) -> LoginReply:
        """Send ``body`` as JSON (None: no body) and return the reply; raise httpx's
        transport errors (or CameraUnreachable) when the host cannot be reached."""
        ...

    async def aclose(self) -> None:
        """Release connections. Idempotent."""
        ...


class HttpxLoginTransport:
    """The default login transport: httpx, TLS verified, no redirects, no environment."""

    def __init__(self, timeout_s: float = 10.0) -> None:
        self._http = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout_s), follow_redirects=False, trust_env=False
        )

    def __repr__(self) -> str:
        return "HttpxLoginTransport()"

    async def send(
        self, method: str, url: str, headers: Mapping[str, str], body: Any
    ) -> LoginReply:
        """One request (see :class:`LoginTransport`)."""
        async with self._http.stream(
            method, url, headers=dict(headers), json=body if body is not None else None
        ) as response:
            content = await read_capped(response.aiter_bytes(), wire.MAX_BODY, "Arlo login")
            return LoginReply(
                response.status_code, response.headers.get_list("set-cookie"), content
            )

    async def aclose(self) -> None:
        """Close the connections."""
        await self._http.aclose()


class LoginPrompt(Protocol):
    """What the embedder provides for a login that needs a second factor (``camgate arlo
    link`` asks on the terminal)."""

    async def choose(self, factors: Sequence[Factor]) -> Factor:
        """Pick one of the account's factors (EMAIL, SMS, PUSH…)."""
        ...

    async def code(self, factor: Factor) -> str:
        """The one-time code Arlo just sent through ``factor`` (not called for PUSH)."""
        ...


class ArloClient:
    """A session with the Arlo cloud for one account (see the module docstring).

    ``auth_base``, ``api_base`` and ``events_base`` are the hosts; ``email`` and ``password``
    the account's (needed to log in; a stored ``session`` is used without them until it
    expires); ``on_session(session)`` persists each new session before it is used;
    ``transport`` reaches the login host (default :class:`HttpxLoginTransport`);
    ``media_hosts`` the hosts a presigned image may come from. Use as an async context
    manager or call :meth:`aclose`."""

    def __init__(
        self,
        *,
        auth_base: str,
        api_base: str,
        events_base: str,
        email: str = "",
        password: Secret | None = None,
        session: ArloSession | None = None,
        on_session: Callable[[ArloSession], None] | None = None,
        transport: LoginTransport | None = None,
        media_hosts: Sequence[str] = (),
        request_timeout_s: float = 10.0,
        push_poll_s: float = 2.0,
        push_timeout_s: float = 120.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.auth_base = check_base_url(auth_base, "auth_base_url")
        self.api_base = check_base_url(api_base, "api_base_url")
        self.events_base = check_base_url(events_base, "events_base_url")
        self._email = email
        self._password = password
        self._session = session
        self._on_session = on_session
        self._transport: LoginTransport = transport or HttpxLoginTransport(request_timeout_s)
        self._media_hosts = tuple(media_hosts)
        self._timeout = request_timeout_s
        self._push_poll = push_poll_s
        self._push_timeout = push_timeout_s
        self._clock = clock
        self._lock = anyio.Lock()
        self.http = httpx.AsyncClient(
            timeout=httpx.Timeout(request_timeout_s), follow_redirects=False, trust_env=False
        )

    def __repr__(self) -> str:
        return f"ArloClient(api_base={redact_address(self.api_base)!r})"

    async def __aenter__(self) -> ArloClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close every connection (API, events, login transport). Idempotent."""
        await self.http.aclose()
        await self._transport.aclose()

    @property
    def session(self) -> ArloSession | None:
        """The session in use, None before the first login."""
        return self._session

    # --- secrets kept out of text ---

    def _scrub(self, text: str) -> str:
        secrets = [self._password.reveal() if self._password else ""]
        if self._session is not None:
            secrets += [self._session.token.reveal(), *self._session.cookies.values()]
        for value in secrets:
            if value:
                text = text.replace(value, "***")
        return text

    def _mapped(self, where: str) -> AbstractContextManager[None]:
        return http_errors(where, "Arlo")

    # --- the login host ---

    def _auth_headers(self, device_id: str, token: str | None) -> dict[str, str]:
        headers = {
            "Accept": "application/json, text/plain, */*",
            "Content-Type": "application/json",
            "User-Agent": BROWSER_USER_AGENT,
            "Source": "arloCamWeb",
            "X-Service-Version": "3",
            "X-User-Device-Id": device_id,
            "X-User-Device-Type": "BROWSER",
            "X-User-Device-Automation-Name": _b64("BROWSER"),
        }
        if token is not None:
            headers["Authorization"] = _b64(token)  # the login host takes the token base64
        return headers

    async def _auth_call(
        self,
        path: str,
        body: Any,
        *,
        device_id: str,
        token: str | None,
        cookies: dict[str, str],
        method: str = "POST",
    ) -> Reply:
        url = f"{self.auth_base}{path}"
        where = redact_address(url)
        headers = self._auth_headers(device_id, token)
        if cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
        with self._mapped(where):
            reply = await self._transport.send(method, url, headers, body)
        for header in reply.set_cookies:
            with contextlib.suppress(CookieError):
                jar: SimpleCookie = SimpleCookie()
                jar.load(header)
                cookies.update({name: morsel.value for name, morsel in jar.items()})
        if reply.status == 401:
            raise CameraAuthError(f"{where}: Arlo refused the e-mail or password (401)")
        if reply.status in (403, 429) and not reply.content.lstrip().startswith(b"{"):
            raise AdapterError(
                f"{where}: Arlo's login host refused the client ({reply.status}), as "
                "Cloudflare does for a TLS fingerprint that is not a browser's: use a login "
                "transport that impersonates one (docs/arlo.md)"
            )
        if reply.status == 429:
            raise AdapterError(f"{where}: Arlo is rate-limiting logins (429)")
        if reply.status >= 500:
            raise AdapterError(f"{where}: Arlo's login host failed ({reply.status})")
        if 300 <= reply.status < 400:
            raise CameraProtocolError(f"{where}: Arlo redirects ({reply.status}); not followed")
        parsed = wire.parse_reply(reply.content, where)
        if reply.status != 200 and parsed.ok:
            raise CameraProtocolError(f"{where}: unexpected answer {reply.status}")
        return attrs.evolve(parsed, message=self._scrub(parsed.message))

    async def login(self, prompt: LoginPrompt | None = None) -> ArloSession:
        """Log in with the e-mail and password (the module docstring's flow) and return the
        new session, already handed to ``on_session``. Without ``prompt`` a login that needs
        a second factor is a CameraAuthError (9204)."""
        async with self._lock:
            return await self._login_locked(prompt)

    async def _login_locked(self, prompt: LoginPrompt | None) -> ArloSession:
        if not self._email or self._password is None:
            raise CameraAuthError(
                "Arlo: the session expired and no e-mail and password are set to log in again"
            )
        old = self._session
        device_id = old.device_id if old is not None else str(uuid.uuid4())
        cookies = dict(old.cookies) if old is not None else {}
        call = self._auth_call
        reply = await call(
            "/api/auth",
            {
                "email": self._email,
                "password": _b64(self._password.reveal()),
                "language": "en",
                "EnvSource": "prod",
            },
            device_id=device_id,
            token=None,
            cookies=cookies,
        )
        if not reply.ok:
            raise wire.arlo_error(reply, "Arlo login")
        auth = wire.parse_auth(reply.data, "Arlo login")
        if not auth.completed:
            auth = await self._second_step(auth, prompt, device_id, cookies)
        token, user = auth.token, auth.user_id
        reply = await call(
            f"/api/validateAccessToken?data={int(self._clock())}",
            None,
            device_id=device_id,
            token=token,
            cookies=cookies,
            method="GET",
        )
        if not reply.ok:
            raise wire.arlo_error(reply, "Arlo token validation")
        session = ArloSession(
            token, user, expiry(auth.expires_in, self._clock()), device_id, dict(cookies)
        )
        await self._session_call(session)
        self._persist(session)
        log.info("Arlo: logged in; the session lasts until %.0f", session.expires_at)
        return session

    async def _second_step(
        self,
        auth: wire.AuthData,
        prompt: LoginPrompt | None,
        device_id: str,
        cookies: dict[str, str],
    ) -> wire.AuthData:
        call = self._auth_call
        kw: dict[str, Any] = {"device_id": device_id, "token": auth.token, "cookies": cookies}
        trusted = await call(
            "/api/getFactorId",
            {"factorType": "BROWSER", "factorData": "", "userId": auth.user_id},
            **kw,
        )
        if trusted.ok and isinstance(trusted.data, Mapping):
            factor_id = trusted.data.get("factorId")
            reply = await call(
                "/api/startAuth",
                {"factorId": factor_id, "factorType": "BROWSER", "userId": auth.user_id},
                **kw,
            )
            if not reply.ok:
                raise wire.arlo_error(reply, "Arlo trusted login")
            done = wire.parse_auth(reply.data, "Arlo trusted login")
            if not done.completed:
                raise CameraAuthError("Arlo: the trusted login did not complete")
            return done
        if prompt is None:
            raise wire.arlo_error(
                Reply(False, None, wire.BROWSER_UNTRUSTED, trusted.message), "Arlo login"
            )
        reply = await call(f"/api/getFactors?data={int(self._clock())}", None, method="GET", **kw)
        if not reply.ok:
            raise wire.arlo_error(reply, "Arlo factors")
        factors = wire.parse_factors(reply.data, "Arlo factors")
        if not factors:
            raise CameraAuthError("Arlo: the account has no second factor to log in with")
        factor = await prompt.choose(factors)
        push = factor.kind == "PUSH"
        reply = await call(
            "/api/startAuth",
            {
                "factorId": factor.factor_id,
                "factorType": "" if push else "BROWSER",
                "userId": auth.user_id,
            },
            **kw,
        )
        if not reply.ok:
            raise wire.arlo_error(reply, "Arlo factor start")
        code = reply.data.get("factorAuthCode") if isinstance(reply.data, Mapping) else None
        if not isinstance(code, str) or not code:
            raise CameraProtocolError("Arlo factor start: no factorAuthCode in the reply")
        finish: dict[str, Any] = {"factorAuthCode": code, "isBrowserTrusted": True}
        if not push:
            finish["otp"] = (await prompt.code(factor)).strip()
        deadline = self._clock() + self._push_timeout
        while True:
            reply = await call("/api/finishAuth", finish, **kw)
            if reply.ok or not push or reply.error == wire.FACTOR_INVALID:
                break
            if self._clock() >= deadline:
                raise CameraAuthError(
                    f"Arlo: the push notification was not approved within {self._push_timeout:g} s"
                )
            await anyio.sleep(self._push_poll)
        if not reply.ok:
            raise wire.arlo_error(reply, "Arlo factor check")
        done = wire.parse_auth(reply.data, "Arlo factor check")
        if done.browser_code is not None:
            # Pair this client as a trusted browser: without it Arlo answers 9204 next time.
            paired = await call(
                "/api/startPairingFactor",
                {"factorAuthCode": done.browser_code, "factorData": "", "factorType": "BROWSER"},
                device_id=device_id,
                token=done.token,
                cookies=cookies,
            )
            if not paired.ok:
                raise wire.arlo_error(paired, "Arlo browser pairing")
        return done

    def _persist(self, session: ArloSession) -> None:
        if self._on_session is not None:
            try:
                self._on_session(session)
            except Exception as exc:
                raise ConfigError(
                    f"Arlo: the new session could not be persisted ({type(exc).__name__})"
                ) from None
        self._session = session

    async def current(self) -> ArloSession:
        """The session, logged in again (without a prompt) when there is none or it expires
        within a minute."""
        async with self._lock:
            session = self._session
            if session is None or session.expires_at - self._clock() < EXPIRY_MARGIN_S:
                session = await self._login_locked(None)
            return session

    async def relogin(self, stale: ArloSession) -> ArloSession:
        """Log in again (no prompt) unless another call already replaced ``stale``."""
        async with self._lock:
            if self._session is not None and self._session is not stale:
                return self._session
            return await self._login_locked(None)

    # --- the API host ---

    def _api_headers(self, session: ArloSession, extra: Mapping[str, str]) -> dict[str, str]:
        return {
            "Accept": "application/json",
            "Content-Type": "application/json; charset=utf-8;",
            "Auth-Version": "2",
            "Authorization": session.token.reveal(),  # the API host takes it raw
            "SchemaVersion": "1",
            "User-Agent": BROWSER_USER_AGENT,
            **extra,
        }

    def _api_url(self, base: str, path: str) -> tuple[str, str]:
        transaction = f"FE!{uuid.uuid4()}"
        sep = "&" if "?" in path else "?"
        now_ms = int(self._clock() * 1000)
        return f"{base}{path}{sep}eventId={transaction}&time={now_ms}", transaction

    async def api(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        """Call the API host (``path`` under it) and return the reply's ``data``; a 401
        logs in again (no prompt) and retries once; Arlo's error codes are mapped
        (:func:`camgate_arlo.wire.arlo_error`)."""
        relogged = False
        while True:
            session = await self.current()
            status, data = await self._api_once(session, method, path, body, headers)
            if status == 401 and not relogged:
                relogged = True
                log.info("Arlo answered 401 at %s: the session expired; logging in again", path)
                await self.relogin(session)
                continue
            return data

    async def _api_once(
        self,
        session: ArloSession,
        method: str,
        path: str,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> tuple[int, Any]:
        """One API call with ``session``: (200, data), or (401, None) for an expired session;
        every other failure raised."""
        url, transaction = self._api_url(self.api_base, path)
        where = redact_address(f"{self.api_base}{path}")
        sent = self._api_headers(session, {"x-transaction-id": transaction, **(headers or {})})
        with self._mapped(where):
            response = await self.http.request(method, url, json=body, headers=sent)
        status = response.status_code
        if status == 401:
            return 401, None
        if status == 403:
            raise CameraAuthError(f"{where}: Arlo refused the session ({status})")
        if status == 429:
            raise AdapterError(f"{where}: Arlo is rate-limiting (429)")
        if status >= 500:
            raise AdapterError(f"{where}: Arlo failed ({status})")
        if status != 200:
            raise CameraProtocolError(f"{where}: unexpected answer {status}")
        reply = wire.parse_reply(response.content, where)
        if not reply.ok:
            raise wire.arlo_error(attrs.evolve(reply, message=self._scrub(reply.message)), where)
        return 200, reply.data

    async def _session_call(self, session: ArloSession) -> Any:
        """The session call that completes a login (``GET /hmsweb/users/session/v3``)."""
        status, data = await self._api_once(session, "GET", "/hmsweb/users/session/v3")
        if status == 401:
            raise CameraAuthError("Arlo refused the new session (401)")
        return data

    async def devices(self) -> list[ArloDevice]:
        """The account's devices (base stations, cameras, doorbells), no media asked for."""
        where = redact_address(f"{self.api_base}/hmsweb/v2/users/devices")
        return wire.parse_devices(await self.api("GET", "/hmsweb/v2/users/devices"), where)

    def _notice(self, device: ArloDevice, session: ArloSession, properties: Any) -> Any:
        return {
            "to": device.parent_id,
            "from": session.web_id,
            "resource": f"cameras/{device.device_id}",
            "action": "set",
            "publishResponse": True,
            "transId": f"web!{uuid.uuid4()}",
            "properties": properties,
        }

    async def start_stream(self, device: ArloDevice, user_agent: str) -> str:
        """Ask for the device's live stream with ``user_agent`` (which picks the format)
        and return the URL Arlo answers (a secret: it carries the egress token)."""
        session = await self.current()
        body = self._notice(
            device,
            session,
            {"activityState": "startUserStream", "cameraId": device.device_id},
        )
        headers = {"xcloudId": device.xcloud_id, "User-Agent": user_agent}
        data = await self.api("POST", "/hmsweb/users/devices/startStream", body, headers=headers)
        return wire.parse_stream_url(data, "Arlo startStream")

    async def notify(self, device: ArloDevice, properties: Any) -> None:
        """Send a notification to the device through its base station (``notify/<parent>``)."""
        session = await self.current()
        await self.api(
            "POST",
            f"/hmsweb/users/devices/notify/{device.parent_id}",
            self._notice(device, session, properties),
            headers={"xcloudId": device.xcloud_id},
        )

    async def stop_stream(self, device: ArloDevice) -> None:
        """Tell Arlo the live stream is over (the idle notification)."""
        await self.notify(device, {"activityState": "idle"})

    async def request_snapshot(self, device: ArloDevice) -> None:
        """Ask the camera for a full-frame snapshot; its URL arrives as an event."""
        session = await self.current()
        await self.api(
            "POST",
            "/hmsweb/users/devices/fullFrameSnapshot",
            self._notice(device, session, {"activityState": "fullFrameSnapshot"}),
            headers={"xcloudId": device.xcloud_id},
        )

    async def library(self, first_day: str, last_day: str) -> list[wire.LibraryItem]:
        """The account's recordings made on the days ``first_day``..``last_day`` (YYYYMMDD,
        Arlo's granularity: whole days)."""
        data = await self.api(
            "POST", "/hmsweb/users/library", {"dateFrom": first_day, "dateTo": last_day}
        )
        return wire.parse_library(data, redact_address(f"{self.api_base}/hmsweb/users/library"))

    @contextlib.asynccontextmanager
    async def events(self) -> AsyncIterator[AsyncGenerator[Mapping[str, Any], None]]:
        """Subscribe to the account's event stream (server-sent events) and yield an
        iterator of its events (JSON objects), from after Arlo's ``connected`` status. A 401
        logs in again once. The connection closes when the block ends."""
        for attempt in range(2):
            session = await self.current()
            path = "/hmsweb/client/subscribe"
            url, transaction = self._api_url(self.events_base, path)
            where = redact_address(f"{self.events_base}{path}")
            headers = self._api_headers(
                session, {"Accept": "text/event-stream", "x-transaction-id": transaction}
            )
            with self._mapped(where):
                request = self.http.build_request("GET", url, headers=headers)
                response = await self.http.send(request, stream=True)
            try:
                if response.status_code == 401 and attempt == 0:
                    await self.relogin(session)
                    continue
                status = response.status_code
                if status in (401, 403):
                    raise CameraAuthError(f"{where}: Arlo refused the session ({status})")
                if status != 200:
                    raise AdapterError(f"{where}: Arlo refused the event stream ({status})")
                events = self._iterate_events(response, where)
                try:
                    yield events
                finally:
                    await events.aclose()
                return
            finally:
                await response.aclose()

    async def _iterate_events(
        self, response: httpx.Response, where: str
    ) -> AsyncGenerator[Mapping[str, Any], None]:
        decoder = wire.SseDecoder(where)
        with self._mapped(where):
            async for chunk in response.aiter_raw():
                for text in decoder.feed(chunk):
                    event = wire.parse_event(text)
                    if event is not None:
                        yield event
        raise CameraUnreachable(f"{where}: Arlo closed the event stream")

    async def fetch_media(self, url: str, limit: int) -> tuple[bytes, httpx.Headers]:
        """GET a presigned media URL (checked against ``media_hosts``; no Authorization
        sent, no redirect followed), at most ``limit`` bytes; the body and its headers."""
        url = allowed_url(url, self._media_hosts, ("https", "http"), "media")
        where = redact_address(url)
        with self._mapped(where):
            async with self.http.stream("GET", url) as response:
                if response.status_code != 200:
                    raise CameraUnreachable(
                        f"{where}: Arlo's media store answered {response.status_code}"
                    )
                body = await read_capped(response.aiter_bytes(), limit, where)
                return body, response.headers
