"""The Ring adapter: the Partner API backend (below) and, per account, the app backend (live
over :mod:`camgate_ring.signalling`; history, recordings and snapshots over
:mod:`camgate_ring.app_media`).

A camera's ``source`` is its Ring device id (as ``GET /v1/devices`` lists it). One adapter
serves one linked account: its settings (:class:`RingSettings`) carry the API hosts, the
partner's client id and secret, and the account's tokens. Live video: ``POST`` an SDP offer
(ICE gathered, receive-only, H.264) to the device's WHEP endpoint with the bearer token, read
the H.264 access units as camgate packets through :class:`camgate.media.webrtc.WebRtcReceiver`
(a keyframe requested on join), and ``DELETE`` the session when the stream closes.

Tokens are rotated on refresh. They are persisted through ``on_tokens`` (a callable given to
:class:`RingAdapter`) or, with the ``token_file`` setting, written to that file (JSON, owner
read/write only, replaced atomically) before they are used; a token file that exists is read
at start and wins over the tokens in the settings (it is newer by construction).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import attrs
from camgate import settings as kit
from camgate.adapters import SECRET, Adapter, Credentials, Secret
from camgate.errors import (
    CameraAuthError,
    CameraUnreachable,
    ConfigError,
    ValidationError,
)
from camgate.media.jpeg import decode_jpeg
from camgate.media.webrtc import WebRtcReceiver, WhepSession, whep_connect
from camgate.models import Camera, Grant, MediaPacket, Snapshot, StreamInfo
from camgate.settings import build_settings, parse_credentials, positive

from camgate_ring.app_media import DEFAULT_MEDIA_HOSTS, app_history, app_snapshot, recording
from camgate_ring.devices import RingDevice
from camgate_ring.history import HistoryEvent
from camgate_ring.partner import MAX_CLIP_MS, PartnerClient, Tokens, check_base_url
from camgate_ring.recorded import RingRecordedStream

if TYPE_CHECKING:
    from camgate_ring.app import AppClient, AppDevice
    from camgate_ring.signalling import SignallingSession

__all__ = [
    "NAME",
    "RingAdapter",
    "RingLiveStream",
    "RingSettings",
    "TokenFile",
    "write_json_atomic",
]

#: The adapter's registered name (the entry point's name, and ``Camera.adapter``).
NAME = "ring"


def _credentials(value: Mapping[str, Any]) -> dict[str, Credentials]:
    return parse_credentials(value, NAME)


def _url(what: str) -> Callable[[object, attrs.Attribute[str], str], None]:
    return kit.base_url(NAME, what)


#: The account's backends: Ring's Partner API (the default) or the Ring app's API.
BACKENDS = ("partner", "app")


def _backend(_inst: object, _attribute: attrs.Attribute[str], value: str) -> None:
    if value not in BACKENDS:
        raise ValidationError(f"ring setting backend: one of {', '.join(BACKENDS)}, not {value!r}")


def _socket_url(_inst: object, _attribute: attrs.Attribute[str], value: str) -> None:
    if not isinstance(value, str):
        raise ValidationError("ring setting signalling_url: must be a wss URL")
    scheme, _, rest = value.partition("://")
    if scheme not in ("wss", "ws"):
        raise ValidationError("ring setting signalling_url: must be a wss URL")
    check_base_url(("https" if scheme == "wss" else "http") + "://" + rest, "signalling_url")


def _optional_url(what: str) -> Callable[[object, attrs.Attribute[str], str], None]:
    required = _url(what)

    def check(inst: object, attribute: attrs.Attribute[str], value: str) -> None:
        if value != "":
            required(inst, attribute, value)

    return check


def _hosts(value: Any) -> tuple[str, ...]:
    """The ``app_media_hosts`` setting: host names (a list, or one comma-separated text)."""
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not all(isinstance(h, str) for h in items):
        raise ValidationError("ring setting app_media_hosts: a list of host names")
    hosts = tuple(h.strip().lower().strip(".") for h in items if h.strip())
    if any(not h.isascii() or not h.replace("-", "").replace(".", "").isalnum() for h in hosts):
        raise ValidationError("ring setting app_media_hosts: a list of host names")
    return hosts


@attrs.frozen
class RingSettings:
    """Validated settings of the Ring adapter, for one account.

    ``backend`` chooses the account's API: ``"partner"`` (the default, Ring's Partner API:
    the fields below) or ``"app"`` (the Ring app's API: ``app_account_file`` holds the
    account's hardware id and tokens, written by signing in — :func:`camgate_ring.app.app_login`;
    ``app_api_base_url``, ``app_token_url``, ``app_ticket_url``, ``signalling_url`` and
    ``app_snapshot_url`` are its hosts; ``app_media_hosts`` the hosts (and their sub-domains) a
    recording's signed URL may point to; it offers live video over the signalling websocket,
    snapshots and recordings — :mod:`camgate_ring.app_media`).

    ``api_base_url`` and ``token_url`` are the hosts (Ring's by default; a simulator's in
    tests); ``authorize_url`` the OAuth authorisation page for linking from camgate (no
    default: Ring documents none, docs/ring.md). ``client_id`` and ``client_secret`` are the
    partner's; ``access_token``, ``refresh_token`` and ``access_expires_at`` (UNIX seconds,
    0 = refresh first) the linked account's; ``token_file`` where rotated tokens are
    persisted. The secrets are marked :data:`~camgate.adapters.SECRET`. ``credentials`` is what
    the edge always adds; the Partner backend does not use it."""

    client_id: str = ""
    client_secret: Secret | None = attrs.field(
        default=None, converter=kit.optional_secret, repr=False, metadata=SECRET
    )
    access_token: Secret | None = attrs.field(
        default=None, converter=kit.optional_secret, repr=False, metadata=SECRET
    )
    refresh_token: Secret | None = attrs.field(
        default=None, converter=kit.optional_secret, repr=False, metadata=SECRET
    )
    access_expires_at: float = 0.0
    token_file: str | None = None
    api_base_url: str = attrs.field(
        default="https://api.amazonvision.com", validator=_url("api_base_url")
    )
    token_url: str = attrs.field(
        default="https://oauth.ring.com/oauth/token", validator=_url("token_url")
    )
    authorize_url: str = attrs.field(default="", validator=_optional_url("authorize_url"))
    request_timeout_s: float = attrs.field(default=10.0, validator=positive(NAME))
    connect_timeout_s: float = attrs.field(default=20.0, validator=positive(NAME))
    max_retry_after_s: float = attrs.field(default=5.0, validator=positive(NAME))
    read_timeout_s: float = attrs.field(default=10.0, validator=positive(NAME))
    keyframe_on_join: bool = True
    backend: str = attrs.field(default="partner", validator=_backend)
    app_account_file: str | None = None
    app_api_base_url: str = attrs.field(
        default="https://api.ring.com", validator=_url("app_api_base_url")
    )
    app_token_url: str = attrs.field(
        default="https://oauth.ring.com/oauth/token", validator=_url("app_token_url")
    )
    app_ticket_url: str = attrs.field(
        default="https://prd-api-us.prd.rings.solutions/api/v1/clap/ticket/request/signalsocket",
        validator=_url("app_ticket_url"),
    )
    signalling_url: str = attrs.field(
        default="wss://api.prod.signalling.ring.devices.a2z.com/ws", validator=_socket_url
    )
    app_gateway_wait_s: float = attrs.field(default=5.0, validator=positive(NAME))
    app_asset_wait_s: float = attrs.field(default=20.0, validator=positive(NAME))
    app_snapshot_url: str = attrs.field(
        default="https://app-snaps.ring.com/snapshots", validator=_url("app_snapshot_url")
    )
    app_media_hosts: tuple[str, ...] = attrs.field(default=DEFAULT_MEDIA_HOSTS, converter=_hosts)
    app_battery_cap_s: float = attrs.field(default=30.0, validator=positive(NAME))
    app_line_cap_s: float = attrs.field(default=60.0, validator=positive(NAME))
    credentials: dict[str, Credentials] = attrs.field(
        factory=dict, converter=_credentials, repr=False, metadata=SECRET
    )

    @classmethod
    def from_mapping(cls, settings: Mapping[str, Any]) -> RingSettings:
        """Settings from a mapping; an unknown key or a bad value is a ValidationError."""
        return build_settings(cls, NAME, settings)


class TokenFile:
    """Persists the account's tokens in one JSON file, owner read/write only, replaced
    atomically (a reader sees the old tokens or the new ones, never half of either)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"TokenFile({str(self.path)!r})"

    def load(self) -> Tokens | None:
        """The tokens in the file, None when there is no file; ValidationError when it is not
        a token file."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        try:
            value = json.loads(text)
        except ValueError:
            raise ValidationError(f"ring token file {str(self.path)!r} is not JSON") from None
        return Tokens.from_json(value)

    def save(self, tokens: Tokens) -> None:
        """Write ``tokens``; returns once they are on disk (fsync'd)."""
        write_json_atomic(self.path, tokens.to_json())


def write_json_atomic(path: Path, value: Any) -> None:
    """Write ``value`` as JSON to ``path``, owner read/write only, replacing the old file
    atomically (a reader sees the old content or the new, never half); returns once it is on
    disk (fsync'd)."""
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=".ring-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(value, out)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temp, 0o600)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise


def _account_key(settings: RingSettings, adapter: object) -> str:
    """The account's key from the file its tokens live in (shared by every adapter of the
    account), or from the adapter itself when there is none; a digest, never a token."""
    where = settings.app_account_file if settings.backend == "app" else settings.token_file
    ident = f"{settings.backend}\0{os.path.realpath(where) if where else id(adapter)}"
    return "ring-" + hashlib.sha256(ident.encode()).hexdigest()[:16]


class RingLiveStream:
    """A live session (WHEP, or the app's signalling) as a camgate
    :class:`~camgate.adapters.LiveStream`: packets from
    the first keyframe on (the receiver asked for one on join), ``info`` the stream's size as
    its SPS gives it; no packet for ``read_timeout_s`` is CameraUnreachable (a peer that
    vanished without closing). :meth:`aclose` sends ``DELETE`` for the session and closes the peer
    connection; idempotent, safe to call after a cancelled read."""

    def __init__(
        self, session: WhepSession | SignallingSession, read_timeout_s: float = 10.0
    ) -> None:
        self._session = session
        self._read_timeout = read_timeout_s
        self._packets = session.receiver.packets()
        self._first: MediaPacket | None = None
        self.info: StreamInfo = session.receiver.stream_info
        #: What ended the session, once it ended by itself (the edge's relay renews it and
        #: audits the renewal with this cause): Ring's live cap, or a close code.
        self.end_cause: str | None = None

    def __repr__(self) -> str:
        return f"RingLiveStream({self._session!r})"

    async def start(self, limit_s: float) -> None:
        """Wait for the first keyframe (packets before it cannot be decoded and are dropped);
        CameraUnreachable when Ring ends the session first or none comes within ``limit_s``."""
        with anyio.move_on_after(limit_s):
            async for packet in self._packets:
                if packet.is_keyframe:
                    self._first = packet
                    self.info = packet.stream
                    return
            raise CameraUnreachable("Ring ended the live session before the first picture")
        raise CameraUnreachable(f"Ring sent no picture within {limit_s:g} s")

    def __aiter__(self) -> AsyncIterator[MediaPacket]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[MediaPacket]:
        if self._first is not None:
            first, self._first = self._first, None
            yield first
        while True:
            with anyio.move_on_after(self._read_timeout) as waited:
                try:
                    packet = await anext(self._packets)
                except StopAsyncIteration:
                    self.end_cause = self._ended_by()
                    return
            if waited.cancelled_caught:
                raise CameraUnreachable(
                    f"Ring sent nothing for {self._read_timeout:g} s: the live session is lost"
                )
            yield packet

    def _ended_by(self) -> str:
        ended = getattr(self._session, "ended_by", None)  # the app's signalling session
        if ended is None:
            return "Ring ended the live session (its cap: 30 s on a battery, 60 s on line power)"
        code, text = ended
        if str(text).startswith("camgate's live-session cap"):
            return str(text)
        return f"Ring closed the live view (code {int(code)})"

    async def aclose(self) -> None:
        """End the session at Ring (DELETE, or the signalling ``close``) and close the peer
        connection."""
        with anyio.CancelScope(shield=True):
            await self._session.aclose()


class RingAdapter(Adapter):
    """Ring cameras of one linked account through the Partner API (or, with ``backend =
    "app"``, the Ring app's API): live video, snapshots (an image taken since the grant, its
    capture time checked) and recordings cut to the grant's window.

    ``on_tokens`` persists rotated tokens (called before they are used); without it the
    ``token_file`` setting does; with neither, a refresh is refused (ConfigError), since a
    rotated refresh token that is not persisted would lose the owner's link at the next
    restart."""

    def __init__(
        self, settings: RingSettings, *, on_tokens: Callable[[Tokens], None] | None = None
    ) -> None:
        self.settings = settings
        self._file = TokenFile(settings.token_file) if settings.token_file else None
        self._on_tokens = on_tokens or (self._file.save if self._file else None)
        self._client: PartnerClient | None = None
        self._app: AppClient | None = None
        self._account = _account_key(settings, self)

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> RingAdapter:
        """The adapter for the edge's settings mapping (the factory's ``create``)."""
        return cls(RingSettings.from_mapping(settings))

    def __repr__(self) -> str:
        return f"RingAdapter(api={self.settings.api_base_url!r})"

    def account_key(self, camera: Camera) -> str | None:
        """The Ring account's opaque key: the same for every adapter sharing the account's
        ``token_file`` (Partner) or ``app_account_file`` (app), else this adapter's own; a
        refresh Ring refuses raises AccountUnlinked naming it."""
        return self._account

    def _tokens(self) -> Tokens:
        stored = self._file.load() if self._file else None
        if stored is not None:
            return stored
        s = self.settings
        if s.refresh_token is None:
            raise CameraAuthError(
                "Ring: no tokens for the account (settings refresh_token, or a token_file): "
                "the owner must link the account first"
            )
        access = s.access_token or Secret("")
        return Tokens(access, s.refresh_token, s.access_expires_at if access.reveal() else 0.0)

    def _persist(self, tokens: Tokens) -> None:
        if self._on_tokens is None:
            raise ConfigError("Ring: rotated tokens need a token_file setting or on_tokens")
        self._on_tokens(tokens)

    def client(self) -> PartnerClient:
        """The account's API client (made on first use, closed by :meth:`aclose`)."""
        if self._client is None:
            s = self.settings
            if not s.client_id or s.client_secret is None:
                raise ConfigError("Ring: settings client_id and client_secret are required")
            self._client = PartnerClient(
                api_base=s.api_base_url,
                token_url=s.token_url,
                client_id=s.client_id,
                client_secret=s.client_secret,
                tokens=self._tokens(),
                on_tokens=self._persist,
                reload=self._file.load if self._file else None,
                request_timeout_s=s.request_timeout_s,
                max_retry_after_s=s.max_retry_after_s,
                clock=time.time,
            )
            self._client.account = self._account
        return self._client

    def app_client(self) -> AppClient:
        """The app-backend client of the account in ``app_account_file`` (made on first use,
        closed by :meth:`aclose`); rotated tokens are written there before use. ConfigError
        without the setting, CameraAuthError when the owner has not signed in."""
        from camgate_ring.app import AppAccountFile, AppClient

        if self._app is None:
            s = self.settings
            if not s.app_account_file:
                raise ConfigError("Ring app backend: the app_account_file setting is required")
            account_file = AppAccountFile(s.app_account_file)
            account = account_file.load_or_create()
            if account.tokens is None:
                raise CameraAuthError(
                    "Ring app backend: the owner has not signed in (password and code)"
                )
            self._app = AppClient(
                api_base=s.app_api_base_url,
                token_url=s.app_token_url,
                hardware_id=account.hardware_id,
                tokens=account.tokens,
                on_tokens=account_file.save_tokens,
                request_timeout_s=s.request_timeout_s,
                max_retry_after_s=s.max_retry_after_s,
                gateway_wait_s=s.app_gateway_wait_s,
                asset_wait_s=s.app_asset_wait_s,
            )
            self._app.account = self._account
        return self._app

    async def app_device(self, source: str) -> AppDevice:
        """The app's device ``source`` (its numeric id), checked before any media request:
        CameraUnreachable when it is not listed, offline, or its live view is turned off."""
        for device in await self.app_client().app_devices():
            if device.id == source:
                if device.online is False:
                    raise CameraUnreachable(f"Ring device {source}: offline")
                if device.live_view_disabled:
                    raise CameraUnreachable(
                        f"Ring device {source}: live view is turned off in the owner's Ring app "
                        "(a mode or a privacy setting)"
                    )
                return device
        raise CameraUnreachable(f"Ring device {source}: no such device on the account")

    async def devices(self) -> list[RingDevice]:
        """The devices the owner shared (no media asked for). Not :meth:`discover`: Partner
        devices carry no position, which the owner gives at enrolment."""
        return await self.client().devices()

    async def history(
        self, device_id: str, event_types: tuple[str, ...] = ("motion", "ding")
    ) -> list[HistoryEvent]:
        """The device's recorded events (motion, dings…: when something happened, to choose a
        recorded window from). Asks Ring for no media; the caller decides who may see them."""
        if self.settings.backend == "app":
            events = await app_history(self.app_client(), device_id)
            return [e.history(device_id) for e in events if e.kind in event_types]
        return await self.client().history(device_id, event_types)

    async def open_live(self, camera: Camera, grant: Grant) -> RingLiveStream:
        """Start a WHEP session for the camera's device and return the stream once its first
        keyframe arrived (CameraUnreachable when none came within ``connect_timeout_s`` of the
        answer; the session is then DELETEd). A 401/403 from the WHEP endpoint is retried once
        after a token refresh; everything else as :func:`~camgate.media.webrtc.whep_connect`
        maps it. The app backend: :meth:`_open_app_live`."""
        if self.settings.backend == "app":
            return await self._open_app_live(camera)
        client = self.client()
        url = client.whep_url(camera.source)
        session: WhepSession | None = None
        for attempt in range(2):
            receiver = WebRtcReceiver(
                keyframe_on_join=self.settings.keyframe_on_join,
                connect_timeout=self.settings.connect_timeout_s,
            )
            used, auth = await client.authorised()
            try:
                session = await whep_connect(
                    url,
                    receiver,
                    headers=auth,
                    client=client.http,
                    request_timeout=self.settings.request_timeout_s,
                )
                break
            except CameraAuthError:
                if attempt:
                    raise
                await client.refresh(stale=used)
        assert session is not None
        stream = RingLiveStream(session, self.settings.read_timeout_s)
        try:
            await stream.start(self.settings.connect_timeout_s)
        except BaseException:
            await stream.aclose()
            raise
        return stream

    async def _open_app_live(self, camera: Camera) -> RingLiveStream:
        """The app backend's live view: the device checked (:meth:`app_device`), a ticket, the
        signalling socket (:mod:`camgate_ring.signalling`), the stream once its first keyframe
        arrived (a keyframe requested on join, as for WHEP). Each session is capped as Ring caps
        Partner ones (``app_battery_cap_s`` when the app reports a battery level, else
        ``app_line_cap_s``): the stream then ends and the edge's relay renews it within the
        grant, the renewal's first packet marked as a discontinuity."""
        from camgate_ring.signalling import request_ticket, signalling_connect

        s = self.settings
        device = await self.app_device(camera.source)
        ticket = await request_ticket(self.app_client(), s.app_ticket_url)
        receiver = WebRtcReceiver(
            keyframe_on_join=s.keyframe_on_join, connect_timeout=s.connect_timeout_s
        )
        battery = device.battery_percentage is not None
        session = await signalling_connect(
            s.signalling_url,
            ticket,
            int(device.id),
            receiver,
            timeout_s=s.connect_timeout_s,
            limit_s=s.app_battery_cap_s if battery else s.app_line_cap_s,
        )
        stream = RingLiveStream(session, s.read_timeout_s)
        try:
            await stream.start(s.connect_timeout_s)
        except BaseException:
            await stream.aclose()
            raise
        return stream

    async def snapshot(self, camera: Camera, grant: Grant) -> Snapshot:
        """The device's latest image captured since the grant was issued (Ring has no "take
        one now" call: ``latest_in_range`` from ``grant.issued_at`` to now). An image Ring
        dates before the grant is refused (CameraUnreachable: battery cameras keep stale ones),
        as is none in the range (416); a reply that is not a JPEG is a CameraProtocolError.
        The app backend asks for the next image after the grant's issue
        (:func:`~camgate_ring.app_media.app_snapshot`) and checks its capture time the same
        way."""
        issued = grant.issued_at
        now = datetime.now(UTC)
        start_ms = int(issued.timestamp() * 1000)
        end_ms = max(start_ms, int(now.timestamp() * 1000))
        if self.settings.backend == "app":
            data, taken_ms = await app_snapshot(
                self.app_client(), self.settings.app_snapshot_url, camera.source, start_ms
            )
        else:
            data, taken_ms = await self.client().image(camera.source, start_ms, end_ms)
        if taken_ms < start_ms:
            stale = (start_ms - taken_ms) / 1000
            raise CameraUnreachable(
                f"Ring served an image taken {stale:.0f} s before the grant: refused (stale)"
            )
        width, height = decode_jpeg(data)
        taken = datetime.fromtimestamp(taken_ms / 1000, UTC)
        return Snapshot(
            grant_id=grant.id,
            camera_id=camera.id,
            jpeg=data,
            width=width,
            height=height,
            taken_at=taken,
            notes={"captured_at": taken.isoformat(timespec="milliseconds")},
        )

    async def recorded(self, camera: Camera, grant: Grant) -> RingRecordedStream:
        """The device's recording inside ``grant.window_start``..``window_end`` (cut at now),
        downloaded in 15-minute pieces and cut to the window (:mod:`camgate_ring.recorded`).
        Nothing recorded there (Ring's 416) → CameraUnreachable. The app backend: the
        recorded events overlapping the window (:meth:`_app_recorded`)."""
        assert grant.window_start is not None and grant.window_end is not None
        window = (grant.window_start, min(grant.window_end, datetime.now(UTC)))
        if self.settings.backend == "app":
            return await self._app_recorded(camera.source, window)
        client = self.client()
        return await RingRecordedStream.open(
            lambda start_ms, duration_ms: client.video(camera.source, start_ms, duration_ms),
            window,
        )

    async def _app_recorded(
        self, source: str, window: tuple[datetime, datetime]
    ) -> RingRecordedStream:
        """The app backend's recording of ``window``: the device's events whose recording is
        ready and which overlap it (an event without a duration counts as lasting up to
        :data:`~camgate_ring.partner.MAX_CLIP_MS`), oldest first, each downloaded through
        ``share/play`` as the consumer reads and cut to the window without re-encoding (the
        Partner path's :class:`~camgate_ring.recorded.RingRecordedStream`). An event starting
        inside an earlier one's recording is skipped (its pictures would repeat). No event →
        CameraUnreachable."""
        client = self.app_client()
        longest = timedelta(milliseconds=MAX_CLIP_MS)
        events = await app_history(client, source, since=window[0] - longest)
        dings: dict[int, str] = {}
        parts: list[tuple[int, int]] = []
        for event in sorted(events, key=lambda e: e.start):
            end = event.end or event.start + longest
            if not event.recorded or end < window[0] or event.start > window[1]:
                continue
            start_ms = int(event.start.timestamp() * 1000)
            duration_ms = max(1, int((end - event.start).total_seconds() * 1000))
            if parts and start_ms < parts[-1][0] + parts[-1][1]:
                continue
            dings[start_ms] = event.id
            parts.append((start_ms, duration_ms))
        if not parts:
            raise CameraUnreachable(f"Ring device {source}: no recorded event in the window")
        hosts = self.settings.app_media_hosts

        async def download(start_ms: int, duration_ms: int) -> tuple[bytes, int]:
            return await recording(client, dings[start_ms], hosts=hosts), duration_ms

        return await RingRecordedStream.open(download, window, parts)

    async def aclose(self) -> None:
        """Close the API clients. Idempotent."""
        if self._client is not None:
            await self._client.aclose()
            self._client = None
        if self._app is not None:
            await self._app.aclose()
            self._app = None
