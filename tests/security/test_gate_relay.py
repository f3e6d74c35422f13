"""Issue 12, item 3: the relay is no back door (attacker: a careless embedder, or code of the host
process that holds a Gate).

Before: ``gate.edge.relay.upstream(cam).cached_packets`` handed out the GOP cache's keyframe, and
``gate.edge.relay.subscribe(cam, opener, t)`` live packets with no grant and no ``access.start``,
still flowing after the officer's grant expired. Now no public attribute of the Gate or its Edge
returns the relay, an upstream, cached packets or a subscription (``relay_statistics()`` is an
immutable snapshot without packets), and a relay subscription is made for a verified live grant
and ends itself at its expiry. Against a real GStreamer RTSP server.

Review finding F3 (attacker: a careless embedder's code, or a camera owner's terms ignored):
before, the embedder's transform (``Edge.configure_relay(..., transform_factory=...)``) ran in the
relay on every packet, so embedder code received live packets with no grant and no
``access.start`` (for an ask-first owner too); ``Gate.report_incident`` opened the warm cache's
upstream for any camera whose consent included live, ignoring ask-first, quiet hours and the end
date; and a legitimate stream reached ``stream._upstream._up._subscribe(0, lambda: False)``, a
subscription that never expires. Now the embedder's transform runs per consumer inside its
GuardedStream after the grant check; the cache is opened only when the gate's own decision
pre-authorises live view now; and a subscription can only be made for an unexpired live grant.
"""

from __future__ import annotations

import inspect
import time
import typing
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import attrs
import pytest
from camgate import Camera, ConsentTerms, Gate, GeoPoint, Owner, Waiver
from camgate.adapters import LiveStream
from camgate.edge import Edge, GuardedStream
from camgate.errors import AnswerPending, GrantExpired, GrantMismatch
from camgate.grants import SignedGrant
from camgate.models import Grant, MediaPacket
from camgate.relay import Relay, RelaySettings, Subscription, Upstream
from camgate_rtsp.adapter import RtspAdapter, RtspSettings
from camgate_rtsp.testing.server import Mount, RtspTestServer, serving

pytestmark = pytest.mark.anyio
HOME = GeoPoint(32.2988, -90.1848)


@pytest.fixture(scope="module")
def rtsp() -> Iterator[RtspTestServer]:
    with serving([Mount("/cam1", gop_frames=30), Mount("/cam2", gop_frames=30)]) as server:
        yield server


@pytest.fixture
async def gate(tmp_path: Path, rtsp: RtspTestServer) -> AsyncIterator[Gate]:
    gate = Gate.open(tmp_path / "g.db", relay_settings=RelaySettings(gop_cache=True))
    waiver = gate.publish_waiver(Waiver("w1", "I agree."))
    gate.add_owner(Owner("alice", "Alice"))
    gate.add_camera(Camera("cam-a", "rtsp", rtsp.url("/cam1"), "alice", HOME))
    gate.enrol(
        "alice",
        ["cam-a"],
        waiver_version="w1",
        waiver_sha256=waiver.sha256,
        terms=ConsentTerms(scopes=["live"]),
    )
    try:
        yield gate
    finally:
        await gate.aclose()


FORBIDDEN = (Relay, Upstream, Subscription, MediaPacket)


def _leaks(value: Any, depth: int = 0) -> list[str]:
    """Where ``value`` holds a relay, an upstream, a subscription or a packet (a few levels)."""
    if isinstance(value, FORBIDDEN):
        return [type(value).__name__]
    if depth > 3:
        return []
    if attrs.has(type(value)):
        return [
            f"{a.name}.{leak}" for a in attrs.fields(type(value)) for leak in
            _leaks(getattr(value, a.name), depth + 1)
        ]  # fmt: skip
    if isinstance(value, tuple | list | set | frozenset):
        return [leak for item in value for leak in _leaks(item, depth + 1)]
    if isinstance(value, dict):
        return [leak for item in value.values() for leak in _leaks(item, depth + 1)]
    return []


async def _warm(gate: Gate) -> None:
    gate.report_incident("burglary", HOME, radius_m=300)
    with anyio.fail_after(15):
        while True:
            up = gate.edge.relay_statistics().upstream("cam-a")
            if up is not None and up.cached >= 5:
                return
            await anyio.sleep(0.05)


