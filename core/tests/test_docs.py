"""Meta-tests: every hook is documented in docs/hooks.md, every public thing has a docstring."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import camgate
import pytest
from camgate import hookspecs
from camgate.cli import build_parser

DOCS = Path(__file__).resolve().parents[2] / "docs"


def _hooks() -> list[str]:
    return sorted(n for n in dir(hookspecs) if n.startswith("camgate_"))


def test_every_hook_has_a_section_and_every_section_a_hook() -> None:
    text = (DOCS / "hooks.md").read_text()
    sections = set(re.findall(r"^### (camgate_\w+)$", text, re.MULTILINE))
    assert sections == set(_hooks())


@pytest.mark.parametrize("name", _hooks())
def test_every_hook_has_a_docstring_and_its_signature_in_the_docs(name: str) -> None:
    func = getattr(hookspecs, name)
    assert func.__doc__ and len(func.__doc__.strip()) > 40
    text = (DOCS / "hooks.md").read_text()
    params = list(inspect.signature(func).parameters)
    pattern = ", ".join(p + r"\b[^,)]*" for p in params)
    assert re.search(rf"def {name}\({pattern}\)", text), (
        f"docs/hooks.md shows no signature of {name} with parameters {params}"
    )


@pytest.mark.parametrize("name", sorted(camgate.__all__))
def test_every_public_name_has_a_docstring(name: str) -> None:
    obj = getattr(camgate, name)
    if name == "__version__":
        return
    assert inspect.getdoc(obj), f"camgate.{name} has no docstring"
    if inspect.isclass(obj):
        for attr, member in vars(obj).items():
            if callable(member) and not attr.startswith("_"):
                assert inspect.getdoc(member), f"camgate.{name}.{attr} has no docstring"


def _commands(parser: object, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    import argparse

    found = [prefix]
    for action in parser._actions:  # type: ignore[attr-defined]
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += _commands(sub, (*prefix, name))
    return found


@pytest.mark.parametrize("command", _commands(build_parser()), ids=" ".join)
def test_every_command_has_help(
    command: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    from camgate.cli import main

    with pytest.raises(SystemExit) as done:
        main([*command, "--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert "usage: camgate" in out and len(out.splitlines()) > 3
