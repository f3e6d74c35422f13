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

    ``event`` is ``granted``, ``refused`` or ``revoked``; ``reasons`` the refusal reasons in words.
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
