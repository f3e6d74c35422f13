"""The nouns of camgate: frozen attrs classes, validated when they are built.

Every model refuses bad values at construction with a :class:`camgate.errors.ValidationError`
that names the field and the value, so nothing half-valid ever reaches the gate. Change a model
with :func:`attrs.evolve`, which validates again. Times are timezone-aware UTC datetimes.
"""

from __future__ import annotations

import contextlib
import contextvars
import enum
import functools
import hashlib
import logging
import math
import re
import secrets
import unicodedata
import zoneinfo
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from typing import Any
from urllib.parse import unquote, urlsplit

import attrs

from camgate.errors import ValidationError

__all__ = [
    "AccessRequest",
    "Camera",
    "CameraClass",
    "Clip",
    "ConsentRecord",
    "ConsentMode",
    "ConsentTerms",
    "DEFAULT_PURPOSE",
    "Decision",
    "GeoPoint",
    "Grant",
    "ID_RULE",
    "Incident",
    "IncidentStatus",
    "MediaPacket",
    "Owner",
    "MAX_DURATION_S",
    "MAX_MASK_POINTS",
    "MAX_MASK_POLYGONS",
    "MAX_NOTE_CHARS",
    "MAX_RADIUS_M",
    "MAX_RETENTION_DAYS",
    "PendingRequest",
    "PrivacyMask",
    "Scope",
    "Snapshot",
    "StreamInfo",
    "Verdict",
    "Vote",
    "Waiver",
    "carries_credentials",
    "check_id",
    "new_id",
    "normalise",
    "purpose_names",
    "redact_address",
    "stored_ids",
]

_log = logging.getLogger(__name__)

#: What an id may look like (docs/consent.md, "Identifiers"): a letter or digit, then up to 127
#: letters, digits, ``.``, ``_``, ``:``, ``@`` or ``-`` (ASCII only), and never ``..``. So an id
#: can never be a path (no ``/``, no leading ``.`` or ``/``), an option (no leading ``-``) or
#: hold a control character, and it is safe in a file name, a URL path and a log line.
ID_RULE = r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}"
_ID = re.compile(ID_RULE)
#: The widest radius anything may reach (an incident, a zone, a sensitive place, an owner's
#: term), in metres: a city's reach, and far below where the geofence's arithmetic could strain.
MAX_RADIUS_M = 50_000.0
#: The longest time span a model accepts, in seconds (366 days): an incident's window, a live
#: session, a request's duration, a look-back. Larger values made datetime arithmetic overflow.
MAX_DURATION_S = 366 * 86400.0
#: The longest retention, in days (100 years).
MAX_RETENTION_DAYS = 36_525.0


#: Words that mark a parameter as a credential in vendors' URL forms, wherever the parameter
#: sits (``?user=admin&password=...``, ``;password=...``, ``/user=admin&password=...``,
#: ``#access_token=...``): a parameter whose name contains one of them is refused.
_SECRET_WORDS = ("pass", "pwd", "token", "secret", "auth", "cred", "login", "user")
#: A ``name=`` in any position of an address: after its start or one of ``/?&;#,``.
_PARAM = re.compile(r"(?:^|[/?&;#,])\s*([A-Za-z0-9_.\-]+)\s*=")
#: ``user:password@host`` with or without a scheme.
_USERINFO = re.compile(r"^(?:[A-Za-z][A-Za-z0-9+.\-]*:)?(?://)?[^/?#@]*:[^/?#@]*@")


def _credential_name(name: str) -> bool:
    name = name.lower()
    return any(w in name for w in _SECRET_WORDS) or name.endswith("key")


def carries_credentials(address: str) -> bool:
    """True when ``address`` (a URL or vendor address) seems to carry a credential.

    Looks at user info (``user:pass@``) and at every ``name=value`` parameter in the query,
    path, ``;`` parameters and fragment, also once percent-decoded, whose name contains a
    credential word (pass, pwd, token, secret, auth, cred, login, user) or ends in ``key``.
    """
    texts = {address, unquote(address), unquote(unquote(address))}
    for text in texts:
        parts = urlsplit(text)
        if parts.username is not None or parts.password is not None or _USERINFO.match(text):
            return True
        if any(_credential_name(m.group(1)) for m in _PARAM.finditer(text)):
            return True
    return False


#: ``scheme://`` at the start of an address.
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://")
#: What a host and port may be shown as: a name, an IPv4 or (bracketed) IPv6 address, a port.
_HOST_PORT = re.compile(r"[A-Za-z0-9.\-_~%:\[\]]*")


