"""The Wyze adapter: Wyze's cloud for cameras and event clips, Wyze's RTSP firmware for live.

- ``discover()`` lists the account's cameras (``get_object_list``) that the owner enrolled in
  the ``cameras`` setting with an owner and a position (Wyze does not know where a camera
  hangs). A camera's ``source`` is its MAC; its id ``wyze-<mac>``.
- ``open_live`` reaches a camera on Wyze's RTSP firmware (v2, v3, Pan v3) at the ``rtsp_url``
  its owner gave at enrolment, through camgate-rtsp's reader (no re-encoding; its redirect
  guard and time-outs); a camera without one (v4 and later) over Wyze's cloud WebRTC
  (:mod:`camgate_wyze.kvs`: KVS signalling, camgate's WebRTC receive component).
- ``snapshot`` decodes the first keyframe of that live route (Wyze has no call for a fresh
  picture; event thumbnails are never served as snapshots).
- ``recorded`` asks ``get_event_list`` for the grant's window, fetches the video of each event
  that *begins* inside it (allowed hosts only, no redirect, ``max_clip_bytes``; an event begun
  before the window is never fetched, since its file holds footage from before it) and hands
  over its packets cut to the window's end on their capture time (event time + media time).
"""

from __future__ import annotations

import io
import logging
import time
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from typing import Any

import anyio
import anyio.to_thread
import attrs
import av
import av.error
from camgate.adapters import Adapter, LiveStream
from camgate.errors import CameraProtocolError, ConfigError, UnsupportedScope
from camgate.media import jpeg_from_packets
from camgate.media.window import Cut, WindowCut
from camgate.models import Camera, GeoPoint, Grant, MediaPacket, Snapshot, StreamInfo
from camgate_rtsp.adapter import RtspAdapter, RtspSettings

from camgate_wyze.client import Tokens, WyzeClient, load_tokens, save_tokens
from camgate_wyze.kvs import KvsLiveStream
from camgate_wyze.replies import WyzeEvent
from camgate_wyze.settings import NAME, WyzeSettings

__all__ = ["NAME", "EventClipStream", "WyzeAdapter", "demux_clip"]

log = logging.getLogger(__name__)

#: The time base of recorded packets handed over (90 kHz).
TIME_BASE = Fraction(1, 90_000)


