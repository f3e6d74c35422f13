"""The RTSP adapter against a second server implementation (camgate_rtsp.testing.altserver, fed by
FFmpeg's RTP packetizers): every input of issue #14 live, as a snapshot and as a clip, each output
decoded in full by ffmpeg; the UDP fallback for cameras that refuse RTP over TCP; a camera that
cuts its sessions every few seconds; and the server's request parser fuzzed."""

from __future__ import annotations

import json
import socket
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import anyio
import av
import pytest
from camgate import Camera, ConsentTerms, Gate, GeoPoint, Owner, Waiver
from camgate.errors import CameraProtocolError
from camgate.models import MediaPacket
from camgate.relay import RelaySettings
from camgate_rtsp.adapter import RtspLiveStream, RtspSettings
from camgate_rtsp.testing.altserver import AltRtspServer, media_file, serving
from hypothesis import given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.anyio

HOME = GeoPoint(32.2988, -90.1848)

#: (input, server options, codec FFmpeg reports, audio codec or None)
INPUTS = {
    "h264": ({}, "h264", None),
    "h264-bframes": ({}, "h264", None),
    "h265": ({}, "hevc", None),
    "h264-aac": ({}, "h264", "aac"),
    "h264-g711": ({"audio_codec": "pcm_mulaw"}, "h264", "pcm_mulaw"),
    "resize": ({}, "h264", None),
}


@pytest.fixture(scope="module")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("alt-media")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module", params=sorted(INPUTS))
def alt(request: pytest.FixtureRequest, media_dir: Path) -> Iterator[tuple[str, AltRtspServer]]:
    kind = request.param
    with serving(media_file(kind, media_dir), **INPUTS[kind][0]) as server:
        yield kind, server


async def make_gate(tmp_path: Path, source: str, **rtsp: object) -> Gate:
    """A gate with one camera at ``source`` whose owner shares live view, snapshots and sound."""
    gate = Gate.open(tmp_path / "camgate.db", adapter_settings={"rtsp": rtsp} if rtsp else None)
    waiver = gate.publish_waiver(Waiver("w1", "I agree to share my camera."))
    gate.add_owner(Owner("alice", "Alice"))
    gate.add_camera(
        Camera(id="cam", adapter="rtsp", source=source, owner_id="alice", position=HOME)
    )
    gate.enrol(
        "alice",
        ["cam"],
        waiver_version="w1",
        waiver_sha256=waiver.sha256,
        terms=ConsentTerms(scopes=["live", "snapshot"], audio=True),
    )
    return gate


@pytest.fixture
async def gate_for(tmp_path: Path) -> AsyncIterator[list[Gate]]:
    gates: list[Gate] = []
    try:
        yield gates
    finally:
        for gate in gates:
            await gate.aclose()


def ffprobe(path: Path) -> dict[str, object]:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_streams", "-of", "json", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(out.stdout)  # type: ignore[no-any-return]


_DECODE = ("ffmpeg", "-v", "error", "-xerror")
_AS_IS = ("-fps_mode", "passthrough", "-enc_time_base", "-1")


