"""Launch a real RTSP server on loopback for tests, demos and benchmarks.

The server itself is ``gst_server.py`` (next to this module), a standalone
script built on GStreamer's gst-rtsp-server. It needs PyGObject and GStreamer
from the system's packages, so it runs under the *system* Python (default
``/usr/bin/python3``), not under this project's virtualenv. This module only
uses the standard library and ``attrs``.

Typical use::

    from camgate_rtsp.testing.server import Mount, RtspTestServer, gstreamer_available

    reason = gstreamer_available()
    if reason is not None:
        pytest.skip(reason)
    with RtspTestServer([Mount("/cam1"), Mount("/sec", username="u", password="p")]) as srv:
        open_url = srv.url("/cam1")
        auth_url = srv.url("/sec", credentials=True)

Every mount's encoder runs continuously from server start and is shared by all
clients of that mount, so a client joins at an arbitrary point of the GOP (as
with a real camera) and several clients see one timeline.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote

import attrs

__all__ = [
    "Mount",
    "RequestEvent",
    "RtspTestServer",
    "TestServerError",
    "gstreamer_available",
    "SERVER_SCRIPT",
]

#: The standalone server script launched by :class:`RtspTestServer`.
SERVER_SCRIPT = Path(__file__).with_name("gst_server.py")

_DEFAULT_PYTHON = "/usr/bin/python3"
_STDERR_TAIL_LINES = 200
_STDERR_TAIL_CHARS = 4000
_STOP_GRACE_SECONDS = 5.0
_AUDIO_CODECS = ("aac", "pcma")


def _positive(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"Mount.{attribute.name} must be a positive int, got {value!r}")


def _check_path(_instance: object, _attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, str) or not value.startswith("/") or len(value) < 2:
        raise ValueError(f'Mount.path must be a string starting with "/", got {value!r}')
    if any(c.isspace() or c in "?#" for c in value) or value.endswith("/") or "//" in value:
        raise ValueError(
            f"Mount.path {value!r} must not contain whitespace, '?', '#' or empty segments"
        )


def _check_audio_codec(_instance: object, _attribute: attrs.Attribute[Any], value: object) -> None:
    if value not in _AUDIO_CODECS:
        raise ValueError(f"Mount.audio_codec must be one of {_AUDIO_CODECS}, got {value!r}")


def _optional_nonempty_str(
    _instance: object, attribute: attrs.Attribute[Any], value: object
) -> None:
    if value is not None and (not isinstance(value, str) or not value):
        raise ValueError(f"Mount.{attribute.name} must be a non-empty str or None")


@attrs.frozen
class Mount:
    """One camera served by the test server, at ``rtsp://host:port<path>``.

    Fields mirror the server's JSON config keys, with the same defaults. Video is
    H.264 from a live ``videotestsrc`` (``pattern``) at ``width`` x ``height`` and
    ``fps``, with a keyframe exactly every ``gop_frames`` frames, at about
    ``bitrate_kbps``. With ``audio`` a 440 Hz tone is added as a second stream
    (first if ``video`` is False): AAC (``audio_codec="aac"``) or G.711 A-law
    (``"pcma"``). With ``username`` and ``password`` the mount requires RTSP digest
    authentication; mounts without them accept anonymous clients. A ``maskable`` mount
    draws the privacy masks given to :meth:`RtspTestServer.set_masks` into its picture; a
    ``picture_clock`` mount burns each picture's capture time into its bottom quarter
    (:func:`camgate.testing.read_picture_clock` reads it back).

    Construction validates: ``path`` starts with "/" (no whitespace, "?", "#" or
    empty segments), the integers are positive, width/height are even, at least
    one of video/audio is on, ``audio_codec`` is known, and username and password
    are given both or neither. ``password`` is left out of ``repr``.
    """

    path: str = attrs.field(validator=_check_path)
    width: int = attrs.field(default=640, validator=_positive)
    height: int = attrs.field(default=360, validator=_positive)
    fps: int = attrs.field(default=30, validator=_positive)
    gop_frames: int = attrs.field(default=30, validator=_positive)
    pattern: str = attrs.field(default="smpte", validator=attrs.validators.instance_of(str))
    bitrate_kbps: int = attrs.field(default=1000, validator=_positive)
    video: bool = attrs.field(default=True, validator=attrs.validators.instance_of(bool))
    audio: bool = attrs.field(default=False, validator=attrs.validators.instance_of(bool))
    audio_codec: str = attrs.field(default="aac", validator=_check_audio_codec)
    username: str | None = attrs.field(default=None, validator=_optional_nonempty_str)
    password: str | None = attrs.field(default=None, repr=False, validator=_optional_nonempty_str)
    maskable: bool = attrs.field(default=False, validator=attrs.validators.instance_of(bool))
    #: A whole gst-launch description (payloaders named ``pay0``, ``pay1``...) served instead
    #: of the one built from the fields above: see :mod:`camgate_rtsp.testing.inputs`.
    launch: str | None = attrs.field(default=None, validator=_optional_nonempty_str)
    #: Burn each picture's capture time into it (camgate.testing's picture clock).
    picture_clock: bool = attrs.field(default=False, validator=attrs.validators.instance_of(bool))

    def __attrs_post_init__(self) -> None:
        if self.width % 2 or self.height % 2:
            raise ValueError(
                f"Mount {self.path}: width and height must be even, got {self.width}x{self.height}"
            )
        if not (self.video or self.audio):
            raise ValueError(f"Mount {self.path}: at least one of video / audio must be True")
        if (self.username is None) != (self.password is None):
            raise ValueError(f"Mount {self.path}: username and password must be given together")
        if self.username is not None and ":" in self.username:
            raise ValueError(f"Mount {self.path}: username must not contain ':'")

    @property
    def protected(self) -> bool:
        """True when this mount requires digest credentials."""
        return self.username is not None

    def to_config(self) -> dict[str, object]:
        """The mount as one entry of the server's JSON ``mounts`` list."""
        return attrs.asdict(self)


