"""The per-camera packet transform: what the relay applies once upstream, the edge to clips.

A transform takes the camera's packets in order and returns what should leave the gate in their
place (possibly nothing yet, possibly several packets); :meth:`PacketTransform.flush` returns
what it still holds when the stream ends. The privacy-mask re-encoder
(:class:`camgate.media.masks.MaskTransform`) is one. A factory maps a camera to its transform,
or to None when its packets pass through untouched.

A transform that re-encodes takes tens of milliseconds per picture at 1080p: it must never run
on the event loop, where it would stall every other stream, request and revocation of the
process. :func:`feed` and :func:`flush` run it in a worker thread (one call at a time per
transform, so packets stay in order); a transform that is cheap enough to run in the loop says
so with a true ``in_loop`` attribute.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Callable
from typing import Protocol, runtime_checkable

import anyio.to_thread

from camgate.models import Camera, MediaPacket

__all__ = ["Chain", "PacketTransform", "TransformFactory", "chain", "feed", "flush", "transformed"]


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


class Chain:
    """Transforms applied one after the other: what the first returns is fed to the second.

    :meth:`flush` flushes them in order, each one's held packets fed through the later ones
    before those are flushed. ``in_loop`` only when every link is cheap.
    """

    def __init__(self, transforms: list[PacketTransform]) -> None:
        self.transforms = transforms
        self.in_loop = all(getattr(t, "in_loop", False) for t in transforms)

    def __repr__(self) -> str:
        return f"<Chain {self.transforms!r}>"

    def feed(self, packet: MediaPacket) -> list[MediaPacket]:
        """Feed ``packet`` through every transform in turn."""
        packets = [packet]
        for transform in self.transforms:
            packets = [out for p in packets for out in transform.feed(p)]
        return packets

    def flush(self) -> list[MediaPacket]:
        """Flush every transform in order, passing what each held through the later ones."""
        held: list[MediaPacket] = []
        for transform in self.transforms:
            held = [out for p in held for out in transform.feed(p)] + transform.flush()
        return held


def chain(*transforms: PacketTransform | None) -> PacketTransform | None:
    """One transform applying ``transforms`` in order (None ones left out): None when none is
    left, the transform itself when one is."""
    present = [t for t in transforms if t is not None]
    if not present:
        return None
    return present[0] if len(present) == 1 else Chain(present)


async def feed(transform: PacketTransform, packet: MediaPacket) -> list[MediaPacket]:
    """``transform.feed(packet)`` in a worker thread (in the loop when ``transform.in_loop``).

    The caller awaits it before feeding the next packet, so the transform sees one call at a
    time and in order; its exception is raised here.
    """
    if getattr(transform, "in_loop", False):
        return transform.feed(packet)
    return await anyio.to_thread.run_sync(transform.feed, packet)


async def flush(transform: PacketTransform) -> list[MediaPacket]:
    """``transform.flush()`` in a worker thread (in the loop when ``transform.in_loop``)."""
    if getattr(transform, "in_loop", False):
        return transform.flush()
    return await anyio.to_thread.run_sync(transform.flush)


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
        for out in await feed(transform, packet):
            yield out
    for out in await flush(transform):
        yield out
