"""Containers without re-encoding: MP4 files, fragmented MP4 and MPEG-TS byte streams, HLS.

Every writer takes :class:`~camgate.models.MediaPacket` objects as the guard handed them over and
muxes them as they are (H.264 and H.265 alike), without an encoder: the output's parameter sets
(``avcC``/``hvcC``, the AAC configuration) are the camera's own ``StreamInfo.extradata`` (from
the SDP or the stream), so a camera that sends its SPS/PPS only in the SDP still gives a file
every player decodes; H.265 in MP4 is tagged ``hvc1``. Timestamps are shifted so the output
starts at zero at its first video keyframe's *presentation* time (with B-frames the first
decode timestamps are negative), packets before that keyframe are skipped, and audio packets
are written only when the writer was given an audio track (the edge gives it one only for a
grant that allows audio). AAC passes through; G.711 (A-law, µ-law), which MP4 cannot hold and
players rarely take from MPEG-TS, is transcoded to AAC. An AAC frame without a timestamp (an
RTP packet carrying several frames gives only the first one a pts) is placed 1024 samples
after the one before it.

A gap (a packet with ``discontinuity``, e.g. the camera reconnected, or video timestamps jumping
back) keeps the timeline in real time: the packet after the gap is placed where the time that
passed since the last one puts it (from ``MediaPacket.arrival``), so the output has a visible
hole instead of squeezing or overlapping pictures; :attr:`Muxer.gaps` lists the holes.

A stream whose video changes shape mid-way (resolution or codec parameters) cannot be carried
by one MP4 ``moov``: MP4 and fragmented MP4 writers raise
:class:`~camgate.errors.CameraProtocolError` naming both shapes. MPEG-TS and HLS carry the
parameter sets in-band, so they keep going.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import math
from collections.abc import AsyncIterable, AsyncIterator, Iterator, Mapping
from fractions import Fraction
from pathlib import Path
from typing import Any, BinaryIO, Self

import attrs
import av
import av.error

from camgate.errors import CameraProtocolError, ValidationError
from camgate.media.files import Folder, PrivateFile, export_error, make_dirs, open_private
from camgate.models import MediaPacket, StreamInfo

__all__ = [
    "AAC_FRAME_SAMPLES",
    "FORMATS",
    "FRAGMENTS",
    "Gap",
    "HlsWriter",
    "Mp4Writer",
    "Muxer",
    "sha256_file",
    "stream_bytes",
]

#: Container formats a :class:`Muxer` writes: ``mp4`` (a file with its index at the front),
#: ``fmp4`` (fragmented MP4, one fragment per keyframe, for byte streams) and ``ts`` (MPEG-TS).
FORMATS = ("mp4", "fmp4", "ts")

#: Where fragmented MP4 cuts its fragments: at each ``keyframe`` (the default: fewer, larger
#: fragments), or after every ``frame`` (live viewing: a picture leaves one frame after it
#: arrived instead of a whole keyframe interval later).
FRAGMENTS = ("keyframe", "frame")

_FFMPEG_FORMAT = {"mp4": "mp4", "fmp4": "mp4", "ts": "mpegts"}


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _frame_ticks(info: StreamInfo) -> int:
    # Without a packet duration assume 30 fps, the commonest camera rate.
    return max(1, round(1 / (30 * info.time_base)))


def _src_seconds(packet: MediaPacket) -> Fraction:
    """A packet's decode time in the source's clock, in seconds."""
    ticks = packet.dts if packet.dts is not None else packet.pts or 0
    return Fraction(ticks) * packet.stream.time_base


#: NAL unit types of parameter sets: H.264 SPS and PPS; H.265 VPS, SPS and PPS.
_PARAMETER_SETS = {"h264": (frozenset({7, 8}), 1), "hevc": (frozenset({32, 33, 34}), 2)}


def _nal_units(codec: str, data: bytes) -> Iterator[tuple[int, bytes]]:
    """The (type, bytes) of each NAL unit of an Annex B access unit of H.264 or H.265 (nothing
    when it is not Annex B)."""
    start = data.find(b"\x00\x00\x01")
    while start >= 0:
        begin = start + 3
        if begin >= len(data):
            return
        kind = data[begin] & 0x1F if codec == "h264" else (data[begin] >> 1) & 0x3F
        start = data.find(b"\x00\x00\x01", begin)
        yield kind, data[begin : len(data) if start < 0 else start].rstrip(b"\x00")


def inband_parameter_sets(codec: str, data: bytes) -> bytes | None:
    """The parameter-set NAL units of an Annex B access unit (a keyframe), as Annex B
    extradata, or None when it carries none (or is not Annex B, or not H.264/H.265)."""
    if codec not in _PARAMETER_SETS:
        return None
    wanted, header = _PARAMETER_SETS[codec]
    found: list[bytes] = []
    for kind, nal in _nal_units(codec, data):
        if kind < (6 if codec == "h264" else 32):
            break  # a picture's slice: parameter sets come before it
        if kind in wanted and len(nal) > header:
            found.append(b"\x00\x00\x00\x01" + nal)
    return b"".join(found) or None


def holds_picture(packet: MediaPacket) -> bool:
    """False for an Annex B H.264/H.265 access unit without a picture's slice (e.g. only an
    access unit delimiter: what a camera that went away mid-frame leaves); True otherwise,
    including for other codecs and for length-prefixed units (avcC/hvcC extradata), which this
    does not judge."""
    codec, data, extradata = packet.stream.codec, packet.data, packet.stream.extradata
    annex_b = data.startswith((b"\x00\x00\x01", b"\x00\x00\x00\x01"))
    if codec not in _PARAMETER_SETS or not annex_b or (extradata or b"\x00")[0] == 1:
        return True
    header = _PARAMETER_SETS[codec][1]
    return any(
        len(nal) > header and (1 <= kind <= 5 if codec == "h264" else kind < 32)
        for kind, nal in _nal_units(codec, data)
    )


def _picture_size(keyframe: MediaPacket) -> tuple[int, int] | None:
    """The picture size a keyframe decodes to (with its stream's extradata, then its own
    in-band parameter sets), None if it does not."""
    try:
        decoder: Any = av.CodecContext.create(keyframe.stream.codec, "r")
        if keyframe.stream.extradata:
            decoder.extradata = keyframe.stream.extradata
        frames = decoder.decode(av.Packet(keyframe.data)) + decoder.decode(None)
    except (av.error.FFmpegError, ValueError):
        return None
    return (frames[0].width, frames[0].height) if frames else None


def _shape(info: StreamInfo) -> tuple[str, int, int, bytes | None]:
    return (info.codec, info.width, info.height, info.extradata)


#: Audio codecs MP4 and MPEG-TS players cannot take as they are: transcoded to AAC (cheap).
_TRANSCODED_AUDIO = ("pcm_alaw", "pcm_mulaw")


class _Track:
    """One output stream and the timestamp bookkeeping that goes with it."""

    def __init__(self, stream: Any, info: StreamInfo) -> None:
        self.stream = stream
        self.info = info
        self.prev_dts: int | None = None
        #: The last interval between two pictures' decode times (video), 0 before the second.
        self.frame_ticks = 0
        self.last_end = 0
        #: Source time (seconds) that is 0 in the output.
        self.origin_s: Fraction | None = None
        #: The largest output pts written (video: everything written displays up to here).
        self.max_pts: int | None = None
        #: Monotonic arrival of the last packet written, and its source dts in seconds.
        self.last_arrival: float | None = None
        self.last_src_s: Fraction | None = None
        #: Where the next packet without a timestamp goes (AAC frames packed in one packet).
        self.next_pts: int | None = None
        self.decoder: Any = None
        if info.codec in _TRANSCODED_AUDIO:
            self.decoder = av.CodecContext.create(info.codec, "r")
            self.decoder.sample_rate = info.sample_rate or 8000
            self.decoder.layout = "mono" if info.channels <= 1 else "stereo"


@attrs.frozen
class Gap:
    """A hole in a muxer's output timeline: ``missing_s`` seconds of real time without
    pictures, starting ``at_s`` seconds into the output (the camera reconnected)."""

    at_s: float
    missing_s: float


#: A video timestamp going back more than this (seconds) without a ``discontinuity`` flag is
#: a restart too (an adapter that reconnects on its own).
_JUMP_BACK_S = 1
#: Rounding allowance when comparing a written span with a requested one (seconds).
_TOLERANCE_S = 0.001
#: Samples in one AAC frame (AAC-LC): the step between frames packed into one RTP packet.
AAC_FRAME_SAMPLES = 1024


def _template(info: StreamInfo) -> Any:
    """A stream to copy codec parameters from (PyAV's remux path,
    ``add_stream_from_template``): taken from a throw-away output container, never opened,
    so no encoder runs and nothing overwrites the camera's extradata."""
    scratch: Any = av.open(io.BytesIO(), "w", format="matroska")
    try:
        if info.kind == "audio":
            return scratch.add_stream(info.codec, rate=info.sample_rate or 8000)
        return scratch.add_stream(info.codec)
    finally:
        scratch.close()


