"""Media out of the gate, against packets from the real GStreamer RTSP server.

Containers are read back by ffprobe/ffmpeg; masks are checked by decoding the output; clip
windows by the decoded timestamps; damaged input must give an error or a gap, never a hang.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import AsyncIterator, Iterator, Sequence
from datetime import timedelta
from fractions import Fraction
from pathlib import Path

import anyio
import attrs
import av
import numpy as np
import numpy.typing as npt
import pytest
from camgate import CameraProtocolError, MediaPacket, StreamInfo, ValidationError
from camgate.media import (
    Cut,
    HlsWriter,
    MaskTransform,
    Mp4Writer,
    Muxer,
    WindowCut,
    mask_jpeg,
    stream_bytes,
    transformed,
)
from camgate_rtsp.adapter import RtspLiveStream, RtspSettings
from camgate_rtsp.testing.server import Mount, RtspTestServer

pytestmark = pytest.mark.anyio

#: A triangle and a quadrilateral over the coloured bars of the SMPTE pattern.
POLYGONS = [
    [(0.05, 0.05), (0.42, 0.12), (0.25, 0.55)],
    [(0.55, 0.10), (0.90, 0.10), (0.95, 0.45), (0.60, 0.40)],
]


@pytest.fixture(scope="module")
def media_server() -> Iterator[RtspTestServer]:
    """Two resolutions, so a stream that switches resolution can be built from real packets."""
    with RtspTestServer(
        [
            Mount("/big", width=640, height=360, gop_frames=15),
            Mount("/small", width=320, height=180, gop_frames=15, pattern="ball"),
            Mount("/av", gop_frames=15, audio=True),
            Mount("/av-pcma", gop_frames=15, audio=True, audio_codec="pcma"),
        ]
    ) as server:
        yield server


async def _capture(url: str, count: int, *, audio: bool = False) -> list[MediaPacket]:
    """``count`` video packets from the server; with ``audio``, also until the audio read so
    far spans 1.5 s (on a loaded machine the sound may lag the picture by a second or more)."""

    def enough(packets: list[MediaPacket]) -> bool:
        if sum(p.stream.kind == "video" for p in packets) < count:
            return False
        sound = [p for p in packets if p.stream.kind == "audio" and p.pts is not None]
        return not audio or (
            len(sound) > 1 and (sound[-1].pts - sound[0].pts) * sound[0].stream.time_base >= 1.5  # type: ignore[operator]
        )

    stream = await RtspLiveStream.open(url, RtspSettings(), audio=audio)
    packets: list[MediaPacket] = []
    try:
        with anyio.fail_after(30):
            async for packet in stream:
                packets.append(packet)
                if enough(packets):
                    break
    finally:
        await stream.aclose()
    return packets


@pytest.fixture(scope="module")
def big(media_server: RtspTestServer) -> list[MediaPacket]:
    """Two seconds (60 packets, 4 GOPs) of 640x360 H.264 from the RTSP server."""
    return anyio.run(_capture, media_server.url("/big"), 60)


@pytest.fixture(scope="module")
def small(media_server: RtspTestServer) -> list[MediaPacket]:
    """One second of 320x180 H.264 from the RTSP server."""
    return anyio.run(_capture, media_server.url("/small"), 30)


def _probe(path: Path | str, *entries: str) -> dict[str, object]:
    """ffprobe's JSON for ``path``; fails the test on any error message."""
    out = _run("ffprobe", "-show_entries", ",".join(entries), "-of", "json", str(path))
    return json.loads(out)  # type: ignore[no-any-return]


def _run(tool: str, *args: str) -> str:
    """Run ffmpeg/ffprobe with ``-v error``; fails the test on any error message."""
    done = subprocess.run(
        [tool, "-v", "error", *args], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == "", done.stderr
    return done.stdout


def _decode_all(path: Path | str) -> list[npt.NDArray[np.uint8]]:
    """Every picture of a file, decoded by ffmpeg (via PyAV), as grey (luma) arrays."""
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="gray") for f in container.decode(video=0)]


def _ffmpeg_decodes(path: Path | str) -> int:
    """Decode with the ffmpeg CLI; returns the frame count, fails on any error."""
    out = _run("ffmpeg", "-i", str(path), "-f", "framemd5", "-")
    return sum(1 for line in out.splitlines() if line and not line.startswith("#"))


