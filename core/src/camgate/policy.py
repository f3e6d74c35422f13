"""Consent policies: what every policy sees, and the built-in policies of the foundation.

A policy is a plugin implementing ``camgate_consent_vote(ctx)``. It gets a :class:`PolicyContext`
and answers with a :class:`~camgate.models.Vote`. Any deny refuses the request.

Built in, the owner's terms (plugin ``camgate.policy``, :class:`TermsPolicy`):

- ``terms.max-session``: a live request asks for no longer than the owner's maximum session;
- ``terms.mode``: ask-first or pre-authorised (the gate holds an ask-first request for the owner);
- ``terms.incident-kind``, ``terms.radius``, ``terms.quiet-hours``, ``terms.lookback``,
  ``terms.end-date``.

Built in, the agency's rules (plugin ``camgate.agency``, :class:`AgencyPolicy` over
:class:`camgate.rules.AgencyRules`): ``agency.live-kinds``, ``agency.purpose``,
``agency.sensitive-place``, ``agency.waiver``, and the ordinance rules ``agency.program`` (the
program's start and end), ``agency.live-time`` (caps on live time) and
``agency.protected-activity`` (incident kinds a purpose may not be combined with). Enrolment
caps are checked by :meth:`camgate.gate.Gate.enrol`.

The core invariants (opt-in with a matching waiver, an open incident, an adapter able to serve
the scope) and the owner's scopes (``core.scope``) are not plugins: the gate checks them itself
so no plugin set can switch them off.
"""

from __future__ import annotations

import functools
import zoneinfo
from collections.abc import Sequence
from datetime import datetime, time, timedelta, tzinfo
from typing import Any

import attrs

from camgate.hookspecs import hookimpl
from camgate.models import (
    AccessRequest,
    Camera,
    ConsentMode,
    ConsentRecord,
    ConsentTerms,
    Incident,
    Owner,
    Scope,
    Verdict,
    Vote,
    Waiver,
)
from camgate.rules import AgencyRules, Approval, LiveAllowance, normalise

__all__ = [
    "AgencyPolicy",
    "PolicyContext",
    "TermsPolicy",
    "in_quiet_hours",
    "live_time_vote",
    "needs_approval",
]

#: Votes an :class:`AgencyPolicy` keeps at most (one per camera, request kind and waiver).
_MEMO_MAX = 250_000


@attrs.frozen
class PolicyContext:
    """Everything the gate knows about one request when the policies vote.

    ``consent`` is the camera's active consent record (None when the camera is not enrolled or
    its owner revoked), ``waiver`` the waiver text that record names, ``distance_m`` the geodesic
    distance from the incident to the camera, ``now`` the moment of the decision, ``owner`` the
    camera's owner, and ``owner_answer`` the owner's answer to an ask-first request (None while
    nobody asked or the owner has not answered). ``live_allowance`` is the live time used and
    left under the agency's caps (None unless the request is live and the rules cap live time).
    ``approval`` is a second person's answer to a request the rules make wait for one (None
    while nobody answered).
    """

    request: AccessRequest
    camera: Camera
    incident: Incident
    consent: ConsentRecord | None
    waiver: Waiver | None
    distance_m: float
    now: datetime
    owner: Owner | None = None
    owner_answer: bool | None = None
    live_allowance: LiveAllowance | None = None
    approval: Approval | None = None


def in_quiet_hours(quiet: tuple[str, str], when: datetime, time_zone: str) -> bool:
    """True when ``when`` falls in the quiet hours ``(start, end)`` in ``time_zone``.

    The interval is start-inclusive, end-exclusive and may wrap midnight (``22:00``-``07:00``).
    """
    local = _local_time(when, time_zone)
    start, end = _bounds(quiet)
    if start < end:
        return start <= local < end
    return local >= start or local < end


# Pure functions of few distinct values (time zones, terms, moments shared by a survey's
# cameras), kept so a decision does not parse, convert or format them again.
@functools.lru_cache(maxsize=4096)
def _local_time(when: datetime, time_zone: str) -> time:
    return when.astimezone(zoneinfo.ZoneInfo(time_zone)).time()


@functools.lru_cache(maxsize=1024)
def _bounds(quiet: tuple[str, str]) -> tuple[time, time]:
    start, end = quiet
    return time.fromisoformat(start), time.fromisoformat(end)


def _allow(policy: str, reason: str) -> Vote:
    return Vote.known(policy, Verdict.ALLOW, reason)


def _deny(policy: str, reason: str) -> Vote:
    return Vote.known(policy, Verdict.DENY, reason)


