"""The SOAP side of ONVIF: zeep's async client over httpx, on onvif-zeep's WSDLs.

Why not onvif-zeep's ``ONVIFCamera``: it is synchronous (requests), calls GetCapabilities the
moment it is built (the call some firmware answers with HTTP 500), and cannot measure the
camera's clock before the first authenticated call. We take its WSDLs and its service table
(``onvif.definition.SERVICES``) and drive zeep's :class:`zeep.AsyncClient` over one
:class:`httpx.AsyncClient` per device: nothing blocks the event loop (parsing a WSDL does, once
per process, in a worker thread), time-outs are anyio's, HTTP digest on the SOAP endpoint is
httpx's, and TLS settings are httpx's.

Every call carries a fresh WS-Security UsernameToken digest whose ``Created`` is the host's
clock corrected by the offset measured with ``GetSystemDateAndTime`` (unauthenticated, else
authenticated, else the HTTP ``Date`` header, else none — ``clock_source`` says which).
Every reply is read as it arrives and refused past ``max_body_bytes``. Errors are mapped to
:mod:`camgate.errors` — parse failures, faults with undeclared prefixes and wrong namespaces
included — with the SOAP fault's text and the URL actually called; none carries a credential.
"""

from __future__ import annotations

import functools
import importlib.metadata
import logging
import ssl
import threading
from collections.abc import Callable
from contextvars import ContextVar
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import httpx
import zeep
import zeep.exceptions
import zeep.proxy
import zeep.transports
import zeep.wsdl
import zeep.wsse.username
from camgate.adapters import VENDOR_BODY_LIMIT, Credentials, read_capped
from camgate.errors import (
    AdapterError,
    CameraAuthError,
    CameraProtocolError,
    CameraUnreachable,
)
from camgate_rtsp.adapter import redact
from lxml import etree

__all__ = [
    "SERVICES",
    "WSDL_DIR",
    "OnvifFault",
    "SoapClient",
    "document",
    "tls_verify",
]

log = logging.getLogger(__name__)

#: onvif-zeep's WSDL directory (it installs them as a top-level ``wsdl`` folder). Found through
#: the distribution's metadata, not by importing ``onvif`` (a script onvif.py would shadow it).
WSDL_DIR = Path(str(importlib.metadata.distribution("onvif-zeep").locate_file("wsdl")))

#: service name -> (WSDL file, namespace, binding), after onvif-zeep's ``definition.SERVICES``.
SERVICES: dict[str, tuple[str, str, str]] = {
    "device": ("devicemgmt.wsdl", "http://www.onvif.org/ver10/device/wsdl", "DeviceBinding"),
    "media": ("media.wsdl", "http://www.onvif.org/ver10/media/wsdl", "MediaBinding"),
    "recording": (
        "recording.wsdl",
        "http://www.onvif.org/ver10/recording/wsdl",
        "RecordingBinding",
    ),
    "search": ("search.wsdl", "http://www.onvif.org/ver10/search/wsdl", "SearchBinding"),
    "replay": ("replay.wsdl", "http://www.onvif.org/ver10/replay/wsdl", "ReplayBinding"),
    "media2": ("media2.wsdl", "http://www.onvif.org/ver20/media/wsdl", "Media2Binding"),
}

#: camgate's own Media2 (privacy masks) WSDL: onvif-zeep ships none (see the file's header).
MEDIA2_WSDL = Path(__file__).with_name("wsdl") / "media2.wsdl"

_doc_lock = threading.Lock()


@functools.cache
def _load(name: str) -> zeep.wsdl.Document:
    transport = zeep.transports.Transport()
    if name == "media2":
        # Parsed as if it sat beside onvif-zeep's WSDLs, so "./onvif.xsd" resolves there.
        with MEDIA2_WSDL.open("rb") as fh:
            return zeep.wsdl.Document(fh, transport, base=str(WSDL_DIR / "media2.wsdl"))
    return zeep.wsdl.Document(str(WSDL_DIR / SERVICES[name][0]), transport)


def document(name: str) -> zeep.wsdl.Document:
    """The parsed WSDL of service ``name`` (parsed once per process; blocking the first time)."""
    with _doc_lock:
        return _load(name)


