"""The hub's side of the link to edges at owners' sites, and a consumer of their streams.

:class:`HubLink` sets up NATS (the control stream, the acknowledgement stream, the identity
lease bucket), then, until cancelled: watches the hub's store and publishes each camera's
consent state (and its owner's masks) to the edge that holds the camera whenever it changes
(after the commit: it reads committed state) and each incident closed early to every edge,
sends every edge a signed heartbeat, and records every acknowledgement an edge sends back as
``edge.ack`` in the hub's audit log. It follows the audit log (whose records name what
changed), so a revocation or masks set by any process on the store (``camgate serve``, the
CLI) reaches the edges.

:func:`open_remote_live` opens a guarded live stream on a remote edge over NATS: the edge
publishes its packets to a subject the consumer subscribed to first; the consumer never dials
the edge (owner sites are behind NAT).
"""

from __future__ import annotations

import contextlib
import json
import logging
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread

from camgate import errors
from camgate.audit import AuditRecord, VerifyResult, hub_signer
from camgate.codec import load
from camgate.edgenet import wire
from camgate.edgenet.site import EdgeStale
from camgate.errors import (
    AdapterError,
    CamgateError,
    ConfigError,
    ConsentRevoked,
    GrantError,
    ValidationError,
)
from camgate.extras import needs_extra
from camgate.grants import SignedGrant
from camgate.models import IncidentStatus, MediaPacket, PrivacyMask, redact_address
from camgate.vocab import AuditKind, EndReason

if TYPE_CHECKING:
    from nats.aio.client import Client
    from nats.aio.msg import Msg

    from camgate.gate import Gate

__all__ = [
    "EdgeUnreachable",
    "HubLink",
    "RemoteStream",
    "fetch_edge_audit",
    "fetch_remote_snapshot",
    "open_remote_live",
]

log = logging.getLogger("camgate.edgenet")


