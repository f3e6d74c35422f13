"""The facts a decision judges, loaded once, and the in-memory cache that keeps the hot ones.

A decision on a request reads six things: the camera, the incident, the camera's owner, the
owner's consent record standing for the camera, the waiver text that record names, and the
agency's rules. :class:`DecisionFacts` holds them as one frozen record; the gate builds every
vote from it and nothing else that is stored (docs/consent.md, "How a decision is made").

:class:`FactCache` keeps what was loaded in memory and re-validates it with one read of the
store's change counters (:meth:`camgate.store.Store.changes`): every committed write to a
camera, owner, waiver, consent record or incident bumps a counter (SQLite triggers, any process),
and a counter that moved empties what depends on it before anything is looked up. So a decision
reads nothing it already knows and never judges on facts older than the counters it read.
:meth:`DecisionFacts.load` reads everything afresh: the reference path the cache is tested
against.
"""

from __future__ import annotations

import enum
import threading

import attrs

from camgate.errors import NotFound
from camgate.models import Camera, ConsentRecord, Incident, Owner, Waiver
from camgate.rules import AgencyRules
from camgate.store import Changes, Store

__all__ = ["CameraFacts", "DecisionFacts", "FactCache"]

#: Cameras kept at most (the cache empties and refills beyond; 100 000 fit in well under 1 GB).
MAX_CAMERAS = 250_000


class _Unknown(enum.Enum):
    """Not worked out yet."""

    UNKNOWN = enum.auto()


_UNKNOWN = _Unknown.UNKNOWN


@attrs.frozen
class CameraFacts:
    """What is stored about one camera that a decision needs, read together.

    ``consent`` is the newest unrevoked record covering the camera given by its current owner
    (:meth:`Store.active_consent`), as stored; ``waiver`` the published waiver of that version
    (None when it is not published); ``revoked`` whether the camera's newest record was revoked
    (the words of a refusal); ``owner`` the camera's owner (None when the row is gone).
    """

    camera: Camera
    owner: Owner | None
    consent: ConsentRecord | None
    waiver: Waiver | None
    revoked: bool
    #: ``consent`` when it stands (see :attr:`DecisionFacts.standing_consent`), worked out once
    #: per camera read (it hashes the waiver text).
    standing: ConsentRecord | None = attrs.field(init=False, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "standing", _standing(self.consent, self.waiver))

    @classmethod
    def load(cls, store: Store, camera_id: str) -> CameraFacts:
        """Read the camera's facts from ``store`` (NotFound for an unknown camera)."""
        camera = store.get_camera(camera_id)
        consent = store.active_consent(camera.id)
        waiver: Waiver | None = None
        revoked = False
        if consent is None:
            revoked = store.revoked_since(camera.id) is not None
        else:
            try:
                waiver = store.get_waiver(consent.waiver_version)
            except NotFound:
                waiver = None
        try:
            owner: Owner | None = store.get_owner(camera.owner_id)
        except NotFound:
            owner = None
        return cls(camera, owner, consent, waiver, revoked)


@attrs.frozen
class DecisionFacts:
    """Every stored fact one decision judges: camera, incident, owner, consent, waiver, rules.

    Built once per decision (from :class:`FactCache` or :meth:`load`) and handed to every core
    check and policy, then to what follows the decision (the ask-first hold, the owner's
    notice, the grant's consent terms and horizon: :mod:`camgate.gate.decisions`); a survey
    shares one incident across its cameras. ``changes`` are the
    store's change counters the facts were validated under (None when read without a cache), so
    a record of what a decision saw can say how fresh it was.
    """

    camera: Camera
    incident: Incident
    owner: Owner | None
    consent: ConsentRecord | None
    waiver: Waiver | None
    revoked: bool
    rules: AgencyRules
    changes: Changes | None = None
    #: The standing consent when the caller worked it out already (:meth:`of`).
    standing: ConsentRecord | _Unknown | None = attrs.field(
        default=_UNKNOWN, kw_only=True, eq=False, repr=False
    )

    @classmethod
    def of(
        cls,
        camera: CameraFacts,
        incident: Incident,
        rules: AgencyRules,
        changes: Changes | None = None,
    ) -> DecisionFacts:
        """Join a camera's facts with the incident and the rules."""
        return cls(
            camera.camera,
            incident,
            camera.owner,
            camera.consent,
            camera.waiver,
            camera.revoked,
            rules,
            changes,
            standing=camera.standing,
        )

    @classmethod
    def load(
        cls, store: Store, camera_id: str, incident_id: str, rules: AgencyRules
    ) -> DecisionFacts:
        """Read every fact afresh from ``store``, no cache (the reference path)."""
        camera = CameraFacts.load(store, camera_id)
        return cls.of(camera, store.get_incident(incident_id), rules)

    @property
    def standing_consent(self) -> ConsentRecord | None:
        """The consent record when it names a published waiver with the hash it was accepted
        under; None otherwise (then ``core.opt-in`` denies)."""
        standing = self.standing
        if isinstance(standing, _Unknown):
            return _standing(self.consent, self.waiver)
        return standing


