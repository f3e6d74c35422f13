"""``WS /live/{grant}``: a grant's live video as fragmented MP4 over a WebSocket.

The server is one more consumer of the edge: the socket's bytes are the packets of
:meth:`camgate.edge.Edge.open_live` (``browser=True``: H.265 transcoded to H.264, masks burnt
in), muxed by :func:`camgate.media.stream_bytes`. The server never opens a camera itself, so
every byte is behind the guard — the grant's signature checked by the edge, ``access.start``
durable before the camera is contacted, revocation and expiry ending the stream.

Who may open a socket: a caller whose role (and API token's scopes) allow ``media:view``, and
only for a grant issued on their own request; any other grant is "not found", as in every
route (its existence is not disclosed). A browser's session cookie is honoured only from the
server's own origin (cross-site WebSocket hijacking: browsers send cookies with a cross-site
handshake, and CSRF tokens cannot ride on it).

Every refusal and every end is a close frame with a code of :class:`CloseCode` and the
camgate error's name as the reason (docs/api.md, "Live socket").

A camera the registry says a remote edge serves (``camgate edge assign``) is opened through
that edge over NATS (:func:`camgate.edgenet.open_remote_live`, :class:`RemoteEdges`, ``camgate
serve --nats``): the edge verifies the grant offline, redeems it and audits the access in its
own log, and its end (revoked, stale, expired) closes the socket with the same codes.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import struct
from collections.abc import AsyncGenerator, AsyncIterator
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import anyio
import anyio.to_thread
from camgate import Gate
from camgate.edge import GuardedStream
from camgate.edgenet.hub import (
    EdgeUnreachable,
    RemoteStream,
    fetch_remote_snapshot,
    open_remote_live,
)
from camgate.errors import (
    AdapterError,
    CamgateError,
    ConsentRevoked,
    GrantError,
    GrantExpired,
    GrantReplayed,
    NotFound,
    ValidationError,
)
from camgate.media import stream_bytes
from camgate.models import Grant
from camgate.vocab import EndReason
from fastapi import APIRouter, Request, WebSocket
from starlette.websockets import WebSocketDisconnect, WebSocketState

from camgate_server.accounts import Caller
from camgate_server.app import caller_of
from camgate_server.errors import Forbidden, NotAuthenticated
from camgate_server.parsing import parse_bearer
from camgate_server.policy import Action, allowed
from camgate_server.settings import PROXY_SECRET_HEADER

if TYPE_CHECKING:
    from nats.aio.client import Client

__all__ = [
    "CloseCode",
    "Fmp4Segments",
    "RemoteEdges",
    "close_code",
    "close_remote_edges",
    "grant_of",
    "remote_edges",
    "router",
]

_log = logging.getLogger("camgate_server.live")


class CloseCode(enum.IntEnum):
    """The close codes of ``WS /live/{grant}`` (RFC 6455's private range; docs/api.md)."""

    REVOKED = 4001  #: the owner revoked consent (or the camera was removed)
    EXPIRED = 4002  #: the grant's time is over, or its incident closed or left its window
    FORBIDDEN = 4003  #: the role or token may not view media, a cross-site origin, a bad grant
    NOT_FOUND = 4004  #: no such grant, or one issued to someone else
    NOT_AUTHENTICATED = 4005  #: no valid session, token or proxy sign-on
    USED = 4006  #: the grant was redeemed already: a grant opens one socket
    CAMERA_ENDED = 4007  #: the camera ended the stream or could not be reached
    MASKS_CHANGED = 4008  #: the owner changed the privacy masks: ask again for the new ones
    GOING_AWAY = 1001  #: the server is shutting down
    INTERNAL = 1011  #: anything else (nothing about it is disclosed)


_BY_REASON = {
    EndReason.REVOKED: CloseCode.REVOKED,
    EndReason.EXPIRED: CloseCode.EXPIRED,
    EndReason.INCIDENT_CLOSED: CloseCode.EXPIRED,
    EndReason.MASKS_CHANGED: CloseCode.MASKS_CHANGED,
    EndReason.PRIVACY_ZONE: CloseCode.FORBIDDEN,
    EndReason.ACCOUNT_UNLINKED: CloseCode.CAMERA_ENDED,
    EndReason.COMPLETED: CloseCode.CAMERA_ENDED,
    EndReason.ERROR: CloseCode.CAMERA_ENDED,
    EndReason.CLOSED: CloseCode.GOING_AWAY,
}


def close_code(error: BaseException | None, end: EndReason | None = None) -> CloseCode:
    """The close code for what ended (or refused) a socket: a camgate ``error``, else the
    guarded stream's ``end`` reason."""
    if isinstance(error, ConsentRevoked):
        return CloseCode.REVOKED
    if isinstance(error, GrantExpired):
        return CloseCode.EXPIRED
    if isinstance(error, GrantReplayed):
        return CloseCode.USED
    if isinstance(error, NotAuthenticated):
        return CloseCode.NOT_AUTHENTICATED
    if isinstance(error, NotFound):
        return CloseCode.NOT_FOUND
    if isinstance(error, Forbidden | GrantError):
        return CloseCode.FORBIDDEN
    if isinstance(error, AdapterError):
        return CloseCode.CAMERA_ENDED
    if error is None and end is not None:
        return _BY_REASON.get(end, CloseCode.INTERNAL)
    return CloseCode.INTERNAL


# ---------------------------------------------------------------------- fMP4 segments


class Fmp4Segments:
    """Cut a fragmented MP4 byte stream into what Media Source Extensions append whole: the
    init segment (every box up to the ``moov``: ``ftyp``, ``moov``) and then one media
    segment per ``moof`` ... ``mdat``.

    :meth:`feed` takes bytes as the muxer wrote them, cut anywhere, and returns the segments
    completed by them; what follows the last ``mdat`` (the trailer's ``mfra``) is never
    returned. A box that is not MP4 (a size below 8, a 64-bit size beyond 2**40, a size 0 "to
    the end of file") raises ValidationError: the input is the server's own muxer's, so this
    is a bug, never something to guess around.
    """

    _MAX_BOX = 1 << 40

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._pending = bytearray()  # whole boxes of the segment being gathered
        self._init_sent = False

    def feed(self, data: bytes) -> list[bytes]:
        """The segments ``data`` completed, in order."""
        self._buffer += data
        done: list[bytes] = []
        while True:
            box = self._next_box()
            if box is None:
                return done
            kind, raw = box
            self._pending += raw
            # The init segment is out as soon as its moov is: the page sets up its decoder
            # while the first fragment is still being gathered.
            if kind == (b"mdat" if self._init_sent else b"moov"):
                done.append(bytes(self._pending))
                self._pending.clear()
                self._init_sent = True

    def _next_box(self) -> tuple[bytes, bytes] | None:
        buf = self._buffer
        if len(buf) < 8:
            return None
        (size,) = struct.unpack_from(">I", buf, 0)
        kind = bytes(buf[4:8])
        header = 8
        if size == 1:
            if len(buf) < 16:
                return None
            (size,) = struct.unpack_from(">Q", buf, 8)
            header = 16
        if size < header or size > self._MAX_BOX:
            raise ValidationError(f"not an MP4 box: {kind!r} of {size} bytes")
        if len(buf) < size:
            return None
        raw = bytes(buf[:size])
        del buf[:size]
        return kind, raw


# ---------------------------------------------------------------------- no secret in logs

#: Handshake headers whose values are credentials.
_SECRET_HEADERS = frozenset({"cookie", "authorization", PROXY_SECRET_HEADER.lower()})


class _RedactHandshake(logging.Filter):
    """websockets, under uvicorn, logs every handshake header at debug level (``< cookie:
    camgate_session=...``) through ``uvicorn.error``: the values of credential headers are
    replaced before any handler sees them."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if (
            record.msg in ("< %s: %s", "> %s: %s")
            and isinstance(args, tuple)
            and len(args) == 2
            and str(args[0]).lower() in _SECRET_HEADERS
        ):
            record.args = (args[0], "<redacted>")
        return True


def _redact_handshake_logs() -> None:
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _RedactHandshake) for f in logger.filters):
        logger.addFilter(_RedactHandshake())


# Whoever serves this router runs uvicorn's WebSocket protocol: redact from the start.
_redact_handshake_logs()


# ---------------------------------------------------------------------- whose grant


def grant_of(gate: Gate, caller: Caller, grant_id: str) -> tuple[Grant, str]:
    """The grant ``grant_id`` and its signed token, when it was issued on ``caller``'s own
    request; NotFound otherwise (another officer's grant is not disclosed). The token's
    signature is checked here (GrantForged) and again by the edge that redeems it. Blocking."""
    if not isinstance(grant_id, str) or not 0 < len(grant_id) <= 64:
        raise NotFound("no such grant")
    try:
        token = gate.store.get_grant_token(grant_id)
    except NotFound:
        raise NotFound(f"no grant {grant_id!r} of yours") from None
    grant = gate.edge.verifier.verify(token)
    asked = gate.store.get_request(grant.request_id)
    if asked.requested_by != caller.account.id:
        raise NotFound(f"no grant {grant_id!r} of yours")
    return grant, token


# ---------------------------------------------------------------------- the socket

router = APIRouter()


def _same_origin(websocket: WebSocket) -> bool:
    """True when the handshake has no Origin (not a browser) or one naming this host."""
    origin = websocket.headers.get("origin")
    if origin is None:
        return True
    host = websocket.headers.get("host", "")
    return urlsplit(origin).netloc.lower() == host.lower() and bool(host)


async def _authorised(websocket: WebSocket, grant_id: str) -> tuple[Grant, str]:
    # The handshake is an HTTP GET (RFC 6455): the same authentication as every GET route.
    scope: dict[str, Any] = {**websocket.scope, "type": "http", "method": "GET"}
    caller = await caller_of(Request(scope))
    bearer = parse_bearer(websocket.headers.get("authorization"))
    if bearer is None and not _same_origin(websocket):
        raise Forbidden("a session opens a live socket only from this server's own pages")
    if not allowed(caller.account.role, Action.MEDIA_VIEW, caller.scopes):
        why = "the token's scopes do not" if caller.scopes is not None else "the role does not"
        raise Forbidden(f"{why} allow {Action.MEDIA_VIEW}")
    gate: Gate = websocket.app.state.gate
    return await anyio.to_thread.run_sync(grant_of, gate, caller, grant_id)


# ---------------------------------------------------------------------- remote edges

#: A live stream the socket sends: the hub's own edge's, or a remote edge's over NATS.
LiveStream = GuardedStream | RemoteStream


def _end_of(stream: LiveStream) -> EndReason | None:
    """Why the stream ended (None while it runs)."""
    return stream.end_reason if isinstance(stream, RemoteStream) else stream.stats().end_reason


class RemoteEdges:
    """The server's one NATS connection to remote edges (``camgate serve --nats``), dialled at
    the first live socket of a camera behind one, and the opening of streams through it.
    ``nats_url`` None: a camera behind a remote edge is refused with EdgeUnreachable."""

    def __init__(self, nats_url: str | None, timeout_s: float = 10.0) -> None:
        self.nats_url = nats_url
        self.timeout_s = timeout_s
        self._nc: Client | None = None
        self._lock = anyio.Lock()

    def __repr__(self) -> str:
        return f"<RemoteEdges connected={self._nc is not None}>"

    async def _client(self, edge_id: str) -> Client:
        if self.nats_url is None:
            raise EdgeUnreachable(
                f"the camera is behind edge {edge_id!r} and this server has no NATS "
                "(camgate serve --nats URL)"
            )
        async with self._lock:
            if self._nc is None or self._nc.is_closed:
                import nats

                try:
                    self._nc = await nats.connect(
                        self.nats_url, name="camgate-serve", max_reconnect_attempts=-1,
                        reconnect_time_wait=0.2, connect_timeout=5, allow_reconnect=True,
                    )  # fmt: skip
                except Exception as exc:
                    why = type(exc).__name__
                    raise EdgeUnreachable(f"NATS could not be reached ({why})") from None
            return self._nc

    async def open(self, edge_id: str, camera_id: str, token: str) -> RemoteStream:
        """Open ``camera_id``'s live stream on edge ``edge_id`` (browser video): what the edge
        refused with (:func:`~camgate.edgenet.open_remote_live`), EdgeUnreachable when no
        such edge is connected or it did not answer within ``timeout_s``."""
        nc = await self._client(edge_id)
        try:
            return await open_remote_live(
                nc, edge_id, camera_id, token, self.timeout_s, browser=True
            )
        except TimeoutError:
            raise EdgeUnreachable(
                f"edge {edge_id!r} did not answer within {self.timeout_s:g} s"
            ) from None

    async def snapshot(self, edge_id: str, camera_id: str, token: str) -> bytes:
        """One still of ``camera_id`` from edge ``edge_id`` under a snapshot grant: the JPEG
        (:func:`~camgate.edgenet.fetch_remote_snapshot`; its errors)."""
        nc = await self._client(edge_id)
        return await fetch_remote_snapshot(nc, edge_id, camera_id, token, self.timeout_s * 3)

    async def aclose(self) -> None:
        """Close the NATS connection (idempotent)."""
        nc, self._nc = self._nc, None
        if nc is not None:
            with contextlib.suppress(Exception):
                await nc.close()


def remote_edges(app: Any) -> RemoteEdges:
    """The app's :class:`RemoteEdges` (made at first use from ``settings.nats_url``)."""
    remote = getattr(app.state, "remote_edges", None)
    if remote is None:
        remote = app.state.remote_edges = RemoteEdges(app.state.settings.nats_url)
    return remote


async def close_remote_edges(app: Any) -> None:
    """Close the app's NATS connection to remote edges, if one was made."""
    remote = getattr(app.state, "remote_edges", None)
    if remote is not None:
        await remote.aclose()


async def _open(websocket: WebSocket, grant: Grant, token: str) -> LiveStream:
    """Open the grant's camera: through the remote edge the registry names, else the hub's."""
    gate: Gate = websocket.app.state.gate
    edge_id = await anyio.to_thread.run_sync(gate.store.edge_of, grant.camera_id)
    if edge_id is not None:
        return await remote_edges(websocket.app).open(edge_id, grant.camera_id, token)
    try:
        return await gate.edge.open_live(grant.camera_id, token, browser=True)
    except TimeoutError:  # the edge's bound on opening: the grant's time ran out first
        raise GrantExpired(f"grant {grant.id} ran out before the camera answered") from None


async def _segments(stream: LiveStream) -> AsyncIterator[bytes]:
    """The stream's fMP4 segments, ending with the stream; what the muxer emits only after
    the stream ended (its last fragment, the trailer) goes out only when the camera ended it
    (``completed``), never after an expiry, revocation or error."""
    cutter = Fmp4Segments()
    chunks = stream_bytes(stream, format="fmp4", fragments="frame")
    try:
        async for chunk in chunks:
            end = _end_of(stream)
            if end is not None and end is not EndReason.COMPLETED:
                return
            for segment in cutter.feed(chunk):
                yield segment
    finally:
        if isinstance(chunks, AsyncGenerator):  # closed here, not whenever it is collected
            await chunks.aclose()


async def _close(websocket: WebSocket, code: CloseCode, reason: str) -> None:
    if websocket.application_state is WebSocketState.CONNECTED:
        with contextlib.suppress(RuntimeError, OSError, WebSocketDisconnect):
            await websocket.close(int(code), reason[:123])  # unless the client left first


@router.websocket("/live/{grant_id}")
async def live(websocket: WebSocket, grant_id: str) -> None:
    """A live grant's video as fragmented MP4 (H.264), one binary message per segment: first
    the init segment, then a media segment per keyframe interval. Only for the officer the
    grant was issued to (``media:view``); the grant opens one socket. Revocation, expiry and
    every refusal close the socket with a documented code (:class:`CloseCode`) and the
    camgate error's name as the reason."""
    await websocket.accept()
    failed: list[BaseException] = []
    stream: LiveStream | None = None
    left = False
    try:
        grant, token = await _authorised(websocket, grant_id)
        stream = await _open(websocket, grant, token)
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(_pump, websocket, stream, failed, tasks.cancel_scope)
            await _until_client_leaves(websocket)
            left = True
            tasks.cancel_scope.cancel()
    except CamgateError as exc:
        failed.append(exc)
    except Exception as exc:
        _log.error("live socket failed: %s", type(exc).__name__)
        failed.append(exc)
    try:
        # The client is told first: closing the camera's connection waits for the revoker
        # (which makes the revocation durable first) and for the camera's next frame.
        error = failed[0] if failed else None
        if not (left or isinstance(error, WebSocketDisconnect | OSError)):
            end = None if stream is None else _end_of(stream)
            code = close_code(error, end)
            if code is CloseCode.INTERNAL:
                name = "InternalError"
            else:
                name = type(error).__name__ if error is not None else str(end)
            await _close(websocket, code, name)
    finally:
        if stream is not None:
            with anyio.CancelScope(shield=True):
                await stream.aclose()


async def _pump(
    websocket: WebSocket,
    stream: LiveStream,
    failed: list[BaseException],
    scope: anyio.CancelScope,
) -> None:
    """Send the stream's segments until it ends; what ended it goes into ``failed``."""
    try:
        async for segment in _segments(stream):
            await websocket.send_bytes(segment)
    except Exception as exc:
        if not isinstance(exc, CamgateError | WebSocketDisconnect | OSError):
            _log.error("live socket failed: %s", type(exc).__name__)
        failed.append(exc)
    finally:
        scope.cancel()


async def _until_client_leaves(websocket: WebSocket) -> None:
    """Wait until the client closes (it sends nothing; a message of its own is ignored)."""
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