def tls_verify(value: bool | str) -> bool | ssl.SSLContext:
    """httpx's ``verify`` for the ``verify_tls`` setting: True, False, or a CA bundle path."""
    if isinstance(value, str):
        return ssl.create_default_context(cafile=value)
    return value


class OnvifFault(CameraProtocolError):
    """The device answered a SOAP fault (other than NotAuthorized).

    ``operation``, ``subcode`` (e.g. ``ActionNotSupported``) and ``text`` (the fault's reason)
    say what and why.
    """

    def __init__(self, where: str, operation: str, subcode: str, text: str) -> None:
        self.operation, self.subcode, self.text = operation, subcode, text
        kind = f"SOAP fault {subcode}" if subcode else "a SOAP fault without a subcode"
        super().__init__(f"{where}: {operation} failed with {kind}: {text or '(no reason given)'}")


#: The last reply the current task received: (HTTP status, Date header, body). Lets a call
#: read a fault zeep could not parse (an undeclared ``ter:`` prefix) and the device's Date.
_last_reply: ContextVar[tuple[int, str, bytes] | None] = ContextVar("_last_reply", default=None)


class _CappedTransport(zeep.transports.AsyncTransport):  # type: ignore[misc]
    """zeep's async transport, reading each reply as it arrives and at most ``limit`` bytes
    (decoded), and remembering it in ``_last_reply`` for the call's error mapping."""

    def __init__(self, client: httpx.AsyncClient, limit: int) -> None:
        super().__init__(client=client)
        self.limit = limit

    async def post(self, address: str, message: Any, headers: Any) -> httpx.Response:
        request = self.client.build_request("POST", address, content=message, headers=headers)
        response = await self.client.send(request, stream=True)
        try:
            body = await read_capped(response.aiter_bytes(), self.limit, redact(address))
        finally:
            await response.aclose()
        _last_reply.set((response.status_code, response.headers.get("Date", ""), body))
        kept = [
            (k, v)
            for k, v in response.headers.multi_items()
            if k.lower() not in ("content-encoding", "content-length", "transfer-encoding")
        ]
        return httpx.Response(response.status_code, headers=kept, content=body, request=request)


_SAFE_PARSER = etree.XMLParser(
    resolve_entities=False, no_network=True, huge_tree=False, remove_comments=True
)


def _raw_fault(body: bytes) -> tuple[str, str] | None:
    """(subcode, reason) of a SOAP fault read leniently — prefixes need not be declared, the
    envelope's namespace may be SOAP 1.1 or 1.2 — or None when ``body`` holds no fault."""
    try:
        root = etree.fromstring(body, parser=_SAFE_PARSER)
    except (etree.XMLSyntaxError, ValueError):
        return None
    if root is None:
        return None
    fault = next((e for e in root.iter() if _local(e) == "Fault"), None)
    if fault is None:
        return None
    values = [(e.text or "").strip() for e in fault.iter() if _local(e) in ("Value", "faultcode")]
    codes = [v.rpartition(":")[2] for v in values if v]
    subcode = codes[-1] if len(codes) > 1 else ""
    reason = next(
        ((e.text or "").strip() for e in fault.iter() if _local(e) in ("Text", "faultstring")),
        "",
    )
    return subcode, reason


def _local(element: Any) -> str:
    tag = element.tag
    return etree.QName(tag).localname if isinstance(tag, str) else ""


class _Token:
    """zeep WS-Security plugin: a fresh UsernameToken digest per call, clock-corrected."""

    def __init__(self, credentials: Credentials, offset: Callable[[], timedelta]) -> None:
        self._credentials = credentials
        self._offset = offset

    def __repr__(self) -> str:
        return f"<UsernameToken user={self._credentials.username!r}>"

    def apply(self, envelope: Any, headers: Any) -> Any:
        created = datetime.now(UTC) + self._offset()
        token = zeep.wsse.username.UsernameToken(
            self._credentials.username,
            self._credentials.password.reveal(),
            use_digest=True,
            created=created.replace(tzinfo=None),
            zulu_timestamp=True,
        )
        return token.apply(envelope, headers)

    def verify(self, envelope: Any) -> Any:
        return envelope


