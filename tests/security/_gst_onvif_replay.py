"""A second ONVIF replay implementation: GStreamer's GstRTSPOnvifServer serving a recording.

Run by the *system* Python (it needs PyGObject and gst-rtsp-server 1.14+ from the system's
packages; it must not import camgate): ``python3 _gst_onvif_replay.py FILE.mkv START_EPOCH``
prints the port it listens on, then serves ``/recording`` until killed.

GstRTSPOnvifServer answers ``Require: onvif-replay`` itself (its media factory has replay
support switched on) and parses ``Range: clock=…``; what it lacks is a conversion of clock
ranges to the media's own time (its media converts only between NPT units). ``Media`` below
adds it: clock = the recording's start + NPT, both ways, so PLAY seeks to the window and its
answer says (``Range: clock=…``) where the replay really starts. It sends no ONVIF RTP header
extension (``rtponviftimestamp`` would need reference timestamps on each buffer).
"""

import datetime
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtsp", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtsp, GstRtspServer  # noqa: E402

UTC = datetime.UTC
CLOCK, NPT = GstRtsp.RTSPRangeUnit.CLOCK, GstRtsp.RTSPRangeUnit.NPT


def _seconds(epoch, time, date):
    day = datetime.datetime(date.year, date.month, date.day, tzinfo=UTC)
    return (day - epoch).total_seconds() + time.seconds


def media_class(epoch):
    """An ONVIF media whose clock ranges are ``epoch`` + NPT."""

    class Media(GstRtspServer.RTSPOnvifMedia):
        def do_convert_range(self, rng, unit):
            if rng.unit == unit:
                return True
            if rng.unit == CLOCK and unit == NPT:
                for time, date in ((rng.min, rng.min2), (rng.max, rng.max2)):
                    if time.type == GstRtsp.RTSPTimeType.UTC:
                        time.seconds = max(_seconds(epoch, time, date), 0.0)
                        time.type = GstRtsp.RTSPTimeType.SECONDS
                rng.unit = NPT
                return True
            if rng.unit == NPT and unit == CLOCK:
                for time, date in ((rng.min, rng.min2), (rng.max, rng.max2)):
                    if time.type == GstRtsp.RTSPTimeType.SECONDS:
                        when = epoch + datetime.timedelta(seconds=time.seconds)
                        day = datetime.datetime(when.year, when.month, when.day, tzinfo=UTC)
                        date.year, date.month, date.day = when.year, when.month, when.day
                        time.seconds = (when - day).total_seconds()
                        time.type = GstRtsp.RTSPTimeType.UTC
                rng.unit = CLOCK
                return True
            return False

    return Media


def main():
    path, start = sys.argv[1], float(sys.argv[2])
    Gst.init(None)
    epoch = datetime.datetime.fromtimestamp(start, UTC)
    factory = GstRtspServer.RTSPOnvifMediaFactory()
    factory.set_media_gtype(media_class(epoch).__gtype__)
    factory.set_replay_support(True)
    factory.set_shared(False)
    factory.set_launch(
        f"( filesrc location={path} ! matroskademux ! h264parse config-interval=-1 "
        "! rtph264pay name=pay0 pt=96 )"
    )
    server = GstRtspServer.RTSPOnvifServer()
    server.set_address("127.0.0.1")
    server.set_service("0")
    server.get_mount_points().add_factory("/recording", factory)
    server.attach(None)
    print(server.get_bound_port(), flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main()
