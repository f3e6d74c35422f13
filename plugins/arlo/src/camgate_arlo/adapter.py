"""The Arlo adapter: live video over RTSPS (read by the RTSP plugin's reader) and full-frame
snapshots announced on the event stream.

A camera's ``source`` is its Arlo device id (as :meth:`ArloAdapter.devices` lists it); its
position comes from the owner at enrolment (Arlo's devices carry none). One adapter serves one
account: its settings (:class:`ArloSettings`) carry the hosts, the e-mail and password, and
the session (token) persisted as a secret setting or in ``session_file``.

**Live**: ``startStream`` with an Android User-Agent (Arlo then answers an ``rtsp://…:443``
URL that is RTSP over TLS); the URL's host must be in ``stream_hosts``; it is opened as
``rtsps://`` with certificate verification on (``ca_file`` to trust another authority) through
:class:`camgate_rtsp.adapter.RtspLiveStream`, whose guard refuses any redirect elsewhere.
Arlo ends a stream after 30 minutes: the stream renews itself ``renew_margin_s`` before
``stream_cap_s`` by a new ``startStream``; the first packet after it is a keyframe marked
``discontinuity``, and the stream's ``notes`` (in the access record) count the sessions.
Closing the stream closes the RTSPS connection and sends the idle notification.

**Snapshot**: subscribe to the event stream, ask for a full-frame snapshot, wait for the event
carrying its presigned URL, fetch the JPEG (URL host in ``media_hosts``, size capped) and check
its capture time (``Last-Modified``) is not before the request. An event stream that stays
silent ``event_stall_s`` is reconnected (logging in again if Arlo asks) and the snapshot asked
again; no event within ``snapshot_timeout_s`` is a CameraUnreachable.
"""

from __future__ import annotations

import contextlib
import email.utils
import io
import json
import logging
import os
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import anyio
import attrs
import av
import av.error
from camgate import settings as kit
from camgate.adapters import SECRET, VENDOR_BODY_LIMIT, Adapter, Credentials, Secret
from camgate.errors import CameraProtocolError, CameraUnreachable, NoVideoError, ValidationError
from camgate.media.jpeg import decode_jpeg
from camgate.media.window import Cut, WindowCut
from camgate.models import Camera, Grant, MediaPacket, Snapshot, StreamInfo, redact_address
from camgate.settings import build_settings, parse_credentials, positive
from camgate_rtsp.adapter import RtspLiveStream, RtspSettings

from camgate_arlo import wire
from camgate_arlo.client import (
    ANDROID_USER_AGENT,
    ArloClient,
    ArloSession,
    LoginTransport,
    allowed_url,
)
from camgate_arlo.wire import ArloDevice

__all__ = [
    "NAME",
    "ArloAdapter",
    "ArloLiveStream",
    "ArloRecordedStream",
    "ArloSettings",
    "SessionFile",
    "demux_mp4",
]

log = logging.getLogger(__name__)

#: The adapter's registered name (the entry point's name, and ``Camera.adapter``).
NAME = "arlo"
#: Arlo ends a live session after this long (seconds).
ARLO_STREAM_CAP_S = 1800.0


def _credentials(value: Mapping[str, Any]) -> dict[str, Credentials]:
    return parse_credentials(value, NAME)


def _url(what: str) -> Callable[[object, attrs.Attribute[str], str], None]:
    return kit.base_url(NAME, what)


def _hosts(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple) or not all(
        isinstance(v, str) and v.strip(".") for v in value
    ):
        raise ValidationError("arlo setting: a host list must be a list of host names")
    return tuple(v.lower() for v in value)