async def test_no_public_attribute_hands_out_the_relay_or_its_packets(gate: Gate) -> None:
    # The paths of the issue: gate.edge.relay.upstream(cam).cached_packets, .subscribe(...).
    for name in ("relay", "upstream", "upstreams", "subscribe", "cached_packets"):
        assert not hasattr(gate.edge, name), f"gate.edge.{name} is public"
        assert not hasattr(gate, name), f"gate.{name} is public"
    await _warm(gate)  # the GOP cache holds a keyframe now: nothing public may reach it
    for owner in (gate, gate.edge):
        for name in dir(owner):
            if name.startswith("_"):
                continue
            value = getattr(owner, name)
            if callable(value):
                continue  # methods: the ones returning media need a token (below)
            assert not _leaks(value), f"{type(owner).__name__}.{name}: {_leaks(value)}"
    stats = gate.edge.relay_statistics()
    assert stats.upstream("cam-a") is not None and not _leaks(stats)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        stats.upstream("cam-a").cached = 0  # type: ignore[misc, union-attr]
    # Nothing reached the camera's packets without a grant: no access was recorded.
    assert not list(gate.audit.records("access.start"))


async def test_a_relay_subscription_needs_a_live_grant_and_ends_at_its_expiry(
    rtsp: RtspTestServer,
) -> None:
    camera = Camera("cam-a", "rtsp", rtsp.url("/cam1"), "alice", HOME)
    now = datetime.now(UTC)
    grant = Grant(
        id="grt-1",
        request_id="req-1",
        camera_id="cam-a",
        incident_id="inc-1",
        scope="live",
        issued_at=now,
        expires_at=now + timedelta(seconds=3),
        consent_id="con-1",
    )
    adapter = RtspAdapter(RtspSettings())
    relay = Relay(RelaySettings())

    async def opener() -> Any:
        return await adapter.open_live(camera, grant)

    with pytest.raises(GrantMismatch):
        relay.subscribe(camera, attrs.evolve(grant, camera_id="cam-b"), opener, time.monotonic())
    old = attrs.evolve(grant, issued_at=now - timedelta(minutes=2), expires_at=now)
    with pytest.raises(GrantExpired):
        relay.subscribe(camera, old, opener, time.monotonic())
    sub = relay.subscribe(camera, grant, opener, time.monotonic())
    late: list[float] = []
    got = 0
    try:
        with anyio.fail_after(20):
            await sub.wait_open()
            async for _packet in sub:  # the upstream goes on; this consumer must not
                got += 1
                past = (datetime.now(UTC) - grant.expires_at).total_seconds()
                if past > 0.1:  # (the relay times expiry on the monotonic clock: a hair apart)
                    late.append(past)
    finally:
        await sub.aclose()
        await relay.aclose()
        await adapter.aclose()
    assert got > 10  # it did flow while the grant held...
    assert sub.expired
    assert not late, f"{len(late)} packets handed over after the grant expired"


# ---------------------------------------------------------------- F3: the embedder's transform


class Spy:
    """An embedder's transform that records every packet it is handed (and passes it on)."""

    def __init__(self, camera: Camera, seen: list[tuple[str, int]]) -> None:
        self.camera = camera
        self.seen = seen

    def feed(self, packet: MediaPacket) -> list[MediaPacket]:
        self.seen.append((self.camera.id, packet.pts or 0))
        return [packet]

    def flush(self) -> list[MediaPacket]:
        return []


def _enrol(gate: Gate, camera_id: str, path: str, rtsp: RtspTestServer, **terms: Any) -> None:
    """Add ``camera_id`` (the server's ``path``) for alice, enrolled for live under ``terms``."""
    waiver = gate.store.get_waiver("w1")
    gate.add_camera(Camera(camera_id, "rtsp", rtsp.url(path), "alice", HOME))
    gate.enrol(
        "alice",
        [camera_id],
        waiver_version="w1",
        waiver_sha256=waiver.sha256,
        terms=ConsentTerms(scopes=["live"], **terms),
    )


def _media(rtsp: RtspTestServer, path: str) -> list[str]:
    """The media requests (DESCRIBE, SETUP, PLAY) the real server saw for ``path``."""
    return [e.kind for e in rtsp.requests() if e.media and e.path == path]


async def _cached(gate: Gate, camera_id: str, n: int = 5) -> None:
    """Wait until the camera's warm cache holds ``n`` packets (its upstream is flowing)."""
    with anyio.fail_after(15):
        while True:
            up = gate.edge.relay_statistics().upstream(camera_id)
            if up is not None and up.cached >= n:
                return
            await anyio.sleep(0.05)


