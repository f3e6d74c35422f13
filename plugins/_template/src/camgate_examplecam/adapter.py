"""The Example Cam adapter: MJPEG over HTTP in, H.264 out.

An Example Cam serves, at its source address ``http(s)://host:port/<camera>``:

- ``<source>/video.mjpeg``: live video as ``multipart/x-mixed-replace`` (one JPEG per part);
- ``<source>/snapshot.jpg``: one JPEG;

both behind HTTP Digest authentication. camgate's clip formats carry H.264 and H.265 only
(docs/adapters.md, "Codecs"), so the adapter decodes each JPEG and encodes it as H.264 (x264,
``ultrafast``/``zerolatency``, a keyframe every second) with PyAV. A camera that sends H.264
itself needs no such step: pass its packets through as they are.

Settings (:class:`ExampleSettings`): ``connect_timeout_s``, ``read_timeout_s`` and
``credentials`` (added by the edge: ``{camera id or source: {"username", "password"}}``).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from typing import Any
from urllib.parse import urlsplit

import anyio
import attrs
import av
import av.error
import httpx
from camgate.adapters import (
    SECRET,
    VENDOR_BODY_LIMIT,
    Adapter,
    Credentials,
    http_errors,
    read_capped,
)
from camgate.errors import (
    AdapterError,
    CameraAuthError,
    CameraProtocolError,
    CameraUnreachable,
    ValidationError,
)
from camgate.media.jpeg import decode_jpeg
from camgate.models import Camera, Grant, MediaPacket, Snapshot, StreamInfo, redact_address
from camgate.settings import build_settings, parse_credentials, positive

from camgate_examplecam.multipart import MultipartReader

__all__ = ["NAME", "ExampleAdapter", "ExampleSettings", "MjpegLiveStream"]

#: The adapter's registered name (the entry point's name, and ``Camera.adapter``).
NAME = "examplecam"
#: The time base of the H.264 packets: 90 kHz, as RTP video uses.
TIME_BASE = Fraction(1, 90_000)
#: The largest single JPEG the adapter accepts from the camera.
MAX_PICTURE_BYTES = 8 * 1024 * 1024
#: A keyframe every this many pictures (the camera sends about 10 a second).
KEYFRAME_INTERVAL = 10


def _credentials(value: Mapping[str, Any]) -> dict[str, Credentials]:
    return parse_credentials(value, NAME)


@attrs.frozen
class ExampleSettings:
    """Validated settings of the Example Cam adapter (see the module docstring).

    ``credentials`` is marked secret (:data:`camgate.adapters.SECRET`): per-camera values are
    kept with the camera's credentials and never shown."""

    connect_timeout_s: float = attrs.field(default=5.0, validator=positive(NAME))
    read_timeout_s: float = attrs.field(default=5.0, validator=positive(NAME))
    credentials: dict[str, Credentials] = attrs.field(
        factory=dict, converter=_credentials, repr=False, metadata=SECRET
    )

    @classmethod
    def from_mapping(cls, settings: Mapping[str, Any]) -> ExampleSettings:
        """Settings from a mapping; an unknown key or a bad value is a ValidationError."""
        return build_settings(cls, NAME, settings)


def _mapped(where: str) -> AbstractContextManager[None]:
    """httpx's errors as camgate's (:func:`camgate.adapters.http_errors`)."""
    return http_errors(where, "the camera")


def _check_status(response: httpx.Response, where: str) -> None:
    """Map an HTTP status other than 200 to camgate's tree."""
    status = response.status_code
    if status == 200:
        return
    if status in (401, 403):
        raise CameraAuthError(f"{where}: the camera refused the credentials ({status})")
    if status == 404:
        raise CameraUnreachable(f"{where}: the camera has no such camera (404)")
    if status == 429:
        retry = response.headers.get("retry-after", "?")[:16]
        raise AdapterError(f"{where}: the camera is rate-limiting (429, retry after {retry})")
    if status >= 500:
        raise AdapterError(f"{where}: the camera failed ({status})")
    if 300 <= status < 400:
        raise CameraProtocolError(f"{where}: the camera redirects ({status}); not followed")
    raise CameraProtocolError(f"{where}: unexpected answer {status}")


