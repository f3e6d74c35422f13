"""One test per hook: a plugin written in the test implements it, is registered on a real gate
(or plugin host), and the test checks when it is called and what it receives or changes.

``tests/meta/test_hooks.py`` fails when a hook of ``camgate.hookspecs`` has no
``test_hook_<hook>`` here (or anywhere under the test folders) implementing it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
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
from camgate.errors import PluginError
from camgate.geofence import Disc
from camgate.notify import OwnerNotice
from camgate.plugins import PluginHost
from camgate_rtsp.plugin import FACTORY, RtspSimulator

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


def test_hook_camgate_simulator() -> None:
    made: list[tuple[str, int]] = []

    class Vendor:
        @hookimpl
        def camgate_simulator(self, adapter: str, count: int) -> RtspSimulator | None:
            made.append((adapter, count))
            return RtspSimulator(count) if adapter == "tv" else None

    host = PluginHost(builtins={"vendor": Vendor()}, entry_points=False)
    with pytest.raises(PluginError, match="no plugin provides a simulator for adapter 'other'"):
        host.simulator("other", 1)
    simulator = host.simulator("tv", 2)
    assert made == [("other", 1), ("tv", 2)]
    with simulator:  # a real server: both cameras answer
        assert len(simulator.sources) == 2
        assert all(s.startswith("rtsp://127.0.0.1:") for s in simulator.sources)


def test_hook_camgate_conformance_target() -> None:
    asked: list[tuple[str, Mapping[str, Any] | None]] = []
    target = object()

    class Vendor:
        @hookimpl
        def camgate_conformance_target(
            self, adapter: str, config: Mapping[str, Any] | None
        ) -> object | None:
            asked.append((adapter, config))
            return target if adapter == "tv" else None

    host = PluginHost(builtins={"vendor": Vendor()}, entry_points=False)
    config = {"sources": ["rtsp://192.0.2.1/one"], "settings": {}}
    assert host.conformance_target("tv", None) is target
    assert host.conformance_target("tv", config) is target
    assert host.conformance_target("other", None) is None
    assert asked == [("tv", None), ("tv", config), ("other", None)]


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
