"""A simulated ONVIF device: a real SOAP 1.2 server on loopback, for tests, demos and conformance.

:class:`OnvifSimulator` serves ``count`` devices from one HTTP server (device ``i`` under
``/dev<i>/onvif/...``). Each device has two video profiles — ``main`` (640x360) and ``sub``
(320x180), H.264 — whose stream URIs point at a real GStreamer RTSP server
(:mod:`camgate_rtsp.testing.server`), a JPEG snapshot URL behind HTTP digest (or basic) auth, and
one recording (Profile G search and replay). Every request but ``GetSystemDateAndTime`` must carry a
WS-Security UsernameToken digest; the device's clock runs ``clock_skew_s`` away from the host's and
tokens whose ``Created`` is more than ``token_tolerance_s`` off the *device's* clock are refused
with ``ter:NotAuthorized``, as real cameras do.

:class:`Quirks` makes it behave like the firmware that breaks ONVIF clients:

``capabilities_500``        GetCapabilities answers HTTP 500 with an empty body
``no_get_services``         GetServices is not supported (``ter:ActionNotSupported``)
``lan_address``             service XAddrs, stream and snapshot URIs name a LAN address
``recording_in_extension``  recording/search/replay appear only under Capabilities/Extension
                            (and GetServices does not list them)
``soap_digest``             the SOAP endpoints demand HTTP digest before anything else
``fault_on``                these operations answer a SOAP fault (``ter:ActionNotSupported``)
``no_recordings``           the device has no recording, search or replay service
``no_snapshot_uri``         GetSnapshotUri is not supported (clients fall back to the stream)
``no_media2``               no Media2 service (so no privacy masks on the camera)
``report_ports``            the ports replies name instead of the real ones: a mapping of
                            ``soap``, ``snapshot``, ``rtsp``, ``replay`` to a port (a camera
                            behind port forwarding, or one pointing at another port of its host)
``undeclared_ter``          faults use the ``ter:`` prefix without declaring it
``ver20_body``              these operations answer with a body in the ver20 media namespace
``invalid_encoders``        GetProfiles adds profiles with a 0x0 resolution or an empty encoding
``clock``                   ``"auth"``: GetSystemDateAndTime needs a UsernameToken;
                            ``"missing"``: it is not implemented (the HTTP Date header still is)
``naive_dates``             recording search results carry dates without a time zone
``query_credentials``       the snapshot URI carries ``user=…&password=…`` in its query
``nvr``                     every profile is a channel of its own (video source ``vs-<token>``)
                            with its own recording ``rec-<device>-<token>``, pictures of the
                            profile's size; FindRecordings honours ``IncludedSources``
``ignores_scope``           (with ``nvr``) FindRecordings returns every recording whatever scope
``media2_only``             only Media2 (Profile T): no ver10 media service, GetCapabilities fails
``endless_body``            these operations (SOAP names, or ``snapshot``) answer 200 with a body
                            that never ends (up to 256 MiB; ``sent_bytes`` counts what went out)

With ``tls=True`` it serves HTTPS with a fresh self-signed certificate for 127.0.0.1, whose
file (``ca_file``) is put into ``settings`` as ``verify_tls``.

``requests`` records every request the server received (operation, path, user, whether it was
authenticated, status) in arrival order — the conformance suite's backdoor to prove that no
media request reached the device without a grant.
"""

from __future__ import annotations

import base64
import email.utils
import hashlib
import itertools
import os
import secrets
import ssl
import tempfile
import threading
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import quote
from xml.sax.saxutils import escape

import attrs
from camgate.adapters import Simulator
from camgate.testing import draw_picture_clock
from lxml import etree

from camgate_onvif.testing.recording import Recording, encode_recording
from camgate_onvif.testing.replay_server import ReplayServer, stop_serving

__all__ = [
    "MEDIA_OPERATIONS",
    "NS",
    "OnvifSimulator",
    "Quirks",
    "SimRequest",
    "jpeg_bytes",
]

NS = {
    "s": "http://www.w3.org/2003/05/soap-envelope",
    "tds": "http://www.onvif.org/ver10/device/wsdl",
    "trt": "http://www.onvif.org/ver10/media/wsdl",
    "tt": "http://www.onvif.org/ver10/schema",
    "tr2": "http://www.onvif.org/ver20/media/wsdl",
    "tse": "http://www.onvif.org/ver10/search/wsdl",
    "trp": "http://www.onvif.org/ver10/replay/wsdl",
    "trc": "http://www.onvif.org/ver10/recording/wsdl",
    "ter": "http://www.onvif.org/ver10/error",
    "wsse": "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd",
    "wsu": "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd",
}

#: Operations that start media or reveal where it is: none may arrive outside a redeemed grant.
#: (``SetSynchronizationPoint`` fetches nothing: the edge sends it when a live grant is issued,
#: before the consumer redeems it, so the keyframe is on its way — docs/media.md.)
MEDIA_OPERATIONS = frozenset(
    {
        "GetStreamUri",
        "GetSnapshotUri",
        "FindRecordings",
        "GetRecordingSearchResults",
        "GetReplayUri",
        "snapshot",
    }
)

LAN_HOST = "192.168.1.64"  # what a camera behind NAT reports; never connected to
USERNAME = "admin"
PASSWORD = "onvif:pa ss/ü"  # noqa: S105 - the simulator's own test credential
_PROFILES = (("main", 640, 360), ("sub", 320, 180))


@attrs.frozen
class Quirks:
    """Firmware behaviours the simulator can play (see the module docstring)."""

    capabilities_500: bool = False
    no_get_services: bool = False
    lan_address: bool = False
    recording_in_extension: bool = False
    soap_digest: bool = False
    fault_on: frozenset[str] = attrs.field(default=frozenset(), converter=frozenset)
    no_recordings: bool = False
    no_snapshot_uri: bool = False
    no_media2: bool = False
    report_ports: dict[str, int] = attrs.field(factory=dict, converter=dict)
    undeclared_ter: bool = False
    ver20_body: frozenset[str] = attrs.field(default=frozenset(), converter=frozenset)
    invalid_encoders: bool = False
    clock: str = attrs.field(
        default="open", validator=attrs.validators.in_(("open", "auth", "missing"))
    )
    naive_dates: bool = False
    query_credentials: bool = False
    nvr: bool = False
    ignores_scope: bool = False
    media2_only: bool = False
    endless_body: frozenset[str] = attrs.field(default=frozenset(), converter=frozenset)


