"""The gate: the only path from an officer's request to a camera's media.

    request → geofence → every consent policy votes → grant → owner notified
            → media flows inside the edge's guard → audit record

The hub side (this module) decides and signs; the edge side (:mod:`camgate.edge`) verifies and
serves. In the embedded default both live in one process around one SQLite file, and
:class:`Gate` holds its :class:`~camgate.edge.Edge` as ``gate.edge``.

Core invariants, checked here and not through plugins, so no plugin set can switch them off:

- ``core.opt-in`` — the camera's owner enrolled it and accepted a published waiver whose hash
  matches the record, and has not revoked;
- ``core.incident`` — the incident is open and the request falls inside its time window;
- ``core.scope`` — the owner's terms allow the scope (live, recorded, snapshot);
- ``core.capability`` — the camera's adapter is installed and can serve the scope;
- ``core.geofence`` — at least one geofence plugin includes the camera and none excludes it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import anyio.to_thread
import attrs

from camgate.adapters import Credentials
from camgate.audit import AuditLog
from camgate.clock import Clock, SystemClock
from camgate.codec import dump
from camgate.edge import Edge
from camgate.errors import AccessDenied, NotFound, PluginError, ValidationError
from camgate.geofence import (
    Exclusions,
    IncidentZones,
    Jurisdiction,
    RadiusGeofence,
    Sighting,
    StoreIndex,
    ZoneBook,
    distance_m,
    survey,
)
from camgate.grants import GrantSigner, GrantVerifier, SignedGrant
from camgate.models import (
    AccessRequest,
    Camera,
    ConsentRecord,
    ConsentTerms,
    Decision,
    GeoPoint,
    Grant,
    Incident,
    IncidentStatus,
    Owner,
    Scope,
    Verdict,
    Vote,
    Waiver,
    new_id,
)
from camgate.notify import OutboxNotifier, OwnerNotice
from camgate.plugins import PluginHost
from camgate.policy import PolicyContext, ScopePolicy
from camgate.store import Store

__all__ = ["Gate", "builtin_plugins"]

#: How long a snapshot grant stays redeemable.
SNAPSHOT_GRANT_S = 60.0


def builtin_plugins(store: Store) -> dict[str, object]:
    """camgate's own plugins, registered before external ones (replaceable by name)."""
    return {
        "camgate.policy": ScopePolicy(),
        "camgate.geofence": RadiusGeofence(),
        "camgate.geofence.zones": IncidentZones(ZoneBook.for_store(store)),
        "camgate.geofence.exclusions": Exclusions(ZoneBook.for_store(store)),
        "camgate.geofence.jurisdiction": Jurisdiction(ZoneBook.for_store(store)),
        "camgate.outbox": OutboxNotifier(store),
    }


