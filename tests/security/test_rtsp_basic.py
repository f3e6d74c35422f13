"""Review F4: no HTTP Basic credentials over plain ``rtsp://`` unless a setting allows it.

Basic sends the password in clear text (base64); anyone on the path can answer the camera's
``401`` with a Basic challenge of their own (a downgrade from digest) and read it. One rule,
shared by the RTSP adapter's guard (which sees every reply before FFmpeg does) and the ONVIF
replay client: over plain ``rtsp`` a Basic challenge is dropped when a digest one is offered too,
and refused with ``CameraAuthError`` naming ``allow_basic_over_rtsp`` when it is the only one;
``rtsps`` may use Basic (inside TLS). Attacker: a hostile camera or anyone on the network path.
Tests use real loopback peers that ask for Basic and record every ``Authorization`` header,
GStreamer's RTSP server with Basic auth, and a TLS front for ``rtsps``.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest
from camgate.adapters import Credentials
from camgate.errors import CameraAuthError, CameraUnreachable, ValidationError
from camgate_onvif.adapter import OnvifSettings
from camgate_onvif.replay import ReplayStream
from camgate_rtsp.adapter import RtspLiveStream, RtspSettings, rtsp_url
from camgate_rtsp.guard import ReplyScanner
from camgate_rtsp.testing.server import Mount, RtspTestServer

from ._rtsp import RedirectingCamera, TlsFront, first_packet, gst_server, self_signed

pytestmark = pytest.mark.anyio

USER = "officer"
PASSWORD = "s3cret-pw-F4"
CREDS = Credentials(USER, PASSWORD)
SETTINGS = RtspSettings(connect_timeout_s=3.0, read_timeout_s=3.0)
BASIC = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
DIGEST = 'Digest realm="cam", nonce="0123456789abcdef"'


@pytest.fixture(scope="module")
def basic_gst() -> Iterator[RtspTestServer]:
    """GStreamer's RTSP server asking for Basic credentials."""
    yield from gst_server(
        Mount("/secure", gop_frames=15, username=USER, password=PASSWORD), auth="basic"
    )


def _auth(camera: RedirectingCamera) -> list[str]:
    return [auth for _, auth in camera.requests if auth]


def _no_basic(camera: RedirectingCamera) -> None:
    sent = _auth(camera)
    assert not any(a.lower().startswith("basic") for a in sent), sent
    assert BASIC.split()[1] not in repr(camera.requests)


# ------------------------------------------------------------------ the RTSP adapter (guard)


async def test_a_camera_asking_only_for_basic_over_rtsp_is_refused() -> None:
    with (
        RedirectingCamera({}) as cam,
        pytest.raises(CameraAuthError, match="allow_basic_over_rtsp") as info,
    ):
        await RtspLiveStream.open(rtsp_url(cam.url("/live"), CREDS), SETTINGS)
    _no_basic(cam)
    assert PASSWORD not in str(info.value)
    assert "Basic" in str(info.value) and "rtsps" in str(info.value)


async def test_a_basic_challenge_in_a_200_is_refused_too() -> None:
    # FFmpeg takes a WWW-Authenticate from any reply and answers every later request with it:
    # a Basic challenge on the OPTIONS answer would make DESCRIBE carry the password.
    with (
        RedirectingCamera({}, options_challenge='Basic realm="x"') as cam,
        pytest.raises(CameraAuthError, match="allow_basic_over_rtsp"),
    ):
        await RtspLiveStream.open(rtsp_url(cam.url("/live"), CREDS), SETTINGS)
    _no_basic(cam)


@pytest.mark.parametrize("order", ["basic-first", "basic-last"])
async def test_basic_beside_digest_is_dropped_and_digest_answered(order: str) -> None:
    challenges = ('Basic realm="cam"', DIGEST)
    if order == "basic-last":
        challenges = challenges[::-1]
    with (
        RedirectingCamera({}, challenges=challenges) as cam,
        pytest.raises(CameraUnreachable, match="404"),
    ):  # the camera has no such path
        await RtspLiveStream.open(rtsp_url(cam.url("/live"), CREDS), SETTINGS)
    _no_basic(cam)
    assert any(a.startswith("Digest ") for a in _auth(cam)), cam.requests


