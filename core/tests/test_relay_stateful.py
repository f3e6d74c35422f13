"""A hypothesis state machine over the relay: a camera sends keyframes and other packets, drops
out and comes back; consumers join, read at their own pace and leave; the cache is allowed or not.

The camera is a LiveStream fed by the test (the relay's input is any adapter's stream); the relay,
its pump task, queues and cache are the real ones, run on a real event loop (a blocking portal).
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from fractions import Fraction
from typing import Any

import anyio
import anyio.from_thread
import pytest
from camgate.errors import AdapterError, CameraProtocolError, CameraUnreachable
from camgate.models import Camera, GeoPoint, Grant, MediaPacket, StreamInfo
from camgate.relay import Relay, RelaySettings, Subscription
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, initialize, invariant, rule

INFO = StreamInfo(codec="h264", time_base=Fraction(1, 90000))
CAMERA = Camera(
    id="cam", adapter="test", source="test://cam", owner_id="o", position=GeoPoint(0, 0)
)
LIMIT = 4
# The verified live grant a subscription is made for (the relay checks camera, scope, expiry).
GRANT = Grant(
    id="grt",
    request_id="req",
    camera_id="cam",
    incident_id="inc",
    scope="live",
    issued_at=datetime(2000, 1, 1, tzinfo=UTC),
    expires_at=datetime(2999, 1, 1, tzinfo=UTC),
    consent_id="con",
)


class FedStream:
    """One connection of the test's camera: packets (or an error) as the test sends them."""

    info = INFO

    def __init__(self) -> None:
        self.send, self.receive = anyio.create_memory_object_stream[MediaPacket | AdapterError](64)

    def __aiter__(self) -> AsyncIterator[MediaPacket]:
        return self._items()

    async def _items(self) -> AsyncIterator[MediaPacket]:
        async for item in self.receive:
            if isinstance(item, AdapterError):
                raise item
            yield item

    async def aclose(self) -> None:
        self.receive.close()


class Consumer:
    """A subscription and what the model expects of it."""

    def __init__(self, sub: Subscription, start: list[int]) -> None:
        self.sub = sub
        self.got: list[MediaPacket] = []
        self.expected: list[int] = list(start)  # seqs it must receive while lossless
        self.started = bool(start)
        self.lossless = True
        self.limit = LIMIT + len(start)


class RelayMachine(RuleBasedStateMachine):
    consumers = Bundle("consumers")

    def __init__(self) -> None:
        super().__init__()
        self._portal_cm = anyio.from_thread.start_blocking_portal("asyncio")
        self.portal = self._portal_cm.__enter__()
        self.relay = Relay(
            RelaySettings(
                queue_packets=LIMIT, backoff_initial_s=0.001, backoff_max_s=0.001, give_up_s=60
            )
        )
        self.streams: list[FedStream] = []
        self.seq = itertools.count()
        self.gop: list[int] = []  # the model's cache: seqs since the last keyframe
        self.warm = False
        self.live: list[Consumer] = []

    async def _open(self) -> FedStream:
        stream = FedStream()
        self.streams.append(stream)
        return stream

    def _up(self) -> Any:
        return self.relay.upstream("cam")

    async def _settle(self, published: int, opens: int) -> None:
        with anyio.fail_after(30):  # a hang guard: it returns in milliseconds
            while True:
                up = self._up()
                if up is not None and up.packets >= published and len(self.streams) >= opens:
                    return
                await anyio.sleep(0.001)

    def _ensure_open(self) -> None:
        up = self._up()
        if up is None or not up.opened:
            self.portal.call(self._subscribe_and_open)

    async def _subscribe_and_open(self) -> None:
        # The camera's connection, opened as a warm-up does; then the cache as the model says.
        up = self.relay.warm(CAMERA, self._open)
        up.warm = self.warm
        await up.wait_open()

    # ------------------------------------------------------------------ rules

    @initialize(warm=st.booleans())
    def camera_opens(self, warm: bool) -> None:
        self.warm = warm
        self._ensure_open()
        self._up().warm = warm

    @rule(target=consumers)
    def join(self) -> Consumer:
        self._ensure_open()
        up = self._up()
        start = list(self.gop) if self.warm else []
        sub = self.portal.call(self._subscribe)
        assert sub.pending == len(start)
        if start:
            assert sub.start_offset_s is not None
        consumer = Consumer(sub, start)
        self.live.append(consumer)
        assert up is self._up()
        return consumer

    def _subscribe(self) -> Subscription:
        return self.relay.subscribe(CAMERA, GRANT, self._open, anyio.current_time())

    @rule(keyframe=st.booleans(), count=st.integers(1, 6))
    def camera_sends(self, keyframe: bool, count: int) -> None:
        self._ensure_open()
        up = self._up()
        for i in range(count):
            n = next(self.seq)
            key = keyframe and i == 0
            before = up.packets
            packet = MediaPacket(b"x" * 10, n, n, key, INFO, 0.0)
            self.portal.call(self.streams[-1].send.send, packet)
            self._model_publish(n, key)
            self.portal.call(self._settle, before + 1, len(self.streams))

    def _model_publish(self, n: int, key: bool) -> None:
        if self.warm:
            if key:
                self.gop = [n]
            elif self.gop:
                self.gop.append(n)
        for c in self.live:
            if not c.started:
                if not key:
                    continue
                c.started = True
            queued = len(c.expected) - len(c.got)
            if queued >= c.limit:
                c.lossless = False
            c.expected.append(n)

    @rule(consumer=consumers, count=st.integers(1, 8))
    def consumer_reads(self, consumer: Consumer, count: int) -> None:
        if consumer.sub.closed:
            return
        for _ in range(min(count, consumer.sub.pending)):
            consumer.got.append(self.portal.call(consumer.sub.__anext__))

    @rule(consumer=consumers)
    def consumer_leaves(self, consumer: Consumer) -> None:
        if consumer.sub.closed:
            return
        self.check_consumer(consumer)
        if consumer in self.live:
            self.live.remove(consumer)
        up = self._up()
        if up is not None and up.consumers == 1 and not up.warm:
            # The last consumer closes the upstream: the model's camera connection ends too.
            self.gop = []
        self.portal.call(consumer.sub.aclose)

    @rule()
    def camera_drops_out(self) -> None:
        up = self._up()
        if up is None or not up.opened:
            return
        opens = len(self.streams)
        self.portal.call(self.streams[-1].send.send, CameraUnreachable("gone"))
        self.portal.call(self._settle, up.packets, opens + 1)
        self.gop = []
        for c in self.live:
            c.lossless = False  # what it gets after the gap starts at a marked keyframe

    @rule(on=st.booleans())
    def cache_allowed(self, on: bool) -> None:
        up = self._up()
        if up is None:
            return
        up.warm = on
        self.warm = on
        if not on:
            self.gop = []

    # ------------------------------------------------------------------ invariants

    @invariant()
    def cache_matches_the_model(self) -> None:
        up = self._up()
        if up is None:
            return
        cached = up._gop  # (no public property hands out the cache's packets)
        assert [p.pts for p in cached] == self.gop
        if self.gop:
            assert cached[0].is_keyframe

    @invariant()
    def queues_are_bounded(self) -> None:
        for c in self.live:
            assert c.sub.pending <= c.limit

    def check_consumer(self, c: Consumer) -> None:
        got = c.got
        if got:
            assert got[0].is_keyframe
        for a, b in itertools.pairwise(got):
            assert b.pts > a.pts  # type: ignore[operator]
            if b.pts != a.pts + 1:  # type: ignore[operator]
                assert b.discontinuity  # a hole is always marked ...
            if b.discontinuity:
                assert b.is_keyframe  # ... at a keyframe
        if c.lossless:  # nothing lost: what it read and what is queued is all it should get
            assert [p.pts for p in got] == c.expected[: len(got)]
            assert len(got) + c.sub.pending == len(c.expected)

    @invariant()
    def consumers_get_what_they_should(self) -> None:
        for c in self.live:
            self.check_consumer(c)

    def teardown(self) -> None:
        try:
            self.portal.call(self.relay.aclose)
        finally:
            self._portal_cm.__exit__(None, None, None)