def _boundary(response: httpx.Response, where: str) -> str:
    """The multipart boundary of an MJPEG answer; CameraProtocolError for anything else."""
    kind = str(response.headers.get("content-type", ""))
    boundary = kind.partition("boundary=")[2].strip().strip('"')
    if not kind.startswith("multipart/x-mixed-replace") or not boundary:
        raise CameraProtocolError(f"{where}: not an MJPEG stream ({kind[:60]!r})")
    return boundary


class ExampleAdapter(Adapter):
    """Reaches Example Cams by URL (no discovery): live video and snapshots."""

    def __init__(self, settings: ExampleSettings) -> None:
        self.settings = settings

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> ExampleAdapter:
        """The adapter for the edge's settings mapping (the factory's ``create``)."""
        return cls(ExampleSettings.from_mapping(settings))

    def __repr__(self) -> str:
        return f"ExampleAdapter(credentials for {len(self.settings.credentials)} camera(s))"

    def _url(self, camera: Camera, leaf: str) -> str:
        parts = urlsplit(camera.source)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValidationError(
                f"camera source {redact_address(camera.source)!r} is not an http(s) URL"
            )
        return camera.source.rstrip("/") + "/" + leaf

    def _client(self, camera: Camera) -> httpx.AsyncClient:
        """A client for one request: no proxies from the environment, no redirects, TLS
        verified (httpx's defaults kept), Digest credentials when the edge has some."""
        creds = self.settings.credentials
        cred = creds.get(camera.id) or creds.get(camera.source)
        auth = None if cred is None else httpx.DigestAuth(cred.username, cred.password.reveal())
        timeout = httpx.Timeout(
            self.settings.read_timeout_s, connect=self.settings.connect_timeout_s
        )
        return httpx.AsyncClient(
            auth=auth, timeout=timeout, follow_redirects=False, trust_env=False
        )

    async def _get(self, client: httpx.AsyncClient, url: str) -> httpx.Response:
        """Send a GET and return the response with its body unread; errors mapped."""
        where = redact_address(url)
        with _mapped(where):
            response = await client.send(client.build_request("GET", url), stream=True)
        try:
            _check_status(response, where)
        except AdapterError:
            await response.aclose()
            raise
        return response

    async def open_live(self, camera: Camera, grant: Grant) -> MjpegLiveStream:
        """Connect, read the first picture (so :attr:`MjpegLiveStream.info` is known) and
        return the stream; its first packet is a keyframe."""
        url = self._url(camera, "video.mjpeg")
        where = redact_address(url)
        client = self._client(camera)
        try:
            response = await self._get(client, url)
            try:
                boundary = _boundary(response, where)
            except AdapterError:
                await response.aclose()
                raise
            stream = MjpegLiveStream(client, response, boundary, where)
            await stream.start()
        except BaseException:
            with anyio.CancelScope(shield=True):
                await client.aclose()
            raise
        return stream

    async def snapshot(self, camera: Camera, grant: Grant) -> Snapshot:
        """Fetch one JPEG now (never a cached one) on a connection closed right after."""
        url = self._url(camera, "snapshot.jpg")
        where = redact_address(url)
        async with self._client(camera) as client:
            response = await self._get(client, url)
            try:
                with _mapped(where):
                    data = await read_capped(response.aiter_bytes(), VENDOR_BODY_LIMIT, where)
            finally:
                await response.aclose()
        width, height = decode_jpeg(data)
        return Snapshot(
            grant_id=grant.id,
            camera_id=camera.id,
            jpeg=data,
            width=width,
            height=height,
            taken_at=datetime.now(UTC),
        )


