"""The agency's and jurisdiction's rules: what a city decides for every camera, whatever its owner.

An agency configures them once, in a TOML file or in code, and hands them to the gate
(``Gate.open(path, rules=AgencyRules.from_toml("rules.toml"))``; the CLI reads ``--rules PATH``
or ``$CAMGATE_RULES``). The gate registers them as the built-in policy plugin ``camgate.agency``
(:class:`camgate.policy.AgencyPolicy`) and checks the enrolment caps in
:meth:`camgate.gate.Gate.enrol`. The file looks like this (every key optional)::

    [agency]
    name = "Jackson RTCC"
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

Names of incident kinds and purposes are compared after :func:`normalise` (lower case, spaces and
underscores as hyphens), so ``"Face Recognition"`` is ``face-recognition``.
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import attrs

from camgate.errors import ConfigError, ValidationError
from camgate.geofence import distance_m
from camgate.models import Camera, CameraClass, GeoPoint

__all__ = ["AgencyRules", "SensitivePlace", "normalise"]


def normalise(name: str) -> str:
    """The comparable form of an incident kind or purpose: ``"Face Recognition"`` →
    ``"face-recognition"``."""
    return re.sub(r"[\s_]+", "-", name.strip().lower())


def _names(value: Iterable[str] | None) -> frozenset[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        raise ValidationError(f"{value!r}: give a list of names, not one string")
    return frozenset(normalise(str(v)) for v in value)


def _banned(value: Iterable[str]) -> frozenset[str]:
    return _names(value) or frozenset()


def _ids(value: Iterable[str]) -> frozenset[str]:
    if isinstance(value, str):
        raise ValidationError(f"{value!r}: give a list of ids, not one string")
    return frozenset(value)


def _optional_ids(value: Iterable[str] | None) -> frozenset[str] | None:
    return None if value is None else _ids(value)


def _caps(value: Mapping[str, int] | None) -> Mapping[str, int]:
    caps: dict[str, int] = {}
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
    if not (math.isfinite(value) and value > 0):
        raise ValidationError(f"retention_days={value!r}: must be a finite number above zero")


@attrs.frozen
class SensitivePlace:
    """A place (a clinic, a shelter, a place of worship) whose cameras are never reachable."""

    name: str
    position: GeoPoint
    radius_m: float

    def __attrs_post_init__(self) -> None:
        if not self.name.strip():
            raise ValidationError("sensitive place: name must be non-empty")
        if not self.radius_m > 0:
            raise ValidationError(f"sensitive place {self.name!r}: radius_m must be > 0")


def _places(value: Iterable[SensitivePlace | Mapping[str, Any]]) -> tuple[SensitivePlace, ...]:
    places = []
    for item in value:
        if isinstance(item, SensitivePlace):
            places.append(item)
            continue
        try:
            places.append(
                SensitivePlace(
                    name=str(item["name"]),
                    position=GeoPoint(float(item["lat"]), float(item["lon"])),
                    radius_m=float(item["radius_m"]),
                )
            )
        except (KeyError, TypeError) as exc:
            raise ValidationError(
                f"sensitive place {item!r}: needs name, lat, lon and radius_m ({exc})"
            ) from None
    return tuple(places)


@attrs.frozen
class AgencyRules:
    """What an agency decides for every camera. Each rule left at its default adds nothing.

    - ``enrolment_caps``: how many cameras of each class (``city``, ``private``) may be enrolled
      at once (the Jackson pilot: 5 and 5); checked when an owner enrols;
    - ``live_incident_kinds``: the incident kinds that may use live view (None: any);
    - ``banned_purposes``: purposes a request may not name (``face-recognition``);
    - ``sensitive_places`` and ``sensitive_cameras``: cameras that are never reachable;
    - ``required_waivers``: waiver versions a consent must name (None: any published one), so
      an agency can require owners to accept a new waiver again;
    - ``retention_days``: how long footage and derived files are kept (default 30); an owner's
      shorter ``ConsentTerms.retention_days`` wins (``camgate retention run`` deletes them).
    """

    name: str = "the agency"
    enrolment_caps: Mapping[str, int] = attrs.field(factory=dict, converter=_caps)
    live_incident_kinds: frozenset[str] | None = attrs.field(default=None, converter=_names)
    banned_purposes: frozenset[str] = attrs.field(default=(), converter=_banned)
    sensitive_places: tuple[SensitivePlace, ...] = attrs.field(default=(), converter=_places)
    sensitive_cameras: frozenset[str] = attrs.field(default=(), converter=_ids)
    required_waivers: frozenset[str] | None = attrs.field(default=None, converter=_optional_ids)
    retention_days: float = attrs.field(default=30.0, validator=_retention)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> AgencyRules:
        """Rules from the ``[agency]`` table of a settings file; unknown keys are an error."""
        known = {f.name for f in attrs.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValidationError(
                f"agency rules: unknown keys {sorted(unknown)} (known: {', '.join(sorted(known))})"
            )
        return cls(**data)

    @classmethod
    def from_toml(cls, path: str | Path) -> AgencyRules:
        """Read rules from the ``[agency]`` table of a TOML file."""
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read agency rules from {path}: {exc}") from exc
        return cls.from_mapping(data.get("agency", {}))

    def banned_in(self, purpose: str) -> list[str]:
        """The banned purposes named in a request's ``purpose`` (comma-separated)."""
        named = {normalise(p) for p in re.split(r"[,;]", purpose) if p.strip()}
        return sorted(named & self.banned_purposes)

    def sensitive_place_of(self, camera: Camera) -> str | None:
        """The name of the sensitive place the camera is at, or None."""
        if camera.id in self.sensitive_cameras:
            return camera.label or camera.id
        for place in self.sensitive_places:
            if distance_m(place.position, camera.position) <= place.radius_m:
                return place.name
        return None

    def cap(self, camera_class: CameraClass) -> int | None:
        """The enrolment cap for a camera class, or None when uncapped."""
        return self.enrolment_caps.get(camera_class.value)