@attrs.frozen
class SimRequest:
    """One request the simulator received."""

    at: float  # time.monotonic() on arrival
    method: str
    path: str
    operation: str
    user: str | None
    authenticated: bool
    status: int
    profile: str | None = None  # the profile token the request names, if any
    connection: int = 0  # the HTTP connection it came on (see ``OnvifSimulator.connections``)

    @property
    def device(self) -> int | None:
        """The device number of the path (``/dev<i>/...``), if it names one."""
        first = self.path.strip("/").split("/")[0]
        return int(first[3:]) if first.startswith("dev") and first[3:].isdigit() else None


def jpeg_bytes(width: int = 640, height: int = 360, taken_at: datetime | None = None) -> bytes:
    """A real JPEG picture (a grey gradient) of the given size, encoded with PyAV; with
    ``taken_at``, carrying that moment as the picture clock (camgate.testing)."""
    import av
    import numpy as np

    row = np.linspace(16, 235, width, dtype=np.uint8)
    plane = np.tile(row, (height, 1))
    if taken_at is not None:
        draw_picture_clock(plane, taken_at)
    frame = av.VideoFrame.from_ndarray(np.stack([plane] * 3, axis=-1), format="rgb24")
    enc: Any = av.CodecContext.create("mjpeg", "w")
    enc.width, enc.height, enc.pix_fmt = width, height, "yuvj420p"
    enc.time_base = Fraction(1, 25)
    packets = enc.encode(frame.reformat(format="yuvj420p")) + enc.encode(None)
    return b"".join(bytes(p) for p in packets)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.strip().replace("Z", "+00:00"))


class _Fault(Exception):
    def __init__(self, code: str, subcode: str, reason: str, http: int = 400) -> None:
        super().__init__(reason)
        self.code, self.subcode, self.reason, self.http = code, subcode, reason, http


def _envelope(body: str) -> bytes:
    ns = " ".join(f'xmlns:{k}="{v}"' for k, v in NS.items())
    head = '<?xml version="1.0" encoding="UTF-8"?>\n'
    return f"{head}<s:Envelope {ns}><s:Body>{body}</s:Body></s:Envelope>".encode()


def _fault_xml(fault: _Fault, *, undeclared_ter: bool = False) -> bytes:
    subcode = (
        f"<s:Subcode><s:Value>ter:{fault.subcode}</s:Value></s:Subcode>" if fault.subcode else ""
    )
    text = _envelope(
        f"<s:Fault><s:Code><s:Value>s:{fault.code}</s:Value>{subcode}</s:Code>"
        f'<s:Reason><s:Text xml:lang="en">{escape(fault.reason)}</s:Text></s:Reason>'
        "</s:Fault>"
    )
    if undeclared_ter:
        text = text.replace(f' xmlns:ter="{NS["ter"]}"'.encode(), b"")
    return text


