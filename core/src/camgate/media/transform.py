"""The per-camera packet transform: what the relay applies once upstream, the edge to clips.

A transform takes the camera's packets in order and returns what should leave the gate in their
place (possibly nothing yet, possibly several packets); :meth:`PacketTransform.flush` returns
what it still holds when the stream ends. The privacy-mask re-encoder
(:class:`camgate.media.masks.MaskTransform`) is one. A factory maps a camera to its transform,
or to None when its packets pass through untouched.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Callable
from typing import Protocol, runtime_checkable

import anyio.to_thread

from camgate.models import Camera, MediaPacket

__all__ = ["PacketTransform", "TransformFactory", "transformed"]


@runtime_checkable
class PacketTransform(Protocol):
    """Turns a camera's packets into the packets that may leave the gate."""

    def feed(self, packet: MediaPacket) -> list[MediaPacket]:
        """Take the next packet; return the packets ready to go out now (maybe none)."""
        ...

    def flush(self) -> list[MediaPacket]:
        """The stream ended: return every packet still held."""
        ...


#: Maps a camera to the transform its packets go through, or None for none.
TransformFactory = Callable[[Camera], PacketTransform | None]


async def transformed(
    packets: AsyncIterable[MediaPacket], transform: PacketTransform | None
) -> AsyncIterator[MediaPacket]:
    """Apply ``transform`` to ``packets`` (each call in a worker thread: it may re-encode).

    With ``transform=None`` the packets pass through as they are.
    """
    if transform is None:
        async for packet in packets:
            yield packet
        return
    async for packet in packets:
        for out in await anyio.to_thread.run_sync(transform.feed, packet):
            yield out
    for out in await anyio.to_thread.run_sync(transform.flush):
        yield out
