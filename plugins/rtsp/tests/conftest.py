"""Fixtures for the rtsp adapter's own tests: a real GStreamer RTSP server on loopback.

Tests of core behaviour that use the adapter as a real camera (and their ``World``) live in the
root tests/integration/.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from camgate_rtsp.testing import Mount, RtspTestServer, serving

SECRET = "pa:ss w@rd/ü"


@pytest.fixture(scope="session")
def rtsp_server() -> Iterator[RtspTestServer]:
    """One server for the session: open cameras, a digest-protected one, one without video."""
    mounts = [
        Mount("/cam1", gop_frames=30),
        Mount("/cam2", gop_frames=30),
        Mount("/secure", username="officer", password=SECRET),
        Mount("/audio-only", video=False, audio=True),
    ]
    with serving(mounts) as server:
        yield server


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
