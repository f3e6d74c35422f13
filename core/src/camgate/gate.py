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

import contextlib
import copy
import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import anyio.to_thread
import attrs

from camgate.adapters import Credentials
from camgate.audit import AuditLog, hub_signer
from camgate.clock import Clock, SystemClock
from camgate.codec import canonical, dump, load
from camgate.edge import Edge
from camgate.errors import (
    AccessDenied,
    AnswerPending,
    NotFound,
    PluginError,
    RequestExpired,
    ValidationError,
)
from camgate.facts import DecisionFacts, FactCache
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
    DEFAULT_PURPOSE,
    AccessRequest,
    Camera,
    ConsentMode,
    ConsentRecord,
    ConsentTerms,
    Decision,
    GeoPoint,
    Grant,
    Incident,
    IncidentStatus,
    Owner,
    PendingRequest,
    PrivacyMask,
    Scope,
    Verdict,
    Vote,
    Waiver,
    new_id,
)
from camgate.notify import OutboxNotifier, OwnerNotice
from camgate.plugins import PluginHost
from camgate.policy import AgencyPolicy, PolicyContext, TermsPolicy, in_quiet_hours
from camgate.relay import RelaySettings, TransformFactory
from camgate.retention import Retention
from camgate.rules import AgencyRules
from camgate.settings import split_camera_settings
from camgate.store import Store, process_alive, process_identity
from camgate.surveys import Outcome, Survey, SurveyRow
from camgate.vocab import AuditKind, EndReason

__all__ = ["Gate", "builtin_plugins"]

#: How long a snapshot grant stays redeemable.
SNAPSHOT_GRANT_S = 60.0
# How long a waiter gives an answering process to store its decision and grant after it closed
# the held request (one SQLite transaction each; seconds is ample even on a loaded machine).
CONCLUDE_GRACE_S = 30.0


