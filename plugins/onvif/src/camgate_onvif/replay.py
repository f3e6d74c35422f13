"""camgate's own small RTSP client for ONVIF replay: the headers FFmpeg cannot send.

ONVIF replay (Streaming Specification, "RTSP replay") needs ``Require: onvif-replay`` on
DESCRIBE, SETUP and PLAY and ``Range: clock=<start>-<end>`` (UTC) on PLAY. FFmpeg's RTSP
client has no option for extra headers and writes its own ``Range: npt=0.000-`` into every
PLAY, so the replay path speaks RTSP itself: DESCRIBE → SETUP (RTP/AVP/TCP, interleaved on
the RTSP connection) → PLAY, with RTSP digest (RFC 2617, MD5, with or without ``qop=auth``)
or basic auth, then depacketises H.264 (RFC 6184: single NAL units, STAP-A, FU-A) into
access units handed over as :class:`ReplayPacket` s. When the device sends ONVIF's RTP header
extension (``0xABAC``: the NTP time each frame was taken), each packet carries that wall-clock
time in ``clock`` and the stream is cut to the window by it: from the first keyframe taken at
or after the window's start, up to the window's end. Without the extension the PLAY answer's
``Range: clock=`` and ``RTP-Info`` ``rtptime`` date each frame the same way; with neither it
is cut to the window's length of media time from the first keyframe.

What it refuses, with a camgate error and no credential in it: a URL that is not
``rtsp://host[:port]/…`` without credentials (checked before connecting); an answer that is
not RTSP, has headers over 16 KiB, a body over 64 KiB, or a CSeq that is not ours (the SDP's
track URL may name another host, a LAN address behind NAT: it is only a name in SETUP, nothing
connects to it); an access
unit over 8 MiB; a device that stays silent longer than ``read_timeout_s``; a device that
closes the connection before the replay reached its end. Limits: H.264 only, one video
track, TCP only (no UDP, no ``rtsps``). The session is kept alive with GET_PARAMETER at half
the time-out the device names in ``Session`` (default 60 s).
"""

from __future__ import annotations

import base64
import collections
import contextlib
import hashlib
import secrets
import time
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from urllib.parse import urljoin, urlsplit, urlunsplit

import anyio
import anyio.abc
import attrs
from camgate.adapters import Credentials
from camgate.errors import (
    AdapterError,
    CameraAuthError,
    CameraProtocolError,
    CameraUnreachable,
    NoVideoError,
)
from camgate.models import MediaPacket, StreamInfo
from camgate_rtsp.guard import BASIC_REFUSED, basic_allowed

__all__ = [
    "AccessUnit",
    "H264Depacketizer",
    "ReplayPacket",
    "ReplayStream",
    "clock_range",
    "ntp_to_datetime",
    "parse_challenge",
    "parse_clock",
    "play_anchor",
    "replay_address",
]

_START = b"\x00\x00\x00\x01"


def _signed(delta: int) -> int:
    """A 32-bit RTP timestamp difference as a signed number (wrap-around aware)."""
    return (delta + (1 << 31)) % (1 << 32) - (1 << 31)


MAX_HEADER_BYTES = 16 * 1024
MAX_BODY_BYTES = 64 * 1024
MAX_ACCESS_UNIT_BYTES = 8 * 1024 * 1024
_MAX_EARLY_FRAMES = 4096  # interleaved frames that may arrive before PLAY's answer
_NTP_EPOCH = datetime(1900, 1, 1, tzinfo=UTC)
ONVIF_EXTENSION = (0xABAC, 0xABAD)


def parse_clock(text: str) -> datetime | None:
    """The UTC moment of an RTSP ``clock=`` time (``YYYYMMDDTHHMMSS[.fraction]Z``), or None."""
    text = text.strip()
    if not text.endswith("Z") or len(text) < 16 or text[8] != "T":
        return None
    whole, _, fraction = text[:-1].partition(".")
    try:
        moment = datetime.strptime(whole, "%Y%m%dT%H%M%S").replace(tzinfo=UTC)
        micros = int((fraction + "000000")[:6]) if fraction else 0
    except ValueError:
        return None
    if fraction and not fraction.isdigit():
        return None
    return moment + timedelta(microseconds=micros)


