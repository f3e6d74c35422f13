"""The Wyze simulator (cloud process and GStreamer RTSP cameras), shared by a module's tests."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from camgate.models import Camera, GeoPoint, Grant, Scope
from camgate_wyze.testing import WyzeSimulator


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def sim() -> Iterator[WyzeSimulator]:
    """Three cameras: the first on Wyze's RTSP firmware, the second a v4 on the cloud WebRTC
    route, the third a v4 that is offline; three events of the first camera a minute apart
    (4 s clips); logins allowed every 0.5 s."""
    with WyzeSimulator(cameras=3, rtsp=1, login_interval_s=0.5, offline=frozenset({3})) as running:
        yield running


def camera(mac: str) -> Camera:
    """The camera with Wyze MAC ``mac`` as discovery names it."""
    return Camera(
        id=f"wyze-{mac.lower()}",
        adapter="wyze",
        source=mac,
        owner_id="owner-1",
        position=GeoPoint(52.52, 13.40),
    )


def grant(
    cam: Camera, scope: str = "live", window: tuple[datetime, datetime] | None = None
) -> Grant:
    """A grant for ``cam`` (the adapter is handed verified grants; these are its shape)."""
    now = datetime.now(UTC)
    return Grant(
        id="g1",
        request_id="r1",
        camera_id=cam.id,
        incident_id="i1",
        scope=Scope(scope),
        issued_at=now,
        expires_at=now + timedelta(minutes=5),
        window_start=window[0] if window else None,
        window_end=window[1] if window else None,
    )
