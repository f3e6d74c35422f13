"""The Gate facade: the registry, consent and the parts assembled into one object.

:class:`Gate` is what callers hold. It keeps the registry (owners, cameras, their settings and
masks, waivers, enrolments, revocation) and is assembled from the gate's parts: decisions and
grants (:mod:`camgate.gate.decisions`), ask-first (:mod:`camgate.gate.asking`), incidents and
surveys (:mod:`camgate.gate.incidents`) and audited changes (:mod:`camgate.gate.changes`); the
``core.*`` votes are :mod:`camgate.gate.invariants`.
"""

from __future__ import annotations

import contextlib
import functools
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import anyio.to_thread

from camgate.adapters import Credentials
from camgate.audit import AuditLog, hub_signer
from camgate.clock import Clock, SystemClock
from camgate.codec import dump
from camgate.edge import Edge
from camgate.errors import NotFound, ValidationError
from camgate.facts import FactCache
from camgate.gate.accounts import record_unlinked
from camgate.gate.approvals import Approvals
from camgate.gate.asking import AskFirst
from camgate.gate.changes import AuditedChanges
from camgate.gate.decisions import Decisions
from camgate.gate.incidents import Incidents
from camgate.gate.livetime import LiveLedger
from camgate.gate.owner_look import OwnerLook
from camgate.gate.program import Program
from camgate.gate.residents import Residents, ZoneMap
from camgate.geofence import (
    Exclusions,
    IncidentZones,
    Jurisdiction,
    RadiusGeofence,
    StoreIndex,
    ZoneBook,
)
from camgate.grants import GrantSigner, GrantVerifier
from camgate.models import Camera, ConsentRecord, ConsentTerms, Owner, PrivacyMask, Waiver, new_id
from camgate.notify import OutboxNotifier
from camgate.plugins import PluginHost
from camgate.policy import AgencyPolicy, TermsPolicy
from camgate.relay import RelaySettings, TransformFactory
from camgate.retention import Retention
from camgate.rules import AgencyRules
from camgate.settings import split_camera_settings
from camgate.store import Store
from camgate.vocab import AuditKind, EndReason

__all__ = ["Gate", "builtin_plugins"]


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


class Gate(
    Decisions, AskFirst, Approvals, Incidents, Program, Residents, OwnerLook, AuditedChanges
):
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
        #: Live time used under the agency's live-time caps, read from the audit log.
        self.live_ledger = LiveLedger(self.audit)
        #: Which cameras residents' privacy zones refuse, kept while the zones counter stands.
        self.zone_map = ZoneMap(store, self.camera_index)
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
        self.edge.zone_map = self.zone_map  # grants of cameras a new zone covers stop holding
        self.edge.on_account_unlinked = functools.partial(record_unlinked, self)
        # A hub's writer lease, taken now rather than inside its first audited change.
        store.hold_writer_lease()
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

        ``path`` may be a PostgreSQL DSN (``postgresql://...``): the store and the audit log
        are then in that database, shared by every hub pointed at it, and the key is
        ``key_path`` (default beside :attr:`Store.path`, in ``$CAMGATE_HOME``); every hub of
        one database must use the same key file.

        ``rules`` are the agency's (enrolment caps, live-view kinds, banned purposes, sensitive
        places); see :class:`camgate.rules.AgencyRules` and docs/consent.md. ``audit_dsn``
        keeps the audit log in PostgreSQL (default: ``$CAMGATE_AUDIT_DSN``, else the store).
        ``relay_settings`` bound the edge's relay and turn its GOP cache on (docs/media.md).
        """
        store = Store(path)
        signer = hub_signer(store.path, key_path)  # never a new key for a log that has records
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
        return f"<Gate store={self.store.where}>"

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
