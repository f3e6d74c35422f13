"""Media from the simulated Wyze: live and snapshots over the RTSP firmware (camgate-rtsp's
GStreamer test server), event clips cut to the grant's window (decoded, picture clocks read)."""

from __future__ import annotations

import asyncio
import io
import logging
import time
from datetime import UTC, datetime, timedelta

import av
import pytest
from camgate.adapters import LiveStream
from camgate.errors import CameraProtocolError, CameraUnreachable
from camgate.media.jpeg import decode_jpeg
from camgate.models import MediaPacket, StreamInfo
from camgate.testing import read_picture_clock, until
from camgate.testing.webrtc import read_counter
from camgate_wyze.adapter import WyzeAdapter
from camgate_wyze.testing import RTSP_PASSWORD, WyzeSimulator

from .conftest import camera, grant

pytestmark = pytest.mark.anyio


def _pictures(packets: list[MediaPacket]) -> list[av.VideoFrame]:
    decoder = av.CodecContext.create("h264", "r")
    frames: list[av.VideoFrame] = []
    for p in packets:
        frames += decoder.decode(av.Packet(p.data))
    frames += decoder.decode(None)
    return frames


async def _recorded(
    sim: WyzeSimulator, start: datetime, end: datetime
) -> tuple[list[MediaPacket], StreamInfo, list[datetime | None], int]:
    """The recorded stream of the first camera for ``[start, end)``: its packets, its
    ``info``, their pictures' clocks, and how many clips the cloud served for it."""
    cam = camera(sim.macs[0])
    adapter = WyzeAdapter.from_settings(sim.settings)
    mark = len(sim.log())
    try:
        stream = await adapter.recorded(cam, grant(cam, "recorded", (start, end)))
        packets = [p async for p in stream]
        await stream.aclose()
    finally:
        await adapter.aclose()
    clocks = [read_picture_clock(f) for f in _pictures(packets)]
    clips = len([e for e in sim.log()[mark:] if e["kind"] == "clip"])
    return packets, stream.info, clocks, clips


async def test_recorded_is_cut_to_the_window(sim: WyzeSimulator) -> None:
    first, second, _third = sim.events_at
    start, end = first - timedelta(seconds=1), second + timedelta(seconds=2.05)
    packets, info, clocks, clips = await _recorded(sim, start, end)
    assert packets[0].is_keyframe and not packets[0].discontinuity
    assert info.codec == "h264" and (info.width, info.height) == (320, 240)
    starts = [i for i, p in enumerate(packets) if p.discontinuity]
    assert len(starts) == 1 and packets[starts[0]].is_keyframe  # the second event's clip
    dts = [p.dts or 0 for p in packets]
    assert dts == sorted(dts) and len(set(dts)) == len(dts)
    assert all(c is not None and start <= c < end for c in clocks), clocks
    # The first clip whole (4 s), the second up to the window's end (2 s), at 10 fps.
    assert len(clocks) == 60
    assert clips == 2  # the third event lies outside the window: never fetched


async def test_an_event_begun_before_the_window_is_not_fetched(sim: WyzeSimulator) -> None:
    first, second, _third = sim.events_at
    start, end = first + timedelta(seconds=1), second + timedelta(seconds=1.05)
    packets, _info, clocks, clips = await _recorded(sim, start, end)
    assert clocks[0] == second and len(clocks) == 10 and not packets[0].discontinuity
    assert clips == 1


async def test_presigned_queries_never_reach_the_log(
    sim: WyzeSimulator, caplog: pytest.LogCaptureFixture
) -> None:
    adapter = WyzeAdapter.from_settings(sim.settings)
    url = f"{sim.base}/media/{sim.macs[0]}-ev1.mp4?X-Amz-Signature=s3cr3t-signature"
    try:
        with caplog.at_level(logging.DEBUG):
            assert await adapter.client().fetch_video(url)
            stream = await adapter.open_live(camera(sim.macs[1]), grant(camera(sim.macs[1])))
            await stream.aclose()
    finally:
        await adapter.aclose()
    assert "media/" in caplog.text and "?***" in caplog.text  # the request is logged, its query not
    assert "s3cr3t" not in caplog.text and "X-Amz-Signature=" not in caplog.text


async def test_event_files_only_from_allowed_hosts(sim: WyzeSimulator) -> None:
    adapter = WyzeAdapter.from_settings(sim.settings)
    client = adapter.client()
    mark = len(sim.log())
    try:
        with pytest.raises(CameraProtocolError, match="not on an allowed media host"):
            await client.fetch_video("https://elsewhere.example/media/ev1.mp4?X-Amz-Signature=s")
        with pytest.raises(CameraProtocolError, match="redirects"):
            await client.fetch_video(f"{sim.base}/media/away.mp4")
        small = WyzeAdapter.from_settings(sim.settings_for(max_clip_bytes=1000))
        with pytest.raises(CameraProtocolError, match="max_clip_bytes"):
            await small.client().fetch_video(f"{sim.base}/media/{sim.macs[0]}-ev1.mp4")
        await small.aclose()
    finally:
        await adapter.aclose()
    assert [e["kind"] for e in sim.log()[mark:]] == ["clip", "clip"]  # elsewhere: never asked


