"""The egress watch attributes connect attempts to the run under test (issue 13, item 6).

A process that ran other work first (a test session) may still have a relay reconnecting on a
thread of its own; its connects are not the run's. Connects made in the run's context, or by
threads the run started, always are; so are those of threads the run was told are not foreign.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable

import anyio
import pytest
from camgate_conformance.recorder import Connect, Recorder
from camgate_rtsp.testing.server import Mount, RtspTestServer

from .conftest import LeftoverRelay

pytestmark = [pytest.mark.rtsp, pytest.mark.timeout(180)]


def _closed_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as sock:
        return int(sock.getsockname()[1])


def _knock(port: int) -> None:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
        pass


def _wait(found: Callable[[], list[Connect]], within: float = 30.0) -> list[Connect]:
    ends = time.monotonic() + within
    while not found() and time.monotonic() < ends:
        time.sleep(0.02)
    return found()


def _to(port: int, connects: list[Connect]) -> list[Connect]:
    return [c for c in connects if c.port == port]


def test_a_leftover_relays_reconnects_are_not_the_runs(leftover_relay: LeftoverRelay) -> None:
    leftover_port = int(leftover_relay.url.rsplit(":", 1)[1].split("/")[0])
    mine, from_thread = _closed_port(), _closed_port()

    async def run(recorder: Recorder) -> None:
        # Reconnects after the run began, each on a guard thread the leftover's loop starts.
        before = leftover_relay.failures
        seen = await anyio.to_thread.run_sync(
            _wait, lambda: _to(leftover_port, recorder.not_the_runs())
        )
        failed = await anyio.to_thread.run_sync(
            _wait, lambda: [] if leftover_relay.failures == before else [seen[0]]
        )
        assert seen and failed, "the leftover relay did not reconnect during the run"
        # The run's own connects count: in its context, in a worker thread, in a new thread.
        _knock(mine)
        await anyio.to_thread.run_sync(_knock, mine)
        thread = threading.Thread(target=_knock, args=(from_thread,))
        thread.start()
        thread.join()

    with Recorder() as recorder:
        anyio.run(run, recorder)
        connects = recorder.connects()
    assert not _to(leftover_port, connects), connects
    assert len(_to(mine, connects)) >= 2 and _to(from_thread, connects), connects
    assert all(c.thread for c in _to(leftover_port, recorder.not_the_runs()))


def test_with_no_foreign_thread_a_leftover_counts(leftover_relay: LeftoverRelay) -> None:
    """As in ``camgate conformance``: a thread that was there before the run gets no
    exemption (a vendor plugin's import-time thread acting for its adapter would count)."""
    leftover_port = int(leftover_relay.url.rsplit(":", 1)[1].split("/")[0])
    with Recorder(foreign_threads=()) as recorder:
        seen = _wait(lambda: _to(leftover_port, recorder.connects()))
    assert seen, recorder.connects()
    assert not recorder.not_the_runs()


def test_a_connection_open_before_the_run_is_not_the_runs() -> None:
    """A connection an earlier test left open (to a server in another process) shows in /proc
    from the first poll on: with foreign threads it is not the run's; with none (as in
    ``camgate conformance``), it counts."""
    with RtspTestServer([Mount("/c")]) as server:
        port = int(server.url("/c").rsplit(":", 1)[1].split("/")[0])
        with socket.create_connection(("127.0.0.1", port)):
            with Recorder() as recorder:
                time.sleep(0.3)
            assert not _to(port, recorder.connects())
            with Recorder(foreign_threads=()) as recorder:
                seen = _wait(lambda: _to(port, recorder.connects()), 5.0)
            assert seen and seen[0].via == "/proc"


def _c_connect(port: int) -> socket.socket:
    """A loopback connection made in C, as FFmpeg makes one (no Python audit event: only the
    recorder's ``/proc`` watch can see it)."""
    import ctypes
    import struct

    libc = ctypes.CDLL(None, use_errno=True)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    address = struct.pack("!HH4s8x", socket.AF_INET, port, socket.inet_aton("127.0.0.1"))
    address = struct.pack("=H", socket.AF_INET) + address[2:]  # sa_family in host order
    if libc.connect(sock.fileno(), ctypes.c_char_p(address), len(address)) != 0:
        sock.close()
        raise OSError(ctypes.get_errno(), "connect failed")
    return sock


def test_a_connection_to_our_own_listener_stays_inside_after_it_closes() -> None:
    """FFmpeg's connection to an in-process guard is between two sockets of ours. When the
    guard closes first, FFmpeg's end lingers half-closed in ``/proc`` with no socket of ours
    at its far end any more: it is still not an egress (it failed a certified adapter's
    self-test once)."""
    with Recorder(poll_s=0.01) as recorder:
        listener = socket.create_server(("127.0.0.1", 0))
        port = listener.getsockname()[1]
        client = _c_connect(port)
        accepted, _ = listener.accept()
        try:
            time.sleep(0.2)  # the /proc watch sees it, between two of ours
            accepted.close()
            listener.close()
            time.sleep(0.3)  # ... and again, half-closed, its peer gone
        finally:
            client.close()
        assert not _to(port, recorder.connects()), recorder.connects()
    # A C connection to another process's listener is seen (the watch works at all).
    code = (
        "import socket, sys\n"
        "s = socket.create_server(('127.0.0.1', 0))\n"
        "print(s.getsockname()[1], flush=True)\n"
        "c, _ = s.accept()\n"
        "sys.stdin.read()\n"
    )
    other = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert other.stdout is not None
        port = int(other.stdout.readline())
        with Recorder(poll_s=0.01) as recorder:
            stranger = _c_connect(port)
            try:
                assert _wait(lambda: _to(port, recorder.connects()), within=5.0)
            finally:
                stranger.close()
    finally:
        other.kill()
        other.wait()
