"""Audited changes: a state change and its audit record, both or neither — even across a crash.

:meth:`AuditedChanges._audited` makes every change the gate writes (enrolment, revocation,
masks, a camera's removal, a held request, an answer, a decision, a grant) together with its
record; with the log elsewhere (PostgreSQL) an intent bridges the two, and
:meth:`AuditedChanges._settle_interrupted` finishes what a dead process left
(docs/architecture.md, "State changes and their audit records"). Each change is applied from its
record's body alone (:data:`_CHANGES`), so the same code runs live and in recovery.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from camgate.codec import canonical, load
from camgate.errors import NotFound
from camgate.gate.accounts import apply_account_unlinked
from camgate.gate.approvals import apply_approval_answered, apply_approval_requested
from camgate.gate.parts import GateParts
from camgate.gate.program import apply_program_notice
from camgate.gate.residents import (
    apply_zone_asked,
    apply_zone_attested,
    apply_zone_registered,
    apply_zone_removed,
)
from camgate.models import (
    AccessRequest,
    ConsentRecord,
    Decision,
    Grant,
    PendingRequest,
    PrivacyMask,
    new_id,
)
from camgate.notify import OwnerNotice
from camgate.store import process_identity
from camgate.vocab import AuditKind

__all__ = ["AuditedChanges"]


class AuditedChanges(GateParts):
    """The audited-changes part of :class:`~camgate.gate.Gate` (a mixin)."""

    def _audited(
        self, kind: AuditKind, prepare: Callable[[], dict[str, Any]], at: datetime
    ) -> dict[str, Any]:
        """Make the state change ``kind`` names and write its audit record: both or neither.

        ``prepare`` runs under the store's write lock (what it checks holds until the change
        commits), may refuse by raising a camgate error (then nothing is written), and returns
        the record's body; the change is ``_CHANGES[kind]`` applied from that body alone.

        With the log in the store's file (the default) the change and its record are one SQLite
        transaction. With the log elsewhere (PostgreSQL) no transaction spans both, so an intent
        (the body) is committed to the store first and the order depends on what the change
        does to access (docs/architecture.md, "State changes and their audit records"):

        - a change that reduces access (:data:`_ROLL_FORWARD`: a revocation, a camera removed,
          masks) commits with its intent, then its record is appended: it is in force at once
          in every process sharing the store, and recovery appends a record that is missing
          (rolls forward) — access closes even when the record is late;
        - any other change (it grants access, or leads to it) commits its intent, then its
          record, then the change: recovery applies the change when the record exists and
          drops the intent when it does not, so nothing is in force without its record.

        :meth:`_settle_interrupted` settles the intents a dead process left.
        """
        apply = _CHANGES[kind]
        body: dict[str, Any] = {}
        if self.audit.shares_store:

            def change() -> dict[str, Any]:
                body.update(prepare())
                apply(self, body, at)
                return body

            self.audit.append_with(kind, change, at)
            return body
        forward = kind in _ROLL_FORWARD
        with self.store.transaction():
            body.update(prepare())
            if forward:
                apply(self, body, at)
            after = self.audit.last_seq()
            intent = self.store.add_intent(kind, canonical(body).decode(), at.isoformat(), after)
            _IN_FLIGHT.add(
                (self.store.path, intent)
            )  # before the commit: no settling pass of ours may take it
        try:
            self.audit.append(kind, body, at)
        except Exception:
            # Not written, or written and the reply lost: settle now if the log can tell (else
            # the intent stays for a later pass). A change in force already stands either way.
            _IN_FLIGHT.discard((self.store.path, intent))
            if self._settle_intent(intent, kind, body, at, after=after) and forward:
                return body  # the record was written after all (or again, now)
            raise
        _IN_FLIGHT.discard((self.store.path, intent))
        self._settle_intent(intent, kind, body, at, recorded=True)
        return body

    def _settle_intent(
        self,
        intent: int,
        kind: str,
        body: dict[str, Any],
        at: datetime,
        *,
        recorded: bool | None = None,
        after: int = 0,
    ) -> bool:
        """Finish an intent: a change in force already (:data:`_ROLL_FORWARD`) gets its record
        if it has none; any other is applied when its record exists and dropped when it does
        not. False (the intent left for a later pass) when the audit log cannot be asked."""
        try:
            with self.store.transaction():
                # Under the write lock, and the intent deleted in the same transaction: two
                # processes settling the same intent cannot both append or both apply.
                if not self.store.drop_intent(intent):
                    return True  # settled by someone else
                if recorded is None:
                    recorded = self.audit.has_record(kind, body, after)
                if kind in _ROLL_FORWARD:
                    if not recorded:
                        self.audit.append(kind, body, at)
                elif recorded and kind in _CHANGES:
                    _CHANGES[kind](self, body, at)
        except Exception:  # the log is unreachable: the deletion rolled back, a later pass
            return False
        return True

    def _settle_interrupted(self) -> None:
        """Finish what interrupted processes left: their intents (audit log in PostgreSQL) and
        the owner notices they owed. Runs on open and, when anything is left (one cheap
        query), before every decision, enrolment and answer: a running hub never acts on a
        state a crashed process left half-made, and notices owed by the dead are sent.

        An intent of a process that still runs (``Store.writer_alive``: same pid *and* start
        time on this machine, so a reused pid is not mistaken for it, or its writer lease held
        on PostgreSQL, wherever it runs) is under way and left alone; this process's own
        intents are left only while in flight (:data:`_IN_FLIGHT`).
        """
        if not self.store.has_leftovers():
            return
        me = (os.getpid(), process_identity())  # not the pid alone: containers' are alike
        for intent_id, kind, text, at, after, pid, started in self.store.intents():
            if (self.store.path, intent_id) in _IN_FLIGHT or (
                (pid, started) != me and self.store.writer_alive(pid, started)
            ):
                continue  # under way
            when = datetime.fromisoformat(at)
            self._settle_intent(intent_id, kind, json.loads(text), when, after=after)
        self._pay_owed_notices(dead_only=True)

    def _pay_owed_notices(self, owner_id: str | None = None, *, dead_only: bool = False) -> None:
        """Send the owner notices committed changes owe: this process's (one owner's, or all),
        or with ``dead_only`` those of processes that died before sending them (taken over
        first, so two processes never both send one)."""
        me = (os.getpid(), process_identity())
        for doc, pid, started in self.store.owed_notices():
            notice = load(OwnerNotice, doc)
            if owner_id not in (None, notice.owner_id):
                continue
            if (pid, started) != me:
                if not dead_only or self.store.writer_alive(pid, started):
                    continue
                if not self.store.claim_notice(notice.id, pid, started):
                    continue
            if self._notify(notice):
                self.store.notice_paid(notice.id)


# How each audited change is applied from its record's body (inside the store transaction that
# also holds the record, or the intent's): the same code runs live and in recovery.


def _apply_enrolled(gate: GateParts, body: dict[str, Any], at: datetime) -> None:
    record = {k: v for k, v in body.items() if k != "camera_classes"}
    gate.store.add_consent(load(ConsentRecord, record))


def _apply_revoked(gate: GateParts, body: dict[str, Any], at: datetime) -> None:
    gate.store.revoke_consent_ids(list(body["consents"]), at)
    gate.store.owe_notices(
        [
            OwnerNotice(
                id=new_id("ntc"), owner_id=body["owner"], camera_id=cam, event="revoked", at=at
            )
            for cam in body["cameras"]
        ]
    )


def _apply_masks(gate: GateParts, body: dict[str, Any], at: datetime) -> None:
    gate.store.set_masks(load(PrivacyMask, {k: v for k, v in body.items() if k != "owner"}))


def _apply_removed(gate: GateParts, body: dict[str, Any], at: datetime) -> None:
    with contextlib.suppress(NotFound):  # removed already
        gate.store.remove_camera(body["camera"])


def _apply_grant(gate: GateParts, body: dict[str, Any], at: datetime) -> None:
    grant = load(Grant, body)
    # Ed25519 is deterministic: the token is the same whoever signs the grant again.
    gate.store.add_grant(grant, gate._signer.sign(grant).token)


def _apply_grant_refused(gate: GateParts, body: dict[str, Any], at: datetime) -> None:
    gate.store.add_decision(body["request"], Decision.from_json(body["decision"]), replace=True)


def _apply_held(gate: GateParts, body: dict[str, Any], at: datetime) -> None:
    gate.store.add_held_request(
        load(AccessRequest, body["request"]), load(PendingRequest, body["pending"])
    )


def _apply_answered(gate: GateParts, body: dict[str, Any], at: datetime) -> None:
    # False when the request was closed meanwhile (recovery only: live, it was checked open).
    gate.store.resolve_pending(body["request"], body["answer"], at)


def _apply_decision(gate: GateParts, body: dict[str, Any], at: datetime) -> None:
    request = load(AccessRequest, body["request"])
    decision = Decision.from_json(body["decision"])
    if "closes" in body:  # a held request refused (no answer in time, or consent revoked)
        gate.store.resolve_pending(request.id, body["closes"], at)
    if "closes" in body or body.get("held"):
        gate.store.add_decision(request.id, decision, replace=True)
    else:
        gate.store.add_request(request, decision)


#: Changes that reduce access: in force before their record when the log is elsewhere, and
#: recorded by recovery if the record is missing (see Gate._audited).
_ROLL_FORWARD = frozenset(
    {
        AuditKind.CONSENT_REVOKED,
        AuditKind.CAMERA_REMOVED,
        AuditKind.MASKS_SET,
        AuditKind.ZONE_REGISTERED,
    }
)

#: This process's intents between their commit and their settling, as (store path, intent id):
#: a settling pass in this process leaves them to the thread that wrote them.
_IN_FLIGHT: set[tuple[Path, int]] = set()

_CHANGES: dict[str, Callable[[GateParts, dict[str, Any], datetime], None]] = {
    AuditKind.REQUEST_HELD: _apply_held,
    AuditKind.OWNER_ANSWERED: _apply_answered,
    AuditKind.DECISION: _apply_decision,
    AuditKind.CONSENT_ENROLLED: _apply_enrolled,
    AuditKind.CONSENT_REVOKED: _apply_revoked,
    AuditKind.MASKS_SET: _apply_masks,
    AuditKind.CAMERA_REMOVED: _apply_removed,
    AuditKind.GRANT_ISSUED: _apply_grant,
    AuditKind.GRANT_REFUSED: _apply_grant_refused,
    AuditKind.PROGRAM_NOTICE: apply_program_notice,
    AuditKind.APPROVAL_REQUESTED: apply_approval_requested,
    AuditKind.APPROVAL_ANSWERED: apply_approval_answered,
    AuditKind.ZONE_REGISTERED: apply_zone_registered,
    AuditKind.ZONE_REMOVED: apply_zone_removed,
    AuditKind.ZONE_ASKED: apply_zone_asked,
    AuditKind.ZONE_MASK_ATTESTED: apply_zone_attested,
    AuditKind.ACCOUNT_UNLINKED: apply_account_unlinked,
}
