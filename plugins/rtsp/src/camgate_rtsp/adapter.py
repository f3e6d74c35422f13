"""The RTSP adapter: any camera that serves H.264/H.265 over RTSP, read with PyAV.

Packets are relayed as they come (no re-encoding), from the first keyframe on. Settings
(all optional):

``transport``           ``"tcp"`` (default: interleaved, no UDP time-out fallback) or ``"udp"``
``udp_fallback``        when the camera refuses RTP over TCP at SETUP (``461 Unsupported
                        Transport``, ``400``, or an answer that is not interleaved), open it
                        again over UDP, with a warning in the log and the stream's
                        :attr:`RtspLiveStream.notes` (True). Never for ``rtsps``: its media
                        stays inside the TLS connection.
``udp_source_only``     over UDP, take RTP and RTCP only from the address and ports the camera
                        named in its SETUP answer (True): FFmpeg connects its UDP sockets
                        (``rtsp_flags=filter_src``), so nobody else on the network can inject
                        pictures. False only for a camera that sends from other ports than
                        it announces (its media would otherwise be dropped).
``connect_timeout_s``   how long to wait for the camera to answer and describe its streams (5)
``read_timeout_s``      how long a stalled stream may stay silent before it is an error (5)
``fast_start``          small probe, no analysis delay (True); False uses FFmpeg's defaults
``credentials``         ``{camera id or source URL: Credentials}``; digest, or basic where
                        allowed (see below). Never logged, never in an error or repr.
``ca_file``             PEM file of the certificate authorities an ``rtsps`` camera's
                        certificate must chain to (default: the system's trust store)
``allow_basic_over_rtsp`` answer an HTTP Basic challenge over plain ``rtsp`` (False: the
                        password would travel in clear text; a camera that asks only for
                        Basic is a CameraAuthError). ``rtsps`` may always use Basic.

FFmpeg reaches the camera only through :class:`~camgate_rtsp.guard.RtspGuard`, which refuses
any redirect that leaves the camera's configured host and port (CameraProtocolError naming the
refused target) and verifies an ``rtsps`` camera's certificate.

Errors are mapped to :mod:`camgate.errors`: refused credentials → CameraAuthError; refused
connection, time-out, missing path → CameraUnreachable; a peer that is not RTSP →
CameraProtocolError; a stream without video → NoVideoError; a source that is not an
``rtsp://``/``rtsps://`` URL → ValidationError.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import functools
import logging
import ssl
import threading
import time
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import anyio
import anyio.from_thread
import anyio.lowlevel
import anyio.to_thread
import attrs
import av
import av.error
from camgate.adapters import SECRET, Adapter, Credentials, LiveStream, Secret
from camgate.errors import (
    AdapterError,
    CameraAuthError,
    CameraProtocolError,
    CameraUnreachable,
    NoVideoError,
    ValidationError,
)
from camgate.media import jpeg_from_packets
from camgate.models import Camera, Grant, MediaPacket, Snapshot, StreamInfo
from camgate.settings import build_settings, parse_credentials, positive

from camgate_rtsp.guard import RtspGuard
from camgate_rtsp.urls import redact, scrub_text

__all__ = ["RtspAdapter", "RtspLiveStream", "RtspSettings", "redact", "rtsp_url"]

log = logging.getLogger(__name__)

#: What the reader thread meets when nobody listens any more (consumer closed, loop gone).
_GONE = (
    anyio.BrokenResourceError,
    anyio.ClosedResourceError,
    RuntimeError,
    concurrent.futures.CancelledError,
)


_positive = positive("rtsp")
#: Longest time-out the settings take (a day): FFmpeg takes its time-outs in microseconds.
MAX_TIMEOUT_S = 86_400.0
#: Largest ``buffer_packets``.
MAX_BUFFER_PACKETS = 100_000


def _seconds(inst: object, attribute: attrs.Attribute[float], value: float) -> None:
    _positive(inst, attribute, value)
    if not value <= MAX_TIMEOUT_S:
        raise ValidationError(
            f"rtsp setting {attribute.name}={value!r}: must be at most {MAX_TIMEOUT_S:g} s"
        )


def _count(_inst: object, attribute: attrs.Attribute[int], value: int) -> None:
    if not (isinstance(value, int) and not isinstance(value, bool)):
        raise ValidationError(f"rtsp setting {attribute.name}={value!r}: must be an integer")
    if not 0 < value <= MAX_BUFFER_PACKETS:
        raise ValidationError(
            f"rtsp setting {attribute.name}={value!r}: must be 1..{MAX_BUFFER_PACKETS}"
        )


def _flag(_inst: object, attribute: attrs.Attribute[bool], value: bool) -> None:
    if not isinstance(value, bool):
        raise ValidationError(f"rtsp setting {attribute.name}={value!r}: must be true or false")


def _creds(value: Mapping[str, Any]) -> dict[str, Credentials]:
    return parse_credentials(value, "rtsp")


def _optional_file(_inst: object, _attribute: attrs.Attribute[str | None], value: object) -> None:
    if value is not None and not isinstance(value, str):
        raise ValidationError("rtsp setting ca_file: must be a path to a PEM file")


def _transport(_inst: object, _attribute: attrs.Attribute[str], value: str) -> None:
    if value not in ("tcp", "udp"):
        raise ValidationError(f"rtsp setting transport={value!r}: must be 'tcp' or 'udp'")


@attrs.frozen
class RtspSettings:
    """Validated settings of the RTSP adapter (see the module docstring)."""

    transport: str = attrs.field(default="tcp", validator=_transport)
    connect_timeout_s: float = attrs.field(default=5.0, validator=_seconds)
    read_timeout_s: float = attrs.field(default=5.0, validator=_seconds)
    fast_start: bool = attrs.field(default=True, validator=_flag)
    buffer_packets: int = attrs.field(default=64, validator=_count)
    close_wait_s: float = attrs.field(default=0.25, validator=_seconds)
    credentials: dict[str, Credentials] = attrs.field(
        factory=dict, converter=_creds, repr=False, metadata=SECRET
    )
    ca_file: str | None = attrs.field(default=None, validator=_optional_file)
    allow_basic_over_rtsp: bool = attrs.field(default=False, validator=_flag)
    udp_fallback: bool = attrs.field(default=True, validator=_flag)
    udp_source_only: bool = attrs.field(default=True, validator=_flag)

    @classmethod
    def from_mapping(cls, settings: Mapping[str, Any]) -> RtspSettings:
        """Build settings from a mapping; unknown keys are an error (a typo must not pass)."""
        return build_settings(cls, "rtsp", settings)

    def open_options(self) -> dict[str, str]:
        """FFmpeg options for ``av.open``."""
        options = {
            "rtsp_transport": self.transport,
            # The RTSP demuxer's socket time-out, in microseconds (not ``stimeout``).
            "timeout": str(int(self.connect_timeout_s * 1_000_000)),
        }
        if self.fast_start:
            # The SDP (sprop-parameter-sets) or the first keyframe carries what we need; do not
            # spend time analysing the stream. analyzeduration is 1 µs, not 0: FFmpeg reads 0 as
            # "its default" (5 s), and then probes until probesize is filled (about 0.2 s of
            # 1080p video); 4 KiB is enough to read the stream's first packet.
            options |= {"probesize": "4096", "analyzeduration": "1", "fflags": "nobuffer"}
        return options

    def tls_context(self) -> ssl.SSLContext:
        """The TLS context for ``rtsps`` cameras: verification and hostname check on."""
        return _tls_context(self.ca_file)


@functools.lru_cache(maxsize=8)
def _tls_context(ca_file: str | None) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=ca_file)


class _ScrubFfmpegLog(logging.Filter):
    """Takes secrets out of FFmpeg's own log lines as PyAV forwards them (``libav.*``): at trace
    level FFmpeg logs each request it sends, with its ``Authorization`` header."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = scrub_text(message)
        if clean != message:
            record.msg, record.args = clean, ()
        return True


