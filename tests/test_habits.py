"""Meta-tests of the project's habits (CONTRIBUTING.md): the README lists every docs page once,
the change fragments are well formed and make a changelog section, the contributor note on
commit subjects stands."""

from __future__ import annotations

import importlib.util
import re
import shutil
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_readme_lists_every_docs_page_once() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Documentation", 1)[1].split("\n## ", 1)[0]
    listed = re.findall(r"^- \[docs/([\w-]+\.md)\]\(docs/\1\)", section, re.M)
    pages = sorted(p.name for p in (ROOT / "docs").glob("*.md"))
    assert sorted(listed) == pages, "every docs/*.md in the README's list, each once"
    assert "RTSP and ONVIF today" in " ".join(readme.split("## Quickstart")[0].split())


def test_the_readme_and_architecture_point_at_the_adapter_guide() -> None:
    assert "docs/adapters.md" in (ROOT / "README.md").read_text(encoding="utf-8")
    assert "(adapters.md)" in (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")


def test_contributing_says_subjects_are_at_most_72_characters_with_the_why_in_the_body() -> None:
    text = (ROOT / "CONTRIBUTING.md").read_text(encoding="utf-8")
    assert "at most 72 characters" in text and "says **why**" in text


def test_the_fragments_in_changes_are_well_formed() -> None:
    assert _script("changelog").problems() == []


def test_a_release_turns_fragments_into_a_section_and_removes_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    changelog = _script("changelog")
    changes = tmp_path / "changes"
    changes.mkdir()
    (changes / "README.md").write_text("how to\n")
    (changes / "16.added.md").write_text("A template\nfor adapters.\n")
    (changes / "relay.fixed.md").write_text("The relay reconnects.\n")
    (changes / "bad.name.md").write_text("x\n")
    log = tmp_path / "CHANGELOG.md"
    shutil.copy(ROOT / "CHANGELOG.md", log)
    monkeypatch.setattr(changelog, "CHANGES", changes)
    monkeypatch.setattr(changelog, "CHANGELOG", log)
    assert changelog.main(["--check"]) == 1  # "bad.name.md": no such kind
    (changes / "bad.name.md").unlink()
    assert changelog.main(["--release", "9.9.9"]) == 0
    text = log.read_text()
    new = text.split("## 9.9.9", 1)[1].split("\n## ", 1)[0]
    assert "### Added\n\n- A template for adapters. (#16)" in new
    assert "### Fixed\n\n- The relay reconnects." in new
    assert text.index("## 9.9.9") < text.index("## 0.1.0")
    assert sorted(p.name for p in changes.iterdir()) == ["README.md"]
