"""The ONVIF adapter: discovery, live, snapshot and recordings of any ONVIF camera or NVR.

A camera is one video profile of a device: its ``source`` is the device service address with
the profile token in the fragment, ``http://192.0.2.7/onvif/device_service#profile=main``
(no fragment: the device's first video profile). Settings are in docs/onvif.md and
:class:`OnvifSettings`.

Per device the adapter measures the clock offset (GetSystemDateAndTime), learns the service
addresses (GetServices, else GetCapabilities including ``Extension``) and the profiles, then
per grant asks for exactly what the grant covers: GetStreamUri + SetSynchronizationPoint (live),
GetSnapshotUri (snapshot, or a frame from the stream), FindRecordings / GetReplayUri
(recorded). Every address the device hands back is checked before anything connects to it
(:class:`UrlPolicy`): SOAP and snapshot URLs keep the configured scheme, every URL the
configured host — a LAN address reported from behind NAT is rewritten to it
(``rewrite_hosts``), any other host refused — and a port the settings allow (``ports``: by
default the configured port for SOAP and snapshots, 554/322 for RTSP), so credentials never
reach another host or another port of it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import anyio
import attrs
import httpx
from camgate.adapters import (
    SECRET,
    VENDOR_BODY_LIMIT,
    Adapter,
    Credentials,
    LiveStream,
    read_capped,
)
from camgate.errors import (
    AdapterError,
    CameraAuthError,
    CameraProtocolError,
    CameraUnreachable,
    UnsupportedScope,
    ValidationError,
)
from camgate.media import decode_jpeg, jpeg_from_packets
from camgate.models import Camera, GeoPoint, Grant, MediaPacket, Snapshot
from camgate.settings import build_settings, parse_credentials, positive
from camgate_rtsp.adapter import RtspLiveStream, RtspSettings, redact, rtsp_url
from lxml import etree

from camgate_onvif.replay import ReplayStream
from camgate_onvif.soap import OnvifFault, SoapClient, tls_verify

__all__ = [
    "OnvifAdapter",
    "OnvifDevice",
    "OnvifRtspSettings",
    "OnvifSettings",
    "OnvifStream",
    "UrlPolicy",
    "checked_url",
    "device_url",
    "profile_of",
]

log = logging.getLogger(__name__)


class RedactUrls(logging.Filter):
    """A logging filter that passes every URL argument of a record through
    :func:`camgate_rtsp.adapter.redact` (``scheme://host:port/path`` only: no user info,
    query or parameters). Installed on httpx's logger, whose INFO line names each request's URL — a
    snapshot URI may carry ``user=…&password=…``."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Redact the record's URL arguments; always keep the record."""
        if isinstance(record.args, tuple):
            record.args = tuple(
                redact(str(a)) if isinstance(a, httpx.URL | str) and "://" in str(a) else a
                for a in record.args
            )
        return True


if not any(isinstance(f, RedactUrls) for f in logging.getLogger("httpx").filters):
    logging.getLogger("httpx").addFilter(RedactUrls())

_positive = positive("onvif")


def _creds(value: Mapping[str, Any]) -> dict[str, Credentials]:
    return parse_credentials(value, "onvif")


Polygon = tuple[tuple[float, float], ...]


def _masks(value: Mapping[str, Any]) -> dict[str, tuple[Polygon, ...]]:
    out: dict[str, tuple[Polygon, ...]] = {}
    for camera, polygons in dict(value).items():
        shapes = []
        for polygon in polygons:
            try:
                points = tuple((float(x), float(y)) for x, y in polygon)
            except (TypeError, ValueError):
                raise ValidationError(
                    f"onvif setting masks[{camera!r}]: a polygon is a list of [x, y] points"
                ) from None
            if len(points) < 3 or not all(0 <= v <= 1 for pt in points for v in pt):
                raise ValidationError(
                    f"onvif setting masks[{camera!r}]: a polygon needs 3 or more points "
                    "with x and y in 0..1 (fractions of the picture, origin top left)"
                )
            shapes.append(points)
        out[str(camera)] = tuple(shapes)
    return out


#: Video encodings a profile may have to become a camera (ONVIF's, lower case).
VIDEO_CODECS = frozenset({"h264", "h265", "hevc", "jpeg", "mpeg4"})

#: The services of the ``ports`` setting: SOAP endpoints (the device's XAddrs), the HTTP
#: snapshot URL, RTSP (live streams and replay).
PORT_SERVICES = ("soap", "snapshot", "rtsp")
#: RTSP ports allowed without a ``ports.rtsp`` entry (the IANA ports of rtsp and rtsps).
DEFAULT_RTSP_PORTS = {"rtsp": 554, "rtsps": 322}
_DEFAULT_PORTS = {"http": 80, "https": 443, **DEFAULT_RTSP_PORTS}


def _port(value: Any, where: str) -> int:
    try:
        port = int(str(value), 10)
    except ValueError:
        port = 0
    if not 1 <= port <= 65535 or isinstance(value, bool):
        raise ValidationError(f"onvif setting {where}: {value!r} is not a TCP port (1..65535)")
    return port


