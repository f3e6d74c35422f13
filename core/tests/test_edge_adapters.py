"""The edge's adapters: one per distinct settings, and every one it built is closed with it —
those replaced by new settings or credentials too (streams opened through them may still run
when they are replaced, so they are closed with the edge, not at once)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import anyio
import av
import numpy as np
from camgate.adapters import Adapter
from camgate.media.jpeg import encode_jpeg
from camgate.models import Camera, Grant, Snapshot
from camgate.testing import DeclaringAdapters

from .conftest import World


class Stills(Adapter):
    """A camera adapter serving a grey still; remembers whether it was closed."""

    built: ClassVar[list[Stills]] = []

    def __init__(self, settings: dict[str, Any]) -> None:
        self.settings = settings
        self.closed = False
        Stills.built.append(self)

    async def snapshot(self, camera: Camera, grant: Grant) -> Snapshot:
        picture = np.full((48, 64, 3), 128, dtype=np.uint8)
        jpeg, width, height = encode_jpeg(av.VideoFrame.from_ndarray(picture, format="rgb24"))
        return Snapshot(grant.id, camera.id, jpeg, width, height, datetime.now(UTC))

    async def aclose(self) -> None:
        self.closed = True


def test_an_adapter_replaced_by_new_settings_is_closed_with_the_edge(tmp_path: Path) -> None:
    Stills.built = []
    # Built through a function, so the host does not hold the still-only class to the live and
    # recorded scopes the decision-only plugin declares.
    world = World(tmp_path, plugins={"adapters": DeclaringAdapters(create=lambda s: Stills(s))})
    world.enrol("alice", ["a1"])
    gate = world.gate

    async def still() -> None:
        token = await gate.request_access(
            world.incident.id, "a1", "snapshot", requested_by="officer-7", wait=False
        )
        await gate.edge.snapshot("a1", token)

    anyio.run(still)
    gate.edge.configure("test", {"quality": "high"})  # rebuilt on next use
    anyio.run(still)
    assert [a.settings.get("quality") for a in Stills.built] == [None, "high"]
    assert not any(a.closed for a in Stills.built)  # the first may still serve a stream
    anyio.run(gate.aclose)
    assert [a.closed for a in Stills.built] == [True, True]
