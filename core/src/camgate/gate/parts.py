"""What every part of the gate may rely on: the gate's state, and the methods parts share.

:class:`~camgate.gate.Gate` is assembled from parts (decisions, ask-first, incidents, audited
changes), each a mixin over :class:`GateParts`. The state is set by ``Gate.__init__``; the
methods one part calls in another are declared here for the type checker only, so each part
reads on its own and the type checker holds the whole together.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import anyio

    from camgate.audit import AuditLog
    from camgate.clock import Clock
    from camgate.edge import Edge
    from camgate.facts import DecisionFacts, FactCache
    from camgate.gate.incidents import SurveyVotes
    from camgate.gate.livetime import LiveLedger
    from camgate.geofence import StoreIndex, ZoneBook
    from camgate.grants import GrantSigner, SignedGrant
    from camgate.models import (
        AccessRequest,
        Camera,
        ConsentRecord,
        Decision,
        PendingRequest,
        Scope,
        Vote,
    )
    from camgate.notify import OwnerNotice
    from camgate.plugins import PluginHost
    from camgate.retention import Retention
    from camgate.rules import AgencyRules, Approval
    from camgate.store import Store
    from camgate.vocab import AuditKind

__all__ = ["GateParts"]


class GateParts:
    """The gate's state and the methods its parts call in one another (declarations only)."""

    store: Store
    host: PluginHost
    clock: Clock
    audit: AuditLog
    _signer: GrantSigner
    zones: ZoneBook
    camera_index: StoreIndex
    facts: FactCache
    _answered: dict[str, anyio.Event]
    edge: Edge
    retention: Retention
    live_ledger: LiveLedger

    if TYPE_CHECKING:

        @property
        def rules(self) -> AgencyRules: ...

        # audited changes (camgate.gate.changes)
        def _audited(
            self, kind: AuditKind, prepare: Callable[[], dict[str, Any]], at: datetime
        ) -> dict[str, Any]: ...

        def _settle_interrupted(self) -> None: ...

        def _pay_owed_notices(
            self, owner_id: str | None = None, *, dead_only: bool = False
        ) -> None: ...

        # decisions (camgate.gate.decisions)
        def _decide(
            self,
            request: AccessRequest,
            *,
            at: datetime | None = None,
            owner_answer: bool | None = None,
            cached: bool = True,
            approval: Approval | None = None,
        ) -> tuple[Decision, DecisionFacts]: ...

        def _judge(
            self,
            request: AccessRequest,
            facts: DecisionFacts,
            now: datetime,
            owner_answer: bool | None = None,
            *,
            geofence: Sequence[Vote] | None = None,
            distance: float | None = None,
            shared: SurveyVotes | None = None,
            approval: Approval | None = None,
            cached: bool = True,
        ) -> tuple[Decision, ConsentRecord | None]: ...

        # residents' privacy zones (camgate.gate.residents)
        def _privacy_vote(self, camera: Camera, scope: Scope, cached: bool) -> Vote | None: ...

        def ask_zone_owners(self) -> int: ...

        def _notify(self, notice: OwnerNotice) -> bool: ...

        # the agency's program (camgate.gate.program)
        def program_notices(self) -> list[str]: ...

        def _notice(
            self,
            request: AccessRequest,
            event: str,
            at: datetime,
            facts: DecisionFacts | None = None,
            **extra: Any,
        ) -> OwnerNotice: ...

        def _record_decision(
            self,
            request: AccessRequest,
            decision: Decision,
            *,
            held: bool = False,
            closes: tuple[PendingRequest, str] | None = None,
        ) -> bool: ...

        def _conclude(
            self, request: AccessRequest, decision: Decision, facts: DecisionFacts | None = None
        ) -> SignedGrant | None: ...

        def _terms_horizon(
            self,
            request: AccessRequest,
            now: datetime,
            consent: ConsentRecord | None,
            facts: DecisionFacts | None = None,
        ) -> datetime | None: ...

        # ask-first (camgate.gate.asking)
        def _hold(
            self,
            request: AccessRequest,
            decision: Decision,
            consent: ConsentRecord,
            facts: DecisionFacts | None = None,
        ) -> PendingRequest: ...

        def _refuse_pending_of(self, owner_id: str, at: datetime) -> None: ...

        def _wake(self, request_id: str) -> None: ...

        # approvals (camgate.gate.approvals)
        def approval_of(self, request_id: str) -> Approval | None: ...

        def _hold_for_approval(
            self, request: AccessRequest, decision: Decision, facts: DecisionFacts
        ) -> PendingRequest: ...

        def _expire_approval(self, wait: dict[str, Any], now: datetime) -> bool: ...

        async def wait_for_answer(
            self, request_id: str, *, poll_s: float = 0.05
        ) -> SignedGrant: ...
