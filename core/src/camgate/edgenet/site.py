"""The edge at an owner's site: its own store and cameras, the hub's word over NATS.

:class:`SiteEdge` is the in-process :class:`~camgate.edge.Edge` with one difference: whether a
grant's consent still stands is read from what the hub last said over NATS
(:class:`~camgate.edgenet.wire.ConsentState` per camera), not from a store the hub shares, and
nothing is served while the edge cannot confirm that it heard the hub recently
(:attr:`SiteEdge.staleness_s`). :class:`EdgeSite` runs it: it connects *out* to NATS, takes the
edge's identity lease, replays the control stream, applies each consent change (a revocation
trips the camera's live streams through :class:`~camgate.edge.revocation.Revocations`; masks
are stored in the edge's store, streams masked otherwise end, and the camera is refused until
the masks the hub named are held),
acknowledges it to the hub and serves guarded streams to consumers over NATS.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

import anyio

from camgate.edge import Edge, GuardedStream
from camgate.edgenet import wire
from camgate.errors import CamgateError, ConfigError, ConsentRevoked, ValidationError
from camgate.extras import needs_extra
from camgate.grants import SignedGrant
from camgate.models import Camera, Grant, Snapshot, redact_address
from camgate.vocab import EndReason, GrantProblem

if TYPE_CHECKING:
    from nats.aio.client import Client
    from nats.aio.msg import Msg

__all__ = ["EdgeIdentityTaken", "EdgeSite", "EdgeStale", "SiteEdge"]

log = logging.getLogger("camgate.edgenet")


#: How often an edge asks whether a remote stream's consumer still listens (s).
CONSUMER_CHECK_S = 2.0


class EdgeStale(ConsentRevoked):
    """The edge cannot confirm it is up to date with the hub (no heartbeat within the staleness
    limit, or not yet replayed): it serves nothing until it can."""


class EdgeIdentityTaken(ConfigError):
    """Another edge holds this edge id's lease: two edges with one identity are refused."""