class OnvifSimulator(Simulator):
    """``count`` simulated ONVIF devices on one loopback HTTP server, streams from GStreamer.

    Entering starts the RTSP test server and the SOAP server; leaving stops both. ``sources``
    lists one camera per device and profile (``<device URL>#profile=<token>``); ``settings`` are
    the ``onvif`` adapter settings that reach them, credentials included. ``gop_frames`` sets the
    encoders' keyframe interval (30 fps).
    """

    def __init__(
        self,
        count: int = 1,
        *,
        quirks: Quirks | None = None,
        clock_skew_s: float = 0.0,
        token_tolerance_s: float = 5.0,
        snapshot_auth: str = "digest",
        gop_frames: int = 30,
        profiles: Sequence[tuple[str, int, int]] = _PROFILES,
        rtsp_server: Any = None,
        tls: bool = False,
        recording_s: int = 30,
        picture_clock: bool = False,
        masks_in_picture: bool = False,
        replay_session_timeout_s: int = 60,
    ) -> None:
        if count < 1:
            raise ValueError("a simulator serves at least one device")
        if masks_in_picture and rtsp_server is not None:
            raise ValueError("masks_in_picture needs the simulator's own RTSP server")
        if snapshot_auth not in ("digest", "basic"):
            raise ValueError("snapshot_auth must be 'digest' or 'basic'")
        self.count = count
        self.quirks = quirks or Quirks()
        self.clock_skew_s = clock_skew_s
        self.token_tolerance_s = token_tolerance_s
        self.snapshot_auth = snapshot_auth
        self.gop_frames = gop_frames
        self.profiles = tuple(profiles)
        self.username, self.password = USERNAME, PASSWORD
        self.realm = "camgate-onvif-sim"
        self.requests: list[SimRequest] = []
        #: Every HTTP connection's ``connect`` and ``closed``: (time.monotonic(), number, kind)
        self.connections: list[tuple[float, int, str]] = []
        self.sync_points: list[tuple[float, str]] = []
        self.sources: list[str] = []
        self.settings: dict[str, Any] = {}
        self.started_at = datetime.now(UTC)
        self._lock = threading.Lock()
        self._recording_lock = threading.Lock()
        self._nonces: set[str] = set()
        self._searches: dict[str, set[str]] = {}
        #: Bytes sent of each endless body (``endless_body`` quirk), in order.
        self.sent_bytes: list[int] = []
        #: Media2 privacy masks per device: token -> (configuration token, points, type, enabled)
        self.masks: dict[int, dict[str, tuple[str, list[tuple[float, float]], str, bool]]] = {}
        self._colors: dict[tuple[int, str], tuple[int, int, int]] = {}
        self._mask_ids = itertools.count(1)
        self._jpeg: bytes | None = None
        self._http: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._rtsp: Any = rtsp_server
        self._owns_rtsp = rtsp_server is None
        self.tls = tls
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self.ca_file: str | None = None
        #: Recorded footage every device replays: ``recording_s`` seconds ending when the
        #: simulator was built (on the device's clock), frames that show their own index.
        self.recording_s = recording_s
        #: Recorded pictures and snapshots carry their capture time (camgate.testing's
        #: picture clock); the live RTSP stream does not.
        self.picture_clock = picture_clock
        self.masks_in_picture = masks_in_picture
        self.replay_session_timeout_s = replay_session_timeout_s
        self.recording_start = self.started_at + timedelta(seconds=clock_skew_s - recording_s)
        self._recording: Recording | None = None
        self._replay: ReplayServer | None = None

    # ------------------------------------------------------------------ lifecycle

    def __enter__(self) -> OnvifSimulator:
        self.start()
        return self

    def start(self) -> None:
        """Start the RTSP test server and the SOAP server (returns once both listen)."""
        from camgate_rtsp.testing.server import RtspTestServer

        if self._owns_rtsp:
            self._rtsp = RtspTestServer(
                self.mounts(
                    self.count, self.profiles, self.gop_frames, maskable=self.masks_in_picture
                )
            )
            self._rtsp.start()
        try:
            self._jpeg = jpeg_bytes()
            handler = _handler_class(self)
            self._http = ThreadingHTTPServer(("127.0.0.1", 0), handler)
            self._http.daemon_threads = True
            if self.tls:
                self._wrap_tls(self._http)
            self._thread = threading.Thread(
                target=self._http.serve_forever, name="onvif-sim", daemon=True
            )
            self._thread.start()
            self._replay = ReplayServer(
                self._recording_at,
                check_auth=self.check_http_digest,
                challenge=lambda: self.challenge("digest"),
                advertised_host=self._host,
                session_timeout_s=self.replay_session_timeout_s,
            )
            self._replay.start()
        except BaseException:
            self.close()
            raise
        self.sources = [
            f"{self.device_url(d)}#profile={name}"
            for d in range(1, self.count + 1)
            for name, _w, _h in self.profiles
        ]
        self.settings = {
            "credentials": {
                self.device_url(d): {"username": self.username, "password": self.password}
                for d in range(1, self.count + 1)
            },
            # The RTSP ports the stream and replay URIs name (not the standard 554).
            "ports": {
                "rtsp": {str(p): p for p in (self._rtsp.port, self.replay.port)},
            },
        }
        if self.ca_file is not None:
            self.settings["verify_tls"] = self.ca_file

    def _wrap_tls(self, server: ThreadingHTTPServer) -> None:
        """Serve HTTPS with a fresh self-signed certificate for 127.0.0.1 (``ca_file``)."""
        import ipaddress

        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "camgate onvif simulator")])
        now = datetime.now(UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=1))
            .add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False,
            )
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256())
        )
        self._tmp = tempfile.TemporaryDirectory(prefix="camgate-onvif-sim-")
        cert_file = os.path.join(self._tmp.name, "cert.pem")
        key_file = os.path.join(self._tmp.name, "key.pem")
        with open(cert_file, "wb") as fh:
            fh.write(cert.public_bytes(serialization.Encoding.PEM))
        with open(key_file, "wb") as fh:
            fh.write(
                key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                )
            )
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert_file, key_file)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        self.ca_file = cert_file

    def close(self) -> None:
        """Stop the SOAP server and the RTSP server. Idempotent."""
        stop_serving(self._http, self._thread)
        self._http = self._thread = None
        if self._replay is not None:
            self._replay.close()
            self._replay = None
        if self._rtsp is not None and self._owns_rtsp:
            self._rtsp.stop()
            self._rtsp = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    @staticmethod
    def mounts(
        count: int = 1,
        profiles: Sequence[tuple[str, int, int]] = _PROFILES,
        gop_frames: int = 30,
        *,
        maskable: bool = False,
    ) -> list[Any]:
        """The RTSP test server mounts a simulator of ``count`` devices streams from (give an
        :class:`~camgate_rtsp.testing.server.RtspTestServer` of them as ``rtsp_server`` to share
        one server between simulators); ``maskable`` mounts draw privacy masks."""
        from camgate_rtsp.testing.server import Mount

        return [
            Mount(f"/dev{d}/{name}", width=w, height=h, gop_frames=gop_frames, maskable=maskable)
            for d in range(1, count + 1)
            for name, w, h in profiles
        ]

    # ------------------------------------------------------------------ addresses

    @property
    def port(self) -> int:
        """The SOAP server's TCP port."""
        if self._http is None:
            raise RuntimeError("the simulator is not running")
        return int(self._http.server_address[1])

    @property
    def rtsp(self) -> Any:
        """The :class:`camgate_rtsp.testing.server.RtspTestServer` behind the stream URIs."""
        return self._rtsp

    def device_url(self, device: int = 1) -> str:
        """The device service address of device ``device`` (what an owner configures)."""
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self.port}/dev{device}/onvif/device_service"

    def _host(self) -> str:
        return LAN_HOST if self.quirks.lan_address else "127.0.0.1"

    def _reported(self, kind: str, port: int) -> int:
        """The port replies name for ``kind`` (``report_ports`` quirk, else the real one)."""
        return self.quirks.report_ports.get(kind, port)

    def _xaddr(self, device: int, service: str) -> str:
        scheme = "https" if self.tls else "http"
        port = self._reported("soap", self.port)
        return f"{scheme}://{self._host()}:{port}/dev{device}/onvif/{service}_service"

    def device_now(self) -> datetime:
        """The device's clock: the host's clock plus ``clock_skew_s``."""
        return datetime.now(UTC) + timedelta(seconds=self.clock_skew_s)

    def operations(self, *, authenticated_only: bool = False) -> list[str]:
        """The operations received so far, in order."""
        with self._lock:
            return [r.operation for r in self.requests if r.authenticated or not authenticated_only]

    def media_requests(self) -> list[SimRequest]:
        """Requests for media (stream/snapshot/replay URIs, sync points, snapshots, searches)."""
        with self._lock:
            return [r for r in self.requests if r.operation in MEDIA_OPERATIONS]

    def _record(self, req: SimRequest) -> None:
        with self._lock:
            self.requests.append(req)

    def _connection(self, kind: str, number: int | None = None) -> int:
        """Log an HTTP connection's ``connect`` (a new number) or ``closed``."""
        with self._lock:
            if number is None:
                number = len([c for c in self.connections if c[2] == "connect"]) + 1
            self.connections.append((time.monotonic(), number, kind))
            return number

    # ------------------------------------------------------------------ security

    def check_token(self, header: etree._Element | None) -> str:
        """Verify the WS-Security UsernameToken digest; return the user or raise a fault."""
        if header is None:
            raise _Fault("Sender", "NotAuthorized", "Sender not Authorized", 400)
        token = header.find("wsse:Security/wsse:UsernameToken", NS)
        if token is None:
            raise _Fault("Sender", "NotAuthorized", "Sender not Authorized", 400)
        user = token.findtext("wsse:Username", namespaces=NS) or ""
        digest = token.findtext("wsse:Password", namespaces=NS) or ""
        nonce = token.findtext("wsse:Nonce", namespaces=NS) or ""
        created = token.findtext("wsu:Created", namespaces=NS) or ""
        try:
            raw_nonce = base64.b64decode(nonce, validate=True)
            when = _parse_iso(created)
        except ValueError:
            raise _Fault("Sender", "NotAuthorized", "malformed UsernameToken") from None
        expected = base64.b64encode(
            hashlib.sha1(raw_nonce + created.encode() + self.password.encode()).digest()  # noqa: S324
        ).decode()
        if user != self.username or not secrets.compare_digest(digest, expected):
            raise _Fault("Sender", "NotAuthorized", "The action requested requires authorization")
        if abs((when - self.device_now()).total_seconds()) > self.token_tolerance_s:
            raise _Fault("Sender", "NotAuthorized", "UsernameToken Created time out of range")
        with self._lock:
            if nonce in self._nonces:
                raise _Fault("Sender", "NotAuthorized", "UsernameToken nonce replayed")
            self._nonces.add(nonce)
        return user

    def check_http_digest(self, method: str, header: str | None) -> bool:
        """True when ``header`` is a valid HTTP digest (RFC 7616, MD5, qop=auth) answer."""
        if not header or not header.startswith("Digest "):
            return False
        fields: dict[str, str] = {}
        for part in _split_auth(header[7:]):
            key, _, value = part.partition("=")
            fields[key.strip()] = value.strip().strip('"')
        try:
            ha1 = _md5(f"{fields['username']}:{self.realm}:{self.password}")
            ha2 = _md5(f"{method}:{fields['uri']}")
            if "qop" in fields:
                want = _md5(
                    f"{ha1}:{fields['nonce']}:{fields['nc']}:{fields['cnonce']}:"
                    f"{fields['qop']}:{ha2}"
                )
            else:
                want = _md5(f"{ha1}:{fields['nonce']}:{ha2}")
        except KeyError:
            return False
        return fields["username"] == self.username and secrets.compare_digest(
            want, fields.get("response", "")
        )

    def check_http_basic(self, header: str | None) -> bool:
        """True when ``header`` is HTTP basic auth with the device's credentials."""
        if not header or not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except ValueError:
            return False
        return user == self.username and secrets.compare_digest(
            password.encode(), self.password.encode()
        )

    def challenge(self, kind: str) -> str:
        """A WWW-Authenticate header value for ``kind`` (``digest`` or ``basic``)."""
        if kind == "basic":
            return f'Basic realm="{self.realm}"'
        nonce = secrets.token_hex(16)
        return f'Digest realm="{self.realm}", nonce="{nonce}", qop="auth", algorithm=MD5'

    # ------------------------------------------------------------------ operations

    def answer(self, device: int, service: str, op: str, body: etree._Element) -> str:
        """The response body for one operation (raises _Fault for faults)."""
        q = self.quirks
        if op in q.fault_on:
            raise _Fault("Receiver", "ActionNotSupported", f"{op} is not supported by this device")
        if q.media2_only and service == "media" and op != "GetServices":
            raise _Fault("Receiver", "ActionNotSupported", "no ver10 media service", 400)
        if q.media2_only and service == "media2" and op in _MEDIA2_OPS:
            return str(_MEDIA2_OPS[op](self, device, body))
        handler = getattr(self, f"_op_{op}", None)
        if handler is None:
            raise _Fault("Receiver", "ActionNotSupported", f"{op} is not implemented")
        text = str(handler(device, body))
        if op in q.ver20_body:
            text = text.replace("<trt:", "<tr2:").replace("</trt:", "</tr2:")
        return text

    def _op_GetSystemDateAndTime(self, device: int, body: etree._Element) -> str:
        if self.quirks.clock == "missing":
            raise _Fault("Receiver", "ActionNotSupported", "GetSystemDateAndTime not supported")
        now = self.device_now()
        return (
            "<tds:GetSystemDateAndTimeResponse><tds:SystemDateAndTime>"
            "<tt:DateTimeType>NTP</tt:DateTimeType><tt:DaylightSavings>false</tt:DaylightSavings>"
            "<tt:TimeZone><tt:TZ>UTC0</tt:TZ></tt:TimeZone><tt:UTCDateTime>"
            f"<tt:Time><tt:Hour>{now.hour}</tt:Hour><tt:Minute>{now.minute}</tt:Minute>"
            f"<tt:Second>{now.second}</tt:Second></tt:Time>"
            f"<tt:Date><tt:Year>{now.year}</tt:Year><tt:Month>{now.month}</tt:Month>"
            f"<tt:Day>{now.day}</tt:Day></tt:Date>"
            "</tt:UTCDateTime></tds:SystemDateAndTime></tds:GetSystemDateAndTimeResponse>"
        )

    def _op_GetDeviceInformation(self, device: int, body: etree._Element) -> str:
        return (
            "<tds:GetDeviceInformationResponse><tds:Manufacturer>camgate</tds:Manufacturer>"
            "<tds:Model>ONVIF simulator</tds:Model><tds:FirmwareVersion>1.0</tds:FirmwareVersion>"
            f"<tds:SerialNumber>SIM-{device:04d}</tds:SerialNumber>"
            "<tds:HardwareId>loopback</tds:HardwareId></tds:GetDeviceInformationResponse>"
        )

    def _services(self) -> list[tuple[str, str]]:
        if self.quirks.media2_only:
            return [("device", NS["tds"]), ("media2", NS["tr2"])]
        out = [("device", NS["tds"]), ("media", NS["trt"])]
        if not self.quirks.no_media2:
            out.append(("media2", NS["tr2"]))
        if not (self.quirks.no_recordings or self.quirks.recording_in_extension):
            out += [("recording", NS["trc"]), ("search", NS["tse"]), ("replay", NS["trp"])]
        return out

    def _op_GetServices(self, device: int, body: etree._Element) -> str:
        if self.quirks.no_get_services or self.quirks.recording_in_extension:
            raise _Fault("Receiver", "ActionNotSupported", "GetServices is not supported")
        items = "".join(
            f"<tds:Service><tds:Namespace>{ns}</tds:Namespace>"
            f"<tds:XAddr>{self._xaddr(device, name)}</tds:XAddr>"
            "<tds:Version><tt:Major>2</tt:Major><tt:Minor>0</tt:Minor></tds:Version>"
            "</tds:Service>"
            for name, ns in self._services()
        )
        return f"<tds:GetServicesResponse>{items}</tds:GetServicesResponse>"

    def _op_GetCapabilities(self, device: int, body: etree._Element) -> str:
        if self.quirks.capabilities_500:
            raise _Fault("Receiver", "", "", 500)
        if self.quirks.media2_only:
            raise _Fault("Receiver", "ActionNotSupported", "use GetServices (Media2)")
        ext = ""
        if not self.quirks.no_recordings:
            ext = (
                "<tt:Extension>"
                f"<tt:Recording><tt:XAddr>{self._xaddr(device, 'recording')}</tt:XAddr>"
                "<tt:ReceiverSource>false</tt:ReceiverSource>"
                "<tt:MediaProfileSource>true</tt:MediaProfileSource>"
                "<tt:DynamicRecordings>false</tt:DynamicRecordings>"
                "<tt:DynamicTracks>false</tt:DynamicTracks>"
                "<tt:MaxStringLength>64</tt:MaxStringLength></tt:Recording>"
                f"<tt:Search><tt:XAddr>{self._xaddr(device, 'search')}</tt:XAddr>"
                "<tt:MetadataSearch>false</tt:MetadataSearch></tt:Search>"
                f"<tt:Replay><tt:XAddr>{self._xaddr(device, 'replay')}</tt:XAddr></tt:Replay>"
                "</tt:Extension>"
            )
        return (
            "<tds:GetCapabilitiesResponse><tds:Capabilities>"
            f"<tt:Device><tt:XAddr>{self._xaddr(device, 'device')}</tt:XAddr></tt:Device>"
            f"<tt:Media><tt:XAddr>{self._xaddr(device, 'media')}</tt:XAddr>"
            "<tt:StreamingCapabilities><tt:RTPMulticast>false</tt:RTPMulticast>"
            "<tt:RTP_TCP>true</tt:RTP_TCP><tt:RTP_RTSP_TCP>true</tt:RTP_RTSP_TCP>"
            "</tt:StreamingCapabilities></tt:Media>"
            f"{ext}</tds:Capabilities></tds:GetCapabilitiesResponse>"
        )

    def source_token(self, profile: str) -> str:
        """The video source token of ``profile`` (``vs-<token>`` on an NVR, else ``vs1``)."""
        return f"vs-{profile}" if self.quirks.nvr else "vs1"

    def _op_GetProfiles(self, device: int, body: etree._Element) -> str:
        shapes = [(name, w, h, "H264") for name, w, h in self.profiles]
        if self.quirks.invalid_encoders:
            shapes += [("bad-size", 0, 0, "H264"), ("bad-codec", 640, 360, "")]
        profiles = "".join(
            f'<trt:Profiles token="{name}" fixed="true"><tt:Name>{name}</tt:Name>'
            f'<tt:VideoSourceConfiguration token="vsc"><tt:Name>vsc</tt:Name>'
            f"<tt:UseCount>2</tt:UseCount><tt:SourceToken>{self.source_token(name)}"
            "</tt:SourceToken>"
            '<tt:Bounds x="0" y="0" width="640" height="360"/></tt:VideoSourceConfiguration>'
            f'<tt:VideoEncoderConfiguration token="enc-{name}"><tt:Name>enc-{name}</tt:Name>'
            "<tt:UseCount>1</tt:UseCount>"
            + f"<tt:Encoding>{codec}</tt:Encoding>"
            + f"<tt:Resolution><tt:Width>{w}</tt:Width><tt:Height>{h}</tt:Height></tt:Resolution>"
            "<tt:Quality>5</tt:Quality><tt:RateControl><tt:FrameRateLimit>30</tt:FrameRateLimit>"
            "<tt:EncodingInterval>1</tt:EncodingInterval><tt:BitrateLimit>1000</tt:BitrateLimit>"
            f"</tt:RateControl><tt:H264><tt:GovLength>{self.gop_frames}</tt:GovLength>"
            "<tt:H264Profile>Main</tt:H264Profile></tt:H264><tt:Multicast><tt:Address>"
            "<tt:Type>IPv4</tt:Type><tt:IPv4Address>0.0.0.0</tt:IPv4Address></tt:Address>"
            "<tt:Port>0</tt:Port><tt:TTL>1</tt:TTL><tt:AutoStart>false</tt:AutoStart>"
            "</tt:Multicast><tt:SessionTimeout>PT60S</tt:SessionTimeout>"
            "</tt:VideoEncoderConfiguration></trt:Profiles>"
            for name, w, h, codec in shapes
        )
        return f"<trt:GetProfilesResponse>{profiles}</trt:GetProfilesResponse>"

    def _profile(self, body: etree._Element) -> str:
        token = (body.findtext("trt:ProfileToken", namespaces=NS) or "").strip()
        if token not in {name for name, _w, _h in self.profiles}:
            raise _Fault("Sender", "NoProfile", f"no profile {token!r}")
        return token

    def _media_uri(self, tag: str, uri: str) -> str:
        return (
            f"<trt:{tag}><trt:MediaUri><tt:Uri>{escape(uri)}</tt:Uri>"
            "<tt:InvalidAfterConnect>false</tt:InvalidAfterConnect>"
            "<tt:InvalidAfterReboot>false</tt:InvalidAfterReboot>"
            f"<tt:Timeout>PT0S</tt:Timeout></trt:MediaUri></trt:{tag}>"
        )

    def _rtsp_uri(self, device: int, profile: str) -> str:
        port = self._reported("rtsp", self._rtsp.port)
        return f"rtsp://{self._host()}:{port}/dev{device}/{profile}"

    def _op_GetStreamUri(self, device: int, body: etree._Element) -> str:
        profile = self._profile(body)
        return self._media_uri("GetStreamUriResponse", self._rtsp_uri(device, profile))

    def _op_GetSnapshotUri(self, device: int, body: etree._Element) -> str:
        if self.quirks.no_snapshot_uri:
            raise _Fault("Receiver", "ActionNotSupported", "GetSnapshotUri is not supported")
        profile = self._profile(body)
        return self._media_uri("GetSnapshotUriResponse", self._snapshot_uri(device, profile))

    def _snapshot_uri(self, device: int, profile: str) -> str:
        scheme = "https" if self.tls else "http"
        port = self._reported("snapshot", self.port)
        uri = f"{scheme}://{self._host()}:{port}/dev{device}/snapshot/{profile}.jpg"
        if self.quirks.query_credentials:
            uri += f"?user={quote(self.username)}&password={quote(self.password, safe='')}"
        return uri

    def _op_SetSynchronizationPoint(self, device: int, body: etree._Element) -> str:
        profile = self._profile(body)
        path = f"/dev{device}/{profile}"
        self._rtsp.force_keyframe(path)
        with self._lock:
            self.sync_points.append((time.monotonic(), path))
        return "<trt:SetSynchronizationPointResponse/>"

    def _op_GetMasks(self, device: int, body: etree._Element) -> str:
        self._need_media2()
        config = body.findtext("tr2:ConfigurationToken", namespaces=NS)
        with self._lock:
            masks = dict(self.masks.get(device, {}))
        items = "".join(
            f'<tr2:Masks token="{token}"><tr2:ConfigurationToken>{cfg}</tr2:ConfigurationToken>'
            "<tr2:Polygon>"
            + "".join(f'<tt:Point x="{x:g}" y="{y:g}"/>' for x, y in points)
            + f"</tr2:Polygon><tr2:Type>{escape(kind)}</tr2:Type>"
            f"<tr2:Enabled>{'true' if enabled else 'false'}</tr2:Enabled></tr2:Masks>"
            for token, (cfg, points, kind, enabled) in masks.items()
            if config is None or cfg == config
        )
        return f"<tr2:GetMasksResponse>{items}</tr2:GetMasksResponse>"

    def _op_CreateMask(self, device: int, body: etree._Element) -> str:
        self._need_media2()
        mask = body.find("tr2:Mask", NS)
        if mask is None:
            raise _Fault("Sender", "InvalidArgVal", "CreateMask needs a Mask")
        points = [
            (float(p.get("x", "nan")), float(p.get("y", "nan")))
            for p in mask.findall("tr2:Polygon/tt:Point", NS)
        ]
        if len(points) < 3 or not all(-1 <= v <= 1 for pt in points for v in pt):
            raise _Fault("Sender", "InvalidArgVal", "a mask needs 3+ points inside -1..1")
        cfg = mask.findtext("tr2:ConfigurationToken", namespaces=NS) or ""
        kind = mask.findtext("tr2:Type", namespaces=NS) or "Color"
        enabled = (mask.findtext("tr2:Enabled", namespaces=NS) or "true").strip() == "true"
        with self._lock:
            masks = self.masks.setdefault(device, {})
            token = f"mask{next(self._mask_ids)}"
            masks[token] = (cfg, points, kind, enabled)
            self._colors[(device, token)] = _mask_rgb(mask)
        self._draw_masks(device)
        return f"<tr2:CreateMaskResponse><tr2:Token>{token}</tr2:Token></tr2:CreateMaskResponse>"

    def _op_DeleteMask(self, device: int, body: etree._Element) -> str:
        self._need_media2()
        token = body.findtext("tr2:Token", namespaces=NS) or ""
        with self._lock:
            if self.masks.get(device, {}).pop(token, None) is None:
                raise _Fault("Sender", "InvalidArgVal", f"no mask {token!r}")
        self._draw_masks(device)
        return "<tr2:DeleteMaskResponse/>"

    def _draw_masks(self, device: int) -> None:
        """Draw the device's enabled Color masks into its pictures (``masks_in_picture``), as a
        camera does: every profile of the device shows them from the next frame on."""
        if not self.masks_in_picture:
            return
        with self._lock:
            shapes = [
                ([((x + 1) / 2, (1 - y) / 2) for x, y in points], self._colors[(device, token)])
                for token, (_cfg, points, kind, enabled) in self.masks.get(device, {}).items()
                if enabled and kind == "Color"
            ]
        for name, _w, _h in self.profiles:
            self._rtsp.set_masks(f"/dev{device}/{name}", shapes)

    def _need_media2(self) -> None:
        if self.quirks.no_media2:
            raise _Fault("Receiver", "ActionNotSupported", "no Media2 service")

    @property
    def recording(self) -> Recording:
        """The recorded footage (encoded on first use, ~1 s, then cached per process)."""
        with self._recording_lock:
            if self._recording is None:
                self._recording = encode_recording(
                    self.recording_start, self.recording_s, picture_clock=self.picture_clock
                )
            return self._recording

    def recording_of(self, profile: str) -> Recording:
        """The recording of channel ``profile`` on an NVR (pictures of the profile's size)."""
        w, h = next((w, h) for name, w, h in self.profiles if name == profile)
        return encode_recording(
            self.recording_start,
            self.recording_s,
            width=w,
            height=h,
            picture_clock=self.picture_clock,
        )

    def _recording_at(self, path: str) -> Recording | None:
        parts = path.strip("/").split("/")
        if not (
            parts[0].startswith("dev")
            and parts[0][3:].isdigit()
            and 1 <= int(parts[0][3:]) <= self.count
        ):
            return None
        if len(parts) == 2 and parts[1] == "recording" and not self.quirks.nvr:
            return self.recording
        names = {name for name, _w, _h in self.profiles}
        if len(parts) == 3 and parts[1] == "recording" and self.quirks.nvr and parts[2] in names:
            return self.recording_of(parts[2])
        return None

    @property
    def replay(self) -> ReplayServer:
        """The RTSP replay server behind GetReplayUri (its ``requests`` list what it got)."""
        if self._replay is None:
            raise RuntimeError("the simulator is not running")
        return self._replay

    def _recording_window(self) -> tuple[datetime, datetime]:
        start = self.recording_start
        return start, start + timedelta(seconds=self.recording_s)

    def _op_FindRecordings(self, device: int, body: etree._Element) -> str:
        token = f"search-{device}-{secrets.token_hex(4)}"
        sources = {
            (e.text or "").strip()
            for e in body.findall("tse:Scope/tt:IncludedSources/tt:Token", NS)
        }
        with self._lock:
            self._searches[token] = sources
        return (
            "<tse:FindRecordingsResponse>"
            f"<tse:SearchToken>{token}</tse:SearchToken>"
            "</tse:FindRecordingsResponse>"
        )

    def _recordings(self, device: int, search: str) -> list[tuple[str, str, str]]:
        """(recording token, source id, name) of the recordings a search finds."""
        if not self.quirks.nvr:
            return [(f"rec-{device}", f"http://127.0.0.1:{self.port}/dev{device}", "main")]
        with self._lock:
            sources = self._searches.get(search, set())
        found = [
            (f"rec-{device}-{name}", self.source_token(name), name)
            for name, _w, _h in self.profiles
        ]
        if sources and not self.quirks.ignores_scope:
            found = [f for f in found if f[1] in sources]
        return found

    def _op_GetRecordingSearchResults(self, device: int, body: etree._Element) -> str:
        start, end = self._recording_window()
        search = (body.findtext("tse:SearchToken", namespaces=NS) or "").strip()
        iso = (lambda m: _iso(m)[:-1]) if self.quirks.naive_dates else _iso
        items = "".join(
            "<tt:RecordingInformation>"
            f"<tt:RecordingToken>{token}</tt:RecordingToken><tt:Source>"
            f"<tt:SourceId>{escape(source)}</tt:SourceId><tt:Name>{name}</tt:Name>"
            "<tt:Location>loopback</tt:Location><tt:Description>continuous</tt:Description>"
            f"<tt:Address>{escape(source)}</tt:Address></tt:Source>"
            f"<tt:EarliestRecording>{iso(start)}</tt:EarliestRecording>"
            f"<tt:LatestRecording>{iso(end)}</tt:LatestRecording>"
            "<tt:Content>continuous</tt:Content><tt:Track><tt:TrackToken>video</tt:TrackToken>"
            "<tt:TrackType>Video</tt:TrackType><tt:Description>main</tt:Description>"
            f"<tt:DataFrom>{iso(start)}</tt:DataFrom><tt:DataTo>{iso(end)}</tt:DataTo>"
            "</tt:Track><tt:RecordingStatus>Recording</tt:RecordingStatus>"
            "</tt:RecordingInformation>"
            for token, source, name in self._recordings(device, search)
        )
        return (
            "<tse:GetRecordingSearchResultsResponse><tse:ResultList>"
            f"<tt:SearchState>Completed</tt:SearchState>{items}"
            "</tse:ResultList></tse:GetRecordingSearchResultsResponse>"
        )

    def _op_GetReplayUri(self, device: int, body: etree._Element) -> str:
        token = (body.findtext("trp:RecordingToken", namespaces=NS) or "").strip()
        port = self._reported("replay", self.replay.port)
        base = f"rtsp://{self._host()}:{port}/dev{device}/recording"
        if self.quirks.nvr and token.startswith(f"rec-{device}-"):
            uri = f"{base}/{token.removeprefix(f'rec-{device}-')}"
        elif token == f"rec-{device}" and not self.quirks.nvr:
            uri = base
        else:
            raise _Fault("Sender", "InvalidArgVal", f"no recording {token!r}")
        return (
            f"<trp:GetReplayUriResponse><trp:Uri>{escape(uri)}</trp:Uri></trp:GetReplayUriResponse>"
        )


