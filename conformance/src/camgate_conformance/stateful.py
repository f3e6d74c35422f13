"""The stateful check: a hypothesis state machine over the gate, the adapter and the vendor.

Rules enrol and revoke the owner, open and close incidents, request and redeem live grants, and
move the clock past every grant's expiry. A reference model says what the gate must do (grant or
refuse, serve or refuse); the invariant, read from the backdoor after every step, is that every
media request the vendor saw falls inside a redemption of a live grant. Hypothesis stateful tests
cannot await, so the machine runs in a worker thread and calls the harness on the event loop
(``anyio.from_thread.run``), as zarr's stateful store tests do with their sync helper.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import anyio.from_thread
from camgate.errors import AccessDenied, CamgateError
from camgate.grants import SignedGrant
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from camgate_conformance.harness import HOME
from camgate_conformance.model import CheckFailed

if TYPE_CHECKING:
    from camgate_conformance.checks import Context
    from camgate_conformance.harness import Harness

__all__ = ["run_machine"]

_SLACK_S = 0.05


def run_machine(ctx: Context, h: Harness) -> None:
    """Run the state machine (from a worker thread); CheckFailed with the steps on a violation."""
    source = h.cameras[0].source
    started = time.monotonic()

    class GrantMachine(RuleBasedStateMachine):
        """The gate's life for one camera, checked against the vendor's own log."""

        def __init__(self) -> None:
            super().__init__()
            # Each example starts enrolled, under a fresh open incident, with no grants.
            if h.gate.store.active_consent(h.cameras[0].id) is None:
                h.enrol(0)
            self.enrolled = True
            self.incident_open = True
            self.incident = h.gate.report_incident("burglary", HOME, 400)
            self.tokens: list[SignedGrant] = []
            self.windows: list[tuple[float, float]] = [(started - 1e9, started)]
            self.since = time.monotonic()
            #: Incidents closed so far: the edge refuses their grants, as the gate does.
            self.closed: set[str] = set()

        def call(self, func: Any, *args: Any) -> Any:
            return anyio.from_thread.run(func, *args)

        @precondition(lambda self: self.enrolled)
        @rule()
        def revoke(self) -> None:
            """The owner revokes: every grant so far is void."""
            self.call(h.revoke, 0)
            self.enrolled = False
            self.tokens.clear()

        @precondition(lambda self: not self.enrolled)
        @rule()
        def enrol(self) -> None:
            """The owner enrols again."""
            h.enrol(0)
            self.enrolled = True

        @precondition(lambda self: self.incident_open)
        @rule()
        def close_incident(self) -> None:
            """The incident is closed."""
            h.gate.close_incident(self.incident.id)
            self.incident_open = False
            self.closed.add(self.incident.id)

        @precondition(lambda self: not self.incident_open)
        @rule()
        def report_incident(self) -> None:
            """A new incident near the camera."""
            self.incident = h.gate.report_incident("burglary", HOME, 400)
            self.incident_open = True

        @rule(duration=st.sampled_from([5.0, 60.0]))
        def request(self, duration: float) -> None:
            """Ask for a live grant: granted exactly when enrolled under an open incident."""
            should = self.enrolled and self.incident_open
            try:
                token = self.call(lambda: h.grant(duration_s=duration, incident=self.incident))
            except AccessDenied as exc:
                if should:
                    raise CheckFailed(f"the gate refused a request it should grant: {exc}") from exc
                return
            if not should:
                raise CheckFailed("the gate granted a request it should refuse")
            self.tokens.append(token)

        @precondition(lambda self: bool(self.tokens))
        @rule(data=st.data())
        def redeem(self, data: st.DataObject) -> None:
            """Redeem a grant: served once, while consent stands and the grant is in time."""
            self._redeem(data.draw(st.sampled_from(self.tokens)))

        @initialize()
        def first_access(self) -> None:
            """Every example starts with one access served (so each exercises the adapter)."""
            self.request_and_redeem()

        @precondition(lambda self: self.enrolled and self.incident_open)
        @rule()
        def request_and_redeem(self) -> None:
            """Ask for a grant and redeem it at once (the path an operator takes)."""
            before = len(self.tokens)
            self.request(60.0)
            if len(self.tokens) > before:
                self._redeem(self.tokens[-1])

        def _redeem(self, token: SignedGrant) -> None:
            fresh = token.grant.expires_at > h.clock.now()
            # The model matches the gate: a grant dies with consent, expiry or its incident.
            should = fresh and self.enrolled and token.grant.incident_id not in self.closed
            opened = time.monotonic()

            async def stream_one() -> None:
                async with await h.gate.edge.open_live(h.cameras[0].id, token) as stream:
                    async for _packet in stream:
                        break

            try:
                self.call(stream_one)
            except CamgateError as exc:
                if should:
                    raise CheckFailed(f"a live grant was refused: {type(exc).__name__}") from exc
            else:
                if not should:
                    raise CheckFailed("media was served for a grant that is void")
                self.windows.append((opened, time.monotonic()))
                ctx.redemptions += 1
            self.tokens.remove(token)  # redeemed (or refused): it can serve nothing more

        @rule()
        def expire(self) -> None:
            """Time passes beyond every grant's expiry."""
            h.clock.advance(120)

        @invariant()
        def vendor_served_only_inside_grants(self) -> None:
            """Every media request the vendor saw falls inside a redemption."""
            for event in ctx.media_requests(self.since, source):
                if not any(a - _SLACK_S <= event.at <= b + _SLACK_S for a, b in self.windows):
                    raise CheckFailed(
                        f"the vendor saw {event.kind} from client {event.client} at "
                        f"{event.at:.3f}, outside every live grant's redemption"
                    )

    config = ctx.config
    run_state_machine_as_test(
        GrantMachine,
        settings=settings(
            max_examples=config.stateful_examples,
            stateful_step_count=config.stateful_steps,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
            print_blob=False,
        ),
    )
    ctx.measurements["redemptions"] = ctx.redemptions
    if ctx.redemptions < config.min_redemptions:
        raise CheckFailed(
            f"the state machine served only {ctx.redemptions} grant(s) through the adapter, "
            f"fewer than {config.min_redemptions}: its verdict says nothing"
        )
