"""Fixtures shared by the attack suite: the anyio backend (asyncio)."""

from __future__ import annotations

import pytest


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
