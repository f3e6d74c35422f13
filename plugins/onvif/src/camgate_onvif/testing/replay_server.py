"""The simulated device's RTSP replay server: recorded footage, played by clock range.

A real TCP server on loopback (standard library, one thread per connection) that serves
:class:`~camgate_onvif.testing.recording.Recording` s the way an ONVIF recorder does (Streaming
Specification, "RTSP replay"):

- DESCRIBE, SETUP (``RTP/AVP/TCP`` interleaved only; anything else is ``461``), PLAY,
  TEARDOWN, OPTIONS and GET_PARAMETER, behind RTSP digest auth (``qop=auth``);
- a PLAY without ``Require: onvif-replay`` is answered ``551 Option not supported``, as a
  recorder that only replays by clock does; a ``Range`` that is not ``clock=…`` inside the
  recording is ``457 Invalid Range``;
- PLAY starts at the keyframe at or before the range's start and ends with the last frame
  taken before its end, paced in real time (``Rate-Control: no``: as fast as possible);
- every RTP packet carries ONVIF's header extension (``0xABAC``): the NTP time the frame was
  taken, C (keyframe), D (the first packet after a PLAY), T (the last packet of the range);
  after the last frame an RTCP BYE;
- H.264 is packetised per RFC 6184 mode 1: SPS and PPS together in a STAP-A, small NAL units
  alone, larger ones in FU-A fragments.

``requests`` records (method, path, Require, Range, status) of every request, for tests.
"""

from __future__ import annotations

import secrets
import socket
import socketserver
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

import attrs

from camgate_onvif.replay import clock_range
from camgate_onvif.testing.recording import Recording

__all__ = ["ReplayRequest", "ReplayServer", "packetize", "parse_clock", "stop_serving"]

_MTU_PAYLOAD = 1000
_NTP_OFFSET = 2208988800  # seconds from 1900 to 1970
_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    454: "Session Not Found",
    455: "Method Not Valid in This State",
    457: "Invalid Range",
    461: "Unsupported Transport",
    501: "Not Implemented",
    551: "Option not supported",
}


@attrs.frozen
class ReplayRequest:
    """One RTSP request the replay server answered."""

    method: str
    path: str
    require: str | None
    range: str | None
    status: int


def parse_clock(text: str) -> tuple[datetime, datetime | None]:
    """``clock=<start>-[<end>]`` (``YYYYMMDDThhmmss[.fff]Z``) → (start, end or None)."""
    unit, _, value = text.strip().partition("=")
    start, sep, end = value.partition("-")
    if unit.strip() != "clock" or not sep or not start:
        raise ValueError(f"not a clock range: {text!r}")

    def one(stamp: str) -> datetime:
        stamp = stamp.strip()
        if not stamp.endswith("Z"):
            raise ValueError(f"a clock time ends with Z: {stamp!r}")
        body = stamp[:-1]
        fmt = "%Y%m%dT%H%M%S.%f" if "." in body else "%Y%m%dT%H%M%S"
        return datetime.strptime(body, fmt).replace(tzinfo=UTC)

    return one(start), (one(end) if end.strip() else None)


def _ntp(moment: datetime) -> int:
    seconds = moment.timestamp() + _NTP_OFFSET
    whole = int(seconds)
    return whole << 32 | int((seconds - whole) * 2**32)


def packetize(nals: tuple[bytes, ...], mtu: int = _MTU_PAYLOAD) -> list[bytes]:
    """RTP payloads for one access unit (RFC 6184 mode 1): leading SPS/PPS aggregated in a
    STAP-A, NAL units up to ``mtu`` bytes alone, larger ones as FU-A fragments."""
    out: list[bytes] = []
    params = [n for n in nals if n[0] & 0x1F in (7, 8)]
    if params:
        nri = max(n[0] & 0x60 for n in params)
        out.append(bytes([nri | 24]) + b"".join(len(n).to_bytes(2, "big") + n for n in params))
    for nal in nals:
        if nal[0] & 0x1F in (7, 8):
            continue
        if len(nal) <= mtu:
            out.append(nal)
            continue
        indicator = (nal[0] & 0xE0) | 28
        body = nal[1:]
        for at in range(0, len(body), mtu):
            flags = (0x80 if at == 0 else 0) | (0x40 if at + mtu >= len(body) else 0)
            out.append(bytes([indicator, flags | (nal[0] & 0x1F)]) + body[at : at + mtu])
    return out