#: Requests that ask the server for media (as opposed to OPTIONS, TEARDOWN, connect, closed).
MEDIA_REQUESTS = frozenset({"describe", "setup", "play"})


@attrs.frozen
class RequestEvent:
    """One thing a client did, as the server saw it (an ``EVENT`` line of the server script).

    ``at`` is the server's ``time.monotonic()`` (system-wide on Linux, so comparable with this
    process's); ``client`` numbers the connection (1, 2, ...) within one server run; ``kind`` is
    ``connect``, ``options``, ``describe``, ``setup``, ``play``, ``teardown`` or ``closed``;
    ``path`` is the mount path asked for (None for connect/closed); ``range`` is the PLAY
    request's ``Range`` header, when it had one.
    """

    at: float
    client: str
    kind: str
    path: str | None = None
    range: str | None = None

    @property
    def media(self) -> bool:
        """True for a request that asks for media (DESCRIBE, SETUP, PLAY)."""
        return self.kind in MEDIA_REQUESTS

    @classmethod
    def from_line(cls, line: str, run: int) -> RequestEvent | None:
        """Parse ``EVENT <at> <client> <kind> <path> [range]``; None for any other line."""
        parts = line.strip().split(maxsplit=5)
        if len(parts) < 5 or parts[0] != "EVENT":
            return None
        try:
            at = float(parts[1])
        except ValueError:
            return None
        path = None if parts[4] == "-" else parts[4]
        return cls(at, f"{run}.{parts[2]}", parts[3], path, parts[5] if len(parts) > 5 else None)


class TestServerError(RuntimeError):
    """The test server could not be started or failed.

    The message says what failed and ends with the tail of the server's stderr
    (never containing passwords: the server does not print them).
    """

    __test__ = False


class _StderrTail:
    """Bounded, thread-safe buffer of the last lines a stream produced."""

    def __init__(self, max_lines: int = _STDERR_TAIL_LINES) -> None:
        self._lines: collections.deque[str] = collections.deque(maxlen=max_lines)
        self._lock = threading.Lock()

    def append(self, line: str) -> None:
        with self._lock:
            self._lines.append(line.rstrip("\n"))

    def text(self, max_chars: int = _STDERR_TAIL_CHARS) -> str:
        with self._lock:
            text = "\n".join(self._lines)
        return text[-max_chars:]