#: The loggers PyAV forwards the RTSP demuxer's and its protocols' FFmpeg logs to.
FFMPEG_LOGGERS = ("rtsp", "tcp", "tls", "rtp", "udp", "sdp", "generic", "NULL")
_SCRUB = _ScrubFfmpegLog()
for _name in FFMPEG_LOGGERS:
    logging.getLogger(f"libav.{_name}").addFilter(_SCRUB)


def rtsp_url(source: str, credentials: Credentials | None) -> str:
    """Validate ``source`` as an RTSP URL and attach percent-encoded credentials.

    A source that is not an ``rtsp://``/``rtsps://`` URL with a host and a valid port is a
    ValidationError (its message shows the source redacted)."""
    try:
        parts = urlsplit(source)
    except ValueError:  # e.g. an unbalanced "[" in the host
        raise ValidationError(f"camera source {redact(source)!r} is not a valid URL") from None
    if parts.scheme not in ("rtsp", "rtsps") or not parts.hostname:
        raise ValidationError(
            f"camera source {redact(source)!r} is not an rtsp:// or rtsps:// URL with a host"
        )
    try:
        port = parts.port
    except ValueError:
        raise ValidationError(f"camera source {redact(source)!r} has an invalid port") from None
    if credentials is None:
        return source
    userinfo = (
        quote(credentials.username, safe="") + ":" + quote(credentials.password.reveal(), safe="")
    )
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    netloc = f"{userinfo}@{host}" + (f":{port}" if port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))


