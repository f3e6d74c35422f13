"""Meta-tests: core stands without its plugins.

Core never imports the conformance suite (``camgate conformance`` reaches the CLI through the
``camgate_register_commands`` hook) nor a vendor plugin, and only the plugin host's facade
(``core/src/camgate/plugins.py``) calls pluggy's ``pm.hook``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CORE = ROOT / "core" / "src" / "camgate"
FACADE = CORE / "plugins.py"
#: Distributions core must not import: they depend on core, not the other way round.
OUTSIDE = ("camgate_conformance", "camgate_rtsp", "camgate_onvif", "camgate_examplecam")


def _imports(tree: ast.AST) -> list[tuple[int, str]]:
    """Every module an ``import``, a ``from ... import`` or an ``importlib.import_module("...")``
    / ``__import__("...")`` call names, with its line."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
        elif isinstance(node, ast.Call) and node.args:
            func = ast.unparse(node.func)
            first = node.args[0]
            if func in ("importlib.import_module", "import_module", "__import__") and isinstance(
                first, ast.Constant
            ):
                found.append((node.lineno, str(first.value)))
    return found


def _hook_calls(tree: ast.AST) -> list[int]:
    """Lines that read ``<something>.pm.hook`` or ``pm.hook``."""
    return [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and node.attr == "hook"
        and (
            (isinstance(node.value, ast.Attribute) and node.value.attr == "pm")
            or (isinstance(node.value, ast.Name) and node.value.id == "pm")
        )
    ]


SOURCES = sorted(CORE.rglob("*.py"))


def test_core_has_sources() -> None:
    assert len(SOURCES) > 20 and FACADE in SOURCES


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(CORE)))
def test_core_imports_no_plugin_and_not_the_suite(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    bad = [
        f"{path.relative_to(ROOT)}:{line} imports {name}"
        for line, name in _imports(tree)
        if name.split(".")[0] in OUTSIDE
    ]
    assert not bad, bad


@pytest.mark.parametrize(
    "path", [p for p in SOURCES if p != FACADE], ids=lambda p: str(p.relative_to(CORE))
)
def test_only_the_facade_calls_pm_hook(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    lines = _hook_calls(tree)
    assert not lines, (
        f"{path.relative_to(ROOT)} calls pm.hook at lines {lines}: add a typed method to "
        "camgate.plugins.PluginHost instead"
    )


def test_the_checks_see_what_they_look_for() -> None:
    source = """
import camgate_conformance.cli
from camgate_onvif import plugin
import importlib
importlib.import_module("camgate_rtsp.adapter")
from camgate import adapters
host.pm.hook.camgate_x()
pm.hook.camgate_y()
self.hook.z()
"""
    tree = ast.parse(source)
    names = [name for _line, name in _imports(tree)]
    assert [n for n in names if n.split(".")[0] in OUTSIDE] == [
        "camgate_conformance.cli",
        "camgate_onvif",
        "camgate_rtsp.adapter",
    ]
    assert sorted(_hook_calls(tree)) == [7, 8]