def _drain(stream: object, sink: _StderrTail | None, on_line: object = None) -> None:
    """Read ``stream`` line by line until EOF, keeping lines in ``sink``."""
    try:
        for line in stream:  # type: ignore[attr-defined]
            if sink is not None:
                sink.append(line)
            if on_line is not None:
                on_line(line)  # type: ignore[operator]
    except (OSError, ValueError):
        pass
    finally:
        with contextlib.suppress(OSError):
            stream.close()  # type: ignore[attr-defined]


class RtspTestServer:
    """A ``gst_server.py`` child process serving ``mounts`` on ``host``.

    ``port=0`` lets the OS choose a free port (read :attr:`port` after
    :meth:`start`). The server stops on :meth:`stop`, on context-manager exit, and
    also by itself when this process dies (it exits when its stdin, a pipe held by
    this object, reaches end-of-file). After :meth:`stop` or :meth:`kill`,
    :meth:`start` may be called again: it reuses the port the previous run was
    bound to, so a test can make a camera vanish and come back at the same URL.
    """

    __test__ = False

    def __init__(
        self,
        mounts: Sequence[Mount],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        python: str = _DEFAULT_PYTHON,
        startup_timeout: float = 15.0,
        auth: str = "digest",
    ) -> None:
        """Configure (but do not start) a server; validates the mount set.

        ``auth`` is how protected mounts ask for credentials: ``"digest"`` or ``"basic"``.
        Raises TypeError for an item that is not a Mount, and ValueError for no
        mounts, duplicate paths, one username with different passwords, or a port
        outside 0..65535.
        """
        mounts = tuple(mounts)
        if not mounts:
            raise ValueError("RtspTestServer needs at least one Mount")
        passwords: dict[str, str] = {}
        seen: set[str] = set()
        for mount in mounts:
            if not isinstance(mount, Mount):
                raise TypeError(f"expected Mount, got {type(mount).__name__}")
            if mount.path in seen:
                raise ValueError(f"duplicate mount path {mount.path!r}")
            seen.add(mount.path)
            if (
                mount.username is not None
                and passwords.setdefault(mount.username, mount.password or "") != mount.password
            ):
                raise ValueError(
                    f"username {mount.username!r} is used with different passwords "
                    "(digest auth keys credentials by username)"
                )
        if auth not in ("digest", "basic"):
            raise ValueError(f"auth must be 'digest' or 'basic', got {auth!r}")
        self._auth = auth
        if not isinstance(port, int) or not 0 <= port <= 65535:
            raise ValueError(f"port must be in 0..65535, got {port!r}")
        self._mounts = mounts
        self._by_path = {m.path: m for m in mounts}
        self._host = host
        self._requested_port = port
        self._bound_port: int | None = None
        self._python = python
        self._startup_timeout = float(startup_timeout)
        self._proc: subprocess.Popen[str] | None = None
        self._threads: list[threading.Thread] = []
        self._stderr = _StderrTail()
        self._lock = threading.Lock()
        self._control = threading.Lock()
        self._replies = threading.Condition()
        self._mask_replies: list[str] = []
        self._events: list[RequestEvent] = []
        self._events_changed = threading.Condition()
        self._runs = 0

    # ------------------------------------------------------------------ request log

    def requests(self) -> list[RequestEvent]:
        """Every client event the server reported so far, over all its runs, in order."""
        with self._events_changed:
            return list(self._events)

    def open_clients(self) -> set[str]:
        """Clients connected now (a ``connect`` without its ``closed``), in the current run."""
        open_: set[str] = set()
        prefix = f"{self._runs}."
        for event in self.requests():
            if not event.client.startswith(prefix):
                continue
            if event.kind == "connect":
                open_.add(event.client)
            elif event.kind == "closed":
                open_.discard(event.client)
        return open_

    def wait_requests(
        self, predicate: Callable[[list[RequestEvent]], bool], timeout: float
    ) -> bool:
        """Wait until ``predicate(requests())`` holds; False when ``timeout`` passes first."""
        deadline = time.monotonic() + timeout
        with self._events_changed:
            while not predicate(list(self._events)):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._events_changed.wait(min(left, 0.1))
            return True

    def _record(self, event: RequestEvent) -> None:
        with self._events_changed:
            self._events.append(event)
            self._events_changed.notify_all()

    # ------------------------------------------------------------------ props

    @property
    def mounts(self) -> tuple[Mount, ...]:
        """The mounts this server serves, in the order given."""
        return self._mounts

    @property
    def host(self) -> str:
        """The address the server listens on (as given, e.g. "127.0.0.1")."""
        return self._host

    @property
    def port(self) -> int:
        """The TCP port the server is (or was last) bound to.

        Raises TestServerError if ``port=0`` was requested and the server has
        never reached READY.
        """
        if self._bound_port is not None:
            return self._bound_port
        if self._requested_port:
            return self._requested_port
        raise TestServerError("RTSP test server has not been started; its port is not known yet")

    @property
    def running(self) -> bool:
        """True while the server process is alive (started and not exited)."""
        proc = self._proc
        return proc is not None and proc.poll() is None

    @property
    def pid(self) -> int | None:
        """The server process id while one exists, else None."""
        return self._proc.pid if self._proc is not None else None

    def stderr_tail(self) -> str:
        """The last lines the server wrote to stderr (bounded; no passwords)."""
        return self._stderr.text()

    def url(self, path: str, *, credentials: bool = False) -> str:
        """``rtsp://host:port/path`` for ``path`` (leading "/" optional).

        With ``credentials=True`` and a mount at ``path`` that has a username and
        password, they are inserted percent-encoded as ``user:password@``; for
        any other path the plain URL is returned. Needs a known :attr:`port`.
        """
        if not path.startswith("/"):
            path = "/" + path
        host = self._host
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"  # IPv6 literal
        userinfo = ""
        mount = self._by_path.get(path)
        if (
            credentials
            and mount is not None
            and mount.username is not None
            and mount.password is not None
        ):
            userinfo = f"{quote(mount.username, safe='')}:{quote(mount.password, safe='')}@"
        return f"rtsp://{userinfo}{host}:{self.port}{path}"

    # -------------------------------------------------------------- lifecycle

    def start(self) -> None:
        """Spawn the server and block until it prints ``READY <port>``.

        On return every mount's encoder is running and :attr:`port` is known.
        Raises TestServerError (with the server's stderr tail) if the process
        cannot be spawned, exits before READY, or is not READY within
        ``startup_timeout`` seconds (it is killed then); and if already running.
        """
        with self._lock:
            if self._proc is not None and self._proc.poll() is None:
                raise TestServerError(f"RTSP test server already running (pid {self._proc.pid})")
            self._reap()
            port = self._bound_port if self._bound_port is not None else self._requested_port
            config = json.dumps(
                {"mounts": [m.to_config() for m in self._mounts], "auth": self._auth}
            )
            argv = [
                self._python,
                "-u",
                str(SERVER_SCRIPT),
                "--host",
                self._host,
                "--port",
                str(port),
                "--config",
                "-",
            ]
            self._stderr = _StderrTail()
            try:
                proc = subprocess.Popen(
                    argv,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                    encoding="utf-8",
                    errors="replace",
                    bufsize=1,
                    close_fds=True,
                )
            except OSError as exc:
                raise TestServerError(
                    f"cannot run the RTSP test server with {self._python!r}: {exc}. "
                    "Install python3-gi, gir1.2-gst-rtsp-server-1.0 and the GStreamer plugins, "
                    "or pass python= pointing at a Python that has them."
                ) from exc
            self._proc = proc
            ready = threading.Event()
            found: list[int] = []
            self._runs += 1
            run = self._runs

            def on_stdout_line(line: str) -> None:
                if line.startswith("MASK "):
                    with self._replies:
                        self._mask_replies.append(line.strip())
                        self._replies.notify_all()
                    return
                if line.startswith("EVENT "):
                    event = RequestEvent.from_line(line, run)
                    if event is not None:
                        self._record(event)
                    return
                parts = line.split()
                if (
                    not ready.is_set()
                    and len(parts) == 2
                    and parts[0] == "READY"
                    and parts[1].isdigit()
                ):
                    found.append(int(parts[1]))
                    ready.set()

            self._threads = [
                threading.Thread(
                    target=_drain,
                    args=(proc.stdout, None, on_stdout_line),
                    name="rtsp-testserver-stdout",
                    daemon=True,
                ),
                threading.Thread(
                    target=_drain,
                    args=(proc.stderr, self._stderr),
                    name="rtsp-testserver-stderr",
                    daemon=True,
                ),
            ]
            for thread in self._threads:
                thread.start()
            try:
                assert proc.stdin is not None
                proc.stdin.write(config + "\n")
                proc.stdin.flush()
            except OSError:
                pass  # the process died already; reported below
            # keep stdin open: the server exits when it reaches EOF (i.e. when we die)

            deadline = time.monotonic() + self._startup_timeout
            while not ready.wait(0.05):
                if proc.poll() is not None:
                    ready.wait(0.2)  # READY may still be in the pipe
                    if ready.is_set():
                        break
                    self._join_threads(1.0)
                    self._reap()
                    raise TestServerError(
                        f"RTSP test server exited with status {proc.returncode} before it was ready"
                        f"{self._tail_suffix()}"
                    )
                if time.monotonic() >= deadline:
                    self._kill_now()
                    self._reap()
                    raise TestServerError(
                        f"RTSP test server was not ready within {self._startup_timeout:g} s "
                        f"(killed it){self._tail_suffix()}"
                    )
            if proc.poll() is not None:
                self._join_threads(1.0)
                self._reap()
                raise TestServerError(
                    f"RTSP test server exited with status {proc.returncode} right after READY"
                    f"{self._tail_suffix()}"
                )
            self._bound_port = found[0]

    def force_keyframe(self, path: str) -> None:
        """Ask the encoder of the mount at ``path`` for a keyframe now (non-blocking).

        Sends ``KEY <path>`` down the control pipe; the server answers on stdout (read by
        the drain thread). Raises TestServerError when the server is not running and
        ValueError for a path that is not a mount.
        """
        if path not in self._by_path:
            raise ValueError(f"no mount {path!r}")
        self._command(f"KEY {path}")

    def _command(self, line: str) -> None:
        """Send one control line to the running server (TestServerError when it is gone)."""
        proc = self._proc
        if proc is None or proc.poll() is not None or proc.stdin is None:
            raise TestServerError("RTSP test server is not running")
        try:
            with self._control:
                proc.stdin.write(line + "\n")
                proc.stdin.flush()
        except OSError as exc:
            raise TestServerError(f"cannot reach the RTSP test server: {exc}") from exc

    def set_masks(
        self,
        path: str,
        masks: Sequence[tuple[Sequence[tuple[float, float]], tuple[int, int, int]]],
        timeout: float = 5.0,
    ) -> None:
        """Draw ``masks`` — (polygon, RGB colour) pairs, points as fractions of the picture
        with the origin top left — on the picture of the ``maskable`` mount at ``path`` from
        now on, replacing any earlier ones (an empty list removes them). Returns once the
        server applied them; TestServerError when it did not within ``timeout`` seconds,
        ValueError for a path that is not a maskable mount."""
        mount = self._by_path.get(path)
        if mount is None or not mount.maskable:
            raise ValueError(f"no maskable mount {path!r}")
        payload = json.dumps(
            [{"points": [list(p) for p in points], "rgb": list(rgb)} for points, rgb in masks]
        )
        with self._replies:
            self._mask_replies.clear()
            self._command(f"MASK {path} {payload}")
            if not self._replies.wait_for(lambda: bool(self._mask_replies), timeout):
                raise TestServerError(f"the RTSP test server did not apply masks on {path}")
            reply = self._mask_replies[-1]
        if reply != f"MASK {path} ok":
            raise TestServerError(f"the RTSP test server answered {reply!r}")

    def stop(self) -> None:
        """Stop the server: SIGTERM, wait up to 5 s, then SIGKILL; always reaps it.

        Idempotent: does nothing if the server was never started or is gone.
        """
        with self._lock:
            proc = self._proc
            if proc is None:
                return
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(_STOP_GRACE_SECONDS)
                except subprocess.TimeoutExpired:
                    self._kill_now()
            self._reap()

    def kill(self) -> None:
        """SIGKILL the server at once (simulates a camera that vanishes) and reap it.

        Idempotent; :meth:`start` may be called afterwards to bring it back on the
        same port.
        """
        with self._lock:
            if self._proc is None:
                return
            self._kill_now()
            self._reap()

    def __enter__(self) -> RtspTestServer:
        """Start the server (see :meth:`start`) and return it."""
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop the server (see :meth:`stop`)."""
        self.stop()

    def __repr__(self) -> str:
        proc = self._proc
        state = f"running pid={proc.pid}" if proc is not None and proc.poll() is None else "stopped"
        port = self._bound_port if self._bound_port is not None else self._requested_port
        return (
            f"<RtspTestServer {self._host}:{port} {state} mounts={[m.path for m in self._mounts]}>"
        )

    # ---------------------------------------------------------------- helpers

    def _tail_suffix(self) -> str:
        tail = self._stderr.text().strip()
        return f"; server stderr:\n{tail}" if tail else "; server stderr was empty"

    def _kill_now(self) -> None:
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):  # SIGKILL not honoured
            proc.wait(_STOP_GRACE_SECONDS)

    def _close_stdin(self) -> None:
        proc = self._proc
        if proc is not None and proc.stdin is not None:
            with contextlib.suppress(OSError):
                proc.stdin.close()

    def _join_threads(self, timeout: float) -> None:
        for thread in self._threads:
            thread.join(timeout)

    def _reap(self) -> None:
        """Forget a finished process: close its pipes and join the drain threads."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            return
        self._close_stdin()
        self._join_threads(2.0)
        self._threads = []
        self._proc = None


