"""A revoked stream tells its consumer so, however its upstream ends.

A revocation trips the guarded stream (interrupting a pending read) and closes the camera. An
adapter whose read does not give way to the interruption sees the close instead and ends its
iteration (or fails): the consumer must still get ConsentRevoked, not a plain end of stream
that reads like the camera or the grant's window ending.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from fractions import Fraction
from pathlib import Path

import anyio
import pytest
from camgate.adapters import Adapter
from camgate.errors import ConsentRevoked
from camgate.models import Camera, Grant, MediaPacket, StreamInfo
from camgate.testing import DeclaringAdapters
from camgate.vocab import AuditKind, EndReason

from .conftest import World

INFO = StreamInfo(codec="h264", time_base=Fraction(1, 90000))


class Stubborn:
    """A replay that hands over one keyframe, then waits for more without giving way to
    cancellation (shielded), and ends (or fails, with ``fail``) once it is closed."""

    def __init__(self, fail: bool) -> None:
        self.info = INFO
        self.fail = fail
        self.closed = anyio.Event()
        self.waiting = anyio.Event()
        self.sent = False

    def __aiter__(self) -> AsyncIterator[MediaPacket]:
        return self

    async def __anext__(self) -> MediaPacket:
        if not self.sent:
            self.sent = True
            return MediaPacket(b"\x00" * 16, 0, 0, True, INFO, 0.0)
        with anyio.CancelScope(shield=True):
            self.waiting.set()
            await self.closed.wait()
        if self.fail:
            raise OSError("the connection was closed")
        raise StopAsyncIteration

    async def aclose(self) -> None:
        self.closed.set()


class Replays(Adapter):
    """Serves recordings as :class:`Stubborn` streams."""

    streams: list[Stubborn]
    fail = False

    async def recorded(self, camera: Camera, grant: Grant) -> Stubborn:  # type: ignore[override]
        stream = Stubborn(self.fail)
        Replays.streams.append(stream)
        return stream


@pytest.mark.parametrize("fail", [False, True], ids=["ends", "fails"])
def test_a_revoked_stream_raises_consent_revoked_whatever_its_upstream_does(
    tmp_path: Path, fail: bool
) -> None:
    Replays.streams, Replays.fail = [], fail
    world = World(tmp_path, plugins={"adapters": DeclaringAdapters(create=lambda _s: Replays())})
    world.enrol("alice", ["a1"])
    gate = world.gate
    now = world.clock.now()
    window = (now - timedelta(minutes=10), now - timedelta(minutes=5))
    token = world.request("a1", "recorded", window=window)

    async def run() -> None:
        stream = await gate.edge.open_recorded("a1", token)
        first = await stream.__anext__()
        assert first.is_keyframe
        outcome: list[BaseException | None] = []

        async def consume() -> None:
            try:
                async for _packet in stream:
                    pass
                outcome.append(None)
            except Exception as exc:  # what the consumer is told
                outcome.append(exc)

        async with anyio.create_task_group() as tg:
            tg.start_soon(consume)
            await Replays.streams[0].waiting.wait()
            await gate.revoke("alice")
        assert len(outcome) == 1 and isinstance(outcome[0], ConsentRevoked), outcome
        assert stream.stats().end_reason is EndReason.REVOKED

    anyio.run(run)
    ends = [r.body for r in gate.audit.records(AuditKind.ACCESS_END)]
    assert [e["reason"] for e in ends] == ["revoked"]
    anyio.run(gate.aclose)