@attrs.frozen
class ArloSettings:
    """Validated settings of the Arlo adapter.

    Hosts: ``auth_base_url`` (login), ``api_base_url``, ``events_base_url``; the hosts a
    stream URL (``stream_hosts``) or a presigned image (``media_hosts``) may name (a leading
    dot allows subdomains). Account: ``email``, ``password`` and ``session`` (the JSON of
    :class:`~camgate_arlo.client.ArloSession`), the secrets marked
    :data:`~camgate.adapters.SECRET`; ``session_file`` persists new sessions (JSON, owner
    only). ``ca_file`` is the authority an RTSPS certificate must chain to (default: the
    system's). ``user_agent`` is sent to ``startStream`` (it picks RTSPS). Times in seconds.
    ``credentials`` is what the edge always adds; the adapter does not use it."""

    auth_base_url: str = attrs.field(default="https://ocapi-app.arlo.com", validator=_url("auth"))
    api_base_url: str = attrs.field(default="https://myapi.arlo.com", validator=_url("api"))
    events_base_url: str = attrs.field(default="https://myapi.arlo.com", validator=_url("events"))
    stream_hosts: tuple[str, ...] = attrs.field(default=(".arlo.com",), converter=_hosts)
    media_hosts: tuple[str, ...] = attrs.field(
        default=(".arlo.com", ".amazonaws.com"), converter=_hosts
    )
    email: str = ""
    password: Secret | None = attrs.field(
        default=None, converter=kit.optional_secret, repr=False, metadata=SECRET
    )
    session: Secret | None = attrs.field(
        default=None, converter=kit.optional_secret, repr=False, metadata=SECRET
    )
    session_file: str | None = None
    ca_file: str | None = None
    user_agent: str = ANDROID_USER_AGENT
    request_timeout_s: float = attrs.field(default=10.0, validator=positive(NAME))
    connect_timeout_s: float = attrs.field(default=10.0, validator=positive(NAME))
    read_timeout_s: float = attrs.field(default=10.0, validator=positive(NAME))
    stream_cap_s: float = attrs.field(default=ARLO_STREAM_CAP_S, validator=positive(NAME))
    renew_margin_s: float = attrs.field(default=60.0, validator=positive(NAME))
    snapshot_timeout_s: float = attrs.field(default=20.0, validator=positive(NAME))
    event_stall_s: float = attrs.field(default=8.0, validator=positive(NAME))
    clock_skew_s: float = attrs.field(default=2.0, validator=positive(NAME))
    push_poll_s: float = attrs.field(default=2.0, validator=positive(NAME))
    push_timeout_s: float = attrs.field(default=120.0, validator=positive(NAME))
    clip_limit_bytes: int = attrs.field(default=64 * 1024 * 1024, validator=positive(NAME))
    credentials: dict[str, Credentials] = attrs.field(
        factory=dict, converter=_credentials, repr=False, metadata=SECRET
    )

    def __attrs_post_init__(self) -> None:
        if self.renew_margin_s >= self.stream_cap_s:
            raise ValidationError("arlo setting renew_margin_s: must be below stream_cap_s")

    @classmethod
    def from_mapping(cls, settings: Mapping[str, Any]) -> ArloSettings:
        """Settings from a mapping; an unknown key or a bad value is a ValidationError."""
        return build_settings(cls, NAME, settings)

    def rtsp_settings(self) -> RtspSettings:
        """The RTSP reader's settings for an Arlo stream (TLS verified with ``ca_file``).
        Closing waits for the reader to close the connection up to ``read_timeout_s`` (it
        returns as soon as it is closed, normally within a packet interval), so a closed
        stream holds nothing open."""
        return RtspSettings(
            connect_timeout_s=self.connect_timeout_s,
            read_timeout_s=self.read_timeout_s,
            close_wait_s=self.read_timeout_s,
            ca_file=self.ca_file,
        )


class SessionFile:
    """Persists the account's session in one JSON file, owner read/write only, replaced
    atomically (a reader sees the old session or the new one, never half of either)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"SessionFile({str(self.path)!r})"

    def load(self) -> ArloSession | None:
        """The session in the file, None without a file; ValidationError when malformed."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        return ArloSession.from_json(text)

    def save(self, session: ArloSession) -> None:
        """Write ``session``; returns once it is on disk (fsync'd)."""
        fd, temp = tempfile.mkstemp(dir=self.path.parent, prefix=".arlo-session-")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump(session.to_json(), out)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(temp, 0o600)
            os.replace(temp, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)
            raise


