"""Clips from cameras the plain mounts do not imitate: parameter sets only in the SDP,
B-frames, H.265, a camera that dies or reconnects mid-clip, AAC packed several frames per
RTP packet. Every output is decoded fully by ffmpeg and checked with ffprobe."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import AsyncIterator, Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import anyio
import attrs
import av
import pytest
from camgate import Clip, Gate, MediaPacket, StreamInfo
from camgate.media import Muxer
from camgate.media.files import partial_name
from camgate.testing import run_cli
from camgate_rtsp.testing.inputs import hevc, sdp_only_h264
from camgate_rtsp.testing.server import Mount, RtspTestServer
from hypothesis import given, settings
from hypothesis import strategies as st

from .conftest import World
from .test_media import _ffmpeg_decodes, _probe, _run

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def inputs_server() -> Iterator[RtspTestServer]:
    with RtspTestServer([sdp_only_h264("/sdp-b", bframes=2), hevc("/hevc")]) as server:
        yield server


@pytest.fixture
async def inputs(tmp_path: Path, inputs_server: RtspTestServer) -> AsyncIterator[World]:
    gate = Gate.open(tmp_path / "camgate.db")
    try:
        world = World(gate, inputs_server)
        world.enrol_camera("cam-sdp", inputs_server.url("/sdp-b"))
        world.enrol_camera("cam-hevc", inputs_server.url("/hevc"))
        yield world
    finally:
        await gate.aclose()


def _ffprobe(path: Path | str, entries: str, *args: str) -> dict[str, Any]:
    """ffprobe's JSON for ``entries`` of ``path`` (extra options before the file)."""
    out = _run("ffprobe", "-show_entries", entries, *args, "-of", "json", str(path))
    return json.loads(out)  # type: ignore[no-any-return]


def _video(path: Path | str) -> dict[str, Any]:
    entries = "stream=codec_name,profile,codec_tag_string,start_time,nb_read_frames"
    return _ffprobe(path, entries, "-count_frames", "-select_streams", "v")["streams"][0]  # type: ignore[no-any-return]


def _first_pts(path: Path | str) -> float:
    data = _ffprobe(path, "frame=pts_time", "-select_streams", "v", "-read_intervals", "%+#1")
    return float(data["frames"][0]["pts_time"])


@pytest.mark.parametrize("format", ["mp4", "fmp4", "ts", "hls"])
async def test_sdp_only_b_frames_keep_the_cameras_parameter_sets(
    inputs: World, tmp_path: Path, format: str
) -> None:
    """SPS/PPS only in the SDP, Main profile, two B-frames: every format decodes fully, says
    Main (libx264's own SPS said High), starts at 0 and holds exactly 2 s of pictures."""
    out = tmp_path / ("clip" if format == "hls" else f"clip.{format}")
    grant = await inputs.grant(camera="cam-sdp")
    clip = await inputs.gate.edge.record_clip("cam-sdp", grant, out, 2.0, format=format)
    target = out / "index.m3u8" if format == "hls" else out
    assert _ffmpeg_decodes(target) == 60
    video = _video(target)
    assert video["profile"] == "Main"
    assert int(video["nb_read_frames"]) == 60
    assert clip.duration_s == pytest.approx(2.0, abs=0.001)
    # The first picture shows at the file's start (fMP4 writes B-frames with negative
    # composition offsets, which ffprobe reads one frame late).
    start = float(_probe(target, "format=start_time")["format"]["start_time"])  # type: ignore[index]
    assert _first_pts(target) - start <= (1 / 30 if format == "fmp4" else 0) + 1e-3
    assert start <= (1 / 30 if format == "fmp4" else 0) + 1e-3 or format in ("ts", "hls")
    assert not clip.partial and clip.reason is None