class HubLink:
    """The hub's link to its edges over NATS (:meth:`run`).

    Which edge serves a camera is the registry's word (:meth:`~camgate.store.Store.assign_edge`,
    ``camgate edge assign``), read when the link starts and again every heartbeat; ``edges``
    (an edge id -> the ids of cameras behind it, ``camgate edge hub --edge``) adds to it. The
    hub publishes a camera's consent only to its edge; a camera taken off an edge is published
    there as without consent, so that edge serves it no more. ``beat_s``: heartbeat period (an
    edge's staleness limit must be well above it); ``lease_s``: how long a vanished edge's identity
    stays taken; ``poll_s``: how often the audit log's head is read; ``reconcile_s``: how often
    every mapped camera's consent is compared with what was published (a change no record names,
    e.g. a consent whose end date passed, reaches edges within it).
    """

    def __init__(
        self,
        gate: Gate,
        nats_url: str,
        edges: Mapping[str, Sequence[str]] | None = None,
        *,
        beat_s: float = 0.5,
        lease_s: float = 6.0,
        poll_s: float = 0.01,
        reconcile_s: float = 30.0,
    ) -> None:
        self.gate = gate
        self.nats_url = nats_url
        #: The operator's flags (``--edge``): edge id -> cameras, besides the registry's.
        self.flags = {wire.check_edge_id(e): tuple(cams) for e, cams in (edges or {}).items()}
        self.beat_s, self.lease_s, self.poll_s = beat_s, lease_s, poll_s
        self.reconcile_s = reconcile_s
        #: edge id -> the cameras behind it (the flags and the registry), see :meth:`_remap`.
        self.edges: dict[str, tuple[str, ...]] = {}
        #: camera id -> the edges it is behind
        self._edges_of: dict[str, list[str]] = {}
        #: (edge, camera) pairs taken off an edge: their acknowledgements are still recorded.
        self._former: set[tuple[str, str]] = set()
        #: Pairs taken off an edge whose "no consent" is not yet published there.
        self._to_clear: set[tuple[str, str]] = set()
        self._set_map(self.flags)
        self._signer = hub_signer(gate.store.path)
        #: (edge, camera) -> the (consent id, scopes, masks version) last published there.
        self._published: dict[tuple[str, str], tuple[str | None, tuple[str, ...], str]] = {}
        #: incident id -> the end of its window, for incidents whose closure went out
        self._closed: dict[str, datetime] = {}
        #: Acknowledgements recorded (edge.ack) since this link started.
        self.acks = 0
        self._acked: anyio.Event | None = None

    def __repr__(self) -> str:
        return f"<HubLink edges={sorted(self.edges)}>"

    def _set_map(self, edges: Mapping[str, Sequence[str]]) -> None:
        self.edges = {edge: tuple(cameras) for edge, cameras in edges.items()}
        self._edges_of = {}
        for edge_id, cameras in self.edges.items():
            for camera in cameras:
                self._edges_of.setdefault(camera, []).append(edge_id)

    def _mapping(self) -> dict[str, list[str]]:
        """The flags' mapping joined with the registry's (blocking: reads the store)."""
        edges: dict[str, list[str]] = {e: list(cams) for e, cams in self.flags.items()}
        for camera, edge in self.gate.store.camera_edges().items():
            cameras = edges.setdefault(edge, [])
            if camera not in cameras:
                cameras.append(camera)
        return edges

    async def _remap(self, nc: Client) -> bool:
        """Read the registry's camera -> edge mapping again; publish the consent of each camera
        newly behind an edge, and "no consent" for each taken off one. False when NATS did not
        take them all (the next call tries again)."""
        edges = await anyio.to_thread.run_sync(self._mapping)
        old = {(e, c) for e, cams in self.edges.items() for c in cams}
        new = {(e, c) for e, cams in edges.items() for c in cams}
        done = True
        if old != new:
            self._set_map(edges)
            done = await self._sync(nc, only={c for _e, c in new - old})
            self._to_clear |= old - new
            self._former |= old - new
        self._to_clear -= new
        js = nc.jetstream()
        for edge_id, camera_id in sorted(self._to_clear):
            self._published.pop((edge_id, camera_id), None)
            state = wire.ConsentState(camera_id, None, (), wire.now_utc())
            subject = wire.consent_subject(edge_id, camera_id)
            msg_id = f"{subject}:unassigned:{state.at.isoformat()}"
            if await self._publish(js, subject, state.to_json(), msg_id):
                self._to_clear.discard((edge_id, camera_id))
            else:
                done = False
        return done

    async def run(self, ready: Callable[[], Awaitable[None] | None] | None = None) -> None:
        """Set NATS up, publish every camera's state, then keep edges current until cancelled."""
        with needs_extra("edgenet", "the hub's link to edges (camgate edge hub)"):
            import nats
            from nats.js.api import StreamConfig

        try:
            nc = await nats.connect(
                self.nats_url, name="camgate-hub", max_reconnect_attempts=-1,
                reconnect_time_wait=0.2, connect_timeout=5,
            )  # fmt: skip
        except Exception as exc:
            raise ConfigError(
                f"cannot reach NATS at {redact_address(self.nats_url)} ({type(exc).__name__})"
            ) from None
        try:
            js = nc.jetstream()
            await _ensure_stream(
                js,
                StreamConfig(
                    name=wire.CONTROL_STREAM,
                    subjects=["camgate.ctl.>"],
                    max_msgs_per_subject=1,
                    duplicate_window=120.0,
                ),
            )
            await _ensure_stream(js, StreamConfig(name=wire.ACK_STREAM, subjects=["camgate.ack.>"]))
            try:
                await js.key_value(wire.LEASE_BUCKET)
            except Exception:
                await js.create_key_value(bucket=wire.LEASE_BUCKET, ttl=self.lease_s, history=1)
            acks = await js.subscribe(
                "camgate.ack.>", durable="camgate-hub", manual_ack=True, cb=self._on_ack
            )
            # The log's head before the full pass: what is appended later is read after it.
            seq = await anyio.to_thread.run_sync(self.gate.audit.last_seq)
            self._set_map(await anyio.to_thread.run_sync(self._mapping))
            await self._sync(nc, force=True)
            await self._sync_incidents(nc)
            await self._beat(nc)
            if ready is not None:
                maybe = ready()
                if maybe is not None:
                    await maybe
            try:
                await self._follow(nc, seq)
            finally:
                with anyio.CancelScope(shield=True), contextlib.suppress(Exception):
                    await acks.unsubscribe()
        finally:
            with anyio.CancelScope(shield=True), contextlib.suppress(Exception):
                await nc.close()

    async def _follow(self, nc: Client, seq: int) -> None:
        """Until cancelled: read the audit log's new records every ``poll_s`` and publish the
        state of the cameras they name (a consent enrolled or revoked, a camera removed; an
        incident closed), heartbeat every ``beat_s``, and compare every mapped camera every
        ``reconcile_s`` (anything changed without such a record)."""
        next_beat = time.monotonic() + self.beat_s
        next_full = time.monotonic() + self.reconcile_s
        while True:
            await anyio.sleep(self.poll_s)
            head = await anyio.to_thread.run_sync(self.gate.audit.last_seq)
            if head != seq:
                cameras, incidents, upto = await anyio.to_thread.run_sync(self._named_since, seq)
                done = await self._sync(nc, only=cameras) if cameras else True
                if incidents:
                    done = await self._sync_incidents(nc) and done
                if done:
                    seq = upto
            if time.monotonic() >= next_full:  # failures are retried by the next one
                await self._sync(nc)
                await self._sync_incidents(nc)
                next_full = time.monotonic() + self.reconcile_s
            if time.monotonic() >= next_beat:
                await self._remap(nc)
                await self._beat(nc)
                next_beat = time.monotonic() + self.beat_s

    def _named_since(self, after: int) -> tuple[set[str], bool, int]:
        """The mapped cameras that records after ``after`` name as changed, whether an incident
        closed, and the last seq read."""
        cameras: set[str] = set()
        incidents = False
        last = after
        for row in self.gate.audit.backend.rows(after=after):
            last, kind = row[0], row[2]
            field = _NAMES_CAMERAS.get(kind)
            if field is not None:
                named = json.loads(row[3]).get(field)
                for camera in [named] if isinstance(named, str) else named or []:
                    if camera in self._edges_of:
                        cameras.add(camera)
            elif kind == AuditKind.INCIDENT_CLOSED:
                incidents = True
        return cameras, incidents, last

    def _states(self, only: set[str] | None = None) -> dict[str, _State]:
        """The mapped cameras' consent (``only`` those, or all) as the store has it now:
        (consent id, scopes, when its newest consent was revoked, its masks), in one pass."""
        store = self.gate.store
        out: dict[str, _State] = {}
        for camera_id in self._edges_of if only is None else only:
            masks = _stored_masks(store, camera_id)
            consent = store.active_consent(camera_id)
            if consent is None:
                out[camera_id] = (None, (), store.revoked_since(camera_id), masks)
            else:
                scopes = tuple(str(s) for s in consent.terms.scopes)
                out[camera_id] = (consent.id, scopes, None, masks)
        return out

    async def _sync(self, nc: Client, *, force: bool = False, only: set[str] | None = None) -> bool:
        """Publish each camera state (``only`` those cameras) that changed since it was last
        published (``force``: all); False when NATS did not take them all."""
        js = nc.jetstream()
        done = True
        states = await anyio.to_thread.run_sync(self._states, only)
        for camera_id, (consent_id, scopes, since, masks) in states.items():
            for edge_id in self._edges_of[camera_id]:
                version = wire.masks_digest(masks)
                now = (consent_id, scopes, version)
                if not force and self._published.get((edge_id, camera_id)) == now:
                    continue
                state = wire.ConsentState(camera_id, consent_id, scopes, wire.now_utc(), masks)
                subject = wire.consent_subject(edge_id, camera_id)
                # The message id names the state (a revocation by when it was made; masks by
                # their version, which holds when they were set), so the same state sent twice
                # (a hub restarted) is kept once and acknowledged once.
                msg_id = f"{subject}:{consent_id or since}:{','.join(scopes)}:{version}"
                if not await self._publish(js, subject, state.to_json(), msg_id):
                    done = False
                    continue
                self._published[(edge_id, camera_id)] = now
        return done

    async def _publish(self, js: Any, subject: str, body: bytes, msg_id: str) -> bool:
        """Publish one signed control message into JetStream; False (logged) when NATS did not
        take it."""
        headers = wire.sign_control(self._signer, subject, body)
        headers["Nats-Msg-Id"] = msg_id
        try:
            await js.publish(subject, body, timeout=2, headers=headers)
        except Exception as exc:
            log.warning("hub: %s not published: %s", subject, type(exc).__name__)
            return False
        return True

    async def _sync_incidents(self, nc: Client) -> bool:
        """Tell every edge of each incident closed before its window ended (edges cannot know
        incidents otherwise), and drop the closures whose window is over (no grant is left
        under them); False when NATS did not take them all."""
        js = nc.jetstream()
        now = self.gate.clock.now()
        done = True
        incidents = await anyio.to_thread.run_sync(self.gate.store.incidents)
        for incident in incidents:
            if (
                incident.status is not IncidentStatus.CLOSED
                or incident.window_end <= now
                or incident.id in self._closed
            ):
                continue
            body = wire.IncidentClosed(incident.id, wire.now_utc()).to_json()
            sent = True
            for edge_id in self.edges:
                subject = wire.incident_subject(edge_id, incident.id)
                if not await self._publish(js, subject, body, f"{subject}:closed"):
                    sent = done = False
            if sent:
                self._closed[incident.id] = incident.window_end
        for incident_id, window_end in list(self._closed.items()):
            if window_end > now:
                continue
            for edge_id in self.edges:
                with contextlib.suppress(Exception):
                    await js.purge_stream(
                        wire.CONTROL_STREAM, subject=wire.incident_subject(edge_id, incident_id)
                    )
            del self._closed[incident_id]
        return done

    async def _beat(self, nc: Client) -> None:
        js = nc.jetstream()
        body = wire.Beat(wire.now_utc()).to_json()
        for edge_id in self.edges:
            subject = wire.beat_subject(edge_id)
            with contextlib.suppress(Exception):  # NATS away: edges go stale, as they should
                await js.publish(
                    subject, body, timeout=1, headers=wire.sign_control(self._signer, subject, body)
                )

    async def _on_ack(self, msg: Msg) -> None:
        try:
            known: dict[str, set[str]] = {e: set(cams) for e, cams in self.edges.items()}
            for edge_id, camera_id in self._former:
                known.setdefault(edge_id, set()).add(camera_id)
            body = _ack_body(msg.subject, msg.data, known)
        except ValidationError as exc:
            log.warning("hub: acknowledgement dropped: %s", exc)
            await msg.term()
            return
        await anyio.to_thread.run_sync(
            lambda: self.gate.audit.append(AuditKind.EDGE_ACK, body, self.gate.clock.now())
        )
        await msg.ack()
        self.acks += 1
        if self._acked is not None:
            self._acked.set()
            self._acked = None

    async def wait_for_acks(self, count: int) -> None:
        """Return once :attr:`acks` reaches ``count`` (wrap it in a time-out)."""
        while self.acks < count:
            if self._acked is None:
                self._acked = anyio.Event()
            await self._acked.wait()