class Muxer:
    """Mux packets into ``target`` (a path, a :class:`~camgate.media.files.PrivateFile` or a
    writable binary file object) in ``format``.

    ``format`` is one of :data:`FORMATS`. ``audio`` adds an audio track (AAC or G.711) for the
    audio packets; without it they are dropped. ``metadata`` becomes container tags (MP4 writes
    arbitrary keys, e.g. ``camgate_grant``). ``started`` is True once the first keyframe was
    written; ``duration`` is the video span written so far in seconds; ``packets`` counts the
    packets written. ``fragments`` (``fmp4`` only) is one of :data:`FRAGMENTS`.

    A path is opened by the muxer itself with camgate's private file mode
    (:func:`camgate.media.files.file_mode`); a PrivateFile (a partial export's) is written
    and re-read through its descriptor, never re-opened by name, and closed by :meth:`close`.
    A write error (a full disk) raises :class:`~camgate.errors.ExportError` naming the file,
    from :meth:`write` or :meth:`close`.
    """

    #: The folder the muxer may create files in (HLS), None for one file.
    directory: Path | None = None
    _folder: Folder | None = None
    _own_folder = False

    def __init__(
        self,
        target: str | Path | PrivateFile | BinaryIO,
        info: StreamInfo,
        *,
        format: str = "mp4",
        audio: StreamInfo | None = None,
        metadata: Mapping[str, str] | None = None,
        fragments: str = "keyframe",
    ) -> None:
        if info.kind != "video":
            raise ValidationError(f"a muxer needs a video stream first, got a {info.kind} stream")
        if format not in FORMATS:
            raise ValidationError(f"format={format!r}: must be one of {', '.join(FORMATS)}")
        if fragments not in FRAGMENTS:
            raise ValidationError(f"fragments={fragments!r}: must be one of {', '.join(FRAGMENTS)}")
        if audio is not None and audio.kind != "audio":
            raise ValidationError(f"audio= needs an audio stream, got a {audio.kind} stream")
        self.format = format
        self.info = info
        self.path = Path(target) if isinstance(target, str | Path) else None
        if isinstance(target, PrivateFile):
            self.path = target.path
        options: dict[str, str] = {}
        if format == "mp4":
            options["movflags"] = "+faststart+use_metadata_tags"
        elif format == "fmp4":
            cut = "frag_every_frame" if fragments == "frame" else "frag_keyframe"
            options["movflags"] = (
                f"{cut}+empty_moov+default_base_moof+negative_cts_offsets+use_metadata_tags"
            )
        if format != "mp4":
            # B-frames: the first picture shows at 0 and decodes before it; do not shift the
            # whole stream later (MP4 says the same with an edit list).
            options["avoid_negative_ts"] = "disabled"
        self._files: list[PrivateFile] = []
        dest: Any = target
        if isinstance(target, PrivateFile):
            self._files.append(target)
        elif self.path is not None:
            # Opened here, not by FFmpeg: private mode from the first byte, write errors seen.
            dest = open_private(self.path)
            self._files.append(dest)
        try:
            self._setup(dest, _FFMPEG_FORMAT[format], options, audio, metadata)
        except BaseException:
            self._close_files()
            raise

    def _setup(
        self,
        dest: Any,
        ffmpeg_format: str,
        options: dict[str, str],
        audio: StreamInfo | None,
        metadata: Mapping[str, str] | None,
    ) -> None:
        try:
            self._container: Any = av.open(
                dest, "w", format=ffmpeg_format, options=options, io_open=self._io_open
            )
        except (av.error.FFmpegError, OSError) as exc:
            self._close_files()
            raise ValidationError(f"cannot open the {self.format} output: {exc}") from None
        for key, value in (metadata or {}).items():
            self._container.metadata[key] = value
        self._video = _Track(self._add(self.info), self.info)
        self._audio = _Track(self._add(audio), audio) if audio is not None else None
        self._origin_s: Fraction | None = None
        #: The last in-band parameter sets seen at a keyframe (a change may change the size).
        self._inband: bytes | None = None
        self._shape_checked: MediaPacket | None = None
        self.packets = 0
        #: The holes in the output's timeline (camera reconnects), in order.
        self.gaps: list[Gap] = []

    def _add(self, info: StreamInfo) -> Any:
        """The output stream for ``info``: the camera's codec parameters, no encoder (except
        for G.711, transcoded to AAC, and AAC whose configuration the camera did not give:
        there the encoder's configuration for the same rate and channels is the one)."""
        try:
            if info.kind == "audio" and (info.codec in _TRANSCODED_AUDIO or not info.extradata):
                codec = "aac" if info.codec in _TRANSCODED_AUDIO else info.codec
                stream: Any = self._container.add_stream(codec, rate=info.sample_rate or 8000)
                stream.layout = "mono" if info.channels <= 1 else "stereo"
                if codec != info.codec:
                    return stream  # an encoder of our own: no extradata or time base to copy
            else:
                stream = self._container.add_stream_from_template(_template(info), opaque=True)
                ctx = stream.codec_context
                if info.kind == "audio":
                    ctx.sample_rate = info.sample_rate or ctx.sample_rate
                    ctx.layout = "mono" if info.channels <= 1 else "stereo"
                else:
                    ctx.width, ctx.height = info.width, info.height
                    if info.codec == "hevc" and self.format != "ts":
                        ctx.codec_tag = "hvc1"  # parameter sets in hvcC: Apple players' tag
                ctx.extradata = info.extradata
        except (av.error.FFmpegError, ValueError) as exc:
            raise CameraProtocolError(f"cannot write a {info.codec} stream: {exc}") from None
        if info.extradata:
            stream.codec_context.extradata = info.extradata
        stream.time_base = info.time_base
        return stream

    @property
    def started(self) -> bool:
        """True once the first keyframe was written."""
        return self._origin_s is not None

    @property
    def duration(self) -> float:
        """Seconds of video written so far."""
        return float(self._video.last_end * self.info.time_base)

    def write(self, packet: MediaPacket) -> int:
        """Mux one packet; returns 1 when it was written, 0 when skipped.

        Skipped: anything before the first video keyframe, audio without an audio track,
        video packets without a timestamp (an AAC frame without one is placed after the
        frame before it), and video packets that hold no picture (:func:`holds_picture`: an
        access unit cut short when the camera went away, which players refuse). Raises
        CameraProtocolError when an MP4's video changes shape, or when FFmpeg refuses the
        packet.
        """
        if packet.stream.kind == "audio":
            return self._write_audio(packet)
        if packet.stream.kind != "video" or packet.pts is None:
            return 0
        change = self.shape_change(packet)
        if change is not None:
            raise CameraProtocolError(change)
        if not holds_picture(packet):
            return 0
        if self._origin_s is None:
            if not packet.is_keyframe:
                return 0
            # The keyframe's presentation time is 0: with B-frames its decode time is earlier
            # (negative in the output), and the first picture shows at 0, not a frame or two in.
            self._origin_s = self._video.origin_s = Fraction(packet.pts) * self.info.time_base
            if not (self.info.width and self.info.height):
                self._learn_size(packet)
            if not self.info.extradata and self.format != "ts":
                # Parameter sets only in-band (no SDP ones): the first keyframe's, so that
                # avcC/hvcC are written (fMP4 writes its header before any picture).
                found = inband_parameter_sets(self.info.codec, packet.data)
                if found:
                    self._video.stream.codec_context.extradata = found
        elif self._restarts(packet):
            self._bridge(packet)
        return self._mux(self._video, packet)

    def shape_change(self, packet: MediaPacket) -> str | None:
        """Why ``packet`` cannot go into this MP4 or fMP4 file (None when it can): its video
        has another codec or picture size than the file's — announced by the adapter (a new
        ``StreamInfo``) or only in-band (a keyframe whose parameter sets give another size).
        MPEG-TS and HLS carry a change in-band and never refuse. :meth:`write` raises
        CameraProtocolError with this text; the edge ends a clip there and keeps it."""
        if self.format == "ts" or packet.stream.kind != "video" or not packet.is_keyframe:
            return None
        if packet is self._shape_checked:
            return None  # asked already (the edge asks before it writes): it was fine
        old = self.info
        size = (self._video.stream.width or old.width, self._video.stream.height or old.height)
        new_codec, new_size = old.codec, size
        announced = packet.stream
        # New out-of-band parameter sets cannot reach an MP4's header: a change even at one size.
        renewed = announced.extradata is not None and _shape(announced) != _shape(old)
        if announced is not old and renewed:
            new_codec, new_size = announced.codec, (announced.width, announced.height)
        found = inband_parameter_sets(packet.stream.codec, packet.data)
        if found is not None and found != self._inband:
            first = self._inband is None and self._origin_s is None
            self._inband = found
            if not first and new_codec == old.codec:
                new_size = _picture_size(packet) or new_size
        if new_codec == old.codec and new_size == size and not (announced is not old and renewed):
            self._shape_checked = packet
            return None
        sets = " (new parameter sets)" if (new_codec, new_size) == (old.codec, size) else ""
        return (
            f"the video changed from {old.codec} {size[0]}x{size[1]} to {new_codec} "
            f"{new_size[0]}x{new_size[1]}{sets} after {self.duration:.1f} s; one {self.format} "
            "file cannot hold both"
        )

    def _restarts(self, packet: MediaPacket) -> bool:
        """True when ``packet`` starts a new timeline: flagged as after a gap, or a keyframe
        whose timestamp went back by more than a second (an adapter that reconnected)."""
        track = self._video
        if packet.discontinuity:
            return True
        if not packet.is_keyframe or track.last_src_s is None:
            return False
        back = track.last_src_s - _src_seconds(packet)
        return back > _JUMP_BACK_S

    def _bridge(self, packet: MediaPacket) -> None:
        """Place the first packet after a gap where real time puts it: after the last picture
        by the time that passed between their arrivals (never before the last one ended)."""
        track, tb = self._video, packet.stream.time_base
        assert track.last_arrival is not None and track.max_pts is not None
        end_s = Fraction(track.last_end) * self.info.time_base
        last_s = Fraction(track.max_pts) * self.info.time_base
        passed = Fraction(max(0.0, packet.arrival - track.last_arrival))
        at_s = max(end_s, last_s + passed)
        if track.frame_ticks:
            # On the camera's frame grid, so tools that guess a frame rate from the
            # timestamps (ffmpeg's CLI) still find the camera's and keep every picture.
            frame_s = Fraction(track.frame_ticks) * tb
            at_s = end_s + math.ceil((at_s - end_s) / frame_s) * frame_s
        # Where this keyframe lands, in whole ticks of its own time base.
        at_s = Fraction(round(at_s / tb)) * tb
        track.origin_s = Fraction(packet.pts or 0) * tb - at_s
        if packet.dts is not None and packet.pts is not None and packet.dts < packet.pts:
            # B-frames: its decode time lies before its picture; keep it after the last one.
            track.origin_s = min(track.origin_s, Fraction(packet.dts) * tb - end_s)
        self.gaps.append(Gap(float(end_s), float(at_s - end_s)))
        if self._audio is not None:
            self._audio.origin_s = None  # audio re-anchors on the new picture clock

    def reaches(self, packet: MediaPacket, seconds: float) -> bool:
        """True when the output already shows ``seconds`` of video and ``packet`` is at a
        display-order boundary: it displays after everything written (with B-frames, the
        pictures that display ahead of the last anchor are all in). A clip of ``seconds``
        ends before such a packet, so it neither stops short nor leaves a hole before its
        last picture. After a gap, True when the packet would land at ``seconds`` or later.
        Only video packets with a timestamp answer True."""
        track = self._video
        if (
            packet.stream.kind != "video"
            or packet.pts is None
            or track.origin_s is None
            or track.max_pts is None
        ):
            return False
        tb = packet.stream.time_base
        if self._restarts(packet):
            return True if self.duration >= seconds else self._after_gap(packet) >= seconds
        pts = Fraction(packet.pts) * tb - track.origin_s
        anchor = pts > Fraction(track.max_pts) * self.info.time_base
        return anchor and self.duration >= seconds - _TOLERANCE_S

    def _after_gap(self, packet: MediaPacket) -> float:
        """Where the first packet after a gap will start (seconds into the output)."""
        track = self._video
        assert track.last_arrival is not None and track.max_pts is not None
        last_s = float(track.max_pts * self.info.time_base)
        return max(self.duration, last_s + packet.arrival - track.last_arrival)

    def _learn_size(self, keyframe: MediaPacket) -> None:
        """A camera whose description left the picture size out (a short probe): decode the
        first keyframe once to learn it, before the header is written."""
        size = _picture_size(keyframe)
        if size is None:
            raise CameraProtocolError("the first keyframe does not decode: picture size unknown")
        self._video.stream.width, self._video.stream.height = size

    def _anchor_audio(self, track: _Track, packet: MediaPacket) -> None:
        """Place audio on the video's output clock.

        An RTSP camera's audio and video clocks are only tied together once its first RTCP
        sender report arrives (and may jump then): the first audio packet is taken to sound
        with the latest picture, and audio is placed again whenever the two drift more than a
        second apart.
        """
        at = Fraction(packet.pts or 0) * packet.stream.time_base
        video_now = Fraction(self._video.prev_dts or 0) * self.info.time_base
        if track.origin_s is None or abs(at - track.origin_s - video_now) > 1:
            resume = video_now  # never back over sound already written
            if track.prev_dts is not None:
                resume = max(resume, Fraction(track.prev_dts + 1) * packet.stream.time_base)
            track.origin_s = at - resume

    def _write_audio(self, packet: MediaPacket) -> int:
        if self._audio is None or self._origin_s is None:
            return 0
        packet = self._timed_audio(self._audio, packet)
        if packet.pts is None:
            return 0
        self._anchor_audio(self._audio, packet)
        if self._audio.decoder is None:
            return self._mux(self._audio, packet)
        # G.711: decode and encode as AAC, on a sample clock that starts with the video.
        track, rate = self._audio, self._audio.stream.codec_context.sample_rate
        assert track.origin_s is not None
        at = Fraction(packet.pts or 0) * packet.stream.time_base
        start = round((at - track.origin_s) * rate)
        if track.last_end and start < track.last_end:
            start = track.last_end  # re-anchored backwards: continue where the sound ended
        written = 0
        try:
            frames = track.decoder.decode(av.Packet(packet.data))
            for frame in frames:
                if start < 0 or (track.prev_dts is not None and start <= track.prev_dts):
                    continue  # before the first picture, or a repeated timestamp
                frame.pts, frame.time_base = start, Fraction(1, rate)
                track.prev_dts = start
                start += frame.samples
                track.last_end = start
                for out in track.stream.encode(frame):
                    with self._writing():
                        self._container.mux(out)
                    written += 1
        except av.error.FFmpegError as exc:
            raise CameraProtocolError(f"cannot transcode G.711 audio: {exc}") from None
        self.packets += written
        return written

    def _timed_audio(self, track: _Track, packet: MediaPacket) -> MediaPacket:
        """``packet`` with a timestamp: its own, or, for an AAC frame without one, the end
        of the frame before it (1024 samples on). Unplaceable packets keep ``pts=None``."""
        info = packet.stream
        if packet.pts is None:
            if track.next_pts is None or info.codec != "aac":
                return packet
            packet = attrs.evolve(packet, pts=track.next_pts, dts=track.next_pts)
        assert packet.pts is not None
        step = packet.duration
        if not step and info.codec == "aac" and info.sample_rate:
            step = round(Fraction(AAC_FRAME_SAMPLES, info.sample_rate) / info.time_base)
        track.next_pts = packet.pts + step if step else None
        return packet

    def _mux(self, track: _Track, packet: MediaPacket) -> int:
        assert track.origin_s is not None
        tb = packet.stream.time_base
        origin = round(track.origin_s / tb)
        pts = packet.pts - origin if packet.pts is not None else 0
        dts = (packet.dts if packet.dts is not None else packet.pts or 0) - origin
        if dts < 0 and track is self._audio:
            return 0  # audio from before the first picture
        if track.prev_dts is not None and dts <= track.prev_dts:
            dts = track.prev_dts + 1  # a camera repeating a timestamp must not break the muxer
        pts = max(pts, dts)
        if track.prev_dts is not None and track is self._video:
            step = dts - track.prev_dts  # the camera's own frame interval (not a gap's)
            if 0 < step * tb <= Fraction(1, 2):
                track.frame_ticks = step
        track.prev_dts = dts
        track.last_arrival = packet.arrival
        track.last_src_s = _src_seconds(packet)
        track.max_pts = pts if track.max_pts is None else max(track.max_pts, pts)
        out = av.Packet(packet.data)
        out.pts, out.dts = pts, dts
        out.time_base = tb
        out.stream = track.stream
        if packet.is_keyframe:
            out.is_keyframe = True
        with self._writing():
            self._container.mux(out)
        self.packets += 1
        frame = packet.duration or track.frame_ticks or _frame_ticks(track.info)
        track.last_end = max(track.last_end, pts + frame)
        return 1

    def _io_open(self, url: str, flags: int, options: object) -> PrivateFile:
        """Every further file FFmpeg opens (HLS segments and playlists, the MP4 re-read for
        fast start) is opened here, so it is private and its write errors are seen."""
        if url == "<none>" and self._files:  # the MP4 muxer re-reading its own output
            return self._files[0].reader()  # type: ignore[return-value]
        path = Path(url)
        folder = self._folder
        if folder is None or path.parent != folder.path:
            raise ValidationError(f"the muxer asked for a file outside its output: {url!r}")
        if not flags & 2:  # AVIO_FLAG_WRITE
            return folder.reopen(path.name)
        sink = folder.create(path.name)  # relative to the folder's descriptor
        failed = self._failed()
        if failed is not None:
            sink.error = failed[1]  # the output is doomed: nothing more is written
        # PyAV closes what FFmpeg is done with: keep only open files and failed ones, so a
        # long live HLS output does not pile up one entry per segment.
        self._files = [f for f in self._files if f.fd is not None or f.error is not None]
        self._files.append(sink)
        return sink

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        """Run one FFmpeg call; a write error of any file (raised, or swallowed by FFmpeg and
        kept by the file) becomes ExportError naming the file; other FFmpeg errors
        CameraProtocolError."""
        try:
            yield
        except (OSError, av.error.FFmpegError) as exc:
            failed = self._failed()
            if failed is not None:
                raise export_error(*failed) from None
            if isinstance(exc, OSError) and not isinstance(exc, av.error.FFmpegError):
                raise export_error(self.path or self.format, exc) from None
            where = self.path.name if self.path is not None else self.format
            raise CameraProtocolError(f"cannot write packet to {where}: {exc}") from None
        failed = self._failed()
        if failed is not None:
            raise export_error(*failed)

    def _failed(self) -> tuple[Path, OSError] | None:
        """The first file a write failed on, and its error, if any."""
        for f in self._files:
            if f.error is not None:
                return f.path, f.error
        return None

    def _close_files(self) -> None:
        for f in self._files:
            f.close()
        if self._own_folder and self._folder is not None:
            self._folder.close()

    def close(self) -> None:
        """Finish the output (writes the index / trailer). Idempotent. Raises ExportError when
        a file could not be written; the files are closed whatever happens."""
        if self._container is not None:
            try:
                with self._writing():
                    audio = self._audio
                    if audio is not None and audio.decoder is not None and self.started:
                        for out in audio.stream.encode(None):
                            self._container.mux(out)
                    self._container.close()
            finally:
                self._container = None
                self._close_files()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class Mp4Writer(Muxer):
    """Write video packets into an MP4 file, as they are (no re-encoding).

    Timestamps are shifted so the file starts at zero; the writer skips packets until the first
    keyframe so the file plays from its first frame. ``duration`` is the span written so far in
    seconds (last end minus first start). ``metadata`` becomes the file's tags.
    """

    def __init__(
        self,
        path: str | Path,
        info: StreamInfo,
        *,
        audio: StreamInfo | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(path, info, format="mp4", audio=audio, metadata=metadata)
        self.path = Path(path)


class _Chunks:
    """A write-only file object collecting what the muxer writes, drained after each packet."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def write(self, data: bytes) -> int:
        self.parts.append(bytes(data))
        return len(data)

    def drain(self) -> bytes:
        out = b"".join(self.parts)
        self.parts.clear()
        return out


async def stream_bytes(
    packets: AsyncIterable[MediaPacket],
    info: StreamInfo | None = None,
    *,
    format: str = "fmp4",
    audio: StreamInfo | None = None,
    metadata: Mapping[str, str] | None = None,
    fragments: str = "keyframe",
) -> AsyncIterator[bytes]:
    """Turn packets into a fragmented MP4 (``fmp4``) or MPEG-TS (``ts``) byte stream.

    Yields byte chunks as the muxer produces them (an fMP4 fragment is emitted when the next
    keyframe starts a new one), then the trailer when ``packets`` ends. Concatenated, the chunks
    are a file ffmpeg, VLC or a browser's Media Source Extensions can play; ``fragments="frame"``
    cuts a fragment after every picture (see :data:`FRAGMENTS`). The plain ``mp4``
    format needs a seekable file: use :class:`Mp4Writer` for that. Without ``info`` the video
    track is described by the first video packet's ``stream`` — right for a masked stream,
    whose packets are H.264 from camgate's encoder whatever the camera sends.
    """
    if format not in ("fmp4", "ts"):
        raise ValidationError(f"format={format!r}: a byte stream is 'fmp4' or 'ts'")
    sink = _Chunks()
    muxer: Muxer | None = None
    try:
        async for packet in packets:
            if muxer is None:
                if info is None and packet.stream.kind != "video":
                    continue
                target: Any = sink
                muxer = Muxer(
                    target,
                    info or packet.stream,
                    format=format,
                    audio=audio,
                    metadata=metadata,
                    fragments=fragments,
                )
            muxer.write(packet)
            chunk = sink.drain()
            if chunk:
                yield chunk
    finally:
        if muxer is not None:
            muxer.close()
    tail = sink.drain()
    if tail:
        yield tail


class HlsWriter(Muxer):
    """HLS: an ``index.m3u8`` playlist and MPEG-TS segments written into ``directory``.

    Segments are cut at keyframes, each at least ``target_duration_s`` long (longer when the
    camera's GOP is). With ``live_window=N`` the playlist is a live sliding window of the last N
    segments and older segment files are deleted; without it (the default) every segment is
    kept and :meth:`close` finishes a VOD playlist (``#EXT-X-PLAYLIST-TYPE:VOD`` and
    ``#EXT-X-ENDLIST``). Written with FFmpeg's own HLS muxer, so ffmpeg, VLC and hls.js read it.
    Writing and closing work as for :class:`Muxer`. ``directory`` is a path (created if
    missing) or an open :class:`~camgate.media.files.Folder` (a partial export's): either way
    every file is created relative to the folder's descriptor, never through a symlink.
    """

    def __init__(
        self,
        directory: str | Path | Folder,
        info: StreamInfo,
        *,
        target_duration_s: float = 2.0,
        live_window: int | None = None,
        audio: StreamInfo | None = None,
    ) -> None:
        if info.kind != "video":
            raise ValidationError(f"HLS needs a video stream first, got a {info.kind} stream")
        if not (0 < target_duration_s < 3600):
            raise ValidationError(f"target_duration_s={target_duration_s!r}: must be in (0, 3600)")
        if live_window is not None and live_window < 2:
            raise ValidationError(f"live_window={live_window!r}: must be at least 2 segments")
        if isinstance(directory, Folder):
            self._folder = directory
        else:
            self._folder = Folder.open(make_dirs(directory))
            self._own_folder = True
        self.directory = self._folder.path
        self.playlist = self.directory / "index.m3u8"
        options = {
            "hls_time": f"{target_duration_s:g}",
            "hls_segment_filename": str(self.directory / "segment%05d.ts"),
            "hls_flags": "independent_segments",
        }
        if live_window is None:
            options |= {"hls_playlist_type": "vod", "hls_list_size": "0"}
        else:
            options |= {
                "hls_list_size": str(live_window),
                "hls_flags": "independent_segments+delete_segments",
            }
        self.format = "ts"  # segments carry parameter sets in-band, like MPEG-TS
        self.info = info
        self.path = self.playlist
        self._files = []
        try:
            self._setup(str(self.playlist), "hls", options, audio, None)
        except BaseException:
            self._close_files()
            raise
