"""The Ring app's (consumer) API backend: signing in with the owner's password and 2FA, a stable
``hardware_id``, single-use refresh tokens persisted before use, and the owner's devices.

This is the API the Ring app itself uses; Ring does not document it (the community does: see
docs/ring.md, "The app backend", for how its consent differs from the Partner API's). What it
promises:

- **Sign-in.** :func:`app_login` sends the password grant (``client_id=ring_official_android``,
  ``scope=client``, ``2fa-support: true``, the account's ``hardware_id``). Ring's 412 is
  :class:`TwoFactorRequired` (the channel — ``sms``, ``email`` or ``totp`` — and the masked
  destination Ring names): call again with the code. A wrong code is :class:`WrongCode`; Ring's
  limit of 10 codes in 10 minutes is :class:`TwoFactorLimited`; anything else Ring refuses is a
  CameraAuthError. The password and the code never appear in a message, log record or repr.
- **hardware_id.** One random id per account (:func:`new_hardware_id`, a UUID 4, never derived
  from a MAC address), kept in the :class:`AppAccountFile` with the tokens: each new value would
  register another "authorized client device" on the owner's account.
- **Tokens.** Refresh tokens are single-use: :class:`AppClient` (a :class:`PartnerClient` with
  the app's refresh form and headers) hands the new pair to ``on_tokens`` before using it;
  :class:`AppAccountFile` writes the account atomically. 401 → refresh → retry once, bounded
  429, as the Partner client does.
- **Session and devices.** :meth:`AppClient.session` creates the client session once per client
  (Ring limits creations per day); :meth:`AppClient.app_devices` lists every camera of every group
  of ``GET /clients_api/ring_devices`` (:func:`parse_app_devices`, fuzzed), with the position
  the app knows, for enrolment to offer as a default the owner confirms.
- **Back-off.** A 504 is retried after ``gateway_wait_s`` (5 s) and a 404 carrying one of
  Ring's asset error codes (:data:`ASSET_ERRORS`: 7050, 7019, 7061 to 7063) after ``asset_wait_s``
  (20 s), as the app's clients do, at most twice in all with the 429 retries; a 504 that
  persists is an AdapterError, a persisting asset error a CameraUnreachable naming it.
"""

from __future__ import annotations

import json
import math
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import attrs
import httpx
from camgate.adapters import Secret
from camgate.errors import (
    AdapterError,
    CameraAuthError,
    CameraProtocolError,
    CameraUnreachable,
    ValidationError,
)
from camgate.models import redact_address

from camgate_ring.adapter import write_json_atomic
from camgate_ring.partner import (
    MAX_BODY,
    PartnerClient,
    Tokens,
    _token_reply,
    check_base_url,
    post_token_form,
)

__all__ = [
    "APP_CLIENT_ID",
    "ASSET_ERRORS",
    "AppAccount",
    "AppAccountFile",
    "AppClient",
    "AppDevice",
    "TwoFactorLimited",
    "TwoFactorRequired",
    "WrongCode",
    "app_login",
    "asset_error",
    "new_hardware_id",
    "parse_app_devices",
]

#: The app's OAuth client id (the Android app's).
APP_CLIENT_ID = "ring_official_android"
#: The User-Agent the app sends (Ring wants one; its content is not checked).
USER_AGENT = "android:com.ringapp"
#: The device groups of ``ring_devices`` that hold cameras and doorbells.
CAMERA_GROUPS = ("doorbots", "authorized_doorbots", "stickup_cams")
#: The most devices one document may list.
MAX_APP_DEVICES = 1000
_LIMIT_TEXT = "too many requests from dependency service"
#: The app API's asset error codes (a 404 whose body is ``{"errors": [code]}``): retried after
#: ``asset_wait_s``, and named when they persist.
ASSET_ERRORS = {
    7050: "Ring has no such asset (no device answering)",
    7019: "the device is offline",
    7061: "the device is on cellular backup",
    7062: "the device is updating its firmware",
    7063: "the device is under maintenance",
}


class TwoFactorRequired(CameraAuthError):
    """Ring sent (or wants) a verification code: ``channel`` (``sms``, ``email``, ``totp``),
    ``destination`` (the masked phone or address Ring names, may be empty), ``retry_in_s``."""

    def __init__(self, channel: str, destination: str, retry_in_s: float) -> None:
        where = f" to {destination}" if destination else ""
        how = "from the authenticator app" if channel == "totp" else f"sent by {channel}{where}"
        super().__init__(f"Ring asks for the verification code {how}: sign in again with it")
        self.channel = channel
        self.destination = destination
        self.retry_in_s = retry_in_s


