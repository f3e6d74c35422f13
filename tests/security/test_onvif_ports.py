"""#12 item 4 and #15 item 2: an ONVIF device cannot send camgate — and the owner's password —
to another port of its host, nor downgrade https to plain http; ports a device reports from
behind port forwarding are mapped by the documented ``ports`` setting; errors name the URL
actually tried. Attacker: a hostile (or compromised) camera, or a co-tenant listening on
another port of the camera's host."""

from __future__ import annotations

import base64
import socket
from datetime import timedelta
from typing import Any

import pytest
from camgate.errors import CameraAuthError, CameraProtocolError, CameraUnreachable
from camgate.media import decode_jpeg
from camgate_onvif.testing.simulator import OnvifSimulator, Quirks

from tests.security._onvif import Listener, adapter, camera, grant, listener, make_sim, rtsp_server

__all__ = ["listener", "make_sim", "rtsp_server"]

pytestmark = pytest.mark.anyio


def _basic(sim: OnvifSimulator) -> bytes:
    return base64.b64encode(f"{sim.username}:{sim.password}".encode())


@pytest.mark.parametrize(
    ("tls", "auth"),
    [(False, "digest"), (True, "basic")],
    ids=["http-digest", "https-basic"],
)
async def test_snapshot_on_another_port_never_gets_the_password(
    make_sim: Any, listener: Listener, tls: bool, auth: str
) -> None:
    # The device hands back a snapshot URL on another port of its host (plain http even when
    # the device is https), where a listener asks for Basic credentials. The snapshot is
    # fetched from the configured scheme and port instead.
    sim = make_sim(
        tls=tls, snapshot_auth=auth, quirks=Quirks(report_ports={"snapshot": listener.port})
    )
    cam = camera(sim)
    async with adapter(sim) as onvif:
        snap = await onvif.snapshot(cam, grant(cam, "snapshot"))
    assert decode_jpeg(snap.jpeg) == (640, 360)
    assert listener.anything == b""  # nothing reached the other port, no credentials
    assert _basic(sim) not in listener.anything
    assert [r.status for r in sim.requests if r.operation == "snapshot"] == [401, 200]


async def test_basic_over_plain_http_only_when_the_settings_allow_it(make_sim: Any) -> None:
    sim = make_sim(snapshot_auth="basic")
    cam = camera(sim)
    async with adapter(sim) as onvif:
        with pytest.raises(CameraAuthError, match="allow_basic_over_http") as info:
            await onvif.snapshot(cam, grant(cam, "snapshot"))
    assert sim.password not in str(info.value)
    got = [r for r in sim.requests if r.operation == "snapshot"]
    assert [r.status for r in got] == [401]  # asked once, and the password was never sent
    async with adapter(sim, allow_basic_over_http=True) as onvif:
        snap = await onvif.snapshot(cam, grant(cam, "snapshot"))
    assert decode_jpeg(snap.jpeg) == (640, 360)


async def test_stream_on_a_port_the_settings_do_not_allow_is_refused(
    make_sim: Any, listener: Listener
) -> None:
    sim = make_sim(quirks=Quirks(report_ports={"rtsp": listener.port}))
    cam = camera(sim)
    async with adapter(sim) as onvif:
        with pytest.raises(CameraProtocolError, match=f"port {listener.port}") as info:
            await onvif.open_live(cam, grant(cam, "live"))
    assert "ports.rtsp" in str(info.value) and sim.password not in str(info.value)
    assert listener.anything == b""


async def test_soap_services_on_another_port_are_called_on_the_configured_one(
    make_sim: Any, listener: Listener
) -> None:
    sim = make_sim(quirks=Quirks(report_ports={"soap": listener.port}, lan_address=True))
    async with adapter(sim) as onvif:
        streams = await onvif.streams(sim.sources[0])
    assert [s.token for s in streams] == ["main", "sub"]
    assert listener.anything == b""


async def test_port_forwarding_is_mapped_by_the_ports_setting(make_sim: Any) -> None:
    # A residential camera: replies name its LAN address and the ports inside the house
    # (80, 554, and 8554 for replay); the owner forwarded other ports of the router.
    sim = make_sim(
        quirks=Quirks(
            lan_address=True, report_ports={"soap": 80, "snapshot": 80, "rtsp": 554, "replay": 8554}
        )
    )
    cam = camera(sim)
    async with adapter(sim, ports={}) as onvif:
        snap = await onvif.snapshot(cam, grant(cam, "snapshot"))  # SOAP, snapshot: configured port
        assert decode_jpeg(snap.jpeg) == (640, 360)
        with pytest.raises(CameraUnreachable, match="127.0.0.1:554"):
            await onvif.open_live(cam, grant(cam, "live"))  # the error names the URL tried
    ports = {"rtsp": {"554": sim.rtsp.port, "8554": sim.replay.port}}
    start = sim.recording_start + timedelta(seconds=5)
    grants = [grant(cam, "live"), grant(cam, "recorded", (start, start + timedelta(seconds=2)))]
    async with adapter(sim, ports=ports) as onvif:
        for granted in grants:
            opener = onvif.open_live if granted.scope == "live" else onvif.recorded
            stream = await opener(cam, granted)
            try:
                packet = await anext(aiter(stream))
                assert packet.is_keyframe
            finally:
                await stream.aclose()
    assert sim.replay.requests  # the replay came through the mapped port


async def test_errors_name_the_soap_url_actually_tried(make_sim: Any) -> None:
    sim = make_sim()
    with socket.socket() as bound:  # bound, never listening: connections are refused
        bound.bind(("127.0.0.1", 0))
        port = bound.getsockname()[1]
        async with adapter(sim, ports={"soap": {str(sim.port): port}}, timeout_s=3) as onvif:
            where = f"127.0.0.1:{port}/dev1/onvif/media_service"
            with pytest.raises(CameraUnreachable, match=where):
                await onvif.streams(sim.sources[0])