def _map_error(exc: BaseException, where: str, timeout_s: float) -> AdapterError:
    """Map a PyAV/OS error to camgate's tree with a message that carries no credential."""
    if isinstance(exc, av.error.HTTPUnauthorizedError):
        return CameraAuthError(f"{where}: the camera refused the credentials (401)")
    if isinstance(exc, av.error.HTTPForbiddenError):
        return CameraAuthError(f"{where}: the camera forbids this stream (403)")
    if isinstance(exc, av.error.HTTPNotFoundError):
        return CameraUnreachable(f"{where}: the camera has no stream at this path (404)")
    if isinstance(exc, ConnectionRefusedError):
        return CameraUnreachable(f"{where}: connection refused")
    if isinstance(exc, TimeoutError | av.error.ExitError):
        return CameraUnreachable(f"{where}: no answer within {timeout_s:g} s")
    if isinstance(exc, av.error.InvalidDataError | av.error.HTTPError):
        return CameraProtocolError(f"{where}: the peer does not answer as an RTSP camera")
    if isinstance(exc, ConnectionResetError | BrokenPipeError | av.error.EOFError):
        return CameraUnreachable(f"{where}: the camera closed the connection")
    errno = getattr(exc, "errno", None)
    name = type(exc).__name__
    return CameraProtocolError(f"{where}: {name} (errno {errno}) while reading the stream")


class _TcpRefused(Exception):
    """The camera refused RTP over TCP at SETUP (its RTSP status in ``status``)."""

    def __init__(self, status: int) -> None:
        super().__init__(f"RTSP {status} at SETUP")
        self.status = status


def _stream_info(stream: Any) -> StreamInfo:
    ctx = stream.codec_context
    if stream.type == "audio":
        return StreamInfo(
            codec=ctx.name,
            time_base=stream.time_base,
            extradata=bytes(ctx.extradata) if ctx.extradata else None,
            kind="audio",
            sample_rate=ctx.sample_rate or 0,
            channels=ctx.channels or 0,
        )
    return StreamInfo(
        codec=ctx.name,
        time_base=stream.time_base,
        width=ctx.width or 0,
        height=ctx.height or 0,
        extradata=bytes(ctx.extradata) if ctx.extradata else None,
    )


