"""``camgate demo``: the whole path, from a reported incident to frames on disk, for real.

It starts the rtsp adapter's simulator (a GStreamer RTSP server on loopback) with two cameras
(or, with ``vendor``, another installed adapter's simulator: ``camgate demo --vendor ring`` runs
the same story on two simulated Ring cameras, live over WebRTC), enrols both under a waiver —
Alice allows live and snapshot, Bob allows nothing live — reports a burglary near both, asks for
a snapshot and a live clip of each, and writes into the output folder what the gate let through,
the audit trail and ``summary.json``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from camgate.audit.seal import seal_path
from camgate.errors import AccessDenied
from camgate.gate import Gate
from camgate.media.files import write_private
from camgate.models import Camera, CameraClass, ConsentTerms, GeoPoint, Owner, Scope, Waiver
from camgate.retention import export_bytes

__all__ = ["WAIVER_TEXT", "run_demo"]

WAIVER_TEXT = """\
I own the camera(s) named below and let the Real Time Crime Center reach them only while a crime
reported near them is open, only in the ways I allow, and I am told of every access. I can revoke
this at any moment and the access ends at once."""

CLIP_SECONDS = 5.0
JACKSON = GeoPoint(32.2988, -90.1848)


async def run_demo(out: Path, *, vendor: str = "rtsp", log: Any = print) -> dict[str, Any]:
    """Run the demo into ``out`` (created; an earlier demo's files there are replaced) on two
    cameras of ``vendor``'s simulator (an installed adapter that registers one; PluginError
    otherwise).

    Returns the summary that is also written to ``out/summary.json`` (``vendor`` among it).
    """
    out.mkdir(parents=True, exist_ok=True)
    db = out / "camgate.db"
    seal = seal_path(db)  # an earlier demo's log, its key and seal all go: a fresh start
    for stale in (db, *out.glob("camgate.db-*"), out / "camgate.key", seal, Path(f"{seal}.lock")):
        stale.unlink(missing_ok=True)
    gate = Gate.open(db)
    files: list[str] = []
    granted: list[str] = []
    denied: dict[str, list[str]] = {}
    try:
        with gate.host.simulator(vendor, 2) as sim:
            gate.edge.configure(vendor, sim.settings)
            log(f"{vendor} simulator up: {', '.join(sim.sources)}")
            waiver = gate.publish_waiver(Waiver("jackson-pilot-1", WAIVER_TEXT))
            people = [
                (Owner("alice", "Alice (corner store)"), {Scope.LIVE, Scope.SNAPSHOT}, 40.0),
                (Owner("bob", "Bob (residence)"), {Scope.RECORDED}, -60.0),
            ]
            for (owner, scopes, offset_m), source in zip(people, sim.sources, strict=True):
                gate.add_owner(owner)
                position = GeoPoint(JACKSON.lat + offset_m / 111_000, JACKSON.lon)
                gate.add_camera(
                    Camera(
                        id=f"cam-{owner.id}",
                        adapter=vendor,
                        source=source,
                        owner_id=owner.id,
                        position=position,
                        camera_class=CameraClass.PRIVATE,
                        label=owner.name,
                    )
                )
                gate.enrol(
                    owner.id,
                    [f"cam-{owner.id}"],
                    waiver_version=waiver.version,
                    waiver_sha256=waiver.sha256,
                    terms=ConsentTerms(scopes=scopes),
                )
                log(f"enrolled cam-{owner.id}: {owner.name} allows {sorted(map(str, scopes))}")
            incident = gate.report_incident("burglary", JACKSON, radius_m=500.0)
            log(f"incident {incident.id}: burglary, 500 m around {JACKSON.lat}, {JACKSON.lon}")
            for camera in gate.store.cameras():
                for scope in (Scope.SNAPSHOT, Scope.LIVE):
                    try:
                        signed = await gate.request_access(
                            incident.id,
                            camera.id,
                            scope,
                            requested_by="rtcc-demo",
                            duration_s=CLIP_SECONDS + 15.0,
                        )
                    except AccessDenied as refusal:
                        reasons = denied.setdefault(camera.id, [])
                        reasons.extend(r for r in refusal.decision.reasons if r not in reasons)
                        log(f"{camera.id} {scope}: refused ({'; '.join(refusal.decision.reasons)})")
                        continue
                    if scope is Scope.SNAPSHOT:
                        snap = await gate.edge.snapshot(camera.id, signed)
                        path = out / f"{camera.id}-snapshot.jpg"
                        export_bytes(  # private, registered for retention like every export
                            gate.retention,
                            path,
                            "snapshot",
                            snap.jpeg,
                            camera_id=camera.id,
                            grant_id=signed.grant.id,
                            created_at=snap.taken_at,
                            replace=True,
                        )
                        log(f"{camera.id} snapshot: {snap.width}x{snap.height}, {len(snap.jpeg)} B")
                    else:
                        path = out / f"{camera.id}-clip.mp4"
                        clip = await gate.edge.record_clip(camera.id, signed, path, CLIP_SECONDS)
                        log(f"{camera.id} clip: {clip.duration_s:.2f} s, {clip.size} B")
                    files.append(str(path))
                    if camera.id not in granted:
                        granted.append(camera.id)
        result = gate.audit.verify()
        audit_path = out / "audit.jsonl"
        audit_lines = "".join(line + "\n" for line in gate.audit.export_jsonl())
        write_private(audit_path, audit_lines.encode(), replace=True)
        files.append(str(audit_path))
        notices = {o: gate.store.notices(o) for o in ("alice", "bob")}
    finally:
        await gate.aclose()
    summary = {
        "vendor": vendor,
        "granted": granted,
        "denied": [{"camera": cam, "reasons": reasons} for cam, reasons in denied.items()],
        "files": files,
        "audit_ok": result.ok,
        "audit_records": result.records,
        "audit_head": result.head,
        "incident": incident.id,
        "owner_notices": {owner: len(items) for owner, items in notices.items()},
    }
    write_private(
        out / "summary.json", (json.dumps(summary, indent=2) + "\n").encode(), replace=True
    )
    log(f"audit chain: {result.records} records, {'verified' if result.ok else 'BROKEN'}")
    return summary
