"""The WebRTC receive path against a real aiortc peer in another process, speaking WHEP.

The sender (camgate.testing.webrtc) encodes pictures carrying a frame counter with aiortc's
H.264 encoder and reports, at ``GET /state``, what it sent: the tests compare the receiver's
packets with that record and decode what the muxer wrote with ffmpeg and PyAV.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.metadata
import queue
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import av
import httpx
import pytest
from camgate.errors import CameraAuthError, CameraProtocolError, CameraUnreachable, ConfigError
from camgate.media import Mp4Writer, webrtc
from camgate.media.webrtc import (
    AIORTC_VERSION,
    WebRtcReceiver,
    answer_has_h264,
    h264_keyframe,
    sps_size,
    whep_connect,
)
from camgate.models import MediaPacket
from camgate.testing.webrtc import read_counter
from hypothesis import given, settings
from hypothesis import strategies as st

#: The sending peer, run as its own process (``python -m camgate.testing.webrtc``).
SENDER = ["-m", "camgate.testing.webrtc"]

INTERVAL = 4.0  # the sender's keyframe interval, seconds
JOIN = 0.5  # the receiver joins this far into the sender's first group of pictures
TOKEN = "s3cret-token-value"


class Sender:
    """The sending peer's process and its WHEP endpoint."""

    def __init__(self, *args: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, *SENDER, *args],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        assert line.startswith("READY "), f"the sender did not start: {line!r}"
        self.url = line.split()[1]
        self.base = self.url.rsplit("/", 1)[0]

    def state(self) -> dict[str, Any]:
        result: dict[str, Any] = httpx.get(f"{self.base}/state").json()
        return result

    def session(self, resource: str) -> dict[str, Any]:
        found: dict[str, Any] = self.state()[resource.rsplit("/", 1)[1]]
        return found

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


@pytest.fixture(scope="module")
def sender() -> Iterator[Sender]:
    running = Sender(
        "--keyframe-interval", str(INTERVAL), "--join-delay", str(JOIN), "--token", TOKEN
    )
    yield running
    running.stop()


def run(work: Awaitable[Any]) -> Any:
    return asyncio.run(asyncio.wait_for(work, 60))  # type: ignore[arg-type]


async def until(condition: Callable[[], bool], what: str, limit: float = 30.0) -> None:
    """Wait for ``condition`` (polled), failing after ``limit`` seconds (a generous bound)."""
    deadline = time.monotonic() + limit
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


# --- aiortc's private seam -------------------------------------------------------------------


def test_aiortc_is_the_pinned_version_with_the_hooked_internals() -> None:
    """Fails loudly when aiortc changes: the pass-through replaces a private part of it."""
    import aiortc
    import aiortc.rtcrtpreceiver as receiver_module

    installed = importlib.metadata.version("aiortc")
    assert installed == AIORTC_VERSION, (
        f"aiortc {installed} is installed but camgate's WebRTC pass-through is written for "
        f"aiortc {AIORTC_VERSION}: re-check camgate.media.webrtc against aiortc {installed}'s "
        "RTCRtpReceiver (its decoder queue, _send_rtcp_pli) before changing the pin"
    )

    async def internals() -> tuple[Any, Any]:
        # Built inside a running loop: aiortc's sender asks for the current loop, which a
        # process that ran asyncio.run before (an earlier test) no longer has outside one.
        pc = aiortc.RTCPeerConnection()
        try:
            receiver = pc.addTransceiver("video", direction="recvonly").receiver
            queue_found = getattr(receiver, webrtc._DECODER_QUEUE, None)
            return queue_found, getattr(receiver, "_send_rtcp_pli", None)
        finally:
            await pc.close()

    hooked, pli = run(internals())
    assert isinstance(hooked, queue.Queue), (
        f"aiortc {installed}: RTCRtpReceiver has no {webrtc._DECODER_QUEUE} queue any more"
    )
    assert callable(pli), f"aiortc {installed}: RTCRtpReceiver._send_rtcp_pli is gone"
    assert callable(receiver_module.decoder_worker), f"aiortc {installed}: no decoder_worker"


