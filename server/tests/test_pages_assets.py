"""The vendored front-end files are what server/web/package-lock.json pins (vendor.py)."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path
from types import ModuleType

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
