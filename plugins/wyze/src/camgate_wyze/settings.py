"""The Wyze adapter's settings (docs/wyze.md, "Settings").

Every host is a setting (Wyze's by default, a simulator's in tests). The account's tokens are
not settings: ``camgate wyze link`` writes them to ``token_file``, and the adapter refreshes
them there. The owner's enrolment data per camera (owner, position, RTSP URL of Wyze's RTSP
firmware) is the ``cameras`` setting, keyed by the camera's MAC; the RTSP username and
password are the camera's credentials (``credentials``, added by the edge). A camera without an
``rtsp_url`` is reached live over Wyze's cloud WebRTC (``webrtc_url``, ``signaling_hosts``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import date
from typing import Any
from urllib.parse import urlsplit

import attrs
from camgate import settings as kit
from camgate.adapters import SECRET, Credentials, Secret
from camgate.errors import ValidationError
from camgate.settings import build_settings, is_loopback, parse_credentials, positive

__all__ = ["NAME", "WyzeSettings", "check_base_url", "is_loopback"]

#: The adapter's registered name (the entry point's name, and ``Camera.adapter``).
NAME = "wyze"
#: The hosts Wyze serves event files from (signed S3 URLs); a setting.
DEFAULT_MEDIA_HOSTS = (
    "wyze-device-alarm-file.s3.amazonaws.com",
    "wyze-device-alarm-file-face.s3.amazonaws.com",
)


def check_base_url(url: str, what: str) -> str:
    """A Wyze host setting: :func:`camgate.kit.check_base_url` for vendor ``wyze``."""
    return kit.check_base_url(url, what, NAME)


def _url(what: str) -> Any:
    return kit.base_url(NAME, what)


def _secret(value: str | Secret) -> Secret:
    if isinstance(value, Secret):
        return value
    if not isinstance(value, str):
        raise ValidationError("wyze setting api_key: must be a string")
    return Secret(value)


def _expiry(value: Any) -> date | None:
    if value is None or isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise ValidationError("wyze setting api_key_expires: must be a date (YYYY-MM-DD)") from None


def _hosts(value: Any, what: str = "media_hosts") -> tuple[str, ...]:
    if isinstance(value, str) or not all(isinstance(h, str) and h for h in value):
        raise ValidationError(f"wyze setting {what}: must be a list of host names")
    return tuple(h.lower() for h in value)


def _signaling_hosts(value: Any) -> tuple[str, ...]:
    return _hosts(value, "signaling_hosts")


def _cameras(value: Any) -> dict[str, dict[str, Any]]:
    if not isinstance(value, Mapping):
        raise ValidationError("wyze setting cameras: must map a camera's MAC to its enrolment")
    out: dict[str, dict[str, Any]] = {}
    for mac, entry in value.items():
        if not isinstance(mac, str) or not isinstance(entry, Mapping):
            raise ValidationError("wyze setting cameras: each entry is MAC -> object")
        unknown = set(entry) - {"owner_id", "position", "rtsp_url", "label"}
        if unknown:
            raise ValidationError(f"wyze setting cameras[{mac!r}]: unknown keys {sorted(unknown)}")
        position = entry.get("position")
        if position is not None and (
            not isinstance(position, list | tuple)
            or len(position) != 2
            or not all(
                isinstance(p, int | float) and not isinstance(p, bool) and math.isfinite(p)
                for p in position
            )
        ):
            raise ValidationError(f"wyze setting cameras[{mac!r}].position: [latitude, longitude]")
        rtsp = entry.get("rtsp_url")
        if rtsp is not None and (
            not isinstance(rtsp, str) or urlsplit(rtsp).scheme not in ("rtsp", "rtsps")
        ):
            raise ValidationError(f"wyze setting cameras[{mac!r}].rtsp_url: an rtsp:// URL")
        if rtsp is not None and "@" in urlsplit(rtsp).netloc:
            raise ValidationError(
                f"wyze setting cameras[{mac!r}].rtsp_url: no user or password in the URL "
                "(they are the camera's credentials)"
            )
        out[mac.upper()] = dict(entry)
    return out


def _credentials(value: Mapping[str, Any]) -> dict[str, Credentials]:
    return parse_credentials(value, NAME)


@attrs.frozen
class WyzeSettings:
    """Validated settings of the Wyze adapter (docs/wyze.md has the table).

    ``api_key`` and ``credentials`` are marked secret (:data:`camgate.adapters.SECRET`) and
    never shown; ``key_id`` names the key and is not a secret."""

    key_id: str = ""
    api_key: Secret = attrs.field(factory=lambda: Secret(""), converter=_secret, repr=False,
                                  metadata=SECRET)  # fmt: skip
    api_key_expires: date | None = attrs.field(default=None, converter=_expiry)
    token_file: str | None = None
    auth_url: str = attrs.field(
        default="https://auth-prod.api.wyze.com", validator=_url("auth_url")
    )
    api_url: str = attrs.field(default="https://api.wyzecam.com", validator=_url("api_url"))
    webrtc_url: str = attrs.field(
        default="https://webrtc.api.wyze.com", validator=_url("webrtc_url")
    )
    signaling_hosts: tuple[str, ...] = attrs.field(
        default=(".amazonaws.com",), converter=_signaling_hosts
    )
    media_hosts: tuple[str, ...] = attrs.field(default=DEFAULT_MEDIA_HOSTS, converter=_hosts)
    max_clip_bytes: int = attrs.field(default=64 * 1024 * 1024, validator=positive(NAME))
    cameras: dict[str, dict[str, Any]] = attrs.field(factory=dict, converter=_cameras)
    connect_timeout_s: float = attrs.field(default=5.0, validator=positive(NAME))
    read_timeout_s: float = attrs.field(default=10.0, validator=positive(NAME))
    login_interval_s: float = attrs.field(default=30.0, validator=positive(NAME))
    max_rate_wait_s: float = attrs.field(default=60.0, validator=positive(NAME))
    credentials: dict[str, Credentials] = attrs.field(
        factory=dict, converter=_credentials, repr=False, metadata=SECRET
    )

    @classmethod
    def from_mapping(cls, settings: Mapping[str, Any]) -> WyzeSettings:
        """Settings from a mapping; an unknown key or a bad value is a ValidationError."""
        return build_settings(cls, NAME, settings)
