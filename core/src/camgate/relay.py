"""The relay: one upstream connection per camera, fanned out to every granted consumer.

The edge opens a camera once, however many consumers hold a grant for it, and hands each consumer
its own :class:`Subscription` (a :class:`~camgate.adapters.LiveStream`, so the edge's guard wraps
it exactly as it wrapped an adapter's stream). What it promises:

- **Fan-out without stalls.** The upstream is read by one pump task; every packet is offered to
  every subscription's own queue of at most ``queue_packets``. A consumer whose queue is full is
  *dropped to the next keyframe*: its queue is emptied and it receives nothing until the next
  video keyframe, which carries ``discontinuity=True``. The pump never waits for a consumer, so
  a slow one neither stalls the others nor grows memory without bound.
- **Reconnect, with a gap marker.** When an upstream that had opened fails or ends, the pump
  closes it, waits (exponential back-off from ``backoff_initial_s`` to ``backoff_max_s``) and
  opens it again. Consumers are not failed: the first packet each receives after the gap is a
  keyframe with ``discontinuity=True`` (timestamps may restart there). A camera that cannot be
  opened at all, or not again within ``give_up_s``, fails its consumers with the adapter's
  error (never a hang); so does any other error of the adapter or the transform, at once, and
  an :class:`~camgate.errors.AccountUnlinked` (the vendor account is gone: retrying cannot help).
  Each reconnect made for consumers is a *renewal*: the relay's ``on_renewed`` (the edge's
  audit record ``access.renewed``) is awaited for their grants before the new connection's
  first packet is relayed; if it fails, the consumers get its error and nothing more.
- **A GOP cache only when allowed.** While :attr:`Upstream.warm` is set (the edge decides: an open
  incident's geofence covers the camera, the owner's consent stands, not a battery camera) the
  upstream keeps, in memory only, the packets since the last keyframe (at most
  ``gop_max_packets``). A new subscription starts from that keyframe — never more than one GOP
  back — and reports how far back in :attr:`Subscription.start_offset_s`. Clearing ``warm``
  drops the cache at once.
- **One transform, upstream: camgate's own.** An optional :class:`PacketTransform` per camera is
  applied once, before the cache and the fan-out, so no consumer and no cached packet ever holds
  an untransformed packet. The edge gives it camgate's privacy-mask re-encoder only: the relay
  runs before any grant (a warm cache), so no embedder code runs here (an embedder's transform
  runs per consumer, in its guarded stream, after the grant check).
- **Sound only under a grant that allows it, and for every such grant.** The camera is asked for
  its audio track only when an opener's grant allows audio (an officer's audio grant; the GOP
  cache's warrant never asks for sound). An upstream opened without audio — by a video-only
  first consumer, or warm for the cache — is *switched* when an audio grant joins: a second
  connection is opened with that grant's opener and, once it has delivered a video keyframe, it
  replaces the first one (closed then). Video consumers get no gap: the last packet of the old
  connection is followed by the new one's keyframe, marked ``discontinuity=True`` (timestamps
  may restart). The joining audio consumer starts at that keyframe, with the audio track known
  (:meth:`Subscription.wait_open` returns only then); no switch is made for a camera whose
  stream description offers no audio (``offers_audio`` False). When the last audio consumer
  leaves and the upstream lives on (other consumers or the cache), it is switched back to a
  video-only connection the same way, so the camera's sound is not pulled for nobody. A switch
  that fails (the second connection cannot be opened or sends no keyframe within
  ``switch_wait_s``) is logged; the first connection carries on, and the audio consumer gets
  video only.
- **No subscription without a grant.** A :class:`Subscription` is made only for a live grant of
  its camera that has not expired (its constructor checks, and derives its expiry from the
  grant): neither an :class:`Upstream` nor the relay has a grant-less way to attach a consumer,
  and no public property of an upstream returns its packets.

Pumps run as tasks of the event loop that started them (not of a task group: the edge is used
without an async context); :meth:`Relay.aclose` and :meth:`Upstream.aclose` cancel them and wait.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any, Protocol, runtime_checkable

import anyio
import attrs

from camgate.adapters import LiveStream
from camgate.clock import Clock, SystemClock
from camgate.errors import (
    AccountUnlinked,
    AdapterError,
    GrantExpired,
    GrantMismatch,
    ValidationError,
)
from camgate.media.transform import feed as transform_feed
from camgate.media.transform import flush as transform_flush
from camgate.models import Camera, Grant, MediaPacket, Scope, StreamInfo

__all__ = [
    "Opener",
    "PacketTransform",
    "Relay",
    "RelaySettings",
    "RelayStatistics",
    "Subscription",
    "TransformFactory",
    "Upstream",
    "UpstreamStatistics",
]

log = logging.getLogger(__name__)


class _TransformFailed(Exception):
    """The camera's transform raised: its consumers get the error, nothing reconnects."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