def redact_address(address: str) -> str:
    """How ``address`` (a camera's URL or vendor address) may be shown in a message, a log
    record or a repr: ``scheme://host:port/path``, and nothing that may be a secret.

    Not a list of suspicious names — whatever their names, it drops the user info
    (``user:password@``), the query, the fragment and everything from the first ``;``
    parameter on (its value may hold an unencoded ``/``), shows a host that is not a host name
    or address as ``***``, and from the first path segment
    holding ``=`` (also percent-encoded: vendors' ``/user=admin&password=…`` form) shows the
    rest of the path as ``***``. An ``@`` after the host — an unencoded ``/``, ``?`` or ``#``
    in a password, or an ``@`` in a query — leaves no way to tell the password from the host:
    then only ``scheme://***`` is shown. An address without ``scheme://`` is read as a path
    (a ``user@`` before its first ``/`` dropped likewise). Never raises.
    """
    scheme = _SCHEME.match(address)
    head = scheme.group(0) if scheme else ""
    rest = address[len(head) :]
    authority = re.split(r"[/?#;]", rest, maxsplit=1)[0]
    if "@" in rest[len(authority) :]:
        return head + "***"
    rest = rest[authority.rfind("@") + 1 :]  # user:password@ goes, to its last "@"
    # The query, the fragment and ";" parameters go, up to the end: a value may hold a "/".
    rest = re.split(r"[?#;]", rest, maxsplit=1)[0]
    if scheme:
        host, slash, rest = rest.partition("/")
        head += host if _HOST_PORT.fullmatch(host) else "***"
        rest = slash + rest
    segments: list[str] = []
    for segment in rest.split("/"):
        if "=" in unquote(unquote(segment)):  # a parameter; the rest may hold its value
            segments.append("***")
            break
        segments.append(segment)
    return head + "/".join(segments)


def _shown_source(source: str) -> str:
    return repr(redact_address(source))


def new_id(prefix: str) -> str:
    """Return a fresh random identifier such as ``inc_3f9a0c12d4e5b6a7``."""
    return f"{prefix}_{secrets.token_hex(8)}"


class Scope(enum.StrEnum):
    """What a grant lets a consumer have; each is a separate permission the owner sets."""

    LIVE = "live"  #: the stream as it happens (and clips recorded from it while the grant lasts)
    RECORDED = "recorded"  #: footage the camera stored before the request, inside a time window
    SNAPSHOT = "snapshot"  #: one still image


class CameraClass(enum.StrEnum):
    """Who owns a camera; jurisdictions cap enrolment per class."""

    PRIVATE = "private"
    CITY = "city"


class IncidentStatus(enum.StrEnum):
    """An incident reaches cameras only while it is open."""

    OPEN = "open"
    CLOSED = "closed"


class Verdict(enum.StrEnum):
    """A policy's vote. Any DENY refuses; ALLOW needs at least one voice; ABSTAIN says nothing."""

    ALLOW = "allow"
    DENY = "deny"
    ABSTAIN = "abstain"


# --------------------------------------------------------------------------- validators


def _fail(field: str, value: object, why: str) -> ValidationError:
    return ValidationError(f"{field}={value!r}: {why}")


def _non_empty(_inst: object, attribute: attrs.Attribute[Any], value: str) -> None:
    if not isinstance(value, str) or not value.strip():
        raise _fail(attribute.name, value, "must be a non-empty string")


#: True while :func:`camgate.codec.load` reads stored data (see :func:`stored_ids`).
_stored: contextvars.ContextVar[bool] = contextvars.ContextVar("stored", default=False)
_warned: set[str] = set()


@contextlib.contextmanager
def stored_ids() -> Iterator[None]:
    """Inside this block, data stored before today's checks loads, with a logged warning.

    :func:`camgate.codec.load` uses it, so a store written before a check existed stays
    readable while everything built anew is checked: ids that break :data:`ID_RULE` (a camera
    ``"cam 7"``) and camera sources the credential check now refuses load as they are; an
    owner's ``max_*`` term or ``retention_days`` above its limit loads as the limit (stricter,
    never looser). Any other problem (an empty id, a non-string, an incident's window above
    :data:`MAX_DURATION_S`) is still an error.
    """
    token = _stored.set(True)
    try:
        yield
    finally:
        _stored.reset(token)


def _bad_id(value: object) -> str | None:
    """Why ``value`` is not a valid id, or None when it is."""
    if not isinstance(value, str):
        return "must be a string"
    if not _ID.fullmatch(value):
        return (
            f"an id is 1 to 128 characters of {ID_RULE} (letters, digits, '.', '_', ':', '@', "
            "'-'), starting with a letter or digit"
        )
    if ".." in value:
        return "an id must not contain '..'"
    return None


