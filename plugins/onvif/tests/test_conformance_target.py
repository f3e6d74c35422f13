"""The onvif conformance target: its backdoor sees what the device saw, its faults are real."""

from __future__ import annotations

import time
from typing import Any

import anyio
import pytest
from camgate.errors import AdapterError, CameraAuthError
from camgate.plugins import PluginHost
from camgate_onvif.adapter import OnvifAdapter
from camgate_onvif.testing.simulator import OnvifSimulator
from camgate_onvif.testing.target import FAULT_SECRET, OnvifBackdoor, OnvifTarget

pytestmark = pytest.mark.anyio


def _open(sim: OnvifSimulator) -> set[int]:
    state: dict[int, str] = {}
    for _at, number, kind in sim.connections:
        state[number] = kind
    return {n for n, kind in state.items() if kind == "connect"}


async def test_the_adapter_leaves_no_idle_soap_connection(make_sim: Any) -> None:
    sim: OnvifSimulator = make_sim()
    async with OnvifAdapter.from_settings(sim.settings) as adapter:
        device = await adapter.device(sim.device_url())
        await device.stream_uri("main")
        with anyio.fail_after(10):
            # the server logs the close just after the answer (another thread): poll
            while _open(sim):  # noqa: ASYNC110
                await anyio.sleep(0.01)
        calls = [r for r in sim.requests if r.operation != "unknown"]
        # each call came on its own connection, closed with its answer
        assert len({r.connection for r in calls}) == len(calls) >= 5


async def test_backdoor_maps_requests_to_cameras(make_sim: Any) -> None:
    sim: OnvifSimulator = make_sim()
    since = time.monotonic()
    async with OnvifAdapter.from_settings(sim.settings) as adapter:
        device = await adapter.device(sim.device_url())
        await device.stream_uri("sub")
        await device.sync_point("sub")
    with anyio.fail_after(10):  # the server logs a close just after its answer (another thread)
        while _open(sim):  # noqa: ASYNC110
            await anyio.sleep(0.01)
    events = [e for e in OnvifBackdoor(sim).events() if e.at >= since]
    (uri,) = [e for e in events if e.kind == "GetStreamUri"]
    assert uri.media and uri.camera == sim.sources[1]
    (sync,) = [e for e in events if e.kind == "SetSynchronizationPoint"]
    assert not sync.media and sync.camera == sim.sources[1]  # fetches nothing (see the simulator)
    assert not any(e.media for e in events if e.kind != "GetStreamUri")
    assert {e.kind for e in events} >= {"connect", "closed", "GetProfiles"}


def test_the_plugin_provides_the_target() -> None:
    host = PluginHost()
    assert isinstance(host.conformance_target("onvif", None), OnvifTarget)
    assert host.conformance_target("onvif", {"sources": ["x"]}) is None


async def test_the_auth_fault_is_refused_without_showing_its_password() -> None:
    with OnvifTarget() as target:
        stage = target.fault("auth")
        assert stage is not None and target.fault("no-such-fault") is None
        with stage as fault:
            async with OnvifAdapter.from_settings(fault.settings) as adapter:
                with pytest.raises(CameraAuthError) as info:
                    await adapter.device(fault.source)
        assert FAULT_SECRET not in str(info.value)


async def test_the_rate_limited_fault_answers_429_and_the_adapter_reports_it() -> None:
    with OnvifTarget() as target:
        stage = target.fault("rate-limited")
        assert stage is not None
        with stage as fault:
            async with OnvifAdapter.from_settings(fault.settings) as adapter:
                with pytest.raises(AdapterError) as info:
                    await adapter.device(fault.source)
        assert not isinstance(info.value, CameraAuthError)
        assert FAULT_SECRET not in str(info.value)


def test_discovery_finds_the_targets_cameras_with_random_owners() -> None:
    with OnvifTarget() as target:
        devices = target.settings["devices"]
        assert len(devices) == 2 and all("owner_id" in d and "position" in d for d in devices)
        assert not any(d["owner_id"].startswith("owner") for d in devices)

        async def discover() -> int:
            async with OnvifAdapter.from_settings(target.settings) as adapter:
                return len(await adapter.discover())

        assert anyio.run(discover) >= 2
