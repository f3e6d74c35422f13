"""Live video in the operator console, in a real browser: glass-to-glass latency and the time
from "view" to the first picture.

A GStreamer RTSP test camera burns each picture's capture time (wall clock, ms) into its bottom
quarter (camgate.testing's picture clock). The console (Debian's Chromium, through Playwright)
plays the camera's live grant through ``WS /live/{grant}`` into Media Source Extensions —
the console's own player, ``watchLive`` of ``static/media.js``, the function its "Watch"
button calls. Measured:

- ``glass_to_glass_browser``: for 30 presented pictures (every 5th, from the second second on),
  the wall clock when Chromium presented it (``requestVideoFrameCallback``'s
  ``presentationTime``) minus the capture time read back from the picture's pixels (a canvas);
- ``glass_to_glass_ffmpeg`` (the baseline, same camera, same run): ffmpeg reading the camera
  directly (``-fflags nobuffer -flags low_delay``, RTSP over TCP), decoding to raw grey
  pictures on a pipe; the wall clock when Python reads a picture minus its capture time;
- ``view_to_first_frame_cold``: ``watchLive`` called → the first picture presented, with no
  other viewer of the camera and no GOP cache (the gate opens the camera: RTSP set-up, then its
  first picture, a keyframe);
- ``view_to_first_frame_shared``: the same while another view of the camera is open, without
  the GOP cache (the default): the relay shares the open connection but hands the new viewer
  nothing from before its grant, so it waits for the camera's next keyframe — up to one GOP;
- ``view_to_first_frame_warm``: with ``RelaySettings(gop_cache=True)`` and the camera warm (an
  open incident covers it, its owner pre-authorised live view): the new viewer starts at the
  cached keyframe at once (docs/media.md, "Warm start").

Each view is a new incident and grant (a grant opens one socket). The cold and shared views run
on a gate without the GOP cache, the warm ones on a second gate with it, both in this run.
Usage: uv run python bench/browser_live.py [--samples 30] [--views 8]
"""

from __future__ import annotations

import argparse
import contextlib
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import summary, write_result
from camgate import Camera, ConsentTerms, Gate, GeoPoint, Owner, Waiver
from camgate.relay import RelaySettings
from camgate.testing import CHROMIUM, CHROMIUM_ARGS, read_picture_clock
from camgate_rtsp.testing.server import Mount, RtspTestServer
from camgate_server.accounts import AccountStore
from camgate_server.app import create_app
from camgate_server.policy import Role
from camgate_server.settings import ServerSettings

HOME = GeoPoint(32.2988, -90.1848)
PASSWORD = "bench password 12345"
WAIVER = Waiver("w1", "I agree.")
WIDTH, HEIGHT, FPS = 320, 240, 30
CAMERA = Mount("/cam", width=WIDTH, height=HEIGHT, fps=FPS, gop_frames=30, picture_clock=True)

#: Open a view (a new incident, its granted request, ``watchLive``) and resolve, once the
#: first picture is presented, with the milliseconds from the call to it; the tile's key.
_VIEW = """async ([lat, lon]) => {
  const made = await api("POST", API.incidents, {kind: "burglary", lat, lon, radius_m: 300});
  const asked = await api("POST", API.requests(made.id),
    {camera: "cam", scope: "live", duration_s: 600});
  const started = performance.now();
  const tile = watchLive(asked.grant.id, "cam", () => null);
  const video = tile.querySelector("video");
  const first = await new Promise(
    (resolve) => video.requestVideoFrameCallback(() => resolve(performance.now())));
  return {ms: first - started, key: tile.dataset.key};
}"""

#: From the tile ``key``'s video: ``n`` presented pictures (every ``every``th, after ``skip``),
#: each as its presentation's wall clock (ms) and its brightness (a canvas's pixels).
_SAMPLES = """async ([key, n, every, skip]) => {
  const video = document.querySelector(`#media li[data-key="${key}"] video`);
  const canvas = document.createElement("canvas");
  const ctx = canvas.getContext("2d", {willReadFrequently: true});
  const got = [];
  let seen = 0;
  await new Promise((resolve) => {
    const each = (now, meta) => {
      seen += 1;
      if (seen > skip && (seen - skip) % every === 0) {
        canvas.width = video.videoWidth;
        canvas.height = video.videoHeight;
        ctx.drawImage(video, 0, 0);
        const px = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
        const luma = new Uint8Array(canvas.width * canvas.height);
        for (let i = 0; i < luma.length; i++) {
          luma[i] = (77 * px[4 * i] + 150 * px[4 * i + 1] + 29 * px[4 * i + 2]) >> 8;
        }
        got.push({at: performance.timeOrigin + meta.presentationTime, w: canvas.width,
                  h: canvas.height, luma: Array.from(luma)});
      }
      if (got.length >= n) resolve(); else video.requestVideoFrameCallback(each);
    };
    video.requestVideoFrameCallback(each);
  });
  return got;
}"""


def _clock_ms(luma: Any) -> float | None:
    taken = read_picture_clock(luma)
    return None if taken is None else taken.timestamp() * 1000


def ffmpeg_latency(url: str, samples: int, every: int = 5, skip: int = 60) -> list[float]:
    """Glass-to-glass of ffmpeg reading the camera directly: seconds per sampled picture."""
    args = ["ffmpeg", "-nostdin", "-loglevel", "error", "-fflags", "nobuffer", "-flags",
            "low_delay", "-rtsp_transport", "tcp", "-i", url, "-f", "rawvideo", "-pix_fmt",
            "gray", "-"]  # fmt: skip
    size = WIDTH * HEIGHT
    got: list[float] = []
    with subprocess.Popen(args, stdout=subprocess.PIPE) as proc:
        assert proc.stdout is not None
        try:
            seen = 0
            while len(got) < samples:
                raw = proc.stdout.read(size)
                now = time.time() * 1000
                assert len(raw) == size, "ffmpeg stopped"
                seen += 1
                if seen > skip and (seen - skip) % every == 0:
                    taken = _clock_ms(np.frombuffer(raw, np.uint8).reshape(HEIGHT, WIDTH))
                    if taken is not None:
                        got.append((now - taken) / 1000)
        finally:
            proc.kill()
    return got