def play_anchor(headers: dict[str, str]) -> tuple[datetime, int] | None:
    """(device-clock time, RTP timestamp) of the first packet a PLAY answer announces: its
    ``Range: clock=<start>-`` and the first ``RTP-Info`` ``rtptime``; None without both."""
    unit, _, span = headers.get("range", "").partition("=")
    if unit.strip().lower() != "clock":
        return None
    start = parse_clock(span.partition("-")[0])
    rtptime = None
    for field in headers.get("rtp-info", "").split(",")[0].split(";"):
        key, _, value = field.strip().partition("=")
        if key.lower() == "rtptime" and value.strip().isdigit():
            rtptime = int(value) % (1 << 32)
    if start is None or rtptime is None:
        return None
    return start, rtptime


def clock_range(start: datetime, end: datetime | None) -> str:
    """``clock=<start>-<end>`` in UTC with milliseconds, as ONVIF replay's Range wants."""

    def clock(moment: datetime) -> str:
        moment = moment.astimezone(UTC)
        return moment.strftime("%Y%m%dT%H%M%S.") + f"{moment.microsecond // 1000:03d}Z"

    return f"clock={clock(start)}-{clock(end) if end is not None else ''}"


def ntp_to_datetime(ntp: int) -> datetime:
    """A 64-bit NTP timestamp (seconds since 1900 in the high 32 bits) as a UTC datetime."""
    return _NTP_EPOCH + timedelta(seconds=(ntp >> 32) + (ntp & 0xFFFFFFFF) / 2**32)


def replay_address(url: str) -> tuple[str, int, str]:
    """``(host, port, url without query)`` of an ``rtsp://`` URL, or a camgate error —
    checked before anything connects. Credentials in the URL are refused (pass them apart)."""
    parts = urlsplit(url)
    where = urlunsplit((parts.scheme, parts.hostname or "", parts.path, "", ""))
    if parts.scheme.lower() == "rtsps":
        raise CameraProtocolError(f"{where}: replay over rtsps is not supported (rtsp only)")
    if parts.scheme.lower() != "rtsp" or not parts.hostname:
        raise CameraProtocolError(f"{where!r}: a replay URL must be rtsp://host[:port]/path")
    if parts.username is not None or parts.password is not None:
        raise CameraProtocolError(f"{where}: the replay URL must not carry credentials")
    try:
        port = parts.port or 554
    except ValueError:
        raise CameraProtocolError(f"{where}: the replay URL has an invalid port") from None
    netloc = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return parts.hostname, port, urlunsplit(("rtsp", f"{netloc}:{port}", parts.path, "", ""))


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """The scheme (lower case) and fields of a ``WWW-Authenticate`` header (quoted commas kept)."""
    scheme, _, rest = header.strip().partition(" ")
    fields: dict[str, str] = {}
    part, quoted = "", False
    for ch in rest + ",":
        if ch == '"':
            quoted = not quoted
        if ch == "," and not quoted:
            key, _, value = part.strip().partition("=")
            if key:
                fields[key.strip().lower()] = value.strip().strip('"')
            part = ""
        else:
            part += ch
    return scheme.lower(), fields


@attrs.frozen
class ReplayPacket(MediaPacket):
    """A replayed access unit; ``clock`` is when the device recorded it (the ONVIF RTP header
    extension's NTP time, on the host's clock), or None when the device did not say.
    ``wallclock`` is ``clock`` when known, else the window's start plus media time."""

    clock: datetime | None = None


@attrs.frozen
class AccessUnit:
    """One depacketised H.264 access unit."""

    rtp_time: int
    nals: tuple[bytes, ...] = attrs.field(repr=False)
    ntp: int | None  # the ONVIF extension's NTP timestamp, when present
    keyframe: bool
    terminal: bool  # the ONVIF extension's T bit: the last unit of the replay


