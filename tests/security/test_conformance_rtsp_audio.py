"""Audio is a scope at the camera too: the RTSP adapter SETUPs no audio track without audio.

Issue 13, item 10: FFmpeg's RTSP demuxer sets up every track of the SDP; the adapter dropped the
audio packets, but the camera still streamed audio to it for a grant without audio. The server's
own request log shows what was set up.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from camgate.models import Camera, GeoPoint, Grant
from camgate_rtsp.adapter import RtspAdapter, RtspSettings
from camgate_rtsp.testing.server import Mount, RtspTestServer, serving

pytestmark = [pytest.mark.anyio, pytest.mark.rtsp]


@pytest.fixture(scope="module")
def server() -> Iterator[RtspTestServer]:
    with serving([Mount("/av", audio=True)]) as srv:
        yield srv


def _grant(audio: bool) -> Grant:
    now = datetime.now(UTC)
    return Grant(
        id="g",
        request_id="r",
        camera_id="c1",
        incident_id="i",
        scope="live",
        issued_at=now,
        expires_at=now + timedelta(minutes=1),
        audio=audio,
    )


async def _setups(server: RtspTestServer, audio: bool) -> list[str]:
    camera = Camera(
        id="c1", adapter="rtsp", source=server.url("/av"), owner_id="o", position=GeoPoint(0, 0)
    )
    since = len(server.requests())
    stream = await RtspAdapter(RtspSettings()).open_live(camera, _grant(audio))
    try:
        async for _packet in stream:
            break
    finally:
        await stream.aclose()
    assert server.wait_requests(lambda ev: any(e.kind == "play" for e in ev[since:]), 10.0)
    return [e.path or "" for e in server.requests()[since:] if e.kind == "setup"]


async def test_a_grant_without_audio_sets_up_only_the_video_track(server: RtspTestServer) -> None:
    assert len(await _setups(server, audio=False)) == 1


async def test_a_grant_with_audio_sets_up_both_tracks(server: RtspTestServer) -> None:
    assert len(await _setups(server, audio=True)) == 2
