"""``WS /live/{grant}`` through uvicorn on loopback, from a real GStreamer RTSP camera: fMP4 that
PyAV decodes, audited before the first byte; revocation (through the HTTP API) and expiry close
the socket with their documented codes; nobody but the grant's officer opens it."""

from __future__ import annotations

import base64
import json
import logging
import re
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import av
import pytest
from camgate import EndReason, Gate
from camgate.errors import AccountUnlinked, ValidationError, ZoneRefused
from camgate.relay import RelaySettings
from camgate_rtsp.plugin import FACTORY
from camgate_server import downloads, live
from camgate_server.accounts import AccountStore
from camgate_server.live import CloseCode, Fmp4Segments, close_code
from camgate_server.policy import Role
from hypothesis import given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from . import media_world
from .conftest import CENTRE, PASSWORD
from .media_world import Person, grant, wait_for

# The media world's fixtures (its gate streams from a real RTSP server).
rtsp_server, gate, people = media_world.rtsp_server, media_world.gate, media_world.people

pytestmark = pytest.mark.rtsp

People = Callable[[str], Person]


def _socket(live_server: str, grant_id: str, **headers: str) -> ClientConnection:
    url = live_server.replace("http://", "ws://") + f"/live/{grant_id}"
    return connect(url, additional_headers=headers, open_timeout=30, max_size=None)


def _as_browser(live_server: str, person: Person, grant_id: str) -> ClientConnection:
    """The handshake a browser on the server's own pages sends: its cookie and Origin."""
    return _socket(live_server, grant_id, Cookie=person.cookie, Origin=live_server)


def _until_closed(ws: ClientConnection, timeout_s: float = 30.0) -> tuple[list[bytes], float]:
    """Every message until the server closes the socket, and when the close arrived."""
    got: list[bytes] = []
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            message = ws.recv(timeout=max(0.0, deadline - time.monotonic()))
        except ConnectionClosed:
            return got, time.monotonic()
        assert isinstance(message, bytes)
        got.append(message)


def _boxes(segment: bytes) -> list[bytes]:
    """The top-level box types of a segment."""
    kinds, at = [], 0
    while at < len(segment):
        size = int.from_bytes(segment[at : at + 4], "big")
        kinds.append(segment[at + 4 : at + 8])
        at += size
    return kinds


def _decoded(path: Path, messages: list[bytes]) -> tuple[str, int]:
    path.write_bytes(b"".join(messages))
    with av.open(str(path)) as container:
        codec = container.streams.video[0].codec_context.name
        return codec, sum(1 for _ in container.decode(video=0))


def grant_owner(gate: Gate, grant_id: str) -> str:
    """The account id whose request the grant answered."""
    token = gate.store.get_grant_token(grant_id)
    request_id = gate.edge.verifier.verify(token).request_id
    return gate.store.get_request(request_id).requested_by


def _records(gate: Gate, kind: str, grant_id: str) -> list[dict[str, Any]]:
    out = []
    for record in gate.audit.records(kind):
        named = record.body.get("grant")
        if (named.get("id") if isinstance(named, dict) else named) == grant_id:
            out.append(record.body)
    return out


def test_the_socket_carries_fmp4_that_decodes_and_is_audited_before_the_first_byte(
    live_server: str, people: People, gate: Gate, tmp_path: Path
) -> None:
    operator = people("operator")
    granted = grant(operator, "a1", duration_s=60)
    with _as_browser(live_server, operator, granted["id"]) as ws:
        init = ws.recv(timeout=30)
        assert isinstance(init, bytes)
        # The access is in the audit log, durable, before the first byte reached the client.
        assert [s["camera"] for s in _records(gate, "access.start", granted["id"])] == ["a1"]
        assert _boxes(init)[:2] == [b"ftyp", b"moov"] and b"moof" not in _boxes(init)
        media = [ws.recv(timeout=30) for _ in range(40)]
    for segment in media:
        assert isinstance(segment, bytes) and _boxes(segment) == [b"moof", b"mdat"]
    codec, frames = _decoded(tmp_path / "live.mp4", [init, *media])  # type: ignore[list-item]
    assert codec == "h264"
    # A picture per segment: each leaves as the next one arrives, not a keyframe interval later.
    assert frames == len(media)
    ended = wait_for(lambda: _records(gate, "access.end", granted["id"]))
    assert ended[0]["reason"] == "closed" and ended[0]["packets"] >= frames