class WyzeAdapter(Adapter):
    """One Wyze account's cameras (see the module docstring)."""

    def __init__(self, settings: WyzeSettings) -> None:
        self.settings = settings
        self._client: WyzeClient | None = None

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> WyzeAdapter:
        """The adapter for the edge's settings mapping (the factory's ``create``)."""
        return cls(WyzeSettings.from_mapping(settings))

    def __repr__(self) -> str:
        return f"WyzeAdapter({len(self.settings.cameras)} enrolled camera(s))"

    def client(self) -> WyzeClient:
        """The account's API client, its tokens read from (and refreshed into) ``token_file``.
        No token file, or none in it: ConfigError asking for ``camgate wyze link``."""
        if self._client is None:
            path = self.settings.token_file
            tokens: Tokens | None = load_tokens(path) if path else None
            if path is None or tokens is None:
                raise ConfigError(
                    "Wyze: the account is not linked: run camgate wyze link (token_file setting)"
                )
            self._client = WyzeClient(
                self.settings, tokens, on_tokens=lambda t: save_tokens(path, t)
            )
        return self._client

    async def aclose(self) -> None:
        """Close the API client. Idempotent."""
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    # ------------------------------------------------------------------ discovery
    async def discover(self) -> list[Camera]:
        """The account's cameras the owner enrolled with an owner and a position. Asks Wyze
        for its device list only: no media."""
        cameras = []
        for device in await self.client().cameras():
            entry = self.settings.cameras.get(device.mac.upper())
            if entry is None or "owner_id" not in entry or entry.get("position") is None:
                continue
            lat, lon = entry["position"]
            state = "online" if device.online else "offline"
            route = "rtsp" if entry.get("rtsp_url") else "no live route"
            cameras.append(
                Camera(
                    id=f"wyze-{device.mac.lower()}",
                    adapter=NAME,
                    source=device.mac.upper(),
                    owner_id=str(entry["owner_id"]),
                    position=GeoPoint(float(lat), float(lon)),
                    label=entry.get("label")
                    or f"{device.nickname} ({device.model}, {state}, {route})",
                )
            )
        return cameras

    # ------------------------------------------------------------------ live (RTSP firmware)
    def _rtsp(self, camera: Camera) -> tuple[RtspAdapter, Camera] | None:
        """camgate-rtsp's adapter and the camera as it knows it (source: the RTSP URL), or
        None for a camera without an ``rtsp_url`` (it takes the cloud WebRTC route)."""
        entry = self.settings.cameras.get(camera.source.upper(), {})
        url = entry.get("rtsp_url")
        if not url:
            return None
        creds = self.settings.credentials
        cred = creds.get(camera.id) or creds.get(camera.source)
        settings = RtspSettings(
            connect_timeout_s=self.settings.connect_timeout_s,
            read_timeout_s=self.settings.read_timeout_s,
            credentials={camera.id: cred} if cred is not None else {},
        )
        return RtspAdapter(settings), attrs.evolve(camera, source=url)

    async def _kvs(self, camera: Camera) -> KvsLiveStream:
        client = self.client()
        mac = camera.source.upper()
        url, servers = await client.signaling(mac)
        where = f"Wyze camera {mac} (cloud WebRTC)"
        return await KvsLiveStream.open(url, servers, where, self.settings.connect_timeout_s)

    async def open_live(self, camera: Camera, grant: Grant) -> LiveStream:
        """The camera's live stream: over its RTSP firmware when its owner gave an
        ``rtsp_url`` (audio only when the grant allows it), else over Wyze's cloud WebRTC
        (video only). The first packet is a keyframe."""
        rtsp = self._rtsp(camera)
        if rtsp is None:
            return await self._kvs(camera)
        return await rtsp[0].open_live(rtsp[1], grant)

    async def snapshot(self, camera: Camera, grant: Grant) -> Snapshot:
        """A JPEG of the first keyframe read from the live route after this call; its
        ``taken_at`` is when it was decoded."""
        rtsp = self._rtsp(camera)
        if rtsp is not None:
            return await rtsp[0].snapshot(rtsp[1], grant)
        stream = await self._kvs(camera)
        try:
            first = await stream.__anext__()
            jpeg, width, height = await anyio.to_thread.run_sync(jpeg_from_packets, [first])
        finally:
            await stream.aclose()
        return Snapshot(
            grant_id=grant.id,
            camera_id=camera.id,
            jpeg=jpeg,
            width=width,
            height=height,
            taken_at=datetime.now(UTC),
        )

    # ------------------------------------------------------------------ recorded
    async def recorded(self, camera: Camera, grant: Grant) -> LiveStream:
        """The camera's event clips inside the grant's window, cut to it; each clip after
        the first starts with a ``discontinuity``."""
        if grant.window_start is None or grant.window_end is None:
            raise UnsupportedScope("a recorded grant without a window")
        client = self.client()
        events = await client.events(camera.source.upper(), grant.window_start, grant.window_end)
        return EventClipStream(client, events, grant.window_start, grant.window_end)


