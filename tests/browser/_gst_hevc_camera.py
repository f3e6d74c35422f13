"""An H.265 camera for the browser tests: GStreamer's RTSP server with x265enc.

Run by the *system* Python (it needs PyGObject and gst-rtsp-server from the system's packages;
it must not import camgate): ``python3 _gst_hevc_camera.py WIDTH HEIGHT`` prints the port it
listens on (loopback), then serves ``/hevc`` until its standard input closes or it is killed.
The picture is ``videotestsrc``'s SMPTE bars at 30 fps, a keyframe every 30 frames, VPS, SPS
and PPS in-band before each one, as many H.265 cameras send them.
"""

import sys
import threading

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def main():
    width, height = int(sys.argv[1]), int(sys.argv[2])
    Gst.init(None)
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_shared(True)
    factory.set_launch(
        "( videotestsrc is-live=true pattern=smpte ! "
        f"video/x-raw,format=I420,width={width},height={height},framerate=30/1 ! "
        "x265enc tune=zerolatency speed-preset=ultrafast key-int-max=30 "
        'option-string="scenecut=0:repeat-headers=1:log-level=error" ! '
        "video/x-h265,stream-format=byte-stream,alignment=au ! "
        "h265parse config-interval=-1 ! rtph265pay pt=96 name=pay0 )"
    )
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service("0")
    server.get_mount_points().add_factory("/hevc", factory)
    server.attach(None)
    print(server.get_bound_port(), flush=True)
    loop = GLib.MainLoop()
    # The test's end closes our stdin: quit then, so no server outlives it.
    threading.Thread(target=lambda: (sys.stdin.read(), loop.quit()), daemon=True).start()
    loop.run()


if __name__ == "__main__":
    main()
