"""Our own async client for the Ring Partner API, on httpx.

What it promises:

- **Tokens.** Every call carries ``Authorization: Bearer <access token>``. An access token
  within :data:`REFRESH_MARGIN_S` of its expiry is refreshed first (``grant_type=
  refresh_token`` at the configured token URL). Ring answers a *new* refresh token each time:
  the client hands the new :class:`Tokens` to ``on_tokens`` **before** it uses them, so a crash
  never leaves only a spent refresh token on disk. If ``on_tokens`` raises, the call fails
  (ConfigError) and the new tokens are kept in memory and offered again before next use.
- **401.** A call answered 401 is retried once after a refresh; a second 401 is a
  CameraAuthError. A refresh the token URL refuses means the owner's link is lost (Ring cannot
  re-issue tokens: the owner reconnects the app in Ring's "My Apps"): AccountUnlinked (a
  CameraAuthError naming the client's ``account``), on which the edge ends every open stream
  of the account's cameras and the gate audits it and tells the owner.
- **429.** Retried after ``Retry-After`` seconds when that is at most ``max_retry_after_s``,
  at most ``max_429_retries`` times; otherwise an AdapterError saying how long Ring asked to
  wait. Never an unbounded wait.
- **Hosts.** The API base URL and the token URL are settings. Redirects are never followed;
  a URL taken from a reply (a WHEP session's ``Location``) must be on the API base's scheme,
  host and port. No proxy from the environment; TLS verification as httpx does it (never off).
- **Secrets.** No token, client secret or authorization header appears in any message, log
  record or repr; reply text put in a message has every token scrubbed and is cut short.

Errors (camgate.errors): 401/403 → CameraAuthError; 404, 503 (device removed, offline) and 416
(no media at that time) → CameraUnreachable; 429 beyond the bound and 5xx → AdapterError; a
redirect, another status or a body that is not what Ring sends → CameraProtocolError; no
connection → CameraUnreachable.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from typing import Any
from urllib.parse import quote, urljoin, urlsplit

import anyio
import attrs
import httpx
from camgate import settings as kit
from camgate.adapters import Secret, http_errors
from camgate.errors import (
    AccountUnlinked,
    AdapterError,
    CameraAuthError,
    CameraProtocolError,
    CameraUnreachable,
    ConfigError,
    ValidationError,
)
from camgate.models import redact_address

from camgate_ring.devices import RingDevice, parse_devices
from camgate_ring.history import HistoryEvent, parse_history_page

__all__ = [
    "MAX_CLIP_MS",
    "post_token_form",
    "REFRESH_MARGIN_S",
    "PartnerClient",
    "Tokens",
    "check_base_url",
    "same_origin",
]

log = logging.getLogger(__name__)

#: An access token this close to its expiry (seconds) is refreshed before use.
REFRESH_MARGIN_S = 60.0
#: The largest reply body the client reads (JSON documents and images are small).
MAX_BODY = 4 * 1024 * 1024
#: The longest clip Ring serves in one download (15 minutes, in ms).
MAX_CLIP_MS = 900_000
#: The largest clip download the client accepts.
MAX_CLIP_BODY = 512 * 1024 * 1024


def _secret(value: str | Secret) -> Secret:
    return value if isinstance(value, Secret) else Secret(value)


@attrs.frozen
class Tokens:
    """The linked account's OAuth tokens. ``expires_at`` is the access token's expiry (UNIX
    seconds; 0 when unknown, which makes the client refresh before the first call). The
    tokens never show in a repr."""

    access_token: Secret = attrs.field(converter=_secret, repr=False)
    refresh_token: Secret = attrs.field(converter=_secret, repr=False)
    expires_at: float = 0.0
    scope: str = ""

    def to_json(self) -> dict[str, Any]:
        """The tokens as a JSON object (for a token file): the only place they are revealed."""
        return {
            "access_token": self.access_token.reveal(),
            "refresh_token": self.refresh_token.reveal(),
            "expires_at": self.expires_at,
            "scope": self.scope,
        }

    @classmethod
    def from_json(cls, value: Any) -> Tokens:
        """Tokens from :meth:`to_json`'s shape; ValidationError (naming no value) otherwise."""
        if not isinstance(value, Mapping):
            raise ValidationError("Ring tokens: not a JSON object")
        access, refresh = value.get("access_token"), value.get("refresh_token")
        expires, scope = value.get("expires_at", 0.0), value.get("scope", "")
        if not isinstance(access, str) or not isinstance(refresh, str) or not refresh:
            raise ValidationError("Ring tokens: access_token and refresh_token must be strings")
        if isinstance(expires, bool) or not isinstance(expires, int | float):
            raise ValidationError("Ring tokens: expires_at must be a number")
        if not isinstance(scope, str):
            raise ValidationError("Ring tokens: scope must be a string")
        return cls(access, refresh, float(expires), scope)


