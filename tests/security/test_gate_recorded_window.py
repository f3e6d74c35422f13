"""Issue 12, item 11: a recorded grant cannot cover the future (attacker: a careless or
overreaching requester watching an owner who shares only recordings, with a delay).

A recorded window must end no later than the moment of the decision; a later end is refused with
the core reason ``core.window`` (not a policy a plugin set could drop). See docs/consent.md.
"""

from __future__ import annotations

import importlib.util
from datetime import timedelta
from pathlib import Path

import anyio
import pytest
from camgate.errors import AccessDenied
from camgate.testing import ManualClock

_spec = importlib.util.spec_from_file_location("_gate", Path(__file__).with_name("_gate.py"))
assert _spec is not None and _spec.loader is not None
_gate = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_gate)

H = timedelta(hours=1)
M = timedelta(minutes=1)


@pytest.mark.parametrize(
    ("start", "end"), [(1 * H, 2 * H), (-30 * M, 6 * H), (-10 * M, 1 * M)], ids=str
)
def test_a_recorded_window_ending_after_the_decision_is_refused(
    tmp_path: Path, start: timedelta, end: timedelta
) -> None:
    clock = ManualClock()
    gate = _gate.build_gate(tmp_path / "g.db", clock=clock)
    incident = _gate.populate(gate)
    now = clock.now()

    async def ask() -> None:
        await gate.request_access(
            incident, "a1", "recorded", requested_by="officer-7", window=(now + start, now + end)
        )

    with pytest.raises(AccessDenied) as refused:
        anyio.run(ask)
    reasons = {v.policy: v.reason for v in refused.value.decision.denials}
    assert set(reasons) == {"core.window"}, reasons
    assert "covers only footage already recorded" in reasons["core.window"]
    assert gate.store.query("SELECT count(*) FROM grants") == [(0,)]
    anyio.run(gate.aclose)


def test_a_recorded_window_ending_by_the_decision_is_granted(tmp_path: Path) -> None:
    clock = ManualClock()
    gate = _gate.build_gate(tmp_path / "g.db", clock=clock)
    incident = _gate.populate(gate)
    now = clock.now()

    async def ask() -> object:
        return await gate.request_access(
            incident, "a1", "recorded", requested_by="officer-7", window=(now - 30 * M, now)
        )

    signed = anyio.run(ask)
    assert signed.grant.window_end == now  # type: ignore[attr-defined]
    anyio.run(gate.aclose)