RelayMachine.TestCase.settings = settings(max_examples=100, stateful_step_count=30, deadline=None)
TestRelay = RelayMachine.TestCase

# ---------------------------------------------------------------------------------------------
# When a camera's upstream must stop at once: masks changed, or its transform broke. Found by an
# independent review: a consumer attached just before the masks changed was still handed the
# packets queued from the old upstream (masked the old way), and a transform that raised made
# the upstream reconnect for ever.


def _packet(seq: int, key: bool) -> MediaPacket:
    return MediaPacket(bytes([seq % 256]) * 8, seq * 3000, seq * 3000, key, INFO, float(seq))


class _Camera:
    def __init__(self) -> None:
        self.streams: list[FedStream] = []

    async def open(self) -> FedStream:
        stream = FedStream()
        self.streams.append(stream)
        return stream


def test_a_dropped_upstream_hands_out_nothing_still_queued() -> None:
    anyio.run(_dropped_upstream)


async def _dropped_upstream() -> None:
    camera = _Camera()
    relay = Relay(RelaySettings(queue_packets=16))
    sub = relay.subscribe(CAMERA, GRANT, camera.open, anyio.current_time())
    await sub.wait_open()
    for seq in range(4):
        await camera.streams[0].send.send(_packet(seq, seq == 0))
    with anyio.fail_after(5):
        while sub.pending < 4:  # noqa: ASYNC110 - polling the relay, which has no event
            await anyio.sleep(0.001)
    (dropped,) = relay.drop([CAMERA.id])
    with anyio.fail_after(5):
        assert [p async for p in sub] == []  # the old upstream's packets are gone, and it ends
        await dropped.aclose()
    await sub.aclose()
    assert relay.upstream(CAMERA.id) is None


class _Broken:
    def feed(self, packet: MediaPacket) -> list[MediaPacket]:
        raise CameraProtocolError("cannot decode to apply masks")

    def flush(self) -> list[MediaPacket]:
        return []


def test_a_transform_error_fails_consumers_and_never_reconnects() -> None:
    anyio.run(_broken_transform)


async def _broken_transform() -> None:
    camera = _Camera()
    relay = Relay(
        RelaySettings(backoff_initial_s=0.001, backoff_max_s=0.001), lambda cam: _Broken()
    )
    sub = relay.subscribe(CAMERA, GRANT, camera.open, anyio.current_time())
    up = relay.upstream(CAMERA.id)
    assert up is not None
    await sub.wait_open()
    await camera.streams[0].send.send(_packet(0, True))
    got: list[Any] = []
    with anyio.fail_after(5), pytest.raises(CameraProtocolError, match="apply masks"):
        async for packet in sub:
            got.append(packet)
    assert got == []
    with anyio.fail_after(5):
        while not up.finished:  # noqa: ASYNC110 - polling the relay, which has no event
            await anyio.sleep(0.001)
    assert len(camera.streams) == 1  # it ended without reconnecting: that cannot mend a transform
    await sub.aclose()