_PRE_AUTHORISED = _allow("terms.mode", "the owner pre-authorised requests that meet their terms")
_SAID_YES = _allow("terms.mode", "the owner said yes to this request")
_SAID_NO = _deny("terms.mode", "the owner said no to this request")
_ASK_FIRST = Vote.known("terms.mode", Verdict.ABSTAIN, "the owner wants to be asked first")
_RECENT = _allow("terms.lookback", "the footage asked for is recent enough")


@functools.lru_cache(maxsize=4096)
def _kind_votes(raw: str, kinds: frozenset[str]) -> tuple[Vote, ...]:
    kind = normalise(raw)
    if kind in kinds:
        return (_allow("terms.incident-kind", f"the owner accepts {kind} incidents"),)
    accepted = ", ".join(sorted(kinds)) or "none"
    return (
        _deny(
            "terms.incident-kind",
            f"the owner does not accept {kind} incidents (accepted: {accepted})",
        ),
    )


@functools.lru_cache(maxsize=4096)
def _quiet_votes(quiet: tuple[str, str], zone: str, inside: bool) -> tuple[Vote, ...]:
    start, end = quiet
    if inside:
        return (
            _deny(
                "terms.quiet-hours",
                f"it is the owner's quiet hours ({start}-{end}, {zone}); ask again after {end}",
            ),
        )
    return (_allow("terms.quiet-hours", f"outside the owner's quiet hours ({start}-{end})"),)


@functools.lru_cache(maxsize=4096)
def _end_votes(ends_at: datetime, _zone: tzinfo | None, ended: bool) -> tuple[Vote, ...]:
    # ``_zone`` keys the cache too: equal moments in two time zones are written differently.
    if not ended:
        return (_allow("terms.end-date", f"consent runs until {ends_at:%Y-%m-%d}"),)
    return (_deny("terms.end-date", f"the owner's consent ended on {ends_at:%Y-%m-%d %H:%M}"),)


def _duration(seconds: float) -> str:
    if seconds >= 86400 and seconds % 86400 == 0:
        return f"{seconds / 86400:g} days"
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{seconds / 3600:g} h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{seconds / 60:g} min"
    return f"{seconds:g} s"


class TermsPolicy:
    """The owner's terms (:class:`camgate.models.ConsentTerms`), one named vote per term.

    A term the owner did not set casts no vote. Each denial says, in plain words, what the owner
    allows.
    """

    @hookimpl
    def camgate_consent_vote(self, ctx: PolicyContext) -> list[Vote] | None:
        """Vote on every term the owner set; any denial refuses the request."""
        if ctx.consent is None:
            return None
        terms = ctx.consent.terms
        return [
            *self._scope(ctx, terms),
            *self._mode(ctx, terms),
            *self._kind(ctx, terms),
            *self._radius(ctx, terms),
            *self._quiet(ctx, terms),
            *self._lookback(ctx, terms),
            *self._end(ctx, terms),
        ]

    @staticmethod
    def _scope(ctx: PolicyContext, terms: ConsentTerms) -> list[Vote]:
        # The scope itself is the gate's core.scope check (promise 3, not unpluggable); this
        # policy adds the session length that goes with it.
        scope = ctx.request.scope
        votes: list[Vote] = []
        limit = terms.max_session_s
        if limit is not None and scope is not Scope.SNAPSHOT and ctx.request.duration_s > limit:
            votes.append(
                _deny(
                    "terms.max-session",
                    f"{_duration(ctx.request.duration_s)} asked; "
                    f"the owner allows at most {_duration(limit)}",
                )
            )
        return votes

    @staticmethod
    def _mode(ctx: PolicyContext, terms: ConsentTerms) -> list[Vote]:
        if terms.mode is ConsentMode.PRE_AUTHORISED:
            return [_PRE_AUTHORISED]
        if ctx.owner_answer is True:
            return [_SAID_YES]
        if ctx.owner_answer is False:
            return [_SAID_NO]
        return [_ASK_FIRST]

    @staticmethod
    def _kind(ctx: PolicyContext, terms: ConsentTerms) -> Sequence[Vote]:
        if terms.incident_kinds is None:
            return []
        return _kind_votes(ctx.incident.kind, terms.incident_kinds)

    @staticmethod
    def _radius(ctx: PolicyContext, terms: ConsentTerms) -> list[Vote]:
        limit = terms.max_radius_m
        if limit is None:
            return []
        if ctx.distance_m <= limit:
            return [_allow("terms.radius", f"{ctx.distance_m:.0f} m from the incident")]
        return [
            _deny(
                "terms.radius",
                f"the camera is {ctx.distance_m:.0f} m from the incident; "
                f"the owner allows at most {limit:.0f} m",
            )
        ]

    @staticmethod
    def _quiet(ctx: PolicyContext, terms: ConsentTerms) -> Sequence[Vote]:
        if terms.quiet_hours is None:
            return []
        zone = ctx.owner.time_zone if ctx.owner is not None else "UTC"
        quiet = terms.quiet_hours
        return _quiet_votes(quiet, zone, in_quiet_hours(quiet, ctx.now, zone))

    @staticmethod
    def _lookback(ctx: PolicyContext, terms: ConsentTerms) -> list[Vote]:
        limit = terms.max_lookback_s
        start = ctx.request.window_start
        if limit is None or ctx.request.scope is not Scope.RECORDED or start is None:
            return []
        earliest = ctx.now - timedelta(seconds=limit)
        if start >= earliest:
            return [_RECENT]
        return [
            _deny(
                "terms.lookback",
                f"footage from {start:%Y-%m-%d %H:%M} UTC asked; the owner shares recordings "
                f"from the last {_duration(limit)} only",
            )
        ]

    @staticmethod
    def _end(ctx: PolicyContext, terms: ConsentTerms) -> Sequence[Vote]:
        if terms.ends_at is None:
            return []
        ends_at = terms.ends_at
        return _end_votes(ends_at, ends_at.tzinfo, not ctx.now < ends_at)


