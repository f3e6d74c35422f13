"""``GET /grants/{grant}/snapshot`` and ``GET /grants/{grant}/clip``: masked, decodable, audited
with their hash before the first byte, for the grant's officer only, inside the grant only.

The media comes from real cameras: a GStreamer RTSP server (snapshots) and a simulated ONVIF
device's recorded footage, whose every picture carries its index (clips)."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import anyio
import av
import pytest
from camgate import Gate
from camgate_onvif.testing import OnvifSimulator, read_code
from camgate_rtsp.testing.server import RtspTestServer
from camgate_server.accounts import AccountStore
from camgate_server.policy import Role
from fastapi import FastAPI

from . import media_world
from .conftest import CENTRE, PASSWORD, login
from .media_world import ONVIF_PROFILES, media_gate

pytestmark = [pytest.mark.anyio, pytest.mark.rtsp]
rtsp_server = media_world.rtsp_server

#: The top-left quarter of the picture, hidden by its owner.
MASK = [[(0.0, 0.0), (0.5, 0.0), (0.5, 0.5), (0.0, 0.5)]]


@pytest.fixture
def sim(rtsp_server: RtspTestServer) -> Iterator[OnvifSimulator]:
    """A simulated ONVIF device with 30 s of recorded footage, its live view on the server."""
    with OnvifSimulator(1, rtsp_server=rtsp_server, profiles=ONVIF_PROFILES) as device:
        yield device


@pytest.fixture
def gate(
    request: pytest.FixtureRequest, tmp_path: Path, rtsp_server: RtspTestServer
) -> Iterator[Gate]:
    """The media world; with the ONVIF device's o1 for a test that asks for ``sim``."""
    sim = request.getfixturevalue("sim") if "sim" in request.fixturenames else None
    gate = media_gate(tmp_path / "g.db", rtsp_server, onvif=sim)
    yield gate
    anyio.run(gate.aclose)


def _grey(jpeg: bytes) -> Any:
    """A JPEG's brightness, decoded by FFmpeg (PyAV)."""
    with av.open(io.BytesIO(jpeg)) as container:
        return next(iter(container.decode(video=0))).to_ndarray(format="gray")


async def _incident(officer: Any) -> str:
    made = await officer.send(
        "POST",
        "/incidents",
        json={"kind": "burglary", "lat": CENTRE.lat, "lon": CENTRE.lon, "radius_m": 300},
    )
    assert made.status_code == 201, made.text
    incident_id: str = made.json()["id"]
    return incident_id


async def _grant(officer: Any, camera: str, scope: str) -> tuple[str, str]:
    """The officer's grant for ``scope`` of ``camera`` under a new incident: (grant, incident)."""
    incident_id = await _incident(officer)
    asked = await officer.send(
        "POST", f"/incidents/{incident_id}/requests", json={"camera": camera, "scope": scope}
    )
    assert asked.status_code == 201, asked.text
    return asked.json()["grant"]["id"], incident_id


def _audited(gate: Gate, kind: str, grant_id: str) -> list[dict[str, Any]]:
    bodies = [r.body for r in gate.audit.records(kind)]
    return [
        b for b in bodies if grant_id in (b.get("grant"), b.get("grant_id"), _id(b.get("grant")))
    ]


def _id(grant: Any) -> Any:
    return grant.get("id") if isinstance(grant, dict) else None


def _problem(answer: Any, status: int, error: str) -> None:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["error"] == error


