"""psycopg and matplotlib are optional extras (camgate[postgres], camgate[plot]): without them
camgate's CLI says which extra to install, and the rest of camgate keeps working.

Each test runs the real CLI in a child process whose interpreter cannot import the extra's
package (``run_cli(without=...)``: ``sys.modules[name] = None`` before camgate is imported,
exactly what Python does for a package that is not installed, an ImportError naming it)."""

from __future__ import annotations

from pathlib import Path

import pytest
from camgate.testing import run_cli


def test_the_postgres_audit_log_without_psycopg_names_the_extra(tmp_path: Path) -> None:
    db = str(tmp_path / "g.db")
    dsn = "postgresql://camgate:hunter2@127.0.0.1:9/audit"
    add = ("owner", "add", "--id", "alice", "--name", "Alice")
    result = run_cli("--db", db, "--audit-dsn", dsn, *add, without=["psycopg"], check=False)
    assert result.returncode != 0
    assert "install camgate[postgres]" in result.stderr
    assert "PostgreSQL audit log" in result.stderr and "'psycopg'" in result.stderr
    assert "Traceback" not in result.stderr and "hunter2" not in result.stderr
    # Without the DSN the same command needs no extra (the audit log stays in the store).
    run_cli("--db", db, *add, without=["psycopg"])


def test_the_geofence_plot_without_matplotlib_names_the_extra(tmp_path: Path) -> None:
    query = ("--db", str(tmp_path / "g.db"), "geofence", "query", "--lat", "32.3", "--lon", "-90.2")
    plot = ("--radius", "100", "--plot", str(tmp_path / "m.png"))
    result = run_cli(*query, *plot, without=["matplotlib"], check=False)
    assert result.returncode != 0
    assert "install camgate[plot]" in result.stderr and "geofence plot" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "m.png").exists()
    run_cli(*query, "--radius", "100", without=["matplotlib"])


@pytest.mark.parametrize("blocked", [["psycopg.conninfo"], ["psycopg", "psycopg.conninfo"]])
def test_a_missing_module_of_the_extras_package_names_the_extra(
    blocked: list[str], tmp_path: Path
) -> None:
    dsn = "postgresql://127.0.0.1:9/audit"
    add = ("owner", "add", "--id", "b", "--name", "B")
    result = run_cli(
        "--db", str(tmp_path / "g.db"), "--audit-dsn", dsn, *add, without=blocked, check=False
    )
    assert "install camgate[postgres]" in result.stderr, result.stderr


def test_an_import_error_of_another_package_is_not_blamed_on_an_extra() -> None:
    from camgate.errors import MissingExtra
    from camgate.extras import needs_extra

    with pytest.raises(ModuleNotFoundError) as raised, needs_extra("plot", "a chart"):
        import camgate_no_such_module  # type: ignore[import-not-found]  # noqa: F401
    assert not isinstance(raised.value, MissingExtra)
    missing = ModuleNotFoundError("No module named 'matplotlib.pyplot'", name="matplotlib.pyplot")
    wanted = r"a chart needs 'matplotlib'.*camgate\[plot\]"
    with pytest.raises(MissingExtra, match=wanted), needs_extra("plot", "a chart"):
        raise missing
