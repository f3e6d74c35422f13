"""An owner's look at their own camera: one still to draw privacy masks on.

This is not an access under a grant and is never counted as one: no incident, no request, no
officer. It is a second, narrow door to a camera beside the grant path, so it is kept small and
strict:

- only the camera's own owner may look (anyone else: :class:`~camgate.errors.NotFound`, as if
  the camera did not exist, and nothing is written or contacted);
- the look is audited as the owner's (``owner.look``, in the owner's own sub-chain of the log)
  and durable **before** the camera is contacted, like ``access.start``;
- the still is the raw picture (the owner draws the masks over what the camera sees); every
  officer access keeps getting the masks burnt in by the edge, whatever the owner looked at.

Enrolment is not required: an owner may draw masks before sharing a camera, and may look after
revoking (revocation ends the police's access, not the owner's own view of their camera).
"""

from __future__ import annotations

from datetime import timedelta

import anyio
import anyio.to_thread

from camgate.errors import CameraUnreachable, NotFound
from camgate.gate.parts import GateParts
from camgate.models import Grant, Scope, Snapshot, check_id, new_id
from camgate.vocab import AuditKind

__all__ = ["OWNER_LOOK_S", "OwnerLook"]

#: How long the camera has to answer an owner's look.
OWNER_LOOK_S = 30.0


class OwnerLook(GateParts):
    """:meth:`owner_look`: an owner's own still of their own camera, audited as theirs."""

    async def owner_look(self, owner_id: str, camera_id: str, *, by: str | None = None) -> Snapshot:
        """One JPEG still of ``camera_id`` for its owner ``owner_id``, without masks.

        Raises NotFound when the camera does not exist or is not ``owner_id``'s (nothing is
        written and the camera is not contacted). Otherwise an ``owner.look`` record naming the
        owner, the camera, the look's id and ``by`` (who asked for the owner, e.g. the portal
        account's username) is durable before the camera is contacted; a camera that does not
        answer within :data:`OWNER_LOOK_S` raises CameraUnreachable (adapter errors pass as they
        are: :class:`~camgate.errors.AdapterError`). The snapshot's ``grant_id`` is
        the look's id (``look_…``): no grant exists for it.
        """
        check_id(owner_id, "owner")
        camera = await anyio.to_thread.run_sync(self.store.get_camera, camera_id)
        if camera.owner_id != owner_id:
            raise NotFound(f"owner {owner_id!r} has no camera {camera_id!r}")
        now = self.clock.now()
        look_id = new_id("look")
        # The adapter API takes a grant to say what it may serve and since when; this one is
        # never signed, stored or redeemable: it only tells the adapter "one still, now".
        look = Grant(
            id=look_id,
            request_id=look_id,
            camera_id=camera.id,
            incident_id="owner-look",
            scope=Scope.SNAPSHOT,
            issued_at=now,
            expires_at=now + timedelta(seconds=OWNER_LOOK_S),
        )
        body = {"look": look_id, "owner": owner_id, "camera": camera.id, "by": by}
        await anyio.to_thread.run_sync(lambda: self.audit.append(AuditKind.OWNER_LOOK, body, now))
        # The edge's adapter for this camera (its credentials and settings): the gate's own
        # door beside the grant path, opened only after the record above is durable.
        adapter = self.edge._adapter(camera.adapter, camera.id)
        try:
            with anyio.fail_after(OWNER_LOOK_S):
                return await adapter.snapshot(camera, look)
        except TimeoutError:
            raise CameraUnreachable(
                f"camera {camera.id!r} sent no still within {OWNER_LOOK_S:g} s"
            ) from None
