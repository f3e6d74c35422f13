"""Meta-test: every hook has a test that implements it (as datasette's test_plugins does).

For each hook specification in ``camgate.hookspecs`` some test file must hold a test named
``test_hook_<hook>`` (or ``test_hook_<hook>_<more>``) that itself defines an implementation of
the hook — ``def <hook>(...)`` under ``@hookimpl``, in the test's body or a class inside it —
so the test registers a plugin of its own and sees what the hook is given. A test for a hook
that no longer exists fails too.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest
from camgate import hookspecs

ROOT = Path(__file__).resolve().parents[2]
HOOKS = sorted(n for n in dir(hookspecs) if n.startswith("camgate_"))


def _test_files() -> list[Path]:
    dirs = [ROOT / "tests", ROOT / "core" / "tests", ROOT / "conformance" / "tests"]
    dirs += [p / "tests" for p in (ROOT / "plugins").iterdir()]
    return sorted(f for d in dirs if d.is_dir() for f in d.rglob("test_*.py"))


def _implements(test: ast.AST, hook: str) -> bool:
    """True when ``test`` defines ``hook`` decorated with a ``hookimpl``."""
    for node in ast.walk(test):
        if isinstance(node, ast.FunctionDef) and node.name == hook:
            for deco in node.decorator_list:
                target = deco.func if isinstance(deco, ast.Call) else deco
                name = target.attr if isinstance(target, ast.Attribute) else ast.unparse(target)
                if name == "hookimpl":
                    return True
    return False


@functools.cache
def hook_tests() -> dict[str, list[str]]:
    """Each ``test_hook_*`` function of the test files → the hook it names, with where it is."""
    found: dict[str, list[str]] = {}
    for path in _test_files():
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith(
                "test_hook_camgate_"
            ):
                name = node.name.removeprefix("test_hook_")
                hook = next((h for h in HOOKS if name == h or name.startswith(f"{h}_")), name)
                ok = _implements(node, hook)
                where = f"{path.relative_to(ROOT)}::{node.name}" + ("" if ok else " (no hookimpl)")
                found.setdefault(hook, []).append(where)
    return found


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_has_a_test_that_implements_it(hook: str) -> None:
    tests = [t for t in hook_tests().get(hook, []) if not t.endswith("(no hookimpl)")]
    assert tests, (
        f"{hook} has no test: add `test_hook_{hook}` to tests/integration/test_hooks.py, "
        f"defining a plugin with `@hookimpl def {hook}(...)` registered on a real gate or "
        "plugin host, and assert when it is called and what it receives"
    )


def test_no_test_names_a_hook_that_does_not_exist() -> None:
    stale = {h: t for h, t in hook_tests().items() if h not in HOOKS}
    assert not stale, f"tests of hooks camgate.hookspecs does not have (remove them): {stale}"


def test_the_check_tells_an_implementation_from_a_mention() -> None:
    source = """
def test_hook_camgate_x(world):
    class Spy:
        @hookimpl
        def camgate_x(self, grant):
            pass

def test_hook_camgate_y(world):
    world.gate.host.camgate_y()  # calls it, implements nothing

def test_hook_camgate_z(world):
    def camgate_z(grant):  # not a hookimpl
        pass
"""
    tests = {n.name: n for n in ast.walk(ast.parse(source)) if isinstance(n, ast.FunctionDef)}
    assert _implements(tests["test_hook_camgate_x"], "camgate_x")
    assert not _implements(tests["test_hook_camgate_y"], "camgate_y")
    assert not _implements(tests["test_hook_camgate_z"], "camgate_z")