class WrongCode(CameraAuthError):
    """Ring refused the verification code (wrong or expired)."""


class TwoFactorLimited(CameraAuthError):
    """Ring's limit on verification codes (10 in 10 minutes) was reached."""


def new_hardware_id() -> str:
    """A new random hardware id (UUID 4). Never derived from the machine (no MAC address)."""
    return str(uuid.uuid4())


@attrs.frozen
class AppAccount:
    """One app-backend account as persisted: its ``hardware_id`` and, once signed in, its
    ``tokens``."""

    hardware_id: str
    tokens: Tokens | None = None

    def to_json(self) -> dict[str, Any]:
        """The account as a JSON object (the only place its tokens are revealed)."""
        return {
            "hardware_id": self.hardware_id,
            "tokens": None if self.tokens is None else self.tokens.to_json(),
        }

    @classmethod
    def from_json(cls, value: Any) -> AppAccount:
        """The account of :meth:`to_json`'s shape; ValidationError otherwise."""
        if not isinstance(value, Mapping):
            raise ValidationError("Ring app account: not a JSON object")
        hardware_id = value.get("hardware_id")
        if not isinstance(hardware_id, str) or not 8 <= len(hardware_id) <= 64:
            raise ValidationError("Ring app account: hardware_id is not an id")
        tokens = value.get("tokens")
        return cls(hardware_id, None if tokens is None else Tokens.from_json(tokens))


class AppAccountFile:
    """An app account in one JSON file (owner read/write only, replaced atomically): the
    hardware id made once, and the current tokens."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"AppAccountFile({str(self.path)!r})"

    def load_or_create(self) -> AppAccount:
        """The account in the file; a new one (a new hardware id, no tokens), written at once,
        when there is no file."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            account = AppAccount(new_hardware_id())
            self.save(account)
            return account
        try:
            return AppAccount.from_json(json.loads(text))
        except ValueError:
            raise ValidationError(f"Ring app account {str(self.path)!r} is not JSON") from None

    def save(self, account: AppAccount) -> None:
        """Write ``account``; returns once it is on disk."""
        write_json_atomic(self.path, account.to_json())

    def save_tokens(self, tokens: Tokens) -> None:
        """Keep the account's hardware id and store ``tokens`` (an ``on_tokens`` callback)."""
        self.save(attrs.evolve(self.load_or_create(), tokens=tokens))


def asset_error(content: bytes) -> int | None:
    """The first known asset error code of a reply body ``{"errors": [code, …]}``, else None."""
    try:
        body = json.loads(content[:MAX_BODY])
    except (ValueError, RecursionError):
        return None
    errors = body.get("errors") if isinstance(body, Mapping) else None
    if not isinstance(errors, list):
        return None
    return next((e for e in errors if type(e) is int and e in ASSET_ERRORS), None)


def _headers(hardware_id: str) -> dict[str, str]:
    return {"hardware_id": hardware_id, "User-Agent": USER_AGENT}


def _error_fields(content: bytes) -> tuple[str, str]:
    """(``error``, ``error_description``) of a token reply, empty when absent."""
    try:
        body = json.loads(content[:MAX_BODY])
    except ValueError:
        return "", ""
    if not isinstance(body, Mapping):
        return "", ""
    error, description = body.get("error", ""), body.get("error_description", "")
    return (
        error if isinstance(error, str) else "",
        description if isinstance(description, str) else "",
    )


def two_factor(content: bytes) -> TwoFactorRequired:
    """The :class:`TwoFactorRequired` of a 412 reply's body (``tsv_state``, ``phone``,
    ``next_time_in_secs``); CameraProtocolError when it is not one."""
    try:
        body = json.loads(content[:MAX_BODY])
        channel, phone = body.get("tsv_state", "sms"), body.get("phone", "")
        wait = float(body.get("next_time_in_secs", 0))
    except (ValueError, AttributeError, TypeError):
        raise CameraProtocolError("Ring's 2FA answer is not what Ring sends") from None
    if channel not in ("sms", "email", "totp") or not isinstance(phone, str):
        raise CameraProtocolError("Ring's 2FA answer names no known channel")
    if len(phone) > 64 or not phone.isprintable() or not math.isfinite(wait) or wait < 0:
        raise CameraProtocolError("Ring's 2FA answer is not what Ring sends")
    return TwoFactorRequired(channel, phone, wait)


