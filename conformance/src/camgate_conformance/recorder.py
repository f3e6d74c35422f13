"""The suite's own observer: a recording TCP proxy between the adapter and the target, and a
watch on every outbound connection attempt of the process.

The vendor's simulator log is a second witness, never the only one. :class:`Recorder` listens on
loopback, one port per address the target's cameras live at; the suite rewrites the target's
sources and settings to point at those ports, so every byte the adapter exchanges with a camera
passes through it. For each connection it logs, on ``time.monotonic()``'s clock:

* ``connect`` and ``closed`` (with the byte counts each way and which side ended it);
* each RTSP request (``describe``, ``setup``, ``play``, ``teardown``, ... with its URL; a SETUP
  of a track the DESCRIBE answer's SDP calls ``m=audio`` is marked ``audio``); interleaved
  ``$`` frames are only counted;
* each HTTP request line (``http``), and for a SOAP request the operation (``soap``), read from
  the ``SOAPAction`` header or the first element inside the body's ``Body``;
* a WebSocket upgrade (``websocket``; the frames after it are only counted) and a TLS hello
  (``tls``; RTSPS and HTTPS are passed through and only counted: the suite cannot read them).

The watch on outbound connections (the audit hook, the ``/proc`` poll and whose connect is
the run's) is :mod:`camgate_conformance.egress`; the recorder runs its ``/proc`` poll.
"""

from __future__ import annotations

import contextlib
import contextvars
import re
import selectors
import socket
import threading
import time
import weakref
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

import attrs

from camgate_conformance.egress import (
    _RUN,
    Connect,
    _bound_ports,
    _internal,
    _proc_remote_addresses,
    _starters,
    _watchers,
    install_audit_hook,
)

__all__ = ["Connect", "RecordedEvent", "Recorder", "install_audit_hook"]

#: RTSP methods that ask the camera for media.
RTSP_MEDIA = frozenset({"describe", "setup", "play"})
#: SOAP operations that ask a device for media (or for where to fetch it).
SOAP_MEDIA = frozenset({"GetStreamUri", "GetSnapshotUri", "GetReplayUri"})
_RTSP_METHODS = frozenset(
    {
        "OPTIONS",
        "DESCRIBE",
        "SETUP",
        "PLAY",
        "PAUSE",
        "TEARDOWN",
        "GET_PARAMETER",
        "SET_PARAMETER",
        "ANNOUNCE",
        "RECORD",
        "REDIRECT",
    }
)
_HTTP_METHODS = frozenset({"GET", "POST", "PUT", "DELETE", "HEAD", "PATCH", "OPTIONS"})
_SOAP_OP = re.compile(rb"<(?:[\w.-]+:)?Body[^>]*>\s*<(?:[\w.-]+:)?([\w.-]+)", re.S)
_MAX_MESSAGE = 1 << 20


@attrs.frozen
class RecordedEvent:
    """One thing the recorder saw on a connection between the adapter and the target.

    Same shape as a vendor's event (``at``, ``client``, ``kind``, ``camera``, ``media``), plus
    ``detail`` (the request line, byte counts) and ``audio`` (a SETUP of an audio track).
    """

    at: float
    client: str
    kind: str
    camera: str | None
    media: bool
    detail: str = ""
    audio: bool = False
    witness: str = "recorder"

    def line(self) -> str:
        """The event as one line of evidence."""
        what = f" {self.detail}" if self.detail else ""
        return f"[{self.witness} {self.at:.3f}] {self.client} {self.kind}{what}"


# ------------------------------------------------------------------ protocol parsing


