"""docs/geofence.md's worked example runs, and prints what the page says it prints."""

from __future__ import annotations

import re
import runpy
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "geofence.md"


def test_the_agency_zone_source_example_runs_as_documented(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    text = DOC.read_text()
    section = text[text.index("## Adding your own zone source") :]
    code = re.findall(r"```python\n(.*?)```", section, re.S)[0]
    expected = re.findall(r"It prints.*?```\n(.*?)```", section, re.S)[0]
    script = tmp_path / "example.py"
    script.write_text(code)
    monkeypatch.chdir(tmp_path)
    runpy.run_path(str(script), run_name="__main__")
    assert capsys.readouterr().out == expected
