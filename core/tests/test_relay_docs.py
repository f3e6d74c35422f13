"""The example in docs/media.md "Fast start and relay" runs and does what the text says."""

from __future__ import annotations

import re
from pathlib import Path

import anyio
import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "media.md"


def test_the_relay_example_turns_the_cache_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = DOC.read_text()
    section = text[text.index("## Fast start and relay") :]
    code = re.findall(r"```python\n(.*?)```", section, re.S)[0]
    monkeypatch.chdir(tmp_path)
    scope: dict[str, object] = {}
    exec(compile(code, str(DOC), "exec"), scope)  # our own documentation
    gate = scope["gate"]
    try:
        settings = gate.edge.relay_statistics().settings  # type: ignore[attr-defined]
        assert settings.gop_cache is True
        assert settings.queue_packets == 256
    finally:
        anyio.run(gate.aclose)  # type: ignore[attr-defined]
