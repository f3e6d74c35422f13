"""Downloads bound to a grant: ``GET /grants/{grant}/snapshot`` and ``GET
/grants/{grant}/clip?from=&to=``.

Like the live socket (:mod:`camgate_server.live`), these routes are one more consumer of the
edge: the snapshot is :meth:`camgate.edge.Edge.snapshot` (masks burnt in, ``access.start``
durable before the camera is contacted, ``access.end`` with the JPEG's SHA-256 before it is
returned), the clip is :meth:`camgate.edge.Edge.record_clip` of a recorded grant (masks,
``clip.exported`` with the file's SHA-256 before the first byte is sent, the file registered
for retention). Only the officer the grant was issued to may download (``media:view``); any
other grant is 404. A grant is redeemed once: a second download of it is 410. A snapshot of a
camera the registry says a remote edge serves comes from that edge over NATS (``camgate serve
--nats``; :class:`camgate_server.live.RemoteEdges`), masked and audited there; clips are the
in-process edge's only.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime
from pathlib import Path
from typing import Annotated

import anyio.to_thread
from camgate import Gate
from camgate.errors import GrantMismatch
from camgate.models import Scope
from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import FileResponse

from camgate_server import problems
from camgate_server.accounts import Caller
from camgate_server.app import require
from camgate_server.live import grant_of, remote_edges
from camgate_server.parsing import parse_window
from camgate_server.policy import Action

__all__ = ["NO_STORE", "downloads_folder", "router"]

router = APIRouter(tags=["media"], responses=problems.RESPONSES)

#: Footage must not be cached by a browser or a proxy on the way.
NO_STORE = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}


def downloads_folder(gate: Gate) -> Path:
    """Where the server writes the clips it serves: ``<store>.downloads/`` beside the gate's
    store. Each clip stays there, registered for retention (its expiry is the owner's and the
    agency's shorter term), like any clip camgate exports."""
    path = Path(gate.store.path)
    return path.with_name(f"{path.stem}.downloads")


_WHEN = "ISO 8601 with a time zone, inside the grant's window"


def _gate(request: Request) -> Gate:
    gate: Gate = request.app.state.gate
    return gate


@router.get(
    "/grants/{grant_id}/snapshot",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}}, "description": "the JPEG, masked"}},
)
async def snapshot(
    grant_id: str,
    request: Request,
    caller: Annotated[Caller, Depends(require(Action.MEDIA_VIEW))],
) -> Response:
    """One still under a snapshot grant issued to the caller: a JPEG with the owner's privacy
    masks burnt in. ``X-Camgate-Sha256`` is the hash the audit log recorded for it."""
    gate = _gate(request)
    grant, token = await anyio.to_thread.run_sync(grant_of, gate, caller, grant_id)
    edge_id = await anyio.to_thread.run_sync(gate.store.edge_of, grant.camera_id)
    if edge_id is None:
        jpeg = (await gate.edge.snapshot(grant.camera_id, token)).jpeg
    else:  # a camera behind a remote edge: the edge masks and audits it (camgate serve --nats)
        jpeg = await remote_edges(request.app).snapshot(edge_id, grant.camera_id, token)
    digest = hashlib.sha256(jpeg).hexdigest()
    headers = NO_STORE | {
        "Content-Disposition": f'attachment; filename="{grant.id}.jpg"',
        "X-Camgate-Sha256": digest,
    }
    return Response(jpeg, media_type="image/jpeg", headers=headers)


@router.get(
    "/grants/{grant_id}/clip",
    response_class=FileResponse,
    responses={200: {"content": {"video/mp4": {}}, "description": "the MP4, masked"}},
)
async def clip(
    grant_id: str,
    request: Request,
    caller: Annotated[Caller, Depends(require(Action.MEDIA_VIEW))],
    start: Annotated[datetime | None, Query(alias="from", description=_WHEN)] = None,
    end: Annotated[datetime | None, Query(alias="to", description=_WHEN)] = None,
) -> FileResponse:
    """The recorded footage of a recorded grant issued to the caller, as an MP4 (H.264, masks
    burnt in): its whole window, or ``from``..``to`` inside it (403 ``GrantMismatch`` when they
    reach outside). ``X-Camgate-Sha256`` is the hash the audit log recorded (``clip.exported``)
    before the first byte was sent."""
    window = parse_window(start, end)
    gate = _gate(request)
    grant, token = await anyio.to_thread.run_sync(grant_of, gate, caller, grant_id)
    if grant.scope is not Scope.RECORDED:
        raise GrantMismatch(f"grant {grant.id} is for {grant.scope} access, not recorded")
    folder = downloads_folder(gate)
    await anyio.to_thread.run_sync(lambda: folder.mkdir(mode=0o700, exist_ok=True))
    path = folder / f"{grant.id}-{secrets.token_hex(4)}.mp4"
    made = await gate.edge.record_clip(
        grant.camera_id, token, path, format="mp4", browser=True, window=window
    )
    headers = NO_STORE | {"X-Camgate-Sha256": made.sha256}
    if made.partial:
        headers["X-Camgate-Partial"] = "true"
    return FileResponse(
        made.path, media_type="video/mp4", filename=f"{grant.id}.mp4", headers=headers
    )
