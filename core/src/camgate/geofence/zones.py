"""Zone sources: the built-in geofence plugins and the book of an agency's zones.

Each zone source is a plugin on the geofence hooks (``camgate_geofence_vote`` and
``camgate_geofence_extent``), registered by the gate as a built-in, replaceable by name:

=============================  ========================  =====================================
plugin name                    vote policy               what it says
=============================  ========================  =====================================
``camgate.geofence``           ``geofence.radius``       allow within the incident's radius
``camgate.geofence.zones``     ``geofence.polygon`` /    allow inside a search area or a
                               ``geofence.corridor``     corridor drawn for this incident
``camgate.geofence.exclusions``  ``geofence.exclusion``  deny a camera inside an excluded place
                                                         or whose field of view covers one
``camgate.geofence.jurisdiction``  ``geofence.jurisdiction``  deny every camera for an incident
                                                         outside the agency's jurisdiction
=============================  ========================  =====================================

Zones *allow* or stay silent (abstain, with the reason); only exclusions and jurisdiction
*deny*, so one zone never vetoes a camera another zone covers. When a camera has a field of
view, a zone allows it only when its sector covers the zone's target — the incident's position
for a radius or an area, some point of the route for a corridor. A zone of a closed incident,
or outside the incident's time window, reaches nothing: it denies.

Search areas, corridors, exclusions and the jurisdiction live in the camgate store's file
(table ``geofence_zones``), kept by :class:`ZoneBook`.
"""

from __future__ import annotations

import enum
import json
import threading
import weakref
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from datetime import datetime
from typing import Any, ClassVar

import attrs

from camgate.errors import NotFound, ValidationError
from camgate.geofence.shapes import Area, Corridor, Disc, Shape, shape_from_json
from camgate.geofence.view import View, covers_disc, has_fov, sees_any, view_of
from camgate.hookspecs import hookimpl
from camgate.models import (
    Camera,
    Incident,
    IncidentStatus,
    Verdict,
    Vote,
    check_id,
    new_id,
    stored_ids,
)
from camgate.store import Store

__all__ = [
    "Exclusions",
    "IncidentZones",
    "Jurisdiction",
    "RadiusGeofence",
    "Zone",
    "ZoneBook",
    "ZoneRole",
    "closed_vote",
]


class ZoneRole(enum.StrEnum):
    """What a stored zone is for."""

    SEARCH = "search"  #: a search area or corridor of one incident: allows
    EXCLUSION = "exclusion"  #: a sensitive place (worship, clinic, school, shelter): denies
    JURISDICTION = "jurisdiction"  #: where the agency may act; incidents outside are refused


def _shape(value: Any) -> Disc | Area | Corridor:
    if isinstance(value, Disc | Area | Corridor):
        return value
    raise ValidationError(f"shape={value!r}: must be a Disc, an Area or a Corridor")


def _zone_id(_inst: object, attribute: attrs.Attribute[Any], value: str | None) -> None:
    if value is not None:
        check_id(value, attribute.name)


