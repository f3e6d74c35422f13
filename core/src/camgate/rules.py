"""The agency's and jurisdiction's rules: what a city decides for every camera, whatever its owner.

An agency configures them once, in a TOML file or in code, and hands them to the gate
(``Gate.open(path, rules=AgencyRules.from_toml("rules.toml"))``; the CLI reads ``--rules PATH``
or ``$CAMGATE_RULES``). The gate registers them as the built-in policy plugin ``camgate.agency``
(:class:`camgate.policy.AgencyPolicy`) and checks the enrolment caps in
:meth:`camgate.gate.Gate.enrol`. The file looks like this (every key optional)::

    [agency]
    name = "Jackson RTCC"
    purposes = ["investigation", "missing-person", "traffic-collision"]
    banned_purposes = ["face-recognition"]
    live_incident_kinds = ["homicide", "shooting", "armed-robbery"]
    required_waivers = ["2026-1"]
    retention_days = 30
    sensitive_cameras = ["cam-clinic-door"]

    [agency.enrolment_caps]
    city = 5
    private = 5

    [[agency.sensitive_places]]
    name = "Women's clinic, Fortification St"
    lat = 32.3051
    lon = -90.1790
    radius_m = 75

The ordinance rules (docs/consent.md, "Ordinance rules") add a program with a start, an end
and a version (``version``, ``program_start``, ``program_end``), caps on live time
(``[agency.live_caps]``), protected activities (``[[agency.protected_activities]]``) and
approval by a second person (``[agency.approval]``)::

    version = "2026-pilot"
    program_start = 2026-03-01T00:00:00-06:00
    program_end = 2026-04-15T00:00:00-05:00

    [agency.live_caps]
    per_incident_h = 24
    per_officer_day_h = 8
    per_camera_week_h = 10

    [[agency.protected_activities]]
    name = "lawful protest"
    incident_kinds = ["protest", "demonstration"]
    purposes = ["investigation"]     # omitted: every purpose

    [agency.approval]                # these wait for a captain (never the requester)
    role = "captain"
    approvers = ["cpt-ross", "cpt-lee"]
    timeout_min = 30
    scopes = ["live"]
    emergency_kinds = ["shooting", "mass-casualty"]   # outside these: approval too

Names of incident kinds and purposes are compared after :func:`normalise` (Unicode NFKC, case
folded, every dash variant, space and underscore as one hyphen), so ``"Face Recognition"`` and
``face-recognition`` spelt with a non-breaking hyphen are ``face-recognition``. ``purposes`` is
a closed vocabulary: a request naming anything else is refused, so a ban cannot be dodged by a
spelling (``facial recognition``) or by wrapping it in words (``face-recognition search``);
rules without ``purposes`` allow ``investigation`` only.
"""

from __future__ import annotations

import math
import tomllib
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Mapping
from datetime import date, datetime
from pathlib import Path
from typing import Any

import attrs

from camgate.errors import ConfigError, ValidationError
from camgate.geofence import distance_m
from camgate.models import (
    DEFAULT_PURPOSE,
    MAX_DURATION_S,
    MAX_RADIUS_M,
    MAX_RETENTION_DAYS,
    Camera,
    CameraClass,
    GeoPoint,
    check_id,
    normalise,
    purpose_names,
)

__all__ = [
    "AgencyRules",
    "Approval",
    "ApprovalRule",
    "LiveAllowance",
    "LiveCaps",
    "ProtectedActivity",
    "SensitivePlace",
    "normalise",
]


def _list(value: object, what: str) -> list[Any]:
    if isinstance(value, str | bytes | Mapping) or not isinstance(value, Iterable):
        raise ValidationError(f"{what}={value!r}: give a list, not {type(value).__name__}")
    return list(value)


def _names(value: Iterable[str] | None) -> frozenset[str] | None:
    if value is None:
        return None
    names = _list(value, "names")
    if not all(isinstance(v, str) and normalise(v) for v in names):
        raise ValidationError(f"{names!r}: every name must be a non-empty string")
    return frozenset(normalise(v) for v in names)


def _banned(value: Iterable[str]) -> frozenset[str]:
    return _names(value) or frozenset()


