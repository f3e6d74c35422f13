"""Browser tests: Debian's Chromium driven by Playwright, pages and media served on loopback.

No browser is downloaded: Playwright launches ``/usr/bin/chromium`` (Debian's package, which
``scripts/setup.sh`` installs), headless, with a fresh profile. hls.js comes from the npm
registry (``scripts/setup.sh`` runs ``npm ci`` in this folder). Missing either is a failure in
CI (``CI`` set) and a skip naming the fix elsewhere.
"""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from camgate.testing import CHROMIUM, CHROMIUM_ARGS

HERE = Path(__file__).parent
HLS_JS = HERE / "node_modules" / "hls.js" / "dist" / "hls.min.js"
HEVC_CAMERA = HERE / "_gst_hevc_camera.py"
SYSTEM_PYTHON = "/usr/bin/python3"
#: Players start without a click.
PLAYER_ARGS = [*CHROMIUM_ARGS, "--autoplay-policy=no-user-gesture-required"]


def _missing(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason}: scripts/setup.sh installs it, and CI runs it first")
    pytest.skip(f"{reason}: run scripts/setup.sh")


@pytest.fixture(scope="module")
def chromium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A headless Chromium context (Debian's, through Playwright) with a fresh profile.

    Per module, not per session: Playwright's sync API runs an event loop in the main thread
    while it is started, and the async tests of the rest of the suite need that thread free.
    """
    if not CHROMIUM.exists():
        _missing(f"{CHROMIUM} (Debian package chromium) is not installed")
    from playwright.sync_api import sync_playwright

    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=str(CHROMIUM),
            headless=True,
            args=PLAYER_ARGS,
        )
        try:
            yield context
        finally:
            context.close()


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class Site:
    """A folder served over HTTP on loopback: the test pages, hls.js and the media."""

    def __init__(self, root: Path) -> None:
        self.root = root
        handler = functools.partial(_Quiet, directory=str(root))
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Site:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


@pytest.fixture(scope="session")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """The pages and hls.js, served from a fresh folder the tests add media to."""
    if not HLS_JS.exists():
        _missing(f"{HLS_JS.relative_to(HERE.parent.parent)} is missing (hls.js from npm)")
    root = tmp_path_factory.mktemp("site")
    for page in (HERE / "pages").iterdir():
        shutil.copy(page, root / page.name)
    shutil.copy(HLS_JS, root / "hls.min.js")
    with Site(root) as served:
        yield served


@pytest.fixture(scope="session")
def hevc_camera() -> Iterator[str]:
    """An H.265 RTSP camera (GStreamer's server with x265enc, 640x360): its URL."""
    proc = subprocess.Popen(
        [SYSTEM_PYTHON, str(HEVC_CAMERA), "640", "360"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdin is not None
    port = proc.stdout.readline().strip()
    if not port.isdigit():
        proc.kill()
        _, err = proc.communicate(timeout=10)
        pytest.fail(f"the H.265 RTSP camera did not start: {err[-2000:]}")
    try:
        yield f"rtsp://127.0.0.1:{port}/hevc"
    finally:
        proc.stdin.close()  # it quits when its stdin closes
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