def test_an_incident_reported_over_http_warms_the_gop_cache(
    live_server: str, people: People, gate: Gate
) -> None:
    """With the GOP cache on, ``POST /incidents`` (reported on a worker thread, off the event
    loop) warms the pre-authorised cameras it reaches, and a live view then starts at the
    cached keyframe, not at the camera's next one."""
    gate.edge.configure_relay(RelaySettings(gop_cache=True))
    operator = people("operator")
    reported = operator.post(
        "/incidents",
        json={"kind": "burglary", "lat": CENTRE.lat, "lon": CENTRE.lon, "radius_m": 300},
    )
    assert reported.status_code == 201, reported.text
    (warm,) = [r.body for r in gate.audit.records("cache.warm")]
    assert warm["incident"] == reported.json()["id"]
    assert "a1" in warm["cameras"] and "b1" not in warm["cameras"]  # bob asks first

    def cached() -> bool:
        up = gate.edge.relay_statistics().upstream("a1")
        return up is not None and up.cached_keyframes > 0

    wait_for(cached)
    granted = grant(operator, "a1", duration_s=60)
    with _as_browser(live_server, operator, granted["id"]) as ws:
        ws.recv(timeout=30)
        (started,) = _records(gate, "access.start", granted["id"])
    assert started["start"] == "cached", started


def test_an_h265_camera_arrives_as_h264(live_server: str, people: People, tmp_path: Path) -> None:
    operator = people("operator")
    granted = grant(operator, "h1", duration_s=60)
    with _as_browser(live_server, operator, granted["id"]) as ws:
        messages = [ws.recv(timeout=30) for _ in range(2)]
    codec, frames = _decoded(tmp_path / "h1.mp4", messages)  # type: ignore[arg-type]
    assert codec == "h264" and frames > 0


def test_revocation_through_the_api_closes_the_socket_within_the_budget(
    live_server: str, people: People, gate: Gate
) -> None:
    operator, alice = people("operator"), people("alice")
    granted = grant(operator, "a1", duration_s=60)
    with _as_browser(live_server, operator, granted["id"]) as ws:
        ws.recv(timeout=30)
        ws.recv(timeout=30)  # video is flowing
        asked = time.monotonic()
        assert alice.post("/owners/me/revoke").status_code == 200
        _, closed = _until_closed(ws)
        assert ws.close_code == CloseCode.REVOKED == 4001
        assert ws.close_reason == "ConsentRevoked"
    assert closed - asked <= FACTORY.budgets.revocation_s
    assert _records(gate, "access.end", granted["id"])[0]["reason"] == "revoked"


def test_expiry_closes_the_socket(live_server: str, people: People, gate: Gate) -> None:
    operator = people("operator")
    granted = grant(operator, "a1", duration_s=3)
    with _as_browser(live_server, operator, granted["id"]) as ws:
        messages, _ = _until_closed(ws)
        assert (ws.close_code, ws.close_reason) == (CloseCode.EXPIRED, "expired"), len(messages)
    assert len(messages) >= 2, "video flowed until the grant's end"
    assert _records(gate, "access.end", granted["id"])[0]["reason"] == "expired"
    # A grant that runs out while the camera is still being opened (or before the socket
    # redeems it) ends the same way.
    brief = grant(operator, "a1", duration_s=0.3)
    with _as_browser(live_server, operator, brief["id"]) as ws:
        _until_closed(ws)
        assert ws.close_code == 4002 and ws.close_reason in ("expired", "GrantExpired")


def _refused(ws: ClientConnection) -> tuple[int | None, str | None]:
    with ws:
        messages, _ = _until_closed(ws)
    assert messages == [], "a refused socket carries nothing"
    return ws.close_code, ws.close_reason


def test_only_the_grants_officer_opens_it_and_only_once(
    live_server: str, people: People, accounts: AccountStore, gate: Gate
) -> None:
    operator = people("operator")
    granted = grant(operator, "a1", duration_s=60)
    gid = granted["id"]
    accounts.create_account("operator2", PASSWORD, Role.OPERATOR)
    other = people("operator2")
    alice, auditor = people("alice"), people("auditor")
    officer = accounts.get_account(grant_owner(gate, gid))
    _, no_video, _ = accounts.create_token(officer, "cad", ["incidents:report"], 600)
    _, video, _ = accounts.create_token(officer, "wall", ["media:view"], 600)
    tries: dict[str, Callable[[], ClientConnection]] = {
        "another officer": lambda: _as_browser(live_server, other, gid),
        "an owner": lambda: _as_browser(live_server, alice, gid),
        "an auditor": lambda: _as_browser(live_server, auditor, gid),
        "nobody": lambda: _socket(live_server, gid),
        "a forged cookie": lambda: _socket(live_server, gid, Cookie=f"camgate_session={'x' * 43}"),
        "another site": lambda: _socket(
            live_server, gid, Cookie=operator.cookie, Origin="https://evil.example"
        ),
        "no such grant": lambda: _as_browser(live_server, operator, "gr_nothing"),
        "a token without media:view": lambda: _socket(
            live_server, gid, Authorization=f"Bearer {no_video}"
        ),
    }
    seen = {who: _refused(open_()) for who, open_ in tries.items()}
    assert seen == {
        "another officer": (4004, "NotFound"),
        "an owner": (4003, "Forbidden"),
        "an auditor": (4003, "Forbidden"),
        "nobody": (4005, "NotAuthenticated"),
        "a forged cookie": (4005, "NotAuthenticated"),
        "another site": (4003, "Forbidden"),
        "no such grant": (4004, "NotFound"),
        "a token without media:view": (4003, "Forbidden"),
    }
    assert _records(gate, "access.start", gid) == [], "no refusal redeemed the grant"
    # The officer's machine, with a token scoped to video (a token needs no Origin check).
    bearer = {"Authorization": f"Bearer {video}", "Origin": "https://wall.example"}
    with _socket(live_server, gid, **bearer) as ws:
        assert _boxes(ws.recv(timeout=30))[0] == b"ftyp"  # type: ignore[arg-type]
        assert _refused(_as_browser(live_server, operator, gid)) == (4006, "GrantReplayed")


