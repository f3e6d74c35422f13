"""Wyze's cloud WebRTC route: Kinesis Video Streams signalling, media through camgate's
WebRTC receive component (:class:`camgate.media.webrtc.WebRtcReceiver`, no re-encoding).

The exchange: ``GET <webrtc_url>/signaling/device/<mac>?use_trickle=true`` with the account's
bearer token gives ``{signalingUrl, servers}`` (a pre-signed websocket URL and ICE servers);
on that websocket the viewer sends ``SDP_OFFER`` and receives ``SDP_ANSWER``,
``ICE_CANDIDATE`` and ``STATUS_RESPONSE`` messages, their ``messagePayload`` base64 JSON.

The signalling URL must be ``wss://`` (``ws://`` only to a loopback host) on one of the
``signaling_hosts``; it is never shown (it is pre-signed), only its host. Every message from
the channel is read by :func:`parse_message` (fuzzed), which returns a :class:`KvsMessage` or
raises CameraProtocolError.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import anyio
import attrs
from camgate.errors import CameraProtocolError, CameraUnreachable
from camgate.media.webrtc import IceServer, WebRtcReceiver
from camgate.models import MediaPacket, StreamInfo

from camgate_wyze.settings import is_loopback

__all__ = [
    "KvsLiveStream",
    "KvsMessage",
    "check_signaling_url",
    "offer_message",
    "parse_ice_servers",
    "parse_message",
]

#: Longest signalling message read.
MAX_MESSAGE = 256 * 1024


@attrs.frozen
class KvsMessage:
    """One message from the signalling channel: ``kind`` (``SDP_ANSWER``, ``ICE_CANDIDATE``,
    ``STATUS_RESPONSE`` or another type, kept as sent), and what it carries: ``sdp`` (an
    answer), ``candidate`` with ``sdp_mid``/``sdp_mline_index``, or ``status`` with
    ``description`` (a STATUS_RESPONSE)."""

    kind: str
    sdp: str = attrs.field(default="", repr=False)
    candidate: str = ""
    sdp_mid: str | None = None
    sdp_mline_index: int | None = None
    status: int = 0
    description: str = ""


def _payload(value: Any) -> Mapping[str, Any]:
    if not isinstance(value, str):
        raise CameraProtocolError("a KVS message without a messagePayload")
    try:
        decoded = json.loads(base64.b64decode(value, validate=True))
    except (binascii.Error, ValueError, RecursionError):
        raise CameraProtocolError("a KVS messagePayload is not base64 JSON") from None
    if not isinstance(decoded, Mapping):
        raise CameraProtocolError("a KVS messagePayload is not a JSON object")
    return decoded


def parse_message(text: str | bytes) -> KvsMessage:
    """Read one signalling message (see the module docstring); CameraProtocolError for
    anything that is not one. Other message types are returned with their ``kind`` only."""
    if len(text) > MAX_MESSAGE:
        raise CameraProtocolError("a KVS message longer than the limit")
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        raise CameraProtocolError("a KVS message is not JSON") from None
    if not isinstance(value, Mapping) or not isinstance(value.get("messageType"), str):
        raise CameraProtocolError("a KVS message without a messageType")
    kind = value["messageType"][:40]
    if kind == "SDP_ANSWER":
        sdp = _payload(value.get("messagePayload")).get("sdp")
        if not isinstance(sdp, str) or not sdp:
            raise CameraProtocolError("a KVS SDP_ANSWER without an SDP")
        return KvsMessage(kind, sdp=sdp)
    if kind == "ICE_CANDIDATE":
        p = _payload(value.get("messagePayload"))
        candidate, mid, index = p.get("candidate"), p.get("sdpMid"), p.get("sdpMLineIndex")
        if not isinstance(candidate, str):
            raise CameraProtocolError("a KVS ICE_CANDIDATE without a candidate")
        return KvsMessage(
            kind,
            candidate=candidate,
            sdp_mid=mid if isinstance(mid, str) else None,
            sdp_mline_index=index
            if isinstance(index, int) and not isinstance(index, bool)
            else None,
        )
    if kind == "STATUS_RESPONSE":
        status = value.get("statusResponse")
        if not isinstance(status, Mapping):
            raise CameraProtocolError("a KVS STATUS_RESPONSE without a statusResponse")
        code = status.get("statusCode")
        try:
            number = int(code) if isinstance(code, int | str) and not isinstance(code, bool) else 0
        except ValueError:
            number = 0
        description = status.get("description")
        return KvsMessage(
            kind,
            status=number,
            description=(description if isinstance(description, str) else "")[:80],
        )
    return KvsMessage(kind)


def offer_message(sdp: str) -> str:
    """The ``SDP_OFFER`` message carrying ``sdp``."""
    payload = base64.b64encode(json.dumps({"type": "offer", "sdp": sdp}).encode()).decode()
    return json.dumps({"action": "SDP_OFFER", "messagePayload": payload})


def check_signaling_url(url: Any, hosts: tuple[str, ...]) -> str:
    """``url`` if it is ``wss://`` (``ws://`` to a loopback host) on one of ``hosts`` (an entry
    starting with ``.`` matches every host under it); CameraProtocolError naming only the host."""
    if not isinstance(url, str):
        raise CameraProtocolError("Wyze's signalling reply has no signalingUrl")
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    secure = parts.scheme == "wss" or (parts.scheme == "ws" and is_loopback(host))
    allowed = any(host == h or (h.startswith(".") and host.endswith(h)) for h in hosts)
    if not secure or not allowed:
        raise CameraProtocolError(
            f"Wyze's signalling URL (host {host[:60]!r}) is not a wss URL on signaling_hosts"
        )
    return url


def parse_ice_servers(value: Any) -> list[IceServer]:
    """The ``servers`` of the signalling reply as ICE servers (entries with ``url`` or
    ``urls``, ``username``, ``credential``); malformed entries are CameraProtocolError."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise CameraProtocolError("Wyze's signalling reply: servers is not a list")
    servers = []
    for entry in value:
        if not isinstance(entry, Mapping):
            raise CameraProtocolError("Wyze's signalling reply: a server is not an object")
        urls = entry.get("urls", entry.get("url"))
        urls = [urls] if isinstance(urls, str) else urls
        if not isinstance(urls, list) or not all(isinstance(u, str) for u in urls):
            raise CameraProtocolError("Wyze's signalling reply: a server without urls")
        user, cred = entry.get("username"), entry.get("credential")
        servers.append(
            IceServer(
                urls=tuple(urls),
                username=user if isinstance(user, str) else None,
                credential=cred if isinstance(cred, str) else None,
            )
        )
    return servers


