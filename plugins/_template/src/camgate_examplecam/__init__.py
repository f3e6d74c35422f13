"""camgate-examplecam: the adapter for Example Cam MJPEG-over-HTTP cameras.

Importing this package registers nothing; the ``camgate`` entry point ``examplecam`` names
:mod:`camgate_examplecam.plugin`, which camgate's plugin host loads.
"""

from camgate_examplecam.adapter import ExampleAdapter, ExampleSettings, MjpegLiveStream

__all__ = ["ExampleAdapter", "ExampleSettings", "MjpegLiveStream"]
