"""Plugin loading: entry points, the allow/block lists, and a broken plugin named in the error."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from camgate import hookimpl
from camgate.adapters import AdapterFactory, Capabilities
from camgate.errors import PluginError
from camgate.models import Verdict, Vote
from camgate.plugins import PluginHost


def _install_fake_dist(site: Path, name: str, module: str, source: str) -> None:
    """A real installed distribution (dist-info + module) on a directory we put on sys.path."""
    (site / f"{module}.py").write_text(textwrap.dedent(source))
    info = site / f"{name.replace('-', '_')}-1.2.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.2.3\n")
    (info / "entry_points.txt").write_text(f"[camgate]\n{module} = {module}\n")


def _run(site: Path, code: str, **env: str) -> subprocess.CompletedProcess[str]:
    import os

    environ = {k: v for k, v in os.environ.items() if not k.startswith("CAMGATE_")}
    environ["PYTHONPATH"] = str(site)
    environ.update(env)
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=environ, timeout=60
    )


@pytest.fixture
def site(tmp_path: Path) -> Path:
    _install_fake_dist(tmp_path, "camgate-broken", "camgate_broken", "import no_such_module\n")
    _install_fake_dist(
        tmp_path,
        "camgate-fake",
        "camgate_fake",
        """
        from camgate import hookimpl
        from camgate.adapters import AdapterFactory, Adapter, Capabilities

        @hookimpl
        def camgate_register_adapters(register):
            register(AdapterFactory(name="fake", create=lambda s: Adapter(),
                                    capabilities=Capabilities(snapshot=True)))
    """,
    )
    return tmp_path


LIST = "from camgate.plugins import PluginHost; print(sorted(PluginHost().adapters()))"


def test_a_broken_plugin_is_named_with_its_distribution_and_the_rescue(site: Path) -> None:
    out = _run(site, LIST)
    assert out.returncode != 0
    assert "plugin 'camgate_broken' (distribution camgate-broken) failed to import" in out.stderr
    assert "CAMGATE_DISABLE_PLUGINS=camgate_broken" in out.stderr


def test_block_list_rescues_the_install(site: Path) -> None:
    out = _run(site, LIST, CAMGATE_DISABLE_PLUGINS="camgate_broken")
    assert out.returncode == 0, out.stderr
    assert "'fake'" in out.stdout and "'rtsp'" in out.stdout


def test_allow_list_loads_only_what_it_names(site: Path) -> None:
    out = _run(site, LIST, CAMGATE_LOAD_PLUGINS="camgate_fake")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "['fake']"
    out = _run(site, LIST, CAMGATE_LOAD_PLUGINS="")
    assert out.stdout.strip() == "[]"


def test_cli_plugins_json_reports_distribution_and_version(site: Path) -> None:
    code = "import sys; from camgate.cli import main; sys.exit(main(['plugins', '--json']))"
    out = _run(site, code, CAMGATE_DISABLE_PLUGINS="camgate_broken")
    import json

    listed = {a["name"]: a for a in json.loads(out.stdout)}
    assert listed["fake"]["distribution"] == "camgate-fake"
    assert listed["fake"]["version"] == "1.2.3"
    assert listed["fake"]["capabilities"] == ["snapshot"]
    assert listed["rtsp"]["capabilities"] == ["live", "snapshot"]


def test_installed_rtsp_plugin_is_found() -> None:
    host = PluginHost(environ={})
    assert host.adapter("rtsp").distribution == "camgate-rtsp"
    assert any(p.name == "rtsp" and not p.builtin for p in host.plugins())


def test_duplicate_adapter_names_and_unknown_adapters_are_errors() -> None:
    class Twice:
        @hookimpl
        def camgate_register_adapters(self, register: object) -> None:
            factory = AdapterFactory(
                name="x",
                create=lambda s: None,  # type: ignore[arg-type,return-value]
                capabilities=Capabilities(),
            )
            register(factory)  # type: ignore[operator]
            register(factory)  # type: ignore[operator]

    host = PluginHost(builtins={"twice": Twice()}, entry_points=False)
    with pytest.raises(PluginError, match="registered twice"):
        host.adapters()
    host.unregister("twice")
    with pytest.raises(PluginError, match=r"no adapter named 'nope' \(installed: none\)"):
        host.adapter("nope")


def test_a_hook_implementation_without_a_spec_is_refused() -> None:
    class Typo:
        @hookimpl
        def camgate_consent_vot(self, ctx: object) -> None: ...

    with pytest.raises(PluginError, match="does not have"):
        PluginHost(builtins={"typo": Typo()}, entry_points=False)


def test_votes_come_back_in_registration_order() -> None:
    class P:
        def __init__(self, name: str) -> None:
            self.name = name

        @hookimpl
        def camgate_consent_vote(self, ctx: object) -> list[Vote]:
            return [Vote(self.name, Verdict.ALLOW, "a"), Vote(self.name, Verdict.ABSTAIN, "b")]

    host = PluginHost(builtins={"p1": P("one"), "p2": P("two")}, entry_points=False)
    votes = host.consent_votes(ctx=None)  # type: ignore[arg-type]
    assert [(v.policy, v.reason) for v in votes] == [
        ("one", "a"),
        ("one", "b"),
        ("two", "a"),
        ("two", "b"),
    ]


def test_a_policy_returning_garbage_is_a_plugin_error() -> None:
    class Bad:
        @hookimpl
        def camgate_consent_vote(self, ctx: object) -> object:
            return ["yes"]

    host = PluginHost(builtins={"bad": Bad()}, entry_points=False)
    with pytest.raises(PluginError, match="must return Vote"):
        host.consent_votes(ctx=None)  # type: ignore[arg-type]


def test_a_plugin_raising_while_registering_adapters_names_the_rescue(tmp_path: Path) -> None:
    """`camgate plugins` says which plugin broke and how to start without it, no traceback."""
    _install_fake_dist(
        tmp_path,
        "camgate-raises",
        "camgate_raises",
        """
        from camgate import hookimpl

        @hookimpl
        def camgate_register_adapters(register):
            raise RuntimeError("vendor bug")
    """,
    )
    code = "import sys; from camgate.cli import main; sys.exit(main(['plugins']))"
    out = _run(tmp_path, code)
    assert out.returncode != 0
    assert "Traceback" not in out.stderr, out.stderr
    assert "plugin 'camgate_raises' (distribution camgate-raises)" in out.stderr
    assert "RuntimeError: vendor bug" in out.stderr
    assert "CAMGATE_DISABLE_PLUGINS=camgate_raises" in out.stderr
