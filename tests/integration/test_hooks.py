"""One test per hook: a plugin written in the test implements it, is registered on a real gate
(or plugin host), and the test checks when it is called and what it receives or changes.

``tests/meta/test_hooks.py`` fails when a hook of ``camgate.hookspecs`` has no
``test_hook_<hook>`` here (or anywhere under the test folders) implementing it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio
import attrs
import pytest
from camgate import (
    AccessDenied,
    Camera,
    ConsentRevoked,
    Decision,
    EndReason,
    Grant,
    Incident,
    PolicyContext,
    Verdict,
    Vote,
    hookimpl,
)
from camgate.adapters import Adapter, AdapterFactory, Capabilities, LiveStream
from camgate.cli import _core_command
from camgate.commands import Command
from camgate.errors import PluginError, ValidationError
from camgate.geofence import Disc
from camgate.notify import OwnerNotice
from camgate.plugins import PluginHost
from camgate.targets import Target
from camgate_rtsp.plugin import FACTORY
from camgate_rtsp.testing import RtspSimulator
from camgate_rtsp.testing.target import RtspTarget

from .conftest import HOME, World

pytestmark = pytest.mark.anyio

MASK = [[(0.0, 0.0), (0.5, 0.0), (0.5, 0.5), (0.0, 0.5)]]


# -------------------------------------------------------------------------------- adapters


def test_hook_camgate_register_adapters() -> None:
    tv = attrs.evolve(FACTORY, name="tv", distribution="", version="")

    class Vendor:
        @hookimpl
        def camgate_register_adapters(self, register: Any) -> None:
            register(tv)

    host = PluginHost(builtins={"vendor": Vendor()}, entry_points=False)
    factory = host.adapter("tv")
    assert factory.create is tv.create and factory.capabilities == tv.capabilities
    assert factory.distribution == "camgate"  # filled in by the host from the plugin's info
    host.register(Vendor(), "again")
    with pytest.raises(PluginError, match="'tv' is registered twice"):
        host.adapters()


def test_hook_camgate_register_adapters_with_simulator_and_target() -> None:
    """The factory carries the simulator and the conformance target: the host answers its
    lookups from them, for the registered adapter only."""
    made: list[int] = []
    asked: list[Mapping[str, Any] | None] = []

    def simulator(count: int) -> RtspSimulator:
        made.append(count)
        return RtspSimulator(count)

    def target(config: Mapping[str, Any] | None) -> Target | None:
        asked.append(config)
        return None if config is not None else RtspTarget()

    tv = attrs.evolve(FACTORY, name="tv", simulator=simulator, conformance_target=target)
    bare = attrs.evolve(FACTORY, name="bare", simulator=None, conformance_target=None)

    class Vendor:
        @hookimpl
        def camgate_register_adapters(self, register: Any) -> None:
            register(tv)
            register(bare)

    host = PluginHost(builtins={"vendor": Vendor()}, entry_points=False)
    assert host.has_simulator("tv") and host.has_conformance_target("tv")
    assert not host.has_simulator("bare") and not host.has_conformance_target("bare")
    assert not host.has_simulator("other") and not host.has_conformance_target("other")
    assert made == [] and asked == []  # asking whether builds nothing
    with pytest.raises(PluginError, match="adapter 'bare' registers no simulator"):
        host.simulator("bare", 1)
    with pytest.raises(PluginError, match=r"no adapter named 'other' \(installed: bare, tv\)"):
        host.simulator("other", 1)
    config = {"sources": ["rtsp://192.0.2.1/one"], "settings": {}}
    assert isinstance(host.conformance_target("tv", None), RtspTarget)
    assert host.conformance_target("tv", config) is None  # a settings file: left to the suite
    assert host.conformance_target("bare", None) is None
    assert host.conformance_target("other", None) is None
    assert asked == [None, config]
    simulator_ = host.simulator("tv", 2)
    assert made == [2]
    with simulator_:  # a real server: both cameras answer
        assert len(simulator_.sources) == 2
        assert all(s.startswith("rtsp://127.0.0.1:") for s in simulator_.sources)


def test_hook_camgate_register_adapters_refuses_what_a_factory_builds_wrong() -> None:
    """A simulator that is no Simulator, and a target lacking parts of the protocol, are
    PluginErrors naming the adapter."""
    odd = attrs.evolve(
        FACTORY,
        name="odd",
        simulator=lambda count: object(),
        conformance_target=lambda config: object(),
    )

    class Vendor:
        @hookimpl
        def camgate_register_adapters(self, register: Any) -> None:
            register(odd)

    host = PluginHost(builtins={"vendor": Vendor()}, entry_points=False)
    with pytest.raises(PluginError, match="adapter 'odd'.s simulator factory returned object"):
        host.simulator("odd", 1)
    with pytest.raises(PluginError, match="target for 'odd' .object. lacks parts"):
        host.conformance_target("odd", None)


class _LiveOnly(Adapter):
    """Serves live video only: open_live is its own, snapshot and recorded are the base's."""

    async def open_live(self, camera: Camera, grant: Grant) -> LiveStream:
        raise NotImplementedError

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> _LiveOnly:
        return cls()