class AgencyPolicy:
    """The agency's and jurisdiction's rules (:class:`camgate.rules.AgencyRules`) as votes.

    A rule the agency did not set casts no vote. These apply to every camera, whatever its
    owner's terms.
    """

    def __init__(self, rules: AgencyRules) -> None:
        self.rules = rules
        # Votes already worked out, by what they depend on (dropped when ``rules`` is replaced).
        self._memo_of: AgencyRules | None = None
        self._memo: dict[tuple[Any, ...], tuple[Vote, ...]] = {}

    def __repr__(self) -> str:
        return f"AgencyPolicy({self.rules.name!r})"

    @hookimpl
    def camgate_consent_vote(self, ctx: PolicyContext) -> list[Vote]:
        """Vote on live-view kinds, purposes, protected activities, sensitive places, required
        waivers, the program's dates and live-time caps."""
        rules = self.rules
        memo = self._memo
        if self._memo_of is not rules or len(memo) > _MEMO_MAX:
            memo = self._memo = {}
            self._memo_of = rules
        request, camera, consent = ctx.request, ctx.camera, ctx.consent
        keys = (
            ("request", ctx.incident.kind, request.scope, request.purpose),
            ("camera", camera.id, camera.label, camera.position),
            ("waiver", None if consent is None else consent.waiver_version),
        )
        votes: list[Vote] = []
        for key in keys:
            found = memo.get(key)
            if found is None:
                found = memo[key] = tuple(self._votes(rules, key, ctx))
            votes.extend(found)
        if rules.program_start is not None or rules.program_end is not None:
            key = ("program", rules.program_state(ctx.now))
            found = memo.get(key)
            if found is None:
                found = memo[key] = (_program_vote(rules, key[1]),)
            votes.extend(found)
        if ctx.live_allowance is not None:
            votes.append(live_time_vote(rules, ctx.request, ctx.live_allowance))
        if rules.approval is not None:
            votes.extend(_approval_votes(rules, ctx))
        return votes

    @staticmethod
    def _votes(rules: AgencyRules, key: tuple[Any, ...], ctx: PolicyContext) -> list[Vote]:
        """The votes that depend only on ``key``: the request's, the camera's or the waiver's."""
        who = rules.name
        votes: list[Vote] = []
        if key[0] == "request":
            kind = normalise(ctx.incident.kind)
            if rules.live_incident_kinds is not None and ctx.request.scope is Scope.LIVE:
                if kind in rules.live_incident_kinds:
                    votes.append(_allow("agency.live-kinds", f"{who} allows live view for {kind}"))
                else:
                    allowed = ", ".join(sorted(rules.live_incident_kinds)) or "no incident"
                    votes.append(
                        _deny(
                            "agency.live-kinds",
                            f"{who} allows live view only for: {allowed} (this is {kind})",
                        )
                    )
            problems = []
            banned = rules.banned_in(ctx.request.purpose)
            if banned:
                problems.append(f"{', '.join(banned)} is banned by {who}")
            unknown = rules.unknown_in(ctx.request.purpose)
            if unknown:
                problems.append(
                    f"{', '.join(unknown)} is not a purpose {who} allows "
                    f"(its purposes: {', '.join(sorted(rules.purposes))})"
                )
            if problems:
                votes.append(_deny("agency.purpose", "; ".join(problems)))
            protected = rules.protected_activity_of(kind, ctx.request.purpose)
            if protected:
                votes.append(
                    _deny(
                        "agency.protected-activity",
                        f"{who} does not use cameras for {'; '.join(protected)}: "
                        "a protected activity",
                    )
                )
        elif key[0] == "camera":
            place = rules.sensitive_place_of(ctx.camera)
            if place is not None:
                votes.append(
                    _deny(
                        "agency.sensitive-place",
                        f"the camera is at a sensitive place ({place}); {who} never reaches it",
                    )
                )
        elif (
            rules.required_waivers is not None
            and ctx.consent is not None
            and ctx.consent.waiver_version not in rules.required_waivers
        ):
            wanted = ", ".join(sorted(rules.required_waivers))
            votes.append(
                _deny(
                    "agency.waiver",
                    f"the owner accepted waiver {ctx.consent.waiver_version}; {who} requires "
                    f"re-acceptance of {wanted}",
                )
            )
        return votes


