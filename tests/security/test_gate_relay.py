"""Issue 12, item 3: the relay is no back door (attacker: a careless embedder, or code of the host
process that holds a Gate).

Before: ``gate.edge.relay.upstream(cam).cached_packets`` handed out the GOP cache's keyframe, and
``gate.edge.relay.subscribe(cam, opener, t)`` live packets with no grant and no ``access.start``,
still flowing after the officer's grant expired. Now no public attribute of the Gate or its Edge
returns the relay, an upstream, cached packets or a subscription (``relay_statistics()`` is an
immutable snapshot without packets), and a relay subscription is made for a verified live grant
and ends itself at its expiry. Against a real GStreamer RTSP server.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import attrs
import pytest
from camgate import Camera, ConsentTerms, Gate, GeoPoint, Owner, Waiver
from camgate.errors import GrantExpired, GrantMismatch
from camgate.models import Grant, MediaPacket
from camgate.relay import Relay, RelaySettings, Subscription, Upstream
from camgate_rtsp.adapter import RtspAdapter, RtspSettings
from camgate_rtsp.testserver import Mount, RtspTestServer, serving

pytestmark = pytest.mark.anyio
HOME = GeoPoint(32.2988, -90.1848)


@pytest.fixture(scope="module")
def rtsp() -> Iterator[RtspTestServer]:
    with serving([Mount("/cam1", gop_frames=30)]) as server:
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
