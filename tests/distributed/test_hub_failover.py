"""A hub killed mid-stream: the other hub serves, and nothing was served unaudited.

Hub A is a real subprocess holding a Gate (and its in-process edge) on the shared PostgreSQL,
streaming a real RTSP camera to an officer (each packet it hands over is a line on its stdout).
It is SIGKILLed mid-stream. The officer asks again through hub B (this process, the same
database) and is served. Afterwards the shared audit log verifies; the only ``access.start``
without an ``access.end`` is the stream of the killed hub — the architecture settles intents
(changes half-made), not streams a dead process had open: its start was durable before its first
packet, which is what "nothing unaudited" needs. A's grant, redeemed once, cannot be reopened
through B.

And PostgreSQL restarted while a request is in flight: the request fails with a clear camgate
error, nothing of it is written (no request, decision or grant row, no audit record, no intent),
the log verifies, and the next request succeeds on the same hub. (core/tests/test_store_pg.py
proves this for one store transaction; this is a whole access request through the gate.)
"""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from camgate import Camera, ConsentTerms, Gate, GeoPoint, Owner, Waiver
from camgate.errors import CamgateError, GrantReplayed, StorageError
from camgate.hookspecs import hookimpl
from camgate.testing.pgserver import PostgresServer, server_for_tests
from camgate_rtsp.testing.server import RtspTestServer

pytestmark = pytest.mark.anyio
HOME = GeoPoint(32.2988, -90.1848)

#: Hub A: request a live grant, open the stream, print each packet handed to the officer.
HUB_A = textwrap.dedent(
    """
    import sys, anyio
    from camgate import Gate

    async def main(dsn, incident):
        gate = Gate.open(dsn)
        grant = await gate.request_access(
            incident, "cam-a", "live", requested_by="officer-7", duration_s=120
        )
        print("grant", grant.grant.id, grant.token, flush=True)
        stream = await gate.edge.open_live("cam-a", grant)
        async for packet in stream:
            print("packet", len(packet.data), flush=True)

    anyio.run(main, sys.argv[1], sys.argv[2])
    """
)


def _setup(gate: Gate, source: str) -> str:
    """Alice's camera enrolled for live view, and an incident near it (its id)."""
    waiver = gate.publish_waiver(Waiver("w1", "I agree."))
    gate.add_owner(Owner("alice", "Alice"))
    gate.add_camera(
        Camera(id="cam-a", adapter="rtsp", source=source, owner_id="alice", position=HOME)
    )
    gate.enrol(
        "alice",
        ["cam-a"],
        waiver_version="w1",
        waiver_sha256=waiver.sha256,
        terms=ConsentTerms(scopes=["live"]),
    )
    return gate.report_incident("burglary", HOME, radius_m=300).id


