"""A privacy zone registered while a camera streams (issue #23): the stream ends, and older
grants of the camera open nothing more. A real GStreamer RTSP camera, a real store file, the
CLI as a second process."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest
from camgate import Camera, ConsentTerms, EndReason, Gate, Owner, Waiver
from camgate.errors import ZoneRefused
from camgate.testing import run_cli
from camgate_rtsp.testing.server import RtspTestServer

from .conftest import CENTRE

#: A home 40 m north of the cameras (which face north, 60 m range).
HOME = f"{CENTRE.lat + 40 / 111_000},{CENTRE.lon},15"
FAR = f"{CENTRE.lat - 400 / 111_000},{CENTRE.lon},15"


async def _setup(gate: Gate, url: str) -> str:
    waiver = gate.publish_waiver(Waiver("w1", "I agree."))
    gate.add_owner(Owner("alice", "Alice"))
    for cam in ("p1", "p2"):
        gate.add_camera(
            Camera(cam, "rtsp", url, "alice", CENTRE, heading_deg=0.0, fov_deg=90.0, range_m=60.0)
        )
    gate.enrol(
        "alice", ["p1", "p2"], waiver_version="w1", waiver_sha256=waiver.sha256,
        terms=ConsentTerms(scopes=["live", "snapshot", "recorded"]),
    )  # fmt: skip
    return gate.report_incident("shooting", CENTRE, 500.0).id


def _ends(gate: Gate) -> list[dict[str, Any]]:
    return [dict(r.body) for r in gate.audit.records("access.end")]


async def _packets(stream: Any, count: int) -> int:
    got = 0
    async for _packet in stream:
        got += 1
        if got == count:
            break
    return got


def test_a_zone_registered_here_ends_the_open_stream_and_refuses_older_grants(
    tmp_path: Path, server: RtspTestServer
) -> None:
    async def main() -> None:
        gate = Gate.open(tmp_path / "g.db")
        try:
            incident = await _setup(gate, server.url("/cam1"))

            async def ask(cam: str, scope: str) -> Any:
                return await gate.request_access(incident, cam, scope, requested_by="o1")

            live, snap, clip = [await ask("p1", s) for s in ("live", "snapshot", "live")]
            stream = await gate.edge.open_live("p1", live)
            assert await _packets(stream, 3) == 3
            # A zone nowhere near: nothing ends.
            gate.register_zone(FAR, by="clerk-1")
            assert await _packets(stream, 2) == 2
            served = stream.stats().packets
            gate.register_zone(HOME, by="clerk-1")
            # Not one more packet: the stream ends with the zone's reason.
            assert await _packets(stream, 1) == 0
            stats = stream.stats()
            assert stats.packets == served and stats.end_reason == EndReason.PRIVACY_ZONE
            assert _ends(gate)[-1]["reason"] == "privacy-zone-unmasked"
            assert _ends(gate)[-1]["grant"] == live.grant.id
            # A snapshot and a clip under grants issued before the zone are refused.
            with pytest.raises(ZoneRefused, match="privacy zone"):
                await gate.edge.snapshot("p1", snap)
            with pytest.raises(ZoneRefused, match="privacy zone"):
                await gate.edge.record_clip("p1", clip, tmp_path / "c.mp4", 1.0)
            assert not (tmp_path / "c.mp4").exists()
        finally:
            await gate.aclose()

    anyio.run(main)


def test_a_zone_registered_by_another_process_ends_the_stream_at_its_next_packet(
    tmp_path: Path, server: RtspTestServer
) -> None:
    db = tmp_path / "g.db"

    async def main() -> None:
        gate = Gate.open(db)
        try:
            incident = await _setup(gate, server.url("/cam1"))
            live = await gate.request_access(incident, "p1", "live", requested_by="o1")
            stream = await gate.edge.open_live("p1", live)
            assert await _packets(stream, 3) == 3
            await anyio.to_thread.run_sync(
                lambda: run_cli("--db", str(db), "zones", "add", HOME, "--by", "clerk-1")
            )
            with anyio.fail_after(10):
                await _packets(stream, 10_000)  # ends by itself, well before that
            assert stream.stats().end_reason == EndReason.PRIVACY_ZONE
            assert _ends(gate)[-1]["reason"] == "privacy-zone-unmasked"
        finally:
            await gate.aclose()

    anyio.run(main)


def test_a_zone_registered_from_a_worker_thread_ends_the_stream_at_its_next_packet(
    tmp_path: Path, server: RtspTestServer
) -> None:
    """A server handing register_zone to a worker thread: the halt cannot interrupt the
    event loop's read from there, so the stream ends before its next packet instead."""

    async def main() -> None:
        gate = Gate.open(tmp_path / "g.db")
        try:
            incident = await _setup(gate, server.url("/cam1"))
            live = await gate.request_access(incident, "p1", "live", requested_by="o1")
            stream = await gate.edge.open_live("p1", live)
            assert await _packets(stream, 3) == 3
            served = stream.stats().packets
            await anyio.to_thread.run_sync(lambda: gate.register_zone(HOME, by="clerk-1"))
            assert await _packets(stream, 1) == 0
            assert stream.stats().packets == served
            assert stream.stats().end_reason == EndReason.PRIVACY_ZONE
        finally:
            await gate.aclose()

    anyio.run(main)