class _Direction:
    """One direction of a connection: bytes counted, messages cut out of the stream."""

    def __init__(self) -> None:
        self.buffer = b""
        self.count = 0
        self.opaque: str | None = None  # "tls" / "websocket": only counted from then on

    def feed(self, data: bytes) -> list[tuple[bytes, bytes]]:
        """Add ``data``; the complete (head, body) messages it finished."""
        self.count += len(data)
        if self.opaque is not None:
            return []
        self.buffer += data
        messages: list[tuple[bytes, bytes]] = []
        while self.buffer:
            if self.buffer[:1] == b"$":  # RTSP interleaved frame: $ channel length(2) payload
                if len(self.buffer) < 4:
                    break
                size = 4 + int.from_bytes(self.buffer[2:4], "big")
                if len(self.buffer) < size:
                    break
                self.buffer = self.buffer[size:]
                continue
            if self.buffer[:1] == b"\x16":  # a TLS record: RTSPS / HTTPS pass through
                self.opaque, self.buffer = "tls", b""
                messages.append((b"\x16", b""))
                break
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buffer) > _MAX_MESSAGE:
                    self.opaque, self.buffer = "unparsed", b""
                break
            head = self.buffer[:end]
            length = _content_length(head)
            if length is None and b"chunked" in _header(head, b"transfer-encoding").lower():
                messages.append((head, b""))  # chunked bodies are only counted
                self.opaque, self.buffer = "chunked", b""
                break
            total = end + 4 + (length or 0)
            if len(self.buffer) < total:
                if total > _MAX_MESSAGE:
                    self.opaque, self.buffer = "unparsed", b""
                break
            messages.append((head, self.buffer[end + 4 : total]))
            self.buffer = self.buffer[total:]
        return messages


def _header(head: bytes, name: bytes) -> bytes:
    for line in head.split(b"\r\n")[1:]:
        key, _, value = line.partition(b":")
        if key.strip().lower() == name:
            return value.strip()
    return b""


def _content_length(head: bytes) -> int | None:
    value = _header(head, b"content-length")
    return int(value) if value.isdigit() else None


def _sdp_audio_controls(body: bytes) -> set[str]:
    """The ``a=control:`` values of the SDP's audio sections."""
    controls: set[str] = set()
    kind = ""
    for raw in body.decode("latin-1").splitlines():
        line = raw.strip()
        if line.startswith("m="):
            kind = line[2:].split(" ", 1)[0]
        elif line.startswith("a=control:") and kind == "audio":
            controls.add(line[len("a=control:") :])
    return controls


class _Conn:
    def __init__(self, number: int, client: socket.socket, upstream: socket.socket) -> None:
        self.id = f"rec.{number}"
        self.client = client
        self.upstream = upstream
        self.up = _Direction()  # adapter -> camera
        self.down = _Direction()  # camera -> adapter
        self.pending: list[str] = []  # RTSP methods awaiting their answer (in order)
        self.audio_controls: set[str] = set()
        self.closed = False
        self.port = 0
        self.upstream_host = ""
        self.asked_ports: set[int] = set()  # ports named in the adapter's own requests


# ------------------------------------------------------------------ the recorder


