"""The suite's watch on every outbound connection attempt of the process, for
:class:`~camgate_conformance.recorder.Recorder` (which runs the ``/proc`` poll) and the check
``gating.egress-only-to-target``.

:func:`install_audit_hook` adds a ``sys.addaudithook`` hook on ``socket.connect`` (every connect
made through Python's socket module) and on ``socket.sendto``/``sendmsg`` of UDP sockets (the
first datagram to each destination: WebRTC's ICE sends without connecting), and
:class:`Recorder` also polls the process's own TCP sockets in ``/proc`` for connections made in
C (FFmpeg's): together they give every outbound connection attempt, checked against the
destinations the target may be reached at. A connection between two sockets of the process on
loopback is not outbound; the ports the process listened on, seen by a poll or bound through
``socket.socket.bind`` (wrapped while a recorder watches), are remembered, so a listener that
came and went between two polls leaves nothing outbound behind (:func:`_proc_remote_addresses`).

**Whose connect it is.** The hook sees the whole process, and a process that ran other work
before the run (a test session) may still have threads of its own reconnecting somewhere (an
earlier test's relay). A connect attempt is the *run's* unless both hold:

* it is not made in the run's context (the ``contextvars`` context of the task that entered the
  recorder, which every task, ``anyio.to_thread`` worker call and callback of the run inherits);
* the connecting thread descends, through the threads that started it, from a thread of
  ``foreign_threads``: threads alive before the run began, other than the one running it. The
  recorder learns who started each thread by wrapping ``threading.Thread.start`` (a thread
  started another way has no known parent and counts as the run's).

The adapter under test is only ever called from the run's context, and any thread its code starts
from there descends from the run, so its connects count. ``camgate conformance`` (:func:`run_suite`)
passes no foreign threads at all: a vendor plugin loaded before the run, whose import-time threads
might later act for it, gets no exemption there. The attempts left out are kept
(:meth:`Recorder.not_the_runs`) and reported. Likewise, with foreign threads, a connection the
``/proc`` watch finds already open when the run begins is not counted as the run's.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import socket
import sys
import threading
import time
import weakref
from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    from camgate_conformance.recorder import Recorder

__all__ = ["Connect", "install_audit_hook"]


@attrs.frozen
class Connect:
    """An outbound connection attempt of this process (from the audit hook or ``/proc``)."""

    at: float
    host: str
    port: int
    via: str  # "audit hook" or "/proc"
    thread: str = ""  # the connecting thread's name (audit hook only)
    #: The earliest the connect can have been made: ``at`` for the audit hook; for ``/proc``,
    #: when the poll before the one that first saw it began (a starved poll sees it late).
    since: float | None = None
    #: For ``/proc``: the socket's local port, and whether it was once one of the recorder's.
    detail: str = ""

    @property
    def earliest(self) -> float:
        """When the attempt was made at the earliest (``since``, else ``at``)."""
        return self.at if self.since is None else self.since

    def line(self) -> str:
        """The attempt as one line of evidence."""
        who = f" (thread {self.thread})" if self.thread else ""
        when = f"{self.at:.3f}"
        if self.since is not None and self.since < self.at:
            when = f"{self.since:.3f}..{self.at:.3f}"
        more = f" ({self.detail})" if self.detail else ""
        return f"[{self.via} {when}] connect to {self.host}:{self.port}{who}{more}"


_watchers: list[Recorder] = []
_hook_installed = False
_internal = threading.local()
#: Set to the recorder in the context of the run it watches (module docstring).
_RUN: contextvars.ContextVar[Recorder | None] = contextvars.ContextVar(
    "camgate_conformance_run", default=None
)
#: Each thread started since the hook was installed: (its starter, started in a run's context).
_starters: weakref.WeakKeyDictionary[
    threading.Thread, tuple[weakref.ref[threading.Thread], bool]
] = weakref.WeakKeyDictionary()
_plain_start = threading.Thread.start


def _start(self: threading.Thread) -> None:
    """``threading.Thread.start``, noting who started the thread and in which context."""
    with contextlib.suppress(TypeError):
        _starters[self] = (weakref.ref(threading.current_thread()), _RUN.get() is not None)
    _plain_start(self)


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event not in _AUDITED or not _watchers or getattr(_internal, "on", False):
        return
    try:
        sock, address = args
        if sock.family not in (socket.AF_INET, socket.AF_INET6):
            return
        if event != "socket.connect" and not sock.type & socket.SOCK_DGRAM:
            return
        host, port = str(address[0]).split("%", 1)[0], int(address[1])
    except Exception:
        return
    via = "audit hook" if event == "socket.connect" else "udp sendto"
    thread = threading.current_thread()
    in_run = _RUN.get() is not None
    for recorder in list(_watchers):
        if not in_run and recorder.is_foreign(thread):
            inode = 0
            with contextlib.suppress(OSError, ValueError):
                inode = os.fstat(sock.fileno()).st_ino
            recorder.not_the_run(host, port, thread.name, inode)
        else:
            recorder.connect_attempt(host, port, via, thread.name)


#: The audit events watched: TCP and UDP connects, and UDP datagrams sent without a connect
#: (WebRTC's ICE, whose first datagram to each destination counts as an attempt).
_AUDITED = frozenset({"socket.connect", "socket.sendto", "socket.sendmsg"})


_plain_bind = socket.socket.bind
#: Ports (``/proc``'s hex spelling) TCP sockets of this process were bound to through Python's
#: ``socket.socket.bind`` while a recorder watched, and when: a listener that opened and closed
#: between two ``/proc`` polls is still known to have been this process's own.
_bound_ports: dict[str, float] = {}


def _bind(self: socket.socket, address: Any) -> None:
    """``socket.socket.bind``, noting the TCP port it bound while a recorder watches."""
    _plain_bind(self, address)
    if _watchers and self.family in (socket.AF_INET, socket.AF_INET6):
        with contextlib.suppress(OSError, TypeError, IndexError):
            if self.type & socket.SOCK_STREAM:
                _bound_ports[f"{int(self.getsockname()[1]):04X}"] = time.monotonic()


def install_audit_hook() -> None:
    """Add the process-wide ``socket.connect`` audit hook and the ``Thread.start`` and
    ``socket.socket.bind`` wrappers once (hooks cannot be removed; all three do nothing but
    note while no recorder watches)."""
    global _hook_installed
    if not _hook_installed:
        sys.addaudithook(_audit)
        threading.Thread.start = _start  # type: ignore[method-assign]
        socket.socket.bind = _bind  # type: ignore[method-assign,assignment]
        _hook_installed = True


def _proc_sockets(everyone: list[list[str]] | None = None) -> list[list[str]]:
    """The rows of ``/proc/self/net/tcp{,6}`` for this process's own sockets; every row of
    the network namespace is added to ``everyone`` when given."""
    inodes: set[str] = set()
    with contextlib.suppress(OSError):
        for fd in os.listdir("/proc/self/fd"):
            with contextlib.suppress(OSError):
                target = os.readlink(f"/proc/self/fd/{fd}")
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
    rows: list[list[str]] = []
    for table in ("/proc/self/net/tcp", "/proc/self/net/tcp6"):
        with contextlib.suppress(OSError), open(table, encoding="ascii") as lines:
            next(lines, None)
            rows += [cols for cols in (line.split() for line in lines) if len(cols) >= 10]
    if everyone is not None:
        everyone += rows
    return [cols for cols in rows if cols[9] in inodes]


def _proc_remote_addresses(
    keep: frozenset[tuple[str, int]] = frozenset(),
    skip: frozenset[int] = frozenset(),
    inside: set[int] | None = None,
    listened: set[str] | None = None,
) -> set[tuple[str, int, int]]:
    """(remote host, remote port, local port) of this process's outbound TCP sockets, leaving
    out connections between two sockets of its own (an in-process relay on loopback) unless
    the remote address is in ``keep`` (a target's: an in-process simulator is a camera), and
    the sockets whose inode is in ``skip`` (connects that are not the run's). The inodes of
    the sockets left out as connections between two of its own are added to ``inside``.

    ``listened`` (hex port numbers) is the caller's memory of the ports this process listened
    on (or Python bound: the caller adds those); this poll's listening ports are added to it.
    A listener that closed between two polls (a staged fault's peer, a relay) leaves sockets
    behind, half-closed: the accepted end, whose far end looks like an outbound address once
    the connecting end is gone, and the connecting end, whose far end nobody listens on any
    more. On loopback, both stay inside. The memory never speaks for a far end off loopback,
    nor for a port another process listens on now: a port number we once listened on, reused
    since, is not thereby ours."""
    everyone: list[list[str]] = []
    mine = [cols for cols in _proc_sockets(everyone) if not (skip and int(cols[9]) in skip)]
    # A socket whose local port one of ours listens on was accepted, not connected out; one
    # whose far end is another socket of ours (listening, or the accepted end) stays inside.
    listening = {cols[1].rsplit(":", 1)[1] for cols in mine if cols[3] == "0A"}
    ours = set(listening)
    others: set[str] = set()  # ports another process listens on now
    if listened is not None:
        listened |= listening
        others = {c[1].rsplit(":", 1)[1] for c in everyone if c[3] == "0A"} - listening
        ours |= listened - others
    ends = {cols[1] for cols in mine}
    found: set[tuple[str, int, int]] = set()
    for cols in mine:
        addr, port = cols[2].rsplit(":", 1)
        host = _proc_host(addr)
        loopback = host.startswith("127.")
        local_port = cols[1].rsplit(":", 1)[1]
        # Accepted by a listener of ours that closed since: its far end is (was) a connecting
        # socket, never a port another process listens on (a C socket bound to a port we
        # once listened on and connected out from there is not accepted).
        remembered = loopback and local_port in ours and port not in others
        if cols[3] == "0A" or local_port in listening or remembered:
            continue
        remote = (host, int(port, 16))
        internal = port in ours or cols[2] in ends
        if internal and loopback and remote not in keep:
            if inside is not None:
                inside.add(int(cols[9]))
            continue
        found.add((*remote, int(local_port, 16)))
    return found


def _proc_host(hexaddr: str) -> str:
    raw = bytes.fromhex(hexaddr)
    if len(raw) == 4:
        return socket.inet_ntop(socket.AF_INET, raw[::-1])
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
    text = socket.inet_ntop(socket.AF_INET6, words)
    return text[7:] if text.startswith("::ffff:") else text