def test_missing_aiortc_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "aiortc", None)
    with pytest.raises(ConfigError, match=r"camgate\[webrtc\]"):
        WebRtcReceiver()


# --- live packets ----------------------------------------------------------------------------


async def _receive(
    sender: Sender, *, keyframe_on_join: bool, after_keyframe: int
) -> tuple[list[MediaPacket], dict[str, Any], WebRtcReceiver]:
    """Packets from joining until ``after_keyframe`` packets past the first keyframe, and the
    sender's record of the session (after the WHEP session was closed)."""
    receiver = WebRtcReceiver(keyframe_on_join=keyframe_on_join)
    session = await whep_connect(sender.url, receiver)
    got: list[MediaPacket] = []
    seen = None
    async for packet in receiver.packets():
        got.append(packet)
        if seen is None and packet.is_keyframe:
            seen = len(got)
        if seen is not None and len(got) >= seen + after_keyframe:
            break
    await session.aclose()
    return got, sender.session(session.resource), receiver


def _sent_units(sent: dict[str, Any], got: list[MediaPacket]) -> list[dict[str, Any]]:
    """The sender's records of the access units ``got`` carries, byte for byte: the packets'
    relative timestamps, placed at some origin of the sender's clock, must land on units with
    the same SHA-256 (an origin is needed: two pictures may encode to the same bytes)."""
    by_pts = {unit["pts"]: unit for unit in sent["sent"]}
    digests = [hashlib.sha256(packet.data).hexdigest() for packet in got]
    for origin in (u["pts"] for u in sent["sent"] if u["sha256"] == digests[0]):
        units = [by_pts.get(origin + packet.pts) for packet in got]
        if all(u is not None and u["sha256"] == d for u, d in zip(units, digests, strict=True)):
            return [u for u in units if u is not None]
    raise AssertionError("the packets are not the access units the sender sent, in order")


def test_live_packets_are_the_senders_bytes_and_remux(sender: Sender, tmp_path: Path) -> None:
    got, sent, receiver = run(_receive(sender, keyframe_on_join=True, after_keyframe=45))

    # Byte for byte what aiortc's encoder produced at the sender: no re-encoding.
    units = _sent_units(sent, got)
    assert got[0].pts == 0
    for packet, unit in zip(got, units, strict=True):
        assert packet.pts == packet.dts == unit["pts"] - units[0]["pts"]
        assert packet.is_keyframe == unit["keyframe"]
        assert packet.stream.codec == "h264" and packet.stream.time_base == webrtc.VIDEO_TIME_BASE
    assert [p.pts for p in got] == sorted(p.pts for p in got)
    assert receiver.stream_info.width == 320 and receiver.stream_info.height == 240
    assert got[1].wallclock is not None and got[0].wallclock is not None
    assert got[1].wallclock > got[0].wallclock

    # The join was mid-group: the first packet is no keyframe; the request made one at once.
    assert not got[0].is_keyframe
    first_key = next(p for p in got if p.is_keyframe)
    assert sent["forced_keyframes"] >= 1
    # It is the requested keyframe, not the sender's scheduled one (at INTERVAL): it came within
    # a round trip of the join (about 0.13 s here; the bench measures it), checked loosely as
    # under 1 s of the sender's media clock (a busy machine stretches it less than wall time).
    assert units[got.index(first_key)]["pts"] < int(INTERVAL * 90000)
    assert first_key.pts < 90000

    # The muxer takes the packets as they are; ffmpeg decodes the file without a word.
    target = tmp_path / "live.mp4"
    with Mp4Writer(target, receiver.stream_info) as mp4:
        for packet in got:
            mp4.write(packet)
    decoded = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(target), "-f", "null", "-"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert decoded.stderr == ""

    # Every picture from the first keyframe on, in order, none missing.
    with av.open(str(target)) as container:
        counters = [
            read_counter(frame.to_ndarray(format="gray")) for frame in container.decode(video=0)
        ]
    assert len(counters) == 46
    assert counters == list(range(counters[0], counters[0] + 46))


