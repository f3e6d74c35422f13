"""Several camgate processes on loopback sharing real services: one PostgreSQL server for the
session (Debian's package, :mod:`camgate.testing.pgserver`; each test takes a fresh database)
and a GStreamer RTSP camera. Fixtures other suites here need live in their own files."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from camgate_rtsp.testing.server import Mount, RtspTestServer, serving


@pytest.fixture(scope="session")
def postgres() -> Iterator[Any]:
    """A real PostgreSQL server for the session; missing PostgreSQL fails the tests that need
    it (``CAMGATE_SKIP_POSTGRES=1`` skips them)."""
    from camgate.testing.pgserver import server_for_tests

    with server_for_tests() as server:
        yield server


@pytest.fixture(scope="session")
def hub_camera() -> Iterator[RtspTestServer]:
    """One RTSP camera, ``/cam1`` (H.264, a keyframe every 10 frames)."""
    with serving([Mount("/cam1", gop_frames=10)]) as server:
        yield server


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