def _built(settings: Mapping[str, Any]) -> _LiveOnly:
    return _LiveOnly()


@pytest.mark.parametrize(
    ("capabilities", "refused"),
    [
        (
            Capabilities(live=True, snapshot=True),
            "'snapshot': _LiveOnly does not override Adapter.snapshot()",
        ),
        (
            Capabilities(live=True, recorded=True),
            "'recorded': _LiveOnly does not override Adapter.recorded()",
        ),
        (Capabilities(audio=True), "'audio': audio rides in a stream"),
        (Capabilities(live=True, audio=True, keeps_connections_open=True), None),
    ],
)
@pytest.mark.parametrize("create", [_LiveOnly, _LiveOnly.from_settings, _built])
def test_hook_camgate_register_adapters_refuses_an_unimplemented_capability(
    capabilities: Capabilities, refused: str | None, create: Any
) -> None:
    """The host refuses, when the adapters are collected, a factory declaring a capability its
    adapter class does not implement; the class is known from ``create`` (the class, a
    classmethod of it, or a function annotated to return it)."""
    factory = AdapterFactory(name="cam", create=create, capabilities=capabilities)

    class Vendor:
        @hookimpl
        def camgate_register_adapters(self, register: Any) -> None:
            register(factory)

    host = PluginHost(builtins={"vendor": Vendor()}, entry_points=False)
    if refused is None:
        assert host.adapter("cam").capabilities == capabilities
        return
    with pytest.raises(PluginError) as caught:
        host.adapters()
    message = str(caught.value)
    assert "adapter 'cam' (plugin 'vendor', distribution camgate)" in message
    assert refused in message


def test_shipped_adapters_implement_what_they_declare() -> None:
    """Every installed adapter's class is known to the check and passes it."""
    host = PluginHost(environ={})
    for factory in host.adapters().values():
        assert factory.adapter_class is not None, factory.name
        assert factory.unimplemented() == {}, factory.name


# -------------------------------------------------------------------------------- consent


async def test_hook_camgate_consent_vote(world: World) -> None:
    seen: list[PolicyContext] = []

    class NoSnapshots:
        @hookimpl
        def camgate_consent_vote(self, ctx: PolicyContext) -> Vote:
            seen.append(ctx)
            if ctx.request.scope == "snapshot":
                return Vote("test.no-snapshots", Verdict.DENY, "no stills in this city")
            return Vote("test.no-snapshots", Verdict.ABSTAIN, "not a still")

    world.gate.host.register(NoSnapshots(), "no-snapshots")
    await world.grant("live")
    with pytest.raises(AccessDenied) as refused:
        await world.grant("snapshot")
    assert "test.no-snapshots: no stills in this city" in refused.value.decision.reasons
    ctx = seen[-1]
    assert ctx.camera.id == "cam-a" and ctx.incident.id == world.incident.id
    assert ctx.consent is not None and ctx.owner is not None and ctx.owner.id == "alice"
    assert ctx.distance_m == pytest.approx(0.0, abs=1.0)


# -------------------------------------------------------------------------------- geofence


async def test_hook_camgate_geofence_vote(world: World) -> None:
    seen: list[tuple[Incident, Camera, datetime]] = []

    class Exclusion:
        @hookimpl
        def camgate_geofence_vote(self, incident: Incident, camera: Camera, now: datetime) -> Vote:
            seen.append((incident, camera, now))
            return Vote("test.exclusion", Verdict.DENY, "camera is on a school's grounds")

    await world.grant("live")
    world.gate.host.register(Exclusion(), "exclusion")
    with pytest.raises(AccessDenied) as refused:
        await world.grant("live")
    assert "test.exclusion: camera is on a school's grounds" in refused.value.decision.reasons
    incident, camera, now = seen[-1]
    assert (incident.id, camera.id) == (world.incident.id, "cam-a") and now.tzinfo is not None