def _day(moment: datetime) -> str:
    return moment.isoformat(sep=" ", timespec="minutes")


def _program_vote(rules: AgencyRules, state: str) -> Vote:
    """The ``agency.program`` vote for the program's ``state`` (see
    :meth:`AgencyRules.program_state`)."""
    who = rules.name
    version = f" (rules version {rules.version})" if rules.version else ""
    if state == "before" and rules.program_start is not None:
        return _deny(
            "agency.program",
            f"the {who} program{version} starts on {_day(rules.program_start)}; "
            "no camera is reached before",
        )
    if state == "ended" and rules.program_end is not None:
        return _deny(
            "agency.program",
            f"the {who} program{version} ended on {_day(rules.program_end)}; every request is "
            "refused unless the program is renewed",
        )
    until = f" until {_day(rules.program_end)}" if rules.program_end is not None else ""
    return _allow("agency.program", f"the {who} program{version} runs{until}")


def _hms(seconds: float) -> str:
    """A length of time in words: ``1 h 5 min``, ``40 s``."""
    whole = max(0, round(seconds))
    h, rest = divmod(whole, 3600)
    m, s = divmod(rest, 60)
    parts = [f"{h} h" if h else "", f"{m} min" if m else "", f"{s} s" if s and not h else ""]
    return " ".join(p for p in parts if p) or "0 s"


def live_time_vote(rules: AgencyRules, request: AccessRequest, allowance: LiveAllowance) -> Vote:
    """The ``agency.live-time`` vote: the request's duration against what is left under every
    cap, each named with its cap, use and remainder (denied when any has too little left)."""
    asked = request.duration_s
    over = [
        f"{rules.name} allows {_hms(cap)} of live view for {what}; {_hms(used)} used, "
        f"{_hms(max(0.0, cap - used))} left"
        for what, cap, used in allowance.caps
        if asked > cap - used
    ]
    if over:
        return _deny("agency.live-time", f"{'; '.join(over)}; {_hms(asked)} asked")
    left = "; ".join(
        f"{_hms(cap - used)} of {_hms(cap)} left for {what}" for what, cap, used in allowance.caps
    )
    return _allow("agency.live-time", f"live time: {left}")


#: The reason of the ``agency.approval`` abstention that makes the gate hold a request.
NEEDS_APPROVAL = "needs approval"


def _approval_votes(rules: AgencyRules, ctx: PolicyContext) -> list[Vote]:
    """``agency.approval``: none when the request needs no approval; an abstention (the gate
    holds the request for an approver) while nobody answered; the approver's yes or no, with
    their reason, once they did."""
    rule = rules.approval
    assert rule is not None
    request = ctx.request
    why = rule.needed_for(request.scope, ctx.incident.kind, request.purpose, request.duration_s)
    if not why:
        return []
    answer = ctx.approval
    if answer is None:
        return [
            Vote.known(
                "agency.approval",
                Verdict.ABSTAIN,
                f"{NEEDS_APPROVAL} by a {rule.role} other than {request.requested_by} "
                f"({'; '.join(why)})",
            )
        ]
    who = f"{answer.role} {answer.approver}"
    if answer.approved:
        return [_allow("agency.approval", f"approved by {who}: {answer.reason}")]
    return [_deny("agency.approval", f"{who} did not approve: {answer.reason}")]


def needs_approval(votes: Sequence[Vote]) -> bool:
    """True when the votes hold an ``agency.approval`` abstention: the request waits for an
    approver before anything is granted or asked of the owner."""
    return any(v.policy == "agency.approval" and v.verdict is Verdict.ABSTAIN for v in votes)
