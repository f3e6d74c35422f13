"""camgate-arlo: Arlo cameras through the Arlo cloud (docs/arlo.md).

Re-exports the adapter, its settings, the client and the wire types; registers nothing (the
``arlo`` entry point's module, :mod:`camgate_arlo.plugin`, does).
"""

from camgate_arlo.adapter import NAME, ArloAdapter, ArloLiveStream, ArloSettings, SessionFile
from camgate_arlo.client import (
    ArloClient,
    ArloSession,
    HttpxLoginTransport,
    LoginPrompt,
    LoginReply,
    LoginTransport,
)
from camgate_arlo.wire import ArloDevice, Factor

__all__ = [
    "NAME",
    "ArloAdapter",
    "ArloClient",
    "ArloDevice",
    "ArloLiveStream",
    "ArloSession",
    "ArloSettings",
    "Factor",
    "HttpxLoginTransport",
    "LoginPrompt",
    "LoginReply",
    "LoginTransport",
    "SessionFile",
]