def _ports(value: Mapping[str, Any]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for service, table in dict(value).items():
        if service not in PORT_SERVICES:
            raise ValidationError(
                f"onvif setting ports: unknown service {service!r} "
                f"(one of {', '.join(PORT_SERVICES)})"
            )
        if not isinstance(table, Mapping):
            raise ValidationError(
                f"onvif setting ports.{service}: a table of reported port = reachable port"
            )
        out[service] = {
            ("*" if str(k) == "*" else str(_port(k, f"ports.{service}"))): _port(
                v, f"ports.{service}.{k}"
            )
            for k, v in table.items()
        }
    return out


def _devices(value: Sequence[Mapping[str, Any]]) -> tuple[dict[str, Any], ...]:
    out = []
    for i, dev in enumerate(value):
        if not isinstance(dev, Mapping) or "url" not in dev:
            raise ValidationError(f"onvif setting devices[{i}]: needs at least a 'url'")
        unknown = set(dev) - {"url", "owner_id", "position", "id", "label"}
        if unknown:
            raise ValidationError(f"onvif setting devices[{i}]: unknown keys {sorted(unknown)}")
        device_url(str(dev["url"]))
        out.append(dict(dev))
    return tuple(out)


@attrs.frozen
class OnvifSettings:
    """Validated settings of the ONVIF adapter (table in docs/onvif.md)."""

    timeout_s: float = attrs.field(default=5.0, validator=_positive)
    connect_timeout_s: float = attrs.field(default=5.0, validator=_positive)
    read_timeout_s: float = attrs.field(default=5.0, validator=_positive)
    sync_point: bool = True
    rewrite_hosts: bool = True
    verify_tls: bool | str = True
    snapshot_fallback: bool = True
    probe_bytes: int = attrs.field(default=2048, validator=_positive)
    ports: dict[str, dict[str, int]] = attrs.field(factory=dict, converter=_ports)
    allow_basic_over_http: bool = False
    allow_basic_over_rtsp: bool = False
    max_body_bytes: int = attrs.field(default=VENDOR_BODY_LIMIT, validator=_positive)
    credentials: dict[str, Credentials] = attrs.field(
        factory=dict, converter=_creds, repr=False, metadata=SECRET
    )
    devices: tuple[dict[str, Any], ...] = attrs.field(default=(), converter=_devices)
    masks: dict[str, tuple[Polygon, ...]] = attrs.field(factory=dict, converter=_masks)

    @classmethod
    def from_mapping(cls, settings: Mapping[str, Any]) -> OnvifSettings:
        """Build settings from a mapping; unknown keys are an error (a typo must not pass)."""
        return build_settings(cls, "onvif", settings)

    def rtsp(self) -> OnvifRtspSettings:
        """Settings for the RTSP reader of the live and replay paths."""
        return OnvifRtspSettings(
            connect_timeout_s=self.connect_timeout_s,
            read_timeout_s=self.read_timeout_s,
            probe_bytes=self.probe_bytes,
            allow_basic_over_rtsp=self.allow_basic_over_rtsp,
        )


@attrs.frozen
class OnvifRtspSettings(RtspSettings):
    """RTSP reader settings with a smaller probe: the SDP of an ONVIF stream carries the
    parameter sets, so a few KiB of probing are enough and the first keyframe a sync point
    asked for is not spent waiting in the probe."""

    probe_bytes: int = 2048

    def open_options(self) -> dict[str, str]:
        """FFmpeg options for ``av.open``: RtspSettings' with ``probesize`` = probe_bytes."""
        options = super().open_options()
        if self.fast_start:
            options["probesize"] = str(self.probe_bytes)
        return options


def device_url(source: str) -> str:
    """The device service address of a camera source (the URL without its fragment),
    validated: http or https, a host, no credentials."""
    parts = urlsplit(source)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationError(
            f"onvif source {redact(source)!r} is not an http:// or https:// device address"
        )
    if parts.username is not None or parts.password is not None:
        raise ValidationError("onvif source: must not carry credentials")
    try:
        _ = parts.port
    except ValueError:
        raise ValidationError(f"onvif source {redact(source)!r} has an invalid port") from None
    return urlunsplit((parts.scheme, parts.netloc, parts.path, parts.query, ""))


def profile_of(source: str) -> str | None:
    """The profile token in a source's fragment (``#profile=TOKEN``), or None."""
    fragment = urlsplit(source).fragment
    key, _, value = fragment.partition("=")
    return value if key == "profile" and value else None


@attrs.frozen
class UrlPolicy:
    """Where the adapter may connect for one device: the configured ``scheme``, ``host`` and
    ``port`` (of its device service address), whether a foreign host is rewritten to the
    configured one (``rewrite_hosts``) and the ``ports`` setting (service -> reported port or
    ``*`` -> port to connect to)."""

    scheme: str
    host: str
    port: int
    rewrite_hosts: bool = True
    ports: Mapping[str, Mapping[str, int]] = attrs.field(factory=dict)

    @classmethod
    def for_device(cls, url: str, settings: OnvifSettings) -> UrlPolicy:
        """The policy of the device at ``url`` (a :func:`device_url`) under ``settings``."""
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        return cls(
            scheme,
            parts.hostname or "",
            parts.port or _DEFAULT_PORTS[scheme],
            settings.rewrite_hosts,
            settings.ports,
        )

    def port_for(self, service: str, scheme: str, reported: int) -> int:
        """The port to connect to for a URL of ``service`` the device reported on ``reported``.

        ``ports.<service>`` maps a reported port (or ``*``, any) to a reachable one; without
        an entry, SOAP and snapshot URLs go to the configured port, and RTSP is allowed on
        the reported port only when it is the standard one (554, rtsps 322) or a port the map
        sends another to. Anything else is a CameraProtocolError.
        """
        table = self.ports.get(service, {})
        if str(reported) in table:
            return table[str(reported)]
        if "*" in table:
            return table["*"]
        if service != "rtsp":
            return self.port
        allowed = {DEFAULT_RTSP_PORTS[scheme], *table.values()}
        if reported in allowed:
            return reported
        raise CameraProtocolError(
            f"the device reported {service} port {reported}, which the settings do not allow "
            f"(allowed: {', '.join(map(str, sorted(allowed)))}); if the camera is reached "
            f'through a forwarded port, map it: ports.{service} = {{ "{reported}" = '
            "<reachable port> }"
        )


def checked_url(url: str, policy: UrlPolicy, service: str) -> str:
    """A URL the device handed back for ``service`` (``soap``, ``snapshot`` or ``rtsp``), made
    safe to connect to, or CameraProtocolError.

    SOAP and snapshot URLs must be http(s) and take the configured scheme; RTSP URLs must be
    rtsp or rtsps. Credentials in the URL are dropped (ours are attached later). A host other
    than the configured one is replaced by it when ``rewrite_hosts`` is on (a LAN address
    behind NAT) and refused otherwise; the port is the one :meth:`UrlPolicy.port_for` allows.
    The result never names another host, scheme or port than the policy allows.
    """
    schemes = ("rtsp", "rtsps") if service == "rtsp" else ("http", "https")
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in schemes or not parts.hostname:
        # Not echoed unless it parses: redact finds no userinfo in a URL without a scheme.
        shown = repr(redact(url)) if parts.scheme and parts.hostname else "a malformed URL"
        raise CameraProtocolError(
            f"the device handed back {shown}: expected a {'/'.join(schemes)} URL"
        )
    try:
        reported = parts.port or _DEFAULT_PORTS[scheme]
    except ValueError:
        raise CameraProtocolError(f"the device handed back {redact(url)!r}: bad port") from None
    host = parts.hostname
    if host.lower() != policy.host.lower():
        if not policy.rewrite_hosts:
            raise CameraProtocolError(
                f"the device handed back {redact(url)!r}, on host {host!r}, not the configured "
                f"{policy.host!r} (set rewrite_hosts to use the configured address)"
            )
        log.info("rewrote device address %s to the configured host %s", host, policy.host)
    if service != "rtsp":
        scheme = policy.scheme
    try:
        port = policy.port_for(service, scheme, reported)
    except CameraProtocolError as exc:
        raise CameraProtocolError(f"the device handed back {redact(url)!r}: {exc}") from None
    host = policy.host
    netloc = (f"[{host}]" if ":" in host else host) + f":{port}"
    return urlunsplit((scheme, netloc, parts.path or "/", parts.query, ""))


@attrs.frozen
class OnvifStream:
    """One video profile of a device: a camera stream."""

    token: str
    name: str
    codec: str
    width: int
    height: int
    source: str
    source_config: str = ""
    source_token: str = ""  # the video source (an NVR's channel) the profile encodes


@attrs.frozen
class Recording:
    """One recording of a device (Profile G), with the span it holds."""

    token: str
    earliest: datetime | None
    latest: datetime | None


def _aware(moment: Any) -> datetime | None:
    """A search date as an aware datetime: one without a time zone is UTC (device clock)."""
    if not isinstance(moment, datetime):
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _is_element(value: Any) -> bool:
    return isinstance(value, etree._Element) and isinstance(value.tag, str)


def _child_text(elements: Sequence[Any], name: str) -> str | None:
    """The text of the first element named ``name`` (any namespace) among ``elements``."""
    for element in elements:
        if _is_element(element) and etree.QName(element).localname == name:
            return (element.text or "").strip()
    return None


def _extension_xaddr(ext: Any, attr: str) -> str | None:
    """The XAddr of ``Capabilities/Extension/<attr>``.

    zeep lets the extension's leading ``xs:any`` swallow the typed elements that follow it, so
    Recording, Search and Replay often arrive as raw XML in ``_value_1``: look in both.
    """
    if ext is None:
        return None
    sub = getattr(ext, attr, None)
    if sub is not None and getattr(sub, "XAddr", None):
        return str(sub.XAddr)
    for element in getattr(ext, "_value_1", None) or []:
        if isinstance(element, etree._Element) and etree.QName(element).localname == attr:
            for child in element:
                if etree.QName(child).localname == "XAddr" and child.text:
                    return str(child.text).strip()
    return None


class OnvifDevice:
    """A connected ONVIF device: clock offset, service addresses, profiles.

    Built by :meth:`connect`; every address it keeps has been through :func:`checked_url`.
    """

    def __init__(self, url: str, soap: SoapClient, settings: OnvifSettings) -> None:
        self.url = url
        self.soap = soap
        self.settings = settings
        self.policy = UrlPolicy.for_device(url, settings)
        self.xaddrs: dict[str, str] = {"device": url}
        self.info: dict[str, str] = {}
        self.streams: list[OnvifStream] = []
        self.notes: list[str] = []

    def __repr__(self) -> str:
        return f"<OnvifDevice {self.url} services={sorted(self.xaddrs)}>"

    def _check(self, url: str, service: str) -> str:
        return checked_url(url, self.policy, service)

    @classmethod
    async def connect(
        cls, url: str, credentials: Credentials | None, settings: OnvifSettings
    ) -> OnvifDevice:
        """Measure the clock, learn services and profiles. Errors are camgate AdapterErrors."""
        where = url
        verify = settings.verify_tls
        soap = SoapClient(
            where,
            credentials,
            timeout_s=settings.timeout_s,
            verify=verify,
            max_body_bytes=settings.max_body_bytes,
        )
        self = cls(url, soap, settings)
        try:
            await soap.measure_clock(url)
            if soap.clock_source != "device":
                self.notes.append(f"clock offset from: {soap.clock_source}")
            await self._services()
            info = await soap.call("device", url, "GetDeviceInformation")
            self.info = {
                k: str(getattr(info, k, "") or "")
                for k in ("Manufacturer", "Model", "FirmwareVersion", "SerialNumber")
            }
            await self._profiles()
        except BaseException:
            await soap.aclose()
            raise
        return self

    async def _services(self) -> None:
        ns_names = {
            "http://www.onvif.org/ver10/media/wsdl": "media",
            "http://www.onvif.org/ver10/recording/wsdl": "recording",
            "http://www.onvif.org/ver10/search/wsdl": "search",
            "http://www.onvif.org/ver10/replay/wsdl": "replay",
            "http://www.onvif.org/ver20/media/wsdl": "media2",
        }
        try:
            services = await self.soap.call(
                "device", self.url, "GetServices", IncludeCapability=False
            )
            for svc in services or []:
                name = ns_names.get(str(svc.Namespace))
                if name:
                    self.xaddrs[name] = self._check(str(svc.XAddr), "soap")
        except (OnvifFault, CameraProtocolError) as exc:
            self.notes.append(f"GetServices unavailable ({exc}); used GetCapabilities")
            await self._capabilities("neither GetServices nor GetCapabilities answered")
            return
        if "media" not in self.xaddrs and "media2" not in self.xaddrs:
            await self._capabilities("GetServices lists no media service; GetCapabilities failed")

    @property
    def media(self) -> str:
        """The media service streams come from: ``media`` (ver10), else ``media2`` (a
        Profile T device without the ver10 service)."""
        return "media" if "media" in self.xaddrs else "media2"

    async def _capabilities(self, failing: str) -> None:
        try:
            caps = await self.soap.call("device", self.url, "GetCapabilities", Category="All")
        except CameraProtocolError as exc:
            raise CameraProtocolError(f"{self.url}: {failing}: {exc}") from None
        media = getattr(caps, "Media", None)
        if media is not None and media.XAddr:
            self.xaddrs["media"] = self._check(str(media.XAddr), "soap")
        ext = getattr(caps, "Extension", None)
        for name, attr in (("recording", "Recording"), ("search", "Search"), ("replay", "Replay")):
            xaddr = _extension_xaddr(ext, attr)
            if xaddr:
                self.xaddrs[name] = self._check(xaddr, "soap")
        if "media" not in self.xaddrs:
            raise CameraProtocolError(f"{self.url}: the device reports no media service")

    async def _profiles(self) -> None:
        self.streams = []
        if self.media == "media2":
            await self._profiles2()
            return
        profiles = await self.soap.call("media", self.xaddrs["media"], "GetProfiles")
        for p in profiles or []:
            enc = getattr(p, "VideoEncoderConfiguration", None)
            if enc is None:
                continue  # audio- or metadata-only profile
            res = getattr(enc, "Resolution", None)
            vsc = getattr(p, "VideoSourceConfiguration", None)
            self._add_stream(
                str(p.token),
                str(getattr(p, "Name", "") or p.token),
                getattr(enc, "Encoding", None),
                getattr(res, "Width", None),
                getattr(res, "Height", None),
                vsc,
            )

    async def _profiles2(self) -> None:
        """Media2 GetProfiles (Type All); the encoder configuration arrives as raw XML."""
        profiles = await self.soap.call(
            "media2", self.xaddrs["media2"], "GetProfiles", Type=["All"]
        )
        for p in profiles or []:
            configs = getattr(p, "Configurations", None)
            encoder = getattr(configs, "VideoEncoder", None)
            if encoder is None:
                continue  # audio- or metadata-only profile
            raw = [e for e in getattr(encoder, "_value_1", None) or [] if _is_element(e)]
            res = next((e for e in raw if etree.QName(e).localname == "Resolution"), None)
            self._add_stream(
                str(p.token),
                str(getattr(p, "Name", "") or p.token),
                _child_text(raw, "Encoding"),
                _child_text(list(res) if res is not None else [], "Width"),
                _child_text(list(res) if res is not None else [], "Height"),
                getattr(configs, "VideoSource", None),
            )

    def _add_stream(
        self, token: str, name: str, codec: Any, width: Any, height: Any, vsc: Any
    ) -> None:
        """Keep a video profile as a stream, or skip it with a note when its encoder is
        not usable (no or an unknown encoding, no or a 0x0 resolution: an NVR's empty
        channel), so it never becomes a camera nor a source's default profile."""
        codec = str(codec or "").strip().lower()
        try:
            w, h = int(width or 0), int(height or 0)
        except (TypeError, ValueError):
            w = h = 0
        if codec not in VIDEO_CODECS or w <= 0 or h <= 0:
            self.notes.append(
                f"profile {token!r} skipped: its video encoder is not usable "
                f"(encoding {codec or 'missing'}, {w}x{h})"
            )
            return
        self.streams.append(
            OnvifStream(
                token=token,
                name=name,
                codec=codec,
                width=w,
                height=h,
                source=f"{self.url}#profile={token}",
                source_config=str(getattr(vsc, "token", "") or ""),
                source_token=str(getattr(vsc, "SourceToken", "") or ""),
            )
        )

    def profile(self, source: str) -> str:
        """The profile token a camera source names (first video profile when it names none)."""
        token = profile_of(source)
        if token is None:
            if not self.streams:
                raise CameraProtocolError(f"{self.url}: the device has no video profile")
            return self.streams[0].token
        if token not in {s.token for s in self.streams}:
            raise CameraProtocolError(f"{self.url}: the device has no profile {token!r}")
        return token

    def _setup(self) -> dict[str, Any]:
        return {"Stream": "RTP-Unicast", "Transport": {"Protocol": "RTSP"}}

    async def stream_uri(self, token: str) -> str:
        """GetStreamUri (RTP unicast over RTSP), checked: an rtsp/rtsps URL on our host."""
        if self.media == "media2":
            uri = await self.soap.call(
                "media2", self.xaddrs["media2"], "GetStreamUri", Protocol="RTSP", ProfileToken=token
            )
            return self._check(str(uri), "rtsp")
        answer = await self.soap.call(
            "media",
            self.xaddrs["media"],
            "GetStreamUri",
            StreamSetup=self._setup(),
            ProfileToken=token,
        )
        return self._check(str(answer.Uri), "rtsp")

    async def snapshot_uri(self, token: str) -> str:
        """GetSnapshotUri, checked: an http/https URL on our host."""
        answer = await self.soap.call(
            self.media, self.xaddrs[self.media], "GetSnapshotUri", ProfileToken=token
        )
        return self._check(str(getattr(answer, "Uri", answer)), "snapshot")

    async def sync_point(self, token: str) -> None:
        """SetSynchronizationPoint: ask the encoder of ``token`` for a keyframe now."""
        await self.soap.call(
            self.media, self.xaddrs[self.media], "SetSynchronizationPoint", ProfileToken=token
        )

    async def push_masks(self, token: str, polygons: Sequence[Polygon]) -> int:
        """Make sure the camera masks ``polygons`` (fractions of the picture, origin top
        left) on the video source of profile ``token``, with Media2 ``GetMasks`` and
        ``CreateMask``; masks already there are left alone. Returns how many were created.
        Raises UnsupportedScope when the device has no Media2 service."""
        if "media2" not in self.xaddrs:
            raise UnsupportedScope(f"{self.url}: the device has no Media2 service for masks")
        stream = next(s for s in self.streams if s.token == token)
        xaddr, config = self.xaddrs["media2"], stream.source_config
        existing = await self.soap.call("media2", xaddr, "GetMasks", ConfigurationToken=config)
        have = {
            tuple((round(float(p.x), 3), round(float(p.y), 3)) for p in m.Polygon.Point)
            for m in existing or []
        }
        created = 0
        for polygon in polygons:
            # ONVIF's normalised coordinates: -1..1, y pointing up.
            points = tuple((round(2 * x - 1, 3), round(1 - 2 * y, 3)) for x, y in polygon)
            if points in have:
                continue
            mask = {
                "ConfigurationToken": config,
                "Polygon": {"Point": [{"x": x, "y": y} for x, y in points]},
                "Type": "Color",
                "Color": {"X": 16.0, "Y": 128.0, "Z": 128.0},
                "Enabled": True,
            }
            await self.soap.call("media2", xaddr, "CreateMask", Mask=mask)
            created += 1
        return created

    def _need(self, service: str) -> str:
        if service not in self.xaddrs:
            found = ", ".join(sorted(self.xaddrs))
            raise UnsupportedScope(
                f"{self.url}: the device has no {service} service (Profile G): it reports "
                f"{found}; recordings cannot be served from it"
            )
        return self.xaddrs[service]

    async def recordings(self, start: datetime, end: datetime, token: str) -> list[Recording]:
        """FindRecordings + GetRecordingSearchResults: the recordings of profile ``token``'s
        video source holding footage in the window (device clock).

        The search is scoped to the source (``IncludedSources``), and each result must name
        it as its ``Source/SourceId`` — a device that ignores the scope (an NVR answering with
        every channel) cannot hand over another channel's recording; results that cannot be
        tied to the source are left out (on a device with a single video source, every
        recording is that source's). Dates without a time zone are taken as UTC on the
        device's clock."""
        search = self._need("search")
        self._need("replay")
        stream = next(s for s in self.streams if s.token == token)
        if not stream.source_token:
            raise UnsupportedScope(
                f"{self.url}: profile {token!r} names no video source, so no recording can be "
                "tied to it; recordings are not served from it"
            )
        scope = {"IncludedSources": [{"Token": stream.source_token}]}
        search_token = await self.soap.call(
            "search", search, "FindRecordings", Scope=scope, MaxMatches=50, KeepAliveTime="PT10S"
        )
        results = await self.soap.call(
            "search",
            search,
            "GetRecordingSearchResults",
            SearchToken=str(search_token),
            MinResults=1,
            MaxResults=50,
            WaitTime="PT5S",
        )
        # A device with one video source (a camera, not an NVR) records only that source.
        single = {s.source_token for s in self.streams} == {stream.source_token}
        found = []
        for info in getattr(results, "RecordingInformation", None) or []:
            source = getattr(getattr(info, "Source", None), "SourceId", None)
            if not single and str(source or "").strip() != stream.source_token:
                self.notes.append(
                    f"recording {info.RecordingToken!r} left out: its source {source!r} is not "
                    f"the camera's video source {stream.source_token!r}"
                )
                continue
            early, late = _aware(info.EarliestRecording), _aware(info.LatestRecording)
            if (early is None or early <= end) and (late is None or late >= start):
                found.append(Recording(str(info.RecordingToken), early, late))
        return found

    async def replay_uri(self, recording: str) -> str:
        """GetReplayUri, checked: an rtsp/rtsps URL on our host."""
        uri = await self.soap.call(
            "replay",
            self._need("replay"),
            "GetReplayUri",
            StreamSetup=self._setup(),
            RecordingToken=recording,
        )
        return self._check(str(uri), "rtsp")

    async def aclose(self) -> None:
        """Close the device's connection pool."""
        await self.soap.aclose()


def _snapshot(camera: Camera, grant: Grant, jpeg: bytes, width: int, height: int) -> Snapshot:
    return Snapshot(
        grant_id=grant.id,
        camera_id=camera.id,
        jpeg=jpeg,
        width=width,
        height=height,
        taken_at=datetime.now(UTC),
    )


class OnvifAdapter(Adapter):
    """Reach ONVIF devices (Profile S/T live and snapshot, Profile G recordings)."""

    def __init__(self, settings: OnvifSettings) -> None:
        self.settings = settings
        self._devices: dict[str, OnvifDevice] = {}
        self._lock = anyio.Lock()
        #: The owners' masks the edge handed over (camera id -> polygons), pushed again at
        #: each grant in case the camera was unreachable or reset meanwhile.
        self._owner_masks: dict[str, tuple[Polygon, ...]] = {}

    def __repr__(self) -> str:
        return f"OnvifAdapter({self.settings!r})"

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> OnvifAdapter:
        """Build the adapter from the edge's ``onvif`` settings."""
        return cls(OnvifSettings.from_mapping(settings))

    def _credentials(self, camera_id: str | None, url: str) -> Credentials | None:
        creds = self.settings.credentials
        if camera_id is not None and camera_id in creds:
            return creds[camera_id]
        return creds.get(url)

    async def device(self, source: str, camera_id: str | None = None) -> OnvifDevice:
        """The connected device behind ``source`` (connected once, then reused)."""
        url = device_url(source)
        async with self._lock:
            if url not in self._devices:
                creds = self._credentials(camera_id, url)
                self._devices[url] = await OnvifDevice.connect(url, creds, self.settings)
            return self._devices[url]

    async def streams(self, source: str) -> list[OnvifStream]:
        """Every video profile of the device at ``source``, with resolution and codec."""
        return list((await self.device(source)).streams)

    async def discover(self) -> list[Camera]:
        """One camera per video profile of each configured device that names an owner and a
        position (``devices`` setting); ids are ``<id>-<profile>``."""
        cameras = []
        for dev in self.settings.devices:
            if "owner_id" not in dev or "position" not in dev:
                continue
            lat, lon = dev["position"]
            base = dev.get("id") or urlsplit(dev["url"]).hostname
            for stream in await self.streams(str(dev["url"])):
                cameras.append(
                    Camera(
                        id=f"{base}-{stream.token}",
                        adapter="onvif",
                        source=stream.source,
                        owner_id=str(dev["owner_id"]),
                        position=GeoPoint(float(lat), float(lon)),
                        label=f"{dev.get('label', base)} {stream.name} "
                        f"{stream.width}x{stream.height} {stream.codec}",
                    )
                )
        return cameras

    async def _masks(self, camera: Camera, device: OnvifDevice, token: str) -> None:
        """Push the owner's masks for ``camera`` to the device when it has Media2 (best effort:
        the gate's own masking applies either way)."""
        polygons = self.settings.masks.get(camera.id) or self._owner_masks.get(camera.id)
        if not polygons:
            return
        try:
            created = await device.push_masks(token, polygons)
        except (UnsupportedScope, CameraProtocolError) as exc:
            log.info("%s: owner's masks not pushed to the camera: %s", camera.id, exc)
            return
        if created:
            log.info("%s: pushed %d privacy mask(s) to the camera", camera.id, created)

    async def push_masks(
        self, camera: Camera, polygons: tuple[tuple[tuple[float, float], ...], ...]
    ) -> bool:
        """Make the camera mask the owner's ``polygons`` itself with Media2 (``GetMasks``, then
        ``CreateMask`` for those it lacks); they are pushed again at each later grant. True when
        the device has them; False when it has no Media2 or refused (logged). Masks already on
        the camera stay: it may mask more than the owner asked, never less."""
        if not polygons:
            self._owner_masks.pop(camera.id, None)
            return False
        self._owner_masks[camera.id] = tuple(polygons)
        try:
            device = await self.device(camera.source, camera.id)
            await device.push_masks(device.profile(camera.source), polygons)
        except (AdapterError, ValidationError) as exc:
            log.info("%s: owner's masks not pushed to the camera: %s", camera.id, exc)
            return False
        return True

    def _rtsp_url(self, camera: Camera, uri: str) -> str:
        return rtsp_url(uri, self._credentials(camera.id, device_url(camera.source)))

    async def open_live(self, camera: Camera, grant: Grant) -> LiveStream:
        """GetStreamUri → RTSP (credentials attached), then SetSynchronizationPoint so the first
        keyframe comes at once; packets from the first keyframe."""
        device = await self.device(camera.source, camera.id)
        token = device.profile(camera.source)
        await self._masks(camera, device, token)
        uri = await device.stream_uri(token)
        stream = await RtspLiveStream.open(self._rtsp_url(camera, uri), self.settings.rtsp())
        if self.settings.sync_point:
            try:
                await device.sync_point(token)
            except AdapterError as exc:
                # Not every device supports it; the stream still starts at the next keyframe.
                log.info("%s: SetSynchronizationPoint failed: %s", device.url, exc)
            except BaseException:
                await stream.aclose()
                raise
        return stream

    async def request_keyframe(self, camera: Camera) -> bool:
        """Ask the camera's encoder for a keyframe now (Media ``SetSynchronizationPoint`` on the
        camera's profile), as the edge does when a live grant is issued. True when the device
        accepted the call; False when it refused or failed (logged, never raised: a stream
        still starts at the encoder's next regular keyframe)."""
        try:
            device = await self.device(camera.source, camera.id)
            await device.sync_point(device.profile(camera.source))
        except (AdapterError, ValidationError) as exc:
            log.info("%s: keyframe request refused: %s", camera.id, exc)
            return False
        return True

    async def snapshot(self, camera: Camera, grant: Grant) -> Snapshot:
        """GetSnapshotUri → HTTP JPEG (basic or digest), else a frame from the stream."""
        device = await self.device(camera.source, camera.id)
        token = device.profile(camera.source)
        await self._masks(camera, device, token)
        try:
            uri = await device.snapshot_uri(token)
        except OnvifFault as exc:
            if not self.settings.snapshot_fallback:
                raise
            log.info("%s: no snapshot URI (%s); taking a frame from the stream", device.url, exc)
            try:
                return await self._frame_from_stream(camera, grant, device, token)
            except AdapterError as fallback:
                kind = next(
                    k
                    for k in (
                        CameraAuthError,
                        CameraUnreachable,
                        UnsupportedScope,
                        CameraProtocolError,
                        AdapterError,
                    )
                    if isinstance(fallback, k)
                )
                raise kind(
                    f"no snapshot: GetSnapshotUri failed ({exc}), and so did taking a frame "
                    f"from the stream ({fallback})"
                ) from None
        creds = self._credentials(camera.id, device.url)
        jpeg = await self._fetch_jpeg(uri, creds)
        width, height = await anyio.to_thread.run_sync(decode_jpeg, jpeg)
        return _snapshot(camera, grant, jpeg, width, height)

    async def _fetch_jpeg(self, uri: str, creds: Credentials | None) -> bytes:
        """GET the snapshot: digest when challenged for it; basic only over https or when
        ``allow_basic_over_http`` says so; the body read as it arrives, at most
        ``max_body_bytes``. Errors name the URL tried (without credentials)."""
        where = redact(uri)
        limit = self.settings.max_body_bytes
        error: AdapterError | None = None
        try:
            async with httpx.AsyncClient(
                timeout=self.settings.timeout_s, verify=tls_verify(self.settings.verify_tls)
            ) as http:
                with anyio.fail_after(self.settings.timeout_s):
                    # httpx's DigestAuth answers a digest challenge itself; a camera that
                    # asks for basic instead gets it on a second request, if allowed.
                    user, password = (
                        (creds.username, creds.password.reveal()) if creds else ("", "")
                    )
                    auth: httpx.Auth | None = httpx.DigestAuth(user, password) if creds else None
                    status, body, challenge = await self._get_capped(http, uri, auth, limit)
                    if status == 401 and creds and challenge.startswith("basic"):
                        if urlsplit(uri).scheme != "https" and not (
                            self.settings.allow_basic_over_http
                        ):
                            raise CameraAuthError(
                                f"{where}: the camera asks for HTTP Basic over plain http, which "
                                "would send the password in clear text; refused (configure the "
                                "device as https, or set allow_basic_over_http)"
                            )
                        auth = httpx.BasicAuth(user, password)
                        status, body, challenge = await self._get_capped(http, uri, auth, limit)
            if status in (401, 403):
                error = CameraAuthError(
                    f"{where}: the camera refused the snapshot credentials ({status})"
                )
            elif status != 200:
                error = CameraProtocolError(f"{where}: snapshot answered {status}")
            else:
                return body
        except (TimeoutError, httpx.TimeoutException):
            error = CameraUnreachable(f"{where}: no snapshot within {self.settings.timeout_s:g} s")
        except httpx.HTTPError as exc:
            error = CameraUnreachable(f"{where}: {type(exc).__name__} fetching the snapshot")
        raise error

    @staticmethod
    async def _get_capped(
        http: httpx.AsyncClient, uri: str, auth: httpx.Auth | None, limit: int
    ) -> tuple[int, bytes, str]:
        """GET ``uri``: status, body (at most ``limit`` bytes, else CameraProtocolError) and
        the WWW-Authenticate challenge (lower case)."""
        async with http.stream("GET", uri, auth=auth) as response:
            challenge = response.headers.get("WWW-Authenticate", "").lower()
            if response.status_code != 200:
                return response.status_code, b"", challenge
            body = await read_capped(response.aiter_bytes(), limit, redact(uri))
            return response.status_code, body, challenge

    async def _frame_from_stream(
        self, camera: Camera, grant: Grant, device: OnvifDevice, token: str
    ) -> Snapshot:
        uri = await device.stream_uri(token)
        stream = await RtspLiveStream.open(self._rtsp_url(camera, uri), self.settings.rtsp())
        packets: list[MediaPacket] = []
        try:
            if self.settings.sync_point:
                try:
                    await device.sync_point(token)
                except AdapterError as exc:
                    log.info("%s: SetSynchronizationPoint failed: %s", device.url, exc)
            async for packet in stream:
                packets.append(packet)
                try:
                    jpeg, width, height = await anyio.to_thread.run_sync(jpeg_from_packets, packets)
                    break
                except CameraProtocolError:
                    continue
            else:
                raise CameraUnreachable(f"{device.url}: the stream ended before a picture")
        finally:
            await stream.aclose()
        return _snapshot(camera, grant, jpeg, width, height)

    async def recorded(self, camera: Camera, grant: Grant) -> LiveStream:
        """Replay the grant's window: FindRecordings → GetReplayUri → RTSP with
        ``Require: onvif-replay`` and ``Range: clock=<start>-<end>`` (on the device's clock)
        through camgate's own client (:mod:`camgate_onvif.replay`); packets carry the time
        each frame was recorded and are cut to the window by it."""
        start, end = grant.window_start, grant.window_end
        if start is None or end is None or end <= start:
            raise ValidationError("a recorded grant needs a window (start before end)")
        device = await self.device(camera.source, camera.id)
        offset = device.soap.offset
        if abs(offset) < timedelta(seconds=2):
            offset = timedelta(0)  # within GetSystemDateAndTime's one-second resolution
        token = device.profile(camera.source)
        found = await device.recordings(start + offset, end + offset, token)
        if not found:
            raise CameraProtocolError(
                f"{device.url}: no recording holds footage between {start.isoformat()} "
                f"and {end.isoformat()}"
            )
        uri = await device.replay_uri(found[0].token)
        stream = next(s for s in device.streams if s.token == token)
        return await ReplayStream.open(
            uri,
            self._credentials(camera.id, device.url),
            start=start,
            end=end,
            clock_offset=offset,
            width=stream.width,
            height=stream.height,
            connect_timeout_s=self.settings.connect_timeout_s,
            read_timeout_s=self.settings.read_timeout_s,
            allow_basic_over_rtsp=self.settings.allow_basic_over_rtsp,
        )

    async def aclose(self) -> None:
        """Close every device's connection pool."""
        for device in self._devices.values():
            await device.aclose()
        self._devices.clear()
