"""Ring Partner API webhooks: signature, freshness and duplicates checked before anything else.

Ring signs each delivery with the partner's HMAC signing key: ``X-Signature: sha256=<hex>``,
HMAC-SHA256 over the raw body bytes, lower-case hex. The signed body carries no separate
timestamp header, so freshness comes from ``meta.time`` inside it, and replays within the
window are caught by ``meta.request_id`` (Ring also delivers duplicates on its own).
:class:`WebhookVerifier` checks all three and returns the event; anything else is a
:class:`WebhookRejected` (a ValidationError) that quotes nothing from the body.
"""

from __future__ import annotations

import collections
import hashlib
import hmac
import json
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import attrs
from camgate.adapters import Secret
from camgate.errors import ValidationError

__all__ = ["MAX_WEBHOOK_BODY", "WebhookEvent", "WebhookRejected", "WebhookVerifier", "sign"]

#: The largest webhook body accepted (Ring's are well under 4 KiB).
MAX_WEBHOOK_BODY = 64 * 1024
_PREFIX = "sha256="
_HEX = re.compile(r"[0-9a-f]{64}")
_FRACTION = re.compile(r"(\.\d{1,6})\d*")


class WebhookRejected(ValidationError):
    """A webhook delivery that is not Ring's, not fresh, a duplicate or not understood."""


@attrs.frozen
class WebhookEvent:
    """A verified delivery: ``type`` (``motion_detected``, ``device_removed``…), the device it
    concerns (``device_id``, None for account events), ``sub_type`` (``human``… for motion),
    ``time`` (``meta.time``), ``request_id`` and ``account_id``."""

    type: str
    device_id: str | None
    sub_type: str | None
    time: datetime
    request_id: str
    account_id: str | None


def sign(body: bytes, key: Secret) -> str:
    """The ``X-Signature`` value Ring sends for ``body`` (for tests and simulators)."""
    digest = hmac.new(key.reveal().encode(), body, hashlib.sha256).hexdigest()
    return _PREFIX + digest


def _parse_time(value: Any) -> datetime:
    if not isinstance(value, str) or len(value) > 64:
        raise WebhookRejected("Ring webhook: meta.time is not a timestamp")
    text = _FRACTION.sub(r"\1", value.strip())  # Ring sends up to nanoseconds
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise WebhookRejected("Ring webhook: meta.time is not ISO 8601") from None
    if when.tzinfo is None:
        raise WebhookRejected("Ring webhook: meta.time has no time zone")
    return when.astimezone(UTC)


def _optional_text(value: Any, what: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > 256:
        raise WebhookRejected(f"Ring webhook: {what} is not a short string")
    return value


class WebhookVerifier:
    """Verifies deliveries with the partner's signing ``key``: the signature (constant-time),
    ``meta.time`` within ``max_age_s`` of ``clock()`` (either side: clocks drift), and a
    ``meta.request_id`` not seen in the last ``remember`` deliveries. A delivery is recorded as
    seen only once it passed every check."""

    def __init__(
        self,
        key: Secret,
        *,
        max_age_s: float = 300.0,
        remember: int = 10_000,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._key = key
        self._max_age = max_age_s
        self._clock = clock
        self._seen: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._remember = remember

    def __repr__(self) -> str:
        return f"WebhookVerifier(max_age_s={self._max_age:g}, seen={len(self._seen)})"

    def verify(self, body: bytes, signature: str | None) -> WebhookEvent:
        """The event of a delivery (raw ``body``, the ``X-Signature`` header value), or
        WebhookRejected saying which check failed."""
        if len(body) > MAX_WEBHOOK_BODY:
            raise WebhookRejected("Ring webhook: the body is too large")
        given = (signature or "").strip()
        if not given.startswith(_PREFIX) or not _HEX.fullmatch(given[len(_PREFIX) :].lower()):
            raise WebhookRejected("Ring webhook: no sha256 signature")
        if not hmac.compare_digest(sign(body, self._key), _PREFIX + given[len(_PREFIX) :].lower()):
            raise WebhookRejected("Ring webhook: the signature does not match")
        try:
            document = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise WebhookRejected("Ring webhook: the body is not JSON") from None
        if not isinstance(document, Mapping):
            raise WebhookRejected("Ring webhook: the body is not an object")
        meta, data = document.get("meta"), document.get("data")
        if not isinstance(meta, Mapping) or not isinstance(data, Mapping):
            raise WebhookRejected("Ring webhook: meta or data missing")
        when = _parse_time(meta.get("time"))
        age = abs((self._clock() - when).total_seconds())
        if age > self._max_age:
            raise WebhookRejected("Ring webhook: meta.time is outside the freshness window")
        request_id = _optional_text(meta.get("request_id"), "meta.request_id")
        if request_id is None:
            raise WebhookRejected("Ring webhook: meta.request_id missing")
        if request_id in self._seen:
            raise WebhookRejected("Ring webhook: a duplicate delivery (request_id seen)")
        kind = _optional_text(data.get("type"), "data.type")
        if kind is None:
            raise WebhookRejected("Ring webhook: data.type missing")
        attributes = data.get("attributes", {})
        if not isinstance(attributes, Mapping):
            raise WebhookRejected("Ring webhook: data.attributes is not an object")
        source_type = attributes.get("source_type")
        source = _optional_text(attributes.get("source"), "data.attributes.source")
        sub = data.get("subType", attributes.get("sub_type"))  # both spellings are seen
        event = WebhookEvent(
            type=kind,
            device_id=source if source_type == "devices" else None,
            sub_type=_optional_text(sub, "data.subType"),
            time=when,
            request_id=request_id,
            account_id=_optional_text(meta.get("account_id"), "meta.account_id"),
        )
        self._seen[request_id] = None
        while len(self._seen) > self._remember:
            self._seen.popitem(last=False)
        return event
