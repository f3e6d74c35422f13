"""The RTSP guard: a loopback relay between FFmpeg and one camera that refuses redirects.

FFmpeg's RTSP demuxer follows a ``3xx`` reply by itself, inside ``av.open``
(``ff_rtsp_connect``: the ``Location`` becomes the new URL and the credentials stay), and no
option turns that off. So FFmpeg never talks to the camera directly: it is handed
``rtsp://user:pass@127.0.0.1:<guard port>/path``, and the guard

* dials only the camera's configured host and port (TLS with verification for ``rtsps``),
* passes FFmpeg's requests through unchanged (a digest hash covers the request URI, so it is
  not rewritten),
* reads every reply on the control connection with :class:`ReplyScanner`, which frames the
  byte stream as FFmpeg does in each of its states, or ends the connection where those could
  differ (see the class): interleaved ``$`` frames and bodies pass through, a reply that is not
  RTSP or any ``3xx`` to another address ends both connections before FFmpeg sees it, and
  :attr:`RtspGuard.problem` says why (no credentials in it),
* follows a ``3xx`` to the camera's own scheme, host and port (at most
  :data:`MAX_REDIRECTS`) by pointing its ``Location`` back at the guard, so the next hop is
  guarded too,
* pins ``source=`` in a UDP ``Transport`` reply to the camera's address, so RTCP and FFmpeg's
  hole-punching packets go to the camera and nowhere else (RTP itself flows directly),
* keeps FFmpeg from answering an HTTP Basic challenge over plain ``rtsp`` (the password in
  clear text) unless ``allow_basic_over_rtsp`` says so: see :func:`basic_allowed`.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import ssl
import threading
from collections.abc import Callable
from urllib.parse import urljoin, urlsplit, urlunsplit

from camgate.errors import AdapterError, CameraAuthError, CameraProtocolError, CameraUnreachable

from camgate_rtsp.urls import redact

__all__ = [
    "BASIC_REFUSED",
    "MAX_REDIRECTS",
    "MIN_FRAME",
    "ReplyScanner",
    "RtspGuard",
    "basic_allowed",
]

#: Why a camera that asks for HTTP Basic over plain ``rtsp`` is refused (after its address):
#: the one message of the RTSP adapter and the ONVIF replay client.
BASIC_REFUSED = (
    "the camera asks for HTTP Basic over plain rtsp, which would send the password in clear "
    "text; refused (use rtsps, or set allow_basic_over_rtsp)"
)


def basic_allowed(scheme: str, allow_basic_over_rtsp: bool) -> bool:
    """The one rule for HTTP Basic credentials on RTSP: inside TLS (``rtsps``) always; over
    plain ``rtsp`` only when the setting ``allow_basic_over_rtsp`` is on.

    Where Basic is not allowed, a Basic challenge beside a digest one is dropped (digest is
    answered) and a Basic challenge alone is refused with ``CameraAuthError(BASIC_REFUSED)``.
    """
    return scheme.lower() == "rtsps" or allow_basic_over_rtsp


#: Longest header line accepted (FFmpeg keeps 4095 bytes of a line and drops the rest).
MAX_LINE = 4000
#: Longest reply header accepted.
MAX_HEADER = 64 * 1024
#: Largest reply body accepted (an SDP is a few KiB).
MAX_BODY = 1 << 20
#: Shortest interleaved frame accepted: FFmpeg's streaming reader reads the payload of a shorter
#: one as RTSP text (the smallest RTCP packet is 8 bytes, an RTP packet 12).
MIN_FRAME = 8
#: Redirects followed on the camera's own address before the open fails.
MAX_REDIRECTS = 3
DEFAULT_PORTS = {"rtsp": 554, "rtsps": 322}

_STATUS = re.compile(rb"[0-9]{3}")
_LENGTH = re.compile(rb"[ \t]*([0-9]{1,9})[ \t]*")
_METHOD = re.compile(rb"[A-Za-z_][A-Za-z0-9_\-]*")
_BLANKS = re.compile(rb"[ \t]+")
_HEADER_END = re.compile(rb"\n\r*\n")
#: A ``WWW-Authenticate`` header line and its scheme (FFmpeg reads one from any message).
_CHALLENGE = re.compile(rb"(?i)www-authenticate[ \t]*:[ \t]*([^ \t,]*)")


class ReplyScanner:
    """Frames what a camera sends on an RTSP control connection, as FFmpeg reads it.

    :meth:`feed` takes bytes from the camera and returns the bytes that may go on to FFmpeg
    now: interleaved ``$`` frames and bodies as they come, a reply or a camera's request once
    its whole header is in. A reply whose status is ``3xx`` goes to ``follow(location)``, which
    returns the ``Location`` to hand on or raises :class:`~camgate.errors.CameraProtocolError`
    to refuse it. Anything FFmpeg could read differently — a status that is not three digits,
    a first line that is neither a status line nor ``METHOD uri RTSP/x``, a NUL, a ``$`` at the
    start of a header line, a repeated or odd ``Content-Length``, an over-long line, header or
    body, an interleaved frame shorter than :data:`MIN_FRAME` bytes — raises
    :class:`~camgate.errors.CameraProtocolError` (the connection must then end).

    FFmpeg frames interleaved data in two ways: while it waits for a reply it skips a whole
    frame (``ff_rtsp_skip_packet``); while streaming, ``ff_rtsp_tcp_read_packet`` skips only
    the 4-byte prefix of a frame shorter than 8 bytes and reads its payload as RTSP text
    (``if (len > buf_size || len < 8) goto redo;``). The scanner cannot know which state FFmpeg
    is in, and no RTP or RTCP packet is shorter than 8 bytes, so such a frame ends the
    connection; for every other frame both ways agree with the scanner.
    With ``source``, every ``Transport`` header of a reply says ``source=<source>``.

    Unless ``allow_basic``, no HTTP Basic challenge reaches FFmpeg (which answers one from any
    message, not only a ``401``, on every later request): one beside a digest challenge is
    dropped, one alone raises :class:`~camgate.errors.CameraAuthError` (:data:`BASIC_REFUSED`).
    """

    def __init__(
        self,
        follow: Callable[[str], str],
        *,
        source: str | None = None,
        allow_basic: bool = False,
    ) -> None:
        self._follow = follow
        self._allow_basic = allow_basic
        self._source: bytes | None = None
        if source:
            self.pin_source(source)
        self._buf = bytearray()
        self._skip = 0
        self._sdp = bytearray()
        self._sdp_left = 0  # bytes of an SDP body still to read (the body follows its header)
        #: The status code of every reply seen, in order.
        self.statuses: list[int] = []
        #: The media types (``video``, ``audio``, …) of the last SDP a reply carried; None
        #: until one has. The adapter tells "no video" from other failures by it.
        self.sdp_media: frozenset[str] | None = None
        #: The status and ``Transport`` header (None when it had none) of the first reply
        #: after the one that carried the SDP: the answer to the first SETUP. The adapter tells
        #: a camera that refuses RTP over TCP by it.
        self.setup_reply: tuple[int, bytes | None] | None = None
        self._sdp_seen = False

    def _take_sdp(self, data: bytes) -> None:
        """Keep the bytes of an SDP body as they pass; once whole, note its media types."""
        piece = data[: self._sdp_left]
        self._sdp += piece
        self._sdp_left -= len(piece)
        if not self._sdp_left:
            self.sdp_media = frozenset(
                line[2:].split(b" ", 1)[0].decode("ascii", "replace")
                for line in bytes(self._sdp).replace(b"\r", b"").split(b"\n")
                if line.startswith(b"m=")
            )
            self._sdp = bytearray()

    def pin_source(self, source: str) -> None:
        """From now on, every ``Transport`` header of a reply says ``source=<source>``."""
        self._source = source.encode("ascii")

    def feed(self, data: bytes) -> bytes:
        """The bytes of ``data`` (and earlier held-back bytes) that may go to FFmpeg now."""
        if not self._buf and self._skip >= len(data):  # the middle of a frame: pass it on
            self._skip -= len(data)
            if self._sdp_left:
                self._take_sdp(data)
            return data
        buf = bytes(self._buf) + data if self._buf else data
        pieces: list[bytes] = []
        start = pos = 0
        end = len(buf)
        skip = self._skip
        while pos < end:
            if skip:
                step = min(skip, end - pos)
                if self._sdp_left:
                    self._take_sdp(buf[pos : pos + step])
                pos += step
                skip -= step
                continue
            first = buf[pos]
            if first == 0x24:  # "$", channel, 16-bit length: an interleaved frame
                if end - pos < 4:
                    break
                skip = int.from_bytes(buf[pos + 2 : pos + 4], "big")
                if skip < MIN_FRAME:
                    raise CameraProtocolError(
                        f"an interleaved frame of {skip} bytes (FFmpeg would read it as text)"
                    )
                pos += 4
            elif first in b"\r\n":  # FFmpeg drops CR; a lone LF is an empty message
                pos += 1
            else:
                match = _HEADER_END.search(buf, pos)
                if match is None:
                    if end - pos > MAX_HEADER:
                        raise CameraProtocolError("a reply header longer than 64 KiB")
                    break
                head, skip = self._message(buf[pos : match.end()])
                pieces += (buf[start:pos], head)
                pos = start = match.end()
        self._skip = skip
        self._buf = bytearray(buf[pos:])
        if not pieces:
            return buf[:pos]  # no copy when it is all of ``buf``
        pieces.append(buf[start:pos])
        return b"".join(pieces)

    def _message(self, head: bytes) -> tuple[bytes, int]:
        lines = head.replace(b"\r", b"").split(b"\n")[:-2]
        for index, line in enumerate(lines):
            if len(line) > MAX_LINE:
                raise CameraProtocolError("a reply header line longer than 4000 bytes")
            if b"\0" in line or (index and line.startswith(b"$")):
                raise CameraProtocolError("the peer does not answer as an RTSP camera")
        words = _BLANKS.split(lines[0].strip(b" \t"))
        status: int | None = None
        if words[0].startswith(b"RTSP/"):
            if len(words) < 2 or not _STATUS.fullmatch(words[1]):
                raise CameraProtocolError("the peer does not answer as an RTSP camera")
            status = int(words[1])
            self.statuses.append(status)
            if self._sdp_seen and self.setup_reply is None:
                transport = next(
                    (line[10:].strip() for line in lines[1:] if line[:10].lower() == b"transport:"),
                    None,
                )
                self.setup_reply = (status, transport)
        elif not (len(words) == 3 and _METHOD.fullmatch(words[0]) and words[2][:5] == b"RTSP/"):
            raise CameraProtocolError("the peer does not answer as an RTSP camera")
        lengths = [line[15:] for line in lines[1:] if line[:15].lower() == b"content-length:"]
        body = 0
        if len(lengths) > 1:
            raise CameraProtocolError("a reply with more than one Content-Length")
        if lengths:
            value = _LENGTH.fullmatch(lengths[0])
            if value is None or int(value.group(1)) > MAX_BODY:
                raise CameraProtocolError("a reply with a bad or too large Content-Length")
            body = int(value.group(1))
        if (
            status is not None
            and body
            and any(
                line[:13].lower() == b"content-type:" and b"application/sdp" in line.lower()
                for line in lines[1:]
            )
        ):
            self._sdp, self._sdp_left = bytearray(), body
            self._sdp_seen = True
        if not self._allow_basic:
            lines = self._no_basic(lines)
        if status is not None and 300 <= status < 400:
            lines = self._redirect(lines)
        if status is not None and self._source is not None:
            lines = [self._pin_source(line) for line in lines]
        return b"\r\n".join(lines) + b"\r\n\r\n", body

    @staticmethod
    def _no_basic(lines: list[bytes]) -> list[bytes]:
        schemes = [m.group(1).lower() if (m := _CHALLENGE.match(line)) else None for line in lines]
        if b"basic" not in schemes[1:]:
            return lines
        if b"digest" not in schemes[1:]:
            raise CameraAuthError(BASIC_REFUSED)
        return [line for i, line in enumerate(lines) if not (i and schemes[i] == b"basic")]

    def _redirect(self, lines: list[bytes]) -> list[bytes]:
        locations = [line[9:].strip(b" \t") for line in lines if line[:9].lower() == b"location:"]
        if not locations or not locations[-1]:
            raise CameraProtocolError("the camera redirected without a Location: refused")
        target = self._follow(locations[-1].decode("latin-1"))
        kept = [line for line in lines if line[:9].lower() != b"location:"]
        return [*kept, b"Location: " + target.encode("ascii")]

    def _pin_source(self, line: bytes) -> bytes:
        if line[:10].lower() != b"transport:" or self._source is None:
            return line
        specs = []
        for spec in line[10:].split(b","):
            params = [
                p for p in spec.split(b";") if not p.strip(b" \t").lower().startswith(b"source")
            ]
            specs.append(b";".join([*params, b"source=" + self._source]))
        return b"Transport:" + b",".join(specs)


class RtspGuard:
    """A loopback relay that lets FFmpeg reach one camera, and nothing else (see the module).

    Use as a context manager, or call :meth:`close`: it stops the guard's thread, its event
    loop, its listener and every connection, and returns once they are gone. ``url`` is the
    camera's URL (its user and password are not kept); ``where`` is the redacted URL errors
    start with; ``udp`` pins the ``source`` of UDP transports; ``tls`` is the context for an
    ``rtsps`` camera (default: the system's trust store, hostname checked);
    ``allow_basic_over_rtsp`` lets FFmpeg answer an HTTP Basic challenge over plain ``rtsp``
    (see :func:`basic_allowed`).
    """

    def __init__(
        self,
        url: str,
        where: str,
        *,
        connect_timeout_s: float,
        udp: bool = False,
        tls: ssl.SSLContext | None = None,
        allow_basic_over_rtsp: bool = False,
    ) -> None:
        parts = urlsplit(url)
        self._scheme = parts.scheme
        self._host = parts.hostname or ""
        self._port = parts.port or DEFAULT_PORTS.get(parts.scheme, 554)
        host = f"[{self._host}]" if ":" in self._host else self._host
        self._base = urlunsplit((parts.scheme, f"{host}:{self._port}", parts.path, parts.query, ""))
        self._where = where
        self._timeout = connect_timeout_s
        self._udp = udp
        self._allow_basic = basic_allowed(parts.scheme, allow_basic_over_rtsp)
        self._tls = (tls or ssl.create_default_context()) if parts.scheme == "rtsps" else None
        self._redirects = 0
        #: Why the guard ended a connection (a refused redirect, a peer that is not RTSP, a
        #: camera it could not reach); None while nothing went wrong. The first reason stays.
        self.problem: AdapterError | None = None
        #: The media types of the last SDP the camera sent (None until it has sent one).
        self.sdp_media: frozenset[str] | None = None
        #: The camera's answer to the first SETUP (status, ``Transport`` header), once seen.
        self.setup_reply: tuple[int, bytes | None] | None = None
        self._listener = socket.create_server(("127.0.0.1", 0))
        #: The loopback port FFmpeg connects to.
        self.port: int = self._listener.getsockname()[1]
        self._loop = asyncio.new_event_loop()
        self._stop = asyncio.Event()
        self._tasks: set[asyncio.Future[None]] = set()
        self._relays: set[_Relay] = set()
        self._thread = threading.Thread(target=self._main, name=f"rtsp-guard {where}", daemon=True)
        self._thread.start()

    def __repr__(self) -> str:
        return f"<RtspGuard 127.0.0.1:{self.port} -> {self._where}>"

    def __enter__(self) -> RtspGuard:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def tcp_refused(self) -> int | None:
        """The RTSP status with which the camera refused RTP interleaved on the control
        connection, or None: the first SETUP (asked for TCP, as the guard was not started for
        UDP) was answered ``461 Unsupported Transport`` or ``400 Bad Request``, or ``200``
        with a transport that is not interleaved."""
        if self._udp or self.setup_reply is None:
            return None
        status, transport = self.setup_reply
        if status in (400, 461):
            return status
        if status == 200 and transport is not None and b"interleaved" not in transport.lower():
            return status
        return None

    def local_url(self, url: str) -> str:
        """``url`` (with its user and password) pointed at the guard, for ``av.open``."""
        parts = urlsplit(url)
        userinfo = parts.netloc.rpartition("@")[0]
        netloc = (f"{userinfo}@" if userinfo else "") + f"127.0.0.1:{self.port}"
        return urlunsplit(("rtsp", netloc, parts.path, parts.query, ""))

    def close(self) -> None:
        """Stop relaying: close the listener and every connection, and end the thread."""
        with contextlib.suppress(RuntimeError):  # the loop has already finished
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not threading.current_thread():
            self._thread.join()

    # ------------------------------------------------------------------ the guard's thread

    def _main(self) -> None:
        try:
            self._loop.run_until_complete(self._serve())
            # A host name was resolved in the loop's executor: end its thread too.
            self._loop.run_until_complete(self._loop.shutdown_default_executor())
        finally:
            self._listener.close()
            self._loop.close()

    async def _serve(self) -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: _FfmpegSide(self), sock=self._listener)
        try:
            await self._stop.wait()
        finally:
            server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            for relay in list(self._relays):
                relay.end(graceful=False)
            for _ in range(3):  # let the transports' close callbacks run
                await asyncio.sleep(0)

    def _refuse(self, problem: AdapterError) -> None:
        if self.problem is None:
            self.problem = problem

    def _accepted(self, ffmpeg: _FfmpegSide) -> None:
        """FFmpeg connected: hold its bytes until the camera answers, then relay both ways."""
        relay = ffmpeg.relay = _Relay(self, ffmpeg)
        if self.problem is not None:  # an earlier connection was refused: nothing more
            relay.end(graceful=False)
            return
        self._relays.add(relay)
        task = asyncio.ensure_future(self._dial(relay))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _dial(self, relay: _Relay) -> None:
        where = self._where
        loop = asyncio.get_running_loop()
        # The camera may speak before FFmpeg does.
        relay.scanner = ReplyScanner(self._follow, allow_basic=self._allow_basic)
        try:
            _, camera = await asyncio.wait_for(
                loop.create_connection(
                    lambda: _CameraSide(relay),
                    self._host,
                    self._port,
                    ssl=self._tls,
                    server_hostname=self._host if self._tls else None,
                ),
                self._timeout,
            )
        except ssl.SSLCertVerificationError as exc:
            why = exc.verify_message or "not trusted"
            self._refuse(CameraProtocolError(f"{where}: the camera's TLS certificate: {why}"))
        except ssl.SSLError as exc:
            why = exc.reason or "handshake failed"
            self._refuse(CameraProtocolError(f"{where}: TLS with the camera failed: {why}"))
        except ConnectionRefusedError:
            self._refuse(CameraUnreachable(f"{where}: connection refused"))
        except TimeoutError:
            self._refuse(CameraUnreachable(f"{where}: no answer within {self._timeout:g} s"))
        except OSError as exc:
            why = exc.strerror or type(exc).__name__
            self._refuse(CameraUnreachable(f"{where}: cannot connect ({why})"))
        else:
            peer = camera.transport.get_extra_info("peername") if camera.transport else None
            if self._udp and peer:
                relay.scanner.pin_source(peer[0])
            relay.start(camera)
            return
        relay.end(graceful=False)

    def _follow(self, location: str) -> str:
        """The guard's own URL for a redirect to the camera's own address; refuse any other."""
        target = redact(location)
        try:
            parts = urlsplit(urljoin(self._base, location.strip()))
            port = parts.port or DEFAULT_PORTS.get(parts.scheme)
            same = (
                parts.scheme == self._scheme
                and (parts.hostname or "").lower() == self._host.lower()
                and port == self._port
                and location.isascii()
                and not any(c in location for c in "\r\n\0")
            )
        except ValueError:
            same = False
        if not same:
            raise CameraProtocolError(
                f"the camera redirected to {target!r}, which is not its own address: refused "
                "(no redirect leaves the camera's configured host and port)"
            )
        self._redirects += 1
        if self._redirects > MAX_REDIRECTS:
            raise CameraProtocolError(
                f"too many redirects (more than {MAX_REDIRECTS}), the last to {target!r}"
            )
        path = parts.path or "/"
        return urlunsplit(("rtsp", f"127.0.0.1:{self.port}", path, parts.query, ""))


class _Relay:
    """One FFmpeg connection and its camera connection, relayed both ways."""

    def __init__(self, guard: RtspGuard, ffmpeg: _FfmpegSide) -> None:
        self.guard = guard
        self.ffmpeg = ffmpeg
        self.camera: _CameraSide | None = None
        self.scanner: ReplyScanner | None = None
        self.ended = False

    def start(self, camera: _CameraSide) -> None:
        if self.ended:
            camera.close(graceful=False)
            return
        self.camera = camera
        self.ffmpeg.resume()

    def up(self, data: bytes) -> None:
        """FFmpeg's bytes (requests, RTCP over TCP): to the camera unchanged."""
        if self.camera is not None:
            self.camera.write(data)

    def down(self, data: bytes) -> None:
        """The camera's bytes: through the scanner to FFmpeg, or a refusal that ends both."""
        assert self.scanner is not None
        try:
            data = self.scanner.feed(data)
        except (CameraProtocolError, CameraAuthError) as exc:
            self.guard._refuse(type(exc)(f"{self.guard._where}: {exc}"))
            self.end(graceful=False)
            return
        if self.scanner.sdp_media is not None:
            self.guard.sdp_media = self.scanner.sdp_media
        if self.scanner.setup_reply is not None and self.guard.setup_reply is None:
            self.guard.setup_reply = self.scanner.setup_reply
        if data:
            self.ffmpeg.write(data)

    def end(self, *, graceful: bool) -> None:
        """Close both sides: after flushing what is buffered, or at once (a refusal)."""
        if self.ended and graceful:
            return
        self.ended = True
        self.guard._relays.discard(self)
        for side in (self.ffmpeg, self.camera):
            if side is not None:
                side.close(graceful=graceful)


class _Side(asyncio.Protocol):
    """One socket of a relay; back-pressure pauses reading on the other side."""

    relay: _Relay
    transport: asyncio.Transport | None = None

    def peer(self) -> _Side | None:
        raise NotImplementedError

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def close(self, *, graceful: bool) -> None:
        if self.transport is not None:
            if graceful:
                self.transport.close()
            else:
                self.transport.abort()

    def eof_received(self) -> bool:
        self.relay.end(graceful=True)
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.relay.end(graceful=exc is None)

    def pause_writing(self) -> None:
        peer = self.peer()
        if peer is not None and peer.transport is not None:
            peer.transport.pause_reading()

    def resume_writing(self) -> None:
        peer = self.peer()
        if peer is not None and peer.transport is not None and not peer.transport.is_closing():
            peer.transport.resume_reading()


class _FfmpegSide(_Side):
    def __init__(self, guard: RtspGuard) -> None:
        self.guard = guard

    def peer(self) -> _Side | None:
        return self.relay.camera

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        assert self.transport is not None
        self.transport.pause_reading()  # until the camera answers
        self.guard._accepted(self)

    def resume(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        self.relay.up(data)


class _CameraSide(_Side):
    def __init__(self, relay: _Relay) -> None:
        self.relay = relay

    def peer(self) -> _Side | None:
        return self.relay.ffmpeg

    def data_received(self, data: bytes) -> None:
        self.relay.down(data)