@functools.cache
def gstreamer_available(python: str = _DEFAULT_PYTHON) -> str | None:
    """None if ``python`` can run the GStreamer RTSP test server, else one line saying why.

    Checks that the interpreter exists and has PyGObject, the Gst / GstRtsp /
    GstRtspServer typelibs and the elements for H.264 video (videotestsrc,
    x264enc, h264parse, rtph264pay, rtpbin), by running the server script with
    ``--check``. The reason names the missing piece and the Debian package to
    install. The answer is cached per interpreter path.
    """
    if not SERVER_SCRIPT.is_file():
        return f"RTSP test server script missing: {SERVER_SCRIPT}"
    if not (os.path.isfile(python) and os.access(python, os.X_OK)):
        return (
            f"{python} not found or not executable: "
            "install python3 and python3-gi (system packages)"
        )
    try:
        result = subprocess.run(
            [python, str(SERVER_SCRIPT), "--check"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return f"cannot run {python} to check GStreamer: {exc}"
    lines = [line.strip() for line in result.stdout.splitlines() if line.strip()]
    if result.returncode == 0 and lines and lines[-1] == "OK":
        return None
    if lines:
        return lines[-1]
    err = [line.strip() for line in result.stderr.splitlines() if line.strip()]
    detail = err[-1] if err else f"exit status {result.returncode}"
    return f"GStreamer RTSP check with {python} failed: {detail}"


@contextlib.contextmanager
def serving(mounts: Sequence[Mount], **options: Any) -> Iterator[RtspTestServer]:
    """A started :class:`RtspTestServer` for ``mounts`` (``options`` as its constructor takes
    them), stopped after the block. RuntimeError naming the missing piece (and
    scripts/setup.sh) when GStreamer's RTSP server cannot run here, so a test fixture fails
    with the fix rather than a timeout."""
    reason = gstreamer_available()
    if reason:
        raise RuntimeError(
            f"the GStreamer RTSP server is not usable: {reason} (run scripts/setup.sh)"
        )
    with RtspTestServer(mounts, **options) as server:
        yield server