def test_the_scanner_drops_basic_beside_digest_and_refuses_basic_alone() -> None:
    reply = (
        b'RTSP/1.0 401 Unauthorized\r\nCSeq: 2\r\nWWW-Authenticate: BASIC realm="x"\r\n'
        b"www-authenticate:" + DIGEST.encode() + b"\r\n\r\n"
    )
    out = ReplyScanner(lambda location: location).feed(reply)
    assert b"basic" not in out.lower() and DIGEST.encode() in out
    assert ReplyScanner(lambda location: location, allow_basic=True).feed(reply) == reply
    alone = b'RTSP/1.0 401 Unauthorized\r\nCSeq: 2\r\nWWW-Authenticate:  Basic realm="x"\r\n\r\n'
    with pytest.raises(CameraAuthError, match="allow_basic_over_rtsp"):
        ReplyScanner(lambda location: location).feed(alone)


async def test_basic_over_rtsp_works_when_the_setting_allows_it(
    basic_gst: RtspTestServer,
) -> None:
    url = rtsp_url(basic_gst.url("/secure"), CREDS)
    with pytest.raises(CameraAuthError, match="allow_basic_over_rtsp"):
        await RtspLiveStream.open(url, SETTINGS)
    allow = {"connect_timeout_s": 3.0, "allow_basic_over_rtsp": True}
    stream = await first_packet(url, RtspSettings.from_mapping(allow))
    await stream.aclose()


async def test_rtsps_may_use_basic_without_the_setting(
    basic_gst: RtspTestServer, tmp_path: Path
) -> None:
    cert, key = self_signed(str(tmp_path))
    with TlsFront((basic_gst.host, basic_gst.port), cert, key) as camera:
        url = rtsp_url(camera.url("/secure"), CREDS)
        stream = await first_packet(url, RtspSettings(ca_file=cert, connect_timeout_s=3.0))
        await stream.aclose()


def test_the_setting_is_validated_and_reaches_onvif_streams() -> None:
    assert RtspSettings.from_mapping({"allow_basic_over_rtsp": True}).allow_basic_over_rtsp
    with pytest.raises(ValidationError, match="allow_basic_over_rtsp"):
        RtspSettings.from_mapping({"allow_basic_over_rtsp": "yes"})
    onvif = OnvifSettings.from_mapping({"allow_basic_over_rtsp": True})
    assert onvif.rtsp().allow_basic_over_rtsp
    assert not OnvifSettings().rtsp().allow_basic_over_rtsp


# ------------------------------------------------------------------ ONVIF's replay client


async def test_the_replay_client_refuses_basic_over_rtsp() -> None:
    with (
        RedirectingCamera({}) as cam,
        pytest.raises(CameraAuthError, match="allow_basic_over_rtsp") as info,
    ):
        await ReplayStream.open(cam.url("/rec"), CREDS, connect_timeout_s=3)
    _no_basic(cam)
    assert PASSWORD not in str(info.value)


async def test_the_replay_client_answers_digest_when_basic_is_offered_too() -> None:
    # Several WWW-Authenticate headers: the last one used to win, so "Digest, Basic" was
    # answered with Basic.
    with (
        RedirectingCamera({}, challenges=(DIGEST, 'Basic realm="cam"')) as cam,
        pytest.raises(CameraUnreachable, match="404"),
    ):
        await ReplayStream.open(cam.url("/rec"), CREDS, connect_timeout_s=3)
    _no_basic(cam)
    assert any(a.startswith("Digest ") for a in _auth(cam)), cam.requests


async def test_the_replay_client_sends_basic_when_allowed() -> None:
    with (
        RedirectingCamera({}) as cam,
        pytest.raises(CameraUnreachable, match="404"),
    ):  # past the 401: accepted
        await ReplayStream.open(
            cam.url("/rec"), CREDS, connect_timeout_s=3, allow_basic_over_rtsp=True
        )
    assert _auth(cam) == [BASIC]
