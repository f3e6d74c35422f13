"""Decisions and grants: every vote on a request, from one record of the facts it saw.

A request is judged on :class:`~camgate.facts.DecisionFacts` — camera, incident, owner, consent,
waiver and the agency's rules, loaded once (from the gate's fact cache, or afresh) — and that same
record is bound into what follows: the grant's consent terms (audio), its horizon (the incident's
window, the consent's end date, the owner's quiet hours in the owner's time zone) and the owner's
notice all come from it, so the grant is issued on exactly what the votes judged. Whether that
consent still stands is checked once more under the store's write lock before the grant is
written (``core.opt-in``, :func:`~camgate.gate.invariants.unbound`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import anyio.to_thread
import attrs

from camgate.codec import dump
from camgate.errors import AccessDenied, AnswerPending, PluginError
from camgate.facts import DecisionFacts
from camgate.gate.invariants import (
    capability_vote,
    core_votes,
    geofence_votes,
    incident_vote,
    unbound,
    window_votes,
)
from camgate.gate.parts import GateParts
from camgate.gate.residents import POLICY as PRIVACY_POLICY
from camgate.geofence import ZoneBook, distance_m
from camgate.grants import SignedGrant
from camgate.models import (
    AccessRequest,
    ConsentMode,
    ConsentRecord,
    Decision,
    Grant,
    PendingRequest,
    Scope,
    Verdict,
    Vote,
    new_id,
)
from camgate.notify import OwnerNotice
from camgate.policy import PolicyContext, in_quiet_hours, live_time_vote, needs_approval
from camgate.rules import Approval, LiveAllowance
from camgate.vocab import AuditKind

if TYPE_CHECKING:
    from camgate.gate.incidents import SurveyVotes

__all__ = ["SNAPSHOT_GRANT_S", "Decisions"]

#: How long a snapshot grant stays redeemable.
SNAPSHOT_GRANT_S = 60.0


class Decisions(GateParts):
    """The decision part of :class:`~camgate.gate.Gate` (a mixin)."""

    def decide(
        self,
        request: AccessRequest,
        *,
        at: datetime | None = None,
        owner_answer: bool | None = None,
        cached: bool = True,
        approval: Approval | None = None,
    ) -> Decision:
        """Collect every vote on a request (core invariants, geofences, consent policies).

        ``at`` is the moment judged (default: when the request was made); ``owner_answer`` the
        owner's yes or no to an ask-first request; ``approval`` a second person's answer to a
        request the agency's rules make wait for one. Pure: nothing is written. The stored facts
        come from the gate's :class:`~camgate.facts.FactCache` (re-validated against the
        store's change counters); ``cached=False`` reads every one afresh — the reference path,
        which returns the same decision.
        """
        return self._decide(
            request, at=at, owner_answer=owner_answer, cached=cached, approval=approval
        )[0]

    def decision_facts(self, request: AccessRequest, *, cached: bool = True) -> DecisionFacts:
        """The stored facts a decision on ``request`` judges (camera, incident, owner, consent,
        waiver, the agency's rules), loaded once; NotFound for an unknown camera or incident."""
        rules = self.rules
        if cached:
            return self.facts.facts(request.camera_id, request.incident_id, rules)
        return DecisionFacts.load(self.store, request.camera_id, request.incident_id, rules)

    def _decide(
        self,
        request: AccessRequest,
        *,
        at: datetime | None = None,
        owner_answer: bool | None = None,
        cached: bool = True,
        approval: Approval | None = None,
    ) -> tuple[Decision, DecisionFacts]:
        """The decision on ``request`` and the one record of the facts it judged."""
        facts = self.decision_facts(request, cached=cached)
        # The zones checked once for every zone source's vote (not at all when the fact cache
        # just read the same data version they were loaded under).
        with ZoneBook.held(self.store, self.facts.data_version if cached else None):
            decision = self._judge(
                request,
                facts,
                at or request.requested_at,
                owner_answer,
                approval=approval,
                cached=cached,
            )[0]
        return decision, facts

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
    ) -> tuple[Decision, ConsentRecord | None]:
        """Every vote on ``request`` from ``facts`` alone, and the consent record judged.

        ``geofence`` and ``distance`` are the camera's geofence votes and its distance from the
        incident when the caller (a survey) has them already; otherwise they are computed, as
        are the votes every camera of a survey shares (``shared``). ``cached``: residents'
        privacy zones from the gate's zone map (else read afresh, the reference path).
        """
        camera, incident = facts.camera, facts.incident
        consent = facts.standing_consent
        votes = core_votes(facts, request.scope)
        if shared is None:
            votes.append(incident_vote(incident, now))
            votes.append(capability_vote(self.host, camera, request.scope))
        else:
            votes.append(shared.incident)
            votes.append(shared.capability(self.host, camera))
        votes.extend(
            geofence_votes(self.host, incident, camera, now) if geofence is None else geofence
        )
        votes.extend(window_votes(request, now) if shared is None else shared.window)
        privacy = self._privacy_vote(camera, request.scope, cached)
        if privacy is not None:
            votes.append(privacy)
        ctx = PolicyContext(
            request=request,
            camera=camera,
            incident=incident,
            consent=consent,
            waiver=facts.waiver if facts.consent is not None else None,
            distance_m=(
                distance_m(incident.position, camera.position) if distance is None else distance
            ),
            now=now,
            owner=facts.owner,
            owner_answer=owner_answer,
            live_allowance=self._live_allowance(request, facts, now),
            approval=approval,
        )
        votes.extend(self.host.consent_votes(ctx))
        decision = Decision(
            request.id,
            camera.id,
            votes,
            self.clock.now(),
            consent_id=consent.id if consent is not None else None,
        )
        return decision, consent

    def _live_allowance(
        self, request: AccessRequest, facts: DecisionFacts, now: datetime
    ) -> LiveAllowance | None:
        """The live time used and left for a live request under the agency's caps (None for
        other scopes or when the rules cap nothing): read from the audit log
        (:class:`~camgate.gate.livetime.LiveLedger`)."""
        caps = facts.rules.live_caps
        if request.scope is not Scope.LIVE or not caps:
            return None
        return self.live_ledger.allowance(
            caps,
            incident_id=request.incident_id,
            officer=request.requested_by,
            camera_id=request.camera_id,
            now=now,
        )

    def _notify(self, notice: OwnerNotice) -> bool:
        notice = attrs.evolve(notice, witness=self.audit.witness())  # proof kept by the owner
        accepted = self.host.notify_owner(notice)
        self.audit.append(
            AuditKind.OWNER_NOTIFIED if accepted else AuditKind.OWNER_NOTIFY_FAILED,
            notice.to_json(),
            self.clock.now(),
        )
        return accepted

    async def request_access(
        self,
        incident_id: str,
        camera_id: str,
        scope: Scope | str,
        *,
        requested_by: str,
        duration_s: float = 60.0,
        purpose: str | Sequence[str] = "investigation",
        window: tuple[datetime, datetime] | None = None,
        wait: bool = True,
        audio: bool = False,
        note: str = "",
    ) -> SignedGrant:
        """Ask for one scope of one camera under an incident; returns a signed grant.

        The decision (every vote) is durable in the audit log and the owner notified before this
        returns or raises. Raises :class:`camgate.errors.AccessDenied` with every reason when any
        vote denies, NotFound for an unknown camera or incident.

        When the owner's terms say ``ask``, a request that meets every other term is held and
        the owner is sent an ``ask`` notice. With ``wait=True`` (the default) this then waits for
        the owner's answer (see :meth:`wait_for_answer`) — wrap it in ``anyio.fail_after`` to
        give up sooner; with ``wait=False`` it raises :class:`camgate.errors.AnswerPending` at
        once, carrying the held request's id and deadline. ``audio=True`` asks for sound too:
        the grant carries it only when the owner's terms share audio (``ConsentTerms.audio``).
        ``purpose`` names purposes from the agency's closed list (``AgencyRules.purposes``; any
        other is refused); ``note`` is free text for the owner and the audit log.
        """
        request = AccessRequest(
            id=new_id("req"),
            incident_id=incident_id,
            camera_id=camera_id,
            scope=scope,
            requested_by=requested_by,
            requested_at=self.clock.now(),
            purpose=purpose,
            note=note,
            duration_s=duration_s,
            window_start=window[0] if window else None,
            window_end=window[1] if window else None,
            audio=audio,
        )
        result = await anyio.to_thread.run_sync(self._request_sync, request)
        if not isinstance(result, SignedGrant):
            if not wait:
                held = self.store.approval_wait(result.request_id)
                if held is not None and held["outcome"] is None:
                    raise AnswerPending(result, f"a {held['role']}'s approval")
                raise AnswerPending(result)
            result = await self.wait_for_answer(result.request_id)
        await self.edge.live_grant_issued(result.grant)
        return result

    def _request_sync(self, request: AccessRequest) -> SignedGrant | PendingRequest:
        self._settle_interrupted()  # decide on a settled state, never a half-made change
        self.program_notices()  # owners told once of the program's end or renewal
        decision, facts = self._decide(request)
        consent = facts.standing_consent
        if decision.allowed and needs_approval(decision.votes):
            return self._hold_for_approval(request, decision, facts)  # a supervisor first
        if decision.allowed and consent is not None and consent.terms.mode is ConsentMode.ASK:
            return self._hold(request, decision, consent, facts)
        # The request, its decision and the decision record: both or neither (_audited).
        self._record_decision(request, decision)
        if any(v.policy == PRIVACY_POLICY and v.verdict is Verdict.DENY for v in decision.votes):
            self.ask_zone_owners()  # a camera enrolled after the zone: its owner asked now
        signed = self._conclude(request, decision, facts)
        if signed is None:
            raise AccessDenied(decision)
        return signed

    def _record_decision(
        self,
        request: AccessRequest,
        decision: Decision,
        *,
        held: bool = False,
        closes: tuple[PendingRequest, str] | None = None,
    ) -> bool:
        """Store a final decision and its ``decision`` record together (:meth:`_audited`).

        ``held``: the request was held ask-first (stored already); ``closes``: a held request
        this decision refuses, closed with that outcome in the same change — False (nothing
        written) when it was closed already (a race lost).
        """
        body: dict[str, Any] = {"request": dump(request), "decision": decision.to_json()}
        if closes is not None:
            body["closes"] = closes[1]
        elif held:
            body["held"] = True

        def prepare() -> dict[str, Any]:
            if closes is not None and not self.store.get_pending(request.id).open:
                raise _LostRace
            return body

        try:
            self._audited(AuditKind.DECISION, prepare, decision.decided_at)
        except _LostRace:
            return False
        return True

    def _notice(
        self,
        request: AccessRequest,
        event: str,
        at: datetime,
        facts: DecisionFacts | None = None,
        **extra: Any,
    ) -> OwnerNotice:
        """The owner's notice of ``event`` on ``request``: about the camera and incident the
        decision judged (``facts``), or as stored now when the caller has no facts (a held
        request refused without a new decision)."""
        if facts is None:
            camera = self.store.get_camera(request.camera_id)
            incident = self.store.get_incident(request.incident_id)
        else:
            camera, incident = facts.camera, facts.incident
        return OwnerNotice(
            id=new_id("ntc"),
            owner_id=camera.owner_id,
            camera_id=camera.id,
            event=event,
            at=at,
            scope=str(request.scope),
            incident_kind=incident.kind,
            distance_m=round(distance_m(incident.position, camera.position), 1),
            duration_s=request.duration_s,
            requested_by=request.requested_by,
            request_id=request.id,
            purpose=request.purpose,
            note=request.note,
            **extra,
        )

    def _conclude(
        self, request: AccessRequest, decision: Decision, facts: DecisionFacts | None = None
    ) -> SignedGrant | None:
        """Tell the owner of a final decision (stored and audited by :meth:`_record_decision`)
        and issue the grant when it allows, from ``facts``: the record the decision judged
        (None only for a refusal made without a new decision; then what is stored now)."""
        self.host.decision_made(decision)
        notice = self._notice(
            request,
            "granted" if decision.allowed else "refused",
            decision.decided_at,
            facts,
            reasons=tuple(decision.reasons),
        )
        told = self._notify(notice)
        if not decision.allowed:
            return None
        if needs_approval(decision.votes):  # never granted while an approval is outstanding
            raise PluginError(f"request {request.id!r} waits for approval; no grant was issued")
        if not told:
            raise PluginError(
                "no notifier accepted the owner's notice, so no grant was issued; "
                "register a notifier (the built-in camgate.outbox accepts every notice)"
            )
        issued = self.clock.now()
        # The consent the policies judged, loaded once with the decision's facts: the grant is
        # bound to that record and issued only while it still stands (checked again under the
        # write lock below).
        if facts is not None:
            consent = facts.standing_consent
        else:
            consent = (
                None if decision.consent_id is None else self.store.get_consent(decision.consent_id)
            )
        lifetime = SNAPSHOT_GRANT_S if request.scope is Scope.SNAPSHOT else request.duration_s
        # Never beyond the incident's window, nor the owner's terms (end date, quiet hours): a
        # grant cannot outlive the reason for it.
        expires = issued + timedelta(seconds=lifetime)
        horizon = self._terms_horizon(request, issued, consent, facts)
        if horizon is not None:
            expires = min(expires, horizon)
        grant = Grant(
            id=new_id("grt"),
            request_id=request.id,
            camera_id=request.camera_id,
            incident_id=request.incident_id,
            scope=request.scope,
            issued_at=issued,
            expires_at=expires,
            window_start=request.window_start,
            window_end=request.window_end,
            # Sound only when asked for and the owner shares it; otherwise the edge drops it.
            audio=request.audio and consent is not None and consent.terms.audio,
            # Bound to the consent the decision was made under (for an ask-first request: at the
            # owner's yes); the edge honours the grant only while that exact record stands.
            consent_id=decision.consent_id,
            **self._approval_fields(request),
        )

        def still_standing() -> dict[str, Any]:
            active = self.store.active_consent(request.camera_id)
            if active is None or active.id != decision.consent_id:
                raise AccessDenied(unbound(decision, self.clock.now()))
            self._live_time_still_left(request, decision, facts)
            return dump(grant)

        try:
            # The grant and its grant.issued record: both or neither; a waiting officer (any
            # process) sees the grant only once its record is durable.
            self._audited(AuditKind.GRANT_ISSUED, still_standing, issued)
        except AccessDenied as refused:
            final = refused.decision
            self._audited(
                AuditKind.GRANT_REFUSED,
                lambda: {"request": request.id, "decision": final.to_json()},
                final.decided_at,
            )
            self._notify(
                self._notice(
                    request, "refused", final.decided_at, facts, reasons=tuple(final.reasons)
                )
            )
            raise
        return self._signer.sign(grant)

    def _approval_fields(self, request: AccessRequest) -> dict[str, str]:
        """What a grant says of the approval its request needed (nothing when none)."""
        approval = self.approval_of(request.id) if self.rules.approval is not None else None
        if approval is None or not approval.approved:
            return {}
        return {
            "approved_by": f"{approval.role} {approval.approver}",
            "approval_reason": approval.reason,
        }

    def _live_time_still_left(
        self, request: AccessRequest, decision: Decision, facts: DecisionFacts | None
    ) -> None:
        """Under the write lock, before a live grant is written: the live time asked is still
        left under the agency's caps (another process may have been granted some since the
        decision); AccessDenied with the ``agency.live-time`` reason when it is not."""
        caps = (self.rules if facts is None else facts.rules).live_caps
        if request.scope is not Scope.LIVE or not caps:
            return
        now = self.clock.now()
        allowance = self.live_ledger.allowance(
            caps,
            incident_id=request.incident_id,
            officer=request.requested_by,
            camera_id=request.camera_id,
            now=now,
        )
        if request.duration_s <= allowance.remaining_s:
            return
        vote = live_time_vote(self.rules if facts is None else facts.rules, request, allowance)
        raise AccessDenied(
            Decision(
                decision.request_id,
                decision.camera_id,
                [*(v for v in decision.votes if v.policy != vote.policy), vote],
                now,
                consent_id=decision.consent_id,
            )
        )

    def _terms_horizon(
        self,
        request: AccessRequest,
        now: datetime,
        consent: ConsentRecord | None,
        facts: DecisionFacts | None = None,
    ) -> datetime | None:
        """The first moment after ``now`` at which a term would stop holding, so a grant ends
        there: the incident's window, the agency's program end, the consent's end date, the
        start of quiet hours (in the owner's time zone). The incident, rules and owner are
        ``facts``' when given, else the stored."""
        incident = self.store.get_incident(request.incident_id) if facts is None else facts.incident
        ends = [incident.window_end]
        program_end = (self.rules if facts is None else facts.rules).program_end
        if program_end is not None:
            ends.append(program_end)  # no grant outlives the agency's program
        if consent is not None:
            terms = consent.terms
            if terms.ends_at is not None:
                ends.append(terms.ends_at)
            if terms.quiet_hours is not None:
                owner = None if facts is None else facts.owner
                if owner is None or owner.id != consent.owner_id:
                    owner = self.store.get_owner(consent.owner_id)
                zone = owner.time_zone
                step = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
                for _ in range(int(request.duration_s // 60) + 2):  # minute resolution
                    if in_quiet_hours(terms.quiet_hours, step, zone):
                        ends.append(step)
                        break
                    step += timedelta(minutes=1)
        later = [e for e in ends if e > now]
        return min(later) if later else None


class _LostRace(Exception):
    """A held request was closed by another process first (nothing written)."""