class Recorder:
    """A recording TCP proxy on loopback and a watch on outbound connections (module docstring).

    Use as a context manager. :meth:`proxy` gives the loopback address that forwards to a target
    address; :meth:`rewrite` applies those to sources and settings. :meth:`events` and
    :meth:`open_clients` have the shape of a target's backdoor; :meth:`connects` lists every
    outbound connection attempt seen while it ran (the suite's own forwarding excluded).
    """

    def __init__(
        self, poll_s: float = 0.02, foreign_threads: Iterable[threading.Thread] | None = None
    ) -> None:
        """``foreign_threads``: threads whose descendants' connects (outside the run's context)
        are not the run's (module docstring); by default every thread alive now but this one.
        """
        self._lock = threading.Lock()
        self._events: list[RecordedEvent] = []
        self._connects: list[Connect] = []
        self._datagrams: set[tuple[str, int]] = set()  # UDP destinations noted once
        self._others: list[Connect] = []
        self._other_inodes: set[int] = set()
        self._inside_inodes: set[int] = set()
        if foreign_threads is None:
            here = threading.current_thread()
            foreign_threads = [t for t in threading.enumerate() if t is not here]
        self._foreign: weakref.WeakSet[threading.Thread] = weakref.WeakSet(foreign_threads)
        self._run_token: contextvars.Token[Recorder | None] | None = None
        self._seen_proc: set[tuple[str, int, int]] = set()
        self._listened: set[str] = set()  # ports (hex) this process listened on, polls so far
        self._began = 0.0
        #: How many times the ``/proc`` watch has read the process's sockets so far.
        self.polls = 0
        self._proxies: dict[tuple[str, int], tuple[str, int]] = {}  # upstream -> listen address
        self._mirrors: dict[str, str] = {}  # target host -> the recorder's loopback host
        self._listen_of: dict[socket.socket, tuple[str, int]] = {}
        self._cameras: dict[tuple[str, int], list[str]] = {}  # listen address -> proxied sources
        self._conns: dict[socket.socket, _Conn] = {}
        #: Local ports of the recorder's own upstream sockets -> when closed (None: open).
        self._own_ports: dict[int, float | None] = {}
        self._open: set[str] = set()
        self._numbers = 0
        self._selector = selectors.DefaultSelector()
        self._stop = threading.Event()
        self._wake_r, self._wake_w = socket.socketpair()
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._poll_s = poll_s
        self._threads: list[threading.Thread] = []

    # -------------------------------------------------------------- life

    def __enter__(self) -> Recorder:
        install_audit_hook()
        self._began = time.monotonic()
        self._run_token = _RUN.set(self)
        if len(self._foreign):
            # Connections open before the run began (a stream an earlier test left open) are
            # not the run's either; with no foreign thread (run_suite), they count.
            self._seen_proc = _proc_remote_addresses(listened=self._listened)
        self._threads = [
            threading.Thread(target=self._loop, name="camgate-recorder", daemon=True),
            threading.Thread(target=self._watch_proc, name="camgate-recorder-proc", daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        _watchers.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop forwarding, close every socket. Idempotent."""
        if self in _watchers:
            _watchers.remove(self)
        if self._run_token is not None:
            with contextlib.suppress(ValueError, RuntimeError):  # another context: let it be
                _RUN.reset(self._run_token)
            self._run_token = None
        self._stop.set()
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")
        for thread in self._threads:
            thread.join(2.0)
        self._threads = []
        for sock in [*self._listen_of, *self._conns]:
            with contextlib.suppress(OSError):
                sock.close()
        for conn in list(self._conns.values()):
            with contextlib.suppress(OSError):
                conn.upstream.close()
        self._listen_of.clear()
        self._conns.clear()
        for sock in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                sock.close()
        with contextlib.suppress(Exception):
            self._selector.close()

    @property
    def threads(self) -> tuple[threading.Thread, ...]:
        """The recorder's own threads (the suite's leak count leaves them out)."""
        return tuple(self._threads)

    def own_fds(self) -> set[int]:
        """The recorder's own file descriptors now (the leak count leaves them out)."""
        with self._lock:
            socks = [*self._listen_of, *self._conns, *(c.upstream for c in self._conns.values())]
        fds = {s.fileno() for s in socks} | {self._wake_r.fileno(), self._wake_w.fileno()}
        with contextlib.suppress(Exception):
            fds.add(self._selector.fileno())
        return {fd for fd in fds if fd >= 0}

    # -------------------------------------------------------------- addresses

    def proxy(self, host: str, port: int) -> tuple[str, int]:
        """The loopback address that forwards to ``host:port`` (a listener made on first use).

        It is the *same port* on a loopback address of the recorder's own (a **mirror host**,
        ``127.0.0.2`` and up, one per target host), so an adapter that keeps the configured
        host and takes the ports a device reports (ONVIF's stream and replay URIs, with the
        adapter's port map) still reaches the recorder. A port the mirror host cannot take
        gets another one (and where only ``127.0.0.1`` exists, any port of it).
        """
        with self._lock:
            found = self._proxies.get((host, port))
            if found is not None:
                return found
            mirror = self._mirrors.get(host)
            if mirror is None:
                mirror = f"127.0.0.{2 + len(self._mirrors)}"
                self._mirrors[host] = mirror
            try:
                listener = socket.create_server((mirror, port))
            except OSError:
                try:
                    listener = socket.create_server((mirror, 0))
                except OSError:  # no 127/8 beyond 127.0.0.1 (not Linux): any loopback port
                    listener = socket.create_server(("127.0.0.1", 0))
                    mirror = "127.0.0.1"
            listener.setblocking(False)
            address = (mirror, listener.getsockname()[1])
            self._proxies[(host, port)] = address
            self._listen_of[listener] = (host, port)
            self._selector.register(listener, selectors.EVENT_READ, "listen")
        return address

    def listen_addresses(self) -> set[tuple[str, int]]:
        """Every loopback address the recorder listens on."""
        with self._lock:
            return set(self._proxies.values())

    def upstreams(self) -> set[tuple[str, int]]:
        """Every target address the recorder forwards to."""
        with self._lock:
            return set(self._proxies)

    def rewrite(self, sources: Iterable[str], settings: Mapping[str, Any]) -> tuple[list[str], Any]:
        """``sources`` and ``settings`` with every camera address replaced by its proxy.

        Each source's ``host:port`` gets a proxy; the same text is replaced in every string
        and mapping key of ``settings`` (credentials are often keyed by the source).
        """
        pairs: dict[str, str] = {}
        for source in sources:
            parts = urlsplit(source)
            if not parts.hostname or parts.port is None:
                continue
            host, port = self.proxy(parts.hostname, parts.port)
            netloc = parts.netloc.rsplit("@", 1)[-1]
            pairs[netloc] = f"{host}:{port}"
        new_sources = [_replace(s, pairs) for s in sources]
        with self._lock:
            for source in new_sources:
                parts = urlsplit(source)
                if parts.hostname and parts.port is not None:
                    self._cameras.setdefault((parts.hostname, parts.port), [])
                    if source not in self._cameras[(parts.hostname, parts.port)]:
                        self._cameras[(parts.hostname, parts.port)].append(source)
        return new_sources, _rewrite(settings, pairs)

    # -------------------------------------------------------------- the record

    def events(self) -> list[RecordedEvent]:
        """Every event so far, in time order."""
        with self._lock:
            return list(self._events)

    def open_clients(self) -> set[str]:
        """Connections open now."""
        with self._lock:
            return set(self._open)

    def connects(self) -> list[Connect]:
        """Every outbound connection attempt seen (the recorder's own forwarding left out)."""
        with self._lock:
            return list(self._connects)

    def connect_attempt(
        self,
        host: str,
        port: int,
        via: str,
        thread: str = "",
        since: float | None = None,
        detail: str = "",
    ) -> None:
        """Note an outbound connection attempt of the run (called by the audit hook and the
        ``/proc`` watch, which passes ``since``: the earliest it can have been made); a UDP
        datagram (``via="udp sendto"``) only the first time for its destination."""
        with self._lock:
            if via == "udp sendto":
                if (host, port) in self._datagrams:
                    return
                self._datagrams.add((host, port))
            self._connects.append(Connect(time.monotonic(), host, port, via, thread, since, detail))

    def not_the_run(self, host: str, port: int, thread: str, inode: int = 0) -> None:
        """Note a connect attempt that is not the run's (module docstring); ``inode`` is its
        socket's, so the ``/proc`` watch does not count it either."""
        with self._lock:
            self._others.append(Connect(time.monotonic(), host, port, "audit hook", thread))
            if inode:
                self._other_inodes.add(inode)

    def not_the_runs(self) -> list[Connect]:
        """Connect attempts seen while the recorder ran that were not the run's: made outside
        its context, by threads descending from ``foreign_threads``."""
        with self._lock:
            return list(self._others)

    def is_foreign(self, thread: threading.Thread) -> bool:
        """True when ``thread`` descends (through the threads that started it, never through
        a start in a run's context) from one of the recorder's foreign threads."""
        current: threading.Thread | None = thread
        for _ in range(64):
            if current is None:
                return False
            if current in self._foreign:
                return True
            started = _starters.get(current)
            if started is None or started[1]:
                return False  # unknown parentage, or started by the run: the run's
            current = started[0]()
        return False

    def around(self, at: float, before: int = 6, after: int = 6) -> list[str]:
        """The recorder's lines around time ``at``: evidence for a failure."""
        events = self.events()
        index = next((i for i, e in enumerate(events) if e.at >= at), len(events))
        return [e.line() for e in events[max(0, index - before) : index + after]]

    def _log(self, conn: _Conn, kind: str, media: bool = False, **extra: Any) -> None:
        camera = extra.pop("camera", None)
        with self._lock:
            self._events.append(
                RecordedEvent(time.monotonic(), conn.id, kind, camera, media, **extra)
            )

    # -------------------------------------------------------------- forwarding

    def _learn_ports(self, conn: _Conn, message: bytes) -> None:
        """Proxy every port of the camera's host that an answer names (stream, snapshot,
        replay, service addresses), on the mirror host, before the answer is forwarded.

        The recorder does not rewrite what the camera says: an adapter that keeps the host it
        was configured with (and maps ports as its settings say) reaches these proxies; one that
        connects to the address the camera reports goes past the recorder, and
        ``gating.egress-only-to-target`` says so.
        """
        host = conn.upstream_host
        named = {int(m.group(1)) for m in _URL_PORT.finditer(message[:_MAX_MESSAGE])}
        # A port the adapter itself put in its requests (an in-process relay's URL, echoed in
        # a Content-Base) is not one the camera named.
        named -= conn.asked_ports
        named = {p for p in named if 0 < p < 65536 and (host, p) not in self._proxies}
        for port in sorted(named):
            if (host, port) not in self._proxies:
                address = self.proxy(host, port)
                self._log(conn, "learned", detail=f"{host}:{port}, proxied at {address[1]}")

    def _watch_proc(self) -> None:
        began = time.monotonic()
        while not self._stop.wait(self._poll_s):
            with self._lock:
                keep = frozenset(self._proxies)
                # A socket once seen between two of ours (FFmpeg's to an in-process guard)
                # stays inside after its peer closes first and it lingers half-closed.
                others = frozenset(self._other_inodes | self._inside_inodes)
            # A socket this poll finds new was connected after the last poll began.
            since, began = began, time.monotonic()
            self._listened |= {p for p, t in list(_bound_ports.items()) if t >= self._began}
            inside: set[int] = set()
            addresses = _proc_remote_addresses(keep, others, inside, self._listened)
            with self._lock:
                self._inside_inodes |= inside
            # Read after /proc: a port is ours from before its connect until 1 s after close.
            # A socket /proc showed was still open when this poll began, so its close is
            # judged against that moment, never against a later one a starved thread reaches.
            with self._lock:
                own = {p for p, t in self._own_ports.items() if t is None or t > began - 1.0}
                once = set(self._own_ports)
            found = {a for a in addresses if a[2] not in own}
            for host, port, local in found - self._seen_proc:
                was = ", once the recorder's" if local in once else ""
                detail = f"from local port {local}{was}"
                self.connect_attempt(host, port, "/proc", since=since, detail=detail)
            self._seen_proc = found
            self.polls += 1

    def _loop(self) -> None:
        while not self._stop.is_set():
            for key, _mask in self._selector.select(0.5):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                if key.data == "listen":
                    self._accept(sock)
                elif key.data is not None:
                    self._relay(sock, *key.data)
                else:
                    with contextlib.suppress(OSError):
                        sock.recv(64)

    def _accept(self, listener: socket.socket) -> None:
        try:
            client, _addr = listener.accept()
        except OSError:
            return
        upstream_address = self._listen_of[listener]
        listen = listener.getsockname()[:2]
        family = socket.AF_INET6 if ":" in upstream_address[0] else socket.AF_INET
        upstream = socket.socket(family, socket.SOCK_STREAM)
        upstream.bind(("::1" if family == socket.AF_INET6 else "127.0.0.1", 0))
        local_port = upstream.getsockname()[1]
        with self._lock:
            self._own_ports[local_port] = None
        _internal.on = True
        try:
            upstream.settimeout(2.0)
            upstream.connect(upstream_address)
        except OSError:
            with self._lock:
                self._own_ports[local_port] = time.monotonic()
            upstream.close()
            client.close()
            return
        finally:
            _internal.on = False
        self._numbers += 1
        conn = _Conn(self._numbers, client, upstream)
        conn.port = local_port
        conn.upstream_host = upstream_address[0]
        for sock in (client, upstream):
            sock.setblocking(False)
        with self._lock:
            self._conns[client] = conn
            self._open.add(conn.id)
            cameras = list(self._cameras.get((listen[0], listen[1]), []))
        conn_cameras = cameras
        self._selector.register(client, selectors.EVENT_READ, (conn, True, conn_cameras))
        self._selector.register(upstream, selectors.EVENT_READ, (conn, False, conn_cameras))
        self._log(conn, "connect", detail=f"to {upstream_address[0]}:{upstream_address[1]}")

    def _relay(self, sock: socket.socket, conn: _Conn, from_client: bool, cameras: Any) -> None:
        try:
            data = sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._end(conn, "adapter" if from_client else "camera")
            return
        # Read before forwarding: an answer naming another port of the camera's host gets its
        # proxy before the adapter can act on it.
        try:
            if from_client:
                for head, body in conn.up.feed(data):
                    self._request(conn, head, body, cameras)
            else:
                for head, body in conn.down.feed(data):
                    self._answer(conn, head, body)
        except Exception as exc:  # hostile bytes must not stop the recorder
            side = conn.up if from_client else conn.down
            side.opaque, side.buffer = "unparsed", b""
            self._log(conn, "unparsed", detail=f"{type(exc).__name__}; only counted from here")
        other = conn.upstream if from_client else conn.client
        try:
            other.settimeout(5.0)  # a consumer that stops reading ends its connection
            other.sendall(data)
            other.setblocking(False)
        except OSError:
            self._end(conn, "camera" if from_client else "adapter")

    def _end(self, conn: _Conn, by: str) -> None:
        if conn.closed:
            return
        conn.closed = True
        for sock in (conn.client, conn.upstream):
            with contextlib.suppress(Exception):
                self._selector.unregister(sock)
            with contextlib.suppress(OSError):
                sock.close()
        with self._lock:
            self._conns.pop(conn.client, None)
            self._open.discard(conn.id)
            self._own_ports[conn.port] = time.monotonic()
        self._log(
            conn,
            "closed",
            detail=f"by the {by}; adapter sent {conn.up.count} B, camera sent {conn.down.count} B",
        )

    def _request(self, conn: _Conn, head: bytes, body: bytes, cameras: list[str]) -> None:
        if head == b"\x16":
            self._log(conn, "tls", detail="TLS hello: passed through, only counted")
            return
        conn.asked_ports |= {int(m.group(1)) for m in _URL_PORT.finditer(head)}
        first = head.split(b"\r\n", 1)[0].decode("latin-1")
        parts = first.split(" ")
        method = parts[0] if parts else ""
        url = parts[1] if len(parts) > 1 else ""
        camera = _camera_of(url, cameras)
        if method in _RTSP_METHODS and first.endswith("RTSP/1.0"):
            kind = method.lower()
            conn.pending.append(kind)
            audio = kind == "setup" and any(
                url.endswith("/" + c) or url == c for c in conn.audio_controls
            )
            detail = first
            play_range = _header(head, b"range").decode("latin-1")
            if play_range:
                detail += f" Range: {play_range}"
            self._log(conn, kind, kind in RTSP_MEDIA, camera=camera, detail=detail, audio=audio)
            return
        if method in _HTTP_METHODS:
            if _header(head, b"upgrade").lower() == b"websocket":
                conn.up.opaque = conn.down.opaque = "websocket"
                self._log(conn, "websocket", camera=camera, detail=f"{first} (then only counted)")
                return
            action = _header(head, b"soapaction").decode("latin-1").strip('"')
            match = _SOAP_OP.search(body)
            operation = action.rsplit("/", 1)[-1] if action else ""
            if not operation and match:
                operation = match.group(1).decode("latin-1")
            if operation:
                self._log(conn, "soap", operation in SOAP_MEDIA, camera=camera, detail=operation)
            else:
                self._log(conn, "http", method == "GET", camera=camera, detail=first)
            return
        self._log(conn, "unknown", detail=f"{len(head)} B not RTSP or HTTP")

    def _answer(self, conn: _Conn, head: bytes, body: bytes) -> None:
        self._learn_ports(conn, head + b"\r\n" + body)
        if head.startswith(b"RTSP/1.0") and conn.pending:
            kind = conn.pending.pop(0)
            if kind == "describe" and body:
                conn.audio_controls |= _sdp_audio_controls(body)


_URL_PORT = re.compile(
    rb"(?:rtsps?|https?)://(?:[^/@\s<>\"']*@)?(?:\[[0-9a-fA-F:.]+\]|[\w.-]+):(\d{1,5})"
)


def _camera_of(url: str, cameras: list[str]) -> str | None:
    """The proxied source a request URL concerns: by path when it names one, else the only one."""
    path = urlsplit(url).path if "://" in url else url
    best: str | None = None
    for source in cameras:
        want = urlsplit(source).path.rstrip("/")
        matches = want and (path == want or path.startswith(want + "/"))
        if matches and (best is None or len(want) > len(urlsplit(best).path)):
            best = source
    if best is None and len({urlsplit(s).path for s in cameras}) == 1 and cameras:
        return cameras[0]
    return best


def _replace(text: str, pairs: Mapping[str, str]) -> str:
    for old, new in pairs.items():
        text = text.replace(old, new)
    return text


def _rewrite(value: Any, pairs: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        return _replace(value, pairs)
    if isinstance(value, Mapping):
        return {_rewrite(k, pairs): _rewrite(v, pairs) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_rewrite(v, pairs) for v in value)
    return value
