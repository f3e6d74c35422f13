"""The worked example of docs/consent.md runs, and does what the page says."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import pytest
from camgate import AccessDenied, Camera, ConsentTerms, Gate, GeoPoint, Owner, Waiver
from camgate.gate import builtin_plugins
from camgate.grants import GrantSigner
from camgate.plugins import PluginHost
from camgate.store import Store
from camgate.testing import DeclaringAdapters, ManualClock

DOC = Path(__file__).resolve().parents[2] / "docs" / "consent.md"
SCHOOL = GeoPoint(32.3137, -90.2029)


def _example() -> str:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.DOTALL)
    (block,) = [b for b in blocks if "class SchoolHours" in b]
    return block


@pytest.fixture
def gate(tmp_path: Path) -> Iterator[Gate]:
    # Tuesday 2026-11-24, 10:00 in Jackson (16:00 UTC): school hours
    clock = ManualClock(datetime(2026, 11, 24, 16, 0, tzinfo=UTC))
    store = Store(tmp_path / "g.db")
    host = PluginHost(
        builtins=builtin_plugins(store) | {"adapters": DeclaringAdapters()}, entry_points=False
    )
    gate = Gate(store=store, host=host, signer=GrantSigner.generate(), clock=clock)
    waiver = gate.publish_waiver(Waiver("w1", "I agree."))
    gate.add_owner(Owner("dee", "Dee", time_zone="America/Chicago"))
    near = GeoPoint(SCHOOL.lat + 100 / 111_000, SCHOOL.lon)
    gate.add_camera(Camera("near", "test", "test://near", "dee", near))
    gate.enrol(
        "dee",
        ["near"],
        waiver_version="w1",
        waiver_sha256=waiver.sha256,
        terms=ConsentTerms(scopes=["live", "snapshot"]),
    )
    yield gate
    store.close()


def test_the_worked_example_refuses_live_view_near_a_school(gate: Gate) -> None:
    namespace: dict[str, Any] = {"gate": gate}
    exec(compile(_example(), str(DOC), "exec"), namespace)
    incident = gate.report_incident("shooting", SCHOOL, 500.0)

    def ask(scope: str) -> Any:
        return anyio.run(lambda: gate.request_access(incident.id, "near", scope, requested_by="o7"))

    with pytest.raises(AccessDenied, match="no live view within 150 m of Lanier High"):
        ask("live")
    assert ask("snapshot").grant.camera_id == "near"
    gate.clock.advance(8 * 3600)  # type: ignore[attr-defined] - 18:00 local
    assert ask("live").grant.scope == "live"
