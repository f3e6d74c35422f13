"""The SOAP side of ONVIF: zeep's async client over httpx, on onvif-zeep's WSDLs.

Why not onvif-zeep's ``ONVIFCamera``: it is synchronous (requests), calls GetCapabilities the
moment it is built (the call some firmware answers with HTTP 500), and cannot measure the
camera's clock before the first authenticated call. We take its WSDLs and its service table
(``onvif.definition.SERVICES``) and drive zeep's :class:`zeep.AsyncClient` over one
:class:`httpx.AsyncClient` per device: nothing blocks the event loop (parsing a WSDL does, once
per process, in a worker thread), time-outs are anyio's, HTTP digest on the SOAP endpoint is
httpx's, and TLS settings are httpx's.

Every call carries a fresh WS-Security UsernameToken digest whose ``Created`` is the host's
clock corrected by the offset measured with the unauthenticated ``GetSystemDateAndTime``.
Errors are mapped to :mod:`camgate.errors` with the SOAP fault's text; none carries a credential.
"""

from __future__ import annotations

import functools
import importlib.metadata
import logging
import ssl
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
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
from camgate.adapters import Credentials
from camgate.errors import (
    AdapterError,
    CameraAuthError,
    CameraProtocolError,
    CameraUnreachable,
)
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
        super().__init__(f"{where}: {operation} failed with SOAP fault {subcode or '?'}: {text}")


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

    ``where`` names the device in messages (no credentials). ``timeout_s`` bounds each call.
    ``verify`` is httpx's TLS verification (True, False or a CA bundle path).
    """

    def __init__(
        self,
        where: str,
        credentials: Credentials | None,
        *,
        timeout_s: float,
        verify: bool | str = True,
    ) -> None:
        self.where = where
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
            transport = zeep.transports.AsyncTransport(client=self.http)
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
        try:
            with anyio.fail_after(self.timeout_s):
                return await getattr(proxy, operation)(**params)
        except zeep.exceptions.Fault as fault:
            subcodes = list(fault.subcodes or [])
            subcode = etree.QName(subcodes[-1]).localname if subcodes else ""
            text = str(fault.message or "").strip()
            if subcode == "NotAuthorized" or "NotAuthorized" in str(fault.code or ""):
                error = CameraAuthError(
                    f"{self.where}: {operation} refused: {text or 'not authorized'} "
                    f"(WS-Security UsernameToken; clock offset applied "
                    f"{self.offset.total_seconds():+.1f} s)"
                )
            else:
                error = OnvifFault(self.where, operation, subcode, text)
        except zeep.exceptions.TransportError as exc:
            status = exc.status_code
            if status == 401:
                error = CameraAuthError(
                    f"{self.where}: {operation}: the device refused the HTTP credentials (401)"
                )
            elif status == 403:
                error = CameraAuthError(f"{self.where}: {operation}: forbidden (403)")
            else:
                error = CameraProtocolError(
                    f"{self.where}: {operation}: HTTP {status} without a SOAP answer"
                )
        except (etree.XMLSyntaxError, zeep.exceptions.XMLSyntaxError, ValueError) as exc:
            error = CameraProtocolError(
                f"{self.where}: {operation}: the answer is not ONVIF SOAP ({type(exc).__name__})"
            )
        except TimeoutError:
            error = CameraUnreachable(
                f"{self.where}: {operation}: no answer within {self.timeout_s:g} s"
            )
        except httpx.TimeoutException:
            error = CameraUnreachable(
                f"{self.where}: {operation}: no answer within {self.timeout_s:g} s"
            )
        except httpx.ConnectError as exc:
            tls = "certificate" in str(exc).lower() or "ssl" in str(exc).lower()
            error = (
                CameraProtocolError(f"{self.where}: {operation}: TLS handshake failed")
                if tls
                else CameraUnreachable(f"{self.where}: {operation}: connection refused")
            )
        except httpx.HTTPError as exc:
            error = CameraUnreachable(f"{self.where}: {operation}: {type(exc).__name__}")
        # Raised outside the except blocks: lower-level messages may echo request content.
        raise error

    async def measure_clock(self, xaddr: str) -> timedelta:
        """Ask the device's clock (unauthenticated GetSystemDateAndTime) and remember the offset.

        The offset is the device's UTC minus the host's, taken at the midpoint of the call.
        A device that does not report UTC leaves the offset at zero.
        """
        before = datetime.now(UTC)
        answer = await self.call("device", xaddr, "GetSystemDateAndTime", authenticated=False)
        after = datetime.now(UTC)
        utc = getattr(answer, "UTCDateTime", None)
        if utc is None:
            return self.offset
        d, t = utc.Date, utc.Time
        device = datetime(d.Year, d.Month, d.Day, t.Hour, t.Minute, t.Second, tzinfo=UTC)
        self.offset = device - (before + (after - before) / 2)
        if abs(self.offset.total_seconds()) > 5:
            log.info("%s: device clock is %+.0f s off", self.where, self.offset.total_seconds())
        return self.offset