class ReplayServer:
    """Recorded footage over RTSP on loopback (see the module docstring).

    ``recordings(path)`` is the recording at a path (``/dev1/recording``) or None (called on
    each request, so a recording can be made lazily); ``check_auth(method,
    header)`` verifies an ``Authorization`` header and ``challenge()`` makes a
    ``WWW-Authenticate`` value (the simulator's digest); ``host`` is the address it listens on,
    ``advertised_host()`` the one it names in ``Content-Base`` (a LAN address behind NAT).
    A session that sends no request for ``session_timeout_s`` (named in ``Session``) is
    dropped: its streaming stops and the connection is closed, as a device does.
    """

    def __init__(
        self,
        recordings: Callable[[str], Recording | None],
        *,
        check_auth: Callable[[str, str | None], bool],
        challenge: Callable[[], str],
        host: str = "127.0.0.1",
        advertised_host: Callable[[], str] | None = None,
        session_timeout_s: int = 60,
    ) -> None:
        self.recordings = recordings
        self.check_auth = check_auth
        self.challenge = challenge
        self.host = host
        self.advertised_host = advertised_host or (lambda: host)
        self.session_timeout_s = session_timeout_s
        self.requests: list[ReplayRequest] = []
        self._lock = threading.Lock()
        self._server: socketserver.ThreadingTCPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Listen on a free port of ``host`` (returns at once)."""
        handler = _handler_class(self)
        server = socketserver.ThreadingTCPServer((self.host, 0), handler)
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, name="onvif-replay", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        """Stop listening. Idempotent."""
        stop_serving(self._server, self._thread)
        self._server = self._thread = None

    @property
    def port(self) -> int:
        """The TCP port it listens on."""
        if self._server is None:
            raise RuntimeError("the replay server is not running")
        return int(self._server.server_address[1])

    def record(self, request: ReplayRequest) -> None:
        """Add one answered request to ``requests``."""
        with self._lock:
            self.requests.append(request)


def stop_serving(server: socketserver.BaseServer | None, thread: threading.Thread | None) -> None:
    """Shut down a ``serve_forever`` server running in ``thread`` (either may be None)."""
    if server is not None:
        server.shutdown()
        server.server_close()
    if thread is not None:
        thread.join(5)


class _Session:
    def __init__(self) -> None:
        self.id = secrets.token_hex(8)
        self.channel = 0
        self.ssrc = secrets.randbits(32)
        self.seq = secrets.randbits(16)
        self.base = secrets.randbits(32)
        self.sender: threading.Thread | None = None
        self.stop = threading.Event()
        self.last_seen = time.monotonic()


def _handler_class(server: ReplayServer) -> type[socketserver.StreamRequestHandler]:
    class Handler(socketserver.StreamRequestHandler):
        def setup(self) -> None:
            super().setup()
            self.write_lock = threading.Lock()
            self.session: _Session | None = None
            #: The request being answered, logged by ``reply`` just before the answer is sent.
            self.answering: tuple[str, str, dict[str, str]] | None = None

        def send(self, data: bytes) -> None:
            with self.write_lock:
                self.wfile.write(data)
                self.wfile.flush()

        def reply(
            self, status: int, cseq: str, headers: dict[str, str] | None = None, body: bytes = b""
        ) -> None:
            # Logged before the answer leaves, so a client that has its answer (or has sent its
            # next request) finds the request in ``requests``.
            self.log_answer(status)
            lines = [f"RTSP/1.0 {status} {_REASONS.get(status, 'Error')}", f"CSeq: {cseq}"]
            lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
            if body:
                lines.append(f"Content-Length: {len(body)}")
            self.send(("\r\n".join(lines) + "\r\n\r\n").encode() + body)

        def handle(self) -> None:
            try:
                while True:
                    line = self.rfile.readline(4096)
                    if not line:
                        return
                    if line[:1] == b"$":  # interleaved RTCP from the client: skip it
                        rest = self.rfile.read(3)
                        self.rfile.read(int.from_bytes(rest[1:3], "big"))
                        continue
                    if not line.strip():
                        continue
                    headers: dict[str, str] = {}
                    while True:
                        h = self.rfile.readline(4096)
                        if not h.strip():
                            break
                        key, _, value = h.decode("latin-1").partition(":")
                        headers[key.strip().lower()] = value.strip()
                    length = int(headers.get("content-length", "0") or 0)
                    if length:
                        self.rfile.read(min(length, 65536))
                    parts = line.decode("latin-1").split()
                    if len(parts) != 3:
                        self.reply(400, headers.get("cseq", "0"))
                        continue
                    self.request_line(parts[0], parts[1], headers)
            except (OSError, ValueError):
                return
            finally:
                if self.session is not None:
                    self.session.stop.set()

        def request_line(self, method: str, url: str, headers: dict[str, str]) -> None:
            cseq = headers.get("cseq", "0")
            if self.session is not None and headers.get("session", "").startswith(self.session.id):
                self.session.last_seen = time.monotonic()
            path = "/" + url.split("://", 1)[-1].partition("/")[2]
            path = path.partition("?")[0]
            self.answering = (method, path, headers)
            status = self.answer(method, path, headers, cseq)
            self.log_answer(status)  # when it was answered without a reply

        def log_answer(self, status: int) -> None:
            if self.answering is not None:
                method, path, asked = self.answering
                self.answering = None
                server.record(
                    ReplayRequest(method, path, asked.get("require"), asked.get("range"), status)
                )

        def answer(self, method: str, path: str, headers: dict[str, str], cseq: str) -> int:
            if method == "OPTIONS":
                public = "OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN, GET_PARAMETER"
                self.reply(200, cseq, {"Public": public})
                return 200
            if not server.check_auth(method, headers.get("authorization")):
                self.reply(401, cseq, {"WWW-Authenticate": server.challenge()})
                return 401
            recording_path = path.removesuffix("/trackID=0").rstrip("/")
            recording = server.recordings(recording_path)
            if recording is None:
                self.reply(404, cseq)
                return 404
            handler = getattr(self, f"on_{method.lower()}", None)
            if handler is None:
                self.reply(501, cseq)
                return 501
            return int(handler(recording, recording_path, headers, cseq))

        def on_describe(self, rec: Recording, path: str, headers: dict[str, str], cseq: str) -> int:
            import base64

            sets = ",".join(base64.b64encode(n).decode() for n in (rec.sps, rec.pps))
            profile = rec.sps[1:4].hex()
            start = rec.start.strftime("%Y%m%dT%H%M%SZ")
            end = rec.end.strftime("%Y%m%dT%H%M%SZ")
            sdp = (
                "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=camgate simulated recording\r\n"
                f"c=IN IP4 0.0.0.0\r\nt=0 0\r\na=range:clock={start}-{end}\r\n"
                "m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n"
                f"a=fmtp:96 packetization-mode=1;profile-level-id={profile};"
                f"sprop-parameter-sets={sets}\r\na=control:trackID=0\r\na=recvonly\r\n"
            )
            base = f"rtsp://{server.advertised_host()}:{server.port}{path}/"
            self.reply(
                200, cseq, {"Content-Type": "application/sdp", "Content-Base": base}, sdp.encode()
            )
            return 200

        def on_setup(self, rec: Recording, path: str, headers: dict[str, str], cseq: str) -> int:
            transport = headers.get("transport", "")
            if "RTP/AVP/TCP" not in transport.upper() or "interleaved=" not in transport:
                self.reply(461, cseq)
                return 461
            low = transport.split("interleaved=", 1)[1].split("-", 1)[0].split(";", 1)[0]
            if self.session is None:
                self.session = _Session()
            self.session.channel = int(low) if low.isdigit() else 0
            channels = f"{self.session.channel}-{self.session.channel + 1}"
            self.reply(
                200,
                cseq,
                {
                    "Session": f"{self.session.id};timeout={server.session_timeout_s}",
                    "Transport": f"RTP/AVP/TCP;unicast;interleaved={channels};"
                    f"ssrc={self.session.ssrc:08X}",
                },
            )
            return 200

        def on_play(self, rec: Recording, path: str, headers: dict[str, str], cseq: str) -> int:
            session = self.session
            if session is None or headers.get("session", "").split(";")[0] != session.id:
                self.reply(454, cseq)
                return 454
            require = [r.strip() for r in headers.get("require", "").split(",")]
            if "onvif-replay" not in require:
                self.reply(551, cseq, {"Unsupported": "onvif-replay"})
                return 551
            try:
                start, end = parse_clock(headers.get("range") or clock_range(rec.start, None))
            except ValueError:
                self.reply(457, cseq)
                return 457
            first = rec.index_at(start)
            last = rec.index_at(end) if end is not None else len(rec.frames)
            if first >= len(rec.frames) or last <= first:
                self.reply(457, cseq)
                return 457
            first = rec.keyframe_before(first)
            paced = headers.get("rate-control", "yes").strip().lower() != "no"
            if session.sender is not None:
                session.stop.set()
                session.sender.join(5)
                session.stop = threading.Event()
            self.reply(
                200,
                cseq,
                {
                    "Session": session.id,
                    "Range": clock_range(rec.time_of(first), rec.time_of(last)),
                },
            )
            session.sender = threading.Thread(
                target=self.stream, args=(rec, session, first, last, paced), daemon=True
            )
            session.sender.start()
            return 200

        def on_teardown(self, rec: Recording, path: str, headers: dict[str, str], cseq: str) -> int:
            if self.session is not None:
                self.session.stop.set()
            self.reply(200, cseq)
            return 200

        def on_get_parameter(
            self, rec: Recording, path: str, headers: dict[str, str], cseq: str
        ) -> int:
            self.reply(200, cseq)
            return 200

        def stream(
            self, rec: Recording, session: _Session, first: int, last: int, paced: bool
        ) -> None:
            began = time.monotonic()
            try:
                for index in range(first, last):
                    if session.stop.is_set():
                        return
                    if time.monotonic() - session.last_seen > server.session_timeout_s:
                        self.connection.shutdown(socket.SHUT_RDWR)  # the session expired
                        return
                    if paced:
                        delay = began + (index - first) / rec.fps - time.monotonic()
                        if delay > 0 and session.stop.wait(delay):
                            return
                    frame = rec.frames[index]
                    payloads = packetize(frame.nals)
                    stamp = (session.base + index * 90000 // rec.fps) & 0xFFFFFFFF
                    ntp = _ntp(rec.time_of(index))
                    for n, payload in enumerate(payloads):
                        final = n == len(payloads) - 1
                        flags = (0x80 if frame.keyframe else 0) | (
                            0x20 if index == first and n == 0 else 0
                        )
                        if final and index == last - 1:
                            flags |= 0x10  # T: the last packet of the range
                        ext = (
                            (0xABAC).to_bytes(2, "big")
                            + (3).to_bytes(2, "big")
                            + ntp.to_bytes(8, "big")
                            + bytes([flags, 0, 0, 0])
                        )
                        header = bytes([0x90, (0x80 if final else 0) | 96])
                        header += session.seq.to_bytes(2, "big") + stamp.to_bytes(4, "big")
                        header += session.ssrc.to_bytes(4, "big")
                        session.seq = (session.seq + 1) & 0xFFFF
                        rtp = header + ext + payload
                        self.send(
                            bytes([0x24, session.channel]) + len(rtp).to_bytes(2, "big") + rtp
                        )
                # RTCP BYE on the RTCP channel: the replay of the range is over.
                bye = bytes([0x81, 203]) + (1).to_bytes(2, "big") + session.ssrc.to_bytes(4, "big")
                self.send(bytes([0x24, session.channel + 1]) + len(bye).to_bytes(2, "big") + bye)
            except (OSError, ValueError):
                return

    return Handler
