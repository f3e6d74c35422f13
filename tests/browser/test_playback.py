"""camgate's fMP4 (MSE) and HLS (hls.js) play in Chromium: H.264, and H.265 transcoded.

Clips are recorded through a real gate from real RTSP cameras (GStreamer's test server for
H.264, GStreamer with x265enc for H.265), served over HTTP on loopback, and played by
headless Chromium; each test asserts the browser decoded the pictures
(``getVideoPlaybackQuality().totalVideoFrames``) and reached the end, not that a page loaded.
H.265 as the camera sends it is the control: Chromium refuses it, so the transcode is what
makes it play.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from camgate import Camera, ConsentTerms, Gate, GeoPoint, Owner, Waiver
from camgate.cli import main
from camgate_rtsp.testing.server import Mount, RtspTestServer

from .conftest import Site

#: The first test also records every clip (module fixture) and starts Chromium.
pytestmark = pytest.mark.timeout(300)

HOME = GeoPoint(32.2988, -90.1848)
CLIP_S = 3.0
#: Frames the browser must have decoded: two thirds of the clip at 30 fps.
MIN_FRAMES = int(CLIP_S * 30 * 2 / 3)

#: name -> (camera, format, browser=): what each test plays.
CLIPS = {
    "h264-fmp4": ("h264", "fmp4", True),
    "h264-hls": ("h264", "hls", True),
    "hevc-fmp4": ("hevc", "fmp4", True),
    "hevc-hls": ("hevc", "hls", True),
    "hevc-raw-fmp4": ("hevc", "fmp4", False),
    "hevc-raw-hls": ("hevc", "hls", False),
}


async def _record(root: Path, db: Path, sources: dict[str, str]) -> dict[str, Any]:
    """Record every clip of CLIPS through a gate (concurrently: the relay shares each camera)."""
    gate = Gate.open(db)
    clips: dict[str, Any] = {}
    try:
        waiver = gate.publish_waiver(Waiver("w1", "I agree to share my camera."))
        gate.add_owner(Owner("alice", "Alice"))
        for camera, url in sources.items():
            gate.add_camera(
                Camera(id=camera, adapter="rtsp", source=url, owner_id="alice", position=HOME)
            )
        gate.enrol(
            "alice",
            list(sources),
            waiver_version="w1",
            waiver_sha256=waiver.sha256,
            terms=ConsentTerms(scopes=["live"]),
        )
        incident = gate.report_incident("burglary", HOME, radius_m=300)

        async def one(name: str, camera: str, fmt: str, browser: bool) -> None:
            grant = await gate.request_access(
                incident.id, camera, "live", requested_by="officer-7", duration_s=60
            )
            path = root / (name if fmt == "hls" else f"{name}.mp4")
            clips[name] = await gate.edge.record_clip(
                camera, grant, path, CLIP_S, format=fmt, browser=browser
            )

        async with anyio.create_task_group() as tg:
            for name, (camera, fmt, browser) in CLIPS.items():
                tg.start_soon(one, name, camera, fmt, browser)
    finally:
        await gate.aclose()
    # And once from the shell: camgate request --browser (a process's gate of its own).
    out = root / "cli"
    args = ["--db", str(db), "request", "--incident", incident.id, "--camera", "hevc"]
    args += ["--scope", "live", "--by", "officer-7", "--duration", str(CLIP_S)]
    args += ["--format", "fmp4", "--browser", "--out", str(out)]
    with contextlib.redirect_stdout(io.StringIO()) as printed:
        code = await anyio.to_thread.run_sync(main, args)
    assert code == 0, printed.getvalue()
    clips["hevc-cli-fmp4"] = json.loads(printed.getvalue())
    return clips


@pytest.fixture(scope="module")
def clips(
    site: Site, hevc_camera: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    """Every clip of CLIPS, recorded into the served folder."""
    with RtspTestServer([Mount("/cam", width=640, height=360, gop_frames=30)]) as h264:
        sources = {"h264": h264.url("/cam"), "hevc": hevc_camera}
        db = tmp_path_factory.mktemp("gate") / "camgate.db"
        # In a thread of its own: Playwright's sync API runs an event loop in this one.
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            yield pool.submit(anyio.run, _record, site.root, db, sources).result()


def _mse_type(path: Path) -> str:
    """The MIME type with the codec string of an fMP4 file's video track (from its avcC box;
    an H.265 file gets the Main profile's string)."""
    data = path.read_bytes()
    at = data.find(b"avcC")
    if at >= 0:
        profile, compat, level = data[at + 5 : at + 8]
        return f'video/mp4; codecs="avc1.{profile:02x}{compat:02x}{level:02x}"'
    assert data.find(b"hvcC") >= 0 or data.find(b"hev1") >= 0, "neither H.264 nor H.265"
    return 'video/mp4; codecs="hvc1.1.6.L93.B0"'


