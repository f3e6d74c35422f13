"""Parsers of untrusted input: credentials from headers and cookies, and query values.

Each returns a value or raises :class:`camgate.errors.ValidationError` (or returns None where
"absent or malformed" must be indistinguishable to the caller), never anything else; they are
fuzzed in server/tests/test_parsing.py.
"""

from __future__ import annotations

import math
import re
from datetime import datetime

from camgate.errors import ValidationError
from camgate.models import GeoPoint

__all__ = [
    "TOKEN_PREFIX",
    "USERNAME_PATTERN",
    "parse_api_token",
    "parse_bearer",
    "parse_event_id",
    "parse_near",
    "parse_secret",
    "parse_username",
    "parse_window",
]

#: API tokens read ``cgt_<id>_<secret>``: the id finds the row, the secret is checked against
#: its stored hash. The prefix lets secret scanners recognise a leaked token.
TOKEN_PREFIX = "cgt_"  # noqa: S105 - a public prefix, not a secret
_TOKEN = re.compile(r"cgt_([0-9a-f]{16})_([A-Za-z0-9_-]{43})")
_SECRET = re.compile(r"[A-Za-z0-9_-]{43}")
#: A username, as the OpenAPI document states it (JSON Schema's regular expression).
USERNAME_PATTERN = r"^[a-z0-9][a-z0-9._@-]{0,63}$"
_USERNAME = re.compile(r"[a-z0-9][a-z0-9._@-]{0,63}")
_MAX_HEADER = 512
_EVENT_ID = re.compile(r"[0-9]{1,18}")


def parse_bearer(header: str | None) -> str | None:
    """The credential of an ``Authorization: Bearer <credential>`` header, or None when the
    header is absent or another scheme (the scheme is case-insensitive, RFC 9110)."""
    if header is None or len(header) > _MAX_HEADER:
        return None
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    value = value.strip()
    return value or None


def parse_api_token(text: str) -> tuple[str, str] | None:
    """``(token_id, secret)`` of a well-formed API token, else None."""
    match = _TOKEN.fullmatch(text)
    return None if match is None else (match[1], match[2])


def parse_secret(text: str | None) -> str | None:
    """A session id, CSRF token or invite code (43 URL-safe characters), else None."""
    if text is None or not _SECRET.fullmatch(text):
        return None
    return text


def parse_username(text: str) -> str:
    """A username: 1-64 lowercase letters, digits and ``._@-``, starting with a letter or digit.

    Raises ValidationError (the message does not repeat the input, which may be a password
    typed in the wrong field)."""
    if not isinstance(text, str) or not _USERNAME.fullmatch(text):
        raise ValidationError(
            "a username is 1-64 lowercase letters, digits and ._@- starting with a letter or digit"
        )
    return text


def parse_near(near: str, radius: float | None) -> tuple[GeoPoint, float]:
    """``?near=lat,lon&radius=metres`` as a point and a radius (0 < radius ≤ 50 km); a missing
    radius is 500 m. Raises ValidationError naming what is wrong."""
    parts = near.split(",")
    if len(parts) != 2:
        raise ValidationError("near is 'lat,lon', two decimal numbers separated by a comma")
    try:
        lat, lon = (float(p) for p in parts)
    except ValueError:
        raise ValidationError("near is 'lat,lon', two decimal numbers") from None
    point = GeoPoint(lat, lon)  # validates ranges and finiteness
    radius_m = 500.0 if radius is None else radius
    if not math.isfinite(radius_m) or not 0 < radius_m <= 50_000:
        raise ValidationError("radius is metres, more than 0 and at most 50000")
    return point, radius_m


def parse_event_id(text: str | None) -> int | None:
    """An event id sent back to resume a stream (``Last-Event-ID`` or ``?after=``): a
    non-negative decimal integer of at most 18 digits, or None when absent or empty (start at
    the present). Raises ValidationError for anything else."""
    if text is None or not text.strip():
        return None
    text = text.strip()
    if not _EVENT_ID.fullmatch(text):
        raise ValidationError("an event id is a non-negative whole number (at most 18 digits)")
    return int(text)


def parse_window(start: datetime | None, end: datetime | None) -> tuple[datetime, datetime] | None:
    """A window of recorded footage given as ``from`` and ``to``: None when neither is given;
    ValidationError for one alone or a time without a time zone (the order is the gate's to
    check, with its other rules)."""
    if start is None and end is None:
        return None
    if start is None or end is None:
        raise ValidationError("from and to go together")
    if start.tzinfo is None or end.tzinfo is None:
        raise ValidationError("from and to need a time zone (e.g. Z or +00:00)")
    return start, end
