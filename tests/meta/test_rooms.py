"""Meta-test: test infrastructure lives in rooms named for it (issue 16, item 4).

Test servers, simulators and their helpers belong in a ``testing`` subpackage of their
distribution (``camgate.testing``, ``camgate_rtsp.testing``, ``camgate_onvif.testing``, the
template's ``camgate_examplecam.testing``), never beside product code. A module outside a
``testing`` package fails this test when

- its name marks it as test infrastructure: one of :data:`FORBIDDEN_NAMES`, or any name that
  starts with ``test``; or
- it defines a class whose name marks it so (:data:`TEST_CLASS`): ``*Simulator``,
  ``*TestServer``, ``Fake*``/``Mock*``/``Stub*``, or one of today's servers by name
  (:data:`KNOWN_SERVERS`, so a copy left at an old path is caught too).

The one exception is the abstract ``camgate.adapters.Simulator``, the interface every simulator
implements (:data:`ALLOWED`).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

#: Module names (stems) that mean a test server, a simulator or test inputs.
FORBIDDEN_NAMES = frozenset(
    {
        "altserver",
        "conformance",  # a plugin's conformance target (its backdoor reads the simulator)
        "fakes",
        "gst_rtsp_server",
        "gst_server",
        "mocks",
        "pgserver",
        "replay_server",
        "sim",
        "simulator",
        "stubs",
        "testinputs",
        "testserver",
    }
)
#: Today's test servers by name.
KNOWN_SERVERS = frozenset({"AltRtspServer", "PostgresServer", "ReplayServer", "RtspTestServer"})
TEST_CLASS = re.compile(r"^(?:\w*(?:Simulator|TestServer)|(?:Fake|Mock|Stub)\w*)$")
#: (module path relative to its ``src``, class name) allowed outside ``testing``.
ALLOWED = frozenset({("camgate/adapters.py", "Simulator")})


def _src_dirs(root: Path) -> list[Path]:
    dirs = [root / "core" / "src", root / "conformance" / "src", root / "native" / "src"]
    dirs += sorted((root / "plugins").glob("*/src"))
    return [d for d in dirs if d.is_dir()]


def misplaced(root: Path) -> list[str]:
    """Every module or class of test infrastructure outside a ``testing`` package, under the
    ``src`` folders of core, conformance, native and each plugin in ``root``."""
    problems = []
    for src in _src_dirs(root):
        for module in sorted(src.rglob("*.py")):
            rel = module.relative_to(src)
            if "testing" in rel.parts[:-1]:
                continue
            where = f"{src.relative_to(root)}/{rel}"
            stem = module.stem
            if stem in FORBIDDEN_NAMES or stem.startswith("test"):
                problems.append(f"{where}: a test module outside a testing/ package")
            tree = ast.parse(module.read_text(encoding="utf-8"), str(module))
            for node in ast.walk(tree):
                if not isinstance(node, ast.ClassDef):
                    continue
                named = TEST_CLASS.match(node.name) or node.name in KNOWN_SERVERS
                if named and (rel.as_posix(), node.name) not in ALLOWED:
                    problems.append(f"{where}: class {node.name} outside a testing/ package")
    return problems


def test_no_test_server_or_simulator_outside_a_testing_package() -> None:
    problems = misplaced(ROOT)
    assert not problems, "move into the distribution's testing/ package:\n" + "\n".join(problems)


def test_each_shipped_package_has_its_testing_room() -> None:
    """Core and every plugin keep their test infrastructure in a ``testing`` package."""
    packages = [ROOT / "core" / "src" / "camgate"]
    packages += [p for p in sorted((ROOT / "plugins").glob("*/src/*")) if p.is_dir()]
    assert packages
    for package in packages:
        assert (package / "testing" / "__init__.py").is_file(), f"{package}: no testing/"


def test_the_check_finds_each_kind_of_misplaced_test_infrastructure(tmp_path: Path) -> None:
    """The rules have teeth: a plugin with a test server at its top level, a simulator class in
    its adapter module and a copy of a known server is reported; its testing/ package is not."""
    package = tmp_path / "plugins" / "acme" / "src" / "camgate_acme"
    (package / "testing").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "testserver.py").write_text("X = 1\n")
    (package / "test_helpers.py").write_text("")
    (package / "adapter.py").write_text("class AcmeSimulator:\n    pass\n")
    (package / "relay.py").write_text("class Outer:\n    class FakeCamera:\n        pass\n")
    (package / "server.py").write_text("class RtspTestServer:\n    pass\n")
    (package / "product.py").write_text("class Simulator:\n    pass\n")
    (package / "testing" / "server.py").write_text("class AcmeTestServer:\n    pass\n")
    (package / "testing" / "simulator.py").write_text("class AcmeSimulator:\n    pass\n")
    prefix = "plugins/acme/src/camgate_acme"
    assert sorted(misplaced(tmp_path)) == [
        f"{prefix}/adapter.py: class AcmeSimulator outside a testing/ package",
        f"{prefix}/product.py: class Simulator outside a testing/ package",
        f"{prefix}/relay.py: class FakeCamera outside a testing/ package",
        f"{prefix}/server.py: class RtspTestServer outside a testing/ package",
        f"{prefix}/test_helpers.py: a test module outside a testing/ package",
        f"{prefix}/testserver.py: a test module outside a testing/ package",
    ]
