"""Live time used, counted from the audit log: what the agency's live-time caps are checked on.

Every live grant is in the audit log (``grant.issued``, after the ``decision`` that names its
officer); the edge records when it was redeemed (``access.start``) and when the access ended
(``access.end``). :class:`LiveLedger` reads those records — incrementally, from the last one it
saw — and charges each live grant:

- ended: from its start to its end (never beyond the grant's expiry): the live time actually
  watched;
- started and not ended, or issued and not yet expired: from its start (or issue) to its expiry,
  since it may yet run that long (so two grants cannot together overrun a cap);
- expired without being redeemed: nothing.

Because the log is the only source, the figures are the same in every process sharing the log
and after a restart (a new ledger reads the log from the start).
"""

from __future__ import annotations

import json
import threading
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import attrs

from camgate.models import Scope
from camgate.rules import LiveAllowance, LiveCaps
from camgate.vocab import AuditKind

if TYPE_CHECKING:
    from camgate.audit import AuditLog

__all__ = ["LiveLedger", "LiveUse"]

_DAY = timedelta(days=1)
_WEEK = timedelta(days=7)


@attrs.define
class LiveUse:
    """One live grant as the log tells it."""

    grant_id: str
    camera_id: str
    incident_id: str
    officer: str
    issued_at: datetime
    expires_at: datetime
    started_at: datetime | None = None
    ended_at: datetime | None = None

    def span(self, now: datetime) -> tuple[datetime, datetime] | None:
        """The stretch of time this grant is charged for at ``now`` (see the module)."""
        if self.ended_at is not None:
            start = self.started_at or self.ended_at
            return start, max(start, min(self.ended_at, self.expires_at))
        if self.started_at is not None:
            return self.started_at, max(self.started_at, self.expires_at)
        if now < self.expires_at:
            return self.issued_at, self.expires_at
        return None

    def charged(self, now: datetime, since: datetime | None = None) -> float:
        """Seconds charged at ``now``, counting only time after ``since`` (None: all)."""
        span = self.span(now)
        if span is None:
            return 0.0
        start, end = span
        if since is not None:
            start = max(start, since)
        return max(0.0, (end - start).total_seconds())


class LiveLedger:
    """The live grants of an audit log, kept up to date by reading only records it has not
    seen (:meth:`refresh`), and the live time used under each cap (:meth:`allowance`)."""

    def __init__(self, audit: AuditLog) -> None:
        self._audit = audit
        self._seen = 0
        self._lock = threading.Lock()
        self._officers: dict[str, str] = {}  # live request id -> officer
        self.grants: dict[str, LiveUse] = {}
        self._by_incident: dict[str, list[LiveUse]] = {}
        self._by_officer: dict[str, list[LiveUse]] = {}
        self._by_camera: dict[str, list[LiveUse]] = {}

    def refresh(self) -> None:
        """Read the audit records appended since the last refresh (any process's)."""
        with self._lock:
            if self._audit.last_seq() <= self._seen:
                return  # nothing new: no read connection opened
            for seq, _at, kind, body, *_rest in self._audit.backend.rows(self._seen):
                self._seen = max(self._seen, seq)
                if kind in _WATCHED:
                    self._take(kind, json.loads(body), _at)

    def _take(self, kind: str, body: dict[str, object], at: str) -> None:
        if kind == AuditKind.DECISION:
            request = body.get("request")
            if isinstance(request, dict) and request.get("scope") == Scope.LIVE:
                self._officers[str(request["id"])] = str(request.get("requested_by", ""))
        elif kind == AuditKind.GRANT_ISSUED:
            if body.get("scope") != Scope.LIVE:
                return
            use = LiveUse(
                grant_id=str(body["id"]),
                camera_id=str(body["camera_id"]),
                incident_id=str(body["incident_id"]),
                officer=self._officers.pop(str(body["request_id"]), ""),
                issued_at=datetime.fromisoformat(str(body["issued_at"])),
                expires_at=datetime.fromisoformat(str(body["expires_at"])),
            )
            self.grants[use.grant_id] = use
            self._by_incident.setdefault(use.incident_id, []).append(use)
            self._by_officer.setdefault(use.officer, []).append(use)
            self._by_camera.setdefault(use.camera_id, []).append(use)
        else:
            grant = body.get("grant")  # access.start holds the grant, access.end its id
            found = self.grants.get(str(grant.get("id") if isinstance(grant, dict) else grant))
            if found is None:
                return
            moment = datetime.fromisoformat(at)
            if kind == AuditKind.ACCESS_START and found.started_at is None:
                found.started_at = moment
            elif kind == AuditKind.ACCESS_END and found.ended_at is None:
                found.ended_at = moment

    def allowance(
        self, caps: LiveCaps, *, incident_id: str, officer: str, camera_id: str, now: datetime
    ) -> LiveAllowance:
        """The live time used and left at ``now`` under each cap in ``caps`` for a request
        by ``officer`` for ``camera_id`` under ``incident_id``; reads new records first."""
        self.refresh()
        with self._lock:
            return self._allowance(caps, incident_id, officer, camera_id, now)

    def _allowance(
        self, caps: LiveCaps, incident_id: str, officer: str, camera_id: str, now: datetime
    ) -> LiveAllowance:
        found: list[tuple[str, float, float]] = []
        if caps.per_incident_s is not None:
            used = sum(u.charged(now) for u in self._by_incident.get(incident_id, ()))
            found.append(("this incident", caps.per_incident_s, used))
        if caps.per_officer_day_s is not None:
            used = _used_since(self._by_officer, officer, now, now - _DAY)
            found.append((f"{officer} in the last 24 h", caps.per_officer_day_s, used))
        if caps.per_camera_week_s is not None:
            used = _used_since(self._by_camera, camera_id, now, now - _WEEK)
            found.append(("this camera in the last 7 days", caps.per_camera_week_s, used))
        return LiveAllowance(tuple(found))


def _used_since(index: dict[str, list[LiveUse]], key: str, now: datetime, since: datetime) -> float:
    """Seconds charged after ``since`` to the grants of ``key`` in ``index``. Grants that ended
    (or expired) more than a week ago are dropped from the index: no rolling window reaches
    them again."""
    uses = index.get(key)
    if not uses:
        return 0.0
    horizon = now - _WEEK
    kept = [u for u in uses if (span := u.span(now)) is not None and span[1] > horizon]
    if len(kept) != len(uses):
        index[key] = kept
    return sum(u.charged(now, since) for u in kept)


_WATCHED = frozenset(
    {AuditKind.DECISION, AuditKind.GRANT_ISSUED, AuditKind.ACCESS_START, AuditKind.ACCESS_END}
)