def check_id(value: object, field: str = "id") -> str:
    """Return ``value`` when it is a valid id (:data:`ID_RULE`, no ``..``), else raise
    :class:`ValidationError` naming ``field`` (the value is shown escaped and shortened)."""
    why = _bad_id(value)
    if why is None:
        return value  # type: ignore[return-value]
    if _stored.get() and isinstance(value, str) and value.strip():
        if value not in _warned and len(_warned) < 10_000:
            _warned.add(value)
            _log.warning(
                "%s=%r was stored before camgate checked ids (%s); it loads, but rename it: "
                "new ids like it are refused",
                field,
                value[:80],
                why,
            )
        return value
    shown = repr(value[:60] + ("…" if len(value) > 60 else "")) if isinstance(value, str) else ""
    raise ValidationError(f"{field}={shown or type(value).__name__}: {why}")


def _id(_inst: object, attribute: attrs.Attribute[Any], value: str) -> None:
    check_id(value, attribute.name)


def _aware(_inst: object, attribute: attrs.Attribute[Any], value: datetime | None) -> None:
    if value is None:
        return
    if not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset() is None:
        raise _fail(attribute.name, value, "must be a timezone-aware datetime")


def _finite_between(low: float, high: float, *, low_open: bool = False) -> Any:
    def check(_inst: object, attribute: attrs.Attribute[Any], value: float | None) -> None:
        if value is None:
            return
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _fail(attribute.name, value, "must be a number")
        if not math.isfinite(value):
            raise _fail(attribute.name, value, "must be a finite number")
        if value < low or value > high or (low_open and value == low):
            left = "(" if low_open else "["
            raise _fail(attribute.name, value, f"must be in {left}{low}, {high}]")

    return check


def _positive(_inst: object, attribute: attrs.Attribute[Any], value: float | None) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _fail(attribute.name, value, "must be a finite number")
    if value <= 0:
        raise _fail(attribute.name, value, "must be greater than zero")


def _up_to(high: float, unit: str) -> Any:
    """A finite number above zero and at most ``high`` (``unit`` names it in the error)."""

    def check(inst: object, attribute: attrs.Attribute[Any], value: float | None) -> None:
        _positive(inst, attribute, value)
        if value is not None and value > high:
            raise _fail(attribute.name, value, f"must be at most {high:g} {unit}")

    return check


def _limit_when_stored(value: float | None, high: float) -> float | None:
    """A stored value above ``high`` (see :func:`stored_ids`) is read as ``high``."""
    if (
        _stored.get()
        and isinstance(value, int | float)
        and not isinstance(value, bool)
        and value > high
    ):
        _log.warning("a stored term of %r is above its limit %g: read as %g", value, high, high)
        return high
    return value


def _stored_duration(value: float | None) -> float | None:
    return _limit_when_stored(value, MAX_DURATION_S)


def _stored_radius(value: float | None) -> float | None:
    return _limit_when_stored(value, MAX_RADIUS_M)


def _stored_retention(value: float | None) -> float | None:
    return _limit_when_stored(value, MAX_RETENTION_DAYS)


_radius = _up_to(MAX_RADIUS_M, "metres (MAX_RADIUS_M)")
_duration = _up_to(MAX_DURATION_S, "seconds (MAX_DURATION_S, 366 days)")
_retention_days = _up_to(MAX_RETENTION_DAYS, "days (MAX_RETENTION_DAYS)")


_SEPARATORS = re.compile(r"[\s_\-]+")
#: Dash-like characters that are not in Unicode's dash punctuation category (Pd).
_MORE_DASHES = {"\u2212", "\u2043", "\u02d7", "\u2796", "\ufe63", "\uff0d"}


def normalise(name: str) -> str:
    """The comparable form of a purpose or incident kind: ``"Face Recognition"`` →
    ``"face-recognition"``.

    NFKC (fullwidth and compatibility forms), case folded, invisible format characters (zero
    width space, soft hyphen) removed, every dash or hyphen variant and every run of white
    space, ``_`` or ``-`` made one ``-``, none at either end. Two spellings a reader takes for
    the same word compare equal; a different word (``facial``) does not.
    """
    return _normalise(str(name))


@functools.lru_cache(maxsize=4096)
def _normalise(name: str) -> str:
    # Pure, and asked for the same few kinds and purposes on every decision: remembered.
    text = unicodedata.normalize("NFKC", name).casefold()
    text = "".join(
        "-" if c in _MORE_DASHES or unicodedata.category(c) == "Pd" else c
        for c in text
        if unicodedata.category(c) != "Cf"
    )
    return _SEPARATORS.sub("-", text).strip("-")


#: The purpose a request names when it names none, and an agency's only purpose when its rules
#: list none.
DEFAULT_PURPOSE = "investigation"
#: The longest free-text note a request may carry, in characters.
MAX_NOTE_CHARS = 1000