def _m2_token(sim: OnvifSimulator, body: etree._Element) -> str:
    token = (body.findtext("tr2:ProfileToken", namespaces=NS) or "").strip()
    if token not in {name for name, _w, _h in sim.profiles}:
        raise _Fault("Sender", "NoProfile", f"no profile {token!r}")
    return token


def _m2_profiles(sim: OnvifSimulator, device: int, body: etree._Element) -> str:
    items = "".join(
        f'<tr2:Profiles token="{name}" fixed="true"><tr2:Name>{name}</tr2:Name>'
        "<tr2:Configurations>"
        f'<tr2:VideoSource token="vsc"><tt:Name>vsc</tt:Name><tt:UseCount>2</tt:UseCount>'
        f"<tt:SourceToken>{sim.source_token(name)}</tt:SourceToken>"
        '<tt:Bounds x="0" y="0" width="640" height="360"/></tr2:VideoSource>'
        f'<tr2:VideoEncoder token="enc-{name}" GovLength="{sim.gop_frames}" Profile="Main">'
        f"<tt:Name>enc-{name}</tt:Name><tt:UseCount>1</tt:UseCount>"
        "<tt:Encoding>H264</tt:Encoding>"
        f"<tt:Resolution><tt:Width>{w}</tt:Width><tt:Height>{h}</tt:Height></tt:Resolution>"
        "<tt:Quality>5</tt:Quality></tr2:VideoEncoder>"
        "</tr2:Configurations></tr2:Profiles>"
        for name, w, h in sim.profiles
    )
    return f"<tr2:GetProfilesResponse>{items}</tr2:GetProfilesResponse>"


