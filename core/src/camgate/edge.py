"""The edge: the owner's side of the trust boundary, where media is fetched and guarded.

The edge holds the camera credentials and the adapters. It serves media only against a signed
grant it verifies itself (offline, with the hub's public key), and only inside a guard:

1. verify the token's signature, then that it names this camera and scope and is in its time;
2. check the owner's consent still stands, and redeem the grant (once: a replay is refused);
3. append ``access.start`` to the audit log — durable before the camera is even contacted;
4. call the adapter, and hand its packets to the consumer through a :class:`GuardedStream`
   that ends the stream when the grant expires or the owner revokes: a packet that would be
   handed over after a revocation is never handed over;
5. append ``access.end`` with the packets and bytes served, and why it ended.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, NoReturn, Self

import anyio
import anyio.to_thread
import attrs

from camgate.adapters import Adapter, Credentials, LiveStream, Secret
from camgate.audit import AuditLog
from camgate.clock import Clock, SystemClock
from camgate.codec import dump
from camgate.errors import (
    AdapterError,
    CameraProtocolError,
    CamgateError,
    ConsentRevoked,
    GrantExpired,
    GrantMismatch,
    GrantReplayed,
    NotFound,
    ValidationError,
)
from camgate.grants import GrantVerifier, SignedGrant, check_grant
from camgate.media import (
    BrowserTranscode,
    Cut,
    Gap,
    HlsWriter,
    MaskTransform,
    Muxer,
    PacketTransform,
    WindowCut,
    chain,
    mask_jpeg,
)
from camgate.media.files import Folder, PrivateFile
from camgate.models import (
    Camera,
    Clip,
    Grant,
    Incident,
    MediaPacket,
    Scope,
    Snapshot,
    StreamInfo,
)
from camgate.plugins import PluginHost
from camgate.relay import (
    Opener,
    Relay,
    RelaySettings,
    RelayStatistics,
    Subscription,
    TransformFactory,
    Upstream,
)
from camgate.retention import Export
from camgate.store import Store
from camgate.vocab import AuditKind, EndReason, GrantProblem

if TYPE_CHECKING:
    from camgate.retention import Retention

__all__ = ["CLIP_FORMATS", "Edge", "GuardedStream", "StreamStats"]

#: What :meth:`Edge.record_clip` writes: an MP4 file, a fragmented MP4 file, an MPEG-TS file,
#: or an HLS directory (VOD playlist ``index.m3u8`` plus segments).
CLIP_FORMATS = ("mp4", "fmp4", "ts", "hls")

log = logging.getLogger(__name__)


@attrs.frozen
class StreamStats:
    """An immutable snapshot of what a guarded stream has served."""

    packets: int
    nbytes: int
    ended: bool
    end_reason: EndReason | None


class GuardedStream:
    """A live stream bound to one grant. Iterate it for packets; it ends itself.

    Iteration stops (StopAsyncIteration) when the grant expires or the camera ends the stream;
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

    async def _refuse(self) -> NoReturn:
        if not self._revoker_closes:
            await self._end(EndReason.REVOKED)
        raise ConsentRevoked(f"consent for camera {self.camera.id!r} was revoked")

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
                    # A relay subscription ends itself when the grant expires.
                    expired = getattr(self._upstream, "expired", False) is True
                    await self._end(EndReason.EXPIRED if expired else EndReason.COMPLETED)
                    raise
                except anyio.get_cancelled_exc_class():
                    self._read_scope = None
                    if not scope.cancel_called:  # the consumer was cancelled, not our scope
                        await self._end(EndReason.CLOSED)
                    raise  # our own scope (revocation, deadline) swallows it on exit
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