@pytest.mark.parametrize("format", ["mp4", "fmp4", "ts", "hls"])
async def test_hevc_decodes_in_every_format_tagged_hvc1_in_mp4(
    inputs: World, tmp_path: Path, format: str
) -> None:
    """H.265 whose parameter sets the client gets only from the SDP: every format decodes
    fully, and MP4 / fMP4 say ``hvc1`` (parameter sets in the sample description)."""
    out = tmp_path / ("clip" if format == "hls" else f"h.{format}")
    grant = await inputs.grant(camera="cam-hevc")
    await inputs.gate.edge.record_clip("cam-hevc", grant, out, 1.0, format=format)
    target = out / "index.m3u8" if format == "hls" else out
    video = _video(target)
    assert video["codec_name"] == "hevc"
    if format in ("mp4", "fmp4"):
        assert video["codec_tag_string"] == "hvc1"
    assert _ffmpeg_decodes(target) == int(video["nb_read_frames"]) >= 30


async def _wait_for(predicate: Any) -> None:
    """Wait (up to 30 s) until ``predicate()`` holds."""
    for _ in range(600):
        if predicate():
            return
        await anyio.sleep(0.05)
    raise AssertionError("the condition never held")


async def _clip_while(
    tmp_path: Path, out: Path, duration_s: float, format: str, meanwhile: Any
) -> tuple[Clip, Gate, float]:
    """Record a live clip from a camera of its own while ``meanwhile(server, gate)`` runs;
    the clip, the (closed) gate for its audit log, and the seconds the clip took."""
    with RtspTestServer([Mount("/cam1", width=320, height=240)]) as server:
        gate = Gate.open(tmp_path / "camgate.db")
        try:
            world = World(gate, server)
            grant = await world.grant()
            result: dict[str, Any] = {}

            async def record() -> None:
                began = time.monotonic()
                result["clip"] = await gate.edge.record_clip(
                    "cam-a", grant, out, duration_s, format=format
                )
                result["took"] = time.monotonic() - began

            async with anyio.create_task_group() as tg:
                tg.start_soon(record)
                await meanwhile(server, gate)
        finally:
            await gate.aclose()
    return result["clip"], gate, result["took"]


async def test_camera_dying_mid_clip_keeps_the_partial_clip(tmp_path: Path) -> None:
    """The camera dies a few seconds into a 20 s clip: the pictures written are kept, audited
    as partial with their SHA-256 and the reason."""
    out = tmp_path / "c.ts"

    async def die(server: RtspTestServer, gate: Gate) -> None:
        # More than a second of pictures written (MPEG-TS is written as it goes).
        part = partial_name(out)
        await _wait_for(lambda: part.exists() and part.stat().st_size > 200_000)
        server.kill()

    clip, gate, _ = await _clip_while(tmp_path, out, 20.0, "ts", die)
    assert clip.partial and clip.reason is not None
    assert clip.reason.startswith(f"the camera stopped sending after {clip.duration_s:.1f} s")
    assert 0.5 < clip.duration_s < 20
    assert hashlib.sha256(out.read_bytes()).hexdigest() == clip.sha256
    frames = _ffmpeg_decodes(out)
    assert abs(frames - clip.duration_s * 30) <= 2
    (record,) = gate.audit.records("clip.exported")
    assert record.body["partial"] is True and record.body["reason"] == clip.reason
    assert record.body["sha256"] == clip.sha256
    assert not list(gate.audit.records("clip.failed"))


async def test_reconnect_keeps_the_timeline_in_real_time(tmp_path: Path) -> None:
    """The camera goes away and comes back mid-clip: the clip ends after its duration of real
    time (not at the grant's expiry), shows the hole as a gap in its timeline and in the
    audit, and decodes fully."""
    out = tmp_path / "c.mp4"

    async def cut(server: RtspTestServer, gate: Gate) -> None:
        def upstream() -> Any:
            return gate.edge.relay_statistics().upstream("cam-a")

        await _wait_for(lambda: upstream() is not None and upstream().packets > 30)
        server.stop()
        await anyio.to_thread.run_sync(server.start)
        await _wait_for(lambda: upstream() is not None and upstream().reconnects >= 1)

    clip, gate, took = await _clip_while(tmp_path, out, 8.0, "mp4", cut)
    assert took < 8.0 + 10  # not stretched to the grant's 30 s
    (record,) = gate.audit.records("clip.exported")
    gaps = record.body["gaps"]
    assert gaps and all(g["missing_s"] > 0 for g in gaps)
    duration = float(_probe(out, "format=duration")["format"]["duration"])  # type: ignore[index]
    assert duration == pytest.approx(8.0, abs=1.0)
    frames = _ffmpeg_decodes(out)
    # The pictures written fill the clip but for the hole (one frame of slack each side).
    missing = sum(g["missing_s"] for g in gaps)
    assert abs(frames - (clip.duration_s - missing) * 30) <= 3