def rtsps_url(url: str, hosts: tuple[str, ...]) -> str:
    """Arlo's stream URL as the ``rtsps://`` URL to open: its host must be in ``hosts``
    (CameraProtocolError otherwise); ``rtsp://`` becomes ``rtsps://`` (Arlo's RTSP is over
    TLS on port 443), the port kept (443 when none is given)."""
    allowed_url(url, hosts, ("rtsp", "rtsps"), "stream")
    parts = urlsplit(url)
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    port = parts.port or 443
    return urlunsplit(("rtsps", f"{host}:{port}", parts.path, parts.query, ""))


class ArloLiveStream:
    """A live Arlo stream as a camgate :class:`~camgate.adapters.LiveStream`: RTSPS packets
    from the first keyframe on, renewed before Arlo's cap (module docstring). :meth:`aclose`
    closes the connection and sends the idle notification; idempotent."""

    def __init__(self, adapter: ArloAdapter, device: ArloDevice) -> None:
        self._adapter = adapter
        self._device = device
        self._inner: RtspLiveStream | None = None
        self._renew_at = 0.0
        self._gap = False
        self._closed = False
        self.info: StreamInfo = StreamInfo(codec="none", time_base=1)  # type: ignore[arg-type]
        #: How the stream reached Arlo, for the access record: the number of Arlo sessions
        #: (``sessions``; more than one after a renewal, each a discontinuity).
        self.notes: dict[str, str] = {}

    def __repr__(self) -> str:
        return f"ArloLiveStream(device={self._device.device_id!r})"

    async def start(self) -> None:
        """Start an Arlo session and connect to it (CameraUnreachable and friends when it
        cannot); the previous session, if any, is closed first."""
        s = self._adapter.settings
        client = self._adapter.client()
        url = await client.start_stream(self._device, s.user_agent)
        target = rtsps_url(url, s.stream_hosts)
        started = time.monotonic()
        try:
            inner = await RtspLiveStream.open(Secret(target), s.rtsp_settings())
        except BaseException:
            with anyio.CancelScope(shield=True), contextlib.suppress(Exception):
                await client.stop_stream(self._device)
            raise
        self._inner = inner
        self.info = inner.info
        self._renew_at = started + s.stream_cap_s - s.renew_margin_s
        sessions = int(self.notes.get("sessions", "0")) + 1
        self.notes = {"sessions": str(sessions)}
        log.info(
            "Arlo: live session %d for %s at %s",
            sessions,
            self._device.device_id,
            redact_address(target),
        )

    async def _renew(self) -> None:
        """End the Arlo session (connection closed, idle sent) and start the next."""
        old, self._inner = self._inner, None
        if old is not None:
            await old.aclose()
        await self._idle()
        await self.start()
        self._gap = True
        log.info("Arlo: live stream of %s renewed before Arlo's cap", self._device.device_id)

    async def _idle(self) -> None:
        with anyio.move_on_after(self._adapter.settings.request_timeout_s):
            try:
                await self._adapter.client().stop_stream(self._device)
            except Exception as exc:  # the stream is over either way
                log.info("Arlo: the idle notification failed (%s)", type(exc).__name__)

    def __aiter__(self) -> AsyncIterator[MediaPacket]:
        return self

    async def __anext__(self) -> MediaPacket:
        if self._closed or self._inner is None:
            raise StopAsyncIteration
        if time.monotonic() >= self._renew_at:
            await self._renew()
        assert self._inner is not None
        packet = await self._inner.__anext__()
        if self._gap:
            self._gap = False
            packet = attrs.evolve(packet, discontinuity=True)
        return packet

    async def aclose(self) -> None:
        """Close the RTSPS connection, then tell Arlo the stream is idle (best effort,
        bounded by the request time-out). Idempotent; safe after a cancelled read."""
        with anyio.CancelScope(shield=True):
            if self._closed:
                return
            self._closed = True
            inner, self._inner = self._inner, None
            if inner is not None:
                await inner.aclose()
            await self._idle()


