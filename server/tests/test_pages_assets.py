"""The vendored front-end files are what server/web/package-lock.json pins (vendor.py)."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
from pathlib import Path
from types import ModuleType

import camgate_server.pages
import pytest

VENDOR_PY = Path(__file__).resolve().parents[1] / "web" / "vendor.py"


@pytest.fixture
def vendor() -> ModuleType:
    spec = importlib.util.spec_from_file_location("camgate_web_vendor", VENDOR_PY)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_committed_copy_matches_the_manifest_and_the_lock(vendor: ModuleType) -> None:
    assert vendor.check() == []


def test_a_changed_file_is_caught(vendor: ModuleType, tmp_path: Path) -> None:
    copy = tmp_path / "vendor"
    shutil.copytree(vendor.VENDOR, copy)
    (copy / "leaflet" / "leaflet.js").write_text("alert(1)")
    vendor.VENDOR, vendor.MANIFEST = copy, copy / "MANIFEST.json"
    assert any("leaflet.js" in p for p in vendor.check())


def test_no_file_the_pages_serve_is_git_ignored() -> None:
    """What vendor.py copies and the pages' own files are committed: an ignored path (the root
    .gitignore ignores dist/) would work here and be missing from every checkout and wheel."""
    pages = Path(camgate_server.pages.__file__).parent
    root = VENDOR_PY.parents[2]
    if not (root / ".git").exists():
        pytest.skip("not a git checkout")
    files = [str(p.relative_to(root)) for p in pages.rglob("*") if p.is_file()]
    files = [f for f in files if "__pycache__" not in f]
    ignored = subprocess.run(
        ["git", "check-ignore", "--no-index", "--stdin"],
        cwd=root,
        input="\n".join(files),
        capture_output=True,
        text=True,
        check=False,
    )
    assert ignored.stdout.split() == [], "git ignores these"
    assert any(f.endswith("leaflet.js") for f in files)
