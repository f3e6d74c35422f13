"""The edge: the owner's side of the trust boundary, where media is fetched and guarded.

The edge holds the camera credentials and the adapters. It serves media only against a signed
grant it verifies itself (offline, with the hub's public key), and only inside a guard:

1. verify the token's signature, then that it names this camera and scope and is in its time;
2. check the owner's consent still stands, and redeem the grant (once: a replay is refused);
3. append ``access.start`` to the audit log — durable before the camera is even contacted;
4. call the adapter, and hand its packets to the consumer through a :class:`GuardedStream`
   that ends the stream when the grant expires or the owner revokes: a packet that would be
   handed over after a revocation is never handed over;
5. append ``access.end`` with the packets and bytes served, and why it ended.

The package's rooms: :mod:`~camgate.edge.access` (:class:`Edge`: adapters, redeeming grants,
opening streams, snapshots), :mod:`~camgate.edge.guard` (:class:`GuardedStream`, the checks
before every packet), :mod:`~camgate.edge.revocation` (what is refused in memory while a
revocation or removal is under way), :mod:`~camgate.edge.cache` (the relay and its GOP cache),
:mod:`~camgate.edge.clips` (clip export). Import the public names from here.
"""

from camgate.edge.access import Edge
from camgate.edge.clips import CLIP_FORMATS
from camgate.edge.guard import GuardedStream, StreamStats

__all__ = ["CLIP_FORMATS", "Edge", "GuardedStream", "StreamStats"]