class _Wallclock:
    """Capture times of live packets: the first keyframe's arrival plus media time since.

    An estimate: later than the true capture time by the first packet's transport delay
    (typically milliseconds on a LAN). Recordings carry the replay's own clock instead.

    FFmpeg's RTP demuxer can hand over a packet with no timestamp: the second and later AAC
    frames of one RTP packet carry none of their own, and FFmpeg fills them in only while it
    can interpolate (seen under load). :meth:`place` puts such a packet where its stream's
    previous packet ended, so every packet handed over has a time and a wallclock.
    """

    def __init__(self, pts: int | None, time_base: Any) -> None:
        self.origin = datetime.now(UTC)
        self.start = (pts or 0) * time_base
        self._next: dict[int, int] = {}  # per stream: where its next packet would start

    def place(
        self, stream: int, pts: int | None, dts: int | None, duration: int | None
    ) -> int | None:
        """The packet's presentation time in its stream's time base: its ``pts``, else its
        ``dts``, else the end of the stream's previous placed packet (``duration`` long, in
        the same time base); None only before the stream's first timed packet."""
        at = pts if pts is not None else dts
        if at is None:
            at = self._next.get(stream)
        if at is not None and duration:
            self._next[stream] = at + duration
        else:
            self._next.pop(stream, None)  # where the next one starts is unknown
        return at

    def at(self, pts: int | None, time_base: Any) -> datetime | None:
        if pts is None:
            return None
        return self.origin + timedelta(seconds=float(pts * time_base - self.start))


def _duration(packet: Any) -> int | None:
    """A packet's duration in its stream's time base; for audio without one, a codec frame
    (AAC's 1024 samples) converted from the sample rate."""
    if packet.duration:
        return int(packet.duration)
    ctx = packet.stream.codec_context
    if packet.stream.type == "audio" and ctx.frame_size and ctx.sample_rate:
        frame: int = round(ctx.frame_size / (ctx.sample_rate * packet.stream.time_base))
        return frame
    return None


