"""WebRTC receive path: H.264 from a WebRTC peer as camgate packets, without re-encoding.

Cloud cameras (Ring, Wyze) serve live video over WebRTC. :class:`WebRtcReceiver` is one
receive-only aiortc peer connection whose video decoder is replaced by a pass-through: each
H.264 access unit aiortc reassembles from RTP becomes a :class:`~camgate.models.MediaPacket`
(Annex B bytes) that :class:`~camgate.media.Muxer` remuxes as it is. :func:`whep_connect` does
the WHEP exchange (RFC 9725) for peers that speak it. See docs/media.md, "WebRTC receive path".

Video only: the offer carries one ``recvonly`` video transceiver (H.264 only) and no audio.

aiortc is an optional dependency (``pip install 'camgate[webrtc]'``), pinned to
:data:`AIORTC_VERSION`: the pass-through replaces a private part of aiortc's receiver (the queue
its decoder thread reads), and core/tests/test_webrtc.py fails with that version named if aiortc
changes it.

Errors: a missing aiortc is a :class:`~camgate.errors.MissingExtra` (a ``ConfigError``); an SDP
answer aiortc refuses or that negotiates no H.264, and a WHEP server that does not speak WHEP, are
:class:`~camgate.errors.CameraProtocolError`; ICE/DTLS that fails or does not connect in time, and
a WHEP server that cannot be reached or answers 404 (no such stream) or 503 (its source offline),
are :class:`~camgate.errors.CameraUnreachable`; a WHEP server refusing the credentials is
:class:`~camgate.errors.CameraAuthError`; 429 and other 5xx answers are an
:class:`~camgate.errors.AdapterError` (try again later). No message holds an SDP body, a header
or a URL's query.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import threading
import time
from collections.abc import AsyncIterator, Coroutine, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from typing import Any
from urllib.parse import urljoin, urlsplit

import attrs
import httpx

from camgate.errors import (
    AdapterError,
    CameraAuthError,
    CameraProtocolError,
    CameraUnreachable,
    ConfigError,
    ValidationError,
)
from camgate.extras import needs_extra
from camgate.media.mux import _nal_units
from camgate.models import MediaPacket, StreamInfo, redact_address

log = logging.getLogger(__name__)

__all__ = [
    "AIORTC_VERSION",
    "VIDEO_TIME_BASE",
    "IceServer",
    "ReceiverStats",
    "WebRtcReceiver",
    "WhepSession",
    "answer_has_h264",
    "h264_keyframe",
    "sps_size",
    "whep_connect",
]

#: The aiortc version the pass-through is written against (``camgate[webrtc]`` pins it).
AIORTC_VERSION = "1.16.0"
#: RTP clock of video: packets' pts/dts count in 1/90000 s.
VIDEO_TIME_BASE = Fraction(1, 90000)
#: The private attribute of ``aiortc.RTCRtpReceiver`` the pass-through replaces.
_DECODER_QUEUE = "_RTCRtpReceiver__decoder_queue"


def _aiortc() -> Any:
    """The aiortc module, or a MissingExtra (a ConfigError) naming ``camgate[webrtc]``."""
    with needs_extra("webrtc", "the WebRTC receive path"):
        import aiortc
    return aiortc


# --- H.264 bits --------------------------------------------------------------------------------


class _Short(Exception):
    """The bit reader ran past the end of the SPS (or met a value no encoder writes)."""


class _Bits:
    """An MSB-first bit reader over an RBSP, with Exp-Golomb codes (H.264 9.1)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def u(self, n: int) -> int:
        value = 0
        for _ in range(n):
            byte = self.pos >> 3
            if byte >= len(self.data):
                raise _Short
            value = (value << 1) | ((self.data[byte] >> (7 - (self.pos & 7))) & 1)
            self.pos += 1
        return value

    def ue(self) -> int:
        zeros = 0
        while self.u(1) == 0:
            zeros += 1
            if zeros > 31:
                raise _Short
        return (1 << zeros) - 1 + self.u(zeros)

    def se(self) -> int:
        code = self.ue()
        return (code + 1) // 2 if code & 1 else -(code // 2)


