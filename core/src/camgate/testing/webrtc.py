"""A sending WebRTC peer for tests and benches of WebRTC receivers: a WHEP server on loopback.

One sender for every test that needs a WebRTC peer: core's receive-path tests run it as a
process, and vendor simulators (camgate-ring's) build their sessions with :func:`start_session`
and answer HTTP with :func:`read_request` / :func:`respond`. Needs ``camgate[webrtc]``.

Run as a separate process: ``python -m camgate.testing.webrtc --keyframe-interval 4``; it prints
``READY <endpoint url>`` on stdout once it listens. Speaks WHEP (RFC 9725): ``POST <endpoint>``
with an SDP offer → ``201 Created``, the SDP answer, ``Location: /whep/session/<id>``;
``DELETE`` on that location ends the session. ``GET /state`` returns JSON about each session
(the backdoor the tests check the receiver against, never through the code under test).
Faults on other endpoints: ``/whep/auth`` wants ``Authorization: Bearer <--token>``,
``/whep/broken`` answers an SDP aiortc refuses, ``/whep/dead`` answers, then closes its peer
connection at once (nothing answers ICE), ``/whep/away`` redirects to another host,
``/whep/here`` to ``/whep``.

Each session is one aiortc peer connection sending H.264 that aiortc encodes (libx264) from
320x240 pictures carrying a frame counter: 16 blocks along the top, white for a 1 bit, black for
a 0 (most significant first). The camera "streams" from the session's start; the peer joins
``--join-delay`` seconds later (``random``: uniform within the keyframe interval), so, like a
viewer joining a live camera, its first packets are not a keyframe. Keyframes come every
``--keyframe-interval`` seconds of the camera's clock, and at once on a PLI.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fractions
import hashlib
import json
import random
import sys
import time
import uuid
from typing import Any

import aiortc
import aiortc.rtcrtpsender
import attrs
import av
import numpy as np
from aiortc.codecs.base import Encoder
from aiortc.codecs.h264 import H264Encoder

__all__ = [
    "CounterTrack",
    "Request",
    "Session",
    "SESSIONS",
    "picture",
    "read_counter",
    "read_request",
    "respond",
    "sdp_candidates",
    "start_session",
]

WIDTH, HEIGHT, FPS = 320, 240, 15
BITS, BLOCK = 16, 20
TIME_BASE = fractions.Fraction(1, 90000)


def picture(counter: int) -> av.VideoFrame:
    """The 320x240 picture of frame ``counter``: a still background, the counter in blocks."""
    luma = np.tile(np.linspace(60, 190, WIDTH, dtype=np.uint8), (HEIGHT, 1))
    for bit in range(BITS):
        on = (counter >> (BITS - 1 - bit)) & 1
        luma[0:BLOCK, bit * BLOCK : (bit + 1) * BLOCK] = 235 if on else 16
    chroma = np.full((HEIGHT // 2, WIDTH), 128, dtype=np.uint8)
    return av.VideoFrame.from_ndarray(np.vstack([luma, chroma]), format="yuv420p")


def read_counter(gray: Any) -> int:
    """The counter painted by :func:`picture`, read back from a decoded grey picture."""
    value = 0
    for bit in range(BITS):
        centre = gray[BLOCK // 2, bit * BLOCK + BLOCK // 2]
        value = (value << 1) | (1 if centre > 128 else 0)
    return value


def sdp_candidates(sdp: str) -> list[tuple[str, int]]:
    """The ``(address, port)`` of every UDP ICE candidate in an SDP: where its peer may be sent
    to (a simulator's answer names them; a conformance target declares them as endpoints)."""
    found = []
    for line in sdp.splitlines():
        if line.startswith("a=candidate:"):
            parts = line.split()
            if len(parts) >= 6 and parts[2].lower() == "udp" and parts[5].isdigit():
                found.append((parts[4].split("%", 1)[0], int(parts[5])))
    return found


class CounterTrack(aiortc.VideoStreamTrack):
    """Pictures with a frame counter at FPS frames per second."""

    def __init__(self) -> None:
        super().__init__()
        self.counter = 0
        self.started: float | None = None

    async def recv(self) -> av.VideoFrame:
        if self.started is None:
            self.started = time.monotonic()
        due = self.started + self.counter / FPS
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        frame = picture(self.counter)
        frame.pts = self.counter * (90000 // FPS)
        frame.time_base = TIME_BASE
        self.counter += 1
        return frame


class Session:
    """One WHEP session and what its sender did."""

    def __init__(self, interval: float, join_delay: float) -> None:
        self.id = uuid.uuid4().hex
        self.pc = aiortc.RTCPeerConnection(aiortc.RTCConfiguration(iceServers=[]))
        self.track = CounterTrack()
        self.interval = interval
        self.join_delay = join_delay
        self.deleted = False
        self.sent: list[dict[str, Any]] = []  # the access units sent, in order
        self.forced = 0
        self.closed_at: float | None = None

        @self.pc.on("connectionstatechange")
        def _state() -> None:
            if self.pc.connectionState in ("closed", "failed") and self.closed_at is None:
                self.closed_at = time.monotonic()

    def state(self) -> dict[str, Any]:
        return {
            "state": self.pc.connectionState,
            "deleted": self.deleted,
            "closed": self.closed_at is not None,
            "join_delay": self.join_delay,
            "forced_keyframes": self.forced,
            "sent": self.sent,
        }


class ScheduledEncoder(Encoder):
    """aiortc's H.264 encoder on the camera's keyframe schedule, silent before the join."""

    def __init__(self, session: Session) -> None:
        self.inner = H264Encoder()
        self.session = session
        self.last_key: float | None = None

    @property
    def target_bitrate(self) -> int:
        return self.inner.target_bitrate

    @target_bitrate.setter
    def target_bitrate(self, bitrate: int) -> None:
        """Ignored: a camera keeps its bitrate (aiortc would restart the encoder, a keyframe
        off the schedule, on each REMB change)."""

    def encode(self, frame: Any, force_keyframe: bool = False) -> tuple[list[bytes], int]:
        session = self.session
        pts = int(frame.pts)  # encoding rescales frame.pts to the encoder's time base
        clock = pts / 90000
        scheduled = self.last_key is None or clock - self.last_key >= session.interval
        joined = clock >= session.join_delay
        force = scheduled or (force_keyframe and joined)
        if force:
            self.last_key = clock
        nals = list(self.inner._encode_frame(frame, force))
        if not joined:
            return [], pts
        if force_keyframe:
            session.forced += 1
        keyframe = any(nal[0] & 0x1F == 5 for nal in nals)
        digest = hashlib.sha256(b"".join(b"\x00\x00\x00\x01" + nal for nal in nals))
        session.sent.append({"pts": pts, "keyframe": keyframe, "sha256": digest.hexdigest()})
        return self.inner._packetize(nals), pts

    def pack(self, packet: Any) -> tuple[list[bytes], int]:
        return self.inner.pack(packet)


#: Every session started in this process, by id.
SESSIONS: dict[str, Session] = {}
_CURRENT: list[Session] = []


def _get_encoder(codec: Any) -> Encoder:
    """aiortc asks for an encoder when a session's sender starts: that session's."""
    return ScheduledEncoder(_CURRENT[-1])


async def start_session(
    offer_sdp: str, *, interval: float, join_delay: float, dead: bool = False
) -> tuple[Session, str]:
    """Answer a receiver's SDP offer with a new sending session: (the session, its SDP
    answer). ``interval`` is the keyframe interval and ``join_delay`` how far into the camera's
    stream the receiver joins (seconds); ``dead`` closes the peer connection right after
    answering (nothing answers ICE). The session is kept in :data:`SESSIONS`."""
    # aiortc asks this module for its encoder: the session's scheduled one.
    setattr(aiortc.rtcrtpsender, "get_encoder", _get_encoder)  # noqa: B010
    session = Session(interval, join_delay)
    SESSIONS[session.id] = session
    _CURRENT.append(session)
    session.pc.addTrack(session.track)
    await session.pc.setRemoteDescription(aiortc.RTCSessionDescription(sdp=offer_sdp, type="offer"))
    await session.pc.setLocalDescription(await session.pc.createAnswer())
    answer = str(session.pc.localDescription.sdp)
    if dead:
        await session.pc.close()
    return session, answer


@attrs.frozen
class Request:
    """One HTTP/1.1 request as :func:`read_request` read it: header names lower-case,
    ``path`` without its query, ``query`` the raw query string."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes


async def read_request(reader: asyncio.StreamReader) -> Request:
    """Read one request (head and ``Content-Length`` body) from a test client."""
    head = await reader.readuntil(b"\r\n\r\n")
    request, *header_lines = head.decode("latin-1").split("\r\n")
    method, target, _version = request.split(" ", 2)
    path, _, query = target.partition("?")
    headers = {
        k.strip().lower(): v.strip()
        for k, _, v in (line.partition(":") for line in header_lines if line)
    }
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return Request(method, path, query, headers, body)


async def respond(
    writer: asyncio.StreamWriter,
    status: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
) -> None:
    """Write one response (``status`` as ``"201 Created"``) and close the connection."""
    lines = [f"HTTP/1.1 {status}", f"Content-Length: {len(body)}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
    await writer.drain()
    writer.close()


async def handle(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, args: argparse.Namespace
) -> None:
    request = await read_request(reader)
    method, path, headers, body = request.method, request.path, request.headers, request.body
    if method == "POST" and path == "/whep/away":
        await respond(writer, "307 Temporary Redirect", b"", {"Location": "http://192.0.2.77/whep"})
        return
    if method == "POST" and path == "/whep/here":
        await respond(writer, "307 Temporary Redirect", b"", {"Location": "/whep"})
        return
    if method == "POST" and path in ("/whep", "/whep/auth", "/whep/broken", "/whep/dead"):
        if path == "/whep/auth" and headers.get("authorization") != f"Bearer {args.token}":
            await respond(writer, "401 Unauthorized")
            return
        if headers.get("content-type") != "application/sdp":
            await respond(writer, "415 Unsupported Media Type")
            return
        if path == "/whep/broken":
            await respond(
                writer,
                "201 Created",
                b"v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96 H264/90000\r\n",
                {"Content-Type": "application/sdp", "Location": "/whep/session/x"},
            )
            return
        delay = args.join_delay
        wait = random.uniform(0.2, args.keyframe_interval - 0.2)  # noqa: S311 (a test peer)
        join = wait if delay == "random" else delay
        # /whep/dead: an answer, then nobody there: ICE cannot connect
        session, answer = await start_session(
            body.decode(),
            interval=args.keyframe_interval,
            join_delay=float(join),
            dead=path == "/whep/dead",
        )
        await respond(
            writer,
            "201 Created",
            answer.encode(),
            {"Content-Type": "application/sdp", "Location": f"/whep/session/{session.id}"},
        )
    elif method == "DELETE" and path.startswith("/whep/session/"):
        found = SESSIONS.get(path.rsplit("/", 1)[1])
        if found is None:
            await respond(writer, "404 Not Found")
            return
        found.deleted = True
        await found.pc.close()
        await respond(writer, "200 OK")
    elif method == "GET" and path == "/state":
        state = {key: session.state() for key, session in SESSIONS.items()}
        await respond(
            writer, "200 OK", json.dumps(state).encode(), {"Content-Type": "application/json"}
        )
    else:
        await respond(writer, "404 Not Found")


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--keyframe-interval", type=float, default=4.0)
    parser.add_argument("--join-delay", default="0.5")
    parser.add_argument("--token", default="")
    args = parser.parse_args()
    if args.join_delay != "random":
        args.join_delay = float(args.join_delay)

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            await handle(reader, writer, args)

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    print(f"READY http://127.0.0.1:{port}/whep", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
    sys.exit(0)
