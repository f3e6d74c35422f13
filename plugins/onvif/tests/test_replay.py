"""ONVIF replay: camgate's RTSP client against the simulator's recorder and GStreamer's server."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import av
import pytest
from camgate.adapters import Credentials
from camgate.errors import CameraAuthError, CameraProtocolError, CameraUnreachable
from camgate_onvif.replay import (
    H264Depacketizer,
    ReplayPacket,
    ReplayStream,
    clock_range,
    ntp_to_datetime,
    replay_address,
)
from camgate_onvif.testing.recording import read_code
from camgate_onvif.testing.replay_server import packetize, parse_clock
from camgate_onvif.testing.simulator import OnvifSimulator, Quirks
from camgate_rtsp.testing.server import RtspTestServer

from .conftest import SECURE, World, open_world

pytestmark = pytest.mark.anyio


def _decode(packets: list[Any]) -> list[Any]:
    codec: Any = av.CodecContext.create("h264", "r")
    frames = []
    for packet in packets:
        frames += codec.decode(av.Packet(packet.data))
    return frames


def _creds(sim: OnvifSimulator) -> Credentials:
    return Credentials(sim.username, sim.password)


# ---------------------------------------------------------------- through the gate


async def test_replay_serves_exactly_the_recorded_window(world: World) -> None:
    rec = world.sim.recording
    # 5.5 s .. 7.5 s into the recording: the device starts at its keyframe of 5.0 s; camgate
    # hands over from the first keyframe inside the window (6.0 s) to the window's end.
    start, end = rec.start + timedelta(seconds=5.5), rec.start + timedelta(seconds=7.5)
    token = await world.grant("recorded", window=(start, end))
    packets = []
    async with await world.gate.edge.open_recorded("cam-a", token) as stream:
        async for packet in stream:
            packets.append(packet)
    codes = [read_code(frame) for frame in _decode(packets)]
    assert codes == list(range(60, 75))  # decoded pictures: exactly the frames of the window
    assert all(isinstance(p, ReplayPacket) for p in packets)
    for code, packet in zip(codes, packets, strict=True):  # wall-clock time of each frame
        assert abs((packet.clock - rec.time_of(code)).total_seconds()) < 0.002
        assert start <= packet.clock < end
    assert packets[0].is_keyframe and packets[0].pts == 0
    assert packets[-1].pts == 14 * 9000  # 90 kHz media time from the first packet
    play = [r for r in world.sim.replay.requests if r.method == "PLAY"]
    assert [(r.require, r.range, r.status) for r in play] == [
        ("onvif-replay", clock_range(start, end), 200)
    ]
    assert world.sim.operations()[-3:] == [
        "FindRecordings",
        "GetRecordingSearchResults",
        "GetReplayUri",
    ]


async def test_replay_on_a_skewed_device_behind_nat(tmp_path: Path, make_sim: Any) -> None:
    skew = -3 * 3600.0
    sim: OnvifSimulator = make_sim(clock_skew_s=skew, quirks=Quirks(lan_address=True))
    world = open_world(tmp_path, sim)
    try:
        rec = sim.recording  # on the device's clock, 3 h behind the host's
        start = rec.start - timedelta(seconds=skew) + timedelta(seconds=5.5)
        end = start + timedelta(seconds=2)
        token = await world.grant("recorded", window=(start, end))
        async with await world.gate.edge.open_recorded("cam-a", token) as stream:
            packets = [p async for p in stream]
    finally:
        await world.gate.aclose()
    codes = [read_code(frame) for frame in _decode(packets)]
    # The offset is measured to GetSystemDateAndTime's one second: a keyframe within it.
    assert codes[0] % 10 == 0 and 50 <= codes[0] <= 70
    assert codes == list(range(codes[0], codes[0] + len(codes))) and len(codes) >= 5
    (play,) = [r for r in sim.replay.requests if r.method == "PLAY"]
    asked, _ = parse_clock(play.range or "")
    assert abs((asked - (rec.start + timedelta(seconds=5.5))).total_seconds()) < 1.5
    for packet in packets:  # clocks are back on the host's time
        assert start - timedelta(seconds=1.5) <= packet.clock < end + timedelta(seconds=1.5)


async def test_a_window_without_recorded_footage_is_a_clear_error(world: World) -> None:
    now = world.gate.clock.now()
    window = (now - timedelta(hours=2), now - timedelta(hours=2) + timedelta(seconds=5))
    token = await world.grant("recorded", window=window)
    with pytest.raises(CameraProtocolError, match="no recording holds footage between"):
        await world.gate.edge.open_recorded("cam-a", token)
    assert world.sim.replay.requests == []


# ---------------------------------------------------------------- the simulated recorder


async def _replay_uri(sim: OnvifSimulator) -> str:
    return f"rtsp://127.0.0.1:{sim.replay.port}/dev1/recording"


async def test_the_recorder_refuses_a_play_without_require_onvif_replay(make_sim: Any) -> None:
    sim: OnvifSimulator = make_sim()
    rec = sim.recording
    with pytest.raises(CameraProtocolError, match="does not support onvif-replay.*551"):
        await ReplayStream.open(
            await _replay_uri(sim), _creds(sim), start=rec.start, end=rec.end, require=None
        )
    # The client still ends the session it set up. It does not wait for TEARDOWN's answer
    # (best effort), and the server logs a request once answered, in its own thread: wait.
    with anyio.fail_after(5):
        while sim.replay.requests[-1].method != "TEARDOWN":  # noqa: ASYNC110 - another thread
            await anyio.sleep(0.01)
    assert [(r.method, r.status) for r in sim.replay.requests][-2:] == [
        ("PLAY", 551),
        ("TEARDOWN", 200),
    ]


async def test_the_recorder_wants_digest_and_the_error_hides_the_password(make_sim: Any) -> None:
    sim: OnvifSimulator = make_sim()
    wrong = Credentials(sim.username, "not-the-pw")
    with pytest.raises(CameraAuthError, match="refused DESCRIBE") as info:
        await ReplayStream.open(await _replay_uri(sim), wrong, start=sim.recording.start)
    assert "not-the-pw" not in str(info.value) and sim.password not in str(info.value)
    assert [r.status for r in sim.replay.requests] == [401, 401]


async def test_replay_to_the_end_of_the_recording_stops_at_the_device_end(make_sim: Any) -> None:
    sim: OnvifSimulator = make_sim(recording_s=30)
    rec = sim.recording
    stream = await ReplayStream.open(
        await _replay_uri(sim),
        _creds(sim),
        start=rec.end - timedelta(seconds=1),
        end=rec.end + timedelta(seconds=60),
    )
    with anyio.fail_after(5):
        packets = [p async for p in stream]
    assert [read_code(f) for f in _decode(packets)] == list(range(290, 300))


async def test_a_replay_longer_than_the_session_timeout_is_kept_alive(make_sim: Any) -> None:
    sim: OnvifSimulator = make_sim(replay_session_timeout_s=2)
    rec = sim.recording
    start = rec.start + timedelta(seconds=10)
    stream = await ReplayStream.open(
        await _replay_uri(sim), _creds(sim), start=start, end=start + timedelta(seconds=4)
    )
    with anyio.fail_after(12):
        packets = [p async for p in stream]
    # twice the device's session time-out: without keep-alive it drops the session at 2 s
    assert [read_code(f) for f in _decode(packets)] == list(range(100, 140))
    keepalives = [r for r in sim.replay.requests if r.method == "GET_PARAMETER"]
    # (the frames above prove the session outlived the time-out; how many keep-alives were sent
    # by then depends on the machine's pace)
    assert keepalives and {r.status for r in keepalives} == {200}


# ---------------------------------------------------------------- against GStreamer


async def test_plain_rtsp_from_gstreamer_depacketises_into_decodable_pictures(
    rtsp_server: RtspTestServer,
) -> None:
    stream = await ReplayStream.open(rtsp_server.url("/dev1/main"), require=None)
    packets: list[Any] = []
    try:
        with anyio.fail_after(10):
            async for packet in stream:
                packets.append(packet)
                if len(packets) == 10:
                    break
    finally:
        await stream.aclose()
    assert packets[0].is_keyframe and packets[0].clock is None  # GStreamer sends no 0xABAC
    frames = _decode(packets)
    assert len(frames) >= 9 and (frames[0].width, frames[0].height) == (640, 360)
    assert stream.info.extradata and stream.info.extradata.startswith(b"\x00\x00\x00\x01")


async def test_rtsp_digest_auth_against_gstreamer(rtsp_server: RtspTestServer) -> None:
    creds = Credentials(SECURE["username"], SECURE["password"])
    stream = await ReplayStream.open(rtsp_server.url("/secure"), creds, require=None)
    try:
        with anyio.fail_after(10):
            packet = await stream.__anext__()
        assert packet.is_keyframe
    finally:
        await stream.aclose()
    wrong = Credentials(SECURE["username"], "bad-pw")
    with pytest.raises(CameraAuthError) as info:
        await ReplayStream.open(rtsp_server.url("/secure"), wrong, require=None)
    assert "bad-pw" not in str(info.value) and SECURE["password"] not in str(info.value)


async def test_a_server_without_onvif_replay_answers_551_clearly(
    rtsp_server: RtspTestServer,
) -> None:
    now = datetime.now(UTC)
    with pytest.raises(CameraProtocolError, match="does not support onvif-replay"):
        await ReplayStream.open(rtsp_server.url("/dev1/main"), start=now, end=now)


# ---------------------------------------------------------------- misbehaving servers


@pytest.fixture
def scripted() -> Iterator[Callable[[Callable[[socket.socket], None]], int]]:
    """A loopback TCP server whose one connection is handled by ``script(conn)``."""
    servers: list[socket.socket] = []

    def start(script: Callable[[socket.socket], None]) -> int:
        listener = socket.create_server(("127.0.0.1", 0))
        servers.append(listener)

        def run() -> None:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn, contextlib.suppress(OSError):
                script(conn)

        threading.Thread(target=run, daemon=True).start()
        return int(listener.getsockname()[1])

    yield start
    for listener in servers:
        listener.close()


def _requests(conn: socket.socket) -> Iterator[tuple[str, str]]:
    """(method, CSeq) of each request the client sends on ``conn``."""
    data = b""
    while True:
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(4096)
            if not chunk:
                return
            data += chunk
        head, _, data = data.partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        cseq = next(v for k, _, v in (x.partition(": ") for x in lines) if k == "CSeq")
        yield lines[0].split()[0], cseq


_SDP = (
    b"v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=x\r\nt=0 0\r\nm=video 0 RTP/AVP 96\r\n"
    b"a=rtpmap:96 H264/90000\r\na=control:trackID=0\r\n"
)


def _good(method: str, cseq: str) -> bytes:
    if method == "DESCRIBE":
        return (
            f"RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\nContent-Type: application/sdp\r\n"
            f"Content-Length: {len(_SDP)}\r\n\r\n".encode()
            + _SDP
        )
    extra = "Session: s1\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n"
    return f"RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\n{extra}\r\n".encode()


def _serve_then(after_play: Callable[[socket.socket], None]) -> Callable[[socket.socket], None]:
    def script(conn: socket.socket) -> None:
        for method, cseq in _requests(conn):
            conn.sendall(_good(method, cseq))
            if method == "PLAY":
                after_play(conn)
                return

    return script


def _answer(reply: bytes) -> Callable[[socket.socket], None]:
    """A script that answers the first request with ``reply``, then keeps the line open."""

    def script(conn: socket.socket) -> None:
        conn.recv(4096)
        conn.sendall(reply)
        time.sleep(1)

    return script


def _hang_up(conn: socket.socket) -> None:
    conn.recv(4096)


def _silent(conn: socket.socket) -> None:
    conn.recv(4096)
    time.sleep(3)


@pytest.mark.parametrize(
    ("script", "error", "message"),
    [
        (
            _answer(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
            CameraProtocolError,
            "not an RTSP answer",
        ),
        (
            _answer(b"RTSP/1.0 200 OK\r\nCSeq: 1\r\nX: " + b"a" * 40000),
            CameraProtocolError,
            "exceed 16384 bytes",
        ),
        (
            _answer(b"RTSP/1.0 200 OK\r\nCSeq: 1\r\nContent-Length: 999999999\r\n\r\n"),
            CameraProtocolError,
            "body of 999999999 bytes",
        ),
        (_answer(b"RTSP/1.0 200 OK\r\nCSeq: 77\r\n\r\n"), CameraProtocolError, "CSeq '77'"),
        (_hang_up, CameraUnreachable, "closed the connection"),
        (_silent, CameraUnreachable, "silent for 0.5 s"),
    ],
)
async def test_malformed_or_absent_answers_are_clear_errors(
    scripted: Any, script: Any, error: type[Exception], message: str
) -> None:
    port = scripted(script)
    with anyio.fail_after(5), pytest.raises(error, match=message):
        await ReplayStream.open(
            f"rtsp://127.0.0.1:{port}/rec", start=datetime.now(UTC), read_timeout_s=0.5
        )


def _rtp(seq: int, payload: bytes, marker: bool = True, stamp: int = 0) -> bytes:
    head = bytes([0x80, (0x80 if marker else 0) | 96]) + seq.to_bytes(2, "big")
    return head + stamp.to_bytes(4, "big") + b"\x00\x00\x00\x01" + payload


_IDR = bytes([0x65]) + b"\x88" * 50


async def test_a_device_that_disconnects_mid_replay_is_an_error(scripted: Any) -> None:
    def then(conn: socket.socket) -> None:
        rtp = _rtp(1, _IDR)
        conn.sendall(b"$\x00" + len(rtp).to_bytes(2, "big") + rtp)
        time.sleep(0.2)

    port = scripted(_serve_then(then))
    stream = await ReplayStream.open(f"rtsp://127.0.0.1:{port}/rec", start=datetime.now(UTC))
    with anyio.fail_after(5):
        first = await stream.__anext__()
        assert first.is_keyframe
        with pytest.raises(CameraUnreachable, match="closed the replay before its end"):
            await stream.__anext__()


async def test_a_device_that_goes_silent_mid_replay_is_an_error(scripted: Any) -> None:
    port = scripted(_serve_then(lambda _conn: time.sleep(2)))
    stream = await ReplayStream.open(
        f"rtsp://127.0.0.1:{port}/rec", start=datetime.now(UTC), read_timeout_s=0.3
    )
    with anyio.fail_after(5), pytest.raises(CameraUnreachable, match="silent for 0.3 s"):
        await stream.__anext__()


async def test_a_device_that_sends_everything_but_video_is_an_error(scripted: Any) -> None:
    def then(conn: socket.socket) -> None:
        report = bytes([0x80, 201, 0, 1]) + b"\x00" * 4  # an RTCP receiver report, no BYE
        for _ in range(60):
            conn.sendall(b"$\x01" + len(report).to_bytes(2, "big") + report + b"\r\n" * 50)
            time.sleep(0.05)

    port = scripted(_serve_then(then))
    stream = await ReplayStream.open(
        f"rtsp://127.0.0.1:{port}/rec", start=datetime.now(UTC), read_timeout_s=0.5
    )
    with anyio.fail_after(5), pytest.raises(CameraUnreachable, match="no video .* for 0.5 s"):
        await stream.__anext__()


def test_replay_urls_are_checked_before_connecting() -> None:
    assert replay_address("rtsp://10.0.0.5/rec?x=1") == (
        "10.0.0.5",
        554,
        "rtsp://10.0.0.5:554/rec",
    )
    for bad, message in (
        ("http://10.0.0.5/rec", "must be rtsp://"),
        ("rtsps://10.0.0.5/rec", "rtsps is not supported"),
        ("rtsp://admin:s3cret@10.0.0.5/rec", "must not carry credentials"),
        ("rtsp://10.0.0.5:99999/rec", "invalid port"),
    ):
        with pytest.raises(CameraProtocolError, match=message) as info:
            replay_address(bad)
        assert "s3cret" not in str(info.value)


# ---------------------------------------------------------------- RFC 6184 and the clock


def test_depacketiser_rebuilds_stap_a_single_and_fu_a_units() -> None:
    sps, pps = bytes([0x67]) + b"\x01" * 10, bytes([0x68]) + b"\x02" * 4
    big = bytes([0x65]) + bytes(range(256)) * 12  # 3073 bytes: four FU-A fragments
    payloads = packetize((sps, pps, big), mtu=1000)
    assert [p[0] & 0x1F for p in payloads] == [24, 28, 28, 28, 28]
    unpack = H264Depacketizer(96)
    units = []
    for i, payload in enumerate(payloads):
        units += unpack.push(_rtp(i, payload, marker=i == len(payloads) - 1))
    (unit,) = units
    assert unit.nals == (sps, pps, big) and unit.keyframe
    small = bytes([0x41]) + b"\x03" * 20
    (unit,) = unpack.push(_rtp(len(payloads), small, stamp=3000))
    assert unit.nals == (small,) and not unit.keyframe


def test_depacketiser_drops_broken_units_until_the_next_keyframe() -> None:
    unpack = H264Depacketizer(96)
    big = bytes([0x65]) + b"\x05" * 2500
    frags = packetize((big,), mtu=1000)
    # the middle fragment is lost: neither this unit nor the next non-keyframe is usable
    assert unpack.push(_rtp(0, frags[0], marker=False)) == []
    assert unpack.push(_rtp(2, frags[2], stamp=0)) == []
    assert unpack.push(_rtp(3, bytes([0x41, 1, 2]), stamp=3000)) == []
    # a truncated STAP-A is dropped too
    assert unpack.push(_rtp(4, bytes([0x78, 0x00, 0x09, 0x67]), stamp=6000)) == []
    (unit,) = unpack.push(_rtp(5, _IDR, stamp=9000))
    assert unit.keyframe
    # an FU-A continuation without its start is ignored; other payload types too
    assert unpack.push(_rtp(6, bytes([0x7C, 0x45, 9, 9]), stamp=12000)) == []
    other = bytearray(_rtp(7, _IDR, stamp=15000))
    other[1] = 0x80 | 97
    assert unpack.push(bytes(other)) == []


def test_depacketiser_bounds_an_access_unit() -> None:
    unpack = H264Depacketizer(96, max_bytes=4000)
    frags = packetize((bytes([0x65]) + b"\x07" * 6000,), mtu=1000)
    with pytest.raises(CameraProtocolError, match="over 4000 bytes"):
        for i, frag in enumerate(frags):
            unpack.push(_rtp(i, frag, marker=False))


def test_clock_ranges_and_ntp_times() -> None:
    start = datetime(2026, 3, 1, 12, 0, 5, 250000, tzinfo=UTC)
    text = clock_range(start, start + timedelta(seconds=2))
    assert text == "clock=20260301T120005.250Z-20260301T120007.250Z"
    assert parse_clock(text) == (start, start + timedelta(seconds=2))
    assert parse_clock("clock=20260301T120005Z-")[1] is None
    ntp = (int(start.timestamp()) + 2208988800) << 32 | 1 << 30  # .25 s
    assert ntp_to_datetime(ntp) == start
    with pytest.raises(ValueError, match="not a clock range"):
        parse_clock("npt=0-")