def demux_clip(data: bytes, started: datetime) -> tuple[StreamInfo, list[MediaPacket]]:
    """The H.264/H.265 packets of one event clip (MP4), as Annex B with their parameter sets
    in band, ``wallclock`` = ``started`` + media time, ``pts`` in 90 kHz ticks from
    ``started``. A clip PyAV cannot read, or without video, is CameraProtocolError."""
    try:
        with av.open(io.BytesIO(data), mode="r", format="mp4") as container:
            if not container.streams.video:
                raise CameraProtocolError("the event clip has no video")
            stream = container.streams.video[0]
            codec = stream.codec_context.name
            if codec not in ("h264", "hevc"):
                raise CameraProtocolError(f"the event clip's video is {codec[:20]}, not H.264/5")
            info = StreamInfo(
                codec=codec,
                time_base=TIME_BASE,
                width=stream.codec_context.width,
                height=stream.codec_context.height,
            )
            bsf = av.BitStreamFilterContext(f"{codec}_mp4toannexb", stream)
            tb = stream.time_base or Fraction(1, 90_000)
            packets = []
            for packet in container.demux(stream):
                for out in bsf.filter(packet):
                    packets.append(_packet(out, tb, info, started))
            for out in bsf.filter(None):
                packets.append(_packet(out, tb, info, started))
    except av.error.FFmpegError:
        raise CameraProtocolError("the event clip is not a readable MP4") from None
    return info, [p for p in packets if p is not None]


def _packet(packet: Any, tb: Fraction, info: StreamInfo, started: datetime) -> MediaPacket | None:
    if packet.pts is None or not packet.size:
        return None
    seconds = packet.pts * tb
    dts = packet.dts if packet.dts is not None else packet.pts
    return MediaPacket(
        data=bytes(packet),
        pts=round(seconds / TIME_BASE),
        dts=round(dts * tb / TIME_BASE),
        is_keyframe=bool(packet.is_keyframe),
        stream=info,
        arrival=0.0,
        duration=round(packet.duration * tb / TIME_BASE) if packet.duration else None,
        wallclock=started + timedelta(seconds=float(seconds)),
    )


class EventClipStream:
    """The event clips of a recorded grant as one :class:`~camgate.adapters.LiveStream`:
    each clip fetched when the one before it is handed over, its packets cut to the window
    (:class:`camgate.media.window.WindowCut`), timestamps counted from the window's start."""

    info: StreamInfo

    def __init__(
        self, client: WyzeClient, events: list[WyzeEvent], start: datetime, end: datetime
    ) -> None:
        self._client = client
        self._events = [e for e in events if e.videos]
        self._start = start
        self._end = end
        self._closed = False
        self._packets = self._generate()
        self.info = StreamInfo(codec="h264", time_base=TIME_BASE)

    def __repr__(self) -> str:
        return f"EventClipStream({len(self._events)} event(s))"

    async def _generate(self) -> AsyncIterator[MediaPacket]:
        first = True
        last_dts = -1
        for event in self._events:
            data = await self._client.fetch_video(event.videos[0])
            info, packets = await anyio.to_thread.run_sync(demux_clip, data, event.at)
            self.info = info
            cut = WindowCut(self._start, self._end)
            kept = False
            offset = round((event.at - self._start).total_seconds() / TIME_BASE)
            for packet in packets:
                verdict = cut(packet)
                if verdict is Cut.STOP:
                    break
                if verdict is Cut.SKIP:
                    continue
                dts = max(last_dts + 1, (packet.dts or 0) + offset)
                pts = max(dts, (packet.pts or 0) + offset)
                last_dts = dts
                yield attrs.evolve(
                    packet,
                    pts=pts,
                    dts=dts,
                    arrival=time.monotonic(),
                    discontinuity=not first and not kept,
                )
                kept = True
            first = first and not kept

    def __aiter__(self) -> EventClipStream:
        return self

    async def __anext__(self) -> MediaPacket:
        if self._closed:
            raise StopAsyncIteration
        return await self._packets.__anext__()

    async def aclose(self) -> None:
        """Stop; the file being fetched (if any) is dropped. The account's API client
        stays with the adapter. Idempotent."""
        if self._closed:
            return
        self._closed = True
        with anyio.CancelScope(shield=True):
            await self._packets.aclose()  # type: ignore[attr-defined]