def test_without_a_keyframe_request_the_first_keyframe_waits_for_the_sender(
    sender: Sender,
) -> None:
    got, sent, _receiver = run(_receive(sender, keyframe_on_join=False, after_keyframe=1))
    first_key = next(p for p in got if p.is_keyframe)
    assert sent["forced_keyframes"] == 0
    # The sender's own schedule: the keyframe INTERVAL after its camera started.
    assert _sent_units(sent, got)[got.index(first_key)]["pts"] == int(INTERVAL * 90000)
    assert not any(p.discontinuity for p in got)


def test_a_keyframe_request_mid_stream_brings_one_before_the_schedule(sender: Sender) -> None:
    async def scenario() -> tuple[list[MediaPacket], dict[str, Any], int]:
        receiver = WebRtcReceiver(keyframe_on_join=False)
        session = await whep_connect(sender.url, receiver)
        got: list[MediaPacket] = []
        async for packet in receiver.packets():
            got.append(packet)
            if len(got) == 3:
                await receiver.request_keyframe()
            if packet.is_keyframe:
                break
        requests = receiver.statistics().keyframe_requests
        await session.aclose()
        return got, sender.session(session.resource), requests

    got, sent, requests = run(scenario())
    assert requests == 1 and sent["forced_keyframes"] == 1
    assert _sent_units(sent, got)[-1]["pts"] < int(INTERVAL * 90000)


def test_no_secret_in_reprs() -> None:
    server = webrtc.IceServer(["turn:turn.example:3478"], "user", "turn-password")
    assert "turn-password" not in repr(server)
    receiver = WebRtcReceiver(ice_servers=[server])
    assert "turn-password" not in repr(receiver)
    session = webrtc.WhepSession(
        receiver,
        "https://whep.example/session/1?token=abc",
        {"Authorization": "Bearer xyz"},
        httpx.AsyncClient(),
        own_client=True,
    )
    assert "abc" not in repr(session) and "xyz" not in repr(session)
    run(session._client.aclose())


def test_whep_close_deletes_the_session_and_ends_the_iterator(sender: Sender) -> None:
    async def scenario() -> tuple[dict[str, Any], int, str]:
        receiver = WebRtcReceiver()
        session = await whep_connect(sender.url, receiver)
        count = 0
        async for _packet in receiver.packets():
            count += 1
            if count == 3:
                await session.aclose()
                await session.aclose()  # idempotent
        await until(lambda: sender.session(session.resource)["closed"], "the sender's close")
        return sender.session(session.resource), count, receiver.connection_state

    record, count, state = run(scenario())
    assert record["deleted"] and record["closed"]
    assert count >= 3 and state == "closed"


def test_receiver_close_alone_ends_the_peer_connection_at_the_sender(sender: Sender) -> None:
    async def scenario() -> dict[str, Any]:
        receiver = WebRtcReceiver()
        offer = await receiver.offer()
        async with httpx.AsyncClient() as http:
            response = await http.post(
                sender.url, content=offer, headers={"Content-Type": "application/sdp"}
            )
        resource = response.headers["location"]
        await receiver.accept(response.text)
        await receiver.wait_connected()
        await receiver.aclose()
        await receiver.aclose()
        async for _packet in receiver.packets():  # the queued ones, then the end
            pass
        await until(lambda: sender.session(resource)["closed"], "the sender's close")
        return sender.session(resource)

    record = run(scenario())
    assert record["closed"] and not record["deleted"]


def test_a_slow_consumer_drops_to_the_next_keyframe(sender: Sender) -> None:
    async def scenario() -> tuple[list[MediaPacket], list[int], webrtc.ReceiverStats]:
        receiver = WebRtcReceiver(max_queued=8)
        session = await whep_connect(sender.url, receiver)
        queued: list[int] = []

        def overflowed_and_recovered() -> bool:
            queued.append(receiver.statistics().queued)
            return receiver.statistics().dropped > 0 and any(
                p.discontinuity for p in receiver._queue
            )

        await until(overflowed_and_recovered, "a drop and the keyframe after it")
        got: list[MediaPacket] = []
        async for packet in receiver.packets():
            got.append(packet)
            if packet.discontinuity:
                break
        stats = receiver.statistics()
        await session.aclose()
        return got, queued, stats

    got, queued, stats = run(scenario())
    assert max(queued) <= 8
    assert stats.dropped > 0 and stats.keyframe_requests >= 1
    resumed = got[-1]
    assert resumed.discontinuity and resumed.is_keyframe