async def _live(sim: WyzeSimulator, mac: str) -> tuple[list[MediaPacket], LiveStream, float]:
    """Five packets of camera ``mac``'s live stream, the closed stream, and when its closing
    began (``time.monotonic()``)."""
    cam = camera(mac)
    adapter = WyzeAdapter.from_settings(sim.settings)
    try:
        stream = await adapter.open_live(cam, grant(cam))
        packets = []
        try:
            async for packet in stream:
                packets.append(packet)
                if len(packets) >= 5:
                    break
        finally:
            closing = time.monotonic()
            await stream.aclose()
    finally:
        await adapter.aclose()
    assert RTSP_PASSWORD not in repr(stream) + repr(adapter)
    return packets, stream, closing


async def test_live_over_the_rtsp_firmware(sim: WyzeSimulator) -> None:
    packets, stream, _ = await _live(sim, sim.macs[0])
    assert packets[0].is_keyframe and stream.info.codec == "h264"
    clock = read_picture_clock(_pictures(packets)[0])
    assert clock is not None and abs(clock - datetime.now(UTC)) < timedelta(seconds=30)


@pytest.mark.parametrize("index", [0, 1], ids=["rtsp-firmware", "cloud-webrtc"])
async def test_snapshot_is_a_fresh_frame_of_the_live_route(sim: WyzeSimulator, index: int) -> None:
    cam = camera(sim.macs[index])
    g = grant(cam, "snapshot")
    adapter = WyzeAdapter.from_settings(sim.settings)
    try:
        shot = await adapter.snapshot(cam, g)
    finally:
        await adapter.aclose()
    assert decode_jpeg(shot.jpeg) == (320, 240) == (shot.width, shot.height)
    assert shot.taken_at >= g.issued_at and shot.grant_id == g.id
    if index == 0:  # the RTSP firmware's pictures carry the moment they were taken
        with av.open(io.BytesIO(shot.jpeg)) as c:
            clock = read_picture_clock(next(c.decode(video=0)))
        assert clock is not None and clock >= g.issued_at - timedelta(seconds=1)


async def test_live_over_cloud_webrtc_and_its_end_at_the_simulator(sim: WyzeSimulator) -> None:
    packets, stream, closing = await _live(sim, sim.macs[1])  # no rtsp_url: the cloud route
    assert packets[0].is_keyframe and stream.info.codec == "h264"
    assert (stream.info.width, stream.info.height) == (320, 240)
    counters = [read_counter(f.to_ndarray(format="gray")) for f in _pictures(packets)]
    assert counters == sorted(counters) and len(counters) == 5

    def ended() -> list[str]:
        return [e["kind"] for e in sim.log(connections=True) if e["at"] >= closing]

    await until(lambda: {"session-closed", "closed"} <= set(ended()), "the session's end")
    log = sim.log(connections=True)
    ends = [e["at"] - closing for e in log if e["kind"] == "session-closed" and e["at"] >= closing]
    assert ends and min(ends) < 1.0  # the revocation budget: the peer saw it end


async def test_an_offline_v4_is_unreachable(sim: WyzeSimulator) -> None:
    cam = camera(sim.macs[2])
    adapter = WyzeAdapter.from_settings(sim.settings)
    try:
        with pytest.raises(CameraUnreachable, match="device offline"):
            await adapter.open_live(cam, grant(cam))
    finally:
        await adapter.aclose()


async def test_a_redirecting_signalling_channel_is_not_followed() -> None:
    from camgate_wyze.kvs import KvsLiveStream

    seen: list[str] = []

    async def elsewhere(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append("connected")
        writer.close()

    async def redirecting(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        location = f"ws://127.0.0.1:{other_port}/stolen"
        writer.write(f"HTTP/1.1 302 Found\r\nLocation: {location}\r\n\r\n".encode())
        await writer.drain()
        writer.close()

    other = await asyncio.start_server(elsewhere, "127.0.0.1", 0)
    other_port = other.sockets[0].getsockname()[1]
    server = await asyncio.start_server(redirecting, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with other, server:
        with pytest.raises(CameraProtocolError, match="redirects; not followed"):
            await KvsLiveStream.open(f"ws://127.0.0.1:{port}/x", [], "cam", 5.0)
    assert seen == []