def _vocabulary(value: Iterable[str]) -> frozenset[str]:
    names = _names(value) or frozenset()
    if not names:
        raise ValidationError("purposes: list at least one purpose a request may name")
    if any("," in n or ";" in n for n in names):
        raise ValidationError(f"purposes={sorted(names)!r}: a purpose must not hold ',' or ';'")
    return names


def _ids(value: Iterable[str]) -> frozenset[str]:
    ids = _list(value, "ids")
    if not all(isinstance(v, str) for v in ids):
        raise ValidationError(f"{ids!r}: every id must be a string")
    return frozenset(ids)


def _optional_ids(value: Iterable[str] | None) -> frozenset[str] | None:
    return None if value is None else _ids(value)


def _caps(value: Mapping[str, int] | None) -> Mapping[str, int]:
    caps: dict[str, int] = {}
    if value is not None and not isinstance(value, Mapping):
        raise ValidationError(
            f"enrolment_caps={value!r}: must be a table of camera class to cap, "
            "e.g. {city = 5, private = 5}"
        )
    for key, cap in (value or {}).items():
        try:
            cls = CameraClass(key)
        except ValueError:
            raise ValidationError(
                f"enrolment_caps: unknown camera class {key!r} (known: city, private)"
            ) from None
        if isinstance(cap, bool) or not isinstance(cap, int) or cap < 0:
            raise ValidationError(f"enrolment_caps.{key}={cap!r}: must be a whole number ≥ 0")
        caps[cls.value] = cap
    return caps


def _retention(_inst: object, _attr: object, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValidationError(f"retention_days={value!r}: must be a number of days")
    if not (math.isfinite(value) and 0 < value <= MAX_RETENTION_DAYS):
        raise ValidationError(
            f"retention_days={value!r}: must be a number above zero and at most "
            f"{MAX_RETENTION_DAYS:g}"
        )


#: The shortest meridian arc per degree of latitude on WGS84 (at the equator: 110 574.3 m),
#: rounded down. Two points further apart in latitude than ``d / this`` degrees are more than
#: ``d`` metres apart along the surface (no path between two parallels is shorter than the
#: meridian arc between them).
_MIN_M_PER_DEGREE_LAT = 110_574.0


def _by_latitude(
    places: tuple[SensitivePlace, ...],
) -> tuple[list[float], list[tuple[int, SensitivePlace]], float]:
    """The places sorted by latitude (with their given order), their latitudes, and the widest
    latitude span in degrees any of them reaches: a camera further than that in latitude from a
    place is outside it."""
    ordered = sorted(enumerate(places), key=lambda item: item[1].position.lat)
    span = max((p.radius_m for p in places), default=0.0) / _MIN_M_PER_DEGREE_LAT
    return [p.position.lat for _i, p in ordered], ordered, span


@attrs.frozen
class SensitivePlace:
    """A place (a clinic, a shelter, a place of worship) whose cameras are never reachable."""

    name: str
    position: GeoPoint
    radius_m: float

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ValidationError("sensitive place: name must be non-empty")
        if not (
            isinstance(self.radius_m, int | float)
            and math.isfinite(self.radius_m)
            and 0 < self.radius_m <= MAX_RADIUS_M
        ):
            raise ValidationError(
                f"sensitive place {self.name!r}: radius_m={self.radius_m!r} must be above 0 and "
                f"at most {MAX_RADIUS_M:g} metres"
            )


def _places(value: Iterable[SensitivePlace | Mapping[str, Any]]) -> tuple[SensitivePlace, ...]:
    places = []
    for item in _list(value, "sensitive_places"):
        if isinstance(item, SensitivePlace):
            places.append(item)
            continue
        if not isinstance(item, Mapping):
            raise ValidationError(
                f"sensitive place {item!r}: must be a table with name, lat, lon and radius_m"
            )
        try:
            places.append(
                SensitivePlace(
                    name=str(item["name"]),
                    position=GeoPoint(float(item["lat"]), float(item["lon"])),
                    radius_m=float(item["radius_m"]),
                )
            )
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, ValidationError):
                raise
            raise ValidationError(
                f"sensitive place {item!r}: needs name, lat, lon and radius_m ({exc})"
            ) from None
    return tuple(places)


