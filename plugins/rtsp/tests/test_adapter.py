"""The RTSP adapter against a real RTSP server: live, snapshot, and every bad input of issue 2."""

from __future__ import annotations

import itertools
import socket
import threading
from collections.abc import Iterator
from fractions import Fraction

import anyio
import pytest
from camgate.adapters import Credentials
from camgate.errors import (
    CameraAuthError,
    CameraProtocolError,
    CameraUnreachable,
    NoVideoError,
    ValidationError,
)
from camgate.media import decode_jpeg
from camgate.models import Camera, GeoPoint, Grant
from camgate_rtsp.adapter import (
    RtspAdapter,
    RtspLiveStream,
    RtspSettings,
    _Wallclock,
    redact,
    rtsp_url,
)
from camgate_rtsp.testing.server import Mount, RtspTestServer, TestServerError
from hypothesis import given
from hypothesis import strategies as st

from .conftest import SECRET

pytestmark = pytest.mark.anyio


def _camera(source: str, cam_id: str = "c1") -> Camera:
    return Camera(id=cam_id, adapter="rtsp", source=source, owner_id="o", position=GeoPoint(0, 0))


def _grant(cam_id: str = "c1", scope: str = "live") -> Grant:
    from datetime import UTC, datetime, timedelta

    now = datetime.now(UTC)
    return Grant(
        id="g",
        request_id="r",
        camera_id=cam_id,
        incident_id="i",
        scope=scope,
        issued_at=now,
        expires_at=now + timedelta(minutes=1),
    )


async def test_live_packets_start_at_a_keyframe_and_keep_the_gop(
    rtsp_server: RtspTestServer,
) -> None:
    stream = await RtspLiveStream.open(rtsp_server.url("/cam1"), RtspSettings())
    keyframes = []
    try:
        n = 0
        async for packet in stream:
            if n == 0:
                assert packet.is_keyframe
            if packet.is_keyframe:
                keyframes.append(packet.pts)
            n += 1
            if len(keyframes) == 3:
                break
    finally:
        await stream.aclose()
    assert stream.closed
    assert stream.info.codec == "h264" and (stream.info.width, stream.info.height) == (640, 360)
    gaps = [(b - a) / 90000 for a, b in itertools.pairwise(keyframes)]
    assert all(abs(g - 1.0) < 0.05 for g in gaps), gaps  # gop_frames=30 at 30 fps


async def test_snapshot_is_a_decodable_jpeg(rtsp_server: RtspTestServer) -> None:
    adapter = RtspAdapter.from_settings({})
    snap = await adapter.snapshot(_camera(rtsp_server.url("/cam2")), _grant(scope="snapshot"))
    assert snap.jpeg[:2] == b"\xff\xd8"
    assert decode_jpeg(snap.jpeg) == (640, 360) == (snap.width, snap.height)


async def test_digest_credentials_from_settings_work(rtsp_server: RtspTestServer) -> None:
    cam = _camera(rtsp_server.url("/secure"), "sec")
    adapter = RtspAdapter.from_settings(
        {"credentials": {"sec": {"username": "officer", "password": SECRET}}}
    )
    stream = await adapter.open_live(cam, _grant("sec"))
    try:
        packet = await stream.__aiter__().__anext__()
        assert packet.is_keyframe
    finally:
        await stream.aclose()
    assert SECRET not in repr(adapter) and SECRET not in repr(adapter.settings)


async def test_basic_credentials_work_too() -> None:
    # Basic over plain rtsp sends the password in clear text: only with the setting (F4).
    from camgate_rtsp.testing.server import Mount

    with RtspTestServer([Mount("/b", username="viewer", password=SECRET)], auth="basic") as srv:
        cam = _camera(srv.url("/b"), "b")
        creds = {"credentials": {"b": {"username": "viewer", "password": SECRET}}}
        with pytest.raises(CameraAuthError, match="allow_basic_over_rtsp"):
            await RtspAdapter.from_settings(creds).open_live(cam, _grant("b"))
        good = RtspAdapter.from_settings(creds | {"allow_basic_over_rtsp": True})
        stream = await good.open_live(cam, _grant("b"))
        try:
            assert (await stream.__aiter__().__anext__()).is_keyframe
        finally:
            await stream.aclose()
        bad = RtspAdapter.from_settings(
            {"credentials": {"b": {"username": "viewer", "password": "x"}}}
            | {"allow_basic_over_rtsp": True}
        )
        with pytest.raises(CameraAuthError, match="refused the credentials"):
            await bad.open_live(cam, _grant("b"))


@pytest.mark.parametrize("password", [None, "wrong-password"])
async def test_refused_auth_is_clear_and_leaks_nothing(
    rtsp_server: RtspTestServer, password: str | None
) -> None:
    creds = {} if password is None else {"sec": {"username": "officer", "password": password}}
    adapter = RtspAdapter.from_settings({"credentials": creds})
    with pytest.raises(CameraAuthError, match="refused the credentials") as info:
        await adapter.open_live(_camera(rtsp_server.url("/secure"), "sec"), _grant("sec"))
    text = "".join(str(e) for e in (info.value, info.value.__cause__, info.value.__context__))
    assert "wrong-password" not in text and "officer" not in text
    assert info.value.__cause__ is None  # raised from None: PyAV's message repeats the URL


@pytest.mark.parametrize(
    "source",
    ["http://127.0.0.1/stream", "rtsp:///no-host", "file:///etc/passwd", "rtsp://h:99999/x"],
)
async def test_bad_urls_are_refused_before_connecting(source: str) -> None:
    adapter = RtspAdapter.from_settings({})
    with pytest.raises(ValidationError, match="rtsp"):
        await adapter.open_live(_camera(source), _grant())


