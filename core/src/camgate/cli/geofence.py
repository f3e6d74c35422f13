"""Which cameras a place may reach; zones and exclusions: ``camgate geofence``."""

from __future__ import annotations

import argparse
import math
from datetime import timedelta
from pathlib import Path

from camgate.cli._common import (
    Builder,
    closing,
    open_gate,
    print_json,
)
from camgate.errors import CamgateError, ValidationError

__all__ = ["add_parsers"]


def cmd_geofence_query(args: argparse.Namespace) -> int:
    """List the cameras round a point or an incident: distance, bearing, field of view, and what
    a request for each would meet now (allowed, ask, denied) with every reason.

    Every camera of the store within --radius metres (geodesic, WGS84) of --lat/--lon is listed
    — or, with --incident, every camera in that incident's zones — reachable ones first (best
    view first), each with every geofence's vote (the agency's exclusion zones and jurisdiction
    included) and the decision a --scope request with --purpose would get (``Gate.survey``:
    every core check and consent policy). The query is written to the audit log as one
    ``survey`` record with its counts. --plot FILE also draws a PNG map.
    """
    from camgate.geofence import Disc, ZoneRole
    from camgate.geofence.geodesy import point
    from camgate.models import Incident

    with closing(open_gate(args)) as gate:
        now = gate.clock.now()
        if args.incident is not None:
            incident = gate.store.get_incident(args.incident)
            centre = incident.position
        else:
            if args.lat is None or args.lon is None or args.radius is None:
                raise CamgateError("give --lat, --lon and --radius, or --incident ID")
            centre = point(args.lat, args.lon, "--lat/--lon")
            radius = Disc.around(centre.lat, centre.lon, args.radius).radius_m
            incident = Incident("query", "query", centre, now, radius)
        zone = Disc.around(centre.lat, centre.lon, incident.radius_m)
        # A recorded request names its window: the last hour, for the survey.
        window = (now - timedelta(hours=1), now) if args.scope == "recorded" else None
        survey = gate.survey(
            incident,
            scope=args.scope,
            purpose=args.purpose,
            window=window,
            requested_by="cli",
            at=now,
        )
        rows = [row.sighting for row in survey.rows]
        exclusions = [z.shape for z in gate.zones.zones(ZoneRole.EXCLUSION)]
    result = {
        "query": {"lat": centre.lat, "lon": centre.lon, "radius_m": zone.radius_m},
        "incident": survey.incident_id,
        "scope": str(survey.scope),
        "counts": survey.counts,
        "cameras": [row.to_json() for row in survey.rows],
    }
    if args.plot:
        from camgate.geofence.plot import plot_sightings

        result["plot"] = str(plot_sightings(args.plot, incident, rows, [zone], exclusions))
    if args.json:
        print_json(result)
        return 0
    print(f"{len(rows)} cameras within {zone.radius_m:.0f} m of {centre.lat}, {centre.lon}")
    for row in survey.rows:
        sighting = row.sighting
        fov = {None: "no FOV", True: "covers", False: "looks away"}[sighting.fov_covers]
        print(
            f"  {sighting.camera.id:<14} {sighting.distance_m:7.0f} m "
            f"{sighting.bearing_deg:5.0f}°  {fov:<10} {sighting.status:<12} {row.outcome}"
        )
        for reason in row.reasons:
            print(f"      {reason}")
    if args.plot:
        print(f"map: {args.plot}")
    return 0


def _numbers(text: str, count: int, option: str, form: str) -> list[float]:
    """``count`` comma-separated finite numbers, or a CamgateError naming ``option``."""
    parts = text.split(",")
    try:
        values = [float(v) for v in parts]
    except ValueError:
        values = []
    if len(parts) != count or len(values) != count or not all(map(math.isfinite, values)):
        raise CamgateError(f"{option}: {text!r} is not {form} (finite numbers, commas between)")
    return values


def cmd_geofence_zone_add(args: argparse.Namespace) -> int:
    """Store a zone: a search area or corridor of an incident, an exclusion, the jurisdiction."""
    from camgate.geofence import Area, Corridor, Disc, Zone
    from camgate.geofence.shapes import Shape

    shape: Shape
    if args.geojson:
        shape = Area.from_geojson(Path(args.geojson).read_text(encoding="utf-8"), crs=args.crs)
    elif args.corridor:
        if args.width is None:
            raise CamgateError("--corridor needs --width (metres either side of the route)")
        pairs = [_numbers(p, 2, "--corridor", "LAT,LON") for p in args.corridor.split()]
        try:
            shape = Corridor.along([(p[0], p[1]) for p in pairs], args.width)
        except ValidationError as exc:
            raise ValidationError(f"--corridor: {exc}") from None
    elif args.disc:
        lat, lon, radius = _numbers(args.disc, 3, "--disc", "LAT,LON,RADIUS")
        try:
            shape = Disc.around(lat, lon, radius)
        except ValidationError as exc:
            raise ValidationError(f"--disc: {exc}") from None
    else:
        raise CamgateError("give the zone's shape: --geojson FILE, --corridor or --disc")
    zone = Zone.new(args.role, shape, name=args.name, kind=args.kind, incident_id=args.incident)
    with closing(open_gate(args)) as gate:
        gate.zones.add(zone)
    print_json(zone.to_json())
    return 0


def cmd_geofence_zone_list(args: argparse.Namespace) -> int:
    """Print the stored zones as JSON."""
    with closing(open_gate(args)) as gate:
        print_json([z.to_json() for z in gate.zones.zones()])
    return 0


def add_parsers(b: Builder) -> None:
    """Add ``geofence`` to the ``camgate`` parser."""
    geofence = b.group("geofence", "which cameras a place may reach; zones and exclusions")
    p = b.add(geofence, "query", cmd_geofence_query, "list cameras round a point, with reasons")
    p.add_argument("--lat", type=float, help="latitude, WGS84 degrees")
    p.add_argument("--lon", type=float, help="longitude, WGS84 degrees")
    p.add_argument("--radius", type=float, help="metres (geodesic)")
    p.add_argument("--incident", help="survey this stored incident instead of a point")
    p.add_argument("--scope", default="live", choices=["live", "recorded", "snapshot"])
    p.add_argument("--purpose", default="investigation", help="the request's purpose")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--plot", metavar="FILE", help="also draw a PNG map into FILE")
    p = b.add(geofence, "zone-add", cmd_geofence_zone_add, "store a zone")
    p.add_argument("--role", required=True, choices=["search", "exclusion", "jurisdiction"])
    p.add_argument("--name", default="", help="e.g. 'Beat 4', 'St Mark clinic'")
    p.add_argument("--kind", default="", help="e.g. beat, clinic, school, shelter, worship")
    p.add_argument("--incident", help="the incident a search zone belongs to")
    p.add_argument("--geojson", metavar="FILE", help="polygons (GeoJSON, any CRS)")
    p.add_argument("--crs", help="the GeoJSON's CRS when it does not say (default WGS84)")
    p.add_argument("--corridor", metavar="'LAT,LON LAT,LON ...'", help="a route")
    p.add_argument("--width", type=float, help="a corridor's half-width, metres")
    p.add_argument("--disc", metavar="LAT,LON,RADIUS", help="a place and a radius in metres")
    b.add(geofence, "zones", cmd_geofence_zone_list, "print the stored zones as JSON")