class Edge:
    """The owner's side: credentials, adapters, grant verification and guarded media.

    ``adapter_settings`` maps an adapter name to its settings; camera credentials kept in the
    store are added under ``credentials`` (by camera id), and a camera's own stored settings
    (and :meth:`override_settings`) go over them for that camera (:meth:`_adapter`). A
    revocation made through this process's gate reaches every stream at once; one committed by
    another process sharing the store is seen before the next packet is handed over.
    """

    def __init__(
        self,
        *,
        store: Store,
        host: PluginHost,
        verifier: GrantVerifier,
        audit: AuditLog,
        clock: Clock | None = None,
        adapter_settings: Mapping[str, Mapping[str, Any]] | None = None,
        relay_settings: RelaySettings | None = None,
        transform_factory: TransformFactory | None = None,
    ) -> None:
        self.store = store
        self.host = host
        self.verifier = verifier
        self.audit = audit
        self.clock: Clock = clock or SystemClock()
        self._settings = dict(adapter_settings or {})
        #: (adapter name, fingerprint of the camera-level settings) -> the adapter built for them
        self._adapters: dict[tuple[str, str], Adapter] = {}
        #: camera id -> this process's settings over the stored ones (override_settings)
        self._overrides: dict[str, dict[str, Any]] = {}
        self._live: set[GuardedStream] = set()
        self._marks: dict[tuple[str, str], int] = {}
        self._generation = 0
        #: Where exported files are registered with their expiry (set by the gate); None: not.
        self.retention: Retention | None = None
        #: One upstream per camera, fanned out to every guarded consumer (docs/media.md).
        # Masks are applied once, upstream, by the relay (camgate's own code: the relay runs
        # before any grant, for the warm cache). An embedder's transform factory never runs
        # there: each live consumer's guard builds and runs its own, after the grant check.
        self._extra_transform = transform_factory
        self._masks_used: dict[str, tuple[tuple[tuple[float, float], ...], ...]] = {}
        # Private: no public attribute hands out the relay, an upstream, cached packets or a
        # subscription; media leaves only through open_live/open_recorded/snapshot/record_clip
        # for a verified grant. relay_statistics() is the read-only view.
        self._relay = Relay(relay_settings, self._transform, self.clock)
        #: camera id -> the open incidents whose geofence allows its GOP cache.
        self._warmth: dict[str, set[str]] = {}
        self._dropping: dict[tuple[str, str], list[Any]] = {}

    def __repr__(self) -> str:
        return f"<Edge store={self.store.path} live={len(self._live)}>"

    # ------------------------------------------------------------------ relay (read-only)

    def relay_statistics(self) -> RelayStatistics:
        """A snapshot of the relay (settings, each camera's upstream: consumers, cache size,
        reconnects), immutable and without packets: the relay itself stays private."""
        return self._relay.statistics()

    def configure_relay(
        self, settings: RelaySettings, transform_factory: TransformFactory | None = None
    ) -> None:
        """Replace the relay's settings (and the embedder's transform factory) while no upstream
        exists; ValidationError otherwise.

        ``transform_factory`` builds one transform per live consumer, run inside its
        :class:`GuardedStream` after the grant check and after the owner's masks (which the
        relay burns in once per camera): embedder code sees only packets a verified grant is
        being served, and runs once per consumer."""
        if self._relay.upstreams():
            raise ValidationError("the relay has open upstreams: configure it before streaming")
        self._extra_transform = transform_factory
        self._relay = Relay(settings, self._transform, self.clock)

    def cache_enabled(self) -> bool:
        """True when the GOP cache is on and a cache could start here (inside an event loop)."""
        return self._relay.settings.gop_cache and self._relay.can_start()

    # ------------------------------------------------------------------ adapters

    def configure(self, adapter: str, settings: Mapping[str, Any]) -> None:
        """Set (or replace) an adapter's settings; the adapter is rebuilt on next use."""
        self._settings[adapter] = dict(settings)
        self._forget(adapter)

    def credentials_changed(self, adapter: str) -> None:
        """Camera credentials in the store changed: rebuild the adapter on next use.

        Streams already open keep the connection they have.
        """
        self._forget(adapter)

    def _forget(self, adapter: str) -> None:
        for key in [key for key in self._adapters if key[0] == adapter]:
            del self._adapters[key]

    def override_settings(self, camera_id: str, settings: Mapping[str, Any]) -> None:
        """Settings for ``camera_id`` over its stored ones, in this process only (never
        stored): ``camgate request --setting``. Validated by the camera's adapter first
        (ValidationError, nothing changed); ``{}`` removes the override. Streams (and relay
        upstreams) already open keep the settings they were opened with."""
        camera = self.store.get_camera(camera_id)
        self.host.adapter(camera.adapter).check_settings(settings)
        if settings:
            self._overrides[camera_id] = dict(settings)
        else:
            self._overrides.pop(camera_id, None)

    def _adapter(self, name: str, camera_id: str | None = None) -> Adapter:
        """The adapter called ``name`` for ``camera_id``, built on first use from its settings
        and credentials.

        The settings are merged as: the adapter-wide ones (:meth:`configure`) < the camera's
        stored ones (secret values included) < this process's override; ``credentials`` are
        merged key by key over the store's. One adapter is built per distinct camera-level
        settings (cameras without any share one), so two cameras of a vendor with different
        settings never share a connection pool, device cache or TLS context.

        Private on purpose: the adapter holds credentials and serves media to whoever calls it;
        the edge calls it only for a verified grant.
        """
        own: dict[str, Any] = {}
        if camera_id is not None:
            own |= self.store.camera_settings(camera_id)
            own |= self.store.secret_settings(camera_id)
            own |= self._overrides.get(camera_id, {})
        key = (name, _fingerprint(own))
        if key not in self._adapters:
            factory = self.host.adapter(name)
            wide = self._settings.get(name, {})
            settings = {**wide, **own}
            creds = dict(self.store.credentials())
            creds.update(wide.get("credentials", {}))
            creds.update(own.get("credentials", {}))
            settings["credentials"] = creds
            self._adapters[key] = factory.create(settings)
        return self._adapters[key]

    async def aclose(self) -> None:
        """End every live stream (reason ``closed``) and close the adapters."""
        for stream in list(self._live):
            await stream.aclose()
        self._warmth.clear()
        await self._relay.aclose()
        for adapter in self._adapters.values():
            await adapter.aclose()
        self._adapters.clear()

    # ------------------------------------------------------------------ revocation

    def version(self) -> tuple[int, int]:
        """Changes whenever consent may have changed: a commit by another process to the store
        (SQLite's ``data_version``) or a revocation begun or finished in this process."""
        return (self.store.data_version(), self._generation)

    def changed_since(self, stream: GuardedStream) -> bool:
        """True when :meth:`version` moved since ``stream`` last looked (and remember it)."""
        now = self.version()
        if now == stream._seen:
            return False
        stream._seen = now
        return True

    def grant_problem(self, camera: Camera, grant: Grant, now: datetime) -> GrantProblem | None:
        """Why ``grant`` no longer holds for ``camera`` at ``now``, or None while it does.

        :class:`~camgate.vocab.GrantProblem` says what each value means (``REVOKED``: the
        consent the grant was issued under no longer stands; ``INCIDENT_CLOSED``).
        """
        if ("owner", camera.owner_id) in self._marks or ("camera", camera.id) in self._marks:
            return GrantProblem.REVOKED
        consent = self.store.active_consent(camera.id)
        if consent is None or grant.scope not in consent.terms.scopes:
            return GrantProblem.REVOKED
        if grant.consent_id is None or consent.id != grant.consent_id:
            # a grant bound to no consent record, or to one no longer standing
            return GrantProblem.REVOKED
        try:
            incident = self.store.get_incident(grant.incident_id)
        except NotFound:
            return GrantProblem.INCIDENT_CLOSED
        if not incident.active_at(now):
            return GrantProblem.INCIDENT_CLOSED
        return None

    def _begin(self, key: tuple[str, str]) -> int:
        self._marks[key] = self._marks.get(key, 0) + 1
        self._generation += 1
        hit = [s for s in self._live if self._matches(s, key)]
        for stream in hit:
            stream.trip(closer=True)  # the caller closes them (_close_marked)
        # The GOP caches of those cameras are dropped now, their upstreams start closing.
        kind, ident = key
        cameras = [
            up.camera.id
            for up in self._relay.upstreams()
            if (up.camera.owner_id if kind == "owner" else up.camera.id) == ident
        ]
        self._dropping.setdefault(key, []).extend(self._drop_upstreams(cameras))
        return len(hit)

    def _finish(self, key: tuple[str, str]) -> None:
        left = self._marks.get(key, 0) - 1
        if left > 0:
            self._marks[key] = left
        else:
            self._marks.pop(key, None)
            self._dropping.pop(key, None)
        self._generation += 1

    @staticmethod
    def _matches(stream: GuardedStream, key: tuple[str, str]) -> bool:
        kind, ident = key
        return (stream.camera.owner_id if kind == "owner" else stream.camera.id) == ident

    async def _close_marked(self, key: tuple[str, str]) -> None:
        for stream in [s for s in self._live if self._matches(s, key)]:
            stream.trip(closer=True)
            await stream._end(EndReason.REVOKED)
        for upstream in self._dropping.pop(key, []):
            await upstream.aclose()

    def begin_revocation(self, owner_id: str) -> int:
        """Trip every live stream of the owner's cameras now, and refuse new ones.

        Synchronous and instant: call it before anything touches the disk. Returns how many
        streams were tripped. Close them with :meth:`close_owner_streams`, and call
        :meth:`end_revocation` once the revocation is durable (or failed).
        """
        return self._begin(("owner", owner_id))

    def end_revocation(self, owner_id: str) -> None:
        """The revocation is on record (or failed): stop refusing by the in-memory mark."""
        self._finish(("owner", owner_id))

    async def close_owner_streams(self, owner_id: str) -> None:
        """End (reason ``revoked``) every stream of the owner's cameras and close their
        connections before returning."""
        await self._close_marked(("owner", owner_id))

    def begin_removal(self, camera_id: str) -> int:
        """Like :meth:`begin_revocation`, for one camera leaving camgate."""
        return self._begin(("camera", camera_id))

    def end_removal(self, camera_id: str) -> None:
        """The camera's removal is on record (or failed)."""
        self._finish(("camera", camera_id))

    async def close_camera_streams(self, camera_id: str) -> None:
        """End (reason ``revoked``) every stream of one camera, connections closed on return."""
        await self._close_marked(("camera", camera_id))

    def live_streams(self) -> list[GuardedStream]:
        """The streams open right now."""
        return list(self._live)

    # ------------------------------------------------------------------ redeeming grants

    async def _redeem(
        self,
        camera_id: str,
        token: str | SignedGrant,
        scope: Scope,
        attach: Callable[[Grant, Camera], dict[str, Any]] | None = None,
    ) -> tuple[Grant, Camera, tuple[int, int]]:
        grant = self.verifier.verify(token)
        now = self.clock.now()
        check_grant(grant, camera_id=camera_id, scope=scope, now=now)
        camera = await anyio.to_thread.run_sync(self.store.get_camera, camera_id)
        seen = self.version()  # before the check: a later change is noticed by the guard
        problem = await anyio.to_thread.run_sync(self.grant_problem, camera, grant, now)
        if problem is GrantProblem.REVOKED:
            raise ConsentRevoked(f"consent for camera {camera_id!r} is not in force")
        if problem is not None:
            raise GrantExpired(f"grant {grant.id}: its incident is closed or past its window")
        fresh = await anyio.to_thread.run_sync(self.store.redeem, grant.id, now)
        if not fresh:
            raise GrantReplayed(f"grant {grant.id} was already redeemed")
        body: dict[str, Any] = {"grant": dump(grant), "camera": camera_id}
        if attach is not None:
            body |= attach(grant, camera)
        await self._audit(AuditKind.ACCESS_START, body, now)
        self.host.access_started(grant, camera)
        return grant, camera, seen

    async def _audit(
        self, kind: AuditKind, body: dict[str, Any], at: datetime | None = None
    ) -> None:
        await anyio.to_thread.run_sync(
            lambda: self.audit.append(kind, body, at or self.clock.now())
        )

    def _deadline(self, grant: Grant) -> float:
        left = (grant.expires_at - self.clock.now()).total_seconds()
        return self.clock.monotonic() + max(0.0, left)

    async def open_live(
        self, camera_id: str, token: str | SignedGrant, *, browser: bool = False
    ) -> GuardedStream:
        """Open ``camera_id``'s live stream under a live grant; returns the guarded stream.

        With ``browser=True`` the video is what every browser plays: H.265 is transcoded to
        H.264 for this consumer (:class:`~camgate.media.BrowserTranscode`; H.264 and masked
        streams pass as they are).

        Raises a :class:`camgate.errors.GrantError` subclass for a forged, expired, replayed or
        mismatched grant, ConsentRevoked when consent no longer stands, or an AdapterError.
        """
        return await self._open_stream(camera_id, token, Scope.LIVE, browser)

    async def open_recorded(
        self, camera_id: str, token: str | SignedGrant, *, browser: bool = False
    ) -> GuardedStream:
        """Replay ``camera_id``'s stored footage inside the grant's window, under a recorded
        grant; the same guard as :meth:`open_live` (expiry, revocation, audit) applies, and
        the same ``browser`` option.

        Raises GrantMismatch when the grant names no window, and what :meth:`open_live` raises.
        """
        return await self._open_stream(camera_id, token, Scope.RECORDED, browser)

    async def _open_stream(
        self, camera_id: str, token: str | SignedGrant, scope: Scope, browser: bool = False
    ) -> GuardedStream:
        if scope is Scope.RECORDED:
            grant = self.verifier.verify(token)
            if grant.window_start is None or grant.window_end is None:
                raise GrantMismatch(f"grant {grant.id} covers no recorded window")
        subs: list[Subscription] = []
        live_masks: list[Any] = []  # what the upstream this consumer joins is masked with

        def attach(grant: Grant, camera: Camera) -> dict[str, Any]:
            # Synchronous, right before access.start: what the cache holds now is what this
            # consumer gets, and its age goes into the audit record.
            opener = self._opener(camera, grant)
            # Never join an upstream (or its cache) masked otherwise than the owner now asks.
            self._drop_if_stale(camera.id, self._polygons(camera.id))
            sub = self._relay.subscribe(camera, grant, opener, time.monotonic())
            subs.append(sub)
            live_masks.append(self._masks_used.get(camera.id, ()))
            offset = sub.start_offset_s
            return {
                "start": "cold" if offset is None else "cached",
                "cache_offset_s": offset or 0.0,
            }

        try:
            grant, camera, seen = await self._redeem(
                camera_id, token, scope, attach if scope is Scope.LIVE else None
            )
        except BaseException:
            with anyio.CancelScope(shield=True):
                for sub in subs:
                    await sub.aclose()
            raise
        upstream: LiveStream
        try:
            with anyio.fail_after(max(0.001, self._deadline(grant) - self.clock.monotonic())):
                if scope is Scope.RECORDED:
                    upstream = await self._adapter(camera.adapter, camera.id).recorded(
                        camera, grant
                    )
                else:
                    upstream = sub = subs[0]
                    await sub.wait_open()
                    if sub.start_offset_s is None:
                        # Nothing cached: ask for a keyframe now, if the camera can, rather
                        # than wait for its next GOP (the connection is open, so it is not missed).
                        await self.request_keyframe(camera)
        except BaseException as exc:
            with anyio.CancelScope(shield=True):
                for sub in subs:
                    await sub.aclose()
                await self._finish_unopened(grant, camera, exc)
            raise
        # Live packets come through the relay, masked upstream already; a replay is masked here.
        # The embedder's transform (live only) is this consumer's own, made only now that the
        # grant is verified, redeemed and audited; its guard feeds it only granted packets.
        transform: PacketTransform | Literal["masks"] | None = "masks"
        if scope is Scope.LIVE:
            try:
                factory = self._extra_transform
                transform = None if factory is None else factory(camera)
            except BaseException as exc:
                with anyio.CancelScope(shield=True):
                    await upstream.aclose()
                    await self._finish_unopened(grant, camera, exc)
                raise
        transcoding = False
        if browser:
            # Masked footage is H.264 from the masks' re-encoder already; the rest may need
            # the transcode (a no-op for H.264), after the embedder's transform (live).
            if isinstance(transform, str):  # a replay: the camera's masks, read once here
                transform = self.mask_transform(camera)
                transcoding = transform is None
                transform = transform or BrowserTranscode()
            else:
                transform = chain(transform, BrowserTranscode())
        stream = GuardedStream(
            self, grant, camera, upstream, self._deadline(grant), seen, transform=transform
        )
        if scope is Scope.LIVE:
            stream.masks_key = live_masks[0] if live_masks else ()
            stream.masked = bool(stream.masks_key)
        elif transcoding:
            stream.masked = False  # a browser transcode is not a mask
        self._live.add(stream)
        return stream

    def _opener(self, camera: Camera, grant: Grant) -> Opener:
        async def open_upstream() -> LiveStream:
            # Opened under one grant: the camera is asked for sound only when that grant allows
            # it. The relay switches the upstream to an audio grant's opener when one joins (and
            # back when the last leaves); each consumer's guard drops audio its grant lacks.
            return await self._adapter(camera.adapter, camera.id).open_live(camera, grant)

        return open_upstream

    async def request_keyframe(self, camera: Camera, timeout_s: float = 1.0) -> bool:
        """Ask the camera's adapter for a keyframe now (for a live grant just issued, or a
        consumer joining a running stream). True when the camera said yes; a failure or a
        time-out is logged and gives False — the stream still starts at the next keyframe."""
        try:
            with anyio.fail_after(timeout_s):
                return await self._adapter(camera.adapter, camera.id).request_keyframe(camera)
        except (CamgateError, TimeoutError) as exc:
            log.info("%s: keyframe request failed: %s", camera.id, type(exc).__name__)
            return False

    async def push_masks(
        self,
        camera: Camera,
        polygons: tuple[tuple[tuple[float, float], ...], ...],
        timeout_s: float = 5.0,
    ) -> bool:
        """Hand the owner's masks to the camera's adapter, for cameras that can mask their own
        picture (ONVIF Media2). True when the camera took them; a failure or time-out is logged
        and gives False — the gate's own masking applies either way."""
        try:
            with anyio.fail_after(timeout_s):
                return await self._adapter(camera.adapter, camera.id).push_masks(camera, polygons)
        except (CamgateError, TimeoutError) as exc:
            log.info("%s: masks not pushed to the camera: %s", camera.id, type(exc).__name__)
            return False

    async def live_grant_issued(self, grant: Grant) -> bool:
        """The hub issued a live grant: ask the camera for a keyframe before the consumer opens,
        so the stream it opens starts without waiting for the next GOP. Returns what
        :meth:`request_keyframe` returned (False for other scopes)."""
        if grant.scope is not Scope.LIVE:
            return False
        try:
            camera = await anyio.to_thread.run_sync(self.store.get_camera, grant.camera_id)
        except NotFound:
            return False  # removed meanwhile: the grant will be refused at the edge anyway
        return await self.request_keyframe(camera)

    # ------------------------------------------------------------------ GOP cache

    def cache_allowed(self, camera: Camera) -> str | None:
        """Why ``camera`` may not have a GOP cache, or None when it may as far as the edge can
        tell: never for a battery camera, never without the owner's standing consent to live
        view, never while a revocation or removal of it is under way. (The owner's terms — ask
        first, quiet hours, end date — are the consent policies': see :meth:`warm`.)"""
        if not self._relay.settings.gop_cache:
            return "the GOP cache is off (RelaySettings.gop_cache)"
        if camera.battery:
            return "battery camera"
        if ("owner", camera.owner_id) in self._marks or ("camera", camera.id) in self._marks:
            return "revocation under way"
        consent = self.store.active_consent(camera.id)
        if consent is None or Scope.LIVE not in consent.terms.scopes:
            return "no consent to live view"
        return None

    def warm(
        self,
        incident: Incident,
        camera: Camera,
        authorised: Callable[[], datetime | None],
    ) -> bool:
        """An open incident's geofence covers ``camera``: keep its GOP cache (starting its
        upstream) until the incident closes or its window ends, if :meth:`cache_allowed` and
        the consent policies pre-authorise live view.

        ``authorised`` is the gate's policy verdict: until when a live request for the camera
        under ``incident`` would be granted now with nobody asked (the end of the incident's
        window, the consent's end date or the next quiet hours, whichever comes first), or None
        when it would not (ask-first, quiet hours, consent ended, any policy's denial). No
        upstream is opened unless it answers a moment still ahead; it is asked again whenever
        the store changes, and the cache is dropped at the moment it named.

        Must run inside the event loop (the upstream's pump is a task of it). The upstream is
        opened under an unsigned warrant naming the incident, never handed to anyone: a consumer
        still needs its own grant. Returns True when the cache is on.
        """
        now = self.clock.now()
        if self.cache_allowed(camera) is not None or not incident.active_at(now):
            return False
        until = authorised()
        if until is None or until <= now:
            return False
        self._warmth.setdefault(camera.id, set()).add(incident.id)
        warrant = Grant(
            id=f"cache-{incident.id}-{camera.id}",
            request_id="edge-cache",
            camera_id=camera.id,
            incident_id=incident.id,
            scope=Scope.LIVE,
            issued_at=now,
            expires_at=max(incident.window_end, now + timedelta(seconds=1)),
        )
        up = self._relay.warm(camera, self._opener(camera, warrant))
        left = (incident.window_end - now).total_seconds()
        up.warm_until = max(up.warm_until or 0.0, time.monotonic() + left)
        up.cache_guard = self._cache_guard(camera.id, authorised, until)
        return True

    def _cache_guard(
        self, camera_id: str, authorised: Callable[[], datetime | None], until: datetime
    ) -> Callable[[], bool]:
        """Whether the camera's cache may go on, re-read (the policies asked again through
        ``authorised``) only when the store changed (another process revoked, re-enrolled,
        removed the camera or closed the incident: SQLite's data_version) or the moment the
        policies last named (``until``: quiet hours begin, the consent ends) has come."""
        seen = [self.version()]
        clock = self.clock
        deadline = [clock.monotonic() + (until - clock.now()).total_seconds()]

        def still_allowed() -> bool:
            now = self.version()
            if now == seen[0] and clock.monotonic() < deadline[0]:
                return True
            seen[0] = now
            try:
                camera = self.store.get_camera(camera_id)
                open_ = [
                    i
                    for i in self._warmth.get(camera_id, set())
                    if self.store.get_incident(i).active_at(self.clock.now())
                ]
            except NotFound:
                return False
            horizon = None if not open_ or self.cache_allowed(camera) else authorised()
            left = 0.0 if horizon is None else (horizon - clock.now()).total_seconds()
            if (
                left <= 0
                # masked otherwise than the owner now asks: drop it
                or self._masks_used.get(camera_id, ()) != self._polygons(camera_id)
            ):
                self._warmth.pop(camera_id, None)
                return False
            deadline[0] = clock.monotonic() + left
            self._warmth[camera_id] = set(open_)
            return True

        return still_allowed

    def cool(self, incident_id: str) -> list[str]:
        """``incident_id`` closed: drop the GOP cache of every camera no other open incident
        keeps warm, and close its upstream when nobody consumes it. Synchronous; returns the
        cameras whose cache was dropped."""
        dropped = []
        for camera_id, incidents in list(self._warmth.items()):
            incidents.discard(incident_id)
            if incidents:
                continue
            del self._warmth[camera_id]
            dropped.append(camera_id)
            up = self._relay.cool(camera_id)
            if up is not None and not up.consumers:
                up.drop()
        return dropped

    async def _finish_unopened(self, grant: Grant, camera: Camera, exc: BaseException) -> None:
        reason = (
            EndReason.EXPIRED
            if isinstance(exc, TimeoutError)
            else EndReason.REVOKED
            if isinstance(exc, ConsentRevoked)
            else EndReason.ERROR
        )
        await self._audit(
            AuditKind.ACCESS_END,
            {
                "grant": grant.id,
                "camera": camera.id,
                "reason": reason,
                "packets": 0,
                "bytes": 0,
                "error": type(exc).__name__,
            },
        )
        self.host.access_ended(grant, camera, reason, 0, 0)

    async def _access_ended(self, stream: GuardedStream, reason: EndReason) -> None:
        self._live.discard(stream)
        stats = stream.stats()
        body: dict[str, Any] = {
            "grant": stream.grant.id,
            "camera": stream.camera.id,
            "reason": reason,
            "packets": stats.packets,
            "bytes": stats.nbytes,
        }
        # How the adapter reached the camera, when it says (e.g. a fallback to UDP).
        notes = getattr(stream._upstream, "notes", None)
        if isinstance(notes, dict) and notes:
            body["upstream"] = {str(k): str(v) for k, v in notes.items()}
        await self._audit(AuditKind.ACCESS_END, body)
        self.host.access_ended(stream.grant, stream.camera, reason, stats.packets, stats.nbytes)

    async def snapshot(self, camera_id: str, token: str | SignedGrant) -> Snapshot:
        """Take one still under a snapshot grant (audited with its size and hash)."""
        grant, camera, _seen = await self._redeem(camera_id, token, Scope.SNAPSHOT)
        try:
            with anyio.fail_after(max(0.001, self._deadline(grant) - self.clock.monotonic())):
                snap = await self._adapter(camera.adapter, camera.id).snapshot(camera, grant)
                masks = await anyio.to_thread.run_sync(self.store.masks, camera.id)
                if masks is not None:
                    jpeg = await anyio.to_thread.run_sync(mask_jpeg, snap.jpeg, masks.polygons)
                    snap = attrs.evolve(snap, jpeg=jpeg)
            now = self.clock.now()
            if await anyio.to_thread.run_sync(self.grant_problem, camera, grant, now):
                raise ConsentRevoked(f"consent for camera {camera_id!r} was revoked")  # noqa: TRY301
        except BaseException as exc:
            with anyio.CancelScope(shield=True):
                await self._finish_unopened(grant, camera, exc)
            raise
        await self._audit(
            AuditKind.ACCESS_END,
            {
                "grant": grant.id,
                "camera": camera.id,
                "reason": EndReason.COMPLETED,
                "packets": 1,
                "bytes": len(snap.jpeg),
                "sha256": hashlib.sha256(snap.jpeg).hexdigest(),
            },
        )
        self.host.access_ended(grant, camera, EndReason.COMPLETED, 1, len(snap.jpeg))
        return snap

    def mask_transform(self, camera: Camera) -> PacketTransform | None:
        """The camera's privacy-mask re-encoder, or None when its owner set no masks.

        A :data:`camgate.media.TransformFactory`: live streams, clips and snapshots all pass
        through it before anything leaves the gate.
        """
        masks = self.store.masks(camera.id)
        return None if masks is None else MaskTransform(masks.polygons)

    def _transform(self, camera: Camera) -> PacketTransform | None:
        """The relay's transform for ``camera``: its privacy masks only (camgate's own code; the
        relay runs before any grant, so an embedder's transform never runs there)."""
        # What the camera's (one) upstream is masked with, for masks_changed to compare.
        self._masks_used[camera.id] = polygons = self._polygons(camera.id)
        return MaskTransform(polygons) if polygons else None

    def masks_changed(self, stream: GuardedStream) -> bool:
        """True when the camera's masks in the store differ from those ``stream``'s packets
        were masked with (an owner changed them, maybe from another process). A stale relay
        upstream (and its GOP cache) is dropped at once, so the next consumer gets a transform
        built afresh."""
        now = self._polygons(stream.camera.id)
        if now == stream.masks_key:
            return False
        self._drop_if_stale(stream.camera.id, now)
        return True

    def _polygons(self, camera_id: str) -> Any:
        """The camera's mask polygons in the store now (``()`` for none)."""
        masks = self.store.masks(camera_id)
        return () if masks is None else masks.polygons

    def _drop_if_stale(self, camera_id: str, masks: Any) -> None:
        """Drop the camera's upstream and cache when they were masked otherwise than ``masks``."""
        if camera_id in self._masks_used and self._masks_used[camera_id] != masks:
            self._drop_upstreams([camera_id])

    def _drop_upstreams(self, camera_ids: list[str]) -> list[Upstream]:
        """Drop these cameras' relay upstreams now, with their GOP caches, warmth and the masks
        they were built with (synchronous: no one attaches to them any more); the dropped."""
        for camera_id in camera_ids:
            self._masks_used.pop(camera_id, None)
            self._warmth.pop(camera_id, None)
        return self._relay.drop(camera_ids)

    async def end_camera_streams(self, camera_id: str, reason: EndReason) -> int:
        """End every open stream of one camera with ``reason`` and close its relay upstream
        (with its GOP cache and transform: the next consumer starts afresh); returns how many
        streams ended."""
        dropped = self._drop_upstreams([camera_id])
        self._generation += 1  # every stream re-reads the store before its next packet
        streams = [s for s in self._live if s.camera.id == camera_id]
        for stream in streams:
            await stream._end(reason)
        for up in dropped:
            await up.aclose()
        return len(streams)

    async def record_clip(
        self,
        camera_id: str,
        token: str | SignedGrant,
        path: str | Path,
        duration_s: float | None = None,
        *,
        format: str = "mp4",
        browser: bool = False,
    ) -> Clip:
        """Write a clip under a live grant (``duration_s`` seconds from the next keyframe) or a
        recorded grant (the grant's window, cut on capture times: see docs/media.md).

        ``browser=True`` writes video every browser plays (H.265 transcoded to H.264, as for
        :meth:`open_live`); by default the camera's video is kept as it is.

        ``format`` is one of :data:`CLIP_FORMATS`; for ``hls`` ``path`` is a directory. Video
        passes through as it is unless the owner set privacy masks: then it is re-encoded with
        the masks burnt in. MP4 files carry the grant id in their tags (``camgate_grant``). If
        consent is revoked while recording, the partial output is deleted and ConsentRevoked
        raised. The clip's SHA-256 (of the file, or of the HLS playlist with every segment's
        hash beside it) is appended to the audit log (``clip.exported``) before this returns,
        and the output is registered for retention (``artifact.registered``, with its expiry).

        The clip is written as ``.NAME.partial`` beside ``path`` (private mode, see
        :mod:`camgate.media.files`), registered for retention before its first byte, and moved
        to ``path`` only once complete and audited, replacing a file (or an empty folder)
        there in one rename; ValidationError when ``path`` is a folder with files in it. A
        write error (a full disk) raises ExportError naming the file; whatever failed, what was
        written is removed and ``clip.failed`` says what was not exported and why.

        A live clip lasts ``duration_s`` of real time and ends on a display-order boundary
        (B-frames complete); a camera reconnecting meanwhile leaves a gap in its timeline
        (``gaps`` in ``clip.exported``). When the camera stops sending after the clip started,
        what was recorded is kept: the returned Clip has ``partial=True`` and ``reason`` ("the
        camera stopped sending after 4.0 s: ..."), audited the same way. See docs/media.md.
        """
        if format not in CLIP_FORMATS:
            raise ValidationError(f"format={format!r}: must be one of {', '.join(CLIP_FORMATS)}")
        grant = self.verifier.verify(token)
        cut: WindowCut | None = None
        if grant.scope is Scope.RECORDED:
            if grant.window_start is None or grant.window_end is None:
                raise GrantMismatch(f"grant {grant.id} covers no recorded window")
            cut = WindowCut(grant.window_start, grant.window_end)
        elif not (duration_s is not None and duration_s > 0 and math.isfinite(duration_s)):
            raise ValidationError(f"duration_s={duration_s!r}: must be a positive number")
        path = Path(path)
        if grant.scope is Scope.RECORDED:
            stream = await self.open_recorded(camera_id, token, browser=browser)
        else:
            stream = await self.open_live(camera_id, token, browser=browser)
        started = self.clock.now()
        writer: Muxer | None = None
        try:
            export = await anyio.to_thread.run_sync(
                lambda: Export(
                    self.retention,
                    path,
                    "clip",
                    camera_id=camera_id,
                    grant_id=stream.grant.id,
                    incident_id=stream.grant.incident_id,
                    directory=format == "hls",
                    replace=True,  # as before: a file (or empty folder) at path is replaced
                )
            )
        except BaseException:
            with anyio.CancelScope(shield=True):
                await stream.aclose()
            raise
        rec = _Recording()
        try:
            await self._record(rec, stream, export, format, cut, duration_s)
            writer = rec.writer
            if writer is not None:
                await anyio.to_thread.run_sync(writer.close)
            if writer is None or not writer.started:
                raise CameraProtocolError("the stream ended before its first keyframe")  # noqa: TRY301
        except BaseException as exc:
            writer = rec.writer
            with anyio.CancelScope(shield=True):
                await self._clip_failed(export, writer, stream, path, format, exc)
            raise
        if cut is not None and cut.first is not None:
            started = cut.first
        return await self._clip_done(export, writer, stream, format, started, rec.stopped)

    async def _record(
        self,
        rec: _Recording,
        stream: GuardedStream,
        export: Export,
        format: str,
        cut: WindowCut | None,
        duration_s: float | None,
    ) -> None:
        """Write ``stream`` into ``export`` until the window or ``duration_s`` of real time is
        over; ``rec`` gets the writer (as soon as it exists: a failure closes it), and why
        the clip is shorter than asked (None when it is not).

        A live clip ends before the first picture at or past ``duration_s`` that displays
        after everything written (:meth:`Muxer.reaches`), or when, waiting for the camera to
        come back, ``duration_s`` (plus a second) of real time has passed since its first
        picture. When the camera stops sending after the clip has started (an adapter
        error), what was written is kept: the reason is returned, not raised."""
        writer: Muxer | None = None
        began: float | None = None  # when the first picture was written (event loop time)
        live = duration_s is not None and cut is None
        async with stream:
            with anyio.CancelScope() as timer:
                async for packet in _until_error(stream):  # masked by the guard
                    if isinstance(packet, AdapterError):
                        if writer is None or not writer.started or writer.duration <= 0:
                            raise packet
                        rec.stopped = (
                            f"the camera stopped sending after {writer.duration:.1f} s: {packet}"
                        )
                        break
                    if cut is not None:
                        verdict = cut(packet)
                        if verdict is Cut.STOP:
                            break
                        if verdict is Cut.SKIP:
                            continue
                    if writer is None:
                        if packet.stream.kind != "video":
                            continue
                        writer = rec.writer = _clip_writer(
                            export.out.folder or export.out.sink(),
                            format,
                            packet.stream,
                            stream.grant,
                            stream.audio_info,
                        )
                    if live and duration_s is not None and writer.reaches(packet, duration_s):
                        break
                    change = writer.shape_change(packet) if writer.started else None
                    if change is not None:  # an MP4 holds one shape: keep what it has
                        rec.stopped = change
                        break
                    writer.write(packet)
                    if live and duration_s is not None and writer.started:
                        # Real time, not stream time: a reconnect must not stretch the clip.
                        # While packets flow (a consumer behind real time, a busy mask
                        # re-encoder) the clip ends on its pictures; the timer ends a wait.
                        now = anyio.current_time()
                        began = now if began is None else began
                        timer.deadline = max(began + duration_s + 1.0, now + _STALL_S)
            if timer.cancelled_caught and writer is not None and duration_s is not None:
                missing = duration_s - writer.duration
                if missing > 0:  # the camera was reconnecting when the time was up
                    writer.gaps.append(Gap(writer.duration, missing))
        if live and rec.stopped is None and writer is not None and duration_s is not None:
            end = stream.stats().end_reason
            if writer.duration < duration_s - 0.5 and not writer.gaps and end is not None:
                rec.stopped = f"the stream ended ({end}) after {writer.duration:.1f} s"

    async def _clip_failed(
        self,
        export: Export,
        writer: Muxer | None,
        stream: GuardedStream,
        path: Path,
        format: str,
        exc: BaseException,
    ) -> None:
        """A clip that did not complete: close the writer (its own error is secondary), remove
        what it wrote with its retention record, and audit what was not exported and why."""
        if writer is not None:
            try:
                writer.close()
            except CamgateError:
                log.debug("closing the failed clip's writer failed too", exc_info=True)
        written = await anyio.to_thread.run_sync(export.out.size)
        reason = str(exc) if isinstance(exc, CamgateError) else type(exc).__name__
        await anyio.to_thread.run_sync(lambda: export.discard(reason))
        await self._audit(
            AuditKind.CLIP_FAILED,
            {
                "grant": stream.grant.id,
                "camera": stream.camera.id,
                "path": str(path),
                "format": format,
                "error": reason,
                "bytes_written": written,
                "exported": False,
                "removed": True,
            },
        )

    async def _clip_done(
        self,
        export: Export,
        writer: Muxer,
        stream: GuardedStream,
        format: str,
        started: datetime,
        stopped: str | None = None,
    ) -> Clip:
        """Hash the complete clip (still under its partial name), audit ``clip.exported``,
        finish its retention row and only then move it to its final name. ``stopped`` (why
        the clip is shorter than asked) makes it a partial clip: kept, and audited as such."""
        path = export.final
        try:  # through the export's descriptor: ExportError if its partial name was swapped
            files = await anyio.to_thread.run_sync(export.out.hashes)
        except BaseException as exc:
            with anyio.CancelScope(shield=True):
                await self._clip_failed(export, None, stream, path, format, exc)
            raise
        body: dict[str, Any] = {}
        size = sum(length for _, length in files.values())
        if format == "hls":
            digest = files["index.m3u8"][0]
            body["segments"] = {n: h for n, (h, _) in sorted(files.items()) if n.endswith(".ts")}
        else:
            ((digest, _),) = files.values()
        clip = Clip(
            grant_id=stream.grant.id,
            camera_id=stream.camera.id,
            path=str(path),
            duration_s=writer.duration,
            size=size,
            sha256=digest,
            started_at=started,
            partial=stopped is not None,
            reason=stopped,
        )
        if writer.gaps:
            body["gaps"] = [{"at_s": g.at_s, "missing_s": g.missing_s} for g in writer.gaps]
        try:
            await self._audit(
                AuditKind.CLIP_EXPORTED,
                dump(clip) | body | {"format": format, "masked": stream.masked},
            )
            sha = None if format == "hls" else digest
            await anyio.to_thread.run_sync(lambda: export.commit(sha256=sha, created_at=started))
        except BaseException:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(lambda: export.discard("not exported"))
            raise
        return clip


