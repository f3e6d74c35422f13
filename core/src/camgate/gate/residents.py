"""Residents' privacy zones: a home a camera must not watch until its owner masks it.

A resident who owns no enrolled camera asks the agency to register their home: a point with a
radius, or a polygon (:func:`parse_zone`). Every enrolled camera whose view covers the zone
(:func:`zone_in_view`) is refused live and snapshot access by the ``core.privacy-zone`` vote
until its owner attests that the camera's privacy masks cover the zone; an attestation holds
while the masks are unchanged (:func:`masks_digest`). The owners are asked once per zone and
camera. The resident sees how many cameras their zone affects and how many are attested, the
cameras named by opaque tokens (:meth:`Residents.zone_status`), never by whose they are.

Decisions read the zones through :class:`ZoneMap`: camera id to the zones its view covers and
whether each is attested, rebuilt only when ``zone_changes`` moved (every write to zones,
attestations, masks or cameras bumps it; SQLite triggers). The reference path
(``decide(cached=False)``) works the same answer out afresh (:func:`camera_zones`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import secrets
import threading
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import attrs
import numpy as np

from camgate.codec import dump
from camgate.errors import CamgateError, NotFound, ValidationError
from camgate.gate.parts import GateParts
from camgate.gate.program import owe_camera_notices
from camgate.geofence.geodesy import distance_m, inverse
from camgate.geofence.index import StoreIndex
from camgate.geofence.shapes import Area, Disc, shape_from_json
from camgate.geofence.view import covers_disc, has_fov, sees_any
from camgate.models import Camera, GeoPoint, PrivacyMask, Scope, Verdict, Vote, check_id, new_id
from camgate.store import Store
from camgate.vocab import AuditKind

__all__ = [
    "DEFAULT_RANGE_M",
    "MAX_ZONE_RADIUS_M",
    "MAX_ZONE_SPAN_M",
    "POLICY",
    "PrivacyZone",
    "Residents",
    "ZoneCover",
    "ZoneMap",
    "camera_zones",
    "masks_digest",
    "parse_zone",
    "zone_in_view",
]

#: The vote's policy name (a core check: no plugin set can switch it off).
POLICY = "core.privacy-zone"
#: The reach assumed for a camera whose range is unknown (metres).
DEFAULT_RANGE_M = 100.0
#: A point zone's largest radius: a home, not a neighbourhood.
MAX_ZONE_RADIUS_M = 100.0
#: A polygon zone's largest extent: no corner farther than this from its centre.
MAX_ZONE_SPAN_M = 150.0
#: The scopes a zone refuses (see docs/consent.md, "Residents' privacy zones").
REFUSED_SCOPES = frozenset({Scope.LIVE, Scope.SNAPSHOT})

REFUSAL = (
    "a resident's privacy zone lies in this camera's view; "
    "the owner has not yet confirmed a mask covers it"
)
ASK_TEXT = (
    "A resident asked that their home not be watched, and it lies in this camera's view. "
    "Please set a privacy mask over it, then confirm that the mask covers it "
    "(camgate zones attest ZONE CAMERA --by YOU). Until then live view and snapshots of "
    "this camera are refused; recorded footage is not affected."
)


def _zone_shape(value: Any) -> Disc | Area:
    if isinstance(value, Disc | Area):
        return value
    raise ValidationError(f"shape={value!r}: a privacy zone is a Disc or an Area")


def _span_m(shape: Disc | Area) -> tuple[GeoPoint, float]:
    """The zone's centre and how far its edge reaches from it (metres)."""
    if isinstance(shape, Disc):
        return shape.center, shape.radius_m
    centroid = shape.geometry.centroid
    center = GeoPoint(float(centroid.y), ((float(centroid.x) + 180.0) % 360.0) - 180.0)
    lat, lon = shape.boundary(5.0)
    _az, dist = inverse(center.lat, center.lon, lat, lon)
    return center, float(np.max(dist))


def _check_size(shape: Disc | Area) -> None:
    if isinstance(shape, Disc):
        if shape.radius_m > MAX_ZONE_RADIUS_M:
            raise ValidationError(
                f"a privacy zone's radius is at most {MAX_ZONE_RADIUS_M:g} m (a home), "
                f"not {shape.radius_m:g} m"
            )
        return
    _center, span = _span_m(shape)
    if span > MAX_ZONE_SPAN_M:
        raise ValidationError(
            f"a privacy zone is a home: no edge may lie more than {MAX_ZONE_SPAN_M:g} m from "
            f"its centre, this one reaches {span:.0f} m"
        )


