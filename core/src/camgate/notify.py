"""Owner notification: every access, granted or refused, reaches the owner.

The gate builds an :class:`OwnerNotice` for each decision and each revocation and calls the
``camgate_notify_owner`` hook. The built-in notifier (plugin ``camgate.outbox``) writes the notice
durably into the store's outbox, from which a delivery plugin (webhook, e-mail: the consent issue)
or the owner's own app reads it; it accepts every notice, so no notice is ever lost.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

import attrs

from camgate.codec import dump
from camgate.hookspecs import hookimpl

if TYPE_CHECKING:
    from camgate.store import Store

__all__ = ["OutboxNotifier", "OwnerNotice"]


@attrs.frozen
class OwnerNotice:
    """What an owner is told: which camera, what was asked and why, and what the gate decided.

    ``event`` is ``ask`` (an ask-first request waits for the owner's yes or no until
    ``deadline``; answer it by ``request_id``), ``granted``, ``refused``, ``revoked``, or
    ``program-ended`` / ``program-renewed`` (the agency's program, in ``reasons``), or
    ``privacy-zone`` (a resident's privacy zone in the camera's view: set a mask, then attest);
    ``reasons`` the refusal reasons in words; ``purpose`` what the footage is for.

    ``witness`` is the audit log's latest signed checkpoint when the notice was sent
    (``{"type": "checkpoint", "payload": {seq, head, at, log, key, ...}, "signature"}``),
    covering every record up to this notice's decision: kept by the owner, outside the hub's
    machine, it proves how long the log was (``camgate audit verify --witness NOTICE`` reports
    a log cut back below it as truncated; docs/audit.md). None when the log has no key.
    """

    id: str
    owner_id: str
    camera_id: str
    event: str
    at: datetime
    scope: str = ""
    incident_kind: str = ""
    distance_m: float | None = None
    duration_s: float | None = None
    requested_by: str = ""
    reasons: tuple[str, ...] = ()
    request_id: str = ""
    purpose: str = ""
    deadline: datetime | None = None
    #: The officer's free-text note on the request (what they look for).
    note: str = ""
    #: The audit log's latest signed checkpoint as exported (the gate adds it when sending).
    witness: dict[str, Any] | None = attrs.field(default=None, hash=False, repr=False)

    def summary(self) -> str:
        """One paragraph an owner reads: what, why, for how long, and what happened."""
        what = f"{self.scope} access to camera {self.camera_id}" if self.scope else self.camera_id
        why = f" for a {self.incident_kind} incident" if self.incident_kind else ""
        if self.distance_m is not None:
            why += f" {self.distance_m:.0f} m away"
        how_long = f" for {self.duration_s:g} s" if self.duration_s and self.scope == "live" else ""
        by = f" by {self.requested_by}" if self.requested_by else ""
        purpose = f" (purpose: {self.purpose})" if self.purpose else ""
        if self.note:
            purpose += f' (note: "{self.note}")'
        if self.event == "ask":
            deadline = self.deadline.isoformat(timespec="seconds") if self.deadline else "soon"
            return (
                f"{self.requested_by or 'Someone'} asks for {what}{why}{how_long}{purpose}. "
                f"Answer yes or no to request {self.request_id} before {deadline}; "
                "no answer means no."
            )
        if self.event == "revoked":
            return f"You revoked consent for camera {self.camera_id}; every stream of it ended."
        if self.event.startswith("program-"):  # the agency's program ended or was renewed
            return " ".join(self.reasons)
        verdict = "granted" if self.event == "granted" else "refused"
        text = f"{what.capitalize()}{why}{how_long} was {verdict}{by}{purpose}."
        if self.reasons:
            text += " Why: " + "; ".join(self.reasons) + "."
        return text

    def to_json(self) -> dict[str, Any]:
        """JSON-ready content of the notice."""
        return dump(self)


class OutboxNotifier:
    """Queue every notice durably in the store's outbox (the default notifier)."""

    def __init__(self, store: Store) -> None:
        self._store = store

    @hookimpl
    def camgate_notify_owner(self, notice: OwnerNotice) -> bool:
        """Write the notice to the outbox; True once it is durable."""
        self._store.add_notice(notice)
        return True
