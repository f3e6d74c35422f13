"""A gate with two owners and their cameras, an accounts file with one account per role, and
the app over them, reached in-process (httpx's ASGI transport) or through uvicorn on loopback."""

from __future__ import annotations

import contextlib
import shutil
import socket
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import attrs
import httpx
import pytest
import uvicorn
from camgate import Camera, ConsentTerms, Gate, GeoPoint, Owner, Waiver
from camgate.testing import camera_north_of
from camgate_server.accounts import AccountStore
from camgate_server.app import create_app
from camgate_server.policy import Role
from camgate_server.settings import ServerSettings
from fastapi import FastAPI

CENTRE = GeoPoint(32.2988, -90.1848)
WAIVER = Waiver("2026-1", "I share my camera on my terms.")
#: Every test account's password (a secret the tests look for in every answer and log line).
PASSWORD = "correct horse battery staple 42"
#: username → (role, owner); alice owns a1 and a2 (pre-authorised), bob owns b1 (ask first).
PEOPLE: dict[str, tuple[Role, str | None]] = {
    "admin": (Role.ADMIN, None),
    "operator": (Role.OPERATOR, None),
    "supervisor": (Role.SUPERVISOR, None),
    "auditor": (Role.AUDITOR, None),
    "alice": (Role.OWNER, "alice"),
    "bob": (Role.OWNER, "bob"),
}
SETTINGS = ServerSettings(secure_cookies=False)


@attrs.define
class MovableClock:
    """The accounts' clock, moved by the tests (sessions, tokens and invites expire)."""

    at: datetime = attrs.field(factory=lambda: datetime.now(UTC))

    def now(self) -> datetime:
        return self.at

    def advance(self, seconds: float) -> None:
        self.at += timedelta(seconds=seconds)


def _camera(camera_id: str, owner: str, north: float) -> Camera:
    return attrs.evolve(
        camera_north_of(camera_id, owner, CENTRE, north),
        adapter="rtsp",
        source=f"rtsp://127.0.0.1:9/{camera_id}",
    )


@pytest.fixture
def anyio_backend() -> str:
    """asyncio, where uvicorn serves (it runs on asyncio). Tests through httpx's ASGI transport
    run on both of AnyIO's backends instead (``both_backends``): the server's code is
    backend-neutral, and those tests prove it."""
    return "asyncio"


def both_backends(request: pytest.FixtureRequest) -> str:
    """Put in a test module as ``anyio_backend = pytest.fixture(params=BACKENDS)(both_backends)``
    to run its tests on asyncio and on trio."""
    return str(request.param)


BACKENDS = ["asyncio", "trio"]


@pytest.fixture(scope="session")
def accounts_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An accounts file with one account per role, made once (argon2 is slow on purpose)."""
    path = tmp_path_factory.mktemp("accounts") / "template.accounts.db"
    store = AccountStore(path, settings=SETTINGS)
    for username, (role, owner) in PEOPLE.items():
        store.create_account(username, PASSWORD, role, owner_id=owner)
    store.close()
    return path


def build_gate(path: Path) -> Gate:
    """Alice (a1, a2: live pre-authorised; far: not enrolled, 5 km away), Bob (b1: ask first),
    in a new store at ``path``."""
    gate = Gate.open(path)
    gate.publish_waiver(WAIVER)
    gate.add_owner(Owner("alice", "Alice"))
    gate.add_owner(Owner("bob", "Bob"))
    for name, owner, north in (("a1", "alice", 50), ("a2", "alice", 120), ("b1", "bob", 80)):
        gate.add_camera(_camera(name, owner, north))
    gate.add_camera(_camera("far", "alice", 5000))
    sha = WAIVER.sha256
    gate.enrol("alice", ["a1", "a2"], waiver_version=WAIVER.version, waiver_sha256=sha,
               terms=ConsentTerms(scopes={"live", "snapshot"}))  # fmt: skip
    gate.enrol("bob", ["b1"], waiver_version=WAIVER.version, waiver_sha256=sha,
               terms=ConsentTerms(scopes={"live"}, mode="ask"))  # fmt: skip
    return gate


@pytest.fixture
def gate(tmp_path: Path) -> Iterator[Gate]:
    """The gate of :func:`build_gate`."""
    gate = build_gate(tmp_path / "g.db")
    yield gate
    anyio.run(gate.aclose)


@pytest.fixture
def clock() -> MovableClock:
    return MovableClock()


@pytest.fixture
def accounts(
    tmp_path: Path, accounts_template: Path, clock: MovableClock
) -> Iterator[AccountStore]:
    path = tmp_path / "g.accounts.db"
    shutil.copyfile(accounts_template, path)
    store = AccountStore(path, settings=SETTINGS, now=clock.now)
    yield store
    store.close()


@pytest.fixture
def app(gate: Gate, accounts: AccountStore) -> FastAPI:
    return create_app(gate, accounts, SETTINGS)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """An anonymous in-process client."""
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as c:
        yield c


@attrs.define
class Session:
    """A logged-in client: its cookie jar holds the session, ``csrf`` its CSRF token."""

    client: httpx.AsyncClient
    csrf: str

    async def get(self, url: str, **kw: object) -> httpx.Response:
        return await self.client.get(url, **kw)  # type: ignore[arg-type]

    async def send(self, method: str, url: str, **kw: object) -> httpx.Response:
        headers = {"X-CSRF-Token": self.csrf}
        return await self.client.request(method, url, headers=headers, **kw)  # type: ignore[arg-type]


async def login(app: FastAPI, username: str) -> Session:
    """A fresh in-process client logged in as ``username``."""
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")
    answer = await client.post("/session", json={"username": username, "password": PASSWORD})
    assert answer.status_code == 200, answer.text
    return Session(client, answer.json()["csrf_token"])


@pytest.fixture
async def sessions(app: FastAPI) -> AsyncIterator[dict[str, Session]]:
    """Every test account logged in, by username."""
    made = {name: await login(app, name) for name in PEOPLE}
    yield made
    for s in made.values():
        await s.client.aclose()


#: The ``logins`` fixture: ``await logins(username)`` is that account's Session.
Logins = Callable[[str], Awaitable[Session]]


@pytest.fixture
async def logins(app: FastAPI) -> AsyncIterator[Logins]:
    """``await logins("bob")``: a test account logged in on demand, once per test (only those
    a test needs: each login's argon2 check is slow on purpose)."""
    made: dict[str, Session] = {}

    async def get(username: str) -> Session:
        if username not in made:
            made[username] = await login(app, username)
        return made[username]

    yield get
    for s in made.values():
        await s.client.aclose()


@contextlib.contextmanager
def serving(app: FastAPI) -> Iterator[str]:
    """``app`` under a real uvicorn on 127.0.0.1 (a free port), in a thread; its base URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_config=None, log_level="debug", server_header=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            threading.Event().wait(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        app.state.events.close()  # event streams end; uvicorn waits for open responses
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


@pytest.fixture
def live_server(app: FastAPI) -> Iterator[str]:
    """The app under a real uvicorn on 127.0.0.1 (a free port), in a thread; its base URL."""
    with serving(app) as url:
        yield url
