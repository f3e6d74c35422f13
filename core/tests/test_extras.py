"""psycopg and matplotlib are optional extras (camgate[postgres], camgate[plot]): without them
camgate's CLI says which extra to install, and the rest of camgate keeps working.

Each test runs the real CLI in a child process whose interpreter cannot import the extra's
package (``sys.modules[name] = None`` before camgate is imported: exactly what Python does for
a package that is not installed, an ImportError naming it)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

#: Run ``camgate ARGS`` with the packages named first (comma-separated) made unimportable.
PRELUDE = (
    "import runpy, sys\n"
    "for name in sys.argv[1].split(','):\n"
    "    sys.modules[name] = None\n"
    "sys.argv[1:2] = []\n"
    "runpy.run_module('camgate.cli', run_name='__main__', alter_sys=True)\n"
)


def camgate_without(blocked: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAMGATE_")}
    return subprocess.run(
        [sys.executable, "-c", PRELUDE, blocked, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def test_the_postgres_audit_log_without_psycopg_names_the_extra(tmp_path: Path) -> None:
    db = str(tmp_path / "g.db")
    dsn = "postgresql://camgate:hunter2@127.0.0.1:9/audit"
    args = ("--db", db, "--audit-dsn", dsn, "owner", "add", "--id", "alice", "--name", "Alice")
    result = camgate_without("psycopg", *args)
    assert result.returncode != 0
    assert "install camgate[postgres]" in result.stderr
    assert "PostgreSQL audit log" in result.stderr and "'psycopg'" in result.stderr
    assert "Traceback" not in result.stderr and "hunter2" not in result.stderr
    # Without the DSN the same command needs no extra (the audit log stays in the store).
    assert camgate_without("psycopg", "--db", db, *args[4:]).returncode == 0


def test_the_geofence_plot_without_matplotlib_names_the_extra(tmp_path: Path) -> None:
    db = str(tmp_path / "g.db")
    query = ("--db", db, "geofence", "query", "--lat", "32.3", "--lon", "-90.18")
    result = camgate_without(
        "matplotlib", *query, "--radius", "100", "--plot", str(tmp_path / "m.png")
    )
    assert result.returncode != 0
    assert "install camgate[plot]" in result.stderr and "geofence plot" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "m.png").exists()
    assert camgate_without("matplotlib", *query, "--radius", "100").returncode == 0


@pytest.mark.parametrize("blocked", ["psycopg.conninfo", "psycopg,psycopg.conninfo"])
def test_only_the_extras_packages_are_named(blocked: str, tmp_path: Path) -> None:
    """A sub-module of the extra's package missing is still that extra."""
    db = str(tmp_path / "g.db")
    dsn = "postgresql://127.0.0.1:9/audit"
    result = camgate_without(
        blocked, "--db", db, "--audit-dsn", dsn, "owner", "add", "--id", "b", "--name", "B"
    )
    assert "install camgate[postgres]" in result.stderr, result.stderr
