"""One JSON codec for every model: storage, the audit log and grant signing all use it.

``dump`` turns an attrs instance into JSON-ready data; ``load`` rebuilds it from that data through
the class's own constructor, so validation runs again on the way in. ``canonical`` gives the exact
bytes that are hashed or signed: sorted keys, no whitespace, UTF-8.
"""

from __future__ import annotations

import base64
import enum
import json
import types
import typing
from datetime import datetime
from fractions import Fraction
from functools import cache
from typing import Any, TypeVar

import attrs

from camgate.errors import ValidationError
from camgate.models import stored_ids

__all__ = ["canonical", "dump", "load"]

T = TypeVar("T")


def _value(_inst: object, _field: object, value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, frozenset | set):
        return sorted(_value(None, None, v) for v in value)
    if isinstance(value, Fraction):
        return f"{value.numerator}/{value.denominator}"
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    return value


def dump(obj: Any) -> dict[str, Any]:
    """Return the JSON-ready dict of an attrs instance (nested models included)."""
    return attrs.asdict(obj, value_serializer=_value)


def canonical(data: Any) -> bytes:
    """The canonical bytes of JSON-ready data: what is hashed and signed."""
    return json.dumps(
        data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode()


@cache
def _hints(cls: Any) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _convert(tp: Any, raw: Any, where: str) -> Any:
    if raw is None:
        return None
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(tp) if a is not type(None)]
        return _convert(options[0], raw, where) if len(options) == 1 else raw
    if origin in (tuple, frozenset, list):
        (item, *_rest) = typing.get_args(tp)
        return origin(_convert(item, v, where) for v in raw)
    if tp is datetime:
        return datetime.fromisoformat(raw)
    if tp is Fraction:
        return Fraction(raw)
    if tp is bytes:
        return base64.b64decode(raw)
    if isinstance(tp, type) and attrs.has(tp):
        return _load(tp, raw)
    return raw


def load(cls: type[T], data: Any) -> T:
    """Rebuild an instance of ``cls`` from :func:`dump` output, validating it again.

    Unknown keys, missing required keys and unparsable values raise ValidationError naming them.
    Ids stored before camgate checked them (:data:`camgate.models.ID_RULE`) load with a
    warning (:func:`camgate.models.stored_ids`): ``load`` reads what camgate itself wrote.
    """
    with stored_ids():
        return _load(cls, data)


def _load(cls: type[T], data: Any) -> T:
    if not isinstance(data, dict):
        raise ValidationError(f"{cls.__name__}: expected an object, got {type(data).__name__}")
    fields = {f.name: f for f in attrs.fields(cls)}  # type: ignore[arg-type]
    unknown = set(data) - set(fields)
    if unknown:
        raise ValidationError(f"{cls.__name__}: unknown keys {sorted(unknown)}")
    hints = _hints(typing.cast(Any, cls))
    kwargs = {}
    for name, raw in data.items():
        try:
            kwargs[name] = _convert(hints[name], raw, f"{cls.__name__}.{name}")
        except (TypeError, ValueError) as exc:
            if isinstance(exc, ValidationError):
                raise
            raise ValidationError(f"{cls.__name__}.{name}={raw!r}: {exc}") from None
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ValidationError(f"{cls.__name__}: {exc}") from None