#: A live clip waits at least this long (seconds) for the next packet before its real-time
#: end applies (packets still flowing behind real time are written, not cut).
_STALL_S = 2.0


class _Recording:
    """What :meth:`Edge._record` has done so far: the clip's writer (once the first video
    packet arrived) and why the clip ends short (None while it does not)."""

    def __init__(self) -> None:
        self.writer: Muxer | None = None
        self.stopped: str | None = None


def _fingerprint(settings: Mapping[str, Any]) -> str:
    """A digest of camera-level settings (secret values included, so two cameras whose
    passwords differ get two adapters; the digest shows none of them)."""

    def plain(value: object) -> object:
        if isinstance(value, Secret):
            return value.reveal()
        if isinstance(value, Credentials):
            return [value.username, value.password.reveal()]
        return repr(value)

    text = json.dumps(dict(settings), sort_keys=True, default=plain)
    return hashlib.sha256(text.encode()).hexdigest()


async def _until_error(stream: GuardedStream) -> AsyncIterator[MediaPacket | AdapterError]:
    """``stream``'s packets, then the camera's error (an AdapterError) as the last item
    instead of raising it, so a clip can keep what it wrote before the camera stopped."""
    while True:
        try:
            packet = await stream.__anext__()
        except StopAsyncIteration:
            return
        except AdapterError as exc:
            yield exc
            return
        yield packet


def _clip_writer(
    out: Folder | PrivateFile, format: str, info: StreamInfo, grant: Grant, audio: StreamInfo | None
) -> Muxer:
    if isinstance(out, Folder):
        return HlsWriter(out, info, audio=audio)
    tags = {"camgate_grant": grant.id, "camgate_camera": grant.camera_id}
    if format == "ts":
        tags = {"service_provider": "camgate", "service_name": f"grant {grant.id}"}
    tags |= {"comment": f"camgate grant {grant.id}"}
    return Muxer(out, info, format=format, audio=audio, metadata=tags)
