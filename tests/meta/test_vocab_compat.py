"""Logs written before camgate.vocab still verify, and the enums write the same words.

``data/pre-vocab/`` is a store written by camgate as it was before the enums (commit 56f3017):
a live view closed, a snapshot, a stream ended by new masks, one ended by a revocation, the
incident closed; with its signing key (made for this fixture only) and its seal. The test
opens a copy with today's code, writes the same kinds of records again through a real RTSP
camera, and checks that the chain — old records and new — verifies, and that old and new
records carry the same kind and reason texts.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import anyio
import pytest
from camgate import Camera, ConsentTerms, Gate, GeoPoint, Owner, Waiver
from camgate.activity import owner_history
from camgate.testing import run_cli
from camgate.vocab import AuditKind, EndReason
from camgate_rtsp.testing.server import Mount, serving

DATA = Path(__file__).with_name("data") / "pre-vocab"
HOME = GeoPoint(32.2988, -90.1848)
OLD_REASONS = ["closed", "completed", "masks-changed", "revoked"]

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _rows(db: Path) -> list[tuple[int, str, str, str | None]]:
    with sqlite3.connect(db) as conn:
        return conn.execute(
            "SELECT seq, kind, typeof(kind), json_extract(body, '$.reason') FROM audit ORDER BY seq"
        ).fetchall()


async def _same_story(gate: Gate, source: str) -> None:
    """What the fixture's old code did, for bob's camera, through today's code."""
    gate.add_owner(Owner("bob", "Bob"))
    gate.add_camera(
        Camera(id="cam-b", adapter="rtsp", source=source, owner_id="bob", position=HOME)
    )
    waiver = gate.publish_waiver(Waiver("w2", "I agree to share my camera, version two."))
    terms = ConsentTerms(scopes=["live", "snapshot"])
    gate.enrol("bob", ["cam-b"], waiver_version="w2", waiver_sha256=waiver.sha256, terms=terms)
    incident = gate.report_incident("burglary", HOME, radius_m=300)

    async def grant(scope: str):  # type: ignore[no-untyped-def]
        return await gate.request_access(
            incident.id, "cam-b", scope, requested_by="officer-7", duration_s=30
        )

    async with await gate.edge.open_live("cam-b", await grant("live")) as stream:
        await stream.__anext__()
    await gate.edge.snapshot("cam-b", await grant("snapshot"))
    stream = await gate.edge.open_live("cam-b", await grant("live"))
    await stream.__anext__()
    await gate.set_masks("bob", "cam-b", [[(0.0, 0.0), (0.5, 0.0), (0.5, 0.5)]])
    with anyio.fail_after(10):
        assert [p async for p in stream] == []
    stream = await gate.edge.open_live("cam-b", await grant("live"))
    await stream.__anext__()
    await gate.revoke("bob")
    await stream.aclose()
    gate.close_incident(incident.id)


async def test_an_old_log_verifies_and_old_and_new_records_say_the_same(tmp_path: Path) -> None:
    for suffix in ("db", "key", "seal"):  # named store.*: camgate.db and .key are git-ignored
        shutil.copy(DATA / f"store.{suffix}", tmp_path / f"camgate.{suffix}")
    db = tmp_path / "camgate.db"
    old = _rows(db)
    assert [r[3] for r in old if r[1] == "access.end"] == OLD_REASONS

    with serving([Mount("/cam1", gop_frames=30)]) as server:
        gate = Gate.open(db)
        try:
            await _same_story(gate, server.url("/cam1"))
            result = gate.audit.verify()
            history = owner_history(gate.store, gate.audit, "alice")
        finally:
            await gate.aclose()
    assert result.ok and result.records > len(old), result

    new = _rows(db)[len(old) :]
    assert {r[2] for r in new} == {"text"}  # the kind column holds plain text
    assert [r[3] for r in new if r[1] == "access.end"] == OLD_REASONS
    written = {r[1] for r in new}
    assert {r[1] for r in old} <= written <= {k.value for k in AuditKind}
    # Old records read back into today's history: the reasons are the enum's words.
    ends = [a["reason"] for r in history["requests"] if (a := r.get("access"))]
    assert sorted(ends) == sorted(OLD_REASONS) and all(e in set(EndReason) for e in ends)

    done = run_cli("--db", str(db), "audit", "verify", "--json", check=False)
    assert done.returncode == 0 and '"status": "consistent"' in done.stdout, done.stdout
