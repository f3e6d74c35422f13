"""A real gate (store, audit log, plugins from entry points) with a camera on a real GStreamer
RTSP server, for tests of behaviour that crosses core and an adapter.

Every test's audit log is read back at teardown and each record held against
``camgate.vocab.AuditKind``: a kind the enum does not name, or a body field its kind does not
list, fails the test with what to add.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from camgate import Camera, ConsentTerms, Gate, GeoPoint, Owner, SignedGrant, Waiver
from camgate.vocab import AuditKind
from camgate_rtsp.testing.server import Mount, RtspTestServer, serving

HOME = GeoPoint(32.2988, -90.1848)
ADD = (
    "add it to camgate.vocab.AuditKind, then run "
    "uv run --locked python tests/meta/vocab_docs.py --write"
)


@pytest.fixture(scope="module")
def rtsp_server() -> Iterator[RtspTestServer]:
    """Two cameras: 640x360 H.264 at 30 fps, a keyframe every second."""
    with serving([Mount("/cam1", gop_frames=30), Mount("/cam2", gop_frames=30)]) as server:
        yield server


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class World:
    """Alice's camera ``cam-a`` enrolled for live and snapshot, an open incident beside it."""

    def __init__(self, gate: Gate, server: RtspTestServer) -> None:
        self.gate = gate
        self.server = server
        self.waiver = gate.publish_waiver(Waiver("w1", "I agree to share my camera."))
        gate.add_owner(Owner("alice", "Alice"))
        gate.add_camera(
            Camera(
                id="cam-a",
                adapter="rtsp",
                source=server.url("/cam1"),
                owner_id="alice",
                position=HOME,
            )
        )
        gate.enrol(
            "alice",
            ["cam-a"],
            waiver_version="w1",
            waiver_sha256=self.waiver.sha256,
            terms=ConsentTerms(scopes=["live", "snapshot"]),
        )
        self.incident = gate.report_incident("burglary", HOME, radius_m=300)

    async def grant(self, scope: str = "live", duration_s: float = 30.0) -> SignedGrant:
        """A grant for ``cam-a`` under the open incident."""
        return await self.gate.request_access(
            self.incident.id, "cam-a", scope, requested_by="officer-7", duration_s=duration_s
        )


def undocumented(gate: Gate) -> list[str]:
    """Each record in the gate's log whose kind or fields ``AuditKind`` does not document."""
    known = {k.value: k for k in AuditKind}
    problems = []
    for record in gate.audit.records():
        kind = known.get(record.kind)
        if kind is None:
            problems.append(f"record {record.seq}: kind {record.kind!r} is not an AuditKind")
            continue
        extra = sorted(set(record.body) - set(kind.fields))
        if extra:
            problems.append(f"record {record.seq} ({kind}): fields {extra} not in its fields")
    return problems


@pytest.fixture
async def world(tmp_path: Path, rtsp_server: RtspTestServer) -> AsyncIterator[World]:
    gate = Gate.open(tmp_path / "camgate.db")
    try:
        yield World(gate, rtsp_server)
        problems = undocumented(gate)
        assert not problems, f"{'; '.join(problems)}: {ADD}"
    finally:
        await gate.aclose()