@attrs.frozen(eq=False)
class PrivacyZone:
    """A resident's registered home: its id (the resident's handle), shape, and when and by
    whom at the agency it was registered. No resident's identity is stored."""

    id: str = attrs.field(validator=lambda _i, a, v: check_id(v, a.name))
    shape: Disc | Area = attrs.field(converter=_zone_shape)
    registered_at: datetime
    registered_by: str
    #: The centre and reach of the shape (worked out once).
    center: GeoPoint = attrs.field(init=False, repr=False)
    reach_m: float = attrs.field(init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        center, reach = _span_m(self.shape)
        object.__setattr__(self, "center", center)
        object.__setattr__(self, "reach_m", reach)

    def to_json(self) -> dict[str, Any]:
        """JSON-ready data (the shape in WGS84)."""
        return {
            "id": self.id,
            "shape": self.shape.to_json(),
            "registered_at": self.registered_at.isoformat(),
            "registered_by": self.registered_by,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PrivacyZone:
        """Rebuild a zone from :meth:`to_json` data."""
        shape = shape_from_json(data["shape"])
        return cls(
            data["id"],
            _zone_shape(shape),
            datetime.fromisoformat(data["registered_at"]),
            data["registered_by"],
        )


def parse_zone(text: str) -> Disc | Area:
    """A zone from what a resident gives: ``LAT,LON[,RADIUS_M]`` (a point, 25 m by default) or
    a GeoJSON Polygon (text or file content, WGS84 longitude/latitude).

    Refused with a :class:`ValidationError` saying why: non-finite or out-of-range
    coordinates, a self-intersecting or degenerate polygon, a zone larger than a home
    (:data:`MAX_ZONE_RADIUS_M`, :data:`MAX_ZONE_SPAN_M`), anything else.
    """
    if not isinstance(text, str):
        raise ValidationError("a privacy zone is given as text: LAT,LON[,RADIUS_M] or GeoJSON")
    raw = text.strip()
    if not raw:
        raise ValidationError("an empty privacy zone: give LAT,LON[,RADIUS_M] or a GeoJSON Polygon")
    shape: Disc | Area
    if raw.startswith("{"):
        try:
            data = json.loads(raw)
        except (ValueError, RecursionError):
            raise ValidationError("the privacy zone is not valid JSON (GeoJSON Polygon)") from None
        if not isinstance(data, dict) or data.get("type") not in ("Polygon", "Feature"):
            raise ValidationError("a privacy zone in GeoJSON is one Polygon (or a Feature of one)")
        shape = Area.from_geojson(data)
    else:
        parts = raw.split(",")
        if len(parts) not in (2, 3):
            raise ValidationError(
                f"privacy zone {raw[:40]!r}: give LAT,LON or LAT,LON,RADIUS_M or a GeoJSON Polygon"
            )
        try:
            numbers = [float(p) for p in parts]
        except ValueError:
            raise ValidationError(f"privacy zone {raw[:40]!r}: not numbers") from None
        if not all(math.isfinite(n) for n in numbers):
            raise ValidationError(f"privacy zone {raw[:40]!r}: a number is not finite")
        radius = numbers[2] if len(numbers) == 3 else 25.0
        shape = Disc.around(numbers[0], numbers[1], radius)
    _check_size(shape)
    return shape


def zone_in_view(camera: Camera, zone: PrivacyZone) -> bool:
    """Whether ``camera`` may see any part of ``zone``.

    A camera inside the zone sees it. A camera with a heading and an angle of view sees it when
    its sector (``heading ± fov/2`` out to ``range_m``, :data:`DEFAULT_RANGE_M` when unknown)
    reaches any part of it; one without a known heading or angle sees it when it lies within
    that range of any part of it.
    """
    pos = camera.position
    if zone.shape.contains(pos.lat, pos.lon).item():
        return True
    reach = camera.range_m if camera.range_m is not None else DEFAULT_RANGE_M
    if distance_m(pos, zone.center) - zone.reach_m > reach:
        return False
    shape = zone.shape
    if has_fov(camera):
        ranged = camera if camera.range_m is not None else attrs.evolve(camera, range_m=reach)
        if isinstance(shape, Disc):
            return covers_disc(ranged, shape.center.lat, shape.center.lon, shape.radius_m)
        return sees_any(ranged, *shape.boundary(5.0))
    if isinstance(shape, Disc):
        return True  # the centre is within reach + radius (checked above)
    lat, lon = shape.boundary(5.0)
    _az, dist = inverse(pos.lat, pos.lon, lat, lon)
    return bool(np.min(dist) <= reach)


def masks_digest(mask: PrivacyMask | None) -> str | None:
    """A digest of a camera's mask polygons (None for none): an attestation holds while it is
    equal (masks set again to the same polygons are unchanged)."""
    if mask is None:
        return None
    body = json.dumps(dump(mask)["polygons"]).encode()
    return hashlib.sha256(body).hexdigest()


@attrs.frozen
class ZoneCover:
    """One privacy zone a camera's view covers, and whether its owner's attestation holds."""

    zone_id: str
    attested: bool


def _attested(
    camera: Camera,
    zone_id: str,
    attestations: Mapping[tuple[str, str], Mapping[str, Any]],
    digest: str | None,
) -> bool:
    found = attestations.get((zone_id, camera.id))
    return (
        found is not None
        and found.get("owner") == camera.owner_id
        and found.get("masks") == digest
        and digest is not None
    )


def _load_zones(store: Store) -> list[PrivacyZone]:
    return [PrivacyZone.from_json(doc) for doc in store.privacy_zones()]


def camera_zones(store: Store, camera: Camera) -> tuple[ZoneCover, ...]:
    """The privacy zones ``camera``'s view covers, read afresh (the reference path)."""
    zones = [z for z in _load_zones(store) if zone_in_view(camera, z)]
    if not zones:
        return ()
    attestations = store.zone_attestations()
    digest = masks_digest(store.masks(camera.id))
    return tuple(ZoneCover(z.id, _attested(camera, z.id, attestations, digest)) for z in zones)


class ZoneMap:
    """Camera id → the privacy zones its view covers, kept while ``zone_changes`` stands.

    A decision asks :meth:`covers` (a dict look-up once the map is built). The map is rebuilt
    when a zone, an attestation, a camera's masks or a camera changed since (any process);
    with no zones registered it is empty and costs nothing to build.
    """

    def __init__(self, store: Store, index: StoreIndex | None = None) -> None:
        self.store = store
        #: The cameras' spatial index: a rebuild looks only at cameras near a zone.
        self.index = index
        self._lock = threading.Lock()
        self._version: int | None = None
        self._count: int | None = None
        self._map: dict[str, tuple[ZoneCover, ...]] = {}
        self.zones: list[PrivacyZone] = []

    def _build(self) -> None:
        zones = _load_zones(self.store)
        self.zones = zones
        if not zones:
            self._map = {}
            return
        attestations = self.store.zone_attestations()
        built: dict[str, tuple[ZoneCover, ...]] = {}
        for camera in self._near(zones):
            seen = [z for z in zones if zone_in_view(camera, z)]
            if seen:
                digest = masks_digest(self.store.masks(camera.id))
                built[camera.id] = tuple(
                    ZoneCover(z.id, _attested(camera, z.id, attestations, digest)) for z in seen
                )
        self._map = built

    def _near(self, zones: list[PrivacyZone]) -> list[Camera]:
        """Every camera that may see one of ``zones``: through the index, those within the
        zone's reach plus the longest camera range stored (a superset of
        :func:`zone_in_view`); without an index, every camera."""
        if self.index is None:
            return self.store.cameras()
        rows = self.store.query(
            "SELECT MAX(CAST(json_extract(doc, '$.range_m') AS REAL)) FROM cameras"
        )
        longest = max(DEFAULT_RANGE_M, float(rows[0][0] or 0.0) if rows else 0.0)
        index = self.index.get()
        found: dict[str, Camera] = {}
        for zone in zones:
            for camera_id, _dist in index.within(zone.center, zone.reach_m + longest + 1.0):
                if camera_id not in found:
                    camera = index.camera(index.slot(camera_id))
                    found[camera_id] = camera or self.store.get_camera(camera_id)
        return list(found.values())

    def covers(self, camera_id: str, version: int | None = None) -> tuple[ZoneCover, ...]:
        """The zones the camera's view covers (empty for none). ``version``: the file's data
        version the caller read just now (then the counter is not read while it stands)."""
        with self._lock:
            if version is None:
                version = self.store.data_version()
            if version != self._version or self._count is None:
                count = self.store.zone_changes()
                if count is None or count != self._count:
                    self._build()
                self._count = count
                self._version = version if count is not None else None
            return self._map.get(camera_id, ())

    def unmasked(self, camera_id: str, scope: Scope) -> bool:
        """Whether ``scope`` of the camera is refused now: a zone its view covers, which its
        owner has not attested, refuses live and snapshot (the edge's ``grant_problem``)."""
        return scope in REFUSED_SCOPES and any(not c.attested for c in self.covers(camera_id))

    def affected(self) -> dict[str, tuple[ZoneCover, ...]]:
        """Every enrolled camera a zone covers (current as of now); a camera nobody shares is
        refused anyway, and its owner is not asked."""
        self.covers("")
        with self._lock:
            found = dict(self._map)
        if not found:
            return found
        enrolled = {c.id for c in self.store.enrolled_cameras()}
        return {c: z for c, z in found.items() if c in enrolled}


def privacy_vote(covers: Sequence[ZoneCover], scope: Scope) -> Vote | None:
    """``core.privacy-zone``: deny live and snapshot while a covered zone is not attested."""
    if not covers or scope not in REFUSED_SCOPES:
        return None
    open_ = [c for c in covers if not c.attested]
    if open_:
        return Vote(POLICY, Verdict.DENY, REFUSAL)
    return Vote(
        POLICY,
        Verdict.ALLOW,
        "a resident's privacy zone lies in this camera's view; the owner confirmed a mask "
        "covers it (masks are applied to every stream)",
    )


class _Asked(CamgateError):
    """Every owner was asked already (nothing written)."""


class Residents(GateParts):
    """The privacy-zone part of :class:`~camgate.gate.Gate` (a mixin)."""

    zone_map: ZoneMap

    def _privacy_vote(self, camera: Camera, scope: Scope, cached: bool) -> Vote | None:
        if scope not in REFUSED_SCOPES:
            return None
        if cached:
            covers = self.zone_map.covers(camera.id, self.facts.data_version)
        else:
            covers = camera_zones(self.store, camera)
        return privacy_vote(covers, scope)

    def register_zone(self, zone: str | Disc | Area, *, by: str) -> PrivacyZone:
        """Register a resident's home as a privacy zone, at their request, by agency user
        ``by``; returns it (its id is the resident's handle). Audited (``zone.registered``)
        before it returns; the owners of the cameras whose view covers it are then asked to
        mask it (``zone.asked``). Bad input is a :class:`ValidationError` (:func:`parse_zone`).

        Grants already issued stop holding too: this process's live streams of the cameras
        whose view covers the zone end at once (``access.end`` reason
        ``privacy-zone-unmasked``), other processes' at their next packet, and a snapshot or
        clip under such a live or snapshot grant is refused (:class:`~camgate.errors.ZoneRefused`).
        """
        check_id(by, "by")
        shape = parse_zone(zone) if isinstance(zone, str) else _zone_shape(zone)
        _check_size(shape)
        made = PrivacyZone(new_id("pz"), shape, self.clock.now(), by)
        body = {
            "zone": made.id,
            "shape": shape.to_json(),
            "by": by,
            "registered_at": made.registered_at.isoformat(),
        }
        self._audited(AuditKind.ZONE_REGISTERED, lambda: body, made.registered_at)
        self.edge.halt_zone_streams()
        self.ask_zone_owners()
        return made

    def remove_zone(self, zone_id: str, *, by: str) -> None:
        """Remove a privacy zone at the resident's request (audited ``zone.removed``);
        :class:`NotFound` when there is none with that id."""
        check_id(by, "by")

        def prepare() -> dict[str, Any]:
            if not any(d["id"] == zone_id for d in self.store.privacy_zones()):
                raise NotFound(f"no privacy zone {zone_id!r}")
            return {"zone": zone_id, "by": by}

        self._audited(AuditKind.ZONE_REMOVED, prepare, self.clock.now())

    def privacy_zones(self) -> list[PrivacyZone]:
        """Every registered privacy zone, in the order registered."""
        return _load_zones(self.store)

    def _zone(self, zone_id: str) -> PrivacyZone:
        for zone in self.privacy_zones():
            if zone.id == zone_id:
                return zone
        raise NotFound(f"no privacy zone {zone_id!r}")

    def ask_zone_owners(self) -> int:
        """Ask each owner whose enrolled camera's view covers a zone, once per zone and camera,
        to mask it (an owner notice, audited ``zone.asked``); returns how many cameras were
        asked now."""
        asked = 0
        for zone in self.privacy_zones():
            cameras = self._unasked(
                zone.id,
                sorted(
                    cid
                    for cid, covers in self.zone_map.affected().items()
                    if any(c.zone_id == zone.id and not c.attested for c in covers)
                ),
            )
            if not cameras:
                continue

            def prepare(zone_id: str = zone.id, cameras: list[str] = cameras) -> dict[str, Any]:
                fresh = self._unasked(zone_id, cameras)  # again, under the write lock
                if not fresh:
                    raise _Asked(zone_id)
                return {"zone": zone_id, "cameras": fresh, "text": ASK_TEXT}

            try:
                body = self._audited(AuditKind.ZONE_ASKED, prepare, self.clock.now())
            except _Asked:
                continue
            asked += len(body["cameras"])
            self._pay_owed_notices()
        return asked

    def _unasked(self, zone_id: str, cameras: list[str]) -> list[str]:
        asked = {
            c
            for (c,) in self.store.query(
                "SELECT camera_id FROM zone_asks WHERE zone_id=?", (zone_id,)
            )
        }
        return [c for c in cameras if c not in asked]

    def attest_zone_mask(self, camera_id: str, zone_id: str, *, by: str) -> None:
        """The camera's owner ``by`` attests that its privacy masks cover ``zone_id``: the
        camera is eligible again for that zone (masked) while its masks stay as they are now.
        Audited (``zone.mask-attested``). Refused with a :class:`ValidationError` when ``by``
        is not the camera's owner, the camera has no masks, or its view does not cover the
        zone; :class:`NotFound` for unknown ids.
        """
        now = self.clock.now()

        def prepare() -> dict[str, Any]:
            camera = self.store.get_camera(camera_id)
            zone = self._zone(zone_id)
            if camera.owner_id != by:
                raise ValidationError(
                    f"only the camera's owner can attest its masks; {by!r} does not own it"
                )
            digest = masks_digest(self.store.masks(camera.id))
            if digest is None:
                raise ValidationError(
                    f"camera {camera_id!r} has no privacy masks: set one over the zone first"
                )
            if not zone_in_view(camera, zone):
                raise ValidationError(
                    f"privacy zone {zone_id!r} is not in camera {camera_id!r}'s view: "
                    "nothing to attest"
                )
            return {
                "zone": zone_id,
                "camera": camera_id,
                "owner": by,
                "masks": digest,
                "at": now.isoformat(),
            }

        self._audited(AuditKind.ZONE_MASK_ATTESTED, prepare, now)

    def zone_status(self, zone_id: str) -> dict[str, Any]:
        """What the resident may see of their zone: how many enrolled cameras' views cover it,
        how many owners attested a mask, and the cameras as opaque tokens (stable per zone,
        meaningless elsewhere); never the owners or the camera ids."""
        zone = self._zone(zone_id)
        key = self._token_key()
        rows = []
        for camera_id, covers in self.zone_map.affected().items():
            for cover in covers:
                if cover.zone_id == zone.id:
                    token = hmac.new(key, f"{zone.id}\0{camera_id}".encode(), "sha256")
                    rows.append({"camera": token.hexdigest()[:16], "attested": cover.attested})
        rows.sort(key=lambda r: str(r["camera"]))
        return {
            "zone": zone.id,
            "registered_at": zone.registered_at.isoformat(),
            "cameras_affected": len(rows),
            "cameras_attested": sum(1 for r in rows if r["attested"]),
            "cameras": rows,
        }

    def _token_key(self) -> bytes:
        key = self.store.meta("zones.token-key")
        if key is None:
            self.store.set_meta("zones.token-key", secrets.token_hex(32))
            key = self.store.meta("zones.token-key")
        assert key is not None
        return bytes.fromhex(key)


def apply_zone_registered(gate: GateParts, body: dict[str, Any], at: datetime) -> None:
    """The change a ``zone.registered`` record makes: the zone stored."""
    gate.store.put_privacy_zone(
        str(body["zone"]),
        {
            "id": body["zone"],
            "shape": body["shape"],
            "registered_at": body["registered_at"],
            "registered_by": body["by"],
        },
    )


def apply_zone_removed(gate: GateParts, body: dict[str, Any], at: datetime) -> None:
    """The change a ``zone.removed`` record makes: the zone and its attestations deleted."""
    gate.store.delete_privacy_zone(str(body["zone"]))


def apply_zone_asked(gate: GateParts, body: dict[str, Any], at: datetime) -> None:
    """The change a ``zone.asked`` record makes: the asks marked, one notice per camera owed."""
    for camera_id in body["cameras"]:
        gate.store.mark_zone_asked(str(body["zone"]), str(camera_id), at.isoformat())
    text = f"{body['text']} (zone {body['zone']})"
    owe_camera_notices(gate, list(body["cameras"]), "privacy-zone", text, at)


def apply_zone_attested(gate: GateParts, body: dict[str, Any], at: datetime) -> None:
    """The change a ``zone.mask-attested`` record makes: the attestation stored."""
    gate.store.put_zone_attestation(str(body["zone"]), str(body["camera"]), dict(body))