@runtime_checkable
class PacketTransform(Protocol):
    """A per-camera packet filter applied once, upstream of the GOP cache and the fan-out (the
    edge's relay runs camgate's privacy-mask re-encoder here, never an embedder's code).

    ``feed`` takes one packet as the camera sent it and returns the packets to relay in its place
    (none, one or several; a re-encoder may hold some back). ``flush`` returns what is held back
    when the upstream ends or is lost (before the gap). Both are called in a worker thread, one
    call at a time (``camgate.media.transform.feed``), never on the event loop. Output packets
    carry their own :class:`~camgate.models.StreamInfo`; a transform that re-encodes must start
    its output at a keyframe after a flush.
    """

    def feed(self, packet: MediaPacket) -> list[MediaPacket]:
        """Transform one upstream packet; return the packets to relay."""
        ...

    def flush(self) -> list[MediaPacket]:
        """Return the packets still held back (the upstream ended or was lost)."""
        ...


#: Builds the camera's transform, or None for pass-through.
TransformFactory = Callable[[Camera], PacketTransform | None]
#: Opens the camera's live stream (the edge binds the adapter, camera and warrant).
Opener = Callable[[], Awaitable[LiveStream]]
#: Told of a renewal: the camera, the grants of its consumers, the upstream's renewal count and
#: what ended the previous connection; awaited before the new connection's first packet.
RenewalHook = Callable[[Camera, list[Grant], int, str], Awaitable[None]]


