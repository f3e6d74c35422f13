"""An owner's own look at their own camera (``Gate.owner_look``), through a real RTSP camera:
the raw still, audited as the owner's before the camera is contacted, refused to anyone else;
and the masks drawn on it applied to an officer's later snapshot."""

from __future__ import annotations

import io

import av
import numpy as np
import pytest
from camgate import NotFound
from camgate.audit import verify_owner_slice

from .conftest import World
from .test_media import POLYGONS, _inside

pytestmark = pytest.mark.anyio


def _grey(jpeg: bytes) -> np.ndarray:
    with av.open(io.BytesIO(jpeg), format="image2pipe") as container:
        grey: np.ndarray = next(iter(container.decode(video=0))).to_ndarray(format="gray")
    return grey


async def test_an_owner_looks_at_their_own_camera_audited_as_theirs(world: World) -> None:
    gate = world.gate
    await gate.set_masks("alice", "cam-a", POLYGONS)
    snap = await gate.owner_look("alice", "cam-a", by="alice-portal")
    assert snap.camera_id == "cam-a" and snap.grant_id.startswith("look_")
    # The raw picture: the owner draws masks over what the camera sees.
    grey = _grey(snap.jpeg)
    assert grey[_inside(POLYGONS, grey.shape[1], grey.shape[0])].mean() > 60
    (record,) = gate.audit.records("owner.look")
    assert record.body == {"look": snap.grant_id, "owner": "alice", "camera": "cam-a",
                           "by": "alice-portal"}  # fmt: skip
    assert set(record.owners) == {"alice"}  # in alice's own sub-chain of the log
    gate.audit.checkpoint()
    piece = gate.audit.owner_slice("alice")
    assert verify_owner_slice(piece, gate.public_key).ok
    assert [r.kind for r in piece.records][-1] == "owner.look"
    # Not an access under a grant: no access record, no grant redeemed, no officer.
    assert not list(gate.audit.records("access.start"))
    assert not list(gate.audit.records("access.end"))


async def test_nobody_else_looks_and_nothing_is_written(world: World) -> None:
    gate = world.gate
    seq = gate.audit.last_seq()
    for owner, camera in (("bob", "cam-a"), ("alice", "cam-b"), ("alice", "nope")):
        with pytest.raises(NotFound):
            await gate.owner_look(owner, camera)
    assert gate.audit.last_seq() == seq  # nothing written


async def test_masks_drawn_on_the_look_apply_to_an_officers_later_snapshot(world: World) -> None:
    gate = world.gate
    look = _grey((await gate.owner_look("alice", "cam-a")).jpeg)
    height, width = look.shape
    inside = _inside(POLYGONS, width, height)
    assert look[inside].mean() > 60  # the picture, unmasked, for the owner
    await gate.set_masks("alice", "cam-a", POLYGONS)
    snap = _grey((await gate.edge.snapshot("cam-a", await world.grant("snapshot"))).jpeg)
    assert int(snap[inside].max()) <= 24  # the officer's still has the mask burnt in
    assert snap[~inside].mean() > 60
