"""The agency's program: its end and its renewals told to every owner under consent, once.

The rules name a program (``AgencyRules.version``, ``program_start``, ``program_end``); the
``agency.program`` vote refuses every request outside it. :meth:`Program.program_notices`
tells the owners: once the program has ended, each owner under active consent gets a
``program-ended`` notice; when the gate runs rules of a new ``version`` (a renewal), a
``program-renewed`` notice with the new dates. Each is sent once per version, whichever
process notices first: the notices and their ``program.notice`` record are one audited change
(the notices owed in the same transaction, sent after it, and sent by the next gate to open the
store if this one crashed).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from camgate.errors import CamgateError, NotFound
from camgate.gate.parts import GateParts
from camgate.models import new_id
from camgate.notify import OwnerNotice
from camgate.rules import AgencyRules
from camgate.vocab import AuditKind

__all__ = ["Program", "apply_program_notice", "owe_camera_notices"]

#: The meta key holding the last rules version owners were told of.
VERSION_KEY = "program.version"


class _Told(CamgateError):
    """Another process told the owners first (nothing written)."""


def _when(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _text(event: str, rules: AgencyRules, previous: str | None) -> str:
    version = f" (rules version {rules.version})" if rules.version else ""
    if event == "program-ended":
        end = _when(rules.program_end)
        return (
            f"The {rules.name} camera program{version} ended on {end}. From now on every "
            "request for your cameras is refused; your consent stays on file, and you will be "
            "told if the program is renewed."
        )
    span = ", ".join(
        part
        for part in (
            f"from {_when(rules.program_start)}" if rules.program_start else "",
            f"until {_when(rules.program_end)}" if rules.program_end else "",
        )
        if part
    )
    return (
        f"{rules.name} renewed its camera program as rules version {rules.version}"
        f"{' (' + span + ')' if span else ''}, replacing version {previous}. Your consent "
        "and terms still apply; revoke at any time."
    )


class Program(GateParts):
    """The program part of :class:`~camgate.gate.Gate` (a mixin)."""

    def program_notices(self) -> list[str]:
        """Tell every owner under active consent, once per rules version, that the agency's
        program ended or was renewed; returns the events sent now (``program-ended``,
        ``program-renewed``), empty when nothing was owed.

        The gate calls this before every request when the rules name a program, and
        ``camgate consent program`` does; call it from a scheduler to tell owners at the end
        itself rather than at the next request.
        """
        rules = self.rules
        if not rules.version and rules.program_start is None and rules.program_end is None:
            return []
        now = self.clock.now()
        sent = []
        previous = self.store.meta(VERSION_KEY)
        if rules.version and previous != rules.version:
            if previous is None:
                self.store.set_meta(VERSION_KEY, rules.version)  # the first program: no renewal
            elif self._tell("program-renewed", rules, previous, now):
                sent.append("program-renewed")
        if rules.program_state(now) == "ended" and self._tell("program-ended", rules, None, now):
            sent.append("program-ended")
        return sent

    def _tell(self, event: str, rules: AgencyRules, previous: str | None, now: datetime) -> bool:
        key = f"program.told:{event}:{rules.version}:{_when(rules.program_end)}"

        def prepare() -> dict[str, Any]:
            # Under the write lock: only one process tells the owners.
            if self.store.meta(key) is not None:
                raise _Told(key)
            cameras = sorted({c.id for c in self.store.enrolled_cameras()})
            return {
                "event": event,
                "agency": rules.name,
                "version": rules.version,
                "previous": previous,
                "program_start": _when(rules.program_start),
                "program_end": _when(rules.program_end),
                "cameras": cameras,
                "text": _text(event, rules, previous),
                "key": key,
            }

        try:
            self._audited(AuditKind.PROGRAM_NOTICE, prepare, now)
        except _Told:
            return False
        self._pay_owed_notices()
        return True


def apply_program_notice(gate: GateParts, body: dict[str, Any], at: datetime) -> None:
    """The change a ``program.notice`` record makes: the version marked told, and one notice
    per camera under consent owed to its owner."""
    gate.store.set_meta(str(body["key"]), at.isoformat())
    if body.get("version"):
        gate.store.set_meta(VERSION_KEY, str(body["version"]))
    owe_camera_notices(gate, body["cameras"], str(body["event"]), str(body["text"]), at)


def owe_camera_notices(
    gate: GateParts, camera_ids: list[str], event: str, text: str, at: datetime
) -> None:
    """Owe each camera's owner one ``event`` notice saying ``text`` (sent after the change
    commits); a camera removed since (recovery) has nobody to tell."""
    notices = []
    for camera_id in camera_ids:
        try:
            camera = gate.store.get_camera(camera_id)
        except NotFound:
            continue
        notices.append(
            OwnerNotice(
                id=new_id("ntc"),
                owner_id=camera.owner_id,
                camera_id=camera.id,
                event=event,
                at=at,
                reasons=(text,),
            )
        )
    gate.store.owe_notices(notices)