def decodes(path: Path) -> None:
    """ffmpeg decodes every frame of ``path`` without one error."""
    done = subprocess.run(
        # Every frame as it is, in the file's own time base: the decode is checked, not a
        # conversion to 1/fps ticks (RTCP clock sync moves a camera's picture by tens of ms,
        # which is valid but lands two pictures on one 1/15 s tick).
        [*_DECODE, "-i", str(path), *_AS_IS, "-f", "null", "-"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0 and not done.stderr.strip(), done.stderr[-2000:]


async def test_live_snapshot_and_clip_of_every_input(
    alt: tuple[str, AltRtspServer], tmp_path: Path, gate_for: list[Gate]
) -> None:
    kind, server = alt
    _, video_codec, audio_codec = INPUTS[kind]
    gate = await make_gate(tmp_path, server.url())
    gate_for.append(gate)
    incident = gate.report_incident("burglary", HOME, radius_m=300)

    def grant(scope: str, audio: bool = False):  # type: ignore[no-untyped-def]
        return gate.request_access(
            incident.id, "cam", scope, requested_by="officer-7", duration_s=60, audio=audio
        )

    # Live, with sound when the input has some.
    stream = await gate.edge.open_live("cam", await grant("live", audio=True))
    got: list[MediaPacket] = []
    async with stream:
        assert stream.info.codec == video_codec
        with anyio.fail_after(30):
            async for packet in stream:
                got.append(packet)
                sound = sum(p.stream.kind == "audio" for p in got)
                if sum(p.stream.kind == "video" for p in got) >= 40 and (
                    audio_codec is None or sound >= 10
                ):
                    break
    assert got[0].is_keyframe and got[0].stream.kind == "video"
    if audio_codec is not None:
        assert stream.audio_info is not None and stream.audio_info.codec == audio_codec
    # A snapshot: a JPEG ffmpeg decodes.
    snap = await gate.edge.snapshot("cam", await grant("snapshot"))
    jpeg = tmp_path / "snap.jpg"
    jpeg.write_bytes(snap.jpeg)
    decodes(jpeg)
    assert (snap.width, snap.height) in ((320, 240), (480, 270))
    # A clip (MPEG-TS: the camera's own parameter sets travel in-band there), decoded in full.
    out = tmp_path / "clip.ts"
    clip = await gate.edge.record_clip("cam", await grant("live"), out, 2.0, format="ts")
    decodes(clip.path)
    streams = ffprobe(clip.path)["streams"]
    assert [s["codec_name"] for s in streams if s["codec_type"] == "video"] == [video_codec]  # type: ignore[index,union-attr]
    # And MP4, whose parameter sets are written once in its header (avcC/hvcC): the camera's
    # own (from the SDP, or the first keyframe's), with the sound it offers.
    if kind != "resize":  # a change of size ends an MP4: test_a_resolution_change_ends_an_mp4
        out = tmp_path / "clip.mp4"
        grant_av = await grant("live", audio=audio_codec is not None)
        clip = await gate.edge.record_clip("cam", grant_av, out, 2.0, format="mp4")
        decodes(clip.path)
        kinds = sorted(s["codec_type"] for s in ffprobe(clip.path)["streams"])  # type: ignore[index,union-attr]
        assert kinds == (["audio", "video"] if audio_codec else ["video"])
        assert not clip.partial, clip.reason


async def test_a_udp_only_camera_is_reached_over_udp_and_the_access_record_says_so(
    media_dir: Path, tmp_path: Path, gate_for: list[Gate], caplog: pytest.LogCaptureFixture
) -> None:
    with serving(media_file("h264", media_dir), udp_only=True) as server:
        gate = await make_gate(tmp_path, server.url())
        gate_for.append(gate)
        incident = gate.report_incident("burglary", HOME, radius_m=300)
        token = await gate.request_access(
            incident.id, "cam", "live", requested_by="officer-7", duration_s=60
        )
        caplog.set_level("WARNING", logger="camgate_rtsp.adapter")
        async with await gate.edge.open_live("cam", token) as stream:
            with anyio.fail_after(20):
                async for packet in stream:
                    if packet.pts is not None and packet.pts > 0:
                        break
        setups = [(t.split(";")[0], status) for m, _, t, status in server.requests if m == "SETUP"]
        assert setups[0] == ("RTP/AVP/TCP", 461)  # asked for interleaved first, refused
        assert ("RTP/AVP/UDP", 200) in setups or ("RTP/AVP", 200) in setups
    assert "refused RTP over TCP (RTSP 461 at SETUP): falling back to UDP" in caplog.text
    end = next(gate.audit.records("access.end"))
    assert end.body["upstream"] == {
        "transport": "udp",
        "fallback": "the camera refused RTP over TCP (RTSP 461 at SETUP)",
    }
    assert end.body["packets"] > 0
    # A snapshot that falls back says so in its access record too.
    with serving(media_file("h264", media_dir), udp_only=True) as server:
        (tmp_path / "snap").mkdir()
        gate = await make_gate(tmp_path / "snap", server.url())
        gate_for.append(gate)
        incident = gate.report_incident("burglary", HOME, radius_m=300)
        token = await gate.request_access(
            incident.id, "cam", "snapshot", requested_by="officer-7", duration_s=60
        )
        snap = await gate.edge.snapshot("cam", token)
    assert snap.notes["transport"] == "udp"
    end = next(gate.audit.records("access.end"))
    assert end.body["upstream"]["transport"] == "udp" and end.body["packets"] == 1


async def test_without_the_fallback_or_when_neither_transport_works_the_error_says_why(
    media_dir: Path,
) -> None:
    media = media_file("h264", media_dir)
    with serving(media, udp_only=True) as server:
        settings_ = RtspSettings(udp_fallback=False, connect_timeout_s=10)
        with pytest.raises(CameraProtocolError, match=r"refused RTP over TCP \(RTSP 461.*udp"):
            await RtspLiveStream.open(server.url(), settings_)
        # Asked for UDP straight away, it opens without a fallback note.
        stream = await RtspLiveStream.open(server.url(), RtspSettings(transport="udp"))
        try:
            assert stream.transport == "udp" and stream.notes == {}
        finally:
            await stream.aclose()
        # After a fallback the media flows through a guard started for UDP: it pins the source
        # of every Transport reply to the camera's address (the RTSP guard's UDP promise).
        stream = await RtspLiveStream.open(server.url(), RtspSettings())
        try:
            assert stream.transport == "udp" and stream.notes["transport"] == "udp"
            guard = stream._guard
            assert guard is not None and guard._udp and guard.tcp_refused is None
        finally:
            await stream.aclose()
    with serving(media, udp_only=True, tcp_only=True) as server:
        with pytest.raises(CameraProtocolError) as caught:
            await RtspLiveStream.open(server.url(), RtspSettings(connect_timeout_s=10))
        message = str(caught.value)
        assert "refused RTP over TCP (RTSP 461 at SETUP), and over UDP:" in message
        assert "127.0.0.1" in message  # the camera is named once, at the start
        assert message.count("rtsp://") == 1


async def test_a_camera_that_cuts_every_session_keeps_its_consumer_with_a_gap_marker(
    media_dir: Path, tmp_path: Path, gate_for: list[Gate]
) -> None:
    with serving(media_file("h264", media_dir), cut_every_s=2.0) as server:
        gate = await make_gate(tmp_path, server.url())
        gate_for.append(gate)
        gate.edge.configure_relay(RelaySettings(give_up_s=10.0))
        incident = gate.report_incident("burglary", HOME, radius_m=300)
        token = await gate.request_access(
            incident.id, "cam", "live", requested_by="officer-7", duration_s=60
        )
        marks = 0
        async with await gate.edge.open_live("cam", token) as stream:
            with anyio.fail_after(40):
                async for packet in stream:
                    if packet.discontinuity:
                        assert packet.is_keyframe
                        marks += 1
                        if marks == 2:
                            break
        up_plays = sum(1 for m, *_ in server.requests if m == "PLAY")
        assert up_plays >= 3  # the first session and two reconnects


# ------------------------------------------------------------------ the request parser, fuzzed

from camgate_rtsp.testing.altserver import RequestReader, RtspRequestError, parse_transport  # noqa: E402

_requests = st.lists(
    st.tuples(
        st.sampled_from(["OPTIONS", "DESCRIBE", "SETUP", "PLAY", "TEARDOWN"]),
        st.binary(max_size=40),
        st.binary(max_size=20),
    ),
    max_size=4,
)


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=600), cuts=st.lists(st.integers(0, 600), max_size=6))
def test_the_request_reader_takes_any_bytes_and_does_not_depend_on_chunking(
    data: bytes, cuts: list[int]
) -> None:
    def read(chunks: list[bytes]) -> object:
        reader = RequestReader()
        out = []
        try:
            for chunk in chunks:
                out += reader.feed(chunk)
        except RtspRequestError:
            return "error"
        return out

    whole = read([data])
    points = sorted({c for c in cuts if c <= len(data)})
    pieces = [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]
    chunked = read(pieces)
    # An error may come at a different chunk, but never a different set of requests before it.
    if whole != "error" and chunked != "error":
        assert chunked == whole


