"""The simulator speaks ONVIF: its answers validate against the official WSDLs' schemas (the
ones onvif-zeep ships), it checks UsernameToken digests against its skewed clock, and the
plugin hands it out through its factory's ``simulator``."""

from __future__ import annotations

import copy
import functools
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from camgate.adapters import Credentials
from camgate.errors import CameraAuthError, PluginError
from camgate.plugins import PluginHost
from camgate_onvif.soap import MEDIA2_WSDL, WSDL_DIR, SoapClient
from camgate_onvif.testing.simulator import NS, OnvifSimulator, Quirks
from lxml import etree

pytestmark = pytest.mark.anyio

XS = "http://www.w3.org/2001/XMLSchema"
WSDL = "http://schemas.xmlsoap.org/wsdl/"
SCHEMA_OF = {
    "device": "devicemgmt.wsdl",
    "media": "media.wsdl",
    "search": "search.wsdl",
    "replay": "replay.wsdl",
    "media2": "media2.wsdl",
}


@functools.cache
def schema(wsdl: str) -> etree.XMLSchema:
    """The XML Schema embedded in an ONVIF WSDL, its imports (onvif.xsd, ...) resolved."""
    path = MEDIA2_WSDL if wsdl == "media2.wsdl" else WSDL_DIR / wsdl
    doc = etree.parse(str(path))
    embedded = doc.find(f"{{{WSDL}}}types/{{{XS}}}schema")
    nsmap = {k: v for k, v in {**doc.getroot().nsmap, **embedded.nsmap}.items() if k}
    root = etree.Element(embedded.tag, nsmap=nsmap, attrib=dict(embedded.attrib))
    root.extend(copy.deepcopy(child) for child in embedded)
    tree = etree.ElementTree(root)
    tree.docinfo.URL = str(WSDL_DIR / wsdl)  # relative imports resolve beside the WSDL
    return etree.XMLSchema(tree)


def body_of(content: bytes) -> etree._Element:
    envelope = etree.fromstring(content)
    return copy.deepcopy(envelope.find("s:Body", NS)[0])


async def test_every_answer_validates_against_the_onvif_schemas(make_sim: Any) -> None:
    sim: OnvifSimulator = make_sim()
    soap = SoapClient("sim", Credentials(sim.username, sim.password), timeout_s=5)
    answers: list[tuple[str, bytes]] = []

    async def keep(response: httpx.Response) -> None:
        await response.aread()
        answers.append((str(response.url), response.content))

    soap.http.event_hooks["response"].append(keep)
    dev, media = sim.device_url(), sim.device_url().replace("device_service", "media_service")
    search = dev.replace("device_service", "search_service")
    replay = dev.replace("device_service", "replay_service")
    media2 = dev.replace("device_service", "media2_service")
    square = {"Point": [{"x": 0.1, "y": 0.1}, {"x": 0.5, "y": 0.1}, {"x": 0.5, "y": 0.5}]}
    mask = {"ConfigurationToken": "vsc", "Polygon": square, "Type": "Color", "Enabled": True}
    setup = {"Stream": "RTP-Unicast", "Transport": {"Protocol": "RTSP"}}
    try:
        await soap.measure_clock(dev)
        await soap.call("device", dev, "GetServices", IncludeCapability=False)
        await soap.call("device", dev, "GetCapabilities", Category="All")
        await soap.call("device", dev, "GetDeviceInformation")
        await soap.call("media", media, "GetProfiles")
        await soap.call("media", media, "GetStreamUri", StreamSetup=setup, ProfileToken="main")
        await soap.call("media", media, "GetSnapshotUri", ProfileToken="sub")
        await soap.call("media", media, "SetSynchronizationPoint", ProfileToken="main")
        token = await soap.call("search", search, "FindRecordings", Scope={}, KeepAliveTime="PT10S")
        await soap.call(
            "search", search, "GetRecordingSearchResults", SearchToken=token, WaitTime="PT1S"
        )
        await soap.call("replay", replay, "GetReplayUri", StreamSetup=setup, RecordingToken="rec-1")
        created = await soap.call("media2", media2, "CreateMask", Mask=mask)
        masks = await soap.call("media2", media2, "GetMasks", ConfigurationToken="vsc")
        assert [m.token for m in masks] == [created]
        await soap.call("media2", media2, "DeleteMask", Token=created)
    finally:
        await soap.aclose()
    assert len(answers) == 14
    for url, content in answers:
        service = url.rsplit("/", 1)[1].removesuffix("_service")
        body = body_of(content)
        validator = schema(SCHEMA_OF[service])
        assert validator.validate(etree.ElementTree(body)), (url, validator.error_log)