class RtspLiveStream:
    """One open RTSP session, read by a thread and handed to async consumers.

    The reader thread owns the PyAV container (it is opened and closed there); packets cross to
    the event loop through a bounded memory stream, so a slow consumer applies back-pressure on
    the TCP connection instead of growing memory. ``aclose`` stops the thread and returns once
    the connection to the camera is closed.
    """

    def __init__(self, url: str | Secret, settings: RtspSettings, *, audio: bool = False) -> None:
        # Held as a Secret so no frame's locals or attribute repr ever show the credentials.
        self._url = url if isinstance(url, Secret) else Secret(url)
        self._where = redact(self._url.reveal())
        self._settings = settings
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._closed = threading.Event()
        self._error: AdapterError | None = None
        self.info: StreamInfo = StreamInfo(codec="none", time_base=1)  # type: ignore[arg-type]
        send, receive = anyio.create_memory_object_stream[MediaPacket | AdapterError](
            settings.buffer_packets
        )
        self._send = send
        self._receive = receive
        self._thread: threading.Thread | None = None
        self._guard: RtspGuard | None = None
        self.opened_at: float | None = None
        #: Demux the camera's first audio track too (only for a grant that allows audio).
        self.audio = audio
        #: The audio track handed over (AAC or G.711), once known; None without audio.
        self.audio_info: StreamInfo | None = None
        #: Whether the camera's stream description offers an audio track (asked for or not);
        #: None until known. The relay does not reopen a camera for sound it does not offer.
        self.offers_audio: bool | None = None
        #: The transport the media flows over once open (``"tcp"`` or ``"udp"``).
        self.transport = (
            "tcp" if urlsplit(self._url.reveal()).scheme == "rtsps" else (settings.transport)
        )
        #: What the access record should know about how the camera was reached: after a UDP
        #: fallback ``{"transport": "udp", "fallback": why}``; empty otherwise. No secret.
        self.notes: dict[str, str] = {}

    def __repr__(self) -> str:
        return f"<RtspLiveStream {self._where}>"

    @classmethod
    async def open(
        cls, url: str | Secret, settings: RtspSettings, *, audio: bool = False
    ) -> RtspLiveStream:
        """Connect, read the stream description and start the reader; errors are mapped.

        If the caller is cancelled while connecting, the reader is told to stop: it closes the
        connection as soon as PyAV's open returns (at the latest after ``connect_timeout_s``).
        """
        self = cls(url, settings, audio=audio)
        token = anyio.lowlevel.current_token()
        self._thread = threading.Thread(
            target=self._run, args=(token,), name=f"rtsp {self._where}", daemon=True
        )
        self._thread.start()
        try:
            await anyio.to_thread.run_sync(self._ready.wait, abandon_on_cancel=True)
        except BaseException:
            self._stop.set()
            self._receive.close()
            raise
        if self._error is not None:
            await self.aclose()
            raise self._error
        return self

    def _open_container(self) -> tuple[Any, Any]:
        """Open over the configured transport; fall back to UDP when the camera refuses RTP over
        TCP (see the module's ``udp_fallback``), with a clear error when neither works."""
        s = self._settings
        try:
            return self._open_over(s.transport)
        except _TcpRefused as refused:
            status = refused.status
        why = f"the camera refused RTP over TCP (RTSP {status} at SETUP)"
        if urlsplit(self._url.reveal()).scheme == "rtsps":
            raise CameraProtocolError(
                f"{self._where}: {why}; over rtsps the media must stay inside the TLS "
                "connection, so UDP is not tried"
            )
        if not s.udp_fallback:
            raise CameraProtocolError(f"{self._where}: {why}; set transport: udp")
        log.warning("%s: %s: falling back to UDP", self._where, why)
        if self._guard is not None:
            self._guard.close()
            self._guard = None
        try:
            container = self._open_over("udp")
        except (AdapterError, _TcpRefused) as exc:
            detail = str(exc).removeprefix(f"{self._where}: ")
            raise CameraProtocolError(f"{self._where}: {why}, and over UDP: {detail}") from None
        self.transport = "udp"
        self.notes = {"transport": "udp", "fallback": why}
        return container

    def _open_over(self, transport: str) -> tuple[Any, Any]:
        s = self._settings
        error: AdapterError | None = None
        started = time.monotonic()
        url = self._url.reveal()
        options = s.open_options() | {"rtsp_transport": transport}  # a fallback's, maybe
        if transport == "udp" and s.udp_source_only:
            # FFmpeg connects each UDP socket to the source the SETUP answer names (the guard
            # pins it to the camera's address), so the kernel drops anybody else's datagrams.
            options["rtsp_flags"] = "filter_src"
        if not self.audio:
            # Audio is a scope at the camera too: without an audio grant, do not SETUP the
            # audio track at all (FFmpeg's RTSP demuxer sets up every track by default).
            options["allowed_media_types"] = "video"
        tls = None
        try:
            if urlsplit(url).scheme == "rtsps":
                options["rtsp_transport"] = transport = "tcp"  # media stays inside TLS
                tls = s.tls_context()
            self._guard = RtspGuard(
                url,
                self._where,
                connect_timeout_s=s.connect_timeout_s,
                udp=transport == "udp",
                tls=tls,
                allow_basic_over_rtsp=s.allow_basic_over_rtsp,
            )
        except (OSError, ssl.SSLError) as exc:  # an unreadable ca_file; no port for the guard
            why = exc.strerror or type(exc).__name__
            raise CameraUnreachable(f"{self._where}: cannot start the RTSP guard ({why})") from None
        refused: int | None = None
        try:
            container = av.open(
                self._guard.local_url(url),
                "r",
                options=options,
                timeout=(s.connect_timeout_s, s.read_timeout_s),
            )
        except (av.error.FFmpegError, OSError) as exc:
            refused = self._guard.tcp_refused if self._guard.problem is None else None
            error = self._guard.problem or _map_error(exc, self._where, s.connect_timeout_s)
            media = self._guard.sdp_media
            if error is not None and media is not None and "video" not in media:
                # Asked for video only, FFmpeg set up nothing and the PLAY failed: say why.
                error = NoVideoError(f"{self._where}: the stream has no video track")
            # FFmpeg reports a peer that never answers as invalid data too; the clock tells.
            waited = time.monotonic() - started
            slow = waited >= 0.9 * s.connect_timeout_s and self._guard.problem is None
            if isinstance(error, CameraProtocolError) and slow:
                error = CameraUnreachable(
                    f"{self._where}: no answer within {s.connect_timeout_s:g} s"
                )
        if refused is not None and not isinstance(error, NoVideoError):
            raise _TcpRefused(refused)
        if error is not None:
            # Raised outside the except block: PyAV's exception repeats the URL with its
            # credentials, so it must not even be kept as __context__.
            raise error
        if not container.streams.video:
            container.close()
            raise NoVideoError(f"{self._where}: the stream has no video track")
        return container, container.streams.video[0]

    def _run(self, token: Any) -> None:
        container = None
        try:
            try:
                container, stream = self._open_container()
                media = self._guard.sdp_media if self._guard is not None else None
                self.offers_audio = None if media is None else "audio" in media
                self.info = _stream_info(stream)
                self.opened_at = time.monotonic()
            except AdapterError as exc:
                self._error = exc
                return
            finally:
                self._ready.set()
            self._pump(container, stream, token)
        finally:
            if container is not None:
                container.close()
            if self._guard is not None:
                self._guard.close()
            self._closed.set()
            with contextlib.suppress(*_GONE):  # the event loop is gone: nobody listens
                anyio.from_thread.run_sync(self._send.close, token=token)

    def _pump(self, container: Any, stream: Any, token: Any) -> None:
        seen_keyframe = False
        info = self.info
        clock: _Wallclock | None = None
        if self._stop.is_set():  # the opener was cancelled while connecting
            return
        try:
            audio = container.streams.audio[0] if self.audio and container.streams.audio else None
            if audio is not None:
                self.audio_info = _stream_info(audio)
            for packet in container.demux(stream, *([audio] if audio is not None else [])):
                if self._stop.is_set():
                    return
                if packet.size == 0:
                    continue
                if audio is not None and packet.stream.index == audio.index:
                    sound = self._audio_packet(packet, clock) if clock is not None else None
                    if sound is not None:  # untimed sound before the first timed one: dropped
                        self._hand_over(sound, token)
                    continue
                if not seen_keyframe:
                    if not packet.is_keyframe:
                        continue
                    seen_keyframe = True
                if not info.extradata and stream.codec_context.extradata:
                    info = self.info = _stream_info(stream)
                clock = clock or _Wallclock(packet.pts, stream.time_base)
                pts = clock.place(stream.index, packet.pts, packet.dts, packet.duration)
                item = MediaPacket(
                    data=bytes(packet),
                    pts=pts,
                    dts=packet.dts if packet.dts is not None else pts,
                    is_keyframe=packet.is_keyframe,
                    stream=info,
                    arrival=time.monotonic(),
                    duration=packet.duration or None,
                    wallclock=clock.at(pts, stream.time_base),
                )
                self._hand_over(item, token)
        except _GONE:
            return  # the consumer closed the stream, or its event loop is gone
        except (av.error.FFmpegError, OSError) as exc:
            problem = self._guard.problem if self._guard is not None else None
            error = problem or _map_error(exc, self._where, self._settings.read_timeout_s)
        else:
            # A live camera does not end its stream: the end means it went away.
            error = CameraUnreachable(f"{self._where}: the camera closed the stream")
        if self._stop.is_set():
            return
        with contextlib.suppress(*_GONE):
            anyio.from_thread.run(self._send.send, error, token=token)

    def _audio_packet(self, packet: Any, clock: _Wallclock) -> MediaPacket | None:
        if self.audio_info is None:
            return None
        duration = _duration(packet)
        pts = clock.place(packet.stream.index, packet.pts, packet.dts, duration)
        if pts is None:
            return None
        return MediaPacket(
            data=bytes(packet),
            pts=pts,
            dts=packet.dts if packet.dts is not None else pts,
            is_keyframe=True,
            stream=self.audio_info,
            arrival=time.monotonic(),
            duration=duration,
            wallclock=clock.at(pts, packet.stream.time_base),
        )

    def _hand_over(self, item: MediaPacket, token: Any) -> None:
        anyio.from_thread.run(self._send.send, item, token=token)

    def __aiter__(self) -> AsyncIterator[MediaPacket]:
        return self

    async def __anext__(self) -> MediaPacket:
        try:
            item = await self._receive.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            raise StopAsyncIteration from None
        if isinstance(item, AdapterError):
            raise item
        return item

    async def aclose(self) -> None:
        """Stop reading and close the camera connection.

        Returns once the connection is closed — normally within one packet interval — or after
        ``close_wait_s`` when the camera has gone silent and PyAV's read is blocked; the reader
        thread then closes the connection itself as soon as the read returns (at the latest
        after ``read_timeout_s``). :attr:`closed` tells which.
        """
        self._stop.set()
        self._receive.close()
        if self._thread is not None and self._thread.is_alive():
            with anyio.move_on_after(self._settings.close_wait_s):
                await anyio.to_thread.run_sync(self._closed.wait, abandon_on_cancel=True)

    @property
    def closed(self) -> bool:
        """True once the connection to the camera is closed."""
        return self._closed.is_set()


