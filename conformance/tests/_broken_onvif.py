"""Broken ONVIF adapters (recorded footage, snapshots): each breaks one promise."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import anyio
import attrs
from camgate.adapters import AdapterFactory, LiveStream
from camgate.models import Camera, Grant, MediaPacket, Scope, Snapshot
from camgate_onvif.adapter import OnvifAdapter
from camgate_onvif.plugin import FACTORY


class _Restamped:
    """A live stream whose packets claim to have been taken inside the grant's window."""

    def __init__(self, inner: LiveStream, grant: Grant) -> None:
        self.inner, self.info = inner, inner.info
        assert grant.window_start is not None
        self.start = grant.window_start
        self.first: float | None = None

    async def __aiter__(self) -> AsyncIterator[MediaPacket]:
        async for packet in self.inner:
            self.first = packet.arrival if self.first is None else self.first
            moment = self.start + timedelta(seconds=packet.arrival - self.first)
            yield attrs.evolve(packet, wallclock=moment)

    async def aclose(self) -> None:
        await self.inner.aclose()


class RestampingAdapter(OnvifAdapter):
    """Serves a recorded grant with live video, restamped into the window."""

    async def recorded(self, camera: Camera, grant: Grant) -> LiveStream:
        as_live = attrs.evolve(grant, scope=Scope.LIVE, window_start=None, window_end=None)
        live = await self.open_live(camera, as_live)
        return _Restamped(live, grant)  # type: ignore[return-value]


class StaleSnapshotAdapter(OnvifAdapter):
    """Asks the camera for every snapshot, as it should, but serves the first picture it ever
    got, stamped with the new picture's time: only the time in the picture gives it away."""

    first: bytes | None = None

    async def snapshot(self, camera: Camera, grant: Grant) -> Snapshot:
        fresh = await super().snapshot(camera, grant)
        if StaleSnapshotAdapter.first is None:
            StaleSnapshotAdapter.first = fresh.jpeg
            await anyio.sleep(0.2)  # the next grant is issued after this picture was taken
        return attrs.evolve(fresh, jpeg=StaleSnapshotAdapter.first)


#: Each broken ONVIF adapter, the only check it must fail, and what that check must say.
BROKEN = {
    "stale": (StaleSnapshotAdapter, "gating.snapshot-fresh-and-closed", "picture was taken at"),
    "restamping": (RestampingAdapter, "gating.recorded-window", "carry no capture time"),
}


def factory(name: str) -> AdapterFactory:
    """The ONVIF factory under another name, building broken adapter ``name``."""
    adapter = BROKEN[name][0]
    return attrs.evolve(FACTORY, name=f"onvif-{name}", create=adapter.from_settings)
