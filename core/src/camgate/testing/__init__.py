"""Helpers for tests of code built on camgate (and camgate's own): a clock moved by hand, a
plugin that declares an adapter for decision-only tests, and the CLI run as a real process.

Nothing here is a stand-in for camgate's own behaviour: the gate, store, policies and notifiers
under test are the real ones; these only replace time and a vendor's camera.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import anyio

from camgate.adapters import Adapter, AdapterFactory, Capabilities
from camgate.hookspecs import hookimpl
from camgate.models import Camera, GeoPoint

__all__ = [
    "until",
    "wait_until",
    "CHROMIUM",
    "CHROMIUM_ARGS",
    "CliProcess",
    "DeclaringAdapters",
    "ManualClock",
    "camera_north_of",
    "draw_picture_clock",
    "fault_peer",
    "picture_luma",
    "read_picture_clock",
    "run_cli",
]

#: Debian's Chromium (package ``chromium``, installed by scripts/setup.sh), which the browser
#: tests drive through Playwright's ``executable_path``: no browser is ever downloaded.
CHROMIUM = Path("/usr/bin/chromium")
#: Its flags in tests: headless, no sandbox (containers), no GPU, and nothing reaching out
#: (QUIC, first-run, background networking, component updates, sync).
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


T = TypeVar("T")


def camera_north_of(
    camera_id: str, owner_id: str, centre: GeoPoint, metres: float, **fields: Any
) -> Camera:
    """A camera of the ``test`` adapter about ``metres`` due north of ``centre``."""
    return Camera(
        id=camera_id,
        adapter="test",
        source=f"test://{camera_id}",
        owner_id=owner_id,
        position=GeoPoint(centre.lat + metres / 111_000, centre.lon),
        **fields,
    )


def run_cli(
    *args: str, check: bool = True, timeout: float = 120, without: Sequence[str] = ()
) -> subprocess.CompletedProcess[str]:
    """Run ``camgate ARGS`` as a real process (``CAMGATE_*`` variables cleared); with ``check``,
    raise AssertionError with its output when it exits non-zero. ``without`` names modules the
    process cannot import (``sys.modules[name] = None`` before camgate loads: what Python does
    for a package that is not installed), to run camgate as an install without an extra."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAMGATE_")}
    prelude = (
        "import runpy, sys\n"
        f"sys.modules.update(dict.fromkeys({list(without)!r}))\n"
        "runpy.run_module('camgate.cli', run_name='__main__', alter_sys=True)\n"
    )
    command = ["-c", prelude] if without else ["-m", "camgate.cli"]
    result = subprocess.run(
        [sys.executable, *command, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"camgate {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


class CliProcess:
    """``camgate ARGS`` as a long-running real process (``CAMGATE_*`` variables cleared, as
    :func:`run_cli`): its output lines (stdout and stderr) are collected by a thread in
    :attr:`lines`; :meth:`stop` ends it (SIGTERM, then SIGKILL after 20 s)."""

    def __init__(self, *args: str) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CAMGATE_")}
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "camgate.cli", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def said(self, text: str) -> bool:
        """Whether a line of its output so far contains ``text``."""
        return any(text in line for line in self.lines)

    def wait_said(self, text: str, limit: float = 60.0) -> None:
        """Block until a line contains ``text``; AssertionError with the output when the
        process exits first or ``limit`` seconds pass."""
        deadline = time.monotonic() + limit
        while not self.said(text):
            assert self.proc.poll() is None, "\n".join(self.lines)
            assert time.monotonic() < deadline, f"no {text!r} in:\n" + "\n".join(self.lines)
            time.sleep(0.02)

    def stop(self) -> int:
        """End the process (idempotent); its exit code."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._reader.join(timeout=5)
        return self.proc.returncode


class ManualClock:
    """Wall and monotonic time that a test moves forward with :meth:`advance` (a ``Clock``)."""

    def __init__(self, start: datetime | None = None) -> None:
        self.t = start or datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
        self.mono = 1000.0

    def now(self) -> datetime:
        """The current (manual) time, timezone-aware UTC."""
        return self.t

    def monotonic(self) -> float:
        """Seconds on the manual monotonic clock."""
        return self.mono

    def advance(self, seconds: float) -> None:
        """Move both clocks forward by ``seconds``."""
        self.t += timedelta(seconds=seconds)
        self.mono += seconds


class DeclaringAdapters:
    """A plugin declaring an adapter ``name`` that can serve live, snapshot and recorded.

    For tests of decisions only: the adapter it creates serves nothing.
    """

    def __init__(self, name: str = "test", create: Callable[..., Adapter] | None = None) -> None:
        self.name = name
        self.create = create or (lambda _settings: Adapter())

    @hookimpl
    def camgate_register_adapters(self, register: Callable[[AdapterFactory], None]) -> None:
        """Register the declared adapter."""
        register(
            AdapterFactory(
                name=self.name,
                create=self.create,
                capabilities=Capabilities(live=True, snapshot=True, recorded=True),
            )
        )


#: What a fault peer answers to the first request, by mode.
_ANSWERS = {
    "http": b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/html\r\n"
    b"Content-Length: 21\r\n\r\n<h1>Bad Request</h1>\n",
    # RTSP's rate limiting: 503 Service Unavailable with Retry-After (RFC 2326, 11.5.3 / 12.31)
    "rtsp-503": b"RTSP/1.0 503 Service Unavailable\r\nCSeq: {cseq}\r\nRetry-After: 30\r\n\r\n",
    "rtsp-500": b"RTSP/1.0 500 Internal Server Error\r\nCSeq: {cseq}\r\n\r\n",
    "http-429": b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 30\r\nContent-Length: 0\r\n\r\n",
}


@contextlib.contextmanager
def fault_peer(mode: str) -> Iterator[int]:
    """A loopback TCP peer that stages a vendor fault; yields its port and stops on exit.

    ``silent`` accepts connections and never answers (a timeout); ``http`` (an HTML 400 where
    another protocol was expected), ``rtsp-503`` (RTSP's rate limiting, with Retry-After),
    ``rtsp-500`` and ``http-429`` (HTTP rate limiting, with Retry-After) answer the first
    request of each connection so and close it. Conformance targets of several plugins share it.
    """
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()
    held: list[socket.socket] = []

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _addr = listener.accept()
            except (TimeoutError, OSError):
                continue
            if mode in _ANSWERS:
                with contextlib.suppress(OSError):
                    conn.settimeout(1.0)
                    request = conn.recv(4096)
                    cseq = re.search(rb"(?im)^cseq:\s*(\d+)", request)
                    number = cseq.group(1) if cseq else b"1"
                    conn.sendall(_ANSWERS[mode].replace(b"{cseq}", number))
                conn.close()
            else:
                held.append(conn)

    thread = threading.Thread(target=serve, name=f"conformance peer {mode}", daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(2.0)
        listener.close()
        for conn in held:
            conn.close()


# ------------------------------------------------------------------ the picture clock
#
# A simulated camera burns the moment each picture was taken into the picture itself, so a
# referee can tell which moments it was given by decoding the video, without trusting any
# timestamp the adapter attached. The code (docs/conformance.md, "The picture clock"): the
# bottom quarter of the picture is a grid of 4 rows x 16 columns of blocks, read row by row,
# left to right, least significant bit first; a bright block (luma 235) is a 1, a dark one
# (luma 16) a 0. Bits 0-7 are the marker 0xA5, bits 8-55 the capture time in milliseconds
# since the Unix epoch (UTC), bits 56-63 the sum of those six bytes modulo 256.

_CLOCK_ROWS, _CLOCK_COLUMNS = 4, 16
_CLOCK_MARKER = 0xA5
_CLOCK_BRIGHT, _CLOCK_DARK = 235, 16


def _clock_blocks(height: int, width: int) -> Iterator[tuple[int, slice, slice]]:
    block_h, block_w = height // (4 * _CLOCK_ROWS), width // _CLOCK_COLUMNS
    top = height - _CLOCK_ROWS * block_h
    for bit in range(_CLOCK_ROWS * _CLOCK_COLUMNS):
        r, c = divmod(bit, _CLOCK_COLUMNS)
        y, x = top + r * block_h, c * block_w
        yield bit, slice(y, y + block_h), slice(x, x + block_w)


def draw_picture_clock(luma: Any, taken_at: datetime) -> None:
    """Burn ``taken_at`` into ``luma`` (a writable 2-D numpy uint8 array: a picture's Y plane
    or grey picture) as the picture clock; :func:`read_picture_clock` reads it back."""
    millis = round(taken_at.timestamp() * 1000) & ((1 << 48) - 1)
    checksum = sum(millis.to_bytes(6, "little")) & 0xFF
    code = _CLOCK_MARKER | millis << 8 | checksum << 56
    height, width = luma.shape[:2]
    for bit, rows, cols in _clock_blocks(height, width):
        luma[rows, cols] = _CLOCK_BRIGHT if code >> bit & 1 else _CLOCK_DARK


def picture_luma(picture: Any) -> Any:
    """A decoded picture's brightness as a 2-D float numpy array (``picture``: a PyAV
    ``VideoFrame``, or a grey or RGB numpy array)."""
    import numpy as np

    if hasattr(picture, "to_ndarray"):
        picture = picture.to_ndarray(format="gray")
    luma = np.asarray(picture, dtype=np.float64)
    return luma.mean(axis=2) if luma.ndim == 3 else luma


def read_picture_clock(picture: Any) -> datetime | None:
    """The capture time a decoded picture carries (``picture``: a PyAV ``VideoFrame`` or a
    2-D/3-D numpy array), or None when it carries no valid picture clock (wrong marker or
    checksum: a picture from a camera that does not burn one, or a damaged one)."""
    luma = picture_luma(picture)
    height, width = luma.shape
    if height < 4 * _CLOCK_ROWS * 4 or width < _CLOCK_COLUMNS * 4:
        return None
    code = 0
    for bit, rows, cols in _clock_blocks(height, width):
        block = luma[rows, cols]
        h, w = block.shape
        centre = block[h // 4 : h - h // 4, w // 4 : w - w // 4]  # clear of the codec's edges
        if float(centre.mean()) > (_CLOCK_BRIGHT + _CLOCK_DARK) / 2:
            code |= 1 << bit
    millis = code >> 8 & ((1 << 48) - 1)
    if code & 0xFF != _CLOCK_MARKER or code >> 56 != sum(millis.to_bytes(6, "little")) & 0xFF:
        return None
    try:
        return datetime.fromtimestamp(millis / 1000, UTC)
    except (OverflowError, ValueError, OSError):
        return None  # past datetime's range: not a clock any camera burns


async def until(condition: Callable[[], bool], what: str, limit: float = 20.0) -> None:
    """Wait for ``condition`` (polled every 50 ms); AssertionError naming ``what`` after
    ``limit`` seconds (a generous bound: tests wait on conditions, not on time)."""
    deadline = time.monotonic() + limit
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await anyio.sleep(0.05)


def wait_until(check: Callable[[], T], what: str = "the condition", limit: float = 30.0) -> T:
    """Blocking :func:`until`, for tests outside an event loop: poll ``check`` every 10 ms until
    it is truthy and return its value; AssertionError naming ``what`` after ``limit`` seconds."""
    deadline = time.monotonic() + limit
    while not (value := check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)
    return value