def _moment(value: object, what: str) -> datetime | None:
    """A program date: an aware datetime (TOML ``2026-03-01T00:00:00-06:00``, or the same in
    ISO 8601 text); a date alone or a time without an offset is an error, as it names no
    moment."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise ValidationError(
                f"{what}={value!r}: give a date and time with its offset, "
                "e.g. 2026-03-01T00:00:00-06:00"
            ) from None
    if isinstance(value, date) and not isinstance(value, datetime):
        raise ValidationError(
            f"{what}={value.isoformat()}: a date alone names no moment; give a date and time "
            "with its offset, e.g. 2026-03-01T00:00:00-06:00"
        )
    if not isinstance(value, datetime):
        raise ValidationError(f"{what}={value!r}: must be a date and time with its offset")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValidationError(
            f"{what}={value.isoformat()}: give the time zone offset "
            "(e.g. 2026-03-01T00:00:00-06:00), or the moment is ambiguous"
        )
    return value


def _program_start(value: object) -> datetime | None:
    return _moment(value, "program_start")


def _program_end(value: object) -> datetime | None:
    return _moment(value, "program_end")


def _hours(value: object, what: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValidationError(f"live_caps.{what}={value!r}: must be a number of hours")
    if not (math.isfinite(value) and 0 < value <= MAX_DURATION_S / 3600):
        raise ValidationError(
            f"live_caps.{what}={value!r}: must be above zero and at most "
            f"{MAX_DURATION_S / 3600:g} hours"
        )
    return float(value) * 3600.0


@attrs.frozen
class LiveCaps:
    """Caps on live view, in seconds (the rules file gives hours): all live access under one
    incident (``per_incident_s``), one officer's in a rolling 24 h (``per_officer_day_s``),
    one camera's in a rolling 7 days (``per_camera_week_s``). None: no cap."""

    per_incident_s: float | None = None
    per_officer_day_s: float | None = None
    per_camera_week_s: float | None = None

    def __bool__(self) -> bool:
        return any(
            v is not None
            for v in (self.per_incident_s, self.per_officer_day_s, self.per_camera_week_s)
        )


_CAP_KEYS = {
    "per_incident_h": "per_incident_s",
    "per_officer_day_h": "per_officer_day_s",
    "per_camera_week_h": "per_camera_week_s",
}


def _live_caps(value: LiveCaps | Mapping[str, Any] | None) -> LiveCaps:
    if value is None:
        return LiveCaps()
    if isinstance(value, LiveCaps):
        return value
    if not isinstance(value, Mapping):
        raise ValidationError(f"live_caps={value!r}: must be a table, e.g. {{per_incident_h = 24}}")
    unknown = set(value) - set(_CAP_KEYS)
    if unknown:
        raise ValidationError(
            f"live_caps: unknown keys {sorted(unknown)} (known: {', '.join(sorted(_CAP_KEYS))})"
        )
    return LiveCaps(**{_CAP_KEYS[k]: _hours(v, k) for k, v in value.items()})


@attrs.frozen
class LiveAllowance:
    """How much live time is used and left under each cap that applies to a request, at the
    moment of a decision (worked out by the gate from the audit log; docs/consent.md).

    ``caps`` holds ``(what, cap_s, used_s)`` per cap: ``what`` says which (``"this incident"``,
    ``"officer X in the last 24 h"``, ``"this camera in the last 7 days"``).
    """

    caps: tuple[tuple[str, float, float], ...]

    @property
    def remaining_s(self) -> float:
        """The live time left under the tightest cap (never below 0)."""
        return max(0.0, min((cap - used for _w, cap, used in self.caps), default=math.inf))


@attrs.frozen
class ProtectedActivity:
    """An activity the agency protects (a lawful protest, a religious service): a request under
    an incident of one of ``incident_kinds`` may not name any of ``purposes`` (None: any
    purpose). Names are kept in :func:`normalise` form."""

    name: str
    incident_kinds: frozenset[str] = attrs.field(converter=_banned)
    purposes: frozenset[str] | None = attrs.field(default=None, converter=_names)

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ValidationError("protected activity: name must be non-empty")
        if not self.incident_kinds:
            raise ValidationError(
                f"protected activity {self.name!r}: list at least one incident kind"
            )