def _inside(polygons: Sequence[Sequence[tuple[float, float]]], w: int, h: int) -> npt.NDArray:
    """Pixels whose centre lies inside a polygon (an independent even-odd ray cast)."""
    ys, xs = np.mgrid[0:h, 0:w]
    px, py = (xs + 0.5) / w, (ys + 0.5) / h
    out = np.zeros((h, w), dtype=bool)
    for poly in polygons:
        inside = np.zeros((h, w), dtype=bool)
        for (ax, ay), (bx, by) in zip(poly, [*poly[1:], poly[0]], strict=True):
            crosses = (ay > py) != (by > py)
            with np.errstate(divide="ignore", invalid="ignore"):
                x_at = ax + (py - ay) * (bx - ax) / (by - ay)
            inside ^= crosses & (px < x_at)
        out |= inside
    return out


def _mask_all(packets: list[MediaPacket], polygons: object = POLYGONS) -> list[MediaPacket]:
    transform = MaskTransform(polygons)  # type: ignore[arg-type]
    out: list[MediaPacket] = []
    for packet in packets:
        out += transform.feed(packet)
    return out + transform.flush()


def _write(path: Path, packets: list[MediaPacket], **kwargs: object) -> Path:
    with Mp4Writer(path, packets[0].stream, **kwargs) as writer:  # type: ignore[arg-type]
        for packet in packets:
            writer.write(packet)
    return path


# --------------------------------------------------------------------------- outputs


async def test_mp4_fmp4_and_ts_are_read_back_by_ffprobe(
    big: list[MediaPacket], tmp_path: Path
) -> None:
    _write(tmp_path / "clip.mp4", big)

    async def source() -> AsyncIterator[MediaPacket]:
        for packet in big:
            yield packet

    for fmt in ("fmp4", "ts"):
        chunks = [c async for c in stream_bytes(source(), big[0].stream, format=fmt)]
        assert len(chunks) > 2, "a byte stream comes out in pieces, not at the end"
        (tmp_path / f"clip.{fmt}").write_bytes(b"".join(chunks))
    # A fragment per picture (live viewing): each out as the next picture comes in.
    frames = [c async for c in stream_bytes(source(), format="fmp4", fragments="frame")]
    assert len(frames) >= len(big) - 1
    (tmp_path / "frames.fmp4").write_bytes(b"".join(frames))
    with (tmp_path / "direct.ts").open("wb") as fh, Muxer(fh, big[0].stream, format="ts") as mux:
        for packet in big:
            mux.write(packet)
    for name in ("clip.mp4", "clip.fmp4", "frames.fmp4", "clip.ts", "direct.ts"):
        info = _probe(tmp_path / name, "stream=codec_name,width,height")
        assert info["streams"] == [{"codec_name": "h264", "width": 640, "height": 360}], name
        assert _ffmpeg_decodes(tmp_path / name) == len(big), name


async def test_h264_passes_through_bit_exact(big: list[MediaPacket], tmp_path: Path) -> None:
    """No re-encoding: the output decodes to exactly the pictures the camera sent."""
    source = tmp_path / "source.h264"
    source.write_bytes(b"".join(p.data for p in big))
    expected = _decode_all(source)
    got = _decode_all(_write(tmp_path / "out.mp4", big))
    assert len(got) == len(expected) == len(big)
    assert all(np.array_equal(a, b) for a, b in zip(got, expected, strict=True))


