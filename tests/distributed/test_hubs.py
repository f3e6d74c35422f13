"""Two hubs on one PostgreSQL: a revocation made by one ends the other's live stream.

This process is hub A, streaming a real RTSP camera through its edge; hub B is the ``camgate``
CLI in another process, pointed at the same database. B's revocation commits with a NOTIFY;
A's LISTEN thread moves the version A's guard reads per packet, the guard reads consent again
and ends the stream with the revoked reason — audited in the shared log."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import pytest
from camgate import Camera, ConsentTerms, Gate, GeoPoint, Owner, Waiver
from camgate.errors import ConsentRevoked
from camgate_rtsp.testing.server import RtspTestServer

pytestmark = pytest.mark.anyio
HOME = GeoPoint(32.2988, -90.1848)


async def test_a_revocation_on_one_hub_ends_another_hubs_live_stream(
    tmp_path: Path,
    postgres: Any,
    hub_camera: RtspTestServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CAMGATE_HOME", str(tmp_path))  # both hubs: the same key file
    monkeypatch.delenv("CAMGATE_AUDIT_DSN", raising=False)
    dsn = postgres.create_database()
    gate = Gate.open(dsn)
    try:
        waiver = gate.publish_waiver(Waiver("w1", "I agree."))
        gate.add_owner(Owner("alice", "Alice"))
        gate.add_camera(
            Camera(
                id="cam-a",
                adapter="rtsp",
                source=hub_camera.url("/cam1"),
                owner_id="alice",
                position=HOME,
            )
        )
        gate.enrol(
            "alice",
            ["cam-a"],
            waiver_version="w1",
            waiver_sha256=waiver.sha256,
            terms=ConsentTerms(scopes=["live"]),
        )
        incident = gate.report_incident("burglary", HOME, radius_m=300)
        grant = await gate.request_access(
            incident.id, "cam-a", "live", requested_by="officer-7", duration_s=60
        )
        stream = await gate.edge.open_live("cam-a", grant)
        with anyio.fail_after(20):
            await stream.__anext__()
        env = {k: v for k, v in os.environ.items() if k != "CAMGATE_AUDIT_DSN"}
        hub_b = await anyio.run_process(
            [sys.executable, "-m", "camgate.cli", "--db", dsn, "revoke", "--owner", "alice"],
            env=env,
        )
        revoked_at = time.monotonic()
        assert b"cam-a" in hub_b.stdout
        with anyio.fail_after(10), pytest.raises(ConsentRevoked):
            async for _packet in stream:
                pass
        seen_after = time.monotonic() - revoked_at
        ends = list(gate.audit.records("access.end"))
        assert [r.body["reason"] for r in ends] == ["revoked"]
        revocations = list(gate.audit.records("consent.revoked"))  # hub B's, in the shared log
        assert len(revocations) == 1 and revocations[0].seq < ends[0].seq
        starts = list(gate.audit.records("access.start"))
        assert len(starts) == 1 and starts[0].seq < ends[0].seq  # audited before, and after
        assert gate.audit.verify().ok
        print(f"revocation seen by the other hub {seen_after * 1000:.0f} ms after B exited")
    finally:
        await gate.aclose()