class Gate:
    """Decides requests, signs grants, records everything; holds the embedded edge.

    Build one with :meth:`Gate.open` (a store file and a key file next to it), or from parts.
    Registry methods are synchronous; :meth:`request_access`, :meth:`revoke` and the media
    calls are async (anyio) and keep disk waits off the event loop.
    """

    def __init__(
        self,
        *,
        store: Store,
        host: PluginHost,
        signer: GrantSigner,
        clock: Clock | None = None,
        adapter_settings: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        self.store = store
        self.host = host
        self.clock: Clock = clock or SystemClock()
        self.audit = AuditLog(store, signer=signer)
        self._signer = signer
        #: The agency's zones (search areas, corridors, exclusions, jurisdiction).
        self.zones = ZoneBook.for_store(store)
        #: The cameras' spatial index, kept in step with the store.
        self.camera_index = StoreIndex(store)
        self.edge = Edge(
            store=store,
            host=host,
            verifier=GrantVerifier(signer.public_key),
            audit=self.audit,
            clock=self.clock,
            adapter_settings=adapter_settings,
        )

    @classmethod
    def open(
        cls,
        path: str | Path,
        *,
        key_path: str | Path | None = None,
        entry_points: bool = True,
        clock: Clock | None = None,
        adapter_settings: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> Gate:
        """Open (or create) the store at ``path`` and the signing key beside it (``.key``)."""
        store = Store(path)
        signer = GrantSigner.load_or_create(key_path or Path(path).with_suffix(".key"))
        host = PluginHost(builtins=builtin_plugins(store), entry_points=entry_points)
        return cls(
            store=store, host=host, signer=signer, clock=clock, adapter_settings=adapter_settings
        )

    def __repr__(self) -> str:
        return f"<Gate store={self.store.path}>"

    @property
    def public_key(self) -> bytes:
        """The hub's Ed25519 public key, which an edge needs to verify grants."""
        return self._signer.public_key

    async def aclose(self) -> None:
        """End every live stream, close adapters and the store."""
        await self.edge.aclose()
        self.audit.close()
        self.store.close()

    async def __aenter__(self) -> Gate:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # ------------------------------------------------------------------ registry and consent

    def add_owner(self, owner: Owner) -> Owner:
        """Register an owner."""
        self.store.add_owner(owner)
        return owner

    def add_camera(self, camera: Camera, credentials: Credentials | None = None) -> Camera:
        """Register a camera; its credentials (if any) are kept at the edge, never in the model."""
        self.host.adapter(camera.adapter)  # a clear error now rather than at request time
        self.store.add_camera(camera)  # drops old credentials if the owner or source changed
        self.camera_index.update(camera)
        if credentials is not None:
            self.store.set_credentials(camera.id, credentials)
        self.edge.credentials_changed(camera.adapter)
        return camera

    async def remove_camera(self, camera_id: str) -> Camera:
        """Take a camera out of camgate: its live streams end, it leaves the index, and no
        later request can reach it. Consent records and the audit history are kept."""
        camera = await anyio.to_thread.run_sync(self.store.get_camera, camera_id)
        self.edge.begin_removal(camera.id)
        try:
            await self.edge.close_camera_streams(camera.id)
            await anyio.to_thread.run_sync(self.store.remove_camera, camera.id)
            self.camera_index.discard(camera.id)
            self.edge.credentials_changed(camera.adapter)
            await anyio.to_thread.run_sync(
                lambda: self.audit.append("camera.removed", {"camera": camera.id}, self.clock.now())
            )
        finally:
            self.edge.end_removal(camera.id)
        return camera

    def publish_waiver(self, waiver: Waiver) -> Waiver:
        """Publish a waiver version; owners accept it by its version and the hash of its text."""
        self.store.add_waiver(waiver)
        self.audit.append(
            "waiver.published",
            {"version": waiver.version, "sha256": waiver.sha256},
            self.clock.now(),
        )
        return waiver

    def enrol(
        self,
        owner_id: str,
        camera_ids: Sequence[str],
        *,
        waiver_version: str,
        waiver_sha256: str,
        terms: ConsentTerms,
    ) -> ConsentRecord:
        """Record that an owner accepted a waiver for their cameras, under their terms.

        ``waiver_sha256`` is the hash of the text the owner was shown; it must match the
        published version's, so a record can never point at text the owner did not see.
        """
        owner = self.store.get_owner(owner_id)
        waiver = self.store.get_waiver(waiver_version)
        if waiver_sha256 != waiver.sha256:
            raise ValidationError(
                f"waiver {waiver_version!r}: the accepted text's SHA-256 does not match the "
                "published text; show the owner the current text and enrol again"
            )
        for camera_id in camera_ids:
            camera = self.store.get_camera(camera_id)
            if camera.owner_id != owner.id:
                raise ValidationError(f"camera {camera_id!r} does not belong to {owner.id!r}")
        record = ConsentRecord(
            id=new_id("con"),
            owner_id=owner.id,
            camera_ids=tuple(camera_ids),
            waiver_version=waiver.version,
            waiver_sha256=waiver.sha256,
            accepted_at=self.clock.now(),
            terms=terms,
        )
        self.store.add_consent(record)
        self.audit.append("consent.enrolled", dump(record), record.accepted_at)
        return record

    async def revoke(self, owner_id: str) -> list[str]:
        """Revoke every consent of an owner: live streams end at once, later requests fail.

        First, synchronously and before anything touches the disk, every stream of the owner's
        cameras is tripped (no packet is handed over after this call begins) and new grants for
        them are refused. Then the revocation is made durable and audited — shielded, so a
        caller that gives up (a time-out, a cancelled request) cannot undo it — and only then are
        the camera connections closed (a failing close cannot undo it either) and the owner
        notified. Returns the cameras whose consent was revoked.
        """
        at = self.clock.now()
        self.edge.begin_revocation(owner_id)
        try:
            with anyio.CancelScope(shield=True):
                owner = await anyio.to_thread.run_sync(self.store.get_owner, owner_id)
                cameras = await anyio.to_thread.run_sync(self.store.revoke_consents, owner.id, at)
                await anyio.to_thread.run_sync(
                    lambda: self.audit.append(
                        "consent.revoked", {"owner": owner.id, "cameras": cameras}, at
                    )
                )
                await self.edge.close_owner_streams(owner.id)
        finally:
            self.edge.end_revocation(owner_id)
        for camera_id in cameras:
            notice = OwnerNotice(
                id=new_id("ntc"), owner_id=owner.id, camera_id=camera_id, event="revoked", at=at
            )
            await anyio.to_thread.run_sync(self._notify, notice)
        self.host.consent_revoked(owner.id, cameras, at)
        return cameras

    # ------------------------------------------------------------------ incidents

    def report_incident(
        self,
        kind: str,
        position: GeoPoint,
        radius_m: float,
        *,
        reported_at: datetime | None = None,
        window_s: float = 12 * 3600.0,
    ) -> Incident:
        """Open an incident; cameras inside its geofence become reachable for its window."""
        incident = Incident(
            id=new_id("inc"),
            kind=kind,
            position=position,
            reported_at=reported_at or self.clock.now(),
            radius_m=radius_m,
            window_s=window_s,
        )
        self.store.add_incident(incident)
        self.audit.append("incident.reported", dump(incident), self.clock.now())
        return incident

    def close_incident(self, incident_id: str) -> Incident:
        """Close an incident: it reaches no camera any more."""
        incident = attrs.evolve(self.store.get_incident(incident_id), status=IncidentStatus.CLOSED)
        self.store.add_incident(incident)
        self.audit.append("incident.closed", {"incident": incident.id}, self.clock.now())
        return incident

    def reachable(self, incident_id: str) -> list[tuple[Camera, list[Vote]]]:
        """The cameras in the incident's zones with their geofence votes, reachable ones first.

        Reachable cameras come best view first (see :meth:`sightings`), then the others, nearest
        first. A closed incident, or one past its window, reaches none.
        """
        incident = self.store.get_incident(incident_id)
        return [(s.camera, list(s.votes)) for s in self.sightings(incident)]

    def sightings(self, incident: Incident, now: datetime | None = None) -> list[Sighting]:
        """Every camera in the zones of ``incident`` (stored or not), voted on and ranked.

        Uses the spatial index: only cameras that may lie in a zone source's extent are tested.
        """
        when = now or self.clock.now()
        return survey(
            incident,
            self.camera_index.get(),
            self.host.geofence_extents(incident),
            lambda camera: self._geofence(incident, camera, when),
        )

    # ------------------------------------------------------------------ decisions

    def _geofence(self, incident: Incident, camera: Camera, now: datetime) -> list[Vote]:
        votes = self.host.geofence_votes(incident, camera, now)
        if not any(v.verdict is Verdict.ALLOW for v in votes):
            # Zones abstain with their reasons; the deny repeats them so a refusal says why.
            said = "; ".join(
                f"{v.policy}: {v.reason}" for v in votes if v.verdict is Verdict.ABSTAIN
            )
            why = "no geofence of the incident covers this camera" + (f" ({said})" if said else "")
            votes.append(Vote("core.geofence", Verdict.DENY, why))
        return votes

    def decide(self, request: AccessRequest) -> Decision:
        """Collect every vote on a request (core invariants, geofences, consent policies)."""
        return self._decide(request)[0]

    def _decide(self, request: AccessRequest) -> tuple[Decision, ConsentRecord | None]:
        camera = self.store.get_camera(request.camera_id)
        incident = self.store.get_incident(request.incident_id)
        now = request.requested_at
        consent = self.store.active_consent(camera.id)
        waiver: Waiver | None = None
        votes: list[Vote] = []
        if consent is None:
            revoked = self.store.revoked_since(camera.id)
            why = (
                "the owner revoked consent" if revoked else "the owner has not enrolled this camera"
            )
            votes.append(Vote("core.opt-in", Verdict.DENY, why))
        else:
            try:
                waiver = self.store.get_waiver(consent.waiver_version)
            except NotFound:
                waiver = None
            if waiver is None or waiver.sha256 != consent.waiver_sha256:
                votes.append(
                    Vote(
                        "core.opt-in",
                        Verdict.DENY,
                        "the consent record does not match a published waiver",
                    )
                )
                consent = None
            else:
                votes.append(
                    Vote("core.opt-in", Verdict.ALLOW, f"enrolled under waiver {waiver.version}")
                )
                # The owner's scopes are promise 3: a core invariant, not an unpluggable policy.
                allowed = ", ".join(sorted(consent.terms.scopes)) or "nothing"
                if request.scope in consent.terms.scopes:
                    votes.append(
                        Vote(
                            "core.scope", Verdict.ALLOW, f"the owner allows {request.scope} access"
                        )
                    )
                else:
                    votes.append(
                        Vote(
                            "core.scope",
                            Verdict.DENY,
                            f"the owner does not allow {request.scope} access (allowed: {allowed})",
                        )
                    )
        if incident.active_at(now):
            votes.append(
                Vote(
                    "core.incident",
                    Verdict.ALLOW,
                    f"{incident.kind} incident open since {incident.reported_at:%H:%M}",
                )
            )
        else:
            why = (
                "the incident is closed"
                if incident.status is IncidentStatus.CLOSED
                else "the request falls outside the incident's time window"
            )
            votes.append(Vote("core.incident", Verdict.DENY, why))
        try:
            factory = self.host.adapter(camera.adapter)
            if request.scope in factory.capabilities.scopes:
                votes.append(
                    Vote(
                        "core.capability",
                        Verdict.ALLOW,
                        f"adapter {factory.name} serves {request.scope}",
                    )
                )
            else:
                votes.append(
                    Vote(
                        "core.capability",
                        Verdict.DENY,
                        f"adapter {factory.name} cannot serve {request.scope}",
                    )
                )
        except PluginError as exc:
            votes.append(Vote("core.capability", Verdict.DENY, str(exc)))
        votes.extend(self._geofence(incident, camera, now))
        ctx = PolicyContext(
            request=request,
            camera=camera,
            incident=incident,
            consent=consent,
            waiver=waiver,
            distance_m=distance_m(incident.position, camera.position),
            now=now,
        )
        votes.extend(self.host.consent_votes(ctx))
        return Decision(request.id, camera.id, votes, self.clock.now()), consent

    def _notify(self, notice: OwnerNotice) -> bool:
        accepted = self.host.notify_owner(notice)
        self.audit.append(
            "owner.notified" if accepted else "owner.notify_failed",
            notice.to_json(),
            self.clock.now(),
        )
        return accepted

    async def request_access(
        self,
        incident_id: str,
        camera_id: str,
        scope: Scope | str,
        *,
        requested_by: str,
        duration_s: float = 60.0,
        purpose: str = "investigation",
        window: tuple[datetime, datetime] | None = None,
    ) -> SignedGrant:
        """Ask for one scope of one camera under an incident; returns a signed grant.

        The decision (every vote) is durable in the audit log and the owner notified before this
        returns or raises. Raises :class:`camgate.errors.AccessDenied` with every reason when any
        vote denies, NotFound for an unknown camera or incident.
        """
        request = AccessRequest(
            id=new_id("req"),
            incident_id=incident_id,
            camera_id=camera_id,
            scope=scope,
            requested_by=requested_by,
            requested_at=self.clock.now(),
            purpose=purpose,
            duration_s=duration_s,
            window_start=window[0] if window else None,
            window_end=window[1] if window else None,
        )
        return await anyio.to_thread.run_sync(self._request_sync, request)

    def _request_sync(self, request: AccessRequest) -> SignedGrant:
        decision, consent = self._decide(request)
        camera = self.store.get_camera(request.camera_id)
        incident = self.store.get_incident(request.incident_id)
        self.store.add_request(request, decision)
        self.audit.append(
            "decision",
            {"request": dump(request), "decision": decision.to_json()},
            decision.decided_at,
        )
        self.host.decision_made(decision)
        notice = OwnerNotice(
            id=new_id("ntc"),
            owner_id=camera.owner_id,
            camera_id=camera.id,
            event="granted" if decision.allowed else "refused",
            at=decision.decided_at,
            scope=str(request.scope),
            incident_kind=incident.kind,
            distance_m=round(distance_m(incident.position, camera.position), 1),
            duration_s=request.duration_s,
            requested_by=request.requested_by,
            reasons=tuple(decision.reasons),
        )
        told = self._notify(notice)
        if not decision.allowed:
            raise AccessDenied(decision)
        if not told:
            raise PluginError(
                "no notifier accepted the owner's notice, so no grant was issued; "
                "register a notifier (the built-in camgate.outbox accepts every notice)"
            )
        issued = self.clock.now()
        lifetime = SNAPSHOT_GRANT_S if request.scope is Scope.SNAPSHOT else request.duration_s
        # Never beyond the incident's window: a grant cannot outlive the reason for it.
        expires = min(issued + timedelta(seconds=lifetime), incident.window_end)
        grant = Grant(
            id=new_id("grt"),
            request_id=request.id,
            camera_id=camera.id,
            incident_id=incident.id,
            scope=request.scope,
            issued_at=issued,
            expires_at=expires,
            window_start=request.window_start,
            window_end=request.window_end,
            consent_id=consent.id if consent is not None else None,
        )
        signed = self._signer.sign(grant)
        self.store.add_grant(grant, signed.token)
        self.audit.append("grant.issued", dump(grant), issued)
        return signed
