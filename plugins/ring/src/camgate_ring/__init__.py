"""camgate-ring: Ring cameras through the Ring Partner API (docs/ring.md).

Re-exports the adapter, its settings, the API client, the event history and the webhook
receiver; linking is in :mod:`camgate_ring.link`, the app backend in :mod:`camgate_ring.app`.
Registers nothing (the ``ring`` entry point's module, :mod:`camgate_ring.plugin`, does).
"""

from camgate_ring.adapter import NAME, RingAdapter, RingLiveStream, RingSettings, TokenFile
from camgate_ring.devices import RingDevice, parse_devices
from camgate_ring.history import HistoryEvent
from camgate_ring.partner import PartnerClient, Tokens
from camgate_ring.webhooks import (
    WebhookApp,
    WebhookEvent,
    WebhookReceiver,
    WebhookRejected,
    WebhookVerifier,
)

__all__ = [
    "NAME",
    "HistoryEvent",
    "PartnerClient",
    "RingAdapter",
    "RingDevice",
    "RingLiveStream",
    "RingSettings",
    "TokenFile",
    "Tokens",
    "WebhookApp",
    "WebhookEvent",
    "WebhookReceiver",
    "WebhookRejected",
    "WebhookVerifier",
    "parse_devices",
]
