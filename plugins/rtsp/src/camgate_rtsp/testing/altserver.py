"""A second RTSP server implementation for tests: ours, in Python, fed by FFmpeg's RTP muxer.

GStreamer's server (:mod:`camgate_rtsp.testing.server`) repeats the parameter sets in-band and
speaks both transports. Many cameras do neither, so this server is built differently on purpose:

* the media is a file looped by ``ffmpeg -re -stream_loop -1 -c copy -f rtp`` (FFmpeg's own RTP
  packetizers: H.264 and H.265 from MP4 carry their parameter sets **only in the SDP**
  (``sprop-parameter-sets`` / ``sprop-vps/sps/pps``), AAC is packed **several frames per RTP
  packet** (``mpeg4-generic``), G.711 µ-law or A-law is encoded on the fly, B-frames and
  mid-stream resolution changes pass as the file has them);
* the RTSP side is this module's: OPTIONS, DESCRIBE, SETUP, PLAY, GET/SET_PARAMETER, TEARDOWN,
  RTP over TCP interleaved and over UDP; ``udp_only=True`` answers an interleaved SETUP with
  ``461 Unsupported Transport`` as UDP-only cameras do (``tcp_only=True`` the reverse);
* ``cut_every_s`` ends every session that long after its PLAY (the TCP connection closed, UDP
  sending stopped), like a camera that drops its clients.

One FFmpeg feeds every session (a client joins mid-stream, as with a real camera). Typical use::

    from camgate_rtsp.testing.altserver import media_file, serving

    with serving(media_file("h265", tmp_path), udp_only=True) as server:
        url = server.url()

:func:`media_file` makes the test inputs (small, short, looped) with FFmpeg. The request
reader (:class:`RequestReader`) is the one parser of untrusted bytes here: it raises
:class:`RtspRequestError` for anything it cannot frame.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import re
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs

__all__ = [
    "MEDIA_KINDS",
    "AltRtspServer",
    "RequestReader",
    "RtspRequest",
    "RtspRequestError",
    "media_file",
    "parse_transport",
    "serving",
]

#: Longest request header the reader accepts, and the longest body.
MAX_HEADER = 16 * 1024
MAX_BODY = 64 * 1024
_REQUEST_LINE = re.compile(rb"([A-Z_]{1,32}) (\S{1,2048}) RTSP/1\.[0-9]")


class RtspRequestError(ValueError):
    """Bytes from a client that are not an RTSP request (or interleaved frame) we can frame."""


@attrs.frozen
class RtspRequest:
    """One RTSP request: method, URI, headers (lower-case names) and body."""

    method: str
    uri: str
    headers: dict[str, str]
    body: bytes = b""

    @property
    def cseq(self) -> str:
        """The request's CSeq ("0" when absent)."""
        return self.headers.get("cseq", "0")