@attrs.frozen
class Zone:
    """A named zone: its role, its shape, and for a search zone the incident it belongs to."""

    id: str = attrs.field(validator=_zone_id)
    role: ZoneRole = attrs.field(converter=ZoneRole)
    shape: Disc | Area | Corridor = attrs.field(converter=_shape)
    name: str = ""
    kind: str = ""
    incident_id: str | None = attrs.field(default=None, validator=_zone_id)

    def __attrs_post_init__(self) -> None:
        if (self.role is ZoneRole.SEARCH) != (self.incident_id is not None):
            raise ValidationError("a search zone names its incident; other zones name none")

    @classmethod
    def new(
        cls,
        role: ZoneRole | str,
        shape: Disc | Area | Corridor,
        *,
        name: str = "",
        kind: str = "",
        incident_id: str | None = None,
    ) -> Zone:
        """A zone with a fresh id."""
        return cls(new_id("zone"), role, shape, name, kind, incident_id)

    def label(self) -> str:
        """How reasons name the zone: its name and kind, or its id."""
        if self.name and self.kind:
            return f"{self.name} ({self.kind})"
        return self.name or self.kind or self.id

    def to_json(self) -> dict[str, Any]:
        """JSON-ready data (the shape in WGS84)."""
        return {
            "id": self.id,
            "role": str(self.role),
            "name": self.name,
            "kind": self.kind,
            "incident": self.incident_id,
            "shape": self.shape.to_json(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Zone:
        """Rebuild a zone from :meth:`to_json` data (validated again; ids stored before
        camgate checked them load with a warning, see :func:`camgate.models.stored_ids`)."""
        with stored_ids():
            return cls(
                data["id"],
                data["role"],
                shape_from_json(data["shape"]),
                data.get("name", ""),
                data.get("kind", ""),
                data.get("incident"),
            )


_SCHEMA = """
CREATE TABLE IF NOT EXISTS geofence_zones (
    id TEXT PRIMARY KEY, role TEXT NOT NULL, incident_id TEXT, doc TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS geofence_zones_incident ON geofence_zones(incident_id);
"""


class ZoneBook:
    """An agency's zones, stored in the camgate store's file (one per :class:`Store`).

    Get it with :meth:`for_store`, so the gate and its plugins share one cache. Zones are read
    once and kept until this process writes one, or another process commits to the file.
    """

    _books: ClassVar[weakref.WeakKeyDictionary[Store, ZoneBook]] = weakref.WeakKeyDictionary()

    def __init__(self, store: Store) -> None:
        self.store = store
        with store.transaction() as db:
            for statement in filter(None, (s.strip() for s in _SCHEMA.split(";"))):
                db.execute(statement)
        self._cache: list[Zone] | None = None
        self._version = -1
        self._held = threading.local()

    @classmethod
    def for_store(cls, store: Store) -> ZoneBook:
        """The book of ``store`` (created, with its table, on first use)."""
        book = cls._books.get(store)
        if book is None:
            book = cls._books[store] = cls(store)
        return book

    def add(self, zone: Zone) -> Zone:
        """Store a zone (or replace the one with its id)."""
        if zone.role is ZoneRole.SEARCH:
            self.store.get_incident(zone.incident_id or "")
        with self.store.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO geofence_zones VALUES (?, ?, ?, ?)",
                (zone.id, str(zone.role), zone.incident_id, json.dumps(zone.to_json())),
            )
        self._cache = None
        return zone

    def remove(self, zone_id: str) -> None:
        """Delete a zone; :class:`NotFound` when there is none with that id."""
        with self.store.transaction() as db:
            gone = db.execute("DELETE FROM geofence_zones WHERE id=?", (zone_id,)).rowcount
        self._cache = None
        if not gone:
            raise NotFound(f"no geofence zone {zone_id!r}")

    @classmethod
    def held(cls, store: Store, version: int | None = None) -> AbstractContextManager[None]:
        """Within this block (in this thread), ``store``'s zones are checked against the file
        once (nothing is done when no book was opened on ``store``).

        The gate holds the book for one decision or one survey: every zone source then votes
        on the same zones, validated by one read of the file's data version instead of one per
        vote and camera. ``version``: the file's data version (:meth:`Store.data_version`) the
        caller read just before (the fact cache's); zones read under that same version are then
        not checked again at all. A zone this process adds or removes meanwhile is still seen
        at once.
        """
        book = cls._books.get(store)
        if book is None:
            return nullcontext()
        cache = book._cache
        known = cache if version is not None and version == book._version else None
        return _Hold(book._held, known)

    def zones(self, role: ZoneRole | None = None, incident_id: str | None = None) -> list[Zone]:
        """Stored zones, in the order they were added; filtered by role and incident."""
        cache = self._cache
        held = getattr(self._held, "zones", False)
        if held is False or held is not cache or cache is None:
            version = self.store.data_version()
            if cache is None or version != self._version:
                rows = self.store.query("SELECT doc FROM geofence_zones ORDER BY rowid")
                cache = self._cache = [Zone.from_json(json.loads(doc)) for (doc,) in rows]
                self._version = version
            if held is not False:
                self._held.zones = cache
        return [
            z
            for z in cache
            if (role is None or z.role is role)
            and (incident_id is None or z.incident_id == incident_id)
        ]


class _Hold:
    """:meth:`ZoneBook.held`'s block: the thread's held zones (None until the first look)."""

    __slots__ = ("held", "known", "outer")

    def __init__(self, held: threading.local, known: list[Zone] | None) -> None:
        self.held = held
        self.known = known

    def __enter__(self) -> None:
        self.outer = getattr(self.held, "zones", False)
        self.held.zones = self.known

    def __exit__(self, *exc: object) -> None:
        self.held.zones = self.outer


def closed_vote(policy: str, incident: Incident, now: datetime) -> Vote | None:
    """The deny a zone gives when the incident is closed or ``now`` is outside its window."""
    if incident.active_at(now):
        return None
    if incident.status is IncidentStatus.CLOSED:
        why = "the incident is closed: a closed incident reaches no camera"
    else:
        why = (
            f"the incident's zone is valid from {incident.reported_at:%Y-%m-%d %H:%M} "
            f"to {incident.window_end:%Y-%m-%d %H:%M} UTC, not at {now:%Y-%m-%d %H:%M}"
        )
    return Vote.known(policy, Verdict.DENY, why)


def _fov_text(camera: Camera) -> str:
    reach = f", {camera.range_m:.0f} m" if camera.range_m is not None else ""
    return f"heading {camera.heading_deg:.0f}°, {camera.fov_deg:.0f}° wide{reach}"


def _miss(camera: Camera, view: View) -> str:
    assert camera.fov_deg is not None and view.off_axis_deg is not None
    if view.off_axis_deg > camera.fov_deg / 2:
        return f"{view.off_axis_deg:.0f}° off its axis"
    return f"beyond its {camera.range_m:.0f} m range"


class RadiusGeofence:
    """The incident's radius: allow a camera within it (that sees the incident, when known)."""

    policy = "geofence.radius"

    @hookimpl
    def camgate_geofence_extent(self, incident: Incident) -> Sequence[Shape]:
        """The disc of ``incident.radius_m`` round the incident."""
        return [Disc(incident.position, incident.radius_m)]

    @hookimpl
    def camgate_geofence_vote(self, incident: Incident, camera: Camera, now: datetime) -> Vote:
        """Allow within the radius (geodesic) when the field of view, if known, covers it.

        Deny when the incident is closed or out of its window; otherwise abstain, with why.
        """
        closed = closed_vote(self.policy, incident, now)
        if closed is not None:
            return closed
        view = view_of(camera, incident.position)
        dist, radius = view.distance_m, incident.radius_m
        if dist > radius:
            return Vote.known(
                self.policy,
                Verdict.ABSTAIN,
                f"camera is {dist:.0f} m from the incident, outside its {radius:.0f} m radius",
            )
        if view.covers is False:
            return Vote.known(
                self.policy,
                Verdict.ABSTAIN,
                f"camera is {dist:.0f} m from the incident but its field of view "
                f"({_fov_text(camera)}) does not cover it: {_miss(camera, view)}",
            )
        seen = f", {view.off_axis_deg:.0f}° off its axis" if view.covers else ""
        return Vote.known(
            self.policy,
            Verdict.ALLOW,
            f"camera is {dist:.0f} m from the incident (radius {radius:.0f} m){seen}",
        )


class _FromBook:
    """A zone source reading its zones from a :class:`ZoneBook`."""

    def __init__(self, book: ZoneBook) -> None:
        self.book = book


class IncidentZones(_FromBook):
    """Search areas and escape-route corridors drawn for an incident (from a :class:`ZoneBook`)."""

    @hookimpl
    def camgate_geofence_extent(self, incident: Incident) -> Sequence[Shape]:
        """The shapes of the incident's search zones."""
        return [z.shape for z in self.book.zones(ZoneRole.SEARCH, incident.id)]

    @hookimpl
    def camgate_geofence_vote(
        self, incident: Incident, camera: Camera, now: datetime
    ) -> Vote | None:
        """Allow inside a search zone that the camera (with a field of view) can see into.

        None when the incident has no search zone; abstain with the reason when none covers.
        """
        zones = self.book.zones(ZoneRole.SEARCH, incident.id)
        if not zones:
            return None
        policy = "geofence.corridor" if isinstance(zones[0].shape, Corridor) else "geofence.polygon"
        closed = closed_vote(policy, incident, now)
        if closed is not None:
            return closed
        lat, lon = camera.position.lat, camera.position.lon
        missed = []
        for zone in zones:
            policy = "geofence.corridor" if isinstance(zone.shape, Corridor) else "geofence.polygon"
            if not zone.shape.contains(lat, lon).item():
                missed.append(f"outside {zone.label()}")
                continue
            if isinstance(zone.shape, Corridor):
                target = "the route"
                seen = not has_fov(camera) or sees_any(camera, *zone.shape.vertices(5.0))
            else:
                target = "the incident"
                seen = view_of(camera, incident.position).covers is not False
            if seen:
                return Vote.known(policy, Verdict.ALLOW, f"camera is inside {zone.label()}")
            missed.append(f"inside {zone.label()} but its field of view does not cover {target}")
        return Vote.known(policy, Verdict.ABSTAIN, "; ".join(missed))


class Exclusions(_FromBook):
    """An agency's sensitive places: a camera inside one, or whose view covers one, is denied."""

    policy = "geofence.exclusion"

    @hookimpl
    def camgate_geofence_vote(
        self, incident: Incident, camera: Camera, now: datetime
    ) -> Vote | None:
        """Deny when the camera is inside an exclusion zone or its sector covers any part of one.

        An area's coverage is tested on its boundary every 5 m (and the camera inside it).
        """
        lat, lon = camera.position.lat, camera.position.lon
        for zone in self.book.zones(ZoneRole.EXCLUSION):
            shape = zone.shape
            if shape.contains(lat, lon).item():
                return Vote.known(self.policy, Verdict.DENY, f"camera is inside {zone.label()}")
            if not has_fov(camera):
                continue
            if isinstance(shape, Disc):
                seen = covers_disc(camera, shape.center.lat, shape.center.lon, shape.radius_m)
            elif isinstance(shape, Area):
                seen = sees_any(camera, *shape.boundary(5.0))
            else:
                la, lo = shape.vertices(5.0)
                seen = covers_disc(camera, la, lo, shape.half_width_m)
            if seen:
                return Vote.known(
                    self.policy, Verdict.DENY, f"camera's field of view covers {zone.label()}"
                )
        return None


class Jurisdiction(_FromBook):
    """The agency's jurisdiction: an incident outside it reaches no camera."""

    policy = "geofence.jurisdiction"

    @hookimpl
    def camgate_geofence_vote(
        self, incident: Incident, camera: Camera, now: datetime
    ) -> Vote | None:
        """Deny when jurisdiction zones exist and the incident lies in none of them."""
        zones = self.book.zones(ZoneRole.JURISDICTION)
        if not zones:
            return None
        p = incident.position
        if any(z.shape.contains(p.lat, p.lon).item() for z in zones):
            return None
        names = ", ".join(z.label() for z in zones)
        return Vote.known(
            self.policy,
            Verdict.DENY,
            f"the incident at {p.lat:.5f}, {p.lon:.5f} is outside the agency's jurisdiction "
            f"({names})",
        )
