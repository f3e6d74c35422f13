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


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """Carol (c1, 60 m north: invited, not enrolled yet), dave (d1, 90 m: ask first, live),
    erin (e1, 40 m: snapshots only, so live is refused); an officer, a supervisor and an admin.
    """
    tmp = tmp_path_factory.mktemp("site")
    gate = Gate.open(tmp / "g.db")
    gate.publish_waiver(WAIVER)
    for owner, camera, north in (("carol", "c1", 60), ("dave", "d1", 90), ("erin", "e1", 40)):
        gate.add_owner(Owner(owner, owner.title()))
        gate.add_camera(_camera(camera, owner, north))
    for owner, camera, terms in (
        ("dave", "d1", ConsentTerms(scopes={"live"}, mode="ask")),
        ("erin", "e1", ConsentTerms(scopes={"snapshot"})),
    ):
        gate.enrol(owner, [camera], waiver_version=WAIVER.version,
                   waiver_sha256=WAIVER.sha256, terms=terms)  # fmt: skip
    settings = ServerSettings(secure_cookies=False)
    accounts = AccountStore(tmp / "g.accounts.db", settings=settings, now=gate.clock.now)
    admin = accounts.create_account("admin", PASSWORD, Role.ADMIN)
    accounts.create_account("officer", PASSWORD, Role.OPERATOR)
    accounts.create_account("dave", PASSWORD, Role.OWNER, owner_id="dave")
    code, _ = accounts.create_invite("carol", admin)
    app = create_app(gate, accounts, settings)
    try:
        with serving(app) as url:
            yield Site(url, gate, accounts, code, admin)
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