def _box(kind: bytes, body: bytes = b"") -> bytes:
    return (8 + len(body)).to_bytes(4, "big") + kind + body


_INIT = _box(b"ftyp", b"isom") + _box(b"moov", b"x" * 20)
_FRAGMENTS = [_box(b"moof", b"a" * 5) + _box(b"mdat", b"b" * 9), _box(b"moof") + _box(b"mdat")]


def test_no_credential_of_the_handshake_reaches_the_servers_logs(
    live_server: str, people: People, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    operator = people("operator")
    granted = grant(operator, "a1", duration_s=60)
    with _as_browser(live_server, operator, granted["id"]) as ws:
        ws.recv(timeout=30)
    # websockets logs the handshake's headers at debug level, under uvicorn's logger.
    wait_for(lambda: any("< cookie:" in r.getMessage().lower() for r in caplog.records))
    # The server's loggers (uvicorn's, websockets' under it, camgate's), not the test's clients.
    logged = "\n".join(
        r.getMessage()
        for r in caplog.records
        if not r.name.startswith(("httpx", "httpcore", "websockets.client"))
    )
    secret = operator.client.cookies["camgate_session"]
    assert secret not in logged and operator.csrf not in logged


def test_a_grant_whose_signed_token_was_changed_is_refused(
    live_server: str, people: People, gate: Gate
) -> None:
    operator = people("operator")
    granted = grant(operator, "a1", duration_s=2)
    gid = granted["id"]
    token = gate.store.get_grant_token(gid)
    payload, signature = token.split(".")
    body = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    body["expires_at"] = "2099-01-01T00:00:00+00:00"  # a longer grant, under the old signature
    longer = base64.urlsafe_b64encode(json.dumps(body).encode()).rstrip(b"=").decode()
    with sqlite3.connect(gate.store.path) as db:  # the store's file, behind the gate's back
        db.execute(
            "UPDATE grants SET token = ? WHERE id = ?", (f"{longer}.{signature}", body["id"])
        )
    with _as_browser(live_server, operator, granted["id"]) as ws:
        assert _refused(ws) == (4003, "GrantForged")
    assert _records(gate, "access.start", granted["id"]) == []


@settings(max_examples=200, deadline=None)
@given(cuts=st.lists(st.integers(min_value=1, max_value=40), max_size=30))
def test_segments_are_cut_whole_however_the_bytes_arrive(cuts: list[int]) -> None:
    data = _INIT + b"".join(_FRAGMENTS) + _box(b"mfra", b"tail")
    cutter, out, at = Fmp4Segments(), [], 0
    for step in [*cuts, len(data)]:
        out += cutter.feed(data[at : at + step])
        at += step
    assert out == [_INIT, *_FRAGMENTS], "the trailer (mfra) is never sent"


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=200))
def test_bytes_that_are_not_mp4_are_refused_cleanly(data: bytes) -> None:
    cutter = Fmp4Segments()
    try:
        segments = cutter.feed(data)
    except ValidationError:
        return
    assert b"".join(segments) == data[: sum(map(len, segments))]


def test_the_close_codes_and_media_routes_are_documented() -> None:
    text = (Path(__file__).resolve().parents[2] / "docs" / "api.md").read_text()
    live_section = text[text.index("## Live socket") : text.index("## Downloads")]
    rows = re.findall(r"^\| (\d{4}) \| `([A-Z_]+)` \|", live_section, re.M)
    assert {(int(code), name) for code, name in rows} == {(c.value, c.name) for c in CloseCode}
    for route in [*live.router.routes, *downloads.router.routes]:
        path = re.sub(r"\{[a-z_]+\}", "{grant}", getattr(route, "path", ""))
        assert path in text, path


def test_every_end_reason_closes_the_socket_with_a_documented_code() -> None:
    """A new end reason (a privacy zone registered, a vendor account unlinked) must not close a
    browser's socket as an internal error."""
    for reason in EndReason:
        assert close_code(None, reason) is not CloseCode.INTERNAL, reason
    assert close_code(None, EndReason.PRIVACY_ZONE) is CloseCode.FORBIDDEN
    assert close_code(ZoneRefused("zone"), None) is CloseCode.FORBIDDEN
    assert close_code(None, EndReason.ACCOUNT_UNLINKED) is CloseCode.CAMERA_ENDED
    assert close_code(AccountUnlinked("gone", account="k"), None) is CloseCode.CAMERA_ENDED