def _rbsp(nal: bytes) -> bytes:
    """The NAL unit's payload without its header byte and emulation-prevention bytes."""
    return nal[1:].replace(b"\x00\x00\x03", b"\x00\x00")


#: profile_idc values whose SPS carries chroma format, bit depths and scaling matrices.
_HIGH_PROFILES = frozenset({100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135})
#: The largest picture side camgate believes (H.264 level 6.2 allows 8192x4320).
_MAX_SIDE = 16384


def sps_size(nal: bytes) -> tuple[int, int] | None:
    """The cropped picture size (width, height) an H.264 SPS NAL unit (header byte included,
    no start code) declares, or None when it is not an SPS or is malformed. Never raises:
    the bytes come from a remote peer."""
    if not nal or nal[0] & 0x1F != 7:
        return None
    bits = _Bits(_rbsp(nal))
    try:
        profile = bits.u(8)
        bits.u(16)  # constraint flags, level_idc
        bits.ue()  # seq_parameter_set_id
        chroma = 1
        if profile in _HIGH_PROFILES:
            chroma = bits.ue()
            if chroma > 3:
                return None
            if chroma == 3:
                bits.u(1)  # separate_colour_plane_flag
            bits.ue()  # bit_depth_luma_minus8
            bits.ue()  # bit_depth_chroma_minus8
            bits.u(1)  # qpprime_y_zero_transform_bypass_flag
            if bits.u(1):  # seq_scaling_matrix_present_flag
                for i in range(8 if chroma != 3 else 12):
                    if bits.u(1):
                        _skip_scaling_list(bits, 16 if i < 6 else 64)
        bits.ue()  # log2_max_frame_num_minus4
        poc_type = bits.ue()
        if poc_type == 0:
            bits.ue()
        elif poc_type == 1:
            bits.u(1)
            bits.se()
            bits.se()
            cycle = bits.ue()
            if cycle > 255:
                return None
            for _ in range(cycle):
                bits.se()
        elif poc_type != 2:
            return None
        bits.ue()  # max_num_ref_frames
        bits.u(1)  # gaps_in_frame_num_value_allowed_flag
        width = (bits.ue() + 1) * 16
        map_units = bits.ue() + 1
        frame_mbs_only = bits.u(1)
        if not frame_mbs_only:
            bits.u(1)  # mb_adaptive_frame_field_flag
        bits.u(1)  # direct_8x8_inference_flag
        height = (2 - frame_mbs_only) * map_units * 16
        if bits.u(1):  # frame_cropping_flag
            left, right, top, bottom = bits.ue(), bits.ue(), bits.ue(), bits.ue()
            unit_x = 2 if chroma in (1, 2) else 1
            unit_y = (2 if chroma == 1 else 1) * (2 - frame_mbs_only)
            width -= (left + right) * unit_x
            height -= (top + bottom) * unit_y
    except _Short:
        return None
    if not (0 < width <= _MAX_SIDE and 0 < height <= _MAX_SIDE):
        return None
    return width, height


def _skip_scaling_list(bits: _Bits, size: int) -> None:
    last = following = 8
    for _ in range(size):
        if following:
            following = (last + bits.se() + 256) % 256
        last = following or last


def h264_keyframe(access_unit: bytes) -> bool:
    """True when an Annex B H.264 access unit holds an IDR slice (NAL type 5): a picture a
    decoder can start from."""
    return any(kind == 5 for kind, _nal in _nal_units("h264", access_unit))


def _access_unit_size(access_unit: bytes) -> tuple[int, int] | None:
    """The picture size of the first SPS in an Annex B access unit, None without one."""
    for kind, nal in _nal_units("h264", access_unit):
        if kind == 7:
            return sps_size(nal)
    return None