def _standing(consent: ConsentRecord | None, waiver: Waiver | None) -> ConsentRecord | None:
    """``consent`` when it names ``waiver`` with the hash it was accepted under, else None."""
    if consent is None or waiver is None or waiver.sha256 != consent.waiver_sha256:
        return None
    return consent


class FactCache:
    """The facts of cameras and incidents already read, valid while the store's counters stand.

    Thread-safe: the counters are read, the stale parts dropped and misses loaded under one lock,
    so an entry is never older than the counters checked before it was used.
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._seen: Changes | None = None
        self._version: int | None = None
        self._cameras: dict[str, CameraFacts] = {}
        self._incidents: dict[str, Incident] = {}
        #: How often a look-up found its facts in memory, and how often it read the store.
        self.hits = 0
        self.misses = 0

    def __repr__(self) -> str:
        return f"<FactCache cameras={len(self._cameras)} incidents={len(self._incidents)}>"

    @property
    def data_version(self) -> int | None:
        """The file's data version read by the last look-up (None before the first): what the
        facts in memory were last validated under."""
        return self._version

    def _validate(self) -> Changes | None:
        """Read the counters; drop what a moved counter makes stale. Call under the lock.

        The file's data version (:meth:`Store.data_version`, no table read) is read first: while
        it stands no commit reached the file, so the counters cannot have moved and are not
        read again.
        """
        version = self.store.data_version()
        if version == self._version and self._seen is not None:
            return self._seen
        now = self.store.changes()
        self._version = version
        seen = self._seen
        if now != seen:
            # A camera's facts join the registry (owner, position) with consent and waivers.
            if now is None or seen is None or now[:2] != seen[:2]:
                self._cameras.clear()
            if now is None or seen is None or now.incidents != seen.incidents:
                self._incidents.clear()
            self._seen = now
        return now

    def incident(self, incident_id: str) -> Incident:
        """The incident (NotFound for an unknown one)."""
        with self._lock:
            self._validate()
            return self._incident(incident_id)

    def _incident(self, incident_id: str) -> Incident:
        found = self._incidents.get(incident_id)
        if found is None:
            self.misses += 1
            found = self.store.get_incident(incident_id)
            if self._seen is not None:
                self._incidents[incident_id] = found
        else:
            self.hits += 1
        return found

    def _camera(self, camera_id: str) -> CameraFacts:
        found = self._cameras.get(camera_id)
        if found is None:
            self.misses += 1
            found = CameraFacts.load(self.store, camera_id)
            if self._seen is not None:
                if len(self._cameras) >= MAX_CAMERAS:
                    self._cameras.clear()
                self._cameras[camera_id] = found
        else:
            self.hits += 1
        return found

    def facts(self, camera_id: str, incident_id: str, rules: AgencyRules) -> DecisionFacts:
        """The facts of one request (NotFound for an unknown camera or incident)."""
        with self._lock:
            changes = self._validate()
            camera = self._camera(camera_id)
            incident = self._incident(incident_id)
        return DecisionFacts.of(camera, incident, rules, changes)

    def cameras(self, camera_ids: list[str]) -> tuple[dict[str, CameraFacts], Changes | None]:
        """The facts of many cameras at one validation (a survey); unknown ids are left out."""
        found: dict[str, CameraFacts] = {}
        with self._lock:
            changes = self._validate()
            for camera_id in camera_ids:
                try:
                    found[camera_id] = self._camera(camera_id)
                except NotFound:
                    continue
        return found, changes