async def _until(condition: Callable[[], bool]) -> None:
    with anyio.fail_after(15):
        while True:
            if condition():
                return
            await anyio.sleep(0.05)


async def _take(stream: GuardedStream, n: int) -> list[MediaPacket]:
    out: list[MediaPacket] = []
    with anyio.fail_after(15):
        async for packet in stream:
            out.append(packet)
            if len(out) == n:
                break
    return out


async def test_the_embedders_transform_sees_no_packet_before_a_grant(
    gate: Gate, rtsp: RtspTestServer
) -> None:
    # The reviewer's relay_spy scenario: cam-a pre-authorised (its cache warms), cam-b ask-first.
    seen: list[tuple[str, int]] = []
    made: list[str] = []

    def factory(camera: Camera) -> Spy:
        made.append(camera.id)
        return Spy(camera, seen)

    gate.edge.configure_relay(RelaySettings(gop_cache=True), transform_factory=factory)
    _enrol(gate, "cam-b", "/cam2", rtsp, mode="ask")
    incident = gate.report_incident("burglary", HOME, radius_m=300)
    await _cached(gate, "cam-a")  # live packets flow into cam-a's cache: no grant yet
    assert seen == [] and made == [], f"embedder code saw {len(seen)} packets with no grant"
    assert not list(gate.audit.records("grant.issued"))

    # The officer's grant for cam-a: the transform is this consumer's, fed what it is served.
    grant = await gate.request_access(incident.id, "cam-a", "live", requested_by="officer-7")
    async with await gate.edge.open_live("cam-a", grant) as stream:
        served = await _take(stream, 10)
    assert made == ["cam-a"]
    assert [pts for _cam, pts in seen] == [p.pts or 0 for p in served]

    # cam-b's owner wants to be asked: nothing of cam-b reaches embedder code before their yes.
    with pytest.raises(AnswerPending) as held:
        await gate.request_access(
            incident.id, "cam-b", "live", requested_by="officer-7", wait=False
        )
    assert [c for c, _pts in seen if c == "cam-b"] == []
    assert gate.edge.relay_statistics().upstream("cam-b") is None
    assert _media(rtsp, "/cam2") == []  # the camera was never even asked for media
    await gate.answer(held.value.pending.request_id, True)
    token = await gate.wait_for_answer(held.value.pending.request_id)
    async with await gate.edge.open_live("cam-b", token) as stream:
        served = await _take(stream, 5)
    assert [pts for cam, pts in seen if cam == "cam-b"] == [p.pts or 0 for p in served]
    assert made == ["cam-a", "cam-b"]


# ---------------------------------------------------------------- F3: warm only if pre-authorised


def _quiet_now() -> dict[str, Any]:
    now = datetime.now(UTC)
    start, end = now - timedelta(hours=1), now + timedelta(hours=1)
    return {"quiet_hours": (f"{start:%H:%M}", f"{end:%H:%M}")}


@pytest.mark.parametrize("terms", ["ask-first", "quiet-hours", "ended"])
async def test_no_warm_cache_for_consent_not_preauthorised_now(
    gate: Gate, rtsp: RtspTestServer, terms: str
) -> None:
    # cam-a (pre-authorised, /cam1) is the control: its cache warming shows the incident's
    # warm-up ran; cam-b (/cam2) has consent to live view, but not pre-authorised right now.
    if terms == "ended":
        ends = datetime.now(UTC) + timedelta(seconds=1)
        _enrol(gate, "cam-b", "/cam2", rtsp, ends_at=ends)
        await _until(lambda: datetime.now(UTC) > ends)  # the owner's consent runs out
    else:
        _enrol(
            gate,
            "cam-b",
            "/cam2",
            rtsp,
            **({"mode": "ask"} if terms == "ask-first" else _quiet_now()),
        )
    before = len(_media(rtsp, "/cam2"))
    gate.report_incident("burglary", HOME, radius_m=300)
    await _cached(gate, "cam-a")
    plays = rtsp.requests()
    assert any(e.kind == "play" and e.path == "/cam1" for e in plays)
    assert gate.edge.relay_statistics().upstream("cam-b") is None
    assert _media(rtsp, "/cam2")[before:] == []  # no DESCRIBE, no PLAY: no connection at all
    warmed = [r.body["cameras"] for r in gate.audit.records("cache.warm")]
    assert warmed == [["cam-a"]]


