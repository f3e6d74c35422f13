"""Who may do what: the roles, the actions and the one table every route consults.

Every route names its :class:`Action` and calls :func:`allowed` (through the app's ``require``
dependency); nothing else grants a permission. Owners are allowed some actions only on their
own resources: the route checks ownership and answers 404 for another owner's resource (its
existence is not disclosed), while an action the role may never do is 403.
"""

from __future__ import annotations

import enum

__all__ = ["POLICY", "Action", "Role", "allowed"]


class Role(enum.StrEnum):
    """An account's role (one per account)."""

    ADMIN = "admin"  #: the agency's administrator: accounts, owners, invites, tokens
    OPERATOR = "operator"  #: an officer: reports incidents, requests access (never approves)
    SUPERVISOR = "supervisor"  #: oversees operators: reads, reports and closes incidents
    AUDITOR = "auditor"  #: reads everything the agency may read, changes nothing
    OWNER = "owner"  #: a camera owner: their own cameras, history and revocation only


class Action(enum.StrEnum):
    """What a request does; an API token's scopes are a set of these."""

    OWNERS_READ = "owners:read"
    OWNERS_WRITE = "owners:write"
    INVITES_CREATE = "invites:create"
    ACCOUNTS_READ = "accounts:read"
    ACCOUNTS_WRITE = "accounts:write"
    TOKENS_CREATE = "tokens:create"
    CAMERAS_READ = "cameras:read"
    INCIDENTS_READ = "incidents:read"
    INCIDENTS_REPORT = "incidents:report"
    INCIDENTS_CLOSE = "incidents:close"
    REQUESTS_CREATE = "requests:create"
    REQUESTS_ANSWER = "requests:answer"
    OWN_REVOKE = "own:revoke"
    OWN_ACCESSES = "own:accesses"
    MEDIA_VIEW = "media:view"
    EVENTS_READ = "events:read"
    WAIVERS_READ = "waivers:read"
    WAIVERS_PUBLISH = "waivers:publish"
    CONSENT_READ = "consent:read"
    OWN_CONSENT = "own:consent"
    OWN_MASKS = "own:masks"
    REQUESTS_READ = "requests:read"
    AUDIT_VERIFY = "audit:verify"
    REPORT_READ = "report:read"


_A = Action
#: (role) → the actions it may take. Owner actions marked "own" in docs/api.md are further
#: limited to the owner's own resources by the route (404 for anyone else's).
_STAFF_READ = {
    _A.CAMERAS_READ,
    _A.INCIDENTS_READ,
    _A.EVENTS_READ,
    _A.WAIVERS_READ,
    _A.REQUESTS_READ,
}
_OVERSIGHT = {_A.CONSENT_READ, _A.AUDIT_VERIFY, _A.REPORT_READ}
POLICY: dict[Role, frozenset[Action]] = {
    Role.ADMIN: frozenset(
        {
            *_STAFF_READ,
            *_OVERSIGHT,
            _A.OWNERS_READ,
            _A.OWNERS_WRITE,
            _A.INVITES_CREATE,
            _A.ACCOUNTS_READ,
            _A.ACCOUNTS_WRITE,
            _A.TOKENS_CREATE,
            _A.WAIVERS_PUBLISH,
        }
    ),
    # media:view: video of a grant issued to the caller only (live.py, downloads.py).
    Role.OPERATOR: frozenset(
        {*_STAFF_READ, _A.INCIDENTS_REPORT, _A.REQUESTS_CREATE, _A.MEDIA_VIEW}
    ),
    Role.SUPERVISOR: frozenset(
        {*_STAFF_READ, *_OVERSIGHT, _A.INCIDENTS_REPORT, _A.INCIDENTS_CLOSE}
    ),
    Role.AUDITOR: frozenset({*_STAFF_READ, *_OVERSIGHT, _A.OWNERS_READ, _A.ACCOUNTS_READ}),
    # Not incidents:read: an owner learns of an incident only through a request for their own
    # camera (held for their answer, or in their accesses), never the crime map at large.
    Role.OWNER: frozenset(
        {
            _A.CAMERAS_READ,
            _A.REQUESTS_ANSWER,
            _A.REQUESTS_READ,
            _A.OWN_REVOKE,
            _A.OWN_ACCESSES,
            _A.OWN_CONSENT,
            _A.OWN_MASKS,
            _A.EVENTS_READ,
            _A.WAIVERS_READ,
        }
    ),
}


def allowed(role: Role, action: Action, scopes: frozenset[Action] | None = None) -> bool:
    """Whether ``role`` may take ``action``; with an API token's ``scopes``, only when the
    token's scopes name it too (a token never widens its account's role)."""
    if action not in POLICY[role]:
        return False
    return scopes is None or action in scopes
