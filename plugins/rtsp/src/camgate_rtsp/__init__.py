"""camgate-rtsp: the plain RTSP camera adapter for camgate, on PyAV.

Importing this package registers nothing; the ``camgate`` entry point ``rtsp`` names
:mod:`camgate_rtsp.plugin`, which the plugin host loads.
"""

from camgate_rtsp.adapter import RtspAdapter, RtspLiveStream, RtspSettings

__all__ = ["RtspAdapter", "RtspLiveStream", "RtspSettings"]
