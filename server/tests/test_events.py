"""``GET /events`` over real HTTP (uvicorn on loopback): what each role sees of events raised
through the gate, the edge and another process; resuming with ``Last-Event-ID``; streams that
end with their session and with the server."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import anyio
import attrs
import httpx
import pytest
from camgate import Gate
from camgate.errors import AnswerPending, CamgateError
from camgate.testing import run_cli
from camgate_server.accounts import AccountStore
from camgate_server.app import create_app
from camgate_server.events import EVENT_KINDS
from fastapi import FastAPI

from .conftest import CENTRE, PASSWORD, SETTINGS

pytestmark = pytest.mark.anyio

#: Fast ticks: a stream looks for records every 20 ms and beats (re-checking its caller)
#: every 200 ms. Waits below are on conditions, bounded by a generous deadline.
FAST = attrs.evolve(SETTINGS, events_poll_s=0.02, events_heartbeat_s=0.2)
DEADLINE_S = 60


@pytest.fixture
def app(gate: Gate, accounts: AccountStore) -> FastAPI:
    return create_app(gate, accounts, FAST)


@attrs.define
class Stream:
    """One open ``GET /events``: its events as ``(id, name, data)``, comments counted."""

    response: httpx.Response
    lines: AsyncIterator[str]
    events: list[tuple[int, str, dict[str, Any]]] = attrs.field(factory=list)
    comments: int = 0
    ended: bool = False

    async def _next(self) -> None:
        """Read one block: an event, comments, a retry (or the end of the stream)."""
        fields: dict[str, str] = {}
        async for line in self.lines:
            if line == "":
                if fields.get("event"):
                    data = json.loads(fields["data"])
                    self.events.append((int(fields["id"]), fields["event"], data))
                return
            if line.startswith(":"):
                self.comments += 1
                continue
            name, _, value = line.partition(": ")
            fields[name] = value
        self.ended = True

    async def until(self, done: Any) -> None:
        """Read until ``done(self)`` holds (or fail after the deadline)."""
        with anyio.fail_after(DEADLINE_S):
            while not done(self):
                assert not self.ended, "the stream ended"
                await self._next()

    async def to_end(self) -> None:
        """Read until the server ends the stream."""
        with anyio.fail_after(DEADLINE_S):
            while not self.ended:
                await self._next()

    def names(self) -> list[str]:
        return [name for _, name, _ in self.events]


async def _client(base: str, username: str) -> tuple[httpx.AsyncClient, str]:
    client = httpx.AsyncClient(base_url=base, timeout=DEADLINE_S)
    answer = await client.post("/session", json={"username": username, "password": PASSWORD})
    assert answer.status_code == 200, answer.text
    return client, answer.json()["csrf_token"]


@pytest.fixture
async def clients(live_server: str) -> AsyncIterator[dict[str, tuple[httpx.AsyncClient, str]]]:
    made = {n: await _client(live_server, n) for n in ("operator", "auditor", "alice", "bob")}
    yield made
    for client, _ in made.values():
        await client.aclose()


async def _open(client: httpx.AsyncClient, **headers: str) -> AsyncIterator[Stream]:
    async with client.stream("GET", "/events", headers=headers) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        stream = Stream(response, response.aiter_lines())
        await stream.until(lambda s: s.comments >= 1)  # the opening comment: it is listening
        yield stream


class Opened:
    """Streams opened for a test and closed after it."""

    def __init__(self) -> None:
        self._exits: list[Any] = []
        self._clients: list[httpx.AsyncClient] = []

    async def open(
        self, client: httpx.AsyncClient, owned: httpx.AsyncClient | None = None, **headers: str
    ) -> Stream:
        """Open a stream on ``client``; ``owned`` is a client closed with the streams."""
        if owned is not None:
            self._clients.append(owned)
        gen = _open(client, **headers)
        self._exits.append(gen)
        return await gen.__anext__()

    async def close(self) -> None:
        for gen in self._exits:
            await gen.aclose()
        self._exits.clear()
        for client in self._clients:
            await client.aclose()
        self._clients.clear()


@pytest.fixture
async def opened() -> AsyncIterator[Opened]:
    streams = Opened()
    yield streams
    await streams.close()


async def _raise_events(
    gate: Gate, clients: dict[str, tuple[httpx.AsyncClient, str]]
) -> tuple[str, str]:
    """Through HTTP and the gate: alice's a1 granted and accessed at the edge (the camera is
    unreachable: access started, then ended with the error), bob's b1 held and refused by bob,
    then alice revokes. Returns (granted request, held request)."""
    operator, op_csrf = clients["operator"]
    made = await operator.post(
        "/incidents",
        headers={"X-CSRF-Token": op_csrf},
        json={"kind": "burglary", "lat": CENTRE.lat, "lon": CENTRE.lon, "radius_m": 300},
    )
    incident = made.json()["id"]
    granted = await operator.post(
        f"/incidents/{incident}/requests",
        headers={"X-CSRF-Token": op_csrf},
        json={"camera": "a2", "scope": "live"},
    )
    assert granted.status_code == 201
    held = await operator.post(
        f"/incidents/{incident}/requests",
        headers={"X-CSRF-Token": op_csrf},
        json={"camera": "b1", "scope": "live"},
    )
    assert held.status_code == 202
    bob, bob_csrf = clients["bob"]
    no = await bob.post(
        f"/requests/{held.json()['request']}/answer",
        headers={"X-CSRF-Token": bob_csrf},
        json={"approve": False},
    )
    assert no.status_code == 200 and no.json()["allowed"] is False
    # The edge's side: the grant's token is never sent over HTTP, so the edge is driven here.
    signed = await gate.request_access(incident, "a1", "snapshot", requested_by="op")
    with pytest.raises(CamgateError):
        await gate.edge.snapshot("a1", signed)
    alice, alice_csrf = clients["alice"]
    revoked = await alice.post("/owners/me/revoke", headers={"X-CSRF-Token": alice_csrf})
    assert revoked.status_code == 200
    return granted.json()["request"], held.json()["request"]


def _staff_events(gate: Gate, after: int) -> list[tuple[int, str]]:
    """What the audit log says staff should see after ``after``: (seq, event name)."""
    return [
        (r.seq, EVENT_KINDS[r.kind])
        for r in gate.audit.records()
        if r.seq > after and r.kind in EVENT_KINDS
    ]


async def test_each_role_sees_its_own_events(
    gate: Gate, clients: dict[str, tuple[httpx.AsyncClient, str]], opened: Opened
) -> None:
    start = gate.audit.last_seq()
    streams = {name: await opened.open(client) for name, (client, _) in clients.items()}
    await _raise_events(gate, clients)
    expected = _staff_events(gate, start)
    assert {name for _, name in expected} == set(EVENT_KINDS.values())
    wanted = {"operator": len(expected), "auditor": len(expected), "alice": 7, "bob": 2}
    for name, stream in streams.items():
        await stream.until(lambda s, n=wanted[name]: len(s.events) >= n)
    for staff in ("operator", "auditor"):
        assert [(seq, name) for seq, name, _ in streams[staff].events] == expected
    alice, bob = streams["alice"].events, streams["bob"].events
    # An owner sees exactly the events about their own cameras, in order.
    assert alice and bob
    assert all(d.get("camera") in ("a1", "a2", None) for _, _, d in alice)
    assert all(d.get("camera") == "b1" for _, _, d in bob)
    assert [n for _, n, _ in alice] == [
        "decision", "grant.issued", "decision", "grant.issued", "access.started",
        "access.ended", "revocation",
    ]  # fmt: skip
    assert [n for _, n, _ in bob] == ["request.waiting", "decision"]
    waiting = bob[0][2]
    assert waiting["camera"] == "b1" and waiting["scope"] == "live" and waiting["deadline"]
    refused = bob[1][2]
    assert refused["allowed"] is False and refused["held"] is True
    assert any(v["verdict"] == "deny" for v in refused["votes"])
    ended = alice[5][2]
    assert ended["reason"] == "error" and ended["error"] == "CameraUnreachable"
    assert alice[6][2] == {"owner": "alice", "cameras": ["a1", "a2"], "at": alice[6][2]["at"]}
    text = json.dumps([s.events for s in streams.values()])
    assert PASSWORD not in text and "signature" not in text and "witness" not in text


async def test_events_raised_by_another_process_arrive(
    gate: Gate, clients: dict[str, tuple[httpx.AsyncClient, str]], opened: Opened
) -> None:
    """The CLI, a separate process on the same store, revokes bob's consent: the officer's
    stream and bob's get the revocation; alice's does not."""
    streams = {name: await opened.open(clients[name][0]) for name in ("operator", "alice", "bob")}
    db = gate.store.path
    await anyio.to_thread.run_sync(lambda: run_cli("--db", str(db), "revoke", "--owner", "bob"))
    for name in ("operator", "bob"):
        await streams[name].until(lambda s: "revocation" in s.names())
        _, _, data = streams[name].events[-1]
        assert data["owner"] == "bob" and data["cameras"] == ["b1"]
    # Then alice revokes hers. Events arrive in log order, so bob's revocation, had alice's
    # stream carried it, would come before her own: her stream holds her own only.
    await gate.revoke("alice")
    await streams["alice"].until(lambda s: "revocation" in s.names())
    assert [(n, d["owner"]) for _, n, d in streams["alice"].events] == [("revocation", "alice")]


async def test_resume_after_a_disconnect_loses_nothing(
    gate: Gate, clients: dict[str, tuple[httpx.AsyncClient, str]], opened: Opened
) -> None:
    operator, _ = clients["operator"]
    start = gate.audit.last_seq()
    first = await opened.open(operator)
    incident = gate.report_incident("robbery", CENTRE, 300)
    await gate.request_access(incident.id, "a1", "live", requested_by="op")
    await first.until(lambda s: len(s.events) >= 1)
    seen = first.events[0][0]
    await opened.close()  # the client goes away after its first event
    # While it is away: a held request and its answer, a revocation.
    try:
        await gate.request_access(incident.id, "b1", "live", requested_by="op", wait=False)
    except AnswerPending as held:
        await gate.answer(held.pending.request_id, True, owner_id="bob")
    await gate.revoke("alice")
    missed = [e for e in _staff_events(gate, start) if e[0] > seen]
    assert len(missed) >= 5
    for headers, params in (({"Last-Event-ID": str(seen)}, {}), ({}, {"after": str(seen)})):
        async with operator.stream("GET", "/events", headers=headers, params=params) as response:
            again = Stream(response, response.aiter_lines())
            await again.until(lambda s: len(s.events) >= len(missed))
            assert [(seq, name) for seq, name, _ in again.events] == missed
    # An owner resumes from their own records only.
    bob, _ = clients["bob"]
    async with bob.stream("GET", "/events", headers={"Last-Event-ID": str(start)}) as response:
        mine = Stream(response, response.aiter_lines())
        await mine.until(lambda s: "grant.issued" in s.names())
        assert mine.names() == ["request.waiting", "decision", "grant.issued"]


async def test_who_may_open_the_stream(
    live_server: str, accounts: AccountStore, gate: Gate, opened: Opened
) -> None:
    async with httpx.AsyncClient(base_url=live_server, timeout=DEADLINE_S) as anonymous:
        nobody = await anonymous.get("/events")
        assert nobody.status_code == 401 and nobody.json()["error"] == "NotAuthenticated"
        for name in ("admin", "supervisor"):
            client, _ = await _client(live_server, name)
            await opened.open(client, owned=client)  # every role reads its feed (200)
        operator = accounts.verify_password("operator", PASSWORD)
        _, narrow, _ = accounts.create_token(operator, "bridge", ["incidents:report"], 3600)
        _, wide, _ = accounts.create_token(operator, "console", ["events:read"], 3600)
        refused = await anonymous.get("/events", headers={"Authorization": f"Bearer {narrow}"})
        assert refused.status_code == 403 and refused.json()["error"] == "Forbidden"
        await opened.open(anonymous, Authorization=f"Bearer {wide}")
        client, _ = await _client(live_server, "operator")
        for bad in ("-1", "x", "1" * 19, "1e3"):
            answer = await client.get("/events", headers={"Last-Event-ID": bad})
            assert answer.status_code == 422, bad
            assert bad not in answer.text
        await client.aclose()


async def test_a_stream_ends_with_its_session_its_token_and_the_server(
    app: FastAPI,
    accounts: AccountStore,
    live_server: str,
    clients: dict[str, tuple[httpx.AsyncClient, str]],
    opened: Opened,
) -> None:
    operator, csrf = clients["operator"]
    stream = await opened.open(operator)
    out = await operator.request("DELETE", "/session", headers={"X-CSRF-Token": csrf})
    assert out.status_code in (200, 204)
    await stream.to_end()  # the next heartbeat finds the session gone
    machine = accounts.verify_password("auditor", PASSWORD)
    token_id, token, _ = accounts.create_token(machine, "wall", ["events:read"], 3600)
    bare = httpx.AsyncClient(base_url=live_server, timeout=DEADLINE_S)
    by_token = await opened.open(bare, owned=bare, Authorization=f"Bearer {token}")
    accounts.revoke_token(token_id)
    await by_token.to_end()  # and finds the token revoked
    auditor, _ = clients["auditor"]
    other = await opened.open(auditor)
    app.state.events.close()  # what `camgate serve` does on SIGINT/SIGTERM
    await other.to_end()


async def test_a_busy_stream_ends_with_its_session_too(
    app: FastAPI, gate: Gate, clients: dict[str, tuple[httpx.AsyncClient, str]], opened: Opened
) -> None:
    """Decisions keep coming, four at a time, so the stream is never quiet for a heartbeat
    interval (1 s here): the caller is checked again all the same, and the stream ends while
    they still come."""
    app.state.events.heartbeat_s = 1.0
    operator, csrf = clients["operator"]
    stream = await opened.open(operator)
    incident = gate.report_incident("robbery", CENTRE, 300)
    ended = anyio.Event()

    async def keep_deciding() -> None:
        while not ended.is_set():
            await gate.request_access(incident.id, "a1", "live", requested_by="op")

    async with anyio.create_task_group() as tg:
        for _ in range(4):
            tg.start_soon(keep_deciding)
        await stream.until(lambda s: len(s.events) >= 3)  # busy now
        out = await operator.request("DELETE", "/session", headers={"X-CSRF-Token": csrf})
        assert out.status_code == 204
        await stream.to_end()  # before the deadline, while decisions still come
        ended.set()


def test_an_owner_account_without_its_owner_gets_no_feed() -> None:
    """Accounts refuse an owner without ``owner_id``; the feed does not rely on that alone:
    such a caller would otherwise read the agency's whole log."""
    from typing import cast

    from camgate_server.accounts import Account, Caller
    from camgate_server.errors import Forbidden
    from camgate_server.events import EventFeed, event_stream
    from camgate_server.policy import Role

    orphan = Caller(Account("acc_x", "orphan", Role.OWNER, None), None, "csrf")

    async def allowed() -> bool:
        return True

    with pytest.raises(Forbidden, match="names no owner"):
        event_stream(cast(EventFeed, None), orphan, 0, allowed)