class SoapClient:
    """SOAP calls to one ONVIF device over one httpx connection pool.

    ``where`` names the device (no credentials); messages name the URL each call went to.
    ``timeout_s`` bounds each call. ``verify`` is httpx's TLS verification (True, False or a
    CA bundle path). ``max_body_bytes`` bounds each reply.
    """

    def __init__(
        self,
        where: str,
        credentials: Credentials | None,
        *,
        timeout_s: float,
        verify: bool | str = True,
        max_body_bytes: int = VENDOR_BODY_LIMIT,
    ) -> None:
        self.where = where
        self.max_body_bytes = max_body_bytes
        #: How the clock offset was found (see :meth:`measure_clock`).
        self.clock_source = "none"
        self.credentials = credentials
        self.timeout_s = timeout_s
        self.offset = timedelta(0)
        auth = (
            httpx.DigestAuth(credentials.username, credentials.password.reveal())
            if credentials is not None
            else None
        )
        # No idle keep-alive connection: each call's connection closes with its answer, so no
        # connection to the camera stays open between grants (the conformance suite checks it).
        self.http = httpx.AsyncClient(
            auth=auth,
            timeout=timeout_s,
            verify=tls_verify(verify),
            limits=httpx.Limits(max_keepalive_connections=0),
        )
        self._clients: dict[str, zeep.AsyncClient] = {}

    def __repr__(self) -> str:
        return f"<SoapClient {self.where}>"

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self.http.aclose()

    async def _client(self, name: str, authenticated: bool) -> zeep.AsyncClient:
        key = f"{name}:{authenticated}"
        if key not in self._clients:
            doc = await anyio.to_thread.run_sync(document, name)
            transport = _CappedTransport(self.http, self.max_body_bytes)
            wsse = (
                _Token(self.credentials, lambda: self.offset)
                if authenticated and self.credentials is not None
                else None
            )
            self._clients[key] = zeep.AsyncClient(
                doc, transport=transport, wsse=wsse, settings=zeep.Settings(strict=True)
            )
        return self._clients[key]

    async def call(
        self,
        service: str,
        xaddr: str,
        operation: str,
        *,
        authenticated: bool = True,
        **params: Any,
    ) -> Any:
        """Call ``operation`` of ``service`` at ``xaddr``; errors mapped to camgate's tree."""
        client = await self._client(service, authenticated)
        _wsdl, namespace, binding = SERVICES[service]
        # AsyncClient.create_service returns a synchronous proxy; build the async one.
        bound = client.wsdl.bindings[f"{{{namespace}}}{binding}"]
        proxy = zeep.proxy.AsyncServiceProxy(client, bound, address=xaddr)
        error: AdapterError | None = None
        where = f"{redact(xaddr)}"
        sent = authenticated and self.credentials is not None
        _last_reply.set(None)
        try:
            with anyio.fail_after(self.timeout_s):
                return await getattr(proxy, operation)(**params)
        except zeep.exceptions.Fault as fault:
            subcodes = list(fault.subcodes or [])
            subcode = etree.QName(subcodes[-1]).localname if subcodes else ""
            text = str(fault.message or "").strip()
            error = self._fault(where, operation, subcode, text, str(fault.code or ""), sent)
        except zeep.exceptions.TransportError as exc:
            status = exc.status_code
            raw = _last_reply.get()
            found = _raw_fault(raw[2]) if raw is not None else None
            if status == 401:
                error = CameraAuthError(
                    f"{where}: {operation}: the device refused the HTTP credentials (401)"
                    if self.credentials is not None
                    else f"{where}: {operation}: the device asks for credentials (401) and "
                    "none are configured"
                )
            elif status == 403:
                error = CameraAuthError(f"{where}: {operation}: forbidden (403)")
            elif found is not None:
                error = self._fault(where, operation, *found, "", sent)
            elif status == 200:
                error = CameraProtocolError(
                    f"{where}: {operation}: the answer is not well-formed SOAP XML"
                )
            else:
                error = CameraProtocolError(
                    f"{where}: {operation}: HTTP {status} without a SOAP answer"
                )
        except zeep.exceptions.Error as exc:
            # XMLParseError (an undeclared prefix, a body of another namespace), a missing
            # element, a forbidden entity: read what zeep could not, else say it is not ONVIF.
            raw = _last_reply.get()
            found = _raw_fault(raw[2]) if raw is not None else None
            if found is not None:
                error = self._fault(where, operation, *found, "", sent)
            else:
                error = CameraProtocolError(
                    f"{where}: {operation}: the answer is not the ONVIF SOAP reply expected "
                    f"({type(exc).__name__})"
                )
        except (etree.LxmlError, ValueError, TypeError, AttributeError) as exc:
            error = CameraProtocolError(
                f"{where}: {operation}: the answer is not ONVIF SOAP ({type(exc).__name__})"
            )
        except CameraProtocolError as exc:
            error = exc  # a body over max_body_bytes
        except (TimeoutError, httpx.TimeoutException):
            error = CameraUnreachable(
                f"{where}: {operation}: no answer within {self.timeout_s:g} s"
            )
        except httpx.ConnectError as exc:
            tls = "certificate" in str(exc).lower() or "ssl" in str(exc).lower()
            error = (
                CameraProtocolError(f"{where}: {operation}: TLS handshake failed")
                if tls
                else CameraUnreachable(f"{where}: {operation}: connection refused")
            )
        except httpx.HTTPError as exc:
            error = CameraUnreachable(f"{where}: {operation}: {type(exc).__name__}")
        # Raised outside the except blocks: lower-level messages may echo request content.
        raise error

    def _fault(
        self, where: str, operation: str, subcode: str, text: str, code: str, sent: bool
    ) -> AdapterError:
        """The camgate error for a SOAP fault: CameraAuthError for NotAuthorized (saying
        whether a UsernameToken was sent), else OnvifFault."""
        if subcode == "NotAuthorized" or "NotAuthorized" in code:
            how = (
                "WS-Security UsernameToken sent; clock offset applied "
                f"{self.offset.total_seconds():+.1f} s"
                if sent
                else "sent without credentials"
            )
            return CameraAuthError(
                f"{where}: {operation} refused: {text or 'not authorized'} ({how})"
            )
        return OnvifFault(where, operation, subcode, text)

    async def measure_clock(self, xaddr: str) -> timedelta:
        """Measure the device's clock and remember the offset (``offset``, ``clock_source``).

        GetSystemDateAndTime unauthenticated (``clock_source`` "device"). When that fails for
        any reason but an unreachable device, the failed reply's HTTP ``Date`` header gives a
        first offset ("http date"), and GetSystemDateAndTime is asked again with a
        UsernameToken dated by it ("device (authenticated)"); when that fails too the
        ``Date`` offset stays, else there is none ("none"). The offset is the device's UTC
        minus the host's, taken at the midpoint of the call. A reply without UTC leaves the
        offset as it was.
        """
        attempts: list[tuple[bool, str]] = [(False, "device")]
        if self.credentials is not None:
            attempts.append((True, "device (authenticated)"))
        self.clock_source = "none"
        for authenticated, source in attempts:
            before = datetime.now(UTC)
            try:
                answer = await self.call(
                    "device", xaddr, "GetSystemDateAndTime", authenticated=authenticated
                )
            except CameraUnreachable:
                raise
            except AdapterError as exc:
                log.info("%s: GetSystemDateAndTime failed: %s", self.where, exc)
                raw = _last_reply.get()
                if self.clock_source == "none" and raw is not None:
                    self._date_offset(raw[1])
                continue
            after = datetime.now(UTC)
            self.clock_source = source
            utc = getattr(answer, "UTCDateTime", None)
            d: Any = getattr(utc, "Date", None)
            t: Any = getattr(utc, "Time", None)
            try:
                device = datetime(d.Year, d.Month, d.Day, t.Hour, t.Minute, t.Second, tzinfo=UTC)
            except (AttributeError, TypeError, ValueError):
                break
            self.offset = device - (before + (after - before) / 2)
            break
        if abs(self.offset.total_seconds()) > 5:
            log.info("%s: device clock is %+.0f s off", self.where, self.offset.total_seconds())
        return self.offset

    def _date_offset(self, date: str) -> None:
        """Take the offset from an HTTP ``Date`` header, when it is a valid date."""
        try:
            stamp = parsedate_to_datetime(date) if date else None
        except (TypeError, ValueError):
            stamp = None
        if stamp is not None and stamp.tzinfo is not None:
            self.offset = stamp - datetime.now(UTC)
            self.clock_source = "http date"
