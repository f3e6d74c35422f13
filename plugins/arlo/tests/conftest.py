"""The Arlo simulator (login, API and event hosts, RTSPS over GStreamer's RTSP server), one per
test session: starting it takes a second, and every test leaves it as it found it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from camgate_arlo.testing import ArloSimulator
from camgate_rtsp.testing import gstreamer_available


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def sim() -> Iterator[ArloSimulator]:
    """Two cameras (``SIMCAM1``, ``SIMCAM2``) behind ``SIMBASE``, EMAIL, SMS and PUSH factors."""
    reason = gstreamer_available()
    if reason is not None:
        pytest.skip(reason)
    with ArloSimulator(cameras=2) as running:
        yield running


@pytest.fixture
def arlo(sim: ArloSimulator) -> Iterator[ArloSimulator]:
    """The simulator, its faults and timings reset after the test."""
    yield sim
    sim.cloudflare(None)
    sim.set_offline()
    sim.configure(session_cap_s=1800, connect_window_s=30, snapshot_delay_s=0.2)
