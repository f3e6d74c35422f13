"""The core invariants: one function per ``core.*`` vote, cast by the gate and never by a plugin.

No set of plugins can switch these off (docs/promises.md); each function judges only what it is
given (the facts a decision loaded once: :class:`~camgate.facts.DecisionFacts`) and returns the
vote with its reason:

- ``core.opt-in`` (:func:`opt_in_vote`) — the camera's owner enrolled it and accepted a
  published waiver whose hash matches the record, and has not revoked;
- ``core.scope`` (:func:`scope_vote`) — the owner's terms allow the scope (live, recorded,
  snapshot); cast only when ``core.opt-in`` allows;
- ``core.incident`` (:func:`incident_vote`) — the incident is open and the request falls inside
  its time window;
- ``core.capability`` (:func:`capability_vote`) — the camera's adapter is installed and can
  serve the scope;
- ``core.geofence`` (:func:`geofence_votes`) — at least one geofence plugin includes the camera
  and none excludes it;
- ``core.window`` (:func:`window_votes`) — a recorded window ends no later than the decision;
- and ``core.opt-in`` again at grant time (:func:`unbound`), when the consent the decision was
  made under stopped standing before the grant was issued.
"""

from __future__ import annotations

import functools
from datetime import datetime

import attrs

from camgate.errors import PluginError
from camgate.facts import DecisionFacts
from camgate.models import (
    AccessRequest,
    Camera,
    ConsentRecord,
    Decision,
    Incident,
    IncidentStatus,
    Scope,
    Verdict,
    Vote,
)
from camgate.plugins import PluginHost

__all__ = [
    "capability_vote",
    "core_votes",
    "geofence_votes",
    "incident_vote",
    "opt_in_vote",
    "scope_vote",
    "unbound",
    "window_votes",
]


def opt_in_vote(facts: DecisionFacts) -> Vote:
    """``core.opt-in``: the camera is enrolled under a published waiver whose hash matches the
    consent record, and the owner has not revoked."""
    if facts.consent is None:
        why = (
            "the owner revoked consent"
            if facts.revoked
            else "the owner has not enrolled this camera"
        )
        return Vote("core.opt-in", Verdict.DENY, why)
    waiver = facts.waiver
    if facts.standing_consent is None or waiver is None:
        return Vote(
            "core.opt-in",
            Verdict.DENY,
            "the consent record does not match a published waiver",
        )
    return Vote.known("core.opt-in", Verdict.ALLOW, f"enrolled under waiver {waiver.version}")


def scope_vote(consent: ConsentRecord, scope: Scope) -> Vote:
    """``core.scope``: the owner's terms allow ``scope`` (promise 3: a core invariant rather
    than an unpluggable policy)."""
    if scope in consent.terms.scopes:
        return _SCOPE_ALLOWED[scope]
    allowed = ", ".join(sorted(consent.terms.scopes)) or "nothing"
    return Vote(
        "core.scope",
        Verdict.DENY,
        f"the owner does not allow {scope} access (allowed: {allowed})",
    )


_SCOPE_ALLOWED = {
    scope: Vote.known("core.scope", Verdict.ALLOW, f"the owner allows {scope} access")
    for scope in Scope
}


def core_votes(facts: DecisionFacts, scope: Scope) -> list[Vote]:
    """``core.opt-in`` and, when it allows, ``core.scope``: the consent part of a decision."""
    opt_in = opt_in_vote(facts)
    consent = facts.standing_consent
    if opt_in.verdict is not Verdict.ALLOW or consent is None:
        return [opt_in]
    return [opt_in, scope_vote(consent, scope)]


def incident_vote(incident: Incident, now: datetime) -> Vote:
    """``core.incident``: the incident is open and ``now`` inside its time window."""
    if incident.active_at(now):
        return _open_vote(incident.kind, incident.reported_at)
    why = (
        "the incident is closed"
        if incident.status is IncidentStatus.CLOSED
        else "the request falls outside the incident's time window"
    )
    return Vote("core.incident", Verdict.DENY, why)


@functools.lru_cache(maxsize=4096)
def _open_vote(kind: str, reported_at: datetime) -> Vote:
    return Vote.known(
        "core.incident", Verdict.ALLOW, f"{kind} incident open since {reported_at:%H:%M}"
    )


def capability_vote(host: PluginHost, camera: Camera, scope: Scope) -> Vote:
    """``core.capability``: the camera's adapter is installed and can serve the scope."""
    try:
        factory = host.adapter(camera.adapter)
    except PluginError as exc:
        return Vote("core.capability", Verdict.DENY, str(exc))
    if scope in factory.capabilities.scopes:
        return Vote.known(
            "core.capability", Verdict.ALLOW, f"adapter {factory.name} serves {scope}"
        )
    return Vote("core.capability", Verdict.DENY, f"adapter {factory.name} cannot serve {scope}")


def geofence_votes(
    host: PluginHost, incident: Incident, camera: Camera, now: datetime
) -> list[Vote]:
    """The geofence plugins' votes on ``camera`` for ``incident``, and ``core.geofence``'s deny
    when none of them allows (repeating the zones' reasons, so a refusal says why)."""
    votes = host.geofence_votes(incident, camera, now)
    if not any(v.verdict is Verdict.ALLOW for v in votes):
        # Zones abstain with their reasons; the deny repeats them so a refusal says why.
        said = "; ".join(f"{v.policy}: {v.reason}" for v in votes if v.verdict is Verdict.ABSTAIN)
        why = "no geofence of the incident covers this camera" + (f" ({said})" if said else "")
        votes.append(Vote("core.geofence", Verdict.DENY, why))
    return votes


_RECORDED = Vote.known("core.window", Verdict.ALLOW, "the window asked for has been recorded")


def window_votes(request: AccessRequest, now: datetime) -> list[Vote]:
    """``core.window``: recorded footage is footage already recorded — a recorded window must
    end no later than the decision time, or a recording grant would watch with a delay."""
    if request.scope is not Scope.RECORDED or request.window_end is None:
        return []
    if request.window_end <= now:
        return [_RECORDED]
    return [
        Vote(
            "core.window",
            Verdict.DENY,
            f"the recorded window ends at {request.window_end:%Y-%m-%d %H:%M:%S} UTC, after "
            f"the decision ({now:%Y-%m-%d %H:%M:%S} UTC); recorded access covers only footage "
            "already recorded",
        )
    ]


def unbound(decision: Decision, at: datetime) -> Decision:
    """``decision`` refused (``core.opt-in``) because its consent record stopped standing
    before the grant was issued."""
    vote = Vote(
        "core.opt-in",
        Verdict.DENY,
        "the consent the decision was made under was revoked or replaced before the grant "
        "was issued",
    )
    return attrs.evolve(decision, votes=[*decision.votes, vote], decided_at=at)