async def test_hook_camgate_geofence_extent(world: World) -> None:
    far = HOME.__class__(HOME.lat + 0.05, HOME.lon)  # about 5.5 km north: outside the radius
    world.gate.add_camera(
        Camera(
            id="cam-far",
            adapter="rtsp",
            source="rtsp://127.0.0.1:1/x",
            owner_id="alice",
            position=far,
        )
    )
    asked: list[str] = []

    class Corridor:
        @hookimpl
        def camgate_geofence_extent(self, incident: Incident) -> list[Disc]:
            asked.append(incident.id)
            return [Disc(far, 100.0)]

        @hookimpl
        def camgate_geofence_vote(self, incident: Incident, camera: Camera, now: datetime) -> Vote:
            if camera.id == "cam-far":
                return Vote("test.corridor", Verdict.ALLOW, "on the escape route")
            return Vote("test.corridor", Verdict.ABSTAIN, "not on the route")

    listed = {c.id for c, _votes in world.gate.reachable(world.incident.id)}
    assert "cam-far" not in listed  # no extent reaches it: never even voted on
    world.gate.host.register(Corridor(), "corridor")
    listed = {c.id for c, _votes in world.gate.reachable(world.incident.id)}
    assert {"cam-a", "cam-far"} <= listed and world.incident.id in asked


# -------------------------------------------------------------------------------- events