async def app_login(
    *,
    token_url: str,
    username: str,
    password: Secret,
    hardware_id: str,
    code: Secret | None = None,
    request_timeout_s: float = 10.0,
    clock: Callable[[], float] = time.time,
) -> Tokens:
    """Sign in with the owner's password (and ``code`` once Ring asked for one); the tokens.
    Errors as the module docstring says; nothing is persisted here (give the tokens to
    :meth:`AppAccountFile.save_tokens`)."""
    url = check_base_url(token_url, "app_token_url")
    where = redact_address(url)
    form = {
        "grant_type": "password",
        "username": username,
        "password": password.reveal(),
        "client_id": APP_CLIENT_ID,
        "scope": "client",
    }
    headers = {**_headers(hardware_id), "2fa-support": "true"}
    if code is not None:
        headers["2fa-code"] = code.reveal()
    response = await post_token_form(
        url, form, headers=headers, request_timeout_s=request_timeout_s
    )
    status = response.status_code
    error, description = _error_fields(response.content)
    if description == _LIMIT_TEXT:
        raise TwoFactorLimited(
            "Ring allows at most 10 verification codes in 10 minutes: wait, then sign in again"
        )
    if status == 200:
        return _token_reply(response.content, None, clock(), where)
    if status == 412:
        raise two_factor(response.content)
    if status == 400 and error.startswith("Verification Code"):
        raise WrongCode("Ring refused the verification code (wrong or expired)")
    if status in (400, 401):
        raise CameraAuthError("Ring refused the user name or password")
    if status == 429:
        raise AdapterError(f"{where}: Ring is rate-limiting sign-ins (429)")
    raise CameraProtocolError(f"{where}: unexpected answer {status} to the sign-in")


@attrs.frozen
class AppDevice:
    """A camera or doorbell of the app's device list: Ring's numeric ``id`` (as text: a
    camera's source), ``name``, ``kind`` (the model), ``group`` (``doorbots``…), the position
    the app knows (``latitude``/``longitude``, None when absent), ``battery_percentage`` (None
    on line power or unknown), ``online`` and ``live_view_disabled`` (a mode turned live view
    off: a refusal before any media request)."""

    id: str
    name: str
    kind: str
    group: str
    latitude: float | None
    longitude: float | None
    battery_percentage: int | None
    online: bool | None
    live_view_disabled: bool


def _text(value: Any, what: str, limit: int = 256) -> str:
    if not isinstance(value, str) or len(value) > limit or not value.isprintable():
        raise CameraProtocolError(f"Ring app device list: {what} is not a short text")
    return value


def _coordinate(value: Any, bound: float) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise CameraProtocolError("Ring app device list: a coordinate is not a number")
    if not math.isfinite(value) or abs(value) > bound:
        raise CameraProtocolError("Ring app device list: a coordinate is out of range")
    return float(value)