class KvsLiveStream:
    """A live session over KVS signalling (a :class:`~camgate.adapters.LiveStream`): the
    first packet handed over is a keyframe; ``aclose`` closes the peer connection and the
    signalling websocket, and returns once both are closed."""

    info: StreamInfo

    def __init__(self, receiver: WebRtcReceiver, socket: Any, where: str) -> None:
        self._receiver = receiver
        self._socket = socket
        self._where = where
        self._packets = receiver.packets()
        self._first: MediaPacket | None = None
        self._closed = False
        self._reader = asyncio.ensure_future(self._read_candidates())
        self.info = receiver.stream_info

    def __repr__(self) -> str:
        return f"KvsLiveStream({self._where})"

    @classmethod
    async def open(
        cls, signaling_url: str, servers: list[IceServer], where: str, timeout_s: float
    ) -> KvsLiveStream:
        """Offer, take the answer (and trickled candidates), wait for the first keyframe.
        STATUS_RESPONSE with an error → CameraUnreachable (the device is offline or refused);
        no answer or no keyframe within ``timeout_s`` → CameraUnreachable."""
        from websockets.exceptions import WebSocketException

        receiver = WebRtcReceiver(ice_servers=servers, connect_timeout=timeout_s)
        socket: Any = None
        stream: KvsLiveStream | None = None
        try:
            with anyio.fail_after(timeout_s):
                try:
                    socket = await _connect(signaling_url, timeout_s)
                except _Redirected:
                    raise CameraProtocolError(
                        f"{where}: the signalling channel redirects; not followed"
                    ) from None
                except (OSError, WebSocketException):
                    raise CameraUnreachable(
                        f"{where}: cannot open the signalling channel"
                    ) from None
                await socket.send(offer_message(await receiver.offer()))
                while True:
                    message = await _receive(socket, where)
                    if message.kind == "SDP_ANSWER":
                        await receiver.accept(message.sdp)
                        break
                    await _apply(receiver, message, where)
                stream = cls(receiver, socket, where)
                await stream._until_keyframe()
        except TimeoutError:
            await _close(receiver, socket)
            raise CameraUnreachable(f"{where}: no picture within {timeout_s:g} s") from None
        except BaseException:
            with anyio.CancelScope(shield=True):
                if stream is not None:
                    await stream.aclose()
                await _close(receiver, socket)
            raise
        return stream

    async def _read_candidates(self) -> None:
        """Candidates the camera trickles after its answer, until the channel closes."""
        from websockets.exceptions import WebSocketException

        with contextlib.suppress(WebSocketException, CameraProtocolError, CameraUnreachable):
            while True:
                await _apply(self._receiver, await _receive(self._socket, self._where), self._where)

    async def _until_keyframe(self) -> None:
        async for packet in self._packets:
            if packet.is_keyframe:
                self._first = packet
                self.info = self._receiver.stream_info
                return
        raise CameraUnreachable(f"{self._where}: the session ended before a keyframe")

    def __aiter__(self) -> KvsLiveStream:
        return self

    async def __anext__(self) -> MediaPacket:
        if self._first is not None:
            first, self._first = self._first, None
            return first
        if self._closed:
            raise StopAsyncIteration
        packet = await self._packets.__anext__()
        if packet.stream is not self.info and packet.stream.width:
            self.info = packet.stream
        return packet

    async def aclose(self) -> None:
        """Close the peer connection and the signalling channel. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._reader.cancel()
        with anyio.CancelScope(shield=True):
            await _close(self._receiver, self._socket)
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader


class _Redirected(Exception):
    """The signalling URL answered with a redirect (never followed)."""


async def _connect(url: str, timeout_s: float) -> Any:
    """The signalling websocket: no proxy, no redirect followed (websockets follows them,
    across hosts too, unless told not to), messages at most :data:`MAX_MESSAGE`."""
    from websockets.asyncio.client import connect

    class NoRedirect(connect):
        def process_redirect(self, exc: Exception) -> Exception | str:
            return _Redirected()

    return await NoRedirect(url, max_size=MAX_MESSAGE, proxy=None, open_timeout=timeout_s)


async def _receive(socket: Any, where: str) -> KvsMessage:
    """The next signalling message; CameraUnreachable once the channel closes."""
    from websockets.exceptions import WebSocketException

    try:
        return parse_message(await socket.recv())
    except WebSocketException:
        raise CameraUnreachable(f"{where}: the signalling channel closed") from None


async def _apply(receiver: WebRtcReceiver, message: KvsMessage, where: str) -> None:
    """Act on a message other than the answer: add a candidate; an error status is
    CameraUnreachable (the device is offline, or Wyze refused the session)."""
    if message.kind == "STATUS_RESPONSE" and message.status >= 400:
        raise CameraUnreachable(
            f"{where}: Wyze's signalling refused ({message.status}: {message.description})"
        )
    if message.kind == "ICE_CANDIDATE":
        await receiver.add_ice_candidate(
            message.candidate, sdp_mid=message.sdp_mid, sdp_mline_index=message.sdp_mline_index
        )


async def _close(receiver: WebRtcReceiver, socket: Any) -> None:
    await receiver.aclose()
    if socket is not None:
        await socket.close()
