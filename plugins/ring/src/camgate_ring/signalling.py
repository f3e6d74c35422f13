"""Live video over the Ring app's signalling websocket (the app backend), into
:class:`camgate.media.webrtc.WebRtcReceiver`.

What the public clients do (docs/ring.md, "The app backend"), and what this module promises:

1. **Ticket.** ``POST <ticket_url>`` with the account's bearer token and ``hardware_id`` →
   ``{"ticket": …}``; a 401 is retried once after a token refresh (:func:`request_ticket`).
2. **Socket.** ``wss://…/ws?api_version=4.0&auth_type=ring_solutions&client_id=ring_site-<uuid>
   &token=<ticket>`` with a User-Agent (Ring closes sockets without one). No redirect is
   followed; TLS is verified (``ssl_context`` only adds a trusted CA, e.g. a simulator's).
3. **Offer/answer.** ``live_view`` carries the receiver's offer (ICE gathered, receive-only
   H.264); Ring answers ``session_created`` and ``sdp`` (the answer); the client then sends
   ``activate_session`` (else Ring ends the stream at about 70 s) and ``ping`` every
   ``ping_interval_s`` (5 s, as the app does). ``ice`` candidates Ring trickles are added to the
   peer connection.
4. **Caps.** Ring documents no cap for this API; with ``limit_s`` camgate applies one (the
   adapter: Ring's Partner caps, 30 s on a battery, 60 s on line power): the session is closed
   as in 5., and the stream's packets end, so the edge's relay renews it within the grant.
5. **Ending.** :meth:`SignallingSession.aclose` sends ``close`` (code 0) and closes the socket
   and the peer connection; idempotent. Ring's ``close`` (code 5: authentication; 6: no ping),
   or the socket dropping, ends the receiver (its packets stop), which the live stream reports.

Errors before the answer: a close with code 5 or a refused ticket → CameraAuthError; no socket,
a timeout, or another close → CameraUnreachable; a message that is not Ring's JSON →
CameraProtocolError. The ticket and the socket URL (which carries it) never appear in a message,
log record or repr.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
import uuid
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

import anyio
import httpx
from camgate.errors import CameraAuthError, CameraProtocolError, CameraUnreachable
from camgate.media.webrtc import WebRtcReceiver
from camgate.models import redact_address
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import WebSocketException

from camgate_ring.app import USER_AGENT, AppClient
from camgate_ring.partner import MAX_BODY

__all__ = ["SignallingSession", "request_ticket", "signalling_connect"]

log = logging.getLogger(__name__)


def _not_debug(record: logging.LogRecord) -> bool:
    return record.levelno > logging.DEBUG


#: websockets' own logger for our sockets: its debug records print the request line, whose
#: query carries the ticket, so they are dropped.
_SOCKET_LOG = logging.getLogger(f"{__name__}.socket")
_SOCKET_LOG.addFilter(_not_debug)

#: The largest signalling message accepted (an SDP answer is a few kB).
MAX_MESSAGE = 256 * 1024
#: Ring's close codes (the public clients name them).
CLOSE_NORMAL, CLOSE_AUTH, CLOSE_PING_TIMEOUT = 0, 5, 6


class _NoRedirect(connect):
    """``websockets``' connect that follows no redirect (credentials stay with their host)."""

    def process_redirect(self, exc: Exception) -> Exception | str:
        return exc


async def request_ticket(client: AppClient, ticket_url: str) -> str:
    """A signalling ticket for the account (``POST ticket_url``, bearer, ``hardware_id``);
    CameraAuthError when Ring refuses it after one refresh, CameraProtocolError when the reply
    carries none, CameraUnreachable when Ring cannot be reached."""
    where = redact_address(ticket_url)
    for attempt in range(2):
        used, auth = await client.authorised()
        try:
            response = await client.http.post(
                ticket_url,
                headers={"hardware_id": client.hardware_id, "User-Agent": USER_AGENT, **auth},
            )
        except httpx.HTTPError as exc:
            raise CameraUnreachable(f"{where}: no ticket ({type(exc).__name__})") from None
        if response.status_code == 401 and not attempt:
            await client.refresh(stale=used)
            continue
        if response.status_code in (401, 403):
            raise CameraAuthError(
                f"{where}: Ring refused a live-view ticket ({response.status_code})"
            )
        if response.status_code != 200:
            raise CameraUnreachable(f"{where}: Ring answered {response.status_code} to the ticket")
        try:
            ticket = json.loads(response.content[:MAX_BODY])["ticket"]
        except (ValueError, KeyError, TypeError):
            raise CameraProtocolError(f"{where}: the ticket reply is not Ring's") from None
        if not isinstance(ticket, str) or not 0 < len(ticket) <= 4096:
            raise CameraProtocolError(f"{where}: the ticket reply is not Ring's")
        return ticket
    raise AssertionError("unreachable")  # pragma: no cover