class SiteEdge(Edge):
    """An :class:`~camgate.edge.Edge` whose consent facts come from the hub over NATS.

    ``staleness_s``: how long after the last heartbeat it confirmed (every control message
    before it applied) the edge still serves. Past it, every live stream ends (``revoked``:
    consent can no longer be confirmed) and every new grant is refused with :class:`EdgeStale`.
    """

    def __init__(self, *, staleness_s: float = 5.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.staleness_s = staleness_s
        #: camera id -> what the hub last said of its consent.
        self.consents: dict[str, wire.ConsentState] = {}
        #: camera id -> the version of the hub's masks this edge's store holds for it
        #: (:func:`~camgate.edgenet.wire.masks_digest`); the camera is served only while it
        #: is the version the hub's last state names.
        self.masks_held: dict[str, str] = {}
        #: Incidents the hub said closed (their grants no longer hold).
        self.closed_incidents: set[str] = set()
        #: time.monotonic() until which the edge counts as up to date.
        self.fresh_until = 0.0

    def fresh(self) -> bool:
        """True while the edge heard the hub within :attr:`staleness_s`, everything before
        that heartbeat applied."""
        return time.monotonic() < self.fresh_until

    def confirm(self, beat_at: datetime, now: datetime) -> bool:
        """A heartbeat sent at ``beat_at`` was received with nothing pending before it: the edge
        is up to date until ``staleness_s`` after ``beat_at``. False (and nothing changes) for a
        heartbeat already older than that (replayed from before a cut)."""
        age = max(0.0, (now - beat_at).total_seconds())
        if age >= self.staleness_s:
            return False
        self.fresh_until = max(self.fresh_until, time.monotonic() + self.staleness_s - age)
        return True

    def grant_problem(self, camera: Camera, grant: Grant, now: datetime) -> GrantProblem | None:
        """Like the edge's, but from the hub's word: REVOKED while stale, while the camera is
        marked, or when the consent the grant was issued under is not the one the hub says
        stands (or lacks the grant's scope); MASKS_CHANGED while this edge's store does not yet
        hold the masks the hub's state names (fail closed: refused, and open streams end as
        for a mask change); INCIDENT_CLOSED once the hub said the grant's incident closed (a
        grant ends by its expiry at the latest)."""
        if not self.fresh():
            return GrantProblem.REVOKED
        if ("owner", camera.owner_id) in self._marks or ("camera", camera.id) in self._marks:
            return GrantProblem.REVOKED
        state = self.consents.get(camera.id)
        if state is None or state.consent is None or grant.consent_id != state.consent:
            return GrantProblem.REVOKED
        if str(grant.scope.value) not in state.scopes:
            return GrantProblem.REVOKED
        if self.masks_held.get(camera.id) != state.masks_version:
            # The masks changed and are being stored: open streams end as a mask change does
            # (not as a revocation), new grants are refused until they are held.
            return GrantProblem.MASKS_CHANGED
        if grant.incident_id in self.closed_incidents:
            return GrantProblem.INCIDENT_CLOSED
        return None

    async def open_live(
        self, camera_id: str, token: str | SignedGrant, *, browser: bool = False
    ) -> GuardedStream:
        """As :meth:`Edge.open_live`; raises :class:`EdgeStale` first while not up to date."""
        self._check_fresh()
        return await super().open_live(camera_id, token, browser=browser)

    async def snapshot(self, camera_id: str, token: str | SignedGrant) -> Snapshot:
        """As :meth:`Edge.snapshot`; raises :class:`EdgeStale` first while not up to date."""
        self._check_fresh()
        return await super().snapshot(camera_id, token)

    def _check_fresh(self) -> None:
        if not self.fresh():
            raise EdgeStale(
                f"this edge cannot confirm it is up to date with the hub (no heartbeat within "
                f"{self.staleness_s:g} s): it serves nothing until it can"
            )

    async def apply(self, state: wire.ConsentState) -> int | None:
        """Apply one camera's consent state. When it ends the consent a grant could stand on
        (revoked, or replaced), the camera's live streams are tripped and closed and the count
        is returned; None when nothing was revoked. Then the state's masks are stored (see
        :meth:`take_masks`)."""
        old = self.consents.get(state.camera)
        self.consents[state.camera] = state  # refused from now until its masks are held
        self._generation += 1  # every guard re-reads consent before its next packet
        ended = None
        if old is not None and old.consent is not None and old.consent != state.consent:
            ended = self.begin_removal(state.camera)
            try:
                await self.close_camera_streams(state.camera)
            finally:
                self.end_removal(state.camera)
        await self.take_masks(state)
        return ended

    async def take_masks(self, state: wire.ConsentState) -> int:
        """Store the masks ``state`` carries in this edge's store (``set_masks``), so its
        masking applies, and end the camera's open streams (``masks-changed``) when they differ
        from what it held; returns how many ended. A state without masks (the hub holds none)
        leaves the store's own. When the store refuses them the camera stays refused
        (:attr:`masks_held` is not updated) and this is logged."""
        camera, version = state.camera, state.masks_version
        if state.masks is None or self.masks_held.get(camera) == version:
            self.masks_held[camera] = version
            return 0
        try:
            before = await anyio.to_thread.run_sync(self.store.masks, camera)
            await anyio.to_thread.run_sync(self.store.set_masks, state.masks)
        except CamgateError as exc:
            log.warning("%s: the hub's masks not stored, camera refused: %s", camera, exc)
            return 0
        if self.consents.get(camera) is state:  # not overtaken by a newer state meanwhile
            self.masks_held[camera] = version
        if (before.polygons if before else ()) == state.masks.polygons:
            return 0
        return await self.end_camera_streams(camera, EndReason.MASKS_CHANGED)

    def close_incident(self, closed: wire.IncidentClosed) -> None:
        """The hub closed an incident: every stream under it ends before its next packet."""
        self.closed_incidents.add(closed.incident)
        self._generation += 1

    async def end_all(self, reason: EndReason) -> int:
        """End every live stream now (``reason``); returns how many."""
        streams = self.live_streams()
        self._generation += 1
        for stream in streams:
            stream.trip(closer=True)
            await stream._end(reason)
        return len(streams)


class EdgeSite:
    """Runs a :class:`SiteEdge` against NATS (:meth:`run`): the edge dials out, nothing dials in.

    ``hub_key`` is the hub's Ed25519 public key (grants and control messages are checked with
    it). The lease bucket's time-to-live (set by the hub) is how long a vanished edge's identity
    stays taken.
    """

    def __init__(self, edge: SiteEdge, edge_id: str, nats_url: str, hub_key: bytes) -> None:
        self.edge = edge
        self.edge_id = wire.check_edge_id(edge_id)
        self.nats_url = nats_url
        self.control = wire.ControlVerifier(hub_key)
        self._nc: Client | None = None
        self._streams: dict[str, GuardedStream] = {}
        #: Streams whose consumer went away, being closed by their watcher.
        self._gone: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._acks: list[tuple[bytes, str]] = []
        self._ack_lock = asyncio.Lock()
        self._was_fresh = False
        #: The lease was lost to another edge: stop.
        self.lost: str | None = None
        self._lease = 0  # the lease entry's revision

    def __repr__(self) -> str:
        return f"<EdgeSite {self.edge_id} fresh={self.edge.fresh()}>"

    async def run(self, ready: Callable[[], Awaitable[None] | None] | None = None) -> None:
        """Connect, take the lease (:class:`EdgeIdentityTaken` when another edge holds it),
        replay and serve until cancelled; then end every stream and release the lease."""
        with needs_extra("edgenet", "an edge at an owner's site (camgate edge serve)"):
            import nats
            from nats.js.api import DeliverPolicy
            from nats.js.errors import BucketNotFoundError, KeyWrongLastSequenceError

        try:
            nc = await nats.connect(
                self.nats_url,
                name=f"camgate-edge-{self.edge_id}",
                max_reconnect_attempts=-1,
                reconnect_time_wait=0.2,
                connect_timeout=5,
            )
        except Exception as exc:
            raise ConfigError(
                f"cannot reach NATS at {redact_address(self.nats_url)} ({type(exc).__name__})"
            ) from None
        self._nc = nc
        js = nc.jetstream()
        try:
            while True:
                try:
                    kv = await js.key_value(wire.LEASE_BUCKET)
                    break
                except BucketNotFoundError:
                    log.warning("edge %s: the hub has not set up NATS yet; waiting", self.edge_id)
                    await anyio.sleep(0.5)
            status = await kv.status()
            ttl = status.ttl or 6.0
            session = json.dumps({"edge": self.edge_id, "started": wire.now_utc().isoformat()})
            try:
                self._lease = await kv.create(self.edge_id, session.encode())
            except KeyWrongLastSequenceError:
                raise EdgeIdentityTaken(
                    f"edge id {self.edge_id!r} is in use by another edge (its lease holds for "
                    f"up to {ttl:g} s after that edge stops)"
                ) from None
            sub = await js.subscribe(
                wire.control_filter(self.edge_id),
                ordered_consumer=True,
                deliver_policy=DeliverPolicy.ALL,
                idle_heartbeat=max(0.5, self.edge.staleness_s / 4),
                cb=self._on_control,
            )
            opens = await nc.subscribe(wire.open_subject(self.edge_id), cb=self._on_open)
            closes = await nc.subscribe(f"camgate.close.{self.edge_id}", cb=self._on_close)
            audits = await nc.subscribe(wire.audit_subject(self.edge_id), cb=self._on_audit)
            snaps = await nc.subscribe(wire.snapshot_subject(self.edge_id), cb=self._on_snapshot)
            if ready is not None:
                maybe = ready()
                if maybe is not None:
                    await maybe
            try:
                await self._loop(kv, ttl, session.encode())
            finally:
                with anyio.CancelScope(shield=True):
                    for s in (sub, opens, closes, audits, snaps):
                        with contextlib.suppress(Exception):
                            await s.unsubscribe()
                    await self.edge.end_all(EndReason.CLOSED)
                    if self.lost is None:  # release the lease only while it is this edge's
                        with contextlib.suppress(Exception):
                            await kv.delete(self.edge_id, last=self._lease)
        finally:
            with anyio.CancelScope(shield=True):
                for task in list(self._tasks):
                    task.cancel()
                with contextlib.suppress(Exception):
                    await nc.close()

    async def _loop(self, kv: Any, ttl: float, session: bytes) -> None:
        # Three loops, so that a NATS call waiting out its time-out never delays the watchdog.
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._watchdog)
            tg.start_soon(self._ack_loop)
            await self._lease_loop(kv, ttl, session)
            tg.cancel_scope.cancel()  # the lease was lost
        raise EdgeIdentityTaken(self.lost or "the lease was lost")

    async def _watchdog(self) -> None:
        """End every stream the moment the edge can no longer confirm it is up to date."""
        step = min(0.05, self.edge.staleness_s / 20)
        while True:
            await anyio.sleep(step)
            fresh = self.edge.fresh()
            if self._was_fresh and not fresh:
                ended = await self.edge.end_all(EndReason.REVOKED)
                log.warning(
                    "edge %s: no word from the hub within %g s: %d stream(s) ended, "
                    "serving nothing until it is up to date",
                    self.edge_id,
                    self.edge.staleness_s,
                    ended,
                )
            elif fresh and not self._was_fresh:
                log.info("edge %s: up to date with the hub; serving", self.edge_id)
            self._was_fresh = fresh

    async def _ack_loop(self) -> None:
        while True:
            await anyio.sleep(0.2)
            await self._flush_acks()

    async def _lease_loop(self, kv: Any, ttl: float, session: bytes) -> None:
        """Renew the lease at a third of its time-to-live; return (streams ended, :attr:`lost`
        set) when another edge took it meanwhile."""
        from nats.js.errors import KeyWrongLastSequenceError

        while True:
            await anyio.sleep(ttl / 3)
            try:
                self._lease = await kv.update(self.edge_id, session, last=self._lease)
            except KeyWrongLastSequenceError:
                # Expired while NATS was away: take it again unless another edge has it.
                try:
                    self._lease = await kv.create(self.edge_id, session)
                except KeyWrongLastSequenceError:
                    self.lost = f"edge id {self.edge_id!r} was taken by another edge"
                    await self.edge.end_all(EndReason.REVOKED)
                    return
            except Exception as exc:  # NATS away: the staleness limit covers it
                log.info("edge %s: lease not renewed: %s", self.edge_id, type(exc).__name__)

    async def _on_control(self, msg: Msg) -> None:
        try:
            data = self.control.verify(msg.subject, msg.data, msg.headers)
            if data.get("kind") == "beat":
                beat = wire.Beat.from_dict(data)
                if msg.metadata.num_pending == 0:
                    self.edge.confirm(beat.at, wire.now_utc())
                return
            if data.get("kind") == "closure":
                closed = wire.IncidentClosed.from_dict(data)
                if msg.subject != wire.incident_subject(self.edge_id, closed.incident):
                    what = "incident closure published under another incident's subject"
                    raise ValidationError(what)  # noqa: TRY301
                self.edge.close_incident(closed)
                return
            state = wire.ConsentState.from_dict(data)
            if msg.subject != wire.consent_subject(self.edge_id, state.camera):
                msg_ = "consent state published under another camera's subject"
                raise ValidationError(msg_)  # noqa: TRY301
        except ValidationError as exc:
            log.warning("edge %s: control message dropped: %s", self.edge_id, exc)
            return
        old = self.edge.consents.get(state.camera)
        ended = await self.edge.apply(state)
        if ended is not None or (state.consent is None and old is not None):
            seq = msg.metadata.sequence.stream
            body = {
                "edge": self.edge_id,
                "camera": state.camera,
                "consent": old.consent if old else None,
                "seq": seq,
                "streams_ended": ended or 0,
                "applied_at": wire.now_utc().isoformat(),
            }
            self._acks.append((json.dumps(body).encode(), f"{self.edge_id}:{seq}"))
            await self._flush_acks()

    async def _flush_acks(self) -> None:
        nc = self._nc
        if nc is None or not self._acks or not nc.is_connected:
            return
        js = nc.jetstream()
        async with self._ack_lock:  # one sender: an ack leaves the list only once it is sent
            while self._acks:
                body, msg_id = self._acks[0]
                try:
                    await js.publish(
                        wire.ack_subject(self.edge_id),
                        body,
                        timeout=2,
                        headers={"Nats-Msg-Id": msg_id},
                    )
                except Exception as exc:
                    log.info("edge %s: ack not sent yet: %s", self.edge_id, type(exc).__name__)
                    return
                self._acks.pop(0)

    async def _on_open(self, msg: Msg) -> None:
        nc = self._nc
        assert nc is not None
        try:
            camera, token, key = wire.open_request(msg.data)
            subject = wire.media_subject(self.edge_id, key)
            if key in self._streams:
                raise ValidationError("that stream key is in use")
            browser = wire.open_wants_browser(msg.data)
            stream = await self.edge.open_live(camera, token, browser=browser)
        except CamgateError as exc:
            reply = {"error": type(exc).__name__, "message": str(exc)}
            await msg.respond(json.dumps(reply).encode())
            return
        self._streams[key] = stream
        await msg.respond(b'{"ok":true}')
        task = asyncio.get_running_loop().create_task(self._pump(key, subject, stream))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _pump(self, key: str, subject: str, stream: GuardedStream) -> None:
        nc = self._nc
        assert nc is not None
        reason: EndReason | None = None
        watcher = asyncio.get_running_loop().create_task(self._watch_consumer(key, subject, stream))
        try:
            async for packet in stream:
                data, headers = wire.encode_packet(packet)
                await nc.publish(subject, data, headers=headers)
        except ConsentRevoked:
            reason = EndReason.REVOKED
        except CamgateError:
            reason = EndReason.ERROR
        finally:
            if key not in self._gone:  # a watcher closing the stream is let finish
                watcher.cancel()
            self._streams.pop(key, None)
            # The consumer is told first; the stream's access.end is written as it closes.
            if stream.revoked:  # its _end may still be under way in the revoking task
                reason = EndReason.REVOKED
            reason = reason or stream.stats().end_reason or EndReason.COMPLETED
            with anyio.CancelScope(shield=True):
                with contextlib.suppress(Exception):
                    await nc.publish(subject, b"", headers={"end": str(reason.value)})
                await stream.aclose()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher
                self._gone.discard(key)

    async def _watch_consumer(self, key: str, subject: str, stream: GuardedStream) -> None:
        """Close ``stream`` (reason ``closed``) once nobody listens for it any more: its
        consumer went away without closing it. Asked every :data:`CONSUMER_CHECK_S`; NATS says
        at once when no one is subscribed, and three unanswered checks in a row count too.
        While NATS itself is away the staleness limit, not this, ends the stream."""
        from nats.errors import NoRespondersError

        nc = self._nc
        assert nc is not None
        misses = 0
        while True:
            await anyio.sleep(CONSUMER_CHECK_S)
            if not nc.is_connected:
                continue
            try:
                await nc.request(wire.alive_subject(subject), b"", timeout=CONSUMER_CHECK_S)
                misses = 0
            except NoRespondersError:
                misses = 3
            except Exception:  # a time-out: a busy consumer, or one gone from a broken link
                misses += 1
            if misses >= 3:
                log.info("edge %s: a stream's consumer is gone; closing it", self.edge_id)
                self._gone.add(key)
                await stream.aclose()
                return

    async def _on_snapshot(self, msg: Msg) -> None:
        """A consumer asks for one still: reply with the JPEG (masked, audited in this edge's
        log as the in-process edge does), or a JSON refusal naming the camgate error."""
        try:
            camera, token = wire.snapshot_request(msg.data)
            jpeg = (await self.edge.snapshot(camera, token)).jpeg
        except CamgateError as exc:
            reply = {"error": type(exc).__name__, "message": str(exc)}
            await msg.respond(json.dumps(reply).encode())
            return
        try:
            await msg.respond(jpeg)
        except Exception as exc:  # over NATS's payload limit: say so rather than go silent
            reply = {"error": "CamgateError", "message": f"the still was not sent: {exc}"}
            with contextlib.suppress(Exception):
                await msg.respond(json.dumps(reply).encode()[:500])

    async def _on_audit(self, msg: Msg) -> None:
        """The hub asks for this edge's audit log: sign a checkpoint now, reply with the export
        (verified here first; the hub verifies it again against this edge's key)."""
        audit = self.edge.audit

        def export() -> list[str]:
            audit.checkpoint()
            return list(audit.export_jsonl())

        try:
            body = wire.pack_audit(await anyio.to_thread.run_sync(export))
        except CamgateError as exc:
            body = json.dumps({"error": type(exc).__name__, "message": str(exc)}).encode()
        await msg.respond(body)

    async def _on_close(self, msg: Msg) -> None:
        try:
            key = json.loads(msg.data).get("stream")
        except (ValueError, AttributeError, RecursionError):
            return
        stream = self._streams.get(key) if isinstance(key, str) else None
        if stream is not None:
            await stream.aclose()