# --- errors ----------------------------------------------------------------------------------


def test_a_refused_answer_is_a_protocol_error_without_the_sdp(sender: Sender) -> None:
    receiver = WebRtcReceiver()
    with pytest.raises(CameraProtocolError, match="refused") as caught:
        run(whep_connect(f"{sender.url}/broken", receiver))
    assert "a=" not in str(caught.value) and "H264/90000" not in str(caught.value)
    assert receiver.connection_state == "closed"


def test_an_answer_without_h264_is_a_protocol_error() -> None:
    async def scenario() -> None:
        receiver = WebRtcReceiver()
        await receiver.offer()
        await receiver.accept("v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=rtpmap:0 PCMU/8000\r\n")

    with pytest.raises(CameraProtocolError, match="no H.264"):
        run(scenario())


def test_ice_that_cannot_connect_is_unreachable(sender: Sender) -> None:
    async def scenario() -> None:
        receiver = WebRtcReceiver(connect_timeout=3)
        session = await whep_connect(f"{sender.url}/dead", receiver)
        try:
            async for _packet in receiver.packets():
                pass
        finally:
            await session.aclose()

    with pytest.raises(CameraUnreachable, match="WebRTC connection"):
        run(scenario())


def test_credentials_refused_are_an_auth_error_without_the_token(sender: Sender) -> None:
    with pytest.raises(CameraAuthError, match="401") as caught:
        run(
            whep_connect(
                f"{sender.url}/auth?token=abc",
                WebRtcReceiver(),
                headers={"Authorization": "Bearer wrong-token-value"},
            )
        )
    assert "wrong-token-value" not in str(caught.value) and "abc" not in str(caught.value)


def test_the_right_credentials_open_a_session(sender: Sender) -> None:
    async def scenario() -> bool:
        receiver = WebRtcReceiver()
        session = await whep_connect(
            f"{sender.url}/auth", receiver, headers={"Authorization": f"Bearer {TOKEN}"}
        )
        async with session:
            async for packet in receiver.packets():
                return packet.size > 0
        return False

    assert run(scenario())


def test_a_redirect_to_another_host_is_not_followed(sender: Sender) -> None:
    with pytest.raises(CameraProtocolError, match="another host"):
        run(whep_connect(f"{sender.url}/away", WebRtcReceiver()))


def test_a_redirect_on_the_same_host_is_followed(sender: Sender) -> None:
    async def scenario() -> str:
        session = await whep_connect(f"{sender.url}/here", WebRtcReceiver())
        await session.aclose()
        return session.resource

    assert "/whep/session/" in run(scenario())


def test_an_endpoint_nobody_listens_on_is_unreachable() -> None:
    with pytest.raises(CameraUnreachable, match="cannot be reached"):
        run(whep_connect("http://127.0.0.1:9/whep", WebRtcReceiver()))


def test_a_bad_ice_candidate_is_a_protocol_error() -> None:
    async def scenario() -> None:
        receiver = WebRtcReceiver()
        await receiver.offer()
        try:
            await receiver.add_ice_candidate("candidate:garbage")
        finally:
            await receiver.aclose()

    with pytest.raises(CameraProtocolError, match="ICE candidate"):
        run(scenario())


# --- the parsers, on untrusted bytes ---------------------------------------------------------


class _Writer:
    """Writes bits and Exp-Golomb codes (the inverse of the parser's reader)."""

    def __init__(self) -> None:
        self.bits: list[int] = []

    def u(self, n: int, value: int) -> None:
        self.bits += [(value >> (n - 1 - i)) & 1 for i in range(n)]

    def ue(self, value: int) -> None:
        code = value + 1
        self.u(2 * code.bit_length() - 1, code)

    def rbsp(self) -> bytes:
        bits = [*self.bits, 1]
        bits += [0] * (-len(bits) % 8)
        out = bytes(int("".join(map(str, bits[i : i + 8])), 2) for i in range(0, len(bits), 8))
        # emulation prevention, as an encoder writes it
        escaped = bytearray()
        zeros = 0
        for byte in out:
            if zeros >= 2 and byte <= 3:
                escaped.append(3)
                zeros = 0
            escaped.append(byte)
            zeros = zeros + 1 if byte == 0 else 0
        return bytes(escaped)