def _ack_body(
    subject: str, data: bytes, edges: Mapping[str, Sequence[str] | set[str]]
) -> dict[str, Any]:
    """The ``edge.ack`` record body of an edge's acknowledgement (untrusted input, checked):
    the edge must be the one the subject names, and the camera one of its own."""
    raw = wire.json_object(data, "acknowledgement")
    edge, camera = raw.get("edge"), raw.get("camera")
    if not isinstance(edge, str) or subject != f"camgate.ack.{edge}" or edge not in edges:
        raise ValidationError("acknowledgement from an unknown edge or under another's subject")
    if not isinstance(camera, str) or camera not in edges[edge]:
        raise ValidationError(f"acknowledgement for a camera not behind edge {edge!r}")
    consent, seq, ended = raw.get("consent"), raw.get("seq"), raw.get("streams_ended")
    if consent is not None and not isinstance(consent, str):
        raise ValidationError("acknowledgement: 'consent' is not a string or null")
    for name, value in (("seq", seq), ("streams_ended", ended)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ValidationError(f"acknowledgement: {name!r} is not a count")
    applied = raw.get("applied_at")
    if not isinstance(applied, str) or len(applied) > 64:
        raise ValidationError("acknowledgement: 'applied_at' is not a time")
    return {
        "edge": edge,
        "camera": camera,
        "consent": consent,
        "seq": seq,
        "streams_ended": ended,
        "applied_at": applied,
    }


async def _ensure_stream(js: Any, config: Any) -> None:
    try:
        await js.stream_info(config.name)
    except Exception:
        await js.add_stream(config)


_REASONS = {str(r.value): r for r in EndReason}
#: Audit kinds whose records name cameras whose consent may have changed: the body field.
_NAMES_CAMERAS = {
    str(AuditKind.CONSENT_ENROLLED.value): "camera_ids",
    str(AuditKind.CONSENT_REVOKED.value): "cameras",
    str(AuditKind.CAMERA_REMOVED.value): "camera",
    str(AuditKind.MASKS_SET.value): "camera_id",
}

#: A camera's state as the hub reads it: consent id, scopes, when revoked, masks.
_State = tuple[str | None, tuple[str, ...], str | None, PrivacyMask | None]


def _stored_masks(store: Any, camera_id: str) -> PrivacyMask | None:
    """The camera's masks as stored, cleared ones too (no polygons: the edge clears its own),
    or None when the owner never set any (the edge keeps what its own store holds)."""
    rows = store.query("SELECT doc FROM masks WHERE camera_id=?", (camera_id,))
    return load(PrivacyMask, json.loads(rows[0][0])) if rows else None


class RemoteStream:
    """A guarded live stream served by a remote edge: iterate it for packets.

    Iteration ends when the edge ends the stream (expiry, the camera); it raises
    :class:`~camgate.errors.ConsentRevoked` when the edge ended it for a revocation (or because
    it could not confirm consent). :attr:`end_reason` says why it ended.
    """

    def __init__(self, nc: Client, edge_id: str, key: str, sub: Any, alive: Any) -> None:
        self._nc, self.edge_id, self.key, self._sub, self._alive = nc, edge_id, key, sub, alive
        self.end_reason: EndReason | None = None
        self.packets = 0

    def __repr__(self) -> str:
        return f"<RemoteStream {self.edge_id}/{self.key} end={self.end_reason}>"

    def __aiter__(self) -> AsyncIterator[MediaPacket]:
        return self

    async def __anext__(self) -> MediaPacket:
        if self.end_reason is not None:
            raise StopAsyncIteration
        msg = await self._sub.next_msg(timeout=None)
        headers = msg.headers or {}
        if "end" in headers:
            # a word this hub does not know is an error
            self.end_reason = _REASONS.get(headers["end"], EndReason.ERROR)
            await self._unsubscribe()
            if self.end_reason is EndReason.REVOKED:
                raise ConsentRevoked(f"edge {self.edge_id!r} ended the stream: consent revoked")
            raise StopAsyncIteration
        self.packets += 1
        return wire.decode_packet(msg.data, headers, time.monotonic())

    async def _unsubscribe(self) -> None:
        for sub in (self._sub, self._alive):
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    async def aclose(self) -> None:
        """Ask the edge to end the stream (``closed``) and stop listening."""
        if self.end_reason is None:
            self.end_reason = EndReason.CLOSED
            with contextlib.suppress(Exception):
                await self._nc.publish(
                    f"camgate.close.{self.edge_id}", json.dumps({"stream": self.key}).encode()
                )
        await self._unsubscribe()

    async def __aenter__(self) -> RemoteStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class EdgeUnreachable(AdapterError):
    """No edge answered on NATS for that edge id (it is down, cut off, or not started): the
    stream was not opened and the grant not used."""


def _refusal(name: str) -> type[CamgateError]:
    """The camgate error class an edge's refusal names: EdgeStale, a ConsentRevoked, one of
    :mod:`camgate.errors` by its name, a GrantError for another ``Grant*``, else
    CamgateError (a name is the edge's word, never trusted beyond picking a known class)."""
    if name == "EdgeStale":
        return EdgeStale
    known = getattr(errors, name, None) if name.isidentifier() else None
    if isinstance(known, type) and issubclass(known, CamgateError):
        return known
    return GrantError if name.startswith("Grant") else CamgateError


async def open_remote_live(
    nc: Client,
    edge_id: str,
    camera_id: str,
    token: str | SignedGrant,
    timeout_s: float = 10.0,
    *,
    browser: bool = False,
) -> RemoteStream:
    """Ask edge ``edge_id`` to open ``camera_id``'s live stream under ``token`` (``browser``:
    as :meth:`camgate.edge.Edge.open_live`'s, H.265 transcoded to H.264 at the edge).

    Raises what the edge refused with: :class:`~camgate.edgenet.site.EdgeStale` (a
    ConsentRevoked) while the edge cannot confirm it is up to date, ConsentRevoked, the grant
    error it named (GrantReplayed, GrantExpired, ...; a GrantError for one unknown here),
    CamgateError otherwise; :class:`EdgeUnreachable` when no edge of that id listens on NATS;
    TimeoutError when the edge did not answer within ``timeout_s``.
    """
    from nats.errors import NoRespondersError

    key = secrets.token_urlsafe(12)
    media = wire.media_subject(edge_id, key)
    sub = await nc.subscribe(media, pending_msgs_limit=4096)

    async def still_here(msg: Msg) -> None:
        await msg.respond(b"1")

    # The edge asks now and then whether anyone still listens; a consumer gone closes it.
    alive = await nc.subscribe(wire.alive_subject(media), cb=still_here)
    text = token.token if isinstance(token, SignedGrant) else token
    ask: dict[str, Any] = {"camera": camera_id, "token": text, "stream": key}
    if browser:
        ask["browser"] = True
    request = json.dumps(ask).encode()
    try:
        try:
            reply = await nc.request(wire.open_subject(edge_id), request, timeout=timeout_s)
        except NoRespondersError:
            raise EdgeUnreachable(f"edge {edge_id!r} is not connected to NATS") from None
        answer = json.loads(reply.data)
    except BaseException:
        with anyio.CancelScope(shield=True):
            for s in (sub, alive):
                with contextlib.suppress(Exception):
                    await s.unsubscribe()
        raise
    if not isinstance(answer, dict) or answer.get("ok") is not True:
        await sub.unsubscribe()
        await alive.unsubscribe()
        raise _refused(edge_id, reply.data)
    return RemoteStream(nc, edge_id, key, sub, alive)


async def fetch_remote_snapshot(
    nc: Client, edge_id: str, camera_id: str, token: str | SignedGrant, timeout_s: float = 30.0
) -> bytes:
    """Ask edge ``edge_id`` for one still of ``camera_id`` under a snapshot ``token``: the JPEG
    (masked by the edge, audited in its own log with its hash). Raises what the edge refused
    with, as :func:`open_remote_live` does; :class:`EdgeUnreachable` when no edge of that id
    listens on NATS or it did not answer within ``timeout_s``."""
    from nats.errors import NoRespondersError

    text = token.token if isinstance(token, SignedGrant) else token
    request = json.dumps({"camera": camera_id, "token": text}).encode()
    try:
        reply = await nc.request(wire.snapshot_subject(edge_id), request, timeout=timeout_s)
    except NoRespondersError:
        raise EdgeUnreachable(f"edge {edge_id!r} is not connected to NATS") from None
    except TimeoutError:
        raise EdgeUnreachable(f"edge {edge_id!r} did not answer within {timeout_s:g} s") from None
    if reply.data.startswith(b"\xff\xd8"):  # a JPEG's start of image
        return bytes(reply.data)
    raise _refused(edge_id, reply.data)


def _refused(edge_id: str, data: bytes) -> CamgateError:
    """The camgate error of an edge's JSON refusal (its ``error`` name and ``message``)."""
    try:
        answer = json.loads(data)
    except (ValueError, RecursionError):
        answer = None
    name = str(answer.get("error", "")) if isinstance(answer, dict) else ""
    message = str(answer.get("message", "")) if isinstance(answer, dict) else ""
    return _refusal(name)(f"edge {edge_id!r} refused: {name}: {message}"[:500])


async def fetch_edge_audit(
    nc: Client, edge_id: str, edge_key: bytes, timeout_s: float = 30.0
) -> tuple[list[AuditRecord], VerifyResult]:
    """Ask edge ``edge_id`` for its own audit log over NATS and verify it against ``edge_key``
    (the edge's public key, pinned by the hub's operator: ``camgate --db edge.sqlite edge key``
    at the site): every hash and link, and every checkpoint's signature (the edge signs one
    when asked). Returns the records and the verdict; raises CamgateError when the edge refused
    or the reply is not an export, TimeoutError when it did not answer."""
    from camgate.report import verify_export

    reply = await nc.request(wire.audit_subject(edge_id), b"{}", timeout=timeout_s)
    if reply.data.startswith(b"{"):
        try:
            answer = json.loads(reply.data)
            refused = f"{answer['error']}: {answer['message']}"
        except (ValueError, KeyError, TypeError, RecursionError):
            refused = "an unreadable answer"
        raise CamgateError(f"edge {edge_id!r} did not send its audit log: {refused}"[:500])
    lines = wire.unpack_audit(reply.data)
    return await anyio.to_thread.run_sync(verify_export, lines, edge_key)