def _hevc_packets(count: int = 40, gop: int = 10) -> list[MediaPacket]:
    """H.265 as a camera sends it: libx265, Annex B with in-band VPS/SPS/PPS, 90 kHz clock."""
    encoder = av.CodecContext.create("libx265", "w")
    encoder.width, encoder.height, encoder.pix_fmt = 320, 240, "yuv420p"
    encoder.time_base = Fraction(1, 90000)
    encoder.gop_size = gop
    encoder.options = {"preset": "ultrafast", "x265-params": "log-level=error:bframes=0"}
    info = StreamInfo(codec="hevc", time_base=Fraction(1, 90000), width=320, height=240)
    out: list[MediaPacket] = []
    for n in range(count + 1):
        frame = None
        if n < count:
            picture = np.full((240 * 3 // 2, 320), 100 + (n * 5) % 120, dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(picture, format="yuv420p")
            frame.pts = n * 3000
        for p in encoder.encode(frame):
            out.append(MediaPacket(bytes(p), p.pts, p.dts, p.is_keyframe, info, 0.0, duration=3000))
    return out


async def test_h265_passes_through_to_every_container(tmp_path: Path) -> None:
    packets = _hevc_packets()
    _write(tmp_path / "clip.mp4", packets)

    async def source() -> AsyncIterator[MediaPacket]:
        for packet in packets:
            yield packet

    data = b"".join([c async for c in stream_bytes(source(), packets[0].stream, format="ts")])
    (tmp_path / "clip.ts").write_bytes(data)
    with HlsWriter(tmp_path / "hls", packets[0].stream, target_duration_s=1.0) as hls:
        for packet in packets:
            hls.write(packet)
    raw = tmp_path / "source.hevc"
    raw.write_bytes(b"".join(p.data for p in packets))
    expected = _decode_all(raw)
    for name in ("clip.mp4", "clip.ts", "hls/index.m3u8"):
        info = _probe(tmp_path / name, "stream=codec_name,width,height")
        assert info["streams"] == [{"codec_name": "hevc", "width": 320, "height": 240}], name
        got = _decode_all(tmp_path / name)
        assert len(got) == len(expected) == len(packets), name
        assert all(np.array_equal(a, b) for a, b in zip(got, expected, strict=True)), name


async def test_hls_vod_and_live_window(big: list[MediaPacket], tmp_path: Path) -> None:
    with HlsWriter(tmp_path / "vod", big[0].stream, target_duration_s=0.5) as vod:
        for packet in big:
            vod.write(packet)
    playlist = (tmp_path / "vod" / "index.m3u8").read_text()
    assert "#EXT-X-PLAYLIST-TYPE:VOD" in playlist
    assert "#EXT-X-ENDLIST" in playlist
    segments = [line for line in playlist.splitlines() if line.endswith(".ts")]
    assert len(segments) == 4  # one per GOP: segments start at keyframes
    for name in segments:
        first = _probe(tmp_path / "vod" / name, "packet=flags")["packets"]
        assert first[0]["flags"].startswith("K"), f"{name} does not start at a keyframe"  # type: ignore[index]
    assert _ffmpeg_decodes(tmp_path / "vod" / "index.m3u8") == len(big)

    with HlsWriter(tmp_path / "live", big[0].stream, target_duration_s=0.5, live_window=2) as live:
        for packet in big:
            live.write(packet)
    playlist = (tmp_path / "live" / "index.m3u8").read_text()
    assert "#EXT-X-ENDLIST" in playlist or "#EXT-X-PLAYLIST-TYPE" not in playlist
    listed = [line for line in playlist.splitlines() if line.endswith(".ts")]
    assert len(listed) == 2  # a sliding window of the last two segments
    on_disk = sorted(p.name for p in (tmp_path / "live").glob("*.ts"))
    assert len(on_disk) <= 3 and set(listed) <= set(on_disk)  # older segments deleted
    _probe(tmp_path / "live" / "index.m3u8", "stream=codec_name")


async def test_bad_output_arguments_are_clear_errors(
    big: list[MediaPacket], tmp_path: Path
) -> None:
    with pytest.raises(ValidationError, match="format"):
        Muxer(tmp_path / "x", big[0].stream, format="avi")
    with pytest.raises(ValidationError, match="live_window"):
        HlsWriter(tmp_path / "h", big[0].stream, live_window=1)
    audio = StreamInfo(codec="aac", time_base=Fraction(1, 8000), kind="audio")
    with pytest.raises(ValidationError, match="video"):
        Muxer(tmp_path / "y.mp4", audio)


# --------------------------------------------------------------------------- masks


async def test_masks_fill_every_masked_pixel_and_leave_the_rest(
    big: list[MediaPacket], tmp_path: Path
) -> None:
    masked = _mask_all(big)
    assert len(masked) == len(big)
    assert [p.is_keyframe for p in masked] == [p.is_keyframe for p in big], "GOP = source's"
    assert [p.pts for p in masked] == [p.pts for p in big]
    got = _decode_all(_write(tmp_path / "masked.mp4", masked))
    plain = _decode_all(_write(tmp_path / "plain.mp4", big))
    assert len(got) == len(plain) == len(big)
    inside = _inside(POLYGONS, 640, 360)
    # Outside: away from the filled border by 8 pixels (x264 blocks at the edge may differ).
    near = np.zeros_like(inside)
    for dy in range(-8, 9, 4):
        for dx in range(-8, 9, 4):
            near |= np.roll(np.roll(inside, dy, 0), dx, 1)
    outside = ~near
    for n, (m, p) in enumerate(zip(got, plain, strict=True)):
        assert p[inside].mean() > 60, "the test needs a bright picture under the masks"
        assert int(m[inside].max()) <= 24, f"frame {n}: a masked pixel is not filled"
        diff = np.abs(m[outside].astype(int) - p[outside].astype(int))
        assert diff.mean() < 2.0, f"frame {n}: the unmasked picture changed"
        assert np.percentile(diff, 99) <= 12, f"frame {n}: the unmasked picture changed"


async def test_masks_follow_a_resolution_change(
    big: list[MediaPacket], small: list[MediaPacket], tmp_path: Path
) -> None:
    """A stream that switches resolution: the masks follow the new size, the output keeps the
    size it started with, so one MP4 holds the whole stream and nothing leaks."""
    offset = big[-1].pts + 3000  # type: ignore[operator]
    switched = big[:30] + [
        attrs.evolve(p, pts=p.pts + offset, dts=(p.dts or 0) + offset)  # type: ignore[operator]
        for p in small
    ]
    transform = MaskTransform(POLYGONS)  # type: ignore[arg-type]
    masked = [out for p in switched for out in transform.feed(p)] + transform.flush()
    assert {(p.stream.width, p.stream.height) for p in masked} == {(640, 360)}
    assert len({id(p.stream) for p in masked}) == 1, "one stream description: one MP4 track"
    assert transform.resized == len(small)
    for fmt in ("mp4", "fmp4", "ts"):
        path = tmp_path / f"switched.{fmt}"
        with Muxer(path, masked[0].stream, format=fmt) as mux:
            for packet in masked:
                mux.write(packet)
        assert _ffmpeg_decodes(path) == 30 + len(small), fmt
    with av.open(str(tmp_path / "switched.mp4")) as container:
        frames = [f.to_ndarray(format="gray") for f in container.decode(video=0)]
    inside = _inside(POLYGONS, 640, 360)
    assert all(f.shape == (360, 640) for f in frames)
    for n, grey in enumerate(frames):
        assert int(grey[inside].max()) <= 24, f"frame {n}: unmasked pixel"
    # The small part's picture (the ball pattern), not the big one's bars, after the switch.
    plain = _decode_all(_write(tmp_path / "small.mp4", small))
    upscaled = av.VideoFrame.from_ndarray(plain[-1], format="gray").reformat(640, 360)
    outside = ~inside
    diff = np.abs(frames[-1][outside].astype(int) - upscaled.to_ndarray()[outside].astype(int))
    assert np.percentile(diff, 90) <= 24, "the new picture is what goes out, scaled"


async def test_damaged_packets_give_a_gap_never_an_unmasked_picture(
    big: list[MediaPacket], tmp_path: Path
) -> None:
    """Truncated NAL units: the transform drops to the next keyframe and keeps masking."""
    damaged = [
        attrs.evolve(p, data=p.data[: len(p.data) // 3]) if 20 <= n < 24 else p
        for n, p in enumerate(big)
    ]
    damaged.insert(40, attrs.evolve(big[40], data=b"\x00\x00\x01\x65garbage"))
    transform = MaskTransform(POLYGONS)  # type: ignore[arg-type]
    out: list[MediaPacket] = []
    with anyio.fail_after(20):  # never a hang
        for packet in damaged:
            out += await anyio.to_thread.run_sync(transform.feed, packet)
        out += transform.flush()
    assert 0 < len(out) <= len(damaged)
    frames = _decode_all(_write(tmp_path / "damaged.mp4", out))
    inside = _inside(POLYGONS, 640, 360)
    assert frames and all(int(f[inside].max()) <= 24 for f in frames)
    assert transform.dropped >= 1
    # Passed through (no masks), damaged packets are muxed as they are: a readable container.
    info = _probe(_write(tmp_path / "raw.mp4", damaged), "stream=nb_frames")
    assert info["streams"] == [{"nb_frames": str(len(damaged))}]


async def test_h265_input_is_masked_into_h264(tmp_path: Path) -> None:
    """A masked H.265 camera: decoded, filled, re-encoded as H.264 (every consumer plays it)."""
    source = _hevc_packets(count=20, gop=10)

    async def packets() -> AsyncIterator[MediaPacket]:
        for packet in source:
            yield packet

    transform = MaskTransform(POLYGONS)  # type: ignore[arg-type]
    masked = [p async for p in transformed(packets(), transform)]
    assert len(masked) == len(source) and {p.stream.codec for p in masked} == {"h264"}
    assert [p.is_keyframe for p in masked] == [p.is_keyframe for p in source]
    inside = _inside(POLYGONS, 320, 240)
    frames = _decode_all(_write(tmp_path / "hevc-masked.mp4", masked))
    assert len(frames) == 20 and all(int(f[inside].max()) <= 24 for f in frames)


async def test_snapshot_masking(big: list[MediaPacket]) -> None:
    from camgate.media import jpeg_from_packets

    jpeg, width, height = jpeg_from_packets(big)
    masked = mask_jpeg(jpeg, POLYGONS)  # type: ignore[arg-type]
    with av.open(__import__("io").BytesIO(masked), format="image2pipe") as container:
        frame = next(iter(container.decode(video=0)))
    grey = frame.to_ndarray(format="gray")
    inside = _inside(POLYGONS, width, height)
    assert int(grey[inside].max()) <= 24
    with pytest.raises(CameraProtocolError, match="JPEG"):
        mask_jpeg(b"not a jpeg", POLYGONS)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- clip windows


async def test_clip_is_cut_to_the_window_by_capture_time(
    big: list[MediaPacket], tmp_path: Path
) -> None:
    first = big[0].wallclock
    assert first is not None, "the RTSP adapter stamps capture times"
    start, end = first + timedelta(seconds=0.3), first + timedelta(seconds=1.45)
    cut = WindowCut(start, end)
    kept = []
    for packet in big:
        verdict = cut(packet)
        if verdict is Cut.STOP:
            break
        if verdict is Cut.KEEP:
            kept.append(packet)
    assert cut.first is not None and kept[0].is_keyframe
    path = _write(tmp_path / "window.mp4", kept)
    probe = _probe(path, "frame=pts_time")
    times = [float(f["pts_time"]) for f in probe["frames"]]  # type: ignore[index]
    assert len(times) == len(kept)
    captured = [cut.first + timedelta(seconds=t) for t in times]
    assert all(start <= at < end for at in captured), "footage outside the granted window"
    # Safe side: starts at the first keyframe inside (the 15-frame GOP: 0.5 s), ends at the end.
    assert captured[0] - start < timedelta(seconds=0.5 + 0.05)
    assert end - captured[-1] < timedelta(seconds=0.1)


async def test_a_clip_window_needs_capture_times(big: list[MediaPacket]) -> None:
    first = big[0].wallclock
    assert first is not None
    cut = WindowCut(first, first + timedelta(seconds=1))
    with pytest.raises(CameraProtocolError, match="capture time"):
        cut(attrs.evolve(big[0], wallclock=None))
    with pytest.raises(ValidationError):
        WindowCut(first, first)


# --------------------------------------------------------------------------- audio


@pytest.mark.parametrize(("mount", "codec"), [("/av", "aac"), ("/av-pcma", "pcm_alaw")])
async def test_audio_is_demuxed_only_when_asked_and_kept_in_the_clip(
    media_server: RtspTestServer, tmp_path: Path, mount: str, codec: str
) -> None:
    without = await _capture(media_server.url(mount), 30)
    assert {p.stream.kind for p in without} == {"video"}, "audio only for a grant with audio"
    packets = await _capture(media_server.url(mount), 60, audio=True)
    audio = [p for p in packets if p.stream.kind == "audio"]
    assert audio and audio[0].stream.codec == codec
    assert all(p.wallclock is not None for p in packets)
    video = next(p for p in packets if p.stream.kind == "video")
    for fmt in ("mp4", "ts"):
        path = tmp_path / f"av.{fmt}"
        with Muxer(path, video.stream, format=fmt, audio=audio[0].stream) as mux:
            for packet in packets:
                mux.write(packet)
        info = _probe(path, "stream=codec_type,codec_name")
        kinds = {s["codec_type"]: s["codec_name"] for s in info["streams"]}  # type: ignore[attr-defined]
        assert kinds == {"video": "h264", "audio": "aac"}, fmt  # G.711 becomes AAC
        _run("ffmpeg", "-i", str(path), "-f", "null", "-")
        with av.open(str(path)) as container:
            samples = sum(f.samples for f in container.decode(audio=0))
        rate = audio[0].stream.sample_rate
        assert samples / rate > 1.0, f"{fmt}: the sound is there (about 2 s of it)"
    # Without an audio track the muxer drops audio.
    with Muxer(tmp_path / "v.mp4", video.stream) as mux:
        for packet in packets:
            mux.write(packet)
    assert [
        s["codec_type"] for s in _probe(tmp_path / "v.mp4", "stream=codec_type")["streams"]
    ] == ["video"]  # type: ignore[index]


async def test_a_stream_described_without_its_size_still_muxes(
    big: list[MediaPacket], tmp_path: Path
) -> None:
    """A short probe can leave width/height out of the description: learnt from the keyframe."""
    unsized = attrs.evolve(big[0].stream, width=0, height=0)
    packets = [attrs.evolve(p, stream=unsized) for p in big]
    info = _probe(_write(tmp_path / "unsized.mp4", packets), "stream=width,height")
    assert info["streams"] == [{"width": 640, "height": 360}]