class RtspAdapter(Adapter):
    """Reach cameras by their RTSP URL (the camera's ``source``)."""

    def __init__(self, settings: RtspSettings) -> None:
        self.settings = settings

    def __repr__(self) -> str:
        return f"RtspAdapter({self.settings!r})"

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> RtspAdapter:
        """Build the adapter from the edge's ``rtsp`` settings."""
        return cls(RtspSettings.from_mapping(settings))

    def url_for(self, camera: Camera) -> Secret:
        """The camera's URL with its credentials attached, as a Secret (for av.open only)."""
        creds = self.settings.credentials
        cred = creds.get(camera.id) or creds.get(camera.source)
        return Secret(rtsp_url(camera.source, cred))

    async def open_live(self, camera: Camera, grant: Grant) -> LiveStream:
        """Open the live stream; the first packet handed over is a keyframe. Audio packets
        (``stream.kind == "audio"``) follow only when the grant allows audio."""
        return await RtspLiveStream.open(self.url_for(camera), self.settings, audio=grant.audio)

    async def snapshot(self, camera: Camera, grant: Grant) -> Snapshot:
        """Decode the first keyframe of the live stream into a JPEG."""
        stream = await RtspLiveStream.open(self.url_for(camera), self.settings)
        packets: list[MediaPacket] = []
        try:
            async for packet in stream:
                packets.append(packet)
                try:
                    jpeg, width, height = await anyio.to_thread.run_sync(jpeg_from_packets, packets)
                    break
                except CameraProtocolError:
                    continue  # the decoder needs more packets
            else:
                raise CameraUnreachable(f"{redact(camera.source)}: the stream ended first")
        finally:
            await stream.aclose()
        return Snapshot(
            grant_id=grant.id,
            camera_id=camera.id,
            jpeg=jpeg,
            width=width,
            height=height,
            taken_at=datetime.now(UTC),
            notes=dict(stream.notes),
        )