@contextlib.contextmanager
def console(tmp: Path, url: str, relay: RelaySettings | None = None) -> Iterator[str]:
    """The server (uvicorn on loopback, in a thread) over a gate (with ``relay`` settings) with
    Alice's camera, live pre-authorised, and an officer's account: its base URL."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server" / "tests"))
    from conftest import serving  # the server tests' uvicorn-in-a-thread helper

    tmp.mkdir(parents=True, exist_ok=True)
    gate = Gate.open(tmp / "bench.db", relay_settings=relay)
    gate.publish_waiver(WAIVER)
    gate.add_owner(Owner("alice", "Alice"))
    gate.add_camera(Camera(id="cam", adapter="rtsp", source=url, owner_id="alice",
                           position=HOME))  # fmt: skip
    gate.enrol("alice", ["cam"], waiver_version=WAIVER.version, waiver_sha256=WAIVER.sha256,
               terms=ConsentTerms(scopes={"live"}))  # fmt: skip
    settings = ServerSettings(secure_cookies=False)
    accounts = AccountStore(tmp / "bench.accounts.db", settings=settings)
    accounts.create_account("officer", PASSWORD, Role.OPERATOR)
    try:
        with serving(create_app(gate, accounts, settings)) as base:
            yield base
    finally:
        accounts.close()
        closer = threading.Thread(target=anyio.run, args=(gate.aclose,))
        closer.start()
        closer.join(timeout=30)


def _stop(page: Any, key: str) -> None:
    page.locator(f'#media li[data-key="{key}"] button').click()
    page.locator(f'#media li[data-key="{key}"][data-state=closed]').wait_for()


@contextlib.contextmanager
def officer_page(base: str) -> Iterator[Any]:
    """Chromium (Playwright) with the officer signed in to the console at ``base``."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=list(CHROMIUM_ARGS)
        )
        try:
            page = browser.new_context(base_url=base).new_page()
            page.goto("/")
            page.get_by_label("Username").fill("officer")
            page.get_by_label("Password").fill(PASSWORD)
            page.get_by_label("Password").press("Enter")
            page.wait_for_url("**/console")
            page.locator("#sign-out").wait_for()  # shown once the session (its token) is in
            yield page
        finally:
            browser.close()


def browser_run(base: str, samples: int, views: int) -> dict[str, list[float]]:
    """Without the GOP cache: cold views, views joining an open one, glass-to-glass."""
    out: dict[str, list[float]] = {"g2g": [], "cold": [], "shared": []}
    with officer_page(base) as page:
        for _ in range(views):
            cold = page.evaluate(_VIEW, [HOME.lat, HOME.lon])
            out["cold"].append(cold["ms"] / 1000)
            shared = page.evaluate(_VIEW, [HOME.lat, HOME.lon])
            out["shared"].append(shared["ms"] / 1000)
            _stop(page, shared["key"])
            if len(out["g2g"]) < samples:
                for got in page.evaluate(_SAMPLES, [cold["key"], samples, 5, FPS]):
                    luma = np.array(got["luma"], np.uint8).reshape(got["h"], got["w"])
                    taken = _clock_ms(luma)
                    if taken is not None:
                        out["g2g"].append((got["at"] - taken) / 1000)
            _stop(page, cold["key"])
            time.sleep(0.5)  # the gate closes the camera after its last viewer left
    return out


def warm_run(base: str, views: int) -> list[float]:
    """With the GOP cache: views of the warm camera (nobody else watching), one at a time."""
    out: list[float] = []
    with officer_page(base) as page:
        # The first incident warms the camera; a GOP later the cache holds a keyframe.
        page.evaluate(
            """([lat, lon]) => api("POST", API.incidents, {kind: "burglary", lat, lon,
                                                          radius_m: 300})""",
            [HOME.lat, HOME.lon],
        )
        time.sleep(2 * CAMERA.gop_frames / FPS)
        for _ in range(views):
            warm = page.evaluate(_VIEW, [HOME.lat, HOME.lon])
            out.append(warm["ms"] / 1000)
            _stop(page, warm["key"])
            time.sleep(0.5)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=30)
    parser.add_argument("--views", type=int, default=8)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, RtspTestServer([CAMERA]) as camera:
        url = camera.url("/cam")
        baseline = ffmpeg_latency(url, options.samples)
        with console(Path(tmp) / "plain", url) as base:
            measured = browser_run(base, options.samples, options.views)
        with console(Path(tmp) / "cached", url, RelaySettings(gop_cache=True)) as base:
            measured["warm"] = warm_run(base, options.views)
    g2g = measured["g2g"][: options.samples]
    result = {
        "camera": {"width": WIDTH, "height": HEIGHT, "fps": FPS, "gop_frames": CAMERA.gop_frames},
        "glass_to_glass_browser": summary(g2g),
        "glass_to_glass_ffmpeg": summary(baseline),
        "ratio_browser_vs_ffmpeg_median": round(
            summary(g2g)["median_ms"] / summary(baseline)["median_ms"], 2
        ),
        "view_to_first_frame_cold": summary(measured["cold"]),
        "view_to_first_frame_shared": summary(measured["shared"]),
        "view_to_first_frame_warm": summary(measured["warm"]),
    }
    write_result("browser_live", result)


if __name__ == "__main__":
    main()
