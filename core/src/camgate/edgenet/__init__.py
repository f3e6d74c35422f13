"""Edges at owners' sites, linked to the hub over NATS (``camgate[edgenet]``; docs/deployment.md).

The edge runs at the owner's site (``camgate edge serve``) with its own store: its cameras and
their credentials, which never go to the hub. It verifies grants offline with the hub's public key,
as the in-process edge does, and connects *out* to NATS. The hub
(:class:`~camgate.edgenet.hub.HubLink`, ``camgate edge hub``) publishes each camera's consent state
(with the owner's privacy masks and their version) to its edge on a JetStream subject of that
edge, signed, after the commit that changed it, the
incidents closed before their window ended, and a heartbeat; JetStream keeps what an offline edge
missed, and the edge replays it before it serves again. An edge that cannot confirm it is up to
date within its staleness limit ends every live stream and refuses new grants. The edge
acknowledges each revocation; the hub records ``edge.ack``. Media leaves the edge over the
connection it dialled (NATS subjects).

Rooms: :mod:`~camgate.edgenet.wire` (subjects and messages), :mod:`~camgate.edgenet.site` (the
edge side), :mod:`~camgate.edgenet.hub` (the hub side and a consumer of remote streams).
"""

from camgate.edgenet.hub import (
    EdgeUnreachable,
    HubLink,
    RemoteStream,
    fetch_edge_audit,
    fetch_remote_snapshot,
    open_remote_live,
)
from camgate.edgenet.site import EdgeIdentityTaken, EdgeSite, EdgeStale, SiteEdge

__all__ = [
    "EdgeIdentityTaken",
    "EdgeSite",
    "EdgeStale",
    "EdgeUnreachable",
    "HubLink",
    "RemoteStream",
    "SiteEdge",
    "fetch_edge_audit",
    "fetch_remote_snapshot",
    "open_remote_live",
]