@attrs.frozen
class _Clip:
    """One recording, demuxed: its stream description and packets (data, pts, dts, keyframe,
    duration), with the capture time of the first picture."""

    info: StreamInfo
    packets: list[tuple[bytes, int | None, int | None, bool, int | None]]
    origin: int
    created: datetime


def demux_mp4(data: bytes, created: datetime, where: str) -> _Clip:
    """The video of an MP4 recording (bytes), as packets with their times; CameraProtocolError
    when it is not an MP4 with H.264/H.265 video."""
    try:
        with av.open(io.BytesIO(data), "r", format="mp4") as container:
            if not container.streams.video:
                raise NoVideoError(f"{where}: the recording has no video")
            stream = container.streams.video[0]
            ctx = stream.codec_context
            if ctx.name not in ("h264", "hevc") or stream.time_base is None:
                raise CameraProtocolError(f"{where}: the recording is not H.264 or H.265")
            info = StreamInfo(
                codec=ctx.name,
                time_base=stream.time_base,
                width=ctx.width or 0,
                height=ctx.height or 0,
                extradata=bytes(ctx.extradata) if ctx.extradata else None,
            )
            packets = [
                (bytes(p), p.pts, p.dts, p.is_keyframe, p.duration or None)
                for p in container.demux(stream)
                if p.size
            ]
    except (av.error.FFmpegError, OSError, ValueError):
        raise CameraProtocolError(f"{where}: the recording is not an MP4 file") from None
    if not packets:
        raise CameraProtocolError(f"{where}: the recording holds no picture")
    origin = (
        min(p[1] for p in packets if p[1] is not None)
        if any(p[1] is not None for p in packets)
        else 0
    )
    return _Clip(info, packets, origin, created)


class ArloRecordedStream:
    """The library's recordings of one camera inside a grant's window, as a camgate
    :class:`~camgate.adapters.LiveStream`: each MP4 fetched when its turn comes (URL host in
    ``media_hosts``, size capped by ``clip_limit_bytes``), demuxed without re-encoding, each
    packet's ``wallclock`` its recording's start plus media time, cut to the window at
    keyframes (:class:`camgate.media.window.WindowCut`). The first packet of a later recording
    is a keyframe marked ``discontinuity`` (its timestamps restart)."""

    def __init__(
        self, adapter: ArloAdapter, items: list[wire.LibraryItem], start: datetime, end: datetime
    ) -> None:
        self._adapter = adapter
        self._items = items
        self._cut = WindowCut(start, end)
        self._clip: _Clip | None = None
        self._index = 0
        self._next = 0
        self._kept = False
        self._closed = False
        self.info: StreamInfo = StreamInfo(codec="none", time_base=1)  # type: ignore[arg-type]

    def __repr__(self) -> str:
        return f"ArloRecordedStream(recordings={len(self._items)})"

    async def load(self) -> bool:
        """Fetch and demux the next recording; False when there is none."""
        if self._next >= len(self._items):
            return False
        item = self._items[self._next]
        self._next += 1
        client = self._adapter.client()
        data, _headers = await client.fetch_media(item.url, self._adapter.settings.clip_limit_bytes)
        created = datetime.fromtimestamp(item.created_ms / 1000, UTC)
        where = redact_address(item.url)
        self._clip = await anyio.to_thread.run_sync(demux_mp4, data, created, where)
        self._index = 0
        if self.info.codec == "none":
            self.info = self._clip.info
        return True

    def __aiter__(self) -> AsyncIterator[MediaPacket]:
        return self

    async def __anext__(self) -> MediaPacket:
        while not self._closed:
            clip = self._clip
            if clip is None or self._index >= len(clip.packets):
                if not await self.load():
                    break
                continue
            data, pts, dts, key, duration = clip.packets[self._index]
            first_of_clip = self._index == 0
            self._index += 1
            tb = clip.info.time_base
            at = clip.created + timedelta(seconds=float(((pts or 0) - clip.origin) * tb))
            packet = MediaPacket(
                data=data,
                pts=pts,
                dts=dts,
                is_keyframe=key,
                stream=clip.info,
                arrival=time.monotonic(),
                duration=duration,
                wallclock=at,
            )
            decision = self._cut(packet)
            if decision is Cut.STOP:
                break
            if decision is Cut.SKIP:
                continue
            if first_of_clip and key and self._kept:
                packet = attrs.evolve(packet, discontinuity=True)
            self._kept = True
            return packet
        self._closed = True
        raise StopAsyncIteration

    async def aclose(self) -> None:
        """Stop; nothing stays open (each recording is fetched whole). Idempotent."""
        self._closed = True
        self._clip = None


