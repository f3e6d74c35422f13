"""A real gate (store, audit log, plugins from entry points) with cameras on a real GStreamer
RTSP server, for tests of core behaviour (gate, edge, relay, media, retention, audit, CLI) that
use the rtsp adapter as a real camera. The rtsp plugin's own tests (plugins/rtsp/tests) keep only
what tests the adapter and its test servers.

Every test's audit log is read back at teardown and each record held against
``camgate.vocab.AuditKind``: a kind the enum does not name, or a body field its kind does not
list, fails the test with what to add.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from camgate import Camera, ConsentTerms, Gate, GeoPoint, Incident, Owner, SignedGrant, Waiver
from camgate.vocab import AuditKind
from camgate_rtsp.testing.server import Mount, RtspTestServer, serving

#: The password of the digest-protected mount ``/secure`` (user ``officer``): characters that
#: must be percent-encoded in a URL, so a test sees credentials carried intact.
SECRET = "pa:ss w@rd/ü"
HOME = GeoPoint(32.2988, -90.1848)
ADD = (
    "add it to camgate.vocab.AuditKind, then run "
    "uv run --locked python tests/meta/vocab_docs.py --write"
)


@pytest.fixture(scope="session")
def rtsp_server() -> Iterator[RtspTestServer]:
    """One server for the session: ``/cam1`` and ``/cam2`` (640x360 H.264 at 30 fps, a keyframe
    every second) and ``/secure`` (digest, user ``officer``, password :data:`SECRET`)."""
    mounts = [
        Mount("/cam1", gop_frames=30),
        Mount("/cam2", gop_frames=30),
        Mount("/secure", username="officer", password=SECRET),
    ]
    with serving(mounts) as server:
        yield server


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class World:
    """A gate over real files: Alice's camera ``cam-a`` (``/cam1``) enrolled for live and
    snapshot, Bob's ``cam-b`` (``/cam2``, 100 m north) for recorded footage only, waiver ``w1``,
    and an open burglary incident beside ``cam-a``."""

    def __init__(self, gate: Gate, server: RtspTestServer) -> None:
        self.gate = gate
        self.server = server
        self.waiver = gate.publish_waiver(Waiver("w1", "I agree to share my camera."))
        gate.add_owner(Owner("alice", "Alice"))
        gate.add_owner(Owner("bob", "Bob"))
        self.cam = gate.add_camera(
            Camera(
                id="cam-a",
                adapter="rtsp",
                source=server.url("/cam1"),
                owner_id="alice",
                position=HOME,
            )
        )
        self.cam_b = gate.add_camera(
            Camera(
                id="cam-b",
                adapter="rtsp",
                source=server.url("/cam2"),
                owner_id="bob",
                position=GeoPoint(HOME.lat + 0.001, HOME.lon),
            )
        )
        gate.enrol(
            "alice",
            ["cam-a"],
            waiver_version="w1",
            waiver_sha256=self.waiver.sha256,
            terms=ConsentTerms(scopes=["live", "snapshot"]),
        )
        gate.enrol(
            "bob",
            ["cam-b"],
            waiver_version="w1",
            waiver_sha256=self.waiver.sha256,
            terms=ConsentTerms(scopes=["recorded"]),
        )
        self.incident: Incident = gate.report_incident("burglary", HOME, radius_m=300)

    def enrol_camera(
        self,
        camera_id: str,
        source: str,
        scopes: tuple[str, ...] = ("live", "snapshot"),
        *,
        battery: bool = False,
    ) -> Camera:
        """Register one more of Alice's cameras at ``source`` (beside ``cam-a``) and enrol it
        under ``scopes``."""
        camera = self.gate.add_camera(
            Camera(
                id=camera_id,
                adapter="rtsp",
                source=source,
                owner_id="alice",
                position=self.cam.position,
                battery=battery,
            )
        )
        self.gate.enrol(
            "alice",
            [camera_id],
            waiver_version="w1",
            waiver_sha256=self.waiver.sha256,
            terms=ConsentTerms(scopes=scopes),
        )
        return camera

    async def grant(
        self, scope: str = "live", camera: str = "cam-a", duration_s: float = 30.0
    ) -> SignedGrant:
        """A grant for ``camera`` under the open incident, requested by ``officer-7``."""
        return await self.gate.request_access(
            self.incident.id, camera, scope, requested_by="officer-7", duration_s=duration_s
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