class RequestReader:
    """Frames a client's byte stream into requests, skipping interleaved ``$`` frames (RTCP
    receiver reports over TCP). :meth:`feed` returns the requests completed so far; it raises
    :class:`RtspRequestError` for a malformed request line or header, an over-long header or
    body, or a bad Content-Length (the connection must then end)."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[RtspRequest]:
        """Add ``data``; return every request now complete, in order."""
        self._buf += data
        out: list[RtspRequest] = []
        while self._buf:
            if self._buf[0] == 0x24:  # "$", channel, 16-bit length
                if len(self._buf) < 4:
                    break
                size = int.from_bytes(self._buf[2:4], "big")
                if len(self._buf) < 4 + size:
                    break
                del self._buf[: 4 + size]
                continue
            if self._buf[0] in b"\r\n":
                del self._buf[:1]
                continue
            end = self._buf.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buf) > MAX_HEADER:
                    raise RtspRequestError("a request header longer than 16 KiB")
                break
            if end > MAX_HEADER:
                raise RtspRequestError("a request header longer than 16 KiB")
            head = bytes(self._buf[:end])
            request, length = _parse_head(head)
            if len(self._buf) < end + 4 + length:
                break
            body = bytes(self._buf[end + 4 : end + 4 + length])
            del self._buf[: end + 4 + length]
            out.append(attrs.evolve(request, body=body))
        return out


def _parse_head(head: bytes) -> tuple[RtspRequest, int]:
    lines = head.split(b"\r\n")
    match = _REQUEST_LINE.fullmatch(lines[0])
    if match is None:
        raise RtspRequestError("not an RTSP request line")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep or not name or not name.strip().isascii() or b" " in name.strip():
            raise RtspRequestError("a malformed header line")
        try:
            headers[name.strip().lower().decode("ascii")] = value.strip().decode("utf-8")
        except UnicodeDecodeError:
            raise RtspRequestError("a header that is not UTF-8") from None
    length = headers.get("content-length", "0")
    if not length.isdigit() or not length.isascii() or int(length) > MAX_BODY:
        raise RtspRequestError("a bad or too large Content-Length")
    method, uri = match.group(1).decode("ascii"), match.group(2).decode("latin-1")
    return RtspRequest(method, uri, headers), int(length)


def _even_odd_sockets() -> list[socket.socket]:
    """Two UDP sockets on consecutive ports, RTP on the even one and RTCP on the next, as
    cameras bind them (RFC 3550; FFmpeg expects RTCP at the RTP port plus one)."""
    for _ in range(100):
        rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        rtp.bind(("127.0.0.1", 0))
        port = rtp.getsockname()[1]
        if port % 2 == 0 and port < 65535:
            rtcp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                rtcp.bind(("127.0.0.1", port + 1))
            except OSError:
                rtcp.close()
            else:
                rtp.setblocking(False)
                rtcp.setblocking(False)
                return [rtp, rtcp]
        rtp.close()
    raise OSError("no free pair of consecutive UDP ports")


def parse_transport(value: str) -> dict[str, str]:
    """The first transport spec of a ``Transport`` header as ``{"proto": ..., param: value}``
    (``proto`` is ``RTP/AVP``, ``RTP/AVP/TCP`` or ``RTP/AVP/UDP``; a flag has value "")."""
    spec = value.split(",")[0].strip()
    parts = [p.strip() for p in spec.split(";") if p.strip()]
    if not parts:
        raise RtspRequestError("an empty Transport header")
    out = {"proto": parts[0].upper()}
    for part in parts[1:]:
        key, _, val = part.partition("=")
        out[key.lower()] = val
    return out


def _port_pair(value: str, lowest: int = 1, highest: int = 65535) -> tuple[int, int]:
    low, _, high = value.partition("-")
    if not (low.isdigit() and low.isascii() and lowest <= int(low) <= highest):
        raise RtspRequestError(f"a bad port range {value!r}")
    first = int(low)
    ok = high.isdigit() and high.isascii() and lowest <= int(high) <= highest
    second = int(high) if ok else first + 1
    return first, second


# ---------------------------------------------------------------------------------------- media

#: The test inputs :func:`media_file` makes: name → (description, FFmpeg output arguments).
MEDIA_KINDS: dict[str, str] = {
    "h264": "H.264 Main, 320x240 at 15 fps, keyframe every 15 frames, parameter sets in MP4 only",
    "h264-bframes": "H.264 High with 2 B-frames, otherwise as h264",
    "h265": "H.265, as h264",
    "h264-aac": "h264 with 440 Hz AAC-LC at 16 kHz (several frames per RTP packet)",
    "h264-g711": "h264 with a 440 Hz tone to be sent as G.711 µ-law at 8 kHz",
    "resize": "H.264 in MPEG-TS: 320x240 for 2 s, then 480x270 for 2 s (parameter sets in-band)",
}

_VIDEO = ["-f", "lavfi", "-i", "testsrc=size={size}:rate=15"]
_TONE = ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate={rate}"]
_X264 = ["-c:v", "libx264", "-preset", "veryfast", "-g", "15", "-pix_fmt", "yuv420p"]


def media_file(kind: str, directory: Path | str, seconds: float = 2.0) -> Path:
    """Make (once per ``directory``) the test input ``kind`` of :data:`MEDIA_KINDS`; return it.

    Raises ValueError for an unknown kind, RuntimeError when FFmpeg fails."""
    if kind not in MEDIA_KINDS:
        raise ValueError(f"unknown media kind {kind!r}; known: {sorted(MEDIA_KINDS)}")
    out = Path(directory) / f"alt-{kind}.{'ts' if kind == 'resize' else 'mp4'}"
    if out.exists():
        return out
    t = ["-t", f"{seconds:g}"]
    video = [a.format(size="320x240") for a in _VIDEO]
    args: list[str]
    if kind == "h264":
        args = [*video, *t, *_X264, "-profile:v", "main", "-bf", "0"]
    elif kind == "h264-bframes":
        args = [*video, *t, "-c:v", "libx264", "-preset", "veryfast", "-g", "15"]
        args += ["-pix_fmt", "yuv420p", "-profile:v", "high", "-bf", "2"]
    elif kind == "h265":
        args = [*video, *t, "-c:v", "libx265", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
        args += ["-x265-params", "keyint=15:min-keyint=15:bframes=0:log-level=error"]
        args += ["-tag:v", "hvc1"]
    elif kind in ("h264-aac", "h264-g711"):
        tone = [a.format(rate=16000 if kind == "h264-aac" else 8000) for a in _TONE]
        args = [*video, *tone, *t, *_X264, "-profile:v", "main", "-bf", "0"]
        args += ["-c:a", "aac", "-b:a", "32k", "-ac", "1", "-shortest"]
    else:
        return _resize(out, seconds)
    _ffmpeg([*args, str(out)])
    return out


def _resize(out: Path, seconds: float) -> Path:
    """Two encodes of two sizes, each with its parameter sets at every keyframe, joined by
    FFmpeg's concat demuxer without re-encoding (a concat filter would scale both to one size)."""
    parts = []
    for index, size in enumerate(("320x240", "480x270")):
        part = out.with_name(f"{out.stem}-{index}.ts")
        src = ["-f", "lavfi", "-i", f"testsrc=size={size}:rate=15", "-t", f"{seconds:g}"]
        _ffmpeg([*src, *_X264, "-bf", "0", "-bsf:v", "dump_extra", "-f", "mpegts", str(part)])
        parts.append(part)
    listing = out.with_suffix(".txt")
    listing.write_text("".join(f"file '{p.name}'\n" for p in parts))
    _ffmpeg(["-f", "concat", "-safe", "0", "-i", str(listing), "-c", "copy", str(out)])
    listing.unlink()
    for part in parts:
        part.unlink()
    return out


