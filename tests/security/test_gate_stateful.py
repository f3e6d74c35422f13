"""Issue 12, item 2 as a property: a grant is honoured only under the active consent record it was
decided under (attacker: bad luck — any interleaving of the owner's and the officers' actions).

A hypothesis state machine drives a real gate over a real SQLite file through enrolments,
revocations, re-enrolments (pre-authorised or ask-first), requests, answers and grant issues —
including a revocation or re-enrolment made *inside* the window between a decision and its grant
(a real ``camgate_decision_made`` plugin runs it from the deciding thread). After every step,
every grant ever issued is checked at the edge: it names the consent record its decision judged,
and it is honoured exactly while that record is the camera's active consent.
"""

from __future__ import annotations

import importlib.util
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import anyio.from_thread
from camgate.errors import AccessDenied, AnswerPending, RequestExpired, ValidationError
from camgate.hookspecs import hookimpl
from camgate.models import Decision, Grant
from camgate.testing import ManualClock
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

_spec = importlib.util.spec_from_file_location("_gate", Path(__file__).with_name("_gate.py"))
assert _spec is not None and _spec.loader is not None
_gate = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_gate)

MODES = st.sampled_from(["pre-authorised", "ask"])
RACES = st.sampled_from([None, "revoke", "re-enrol pre-authorised", "re-enrol ask"])


class Interleaver:
    """A decision_made plugin that runs one armed action in the decision-to-grant window."""

    def __init__(self) -> None:
        self.action: Callable[[], None] | None = None
        self.fired = False

    @hookimpl
    def camgate_decision_made(self, decision: Decision) -> None:
        action, self.action = self.action, None
        if action is not None:
            self.fired = True
            action()


class ConsentBinding(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="camgate-binding-"))
        self.clock = ManualClock()
        self.plugin = Interleaver()
        self.gate = _gate.build_gate(
            self.dir / "g.db", clock=self.clock, plugins={"interleave": self.plugin}
        )
        self.incident = _gate.populate(self.gate)  # a1 enrolled pre-authorised
        self.pending: list[str] = []
        # Every grant issued, with the consent record standing when its decision was made.
        self.grants: list[tuple[Grant, str | None]] = []

    def teardown(self) -> None:
        anyio.run(self.gate.aclose)
        shutil.rmtree(self.dir, ignore_errors=True)

    # ------------------------------------------------------------------ helpers

    def active(self) -> str | None:
        consent = self.gate.store.active_consent("a1")
        return None if consent is None else consent.id

    def _race(self, race: str | None) -> Callable[[], None] | None:
        if race is None:
            return None
        gate = self.gate

        def act() -> None:  # runs in the deciding worker thread
            anyio.from_thread.run(gate.revoke, "alice")
            if race.startswith("re-enrol"):
                _gate.enrol(gate, "alice", ["a1"], mode=race.split()[1])

        return act

    # ------------------------------------------------------------------ the owner

    @precondition(lambda self: self.active() is None)
    @rule(mode=MODES)
    def enrol(self, mode: str) -> None:
        _gate.enrol(self.gate, "alice", ["a1"], mode=mode)

    @rule()
    def revoke(self) -> None:
        anyio.run(self.gate.revoke, "alice")

    @rule(mode=MODES)
    def re_enrol(self, mode: str) -> None:
        anyio.run(self.gate.revoke, "alice")
        _gate.enrol(self.gate, "alice", ["a1"], mode=mode)

    # ------------------------------------------------------------------ officers and answers

    @rule(race=RACES)
    def request(self, race: str | None) -> None:
        decided = self.active()
        self.plugin.action, self.plugin.fired = self._race(race), False

        async def ask() -> Any:
            return await self.gate.request_access(
                self.incident, "a1", "live", requested_by="officer-7", wait=False
            )

        try:
            signed = anyio.run(ask)
        except AccessDenied:
            assert decided is None or self.plugin.fired
        except AnswerPending as held:
            self.pending.append(held.pending.request_id)
        else:
            assert not self.plugin.fired, "a grant was issued after its consent changed"
            self.grants.append((signed.grant, decided))
        finally:
            self.plugin.action = None

    @precondition(lambda self: bool(self.pending))
    @rule(data=st.data(), approve=st.booleans(), race=RACES)
    def answer(self, data: st.DataObject, approve: bool, race: str | None) -> None:
        request_id = data.draw(st.sampled_from(self.pending))
        self.pending.remove(request_id)
        decided = self.active()
        self.plugin.action, self.plugin.fired = self._race(race), False
        try:
            decision = anyio.run(lambda: self.gate.answer(request_id, approve, owner_id="alice"))
        except (ValidationError, RequestExpired):
            return  # refused when the owner revoked meanwhile: nothing to answer
        finally:
            self.plugin.action = None
        found = self.gate.store.grant_for_request(request_id)
        if found is None:
            assert not (approve and decision.allowed and decided is not None)
            return
        assert approve and not self.plugin.fired
        self.grants.append((found[0], decided))

    @rule(seconds=st.integers(1, 30))
    def time_passes(self, seconds: int) -> None:
        self.clock.advance(seconds)

    # ------------------------------------------------------------------ the invariant

    @invariant()
    def honoured_only_under_the_consent_decided_under(self) -> None:
        camera = self.gate.store.get_camera("a1")
        active = self.active()
        for grant, decided in self.grants:
            assert grant.consent_id is not None and grant.consent_id == decided
            honoured = self.gate.edge.grant_problem(camera, grant, self.clock.now()) is None
            assert honoured == (grant.consent_id == active), (grant.consent_id, active)


ConsentBinding.TestCase.settings = settings(
    max_examples=20, stateful_step_count=12, deadline=None, print_blob=True
)
test_consent_binding = ConsentBinding.TestCase
