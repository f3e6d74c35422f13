"""Test infrastructure of the rtsp adapter: real RTSP servers on loopback, not product code.

- :mod:`camgate_rtsp.testing.server`: :class:`RtspTestServer`, GStreamer's RTSP server run as a
  child process of the system Python (the script :mod:`camgate_rtsp.testing.gst_server`, located
  beside it as ``SERVER_SCRIPT``), serving :class:`Mount` s.
- :mod:`camgate_rtsp.testing.simulator`: :class:`RtspSimulator`, ``count`` cameras on that server
  (what the ``rtsp`` factory's ``simulator`` builds).
- :mod:`camgate_rtsp.testing.altserver`: :class:`AltRtspServer`, a second, independent RTSP
  server (FFmpeg-fed, in-process) for what GStreamer's cannot serve.
- :mod:`camgate_rtsp.testing.inputs`: mounts for unusual inputs (HEVC, SDP-only parameter sets).

Nothing in camgate's product path imports this package; tests, benchmarks, the demo (through the
plugin host's simulator) and the conformance target do.
"""

from __future__ import annotations

from camgate_rtsp.testing.altserver import AltRtspServer, media_file
from camgate_rtsp.testing.server import (
    SERVER_SCRIPT,
    Mount,
    RequestEvent,
    RtspTestServer,
    TestServerError,
    gstreamer_available,
    serving,
)
from camgate_rtsp.testing.simulator import RtspSimulator

__all__ = [
    "SERVER_SCRIPT",
    "AltRtspServer",
    "Mount",
    "RequestEvent",
    "RtspSimulator",
    "RtspTestServer",
    "TestServerError",
    "gstreamer_available",
    "media_file",
    "serving",
]