def _play(
    chromium: Any, url: str, call: str, timeout_s: float = 60, *, settle: bool = False
) -> dict[str, Any]:
    """Open ``url``, run ``call`` in it, wait for the page's ``window.result``.

    With ``settle`` a page that reports nothing in ``timeout_s`` (a player stuck retrying) is
    asked for its state then, with the error "no result"."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    page = chromium.new_page()
    try:
        page.goto(url)
        page.evaluate(call)
        try:
            page.wait_for_function("window.result !== null", timeout=timeout_s * 1000)
        except PlaywrightTimeout:
            if not settle:
                raise
            page.evaluate("report(document.getElementById('v'), 'no result')")
        result: dict[str, Any] = page.evaluate("window.result")
        return result
    finally:
        page.close()


def _assert_played(result: dict[str, Any]) -> None:
    assert result["error"] is None, result
    assert result["ended"], result
    assert (result["width"], result["height"]) == (640, 360), result
    assert result["totalVideoFrames"] > MIN_FRAMES, result
    assert result["currentTime"] >= CLIP_S * 0.9, result


@pytest.mark.parametrize("name", ["h264-fmp4", "hevc-fmp4", "hevc-cli-fmp4"])
def test_fmp4_plays_over_mse(chromium: Any, site: Site, clips: dict[str, Any], name: str) -> None:
    """fMP4 through Media Source Extensions (the last one written by ``camgate request
    --browser``)."""
    path = Path(clips[name]["file"] if name.endswith("cli-fmp4") else clips[name].path)
    mime = _mse_type(path)
    assert "avc1." in mime, "what a browser gets is H.264"
    src = path.relative_to(site.root).as_posix()
    _assert_played(_play(chromium, site.url + "mse.html", f"play({src!r}, {mime!r})"))


@pytest.mark.parametrize("name", ["h264-hls", "hevc-hls"])
def test_hls_plays_in_hls_js(chromium: Any, site: Site, clips: dict[str, Any], name: str) -> None:
    _assert_played(_play(chromium, site.url + "hls.html", f"play({name + '/index.m3u8'!r})"))


def test_h265_as_the_camera_sends_it_does_not_play(
    chromium: Any, site: Site, clips: dict[str, Any]
) -> None:
    """The control: without the transcode, Chromium refuses H.265 (so the tests above could
    fail, and the transcode is what makes them pass)."""
    mime = _mse_type(site.root / "hevc-raw-fmp4.mp4")
    assert "hvc1" in mime
    mse = _play(chromium, site.url + "mse.html", f"play('hevc-raw-fmp4.mp4', {mime!r})")
    assert mse["error"] and mse["totalVideoFrames"] == 0, mse
    # hls.js usually gives up with a fatal codec error; on a loaded machine it may still be
    # retrying: either way nothing is decoded in several times the clip's length.
    hls = _play(chromium, site.url + "hls.html", "play('hevc-raw-hls/index.m3u8')", 20, settle=True)
    assert hls["error"] and hls["totalVideoFrames"] == 0 and not hls["ended"], hls