@settings(max_examples=200, deadline=None)
@given(requests=_requests, body=st.binary(max_size=30))
def test_well_formed_requests_are_read_back(
    requests: list[tuple[str, bytes, bytes]], body: bytes
) -> None:
    wire = b""
    expected = []
    for index, (method, _junk, _more) in enumerate(requests):
        wire += b"$\x01\x00\x08rtcp-rr!"  # an interleaved frame between requests is skipped
        wire += f"{method} rtsp://h/p RTSP/1.0\r\nCSeq: {index}\r\n".encode()
        wire += f"Content-Length: {len(body)}\r\n\r\n".encode() + body
        expected.append((method, str(index), body))
    got = RequestReader().feed(wire)
    assert [(r.method, r.cseq, r.body) for r in got] == expected


@settings(max_examples=300, deadline=None)
@given(value=st.text(max_size=80))
def test_parse_transport_takes_any_text(value: str) -> None:
    try:
        spec = parse_transport(value)
    except RtspRequestError:
        return
    assert spec["proto"] == spec["proto"].upper()


# ------------------------------------------------------------------ the guard's view of SETUP

SDP_REPLY = (
    b"RTSP/1.0 200 OK\r\nCSeq: 2\r\nContent-Type: application/sdp\r\nContent-Length: 10\r\n\r\n"
    b"m=video 0\n"
)