def _positive(_inst: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
        raise ValidationError(f"relay setting {attribute.name}={value!r}: must be positive")


@attrs.frozen
class RelaySettings:
    """Bounds of the relay: per-consumer queue, cache size and reconnect back-off.

    ``give_up_s`` is how long consumers wait through failed reconnects before they get the
    adapter's error (a camera gone for good must not leave them hanging); a cached upstream with
    no consumer keeps retrying. ``switch_wait_s`` bounds a switch of the upstream for a change of
    audio (the second connection's open and first keyframe). ``gop_cache`` turns the warm start
    on (off by default: a cache keeps the camera connection open while an incident is near,
    which costs the owner bandwidth; the edge's operator opts in).
    """

    gop_cache: bool = False
    queue_packets: int = attrs.field(default=256, validator=_positive)
    gop_max_packets: int = attrs.field(default=1024, validator=_positive)
    backoff_initial_s: float = attrs.field(default=0.2, validator=_positive)
    backoff_max_s: float = attrs.field(default=5.0, validator=_positive)
    give_up_s: float = attrs.field(default=3.0, validator=_positive)
    switch_wait_s: float = attrs.field(default=10.0, validator=_positive)


@attrs.frozen
class UpstreamStatistics:
    """A snapshot of one camera's upstream, without its packets (for tests and operators).

    ``serial`` tells upstreams of one camera apart (a dropped one is replaced by a new serial);
    ``cached``/``cached_keyframes`` count the GOP cache's packets and keyframes,
    ``cache_start_pts`` is the pts of its first packet (None when empty). ``audio`` tells
    whether the open connection asked the camera for sound; ``switches`` counts connections
    replaced for a change of audio (see :class:`Relay`).
    """

    camera_id: str
    serial: int
    consumers: int
    warm: bool
    opened: bool
    finished: bool
    reconnects: int
    packets: int
    packets_in: int
    cached: int
    cached_keyframes: int
    cache_start_pts: int | None
    audio: bool = False
    switches: int = 0


@attrs.frozen
class RelayStatistics:
    """A snapshot of the relay: its settings and every upstream's statistics (no packets, no
    handle on any connection or subscription)."""

    settings: RelaySettings
    upstreams: tuple[UpstreamStatistics, ...]

    def upstream(self, camera_id: str) -> UpstreamStatistics | None:
        """The camera's upstream as it was, or None when it had none."""
        return next((u for u in self.upstreams if u.camera_id == camera_id), None)


def _is_key(packet: MediaPacket) -> bool:
    return packet.is_keyframe and packet.stream.kind == "video"


def _spawn(fn: Callable[[], Awaitable[None]]) -> None:
    """Run ``fn`` as a task of the current event loop (asyncio or trio), outside any task group."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        import trio  # type: ignore[import-not-found,unused-ignore]

        trio.lowlevel.spawn_system_task(fn)
        return

    async def run() -> None:
        await fn()

    task = loop.create_task(run())
    _TASKS.add(task)
    task.add_done_callback(_TASKS.discard)


_TASKS: set[asyncio.Task[None]] = set()
_SERIALS = itertools.count(1)


def _expiry(camera: Camera, grant: Grant, clock: Clock) -> Callable[[], bool]:
    """For an unexpired live grant of ``camera``: a check that turns True once it expired
    (GrantMismatch for another camera or scope, GrantExpired when expired already)."""
    if grant.camera_id != camera.id or grant.scope is not Scope.LIVE:
        raise GrantMismatch(f"grant {grant.id} is not a live grant for camera {camera.id!r}")
    left = (grant.expires_at - clock.now()).total_seconds()
    if left <= 0:
        raise GrantExpired(f"grant {grant.id} expired at {grant.expires_at.isoformat()}")
    deadline = clock.monotonic() + left  # checked per packet: a monotonic read is cheap

    def expired() -> bool:
        return clock.monotonic() >= deadline

    return expired


class Subscription:
    """One consumer of a camera's upstream: its own bounded queue, a LiveStream.

    Iteration yields packets from a video keyframe on; it blocks while the upstream reconnects and
    raises the adapter's error only when the camera could never be opened. ``dropped`` counts
    packets this consumer lost by being slow, ``gaps`` the discontinuities it was handed.
    """

    def __init__(
        self, upstream: Upstream, grant: Grant, now: float, opener: Opener | None = None
    ) -> None:
        """Attach to ``upstream`` for ``grant`` (GrantMismatch/GrantExpired unless it is an
        unexpired live grant of the upstream's camera), starting from its cached GOP — or, for
        an audio grant joining an upstream without sound, from the switched connection's first
        keyframe. ``opener`` opens the camera under ``grant`` (used when the upstream is
        switched for, or back from, audio)."""
        relay = upstream._relay
        self._expired = _expiry(upstream.camera, grant, relay.clock)
        self._up = upstream
        #: The grant this consumer is served under.
        self.grant = grant
        #: True when this consumer's grant allows audio.
        self.audio = grant.audio
        self._opener = opener
        #: Waiting for the upstream's switch to a connection with sound: nothing is queued
        #: before its first keyframe.
        self._await_switch = grant.audio and upstream._switch_pending(audio=True)
        start = [] if self._await_switch else list(upstream._gop)
        # Room for the cached GOP on top of the queue: a warm start is not an overflow.
        self._limit = relay.settings.queue_packets + len(start)
        self._queue: deque[MediaPacket] = deque(start)
        self._need_key = not start
        self._mark_gap = False
        self._wake = anyio.Event()
        self._closed = False
        self._error: Exception | None = None
        self._info: StreamInfo | None = start[0].stream if start else None
        #: Seconds between the arrival of the first packet handed over (a cached keyframe) and
        #: the subscription; None for a cold start (the first keyframe that arrives live).
        self.start_offset_s: float | None = round(now - start[0].arrival, 6) if start else None
        self.dropped = 0
        self.gaps = 0
        upstream._subs.add(self)

    def __repr__(self) -> str:
        return f"<Subscription camera={self._up.camera.id} queued={len(self._queue)}>"

    @property
    def info(self) -> StreamInfo:
        """The video stream as relayed (after the camera's transform, when it has one)."""
        return self._info or self._up.info

    @info.setter
    def info(self, value: StreamInfo) -> None:
        self._info = value

    @property
    def audio_info(self) -> StreamInfo | None:
        """The camera's audio track, when the upstream carries one (each consumer's guard
        drops audio its grant does not allow)."""
        return self._up.audio_info

    @property
    def notes(self) -> dict[str, str]:
        """What the adapter said about how it reached the camera for this upstream (e.g. a
        fallback to UDP), for the consumer's access record; empty when nothing. Read from the
        open stream again now: an adapter may add to its notes while it streams (a renewed
        vendor session)."""
        if self._up._stream is not None:
            self._up._note(self._up._stream)
        return dict(self._up.notes)

    @property
    def closed(self) -> bool:
        """True once the subscription is closed (its upstream may live on for others)."""
        return self._closed

    @property
    def expired(self) -> bool:
        """True once the grant this subscription was made for has expired (nothing flows)."""
        return self._expired()

    @property
    def pending(self) -> int:
        """Packets queued for this consumer (never more than ``queue_packets`` plus the cached
        GOP it started with)."""
        return len(self._queue)

    def _offer(self, packet: MediaPacket) -> None:
        if self._closed or self._await_switch:
            return
        if self._expired():
            self._queue.clear()  # nothing flows past the grant's expiry, queued or not
            self._wake.set()
            return
        if len(self._queue) >= self._limit:
            # Too slow: drop what is queued and wait for the next keyframe.
            self.dropped += len(self._queue)
            self._queue.clear()
            self._need_key = self._mark_gap = True
        if self._need_key:
            if not _is_key(packet):
                self.dropped += 1 if self._mark_gap else 0
                return
            self._need_key = False
            if self._mark_gap:
                self._mark_gap = False
                self.gaps += 1
                packet = attrs.evolve(packet, discontinuity=True)
        self._queue.append(packet)
        self._wake.set()

    def _gap(self) -> None:
        self._need_key = self._mark_gap = True

    def _wakeup(self) -> None:
        self._wake.set()

    def _fail(self, error: Exception) -> None:
        self._error = error
        self._wake.set()

    def __aiter__(self) -> AsyncIterator[MediaPacket]:
        return self

    async def __anext__(self) -> MediaPacket:
        while True:
            if self._expired():
                self._queue.clear()
                raise StopAsyncIteration
            if self._queue:
                return self._queue.popleft()
            if self._error is not None and not self._closed:
                raise self._error
            if self._closed or self._up.finished:
                if self._up.error is not None and not self._up.opened:
                    raise self._up.error
                raise StopAsyncIteration
            self._wake = anyio.Event()
            await self._wake.wait()

    async def wait_open(self) -> None:
        """Start the upstream if needed and wait until it is open (its ``info`` known).

        For an audio grant that joined an upstream without sound, it also waits for the switch
        to a connection with sound (or its failure: then video flows alone). Raises the
        adapter's error when the camera cannot be opened.
        """
        await self._up.wait_open()
        if self._await_switch:
            await self._up._switched.wait()

    async def aclose(self) -> None:
        """Leave the upstream; the last consumer of a camera without a cache closes it, and this
        returns once that connection is closed. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._queue.clear()
        self._wake.set()
        await self._up.leave(self)


class Upstream:
    """One camera's connection, pumped by one task, offered to every subscription."""

    def __init__(
        self,
        relay: Relay,
        camera: Camera,
        opener: Opener,
        transform: PacketTransform | None,
    ) -> None:
        self.camera = camera
        self.serial = next(_SERIALS)
        self._relay = relay
        self._opener = opener
        self._transform = transform
        self._subs: set[Subscription] = set()
        self._stream: LiveStream | None = None
        self._gop: list[MediaPacket] = []
        self._warm = False
        self._started = False
        self._scope: anyio.CancelScope | None = None
        self._ready = anyio.Event()
        self._done = anyio.Event()
        self._info: StreamInfo | None = None
        self.error: Exception | None = None
        self.opened = False
        self.finished = False
        self.reconnects = 0
        #: What ended the last connection (the adapter's ``end_cause`` when its stream says).
        self.lost_cause = ""
        #: Packets relayed (after the transform) and packets read from the camera.
        self.packets = 0
        self.packets_in = 0
        #: ``time.monotonic()`` after which the cache is no longer allowed (the incident's window).
        self.warm_until: float | None = None
        #: Asked before each packet is cached: False drops the cache (and, with no consumer, the
        #: upstream). The edge uses it to see a revocation committed by another process.
        self.cache_guard: Callable[[], bool] | None = None
        # Sound: whether the camera should be asked for it now (an audio consumer is attached),
        # whether the connection open (or being opened) asked for it, and the opener a switch
        # back to video only uses (a video-only consumer's, or the cache's warrant).
        self._audio = False
        self._open_audio = False
        self._video_opener: Opener | None = None
        self._switching = False
        self._switch_scope: anyio.CancelScope | None = None
        self._swap: tuple[LiveStream, AsyncIterator[MediaPacket], MediaPacket] | None = None
        self._switched = anyio.Event()
        self._switched.set()
        #: Connections replaced for a change of audio.
        self.switches = 0
        #: The adapter's notes on its connections (a stream's ``notes``: e.g. a UDP fallback).
        self.notes: dict[str, str] = {}

    def __repr__(self) -> str:
        return (
            f"<Upstream camera={self.camera.id} consumers={len(self._subs)} "
            f"cached={len(self._gop)} warm={self._warm}>"
        )

    @property
    def info(self) -> StreamInfo:
        """The relayed stream's description (a placeholder until the upstream has opened)."""
        return self._info or StreamInfo(codec="none", time_base=1)  # type: ignore[arg-type]

    @property
    def audio_info(self) -> StreamInfo | None:
        """The camera's audio track as the adapter describes it, when it sends one."""
        info = getattr(self._stream, "audio_info", None)
        return info if isinstance(info, StreamInfo) else None

    @property
    def consumers(self) -> int:
        """How many subscriptions are attached."""
        return len(self._subs)

    @property
    def cached(self) -> int:
        """Packets in the GOP cache (0 unless warm)."""
        return len(self._gop)

    @property
    def warm(self) -> bool:
        """True while the GOP cache is allowed; setting False drops it at once."""
        return self._warm

    @warm.setter
    def warm(self, value: bool) -> None:
        self._warm = value
        if not value:
            self._gop.clear()

    def start(self) -> None:
        """Start the pump (once)."""
        if not self._started and not self.finished:
            self._started = True
            _spawn(self._run)

    async def wait_open(self) -> None:
        """Start the pump if needed; return once open, raise the error if it never opens."""
        self.start()
        await self._ready.wait()
        if not self.opened and self.error is not None:
            raise self.error

    def statistics(self) -> UpstreamStatistics:
        """A snapshot of this upstream, without its packets."""
        gop = self._gop
        return UpstreamStatistics(
            camera_id=self.camera.id,
            serial=self.serial,
            consumers=len(self._subs),
            warm=self._warm,
            opened=self.opened,
            finished=self.finished,
            reconnects=self.reconnects,
            packets=self.packets,
            packets_in=self.packets_in,
            cached=len(gop),
            cached_keyframes=sum(1 for p in gop if p.is_keyframe),
            cache_start_pts=gop[0].pts if gop else None,
            audio=self._open_audio and self.opened,
            switches=self.switches,
        )

    # ------------------------------------------------------------------ audio switches

    def _switch_pending(self, *, audio: bool) -> bool:
        """True when the connection in use (or being opened) differs from ``audio`` and a
        switch to one that matches is under way or about to start (not for sound from a
        camera whose stream description offers none)."""
        if audio and self._silent():
            return False
        return self._started and not self.finished and self._open_audio != audio

    def _silent(self) -> bool:
        """True when the open connection's adapter says the camera offers no audio track
        (``LiveStream.offers_audio`` is False): switching for sound would gain nothing."""
        return getattr(self._stream, "offers_audio", None) is False

    def _mismatch(self) -> bool:
        """The open connection's sound differs from what the consumers need, and a switch
        could change that."""
        return self._audio != self._open_audio and not (self._audio and self._silent())

    def want(self, opener: Opener, *, audio: bool) -> None:
        """A consumer joined with ``opener`` (its grant allows audio or not): remember the
        opener, and switch the upstream to a connection with sound for an audio grant."""
        if not audio:
            self._video_opener = opener
            return
        if self._audio:
            return
        self._audio = True
        self._opener = opener
        if self._switch_pending(audio=True):
            self._need_switch()

    def _need_switch(self) -> None:
        """The open connection's sound differs from what the consumers need: switch."""
        if self._switched.is_set():
            self._switched = anyio.Event()
        if not self._switching and self._stream is not None and not self.finished:
            self._switching = True
            _spawn(self._switch)

    def _switch_done(self) -> None:
        """The switch ended (made, made moot by a reconnect, or failed): consumers waiting for
        it take what flows from now on, from a keyframe."""
        for sub in self._subs:
            if sub._await_switch:
                sub._await_switch = False
                sub._need_key, sub._mark_gap = True, False
        self._switched.set()

    def _audio_left(self) -> None:
        """No audio consumer is left: switch back to video only if the upstream lives on."""
        if not self._audio or any(s.audio for s in self._subs):
            return
        opener = self._video_opener or next(
            (s._opener for s in self._subs if s._opener is not None), None
        )
        if opener is None:
            return  # no grant to reopen without sound: it stays as it is until it closes
        self._audio = False
        self._opener = opener
        if self._switch_pending(audio=False):
            self._need_switch()

    async def _switch(self) -> None:
        """Open a second connection with the current opener, read it up to its first video
        keyframe and hand it to the pump, which replaces the old connection with it."""
        audio, opener = self._audio, self._opener
        new: LiveStream | None = None
        failed = False
        try:
            with anyio.CancelScope() as scope:
                self._switch_scope = scope
                try:
                    with anyio.fail_after(self._relay.settings.switch_wait_s):
                        new = await opener()
                        it = new.__aiter__()
                        first = await it.__anext__()
                        while not _is_key(first):
                            first = await it.__anext__()
                except Exception as exc:  # logged; the old connection carries on
                    failed = True
                    what = "add the audio track" if audio else "drop the audio track"
                    why = "no keyframe in time" if isinstance(exc, TimeoutError) else str(exc)
                    log.warning("%s: could not %s: %s", self.camera.id, what, why)
                    return
                if not (self.finished or self._open_audio == audio or self._audio != audio):
                    self._swap, new = (new, it, first), None
        finally:
            self._switching = False
            self._switch_scope = None
            if new is not None:
                with anyio.CancelScope(shield=True):
                    await new.aclose()
            if self._swap is None:
                if self._mismatch() and not failed and not self.finished:
                    self._need_switch()  # the consumers changed their minds meanwhile
                else:
                    self._switch_done()  # failed, or made moot by a reconnect

    async def leave(self, sub: Subscription) -> None:
        """Detach ``sub``; close the upstream when nobody is left and no cache is allowed
        (switch back to video only when the last audio consumer left a living upstream)."""
        self._subs.discard(sub)
        if not self._subs and not self._warm:
            await self.aclose()
        elif sub.audio:
            self._audio_left()

    def drop(self) -> None:
        """Drop the cache and start closing now (synchronous): nothing more is offered, and
        nothing still queued for a consumer is handed out."""
        self._warm = False
        self._gop.clear()
        self.finished = True
        for sub in self._subs:
            sub._queue.clear()
        self._relay._forget(self)
        if self._scope is not None:
            self._scope.cancel()
        if self._switch_scope is not None:
            self._switch_scope.cancel()
        self._switched.set()
        for sub in list(self._subs):
            sub._wakeup()

    async def aclose(self) -> None:
        """Drop the cache, close the camera connection and end every subscription; returns once
        the connection is closed. Idempotent."""
        started = self._started
        self.drop()
        self._ready.set()
        if started:
            with anyio.CancelScope(shield=True):
                await self._done.wait()

    def _publish(self, packets: Iterable[MediaPacket]) -> None:
        for packet in packets:
            if self.finished:
                return
            self.packets += 1
            if packet.stream.kind == "video":
                self._info = packet.stream
            if self._warm and (
                (self.warm_until is not None and packet.arrival >= self.warm_until)
                or (self.cache_guard is not None and not self.cache_guard())
            ):
                self.warm = False  # the incident's window ended, or consent or incident changed
                if not self._subs:
                    self.drop()  # nobody watches: close the connection too
                    return
            if self._warm:
                if _is_key(packet):
                    self._gop = [packet]
                elif self._gop:
                    if len(self._gop) >= self._relay.settings.gop_max_packets:
                        self._gop = []  # a GOP too long to hold: cache from the next keyframe
                    else:
                        self._gop.append(packet)
            for sub in list(self._subs):
                sub._offer(packet)

    async def _lost(self) -> None:
        if self._transform is not None:
            self._publish(await transform_flush(self._transform))
        self._gop.clear()
        for sub in list(self._subs):
            sub._gap()

    async def _run(self) -> None:
        stream: LiveStream | None = None
        settings = self._relay.settings
        backoff = settings.backoff_initial_s
        try:
            with anyio.CancelScope() as scope:
                self._scope = scope
                if self.finished:
                    return
                lost_at: float | None = None
                while True:
                    try:
                        self._open_audio = self._audio
                        stream = await self._opener()
                        self._stream = stream
                        self._note(stream)
                    except Exception as exc:  # handed to the consumers
                        self.error = exc
                        if not isinstance(exc, AdapterError) or isinstance(exc, AccountUnlinked):
                            for sub in list(self._subs):
                                sub._fail(exc)  # settings, a bug, an account unlinked: final
                            return
                        if not self.opened and not self._warm:
                            return  # nobody to reconnect for: the waiting consumers get it
                        log.info("%s: reconnect failed: %s", self.camera.id, exc)
                        now = anyio.current_time()
                        lost_at = now if lost_at is None else lost_at
                        if now - lost_at >= settings.give_up_s:
                            for sub in list(self._subs):
                                sub._fail(exc)
                            if not self._warm:
                                return
                    else:
                        lost_at = None
                        if self._info is None or self._transform is None:
                            self._info = stream.info
                        self.opened = True
                        self._ready.set()
                        backoff = settings.backoff_initial_s
                        if self.reconnects and not await self._renewed():
                            return  # not on record: the consumers got the error
                        if not await self._pump(stream):
                            return  # the transform or the adapter failed: consumers told
                        stream = self._stream or stream  # a switch may have replaced it
                        with anyio.CancelScope(shield=True):
                            await stream.aclose()
                        stream = self._stream = None
                        await self._lost()
                        self.reconnects += 1
                    await anyio.sleep(backoff)
                    backoff = min(backoff * 2, settings.backoff_max_s)
        finally:
            self.finished = True
            self._relay._forget(self)
            swap, self._swap = self._swap, None
            with anyio.CancelScope(shield=True):
                # The stream open now (a switch may have replaced the one opened here).
                for open_ in {id(s): s for s in (stream, self._stream) if s is not None}.values():
                    await open_.aclose()
                if swap is not None:
                    await swap[0].aclose()
            self._gop.clear()
            self._ready.set()
            self._switched.set()
            self._done.set()
            for sub in list(self._subs):
                sub._wakeup()

    async def _renewed(self) -> bool:
        """Tell the relay's ``on_renewed`` of this renewal (for the consumers' grants); False
        (consumers failed with its error) when it raised."""
        hook = self._relay.on_renewed
        subs = list(self._subs)
        if hook is None or not subs:
            return True
        try:
            await hook(self.camera, [sub.grant for sub in subs], self.reconnects, self.lost_cause)
        except Exception as exc:
            self.error = exc
            for sub in subs:
                sub._fail(exc)
            return False
        return True

    async def _pump(self, stream: LiveStream) -> bool:
        """Relay ``stream`` until it is lost (True: the stream in ``_stream`` is to be closed)
        or fails for good (consumers told, False); replaces it by a switched connection when
        one is ready."""
        if self._mismatch():
            self._need_switch()  # consumers changed while it was opening
        elif not self._switching:
            self._switch_done()
        packets: AsyncIterator[MediaPacket] = stream.__aiter__()
        first: MediaPacket | None = None
        while True:
            try:
                if first is not None:
                    await self._relay_one(first)
                    first = None
                async for packet in packets:
                    await self._relay_one(packet)
                    if self._swap is not None:
                        break
                else:
                    self.lost_cause = str(getattr(stream, "end_cause", None) or "ended")
            except _TransformFailed as failed:  # reconnecting cannot help
                self.error = failed.error
                for sub in list(self._subs):
                    sub._fail(failed.error)
                return False
            except AccountUnlinked as exc:  # the vendor account is gone: reconnecting cannot help
                self.error = exc
                for sub in list(self._subs):
                    sub._fail(exc)
                return False
            except AdapterError as exc:
                log.info("%s: upstream lost: %s", self.camera.id, exc)
                self.lost_cause = f"lost: {type(exc).__name__}"
            except Exception as exc:  # the transform (or the adapter) is broken
                self.error = exc
                for sub in list(self._subs):
                    sub._fail(exc)  # reconnecting cannot help: tell and stop
                return False
            if self._swap is None:
                return True
            # The switched connection is ready: close the old one, go on with the new one.
            new, packets, first = self._swap
            self._swap = None
            self._stream = new
            self._note(new)
            with anyio.CancelScope(shield=True):
                await stream.aclose()
            stream = new
            self._open_audio = self._audio
            self.switches += 1
            log.info(
                "%s: upstream switched to a connection %s sound",
                self.camera.id,
                "with" if self._open_audio else "without",
            )
            if self._transform is not None:
                self._publish(self._transform.flush())
            self._gop.clear()
            for sub in list(self._subs):
                if not sub._await_switch:
                    sub._gap()  # timestamps may restart at the new connection's keyframe
            self._switch_done()
            if self._mismatch():
                self._need_switch()

    def _note(self, stream: LiveStream) -> None:
        notes = getattr(stream, "notes", None)
        if isinstance(notes, dict):
            self.notes.update({str(k): str(v) for k, v in notes.items()})

    async def _relay_one(self, packet: MediaPacket) -> None:
        self.packets_in += 1
        if self._transform is None:
            self._publish((packet,))
            return
        try:
            # In a worker thread: a re-encode must not stall the event loop.
            out = await transform_feed(self._transform, packet)
        except Exception as exc:  # handed to the consumers
            raise _TransformFailed(exc) from exc
        self._publish(out)


class Relay:
    """Every camera's upstream, keyed by camera id.

    ``transform_factory`` builds each camera's :class:`PacketTransform` when its upstream is
    created (None: pass-through); it runs before any grant, so the edge passes camgate's own
    mask re-encoder only. ``clock`` tells when a subscription's grant has expired.
    ``on_renewed`` is awaited at every renewal of an upstream that has consumers (a reconnect
    after its connection ended or was lost), before the new connection's first packet.

    The edge keeps its relay private: packets reach a consumer only through a subscription made
    for a grant the edge's guard verified (see :meth:`subscribe`).
    """

    def __init__(
        self,
        settings: RelaySettings | None = None,
        transform_factory: TransformFactory | None = None,
        clock: Clock | None = None,
        on_renewed: RenewalHook | None = None,
    ) -> None:
        self.settings = settings or RelaySettings()
        self.transform_factory = transform_factory
        self.clock: Clock = clock or SystemClock()
        #: Awaited at each renewal of an upstream with consumers (the module docstring).
        self.on_renewed = on_renewed
        self._upstreams: dict[str, Upstream] = {}

    def __repr__(self) -> str:
        return f"<Relay upstreams={len(self._upstreams)}>"

    @staticmethod
    def can_start() -> bool:
        """True inside a running event loop (asyncio or trio), where a pump can start."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            try:
                import trio  # type: ignore[import-not-found,unused-ignore]

                trio.lowlevel.current_trio_token()
            except (ImportError, RuntimeError):
                return False
        return True

    def upstream(self, camera_id: str) -> Upstream | None:
        """The camera's live upstream, if one exists."""
        return self._upstreams.get(camera_id)

    def upstreams(self) -> list[Upstream]:
        """Every upstream that exists now."""
        return list(self._upstreams.values())

    def _get(self, camera: Camera, opener: Opener) -> Upstream:
        up = self._upstreams.get(camera.id)
        if up is None or up.finished:
            factory = self.transform_factory
            up = Upstream(self, camera, opener, factory(camera) if factory else None)
            self._upstreams[camera.id] = up
        return up

    def _forget(self, up: Upstream) -> None:
        if self._upstreams.get(up.camera.id) is up:
            del self._upstreams[up.camera.id]

    def subscribe(self, camera: Camera, grant: Grant, opener: Opener, now: float) -> Subscription:
        """Attach a consumer to the camera's upstream (created, not yet started, if missing),
        for ``grant`` — a live grant of this camera that the caller verified.

        Raises GrantMismatch for a grant of another camera or scope and GrantExpired for an
        expired one; the subscription hands over nothing (queued or new) once the grant
        expires, whoever reads it. Synchronous, so the caller can record
        :attr:`Subscription.start_offset_s` before any packet is handed over; call
        :meth:`Subscription.wait_open` next.
        """
        _expiry(camera, grant, self.clock)  # before an upstream is made for it
        up = self._get(camera, opener)
        up.want(opener, audio=grant.audio)
        return Subscription(up, grant, now, opener)

    def statistics(self) -> RelayStatistics:
        """A snapshot of the relay's settings and upstreams, without packets."""
        return RelayStatistics(
            self.settings, tuple(up.statistics() for up in self._upstreams.values())
        )

    def warm(self, camera: Camera, opener: Opener) -> Upstream:
        """Allow the camera's GOP cache and start its upstream (call inside the event loop)."""
        up = self._get(camera, opener)
        up.want(opener, audio=False)  # the cache's warrant never asks for sound
        up.warm = True
        up.start()
        return up

    def cool(self, camera_id: str) -> Upstream | None:
        """Drop the camera's GOP cache now; returns the upstream for the caller to close when
        nobody consumes it (see :meth:`close_idle`)."""
        up = self._upstreams.get(camera_id)
        if up is not None:
            up.warm = False
        return up

    async def close_idle(self, camera_id: str) -> None:
        """Close the camera's upstream if it has no cache and no consumer."""
        up = self._upstreams.get(camera_id)
        if up is not None and not up.warm and not up.consumers:
            await up.aclose()

    def drop(self, camera_ids: Iterable[str]) -> list[Upstream]:
        """Drop the caches of ``camera_ids`` and start closing their upstreams, synchronously;
        await :meth:`Upstream.aclose` on the returned ones to wait for the connections."""
        dropped = []
        for camera_id in camera_ids:
            up = self._upstreams.get(camera_id)
            if up is not None:
                up.drop()
                dropped.append(up)
        return dropped

    async def aclose(self) -> None:
        """Close every upstream and wait for their connections to close."""
        for up in list(self._upstreams.values()):
            await up.aclose()