def _m2_stream(sim: OnvifSimulator, device: int, body: etree._Element) -> str:
    uri = sim._rtsp_uri(device, _m2_token(sim, body))
    return f"<tr2:GetStreamUriResponse><tr2:Uri>{escape(uri)}</tr2:Uri></tr2:GetStreamUriResponse>"


def _m2_snapshot(sim: OnvifSimulator, device: int, body: etree._Element) -> str:
    uri = sim._snapshot_uri(device, _m2_token(sim, body))
    return (
        f"<tr2:GetSnapshotUriResponse><tr2:Uri>{escape(uri)}</tr2:Uri></tr2:GetSnapshotUriResponse>"
    )


def _m2_sync(sim: OnvifSimulator, device: int, body: etree._Element) -> str:
    path = f"/dev{device}/{_m2_token(sim, body)}"
    sim._rtsp.force_keyframe(path)
    with sim._lock:
        sim.sync_points.append((time.monotonic(), path))
    return "<tr2:SetSynchronizationPointResponse/>"


#: Media2 operations a ``media2_only`` device answers (others: the masks' handlers).
_MEDIA2_OPS: dict[str, Any] = {
    "GetProfiles": _m2_profiles,
    "GetStreamUri": _m2_stream,
    "GetSnapshotUri": _m2_snapshot,
    "SetSynchronizationPoint": _m2_sync,
}


