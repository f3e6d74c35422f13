"""The Ring Partner API's device list (JSON:API), parsed without I/O (fuzzed).

``GET /v1/devices?include=status`` answers a JSON:API document: ``data`` is a list of
``devices`` resources (``id``, ``attributes.name``, ``relationships.status.data`` naming a
``device-status`` resource in ``included``), and a status carries ``online`` and, for devices
with a battery, ``battery_status.percentage`` (255 means line power, as observed; see
docs/ring.md). :func:`parse_devices` turns it into :class:`RingDevice` values or raises
CameraProtocolError naming what is wrong (never quoting a value).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs
from camgate.errors import CameraProtocolError

__all__ = ["MAX_DEVICES", "RingDevice", "parse_devices"]

#: The most devices one document may list (an account has a handful).
MAX_DEVICES = 1000
#: The longest device id or name accepted.
_MAX_TEXT = 256
#: The battery percentage Ring reports for a device on line power.
_LINE_POWER = 255


@attrs.frozen
class RingDevice:
    """One device of the linked account: its Ring ``id``, ``name``, whether it is ``online``
    (None when the status was not included), and its ``battery_percentage`` (None when it
    reports none). ``battery_powered`` is True unless the device is known to be on line power:
    the 30 s live cap of battery devices is the safe assumption."""

    id: str
    name: str
    online: bool | None = None
    battery_percentage: int | None = None
    line_powered: bool = False

    @property
    def battery_powered(self) -> bool:
        """True unless the device reports line power (Ring's 30 s live cap then applies)."""
        return not self.line_powered


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value or len(value) > _MAX_TEXT:
        raise CameraProtocolError(f"Ring device list: {what} is not a short non-empty string")
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
        raise CameraProtocolError(f"Ring device list: {what} holds control characters")
    return value


def _mapping(value: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise CameraProtocolError(f"Ring device list: {what} is not an object")
    return value


def _status(
    device: Mapping[str, Any], included: dict[tuple[str, str], Mapping[str, Any]]
) -> Mapping[str, Any] | None:
    relationships = device.get("relationships")
    if relationships is None:
        return None
    link = _mapping(relationships, "relationships").get("status")
    if link is None:
        return None
    data = _mapping(link, "relationships.status").get("data")
    if data is None:
        return None
    data = _mapping(data, "relationships.status.data")
    key = (_text(data.get("type"), "status type"), _text(data.get("id"), "status id"))
    return included.get(key)


def _device(
    item: Mapping[str, Any], included: dict[tuple[str, str], Mapping[str, Any]]
) -> RingDevice:
    device_id = _text(item.get("id"), "a device id")
    attributes = _mapping(item.get("attributes", {}), "a device's attributes")
    name = attributes.get("name", device_id)
    device = RingDevice(id=device_id, name=_text(name, "a device name"))
    status = _status(item, included)
    if status is None:
        return device
    state = _mapping(status.get("attributes", {}), "a status's attributes")
    online = state.get("online")
    if online is not None and not isinstance(online, bool):
        raise CameraProtocolError("Ring device list: a status's online is not a boolean")
    percentage: int | None = None
    battery = state.get("battery_status")
    if battery is not None:
        level = _mapping(battery, "battery_status").get("percentage")
        if level is not None:
            if isinstance(level, bool) or not isinstance(level, int):
                raise CameraProtocolError("Ring device list: a battery percentage is not a number")
            if not (0 <= level <= 100 or level == _LINE_POWER):
                raise CameraProtocolError("Ring device list: a battery percentage is out of range")
            percentage = level
    line = percentage == _LINE_POWER
    return attrs.evolve(
        device,
        online=online,
        battery_percentage=None if line else percentage,
        line_powered=line,
    )


def parse_devices(document: Any) -> list[RingDevice]:
    """The devices of a ``GET /v1/devices`` document, in its order; resources of other types
    in ``data`` are skipped. CameraProtocolError when the document is not JSON:API as Ring
    sends it, lists a device twice or more than :data:`MAX_DEVICES`."""
    doc = _mapping(document, "the document")
    data = doc.get("data")
    if not isinstance(data, list):
        raise CameraProtocolError("Ring device list: data is not a list")
    if len(data) > MAX_DEVICES:
        raise CameraProtocolError(f"Ring device list: more than {MAX_DEVICES} devices")
    included: dict[tuple[str, str], Mapping[str, Any]] = {}
    extra = doc.get("included", [])
    if not isinstance(extra, list):
        raise CameraProtocolError("Ring device list: included is not a list")
    for entry in extra:
        resource = _mapping(entry, "an included resource")
        key = (_text(resource.get("type"), "a resource type"), _text(resource.get("id"), "an id"))
        included[key] = resource
    devices: list[RingDevice] = []
    seen: set[str] = set()
    for entry in data:
        item = _mapping(entry, "a resource")
        if _text(item.get("type"), "a resource type") != "devices":
            continue
        device = _device(item, included)
        if device.id in seen:
            raise CameraProtocolError("Ring device list: a device is listed twice")
        seen.add(device.id)
        devices.append(device)
    return devices