def purpose_names(value: str | Iterable[str]) -> tuple[str, ...]:
    """The purposes ``value`` names (separated by ``,`` or ``;``, or a list), each in
    :func:`normalise` form, without repeats; :class:`ValidationError` when it names none."""
    if not isinstance(value, str | Iterable) or isinstance(value, bytes | dict):
        raise ValidationError(f"purpose={value!r}: give purpose names, comma-separated or a list")
    items = [value] if isinstance(value, str) else [str(v) for v in value]
    parts = (normalise(p) for item in items for p in re.split(r"[,;]", item))
    names = tuple(dict.fromkeys(n for n in parts if n))
    if not names:
        raise ValidationError(
            f"purpose={value!r}: name at least one purpose from the agency's list (e.g. "
            f"{DEFAULT_PURPOSE!r}); free text goes in the note"
        )
    return names


def _purposes(value: str | Iterable[str]) -> str:
    return ", ".join(purpose_names(value))


def _note(_inst: object, attribute: attrs.Attribute[Any], value: str) -> None:
    if not isinstance(value, str):
        raise _fail(attribute.name, value, "must be a string")
    if len(value) > MAX_NOTE_CHARS:
        raise _fail(attribute.name, len(value), f"at most {MAX_NOTE_CHARS} characters")
    if any(unicodedata.category(c) == "Cc" and c not in "\n\t" for c in value):
        raise ValidationError(f"{attribute.name}: must not hold control characters")


def _to_utc(value: datetime) -> datetime:
    return value.astimezone(UTC) if isinstance(value, datetime) and value.tzinfo else value


# --------------------------------------------------------------------------- places and people


@attrs.frozen
class GeoPoint:
    """A WGS84 position in decimal degrees (latitude first)."""

    lat: float = attrs.field(validator=_finite_between(-90.0, 90.0))
    lon: float = attrs.field(validator=_finite_between(-180.0, 180.0))


@attrs.frozen
class Owner:
    """A resident or business (or the city) who owns cameras and decides who may see them."""

    id: str = attrs.field(validator=_id)
    name: str = attrs.field(validator=_non_empty)
    contact: str | None = None
    time_zone: str = attrs.field(default="UTC")

    @time_zone.validator
    def _zone(self, attribute: attrs.Attribute[str], value: str) -> None:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError, TypeError):
            raise _fail(
                attribute.name, value, "must be an IANA time zone such as America/Chicago"
            ) from None


@attrs.frozen
class Camera:
    """One camera, as the gate knows it.

    ``source`` is the vendor address (an RTSP URL, a device id) *without* credentials: those stay
    on the owner's side of the trust boundary, in the edge's settings. A source whose
    parameters are named like credentials (``password=``, ``token=``, ``user:pw@``…) is refused;
    one the check cannot recognise (``?p=…``) is accepted, and so the repr shows the source
    only as :func:`redact_address` does (no query, parameters or user info). ``heading_deg``,
    ``fov_deg`` and ``range_m`` describe the field of view when known.
    """

    id: str = attrs.field(validator=_id)
    adapter: str = attrs.field(validator=_non_empty)
    source: str = attrs.field(validator=_non_empty, repr=_shown_source)
    owner_id: str = attrs.field(validator=_id)
    position: GeoPoint
    camera_class: CameraClass = attrs.field(default=CameraClass.PRIVATE, converter=CameraClass)
    heading_deg: float | None = attrs.field(default=None, validator=_finite_between(0.0, 360.0))
    fov_deg: float | None = attrs.field(
        default=None, validator=_finite_between(0.0, 360.0, low_open=True)
    )
    range_m: float | None = attrs.field(default=None, validator=_radius)
    battery: bool = False
    label: str = ""

    @source.validator
    def _no_credentials(self, attribute: attrs.Attribute[str], value: str) -> None:
        if not carries_credentials(value):
            return
        if _stored.get():
            # Stored before the check was this wide: readable, but say so (without the value).
            _log.warning("camera %r: its stored source seems to carry a credential", self.id)
            return
        # Do not echo the value: it holds a credential.
        raise ValidationError(
            "source: must not carry credentials (user:password@, or a password=, user=, "
            "token=, auth=, ...key= parameter anywhere in the address); give them to the "
            "edge's adapter settings"
        )

    def __attrs_post_init__(self) -> None:
        if self.fov_deg is not None and self.heading_deg is None:
            raise _fail("fov_deg", self.fov_deg, "a field of view needs heading_deg too")


@attrs.frozen
class Waiver:
    """A versioned waiver text. Its SHA-256 over the exact UTF-8 text goes into consent records."""

    version: str = attrs.field(validator=_non_empty)
    text: str = attrs.field(validator=_non_empty, repr=False)

    @property
    def sha256(self) -> str:
        """Hex SHA-256 of the exact waiver text."""
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()