async def test_a_snapshot_is_a_masked_jpeg_audited_with_its_hash(
    sessions: dict[str, Any], gate: Gate
) -> None:
    await gate.set_masks("alice", "a1", MASK)
    operator = sessions["operator"]
    grant_id, _ = await _grant(operator, "a1", "snapshot")
    answer = await operator.get(f"/grants/{grant_id}/snapshot")
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "image/jpeg"
    assert answer.headers["cache-control"] == "no-store"
    grey = _grey(answer.content)
    height, width = grey.shape
    assert int(grey[: height // 2 - 2, : width // 2 - 2].max()) <= 24, "the mask is burnt in"
    assert int(grey[: height // 2, width // 2 + 2 :].max()) > 100, "the rest is the picture"
    digest = hashlib.sha256(answer.content).hexdigest()
    assert answer.headers["x-camgate-sha256"] == digest
    assert [e["sha256"] for e in _audited(gate, "access.end", grant_id)] == [digest]
    assert len(_audited(gate, "access.start", grant_id)) == 1
    # A grant is redeemed once.
    _problem(await operator.get(f"/grants/{grant_id}/snapshot"), 410, "GrantReplayed")


async def test_downloads_are_for_the_grants_officer_inside_its_scope_and_time(
    app: FastAPI, sessions: dict[str, Any], accounts: AccountStore, gate: Gate
) -> None:
    operator = sessions["operator"]
    grant_id, incident_id = await _grant(operator, "a1", "snapshot")
    url = f"/grants/{grant_id}/snapshot"
    accounts.create_account("operator2", PASSWORD, Role.OPERATOR)
    other = await login(app, "operator2")
    try:
        _problem(await other.get(url), 404, "NotFound")
    finally:
        await other.client.aclose()
    _problem(await sessions["alice"].get(url), 403, "Forbidden")
    _problem(await sessions["auditor"].get(url), 403, "Forbidden")
    _problem(await sessions["operator"].get("/grants/gr_nothing/snapshot"), 404, "NotFound")
    live_id, _ = await _grant(operator, "a1", "live")
    _problem(await operator.get(f"/grants/{live_id}/snapshot"), 403, "GrantMismatch")
    _problem(await operator.get(f"/grants/{live_id}/clip"), 403, "GrantMismatch")
    # Past its time: the incident the grant serves is closed.
    closed = await sessions["supervisor"].send("POST", f"/incidents/{incident_id}/close")
    assert closed.status_code == 200
    _problem(await operator.get(url), 410, "GrantExpired")
    assert _audited(gate, "access.start", grant_id) == []
    assert _audited(gate, "access.start", live_id) == []
    # The owner revokes: a grant issued before is gone.
    before, _ = await _grant(operator, "a1", "snapshot")
    assert (await sessions["alice"].send("POST", "/owners/me/revoke")).status_code == 200
    _problem(await operator.get(f"/grants/{before}/snapshot"), 410, "ConsentRevoked")


async def test_a_clip_holds_exactly_the_asked_part_of_the_recorded_window(
    sessions: dict[str, Any], gate: Gate, sim: OnvifSimulator, tmp_path: Path
) -> None:
    operator = sessions["operator"]
    officer_id = (await operator.get("/session")).json()["account"]["id"]
    incident_id = await _incident(operator)
    rec = sim.recording
    start, end = rec.start + timedelta(seconds=5), rec.start + timedelta(seconds=9)
    signed = await gate.request_access(
        incident_id, "o1", "recorded", requested_by=officer_id, window=(start, end)
    )
    url = f"/grants/{signed.grant.id}/clip"
    # Between two pictures' capture times: a boundary on one is a matter of microseconds.
    half = timedelta(seconds=0.5 / rec.fps)
    wanted = (start + timedelta(seconds=1.5) - half, start + timedelta(seconds=3) - half)
    outside = {"from": start.isoformat(), "to": (end + timedelta(seconds=1)).isoformat()}
    _problem(await operator.get(url, params=outside), 403, "GrantMismatch")
    naive = {"from": "2026-01-01T00:00:00", "to": "2026-01-01T00:00:01"}
    _problem(await operator.get(url, params=naive), 422, "ValidationError")
    _problem(await operator.get(url, params={"from": start.isoformat()}), 422, "ValidationError")
    assert _audited(gate, "access.start", signed.grant.id) == [], "no refusal redeemed it"
    answer = await operator.get(url, params={"from": wanted[0].isoformat(),
                                             "to": wanted[1].isoformat()})  # fmt: skip
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "video/mp4"
    path = tmp_path / "clip.mp4"
    path.write_bytes(answer.content)
    with av.open(str(path)) as container:
        assert container.streams.video[0].codec_context.name == "h264"
        shown = [read_code(frame) for frame in container.decode(video=0)]
    first = rec.index_at(wanted[0])
    while not rec.frames[first].keyframe:
        first += 1
    assert shown == list(range(first, rec.index_at(wanted[1]))), "the part asked for, whole"
    exported = _audited(gate, "clip.exported", signed.grant.id)
    digest = hashlib.sha256(answer.content).hexdigest()
    assert [e["sha256"] for e in exported] == [digest] == [answer.headers["x-camgate-sha256"]]


async def test_an_owner_looks_at_their_own_camera_and_nobody_else_does(
    sessions: dict[str, Any], gate: Gate
) -> None:
    """``POST /cameras/{id}/look``: the owner's own still, unmasked, audited as the owner's
    (naming the account), never an access; another owner 404, staff 403, no CSRF 403."""
    await gate.set_masks("alice", "a1", MASK)
    answer = await sessions["alice"].send("POST", "/cameras/a1/look")
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "image/jpeg"
    assert answer.headers["cache-control"] == "no-store"
    grey = _grey(answer.content)
    height, width = grey.shape
    assert int(grey[: height // 2 - 2, : width // 2 - 2].max()) > 100, "unmasked, for the owner"
    assert answer.headers["x-camgate-sha256"] == hashlib.sha256(answer.content).hexdigest()
    (look,) = [r.body for r in gate.audit.records("owner.look")]
    assert (look["owner"], look["camera"], look["by"]) == ("alice", "a1", "alice")
    assert not list(gate.audit.records("access.start"))
    _problem(await sessions["bob"].send("POST", "/cameras/a1/look"), 404, "NotFound")
    _problem(await sessions["alice"].send("POST", "/cameras/b1/look"), 404, "NotFound")
    for staff in ("operator", "admin", "auditor"):
        _problem(await sessions[staff].send("POST", "/cameras/a1/look"), 403, "Forbidden")
    no_csrf = await sessions["alice"].client.post("/cameras/a1/look")
    assert no_csrf.status_code == 403
    assert len(list(gate.audit.records("owner.look"))) == 1, "no refusal looked"


async def test_a_recorded_window_is_requested_over_http_and_downloaded(
    sessions: dict[str, Any], gate: Gate, sim: OnvifSimulator
) -> None:
    """``POST /incidents/{id}/requests`` takes the recorded window as ``from``/``to``; the
    grant says it, and its clip is that window. Without one (or with half, or naive times)
    the request is a 422 naming what is missing."""
    operator = sessions["operator"]
    incident_id = await _incident(operator)
    url = f"/incidents/{incident_id}/requests"
    rec = sim.recording
    start, end = rec.start + timedelta(seconds=5), rec.start + timedelta(seconds=7)
    body = {"camera": "o1", "scope": "recorded"}
    for bad, words in (
        ({}, "window"),
        ({"from": start.isoformat()}, "from and to go together"),
        ({"from": "2026-01-01T00:00:00", "to": "2026-01-01T00:00:05"}, "time zone"),
    ):
        refused = await operator.send("POST", url, json=body | bad)
        _problem(refused, 422, "ValidationError")
        assert words in refused.json()["detail"]
    asked = await operator.send(
        "POST", url, json=body | {"from": start.isoformat(), "to": end.isoformat()}
    )
    assert asked.status_code == 201, asked.text
    grant = asked.json()["grant"]
    assert (grant["from"], grant["to"]) == (start.isoformat(), end.isoformat())
    clip = await operator.get(f"/grants/{grant['id']}/clip")
    assert clip.status_code == 200, clip.text
    with av.open(io.BytesIO(clip.content)) as container:
        shown = [read_code(frame) for frame in container.decode(video=0)]
    first = rec.index_at(start)
    while not rec.frames[first].keyframe:
        first += 1
    assert shown == list(range(first, rec.index_at(end)))
