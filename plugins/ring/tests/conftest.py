"""The Ring simulator as a real HTTP and WebRTC peer on loopback, shared by a module's tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from camgate_ring.testing import RingSimulator


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def sim() -> Iterator[RingSimulator]:
    """Three cameras: the first on a battery (82 %), the second on line power, the third
    offline."""
    with RingSimulator(devices=3, battery={1: 82}, offline=frozenset({3})) as running:
        yield running