def answer_has_h264(sdp: str) -> bool:
    """True when an SDP answer has a video media section with a non-zero port whose formats
    include one mapped to H264 (``a=rtpmap:<pt> H264/90000``). Never raises."""
    section: list[str] | None = None
    sections: list[list[str]] = []
    for raw in sdp.splitlines():
        line = raw.strip()
        if line.startswith("m="):
            section = [line]
            sections.append(section)
        elif section is not None:
            section.append(line)
    for lines in sections:
        fields = lines[0][2:].split()
        if len(fields) < 4 or fields[0] != "video" or fields[1] in ("0", ""):
            continue
        formats = set(fields[3:])
        for line in lines[1:]:
            if not line.startswith("a=rtpmap:"):
                continue
            pt, _, encoding = line[len("a=rtpmap:") :].partition(" ")
            if pt in formats and encoding.upper().startswith("H264/"):
                return True
    return False


# --- the receiver ------------------------------------------------------------------------------


@attrs.frozen
class IceServer:
    """A STUN or TURN server for ICE. ``credential`` never shows in a repr."""

    urls: tuple[str, ...] = attrs.field(converter=tuple)
    username: str | None = None
    credential: str | None = attrs.field(default=None, repr=False)


@attrs.frozen
class ReceiverStats:
    """A snapshot of a receiver's counters: access units ``received`` from the peer, ``queued``
    for the consumer, ``dropped`` because the consumer was too slow (or before a keyframe after
    such a drop), ``keyframe_requests`` sent (PLI)."""

    received: int
    queued: int
    dropped: int
    keyframe_requests: int


class _PassThrough:
    """Stands in for the ``queue.Queue`` between aiortc's receiver and its decoder thread.

    aiortc's receiver calls ``put((codec, frame))`` on the event loop for each reassembled
    frame, and ``put(None)`` when it stops; its decoder thread calls ``get()``. Frames go to
    the camgate receiver at once; ``get()`` blocks the (now idle) thread until the end.
    """

    def __init__(self, owner: WebRtcReceiver) -> None:
        self._owner = owner
        self._ended = threading.Event()

    def put(self, task: tuple[Any, Any] | None) -> None:
        if task is None:
            self._ended.set()
            self._owner._peer_ended()
            return
        codec, frame = task
        self._owner._on_frame(str(codec.mimeType), bytes(frame.data), int(frame.timestamp))

    def get(self) -> None:
        self._ended.wait()


_END = object()