def _battery(value: Any) -> int | None:
    """Ring sends a number, a numeric string or null (and numbers above 100 for some models:
    not a percentage)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, int) and 0 <= value <= 100:
        return value
    return None


def _app_device(item: Any, group: str) -> AppDevice:
    if not isinstance(item, Mapping):
        raise CameraProtocolError("Ring app device list: a device is not an object")
    raw_id = item.get("id")
    if isinstance(raw_id, bool) or not isinstance(raw_id, int) or raw_id < 0:
        raise CameraProtocolError("Ring app device list: a device id is not a number")
    alerts, settings = item.get("alerts") or {}, item.get("settings") or {}
    if not isinstance(alerts, Mapping) or not isinstance(settings, Mapping):
        raise CameraProtocolError("Ring app device list: alerts or settings is not an object")
    connection = alerts.get("connection")
    disabled = settings.get("live_view_disabled", False)
    if not isinstance(disabled, bool):
        raise CameraProtocolError("Ring app device list: live_view_disabled is not a boolean")
    return AppDevice(
        id=str(raw_id),
        name=_text(item.get("description", ""), "a device name"),
        kind=_text(item.get("kind", ""), "a device kind", 64),
        group=group,
        latitude=_coordinate(item.get("latitude"), 90.0),
        longitude=_coordinate(item.get("longitude"), 180.0),
        battery_percentage=_battery(item.get("battery_life")),
        online=None if connection is None else connection == "online",
        live_view_disabled=disabled,
    )


def parse_app_devices(document: Any) -> list[AppDevice]:
    """The cameras of every group of a ``ring_devices`` document (groups without cameras —
    chimes, base stations — are skipped; a missing group is empty); CameraProtocolError when
    it is not what Ring sends, lists a device twice or more than :data:`MAX_APP_DEVICES`."""
    if not isinstance(document, Mapping):
        raise CameraProtocolError("Ring app device list: not an object")
    devices: list[AppDevice] = []
    seen: set[str] = set()
    for group in CAMERA_GROUPS:
        items = document.get(group, [])
        if not isinstance(items, list):
            raise CameraProtocolError(f"Ring app device list: {group} is not a list")
        if len(devices) + len(items) > MAX_APP_DEVICES:
            raise CameraProtocolError("Ring app device list: too many devices")
        for item in items:
            device = _app_device(item, group)
            if device.id in seen:
                raise CameraProtocolError("Ring app device list: a device is listed twice")
            seen.add(device.id)
            devices.append(device)
    return devices


class AppClient(PartnerClient):
    """A session with the app API for one signed-in account: a :class:`PartnerClient` whose
    refresh is the app's (``client_id=ring_official_android``, ``scope=client``, no secret)
    and whose every request carries the account's ``hardware_id`` and the app's User-Agent.
    ``on_tokens`` must persist each rotated pair (single-use refresh tokens) before use."""

    def __init__(
        self,
        *,
        api_base: str,
        token_url: str,
        hardware_id: str,
        tokens: Tokens,
        on_tokens: Callable[[Tokens], None],
        request_timeout_s: float = 10.0,
        max_retry_after_s: float = 5.0,
        clock: Callable[[], float] = time.time,
        gateway_wait_s: float = 5.0,
        asset_wait_s: float = 20.0,
    ) -> None:
        self.gateway_wait_s = gateway_wait_s
        self.asset_wait_s = asset_wait_s
        super().__init__(
            api_base=api_base,
            token_url=token_url,
            client_id=APP_CLIENT_ID,
            client_secret=Secret(""),
            tokens=tokens,
            on_tokens=on_tokens,
            request_timeout_s=request_timeout_s,
            max_retry_after_s=max_retry_after_s,
            clock=clock,
        )
        self.hardware_id = hardware_id
        self._session: Any = None

    def __repr__(self) -> str:
        return f"AppClient(api_base={redact_address(self.api_base)!r})"

    LOST_HINT = "the owner must sign in again (password and verification code)"

    def _refresh_form(self) -> dict[str, str]:
        return {
            "grant_type": "refresh_token",
            "refresh_token": self.tokens.refresh_token.reveal(),
            "client_id": APP_CLIENT_ID,
            "scope": "client",
        }

    def _headers(self, *, refresh: bool = False) -> dict[str, str]:
        return _headers(self.hardware_id)

    def _transient_wait(self, response: httpx.Response) -> float | None:
        """504 → ``gateway_wait_s``; a 404 carrying an asset error code → ``asset_wait_s``
        (as the app's clients do); each retried at most twice, then mapped."""
        if response.status_code == 504:
            return self.gateway_wait_s
        if response.status_code == 404 and asset_error(response.content) is not None:
            return self.asset_wait_s
        return None

    def _status_error(self, response: httpx.Response, where: str) -> AdapterError:
        code = asset_error(response.content) if response.status_code == 404 else None
        if code is not None:
            return CameraUnreachable(f"{where}: {ASSET_ERRORS[code]} (Ring asset error {code})")
        if response.status_code == 504:
            return AdapterError(f"{where}: Ring's gateway timed out (504) again: try later")
        return super()._status_error(response, where)

    async def session(self) -> Any:
        """The client session (``POST /clients_api/session``), created once per client and
        reused (Ring limits how many it creates a day); its profile."""
        if self._session is None:
            body = {
                "device": {
                    "hardware_id": self.hardware_id,
                    "metadata": {"api_version": "11", "device_model": "camgate"},
                    "os": "android",
                }
            }
            response = await self.request(
                "POST", "/clients_api/session", json_body=body, ok=(200, 201)
            )
            try:
                self._session = json.loads(response.content[:MAX_BODY]).get("profile", {})
            except (ValueError, AttributeError):
                raise CameraProtocolError("Ring's session reply is not JSON") from None
        return self._session

    async def app_devices(self) -> list[AppDevice]:
        """The account's cameras in every group (a session is made first, once)."""
        await self.session()
        return parse_app_devices(await self.get_json("/clients_api/ring_devices"))
