"""Vendor accounts unlinked on the vendor's side: audited, and the cameras' owners told.

A camera reached through a vendor account (Ring's) stops being reachable when the owner
withdraws camgate's authorisation there, or the vendor does: the adapter finds out when a token
refresh is refused and raises :class:`~camgate.errors.AccountUnlinked`. The edge then ends every
open stream of the account's cameras (:meth:`camgate.edge.Edge.account_unlinked`) and calls
:func:`record_unlinked`, which writes ``account.unlinked`` and owes each camera's owner a notice
(event ``link-lost``) saying what happened and what to do.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import anyio.to_thread

from camgate.gate.parts import GateParts
from camgate.gate.program import owe_camera_notices
from camgate.vocab import AuditKind

__all__ = ["NOTICE_EVENT", "apply_account_unlinked", "record_unlinked"]

#: The owner notice's event.
NOTICE_EVENT = "link-lost"
TEXT = (
    "camgate can no longer reach this camera: its {adapter} account was unlinked, or its "
    "permission withdrawn, on {adapter}'s side. Any access that was open to it has ended, and "
    "no one can reach it through camgate until you link the account again. If you did not mean "
    "to withdraw it, link it again (for Ring: camgate ring link)."
)


async def record_unlinked(
    gate: GateParts, adapter: str, account: str, cameras: list[str], error: str
) -> None:
    """Audit that ``adapter``'s account ``account`` (an opaque key) was found unlinked, its
    ``cameras``' streams ended, and tell each camera's owner (one notice per camera); the
    agency sees the record in its audit log and event feed."""
    at = gate.clock.now()
    body = {"adapter": adapter, "account": account, "cameras": list(cameras), "error": error}
    await anyio.to_thread.run_sync(
        lambda: gate._audited(AuditKind.ACCOUNT_UNLINKED, lambda: body, at)
    )
    await anyio.to_thread.run_sync(gate._pay_owed_notices)


def apply_account_unlinked(gate: GateParts, body: dict[str, Any], at: datetime) -> None:
    """The change an ``account.unlinked`` record makes: one notice per camera owed."""
    text = TEXT.format(adapter=str(body["adapter"]).title())
    owe_camera_notices(gate, list(body["cameras"]), NOTICE_EVENT, text, at)
