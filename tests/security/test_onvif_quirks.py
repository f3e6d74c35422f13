"""#15: firmware quirks of real ONVIF devices, each played by the simulator, each ending in
success or a clear camgate error (never a zeep traceback). Item 1 (privacy): a recorded grant
on one channel of an NVR never receives another channel's footage. Attacker: a hostile or
merely quirky device; for item 1 a careless NVR answering every channel whatever the scope."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import attrs
import pytest
from camgate.errors import CameraAuthError, CameraProtocolError, CamgateError
from camgate.media import decode_jpeg
from camgate_onvif.testing.simulator import OnvifSimulator, Quirks

from tests.security._onvif import adapter, camera, grant, make_sim, rtsp_server

__all__ = ["make_sim", "rtsp_server"]

pytestmark = pytest.mark.anyio

NVR = (("ch1", 640, 360), ("ch2", 320, 180))


def _window(sim: OnvifSimulator) -> tuple[Any, Any]:
    start = sim.recording_start - timedelta(seconds=sim.clock_skew_s)
    return start + timedelta(seconds=5), start + timedelta(seconds=8)


async def _first(stream: Any) -> Any:
    try:
        return await anext(aiter(stream))
    finally:
        await stream.aclose()


@pytest.mark.parametrize("ignores_scope", [False, True])
async def test_nvr_recorded_grant_never_replays_another_channel(
    make_sim: Any, ignores_scope: bool
) -> None:
    sim = make_sim(profiles=NVR, quirks=Quirks(nvr=True, ignores_scope=ignores_scope))
    cam = camera(sim, 1, "nvr-ch2")  # channel 2
    async with adapter(sim) as onvif:
        packet = await _first(await onvif.recorded(cam, grant(cam, "recorded", _window(sim))))
    assert packet.data
    paths = {r.path for r in sim.replay.requests}
    assert paths and all("/recording/ch2" in p for p in paths), paths
    assert not any("ch1" in p for p in paths)
    assert "GetReplayUri" in sim.operations()


async def test_nvr_recording_not_tied_to_the_camera_is_never_served(make_sim: Any) -> None:
    # The device answers only recordings of other sources: nothing is replayed.
    sim = make_sim(profiles=NVR, quirks=Quirks(nvr=True, ignores_scope=True))
    cam = camera(sim, 1, "nvr-ch2")
    async with adapter(sim) as onvif:
        device = await onvif.device(cam.source, cam.id)
        device.streams[1] = attrs.evolve(device.streams[1], source_token="vs-elsewhere")
        with pytest.raises(CameraProtocolError, match="no recording holds footage"):
            await onvif.recorded(cam, grant(cam, "recorded", _window(sim)))
        assert any("left out" in n for n in device.notes)
    assert sim.replay.requests == [] and "GetReplayUri" not in sim.operations()


async def test_undeclared_ter_prefix_snapshot_falls_back_to_the_stream(make_sim: Any) -> None:
    sim = make_sim(quirks=Quirks(undeclared_ter=True, no_snapshot_uri=True))
    cam = camera(sim)
    async with adapter(sim) as onvif:
        snap = await onvif.snapshot(cam, grant(cam, "snapshot"))
    assert (snap.width, snap.height) == (640, 360)


async def test_undeclared_ter_not_authorized_is_an_auth_error(make_sim: Any) -> None:
    sim = make_sim(quirks=Quirks(undeclared_ter=True))
    creds = {sim.device_url(): {"username": sim.username, "password": "wrong"}}
    async with adapter(sim, credentials=creds) as onvif:
        with pytest.raises(CameraAuthError, match="UsernameToken sent"):
            await onvif.streams(sim.sources[0])


async def test_ver20_body_for_a_ver10_call_is_a_clear_error(make_sim: Any) -> None:
    sim = make_sim(quirks=Quirks(ver20_body={"GetStreamUri"}))
    cam = camera(sim)
    async with adapter(sim) as onvif:
        with pytest.raises(CameraProtocolError, match="GetStreamUri: the answer is not"):
            await onvif.open_live(cam, grant(cam, "live"))


async def test_invalid_encoders_are_skipped_with_a_note(make_sim: Any) -> None:
    sim = make_sim(quirks=Quirks(invalid_encoders=True))
    async with adapter(sim) as onvif:
        device = await onvif.device(sim.sources[0])
        assert [s.token for s in device.streams] == ["main", "sub"]
        notes = " ".join(device.notes)
    assert "'bad-size' skipped" in notes and "'bad-codec' skipped" in notes


@pytest.mark.parametrize(
    ("clock", "source"), [("auth", "device (authenticated)"), ("missing", "http date")]
)
async def test_system_date_and_time_is_not_a_hard_gate(
    make_sim: Any, clock: str, source: str
) -> None:
    sim = make_sim(quirks=Quirks(clock=clock), clock_skew_s=-3600)  # an hour behind
    async with adapter(sim) as onvif:
        device = await onvif.device(sim.sources[0])
        assert device.soap.clock_source == source
        assert abs(device.soap.offset.total_seconds() + 3600) < 5
        assert f"clock offset from: {source}" in device.notes
        assert [s.token for s in device.streams] == ["main", "sub"]


async def test_not_authorized_without_credentials_says_none_were_sent(make_sim: Any) -> None:
    sim = make_sim()
    async with adapter(sim, credentials={}) as onvif:
        with pytest.raises(CameraAuthError, match="without credentials"):
            await onvif.streams(sim.sources[0])


async def test_naive_search_dates_are_utc_on_the_device_clock(make_sim: Any) -> None:
    sim = make_sim(quirks=Quirks(naive_dates=True))
    cam = camera(sim)
    async with adapter(sim) as onvif:
        packet = await _first(await onvif.recorded(cam, grant(cam, "recorded", _window(sim))))
    assert packet.data


async def test_query_string_credentials_never_show(
    make_sim: Any, caplog: pytest.LogCaptureFixture
) -> None:
    sim = make_sim(quirks=Quirks(query_credentials=True))
    cam = camera(sim)
    from urllib.parse import quote

    secrets = (sim.password, quote(sim.password, safe=""))
    with caplog.at_level(logging.INFO):
        async with adapter(sim) as onvif:
            snap = await onvif.snapshot(cam, grant(cam, "snapshot"))
            assert decode_jpeg(snap.jpeg) == (640, 360)
        wrong = {sim.device_url(): {"username": sim.username, "password": sim.password}}
        sim.password = "changed"  # the device's password changed: the snapshot is refused
        async with adapter(sim, credentials=wrong) as onvif:
            with pytest.raises(CamgateError) as info:
                await onvif.snapshot(cam, grant(cam, "snapshot"))
    text = str(info.value) + "\n".join(r.getMessage() for r in caplog.records)
    assert "snapshot" in text
    assert not any(s in text for s in secrets)


async def test_fault_without_subcode_and_malformed_xml_are_named_plainly(make_sim: Any) -> None:
    sim = make_sim(quirks=Quirks(capabilities_500=True, no_get_services=True))
    async with adapter(sim) as onvif:
        with pytest.raises(CameraProtocolError) as info:
            await onvif.streams(sim.sources[0])
    assert "?:" not in str(info.value) and "GetCapabilities" in str(info.value)


async def test_snapshot_fallback_failure_names_both_attempts(make_sim: Any) -> None:
    sim = make_sim(quirks=Quirks(no_snapshot_uri=True, report_ports={"rtsp": 9}))
    cam = camera(sim)
    async with adapter(sim) as onvif:
        with pytest.raises(CameraProtocolError) as info:
            await onvif.snapshot(cam, grant(cam, "snapshot"))
    assert "GetSnapshotUri" in str(info.value) and "frame from the stream" in str(info.value)


async def test_media2_only_device_streams_and_snapshots(make_sim: Any) -> None:
    sim = make_sim(quirks=Quirks(media2_only=True))
    cam = camera(sim)
    async with adapter(sim) as onvif:
        device = await onvif.device(cam.source, cam.id)
        assert device.media == "media2" and "media" not in device.xaddrs
        assert [(s.token, s.width, s.codec) for s in device.streams] == [
            ("main", 640, "h264"),
            ("sub", 320, "h264"),
        ]
        packet = await _first(await onvif.open_live(cam, grant(cam, "live")))
        assert packet.data
        snap = await onvif.snapshot(cam, grant(cam, "snapshot"))
        assert decode_jpeg(snap.jpeg) == (640, 360)
    ops = sim.operations()
    assert "GetStreamUri" in ops and "GetSnapshotUri" in ops
    assert all(
        r.path.endswith("media2_service") for r in sim.requests if r.operation == "GetProfiles"
    )
