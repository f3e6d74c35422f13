"""The guard: a live or recorded stream bound to one grant, checked before every packet.

:class:`GuardedStream` hands a consumer only packets its grant still allows *now*: it ends itself
when the grant expires, refuses once the owner revokes (no packet after that moment), drops
audio a grant lacks, runs the stream's transform (masks, an embedder's, a browser transcode) on
granted packets only, and makes the edge write ``access.end`` exactly once, whatever ends it.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import AsyncIterator, Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, NoReturn, Self

import anyio
import anyio.to_thread
import attrs

from camgate.adapters import LiveStream
from camgate.errors import AccountUnlinked, ConsentRevoked
from camgate.media import MaskTransform, PacketTransform
from camgate.models import Camera, Grant, MediaPacket, StreamInfo
from camgate.vocab import EndReason, GrantProblem

if TYPE_CHECKING:
    pass

if TYPE_CHECKING:
    from camgate.edge.access import Edge

__all__ = ["GuardedStream", "StreamStats"]


@attrs.frozen
class StreamStats:
    """An immutable snapshot of what a guarded stream has served."""

    packets: int
    nbytes: int
    ended: bool
    end_reason: EndReason | None


class GuardedStream:
    """A live stream bound to one grant. Iterate it for packets; it ends itself.

    Iteration stops (StopAsyncIteration) when the grant expires or the camera ends the stream,
    or when the grant stops holding otherwise (its incident closed, a resident's privacy zone
    registered in the camera's view: :meth:`halt`, the camera's vendor account unlinked);
    it raises :class:`camgate.errors.ConsentRevoked` once the owner revokes — and no packet is
    handed over after that moment. Use it as an async context manager, or call :meth:`aclose`.

    ``transform`` (this stream's own :class:`~camgate.media.PacketTransform`) is fed only packets
    that passed the grant check, and what it returns is checked again before it is handed over;
    at a gap (a packet with ``discontinuity``) it is flushed first. An error it raises ends the
    stream (``access.end`` reason ``error``) and reaches the consumer.
    """

    def __init__(
        self,
        edge: Edge,
        grant: Grant,
        camera: Camera,
        upstream: LiveStream,
        deadline: float,
        seen: tuple[int, int],
        transform: PacketTransform | Literal["masks"] | None = "masks",
    ) -> None:
        self.grant = grant
        self.camera = camera
        self.info: StreamInfo = upstream.info
        self._edge = edge
        # The camera's privacy masks, burnt in before any packet is handed over. ("masks": the
        # edge's own transform for the camera; a relay that already applied it upstream passes
        # None.)
        self.transform = edge.mask_transform(camera) if transform == "masks" else transform
        #: The masks this stream's packets are burnt with (for a relayed stream, set by the
        #: edge to its upstream's); compared with the store's whenever the store changes.
        self.masks_key: Any = (
            tuple(tuple(p) for p in self.transform.polygons)
            if isinstance(self.transform, MaskTransform)
            else ()
        )
        #: True when the owner's privacy masks are burnt into what this stream serves (here,
        #: or upstream in the relay for live streams).
        self.masked = self.transform is not None
        self._ready: deque[MediaPacket] = deque()
        self._upstream = upstream
        self._iter = upstream.__aiter__()
        self._deadline = deadline
        self._revoked_at: float | None = None
        #: Why the stream must end now, without a revocation (set by :meth:`halt`).
        self._halted: EndReason | None = None
        self._loop_thread = threading.get_ident()
        self._revoker_closes = False
        self._read_scope: anyio.CancelScope | None = None
        # The store's version *before* the edge last checked consent for this grant: any
        # change after that check (even one made while the adapter was connecting) is seen.
        self._seen = seen
        self.closed_at: float | None = None
        self._packets = 0
        self._nbytes = 0
        self._end_reason: EndReason | None = None
        self._close_lock = anyio.Lock()
        self._dropped_audio = 0
        self._flushed = False

    def __repr__(self) -> str:
        return f"<GuardedStream grant={self.grant.id} camera={self.camera.id} {self.stats()}>"

    def stats(self) -> StreamStats:
        """Packets and bytes handed to the consumer so far, and why the stream ended."""
        return StreamStats(
            self._packets, self._nbytes, self._end_reason is not None, self._end_reason
        )

    @property
    def revoked(self) -> bool:
        """True once the owner's revocation reached this stream."""
        return self._revoked_at is not None

    def trip(self, *, closer: bool = False) -> None:
        """Mark the stream revoked now and interrupt a pending read. Synchronous and instant.

        With ``closer=True`` the caller promises to close the camera connection itself, so the
        consumer is told at once instead of waiting for the close.
        """
        if self._revoked_at is None:
            self._revoked_at = self._edge.clock.monotonic()
        self._revoker_closes = self._revoker_closes or closer
        if self._read_scope is not None:
            self._read_scope.cancel()

    def halt(self, reason: EndReason) -> None:
        """End the stream with ``reason`` (not a revocation): no packet is handed over after
        this call, and a pending read is interrupted when called on the stream's event-loop
        thread (from another thread the stream ends at its next packet). Synchronous; the
        stream's own next step closes the camera connection and writes ``access.end``."""
        if self._halted is None:
            self._halted = reason
        if self._read_scope is not None and threading.get_ident() == self._loop_thread:
            self._read_scope.cancel()

    async def _stop_if_halted(self) -> None:
        if self._halted is not None:
            self._ready.clear()
            await self._end(self._halted)
            raise StopAsyncIteration

    async def _refuse(self) -> NoReturn:
        """End the stream as revoked and tell the consumer so (ConsentRevoked), whatever the
        upstream did meanwhile (ended, or failed as the revocation closed the camera)."""
        await self._refuse_from(None)

    async def _refuse_from(self, cause: BaseException | None) -> NoReturn:
        if not self._revoker_closes:
            await self._end(EndReason.REVOKED)
        raise ConsentRevoked(f"consent for camera {self.camera.id!r} was revoked") from cause

    @property
    def dropped_audio(self) -> int:
        """Audio packets the adapter sent that this grant does not allow (never handed over)."""
        return self._dropped_audio

    @property
    def audio_info(self) -> StreamInfo | None:
        """The audio track handed over, when the grant allows audio and the camera has one
        (known once the first packet arrived); None otherwise."""
        if not self.grant.audio:
            return None
        info = getattr(self._upstream, "audio_info", None)
        return info if isinstance(info, StreamInfo) else None

    def __aiter__(self) -> AsyncIterator[MediaPacket]:
        return self

    async def __anext__(self) -> MediaPacket:
        while True:
            if self._ready:  # transformed packets: the grant must still hold *now*
                if self.revoked:
                    await self._refuse()
                await self._stop_if_halted()
                ended = self._end_reason not in (None, EndReason.COMPLETED)
                if ended or self._edge.clock.monotonic() >= self._deadline:
                    self._ready.clear()
                    await self._end(EndReason.EXPIRED)
                    raise StopAsyncIteration
                return self._served(self._ready.popleft())
            try:
                packet = await self._next()
            except StopAsyncIteration:
                # The camera ended the stream: what the transform still holds arrived before
                # the end, under the grant; hand it over (once), checked like any other packet.
                if (
                    self.transform is None
                    or self._flushed
                    or self._end_reason != EndReason.COMPLETED
                ):
                    raise
                self._flushed = True
                self._ready.extend(await self._transformed(self.transform.flush))
                if not self._ready:
                    raise
                continue
            # Audio is a scope of its own: for a grant without it, audio packets are never
            # handed over (the adapter should not even send them; this is the guard making sure).
            if packet.stream.kind == "audio" and not self.grant.audio:
                self._dropped_audio += 1
                continue
            if self.transform is None:
                return self._served(packet)
            if packet.discontinuity:  # what it holds came before the gap: out first
                self._ready.extend(await self._transformed(self.transform.flush))
            self._ready.extend(await self._transformed(self.transform.feed, packet))

    async def _transformed(
        self, call: Callable[..., list[MediaPacket]], *args: MediaPacket
    ) -> list[MediaPacket]:
        """Run the transform (in a worker thread: it may re-encode); its error ends the stream."""
        try:
            return await anyio.to_thread.run_sync(call, *args)
        except Exception:
            await self._end(EndReason.ERROR)
            raise

    def _served(self, packet: MediaPacket) -> MediaPacket:
        if packet.stream.kind == "video":
            self.info = packet.stream  # what is served (camgate's H.264 once masked)
        self._packets += 1
        self._nbytes += packet.size
        return packet

    async def _next(self) -> MediaPacket:
        clock = self._edge.clock
        if self.revoked:
            await self._refuse()
        await self._stop_if_halted()
        if self._end_reason is not None:
            raise StopAsyncIteration
        remaining = self._deadline - clock.monotonic()
        packet: MediaPacket | None = None
        if remaining > 0:
            with anyio.CancelScope(deadline=anyio.current_time() + remaining) as scope:
                self._read_scope = scope
                try:
                    packet = await self._iter.__anext__()
                except StopAsyncIteration:
                    self._read_scope = None
                    if self._revoked_at is not None:  # the revoker closed the camera first
                        await self._refuse()
                    # A relay subscription ends itself when the grant expires.
                    expired = getattr(self._upstream, "expired", False) is True
                    await self._end(EndReason.EXPIRED if expired else EndReason.COMPLETED)
                    raise
                except anyio.get_cancelled_exc_class():
                    self._read_scope = None
                    if not scope.cancel_called:  # the consumer was cancelled, not our scope
                        await self._end(EndReason.CLOSED)
                    raise  # our own scope (revocation, deadline) swallows it on exit
                except AccountUnlinked as exc:  # every stream of the account ends
                    self._read_scope = None
                    await self._end(EndReason.ACCOUNT_UNLINKED)
                    await self._edge.account_unlinked(self.camera, exc)
                    raise
                except Exception as exc:
                    self._read_scope = None
                    if self._revoked_at is not None:  # the revocation's close, not a fault
                        await self._refuse_from(exc)
                    await self._end(EndReason.ERROR)
                    raise
                except BaseException:
                    self._read_scope = None
                    await self._end(EndReason.ERROR)
                    raise
            self._read_scope = None
        # Everything below runs after the packet arrived: check the grant still holds *now*.
        # A revocation through this process tripped the stream already; one committed by
        # another process changes the store's data_version, and only then is consent re-read.
        if not self.revoked and self._edge.changed_since(self):
            problem = self._edge.grant_problem(self.camera, self.grant, clock.now())
            ended = None if problem is None else problem.end_reason
            if ended is None and self._edge.masks_changed(self):
                ended = EndReason.MASKS_CHANGED  # set by another process: this picture is stale
            if problem is GrantProblem.REVOKED:
                self.trip()
            elif ended is not None:
                await self._end(ended)
                raise StopAsyncIteration
        if self._revoked_at is not None:
            await self._refuse()
        await self._stop_if_halted()
        if packet is None or clock.monotonic() >= self._deadline:
            await self._end(EndReason.EXPIRED)
            raise StopAsyncIteration
        return packet

    async def _end(self, reason: EndReason) -> None:
        # Shielded as a whole: a cancelled consumer must still close the camera connection and
        # write access.end (taking the lock in a cancelled task would raise at once).
        with anyio.CancelScope(shield=True):
            async with self._close_lock:
                if self._end_reason is not None:
                    return
                self._end_reason = EndReason.REVOKED if self.revoked else reason
                try:
                    await self._upstream.aclose()
                    self.closed_at = self._edge.clock.monotonic()
                finally:
                    await self._edge._access_ended(self, self._end_reason)

    async def aclose(self) -> None:
        """Close the stream and the camera connection (reason ``closed``). Idempotent."""
        await self._end(EndReason.CLOSED)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
