"""The adapter template can never rot: copied under a new name, as docs/adapters.md says, and
installed into a throwaway virtual environment, it is certified by ``camgate conformance``.

The environment sees the workspace's installed packages (camgate, the suite, PyAV, httpx...)
through a ``.pth`` file, and the copy is built and installed with ``uv pip install --offline
--no-deps``: no download beyond what ``uv sync`` already cached (hatchling, the build backend).
"""

from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
from pathlib import Path

import pytest
from camgate.quality import declaration_problems, parse_quality, report_problems

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "plugins" / "_template"
#: The template's placeholder (package ``camgate_examplecam``, adapter ``examplecam``) and the
#: name the copy gets.
PLACEHOLDER = "examplecam"
NAME = "acmecam"


def _uv() -> str:
    for found in (os.environ.get("UV"), shutil.which("uv"), str(ROOT / ".tools" / "bin" / "uv")):
        if found and Path(found).is_file():
            return found
    pytest.fail("uv is needed to install the template (scripts/setup.sh installs it)")


def copy_template(dest: Path, name: str) -> Path:
    """Copy the template to ``dest`` with ``examplecam`` replaced by ``name`` in every path
    and file (docs/adapters.md, "Start from the template")."""
    for source in TEMPLATE.rglob("*"):
        relative = source.relative_to(TEMPLATE)
        if "__pycache__" in relative.parts or source.is_dir():
            continue
        target = dest / str(relative).replace(PLACEHOLDER, name)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(source.read_text(encoding="utf-8").replace(PLACEHOLDER, name))
    return dest


#: ``camgate`` as the throwaway environment runs it, and the suite's CI settings.
_CAMGATE = ["-m", "camgate.cli"]
_CI = ["--trials", "3", "--budget-slack", "3"]


def _run(args: list[str], cwd: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(the throwaway environment's python, the copied project)."""
    tmp = tmp_path_factory.mktemp("template")
    project = copy_template(tmp / f"camgate-{NAME}", NAME)
    files = [p for p in project.rglob("*") if p.is_file()]
    assert not [p for p in files if PLACEHOLDER in str(p) or PLACEHOLDER in p.read_text()]
    venv = tmp / "venv"
    made = _run([_uv(), "venv", "--offline", "--python", sys.executable, str(venv)], tmp, 120)
    assert made.returncode == 0, made.stderr
    python = venv / "bin" / "python"
    purelib = _run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], tmp, 60
    )
    workspace = site.getsitepackages()[0]
    (Path(purelib.stdout.strip()) / "_camgate_workspace.pth").write_text(
        f"import site; site.addsitedir({workspace!r})\n"
    )
    install = _run(
        [_uv(), "pip", "install", "--offline", "--no-deps", "--python", str(python), str(project)],
        tmp,
        300,
    )
    assert install.returncode == 0, install.stderr
    return python, project


@pytest.mark.timeout(600)  # a whole suite run: about a minute, more on a loaded machine
def test_the_copy_is_certified_and_its_quality_declaration_holds(
    installed: tuple[Path, Path],
) -> None:
    python, project = installed
    out = project / "report.json"
    run = _run(
        # camgate's CI settings (docs/conformance.md): a shared two-core machine.
        [str(python), *_CAMGATE, "conformance", NAME, "--quiet", "--json", str(out), *_CI],
        project,
        600,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    report = json.loads(out.read_text())
    assert report["certified"], report["verdict"]
    declared = parse_quality(
        (project / "src" / f"camgate_{NAME}" / "quality.toml").read_text(), NAME
    )
    assert declaration_problems(declared) == []
    assert report_problems(declared, report) == []


def test_the_copy_lists_its_simulator_target_and_quality(installed: tuple[Path, Path]) -> None:
    python, project = installed
    run = _run([str(python), "-m", "camgate.cli", "plugins", "--json"], project, 120)
    assert run.returncode == 0, run.stderr
    entry = {a["name"]: a for a in json.loads(run.stdout)}[NAME]
    assert entry["distribution"] == f"camgate-{NAME}"
    assert entry["capabilities"] == ["live", "snapshot"]
    assert entry["simulator"] is True and entry["conformance_target"] is True
    assert entry["quality"]["discovery"]["status"] == "exempt"
    assert entry["quality"]["no-media-before-grant"] == {"status": "done"}
    assert entry["quality_problems"] == []


def test_a_broken_declaration_is_listed_as_a_problem_not_a_crash(
    installed: tuple[Path, Path],
) -> None:
    python, project = installed
    installed_copy = _run(
        [str(python), "-c", f"import camgate_{NAME} as m; print(m.__file__)"], project, 60
    )
    target = Path(installed_copy.stdout.strip()).parent / "quality.toml"
    saved = target.read_text()
    try:
        target.write_text(saved + "fast = 3\n")  # a rule must be a status or a table
        run = _run([str(python), "-m", "camgate.cli", "plugins", "--json"], project, 120)
        assert run.returncode == 0, run.stderr
        entry = {a["name"]: a for a in json.loads(run.stdout)}[NAME]
        assert entry["quality"] is None
        assert "quality.toml" in entry["quality_problems"][0]
    finally:
        target.write_text(saved)


def test_the_copys_own_tests_run(installed: tuple[Path, Path]) -> None:
    python, project = installed
    # The three-line conformance test is the suite run above: collected (one test a check),
    # deselected, not run twice; the parser's property tests run.
    run = _run(
        [
            str(python),
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "tests",
            "-k",
            "not conformance",
        ],
        project,
        300,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "3 passed, 31 deselected" in run.stdout, run.stdout