def _message(raw: str | bytes) -> tuple[str, dict[str, Any]]:
    """(method, body) of a signalling message; CameraProtocolError when it is not one."""
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):
        raise CameraProtocolError("Ring's signalling sent a message that is not JSON") from None
    if not isinstance(value, Mapping) or not isinstance(value.get("method"), str):
        raise CameraProtocolError("Ring's signalling sent a message without a method")
    body = value.get("body", {})
    if not isinstance(body, Mapping):
        raise CameraProtocolError("Ring's signalling sent a message whose body is not an object")
    return value["method"], dict(body)


def _close_reason(body: Mapping[str, Any]) -> tuple[int, str]:
    reason = body.get("reason", {})
    if not isinstance(reason, Mapping):
        return -1, ""
    code, text = reason.get("code", -1), reason.get("text", "")
    return (code if isinstance(code, int) else -1), (text[:200] if isinstance(text, str) else "")


class SignallingSession:
    """One live-view session over the signalling socket: ``receiver`` (its packets), the
    ``session_id`` Ring gave, and what Ring said when it ended it (``ended_by``: (code, text))."""

    def __init__(
        self,
        socket: ClientConnection,
        receiver: WebRtcReceiver,
        doorbot_id: int,
        session_id: str,
        ping_interval_s: float,
        limit_s: float | None = None,
    ) -> None:
        self.receiver = receiver
        self.session_id = session_id
        self.ended_by: tuple[int, str] | None = None
        self._socket = socket
        self._doorbot = doorbot_id
        self._ping_interval = ping_interval_s
        self._closed = False
        self._tasks = [
            asyncio.create_task(self._read()),
            asyncio.create_task(self._ping()),
        ]
        if limit_s is not None:
            self._tasks.append(asyncio.create_task(self._end_after(limit_s)))

    def __repr__(self) -> str:
        return f"SignallingSession(doorbot={self._doorbot}, session={self.session_id!r})"

    async def send(self, method: str, **body: Any) -> None:
        """Send ``method`` with ``body`` (the doorbot and session ids added) and a dialog id."""
        message = {
            "method": method,
            "dialog_id": str(uuid.uuid4()),
            "body": {"doorbot_id": self._doorbot, "session_id": self.session_id, **body},
        }
        await self._socket.send(json.dumps(message))

    async def _ping(self) -> None:
        with contextlib.suppress(WebSocketException, OSError):
            while True:
                await anyio.sleep(self._ping_interval)
                await self.send("ping")

    async def _end_after(self, limit_s: float) -> None:
        """camgate's cap: after ``limit_s`` tell Ring (``close``) and close the socket; the
        reader then ends the receiver, as when Ring ends a session."""
        await anyio.sleep(limit_s)
        self.ended_by = (CLOSE_NORMAL, f"camgate's live-session cap ({limit_s:g} s)")
        with contextlib.suppress(WebSocketException, OSError):
            await self._socket.send(
                json.dumps({"method": "close", "reason": {"code": CLOSE_NORMAL, "text": ""}})
            )
            await self._socket.close()

    async def _read(self) -> None:
        try:
            async for raw in self._socket:
                method, body = _message(raw)
                if method == "close":
                    self.ended_by = _close_reason(body)
                    log.info("Ring ended the live view (code %d)", self.ended_by[0])
                    break
                if method == "ice" and isinstance(body.get("ice"), str):
                    index = body.get("mlineindex", 0)
                    await self.receiver.add_ice_candidate(
                        body["ice"], sdp_mline_index=index if isinstance(index, int) else 0
                    )
        except (WebSocketException, OSError, CameraProtocolError) as exc:
            log.info("Ring's signalling socket ended (%s)", type(exc).__name__)
        finally:
            if not self._closed:
                await self.receiver.aclose()  # the packets end: the stream sees Ring's end

    async def aclose(self) -> None:
        """Tell Ring (``close``, code 0), close the socket and the peer connection. Idempotent."""
        if self._closed:
            return
        self._closed = True
        reader, *others = self._tasks
        with anyio.CancelScope(shield=True):
            for task in others:
                task.cancel()
            with contextlib.suppress(WebSocketException, OSError):
                await self._socket.send(
                    json.dumps({"method": "close", "reason": {"code": CLOSE_NORMAL, "text": ""}})
                )
            with contextlib.suppress(WebSocketException, OSError):
                await self._socket.close()
            # The reader is not cancelled: after Ring's end it may be closing the receiver,
            # and a cancelled close would leave the peer connection's tasks running. The
            # closed socket ends it; a reader still busy after the bound is cancelled.
            with anyio.move_on_after(5.0):
                await asyncio.wait({reader})
            for task in self._tasks:
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
            await self.receiver.aclose()


