"""The edge's access path: grants redeemed, adapters called, guarded streams opened.

:class:`Edge` is assembled from its parts — the guard (:mod:`camgate.edge.guard`), revocation
state (:mod:`camgate.edge.revocation`), the GOP cache (:mod:`camgate.edge.cache`) and clip
export (:mod:`camgate.edge.clips`); this module holds what joins them: the adapters and their
settings, redeeming a grant (audited before the camera is contacted), opening live and recorded
streams, snapshots, and the ``access.end`` record of every access.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

import anyio
import anyio.to_thread
import attrs

from camgate.adapters import Adapter, Credentials, LiveStream, Secret
from camgate.audit import AuditLog
from camgate.clock import Clock, SystemClock
from camgate.codec import dump
from camgate.edge.cache import GopCache
from camgate.edge.clips import ClipExport
from camgate.edge.guard import GuardedStream
from camgate.edge.revocation import Revocations, refusal
from camgate.errors import (
    AccountUnlinked,
    CamgateError,
    ConsentRevoked,
    GrantMismatch,
    GrantReplayed,
    NotFound,
    ZoneRefused,
)
from camgate.grants import GrantVerifier, SignedGrant, check_grant
from camgate.media import BrowserTranscode, PacketTransform, chain, mask_jpeg
from camgate.models import Camera, Grant, Scope, Snapshot
from camgate.plugins import PluginHost
from camgate.relay import Relay, RelaySettings, Subscription, TransformFactory
from camgate.store import Store
from camgate.vocab import AuditKind, EndReason, GrantProblem

if TYPE_CHECKING:
    from camgate.retention import Retention

__all__ = ["Edge"]

log = logging.getLogger("camgate.edge")  # the edge logs as one, as before its split


class Edge(GopCache, Revocations, ClipExport):
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
        #: Adapters replaced by new settings or credentials: streams opened through them may
        #: still run, so they are closed with the edge, not when replaced.
        self._retired: list[Adapter] = []
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
        self._relay = Relay(relay_settings, self._transform, self.clock, self._renewed)
        #: camera id -> the open incidents whose geofence allows its GOP cache.
        self._warmth: dict[str, set[str]] = {}
        self._dropping: dict[tuple[str, str], list[Any]] = {}
        #: (adapter, account key) of vendor accounts reported unlinked (account_unlinked).
        self._unlinked: set[tuple[str, str]] = set()

    def __repr__(self) -> str:
        return f"<Edge store={self.store.path} live={len(self._live)}>"

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
            self._retired.append(self._adapters.pop(key))

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
        """End every live stream (reason ``closed``) and close the adapters, those replaced
        by new settings or credentials included."""
        for stream in list(self._live):
            await stream.aclose()
        self._warmth.clear()
        await self._relay.aclose()
        for adapter in [*self._retired, *self._adapters.values()]:
            await adapter.aclose()
        self._adapters.clear()
        self._retired.clear()

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
        if problem is not None:
            raise refusal(problem, camera_id, grant)
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
        self.account_reached(camera)
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

    async def _finish_unopened(self, grant: Grant, camera: Camera, exc: BaseException) -> None:
        reason = (
            EndReason.EXPIRED
            if isinstance(exc, TimeoutError)
            else EndReason.REVOKED
            if isinstance(exc, ConsentRevoked)
            else EndReason.PRIVACY_ZONE
            if isinstance(exc, ZoneRefused)
            else EndReason.ACCOUNT_UNLINKED
            if isinstance(exc, AccountUnlinked)
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
        if isinstance(exc, AccountUnlinked):
            await self.account_unlinked(camera, exc)

    async def _renewed(self, camera: Camera, grants: list[Grant], renewal: int, cause: str) -> None:
        """The relay opened ``camera`` anew for the consumers of ``grants`` (a vendor's session
        cap, a lost connection): one ``access.renewed`` record per grant, before the new
        connection's first packet is relayed."""
        for grant in grants:
            body = {"grant": grant.id, "camera": camera.id, "renewal": renewal, "cause": cause}
            await self._audit(AuditKind.ACCESS_RENEWED, body)

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
        _upstream_notes(body, getattr(stream._upstream, "notes", None))
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
            problem = await anyio.to_thread.run_sync(self.grant_problem, camera, grant, now)
            if problem is GrantProblem.PRIVACY_ZONE:
                raise refusal(problem, camera_id, grant)  # noqa: TRY301
            if problem is not None:
                raise ConsentRevoked(f"consent for camera {camera_id!r} was revoked")  # noqa: TRY301
        except BaseException as exc:
            with anyio.CancelScope(shield=True):
                await self._finish_unopened(grant, camera, exc)
            raise
        self.account_reached(camera)
        body = {
            "grant": grant.id,
            "camera": camera.id,
            "reason": EndReason.COMPLETED,
            "packets": 1,
            "bytes": len(snap.jpeg),
            "sha256": hashlib.sha256(snap.jpeg).hexdigest(),
        }
        _upstream_notes(body, snap.notes)
        await self._audit(AuditKind.ACCESS_END, body)
        self.host.access_ended(grant, camera, EndReason.COMPLETED, 1, len(snap.jpeg))
        return snap


def _upstream_notes(body: dict[str, Any], notes: object) -> None:
    """Put how the adapter reached the camera, when it says (e.g. a fallback to UDP), into an
    ``access.end`` body as ``upstream``."""
    if isinstance(notes, dict) and notes:
        body["upstream"] = {str(k): str(v) for k, v in notes.items()}


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
