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
from camgate.testing import wait_until
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


def _c_connect(port: int, from_port: int = 0) -> socket.socket:
    """A loopback connection made in C, as FFmpeg makes one (no Python audit event: only the
    recorder's ``/proc`` watch can see it); from local port ``from_port`` if given (bound in
    C too, unseen by the recorder's ``bind`` wrapper)."""
    import ctypes
    import struct

    libc = ctypes.CDLL(None, use_errno=True)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)

    def sockaddr(number: int) -> bytes:
        packed = struct.pack("!HH4s8x", socket.AF_INET, number, socket.inet_aton("127.0.0.1"))
        return struct.pack("=H", socket.AF_INET) + packed[2:]  # sa_family in host order

    if from_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        local = sockaddr(from_port)
        if libc.bind(sock.fileno(), ctypes.c_char_p(local), len(local)) != 0:
            sock.close()
            raise OSError(ctypes.get_errno(), "bind failed")
    address = sockaddr(port)
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


def test_a_listener_that_came_and_went_between_two_polls_stays_inside() -> None:
    """A staged fault's peer can open, serve and close between two polls of a starved watch:
    the half-closed ends it leaves behind (FFmpeg's connecting end, whose far end nobody
    listens on any more, and the accepted end, whose far end is gone) are still between two
    sockets of ours. Python's ``bind`` told the recorder the port was ours (this failed a
    certified Arlo adapter's CI run once)."""
    with Recorder(poll_s=3.0) as recorder:
        # The connecting end lingers: the server side closes first.
        listener = socket.create_server(("127.0.0.1", 0))
        first = listener.getsockname()[1]
        client = _c_connect(first)
        accepted, _ = listener.accept()
        accepted.close()
        listener.close()
        # The accepted end lingers: the connecting end closes first, then the listener.
        listener = socket.create_server(("127.0.0.1", 0))
        second = listener.getsockname()[1]
        gone = _c_connect(second)
        kept, _ = listener.accept()
        gone_port = gone.getsockname()[1]
        gone.close()
        listener.close()
        try:
            assert recorder.polls == 0  # the watch never saw either listener
            wait_until(lambda: recorder.polls >= 2, "two polls of the half-closed ends")
        finally:
            client.close()
            kept.close()
        seen = [c for c in recorder.connects() if c.port in (first, second, gone_port)]
        assert not seen, seen


@pytest.mark.parametrize("from_ours", [False, True], ids=["to-it", "from-it"])
def test_a_port_we_once_listened_on_is_not_ours_once_another_process_listens(
    from_ours: bool,
) -> None:
    """The recorder's memory of our own ports never covers a port another process listens on
    now: a C connection there is seen, with the interval it was made in; so is one made to
    another process from a port we once listened on (not an accepted socket of ours)."""
    code = (
        "import socket, sys\n"
        "s = socket.socket()\n"
        "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
        "s.bind(('127.0.0.1', int(sys.argv[1])))\n"
        "s.listen()\n"
        "print('ready', flush=True)\n"
        "c, _ = s.accept()\n"
        "sys.stdin.read()\n"
    )
    with Recorder(poll_s=0.01) as recorder:
        ours = socket.create_server(("127.0.0.1", 0))
        port = ours.getsockname()[1]
        ours.close()
        remembered = port
        if from_ours:
            port = _closed_port()  # the other process listens elsewhere
        other = subprocess.Popen(
            [sys.executable, "-c", code, str(port)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert other.stdout is not None
            assert other.stdout.readline().strip() == "ready"
            stranger = _c_connect(port, remembered if from_ours else 0)
            try:
                seen = _wait(lambda: _to(port, recorder.connects()), within=5.0)
            finally:
                stranger.close()
        finally:
            other.kill()
            other.wait()
    assert seen and seen[0].via == "/proc"
    assert seen[0].since is not None and seen[0].earliest <= seen[0].at