class H264Depacketizer:
    """RFC 6184 packetisation mode 0/1 (single NAL, STAP-A, FU-A) → access units.

    Bounded: an access unit over ``max_bytes`` is an error. A gap in the sequence numbers or a
    broken fragment drops the unit being built and everything up to the next keyframe (a
    decoder could not use it). Packets of another payload type or malformed ones are ignored.
    """

    def __init__(self, payload_type: int, max_bytes: int = MAX_ACCESS_UNIT_BYTES) -> None:
        self.payload_type = payload_type
        self.max_bytes = max_bytes
        self._nals: list[bytes] = []
        self._size = 0
        self._fu: bytearray | None = None
        self._time: int | None = None
        self._ntp: int | None = None
        self._terminal = False
        self._seq: int | None = None
        self._broken = False
        self._need_key = False

    def _add(self, nal: bytes) -> None:
        if not nal:
            return
        self._size += len(nal) + 4
        if self._size > self.max_bytes:
            raise CameraProtocolError(
                f"an access unit is over {self.max_bytes} bytes: not a stream camgate can relay"
            )
        self._nals.append(nal)

    def _flush(self) -> AccessUnit | None:
        nals, broken = self._nals, self._broken
        unit = None
        if nals and not broken and self._time is not None:
            keyframe = any(n[0] & 0x1F == 5 for n in nals)
            if keyframe:
                self._need_key = False
            if not self._need_key:
                unit = AccessUnit(self._time, tuple(nals), self._ntp, keyframe, self._terminal)
        if broken:
            self._need_key = True
        self._nals, self._size, self._fu = [], 0, None
        self._ntp, self._terminal, self._broken = None, False, False
        return unit

    def push(self, packet: bytes) -> list[AccessUnit]:
        """Feed one RTP packet; returns the access units it completed (0, 1 or 2)."""
        out: list[AccessUnit] = []
        if len(packet) < 12 or packet[0] >> 6 != 2 or packet[1] & 0x7F != self.payload_type:
            return out
        padding, extension, csrcs = packet[0] & 0x20, packet[0] & 0x10, packet[0] & 0x0F
        marker = packet[1] & 0x80
        seq = int.from_bytes(packet[2:4], "big")
        stamp = int.from_bytes(packet[4:8], "big")
        end = len(packet)
        if padding:
            end -= packet[-1]
        offset = 12 + 4 * csrcs
        ntp, terminal = None, False
        if extension:
            if offset + 4 > end:
                return out
            profile = int.from_bytes(packet[offset : offset + 2], "big")
            words = int.from_bytes(packet[offset + 2 : offset + 4], "big")
            if profile in ONVIF_EXTENSION and words >= 3 and offset + 16 <= end:
                ntp = int.from_bytes(packet[offset + 4 : offset + 12], "big")
                terminal = bool(packet[offset + 12] & 0x10)
            offset += 4 + 4 * words
        if offset >= end:
            return out
        if self._seq is not None and seq != (self._seq + 1) & 0xFFFF:
            self._broken = True  # a packet went missing
        self._seq = seq
        if self._time is not None and stamp != self._time and (self._nals or self._fu):
            unit = self._flush()  # a new timestamp without a marker on the last unit
            if unit is not None:
                out.append(unit)
        self._time = stamp
        if ntp is not None and self._ntp is None:
            self._ntp = ntp
        self._terminal = self._terminal or terminal
        self._payload(packet[offset:end])
        if marker:
            unit = self._flush()
            if unit is not None:
                out.append(unit)
        return out

    def _payload(self, payload: bytes) -> None:
        kind = payload[0] & 0x1F
        if 1 <= kind <= 23:
            self._add(payload)
        elif kind == 24:  # STAP-A: 16-bit sizes, each followed by a NAL unit
            i = 1
            while i < len(payload):
                if i + 2 > len(payload):
                    self._broken = True
                    return
                size = int.from_bytes(payload[i : i + 2], "big")
                if size == 0 or i + 2 + size > len(payload):
                    self._broken = True
                    return
                self._add(payload[i + 2 : i + 2 + size])
                i += 2 + size
        elif kind == 28:  # FU-A
            if len(payload) < 3:
                self._broken = True
                return
            start, stop = payload[1] & 0x80, payload[1] & 0x40
            if start:
                if self._fu is not None:
                    self._broken = True  # the previous fragment never ended
                self._fu = bytearray([(payload[0] & 0xE0) | (payload[1] & 0x1F)])
            elif self._fu is None:
                self._broken = True  # a middle or end without its start
                return
            self._fu += payload[2:]
            if len(self._fu) + self._size > self.max_bytes:
                self._add(bytes(self._fu))  # raises
            if stop:
                self._add(bytes(self._fu))
                self._fu = None
        else:
            self._broken = True  # STAP-B, MTAP, FU-B: not in packetization-mode 1


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()  # noqa: S324 - RTSP digest is MD5


