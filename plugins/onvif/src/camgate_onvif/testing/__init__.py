"""Test infrastructure of the onvif adapter: a simulated ONVIF device on loopback, not product
code.

- :mod:`camgate_onvif.testing.simulator`: :class:`OnvifSimulator`, a SOAP device (Profile S/T/G
  operations, digest and WS-UsernameToken auth, staged :class:`Quirks`) with its media on the
  rtsp adapter's test server; the adapter's simulator.
- :mod:`camgate_onvif.testing.replay_server`: :class:`ReplayServer`, the device's RTSP replay
  endpoint serving a :class:`Recording`.
- :mod:`camgate_onvif.testing.recording`: recorded H.264 whose every picture carries its index
  and time, so a test can tell which moments a replay handed over.

Nothing in camgate's product path imports this package.
"""

from __future__ import annotations

from camgate_onvif.testing.recording import Recording, encode_recording, read_code
from camgate_onvif.testing.replay_server import ReplayServer
from camgate_onvif.testing.simulator import OnvifSimulator, Quirks, SimRequest

__all__ = [
    "OnvifSimulator",
    "Quirks",
    "Recording",
    "ReplayServer",
    "SimRequest",
    "encode_recording",
    "read_code",
]
