"""#15 item 11: camgate's ONVIF replay client against a second implementation — GStreamer's
GstRTSPOnvifServer (gst-rtsp-server, Debian's gir1.2-gst-rtsp-server-1.0) — which speaks
``Require: onvif-replay`` and clock ranges but sends no ONVIF RTP header extension.

Found with it: without the extension the client cut the replay to the window's *length* from
the first keyframe, and a device starts at the keyframe before the window — so up to a GOP of
footage recorded before the granted window was handed over. Now the PLAY answer's
``Range: clock=`` and ``RTP-Info`` date every frame and the window is cut by recorded time.
Attacker: none needed — an honest device and a recorded grant's window (a privacy leak)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path

import pytest
from camgate_onvif.replay import ReplayStream
from camgate_onvif.testing.recording import Recording, encode_recording, read_code
from camgate_rtsp.testing.server import gstreamer_available

SCRIPT = Path(__file__).with_name("_gst_onvif_replay.py")

pytestmark = pytest.mark.anyio


def _write_mkv(recording: Recording, path: Path) -> None:
    import av

    out = av.open(str(path), "w")
    stream = out.add_stream("h264", rate=recording.fps)
    stream.width, stream.height = 640, 360
    step = 1000 // recording.fps
    for frame in recording.frames:
        packet = av.Packet(b"".join(b"\x00\x00\x00\x01" + n for n in frame.nals))
        packet.pts = packet.dts = frame.index * step
        packet.time_base = Fraction(1, 1000)
        packet.stream = stream
        packet.is_keyframe = frame.keyframe
        out.mux(packet)
    out.close()


@pytest.fixture(scope="module")
def gst_replay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Recording]]:
    reason = gstreamer_available()
    if reason:
        pytest.fail(f"GStreamer's RTSP server is not usable: {reason} (run scripts/setup.sh)")
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    recording = encode_recording(start, 30)  # 10 fps, a keyframe every second
    path = tmp_path_factory.mktemp("gst-replay") / "recording.mkv"
    _write_mkv(recording, path)
    proc = subprocess.Popen(
        ["/usr/bin/python3", str(SCRIPT), str(path), str(start.timestamp())],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        yield port, recording
    finally:
        proc.kill()
        proc.wait()


async def _codes(port: int, start: datetime, end: datetime) -> list[int]:
    import av

    stream = await ReplayStream.open(
        f"rtsp://127.0.0.1:{port}/recording",
        None,
        start=start,
        end=end,
        clock_offset=timedelta(0),
        width=640,
        height=360,
        connect_timeout_s=10,
        read_timeout_s=10,
    )
    decoder = av.CodecContext.create("h264", "r")
    codes = []
    async for packet in stream:
        for frame in decoder.decode(av.Packet(packet.data)):
            codes.append(read_code(frame))
    return codes


@pytest.mark.parametrize("offset_s", [10.0, 10.5, 17.3])
async def test_gstreamer_onvif_replay_gives_exactly_the_window(
    gst_replay: tuple[int, Recording], offset_s: float
) -> None:
    port, recording = gst_replay
    start = recording.start + timedelta(seconds=offset_s)
    end = start + timedelta(seconds=3)
    codes = await _codes(port, start, end)
    first = recording.index_at(start)
    while not recording.frames[first].keyframe:
        first += 1  # the first keyframe recorded at or after the window's start
    assert codes, "nothing was replayed"
    assert codes[0] == first  # nothing recorded before the window
    assert all(recording.time_of(c) < end for c in codes)  # nor after it
    assert codes == list(range(codes[0], codes[0] + len(codes)))  # no frame lost between
    assert codes[-1] >= recording.index_at(end) - 2