def _protected(
    value: Iterable[ProtectedActivity | Mapping[str, Any]],
) -> tuple[ProtectedActivity, ...]:
    found = []
    for item in _list(value, "protected_activities"):
        if isinstance(item, ProtectedActivity):
            found.append(item)
            continue
        if not isinstance(item, Mapping):
            raise ValidationError(
                f"protected activity {item!r}: must be a table with name, incident_kinds "
                "and (optionally) purposes"
            )
        unknown = set(item) - {"name", "incident_kinds", "purposes"}
        if unknown or "name" not in item or "incident_kinds" not in item:
            raise ValidationError(
                f"protected activity {item!r}: needs name and incident_kinds (and optionally "
                f"purposes){'; unknown keys ' + str(sorted(unknown)) if unknown else ''}"
            )
        found.append(
            ProtectedActivity(
                name=item["name"],
                incident_kinds=item["incident_kinds"],
                purposes=item.get("purposes"),
            )
        )
    return tuple(found)


@attrs.frozen
class ApprovalRule:
    """Which requests wait for a second person's approval, and who may give it.

    A request needs approval when ANY criterion set here matches it: its scope is in
    ``scopes``; its incident's kind in ``incident_kinds``; it names a purpose in ``purposes``;
    it asks for longer than ``longer_than_s``; or ``emergency_kinds`` is set and its incident's
    kind is not one of them (outside declared emergencies). The approver must be one of
    ``approvers`` (the people holding ``role``) and not the officer who asked; no answer within
    ``timeout_s`` is a no.
    """

    role: str
    approvers: frozenset[str] = attrs.field(converter=_ids)
    timeout_s: float = 1800.0
    scopes: frozenset[str] = attrs.field(default=(), converter=_banned)
    incident_kinds: frozenset[str] = attrs.field(default=(), converter=_banned)
    purposes: frozenset[str] = attrs.field(default=(), converter=_banned)
    longer_than_s: float | None = None
    emergency_kinds: frozenset[str] | None = attrs.field(default=None, converter=_names)

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.role, str) or not self.role.strip():
            raise ValidationError("approval.role: name the role that approves (e.g. captain)")
        if not self.approvers:
            raise ValidationError("approval.approvers: list at least one person with the role")
        for who in self.approvers:
            check_id(who, "approval.approvers")
        if not (isinstance(self.timeout_s, int | float) and 0 < self.timeout_s <= MAX_DURATION_S):
            raise ValidationError(
                f"approval.timeout_min: must be above zero and at most {MAX_DURATION_S / 60:g}"
            )
        unknown = self.scopes - {"live", "recorded", "snapshot"}
        if unknown:
            raise ValidationError(
                f"approval.scopes: unknown scopes {sorted(unknown)} (live, recorded, snapshot)"
            )

    def needed_for(
        self, scope: str, kind: str, purpose: str | Iterable[str], duration_s: float
    ) -> list[str]:
        """Why a request needs approval (empty: it does not), in words."""
        kind = normalise(kind)
        why = []
        if str(scope) in self.scopes:
            why.append(f"{scope} access")
        if kind in self.incident_kinds:
            why.append(f"a {kind} incident")
        named = [p for p in purpose_names(purpose) if p in self.purposes]
        if named:
            why.append(f"the purpose {', '.join(named)}")
        if (
            self.longer_than_s is not None
            and str(scope) != "snapshot"
            and duration_s > self.longer_than_s
        ):
            why.append(f"longer than {self.longer_than_s / 3600:g} h")
        if self.emergency_kinds is not None and kind not in self.emergency_kinds:
            why.append(f"outside declared emergencies ({', '.join(sorted(self.emergency_kinds))})")
        return why


@attrs.frozen
class Approval:
    """A second person's answer to a request that needed approval: who (``approver``, holding
    ``role``), ``approved`` or not, and their stated ``reason``."""

    approver: str
    role: str
    approved: bool
    reason: str


_APPROVAL_KEYS = {
    "role", "approvers", "timeout_min", "scopes", "incident_kinds", "purposes", "longer_than_h",
    "emergency_kinds",
}  # fmt: skip