async def test_a_hub_killed_mid_stream_the_other_serves_and_nothing_is_unaudited(
    tmp_path: Path,
    postgres: Any,
    hub_camera: RtspTestServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CAMGATE_HOME", str(tmp_path))  # both hubs: the same key file
    monkeypatch.delenv("CAMGATE_AUDIT_DSN", raising=False)
    dsn = postgres.create_database()
    gate = Gate.open(dsn)  # hub B
    try:
        incident_id = _setup(gate, hub_camera.url("/cam1"))
        hub_a = subprocess.Popen(  # noqa: ASYNC220 - a long-running process
            [sys.executable, "-c", HUB_A, dsn, incident_id],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=dict(os.environ),
        )
        assert hub_a.stdout is not None
        said: list[str] = []  # what hub A handed the officer, line by line
        try:
            with anyio.fail_after(60):
                while sum(line.startswith("packet ") for line in said) < 5:
                    line = await anyio.to_thread.run_sync(
                        hub_a.stdout.readline, abandon_on_cancel=True
                    )
                    assert line, "hub A exited:\n" + "".join(said)
                    said.append(line)
            os.kill(hub_a.pid, signal.SIGKILL)  # mid-stream: no access.end, no close
            hub_a.wait(timeout=20)
        finally:
            if hub_a.poll() is None:
                hub_a.kill()
                hub_a.wait()
        seen_through_a = sum(line.startswith("packet ") for line in said)
        _, a_grant_id, a_token = next(line for line in said if line.startswith("grant ")).split()

        # The officer reopens A's grant through B: it was redeemed once, so it is refused.
        with pytest.raises(GrantReplayed, match="already redeemed"):
            await gate.edge.open_live("cam-a", a_token)
        # The officer asks again through hub B and is served.
        grant = await gate.request_access(
            incident_id, "cam-a", "live", requested_by="officer-7", duration_s=60
        )
        stream = await gate.edge.open_live("cam-a", grant)
        served_by_b = 0
        with anyio.fail_after(30):
            async for _packet in stream:
                served_by_b += 1
                if served_by_b >= 5:
                    break
        await stream.aclose()
    finally:
        await gate.aclose()

    # A fresh opening (any process writing the log does this): recovery and sealing.
    gate = Gate.open(dsn)
    try:
        assert gate.store.intents() == []  # nothing half-made left by the killed hub
        verdict = gate.audit.verify()
        assert verdict.ok, verdict
        starts = {r.body["grant"]["id"]: r for r in gate.audit.records("access.start")}
        ends = {r.body["grant"]: r for r in gate.audit.records("access.end")}
        issued = [r.body["id"] for r in gate.audit.records("grant.issued")]
        assert sorted(issued) == sorted([a_grant_id, grant.grant.id])
        # Every stream that handed out a packet was started in the log, before its end.
        assert set(starts) == {a_grant_id, grant.grant.id}
        assert ends[grant.grant.id].seq > starts[grant.grant.id].seq
        assert ends[grant.grant.id].body["packets"] >= served_by_b
        # The killed hub's stream is the only one left open; its start was durable first.
        assert set(starts) - set(ends) == {a_grant_id}
        assert seen_through_a >= 5
        # A's refused reopening did not count as an access.
        assert len(list(gate.audit.records("access.start"))) == 2
    finally:
        await gate.aclose()


@pytest.fixture(scope="module")
def own_server() -> Iterator[PostgresServer]:
    """A server of this module's own, which the restart test stops and starts."""
    with server_for_tests() as server:
        yield server


class RestartMidDecision:
    """A consent policy (a real plugin, through the hook every request reaches) that stops the
    PostgreSQL server while the gate decides, once armed."""

    def __init__(self, server: PostgresServer) -> None:
        self.server = server
        self.armed = False

    @hookimpl
    def camgate_consent_vote(self, ctx: Any) -> None:
        if self.armed:
            self.armed = False
            self.server.pause()


def _counts(gate: Gate) -> dict[str, int]:
    tables = ("requests", "decisions", "grants", "redeemed", "audit_intents")
    return {t: int(gate.store.query(f"SELECT COUNT(*) FROM {t}")[0][0]) for t in tables}


def _reconnected(call: Any) -> Any:
    """``call()``; a store connection the restart cut fails once, clearly, then connects
    again (core/tests/test_store_pg.py), so a StorageError saying so gets one retry."""
    try:
        return call()
    except StorageError as exc:
        error = exc
    assert "the next call connects again" in str(error), error
    return call()


async def test_postgres_restarted_mid_request_leaves_nothing_half_written(
    tmp_path: Path,
    own_server: PostgresServer,
    hub_camera: RtspTestServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CAMGATE_HOME", str(tmp_path))
    monkeypatch.delenv("CAMGATE_AUDIT_DSN", raising=False)
    dsn = own_server.create_database()
    gate = Gate.open(dsn)
    restart = RestartMidDecision(own_server)
    gate.host.register(restart, "restart-mid-decision")
    try:
        incident_id = _setup(gate, hub_camera.url("/cam1"))
        before, head = _counts(gate), gate.audit.last_seq()
        restart.armed = True
        try:
            with pytest.raises(CamgateError) as failed:
                await gate.request_access(
                    incident_id, "cam-a", "live", requested_by="officer-7", duration_s=60
                )
        finally:
            if not own_server._started:
                own_server.resume()
        assert not restart.armed  # the server was stopped mid-request, not before it
        print(f"in flight: {type(failed.value).__name__}: {failed.value}")
        said = str(failed.value)
        assert own_server.dsn.rsplit("/", 1)[0].split("@", 1)[1] in said, said  # where it failed
        assert "Traceback" not in said and "psycopg" not in type(failed.value).__module__
        # Nothing of the request is in the store or the log.
        assert _reconnected(lambda: _counts(gate)) == before
        assert _reconnected(gate.audit.last_seq) == head
        assert gate.audit.verify().ok
        # The same hub serves requests again once the server is back: the store's cut
        # connection fails one more write, saying nothing was written, then connects again.
        ask = functools.partial(
            gate.request_access, incident_id, "cam-a", "live", requested_by="officer-7",
            duration_s=60,
        )  # fmt: skip
        try:
            grant = await ask()
        except StorageError as exc:
            assert "nothing of it was written" in str(exc), exc  # noqa: PT017
            grant = await ask()
        after = _counts(gate)
        assert after["grants"] == before["grants"] + 1 and after["audit_intents"] == 0
        issued = [r.body["id"] for r in gate.audit.records("grant.issued")]
        assert issued == [grant.grant.id]
    finally:
        await gate.aclose()
