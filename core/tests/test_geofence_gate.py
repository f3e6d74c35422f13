"""The geofence through the gate and the CLI: zones, exclusions, jurisdiction, time, the index."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from camgate import Camera, Gate, GeoPoint, Owner, Verdict
from camgate.cli import main
from camgate.geofence import Area, Corridor, Disc, Zone, ZoneRole
from camgate.store import Store
from pyproj import Geod

GEOD = Geod(ellps="WGS84")
HOME = GeoPoint(32.2988, -90.1848)  # Jackson, Mississippi


def at(bearing: float, metres: float, origin: GeoPoint = HOME) -> GeoPoint:
    lon, lat, _ = GEOD.fwd(origin.lon, origin.lat, bearing, metres)
    return GeoPoint(lat, lon)


def facing(p: GeoPoint, target: GeoPoint) -> float:
    az, _b, _d = GEOD.inv(p.lon, p.lat, target.lon, target.lat)
    return az % 360.0


@pytest.fixture
def gate(tmp_path: Path) -> Gate:
    g = Gate.open(tmp_path / "camgate.db")
    g.add_owner(Owner("alice", "Alice"))
    return g


def add(gate: Gate, cid: str, where: GeoPoint, **fov: float) -> Camera:
    return gate.add_camera(
        Camera(
            id=cid, adapter="rtsp", source=f"rtsp://127.0.0.1/{cid}", owner_id="alice",
            position=where, **fov,
        )
    )  # fmt: skip


def reachable_ids(gate: Gate, incident_id: str) -> list[str]:
    return [
        cam.id
        for cam, votes in gate.reachable(incident_id)
        if not any(v.verdict is Verdict.DENY for v in votes)
    ]


def test_fields_of_view_decide_and_rank(gate: Gate) -> None:
    near_on_axis = at(0, 40)
    add(
        gate,
        "on-axis",
        near_on_axis,
        heading_deg=facing(near_on_axis, HOME),
        fov_deg=90,
        range_m=100,
    )
    off = at(90, 40)
    add(gate, "off-axis", off, heading_deg=(facing(off, HOME) + 40) % 360, fov_deg=90, range_m=100)
    away = at(180, 40)
    add(gate, "looks-away", away, heading_deg=(facing(away, HOME) + 180) % 360, fov_deg=90)
    short = at(270, 150)
    add(gate, "too-short", short, heading_deg=facing(short, HOME), fov_deg=60, range_m=50)
    add(gate, "no-fov", at(45, 100))
    add(gate, "far", at(0, 900))
    incident = gate.report_incident("robbery", HOME, radius_m=300)
    rows = gate.sightings(incident)
    by_id = {r.camera.id: r for r in rows}
    assert [r.camera.id for r in rows if r.reachable] == ["on-axis", "off-axis", "no-fov"]
    assert by_id["looks-away"].status == "out_of_view" and by_id["looks-away"].fov_covers is False
    assert "does not cover it" in by_id["too-short"].reasons[0]
    assert "far" not in by_id  # outside every zone: not listed
    assert by_id["off-axis"].off_axis_deg == pytest.approx(40, abs=0.5)
    assert "off its axis" in by_id["on-axis"].why


def test_a_closed_or_expired_incident_reaches_nothing(gate: Gate) -> None:
    add(gate, "cam", at(0, 10))
    incident = gate.report_incident("burglary", HOME, radius_m=100, window_s=3600)
    assert reachable_ids(gate, incident.id) == ["cam"]
    later = gate.sightings(incident, now=incident.reported_at + timedelta(hours=2))
    assert not later[0].reachable
    assert "valid from" in later[0].reasons[0]
    gate.close_incident(incident.id)
    rows = gate.reachable(incident.id)
    assert reachable_ids(gate, incident.id) == []
    assert any("a closed incident reaches no camera" in v.reason for v in rows[0][1])


def test_exclusion_zones_inside_or_in_view(gate: Gate) -> None:
    clinic = at(90, 120)
    gate.zones.add(
        Zone.new(ZoneRole.EXCLUSION, Disc(clinic, 15), name="Women's clinic", kind="clinic")
    )
    add(gate, "inside", at(90, 110))
    watcher = at(90, 60)
    add(gate, "sees-clinic", watcher, heading_deg=facing(watcher, clinic), fov_deg=40, range_m=100)
    add(gate, "sees-incident", watcher, heading_deg=facing(watcher, HOME), fov_deg=40, range_m=100)
    incident = gate.report_incident("assault", HOME, radius_m=300)
    rows = {r.camera.id: r for r in gate.sightings(incident)}
    assert rows["inside"].status == "excluded"
    assert "inside Women's clinic (clinic)" in rows["inside"].reasons[0]
    assert "field of view covers Women's clinic" in rows["sees-clinic"].reasons[0]
    assert rows["sees-incident"].reachable


def test_school_polygon_in_a_projected_crs_excludes(gate: Gate) -> None:
    from pyproj import Transformer

    to_utm = Transformer.from_crs("OGC:CRS84", "EPSG:32615", always_xy=True)
    corners = [at(b, 60, at(180, 200)) for b in (45, 135, 225, 315)]
    ring = [list(to_utm.transform(p.lon, p.lat)) for p in corners]
    school = Area.from_geojson({"type": "Polygon", "coordinates": [[*ring, ring[0]]]}, "EPSG:32615")
    gate.zones.add(Zone.new("exclusion", school, name="Lanier High", kind="school"))
    add(gate, "in-school", at(180, 200))
    add(gate, "next-door", at(180, 100))
    incident = gate.report_incident("theft", HOME, radius_m=300)
    assert reachable_ids(gate, incident.id) == ["next-door"]


def test_jurisdiction_refuses_an_incident_outside_it(gate: Gate) -> None:
    square = [[-90.3, 32.2], [-90.1, 32.2], [-90.1, 32.4], [-90.3, 32.4], [-90.3, 32.2]]
    gate.zones.add(
        Zone.new("jurisdiction", Area.from_geojson({"type": "Polygon", "coordinates": [square]}),
                 name="City of Jackson")
    )  # fmt: skip
    add(gate, "cam", at(0, 10))
    inside = gate.report_incident("theft", HOME, radius_m=100)
    assert reachable_ids(gate, inside.id) == ["cam"]
    outside_point = GeoPoint(32.5, -90.1848)
    add(gate, "cam-out", outside_point)
    outside = gate.report_incident("theft", outside_point, radius_m=100)
    rows = gate.reachable(outside.id)
    assert [c.id for c, _ in rows] == ["cam-out"]
    assert any(
        v.policy == "geofence.jurisdiction" and "outside the agency's jurisdiction" in v.reason
        for v in rows[0][1]
    )


def test_escape_route_corridor_reaches_cameras_along_the_route(gate: Gate) -> None:
    end = at(0, 2000)
    incident = gate.report_incident("robbery", HOME, radius_m=100)
    route = Corridor((HOME, at(0, 1000), end), half_width_m=40)
    gate.zones.add(Zone.new("search", route, name="northbound", incident_id=incident.id))
    on_route = at(90, 25, at(0, 1500))
    add(gate, "on-route", on_route)
    add(gate, "watches-road", on_route, heading_deg=270.0, fov_deg=60, range_m=60)
    add(gate, "watches-yard", on_route, heading_deg=90.0, fov_deg=60, range_m=60)
    add(gate, "off-route", at(90, 100, at(0, 1500)))
    rows = {r.camera.id: r for r in gate.sightings(incident)}
    assert rows["on-route"].reachable and rows["watches-road"].reachable
    assert not rows["watches-yard"].reachable
    assert "does not cover the route" in rows["watches-yard"].reasons[-1]
    assert "off-route" not in rows


def test_index_follows_moves_and_other_processes(gate: Gate) -> None:
    add(gate, "cam", at(0, 10))
    incident = gate.report_incident("theft", HOME, radius_m=100)
    assert reachable_ids(gate, incident.id) == ["cam"]
    add(gate, "cam", at(0, 500))  # moved
    assert reachable_ids(gate, incident.id) == []
    other = Store(gate.store.path)  # another connection, as another process would have
    other.add_camera(Camera("cam-2", "rtsp", "rtsp://127.0.0.1/2", "alice", at(90, 20)))
    other.close()
    assert reachable_ids(gate, incident.id) == ["cam-2"]


def test_cli_geofence_query_json_and_plot(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(tmp_path / "camgate.db")
    g = Gate.open(db)
    g.add_owner(Owner("alice", "Alice"))
    p = at(0, 50)
    add(g, "front", p, heading_deg=facing(p, HOME), fov_deg=90, range_m=80)
    add(g, "back", at(180, 50), heading_deg=180.0, fov_deg=90, range_m=80)
    g.store.close()
    shelter = at(90, 200)
    disc = f"--disc={shelter.lat},{shelter.lon},20"
    zone = ["--role", "exclusion", "--name", "Shelter", "--kind", "shelter", disc]
    assert main(["--db", db, "geofence", "zone-add", *zone]) == 0
    capsys.readouterr()
    png = tmp_path / "map.png"
    code = main(["--db", db, "geofence", "query", f"--lat={HOME.lat}", f"--lon={HOME.lon}",
                 "--radius", "300", "--json", "--plot", str(png)])  # fmt: skip
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    cams = {c["camera"]: c for c in out["cameras"]}
    assert set(cams) == {"front", "back"}
    front, back = cams["front"], cams["back"]
    assert front["reachable"] and front["fov_covers"] is True
    assert front["distance_m"] == pytest.approx(50, abs=0.1) and front["bearing_deg"] == 0.0
    assert back["status"] == "out_of_view" and back["reasons"]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (
        main(["--db", db, "geofence", "query", "--lat", "91", "--lon", "0", "--radius", "1"]) == 1
    )
    assert "latitude 91" in capsys.readouterr().err
    assert (
        main(["--db", db, "geofence", "query", "--lat", "0", "--lon", "0", "--radius", "-5"]) == 1
    )
    assert "radius_m=-5.0: must be greater than zero" in capsys.readouterr().err