def _approval(value: ApprovalRule | Mapping[str, Any] | None) -> ApprovalRule | None:
    if value is None or isinstance(value, ApprovalRule):
        return value
    if not isinstance(value, Mapping):
        raise ValidationError(f"approval={value!r}: must be a table with role and approvers")
    unknown = set(value) - _APPROVAL_KEYS
    if unknown or "role" not in value or "approvers" not in value:
        raise ValidationError(
            f"approval: needs role and approvers (known keys: {', '.join(sorted(_APPROVAL_KEYS))})"
            f"{'; unknown keys ' + str(sorted(unknown)) if unknown else ''}"
        )
    fields = {k: v for k, v in value.items() if k not in ("timeout_min", "longer_than_h")}
    for key, name in (("timeout_min", "timeout_s"), ("longer_than_h", "longer_than_s")):
        if key in value:
            number = value[key]
            if (
                isinstance(number, bool)
                or not isinstance(number, int | float)
                or not (math.isfinite(number) and number > 0)
            ):
                raise ValidationError(f"approval.{key}={number!r}: must be a number above zero")
            fields[name] = float(number) * (60.0 if key == "timeout_min" else 3600.0)
    return ApprovalRule(**fields)


@attrs.frozen
class AgencyRules:
    """What an agency decides for every camera. Each rule left at its default adds nothing.

    - ``enrolment_caps``: how many cameras of each class (``city``, ``private``) may be enrolled
      at once (the Jackson pilot: 5 and 5); checked when an owner enrols;
    - ``live_incident_kinds``: the incident kinds that may use live view (None: any);
    - ``purposes``: the closed list of purposes a request may name (default: ``investigation``
      only); any other name is refused, whatever its spelling;
    - ``banned_purposes``: purposes a request may not name (``face-recognition``); a purpose
      cannot be both listed and banned;
    - ``sensitive_places`` and ``sensitive_cameras``: cameras that are never reachable;
    - ``required_waivers``: waiver versions a consent must name (None: any published one), so
      an agency can require owners to accept a new waiver again;
    - ``retention_days``: how long footage and derived files are kept (default 30); an owner's
      shorter ``ConsentTerms.retention_days`` wins (``camgate retention run`` deletes them);
    - ``version``, ``program_start``, ``program_end``: the program these rules run (a pilot of
      45 days): outside it every request is refused; a renewal is new rules with a new
      ``version``, announced to owners (:meth:`camgate.gate.Gate.program_notices`);
    - ``live_caps``: caps on live time per incident, per officer per day, per camera per week
      (:class:`LiveCaps`), counted from the audit log;
    - ``protected_activities``: incident kinds that may not be combined with some (or any)
      purposes (:class:`ProtectedActivity`);
    - ``approval``: the requests that wait for a second person's approval (:class:`ApprovalRule`).
    """

    name: str = "the agency"
    enrolment_caps: Mapping[str, int] = attrs.field(factory=dict, converter=_caps)
    live_incident_kinds: frozenset[str] | None = attrs.field(default=None, converter=_names)
    purposes: frozenset[str] = attrs.field(default=(DEFAULT_PURPOSE,), converter=_vocabulary)
    banned_purposes: frozenset[str] = attrs.field(default=(), converter=_banned)
    sensitive_places: tuple[SensitivePlace, ...] = attrs.field(default=(), converter=_places)
    sensitive_cameras: frozenset[str] = attrs.field(default=(), converter=_ids)
    required_waivers: frozenset[str] | None = attrs.field(default=None, converter=_optional_ids)
    retention_days: float = attrs.field(default=30.0, validator=_retention)
    version: str = ""
    program_start: datetime | None = attrs.field(default=None, converter=_program_start)
    program_end: datetime | None = attrs.field(default=None, converter=_program_end)
    live_caps: LiveCaps = attrs.field(default=None, converter=_live_caps)
    protected_activities: tuple[ProtectedActivity, ...] = attrs.field(
        default=(), converter=_protected
    )
    approval: ApprovalRule | None = attrs.field(default=None, converter=_approval)
    # The sensitive places indexed by latitude (computed from them, not a setting).
    _places_by_lat: tuple[list[float], list[tuple[int, SensitivePlace]], float] = attrs.field(
        init=False, eq=False, repr=False, hash=False
    )

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "_places_by_lat", _by_latitude(self.sensitive_places))
        if not isinstance(self.name, str) or not self.name.strip():
            raise ValidationError(f"name={self.name!r}: the agency's name must be a string")
        both = self.purposes & self.banned_purposes
        if both:
            raise ValidationError(
                f"purposes and banned_purposes both list {', '.join(sorted(both))}: "
                "a banned purpose must not be one a request may name"
            )
        if not isinstance(self.version, str) or len(self.version) > 128:
            raise ValidationError(f"version={self.version!r}: must be a short string")
        start, end = self.program_start, self.program_end
        if start is not None and end is not None and end <= start:
            raise ValidationError(
                f"program_end={end.isoformat()} is not after program_start={start.isoformat()}"
            )
        for activity in self.protected_activities:
            strays = sorted((activity.purposes or frozenset()) - self.purposes)
            if strays:
                raise ValidationError(
                    f"protected activity {activity.name!r} names purposes {', '.join(strays)} "
                    f"that are not in purposes ({', '.join(sorted(self.purposes))})"
                )

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> AgencyRules:
        """Rules from the ``[agency]`` table of a settings file; unknown keys are an error."""
        if not isinstance(data, Mapping):
            raise ValidationError(f"[agency] must be a table, not {data!r}")
        known = {f.name for f in attrs.fields(cls) if f.init}
        unknown = set(data) - known
        if unknown:
            raise ValidationError(
                f"unknown keys {sorted(unknown)} in [agency] (known: {', '.join(sorted(known))})"
            )
        return cls(**data)

    @classmethod
    def from_toml(cls, path: str | Path) -> AgencyRules:
        """Read rules from the ``[agency]`` table of a TOML file.

        An unreadable file or one that is not TOML is a :class:`ConfigError`; a key of the wrong
        type or value a :class:`ValidationError`; both name the file."""
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, UnicodeError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read agency rules from {path}: {exc}") from None
        try:
            return cls.from_mapping(data.get("agency", {}))
        except ValidationError as exc:
            raise ValidationError(f"agency rules in {path}: {exc}") from None

    def banned_in(self, purpose: str | Iterable[str]) -> list[str]:
        """The banned purposes a request names (``purpose`` as in :class:`AccessRequest`)."""
        return sorted(set(purpose_names(purpose)) & self.banned_purposes)

    def unknown_in(self, purpose: str | Iterable[str]) -> list[str]:
        """The purposes a request names that are neither in :attr:`purposes` nor banned."""
        named = purpose_names(purpose)
        return [p for p in named if p not in self.purposes and p not in self.banned_purposes]

    def protected_activity_of(self, kind: str, purpose: str | Iterable[str]) -> list[str]:
        """The protected activities a request under an incident of ``kind`` naming ``purpose``
        would touch, each as ``"<purpose> of <kind> incidents (<activity>)"``."""
        kind = normalise(kind)
        named = purpose_names(purpose)
        found = []
        for activity in self.protected_activities:
            if kind not in activity.incident_kinds:
                continue
            hit = [p for p in named if activity.purposes is None or p in activity.purposes]
            if hit:
                found.append(f"{', '.join(hit)} of {kind} incidents ({activity.name})")
        return found

    def program_state(self, now: datetime) -> str:
        """``"before"`` the program's start, ``"ended"`` at or after its end, else
        ``"running"`` (also when no program dates are set)."""
        if self.program_start is not None and now < self.program_start:
            return "before"
        if self.program_end is not None and now >= self.program_end:
            return "ended"
        return "running"

    def sensitive_place_of(self, camera: Camera) -> str | None:
        """The name of the sensitive place the camera is at, or None."""
        if camera.id in self.sensitive_cameras:
            return camera.label or camera.id
        if not self.sensitive_places:
            return None
        lats, places, span = self._places_by_lat
        lat = camera.position.lat
        # Only places whose latitude is near enough can hold the camera (see _by_latitude);
        # the geodesic test decides, in the order the places were given.
        near = sorted(
            places[i] for i in range(bisect_left(lats, lat - span), bisect_right(lats, lat + span))
        )
        for _order, place in near:
            if (
                abs(lat - place.position.lat) * _MIN_M_PER_DEGREE_LAT <= place.radius_m
                and distance_m(place.position, camera.position) <= place.radius_m
            ):
                return place.name
        return None

    def cap(self, camera_class: CameraClass) -> int | None:
        """The enrolment cap for a camera class, or None when uncapped."""
        return self.enrolment_caps.get(camera_class.value)
