"""Helpers adapters share to validate their settings mapping (the edge's ``{vendor: {...}}``).

Each adapter keeps its own attrs settings class; these give them one way to refuse unknown
keys, to check positive numbers and to read a ``credentials`` mapping, with errors that name
the vendor and the key (:class:`camgate.errors.ValidationError`) and never a password.
"""

from __future__ import annotations

import argparse
import json
import tomllib
from collections.abc import Callable, Mapping
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit

import attrs

from camgate.adapters import AdapterFactory, Credentials, Secret
from camgate.errors import ValidationError

__all__ = [
    "LOOPBACK_HOSTS",
    "add_setting_option",
    "base_url",
    "build_settings",
    "check_base_url",
    "is_loopback",
    "parse_credentials",
    "parse_setting",
    "optional_secret",
    "positive",
    "split_camera_settings",
]

T = TypeVar("T")


def build_settings(cls: type[T], vendor: str, settings: Mapping[str, Any]) -> T:
    """``cls(**settings)`` after refusing keys that are not fields of ``cls`` (a typo must not
    pass silently): ValidationError "<vendor> settings: unknown keys [...]"."""
    fields: tuple[attrs.Attribute[Any], ...] = attrs.fields(cast(Any, cls))
    unknown = set(settings) - {field.alias or field.name for field in fields}
    if unknown:
        raise ValidationError(f"{vendor} settings: unknown keys {sorted(unknown)}")
    return cls(**dict(settings))


def positive(vendor: str) -> Callable[[object, attrs.Attribute[Any], Any], None]:
    """An attrs validator: the value is a number (not a bool) above zero."""

    def check(_inst: object, attribute: attrs.Attribute[Any], value: Any) -> None:
        if not (isinstance(value, int | float) and not isinstance(value, bool) and value > 0):
            raise ValidationError(
                f"{vendor} setting {attribute.name}={value!r}: must be a positive number"
            )

    return check


def parse_credentials(value: Mapping[str, Any], vendor: str) -> dict[str, Credentials]:
    """A ``credentials`` setting: ``{key: Credentials or {"username": …, "password": …}}`` →
    ``{key: Credentials}``; anything else is a ValidationError naming the key, never the
    password. (Wrap it in a named function to use it as an attrs converter.)"""
    if not isinstance(value, Mapping):
        raise ValidationError(f"{vendor} setting credentials: must be a mapping")
    out: dict[str, Credentials] = {}
    for key, cred in dict(value).items():
        if isinstance(cred, Credentials):
            out[key] = cred
        elif isinstance(cred, Mapping) and {"username", "password"} <= set(cred):
            out[key] = Credentials(str(cred["username"]), cred["password"])
        else:
            raise ValidationError(
                f"{vendor} setting credentials[{key!r}]: needs a username and a password"
            )
    return out


def split_camera_settings(
    factory: AdapterFactory, settings: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A camera's own settings, validated by its adapter (:meth:`AdapterFactory.check_settings`)
    and split into ``(plain, secret)``: ``secret`` holds the keys the adapter's settings class
    marks secret, to be kept with the credentials. Values must be JSON values (they are
    stored); anything else is a ValidationError naming the key, never the value."""
    factory.check_settings(settings)
    for key, value in settings.items():
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError):
            raise ValidationError(
                f"{factory.name} setting {key}: cannot be stored (not a JSON value)"
            ) from None
    secret_keys = factory.secret_keys
    plain = {k: v for k, v in settings.items() if k not in secret_keys}
    secret = {k: v for k, v in settings.items() if k in secret_keys}
    return plain, secret


def parse_setting(text: str) -> tuple[str, Any]:
    """A command line's ``--setting key=value``: the value read as a TOML value (``10``,
    ``false``, ``{rtsp={"554"=10554}}``), else taken as the bare string (a file path). Without
    ``=`` or a key, an argparse error that does not repeat the text (it may hold a secret)."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError("expected KEY=VALUE")
    try:
        parsed = tomllib.loads(f"v = {value}")["v"]
    except tomllib.TOMLDecodeError:
        parsed = value
    return key.strip(), parsed


def add_setting_option(parser: argparse.ArgumentParser, help_text: str) -> None:
    """Add the repeatable ``--setting KEY=VALUE`` option (parsed by :func:`parse_setting`; the
    list of ``(key, value)`` pairs in ``args.setting``, empty by default) to ``parser``."""
    parser.add_argument(
        "--setting",
        action="append",
        type=parse_setting,
        default=[],
        metavar="KEY=VALUE",
        help=help_text,
    )


#: Hosts a cloud adapter may reach over plain http (a simulator on loopback), never others.
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


def is_loopback(host: str) -> bool:
    """True for a loopback host name or address (where plain http is allowed: simulators)."""
    return host.lower() in LOOPBACK_HOSTS


def check_base_url(url: str, what: str, vendor: str) -> str:
    """A cloud adapter's host setting ``what``: ``url`` without a trailing slash when it is
    https (or http to a loopback host, for a simulator), has a host and carries no credentials,
    query or fragment; otherwise ValidationError naming ``vendor`` and ``what`` (never the
    URL, which could hold a secret)."""
    if not isinstance(url, str):
        raise ValidationError(f"{vendor} setting {what}: must be a URL")
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        has_user = parts.username is not None or parts.password is not None
    except ValueError:
        raise ValidationError(f"{vendor} setting {what}: must be an https URL") from None
    if parts.scheme not in ("https", "http") or not host:
        raise ValidationError(f"{vendor} setting {what}: must be an https URL")
    if parts.scheme == "http" and not is_loopback(host):
        raise ValidationError(f"{vendor} setting {what}: plain http only to a loopback host")
    if has_user or parts.query or parts.fragment:
        raise ValidationError(f"{vendor} setting {what}: no credentials, query or fragment")
    return url.rstrip("/")


def base_url(vendor: str, what: str) -> Callable[[object, attrs.Attribute[str], str], None]:
    """An attrs validator: the field is a host setting :func:`check_base_url` accepts."""

    def check(_inst: object, _attribute: attrs.Attribute[str], value: str) -> None:
        check_base_url(value, what, vendor)

    return check


def optional_secret(value: str | Secret | None) -> Secret | None:
    """An attrs converter: a text setting kept as a :class:`~camgate.adapters.Secret` (None
    stays None), so no repr, log or error shows it."""
    return value if value is None or isinstance(value, Secret) else Secret(value)
