"""The Ring Partner API's event history (JSON:API), parsed without I/O (fuzzed).

``GET /v1/history/devices/{id}/events?event_types=motion,ding`` answers a page of
``history-events`` resources (``attributes.event_type``, ``sub_type``, ``start`` and ``end``
in epoch milliseconds, ``relationships.source.data`` naming the device) and, while more
remain, ``links.next`` (a URL whose query carries ``page[key]``; an empty page may still carry
one). :func:`parse_history_page` turns one page into :class:`HistoryEvent` values and the next
link, or raises CameraProtocolError naming what is wrong (never quoting a value).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import attrs
from camgate.errors import CameraProtocolError

__all__ = ["MAX_EVENTS_PER_PAGE", "HistoryEvent", "parse_history_page"]

#: The most events one page may hold.
MAX_EVENTS_PER_PAGE = 1000
_MAX_TEXT = 256
#: Epoch milliseconds Ring may send: from 2000 to 2100.
_EARLIEST_MS, _LATEST_MS = 946_684_800_000, 4_102_444_800_000


@attrs.frozen
class HistoryEvent:
    """One recorded event: Ring's ``id``, ``event_type`` (``motion``, ``ding``,
    ``on_demand``…), ``sub_type`` (``human``…, None when absent), the ``device_id``, and when it
    began and ended (``end`` None while unknown)."""

    id: str
    event_type: str
    sub_type: str | None
    device_id: str | None
    start: datetime
    end: datetime | None


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value or len(value) > _MAX_TEXT:
        raise CameraProtocolError(f"Ring history: {what} is not a short non-empty string")
    if not value.isprintable():
        raise CameraProtocolError(f"Ring history: {what} holds control characters")
    return value


def _moment(value: Any, what: str) -> datetime:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise CameraProtocolError(f"Ring history: {what} is not a number of milliseconds")
    if not math.isfinite(value) or not _EARLIEST_MS <= value <= _LATEST_MS:
        raise CameraProtocolError(f"Ring history: {what} is out of range")
    return datetime.fromtimestamp(value / 1000, UTC)


def _mapping(value: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise CameraProtocolError(f"Ring history: {what} is not an object")
    return value


def _event(item: Mapping[str, Any]) -> HistoryEvent:
    attributes = _mapping(item.get("attributes", {}), "an event's attributes")
    start = _moment(attributes.get("start"), "an event's start")
    end_value = attributes.get("end")
    end = None if end_value is None else _moment(end_value, "an event's end")
    if end is not None and end < start:
        raise CameraProtocolError("Ring history: an event ends before it starts")
    sub = attributes.get("sub_type")
    device: str | None = None
    relationships = item.get("relationships")
    if relationships is not None:
        source = _mapping(relationships, "relationships").get("source")
        if source is not None:
            data = _mapping(_mapping(source, "relationships.source").get("data"), "source.data")
            device = _text(data.get("id"), "an event's device id")
    return HistoryEvent(
        id=_text(item.get("id"), "an event id"),
        event_type=_text(attributes.get("event_type"), "an event type"),
        sub_type=None if sub is None else _text(sub, "an event's sub_type"),
        device_id=device,
        start=start,
        end=end,
    )


def parse_history_page(document: Any) -> tuple[list[HistoryEvent], str | None]:
    """The events of one history page (resources of other types skipped) and its
    ``links.next`` (None on the last page). CameraProtocolError when the document is not
    JSON:API as Ring sends it or holds more than :data:`MAX_EVENTS_PER_PAGE` events."""
    doc = _mapping(document, "the document")
    data = doc.get("data")
    if not isinstance(data, list):
        raise CameraProtocolError("Ring history: data is not a list")
    if len(data) > MAX_EVENTS_PER_PAGE:
        raise CameraProtocolError(f"Ring history: more than {MAX_EVENTS_PER_PAGE} events")
    events = [
        _event(item)
        for item in (_mapping(entry, "a resource") for entry in data)
        if item.get("type") == "history-events"
    ]
    links = doc.get("links")
    following = None if links is None else _mapping(links, "links").get("next")
    return events, None if following is None else _text(following, "links.next")
