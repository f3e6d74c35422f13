"""Fixtures: the rtsp conformance target, and deliberately broken adapters.

Each broken adapter is a real subclass of the RTSP adapter with one fault an integrator could
make; the suite's own tests check that each one fails exactly the check meant to catch it.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from typing import Any

import anyio
import anyio.to_thread
import attrs
import av
import pytest
from camgate.adapters import AdapterFactory, LiveStream
from camgate.errors import AdapterError
from camgate.models import Camera, Grant, MediaPacket, Snapshot
from camgate_conformance import SuiteConfig
from camgate_conformance.checks import CEILINGS
from camgate_rtsp.adapter import RtspAdapter, RtspLiveStream, RtspSettings
from camgate_rtsp.conformance import RtspTarget
from camgate_rtsp.plugin import FACTORY
from camgate_rtsp.testserver import gstreamer_available

#: Small numbers: the suite's own tests check verdicts, not statistics. Time limits times 3: CI's
#: machine is shared, and a p95 over 3 trials is the slowest trial.
QUICK = SuiteConfig(trials=3, stateful_examples=2, stateful_steps=5, settle_s=0.3, budget_slack=3.0)


@pytest.fixture(scope="session")
def rtsp_target() -> Iterator[RtspTarget]:
    """One started rtsp target (GStreamer server, request log) for the session."""
    reason = gstreamer_available()
    if reason:
        pytest.fail(f"the GStreamer RTSP server is not usable: {reason} (run scripts/setup.sh)")
    with RtspTarget() as target:
        yield target


def _factory(name: str, create: Any, **budgets: float) -> AdapterFactory:
    """The rtsp factory under another name, building ``create``; ``budgets`` overrides some."""
    return attrs.evolve(
        FACTORY,
        name=name,
        create=create,
        description=f"broken: {name}",
        budgets=attrs.evolve(FACTORY.budgets, **budgets),
    )


class EagerAdapter(RtspAdapter):
    """Fetches before the grant: 'warms up' every camera it knows at discovery."""

    def __init__(self, settings: RtspSettings, sources: Sequence[str]) -> None:
        super().__init__(settings)
        self.sources = list(sources)

    def _probe(self, url: str) -> None:
        # The DESCRIBE is the fault, and the server logs it whether or not the open succeeds.
        with contextlib.suppress(av.FFmpegError):
            av.open(url, "r", options=self.settings.open_options(), timeout=(15.0, 15.0)).close()

    async def discover(self) -> list[Camera]:
        """Open each camera's stream once, to have its codec ready (a grant-less fetch)."""
        for source in self.sources:
            await anyio.to_thread.run_sync(self._probe, source)
        return []


class LingeringStream:
    """Says it closed, but keeps the camera connection open for ``linger_s`` more."""

    def __init__(self, inner: RtspLiveStream, linger_s: float) -> None:
        self.inner = inner
        self.info = inner.info
        self.linger_s = linger_s

    def __aiter__(self) -> AsyncIterator[MediaPacket]:
        return self

    async def __anext__(self) -> MediaPacket:
        return await self.inner.__anext__()

    async def aclose(self) -> None:
        """Return at once; the reader stops (and the connection closes) later."""
        timer = threading.Timer(self.linger_s, self.inner._stop.set)
        timer.daemon = True
        timer.start()


class LingeringAdapter(RtspAdapter):
    """Ignores revocation: a closed stream's connection stays open for two more seconds."""

    async def open_live(self, camera: Camera, grant: Grant) -> LiveStream:
        """The real stream, wrapped so that closing it does not close the connection."""
        inner = await RtspLiveStream.open(self.url_for(camera), self.settings)
        return LingeringStream(inner, linger_s=2.0)


class LeakyAdapter(RtspAdapter):
    """Puts the camera URL — credentials included — into its errors."""

    def _leak(self, exc: AdapterError, camera: Camera) -> AdapterError:
        # url_for returns a Secret (it prints as ***): this adapter leaks it on purpose.
        return type(exc)(f"{exc} (while opening {self.url_for(camera).reveal()})")

    async def open_live(self, camera: Camera, grant: Grant) -> LiveStream:
        """As the RTSP adapter, with a 'helpful' error message."""
        try:
            return await super().open_live(camera, grant)
        except AdapterError as exc:
            raise self._leak(exc, camera) from None

    async def snapshot(self, camera: Camera, grant: Grant) -> Snapshot:
        """As the RTSP adapter, with a 'helpful' error message."""
        try:
            return await super().snapshot(camera, grant)
        except AdapterError as exc:
            raise self._leak(exc, camera) from None


class SlowAdapter(RtspAdapter):
    """Too slow: a snapshot takes over 3 s, where it promises 0.5 s (times the suite's slack)."""

    async def snapshot(self, camera: Camera, grant: Grant) -> Snapshot:
        """Wait, then take the snapshot."""
        await anyio.sleep(3.2)
        return await super().snapshot(camera, grant)


def _settings(settings: Mapping[str, Any], **extra: Any) -> RtspSettings:
    return RtspSettings.from_mapping({**settings, **extra})


def broken_factories(target: RtspTarget) -> dict[str, tuple[AdapterFactory, set[str]]]:
    """Each broken adapter's factory and the only checks it must fail."""
    sources = list(target.sources)
    return {
        "eager": (
            # Opening every stream makes its discovery slow (2.1 s p95 on a loaded CI machine):
            # it declares camgate's ceiling, so that only the gating check speaks against it.
            _factory(
                "rtsp-eager",
                lambda s: EagerAdapter(_settings(s), sources),
                discovery_s=CEILINGS["discovery"],
            ),
            {"gating.no-media-before-grant"},
        ),
        "lingering": (
            _factory(
                "rtsp-lingering", lambda s: LingeringAdapter(_settings(s, buffer_packets=2000))
            ),
            {"gating.revocation-closes"},
        ),
        "leaky": (
            _factory("rtsp-leaky", lambda s: LeakyAdapter(_settings(s))),
            {"robustness.no-secret-in-errors"},
        ),
        "slow": (
            _factory("rtsp-slow", lambda s: SlowAdapter(_settings(s)), snapshot_s=0.5),
            {"budget.snapshot"},
        ),
    }


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
