"""Issue 12, item 2: a grant is bound to the consent record its decision judged (attacker: bad
luck, or an embedder's slow plugin, racing an owner who revokes and re-enrols).

A real plugin on the host makes ``camgate_decision_made`` slow, widening the window between the
decision and the grant. Meanwhile the owner revokes and re-enrols ask-first: the grant must not
be issued bound to the new consent (nobody asked the owner). If the owner re-enrols only later,
no grant bound to no consent may be issued and honoured once they do: ``consent_id=None`` is never
valid at the edge.
"""

from __future__ import annotations

import importlib.util
import threading
from pathlib import Path
from typing import Any

import anyio
import attrs
import pytest
from camgate.errors import AccessDenied
from camgate.hookspecs import hookimpl
from camgate.models import Decision
from camgate.testing import ManualClock

_spec = importlib.util.spec_from_file_location("_gate", Path(__file__).with_name("_gate.py"))
assert _spec is not None and _spec.loader is not None
_gate = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_gate)


class SlowObserver:
    """A ``camgate_decision_made`` plugin that holds the deciding thread until released."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    @hookimpl
    def camgate_decision_made(self, decision: Decision) -> None:
        self.entered.set()
        self.release.wait(60)


def race(tmp_path: Path, reenrol_in_window: bool) -> tuple[Any, dict[str, Any], Any]:
    slow = SlowObserver()
    gate = _gate.build_gate(tmp_path / "g.db", clock=ManualClock(), plugins={"slow": slow})
    incident = _gate.populate(gate)
    result: dict[str, Any] = {}

    async def main() -> None:
        async def ask() -> None:
            try:
                result["grant"] = await gate.request_access(
                    incident, "a1", "live", requested_by="officer-7", wait=False
                )
            except AccessDenied as exc:
                result["refused"] = exc.decision

        async with anyio.create_task_group() as tg:
            tg.start_soon(ask)
            assert await anyio.to_thread.run_sync(slow.entered.wait, 60)
            await gate.revoke("alice")
            if reenrol_in_window:
                _gate.enrol(gate, "alice", ["a1"], mode="ask")
            slow.release.set()
        if not reenrol_in_window:
            _gate.enrol(gate, "alice", ["a1"], mode="ask")

    anyio.run(main)
    return gate, result, gate.store.get_camera("a1")


@pytest.mark.parametrize("when", ["in-window", "later"])
def test_a_grant_decided_before_a_revocation_is_not_issued_after_it(
    tmp_path: Path, when: str
) -> None:
    gate, result, camera = race(tmp_path, reenrol_in_window=when == "in-window")
    grant = result.get("grant")
    honoured = (
        grant is not None and gate.edge.grant_problem(camera, grant.grant, gate.clock.now()) is None
    )
    assert not honoured, f"a grant from before the revocation is honoured: {grant!r}"
    assert grant is None, "the grant was issued after its consent was revoked"
    refused = result["refused"]
    assert any(
        v.policy == "core.opt-in" and "revoked or replaced" in v.reason for v in refused.denials
    ), refused.reasons
    assert gate.store.query("SELECT count(*) FROM grants") == [(0,)]
    assert [r.body["request"] for r in gate.audit.records("grant.refused")] == [refused.request_id]
    anyio.run(gate.aclose)


def test_a_grant_bound_to_no_consent_is_never_honoured(tmp_path: Path) -> None:
    gate = _gate.build_gate(tmp_path / "g.db", clock=ManualClock())
    incident = _gate.populate(gate)

    async def ask() -> Any:
        return await gate.request_access(incident, "a1", "live", requested_by="officer-7")

    signed = anyio.run(ask)
    camera = gate.store.get_camera("a1")
    assert signed.grant.consent_id == gate.store.active_consent("a1").id
    assert gate.edge.grant_problem(camera, signed.grant, gate.clock.now()) is None
    unbound = attrs.evolve(signed.grant, consent_id=None)
    assert gate.edge.grant_problem(camera, unbound, gate.clock.now()) == "revoked"
    anyio.run(gate.aclose)