async def test_a_warm_cache_ends_when_the_consent_does(gate: Gate, rtsp: RtspTestServer) -> None:
    # Pre-authorised now, for a few seconds more: the cache warms, and is dropped (with its
    # camera connection) at the end date the policies named, not at the incident's end.
    ends = datetime.now(UTC) + timedelta(seconds=4)
    _enrol(gate, "cam-b", "/cam2", rtsp, ends_at=ends)
    gate.report_incident("burglary", HOME, radius_m=300)
    await _cached(gate, "cam-b")
    await _until(lambda: gate.edge.relay_statistics().upstream("cam-b") is None)
    assert datetime.now(UTC) >= ends - timedelta(seconds=0.5)
    assert gate.edge.relay_statistics().upstream("cam-a") is not None  # the other stays warm


# ---------------------------------------------------------------- F3: methods that give packets

#: What hands out packets: a subscription, an adapter's stream, or packets themselves.
SOURCES = (Subscription, LiveStream, MediaPacket)


def _gives_packets(hint: Any) -> bool:
    """True when a return annotation is (or holds) a packet source."""
    if hint in SOURCES or (isinstance(hint, type) and issubclass(hint, Subscription)):
        return True
    return any(_gives_packets(arg) for arg in typing.get_args(hint))


def _needs_a_grant(fn: Any) -> bool:
    """True when ``fn`` takes the grant it serves (a verified Grant, or a token)."""
    hints = typing.get_type_hints(fn)
    return any(
        hints.get(name) in (Grant, str | SignedGrant) for name in inspect.signature(fn).parameters
    )


def _packet_givers(cls: type, *, private: bool) -> list[str]:
    """``cls``'s methods and properties that return a packet source without taking a grant."""
    found = []
    for name, member in inspect.getmembers(cls):
        if name.startswith("__") or (name.startswith("_") and not private):
            continue
        fn = member.fget if isinstance(member, property) else member
        if not callable(fn):
            continue
        try:
            ret = typing.get_type_hints(fn).get("return")
        except (NameError, TypeError):
            continue
        if ret is not None and _gives_packets(ret) and not _needs_a_grant(fn):
            found.append(f"{cls.__name__}.{name}")
    return found


async def test_no_method_reachable_from_public_objects_gives_packets_without_a_grant(
    gate: Gate, rtsp: RtspTestServer
) -> None:
    incident = gate.report_incident("burglary", HOME, radius_m=300)
    await _cached(gate, "cam-a")
    token = await gate.request_access(incident.id, "cam-a", "live", requested_by="officer-7")
    stream = await gate.edge.open_live("cam-a", token)
    try:
        # Public objects: the gate, its edge, their public attributes, and a granted stream.
        public: list[Any] = [gate, gate.edge, stream]
        for owner in (gate, gate.edge, stream):
            public += [
                getattr(owner, n)
                for n in dir(owner)
                if not n.startswith("_") and not callable(getattr(owner, n))
            ]
        # And what a legitimate stream holds privately (the reviewer's path): its subscription,
        # that subscription's upstream and the relay: no grant-less way to packets either.
        sub = stream._upstream
        assert isinstance(sub, Subscription)
        up = sub._up
        relay = up._relay
        classes = {type(o) for o in public if not isinstance(o, int | str | float | bool)}
        leaks = [g for cls in classes for g in _packet_givers(cls, private=False)]
        leaks += [
            g for cls in (Subscription, Upstream, Relay) for g in _packet_givers(cls, private=True)
        ]
        assert not leaks, f"packet sources without a grant: {leaks}"
        assert not hasattr(up, "_subscribe") and not hasattr(up, "cached_packets")
        assert not _leaks(
            [
                getattr(stream, n)
                for n in dir(stream)
                if not n.startswith("_") and not callable(getattr(stream, n))
            ]
        )
        # Every way to make a subscription checks the grant; none can be made never to expire.
        assert "grant" in inspect.signature(Subscription).parameters
        assert "grant" in inspect.signature(Relay.subscribe).parameters
        stale = attrs.evolve(
            stream.grant,
            issued_at=stream.grant.issued_at - timedelta(hours=2),
            expires_at=datetime.now(UTC) - timedelta(seconds=1),
        )
        with pytest.raises(GrantExpired):
            Subscription(up, stale, time.monotonic())
        with pytest.raises(GrantMismatch):
            Subscription(up, attrs.evolve(stream.grant, camera_id="cam-z"), time.monotonic())
        with pytest.raises(TypeError):
            relay.subscribe(stream.camera, up._opener, time.monotonic())  # type: ignore[call-arg]
        assert up.consumers == 1  # nothing attached
    finally:
        await stream.aclose()
    assert Edge is type(gate.edge)
