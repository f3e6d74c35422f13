"""Fixtures of the media routes' tests (live socket, downloads): one real GStreamer RTSP server
for the session, a gate whose cameras stream from it, and logins over real HTTP.

Import the fixtures into a test module (``from .media_world import gate, rtsp_server``): the
``gate`` here replaces conftest's, so ``app``, ``accounts`` and ``live_server`` serve it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import attrs
import httpx
import pytest
from camgate import ConsentTerms, Gate, Owner
from camgate.testing import camera_north_of
from camgate_onvif.testing import OnvifSimulator
from camgate_rtsp.testing.inputs import hevc
from camgate_rtsp.testing.server import Mount, RtspTestServer, serving

from .conftest import CENTRE, PASSWORD, WAIVER

#: Small pictures and a keyframe every half second: a fragment per half second, quick tests.
H264 = Mount("/a1", width=320, height=240, fps=30, gop_frames=15)
H265 = hevc("/h1", width=320, height=240, fps=30)
#: The simulated ONVIF device's one profile (its recorded footage is served by the simulator).
ONVIF_PROFILES = (("main", 320, 180),)


@pytest.fixture(scope="session")
def rtsp_server() -> Iterator[RtspTestServer]:
    """The cameras: ``/a1`` (H.264 colour bars), ``/h1`` (H.265), and the live profile of an
    :class:`~camgate_onvif.testing.OnvifSimulator` (``/dev1/main``)."""
    onvif = OnvifSimulator.mounts(1, ONVIF_PROFILES, gop_frames=30)
    with serving([H264, H265, *onvif]) as server:
        yield server


def media_gate(
    path: Path, rtsp_server: RtspTestServer, onvif: OnvifSimulator | None = None
) -> Gate:
    """Alice's a1 (H.264) and h1 (H.265), live and snapshot pre-authorised; Bob's b1 (ask
    first), all streaming from ``rtsp_server``; with ``onvif``, Alice's o1 on that simulated
    device too, recorded footage included. Incidents are up to the test."""
    settings = {} if onvif is None else {"onvif": onvif.settings}
    gate = Gate.open(path, adapter_settings=settings)
    gate.publish_waiver(WAIVER)
    gate.add_owner(Owner("alice", "Alice"))
    gate.add_owner(Owner("bob", "Bob"))
    for name, owner, north, mount in (("a1", "alice", 50, "/a1"), ("h1", "alice", 60, "/h1"),
                                      ("b1", "bob", 80, "/a1")):  # fmt: skip
        camera = camera_north_of(name, owner, CENTRE, north)
        gate.add_camera(attrs.evolve(camera, adapter="rtsp", source=rtsp_server.url(mount)))
    alices = ["a1", "h1"]
    if onvif is not None:
        alices.append("o1")
        camera = camera_north_of("o1", "alice", CENTRE, 70)
        gate.add_camera(attrs.evolve(camera, adapter="onvif", source=onvif.sources[0]))
    sha = WAIVER.sha256
    gate.enrol("alice", alices, waiver_version=WAIVER.version, waiver_sha256=sha,
               terms=ConsentTerms(scopes={"live", "snapshot", "recorded"}))  # fmt: skip
    gate.enrol("bob", ["b1"], waiver_version=WAIVER.version, waiver_sha256=sha,
               terms=ConsentTerms(scopes={"live"}, mode="ask"))  # fmt: skip
    return gate


@pytest.fixture
def gate(tmp_path: Path, rtsp_server: RtspTestServer) -> Iterator[Gate]:
    """conftest's people, with cameras that really stream (see :func:`media_gate`)."""
    gate = media_gate(tmp_path / "g.db", rtsp_server)
    yield gate
    anyio.run(gate.aclose)


@attrs.define
class Person:
    """Someone logged in over real HTTP: ``client`` holds the session cookie."""

    client: httpx.Client
    csrf: str

    @property
    def cookie(self) -> str:
        """The session cookie, as a browser would send it with a WebSocket handshake."""
        return f"camgate_session={self.client.cookies['camgate_session']}"

    def post(self, url: str, **kw: Any) -> httpx.Response:
        return self.client.post(url, headers={"X-CSRF-Token": self.csrf}, **kw)


@pytest.fixture
def people(live_server: str) -> Iterator[Callable[[str], Person]]:
    """Log someone in against the live server: ``people("operator")``."""
    made: list[Person] = []

    def login(username: str) -> Person:
        client = httpx.Client(base_url=live_server, timeout=30)
        answer = client.post("/session", json={"username": username, "password": PASSWORD})
        assert answer.status_code == 200, answer.text
        made.append(Person(client, answer.json()["csrf_token"]))
        return made[-1]

    yield login
    for person in made:
        person.client.close()


def grant(officer: Person, camera: str, scope: str = "live", **body: Any) -> dict[str, Any]:
    """A new incident at the centre and the officer's granted request: the grant's JSON."""
    incident = officer.post(
        "/incidents",
        json={"kind": "burglary", "lat": CENTRE.lat, "lon": CENTRE.lon, "radius_m": 300},
    )
    assert incident.status_code == 201, incident.text
    asked = officer.post(
        f"/incidents/{incident.json()['id']}/requests",
        json={"camera": camera, "scope": scope, **body},
    )
    assert asked.status_code == 201, asked.text
    made: dict[str, Any] = asked.json()["grant"]
    return made


def wait_for(condition: Callable[[], Any], timeout_s: float = 30.0) -> Any:
    """Poll ``condition`` until it is truthy (its value), failing after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, "the condition did not come true"
        time.sleep(0.02)