@pytest.mark.parametrize(
    ("setup", "refused"),
    [
        (b"RTSP/1.0 461 Unsupported Transport\r\nCSeq: 3\r\n\r\n", 461),
        (b"RTSP/1.0 400 Bad Request\r\nCSeq: 3\r\n\r\n", 400),
        # A camera that answers an interleaved SETUP with a UDP transport (FFmpeg: invalid data)
        (b"RTSP/1.0 200 OK\r\nCSeq: 3\r\nTransport: RTP/AVP;unicast;client_port=5-6\r\n\r\n", 200),
        (b"RTSP/1.0 200 OK\r\nCSeq: 3\r\nTransport: RTP/AVP/TCP;interleaved=0-1\r\n\r\n", None),
        (b"RTSP/1.0 401 Unauthorized\r\nCSeq: 3\r\n\r\n", None),
    ],
)
def test_the_guard_tells_a_refusal_of_rtp_over_tcp_from_other_answers(
    setup: bytes, refused: int | None
) -> None:
    from camgate_rtsp.guard import ReplyScanner, RtspGuard

    scanner = ReplyScanner(lambda location: location)
    describe_401 = b"RTSP/1.0 401 Unauthorized\r\nCSeq: 1\r\n\r\n"
    for piece in (describe_401, SDP_REPLY, setup, b"RTSP/1.0 200 OK\r\nCSeq: 4\r\n\r\n"):
        scanner.feed(piece)
    assert scanner.setup_reply is not None and scanner.setup_reply[0] == int(setup[9:12])
    for udp in (False, True):
        with RtspGuard("rtsp://127.0.0.1:9/x", "cam", connect_timeout_s=1, udp=udp) as guard:
            guard.setup_reply = scanner.setup_reply
            # A guard started for UDP never reports a refusal of TCP (nothing to fall back to).
            assert guard.tcp_refused == (None if udp else refused)