class WebRtcReceiver:
    """One receive-only WebRTC peer connection delivering H.264 access units as packets.

    The life of one session: :meth:`offer` (the complete SDP offer, ICE gathered), send it to
    the peer by whatever signalling it speaks, :meth:`accept` its answer, read :meth:`packets`
    until done, :meth:`aclose`. The receiver may be used as an async context manager (closed on
    exit).

    Packets are the access units as the peer sent them (Annex B, in-band SPS/PPS), with
    ``pts == dts`` the RTP timestamp (90 kHz) relative to the first access unit received,
    ``is_keyframe`` true for IDR pictures, ``arrival`` the ``time.monotonic()`` of reassembly
    and ``wallclock`` the first packet's arrival (UTC) plus media time. Packets before the
    first keyframe are delivered too (a muxer skips them).

    ``max_queued`` bounds the packets waiting for the consumer: when a new packet would exceed
    it, every queued packet is dropped, a keyframe is requested, and packets are dropped until
    the next keyframe, which carries ``discontinuity=True``. A slow consumer thus loses whole
    groups of pictures but never grows memory beyond ``max_queued`` packets.

    ``keyframe_on_join`` (default True) asks the peer for a keyframe (RTCP PLI) when the first
    packet arrives and is not one, so a consumer does not wait for the peer's own interval.
    ``connect_timeout`` bounds the time from :meth:`accept` to a connected transport: past it,
    or when ICE/DTLS fails, :meth:`packets` raises CameraUnreachable.
    """

    def __init__(
        self,
        *,
        ice_servers: Sequence[IceServer] = (),
        max_queued: int = 256,
        keyframe_on_join: bool = True,
        connect_timeout: float = 20.0,
    ) -> None:
        if max_queued < 2:
            raise ValidationError(f"max_queued={max_queued}: must be at least 2")
        self._aiortc = _aiortc()
        self._ice_servers = tuple(ice_servers)
        self._max_queued = max_queued
        self._keyframe_on_join = keyframe_on_join
        self._connect_timeout = connect_timeout
        self._pc: Any = None
        self._receiver: Any = None
        self._queue: collections.deque[MediaPacket] = collections.deque()
        self._wakeup = asyncio.Event()
        self._error: Exception | None = None
        self._ended = False
        self._closed = False
        self._dropping = False
        self._received = 0
        self._dropped = 0
        self._requests = 0
        self._first_wallclock: datetime | None = None
        self._ssrc: int | None = None
        self._pending_request = False
        self._watchdog: asyncio.Task[None] | None = None
        self._info = StreamInfo(codec="h264", time_base=VIDEO_TIME_BASE)
        self._size_known = False
        self._connected = asyncio.Event()
        self._tasks: set[asyncio.Future[None]] = set()

    def __repr__(self) -> str:
        state = "closed" if self._closed else (self._pc.connectionState if self._pc else "new")
        return f"WebRtcReceiver(state={state!r}, received={self._received})"

    async def __aenter__(self) -> WebRtcReceiver:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    @property
    def stream_info(self) -> StreamInfo:
        """The video stream's description: ``h264``, 1/90000 time base, and the picture size
        from the last SPS received (0x0 until one arrived)."""
        return self._info

    @property
    def size_known(self) -> bool:
        """True once an SPS gave :attr:`stream_info` its picture size."""
        return self._size_known

    @property
    def connection_state(self) -> str:
        """aiortc's peer connection state: new, connecting, connected, failed or closed."""
        return "closed" if self._closed else (self._pc.connectionState if self._pc else "new")

    def statistics(self) -> ReceiverStats:
        """The receiver's counters now (an immutable snapshot)."""
        return ReceiverStats(self._received, len(self._queue), self._dropped, self._requests)

    async def offer(self) -> str:
        """Create the peer connection and return its SDP offer, ICE gathering complete (every
        candidate in the SDP: WHEP and Ring's signalling want a complete offer). One
        ``recvonly`` video transceiver, H.264 (and its RTX) only. Call once."""
        if self._pc is not None or self._closed:
            raise ValidationError("offer() is called once, before accept()")
        rtc = self._aiortc
        servers = [
            rtc.RTCIceServer(urls=list(s.urls), username=s.username, credential=s.credential)
            for s in self._ice_servers
        ]
        self._pc = rtc.RTCPeerConnection(rtc.RTCConfiguration(iceServers=servers))
        self._pc.on("connectionstatechange", self._on_state)
        transceiver = self._pc.addTransceiver("video", direction="recvonly")
        codecs = [
            c
            for c in rtc.RTCRtpReceiver.getCapabilities("video").codecs
            if c.mimeType.lower() in ("video/h264", "video/rtx")
        ]
        transceiver.setCodecPreferences(codecs)
        self._receiver = transceiver.receiver
        _install_pass_through(self._receiver, _PassThrough(self))
        await self._pc.setLocalDescription(await self._pc.createOffer())
        return str(self._pc.localDescription.sdp)

    async def accept(self, answer_sdp: str) -> None:
        """Apply the peer's SDP answer. CameraProtocolError (the SDP not quoted) when aiortc
        refuses it or it negotiates no H.264 video; the connection is closed then."""
        if self._pc is None or self._closed:
            raise ValidationError("accept() needs offer() first, and an open receiver")
        if not answer_has_h264(answer_sdp):
            await self.aclose()
            raise CameraProtocolError("the peer's SDP answer negotiates no H.264 video")
        try:
            await self._pc.setRemoteDescription(
                self._aiortc.RTCSessionDescription(sdp=answer_sdp, type="answer")
            )
        except Exception as exc:  # aiortc raises ValueError, AssertionError, InvalidStateError
            await self.aclose()
            raise CameraProtocolError(
                f"the peer's SDP answer was refused ({type(exc).__name__})"
            ) from None
        self._watchdog = asyncio.create_task(self._watch_connect())

    async def add_ice_candidate(
        self, candidate: str, *, sdp_mid: str | None = None, sdp_mline_index: int | None = None
    ) -> None:
        """Add a remote ICE candidate the peer trickled (``candidate:…`` as in SDP, with or
        without the ``a=`` prefix); an empty string marks the end of candidates.
        CameraProtocolError when it does not parse (not quoted)."""
        if self._pc is None or self._closed:
            return
        text = candidate.removeprefix("a=").removeprefix("candidate:")
        if not text:
            await self._pc.addIceCandidate(None)
            return
        try:
            ice = self._aiortc.sdp.candidate_from_sdp(text)
            ice.sdpMid = sdp_mid
            ice.sdpMLineIndex = sdp_mline_index
            await self._pc.addIceCandidate(ice)
        except (ValueError, AssertionError, IndexError) as exc:
            raise CameraProtocolError(
                f"the peer's ICE candidate does not parse ({type(exc).__name__})"
            ) from None

    async def wait_connected(self) -> None:
        """Return once the transport is connected; CameraUnreachable if it fails, times out
        (``connect_timeout`` after :meth:`accept`) or the receiver closes first."""
        while not self._connected.is_set():
            if self._error is not None:
                raise self._error
            if self._ended:
                raise CameraUnreachable("the WebRTC session ended before it connected")
            self._wakeup.clear()
            waiter = asyncio.create_task(self._connected.wait())
            woken = asyncio.create_task(self._wakeup.wait())
            await asyncio.wait({waiter, woken}, return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
            woken.cancel()

    async def packets(self) -> AsyncIterator[MediaPacket]:
        """The access units in arrival order, until :meth:`aclose` or the peer ends the
        session (then the iterator ends after the queued packets). CameraUnreachable when
        ICE/DTLS fails or does not connect in time."""
        while True:
            if self._queue:
                yield self._queue.popleft()
                continue
            if self._error is not None:
                raise self._error
            if self._ended:
                return
            self._wakeup.clear()
            await self._wakeup.wait()

    async def request_keyframe(self) -> None:
        """Ask the peer for a keyframe (RTCP PLI). Before the first packet (the peer's SSRC
        unknown yet) the request is sent when it arrives."""
        if self._closed or self._receiver is None:
            return
        if self._ssrc is None:
            self._pending_request = True
            return
        self._requests += 1
        await self._receiver._send_rtcp_pli(self._ssrc)

    async def aclose(self) -> None:
        """End the peer connection (the peer sees DTLS close) and end :meth:`packets`.
        Idempotent; queued packets are still delivered."""
        if self._closed:
            return
        self._closed = True
        if self._watchdog is not None and self._watchdog is not asyncio.current_task():
            self._watchdog.cancel()
        if self._pc is not None:
            await self._pc.close()
        self._end()

    # --- called by aiortc (on the event loop) ---

    def _on_state(self) -> None:
        state = self._pc.connectionState
        if state == "connected":
            self._connected.set()
            self._wake()
        elif state == "failed" and not self._closed:
            self._fail(CameraUnreachable("the WebRTC connection failed (ICE or DTLS)"))
        elif state == "closed":
            self._end()

    async def _watch_connect(self) -> None:
        try:
            await asyncio.wait_for(self._connected.wait(), self._connect_timeout)
        except TimeoutError:
            if not self._closed and not self._ended:
                self._fail(
                    CameraUnreachable(
                        f"the WebRTC connection did not connect in {self._connect_timeout:g} s"
                    )
                )

    def _fail(self, error: Exception) -> None:
        if self._error is None:
            self._error = error
        self._background(self.aclose())
        self._wake()

    def _background(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _peer_ended(self) -> None:
        # aiortc stopped the receiver (RTCP BYE, transport closed), on the event loop.
        self._end()

    def _end(self) -> None:
        self._ended = True
        self._wake()

    def _wake(self) -> None:
        self._wakeup.set()

    def _on_frame(self, mime: str, data: bytes, timestamp: int) -> None:
        if self._closed or mime.lower() != "video/h264" or not data:
            return
        self._received += 1
        arrival = time.monotonic()
        keyframe = h264_keyframe(data)
        if self._ssrc is None:
            sources = self._receiver.getSynchronizationSources()
            self._ssrc = sources[0].source if sources else None
            if self._ssrc is not None and (
                self._pending_request or (self._keyframe_on_join and not keyframe)
            ):
                self._pending_request = False
                self._background(self.request_keyframe())
        if keyframe:
            size = _access_unit_size(data)
            if size is not None and size != (self._info.width, self._info.height):
                self._info = attrs.evolve(self._info, width=size[0], height=size[1])
                self._size_known = True
        if self._first_wallclock is None:
            self._first_wallclock = datetime.now(UTC) - timedelta(
                seconds=float(timestamp * VIDEO_TIME_BASE)
            )
        discontinuity = False
        if self._dropping:
            if not keyframe:
                self._dropped += 1
                return
            self._dropping = False
            discontinuity = True
        elif len(self._queue) >= self._max_queued:
            self._dropped += len(self._queue) + (0 if keyframe else 1)
            self._queue.clear()
            if not keyframe:
                self._dropping = True
                self._background(self.request_keyframe())
                return
            discontinuity = True
        self._queue.append(
            MediaPacket(
                data=data,
                pts=timestamp,
                dts=timestamp,
                is_keyframe=keyframe,
                stream=self._info,
                arrival=arrival,
                wallclock=self._first_wallclock
                + timedelta(seconds=float(timestamp * VIDEO_TIME_BASE)),
                discontinuity=discontinuity,
            )
        )
        self._wake()


def _install_pass_through(receiver: Any, pass_through: _PassThrough) -> None:
    """Put the pass-through where aiortc's receiver queues frames for its decoder thread.
    Must run before the receiver starts (before the answer is applied)."""
    current = getattr(receiver, _DECODER_QUEUE, None)
    if current is None or not hasattr(current, "put"):
        raise ConfigError(
            f"aiortc {_installed_version()} has no decoder queue to hook: camgate's WebRTC "
            f"receive path is written for aiortc {AIORTC_VERSION} (install camgate[webrtc])"
        )
    setattr(receiver, _DECODER_QUEUE, pass_through)


def _installed_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("aiortc")
    except PackageNotFoundError:
        return "(not installed)"


# --- WHEP (RFC 9725) ---------------------------------------------------------------------------


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    return parts.scheme.lower(), (parts.hostname or "").lower(), parts.port


class WhepSession:
    """A WHEP session: the receiver, and the session URL the server gave (``Location``).

    :meth:`aclose` ends it at the server (``DELETE`` on the session URL, with the same
    headers) and closes the receiver; idempotent. ``resource`` is the session URL; its repr
    shows it only as :func:`~camgate.models.redact_address` does.
    """

    def __init__(
        self,
        receiver: WebRtcReceiver,
        resource: str,
        headers: Mapping[str, str],
        client: httpx.AsyncClient,
        own_client: bool,
    ) -> None:
        self.receiver = receiver
        self.resource = resource
        self._headers = dict(headers)
        self._client = client
        self._own_client = own_client
        self._closed = False

    def __repr__(self) -> str:
        return f"WhepSession(resource={redact_address(self.resource)!r})"

    async def __aenter__(self) -> WhepSession:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """DELETE the session at the server (a failure there is logged, not raised: the
        peer connection is closed anyway, which ends the media), then close the receiver."""
        if self._closed:
            return
        self._closed = True
        try:
            response = await self._client.delete(self.resource, headers=self._headers)
            if response.status_code >= 400:
                log.warning(
                    "WHEP DELETE %s answered %d",
                    redact_address(self.resource),
                    response.status_code,
                )
        except httpx.HTTPError as exc:
            log.warning("WHEP DELETE %s failed: %s", redact_address(self.resource), type(exc))
        finally:
            await self.receiver.aclose()
            if self._own_client:
                await self._client.aclose()


async def whep_connect(
    url: str,
    receiver: WebRtcReceiver,
    *,
    headers: Mapping[str, str] | None = None,
    client: httpx.AsyncClient | None = None,
    request_timeout: float = 15.0,
) -> WhepSession:
    """Start a WHEP session (RFC 9725) at endpoint ``url`` with ``receiver``: POST its complete
    offer (``application/sdp``, ``headers`` added, e.g. a bearer token), expect ``201
    Created`` with the answer and a ``Location``, apply the answer.

    Redirects (307/308) are followed only on the same scheme, host and port, at most 3; one to
    another host is a CameraProtocolError, so credentials in ``headers`` never leave the host
    they were meant for. The session URL (``Location``) must be on the same origin too.
    401/403 → CameraAuthError; 404/503 → CameraUnreachable; 429/5xx → AdapterError; another
    status or a body that is not SDP → CameraProtocolError; no connection → CameraUnreachable.
    The receiver is closed on any error (and a session the server made is DELETEd). Messages
    show the URL only as :func:`~camgate.models.redact_address` does. ``client`` (optional) is
    used as it is and not closed; without it one is made for the session and closed by
    ``aclose``.
    """
    sent = dict(headers or {})
    own = client is None
    http = client or httpx.AsyncClient(timeout=request_timeout, follow_redirects=False)
    try:
        offer = await receiver.offer()
        resource, answer = await _whep_post(http, url, offer, sent, request_timeout)
    except BaseException:
        await receiver.aclose()
        if own:
            await http.aclose()
        raise
    session = WhepSession(receiver, resource, sent, http, own)
    try:
        await receiver.accept(answer)
    except BaseException:
        await session.aclose()  # the server ends the session it made
        raise
    return session


async def _whep_post(
    http: httpx.AsyncClient, url: str, offer: str, headers: dict[str, str], wait: float
) -> tuple[str, str]:
    """POST the offer; (the session URL, the SDP answer), or the camgate error."""
    shown = redact_address(url)
    target = url
    for _hop in range(4):
        try:
            response = await http.post(
                target,
                content=offer.encode(),
                headers={**headers, "Content-Type": "application/sdp"},
                follow_redirects=False,
                timeout=wait,
            )
        except httpx.HTTPError as exc:
            raise CameraUnreachable(
                f"WHEP endpoint {shown} cannot be reached ({type(exc).__name__})"
            ) from None
        if response.status_code not in (307, 308) or "location" not in response.headers:
            break
        target = urljoin(target, response.headers["location"])
        if _origin(target) != _origin(url):
            raise CameraProtocolError(
                f"WHEP endpoint {shown} redirects to another host "
                f"({redact_address(target)}): not followed"
            )
    else:
        raise CameraProtocolError(f"WHEP endpoint {shown} redirects too many times")
    status = response.status_code
    if status in (401, 403):
        raise CameraAuthError(f"WHEP endpoint {shown} refused the credentials ({status})")
    if status == 404:
        raise CameraUnreachable(f"WHEP endpoint {shown} has no such stream (404)")
    if status == 503:
        raise CameraUnreachable(f"WHEP endpoint {shown}: the source is offline (503)")
    if status == 429 or status >= 500:
        raise AdapterError(f"WHEP endpoint {shown} answered {status}: try again later")
    if status != 201:
        raise CameraProtocolError(f"WHEP endpoint {shown} answered {status}, not 201")
    kind = response.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/sdp" or "location" not in response.headers:
        raise CameraProtocolError(
            f"WHEP endpoint {shown} answered without an SDP body and a Location"
        )
    resource = urljoin(target, response.headers["location"])
    if _origin(resource) != _origin(url):
        raise CameraProtocolError(f"WHEP endpoint {shown} put the session on another host")
    return resource, response.text
