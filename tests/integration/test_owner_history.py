"""`camgate owner history`: every access to one owner's cameras from a real flow (real RTSP
server, real clip and snapshot files), and nothing about anyone else."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import pytest
from camgate import AccessDenied
from camgate.audit import AuditLog
from camgate.testing import run_cli

if TYPE_CHECKING:
    from conftest import World

pytestmark = pytest.mark.anyio


async def test_owner_history_shows_exactly_that_owners_accesses(
    world: World, tmp_path: Path
) -> None:
    gate = world.gate
    clip = tmp_path / "clip.mp4"
    live = await world.grant("live", duration_s=20)
    await gate.edge.record_clip("cam-a", live, clip, 1.0)
    snap_grant = await world.grant("snapshot")
    snap = await gate.edge.snapshot("cam-a", snap_grant)
    jpeg = tmp_path / "snap.jpg"
    jpeg.write_bytes(snap.jpeg)
    gate.retention.register(jpeg, "snapshot", camera_id="cam-a", grant_id=snap_grant.grant.id)
    now = gate.clock.now()
    with pytest.raises(AccessDenied):  # Alice does not share recordings
        await gate.request_access(
            world.incident.id, "cam-a", "recorded", requested_by="officer-7",
            window=(now - timedelta(hours=1), now - timedelta(minutes=30)),
        )  # fmt: skip
    bob_refusals = []
    for scope in ("live", "snapshot"):
        with pytest.raises(AccessDenied) as refused:
            await world.grant(scope, camera="cam-b")
        bob_refusals.append(refused.value.decision.request_id)
    await gate.revoke("alice")
    db = str(gate.store.path)
    await anyio.to_thread.run_sync(gate.audit.close)  # the CLI process appends nothing; be safe

    history = json.loads(run_cli("--db", db, "owner", "history", "alice", "--json").stdout)
    alice_requests = {
        r[0]
        for r in gate.store.query(
            "SELECT id FROM requests WHERE json_extract(doc, '$.camera_id')=?", ("cam-a",)
        )
    }
    assert {r["id"] for r in history["requests"]} == alice_requests and len(alice_requests) == 3
    by_scope = {r["scope"]: r for r in history["requests"]}
    assert by_scope["recorded"]["outcome"] == "refused"
    assert by_scope["recorded"]["reasons"] and not by_scope["recorded"]["access"]
    assert {r["incident_kind"] for r in history["requests"]} == {"burglary"}
    assert by_scope["live"]["outcome"] == "granted" and by_scope["live"]["grant"] == live.grant.id
    watched = by_scope["live"]["access"]
    assert watched["seconds"] > 0.5 and watched["packets"] > 10 and watched["bytes"] > 1000
    [clip_export] = by_scope["live"]["exports"]
    assert clip_export["kind"] == "clip"
    assert clip_export["sha256"] == hashlib.sha256(clip.read_bytes()).hexdigest()
    [snap_export] = by_scope["snapshot"]["exports"]
    assert snap_export["sha256"] == hashlib.sha256(jpeg.read_bytes()).hexdigest()
    assert by_scope["snapshot"]["access"]["sha256"] == snap_export["sha256"]
    assert history["revocations"] == [{"at": history["revocations"][0]["at"], "cameras": ["cam-a"]}]
    assert len(history["notifications"]) == len(gate.store.notices("alice"))
    assert history["summary"] | {"access_seconds": 0} == {
        "requests": 3, "granted": 2, "refused": 1, "no-answer": 0, "waiting": 0,
        "access_seconds": 0, "exports": 2, "deleted": 0, "revocations": 1,
        "notifications": len(gate.store.notices("alice")),
    }  # fmt: skip

    text = run_cli("--db", db, "owner", "history", "alice").stdout
    assert "3 requests — 2 granted, 1 refused" in text and clip_export["sha256"] in text
    for shown in (json.dumps(history), text):
        assert "cam-b" not in shown and "bob" not in shown.lower()
        assert not any(rid in shown for rid in bob_refusals)

    bob = json.loads(run_cli("--db", db, "owner", "history", "bob", "--json").stdout)
    assert {r["id"] for r in bob["requests"]} == set(bob_refusals)
    assert "cam-a" not in json.dumps(bob) and "alice" not in json.dumps(bob).lower()
    missing = run_cli("--db", db, "owner", "history", "carol", check=False)
    assert missing.returncode == 1 and "no owner 'carol'" in missing.stderr

    proved = json.loads(
        run_cli("--db", db, "owner", "history", "alice", "--verify", "--json").stdout
    )
    audit = AuditLog(gate.store)
    try:
        tagged = [r.seq for r in audit.records() if "alice" in r.owners]
    finally:
        audit.close()
    assert proved["slice"]["ok"] is True and proved["slice"]["records"] == len(tagged)
    with sqlite3.connect(db) as conn:  # rewrite one of Alice's records behind the log's back
        conn.execute(
            "UPDATE audit SET body = replace(body, 'officer-7', 'officer-8') WHERE seq = ?",
            (tagged[2],),
        )
    broken = run_cli("--db", db, "owner", "history", "alice", "--verify", check=False)
    assert broken.returncode == 1 and "slice does NOT verify" in broken.stdout
