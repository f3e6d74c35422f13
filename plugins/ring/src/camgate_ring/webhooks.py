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
import logging
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import attrs
from camgate.adapters import Secret
from camgate.errors import ValidationError

__all__ = [
    "KINDS",
    "MAX_WEBHOOK_BODY",
    "DuplicateDelivery",
    "UnsignedDelivery",
    "WebhookApp",
    "WebhookEvent",
    "WebhookReceiver",
    "WebhookRejected",
    "WebhookVerifier",
    "host_events",
    "sign",
]

#: The largest webhook body accepted (Ring's are well under 4 KiB).
MAX_WEBHOOK_BODY = 64 * 1024
log = logging.getLogger(__name__)
_PREFIX = "sha256="
_HEX = re.compile(r"[0-9a-f]{64}")
_FRACTION = re.compile(r"(\.\d{1,6})\d*")


class WebhookRejected(ValidationError):
    """A webhook delivery that is not Ring's, not fresh, a duplicate or not understood."""


class UnsignedDelivery(WebhookRejected):
    """A delivery without a valid ``X-Signature``: not Ring's."""


class DuplicateDelivery(WebhookRejected):
    """A delivery whose ``meta.request_id`` was seen already (Ring's retry, or a replay)."""


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

    def verify(self, body: bytes, signature: str | None, *, record: bool = True) -> WebhookEvent:
        """The event of a delivery (raw ``body``, the ``X-Signature`` header value), or
        WebhookRejected saying which check failed (DuplicateDelivery for a request id seen).
        With ``record=False`` the request id is not noted as seen: call :meth:`record` once
        the event was handled, so a delivery that failed to be handled can be retried."""
        if len(body) > MAX_WEBHOOK_BODY:
            raise WebhookRejected("Ring webhook: the body is too large")
        given = (signature or "").strip()
        if not given.startswith(_PREFIX) or not _HEX.fullmatch(given[len(_PREFIX) :].lower()):
            raise UnsignedDelivery("Ring webhook: no sha256 signature")
        if not hmac.compare_digest(sign(body, self._key), _PREFIX + given[len(_PREFIX) :].lower()):
            raise UnsignedDelivery("Ring webhook: the signature does not match")
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
            raise DuplicateDelivery("Ring webhook: a duplicate delivery (request_id seen)")
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
        if record:
            self.record(request_id)
        return event

    def record(self, request_id: str) -> None:
        """Note ``request_id`` as seen (a later delivery with it is a duplicate)."""
        self._seen[request_id] = None
        while len(self._seen) > self._remember:
            self._seen.popitem(last=False)


#: Ring's webhook types and the camgate camera event kind each becomes (``camgate_camera_event``);
#: a type not listed passes on as its own word.
KINDS = {
    "motion_detected": "motion",
    "button_press": "ding",
    "device_online": "online",
    "device_offline": "offline",
    "device_added": "device-added",
    "device_removed": "device-removed",
    "app_integration_removed": "unlinked",
}


def host_events(host: Any, adapter: str = "ring") -> Callable[[WebhookEvent], None]:
    """An ``emit`` for :class:`WebhookReceiver` that hands each event to the plugin host's
    ``camgate_camera_event`` hook (:meth:`camgate.plugins.PluginHost.camera_event`)."""

    def emit(event: WebhookEvent) -> None:
        details = {"type": event.type, "request_id": event.request_id}
        if event.sub_type is not None:
            details["sub_type"] = event.sub_type
        if event.account_id is not None:
            details["account_id"] = event.account_id
        kind = KINDS.get(event.type, event.type)
        host.camera_event(adapter, event.device_id, kind, event.time, details)

    return emit


class WebhookReceiver:
    """Ring's deliveries, verified by ``verifier`` and handed to ``emit`` (e.g.
    :func:`host_events`). :meth:`deliver` gives the HTTP status to answer: 204 handled, 200 a
    duplicate (acknowledged so Ring stops retrying; nothing emitted), 401 no valid signature,
    400 stale or not understood, 413 too large, 500 when ``emit`` failed (the request id is then
    not noted, so Ring's retry is handled). Ring wants an answer within 5 s: ``emit`` must not
    block."""

    def __init__(self, verifier: WebhookVerifier, emit: Callable[[WebhookEvent], None]) -> None:
        self.verifier = verifier
        self._emit = emit

    def __repr__(self) -> str:
        return f"WebhookReceiver({self.verifier!r})"

    def deliver(self, body: bytes, signature: str | None) -> int:
        """Handle one delivery; the status to answer (class docstring). Never raises."""
        if len(body) > MAX_WEBHOOK_BODY:
            return 413
        try:
            event = self.verifier.verify(body, signature, record=False)
        except DuplicateDelivery:
            return 200
        except UnsignedDelivery as exc:
            log.warning("%s", exc)
            return 401
        except WebhookRejected as exc:
            log.warning("%s", exc)
            return 400
        try:
            self._emit(event)
        except Exception:
            log.exception("Ring webhook: handing the %s event on failed", event.type)
            return 500
        self.verifier.record(event.request_id)
        return 204


class WebhookApp:
    """A minimal ASGI application serving Ring's Webhook URL with a :class:`WebhookReceiver`:
    ``POST`` with the raw body and ``X-Signature`` → :meth:`WebhookReceiver.deliver`'s status,
    anything else 405. Mount it behind the HTTPS endpoint registered with Ring."""

    def __init__(self, receiver: WebhookReceiver) -> None:
        self.receiver = receiver

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        """The ASGI entry point (HTTP only; lifespan messages are acknowledged)."""
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        status = 405
        if scope["method"] == "POST":
            body, more, too_big = b"", True, False
            while more:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
                body += message.get("body", b"")
                more = message.get("more_body", False)
                if len(body) > MAX_WEBHOOK_BODY:
                    too_big = True
                    body = b""
            headers = {k.decode("latin-1").lower(): v for k, v in scope.get("headers", [])}
            signature = headers.get("x-signature", b"").decode("latin-1")
            status = 413 if too_big else self.receiver.deliver(body, signature)
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})