async def test_connection_refused() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nobody listens here
    with pytest.raises(CameraUnreachable, match="connection refused"):
        await RtspLiveStream.open(f"rtsp://127.0.0.1:{port}/x", RtspSettings())


async def test_missing_path_is_reported(rtsp_server: RtspTestServer) -> None:
    with pytest.raises(CameraUnreachable, match="404"):
        await RtspLiveStream.open(rtsp_server.url("/no-such-camera"), RtspSettings())


async def test_stream_without_video(rtsp_server: RtspTestServer) -> None:
    with pytest.raises(NoVideoError, match="no video"):
        await RtspLiveStream.open(rtsp_server.url("/audio-only"), RtspSettings())


def _serve(reply: bytes | None) -> Iterator[int]:
    """A TCP peer that is not an RTSP camera: it answers ``reply`` (HTTP) or never answers."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    stop = threading.Event()
    conns: list[socket.socket] = []

    def run() -> None:
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except TimeoutError:
                continue
            conns.append(conn)
            if reply is not None:
                conn.recv(4096)
                conn.sendall(reply)
                conn.close()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    try:
        yield srv.getsockname()[1]
    finally:
        stop.set()
        t.join()
        for c in conns:
            c.close()
        srv.close()


@pytest.fixture
def http_peer() -> Iterator[int]:
    yield from _serve(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 5\r\n\r\nhello"
    )


@pytest.fixture
def silent_peer() -> Iterator[int]:
    yield from _serve(None)


async def test_a_peer_that_is_not_rtsp(http_peer: int) -> None:
    with pytest.raises(CameraProtocolError, match="does not answer as an RTSP camera"):
        await RtspLiveStream.open(f"rtsp://127.0.0.1:{http_peer}/x", RtspSettings())


async def test_a_peer_that_never_answers_times_out(silent_peer: int) -> None:
    settings = RtspSettings(connect_timeout_s=1.0)
    with anyio.fail_after(10):
        with pytest.raises(CameraUnreachable, match="no answer within 1 s"):
            await RtspLiveStream.open(f"rtsp://127.0.0.1:{silent_peer}/x", settings)


async def test_a_camera_that_vanishes_mid_stream_ends_with_an_error() -> None:
    from camgate_rtsp.testing.server import Mount

    server = RtspTestServer([Mount("/gone")])
    server.start()
    try:
        stream = await RtspLiveStream.open(server.url("/gone"), RtspSettings(read_timeout_s=2))
        it = stream.__aiter__()
        await it.__anext__()
        server.kill()
        with anyio.fail_after(15):
            with pytest.raises(CameraUnreachable, match="closed"):
                while True:
                    await it.__anext__()
        await stream.aclose()
    finally:
        server.stop()


def test_settings_validation() -> None:
    with pytest.raises(ValidationError, match="unknown keys"):
        RtspSettings.from_mapping({"timeout": 3})
    with pytest.raises(ValidationError, match="transport"):
        RtspSettings(transport="http")
    with pytest.raises(ValidationError, match="needs a username and a password"):
        RtspSettings.from_mapping({"credentials": {"c": {"username": "x"}}})


def test_credentials_are_percent_encoded_and_redacted() -> None:
    url = rtsp_url("rtsp://10.0.0.2:554/Streaming/Channels/101", Credentials("ad min", SECRET))
    assert "ad%20min:pa%3Ass%20w%40rd%2F%C3%BC@10.0.0.2:554" in url
    assert redact(url) == "rtsp://10.0.0.2:554/Streaming/Channels/101"


async def test_force_keyframe_makes_the_encoder_emit_one_now(
    rtsp_server: RtspTestServer,
) -> None:
    """The test server's control channel (``KEY <path>``), used by the ONVIF simulator's
    SetSynchronizationPoint: a keyframe comes within a few frames, not at the next GOP."""
    with RtspTestServer([Mount("/slow", gop_frames=300)]) as server:  # a keyframe every 10 s
        stream = await RtspLiveStream.open(server.url("/slow"), RtspSettings())
        try:
            server.force_keyframe("/slow")
            packets = stream.__aiter__()
            assert (await packets.__anext__()).is_keyframe  # the stream starts at one
            # Right after a keyframe the next natural one is 300 frames away: ask for one now.
            server.force_keyframe("/slow")
            frames = 1
            while not (await packets.__anext__()).is_keyframe:
                frames += 1
            assert frames < 60  # counted in frames, which a loaded machine does not stretch
        finally:
            await stream.aclose()
        with pytest.raises(ValueError, match="no mount"):
            server.force_keyframe("/nope")
    with pytest.raises(TestServerError, match="not running"):
        server.force_keyframe("/slow")


@given(
    st.lists(
        st.tuples(st.integers(0, 1), st.booleans(), st.booleans(), st.integers(1, 3000)),
        min_size=1,
        max_size=40,
    )
)
def test_an_untimed_packet_is_placed_where_its_stream_left_off(
    steps: list[tuple[int, bool, bool, int]],
) -> None:
    """FFmpeg can leave the second AAC frame of an RTP packet untimed: it gets the time where
    its stream's previous packet ended, never None once its stream has had a timed packet."""
    clock = _Wallclock(0, Fraction(1, 16000))
    seen: set[int] = set()
    time = {0: 0, 1: 0}
    for stream, timed, by_dts, duration in steps:
        start = time[stream]
        pts = start if timed and not by_dts else None
        dts = start if timed and by_dts else None
        placed = clock.place(stream, pts, dts, duration)
        if timed or stream in seen:
            assert placed == start
            assert clock.at(placed, Fraction(1, 16000)) is not None
            seen.add(stream)
        else:
            assert placed is None
        time[stream] = start + duration