class MjpegLiveStream:
    """One camera's MJPEG stream, handed over as H.264 packets (a :class:`LiveStream`).

    Iteration ends when the camera ends the stream; errors are AdapterErrors. ``aclose`` closes
    the HTTP connection at once and may be called more than once.
    """

    info: StreamInfo

    def __init__(
        self, client: httpx.AsyncClient, response: httpx.Response, boundary: str, where: str
    ) -> None:
        self._client = client
        self._response = response
        self._where = where
        self._chunks: AsyncIterator[bytes] = response.aiter_bytes()
        self._parts = MultipartReader(boundary, MAX_PICTURE_BYTES)
        self._pictures: deque[bytes] = deque()
        self._pending: deque[MediaPacket] = deque()
        self._decoder: Any = av.CodecContext.create("mjpeg", "r")
        self._encoder: Any = None
        self._started = 0.0
        self._wall = datetime.now(UTC)
        self._last_pts = -1
        self._ended = False
        self._closed = False

    def __repr__(self) -> str:
        return f"MjpegLiveStream({self._where!r})"

    async def start(self) -> None:
        """Read and encode the first picture: sets ``info``."""
        while not self._pending:
            jpeg = await self._next_jpeg()
            if jpeg is None:
                raise CameraProtocolError(f"{self._where}: the stream ended before a picture")
            self._transcode(jpeg)

    async def _next_jpeg(self) -> bytes | None:
        while not self._pictures:
            if self._ended:
                return None
            with _mapped(self._where):
                try:
                    chunk = await self._chunks.__anext__()
                except StopAsyncIteration:
                    self._ended = True
                    return None
            self._pictures.extend(self._parts.feed(chunk))
        return self._pictures.popleft()

    def _transcode(self, jpeg: bytes) -> None:
        try:
            pictures = self._decoder.decode(av.Packet(jpeg))
        except av.error.FFmpegError:
            return  # a damaged picture: skip it, as a viewer would
        for picture in pictures:
            if self._encoder is None:
                self._open_encoder(picture.width, picture.height)
            now = time.monotonic()
            pts = max(self._last_pts + 1, round((now - self._started) / TIME_BASE))
            self._last_pts = pts
            frame = picture.reformat(format="yuv420p")
            frame.pts = pts
            frame.time_base = TIME_BASE
            for packet in self._encoder.encode(frame):
                self._pending.append(
                    MediaPacket(
                        data=bytes(packet),
                        pts=packet.pts,
                        dts=packet.dts,
                        is_keyframe=bool(packet.is_keyframe),
                        stream=self.info,
                        arrival=now,
                        wallclock=self._wall + timedelta(seconds=float(pts * TIME_BASE)),
                    )
                )

    def _open_encoder(self, width: int, height: int) -> None:
        encoder: Any = av.CodecContext.create("libx264", "w")
        encoder.width = width - width % 2
        encoder.height = height - height % 2
        encoder.pix_fmt = "yuv420p"
        encoder.time_base = TIME_BASE
        encoder.framerate = Fraction(KEYFRAME_INTERVAL)
        encoder.gop_size = KEYFRAME_INTERVAL
        encoder.max_b_frames = 0
        encoder.options = {"preset": "ultrafast", "tune": "zerolatency"}
        self._encoder = encoder
        self._started = time.monotonic()
        self._wall = datetime.now(UTC)
        self.info = StreamInfo(
            codec="h264", time_base=TIME_BASE, width=encoder.width, height=encoder.height
        )

    def __aiter__(self) -> MjpegLiveStream:
        return self

    async def __anext__(self) -> MediaPacket:
        while not self._pending:
            if self._closed:
                raise StopAsyncIteration
            jpeg = await self._next_jpeg()
            if jpeg is None:
                raise StopAsyncIteration  # the camera ended the stream: a gap, not an error
            self._transcode(jpeg)
        return self._pending.popleft()

    async def aclose(self) -> None:
        """Close the HTTP connection to the camera. Idempotent."""
        if self._closed:
            return
        self._closed = True
        with anyio.CancelScope(shield=True):
            await self._response.aclose()
            await self._client.aclose()