class _Events:
    """What an observer saw, and the audit log's kinds at each moment it was called."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.calls: list[tuple[str, Any]] = []

    def kinds(self) -> list[str]:
        return [r.kind for r in self.world.gate.audit.records()]


async def test_hook_camgate_decision_made(world: World) -> None:
    events = _Events(world)

    class Observer:
        @hookimpl
        def camgate_decision_made(self, decision: Decision) -> None:
            durable = [r for r in world.gate.audit.records("decision")]
            events.calls.append((decision, durable[-1].body["decision"]))
            raise RuntimeError("an observer's failure changes nothing")

    world.gate.host.register(Observer(), "observer")
    signed = await world.grant("live")
    decision, recorded = events.calls[-1]
    assert decision.allowed and decision.request_id == signed.grant.request_id
    assert recorded == decision.to_json()  # already in the log when observed


async def test_hook_camgate_access_started(world: World) -> None:
    seen: list[tuple[Grant, Camera, list[str], int]] = []

    class Observer:
        @hookimpl
        def camgate_access_started(self, grant: Grant, camera: Camera) -> None:
            media = sum(1 for e in world.server.requests() if e.media)
            seen.append((grant, camera, [r.kind for r in world.gate.audit.records()], media))

    world.gate.host.register(Observer(), "observer")
    before = sum(1 for e in world.server.requests() if e.media)
    signed = await world.grant("live")
    async with await world.gate.edge.open_live("cam-a", signed) as stream:
        await stream.__anext__()
    grant, camera, kinds, media = seen[-1]
    assert (grant.id, camera.id) == (signed.grant.id, "cam-a")
    assert kinds[-1] == "access.start"  # durable before the observer is told
    assert media == before  # and the camera not yet asked for anything


async def _closed(world: World) -> None:
    async with await world.gate.edge.open_live("cam-a", await world.grant()) as stream:
        await stream.__anext__()


async def _completed(world: World) -> None:
    await world.gate.edge.snapshot("cam-a", await world.grant("snapshot"))


async def _expired(world: World) -> None:
    stream = await world.gate.edge.open_live("cam-a", await world.grant(duration_s=1.0))
    with anyio.fail_after(20):
        async for _packet in stream:
            pass


async def _revoked(world: World) -> None:
    stream = await world.gate.edge.open_live("cam-a", await world.grant())
    await stream.__anext__()
    await world.gate.revoke("alice")
    with pytest.raises(ConsentRevoked):
        await stream.__anext__()


async def _incident_closed(world: World) -> None:
    stream = await world.gate.edge.open_live("cam-a", await world.grant())
    await stream.__anext__()
    world.gate.close_incident(world.incident.id)
    with anyio.fail_after(10):
        async for _packet in stream:
            pass


async def _masks_changed(world: World) -> None:
    async with await world.gate.edge.open_live("cam-a", await world.grant()) as stream:
        await stream.__anext__()
        await world.gate.set_masks("alice", "cam-a", MASK)
        with anyio.fail_after(10):
            assert [p async for p in stream] == []


ENDINGS = {
    EndReason.CLOSED: _closed,
    EndReason.COMPLETED: _completed,
    EndReason.EXPIRED: _expired,
    EndReason.REVOKED: _revoked,
    EndReason.INCIDENT_CLOSED: _incident_closed,
    EndReason.MASKS_CHANGED: _masks_changed,
}


@pytest.mark.parametrize("reason", list(ENDINGS), ids=str)
async def test_hook_camgate_access_ended(world: World, reason: EndReason) -> None:
    seen: list[tuple[Grant, Camera, Any, int, int, dict[str, Any]]] = []

    class Observer:
        @hookimpl
        def camgate_access_ended(
            self, grant: Grant, camera: Camera, reason: Any, packets: int, nbytes: int
        ) -> None:
            end = [r.body for r in world.gate.audit.records("access.end")][-1]
            seen.append((grant, camera, reason, packets, nbytes, end))

    world.gate.host.register(Observer(), "observer")
    await ENDINGS[reason](world)
    ((grant, camera, said, packets, nbytes, record),) = seen
    assert said is reason and said == reason.value  # the member, equal to its text
    assert camera.id == "cam-a" and record["grant"] == grant.id
    assert record["reason"] == reason and packets == record["packets"] >= 1
    assert nbytes == record["bytes"] > 0


async def test_hook_camgate_consent_revoked(world: World) -> None:
    seen: list[tuple[str, Sequence[str], datetime, list[str], int]] = []

    class Observer:
        @hookimpl
        def camgate_consent_revoked(
            self, owner_id: str, camera_ids: Sequence[str], at: datetime
        ) -> None:
            kinds = [r.kind for r in world.gate.audit.records()]
            seen.append((owner_id, camera_ids, at, kinds, len(world.gate.edge.live_streams())))

    world.gate.host.register(Observer(), "observer")
    stream = await world.gate.edge.open_live("cam-a", await world.grant())
    await stream.__anext__()
    assert await world.gate.revoke("alice") == ["cam-a"]
    ((owner, cameras, at, kinds, live),) = seen
    assert (owner, list(cameras), at.tzinfo is not None) == ("alice", ["cam-a"], True)
    assert "consent.revoked" in kinds and live == 0  # durable, and every stream ended
    assert stream.stats().end_reason == EndReason.REVOKED


async def test_hook_camgate_notify_owner(world: World) -> None:
    told: list[OwnerNotice] = []

    class Pager:
        @hookimpl
        def camgate_notify_owner(self, notice: OwnerNotice) -> bool:
            told.append(notice)
            return True

    world.gate.host.register(Pager(), "pager")
    signed = await world.grant("snapshot")
    notice = told[-1]
    assert (notice.event, notice.owner_id, notice.camera_id) == ("granted", "alice", "cam-a")
    assert notice.request_id == signed.grant.request_id and notice.witness is not None
    assert "officer-7" in notice.summary()
    # Nobody accepts: the owner cannot be told, so no grant is issued.
    world.gate.host.unregister("pager")
    world.gate.host.unregister("camgate.outbox")
    with pytest.raises(PluginError):
        await world.grant("snapshot")
    assert [r.kind for r in world.gate.audit.records()][-1] == "owner.notify_failed"


# -------------------------------------------------------------------------------- commands


def test_hook_camgate_register_commands() -> None:
    """The host collects every plugin's commands in plugin order and refuses a clash with
    core's names, a name two plugins register, and what is not a Command."""
    ran: list[argparse.Namespace] = []

    def configure(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--name", required=True)
        parser.set_defaults(func=ran.append)

    hello = Command(name="hello", help="say hello", configure=configure)

    class Vendor:
        @hookimpl
        def camgate_register_commands(self, register: Any) -> None:
            register(hello)

    host = PluginHost(builtins={"vendor": Vendor()}, entry_points=False)
    assert host.commands() == [hello]
    with pytest.raises(PluginError, match="plugin 'vendor' registers the command 'hello', which"):
        host.commands(reserved={"plugins", "hello"})
    parser = argparse.ArgumentParser()
    hello.configure(parser)
    args = parser.parse_args(["--name", "x"])
    args.func(args)
    assert [a.name for a in ran] == ["x"]

    host.register(Vendor(), "again")
    with pytest.raises(
        PluginError, match="plugins 'vendor' and 'again' both register the command 'hello'"
    ):
        host.commands()
    host.unregister("again")

    class Sloppy:
        @hookimpl
        def camgate_register_commands(self, register: Any) -> None:
            register("hello")

    host.register(Sloppy(), "sloppy")
    with pytest.raises(PluginError, match="plugin 'sloppy': register.. takes a camgate.commands"):
        host.commands()
    with pytest.raises(ValidationError, match="a command name is lowercase"):
        Command(name="Bad Name", help="", configure=configure)


def _installed(site: Path, module: str, source: str) -> dict[str, str]:
    """A distribution ``module`` installed in ``site`` (dist-info with a ``camgate`` entry
    point); the environment that puts it on the path of a ``camgate`` process."""
    (site / f"{module}.py").write_text(textwrap.dedent(source))
    info = site / f"{module}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[camgate]\n{module} = {module}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAMGATE_")}
    return env | {"PYTHONPATH": str(site)}


