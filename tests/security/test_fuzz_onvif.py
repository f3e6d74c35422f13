"""Fuzz the ONVIF adapter's parsers of untrusted input (bounded; well under a minute).

* SOAP replies — random bytes, mutated envelopes, faults with undeclared prefixes, bodies of
  the wrong namespace, huge and deep XML — served by a real HTTP server on loopback and read
  by :class:`camgate_onvif.soap.SoapClient`: only camgate errors, no hang, no secret.
* URLs a device hands back, through :func:`camgate_onvif.adapter.checked_url`: never a
  foreign host, scheme or a port the settings do not allow, never credentials.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import anyio
import pytest
from camgate.adapters import Credentials
from camgate.errors import CameraProtocolError, CamgateError
from camgate_onvif.adapter import UrlPolicy, checked_url
from camgate_onvif.replay import play_anchor
from camgate_onvif.soap import SoapClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

PASSWORD = "fuzz-secret-pw"

ENV = (
    '<?xml version="1.0"?><s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" '
    'xmlns:tds="http://www.onvif.org/ver10/device/wsdl">{header}<s:Body>{body}</s:Body>'
    "</s:Envelope>"
)
GOOD = ENV.format(
    header="",
    body="<tds:GetDeviceInformationResponse><tds:Manufacturer>m</tds:Manufacturer>"
    "<tds:Model>x</tds:Model><tds:FirmwareVersion>1</tds:FirmwareVersion>"
    "<tds:SerialNumber>s</tds:SerialNumber><tds:HardwareId>h</tds:HardwareId>"
    "</tds:GetDeviceInformationResponse>",
)


class _Reply:
    status = 200
    body = b""


def _handler() -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            return

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            body = _Reply.body
            self.send_response(_Reply.status)
            self.send_header("Content-Type", "application/soap+xml")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Handler


@pytest.fixture(scope="module")
def soap_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler())
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/onvif/device_service"
    server.shutdown()
    server.server_close()


def _call(url: str, status: int, body: bytes) -> None:
    _Reply.status, _Reply.body = status, body

    async def run() -> None:
        client = SoapClient(
            url, Credentials("admin", PASSWORD), timeout_s=5, max_body_bytes=2_000_000
        )
        try:
            await client.call("device", url, "GetDeviceInformation")
        finally:
            await client.aclose()

    message = ""
    try:
        anyio.run(run)
    except CamgateError as exc:
        message = str(exc)
    assert PASSWORD not in message


def _mutate(text: str, cuts: list[tuple[int, str]]) -> bytes:
    for at, insert in cuts:
        at %= len(text) + 1
        text = text[:at] + insert + text[at + len(insert) // 2 :]
    return text.encode("utf-8", "surrogatepass")


_FAULTS = st.sampled_from(
    [
        "<s:Fault><s:Code><s:Value>s:Sender</s:Value><s:Subcode><s:Value>ter:NotAuthorized"
        "</s:Value></s:Subcode></s:Code><s:Reason><s:Text>no</s:Text></s:Reason></s:Fault>",
        "<s:Fault><s:Code><s:Value>xx:Receiver</s:Value></s:Code></s:Fault>",
        "<s:Fault/>",
        "<s:Fault><s:Code><s:Value></s:Value><s:Subcode><s:Value>:</s:Value></s:Subcode>"
        "</s:Code></s:Fault>",
        "<tds:GetDeviceInformationResponse xmlns:tds='http://www.onvif.org/ver20/media/wsdl'/>",
        "<other:Thing xmlns:other='urn:x'><other:Manufacturer>m</other:Manufacturer></other:Thing>",
        "<tds:GetDeviceInformationResponse><tds:Manufacturer>"
        + "a" * 100_000
        + "</tds:Manufacturer></tds:GetDeviceInformationResponse>",
        "<a>" * 5000 + "</a>" * 5000,
        "<a/>" * 50_000,
        "<!DOCTYPE x [<!ENTITY e SYSTEM 'file:///etc/passwd'>]><x>&e;</x>",
    ]
)


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    status=st.sampled_from([200, 400, 500]),
    kind=st.sampled_from(["bytes", "mutated", "fault"]),
    raw=st.binary(max_size=400),
    cuts=st.lists(st.tuples(st.integers(0, 2000), st.text(max_size=8)), max_size=4),
    fault=_FAULTS,
)
def test_soap_replies_give_only_camgate_errors(
    soap_server: str, status: int, kind: str, raw: bytes, cuts: list[tuple[int, str]], fault: str
) -> None:
    if kind == "bytes":
        body = raw
    elif kind == "mutated":
        body = _mutate(GOOD, cuts)
    else:
        body = ENV.format(header="", body=fault).encode()
        if "ter:" in fault or "xx:" in fault:
            body = _mutate(body.decode(), cuts) if cuts and status == 500 else body
    _call(soap_server, status, body)


POLICY = UrlPolicy(
    "https", "203.0.113.9", 18080, rewrite_hosts=True, ports={"rtsp": {"554": 10554}}
)


@settings(max_examples=400, deadline=None)
@given(
    scheme=st.sampled_from(
        ["http", "https", "rtsp", "rtsps", "HTTP", "ftp", "file", "", "javascript"]
    ),
    userinfo=st.sampled_from(["", "u:p@", "admin@", "203.0.113.9@", "a:b@evil.example:1@"]),
    host=st.sampled_from(
        [
            "203.0.113.9",
            "192.168.1.64",
            "evil.example",
            "[::1]",
            "127.0.0.1",
            "",
            "203.0.113.9.evil",
            "xn--nxasmq6b",
            "203.0.113.9\\@evil",
            "%32%30%33.0.113.9",
        ]
    ),
    port=st.one_of(st.none(), st.integers(-5, 70000), st.sampled_from(["", "abc", "80@evil"])),
    rest=st.text(max_size=20),
    service=st.sampled_from(["soap", "snapshot", "rtsp"]),
    rewrite=st.booleans(),
)
def test_checked_url_never_leaves_the_policy(
    scheme: str, userinfo: str, host: str, port: Any, rest: str, service: str, rewrite: bool
) -> None:
    url = f"{scheme}://{userinfo}{host}" + ("" if port is None else f":{port}") + "/" + rest
    policy = POLICY if rewrite else UrlPolicy("https", "203.0.113.9", 18080, False, POLICY.ports)
    try:
        out = checked_url(url, policy, service)
    except CameraProtocolError as exc:
        message = str(exc)
    else:
        message = ""
    if message:
        assert "u:p" not in message
        return
    parts = urlsplit(out)
    assert parts.hostname == "203.0.113.9" and parts.username is None and parts.password is None
    if service == "rtsp":
        assert parts.scheme in ("rtsp", "rtsps")
        assert parts.port in (554, 322, 10554)
    else:
        assert parts.scheme == "https" and parts.port == 18080


@settings(max_examples=300, deadline=None)
@given(
    range_=st.one_of(
        st.text(max_size=60),
        st.builds(
            lambda a, b: f"clock={a}-{b}",
            st.from_regex(r"[0-9]{8}T[0-9]{6}(\.[0-9]{0,9})?Z?", fullmatch=True),
            st.text(max_size=10),
        ),
    ),
    rtp_info=st.one_of(
        st.text(max_size=60),
        st.builds(lambda n: f"url=rtsp://h/x;seq=1;rtptime={n}", st.integers(-(2**40), 2**40)),
    ),
)
def test_play_answer_dating_never_raises(range_: str, rtp_info: str) -> None:
    # PLAY's Range and RTP-Info come from the device: a date or None, never an exception.
    anchor = play_anchor({"range": range_, "rtp-info": rtp_info})
    if anchor is not None:
        assert anchor[0].tzinfo is not None and 0 <= anchor[1] < 2**32