async def test_quirk_answers_validate_too(make_sim: Any) -> None:
    """The NVR's scoped search and naive dates, the Media2-only device's streaming answers."""
    nvr = make_sim(
        profiles=(("ch1", 640, 360), ("ch2", 320, 180)),
        quirks=Quirks(nvr=True, naive_dates=True),
    )
    m2 = make_sim(quirks=Quirks(media2_only=True))
    answers: list[tuple[str, bytes]] = []

    async def keep(response: httpx.Response) -> None:
        await response.aread()
        answers.append((str(response.url), response.content))

    for sim in (nvr, m2):
        soap = SoapClient("sim", Credentials(sim.username, sim.password), timeout_s=5)
        soap.http.event_hooks["response"].append(keep)
        dev = sim.device_url()
        try:
            if sim is nvr:
                search = dev.replace("device_service", "search_service")
                scope = {"IncludedSources": [{"Token": "vs-ch2"}]}
                token = await soap.call(
                    "search", search, "FindRecordings", Scope=scope, KeepAliveTime="PT10S"
                )
                found = await soap.call(
                    "search",
                    search,
                    "GetRecordingSearchResults",
                    SearchToken=token,
                    WaitTime="PT1S",
                )
                assert [r.RecordingToken for r in found.RecordingInformation] == ["rec-1-ch2"]
            else:
                media2 = dev.replace("device_service", "media2_service")
                profiles = await soap.call("media2", media2, "GetProfiles", Type=["All"])
                assert [p.token for p in profiles] == ["main", "sub"]
                await soap.call(
                    "media2", media2, "GetStreamUri", Protocol="RTSP", ProfileToken="main"
                )
                await soap.call("media2", media2, "GetSnapshotUri", ProfileToken="sub")
                await soap.call("media2", media2, "SetSynchronizationPoint", ProfileToken="main")
        finally:
            await soap.aclose()
    assert len(answers) == 6
    for url, content in answers:
        service = url.rsplit("/", 1)[1].removesuffix("_service")
        validator = schema(SCHEMA_OF[service])
        assert validator.validate(etree.ElementTree(body_of(content))), (url, validator.error_log)


def test_the_schema_check_has_teeth() -> None:
    broken = etree.fromstring(
        f'<tds:GetDeviceInformationResponse xmlns:tds="{NS["tds"]}">'
        "<tds:Model>no manufacturer first</tds:Model></tds:GetDeviceInformationResponse>"
    )
    assert not schema("devicemgmt.wsdl").validate(etree.ElementTree(broken))


async def test_usernametoken_must_match_the_device_clock(make_sim: Any) -> None:
    sim: OnvifSimulator = make_sim(clock_skew_s=600.0)
    soap = SoapClient("sim", Credentials(sim.username, sim.password), timeout_s=5)
    try:
        with pytest.raises(CameraAuthError, match=r"out of range.*\+0\.0 s"):
            await soap.call("device", sim.device_url(), "GetDeviceInformation")
        offset = await soap.measure_clock(sim.device_url())
        assert abs(offset - timedelta(seconds=600)) < timedelta(seconds=2)
        info = await soap.call("device", sim.device_url(), "GetDeviceInformation")
        assert info.Manufacturer == "camgate"
    finally:
        await soap.aclose()
    refused = [r for r in sim.requests if r.operation == "GetDeviceInformation"]
    assert [r.authenticated for r in refused] == [False, True]


async def test_requests_without_a_token_are_refused_and_recorded(make_sim: Any) -> None:
    sim: OnvifSimulator = make_sim()
    soap = SoapClient("sim", None, timeout_s=5)
    try:
        with pytest.raises(CameraAuthError, match="GetProfiles refused"):
            media = sim.device_url().replace("device_service", "media_service")
            await soap.call("media", media, "GetProfiles")
    finally:
        await soap.aclose()
    last = sim.requests[-1]
    assert (last.operation, last.authenticated, last.status) == ("GetProfiles", False, 400)
    assert datetime.now(UTC) - sim.started_at < timedelta(minutes=5)


def test_the_plugin_registers_the_adapter_and_its_simulator() -> None:
    host = PluginHost()
    factory = host.adapter("onvif")
    assert factory.distribution == "camgate-onvif"
    assert factory.capabilities.to_list() == ["live", "recorded", "snapshot"]
    sim = host.simulator("onvif", 2)
    assert isinstance(sim, OnvifSimulator) and sim.count == 2
    with pytest.raises(PluginError):
        host.simulator("nope", 1)