def _camgate(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "camgate.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_hook_camgate_register_commands_in_the_cli(tmp_path: Path) -> None:
    """An installed plugin's command runs as ``camgate NAME``, its errors as core's are; one
    that takes a core command's name is left out with the reason, and core keeps working."""
    env = _installed(
        tmp_path,
        "camgate_hello",
        """
        import json
        from camgate import hookimpl
        from camgate.commands import Command
        from camgate.errors import ValidationError

        def hello(args):
            if args.name == "nobody":
                raise ValidationError("nobody is not a name")
            print(json.dumps({"hello": args.name}))
            return 0

        def configure(parser):
            parser.add_argument("name")
            parser.set_defaults(func=hello)

        @hookimpl
        def camgate_register_commands(register):
            register(Command(name="hello", help="greet someone", configure=configure))
        """,
    )
    done = _camgate(env, "hello", "world")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"hello": "world"}
    assert "greet someone" in _camgate(env, "--help").stdout
    done = _camgate(env, "hello", "nobody")
    assert (done.returncode, done.stderr) == (1, "camgate: nobody is not a name\n")

    env = _installed(
        tmp_path,
        "camgate_thief",
        """
        from camgate import hookimpl
        from camgate.commands import Command

        @hookimpl
        def camgate_register_commands(register):
            register(Command(name="revoke", help="not yours", configure=lambda p: None))
        """,
    )
    done = _camgate(env, "--help")
    assert done.returncode == 0
    assert "revoke every consent of an owner" in done.stdout and "not yours" not in done.stdout
    assert "plugin 'camgate_thief' registers the command 'revoke'" in done.stderr
    # A core command is parsed without loading any plugin: no word about the thief.
    done = _camgate(env, "--db", str(tmp_path / "x.db"), "revoke", "--help")
    assert done.returncode == 0 and "Revoke every consent" in done.stdout
    assert done.stderr == ""


def test_core_commands_are_parsed_without_loading_plugins() -> None:
    core = {"revoke", "audit"}
    assert _core_command(["--db", "x.db", "audit", "verify"], core)
    assert _core_command(["--rules=r.toml", "--audit-dsn", "postgresql://h/d", "revoke"], core)
    assert not _core_command(["conformance", "rtsp"], core)
    assert not _core_command(["--help"], core)
    assert not _core_command(["--db", "x.db"], core)
    assert not _core_command([], core)


def test_conformance_and_onvif_commands_come_from_their_plugins() -> None:
    """``camgate conformance`` and ``camgate onvif`` are the plugins' (through the hook); with
    the suite's plugin left out, ``camgate conformance`` says how to install it."""
    from camgate_conformance.plugin import COMMAND as CONFORMANCE
    from camgate_onvif.plugin import COMMAND as ONVIF

    host = PluginHost(environ={})
    assert {CONFORMANCE, ONVIF} <= set(host.commands())
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAMGATE_")}
    done = _camgate(env | {"CAMGATE_DISABLE_PLUGINS": "conformance"}, "conformance", "rtsp")
    assert done.returncode == 1
    assert "the conformance suite is not installed: pip install camgate-conformance" in (
        done.stderr
    )
    done = _camgate(env, "conformance", "--help")
    assert done.returncode == 0 and "--budget-slack" in done.stdout
    done = _camgate(env, "onvif", "probe", "--help")
    assert done.returncode == 0 and "CAMGATE_ONVIF_PASSWORD" in done.stdout