_FFPROBE = ["ffprobe", "-v", "error", "-show_entries", "stream=codec_type", "-of", "csv=p=0"]


def _ffmpeg(args: list[str]) -> None:
    cmd = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y", *args]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"ffmpeg failed ({done.returncode}): {done.stderr.strip()[-2000:]}")


# --------------------------------------------------------------------------------------- server


@attrs.define
class _Track:
    """One RTP stream from FFmpeg: the sockets it arrives on and its SDP media section."""

    index: int
    rtp: socket.socket
    rtcp: socket.socket
    media: str = ""


@attrs.define(eq=False)
class _Session:
    """One client session: its tracks' transports, and whether it plays."""

    id: str
    conn: _Connection
    tcp: dict[int, int] = attrs.Factory(dict)  # track → interleaved RTP channel
    udp: dict[int, tuple[socket.socket, socket.socket, tuple[str, int, int]]] = attrs.Factory(
        dict
    )  # track → (server RTP socket, server RTCP socket, (client host, rtp port, rtcp port))
    playing: bool = False


class AltRtspServer:
    """Serve ``media`` (a file; see :func:`media_file`) at ``rtsp://127.0.0.1:<port><path>``.

    ``udp_only`` refuses interleaved TCP with 461, ``tcp_only`` refuses UDP with 461 (both: a
    camera that takes neither);
    ``cut_every_s`` ends each session that long after its PLAY; ``audio_codec`` is ``"copy"``
    or ``"pcm_mulaw"``/``"pcm_alaw"`` (G.711 encoded on the fly). :attr:`requests` logs
    ``(method, path, transport or "", status)`` for every request answered.
    """

    def __init__(
        self,
        media: Path | str,
        *,
        path: str = "/cam",
        udp_only: bool = False,
        tcp_only: bool = False,
        cut_every_s: float | None = None,
        audio_codec: str = "copy",
    ) -> None:
        if not path.startswith("/"):
            raise ValueError(f"path {path!r} must start with '/'")
        self.media = Path(media)
        self.path = path
        self.udp_only = udp_only
        self.tcp_only = tcp_only
        self.cut_every_s = cut_every_s
        self.audio_codec = audio_codec
        self.requests: list[tuple[str, str, str, int]] = []
        self.port = 0
        self._tracks: list[_Track] = []
        self._sdp = ""
        self._sessions: dict[str, _Session] = {}
        self._ids = itertools.count(0x1000)
        self._ffmpeg: subprocess.Popen[bytes] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stop: asyncio.Event | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None

    def __repr__(self) -> str:
        return f"<AltRtspServer {self.url()} udp_only={self.udp_only} tcp_only={self.tcp_only}>"

    def url(self) -> str:
        """The stream's URL."""
        return f"rtsp://127.0.0.1:{self.port}{self.path}"

    @property
    def sdp(self) -> str:
        """The SDP the server describes the stream with (after :meth:`start`)."""
        return self._sdp

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Start FFmpeg and the RTSP listener; return once the SDP is known."""
        if not self.media.exists():
            raise FileNotFoundError(self.media)
        self._tmp = tempfile.TemporaryDirectory(prefix="camgate-altrtsp-")
        self._start_ffmpeg(Path(self._tmp.name) / "stream.sdp")
        self._thread = threading.Thread(target=self._main, name="alt-rtsp-server", daemon=True)
        self._thread.start()
        self._started.wait(10)
        if self._error is not None:
            self.stop()
            raise RuntimeError(f"the alt RTSP server did not start: {self._error}")

    def _start_ffmpeg(self, sdp_path: Path) -> None:
        probe = subprocess.run(
            [*_FFPROBE, str(self.media)],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        kinds = [k.strip() for k in probe.stdout.split() if k.strip()]
        cmd = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-re"]
        cmd += ["-stream_loop", "-1", "-i", str(self.media)]
        for kind in ("video", "audio"):
            if kind not in kinds:
                continue
            rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            rtcp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            for s in (rtp, rtcp):
                s.bind(("127.0.0.1", 0))
                s.setblocking(False)
            track = _Track(len(self._tracks), rtp, rtcp)
            self._tracks.append(track)
            codec = ["-c", "copy"]
            if kind == "audio" and self.audio_codec != "copy":
                codec = ["-c:a", self.audio_codec, "-ar", "8000", "-ac", "1"]
            rtp_port, rtcp_port = rtp.getsockname()[1], rtcp.getsockname()[1]
            cmd += ["-map", f"0:{kind[0]}:0", *codec, "-max_delay", "300000", "-f", "rtp"]
            cmd += [f"rtp://127.0.0.1:{rtp_port}?rtcpport={rtcp_port}&pkt_size=1200"]
        cmd += ["-sdp_file", str(sdp_path)]
        self._ffmpeg = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + 30
        while not (sdp_path.exists() and sdp_path.read_text().count("m=") >= len(self._tracks)):
            if self._ffmpeg.poll() is not None or time.monotonic() > deadline:
                err = self._ffmpeg.stderr.read().decode() if self._ffmpeg.stderr else ""
                self.stop()
                raise RuntimeError(f"ffmpeg did not start the RTP feed: {err[-2000:]}")
            time.sleep(0.05)
        self._sdp = self._describe(sdp_path.read_text())

    def _describe(self, sdp: str) -> str:
        """FFmpeg's SDP made an RTSP one: no destination, a control URL per track."""
        head: list[str] = []
        media: list[list[str]] = []
        for line in sdp.replace("\r\n", "\n").split("\n"):
            if not line:
                continue
            if line.startswith("m="):
                kind, _port, *rest = line[2:].split(" ")
                media.append([f"m={kind} 0 {' '.join(rest)}", "c=IN IP4 0.0.0.0"])
            elif line.startswith("c="):
                continue
            elif media:
                media[-1].append(line)
            else:
                head.append(line)
        head.append("a=control:*")
        for index, section in enumerate(media):
            section.append(f"a=control:trackID={index}")
            self._tracks[index].media = section[0]
        return "\r\n".join(head + [line for s in media for line in s]) + "\r\n"

    def stop(self) -> None:
        """Stop serving: close every session, the listener and FFmpeg. Idempotent."""
        if self._loop is not None and self._stop is not None:
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(10)
        if self._ffmpeg is not None and self._ffmpeg.poll() is None:
            self._ffmpeg.terminate()
            try:
                self._ffmpeg.wait(5)
            except subprocess.TimeoutExpired:
                self._ffmpeg.kill()
                self._ffmpeg.wait()
        if self._ffmpeg is not None and self._ffmpeg.stderr is not None:
            self._ffmpeg.stderr.close()
        for track in self._tracks:
            track.rtp.close()
            track.rtcp.close()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> AltRtspServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ the server's thread

    def _main(self) -> None:
        loop = self._loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(self._serve())
        except BaseException as exc:  # reported by start()
            self._error = exc
            self._started.set()
        finally:
            loop.close()

    async def _serve(self) -> None:
        loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        server = await loop.create_server(lambda: _Connection(self), "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        for track in self._tracks:
            for rtcp, sock in ((False, track.rtp), (True, track.rtcp)):
                loop.add_reader(sock.fileno(), self._forward, track, sock, rtcp)
        self._started.set()
        try:
            await self._stop.wait()
        finally:
            for track in self._tracks:
                for sock in (track.rtp, track.rtcp):
                    loop.remove_reader(sock.fileno())
            server.close()
            for session in list(self._sessions.values()):
                session.conn.close()
            await asyncio.sleep(0)

    def _forward(self, track: _Track, sock: socket.socket, rtcp: bool) -> None:
        """A datagram from FFmpeg: to every playing session that set this track up."""
        while True:
            try:
                data = sock.recv(65536)
            except (BlockingIOError, OSError):
                return
            for session in list(self._sessions.values()):
                if not session.playing:
                    continue
                if track.index in session.tcp:
                    channel = session.tcp[track.index] + (1 if rtcp else 0)
                    session.conn.send_frame(channel, data)
                elif track.index in session.udp:
                    rtp_sock, rtcp_sock, (host, rtp_port, rtcp_port) = session.udp[track.index]
                    with contextlib.suppress(OSError):
                        if rtcp:
                            rtcp_sock.sendto(data, (host, rtcp_port))
                        else:
                            rtp_sock.sendto(data, (host, rtp_port))

    # ------------------------------------------------------------------ requests

    def answer(self, conn: _Connection, request: RtspRequest) -> None:
        """Answer one request on ``conn``."""
        method = request.method
        transport = request.headers.get("transport", "")
        status, headers, body = 200, {}, b""
        if method == "OPTIONS":
            headers["Public"] = "OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN, GET_PARAMETER"
        elif not _path_of(request.uri).startswith(self.path):
            status = 404
        elif method == "DESCRIBE":
            body = self._sdp.encode()
            headers["Content-Type"] = "application/sdp"
            headers["Content-Base"] = f"{self.url()}/"
        elif method == "SETUP":
            status, headers = self._setup(conn, request, transport)
        elif method == "PLAY":
            session = self._sessions.get(request.headers.get("session", "").split(";")[0])
            if session is None:
                status = 454
            else:
                session.playing = True
                headers["Session"] = session.id
                headers["Range"] = "npt=0.000-"
                if self.cut_every_s is not None:
                    loop = asyncio.get_running_loop()
                    loop.call_later(self.cut_every_s, self._cut, session)
        elif method in ("GET_PARAMETER", "SET_PARAMETER"):
            pass
        elif method == "TEARDOWN":
            session = self._sessions.pop(request.headers.get("session", "").split(";")[0], None)
            if session is not None:
                _close_udp(session)
        else:
            status = 405
        self.requests.append((method, _path_of(request.uri), transport, status))
        conn.reply(status, request.cseq, headers, body)
        if method == "TEARDOWN":
            conn.close()

    def _setup(
        self, conn: _Connection, request: RtspRequest, transport: str
    ) -> tuple[int, dict[str, str]]:
        match = re.search(r"trackID=([0-9]+)$", request.uri)
        if match is None or int(match.group(1)) >= len(self._tracks):
            return 404, {}
        track = int(match.group(1))
        try:
            spec = parse_transport(transport)
        except RtspRequestError:
            return 400, {}
        tcp = spec["proto"] == "RTP/AVP/TCP"
        if (tcp and self.udp_only) or (not tcp and self.tcp_only):
            return 461, {}
        sid = request.headers.get("session", "").split(";")[0]
        session = self._sessions.get(sid)
        if session is None:
            sid = f"{next(self._ids):X}"
            session = self._sessions[sid] = _Session(sid, conn)
            conn.sessions.add(sid)
        try:
            if tcp:
                default = f"{2 * track}-{2 * track + 1}"
                channel = _port_pair(spec.get("interleaved", default), 0, 254)[0]
                session.tcp[track] = channel
                reply = f"RTP/AVP/TCP;unicast;interleaved={channel}-{channel + 1}"
            else:
                rtp_port, rtcp_port = _port_pair(spec.get("client_port", ""))
                socks = _even_odd_sockets()
                host = conn.peer_host
                session.udp[track] = (socks[0], socks[1], (host, rtp_port, rtcp_port))
                ports = f"{socks[0].getsockname()[1]}-{socks[1].getsockname()[1]}"
                reply = f"RTP/AVP;unicast;client_port={rtp_port}-{rtcp_port};server_port={ports}"
        except RtspRequestError:
            return 400, {}
        return 200, {"Transport": reply, "Session": f"{sid};timeout=60"}

    def _cut(self, session: _Session) -> None:
        """End ``session`` as a flaky camera does: no goodbye."""
        self._sessions.pop(session.id, None)
        _close_udp(session)
        session.conn.close()

    def forget(self, conn: _Connection) -> None:
        """``conn`` closed: its sessions end."""
        for sid in conn.sessions:
            session = self._sessions.pop(sid, None)
            if session is not None:
                _close_udp(session)


def _close_udp(session: _Session) -> None:
    session.playing = False
    for rtp, rtcp, _ in session.udp.values():
        rtp.close()
        rtcp.close()
    session.udp.clear()


def _path_of(uri: str) -> str:
    if "://" in uri:
        uri = uri.split("://", 1)[1]
        uri = "/" + uri.split("/", 1)[1] if "/" in uri else "/"
    return uri


class _Connection(asyncio.Protocol):
    """One client's RTSP connection."""

    def __init__(self, server: AltRtspServer) -> None:
        self.server = server
        self.reader = RequestReader()
        self.transport: asyncio.Transport | None = None
        self.sessions: set[str] = set()
        self.peer_host = "127.0.0.1"

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        peer = transport.get_extra_info("peername")
        if peer:
            self.peer_host = peer[0]

    def data_received(self, data: bytes) -> None:
        try:
            requests = self.reader.feed(data)
        except RtspRequestError:
            self.reply(400, "0", {}, b"")
            self.close()
            return
        for request in requests:
            self.server.answer(self, request)

    def reply(self, status: int, cseq: str, headers: dict[str, str], body: bytes) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        reason = _REASONS.get(status, "Error")
        lines = [f"RTSP/1.0 {status} {reason}", f"CSeq: {cseq}", "Server: camgate-altserver"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        if body:
            lines.append(f"Content-Length: {len(body)}")
        self.transport.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)

    def send_frame(self, channel: int, data: bytes) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if transport.get_write_buffer_size() > 4 << 20:
            return  # a client that does not read: drop, as a camera would
        transport.write(b"$" + bytes([channel & 0xFF]) + len(data).to_bytes(2, "big") + data)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.forget(self)


_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    454: "Session Not Found",
    461: "Unsupported Transport",
}


@contextlib.contextmanager
def serving(media: Path | str, **options: Any) -> Iterator[AltRtspServer]:
    """A started :class:`AltRtspServer` for the ``with`` block (the fixture helper beside
    :func:`camgate_rtsp.testing.server.serving`); stopped on exit."""
    server = AltRtspServer(media, **options)
    server.start()
    try:
        yield server
    finally:
        server.stop()
