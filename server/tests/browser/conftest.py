"""Browser tests of the owner portal and the operator console: Debian's Chromium driven by
Playwright against the server under uvicorn on loopback.

One browser per module (each person is a browser context of it), one server per module over a
gate with its own owners and cameras. No browser is downloaded: Playwright launches
``/usr/bin/chromium`` (``scripts/setup.sh`` installs it), and axe-core comes from
server/web/node_modules (``npm ci`` there, also by setup). Missing either is a failure in CI
(``CI`` set) and a skip naming the fix elsewhere. Screenshots go to :data:`ARTEFACTS`.
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import attrs
import pytest
from camgate import ConsentTerms, Gate, Owner, Waiver
from camgate.testing import CHROMIUM, CHROMIUM_ARGS
from camgate_onvif.testing import OnvifSimulator
from camgate_rtsp.testing.server import Mount, RtspTestServer
from camgate_rtsp.testing.server import serving as rtsp_serving
from camgate_server.accounts import Account, AccountStore
from camgate_server.app import create_app
from camgate_server.policy import Role
from camgate_server.settings import ServerSettings

from ..conftest import PASSWORD, _camera, serving

AXE = Path(__file__).resolve().parents[2] / "web" / "node_modules" / "axe-core" / "axe.min.js"
#: Where the pages' screenshots are written ($CAMGATE_ARTEFACTS, else the system's tmp dir).
ARTEFACTS = Path(os.environ.get("CAMGATE_ARTEFACTS") or tempfile.gettempdir()) / (
    "camgate-artefacts/pages"
)
#: c1 burns each picture's capture time into its bottom quarter (the picture clock); m1 is
#: plain colour bars, which the gate masks. Small pictures, a keyframe every half second.
CLOCK_CAMERA = Mount("/c1", width=320, height=240, fps=30, gop_frames=15, picture_clock=True)
BARS_CAMERA = Mount("/m1", width=320, height=240, fps=30, gop_frames=15)
#: The simulated ONVIF device's one profile: hana's o1, whose recorded footage (30 s before the
#: device started, each picture showing its index) the officer downloads.
ONVIF_PROFILES = (("main", 320, 180),)
#: frank's privacy mask on m1: the picture's top-left quarter.
MASK = [[(0.0, 0.0), (0.5, 0.0), (0.5, 0.5), (0.0, 0.5)]]
WAIVER = Waiver(
    "2026-2", "I share my cameras with the police only on my terms.\nI may stop at once."
)


def _missing(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason}: scripts/setup.sh installs it, and CI runs it first")
    pytest.skip(f"{reason}: run scripts/setup.sh")


@attrs.frozen
class Site:
    """The server under test: its base URL, gate, accounts and an invite for carol."""

    url: str
    gate: Gate
    accounts: AccountStore
    invite: str
    admin: Account
    rtsp: RtspTestServer
    onvif: OnvifSimulator


def in_thread(fn: Any, *args: Any) -> Any:
    """``anyio.run(fn, *args)`` on a thread of its own (Playwright's sync API may hold an
    event loop on this one); its result."""
    result: list[Any] = []
    runner = threading.Thread(target=lambda: result.append(anyio.run(fn, *args)))
    runner.start()
    runner.join(timeout=60)
    assert result, f"{fn} did not finish"
    return result[0]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """Carol (c1, 60 m north: invited, not enrolled yet; streams the picture clock), dave (d1,
    90 m: ask first, live), erin (e1, 40 m: snapshots only, so live is refused), frank (m1,
    70 m, masked top-left, and g1, 75 m, the picture clock: live pre-authorised), hana (o1,
    85 m, a simulated ONVIF device: recorded footage pre-authorised); an officer, a supervisor
    and an admin. All but d1 (never opened) stream from a real GStreamer RTSP server.
    """
    tmp = tmp_path_factory.mktemp("site")
    mounts = [CLOCK_CAMERA, BARS_CAMERA, *OnvifSimulator.mounts(1, ONVIF_PROFILES)]
    with (
        rtsp_serving(mounts) as rtsp,
        OnvifSimulator(1, rtsp_server=rtsp, profiles=ONVIF_PROFILES) as onvif,
    ):
        gate = Gate.open(tmp / "g.db", adapter_settings={"onvif": onvif.settings})
        gate.publish_waiver(WAIVER)
        sources = {"c1": rtsp.url("/c1"), "e1": rtsp.url("/m1"), "m1": rtsp.url("/m1"),
                   "g1": rtsp.url("/c1"), "o1": onvif.sources[0]}  # fmt: skip
        cameras = (("carol", "c1", 60), ("dave", "d1", 90), ("erin", "e1", 40),
                   ("frank", "m1", 70), ("frank", "g1", 75), ("hana", "o1", 85))  # fmt: skip
        for owner in ("carol", "dave", "erin", "frank", "hana"):
            gate.add_owner(Owner(owner, owner.title()))
        for owner, camera, north in cameras:
            made = _camera(camera, owner, north)
            adapter = "onvif" if camera == "o1" else made.adapter
            gate.add_camera(
                attrs.evolve(made, adapter=adapter, source=sources.get(camera, made.source))
            )
        for owner, camera, terms in (
            ("dave", ["d1"], ConsentTerms(scopes={"live"}, mode="ask")),
            ("erin", ["e1"], ConsentTerms(scopes={"snapshot"})),
            ("frank", ["m1", "g1"], ConsentTerms(scopes={"live"})),
            ("hana", ["o1"], ConsentTerms(scopes={"recorded"})),
        ):
            gate.enrol(owner, camera, waiver_version=WAIVER.version,
                       waiver_sha256=WAIVER.sha256, terms=terms)  # fmt: skip
        in_thread(gate.set_masks, "frank", "m1", MASK)
        yield from _served(tmp, gate, rtsp, onvif)


def _served(tmp: Path, gate: Gate, rtsp: RtspTestServer, onvif: OnvifSimulator) -> Iterator[Site]:
    settings = ServerSettings(secure_cookies=False)
    accounts = AccountStore(tmp / "g.accounts.db", settings=settings, now=gate.clock.now)
    admin = accounts.create_account("admin", PASSWORD, Role.ADMIN)
    accounts.create_account("officer", PASSWORD, Role.OPERATOR)
    accounts.create_account("dave", PASSWORD, Role.OWNER, owner_id="dave")
    code, _ = accounts.create_invite("carol", admin)
    app = create_app(gate, accounts, settings)
    try:
        with serving(app) as url:
            yield Site(url, gate, accounts, code, admin, rtsp, onvif)
    finally:
        accounts.close()
        # Not on this thread: Playwright's sync API may hold its event loop here.
        closer = threading.Thread(target=anyio.run, args=(gate.aclose,))
        closer.start()
        closer.join(timeout=30)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's headless Chromium through Playwright (one per module)."""
    if not CHROMIUM.exists():
        _missing(f"{CHROMIUM} (Debian package chromium) is not installed")
    if not AXE.exists():
        _missing(f"{AXE} (npm ci in server/web) is not installed")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=list(CHROMIUM_ARGS)
        )
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(scope="module")
def artefacts() -> Path:
    """The folder screenshots are written to (printed at the end of the run)."""
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    return ARTEFACTS


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Say where the screenshots are."""
    if ARTEFACTS.exists() and any(ARTEFACTS.iterdir()):
        terminalreporter.write_line(f"page screenshots: {ARTEFACTS}")
