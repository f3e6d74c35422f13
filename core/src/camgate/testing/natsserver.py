"""A throwaway NATS server with JetStream for tests and benchmarks: Debian's ``nats-server``.

:class:`NatsServer` runs ``nats-server -js`` on 127.0.0.1 on a free port with its JetStream
store in a temporary directory (removed on exit). :meth:`NatsServer.stop` and
:meth:`NatsServer.start` again keep the port and the store, so a test can cut every client off
and bring the same server (with what JetStream kept) back: clients reconnect to the same URL.

Not for production use: no authentication, no TLS, loopback only.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType

from camgate.testing._servers import free_port, require

__all__ = ["NatsServer", "nats_available", "server_for_tests"]


def nats_available() -> str | None:
    """None when ``nats-server`` is on PATH (or in /usr/sbin), else one line saying why."""
    if _binary() is None:
        return "no nats-server (install Debian's nats-server package: scripts/setup.sh does)"
    return None


def _binary() -> str | None:
    return shutil.which("nats-server") or shutil.which("nats-server", path="/usr/sbin:/usr/bin")


@contextmanager
def server_for_tests() -> Iterator[NatsServer]:
    """A started :class:`NatsServer` for a test run (pytest fixtures wrap it).

    Where there is no nats-server, raises ``unittest.SkipTest`` when ``CAMGATE_SKIP_NATS=1``
    and RuntimeError saying why otherwise: the tests that need it fail rather than pass unseen.
    """
    require(nats_available(), "CAMGATE_SKIP_NATS", "NATS")
    with NatsServer() as server:
        yield server


class NatsServer:
    """``nats-server -js`` on loopback; a context manager (stopped and removed on exit).

    ``url`` is ``nats://<host>:<port>``; the port and the JetStream store directory stay
    the same across :meth:`stop` and :meth:`start`. ``host`` is the one address it listens on
    (default 127.0.0.1; the distributed demo gives a bridge address its edges' namespaces reach).
    """

    def __init__(self, base_dir: str | Path | None = None, *, host: str = "127.0.0.1") -> None:
        binary = _binary()
        if binary is None:
            raise RuntimeError(nats_available() or "no nats-server")
        self.binary = binary
        self.host = host
        self.dir = Path(tempfile.mkdtemp(prefix="camgate-nats-", dir=base_dir)).resolve()
        self.port = free_port()
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The client URL of this server."""
        return f"nats://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        """True while the server process runs."""
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout_s: float = 20.0) -> NatsServer:
        """Start the server (again) and wait until it accepts connections; RuntimeError with
        its log's tail when it does not within ``timeout_s``."""
        if self.running:
            return self
        log = self.dir / "nats.log"
        self._proc = subprocess.Popen(
            [
                self.binary,
                "-a",
                self.host,
                "-p",
                str(self.port),
                "-js",
                "-sd",
                str(self.dir / "js"),
                "-l",
                str(log),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                break
            try:
                with socket.create_connection((self.host, self.port), timeout=1) as s:
                    if s.recv(4).startswith(b"INFO"):
                        return self
            except OSError:
                time.sleep(0.05)
        tail = log.read_text(errors="replace")[-800:] if log.exists() else ""
        self.stop()
        raise RuntimeError(f"nats-server did not start on port {self.port}: {tail}")

    def stop(self) -> None:
        """Stop the server (its store is kept for :meth:`start`)."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def close(self) -> None:
        """Stop the server and remove its directory."""
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> NatsServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