def check_base_url(url: str, what: str) -> str:
    """A Ring host setting: :func:`camgate.kit.check_base_url` for vendor ``ring``."""
    return kit.check_base_url(url, what, "ring")


def _origin(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return parts.scheme.lower(), (parts.hostname or "").lower(), port


def same_origin(url: str, base: str) -> bool:
    """True when ``url`` has the scheme, host and port of ``base`` (default ports filled)."""
    try:
        return _origin(url) == _origin(base)
    except ValueError:  # a port that does not parse
        return False


def _retry_after(response: httpx.Response) -> float | None:
    """Retry-After in seconds (the delta form Ring sends), None when absent or not a number."""
    raw = response.headers.get("retry-after", "").strip()
    try:
        value = float(raw)
    except ValueError:
        return None
    return value if math.isfinite(value) and value >= 0 else None


def _token_text(value: Any) -> bool:
    """True for a non-empty token of visible ASCII (what an HTTP header can carry)."""
    return (
        isinstance(value, str)
        and 0 < len(value) <= 4096
        and all(0x21 <= ord(ch) <= 0x7E for ch in value)
    )


async def post_token_form(
    url: str,
    form: Mapping[str, str],
    *,
    headers: Mapping[str, str] | None = None,
    request_timeout_s: float = 10.0,
) -> httpx.Response:
    """POST ``form`` to the token endpoint ``url`` on a client of its own (no redirect
    followed, no proxy from the environment); Ring unreachable → CameraUnreachable naming the
    redacted URL only."""
    where = redact_address(url)
    async with httpx.AsyncClient(
        timeout=httpx.Timeout(request_timeout_s), follow_redirects=False, trust_env=False
    ) as http:
        try:
            return await http.post(url, data=dict(form), headers=dict(headers or {}))
        except httpx.TimeoutException:
            raise CameraUnreachable(f"{where}: Ring did not answer in time") from None
        except httpx.HTTPError as exc:
            raise CameraUnreachable(f"{where}: cannot reach Ring ({type(exc).__name__})") from None


def _token_reply(content: bytes, old: Tokens | None, now: float, where: str) -> Tokens:
    """The tokens of an OAuth token reply (a missing refresh token keeps the old one; without
    ``old``, as for a first code exchange, it is required); CameraProtocolError when it is not
    one."""
    bad = CameraProtocolError(f"{where}: the token reply is not an OAuth token")
    try:
        body = json.loads(content[:MAX_BODY])
        access = body["access_token"]
        kept = old.refresh_token.reveal() if old is not None else ""
        refresh = body.get("refresh_token") or kept
        lifetime = float(body.get("expires_in", 3600))
        scope = body.get("scope", old.scope if old is not None else "")
    except (ValueError, KeyError, TypeError, AttributeError):
        raise bad from None
    if not _token_text(access) or not _token_text(refresh):
        raise bad
    if not isinstance(scope, str) or not math.isfinite(lifetime) or lifetime <= 0:
        raise bad
    return Tokens(access, refresh, now + lifetime, scope)


class PartnerClient:
    """A session with the Ring Partner API for one linked account (see the module docstring).

    ``api_base`` and ``token_url`` are the configured hosts; ``client_id`` and
    ``client_secret`` the partner's credentials; ``tokens`` the account's current tokens;
    ``on_tokens(tokens)`` persists rotated tokens (called before they are used); ``reload()``
    (optional) reads the persisted tokens back: before each refresh the client adopts tokens
    another client of the same account persisted since (its own refresh token is then spent),
    and refreshes only if those are due too. ``clock``
    gives UNIX seconds (tests move it). Use as an async context manager or call :meth:`aclose`.
    """

    def __init__(
        self,
        *,
        api_base: str,
        token_url: str,
        client_id: str,
        client_secret: Secret,
        tokens: Tokens,
        on_tokens: Callable[[Tokens], None] | None = None,
        reload: Callable[[], Tokens | None] | None = None,
        request_timeout_s: float = 10.0,
        max_retry_after_s: float = 5.0,
        max_429_retries: int = 2,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.api_base = check_base_url(api_base, "api_base_url")
        self.token_url = check_base_url(token_url, "token_url")
        self._client_id = client_id
        self._client_secret = client_secret
        self._tokens = tokens
        self._unsaved: Tokens | None = None
        self._on_tokens = on_tokens
        self._reload = reload
        self._max_retry_after = max_retry_after_s
        self._max_429 = max_429_retries
        self._clock = clock
        self._lock = anyio.Lock()
        self.http = httpx.AsyncClient(
            timeout=httpx.Timeout(request_timeout_s),
            follow_redirects=False,
            trust_env=False,
        )

    def __repr__(self) -> str:
        return f"PartnerClient(api_base={redact_address(self.api_base)!r})"

    async def __aenter__(self) -> PartnerClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP connections. Idempotent."""
        await self.http.aclose()

    @property
    def tokens(self) -> Tokens:
        """The tokens in use now."""
        return self._tokens

    # --- secrets kept out of text ---

    def _scrub(self, text: str, limit: int = 120) -> str:
        """``text`` with every token and the client secret replaced by ``***``, cut short."""
        for secret in (
            self._tokens.access_token,
            self._tokens.refresh_token,
            self._client_secret,
            *((self._unsaved.access_token, self._unsaved.refresh_token) if self._unsaved else ()),
        ):
            value = secret.reveal()
            if value:
                text = text.replace(value, "***")
        text = "".join(ch if ch.isprintable() else " " for ch in text)
        return text[:limit]

    def _detail(self, response: httpx.Response) -> str:
        """A JSON:API error's title (scrubbed), or the empty string."""
        try:
            errors = json.loads(response.content[:MAX_BODY]).get("errors")
            title = errors[0].get("title") or errors[0].get("detail")
        except (ValueError, AttributeError, IndexError, KeyError, TypeError):
            return ""
        return f": {self._scrub(title, 80)}" if isinstance(title, str) else ""

    # --- tokens ---

    def _persist(self, tokens: Tokens) -> None:
        if self._on_tokens is not None:
            try:
                self._on_tokens(tokens)
            except Exception as exc:
                self._unsaved = tokens
                raise ConfigError(
                    f"Ring: the rotated tokens could not be persisted ({type(exc).__name__}); "
                    "they are not used until they are"
                ) from None
        self._unsaved = None
        self._tokens = tokens

    #: The account's opaque key (``RingAdapter.account_key``), named by AccountUnlinked.
    account: str = ""
    #: What the owner does when a refresh is refused.
    LOST_HINT = "the owner must reconnect the app in Ring's My Apps"

    def _refresh_form(self) -> dict[str, str]:
        """The token request's form for a refresh (the partner's client credentials)."""
        return {
            "grant_type": "refresh_token",
            "refresh_token": self._tokens.refresh_token.reveal(),
            "client_id": self._client_id,
            "client_secret": self._client_secret.reveal(),
        }

    def _headers(self, *, refresh: bool = False) -> dict[str, str]:
        """Headers every request carries besides the bearer (none for the Partner API)."""
        return {}

    async def refresh(self, stale: Tokens | None = None) -> Tokens:
        """Refresh the access token now (rotation: the new refresh token is persisted through
        ``on_tokens`` before anything uses it) and return the new tokens. With ``stale`` (the
        tokens a refused request carried), refresh only if they are still the current ones:
        concurrent requests refused together refresh once."""
        async with self._lock:
            if stale is not None and stale is not self._tokens and self._unsaved is None:
                return self._tokens
            return await self._refresh_locked()

    async def _refresh_locked(self) -> Tokens:
        if self._unsaved is not None:
            self._persist(self._unsaved)
            return self._tokens
        latest = self._reload() if self._reload is not None else None
        if latest is not None and latest.refresh_token != self._tokens.refresh_token:
            # Another client of this account rotated the tokens: ours are spent.
            self._tokens = latest
            if latest.expires_at - self._clock() >= REFRESH_MARGIN_S:
                log.info("Ring: adopted the account's tokens rotated by another client")
                return latest
        where = redact_address(self.token_url)
        with self._mapped(where):
            response = await self.http.post(
                self.token_url, data=self._refresh_form(), headers=self._headers(refresh=True)
            )
        status = response.status_code
        if status in (400, 401):
            raise AccountUnlinked(
                f"Ring refused to refresh the account's token ({status}): the link is lost; "
                + self.LOST_HINT,
                account=self.account,
            )
        if status == 429:
            raise AdapterError(f"{where}: Ring is rate-limiting token refreshes (429)")
        if status != 200:
            raise self._status_error(response, where)
        tokens = _token_reply(response.content, self._tokens, self._clock(), where)
        self._persist(tokens)
        log.info("Ring: access token refreshed (rotated), valid until %.0f", tokens.expires_at)
        return tokens

    async def bearer(self) -> dict[str, str]:
        """The Authorization header with an access token valid for at least
        :data:`REFRESH_MARGIN_S` (refreshed first when needed)."""
        return (await self._current())[1]

    async def _current(self) -> tuple[Tokens, dict[str, str]]:
        """The tokens in use (refreshed first when needed) and their Authorization header."""
        async with self._lock:
            if (
                self._unsaved is not None
                or self._tokens.expires_at - self._clock() < REFRESH_MARGIN_S
            ):
                await self._refresh_locked()
            tokens = self._tokens
            return tokens, {"Authorization": f"Bearer {tokens.access_token.reveal()}"}

    async def authorised(self) -> tuple[Tokens, dict[str, str]]:
        """Like :meth:`bearer`, with the tokens it carries (pass them to :meth:`refresh` as
        ``stale`` when the request is refused)."""
        return await self._current()

    # --- requests ---

    def url(self, path: str) -> str:
        """The API URL of ``path`` (``/v1/…``) under the configured base."""
        return self.api_base + "/" + path.lstrip("/")

    def whep_url(self, device_id: str) -> str:
        """The device's WHEP endpoint (``POST`` an SDP offer to start a live session)."""
        device = quote(device_id, safe="")
        return self.url(f"/v1/devices/{device}/media/streaming/whep/sessions")

    def media_url(self, device_id: str, kind: str) -> str:
        """The device's media download endpoint (``kind``: ``image`` or ``video``)."""
        device = quote(device_id, safe="")
        return self.url(f"/v1/devices/{device}/media/{kind}/download")

    async def image(self, device_id: str, start_ms: int, end_ms: int) -> tuple[bytes, int]:
        """The device's latest JPEG captured within ``start_ms``..``end_ms`` (epoch ms) and its
        capture time (``X-Media-Timestamp``, epoch ms): ``POST …/media/image/download`` with
        ``latest_in_range``. No image in the range (Ring's 416) → CameraUnreachable; a reply
        without a capture time or larger than :data:`MAX_BODY` → CameraProtocolError."""
        body = {
            "type": "latest_in_range",
            "start_timestamp": start_ms,
            "end_timestamp": end_ms,
            "image_options": {"format": "jpeg"},
        }
        url = self.media_url(device_id, "image")
        response = await self.request("POST", url, json_body=body, headers={"Accept": "image/jpeg"})
        where = redact_address(url)
        raw = response.headers.get("x-media-timestamp", "").strip()
        if not raw.isdigit() or len(raw) > 15:
            raise CameraProtocolError(f"{where}: Ring's image carries no capture time")
        if len(response.content) > MAX_BODY:
            raise CameraProtocolError(f"{where}: Ring's image is larger than {MAX_BODY} bytes")
        return response.content, int(raw)

    async def video(self, device_id: str, start_ms: int, duration_ms: int) -> tuple[bytes, int]:
        """The device's recording from ``start_ms`` (epoch ms) for ``duration_ms`` (at most
        :data:`MAX_CLIP_MS`) as MP4 bytes, and how many ms it holds (Ring answers 206 with
        ``X-Media-Length`` when it holds less): ``POST …/media/video/download``. Nothing
        recorded there (416) → CameraUnreachable; larger than :data:`MAX_CLIP_BODY` or a 206
        without its length → CameraProtocolError."""
        if not 0 < duration_ms <= MAX_CLIP_MS:
            raise ValidationError(f"Ring clips last 1 ms to {MAX_CLIP_MS} ms")
        url = self.media_url(device_id, "video")
        body = {"timestamp": start_ms, "duration": duration_ms}
        response = await self.request(
            "POST", url, json_body=body, headers={"Accept": "video/mp4"}, ok=(200, 206)
        )
        where = redact_address(url)
        if len(response.content) > MAX_CLIP_BODY:
            raise CameraProtocolError(f"{where}: Ring's clip is larger than {MAX_CLIP_BODY} bytes")
        if response.status_code == 200:
            return response.content, duration_ms
        raw = response.headers.get("x-media-length", "").strip()
        if not raw.isdigit() or int(raw) > duration_ms:
            raise CameraProtocolError(f"{where}: Ring's partial clip does not say its length")
        return response.content, int(raw)

    async def history(
        self,
        device_id: str,
        event_types: tuple[str, ...] = ("motion", "ding"),
        *,
        max_pages: int = 20,
    ) -> list[HistoryEvent]:
        """The device's recorded events of ``event_types`` (``motion``, ``ding``, ``on_demand``,
        or composites such as ``motion.human``), newest first as Ring pages them: ``GET
        /v1/history/devices/{id}/events``, following ``links.next`` (only on the API's origin)
        for at most ``max_pages`` pages."""
        device = quote(device_id, safe="")
        types = quote(",".join(event_types), safe=",.")
        url: str | None = f"/v1/history/devices/{device}/events?event_types={types}"
        events: list[HistoryEvent] = []
        for _page in range(max_pages):
            if url is None:
                break
            found, url = parse_history_page(await self.get_json(url))
            events += found
        return events

    def checked(self, url: str, base: str | None = None) -> str:
        """``url`` resolved against ``base`` (default: the API base) when it is on the API
        base's origin; CameraProtocolError (URL redacted) when it points anywhere else."""
        resolved = urljoin((base or self.api_base) + "/", url)
        if not same_origin(resolved, self.api_base):
            raise CameraProtocolError(
                f"Ring pointed to another host ({redact_address(resolved)}): not followed"
            )
        return resolved

    def _mapped(self, where: str) -> AbstractContextManager[None]:
        return http_errors(where, "Ring")

    def _status_error(self, response: httpx.Response, where: str) -> AdapterError:
        status = response.status_code
        detail = self._detail(response)
        if status in (401, 403):
            return CameraAuthError(f"{where}: Ring refused the account's token ({status}{detail})")
        if status == 404:
            return CameraUnreachable(f"{where}: no such device, or it was removed (404{detail})")
        if status == 503:
            return CameraUnreachable(f"{where}: the device is offline (503{detail})")
        if status == 416:
            return CameraUnreachable(f"{where}: Ring holds no media for that time (416{detail})")
        if status == 429:
            wait = _retry_after(response)
            shown = "unknown" if wait is None else f"{wait:g} s"
            return AdapterError(f"{where}: Ring is rate-limiting (429, retry after {shown})")
        if status >= 500:
            return AdapterError(f"{where}: Ring failed ({status}{detail})")
        if 300 <= status < 400:
            return CameraProtocolError(f"{where}: Ring redirects ({status}); not followed")
        return CameraProtocolError(f"{where}: unexpected answer {status}{detail}")

    async def request(
        self,
        method: str,
        path_or_url: str,
        *,
        json_body: Any = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        ok: tuple[int, ...] = (200,),
    ) -> httpx.Response:
        """Send an authorised request to the API (a path under the base, or a URL on its
        origin) and return the reply when its status is in ``ok``; refresh-then-retry-once on
        401, bounded waits on 429, every other status mapped (module docstring)."""
        url = self.checked(path_or_url)
        where = redact_address(url)
        refreshed = False
        limited = 0
        while True:
            used, auth = await self._current()
            sent = {**self._headers(), **(headers or {}), **auth}
            with self._mapped(where):
                response = await self.http.request(
                    method, url, json=json_body, content=content, headers=sent
                )
            status = response.status_code
            if status in ok:
                return response
            if status == 401 and not refreshed:
                refreshed = True
                log.info("Ring answered 401 at %s: refreshing the token, retrying once", where)
                await self.refresh(stale=used)
                continue
            wait = _retry_after(response) if status == 429 else None
            if wait is not None and wait <= self._max_retry_after and limited < self._max_429:
                limited += 1
                log.info("Ring answered 429 at %s: retrying in %g s", where, wait)
                await anyio.sleep(wait)
                continue
            wait = self._transient_wait(response)
            if wait is not None and limited < self._max_429:
                limited += 1
                log.info("Ring answered %d at %s: retrying in %g s", status, where, wait)
                await anyio.sleep(wait)
                continue
            raise self._status_error(response, where)

    def _transient_wait(self, response: httpx.Response) -> float | None:
        """How long to wait before retrying a reply that says "try again" other than 429;
        None: not retried. The Partner API documents none."""
        return None

    async def get_json(self, path: str) -> Any:
        """GET ``path`` and return its JSON body; CameraProtocolError when it is not JSON."""
        response = await self.request("GET", path)
        try:
            return json.loads(response.content[:MAX_BODY])
        except ValueError:
            shown = redact_address(self.url(path))
            raise CameraProtocolError(f"{shown}: Ring's reply is not JSON") from None

    async def devices(self) -> list[RingDevice]:
        """The devices the owner shared with the partner (``GET /v1/devices?include=status``),
        parsed by :func:`~camgate_ring.devices.parse_devices`."""
        return parse_devices(await self.get_json("/v1/devices?include=status"))
