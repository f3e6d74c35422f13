"""Residents' privacy zones: ``camgate zones add|list|remove|attest|status``."""

from __future__ import annotations

import argparse
from pathlib import Path

from camgate.cli._common import Builder, closing, open_gate, print_json

__all__ = ["add_parsers"]


def _zone_text(value: str) -> str:
    """``LAT,LON[,RADIUS_M]``, GeoJSON text, or ``@FILE`` holding GeoJSON."""
    if value.startswith("@"):
        return Path(value[1:]).read_text(encoding="utf-8")
    return value


def cmd_zones_add(args: argparse.Namespace) -> int:
    """Register a resident's home as a privacy zone, at the resident's request.

    ZONE is LAT,LON[,RADIUS_M] (a point, 25 m by default, at most 100 m), a GeoJSON Polygon,
    or @FILE holding one (no edge farther than 150 m from its centre). Every enrolled camera
    whose view covers it is refused live and snapshot until its owner attests a mask covers
    it; the owners are asked. Prints the zone's id: give it to the resident (it is their
    handle for ``camgate zones status`` and removal). Audited (``zone.registered``).
    """
    with closing(open_gate(args)) as gate:
        zone = gate.register_zone(_zone_text(args.zone), by=args.by)
        status = gate.zone_status(zone.id)
    if args.json:
        print_json({"zone": zone.to_json(), "status": status})
    else:
        print(zone.id)
        print(f"cameras whose view covers it: {status['cameras_affected']} (owners asked)")
    return 0


def cmd_zones_list(args: argparse.Namespace) -> int:
    """List the registered privacy zones: id, shape, when and by whom at the agency."""
    with closing(open_gate(args)) as gate:
        zones = gate.privacy_zones()
    if args.json:
        print_json([z.to_json() for z in zones])
        return 0
    for zone in zones:
        shape = zone.shape.to_json()
        print(
            f"{zone.id}  {shape['type']:<8} registered {zone.registered_at:%Y-%m-%d} by "
            f"{zone.registered_by}"
        )
    return 0


def cmd_zones_remove(args: argparse.Namespace) -> int:
    """Remove a privacy zone at the resident's request (audited ``zone.removed``)."""
    with closing(open_gate(args)) as gate:
        gate.remove_zone(args.zone, by=args.by)
    print(f"removed {args.zone}")
    return 0


def cmd_zones_attest(args: argparse.Namespace) -> int:
    """The camera's owner attests that its privacy masks cover the zone: the camera is
    eligible again for that zone (masked) until its masks change. Audited
    (``zone.mask-attested``)."""
    with closing(open_gate(args)) as gate:
        gate.attest_zone_mask(args.camera, args.zone, by=args.by)
    print(f"attested: camera {args.camera} masks zone {args.zone}")
    return 0


def cmd_zones_status(args: argparse.Namespace) -> int:
    """What the resident may see of their zone: how many cameras' views cover it and how many
    owners attested a mask over it, the cameras as opaque tokens (never whose they are)."""
    with closing(open_gate(args)) as gate:
        status = gate.zone_status(args.zone)
    if args.json:
        print_json(status)
        return 0
    print(
        f"zone {status['zone']}: {status['cameras_affected']} cameras see it, "
        f"{status['cameras_attested']} masked by their owners"
    )
    for row in status["cameras"]:
        print(f"  {row['camera']}  {'masked' if row['attested'] else 'refused until masked'}")
    return 0


def add_parsers(b: Builder) -> None:
    """Add ``camgate zones`` and its actions."""
    zones = b.group("zones", "residents' privacy zones: register, list, remove, attest, status")
    p = b.add(zones, "add", cmd_zones_add, "register a resident's home as a privacy zone")
    p.add_argument("zone", help="LAT,LON[,RADIUS_M], a GeoJSON Polygon, or @FILE")
    p.add_argument("--by", required=True, help="the agency user registering it")
    p.add_argument("--json", action="store_true", help="JSON output")
    p = b.add(zones, "list", cmd_zones_list, "list the privacy zones")
    p.add_argument("--json", action="store_true", help="JSON output")
    p = b.add(zones, "remove", cmd_zones_remove, "remove a zone at the resident's request")
    p.add_argument("zone", help="the zone's id")
    p.add_argument("--by", required=True, help="the agency user removing it")
    p = b.add(zones, "attest", cmd_zones_attest, "an owner attests a mask covers a zone")
    p.add_argument("zone", help="the zone's id")
    p.add_argument("camera", help="the owner's camera")
    p.add_argument("--by", required=True, help="the camera's owner")
    p = b.add(zones, "status", cmd_zones_status, "how a zone is honoured (for the resident)")
    p.add_argument("zone", help="the zone's id")
    p.add_argument("--json", action="store_true", help="JSON output")
