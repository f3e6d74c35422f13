"""Who wrote a row, and whether that process still runs: what recovery asks before it settles
another process's unfinished change or takes over a notice it owed.

Rows that a process may leave unfinished (``audit_intents``, ``owed_notices``) name it by its pid
and :func:`process_identity` (this boot's id and the process's start time). On one machine that
is exact: :func:`process_alive` reads ``/proc``. It cannot speak for a process on another machine,
or in another pid namespace (a container) on this one: there the pid means another process, or
none, and a running hub would look dead.

On PostgreSQL a writer therefore also holds a **lease**: a session-level advisory lock keyed by
its identity (:func:`lease_key`), on a connection of its own (:class:`WriterLease`, one per
process and database, kept by a daemon thread that reconnects after the server restarts). The
server releases the lock when the session ends: at once when the process dies (its socket is
closed by the kernel), and after the session's TCP keepalive and user timeout (about 30 s, set
on the session) when its machine vanishes or the network is cut. Whether a writer runs is then
asked of the database (:func:`lease_held`), which every hub sees alike: no clock, no heartbeat
table, no guess from elsewhere. A store takes its process's lease before it writes a row naming
the process, and the row's writer counts as running while either witness says so
(``Store.writer_alive``): the lease, or ``/proc`` on this machine.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from camgate.errors import ConfigError, StorageError

_log = logging.getLogger(__name__)

__all__ = [
    "WriterLease",
    "lease_held",
    "lease_key",
    "node_name",
    "pg_session_lock",
    "process_alive",
    "process_identity",
    "writer_lease",
]


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def process_identity(pid: int | None = None) -> str | None:
    """What tells the process ``pid`` (default: this one) from a later one given the same pid:
    this boot's id and the process's start time (``/proc/<pid>/stat``, in clock ticks since
    boot). None when the process does not exist or the system has no ``/proc`` (then only the
    pid can be compared)."""
    try:
        stat = Path(f"/proc/{os.getpid() if pid is None else pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()  # the name may hold spaces and parentheses
    return f"{_boot_id()}:{fields[19]}"  # field 22 of stat(5), counted after the name


def process_alive(pid: int | None, started: str | None) -> bool:
    """Whether the process that wrote a row with ``pid`` and ``started``
    (:func:`process_identity`) still runs on this host, in this pid namespace. A row with no
    pid (an older file's) has no running writer; a live process with that pid but another
    start time is not the writer (the pid was reused). Without ``/proc`` the pid alone
    decides. It cannot see a process of another machine or pid namespace (see the module)."""
    if pid is None:
        return False
    if started is not None and os.path.isdir("/proc/self"):
        return process_identity(pid) == started
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def node_name(remember: Path | None = None) -> str:
    """The name of this node (machine) among the hubs sharing a store: ``$CAMGATE_NODE`` when
    set; else the name kept in the file ``remember`` (the store's home, kept with the node's
    files: a container recreated with a new host name keeps its node); else the host name,
    then written to ``remember``. Rows naming a file on this node's disk carry it (retention
    deletes only its own node's files)."""
    name = os.environ.get("CAMGATE_NODE", "").strip()
    if name:
        return name
    if remember is not None:
        with suppress(OSError, UnicodeDecodeError):
            kept = remember.read_text(encoding="utf-8").strip()
            if kept:
                return kept
    name = socket.gethostname()
    if not name:
        raise ConfigError("this node has no name: set CAMGATE_NODE")
    if remember is not None:
        with suppress(OSError):  # a read-only home: the host name, unremembered
            fd = os.open(remember, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(name + "\n")
    return name


def lease_key(pid: int, started: str | None) -> int:
    """The advisory lock key (a signed 64-bit integer) of the writer ``(pid, started)``."""
    return _key(f"camgate-writer:{pid}:{started}")


def _key(name: str) -> int:
    digest = hashlib.blake2b(name.encode(), digest_size=8)
    return int.from_bytes(digest.digest(), "big", signed=True)


@contextmanager
def pg_session_lock(dsn: str, name: str, where: str) -> Iterator[bool]:
    """Try the session advisory lock ``name`` (hashed to a key) on a connection of its own for
    the block; yields whether it was taken. The server drops it when the block ends or the
    process dies. StorageError naming ``where`` (no password) when the server is unreachable."""
    import psycopg

    conn = None
    with suppress(psycopg.Error):  # its text may hold the password: not chained, not shown
        conn = psycopg.connect(dsn, autocommit=True, connect_timeout=10)
    if conn is None:
        raise StorageError(f"PostgreSQL store {where}: cannot connect; is the server running?")
    try:
        row = conn.execute("SELECT pg_try_advisory_lock(%s)", (_key(name),)).fetchone()
        yield bool(row and row[0])
    finally:
        conn.close()


#: Whether the writer lease of a key is held by any session of this database. pg_locks shows a
#: bigint key as its high and low halves (classid, objid) with objsubid 1.
_HELD_SQL = (
    "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted"
    " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    " AND objsubid = 1 AND classid::bigint = ? AND objid::bigint = ?)"
)


def _halves(key: int) -> tuple[int, int]:
    unsigned = key & 0xFFFFFFFFFFFFFFFF
    return unsigned >> 32, unsigned & 0xFFFFFFFF


def lease_held(conn: Any, pid: int, started: str | None) -> bool:
    """Whether a session of the database ``conn`` (a :class:`camgate.db.pg.PgConnection`)
    holds the writer lease of ``(pid, started)``: whether that process, wherever it runs, is
    still connected."""
    row = conn.execute(_HELD_SQL, _halves(lease_key(pid, started))).fetchone()
    return bool(row and row[0])


#: The lease session's server-side keepalive and user timeout: a vanished machine's lease is
#: released after about 10 + 5 x 3 s of silence (or 30 s of unacknowledged data).
_SESSION_SETTINGS = (
    "SET tcp_keepalives_idle = 10",
    "SET tcp_keepalives_interval = 5",
    "SET tcp_keepalives_count = 3",
    "SET tcp_user_timeout = 30000",
)


class WriterLease:
    """This process's writer lease on one PostgreSQL database (see the module): a daemon thread
    taking the session advisory lock ``lease_key(pid, started)`` on a connection of its own
    (trying every ``poll_s`` while a lost session of ours may still hold it), checking the
    session every ``poll_s`` and connecting again when it is lost. Get it with :func:`writer_lease`
    (one per process and DSN, counted), give it back with :meth:`release`."""

    def __init__(self, dsn: str, pid: int, started: str | None, *, poll_s: float = 1.0) -> None:
        self._dsn = dsn
        self.pid, self.started = pid, started
        self.key = lease_key(pid, started)
        self._poll = poll_s
        self._held = threading.Event()
        self._stop = threading.Event()
        self._users = 0
        self._thread = threading.Thread(target=self._run, name="camgate-lease", daemon=True)
        self._thread.start()

    def __repr__(self) -> str:
        return f"WriterLease(pid={self.pid}, held={self.held})"

    @property
    def held(self) -> bool:
        """Whether the lock was held at the last check (at most ``poll_s`` ago)."""
        return self._held.is_set()

    def ensure(self, where: str, held: Callable[[], bool], timeout: float = 10.0) -> None:
        """Return once the database says this process's lease is held (``held``: the store's
        :func:`lease_held` query for this process, one round trip; the keeper's own view may
        be a poll old, and another lease of this process, the same database under another DSN
        spelling, may be the one holding it). StorageError naming ``where`` (the store,
        without a password) when it is not within ``timeout`` seconds: the server unreachable,
        or a session of this process lost without the server noticing yet."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                if held():
                    return
            except StorageError:  # the store's connection lost too: it connects again
                pass
            if self._held.is_set():  # the keeper has not yet seen its session go
                time.sleep(0.05)
            else:
                self._held.wait(min(0.25, max(0.0, deadline - time.monotonic())))
            if time.monotonic() >= deadline:
                raise StorageError(
                    f"PostgreSQL store {where}: this process's writer lease is not held "
                    f"(server unreachable?); nothing was written"
                )

    def _run(self) -> None:
        import psycopg

        while not self._stop.is_set():
            try:
                with psycopg.connect(
                    self._dsn,
                    autocommit=True,
                    connect_timeout=10,
                    application_name="camgate lease",
                    # This end gives up on a silent server too, rather than hold a stale view.
                    keepalives=1,
                    keepalives_idle=10,
                    keepalives_interval=5,
                    keepalives_count=3,
                    tcp_user_timeout=30000,
                ) as conn:
                    for setting in _SESSION_SETTINGS:
                        with suppress(psycopg.Error):  # an older server lacks one: the rest
                            conn.execute(setting)
                    # A session of ours the server has not yet seen die may hold it still.
                    while not self._stop.is_set():
                        got = conn.execute("SELECT pg_try_advisory_lock(%s)", (self.key,))
                        row = got.fetchone()
                        if row and row[0]:
                            break
                        self._stop.wait(self._poll)
                    else:
                        return
                    self._held.set()
                    while not self._stop.wait(self._poll):
                        conn.execute("SELECT 1")
            except psycopg.Error:
                pass
            except Exception as exc:  # never end the keeper: every later write would fail
                _log.warning("writer lease keeper: %s; connecting again", type(exc).__name__)
            finally:
                self._held.clear()
            self._stop.wait(self._poll)

    def release(self) -> None:
        """Give back one use; the last one ends the session (the server drops the lock)."""
        with _LEASES_LOCK:
            self._users -= 1
            if self._users > 0:
                return
            if _LEASES.get((self.pid, self._dsn)) is self:
                del _LEASES[(self.pid, self._dsn)]
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=5)


_LEASES: dict[tuple[int, str], WriterLease] = {}
_LEASES_LOCK = threading.Lock()


def writer_lease(dsn: str) -> WriterLease:
    """This process's lease on the database ``dsn``, started when none runs; one more use of
    it (:meth:`WriterLease.release` gives it back)."""
    pid = os.getpid()
    with _LEASES_LOCK:
        lease = _LEASES.get((pid, dsn))
        if lease is None:
            lease = _LEASES[(pid, dsn)] = WriterLease(dsn, pid, process_identity())
        lease._users += 1
        return lease
