"""The GOP cache: the edge's glue to its relay (one upstream per camera, fanned out).

The relay keeps one camera connection per camera for every guarded consumer, with the owner's
privacy masks burnt in once, upstream. An open incident's geofence may keep a camera's upstream
warm (its last GOP cached) so a granted consumer starts at once — only while the consent
policies pre-authorise live view, never for a battery camera, never during a revocation. A
change of masks drops a stale upstream with its cache (docs/media.md).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from camgate.adapters import Adapter, LiveStream
from camgate.clock import Clock
from camgate.errors import NotFound, ValidationError
from camgate.media import MaskTransform, PacketTransform
from camgate.models import Camera, Grant, Incident, Scope
from camgate.relay import Opener, Relay, RelaySettings, RelayStatistics, TransformFactory, Upstream
from camgate.store import Store

if TYPE_CHECKING:
    from camgate.edge.guard import GuardedStream

__all__ = ["GopCache"]


class GopCache:
    """The relay and GOP-cache part of :class:`~camgate.edge.Edge` (a mixin: its state lives
    on the edge, set up by ``Edge.__init__``)."""

    if TYPE_CHECKING:
        store: Store
        clock: Clock
        _relay: Relay
        _marks: dict[tuple[str, str], int]
        _warmth: dict[str, set[str]]
        _masks_used: dict[str, tuple[tuple[tuple[float, float], ...], ...]]
        _extra_transform: TransformFactory | None

        def version(self) -> tuple[int, int]: ...

        def _adapter(self, name: str, camera_id: str | None = None) -> Adapter: ...

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
        self._relay = Relay(settings, self._transform, self.clock, self._relay.on_renewed)

    def cache_enabled(self) -> bool:
        """True when the GOP cache is on and a cache could start here (inside an event loop)."""
        return self._relay.settings.gop_cache and self._relay.can_start()

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

    def _opener(self, camera: Camera, grant: Grant) -> Opener:
        async def open_upstream() -> LiveStream:
            # Opened under one grant: the camera is asked for sound only when that grant allows
            # it. The relay switches the upstream to an audio grant's opener when one joins (and
            # back when the last leaves); each consumer's guard drops audio its grant lacks.
            return await self._adapter(camera.adapter, camera.id).open_live(camera, grant)

        return open_upstream

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