def _str_tuple(value: Iterable[str]) -> tuple[str, ...]:
    return tuple(value)


def _scopes(value: Iterable[Scope | str]) -> frozenset[Scope]:
    try:
        return frozenset(Scope(v) for v in value)
    except ValueError as exc:
        raise ValidationError(f"scopes: {exc}; known scopes: live, recorded, snapshot") from None


class ConsentMode(enum.StrEnum):
    """How the owner decides: asked for each request, or covered in advance by the waiver."""

    ASK = "ask"  #: each request waits for the owner's yes; no answer by the deadline is a no
    PRE_AUTHORISED = "pre-authorised"  #: requests that meet the terms need no answer


def _mode(value: ConsentMode | str) -> ConsentMode:
    try:
        return ConsentMode(value)
    except ValueError:
        raise ValidationError(f"mode={value!r}: must be 'ask' or 'pre-authorised'") from None


def _kinds(value: Iterable[str] | None) -> frozenset[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        raise ValidationError(f"incident_kinds={value!r}: must be a list of kinds, not one string")
    kinds = frozenset(str(v).strip().lower() for v in value)
    if "" in kinds:
        raise ValidationError("incident_kinds: an incident kind must be a non-empty string")
    return kinds


_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


def _quiet(value: Iterable[str] | None) -> tuple[str, str] | None:
    if value is None:
        return None
    pair = tuple(value)
    if len(pair) != 2 or not all(isinstance(v, str) and _HHMM.match(v) for v in pair):
        raise ValidationError(
            f"quiet_hours={pair!r}: must be two local times 'HH:MM', start then end "
            "(e.g. ['22:00', '07:00'])"
        )
    if pair[0] == pair[1]:
        raise ValidationError(f"quiet_hours={pair!r}: start and end must differ")
    return (pair[0], pair[1])


@attrs.frozen
class ConsentTerms:
    """The owner's terms; each one is enforced by a built-in policy (see docs/consent.md).

    Every field but ``scopes`` has a default that adds no restriction, so records written before
    a field existed load unchanged.

    - ``scopes``: live, recorded, snapshot — each allowed or not (the gate's ``core.scope``);
    - ``max_session_s``: the longest live session (``terms.max-session``);
    - ``mode``: ``ask`` or ``pre-authorised`` (``terms.mode``); ``ask_timeout_s`` is how long an
      asked owner has to answer before the request counts as refused;
    - ``incident_kinds``: the kinds of incident the owner accepts, None for any
      (``terms.incident-kind``);
    - ``max_radius_m``: how far from the incident the camera may be (``terms.radius``);
    - ``quiet_hours``: ``(start, end)`` local times in the owner's time zone during which nothing
      is granted; may wrap midnight (``terms.quiet-hours``);
    - ``max_lookback_s``: how far back recorded footage may reach (``terms.lookback``);
    - ``ends_at``: when the consent ends by itself (``terms.end-date``);
    - ``retention_days``: how long footage and files derived from it may be kept, None for the
      agency's policy alone; the shorter of the two wins (:mod:`camgate.retention`).
    - ``audio``: the owner shares sound too; without it every grant is video only and the edge
      drops audio packets (docs/media.md).
    """

    scopes: frozenset[Scope] = attrs.field(converter=_scopes)
    max_session_s: float | None = attrs.field(
        default=None, converter=_stored_duration, validator=_duration
    )
    mode: ConsentMode = attrs.field(default=ConsentMode.PRE_AUTHORISED, converter=_mode)
    ask_timeout_s: float = attrs.field(default=300.0, validator=_finite_between(1.0, 7 * 86400.0))
    incident_kinds: frozenset[str] | None = attrs.field(default=None, converter=_kinds)
    max_radius_m: float | None = attrs.field(
        default=None, converter=_stored_radius, validator=_radius
    )
    quiet_hours: tuple[str, str] | None = attrs.field(default=None, converter=_quiet)
    max_lookback_s: float | None = attrs.field(
        default=None, converter=_stored_duration, validator=_duration
    )
    ends_at: datetime | None = attrs.field(default=None, validator=_aware)
    retention_days: float | None = attrs.field(
        default=None, converter=_stored_retention, validator=_retention_days
    )
    audio: bool = False


@attrs.frozen
class ConsentRecord:
    """An owner's acceptance of a waiver for some cameras, under terms; revocable at any time."""

    id: str = attrs.field(validator=_id)
    owner_id: str = attrs.field(validator=_id)
    camera_ids: tuple[str, ...] = attrs.field(converter=_str_tuple)
    waiver_version: str = attrs.field(validator=_non_empty)
    waiver_sha256: str = attrs.field()
    accepted_at: datetime = attrs.field(validator=_aware, converter=_to_utc)
    terms: ConsentTerms
    revoked_at: datetime | None = attrs.field(default=None, validator=_aware)

    @camera_ids.validator
    def _cams(self, attribute: attrs.Attribute[tuple[str, ...]], value: tuple[str, ...]) -> None:
        if not value:
            raise _fail(attribute.name, value, "must name at least one camera")
        for camera_id in value:
            check_id(camera_id, attribute.name)

    @waiver_sha256.validator
    def _hash(self, attribute: attrs.Attribute[str], value: str) -> None:
        if (
            not isinstance(value, str)
            or len(value) != 64
            or any(c not in "0123456789abcdef" for c in value)
        ):
            raise _fail(attribute.name, value, "must be 64 lowercase hex digits")

    @property
    def active(self) -> bool:
        """True until the owner revokes."""
        return self.revoked_at is None


@attrs.frozen
class Incident:
    """A reported crime: where, when, what kind, and how far around it cameras may be reached."""

    id: str = attrs.field(validator=_id)
    kind: str = attrs.field(validator=_non_empty)
    position: GeoPoint
    reported_at: datetime = attrs.field(validator=_aware, converter=_to_utc)
    radius_m: float = attrs.field(validator=_radius)
    status: IncidentStatus = attrs.field(default=IncidentStatus.OPEN, converter=IncidentStatus)
    window_s: float = attrs.field(default=12 * 3600.0, validator=_duration)

    @property
    def window_end(self) -> datetime:
        """The end of the time window in which the incident may reach cameras."""
        return self.reported_at + timedelta(seconds=self.window_s)

    def active_at(self, when: datetime) -> bool:
        """True when the incident is open and ``when`` is inside its window ``[reported_at,
        window_end)`` — half-open, so a grant issued inside it always has time left in it."""
        return self.status is IncidentStatus.OPEN and self.reported_at <= when < self.window_end


@attrs.frozen
class AccessRequest:
    """An officer's request for one scope of one camera under one incident.

    ``duration_s`` bounds a live session; ``window_start``/``window_end`` bound recorded footage.
    ``purpose`` names what the footage is for: one or more names from the agency's closed list
    (``AgencyRules.purposes``), comma-separated or a list, kept in :func:`normalise` form; the
    agency's policy refuses any other name and any banned one. ``note`` is free text for people
    (what the officer looks for), never matched against rules.
    """

    id: str = attrs.field(validator=_id)
    incident_id: str = attrs.field(validator=_id)
    camera_id: str = attrs.field(validator=_id)
    scope: Scope = attrs.field(converter=Scope)
    #: Who asks: an officer's id (it follows the id rule, so it is safe in any log or file).
    requested_by: str = attrs.field(validator=_id)
    requested_at: datetime = attrs.field(validator=_aware, converter=_to_utc)
    purpose: str = attrs.field(default=DEFAULT_PURPOSE, converter=_purposes)
    duration_s: float = attrs.field(default=60.0, validator=_duration)
    window_start: datetime | None = attrs.field(default=None, validator=_aware)
    window_end: datetime | None = attrs.field(default=None, validator=_aware)
    #: Sound too, if the owner shares it (the grant says whether it was given).
    audio: bool = False
    note: str = attrs.field(default="", validator=_note)

    @property
    def purposes(self) -> tuple[str, ...]:
        """The purposes named, each in :func:`normalise` form."""
        return tuple(self.purpose.split(", "))

    def __attrs_post_init__(self) -> None:
        has_window = self.window_start is not None and self.window_end is not None
        if self.scope is Scope.RECORDED and not has_window:
            raise _fail("window", None, "a recorded request needs window_start and window_end")
        if (self.window_start is None) != (self.window_end is None):
            raise _fail("window", None, "give both window_start and window_end, or neither")
        if has_window and self.window_start >= self.window_end:  # type: ignore[operator]
            raise _fail("window_end", self.window_end, "must be after window_start")


@attrs.frozen
class Vote:
    """One policy's verdict on a request, with the reason in words an owner or officer reads."""

    policy: str = attrs.field(validator=_non_empty)
    verdict: Verdict = attrs.field(converter=Verdict)
    reason: str = attrs.field(validator=_non_empty)

    @classmethod
    def known(cls, policy: str, verdict: Verdict, reason: str) -> Vote:
        """The same vote as ``Vote(policy, verdict, reason)``, built without the checks: for
        camgate's own votes, whose policy name and reason are non-empty strings and verdict a
        :class:`Verdict` by construction (a decision casts a dozen, a survey thousands)."""
        vote = object.__new__(cls)
        _set = object.__setattr__
        _set(vote, "policy", policy)
        _set(vote, "verdict", verdict)
        _set(vote, "reason", reason)
        return vote


def _vote_tuple(value: Iterable[Vote]) -> tuple[Vote, ...]:
    return tuple(value)


@attrs.frozen
class Decision:
    """The gate's answer to a request: allowed only when nobody denied and somebody allowed."""

    request_id: str
    camera_id: str
    votes: tuple[Vote, ...] = attrs.field(converter=_vote_tuple)
    decided_at: datetime = attrs.field(validator=_aware, converter=_to_utc)
    #: The consent record the policies judged (None when there was none): the grant is bound
    #: to it and issued only while it is still the camera's active consent.
    consent_id: str | None = None

    @property
    def denials(self) -> tuple[Vote, ...]:
        """Votes that refused, in the order the policies answered."""
        return tuple(v for v in self.votes if v.verdict is Verdict.DENY)

    @property
    def allowed(self) -> bool:
        """Any deny wins; with no deny, at least one allow is needed."""
        return not self.denials and any(v.verdict is Verdict.ALLOW for v in self.votes)

    @property
    def reasons(self) -> list[str]:
        """The denying reasons, ``"policy: reason"`` each (empty when allowed)."""
        return [f"{v.policy}: {v.reason}" for v in self.denials]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Decision:
        """Rebuild a decision from :meth:`to_json` output."""
        return cls(
            request_id=data["request"],
            camera_id=data["camera"],
            votes=[Vote(v["policy"], v["verdict"], v["reason"]) for v in data["votes"]],
            decided_at=datetime.fromisoformat(data["decided_at"]),
            consent_id=data.get("consent"),
        )

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict with every vote (for the audit log and reports)."""
        return {
            "request": self.request_id,
            "camera": self.camera_id,
            "allowed": self.allowed,
            "decided_at": self.decided_at.isoformat(),
            "consent": self.consent_id,
            "votes": [
                {"policy": v.policy, "verdict": str(v.verdict), "reason": v.reason}
                for v in self.votes
            ],
        }


@attrs.frozen
class PendingRequest:
    """An ask-first request held for its owner's answer until ``deadline`` (then it is a no).

    ``outcome`` is None while open, then ``yes``, ``no``, ``expired`` (no answer by the deadline)
    or ``revoked`` (the owner revoked consent meanwhile).
    """

    request_id: str = attrs.field(validator=_id)
    camera_id: str = attrs.field(validator=_id)
    owner_id: str = attrs.field(validator=_id)
    asked_at: datetime = attrs.field(validator=_aware, converter=_to_utc)
    deadline: datetime = attrs.field(validator=_aware, converter=_to_utc)
    outcome: str | None = None
    answered_at: datetime | None = attrs.field(default=None, validator=_aware)

    @property
    def open(self) -> bool:
        """True while the owner may still answer."""
        return self.outcome is None


@attrs.frozen
class Grant:
    """Permission for one scope of one camera under one incident, until ``expires_at``.

    A grant is only honoured as a :class:`camgate.grants.SignedGrant`, which the edge verifies
    offline with the hub's public key. It is redeemed once.
    """

    id: str = attrs.field(validator=_id)
    request_id: str = attrs.field(validator=_id)
    camera_id: str = attrs.field(validator=_id)
    incident_id: str = attrs.field(validator=_id)
    scope: Scope = attrs.field(converter=Scope)
    issued_at: datetime = attrs.field(validator=_aware, converter=_to_utc)
    expires_at: datetime = attrs.field(validator=_aware, converter=_to_utc)
    window_start: datetime | None = attrs.field(default=None, validator=_aware)
    window_end: datetime | None = attrs.field(default=None, validator=_aware)
    audio: bool = False
    #: The consent record the grant was issued under; the edge honours the grant only while
    #: that exact record is the camera's standing consent (not revoked, not superseded).
    consent_id: str | None = None
    #: Who approved the request when the agency's rules made it wait for a second person
    #: (``"captain cpt-ross"``), and their stated reason; None otherwise.
    approved_by: str | None = None
    approval_reason: str | None = None

    def __attrs_post_init__(self) -> None:
        if self.expires_at <= self.issued_at:
            raise _fail("expires_at", self.expires_at, "must be after issued_at")
        if self.scope is Scope.RECORDED and (self.window_start is None or self.window_end is None):
            raise _fail("window", None, "a recorded grant needs its window")


# --------------------------------------------------------------------------- media


@attrs.frozen
class StreamInfo:
    """What a consumer needs to decode or remux a stream without re-encoding it."""

    codec: str = attrs.field(validator=_non_empty)
    time_base: Fraction
    width: int = 0
    height: int = 0
    extradata: bytes | None = attrs.field(default=None, repr=False)
    kind: str = "video"
    sample_rate: int = 0
    channels: int = 0


@attrs.frozen
class MediaPacket:
    """One compressed packet as it left the camera (no re-encoding).

    ``arrival`` is ``time.monotonic()`` when the adapter read it: the guard refuses any packet
    that it would hand over after a revocation or expiry. ``discontinuity`` marks a gap: packets
    before this one were lost (the camera reconnected, or the consumer was too slow and was
    dropped to this keyframe); such a packet is a keyframe and timestamps may restart at it.
    """

    data: bytes = attrs.field(repr=False)
    pts: int | None
    dts: int | None
    is_keyframe: bool
    stream: StreamInfo
    arrival: float
    duration: int | None = None
    #: When the camera captured this picture (UTC), when the adapter can tell: the replay's
    #: clock range for recordings, the arrival of the first packet plus media time for live.
    #: Clip windows are cut on it (see docs/media.md, Clip windows).
    wallclock: datetime | None = attrs.field(default=None, validator=_aware)
    discontinuity: bool = False

    @property
    def size(self) -> int:
        """Payload length in bytes."""
        return len(self.data)

    @property
    def seconds(self) -> float | None:
        """Presentation time in seconds, when the packet has one."""
        return None if self.pts is None else float(self.pts * self.stream.time_base)


@attrs.frozen
class Snapshot:
    """One JPEG still served under a grant. ``notes``: how the adapter reached the camera,
    when it says (e.g. ``{"transport": "udp", "fallback": why}``); the edge's ``access.end``
    record carries them as ``upstream``, as for a stream's ``notes``."""

    grant_id: str
    camera_id: str
    jpeg: bytes = attrs.field(repr=False)
    width: int
    height: int
    taken_at: datetime = attrs.field(validator=_aware)
    notes: dict[str, str] = attrs.field(factory=dict)


@attrs.frozen
class Clip:
    """A video file written under a grant, with its hash for the audit log.

    ``partial`` is True when the clip is shorter than asked because the camera stopped
    sending (or the stream ended) first: what was recorded is kept, and ``reason`` says why
    it ends where it does ("the camera stopped sending after 4.0 s: ...").
    """

    grant_id: str
    camera_id: str
    path: str
    duration_s: float
    size: int
    sha256: str
    started_at: datetime = attrs.field(validator=_aware)
    partial: bool = False
    reason: str | None = None


#: At most this many polygons per camera, and this many corners per polygon.
MAX_MASK_POLYGONS = 32
MAX_MASK_POINTS = 64


def _polygons(value: Any) -> tuple[tuple[tuple[float, float], ...], ...]:
    if isinstance(value, str | bytes) or not isinstance(value, list | tuple):
        raise _fail("polygons", value, "must be a list of polygons")
    if len(value) > MAX_MASK_POLYGONS:
        raise _fail("polygons", len(value), f"at most {MAX_MASK_POLYGONS} polygons")
    out = []
    for n, polygon in enumerate(value):
        where = f"polygons[{n}]"
        if isinstance(polygon, str | bytes) or not isinstance(polygon, list | tuple):
            raise _fail(where, polygon, "must be a list of (x, y) points")
        if not 3 <= len(polygon) <= MAX_MASK_POINTS:
            raise _fail(where, len(polygon), f"needs 3 to {MAX_MASK_POINTS} points")
        points = []
        for point in polygon:
            if isinstance(point, str | bytes) or not isinstance(point, list | tuple):
                raise _fail(where, point, "each point must be an (x, y) pair")
            if len(point) != 2:
                raise _fail(where, point, "each point must be an (x, y) pair")
            for c in point:
                if isinstance(c, bool) or not isinstance(c, int | float) or not math.isfinite(c):
                    raise _fail(where, point, "coordinates must be finite numbers")
                if not 0.0 <= c <= 1.0:
                    raise _fail(where, point, "coordinates are normalised: 0 <= x, y <= 1")
            points.append((float(point[0]), float(point[1])))
        area = sum(
            x0 * y1 - x1 * y0
            for (x0, y0), (x1, y1) in zip(points, points[1:] + points[:1], strict=True)
        )
        if abs(area) < 1e-9:
            raise _fail(where, polygon, "encloses no area")
        out.append(tuple(points))
    return tuple(out)


@attrs.frozen
class PrivacyMask:
    """The owner's privacy masks for one camera, burnt into every frame that leaves the gate.

    ``polygons`` are in normalised image coordinates: (0, 0) is the top-left corner, (1, 1) the
    bottom-right, so a mask holds at any resolution. Each has 3 to 64 corners and encloses some
    area; at most 32 per camera. An empty tuple means no masks.
    """

    camera_id: str = attrs.field(validator=_id)
    polygons: tuple[tuple[tuple[float, float], ...], ...] = attrs.field(converter=_polygons)
    set_at: datetime = attrs.field(validator=_aware, converter=_to_utc)
    set_by: str = attrs.field(validator=_id)