def _aac_frames(seconds: float, rate: int = 48000) -> tuple[StreamInfo, list[bytes]]:
    """Real AAC frames (PyAV's encoder) of a tone, and the stream's description."""
    enc: Any = av.CodecContext.create("aac", "w")
    enc.sample_rate, enc.layout, enc.format = rate, "mono", "fltp"
    enc.time_base = Fraction(1, rate)
    enc.open()
    frames: list[bytes] = []
    samples = 0
    while samples < seconds * rate:
        frame = av.AudioFrame(format="fltp", layout="mono", samples=1024)
        frame.planes[0].update(bytes(4 * 1024))
        frame.sample_rate, frame.pts = rate, samples
        samples += 1024
        frames += [bytes(p) for p in enc.encode(frame)]
    frames += [bytes(p) for p in enc.encode(None)]
    info = StreamInfo(
        codec="aac",
        time_base=Fraction(1, rate),
        extradata=bytes(enc.extradata),
        kind="audio",
        sample_rate=rate,
        channels=1,
    )
    return info, frames


def _h264(seconds: float) -> tuple[StreamInfo, list[MediaPacket]]:
    enc: Any = av.CodecContext.create("libx264", "w")
    enc.width, enc.height, enc.pix_fmt = 160, 120, "yuv420p"
    enc.time_base, enc.framerate = Fraction(1, 90000), Fraction(30)
    enc.gop_size = 30
    enc.options = {"tune": "zerolatency"}
    enc.open()
    info = StreamInfo(codec="h264", time_base=Fraction(1, 90000), width=160, height=120)
    out = []
    for n in range(int(seconds * 30)):
        frame = av.VideoFrame(160, 120, "yuv420p")
        frame.pts = n * 3000
        for p in enc.encode(frame):
            out.append(MediaPacket(bytes(p), p.pts, p.dts, p.is_keyframe, info, 0.0, duration=3000))
    return info, out


@pytest.mark.parametrize("format", ["mp4", "ts"])
def test_aac_frames_without_a_timestamp_are_placed_not_dropped(tmp_path: Path, format: str) -> None:
    """AAC with five frames per RTP packet: FFmpeg's RTP demuxer stamps only the first of
    each packet. All of the sound must reach the file (it lost 80 % before)."""
    video, pictures = _h264(3.0)
    audio, frames = _aac_frames(3.0)
    sound = [
        MediaPacket(
            data,
            n * 1024 if n % 5 == 0 else None,
            n * 1024 if n % 5 == 0 else None,
            True,
            audio,
            0.0,
        )
        for n, data in enumerate(frames)
    ]
    # Interleave by time: each picture, then the sound up to its time.
    merged: list[MediaPacket] = []
    queue = list(enumerate(sound))
    for picture in pictures:
        merged.append(picture)
        at = picture.pts * video.time_base  # type: ignore[operator]
        while queue and queue[0][0] * Fraction(1024, 48000) <= at:
            merged.append(queue.pop(0)[1])
    out = tmp_path / f"a.{format}"
    with Muxer(out, video, format=format, audio=audio) as muxer:
        for packet in merged:
            muxer.write(packet)
    data = _ffprobe(out, "stream=codec_type,duration,nb_read_packets", "-count_packets")
    (track,) = [s for s in data["streams"] if s["codec_type"] == "audio"]
    assert int(track["nb_read_packets"]) >= len(merged) - len(pictures) - 2
    _ffmpeg_decodes(out)


