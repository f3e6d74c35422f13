"""Helpers adapters share to validate their settings mapping (the edge's ``{vendor: {...}}``).

Each adapter keeps its own attrs settings class; these give them one way to refuse unknown
keys, to check positive numbers and to read a ``credentials`` mapping, with errors that name
the vendor and the key (:class:`camgate.errors.ValidationError`) and never a password.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar, cast

import attrs

from camgate.adapters import Credentials
from camgate.errors import ValidationError

__all__ = ["build_settings", "parse_credentials", "positive"]

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
