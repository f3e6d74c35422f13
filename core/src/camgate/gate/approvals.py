"""Approval by a second person: requests the agency's rules make wait for a supervisor.

The rules (:class:`camgate.rules.ApprovalRule`) name the requests that need approval; the
``agency.approval`` vote abstains for them (``needs approval``) and the gate holds such a
request — when every other vote allows — before anything is granted or the owner is asked
(``approval.requested``). An approver holding the role, not the officer who asked, answers
with a reason (:meth:`Approvals.approve`, ``camgate consent approve``); the request is then
decided again at that moment with the answer as the ``agency.approval`` vote, so a yes leads
to the grant (or to the owner's ask-first question) and a no refuses it. No answer by the
deadline is a no. The approver and their reason are in the decision's votes, the
``approval.answered`` record and the grant (``approved_by``, ``approval_reason``).

For the HTTP API, a route would call :meth:`Approvals.approve` (answer) and
:meth:`Approvals.approval_waits` (the list an approver sees).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import anyio.to_thread

from camgate.codec import dump, load
from camgate.errors import AccessDenied, NotFound, RequestExpired, ValidationError
from camgate.facts import DecisionFacts
from camgate.gate.parts import GateParts
from camgate.models import MAX_NOTE_CHARS, AccessRequest, Decision, PendingRequest, Verdict, Vote
from camgate.rules import Approval
from camgate.vocab import AuditKind

__all__ = ["Approvals", "apply_approval_answered", "apply_approval_requested"]


class Approvals(GateParts):
    """The approval part of :class:`~camgate.gate.Gate` (a mixin)."""

    def _hold_for_approval(
        self, request: AccessRequest, decision: Decision, facts: DecisionFacts
    ) -> PendingRequest:
        """Hold ``request`` for an approver (every other vote allows); returns what an officer's
        ``AnswerPending`` carries (the request and its deadline)."""
        rule = facts.rules.approval
        assert rule is not None
        now = self.clock.now()
        deadline = now + timedelta(seconds=rule.timeout_s)
        why = [v.reason for v in decision.votes if v.policy == "agency.approval"]
        self._audited(
            AuditKind.APPROVAL_REQUESTED,
            lambda: {
                "request": dump(request),
                "owner": facts.camera.owner_id,
                "role": rule.role,
                "deadline": deadline.isoformat(),
                "why": why,
                "votes": decision.to_json()["votes"],
            },
            now,
        )
        return PendingRequest(
            request_id=request.id,
            camera_id=request.camera_id,
            owner_id=facts.camera.owner_id,
            asked_at=now,
            deadline=deadline,
        )

    def approval_waits(self) -> list[dict[str, Any]]:
        """Requests waiting for approval (after refusing those past their deadline): each with
        ``request`` (the request as stored), ``role``, ``deadline`` and ``why``."""
        self.expire_approvals()
        return self.store.open_approval_waits()

    def approval_of(self, request_id: str) -> Approval | None:
        """The approver's answer to a request that waited for approval (None: it did not wait,
        or nobody answered yet)."""
        wait = self.store.approval_wait(request_id)
        if wait is None or wait.get("outcome") not in ("yes", "no"):
            return None
        return Approval(
            approver=str(wait["approver"]),
            role=str(wait["role"]),
            approved=wait["outcome"] == "yes",
            reason=str(wait["reason"]),
        )

    async def approve(
        self, request_id: str, *, approver: str, approved: bool, reason: str
    ) -> Decision:
        """A second person's answer to a request waiting for approval; returns the decision.

        ``approver`` must be one of the rules' approvers (holding its role) and not the officer
        who asked; ``reason`` (required, at most 1 000 characters) is kept in the decision, the
        audit log and the grant. A yes decides the request again now, with the approval as the
        ``agency.approval`` vote: when every other term and rule still holds it is granted — or,
        for an ask-first owner, held for the owner's answer (the decision returned is then the
        allowing one; the grant follows the owner's yes). A no refuses it. Raises NotFound for a
        request that never waited for approval, ValidationError for a wrong approver, a missing
        reason or a second answer, :class:`camgate.errors.RequestExpired` past the deadline;
        none of these records anything.
        """
        if not isinstance(approved, bool):
            raise ValidationError(f"approved={approved!r}: must be True (yes) or False (no)")
        if not isinstance(reason, str) or not reason.strip() or len(reason) > MAX_NOTE_CHARS:
            raise ValidationError(
                f"reason: state why, in 1 to {MAX_NOTE_CHARS} characters (it is kept with the "
                "decision, the grant and the audit record)"
            )
        decision = await anyio.to_thread.run_sync(
            self._approve_sync, request_id, approver, approved, reason.strip()
        )
        self._wake(request_id)
        return decision

    def _approve_sync(
        self, request_id: str, approver: str, approved: bool, reason: str
    ) -> Decision:
        self._settle_interrupted()
        wait = self.store.approval_wait(request_id)
        if wait is None:
            raise NotFound(f"request {request_id!r} never waited for approval")
        request = load(AccessRequest, wait["request"])
        rule = self.rules.approval
        if rule is None or approver not in rule.approvers:
            role = wait["role"]
            raise ValidationError(f"{approver!r} is not among those who approve as {role}")
        if approver == request.requested_by:
            raise ValidationError(
                f"{approver!r} asked for request {request_id!r}: a second person approves"
            )
        now = self.clock.now()
        if wait["outcome"] is None and now >= datetime.fromisoformat(wait["deadline"]):
            self._expire_approval(wait, now)
            wait = self.store.approval_wait(request_id) or wait
        if wait["outcome"] == "expired":
            raise RequestExpired(
                f"request {request_id!r} was not approved by {wait['deadline']}, which counts as "
                "no; the answer was not recorded"
            )
        if wait["outcome"] is not None:
            raise ValidationError(
                f"request {request_id!r} was already answered ({wait['outcome']})"
            )
        answer = "yes" if approved else "no"

        def still_open() -> dict[str, Any]:
            found = self.store.approval_wait(request_id)
            if found is None or found["outcome"] is not None:
                raise ValidationError(f"request {request_id!r} was already answered")
            return {
                "request": request_id,
                "answer": answer,
                "approver": approver,
                "role": wait["role"],
                "reason": reason,
            }

        self._audited(AuditKind.APPROVAL_ANSWERED, still_open, now)
        approval = Approval(approver, str(wait["role"]), approved, reason)
        decision, facts = self._decide(request, at=now, approval=approval)
        return self._after_approval(request, decision, facts)

    def _after_approval(
        self, request: AccessRequest, decision: Decision, facts: DecisionFacts
    ) -> Decision:
        consent = facts.standing_consent
        if decision.allowed and consent is not None and consent.terms.mode == "ask":
            self._hold(request, decision, consent, facts)  # now the owner is asked
            return decision
        self._record_decision(request, decision)
        try:
            self._conclude(request, decision, facts)
        except AccessDenied as refused:
            return refused.decision
        return decision

    def _expire_approval(self, wait: dict[str, Any], now: datetime) -> bool:
        """Refuse a request nobody approved by its deadline (once, whoever notices first)."""
        request_id = str(wait["request"]["id"])

        def still_open() -> dict[str, Any]:
            found = self.store.approval_wait(request_id)
            if found is None or found["outcome"] is not None:
                raise _Closed
            return {"request": request_id, "answer": "expired", "role": wait["role"]}

        try:
            self._audited(AuditKind.APPROVAL_ANSWERED, still_open, now)
        except _Closed:
            return False
        request = load(AccessRequest, wait["request"])
        why = f"no {wait['role']} approved it by {wait['deadline']}, which counts as no"
        decision = Decision(
            request.id, request.camera_id, [Vote("agency.approval", Verdict.DENY, why)], now
        )
        self._record_decision(request, decision)
        self._conclude(request, decision)
        return True

    def expire_approvals(self) -> list[str]:
        """Refuse every request whose approval deadline passed; returns their ids."""
        now = self.clock.now()
        done = [
            str(w["request"]["id"])
            for w in self.store.open_approval_waits()
            if now >= datetime.fromisoformat(w["deadline"]) and self._expire_approval(w, now)
        ]
        for request_id in done:
            self._wake(request_id)
        return done


class _Closed(ValidationError):
    """The approval wait was closed by someone else first (nothing written)."""


def apply_approval_requested(gate: GateParts, body: dict[str, Any], at: datetime) -> None:
    """The change an ``approval.requested`` record makes: the approval wait stored."""
    doc = {
        "request": body["request"],
        "owner": body["owner"],
        "role": body["role"],
        "deadline": body["deadline"],
        "why": body["why"],
        "asked_at": at.isoformat(),
        "outcome": None,
    }
    gate.store.add_approval_wait(
        str(body["request"]["id"]), datetime.fromisoformat(body["deadline"]), doc
    )


def apply_approval_answered(gate: GateParts, body: dict[str, Any], at: datetime) -> None:
    """The change an ``approval.answered`` record makes: the wait closed with the answer."""
    gate.store.close_approval_wait(
        str(body["request"]),
        {
            "outcome": body["answer"],
            "approver": body.get("approver"),
            "reason": body.get("reason"),
            "answered_at": at.isoformat(),
        },
    )
