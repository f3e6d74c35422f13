"""`camgate zones add|list|status|attest|remove`, run as real processes on one store file."""

from __future__ import annotations

import json
from pathlib import Path

from camgate import Camera, ConsentTerms, Gate, GeoPoint, Owner, Waiver
from camgate.gate.residents import REFUSAL
from camgate.testing import run_cli

CENTRE = GeoPoint(32.2988, -90.1848)
HOME = f"{CENTRE.lat + 40 / 111_000},{CENTRE.lon},15"


def _setup(path: Path) -> str:
    gate = Gate.open(path)
    try:
        waiver = gate.publish_waiver(Waiver("w1", "I agree."))
        gate.add_owner(Owner("alice", "Alice"))
        gate.add_camera(
            Camera(
                "a1",
                "rtsp",
                "rtsp://127.0.0.1:9/a1",
                "alice",
                CENTRE,
                heading_deg=0.0,
                fov_deg=90.0,
                range_m=60.0,
            )
        )
        gate.enrol(
            "alice",
            ["a1"],
            waiver_version="w1",
            waiver_sha256=waiver.sha256,
            terms=ConsentTerms(scopes=["snapshot", "live"]),
        )
        return gate.report_incident("shooting", CENTRE, 500.0).id
    finally:
        gate.store.close()


def test_zones_cli_end_to_end(tmp_path: Path) -> None:
    db = tmp_path / "camgate.db"
    incident = _setup(db)
    base = ("--db", str(db))
    zone = run_cli(*base, "zones", "add", HOME, "--by", "clerk-1").stdout.split()[0]
    assert zone.startswith("pz")
    listed = json.loads(run_cli(*base, "zones", "list", "--json").stdout)
    assert [z["id"] for z in listed] == [zone]
    status = json.loads(run_cli(*base, "zones", "status", zone, "--json").stdout)
    assert (status["cameras_affected"], status["cameras_attested"]) == (1, 0)
    # cameras appear as opaque tokens, never by id or owner (a random token may hold "a1")
    assert all(c["camera"] != "a1" for c in status["cameras"])
    assert "alice" not in json.dumps(status)
    ask = f"request --incident {incident} --camera a1 --scope snapshot --by o7".split()
    refused = run_cli(*base, *ask, "--out", str(tmp_path / "out"), check=False)
    assert refused.returncode == 3, refused.stderr
    assert REFUSAL in refused.stderr + refused.stdout
    run_cli(*base, "masks", "set", "a1", "--owner", "alice", "--polygon", "0,0 0.5,0 0.5,0.5")
    bad = run_cli(*base, "zones", "attest", zone, "a1", "--by", "mallory", check=False)
    assert bad.returncode == 1 and "owner" in bad.stderr
    run_cli(*base, "zones", "attest", zone, "a1", "--by", "alice")
    status = json.loads(run_cli(*base, "zones", "status", zone, "--json").stdout)
    assert status["cameras_attested"] == 1
    kinds = [
        r["kind"]
        for r in map(json.loads, run_cli(*base, "audit", "export").stdout.splitlines())
        if "kind" in r
    ]
    assert {"zone.registered", "zone.asked", "zone.mask-attested"} <= set(kinds)
    run_cli(*base, "zones", "remove", zone, "--by", "clerk-1")
    assert json.loads(run_cli(*base, "zones", "list", "--json").stdout) == []
    gone = run_cli(*base, "zones", "status", zone, check=False)
    assert gone.returncode == 1 and "no privacy zone" in gone.stderr
    bad = run_cli(*base, "zones", "add", "nan,1,10", "--by", "clerk-1", check=False)
    assert bad.returncode == 1 and "finite" in bad.stderr