@st.composite
def sps_units(draw: st.DrawFn) -> tuple[bytes, tuple[int, int]]:
    profile = draw(st.sampled_from([66, 77, 100]))
    width_mbs = draw(st.integers(1, 120))
    map_units = draw(st.integers(1, 68))
    frame_mbs_only = draw(st.integers(0, 1))
    crop = draw(st.tuples(*[st.integers(0, 3)] * 4))
    w = _Writer()
    w.u(8, profile)
    w.u(16, 0x001F)
    w.ue(draw(st.integers(0, 31)))
    if profile == 100:
        w.ue(1)  # 4:2:0
        w.ue(0)
        w.ue(0)
        w.u(1, 0)
        w.u(1, 0)
    w.ue(0)  # log2_max_frame_num_minus4
    w.ue(2)  # poc type 2
    w.ue(1)
    w.u(1, 0)
    w.ue(width_mbs - 1)
    w.ue(map_units - 1)
    w.u(1, frame_mbs_only)
    if not frame_mbs_only:
        w.u(1, 0)
    w.u(1, 1)
    width = width_mbs * 16 - (crop[0] + crop[1]) * 2
    height = (2 - frame_mbs_only) * map_units * 16 - (crop[2] + crop[3]) * 2 * (2 - frame_mbs_only)
    w.u(1, 1)
    for value in crop:
        w.ue(value)
    w.u(1, 0)  # no VUI
    return b"\x67" + w.rbsp(), (width, height)


@settings(max_examples=300, deadline=None)
@given(sps_units())
def test_sps_size_reads_what_an_encoder_wrote(unit: tuple[bytes, tuple[int, int]]) -> None:
    nal, size = unit
    assert sps_size(nal) == size


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=64))
def test_sps_size_never_raises_on_garbage(data: bytes) -> None:
    result = sps_size(b"\x67" + data)
    assert result is None or (0 < result[0] <= 16384 and 0 < result[1] <= 16384)


def test_sps_size_of_a_real_encoders_sps() -> None:
    for width, height in ((320, 240), (1920, 1080), (642, 362)):
        encoder: Any = av.CodecContext.create("libx264", "w")
        encoder.width, encoder.height, encoder.pix_fmt = width, height, "yuv420p"
        encoder.time_base = webrtc.VIDEO_TIME_BASE
        frame = av.VideoFrame(width, height, "yuv420p")
        frame.pts = 0
        data = b"".join(bytes(p) for p in [*encoder.encode(frame), *encoder.encode(None)])
        assert h264_keyframe(data)
        assert webrtc._access_unit_size(data) == (width, height)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 31), st.binary(min_size=1, max_size=8)), max_size=6))
def test_the_keyframe_is_an_idr_nal_unit(units: list[tuple[int, bytes]]) -> None:
    data = b"".join(
        b"\x00\x00\x00\x01" + bytes([0x60 | kind]) + body.replace(b"\x00", b"\x01")
        for kind, body in units
    )
    assert h264_keyframe(data) == any(kind == 5 for kind, _ in units)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_answer_check_never_raises(sdp: str) -> None:
    assert answer_has_h264(sdp) in (True, False)


@settings(max_examples=200, deadline=None)
@given(
    st.integers(96, 127),
    st.sampled_from(["H264", "h264", "VP8", "AV1"]),
    st.sampled_from(["video", "audio"]),
    st.sampled_from(["9", "0"]),
)
def test_answer_check_wants_h264_video(pt: int, codec: str, kind: str, port: str) -> None:
    sdp = f"v=0\r\nm={kind} {port} UDP/TLS/RTP/SAVPF {pt}\r\na=rtpmap:{pt} {codec}/90000\r\n"
    assert answer_has_h264(sdp) == (codec.upper() == "H264" and kind == "video" and port != "0")