def _mask_rgb(mask: etree._Element) -> tuple[int, int, int]:
    """The RGB fill of a Media2 mask's ``Color`` (YCbCr, BT.601 studio range); black without."""
    color = mask.find("tr2:Color", NS)
    if color is None:
        return (0, 0, 0)
    try:
        y, cb, cr = (float(color.get(k, d)) for k, d in (("X", "16"), ("Y", "128"), ("Z", "128")))
    except ValueError:
        return (0, 0, 0)
    luma = 1.164 * (y - 16)
    rgb = (
        luma + 1.596 * (cr - 128),
        luma - 0.392 * (cb - 128) - 0.813 * (cr - 128),
        luma + 2.017 * (cb - 128),
    )
    r, g, b = (max(0, min(255, round(c))) for c in rgb)
    return (r, g, b)


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()  # noqa: S324 - HTTP digest is MD5


def _split_auth(text: str) -> Iterable[str]:
    part, quoted = "", False
    for ch in text:
        if ch == '"':
            quoted = not quoted
        if ch == "," and not quoted:
            yield part
            part = ""
        else:
            part += ch
    if part.strip():
        yield part


def _handler_class(sim: OnvifSimulator) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "camgate-onvif-sim/1.0"

        def log_message(self, format: str, *args: Any) -> None:
            return  # quiet: the request log is sim.requests

        def date_time_string(self, timestamp: float | None = None) -> str:
            # The Date header on the device's clock, as a camera sends it.
            return email.utils.format_datetime(sim.device_now(), usegmt=True)

        def _send(self, status: int, body: bytes, ctype: str, extra: dict[str, str]) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            for key, value in extra.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(body)

        profile: str | None = None

        def _send_endless(self, ctype: str, head: bytes, unit: bytes) -> None:
            """200 with a body that does not end (bounded at 256 MiB for the host's sake)."""
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            sent = 0
            chunk = unit * (65536 // len(unit))
            try:
                self.wfile.write(head)
                sent += len(head)
                while sent < 256 * 1024 * 1024:
                    self.wfile.write(chunk)
                    sent += len(chunk)
            except OSError:
                pass
            with sim._lock:
                sim.sent_bytes.append(sent)

        def setup(self) -> None:
            super().setup()
            self.connection_id = sim._connection("connect")

        def finish(self) -> None:
            try:
                super().finish()
            finally:
                sim._connection("closed", self.connection_id)

        def _log(self, op: str, user: str | None, ok: bool, status: int) -> None:
            sim._record(
                SimRequest(
                    time.monotonic(),
                    self.command,
                    self.path,
                    op,
                    user,
                    ok,
                    status,
                    self.profile,
                    self.connection_id,
                )
            )

        def do_GET(self) -> None:
            parts = self.path.partition("?")[0].strip("/").split("/")
            self.profile = parts[-1].removesuffix(".jpg") if len(parts) == 3 else None
            if len(parts) != 3 or parts[1] != "snapshot" or not parts[2].endswith(".jpg"):
                self._log("unknown", None, False, 404)
                self._send(404, b"not found", "text/plain", {})
                return
            header = self.headers.get("Authorization")
            ok = (
                sim.check_http_basic(header)
                if sim.snapshot_auth == "basic"
                else sim.check_http_digest("GET", header)
            )
            if not ok:
                self._log("snapshot", None, False, 401)
                self._send(
                    401,
                    b"unauthorized",
                    "text/plain",
                    {"WWW-Authenticate": sim.challenge(sim.snapshot_auth)},
                )
                return
            self._log("snapshot", sim.username, True, 200)
            if "snapshot" in sim.quirks.endless_body:
                self._send_endless("image/jpeg", (sim._jpeg or b"")[:2], b"\x00")
                return
            # With the picture clock, each snapshot is taken now (as a camera's is).
            jpeg = jpeg_bytes(taken_at=datetime.now(UTC)) if sim.picture_clock else sim._jpeg
            self._send(200, jpeg or b"", "image/jpeg", {})

        def do_POST(self) -> None:
            self.profile = None
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            parts = self.path.strip("/").split("/")
            op = "unknown"
            try:
                root = etree.fromstring(raw, parser=etree.XMLParser(resolve_entities=False))
                body = root.find("s:Body", NS)
                first = body[0] if body is not None and len(body) else None
                if first is not None:
                    op = etree.QName(first).localname
                    self.profile = first.findtext("trt:ProfileToken", namespaces=NS)
            except etree.XMLSyntaxError:
                root, first = None, None
            if (
                len(parts) != 3
                or not parts[0].startswith("dev")
                or not parts[0][3:].isdigit()
                or not 1 <= int(parts[0][3:]) <= sim.count
            ):
                self._log(op, None, False, 404)
                self._send(404, b"no such device", "text/plain", {})
                return
            device = int(parts[0][3:])
            service = parts[2].removesuffix("_service")
            if sim.quirks.soap_digest and not sim.check_http_digest(
                "POST", self.headers.get("Authorization")
            ):
                self._log(op, None, False, 401)
                self._send(401, b"", "text/plain", {"WWW-Authenticate": sim.challenge("digest")})
                return
            user: str | None = None
            try:
                if root is None or first is None:
                    raise _Fault("Sender", "WellFormed", "not a SOAP envelope")  # noqa: TRY301
                if op != "GetSystemDateAndTime" or sim.quirks.clock == "auth":
                    user = sim.check_token(root.find("s:Header", NS))
                if op in sim.quirks.endless_body:
                    self._log(op, user, user is not None, 200)
                    head = _envelope("").split(b"</s:Body>")[0]
                    self._send_endless("application/soap+xml", head, b"<tt:Pad>xxxx</tt:Pad>")
                    return
                text = _envelope(sim.answer(device, service, op, first))
            except _Fault as fault:
                self._log(op, user, user is not None, fault.http)
                if fault.http == 500 and not fault.reason:
                    self._send(500, b"", "text/plain", {})
                else:
                    xml = _fault_xml(fault, undeclared_ter=sim.quirks.undeclared_ter)
                    self._send(fault.http, xml, "application/soap+xml", {})
                return
            self._log(op, user, user is not None, 200)
            self._send(200, text, "application/soap+xml; charset=utf-8", {})

    return Handler