class ReplayStream:
    """One RTSP (ONVIF replay) session: H.264 access units as :class:`ReplayPacket` s.

    Build it with :meth:`open`. Iterate it for packets from the first keyframe; the iteration
    ends at the window's end (or the device's end of replay) and raises a camgate
    AdapterError when the device fails. ``aclose`` sends TEARDOWN and closes the connection.
    """

    def __init__(
        self,
        url: str,
        credentials: Credentials | None,
        *,
        require: str | None,
        start: datetime | None,
        end: datetime | None,
        clock_offset: timedelta,
        width: int,
        height: int,
        read_timeout_s: float,
        allow_basic_over_rtsp: bool = False,
    ) -> None:
        self._host, self._port, self._url = replay_address(url)
        self._allow_basic = basic_allowed("rtsp", allow_basic_over_rtsp)
        self._where = urlunsplit(("rtsp", f"{self._host}:{self._port}", urlsplit(url).path, "", ""))
        self._request_url = url
        self._creds = credentials
        self._require = require
        self._start, self._end = start, end
        self._offset = clock_offset
        self._read_timeout_s = read_timeout_s
        self._cseq = 0
        self._session: str | None = None
        self._challenge: tuple[str, dict[str, str]] | None = None
        self._nc = 0
        self._sock: anyio.abc.SocketStream | None = None
        self._buf = bytearray()
        self._early: list[tuple[int, bytes]] = []
        self._channels = (0, 1)
        self._depacketizer = H264Depacketizer(96)
        self._first_time: int | None = None
        self._last_time = 0
        self._unwrapped = 0
        #: (host-clock time, RTP time) of the first packet, from PLAY's Range and RTP-Info:
        #: dates the frames of a device that sends no ONVIF header extension.
        self._anchor: tuple[datetime, int] | None = None
        self._since_anchor = 0
        self._pending: collections.deque[AccessUnit] = collections.deque()
        self._base = self._url
        self._keepalive_s = 30.0  # half of RTSP's default session time-out (60 s)
        self._last_request = time.monotonic()
        self._done = False
        self._delivered = 0
        self._last_unit = time.monotonic()
        self.info = StreamInfo(
            codec="h264", time_base=Fraction(1, 90000), width=width, height=height
        )

    def __repr__(self) -> str:
        return f"<ReplayStream {self._where}>"

    # ------------------------------------------------------------------ reading

    async def _fill(self) -> None:
        assert self._sock is not None
        try:
            with anyio.fail_after(self._read_timeout_s):
                chunk = await self._sock.receive(65536)
        except TimeoutError:
            raise CameraUnreachable(
                f"{self._where}: the device was silent for {self._read_timeout_s:g} s"
            ) from None
        self._buf += chunk

    async def _read(self, n: int) -> bytes:
        while len(self._buf) < n:
            await self._fill()
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out

    async def _read_line(self, budget: int) -> bytes:
        while True:
            at = self._buf.find(b"\r\n")
            if at >= 0:
                break
            if len(self._buf) > budget:
                raise CameraProtocolError(
                    f"{self._where}: an RTSP answer's headers exceed {MAX_HEADER_BYTES} bytes"
                )
            await self._fill()
        if at > budget:
            raise CameraProtocolError(
                f"{self._where}: an RTSP answer's headers exceed {MAX_HEADER_BYTES} bytes"
            )
        line = bytes(self._buf[:at])
        del self._buf[: at + 2]
        return line

    async def _message(self) -> tuple[str, dict[str, str], bytes] | tuple[int, bytes]:
        """The next thing on the connection: an interleaved frame ``(channel, data)`` or an
        RTSP message ``(first line, headers, body)``."""
        skipped = 0
        while True:  # blank lines between messages and frames are tolerated, within a budget
            while len(self._buf) < 2:
                await self._fill()
            if self._buf[:2] != b"\r\n":
                break
            del self._buf[:2]
            skipped += 2
            if skipped > MAX_HEADER_BYTES:
                raise CameraProtocolError(f"{self._where}: a flood of blank lines")
        if self._buf[0] == 0x24:  # '$': an interleaved frame, taken whole (cancel-safe)
            while len(self._buf) < 4:
                await self._fill()
            size = 4 + int.from_bytes(self._buf[2:4], "big")
            while len(self._buf) < size:
                await self._fill()
            frame = bytes(self._buf[:size])
            del self._buf[:size]
            return frame[1], frame[4:]
        budget = MAX_HEADER_BYTES
        first = await self._read_line(budget)
        while not first:  # tolerate blank lines between messages, within the same budget
            budget -= 2
            if budget < 0:
                raise CameraProtocolError(
                    f"{self._where}: an RTSP answer's headers exceed {MAX_HEADER_BYTES} bytes"
                )
            first = await self._read_line(budget)
        budget -= len(first)
        headers: dict[str, str] = {}
        while True:
            line = await self._read_line(budget)
            budget -= len(line) + 2
            if not line:
                break
            key, sep, value = line.decode("latin-1").partition(":")
            if not sep:
                raise CameraProtocolError(f"{self._where}: a malformed RTSP header line")
            key = key.strip().lower()
            if key == "www-authenticate" and key in headers:  # every challenge offered
                headers[key] += "\n" + value.strip()
            else:
                headers[key] = value.strip()
        try:
            length = int(headers.get("content-length", "0") or 0)
        except ValueError:
            raise CameraProtocolError(f"{self._where}: a malformed Content-Length") from None
        if not 0 <= length <= MAX_BODY_BYTES:
            raise CameraProtocolError(
                f"{self._where}: an RTSP body of {length} bytes (limit {MAX_BODY_BYTES})"
            )
        return first.decode("latin-1"), headers, await self._read(length)

    async def _response(self, cseq: int) -> tuple[int, dict[str, str], bytes]:
        while True:
            message = await self._message()
            if len(message) == 2:
                if len(self._early) >= _MAX_EARLY_FRAMES:
                    raise CameraProtocolError(f"{self._where}: media but no RTSP answer")
                self._early.append(message)
                continue
            first, headers, body = message
            if not first.startswith("RTSP/"):
                if first.endswith(" RTSP/1.0"):
                    continue  # a request from the device (e.g. a keep-alive): not answered
                raise CameraProtocolError(f"{self._where}: not an RTSP answer")
            parts = first.split(maxsplit=2)
            if len(parts) < 2 or not parts[1].isdigit():
                raise CameraProtocolError(f"{self._where}: not an RTSP answer")
            if headers.get("cseq", "").strip() != str(cseq):
                raise CameraProtocolError(
                    f"{self._where}: an RTSP answer for CSeq {headers.get('cseq')!r}, not {cseq}"
                )
            return int(parts[1]), headers, body

    # ------------------------------------------------------------------ requests

    def _authorization(self, method: str, uri: str) -> str | None:
        if self._challenge is None or self._creds is None:
            return None
        scheme, fields = self._challenge
        user, password = self._creds.username, self._creds.password.reveal()
        if scheme == "basic":
            return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        realm, nonce = fields.get("realm", ""), fields.get("nonce", "")
        ha1 = _md5(f"{user}:{realm}:{password}")
        ha2 = _md5(f"{method}:{uri}")
        value = f'Digest username="{user}", realm="{realm}", nonce="{nonce}", uri="{uri}"'
        if "auth" in [q.strip() for q in fields.get("qop", "").split(",")]:
            self._nc += 1
            nc, cnonce = f"{self._nc:08x}", secrets.token_hex(8)
            response = _md5(f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}")
            value += f', qop=auth, nc={nc}, cnonce="{cnonce}"'
        else:
            response = _md5(f"{ha1}:{nonce}:{ha2}")
        if "opaque" in fields:
            value += f', opaque="{fields["opaque"]}"'
        return value + f', response="{response}", algorithm=MD5'

    def _accept_challenge(self, header: str | None) -> bool:
        """Choose what to answer among the challenges offered (one per line of ``header``):
        digest (MD5) first; Basic only where :func:`~camgate_rtsp.guard.basic_allowed` says
        (over plain rtsp, with ``allow_basic_over_rtsp``), else CameraAuthError."""
        if not header or self._creds is None:
            return False
        offered = [parse_challenge(line) for line in header.split("\n")]
        digest = [c for c in offered if c[0] == "digest"]
        if digest:
            md5 = [c for c in digest if c[1].get("algorithm", "MD5").upper() == "MD5"]
            if not md5:
                raise CameraAuthError(
                    f"{self._where}: the device wants digest "
                    f"{digest[0][1].get('algorithm')!r} (MD5 only)"
                )
            self._challenge = md5[0]
            return True
        basic = [c for c in offered if c[0] == "basic"]
        if not basic:
            return False
        if not self._allow_basic:
            raise CameraAuthError(f"{self._where}: {BASIC_REFUSED}")
        self._challenge = basic[0]
        return True

    def _compose(self, method: str, uri: str, headers: dict[str, str] | None = None) -> bytes:
        """One request, with the next CSeq, the session, Require (on DESCRIBE/SETUP/PLAY)
        and the authorisation the device asked for."""
        self._cseq += 1
        self._last_request = time.monotonic()
        lines = [f"{method} {uri} RTSP/1.0", f"CSeq: {self._cseq}", "User-Agent: camgate"]
        if self._require and method in ("DESCRIBE", "SETUP", "PLAY"):
            lines.append(f"Require: {self._require}")
        if self._session:
            lines.append(f"Session: {self._session}")
        auth = self._authorization(method, uri)
        if auth:
            lines.append(f"Authorization: {auth}")
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode()

    async def _request(
        self, method: str, uri: str, headers: dict[str, str]
    ) -> tuple[int, dict[str, str], bytes]:
        assert self._sock is not None
        retried = False
        while True:
            await self._sock.send(self._compose(method, uri, headers))
            status, reply, body = await self._response(self._cseq)
            if status == 401 and not retried:
                retried = True
                challenge = reply.get("www-authenticate")
                if self._accept_challenge(challenge):
                    continue
            return status, reply, body

    def _check(self, method: str, status: int, headers: dict[str, str]) -> None:
        if status == 200:
            return
        if status in (401, 403):
            raise CameraAuthError(f"{self._where}: the device refused {method} ({status})")
        if status == 404:
            raise CameraUnreachable(f"{self._where}: nothing to replay at this path (404)")
        if status == 551:
            unsupported = headers.get("unsupported", "?")
            raise CameraProtocolError(
                f"{self._where}: the device does not support {unsupported} (551 Option not "
                "supported): it cannot replay a clock range"
            )
        if status == 457:
            raise CameraProtocolError(f"{self._where}: the device refused the range (457)")
        raise CameraProtocolError(f"{self._where}: {method} answered {status}")

    def _sdp(self, body: bytes, base: str) -> str:
        control, sprop, in_video, found, codec = "", "", False, False, ""
        for raw in body.decode("latin-1").splitlines():
            line = raw.strip()
            if line.startswith("m="):
                if found:
                    in_video = False  # first video track only
                    continue
                in_video = line.startswith("m=video")
                if in_video:
                    found = True
                    fields = line.split()
                    if len(fields) < 4 or not fields[3].isdigit():
                        raise CameraProtocolError(f"{self._where}: a malformed SDP media line")
                    self._depacketizer.payload_type = int(fields[3])
            elif in_video and line.startswith("a=control:"):
                control = line[len("a=control:") :].strip()
            elif in_video and line.startswith("a=rtpmap:"):
                codec = line.split(maxsplit=1)[-1].split("/")[0].upper()
            elif in_video and line.startswith("a=fmtp:") and "sprop-parameter-sets=" in line:
                sprop = line.split("sprop-parameter-sets=", 1)[1].split(";", 1)[0].strip()
        if not found:
            raise NoVideoError(f"{self._where}: the replay has no video track")
        if codec != "H264":
            raise CameraProtocolError(
                f"{self._where}: the replay is {codec or 'of an unknown codec'}, not H.264"
            )
        try:
            sets = [base64.b64decode(p, validate=True) for p in sprop.split(",") if p]
        except ValueError:
            raise CameraProtocolError(f"{self._where}: malformed sprop-parameter-sets") from None
        extradata = b"".join(_START + s for s in sets if s) or None
        self.info = attrs.evolve(self.info, extradata=extradata)
        if not control or control == "*":
            return base
        # The track URL only names the track in SETUP, sent on the connection already open:
        # nothing connects to its host (behind NAT a device names its LAN address there).
        url = control if "://" in control else urljoin(base, control)
        replay_address(url)
        return url

    @classmethod
    async def open(
        cls,
        url: str,
        credentials: Credentials | None = None,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        require: str | None = "onvif-replay",
        clock_offset: timedelta = timedelta(0),
        width: int = 0,
        height: int = 0,
        connect_timeout_s: float = 5.0,
        read_timeout_s: float = 5.0,
        allow_basic_over_rtsp: bool = False,
    ) -> ReplayStream:
        """Connect, DESCRIBE, SETUP and PLAY; raise a camgate AdapterError on any failure.

        With ``start`` and ``end`` (aware datetimes, host clock) PLAY carries
        ``Range: clock=<start>-<end>`` on the device's clock (``clock_offset`` = device minus
        host) and the stream is cut to that window. ``require=None`` drops the
        ``Require: onvif-replay`` header (plain RTSP, for a live stream). A device that asks
        only for HTTP Basic is refused (CameraAuthError naming ``allow_basic_over_rtsp``)
        unless ``allow_basic_over_rtsp``: replay is plain rtsp, Basic would send the password
        in clear text.
        """
        self = cls(
            url,
            credentials,
            require=require,
            start=start,
            end=end,
            clock_offset=clock_offset,
            width=width,
            height=height,
            read_timeout_s=read_timeout_s,
            allow_basic_over_rtsp=allow_basic_over_rtsp,
        )
        error: AdapterError | None = None
        try:
            with anyio.fail_after(connect_timeout_s):
                self._sock = await anyio.connect_tcp(self._host, self._port)
                await self._handshake()
        except TimeoutError:
            error = CameraUnreachable(
                f"{self._where}: no replay answer within {connect_timeout_s:g} s"
            )
        except Exception as exc:
            await self.aclose()
            error = self._failure(exc, "the device closed the connection", "opening the replay")
        if error is not None:
            await self.aclose()
            raise error
        return self

    def _failure(self, exc: Exception, closed: str, doing: str) -> AdapterError:
        """``exc`` as a camgate error (an unexpected one is re-raised)."""
        if isinstance(exc, AdapterError):
            return exc
        if isinstance(
            exc, anyio.EndOfStream | anyio.BrokenResourceError | anyio.ClosedResourceError
        ):
            return CameraUnreachable(f"{self._where}: {closed}")
        if isinstance(exc, OSError):
            return CameraUnreachable(f"{self._where}: {type(exc).__name__} {doing}")
        raise exc

    async def _handshake(self) -> None:
        status, headers, body = await self._request(
            "DESCRIBE", self._request_url, {"Accept": "application/sdp"}
        )
        self._check("DESCRIBE", status, headers)
        base = headers.get("content-base") or headers.get("content-location") or self._url
        replay_address(base)
        setup_url = self._sdp(body, base)
        status, headers, _ = await self._request(
            "SETUP", setup_url, {"Transport": "RTP/AVP/TCP;unicast;interleaved=0-1"}
        )
        self._check("SETUP", status, headers)
        transport = headers.get("transport", "")
        for field in transport.split(";"):
            key, _, value = field.strip().partition("=")
            if key == "interleaved":
                low, _, high = value.partition("-")
                if not low.isdigit():
                    raise CameraProtocolError(f"{self._where}: a malformed Transport answer")
                self._channels = (int(low), int(high) if high.isdigit() else int(low) + 1)
        if "TCP" not in transport.upper():
            raise CameraProtocolError(f"{self._where}: the device refused RTP over TCP")
        session, *params = headers.get("session", "").split(";")
        self._session = session.strip() or None
        for param in params:
            key, _, value = param.strip().partition("=")
            if key.lower() == "timeout" and value.strip().isdigit() and int(value) > 0:
                # keep the session alive at half the device's time-out
                self._keepalive_s = max(int(value) / 2, 0.5)
        if not self._session:
            raise CameraProtocolError(f"{self._where}: SETUP answered without a Session")
        play: dict[str, str] = {}
        if self._start is not None:
            play["Range"] = clock_range(
                self._start + self._offset, None if self._end is None else self._end + self._offset
            )
        self._base = base
        status, headers, _ = await self._request("PLAY", base, play)
        self._check("PLAY", status, headers)
        anchor = play_anchor(headers)
        if anchor is not None:
            self._anchor = (anchor[0] - self._offset, anchor[1])
        self._last_unit = time.monotonic()

    # ------------------------------------------------------------------ iteration

    async def _frame(self) -> tuple[int, bytes]:
        if self._early:
            return self._early.pop(0)
        while True:
            if self._sock is not None and time.monotonic() - self._last_request > self._keepalive_s:
                # RTSP keep-alive: the answer arrives later and is skipped like any message
                await self._sock.send(self._compose("GET_PARAMETER", self._base))
            message = await self._message()
            if len(message) == 2:
                return message

    def _packet(self, unit: AccessUnit) -> ReplayPacket:
        if self._first_time is None:
            self._first_time = self._last_time = unit.rtp_time
            if self._anchor is not None:
                self._since_anchor = _signed(unit.rtp_time - self._anchor[1])
        step = _signed(unit.rtp_time - self._last_time)
        self._unwrapped += step
        self._since_anchor += step
        self._last_time = unit.rtp_time
        clock = None if unit.ntp is None else ntp_to_datetime(unit.ntp) - self._offset
        if clock is None and self._anchor is not None:
            # No header extension: the time PLAY's answer gave its first packet, plus media
            # time since (so the window is cut by recorded time, not by length).
            seconds = float(self._since_anchor * self.info.time_base)
            clock = self._anchor[0] + timedelta(seconds=seconds)
        # The capture time the edge cuts clips on: the device's own stamp when it sends one,
        # else the window's start plus media time since the first unit (an estimate).
        wallclock = clock
        if wallclock is None and self._start is not None:
            wallclock = self._start + timedelta(
                seconds=float(self._unwrapped * self.info.time_base)
            )
        return ReplayPacket(
            data=b"".join(_START + n for n in unit.nals),
            pts=self._unwrapped,
            dts=self._unwrapped,
            is_keyframe=unit.keyframe,
            stream=self.info,
            arrival=time.monotonic(),
            clock=clock,
            wallclock=wallclock,
        )

    def _in_window(self, packet: ReplayPacket) -> bool | None:
        """True: deliver; False: not yet (before the start); None: the window is over."""
        if packet.clock is not None and self._start is not None and self._end is not None:
            if packet.clock >= self._end:
                return None
            if self._delivered == 0:
                return packet.is_keyframe and packet.clock >= self._start
            return True
        if self._delivered == 0:
            return packet.is_keyframe
        if self._start is not None and self._end is not None:
            length = (self._end - self._start) / timedelta(seconds=1)
            if packet.seconds is not None and packet.seconds >= length:
                return None
        return True

    def __aiter__(self) -> ReplayStream:
        return self

    async def __anext__(self) -> ReplayPacket:
        error: AdapterError | None = None
        packet = None
        try:
            packet = await self._next()
        except Exception as exc:
            error = self._failure(
                exc, "the device closed the replay before its end", "during the replay"
            )
        if error is not None:
            await self.aclose()
            raise error
        if packet is None:
            await self.aclose()
            raise StopAsyncIteration
        return packet

    async def _next(self) -> ReplayPacket | None:
        while True:
            while self._pending:
                unit = self._pending.popleft()
                packet = self._packet(unit)
                verdict = self._in_window(packet)
                if verdict is None:
                    self._done = True
                    self._pending.clear()
                    return None
                if unit.terminal:
                    self._done = True
                    self._pending.clear()
                if verdict:
                    if self._delivered == 0:
                        self._unwrapped = 0  # media time counts from the first packet handed over
                        packet = attrs.evolve(packet, pts=0, dts=0)
                    self._delivered += 1
                    return packet
            if self._done or self._sock is None:
                return None
            if time.monotonic() - self._last_unit > self._read_timeout_s:
                # data flows (RTCP, other payloads, requests) but no picture: as good as silent
                raise CameraUnreachable(
                    f"{self._where}: no video from the device for {self._read_timeout_s:g} s"
                )
            channel, data = await self._frame()
            if channel == self._channels[1]:
                self._done = self._bye(data)
            elif channel == self._channels[0]:
                units = self._depacketizer.push(data)
                if units:
                    self._last_unit = time.monotonic()
                    self._pending.extend(units)

    @staticmethod
    def _bye(data: bytes) -> bool:
        """True when an RTCP compound packet holds a BYE (the device ended the replay)."""
        i = 0
        while i + 4 <= len(data):
            if data[i + 1] == 203:
                return True
            i += 4 * (int.from_bytes(data[i + 2 : i + 4], "big") + 1)
        return False

    async def aclose(self) -> None:
        """TEARDOWN (best effort, 0.5 s at most) and close the connection. Idempotent."""
        sock, self._sock = self._sock, None
        if sock is None:
            return
        with contextlib.suppress(Exception), anyio.move_on_after(0.5):
            if self._session:
                await sock.send(self._compose("TEARDOWN", self._base))
        with contextlib.suppress(Exception):
            await sock.aclose()
