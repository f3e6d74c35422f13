"""Consent policies: what every policy sees, and the built-in policies of the foundation.

A policy is a plugin implementing ``camgate_consent_vote(ctx)``. It gets a :class:`PolicyContext`
and answers with a :class:`~camgate.models.Vote`. Any deny refuses the request.

Built in (registered as the plugin ``camgate.policy``):

- ``terms.max-session``: a live request asks for no longer than the owner's maximum session.

The core invariants (opt-in with a matching waiver, the owner's scopes, an open incident, an
adapter able to serve the scope) are not plugins: the gate checks them itself so no plugin set
can switch them off.
"""

from __future__ import annotations

from datetime import datetime

import attrs

from camgate.hookspecs import hookimpl
from camgate.models import (
    AccessRequest,
    Camera,
    ConsentRecord,
    Incident,
    Scope,
    Verdict,
    Vote,
    Waiver,
)

__all__ = ["PolicyContext", "ScopePolicy"]


@attrs.frozen
class PolicyContext:
    """Everything the gate knows about one request when the policies vote.

    ``consent`` is the camera's active consent record (None when the camera is not enrolled or
    its owner revoked), ``waiver`` the waiver text that record names, ``distance_m`` the geodesic
    distance from the incident to the camera, ``now`` the moment of the decision.
    """

    request: AccessRequest
    camera: Camera
    incident: Incident
    consent: ConsentRecord | None
    waiver: Waiver | None
    distance_m: float
    now: datetime


class ScopePolicy:
    """The owner's terms beyond the scopes themselves (which the gate checks as core.scope)."""

    @hookimpl
    def camgate_consent_vote(self, ctx: PolicyContext) -> list[Vote] | None:
        """Deny a live or recorded session longer than the owner's maximum."""
        if ctx.consent is None:
            return None
        limit = ctx.consent.terms.max_session_s
        scope = ctx.request.scope
        if limit is not None and scope is not Scope.SNAPSHOT and ctx.request.duration_s > limit:
            return [
                Vote(
                    "terms.max-session",
                    Verdict.DENY,
                    f"{ctx.request.duration_s:g} s asked; the owner allows at most {limit:g} s",
                )
            ]
        return [
            Vote("terms.max-session", Verdict.ABSTAIN, "no session limit applies to this request")
        ]