class ArloAdapter(Adapter):
    """Arlo cameras of one account: live video (RTSPS) and snapshots (see the module
    docstring). ``on_session`` persists new sessions (called before they are used); without
    it the ``session_file`` setting does; ``transport`` reaches the login host."""

    def __init__(
        self,
        settings: ArloSettings,
        *,
        on_session: Callable[[ArloSession], None] | None = None,
        transport: LoginTransport | None = None,
    ) -> None:
        self.settings = settings
        self._file = SessionFile(settings.session_file) if settings.session_file else None
        self._on_session = on_session or (self._file.save if self._file else None)
        self._transport = transport
        self._client: ArloClient | None = None
        self._devices: dict[str, ArloDevice] = {}

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> ArloAdapter:
        """The adapter for the edge's settings mapping (the factory's ``create``)."""
        return cls(ArloSettings.from_mapping(settings))

    def __repr__(self) -> str:
        return f"ArloAdapter(api={redact_address(self.settings.api_base_url)!r})"

    def _stored_session(self) -> ArloSession | None:
        stored = self._file.load() if self._file else None
        if stored is not None:
            return stored
        if self.settings.session is not None:
            return ArloSession.from_json(self.settings.session)
        return None

    def client(self) -> ArloClient:
        """The account's client (made on first use, closed by :meth:`aclose`)."""
        if self._client is None:
            s = self.settings
            self._client = ArloClient(
                auth_base=s.auth_base_url,
                api_base=s.api_base_url,
                events_base=s.events_base_url,
                email=s.email,
                password=s.password,
                session=self._stored_session(),
                on_session=self._on_session,
                transport=self._transport,
                media_hosts=s.media_hosts,
                request_timeout_s=s.request_timeout_s,
                push_poll_s=s.push_poll_s,
                push_timeout_s=s.push_timeout_s,
            )
        return self._client

    async def devices(self) -> list[ArloDevice]:
        """Every device of the account (base stations too); no media asked for."""
        devices = await self.client().devices()
        self._devices = {d.device_id: d for d in devices}
        return devices

    async def device(self, device_id: str) -> ArloDevice:
        """The camera ``device_id`` (listed when not known yet); CameraUnreachable when the
        account has no such camera."""
        device = self._devices.get(device_id)
        if device is None:
            await self.devices()
            device = self._devices.get(device_id)
        if device is None or not device.is_camera:
            raise CameraUnreachable(f"Arlo: the account has no camera {device_id!r}")
        return device

    async def open_live(self, camera: Camera, grant: Grant) -> ArloLiveStream:
        """Start the camera's live stream and return it once connected (first packet a
        keyframe); renewed before Arlo's cap, closed with the idle notification."""
        stream = ArloLiveStream(self, await self.device(camera.source))
        await stream.start()
        return stream

    async def recorded(self, camera: Camera, grant: Grant) -> ArloRecordedStream:
        """The camera's recordings inside ``grant.window_start``..``window_end`` from the
        library (asked for by whole days, as Arlo takes it; only the recordings that overlap
        the window are fetched), cut to the window; CameraUnreachable when there is none."""
        device = await self.device(camera.source)
        start, end = grant.window_start, grant.window_end
        if start is None or end is None:
            raise ValidationError("arlo: a recorded grant needs a window")
        first_day = (start - timedelta(days=1)).astimezone(UTC).strftime("%Y%m%d")
        last_day = end.astimezone(UTC).strftime("%Y%m%d")
        items = [
            item
            for item in await self.client().library(first_day, last_day)
            if item.device_id == device.device_id
            and item.created_ms / 1000 < end.timestamp()
            and item.created_ms / 1000 + item.duration_s > start.timestamp()
        ]
        items.sort(key=lambda item: item.created_ms)
        if not items:
            raise CameraUnreachable(
                f"Arlo: no recording of {device.device_id!r} in the granted window"
            )
        stream = ArloRecordedStream(self, items, start, end)
        await stream.load()
        return stream

    async def snapshot(self, camera: Camera, grant: Grant) -> Snapshot:
        """A full-frame snapshot taken after this call (module docstring)."""
        device = await self.device(camera.source)
        s = self.settings
        client = self.client()
        requested = datetime.now(UTC)
        url: str | None = None
        with anyio.move_on_after(s.snapshot_timeout_s):
            while url is None:
                url = await self._snapshot_event(client, device)
        if url is None:
            raise CameraUnreachable(
                f"Arlo: no snapshot event for {device.device_id!r} within "
                f"{s.snapshot_timeout_s:g} s"
            )
        jpeg, headers = await client.fetch_media(url, VENDOR_BODY_LIMIT)
        width, height = await anyio.to_thread.run_sync(decode_jpeg, jpeg)
        taken_at = self._capture_time(headers.get("last-modified"), requested)
        return Snapshot(
            grant_id=grant.id,
            camera_id=camera.id,
            jpeg=jpeg,
            width=width,
            height=height,
            taken_at=taken_at,
        )

    async def _snapshot_event(self, client: ArloClient, device: ArloDevice) -> str | None:
        """Subscribe, ask for a snapshot and wait for its event; None when the stream stays
        silent for ``event_stall_s`` or ends (the caller subscribes and asks again)."""
        async with client.events() as events:
            await client.request_snapshot(device)
            while True:
                event: Mapping[str, Any] | None = None
                with anyio.move_on_after(self.settings.event_stall_s):
                    try:
                        event = await events.__anext__()
                    except CameraUnreachable:
                        log.warning("Arlo: the event stream ended; subscribing again")
                        return None
                if event is None:
                    log.warning("Arlo: the event stream stalled; subscribing again")
                    return None
                url = wire.parse_snapshot_event(event, device.device_id)
                if url is not None:
                    return url

    def _capture_time(self, last_modified: str | None, requested: datetime) -> datetime:
        """The image's capture time: its ``Last-Modified``, which must not be before the
        request (by more than ``clock_skew_s``); the request time when Arlo gives none."""
        if not last_modified:
            return requested
        try:
            stamp = email.utils.parsedate_to_datetime(last_modified)
        except (TypeError, ValueError):
            raise CameraProtocolError("Arlo: the snapshot's Last-Modified is malformed") from None
        if stamp.tzinfo is None:
            stamp = stamp.replace(tzinfo=UTC)
        skew = timedelta(seconds=self.settings.clock_skew_s)
        if stamp < requested - skew:
            raise CameraProtocolError(
                "Arlo: the snapshot was taken before it was asked for (a stale image); refused"
            )
        return max(stamp, requested)

    async def aclose(self) -> None:
        """Close the client. Idempotent."""
        if self._client is not None:
            await self._client.aclose()
            self._client = None
