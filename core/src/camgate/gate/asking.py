"""Ask-first: a request the owner is asked about before anything is granted.

When the owner's consent says ``ask``, a request that meets every other term is held
(``request.held``) and the owner sent an ``ask`` notice; the caller waits for the answer
(:meth:`AskFirst.wait_for_answer`) or gets :class:`~camgate.errors.AnswerPending` at once. The
owner's yes decides the request again at that moment; a no, the deadline passing or a
revocation refuses it. An answer given in another process sharing the store is seen too.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import Any

import anyio.to_thread

from camgate.codec import dump
from camgate.errors import AccessDenied, NotFound, PluginError, RequestExpired, ValidationError
from camgate.facts import DecisionFacts
from camgate.gate.parts import GateParts
from camgate.grants import SignedGrant
from camgate.models import AccessRequest, ConsentRecord, Decision, PendingRequest, Verdict, Vote
from camgate.vocab import AuditKind

__all__ = ["CONCLUDE_GRACE_S", "AskFirst"]

# How long a waiter gives an answering process to store its decision and grant after it closed
# the held request (one SQLite transaction each; seconds is ample even on a loaded machine).
CONCLUDE_GRACE_S = 30.0


class AskFirst(GateParts):
    """The ask-first part of :class:`~camgate.gate.Gate` (a mixin)."""

    def _hold(
        self,
        request: AccessRequest,
        decision: Decision,
        consent: ConsentRecord,
        facts: DecisionFacts | None = None,
    ) -> PendingRequest:
        """Hold ``request`` (allowed but for the owner's yes) and send the owner the ``ask``
        notice, about what the decision judged (``facts``)."""
        now = self.clock.now()
        pending = PendingRequest(
            request_id=request.id,
            camera_id=request.camera_id,
            owner_id=consent.owner_id,
            asked_at=now,
            deadline=now + timedelta(seconds=consent.terms.ask_timeout_s),
        )
        # The held request and its request.held record: both or neither (_audited).
        self._audited(
            AuditKind.REQUEST_HELD,
            lambda: {
                "request": dump(request),
                "pending": dump(pending),
                "deadline": pending.deadline.isoformat(),
                "votes": decision.to_json()["votes"],
            },
            now,
        )
        self._notify(self._notice(request, "ask", now, facts, deadline=pending.deadline))
        return pending

    def pending(self, owner_id: str | None = None) -> list[PendingRequest]:
        """Ask-first requests still waiting for an answer (one owner's, or all)."""
        return self.store.pending(owner_id)

    async def answer(
        self, request_id: str, approve: bool, *, owner_id: str | None = None
    ) -> Decision:
        """The owner's yes or no to a held ask-first request; returns the final decision.

        A yes decides the request again at this moment, with the owner's yes as the
        ``terms.mode`` vote, so every other term and rule must still hold; when it allows, the
        grant is issued and a waiting :meth:`request_access` or :meth:`wait_for_answer` returns
        it — in this process or any other sharing the store. A no refuses it. Either way the
        decision is audited and the owner notified.

        Raises NotFound for a request that was never held, ValidationError when ``owner_id`` is
        not the camera's owner or the request was already answered, and
        :class:`camgate.errors.RequestExpired` after the deadline. None of these records the
        answer.
        """
        if not isinstance(approve, bool):
            raise ValidationError(f"approve={approve!r}: must be True (yes) or False (no)")
        decision = await anyio.to_thread.run_sync(self._answer_sync, request_id, approve, owner_id)
        self._wake(request_id)
        return decision

    def _answer_sync(self, request_id: str, approve: bool, owner_id: str | None) -> Decision:
        self._settle_interrupted()  # decide on a settled state, never a half-made change
        pending = self.store.get_pending(request_id)
        if owner_id is not None and owner_id != pending.owner_id:
            raise ValidationError(f"request {request_id!r} is not for a camera of {owner_id!r}")
        now = self.clock.now()
        if pending.open and now >= pending.deadline:
            self._expire(pending, now)
            pending = self.store.get_pending(request_id)
        if pending.outcome == "revoked":
            raise ValidationError(
                f"request {request_id!r} was refused when the owner revoked consent; "
                "the answer was not recorded"
            )
        if pending.outcome == "expired":
            raise RequestExpired(
                f"request {request_id!r} expired at "
                f"{pending.deadline.isoformat(timespec='seconds')} without an answer, "
                "which counts as no; the answer was not recorded"
            )
        outcome = "yes" if approve else "no"

        def still_open() -> dict[str, Any]:
            done = self.store.get_pending(request_id).outcome
            if done is not None:
                raise ValidationError(f"request {request_id!r} was already answered ({done})")
            return {"request": request_id, "owner": pending.owner_id, "answer": outcome}

        # The answer (the held request closed) and its owner.answered record: both or neither.
        self._audited(AuditKind.OWNER_ANSWERED, still_open, now)
        request = self.store.get_request(request_id)
        decision, facts = self._decide(
            request, at=now, owner_answer=approve, approval=self.approval_of(request_id)
        )
        self._record_decision(request, decision, held=True)
        try:
            self._conclude(request, decision, facts)
        except AccessDenied as refused:  # the consent changed before the grant was issued
            return refused.decision
        return decision

    def _expire(self, pending: PendingRequest, now: datetime) -> bool:
        """Close an overdue held request as a no (once, whoever notices first)."""
        why = (
            f"the owner did not answer by {pending.deadline.isoformat(timespec='seconds')}, "
            "which counts as no"
        )
        return self._refuse_held(pending, now, "expired", Vote("terms.mode", Verdict.DENY, why))

    def _refuse_held(
        self, pending: PendingRequest, now: datetime, outcome: str, vote: Vote
    ) -> bool:
        """Close a held request with a refusal (once): closed, decision stored and audited in
        one change (:meth:`_record_decision`), then the owner told."""
        decision = Decision(pending.request_id, pending.camera_id, [vote], now)
        request = self.store.get_request(pending.request_id)
        if not self._record_decision(request, decision, closes=(pending, outcome)):
            return False
        self._conclude(request, decision)
        return True

    def _refuse_pending_of(self, owner_id: str, at: datetime) -> None:
        """On revocation, refuse the owner's held requests at once (waiters are woken)."""
        vote = Vote("core.opt-in", Verdict.DENY, "the owner revoked consent")
        for pending in self.store.pending(owner_id):
            self._refuse_held(pending, at, "revoked", vote)

    def expire_pending(self) -> list[str]:
        """Refuse every held request whose deadline has passed; returns their ids.

        Waiters do this for their own request; call it to settle requests nobody waits for.
        """
        now = self.clock.now()
        done = [
            p.request_id for p in self.store.pending() if now >= p.deadline and self._expire(p, now)
        ]
        for request_id in done:
            self._wake(request_id)
        return done

    def _wake(self, request_id: str) -> None:
        event = self._answered.pop(request_id, None)
        if event is not None:
            event.set()

    def _settle(self, request_id: str) -> SignedGrant | Decision | PendingRequest:
        waiting = self._waiting_for_approval(request_id)
        if waiting is not None:
            return waiting
        pending = self.store.get_pending(request_id)
        if pending.open and self.clock.now() >= pending.deadline:
            self._expire(pending, self.clock.now())
            pending = self.store.get_pending(request_id)
        if pending.open:
            return pending
        outcome = self._outcome(request_id)
        return pending if outcome is None else outcome

    def _outcome(self, request_id: str) -> SignedGrant | Decision | None:
        """A closed request's grant or refusal; None while whoever closed it (maybe another
        process) is still storing its decision, or issuing the grant it allowed."""
        found = self.store.grant_for_request(request_id)
        if found is not None:
            return SignedGrant(*found)
        try:
            decision = Decision.from_json(self.store.decision_json(request_id))
        except NotFound:
            return None
        return None if decision.allowed else decision

    def _waiting_for_approval(
        self, request_id: str
    ) -> SignedGrant | Decision | PendingRequest | None:
        """For a request that waited for approval: its grant, its refusal, or a still open wait
        (also while the answer's decision is being stored); None when it did not wait, or is
        now held for the owner (read as usual)."""
        wait = self.store.approval_wait(request_id)
        if wait is None:
            return None
        now = self.clock.now()
        deadline = datetime.fromisoformat(wait["deadline"])
        if wait["outcome"] is None and now >= deadline:
            self._expire_approval(wait, now)
            wait = self.store.approval_wait(request_id) or wait
        if wait["outcome"] is not None:
            try:
                self.store.get_pending(request_id)
            except NotFound:
                pass
            else:
                return None  # held for the owner now
            outcome = self._outcome(request_id)
            if outcome is not None:
                return outcome
        request = wait["request"]
        return PendingRequest(
            request_id=request_id,
            camera_id=str(request["camera_id"]),
            owner_id=str(wait["owner"]),
            asked_at=datetime.fromisoformat(wait["asked_at"]),
            deadline=deadline,
        )

    async def wait_for_answer(self, request_id: str, *, poll_s: float = 0.05) -> SignedGrant:
        """Wait until a held request is answered; return its grant or raise AccessDenied.

        Wakes at once for an answer given through this gate; an answer from another process
        sharing the store (``camgate consent answer``) is seen within ``poll_s``. At the deadline
        the request is refused (``terms.mode``: no answer means no) and AccessDenied raised.
        """
        concluding_since: float | None = None
        while True:
            state = await anyio.to_thread.run_sync(self._settle, request_id)
            if isinstance(state, SignedGrant):
                return state
            if isinstance(state, Decision):
                raise AccessDenied(state)
            if not state.open:
                # Answered, but the answering side has not stored its decision or grant yet.
                # It does so in moments; if it never does (it crashed, or no notifier took the
                # owner's notice, so no grant may be issued) say so rather than wait forever.
                concluding_since = concluding_since or time.monotonic()
                if time.monotonic() - concluding_since > CONCLUDE_GRACE_S:
                    raise PluginError(
                        f"request {request_id!r} was answered ({state.outcome}) but no "
                        f"decision or grant followed within {CONCLUDE_GRACE_S:g} s; the "
                        "answering process failed before it concluded (see its log and the "
                        "audit log)"
                    )
            event = self._answered.setdefault(request_id, anyio.Event())
            with anyio.move_on_after(poll_s):
                await event.wait()
