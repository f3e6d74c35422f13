"""A throwaway PostgreSQL server for tests and benchmarks: Debian's package, on loopback.

:class:`PostgresServer` runs ``initdb`` and ``pg_ctl`` from ``/usr/lib/postgresql/<ver>/bin``
(the newest installed; Debian's ``postgresql`` package) into a temporary directory, listening
on 127.0.0.1 on a free port with its Unix socket in that directory, and removes it all on
exit. ``initdb`` refuses to run as root, so when run as root the directory is given to the
``postgres`` system user and both commands run as that user (``runuser``). ``fsync`` stays on:
the benchmarks measure durable commits.

Not for production use: trust authentication on loopback, no password.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import unittest
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType

from camgate.extras import needs_extra
from camgate.testing._servers import free_port, require

__all__ = [
    "PostgresServer",
    "find_postgres_bin",
    "postgis_available",
    "postgis_database",
    "postgres_available",
    "server_for_tests",
]

PG_ROOT = Path("/usr/lib/postgresql")


def find_postgres_bin() -> Path | None:
    """The newest ``/usr/lib/postgresql/<ver>/bin`` holding initdb and pg_ctl, if any."""
    if not PG_ROOT.is_dir():
        return None
    versions = sorted(
        (d for d in PG_ROOT.iterdir() if d.name.isdigit()), key=lambda d: int(d.name), reverse=True
    )
    for version in versions:
        binary = version / "bin"
        if (binary / "initdb").is_file() and (binary / "pg_ctl").is_file():
            return binary
    return None


def postgres_available() -> str | None:
    """None when a test PostgreSQL server can be started here, else one line saying why."""
    if find_postgres_bin() is None:
        return (
            f"no PostgreSQL server under {PG_ROOT}/<version>/bin "
            "(install Debian's postgresql package: scripts/setup.sh does)"
        )
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root but there is no 'postgres' user to run the server as"
        if shutil.which("runuser") is None:
            return "running as root but runuser (util-linux) is missing"
    return None


@contextmanager
def server_for_tests() -> Iterator[PostgresServer]:
    """A started :class:`PostgresServer` for a test run (pytest fixtures wrap it).

    Where PostgreSQL cannot run, raises ``unittest.SkipTest`` (pytest skips) when
    ``CAMGATE_SKIP_POSTGRES=1``, and otherwise RuntimeError saying why: the tests that need a
    server fail rather than pass unseen.
    """
    require(postgres_available(), "CAMGATE_SKIP_POSTGRES", "PostgreSQL")
    with PostgresServer() as server:
        yield server


class PostgresServer:
    """A PostgreSQL server in a temporary directory; a context manager (stopped on exit).

    ``base_dir`` is where that directory goes (default: the system's temp dir); as root, the
    ``postgres`` user must be able to reach it (every parent searchable by others).

    ``dsn`` (after start) connects as the superuser to database ``postgres``;
    :meth:`create_database` makes a fresh database and returns its DSN.
    """

    def __init__(self, base_dir: str | Path | None = None) -> None:
        reason = postgres_available()
        if reason:
            raise RuntimeError(reason)
        binary = find_postgres_bin()
        assert binary is not None
        self.bin = binary
        self._base = base_dir
        self.dir: Path | None = None
        self.port = 0
        self.user = "postgres"
        self._as: list[str] = []
        self._started = False
        self._dbs = 0

    @property
    def dsn(self) -> str:
        """libpq URL of database ``postgres`` on this server (no password: trust on loopback)."""
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        done = subprocess.run(
            [*self._as, *args], capture_output=True, text=True, timeout=120, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"{Path(args[0]).name} failed ({done.returncode}): "
                f"{(done.stderr or done.stdout).strip()[-800:]}"
            )

    def start(self) -> PostgresServer:
        """initdb, then start the server and wait until it accepts connections."""
        self.dir = Path(tempfile.mkdtemp(prefix="camgate-pg-", dir=self._base)).resolve()
        data = self.dir / "data"
        if os.geteuid() == 0:
            entry = pwd.getpwnam("postgres")
            os.chown(self.dir, entry.pw_uid, entry.pw_gid)
            self._as = ["runuser", "-u", "postgres", "--"]
            self.user = "postgres"
        else:
            self.user = pwd.getpwuid(os.geteuid()).pw_name
        self._run(
            str(self.bin / "initdb"),
            "-D",
            str(data),
            "-U",
            self.user,
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",  # the cluster is thrown away; commits below are still fsynced
        )
        self.port = free_port()
        self._pg_ctl_start()
        return self

    def _pg_ctl_start(self) -> None:
        assert self.dir is not None
        options = (
            f"-c listen_addresses=127.0.0.1 -c port={self.port} "
            f"-c unix_socket_directories={self.dir} -c max_connections=200 "
            "-c fsync=on -c synchronous_commit=on"
        )
        self._run(
            str(self.bin / "pg_ctl"),
            "-D",
            str(self.dir / "data"),
            "-o",
            options,
            "-l",
            str(self.dir / "server.log"),
            "-w",
            "-t",
            "60",
            "start",
        )
        self._started = True

    def pause(self) -> None:
        """Stop the server (fast shutdown: open connections are cut, their transactions rolled
        back), keeping its data; :meth:`resume` starts it again on the same port."""
        assert self.dir is not None and self._started
        self._run(
            str(self.bin / "pg_ctl"), "-D", str(self.dir / "data"), "-m", "fast", "-w", "stop"
        )
        self._started = False

    def resume(self) -> None:
        """Start the server :meth:`pause` stopped, on the same port, and wait until it accepts
        connections."""
        self._pg_ctl_start()

    def create_database(self, name: str | None = None, *, template: str | None = None) -> str:
        """Create a fresh database and return its DSN; ``template`` names a database of this
        server to copy (nobody may be connected to it)."""
        with needs_extra("postgres", "a PostgreSQL test database"):
            import psycopg

        self._dbs += 1
        name = name or f"camgate_{os.getpid()}_{self._dbs}"
        copy = f' TEMPLATE "{template}"' if template else ""
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"{copy}')  # names are ours: letters, digits, _
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        """Stop the server and remove its directory. Idempotent. The shutdown is immediate (no
        final checkpoint: the data is thrown away next), so a server that held many databases
        stops at once instead of flushing them all."""
        if self.dir is None:
            return
        try:
            if self._started:
                self._run(
                    str(self.bin / "pg_ctl"),
                    "-D",
                    str(self.dir / "data"),
                    "-m",
                    "immediate",
                    "-w",
                    "stop",
                )
        finally:
            self._started = False
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def __enter__(self) -> PostgresServer:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def postgis_available() -> str | None:
    """None when the test PostgreSQL (:func:`find_postgres_bin`) has PostGIS, else why not.

    PostGIS is Debian's ``postgresql-<ver>-postgis-3`` for the same major version (its
    ``postgis.control`` under ``/usr/share/postgresql/<ver>/extension``); scripts/setup.sh
    installs it.
    """
    reason = postgres_available()
    if reason:
        return reason
    binary = find_postgres_bin()
    assert binary is not None
    major = binary.parent.name
    control = Path("/usr/share/postgresql") / major / "extension" / "postgis.control"
    if not control.is_file():
        return (
            f"PostGIS is not installed for PostgreSQL {major} (no {control}; install Debian's "
            f"postgresql-{major}-postgis-3: scripts/setup.sh does)"
        )
    return None


def postgis_database(server: PostgresServer) -> str:
    """A fresh database on ``server`` with the ``postgis`` extension created; its DSN.

    Where PostGIS is missing, raises ``unittest.SkipTest`` when ``CAMGATE_SKIP_POSTGIS=1``
    (or ``CAMGATE_SKIP_POSTGRES=1``), and otherwise RuntimeError saying why: the tests that need
    it fail rather than pass unseen.
    """
    reason = postgis_available()
    if reason:
        for env in ("CAMGATE_SKIP_POSTGIS", "CAMGATE_SKIP_POSTGRES"):
            if os.environ.get(env) == "1":
                raise unittest.SkipTest(f"PostGIS tests skipped ({env}=1): {reason}")
        raise RuntimeError(f"{reason}; set CAMGATE_SKIP_POSTGIS=1 to skip the PostGIS tests")
    with needs_extra("postgres", "a PostGIS test database"):
        import psycopg

    dsn = server.create_database()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
    return dsn