async def test_a_resolution_change_ends_an_mp4_and_keeps_what_it_holds(
    media_dir: Path, tmp_path: Path, gate_for: list[Gate]
) -> None:
    """A camera that switches 320x240 <-> 480x270 mid-stream with the new parameter sets only
    in-band: an MP4 holds one size, so the clip ends at the change as a partial clip (kept,
    audited, decodable, one size), and MPEG-TS goes on through it."""
    with serving(media_file("resize", media_dir)) as server:
        gate = await make_gate(tmp_path, server.url())
        gate_for.append(gate)
        incident = gate.report_incident("burglary", HOME, radius_m=300)
        grant = await gate.request_access(
            incident.id, "cam", "live", requested_by="officer-7", duration_s=60
        )
        clip = await gate.edge.record_clip("cam", grant, tmp_path / "c.mp4", 6.0, format="mp4")
        assert clip.partial and clip.reason is not None
        assert "the video changed from h264" in clip.reason and "one mp4 file" in clip.reason
        decodes(clip.path)
        sizes = {(s["width"], s["height"]) for s in ffprobe(clip.path)["streams"]}  # type: ignore[index,union-attr]
        assert len(sizes) == 1
        with av.open(str(clip.path)) as container:
            shapes = {(f.width, f.height) for f in container.decode(video=0)}
        assert shapes == sizes  # every picture, not only the header, has the one size
        exported = [r.body for r in gate.audit.records() if r.kind == "clip.exported"]
        assert exported[-1]["partial"] is True and exported[-1]["reason"] == clip.reason
        grant = await gate.request_access(
            incident.id, "cam", "live", requested_by="officer-7", duration_s=60
        )
        ts = await gate.edge.record_clip("cam", grant, tmp_path / "c.ts", 6.0, format="ts")
        assert not ts.partial
        decodes(ts.path)


def _udp_peer(local_port: int) -> tuple[str, int] | None:
    """The remote address a local UDP socket is connected to (from /proc/net/udp), None when
    it is not connected (it takes datagrams from anyone)."""
    for line in Path("/proc/net/udp").read_text().splitlines()[1:]:
        local, remote = line.split()[1:3]
        if int(local.split(":")[1], 16) != local_port:
            continue
        host, port = remote.split(":")
        if int(port, 16) == 0:
            return None
        return socket.inet_ntoa(int(host, 16).to_bytes(4, "little")), int(port, 16)
    raise AssertionError(f"no UDP socket on port {local_port}")


@pytest.mark.parametrize("source_only", [True, False])
async def test_over_udp_only_the_camera_can_send_rtp(media_dir: Path, source_only: bool) -> None:
    """Over UDP the client's RTP and RTCP sockets are connected to the ports the camera named
    in its SETUP answer, so the kernel drops datagrams anybody else sends to them (an injected
    picture); ``udp_source_only: false`` leaves them open, for a camera that sends from other
    ports than it announces."""
    with serving(media_file("h264", media_dir), udp_only=True) as server:
        settings_ = RtspSettings(transport="udp", udp_source_only=source_only)
        stream = await RtspLiveStream.open(server.url(), settings_)
        try:
            with anyio.fail_after(20):
                async for _packet in stream:
                    break  # media flows through the filter
            (transport,) = [t for m, _, t, status in server.requests if m == "SETUP"]
            ports = parse_transport(transport)["client_port"]
            rtp, rtcp = (int(p) for p in ports.split("-"))
            peers = [_udp_peer(rtp), _udp_peer(rtcp)]
            (session,) = server._sessions.values()
            ((rtp_sock, rtcp_sock, _),) = session.udp.values()
            camera = [rtp_sock.getsockname(), rtcp_sock.getsockname()]
            assert peers == (camera if source_only else [None, None])
        finally:
            await stream.aclose()