async def signalling_connect(
    signalling_url: str,
    ticket: str,
    doorbot_id: int,
    receiver: WebRtcReceiver,
    *,
    ssl_context: ssl.SSLContext | None = None,
    timeout_s: float = 15.0,
    ping_interval_s: float = 5.0,
    limit_s: float | None = None,
) -> SignallingSession:
    """Open the socket with ``ticket``, offer ``receiver``'s SDP for ``doorbot_id``, apply the
    answer, activate the session; the session (its pings running, and ended after ``limit_s``
    when given: camgate's cap). Errors as the module says; the receiver is closed on any of
    them."""
    query = urlencode(
        {
            "api_version": "4.0",
            "auth_type": "ring_solutions",
            "client_id": f"ring_site-{uuid.uuid4()}",
            "token": ticket,
        }
    )
    where = redact_address(signalling_url)
    socket: ClientConnection | None = None
    try:
        offer = await receiver.offer()
        with anyio.fail_after(timeout_s):
            try:
                socket = await _NoRedirect(
                    f"{signalling_url}?{query}",
                    user_agent_header=USER_AGENT,
                    ssl=ssl_context if signalling_url.startswith("wss:") else None,
                    max_size=MAX_MESSAGE,
                    proxy=None,
                    open_timeout=timeout_s,
                    logger=_SOCKET_LOG,
                )
            except (WebSocketException, OSError) as exc:
                raise CameraUnreachable(
                    f"{where}: cannot open Ring's signalling socket ({type(exc).__name__})"
                ) from None
            with contextlib.suppress(WebSocketException):  # Ring's close is read below
                await socket.send(
                    json.dumps(
                        {
                            "method": "live_view",
                            "dialog_id": str(uuid.uuid4()),
                            "body": {
                                "doorbot_id": doorbot_id,
                                "stream_options": {"audio_enabled": False, "video_enabled": True},
                                "sdp": offer,
                                "type": "offer",
                            },
                        }
                    )
                )
            session_id, answer = await _answer(socket, where)
        session = SignallingSession(
            socket, receiver, doorbot_id, session_id, ping_interval_s, limit_s
        )
    except TimeoutError:
        await _abandon(socket, receiver)
        raise CameraUnreachable(f"{where}: Ring did not answer the live view in time") from None
    except BaseException:
        await _abandon(socket, receiver)
        raise
    try:
        await receiver.accept(answer)
        await session.send("activate_session")
    except BaseException:
        await session.aclose()
        raise
    return session


async def _answer(socket: ClientConnection, where: str) -> tuple[str, str]:
    """Read until Ring's ``sdp`` answer: (its session id, the SDP)."""
    session_id = ""
    try:
        async for raw in socket:
            method, body = _message(raw)
            if method in ("session_created", "session_started"):
                found = body.get("session_id")
                session_id = found if isinstance(found, str) and found else session_id
            elif method == "sdp":
                sdp, found = body.get("sdp"), body.get("session_id", session_id)
                if not isinstance(sdp, str) or not isinstance(found, str) or not found:
                    raise CameraProtocolError(f"{where}: Ring's answer carries no SDP")
                return found, sdp
            elif method == "close":
                code, text = _close_reason(body)
                if code == CLOSE_AUTH:
                    raise CameraAuthError(f"{where}: Ring refused the live view ({text!r})")
                raise CameraUnreachable(f"{where}: Ring ended the live view ({code}: {text!r})")
    except (WebSocketException, OSError) as exc:
        raise CameraUnreachable(
            f"{where}: the signalling socket ended ({type(exc).__name__})"
        ) from None
    raise CameraUnreachable(f"{where}: Ring closed the socket before answering")


async def _abandon(socket: ClientConnection | None, receiver: WebRtcReceiver) -> None:
    with anyio.CancelScope(shield=True):
        if socket is not None:
            with contextlib.suppress(WebSocketException, OSError):
                await socket.close()
        await receiver.aclose()