def builtin_plugins(store: Store, rules: AgencyRules | None = None) -> dict[str, object]:
    """camgate's own plugins, registered before external ones (replaceable by name).

    ``camgate.policy`` enforces the owner's terms, ``camgate.agency`` the agency's ``rules``
    (none by default), ``camgate.geofence`` the incident radius, ``camgate.outbox`` keeps every
    owner notice.
    """
    return {
        "camgate.policy": TermsPolicy(),
        "camgate.agency": AgencyPolicy(rules or AgencyRules()),
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
        audit_dsn: str | None = None,
        relay_settings: RelaySettings | None = None,
        transform_factory: TransformFactory | None = None,
    ) -> None:
        self.store = store
        self.host = host
        self.clock: Clock = clock or SystemClock()
        # The audit log: in the store's file, or the PostgreSQL database of ``audit_dsn`` (or
        # of $CAMGATE_AUDIT_DSN); see docs/audit.md.
        self.audit = AuditLog(store, signer=signer, dsn=audit_dsn)
        self._signer = signer
        #: The agency's zones (search areas, corridors, exclusions, jurisdiction).
        self.zones = ZoneBook.for_store(store)
        #: The cameras' spatial index, kept in step with the store.
        self.camera_index = StoreIndex(store)
        #: The facts decisions read, kept in memory while the store's change counters stand.
        self.facts = FactCache(store)
        self._answered: dict[str, anyio.Event] = {}
        self.edge = Edge(
            store=store,
            host=host,
            verifier=GrantVerifier(signer.public_key),
            audit=self.audit,
            clock=self.clock,
            adapter_settings=adapter_settings,
            relay_settings=relay_settings,
            transform_factory=transform_factory,
        )
        #: The registry of exported files, evidence holds and deletions (docs/retention.md).
        self.retention = Retention(store, self.audit, rules=lambda: self.rules, clock=self.clock)
        self.edge.retention = self.retention
        self._settle_interrupted()

    @classmethod
    def open(
        cls,
        path: str | Path,
        *,
        key_path: str | Path | None = None,
        entry_points: bool = True,
        clock: Clock | None = None,
        adapter_settings: Mapping[str, Mapping[str, Any]] | None = None,
        rules: AgencyRules | None = None,
        audit_dsn: str | None = None,
        relay_settings: RelaySettings | None = None,
    ) -> Gate:
        """Open (or create) the store at ``path`` and the signing key beside it (``.key``).

        ``rules`` are the agency's (enrolment caps, live-view kinds, banned purposes, sensitive
        places); see :class:`camgate.rules.AgencyRules` and docs/consent.md. ``audit_dsn``
        keeps the audit log in PostgreSQL (default: ``$CAMGATE_AUDIT_DSN``, else the store).
        ``relay_settings`` bound the edge's relay and turn its GOP cache on (docs/media.md).
        """
        store = Store(path)
        signer = hub_signer(path, key_path)  # never a new key for a log that has records
        host = PluginHost(builtins=builtin_plugins(store, rules), entry_points=entry_points)
        return cls(
            store=store,
            host=host,
            signer=signer,
            clock=clock,
            adapter_settings=adapter_settings,
            audit_dsn=audit_dsn,
            relay_settings=relay_settings,
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

    def add_camera(
        self,
        camera: Camera,
        credentials: Credentials | None = None,
        settings: Mapping[str, Any] | None = None,
    ) -> Camera:
        """Register a camera; its credentials (if any) are kept at the edge, never in the model.

        ``settings`` are the camera's own adapter settings (docs/rtsp.md, docs/onvif.md), over
        the adapter-wide ones: validated by the adapter first (ValidationError, nothing stored),
        then stored with the camera, the values of secret keys apart with the credentials. None
        keeps the camera's stored settings; ``{}`` clears them. A camera that changes owner or
        source loses its credentials and settings (they belonged to the old device or owner).
        """
        factory = self.host.adapter(camera.adapter)  # a clear error now, not at request time
        plain, secret = (
            split_camera_settings(factory, settings) if settings is not None else ({}, {})
        )
        self.store.add_camera(
            camera, None if settings is None else plain, None if settings is None else secret
        )
        self.camera_index.update(camera)
        if credentials is not None:
            self.store.set_credentials(camera.id, credentials)
        self.edge.credentials_changed(camera.adapter)
        return camera

    def set_camera_settings(
        self,
        camera_id: str,
        settings: Mapping[str, Any] | None = None,
        unset: Sequence[str] = (),
    ) -> dict[str, Any]:
        """Change a camera's own adapter settings: ``settings`` set over the stored ones, then
        the keys in ``unset`` removed. The result is validated by the adapter (ValidationError,
        nothing changed) and stored like :meth:`add_camera`'s; new grants use it, streams
        already open keep theirs. Returns :meth:`camera_settings`."""
        camera = self.store.get_camera(camera_id)
        current = self.store.camera_settings(camera_id) | self.store.secret_settings(camera_id)
        current |= dict(settings or {})
        for key in unset:
            current.pop(key, None)
        plain, secret = split_camera_settings(self.host.adapter(camera.adapter), current)
        self.store.set_camera_settings(camera_id, plain, secret)
        self.edge.credentials_changed(camera.adapter)
        return self.camera_settings(camera_id)

    def camera_settings(self, camera_id: str) -> dict[str, Any]:
        """What may be shown of a camera's own settings: ``settings`` (the plain ones) and
        ``secret`` (the names of the secret ones that are set, never their values)."""
        self.store.get_camera(camera_id)
        return {
            "settings": self.store.camera_settings(camera_id),
            "secret": sorted(self.store.secret_settings(camera_id)),
        }

    async def remove_camera(self, camera_id: str) -> Camera:
        """Take a camera out of camgate: its live streams end, it leaves the index, and no
        later request can reach it. Consent records and the audit history are kept."""
        camera = await anyio.to_thread.run_sync(self.store.get_camera, camera_id)
        self.edge.begin_removal(camera.id)
        try:
            await self.edge.close_camera_streams(camera.id)
            # The removal and its camera.removed record: both or neither (_audited).
            await anyio.to_thread.run_sync(
                lambda: self._audited(
                    AuditKind.CAMERA_REMOVED, lambda: {"camera": camera.id}, self.clock.now()
                )
            )
            self.camera_index.discard(camera.id)
            self.edge.credentials_changed(camera.adapter)
        finally:
            self.edge.end_removal(camera.id)
        return camera

    async def set_masks(
        self, owner_id: str, camera_id: str, polygons: Sequence[Sequence[Sequence[float]]]
    ) -> PrivacyMask:
        """The owner sets (or, with no polygons, clears) a camera's privacy masks.

        Polygons are in normalised image coordinates (see :class:`PrivacyMask`; invalid ones
        raise ValidationError and change nothing). Only the camera's owner may set them. The
        change is stored and audited (``masks.set``) before it returns, and every open stream of
        the camera is ended (reason ``masks-changed``) so nothing keeps flowing under the old
        masks; a new request opens with the new ones. Cameras that can mask their own picture
        (ONVIF Media2) are given the masks too, best effort (``masks.pushed`` when they took
        them); the gate's own masking applies either way.
        """
        camera = await anyio.to_thread.run_sync(self.store.get_camera, camera_id)
        if camera.owner_id != owner_id:
            raise ValidationError(f"camera {camera_id!r} does not belong to owner {owner_id!r}")
        mask = PrivacyMask(camera.id, polygons, self.clock.now(), owner_id)
        await anyio.to_thread.run_sync(
            lambda: self._audited(
                AuditKind.MASKS_SET, lambda: dump(mask) | {"owner": owner_id}, mask.set_at
            )
        )
        await self.edge.end_camera_streams(camera.id, EndReason.MASKS_CHANGED)
        if await self.edge.push_masks(camera, mask.polygons):
            await anyio.to_thread.run_sync(
                lambda: self.audit.append(
                    AuditKind.MASKS_PUSHED,
                    {"camera_id": camera.id, "owner": owner_id, "polygons": len(mask.polygons)},
                    self.clock.now(),
                )
            )
        return mask

    def masks(self, camera_id: str) -> PrivacyMask | None:
        """The camera's privacy masks, or None."""
        return self.store.masks(camera_id)

    def publish_waiver(self, waiver: Waiver) -> Waiver:
        """Publish a waiver version; owners accept it by its version and the hash of its text."""
        self.store.add_waiver(waiver)
        self.audit.append(
            AuditKind.WAIVER_PUBLISHED,
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
        self._settle_interrupted()  # no enrolment counted against a dead process's intent
        owner = self.store.get_owner(owner_id)
        waiver = self.store.get_waiver(waiver_version)
        if waiver_sha256 != waiver.sha256:
            raise ValidationError(
                f"waiver {waiver_version!r}: the accepted text's SHA-256 does not match the "
                "published text; show the owner the current text and enrol again"
            )
        cameras = self._check_enrolment(owner, camera_ids, terms)
        record = ConsentRecord(
            id=new_id("con"),
            owner_id=owner.id,
            camera_ids=tuple(camera_ids),
            waiver_version=waiver.version,
            waiver_sha256=waiver.sha256,
            accepted_at=self.clock.now(),
            terms=terms,
        )
        # The classes go into the record so a report can count enrolments from the log alone.
        classes = {c.id: str(c.camera_class) for c in cameras}

        def checked() -> dict[str, Any]:
            # Under the store's write lock, which every enrolling process takes: the count the
            # cap is checked against cannot change before this record commits.
            self._check_caps(cameras)
            return dump(record) | {"camera_classes": classes}

        self._audited(AuditKind.CONSENT_ENROLLED, checked, record.accepted_at)
        return record

    @property
    def rules(self) -> AgencyRules:
        """The agency's rules in force (those of the registered ``camgate.agency`` plugin)."""
        plugin = self.host.pm.get_plugin("camgate.agency")
        return plugin.rules if isinstance(plugin, AgencyPolicy) else AgencyRules()

    def _check_enrolment(
        self, owner: Owner, camera_ids: Sequence[str], terms: ConsentTerms
    ) -> list[Camera]:
        """Refuse bad enrolments before anything is written (consent issue)."""
        if not isinstance(terms, ConsentTerms):
            raise ValidationError(f"terms: expected ConsentTerms, got {type(terms).__name__}")
        if isinstance(camera_ids, str) or not camera_ids:
            raise ValidationError("camera_ids: give a list of at least one camera id")
        if len(set(camera_ids)) != len(camera_ids):
            raise ValidationError(f"camera_ids: {list(camera_ids)!r} names a camera twice")
        if terms.ends_at is not None and terms.ends_at <= self.clock.now():
            raise ValidationError(f"terms.ends_at={terms.ends_at.isoformat()}: already passed")
        cameras = []
        for camera_id in camera_ids:
            camera = self.store.get_camera(camera_id)
            if camera.owner_id != owner.id:
                raise ValidationError(f"camera {camera_id!r} does not belong to {owner.id!r}")
            cameras.append(camera)
        self._check_caps(cameras)  # early, for a clear error; again under the write lock
        return cameras

    def _check_caps(self, cameras: list[Camera]) -> None:
        """Refuse an enrolment of ``cameras`` that would exceed the agency's caps. Counts the
        enrolled cameras and those of enrolments under way in another process (intents)."""
        rules = self.rules
        if rules.enrolment_caps:
            enrolled = {c.id: c for c in self.store.enrolled_cameras()}
            for _id, kind, body, *_rest in self.store.intents():
                if kind == AuditKind.CONSENT_ENROLLED:
                    for camera_id in json.loads(body)["camera_ids"]:
                        with contextlib.suppress(NotFound):
                            enrolled.setdefault(camera_id, self.store.get_camera(camera_id))
            enrolled.update({c.id: c for c in cameras})
            for cls in {c.camera_class for c in cameras}:
                cap = rules.cap(cls)
                count = sum(1 for c in enrolled.values() if c.camera_class is cls)
                if cap is not None and count > cap:
                    raise ValidationError(
                        f"{rules.name} caps enrolment at {cap} {cls} cameras; "
                        f"this enrolment would make {count}"
                    )

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

        def revoked() -> dict[str, Any]:
            # Under the write lock: exactly the records standing now are revoked, and the record
            # names them, so the change can be applied again from the record alone.
            ids = self.store.active_consent_ids(owner.id)
            records = [c for c in self.store.consents(owner.id) if c.id in ids]
            cameras = sorted({cam for c in records for cam in c.camera_ids})
            return {"owner": owner.id, "cameras": cameras, "consents": ids}

        try:
            with anyio.CancelScope(shield=True):
                owner = await anyio.to_thread.run_sync(self.store.get_owner, owner_id)
                # The revocation, its consent.revoked record and the owner notices it owes
                # commit together (_audited); the notices are sent below, or on the next open.
                body = await anyio.to_thread.run_sync(
                    lambda: self._audited(AuditKind.CONSENT_REVOKED, revoked, at)
                )
                cameras: list[str] = body["cameras"]
                await self.edge.close_owner_streams(owner.id)
        finally:
            self.edge.end_revocation(owner_id)
        await anyio.to_thread.run_sync(self._refuse_pending_of, owner.id, at)
        await anyio.to_thread.run_sync(self._pay_owed_notices, owner.id)
        self.host.consent_revoked(owner.id, cameras, at)
        return cameras

    # ------------------------------------------------------------------ audited changes

    def _audited(
        self, kind: AuditKind, prepare: Callable[[], dict[str, Any]], at: datetime
    ) -> dict[str, Any]:
        """Make the state change ``kind`` names and write its audit record: both or neither.

        ``prepare`` runs under the store's write lock (what it checks holds until the change
        commits), may refuse by raising a camgate error (then nothing is written), and returns
        the record's body; the change is ``_CHANGES[kind]`` applied from that body alone.

        With the log in the store's file (the default) the change and its record are one SQLite
        transaction. With the log elsewhere (PostgreSQL) no transaction spans both, so an intent
        (the body) is committed to the store first and the order depends on what the change
        does to access (docs/architecture.md, "State changes and their audit records"):

        - a change that reduces access (:data:`_ROLL_FORWARD`: a revocation, a camera removed,
          masks) commits with its intent, then its record is appended: it is in force at once
          in every process sharing the store, and recovery appends a record that is missing
          (rolls forward) — access closes even when the record is late;
        - any other change (it grants access, or leads to it) commits its intent, then its
          record, then the change: recovery applies the change when the record exists and
          drops the intent when it does not, so nothing is in force without its record.

        :meth:`_settle_interrupted` settles the intents a dead process left.
        """
        apply = _CHANGES[kind]
        body: dict[str, Any] = {}
        if self.audit.shares_store:

            def change() -> dict[str, Any]:
                body.update(prepare())
                apply(self, body, at)
                return body

            self.audit.append_with(kind, change, at)
            return body
        forward = kind in _ROLL_FORWARD
        with self.store.transaction():
            body.update(prepare())
            if forward:
                apply(self, body, at)
            after = self.audit.last_seq()
            intent = self.store.add_intent(kind, canonical(body).decode(), at.isoformat(), after)
            _IN_FLIGHT.add(
                (self.store.path, intent)
            )  # before the commit: no settling pass of ours may take it
        try:
            self.audit.append(kind, body, at)
        except Exception:
            # Not written, or written and the reply lost: settle now if the log can tell (else
            # the intent stays for a later pass). A change in force already stands either way.
            _IN_FLIGHT.discard((self.store.path, intent))
            if self._settle_intent(intent, kind, body, at, after=after) and forward:
                return body  # the record was written after all (or again, now)
            raise
        _IN_FLIGHT.discard((self.store.path, intent))
        self._settle_intent(intent, kind, body, at, recorded=True)
        return body

    def _settle_intent(
        self,
        intent: int,
        kind: str,
        body: dict[str, Any],
        at: datetime,
        *,
        recorded: bool | None = None,
        after: int = 0,
    ) -> bool:
        """Finish an intent: a change in force already (:data:`_ROLL_FORWARD`) gets its record
        if it has none; any other is applied when its record exists and dropped when it does
        not. False (the intent left for a later pass) when the audit log cannot be asked."""
        try:
            with self.store.transaction():
                # Under the write lock, and the intent deleted in the same transaction: two
                # processes settling the same intent cannot both append or both apply.
                if not self.store.drop_intent(intent):
                    return True  # settled by someone else
                if recorded is None:
                    recorded = self.audit.has_record(kind, body, after)
                if kind in _ROLL_FORWARD:
                    if not recorded:
                        self.audit.append(kind, body, at)
                elif recorded and kind in _CHANGES:
                    _CHANGES[kind](self, body, at)
        except Exception:  # the log is unreachable: the deletion rolled back, a later pass
            return False
        return True

    def _settle_interrupted(self) -> None:
        """Finish what interrupted processes left: their intents (audit log in PostgreSQL) and
        the owner notices they owed. Runs on open and, when anything is left (one cheap
        query), before every decision, enrolment and answer: a running hub never acts on a
        state a crashed process left half-made, and notices owed by the dead are sent.

        An intent of a process that still runs (same pid *and* start time, so a reused pid is
        not mistaken for it) is under way and left alone; this process's own intents are left
        only while in flight (:data:`_IN_FLIGHT`).
        """
        if not self.store.has_leftovers():
            return
        me = os.getpid()
        for intent_id, kind, text, at, after, pid, started in self.store.intents():
            if (self.store.path, intent_id) in _IN_FLIGHT or (
                pid != me and process_alive(pid, started)
            ):
                continue  # under way
            when = datetime.fromisoformat(at)
            self._settle_intent(intent_id, kind, json.loads(text), when, after=after)
        self._pay_owed_notices(dead_only=True)

    def _pay_owed_notices(self, owner_id: str | None = None, *, dead_only: bool = False) -> None:
        """Send the owner notices committed changes owe: this process's (one owner's, or all),
        or with ``dead_only`` those of processes that died before sending them (taken over
        first, so two processes never both send one)."""
        me = (os.getpid(), process_identity())
        for doc, pid, started in self.store.owed_notices():
            notice = load(OwnerNotice, doc)
            if owner_id not in (None, notice.owner_id):
                continue
            if (pid, started) != me:
                if not dead_only or process_alive(pid, started):
                    continue
                if not self.store.claim_notice(notice.id, pid, started):
                    continue
            if self._notify(notice):
                self.store.notice_paid(notice.id)

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
        self.audit.append(AuditKind.INCIDENT_REPORTED, dump(incident), self.clock.now())
        self._warm_up(incident)
        return incident

    def _warm_up(self, incident: Incident) -> None:
        """Start the edge's GOP cache for the cameras the incident's geofence reaches (only
        inside a running event loop: the cache lives in the process that serves media), and
        only for those whose live view the policies pre-authorise now (see ``authorised``)."""
        if not self.edge.cache_enabled():
            return

        def authorised(camera_id: str) -> Callable[[], datetime | None]:
            def until() -> datetime | None:
                """Until when a live request for the camera under this incident would be
                granted now with nobody asked, or None: the gate's own decision (every core
                check and consent policy, nothing written) on a stand-in request, and for an
                ask-first owner never; the horizon is the grant's (``_terms_horizon``: window,
                end date, quiet hours), searched an hour ahead (the edge asks again then)."""
                now = self.clock.now()
                request = AccessRequest(
                    id=new_id("req"),
                    incident_id=incident.id,
                    camera_id=camera_id,
                    scope=Scope.LIVE,
                    requested_by="camgate-cache",
                    requested_at=now,
                    purpose=min(self.rules.purposes),  # any purpose the agency allows
                    duration_s=1.0,
                )
                try:
                    decision = self.decide(request, at=now)
                    consent = (
                        None
                        if decision.consent_id is None
                        else self.store.get_consent(decision.consent_id)
                    )
                except NotFound:  # the camera or incident is gone
                    return None
                if (
                    not decision.allowed
                    or consent is None
                    or consent.terms.mode is not ConsentMode.PRE_AUTHORISED
                ):
                    return None
                span = min(3600.0, max(1.0, (incident.window_end - now).total_seconds()))
                ahead = attrs.evolve(request, duration_s=span)
                horizon = self._terms_horizon(ahead, now, consent)
                return None if horizon is None else min(horizon, now + timedelta(seconds=span))

            return until

        warmed = [
            s.camera.id
            for s in self.sightings(incident)
            if s.reachable and self.edge.warm(incident, s.camera, authorised(s.camera.id))
        ]
        if warmed:
            self.audit.append(
                AuditKind.CACHE_WARM, {"incident": incident.id, "cameras": warmed}, self.clock.now()
            )

    def close_incident(self, incident_id: str) -> Incident:
        """Close an incident: it reaches no camera any more."""
        incident = attrs.evolve(self.store.get_incident(incident_id), status=IncidentStatus.CLOSED)
        self.store.add_incident(incident)
        dropped = self.edge.cool(incident.id)
        self.audit.append(
            AuditKind.INCIDENT_CLOSED,
            {"incident": incident.id, "caches_dropped": dropped},
            self.clock.now(),
        )
        return incident

    def reachable(self, incident_id: str) -> list[tuple[Camera, list[Vote]]]:
        """The cameras in the incident's zones with their geofence votes, reachable ones first.

        Reachable cameras come best view first (see :meth:`sightings`), then the others, nearest
        first. A closed incident, or one past its window, reaches none. The geofence part of
        :meth:`survey` (which adds every other vote and an outcome per camera).
        """
        incident = self.facts.incident(incident_id)
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

    def survey(
        self,
        incident: Incident | str,
        *,
        scope: Scope | str = Scope.LIVE,
        purpose: str | Sequence[str] = DEFAULT_PURPOSE,
        duration_s: float = 60.0,
        window: tuple[datetime, datetime] | None = None,
        requested_by: str = "survey",
        at: datetime | None = None,
        record: bool = True,
    ) -> Survey:
        """Decide every candidate camera of an incident in one pass: the map an officer sees.

        The candidates are the cameras in the incident's zones (:meth:`sightings`: the spatial
        index and every zone source, ranked). Each is judged exactly as :meth:`decide` judges a
        request for it with this ``scope``, ``purpose``, ``duration_s`` and recorded ``window``
        made at ``at`` (default: now): every core invariant, geofence and consent policy, on
        facts loaded once for the whole set. Each row says ``allowed``, ``ask`` (the owner is
        asked first) or ``denied``, with every reason.

        A survey grants nothing and opens no camera, so it is not an access: with ``record``
        (the default) it is written as ONE ``survey`` audit record with its counts, durable
        before this returns (docs/audit.md). ``incident`` is a stored incident's id, or an
        :class:`Incident` (``camgate geofence query`` surveys a point that way). NotFound for
        an unknown incident id; ValidationError for a bad scope, purpose or window.
        """
        if isinstance(incident, str):
            incident = self.facts.incident(incident)
        now = at or self.clock.now()
        template = AccessRequest(
            id=new_id("req"),
            incident_id=incident.id,
            camera_id="survey",
            scope=scope,
            requested_by=requested_by,
            requested_at=now,
            purpose=purpose,
            duration_s=duration_s,
            window_start=window[0] if window else None,
            window_end=window[1] if window else None,
        )
        sightings = self.sightings(incident, now)
        cameras, changes = self.facts.cameras([s.camera.id for s in sightings])
        rules = self.rules
        shared = _SurveyVotes(template, incident, now)
        rows = []
        for sighting in sightings:
            found = cameras.get(sighting.camera.id)
            if found is None:  # removed since the index was read
                continue
            request = _for_camera(template, found.camera.id)
            decision, consent = self._judge(
                request,
                DecisionFacts.of(found, incident, rules, changes),
                now,
                geofence=sighting.votes,
                distance=sighting.distance_m,
                shared=shared,
            )
            if not decision.allowed:
                outcome = Outcome.DENIED
            elif consent is not None and consent.terms.mode is ConsentMode.ASK:
                outcome = Outcome.ASK
            else:
                outcome = Outcome.ALLOWED
            rows.append(SurveyRow(sighting, decision, outcome))
        result = Survey(incident.id, template.scope, template.purpose, now, rows)
        if record:
            self.audit.append(AuditKind.SURVEY, result.audit_body(requested_by), self.clock.now())
        return result

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

    def decide(
        self,
        request: AccessRequest,
        *,
        at: datetime | None = None,
        owner_answer: bool | None = None,
        cached: bool = True,
    ) -> Decision:
        """Collect every vote on a request (core invariants, geofences, consent policies).

        ``at`` is the moment judged (default: when the request was made); ``owner_answer`` the
        owner's yes or no to an ask-first request. Pure: nothing is written. The stored facts
        come from the gate's :class:`~camgate.facts.FactCache` (re-validated against the
        store's change counters); ``cached=False`` reads every one afresh — the reference path,
        which returns the same decision.
        """
        return self._decide(request, at=at, owner_answer=owner_answer, cached=cached)[0]

    def decision_facts(self, request: AccessRequest, *, cached: bool = True) -> DecisionFacts:
        """The stored facts a decision on ``request`` judges (camera, incident, owner, consent,
        waiver, the agency's rules), loaded once; NotFound for an unknown camera or incident."""
        rules = self.rules
        if cached:
            return self.facts.facts(request.camera_id, request.incident_id, rules)
        return DecisionFacts.load(self.store, request.camera_id, request.incident_id, rules)

    def _decide(
        self,
        request: AccessRequest,
        *,
        at: datetime | None = None,
        owner_answer: bool | None = None,
        cached: bool = True,
    ) -> tuple[Decision, ConsentRecord | None]:
        facts = self.decision_facts(request, cached=cached)
        return self._judge(request, facts, at or request.requested_at, owner_answer)

    def _judge(
        self,
        request: AccessRequest,
        facts: DecisionFacts,
        now: datetime,
        owner_answer: bool | None = None,
        *,
        geofence: Sequence[Vote] | None = None,
        distance: float | None = None,
        shared: _SurveyVotes | None = None,
    ) -> tuple[Decision, ConsentRecord | None]:
        """Every vote on ``request`` from ``facts`` alone, and the consent record judged.

        ``geofence`` and ``distance`` are the camera's geofence votes and its distance from the
        incident when the caller (a survey) has them already; otherwise they are computed, as
        are the votes every camera of a survey shares (``shared``).
        """
        camera, incident = facts.camera, facts.incident
        consent = facts.standing_consent
        votes = _opt_in_votes(facts, request.scope)
        if shared is None:
            votes.append(_incident_vote(incident, now))
            votes.append(_capability_vote(self.host, camera, request.scope))
        else:
            votes.append(shared.incident)
            votes.append(shared.capability(self.host, camera))
        votes.extend(self._geofence(incident, camera, now) if geofence is None else geofence)
        votes.extend(_window_votes(request, now) if shared is None else shared.window)
        ctx = PolicyContext(
            request=request,
            camera=camera,
            incident=incident,
            consent=consent,
            waiver=facts.waiver if facts.consent is not None else None,
            distance_m=(
                distance_m(incident.position, camera.position) if distance is None else distance
            ),
            now=now,
            owner=facts.owner,
            owner_answer=owner_answer,
        )
        votes.extend(self.host.consent_votes(ctx))
        decision = Decision(
            request.id,
            camera.id,
            votes,
            self.clock.now(),
            consent_id=consent.id if consent is not None else None,
        )
        return decision, consent

    def _notify(self, notice: OwnerNotice) -> bool:
        notice = attrs.evolve(notice, witness=self.audit.witness())  # proof kept by the owner
        accepted = self.host.notify_owner(notice)
        self.audit.append(
            AuditKind.OWNER_NOTIFIED if accepted else AuditKind.OWNER_NOTIFY_FAILED,
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
        purpose: str | Sequence[str] = "investigation",
        window: tuple[datetime, datetime] | None = None,
        wait: bool = True,
        audio: bool = False,
        note: str = "",
    ) -> SignedGrant:
        """Ask for one scope of one camera under an incident; returns a signed grant.

        The decision (every vote) is durable in the audit log and the owner notified before this
        returns or raises. Raises :class:`camgate.errors.AccessDenied` with every reason when any
        vote denies, NotFound for an unknown camera or incident.

        When the owner's terms say ``ask``, a request that meets every other term is held and
        the owner is sent an ``ask`` notice. With ``wait=True`` (the default) this then waits for
        the owner's answer (see :meth:`wait_for_answer`) — wrap it in ``anyio.fail_after`` to
        give up sooner; with ``wait=False`` it raises :class:`camgate.errors.AnswerPending` at
        once, carrying the held request's id and deadline. ``audio=True`` asks for sound too:
        the grant carries it only when the owner's terms share audio (``ConsentTerms.audio``).
        ``purpose`` names purposes from the agency's closed list (``AgencyRules.purposes``; any
        other is refused); ``note`` is free text for the owner and the audit log.
        """
        request = AccessRequest(
            id=new_id("req"),
            incident_id=incident_id,
            camera_id=camera_id,
            scope=scope,
            requested_by=requested_by,
            requested_at=self.clock.now(),
            purpose=purpose,
            note=note,
            duration_s=duration_s,
            window_start=window[0] if window else None,
            window_end=window[1] if window else None,
            audio=audio,
        )
        result = await anyio.to_thread.run_sync(self._request_sync, request)
        if not isinstance(result, SignedGrant):
            if not wait:
                raise AnswerPending(result)
            result = await self.wait_for_answer(result.request_id)
        await self.edge.live_grant_issued(result.grant)
        return result

    def _request_sync(self, request: AccessRequest) -> SignedGrant | PendingRequest:
        self._settle_interrupted()  # decide on a settled state, never a half-made change
        decision, consent = self._decide(request)
        if decision.allowed and consent is not None and consent.terms.mode is ConsentMode.ASK:
            return self._hold(request, decision, consent)
        # The request, its decision and the decision record: both or neither (_audited).
        self._record_decision(request, decision)
        signed = self._conclude(request, decision)
        if signed is None:
            raise AccessDenied(decision)
        return signed

    def _record_decision(
        self,
        request: AccessRequest,
        decision: Decision,
        *,
        held: bool = False,
        closes: tuple[PendingRequest, str] | None = None,
    ) -> bool:
        """Store a final decision and its ``decision`` record together (:meth:`_audited`).

        ``held``: the request was held ask-first (stored already); ``closes``: a held request
        this decision refuses, closed with that outcome in the same change — False (nothing
        written) when it was closed already (a race lost).
        """
        body: dict[str, Any] = {"request": dump(request), "decision": decision.to_json()}
        if closes is not None:
            body["closes"] = closes[1]
        elif held:
            body["held"] = True

        def prepare() -> dict[str, Any]:
            if closes is not None and not self.store.get_pending(request.id).open:
                raise _LostRace
            return body

        try:
            self._audited(AuditKind.DECISION, prepare, decision.decided_at)
        except _LostRace:
            return False
        return True

    def _notice(
        self, request: AccessRequest, event: str, at: datetime, **extra: Any
    ) -> OwnerNotice:
        camera = self.store.get_camera(request.camera_id)
        incident = self.store.get_incident(request.incident_id)
        return OwnerNotice(
            id=new_id("ntc"),
            owner_id=camera.owner_id,
            camera_id=camera.id,
            event=event,
            at=at,
            scope=str(request.scope),
            incident_kind=incident.kind,
            distance_m=round(distance_m(incident.position, camera.position), 1),
            duration_s=request.duration_s,
            requested_by=request.requested_by,
            request_id=request.id,
            purpose=request.purpose,
            note=request.note,
            **extra,
        )

    def _conclude(self, request: AccessRequest, decision: Decision) -> SignedGrant | None:
        """Tell the owner of a final decision (stored and audited by :meth:`_record_decision`)
        and issue the grant when it allows."""
        self.host.decision_made(decision)
        notice = self._notice(
            request,
            "granted" if decision.allowed else "refused",
            decision.decided_at,
            reasons=tuple(decision.reasons),
        )
        told = self._notify(notice)
        if not decision.allowed:
            return None
        if not told:
            raise PluginError(
                "no notifier accepted the owner's notice, so no grant was issued; "
                "register a notifier (the built-in camgate.outbox accepts every notice)"
            )
        issued = self.clock.now()
        # The consent the policies judged, loaded once: the grant is bound to that record and
        # issued only while it still stands (checked again under the write lock below).
        consent = (
            None if decision.consent_id is None else self.store.get_consent(decision.consent_id)
        )
        lifetime = SNAPSHOT_GRANT_S if request.scope is Scope.SNAPSHOT else request.duration_s
        # Never beyond the incident's window, nor the owner's terms (end date, quiet hours): a
        # grant cannot outlive the reason for it.
        expires = issued + timedelta(seconds=lifetime)
        horizon = self._terms_horizon(request, issued, consent)
        if horizon is not None:
            expires = min(expires, horizon)
        grant = Grant(
            id=new_id("grt"),
            request_id=request.id,
            camera_id=request.camera_id,
            incident_id=request.incident_id,
            scope=request.scope,
            issued_at=issued,
            expires_at=expires,
            window_start=request.window_start,
            window_end=request.window_end,
            # Sound only when asked for and the owner shares it; otherwise the edge drops it.
            audio=request.audio and consent is not None and consent.terms.audio,
            # Bound to the consent the decision was made under (for an ask-first request: at the
            # owner's yes); the edge honours the grant only while that exact record stands.
            consent_id=decision.consent_id,
        )

        def still_standing() -> dict[str, Any]:
            active = self.store.active_consent(request.camera_id)
            if active is None or active.id != decision.consent_id:
                raise AccessDenied(_unbound(decision, self.clock.now()))
            return dump(grant)

        try:
            # The grant and its grant.issued record: both or neither; a waiting officer (any
            # process) sees the grant only once its record is durable.
            self._audited(AuditKind.GRANT_ISSUED, still_standing, issued)
        except AccessDenied as refused:
            final = refused.decision
            self._audited(
                AuditKind.GRANT_REFUSED,
                lambda: {"request": request.id, "decision": final.to_json()},
                final.decided_at,
            )
            self._notify(
                self._notice(request, "refused", final.decided_at, reasons=tuple(final.reasons))
            )
            raise
        return self._signer.sign(grant)

    # ------------------------------------------------------------------ ask-first (consent)

    def _terms_horizon(
        self, request: AccessRequest, now: datetime, consent: ConsentRecord | None
    ) -> datetime | None:
        """The first moment after ``now`` at which a term would stop holding, so a grant ends
        there: the incident's window, the consent's end date, the start of quiet hours."""
        incident = self.store.get_incident(request.incident_id)
        ends = [incident.window_end]
        if consent is not None:
            terms = consent.terms
            if terms.ends_at is not None:
                ends.append(terms.ends_at)
            if terms.quiet_hours is not None:
                zone = self.store.get_owner(consent.owner_id).time_zone
                step = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
                for _ in range(int(request.duration_s // 60) + 2):  # minute resolution
                    if in_quiet_hours(terms.quiet_hours, step, zone):
                        ends.append(step)
                        break
                    step += timedelta(minutes=1)
        later = [e for e in ends if e > now]
        return min(later) if later else None

    def _hold(
        self, request: AccessRequest, decision: Decision, consent: ConsentRecord
    ) -> PendingRequest:
        now = self.clock.now()
        pending = PendingRequest(
            request_id=request.id,
            camera_id=request.camera_id,
            owner_id=consent.owner_id,
            asked_at=now,
            deadline=now + timedelta(seconds=consent.terms.ask_timeout_s),
        )
        # The held request and its request.held record: both or neither (_audited).
        self._audited(
            AuditKind.REQUEST_HELD,
            lambda: {
                "request": dump(request),
                "pending": dump(pending),
                "deadline": pending.deadline.isoformat(),
                "votes": decision.to_json()["votes"],
            },
            now,
        )
        self._notify(self._notice(request, "ask", now, deadline=pending.deadline))
        return pending

    def pending(self, owner_id: str | None = None) -> list[PendingRequest]:
        """Ask-first requests still waiting for an answer (one owner's, or all)."""
        return self.store.pending(owner_id)

    async def answer(
        self, request_id: str, approve: bool, *, owner_id: str | None = None
    ) -> Decision:
        """The owner's yes or no to a held ask-first request; returns the final decision.

        A yes decides the request again at this moment, with the owner's yes as the
        ``terms.mode`` vote, so every other term and rule must still hold; when it allows, the
        grant is issued and a waiting :meth:`request_access` or :meth:`wait_for_answer` returns
        it — in this process or any other sharing the store. A no refuses it. Either way the
        decision is audited and the owner notified.

        Raises NotFound for a request that was never held, ValidationError when ``owner_id`` is
        not the camera's owner or the request was already answered, and
        :class:`camgate.errors.RequestExpired` after the deadline. None of these records the
        answer.
        """
        if not isinstance(approve, bool):
            raise ValidationError(f"approve={approve!r}: must be True (yes) or False (no)")
        decision = await anyio.to_thread.run_sync(self._answer_sync, request_id, approve, owner_id)
        self._wake(request_id)
        return decision

    def _answer_sync(self, request_id: str, approve: bool, owner_id: str | None) -> Decision:
        self._settle_interrupted()  # decide on a settled state, never a half-made change
        pending = self.store.get_pending(request_id)
        if owner_id is not None and owner_id != pending.owner_id:
            raise ValidationError(f"request {request_id!r} is not for a camera of {owner_id!r}")
        now = self.clock.now()
        if pending.open and now >= pending.deadline:
            self._expire(pending, now)
            pending = self.store.get_pending(request_id)
        if pending.outcome == "revoked":
            raise ValidationError(
                f"request {request_id!r} was refused when the owner revoked consent; "
                "the answer was not recorded"
            )
        if pending.outcome == "expired":
            raise RequestExpired(
                f"request {request_id!r} expired at "
                f"{pending.deadline.isoformat(timespec='seconds')} without an answer, "
                "which counts as no; the answer was not recorded"
            )
        outcome = "yes" if approve else "no"

        def still_open() -> dict[str, Any]:
            done = self.store.get_pending(request_id).outcome
            if done is not None:
                raise ValidationError(f"request {request_id!r} was already answered ({done})")
            return {"request": request_id, "owner": pending.owner_id, "answer": outcome}

        # The answer (the held request closed) and its owner.answered record: both or neither.
        self._audited(AuditKind.OWNER_ANSWERED, still_open, now)
        request = self.store.get_request(request_id)
        decision = self._decide(request, at=now, owner_answer=approve)[0]
        self._record_decision(request, decision, held=True)
        try:
            self._conclude(request, decision)
        except AccessDenied as refused:  # the consent changed before the grant was issued
            return refused.decision
        return decision

    def _expire(self, pending: PendingRequest, now: datetime) -> bool:
        """Close an overdue held request as a no (once, whoever notices first)."""
        why = (
            f"the owner did not answer by {pending.deadline.isoformat(timespec='seconds')}, "
            "which counts as no"
        )
        return self._refuse_held(pending, now, "expired", Vote("terms.mode", Verdict.DENY, why))

    def _refuse_held(
        self, pending: PendingRequest, now: datetime, outcome: str, vote: Vote
    ) -> bool:
        """Close a held request with a refusal (once): closed, decision stored and audited in
        one change (:meth:`_record_decision`), then the owner told."""
        decision = Decision(pending.request_id, pending.camera_id, [vote], now)
        request = self.store.get_request(pending.request_id)
        if not self._record_decision(request, decision, closes=(pending, outcome)):
            return False
        self._conclude(request, decision)
        return True

    def _refuse_pending_of(self, owner_id: str, at: datetime) -> None:
        """On revocation, refuse the owner's held requests at once (waiters are woken)."""
        vote = Vote("core.opt-in", Verdict.DENY, "the owner revoked consent")
        for pending in self.store.pending(owner_id):
            self._refuse_held(pending, at, "revoked", vote)

    def expire_pending(self) -> list[str]:
        """Refuse every held request whose deadline has passed; returns their ids.

        Waiters do this for their own request; call it to settle requests nobody waits for.
        """
        now = self.clock.now()
        done = [
            p.request_id for p in self.store.pending() if now >= p.deadline and self._expire(p, now)
        ]
        for request_id in done:
            self._wake(request_id)
        return done

    def _wake(self, request_id: str) -> None:
        event = self._answered.pop(request_id, None)
        if event is not None:
            event.set()

    def _settle(self, request_id: str) -> SignedGrant | Decision | PendingRequest:
        pending = self.store.get_pending(request_id)
        if pending.open and self.clock.now() >= pending.deadline:
            self._expire(pending, self.clock.now())
            pending = self.store.get_pending(request_id)
        if pending.open:
            return pending
        found = self.store.grant_for_request(request_id)
        if found is not None:
            return SignedGrant(*found)
        try:
            decision = Decision.from_json(self.store.decision_json(request_id))
        except NotFound:
            # Closed a moment ago by whoever answered (maybe another process), which is still
            # storing its decision: not an answer yet.
            return pending
        if decision.allowed:
            return pending  # the grant is being issued
        return decision

    async def wait_for_answer(self, request_id: str, *, poll_s: float = 0.05) -> SignedGrant:
        """Wait until a held request is answered; return its grant or raise AccessDenied.

        Wakes at once for an answer given through this gate; an answer from another process
        sharing the store (``camgate consent answer``) is seen within ``poll_s``. At the deadline
        the request is refused (``terms.mode``: no answer means no) and AccessDenied raised.
        """
        concluding_since: float | None = None
        while True:
            state = await anyio.to_thread.run_sync(self._settle, request_id)
            if isinstance(state, SignedGrant):
                return state
            if isinstance(state, Decision):
                raise AccessDenied(state)
            if not state.open:
                # Answered, but the answering side has not stored its decision or grant yet.
                # It does so in moments; if it never does (it crashed, or no notifier took the
                # owner's notice, so no grant may be issued) say so rather than wait forever.
                concluding_since = concluding_since or time.monotonic()
                if time.monotonic() - concluding_since > CONCLUDE_GRACE_S:
                    raise PluginError(
                        f"request {request_id!r} was answered ({state.outcome}) but no "
                        f"decision or grant followed within {CONCLUDE_GRACE_S:g} s; the "
                        "answering process failed before it concluded (see its log and the "
                        "audit log)"
                    )
            event = self._answered.setdefault(request_id, anyio.Event())
            with anyio.move_on_after(poll_s):
                await event.wait()


def _opt_in_votes(facts: DecisionFacts, scope: Scope) -> list[Vote]:
    """``core.opt-in`` (enrolled under a published waiver whose hash matches, not revoked) and,
    when it holds, ``core.scope`` (the owner's terms allow the scope: promise 3, a core
    invariant rather than an unpluggable policy)."""
    if facts.consent is None:
        why = (
            "the owner revoked consent"
            if facts.revoked
            else "the owner has not enrolled this camera"
        )
        return [Vote("core.opt-in", Verdict.DENY, why)]
    consent, waiver = facts.standing_consent, facts.waiver
    if consent is None or waiver is None:
        return [
            Vote(
                "core.opt-in",
                Verdict.DENY,
                "the consent record does not match a published waiver",
            )
        ]
    votes = [Vote("core.opt-in", Verdict.ALLOW, f"enrolled under waiver {waiver.version}")]
    if scope in consent.terms.scopes:
        votes.append(Vote("core.scope", Verdict.ALLOW, f"the owner allows {scope} access"))
    else:
        allowed = ", ".join(sorted(consent.terms.scopes)) or "nothing"
        votes.append(
            Vote(
                "core.scope",
                Verdict.DENY,
                f"the owner does not allow {scope} access (allowed: {allowed})",
            )
        )
    return votes


def _incident_vote(incident: Incident, now: datetime) -> Vote:
    """``core.incident``: the incident is open and ``now`` inside its time window."""
    if incident.active_at(now):
        return Vote(
            "core.incident",
            Verdict.ALLOW,
            f"{incident.kind} incident open since {incident.reported_at:%H:%M}",
        )
    why = (
        "the incident is closed"
        if incident.status is IncidentStatus.CLOSED
        else "the request falls outside the incident's time window"
    )
    return Vote("core.incident", Verdict.DENY, why)


def _capability_vote(host: PluginHost, camera: Camera, scope: Scope) -> Vote:
    """``core.capability``: the camera's adapter is installed and can serve the scope."""
    try:
        factory = host.adapter(camera.adapter)
    except PluginError as exc:
        return Vote("core.capability", Verdict.DENY, str(exc))
    if scope in factory.capabilities.scopes:
        return Vote("core.capability", Verdict.ALLOW, f"adapter {factory.name} serves {scope}")
    return Vote("core.capability", Verdict.DENY, f"adapter {factory.name} cannot serve {scope}")


def _for_camera(template: AccessRequest, camera_id: str) -> AccessRequest:
    """``template`` (validated) for another camera: a copy with that camera id and a new request
    id, both camgate's own (a stored camera's id, :func:`new_id`), so the validators that
    ``attrs.evolve`` would run again — a third of a survey's time — are not."""
    request = copy.copy(template)
    object.__setattr__(request, "camera_id", camera_id)
    object.__setattr__(request, "id", new_id("req"))
    return request


class _SurveyVotes:
    """The core votes every camera of one survey shares (same incident, moment, scope and
    window), cast once; ``core.capability`` once per adapter."""

    def __init__(self, request: AccessRequest, incident: Incident, now: datetime) -> None:
        self.scope = request.scope
        self.incident = _incident_vote(incident, now)
        self.window = _window_votes(request, now)
        self._capability: dict[str, Vote] = {}

    def capability(self, host: PluginHost, camera: Camera) -> Vote:
        vote = self._capability.get(camera.adapter)
        if vote is None:
            vote = self._capability[camera.adapter] = _capability_vote(host, camera, self.scope)
        return vote


def _window_votes(request: AccessRequest, now: datetime) -> list[Vote]:
    """``core.window``: recorded footage is footage already recorded — a recorded window must
    end no later than the decision time, or a recording grant would watch with a delay."""
    if request.scope is not Scope.RECORDED or request.window_end is None:
        return []
    if request.window_end <= now:
        return [Vote("core.window", Verdict.ALLOW, "the window asked for has been recorded")]
    return [
        Vote(
            "core.window",
            Verdict.DENY,
            f"the recorded window ends at {request.window_end:%Y-%m-%d %H:%M:%S} UTC, after "
            f"the decision ({now:%Y-%m-%d %H:%M:%S} UTC); recorded access covers only footage "
            "already recorded",
        )
    ]


def _unbound(decision: Decision, at: datetime) -> Decision:
    """``decision`` refused because its consent record stopped standing before the grant."""
    vote = Vote(
        "core.opt-in",
        Verdict.DENY,
        "the consent the decision was made under was revoked or replaced before the grant "
        "was issued",
    )
    return attrs.evolve(decision, votes=[*decision.votes, vote], decided_at=at)


# How each audited change is applied from its record's body (inside the store transaction that
# also holds the record, or the intent's): the same code runs live and in recovery.


def _apply_enrolled(gate: Gate, body: dict[str, Any], at: datetime) -> None:
    record = {k: v for k, v in body.items() if k != "camera_classes"}
    gate.store.add_consent(load(ConsentRecord, record))


def _apply_revoked(gate: Gate, body: dict[str, Any], at: datetime) -> None:
    gate.store.revoke_consent_ids(list(body["consents"]), at)
    gate.store.owe_notices(
        [
            OwnerNotice(
                id=new_id("ntc"), owner_id=body["owner"], camera_id=cam, event="revoked", at=at
            )
            for cam in body["cameras"]
        ]
    )


def _apply_masks(gate: Gate, body: dict[str, Any], at: datetime) -> None:
    gate.store.set_masks(load(PrivacyMask, {k: v for k, v in body.items() if k != "owner"}))


def _apply_removed(gate: Gate, body: dict[str, Any], at: datetime) -> None:
    with contextlib.suppress(NotFound):  # removed already
        gate.store.remove_camera(body["camera"])


def _apply_grant(gate: Gate, body: dict[str, Any], at: datetime) -> None:
    grant = load(Grant, body)
    # Ed25519 is deterministic: the token is the same whoever signs the grant again.
    gate.store.add_grant(grant, gate._signer.sign(grant).token)


def _apply_grant_refused(gate: Gate, body: dict[str, Any], at: datetime) -> None:
    gate.store.add_decision(body["request"], Decision.from_json(body["decision"]), replace=True)


def _apply_held(gate: Gate, body: dict[str, Any], at: datetime) -> None:
    gate.store.add_held_request(
        load(AccessRequest, body["request"]), load(PendingRequest, body["pending"])
    )


def _apply_answered(gate: Gate, body: dict[str, Any], at: datetime) -> None:
    # False when the request was closed meanwhile (recovery only: live, it was checked open).
    gate.store.resolve_pending(body["request"], body["answer"], at)


def _apply_decision(gate: Gate, body: dict[str, Any], at: datetime) -> None:
    request = load(AccessRequest, body["request"])
    decision = Decision.from_json(body["decision"])
    if "closes" in body:  # a held request refused (no answer in time, or consent revoked)
        gate.store.resolve_pending(request.id, body["closes"], at)
    if "closes" in body or body.get("held"):
        gate.store.add_decision(request.id, decision, replace=True)
    else:
        gate.store.add_request(request, decision)


class _LostRace(Exception):
    """A held request was closed by another process first (nothing written)."""


#: Changes that reduce access: in force before their record when the log is elsewhere, and
#: recorded by recovery if the record is missing (see Gate._audited).
_ROLL_FORWARD = frozenset(
    {AuditKind.CONSENT_REVOKED, AuditKind.CAMERA_REMOVED, AuditKind.MASKS_SET}
)

#: This process's intents between their commit and their settling, as (store path, intent id):
#: a settling pass in this process leaves them to the thread that wrote them.
_IN_FLIGHT: set[tuple[Path, int]] = set()

_CHANGES: dict[str, Callable[[Gate, dict[str, Any], datetime], None]] = {
    AuditKind.REQUEST_HELD: _apply_held,
    AuditKind.OWNER_ANSWERED: _apply_answered,
    AuditKind.DECISION: _apply_decision,
    AuditKind.CONSENT_ENROLLED: _apply_enrolled,
    AuditKind.CONSENT_REVOKED: _apply_revoked,
    AuditKind.MASKS_SET: _apply_masks,
    AuditKind.CAMERA_REMOVED: _apply_removed,
    AuditKind.GRANT_ISSUED: _apply_grant,
    AuditKind.GRANT_REFUSED: _apply_grant_refused,
}