@settings(max_examples=15, deadline=None)
@given(
    outages=st.lists(st.floats(min_value=0.0, max_value=5.0), min_size=1, max_size=3),
    restart=st.booleans(),
)
def test_gaps_follow_real_time_and_pictures_never_overlap(
    outages: list[float], restart: bool
) -> None:
    """Segments of one second each, separated by outages of real time, whose timestamps
    restart (flagged ``discontinuity``) or not: the output keeps every picture, in order,
    with holes as long as the outages (never shorter than nothing)."""
    import tempfile

    info, second = _h264(1.0)
    packets: list[MediaPacket] = []
    now = 100.0
    for n, outage in enumerate([0.0, *outages]):
        now += outage
        shift = 0 if restart else n * 90000
        for i, p in enumerate(second):
            packets.append(
                attrs.evolve(
                    p,
                    pts=p.pts + shift,  # type: ignore[operator]
                    dts=p.dts + shift,  # type: ignore[operator]
                    arrival=now + i / 30,
                    discontinuity=n > 0 and i == 0,
                )
            )
        now += 1.0
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "g.mp4"
        with Muxer(out, info) as muxer:
            for packet in packets:
                muxer.write(packet)
        times = [
            float(f["pts_time"])
            for f in _ffprobe(out, "frame=pts_time", "-select_streams", "v")["frames"]
        ]
        assert len(times) == len(packets)
    assert times == sorted(times) and len(set(times)) == len(times)
    assert len(muxer.gaps) == len(outages)
    for gap, outage in zip(muxer.gaps, outages, strict=True):
        assert gap.missing_s == pytest.approx(outage, abs=0.04)
    assert muxer.duration == pytest.approx(len(packets) / 30 + sum(outages), abs=0.1)


_REMUX = """
import sys, time
import av
from camgate.media import Muxer
from camgate.models import MediaPacket, StreamInfo
src = av.open(sys.argv[1])
ist = src.streams.video[0]
ctx = ist.codec_context
info = StreamInfo(codec=ctx.name, time_base=ist.time_base, width=ctx.width, height=ctx.height,
                  extradata=bytes(ctx.extradata))
with Muxer(sys.argv[2], info, format=sys.argv[3]) as muxer:
    for p in src.demux(ist):
        if p.size:
            muxer.write(MediaPacket(bytes(p), p.pts, p.dts, p.is_keyframe, info, time.monotonic()))
"""


@pytest.mark.parametrize(("encoder", "format"), [("libx265", "mp4"), ("libx264", "fmp4")])
def test_remux_opens_no_encoder(tmp_path: Path, encoder: str, format: str) -> None:
    """Writing a camera's packets prints nothing: no encoder is opened (x265 and x264 announce
    themselves on stderr when one is)."""
    import subprocess
    import sys

    source = tmp_path / "in.mp4"
    lavfi = "testsrc2=size=160x120:rate=30"
    subprocess.run(  # x265 talks on stderr whatever ffmpeg's -v says
        ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", lavfi, "-t", "1", "-c:v", encoder, source],
        capture_output=True,
        timeout=120,
        check=True,
    )
    out = tmp_path / f"out.{format}"
    done = subprocess.run(
        [sys.executable, "-c", _REMUX, str(source), str(out), format],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert _ffmpeg_decodes(out) == 30


async def test_cli_says_a_clip_is_partial(tmp_path: Path) -> None:
    """``camgate request`` prints ``partial`` and the reason for a clip the camera cut short."""
    out = tmp_path / "out"
    db = tmp_path / "camgate.db"
    with RtspTestServer([Mount("/cam1", width=320, height=240)]) as server:
        gate = Gate.open(db)
        try:
            incident = World(gate, server).incident.id
        finally:
            await gate.aclose()
        args = ["request", "--incident", incident, "--camera", "cam-a", "--scope", "live"]
        args += ["--by", "officer-7", "--duration", "20", "--format", "ts", "--out", str(out)]
        done: dict[str, Any] = {}

        async def request() -> None:
            done["run"] = await anyio.to_thread.run_sync(lambda: run_cli("--db", str(db), *args))

        def written() -> bool:
            return any(f.stat().st_size > 200_000 for f in out.glob(".*.partial"))

        async with anyio.create_task_group() as tg:
            tg.start_soon(request)
            await _wait_for(lambda: out.exists() and written())
            server.kill()
    got = json.loads(done["run"].stdout)
    assert got["partial"] is True
    assert got["reason"].startswith("the camera stopped sending after ")
    assert _ffmpeg_decodes(got["file"]) >= 30
