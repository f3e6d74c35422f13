"""camgate-ring: Ring cameras through the Ring Partner API (docs/ring.md).

Re-exports the adapter, its settings, the API client and the webhook verifier; registers
nothing (the ``ring`` entry point's module, :mod:`camgate_ring.plugin`, does).
"""

from camgate_ring.adapter import NAME, RingAdapter, RingLiveStream, RingSettings, TokenFile
from camgate_ring.devices import RingDevice, parse_devices
from camgate_ring.partner import PartnerClient, Tokens
from camgate_ring.webhooks import WebhookEvent, WebhookRejected, WebhookVerifier

__all__ = [
    "NAME",
    "PartnerClient",
    "RingAdapter",
    "RingDevice",
    "RingLiveStream",
    "RingSettings",
    "TokenFile",
    "Tokens",
    "WebhookEvent",
    "WebhookRejected",
    "WebhookVerifier",
    "parse_devices",
]
