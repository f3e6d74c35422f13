"""Camera behaviours the plain test mounts do not show, as gst-launch descriptions.

Each function returns a :class:`~camgate_rtsp.testing.server.Mount` served by the same GStreamer
RTSP test server, with a whole pipeline of its own (``Mount.launch``):

- :func:`sdp_only_h264` — H.264 whose SPS/PPS travel only in the SDP
  (``sprop-parameter-sets``), never in-band, optionally with B-frames and a chosen profile,
  as ffmpeg-fed servers and many cameras send it;
- :func:`hevc` — H.265, whose parameter sets a joining client gets only from the SDP.

(GStreamer's ``rtpmp4gpay`` sends one AAC frame per RTP packet whatever its ``max-ptime``:
AAC packed several frames per packet is tested on the muxer with real AAC frames instead.)

The encoder is named ``enc`` like the built-in mounts' (the ``KEY`` command reaches it).
"""

from __future__ import annotations

from camgate_rtsp.testing.server import Mount

__all__ = ["hevc", "sdp_only_h264"]


def _picture(width: int, height: int, fps: int) -> str:
    return (
        "videotestsrc is-live=true pattern=ball ! "
        f"video/x-raw,format=I420,width={width},height={height},framerate={fps}/1 ! "
    )


def sdp_only_h264(
    path: str,
    *,
    bframes: int = 0,
    profile: str = "main",
    width: int = 320,
    height: int = 240,
    fps: int = 30,
    gop_frames: int = 30,
) -> Mount:
    """A mount whose H.264 parameter sets are only in the SDP (``stream-format=avc``:
    x264 puts them in ``codec_data`` and, with ``repeat-headers=0``, not in the stream;
    ``rtph264pay config-interval=0`` sends them as ``sprop-parameter-sets`` only), with
    ``bframes`` B-frames between anchors."""
    launch = (
        _picture(width, height, fps) + "x264enc name=enc speed-preset=ultrafast byte-stream=false "
        f"key-int-max={gop_frames} bframes={bframes} b-adapt=false "
        "option-string=scenecut=0:repeat-headers=0 ! "
        f"video/x-h264,stream-format=avc,alignment=au,profile={profile} ! "
        "rtph264pay config-interval=0 pt=96 name=pay0"
    )
    return Mount(path, width=width, height=height, fps=fps, gop_frames=gop_frames, launch=launch)


def hevc(path: str, *, width: int = 320, height: int = 240, fps: int = 30) -> Mount:
    """A mount serving H.265 (x265, a keyframe every second). x265 writes its VPS, SPS and
    PPS once, before its first picture, so a client that joins later has them only from the
    SDP (``sprop-vps/sps/pps``), as with many H.265 cameras."""
    launch = (
        _picture(width, height, fps)
        + f"x265enc name=enc speed-preset=ultrafast tune=zerolatency key-int-max={fps} ! "
        "video/x-h265,stream-format=byte-stream,alignment=au ! h265parse ! "
        "rtph265pay config-interval=0 pt=96 name=pay0"
    )
    return Mount(path, width=width, height=height, fps=fps, gop_frames=fps, launch=launch)
