"""What happened, read back from the audit log: requests and their outcome, accesses, exports,
revocations, notices, enrolments, deletions and holds.

:func:`collect` is a pure function of audit records, so the owner's history (their slice of
the log) and the transparency report (the whole log, or an export of it) are built the same
way, and anyone holding the records can rebuild them. It reads only what the gate writes (see
docs/audit.md for the record kinds).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

import attrs

from camgate.audit import AuditLog, AuditRecord
from camgate.errors import NotFound
from camgate.store import Store
from camgate.vocab import AuditKind

__all__ = ["Activity", "RequestView", "collect", "owner_history"]

#: Outcomes of a request: granted, refused, no answer (an ask-first request that expired),
#: or still waiting for the owner.
GRANTED, REFUSED, NO_ANSWER, WAITING = "granted", "refused", "no-answer", "waiting"


@attrs.define
class RequestView:
    """One access request as the log tells it, with what followed from it."""

    id: str
    at: datetime
    camera: str
    scope: str
    incident: str
    requested_by: str
    purpose: str
    duration_s: float
    outcome: str = WAITING
    reasons: list[str] = attrs.Factory(list)
    asked_owner: bool = False
    answer: str | None = None
    decided_at: datetime | None = None
    incident_kind: str | None = None
    distance_m: float | None = None
    grant: str | None = None
    access: dict[str, Any] | None = None
    exports: list[dict[str, Any]] = attrs.Factory(list)

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form."""
        data = attrs.asdict(self)
        data["at"] = self.at.isoformat()
        data["decided_at"] = self.decided_at.isoformat() if self.decided_at else None
        return data


@attrs.define
class Activity:
    """Everything :func:`collect` found, keyed for lookups."""

    requests: dict[str, RequestView] = attrs.Factory(dict)
    incidents: dict[str, dict[str, Any]] = attrs.Factory(dict)
    grants: dict[str, str] = attrs.Factory(dict)  # grant id -> request id
    accesses: dict[str, dict[str, Any]] = attrs.Factory(dict)  # by grant id
    clips: list[dict[str, Any]] = attrs.Factory(list)
    exports: list[dict[str, Any]] = attrs.Factory(list)
    deletions: list[dict[str, Any]] = attrs.Factory(list)
    revocations: list[dict[str, Any]] = attrs.Factory(list)
    removals: list[dict[str, Any]] = attrs.Factory(list)
    notices: list[dict[str, Any]] = attrs.Factory(list)
    enrolments: list[dict[str, Any]] = attrs.Factory(list)
    holds: list[dict[str, Any]] = attrs.Factory(list)


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _request(body: dict[str, Any], at: datetime) -> RequestView:
    return RequestView(
        id=body["id"],
        at=_time(body.get("requested_at", at.isoformat())),
        camera=body["camera_id"],
        scope=body["scope"],
        incident=body["incident_id"],
        requested_by=body.get("requested_by", ""),
        purpose=body.get("purpose", ""),
        duration_s=float(body.get("duration_s", 0.0)),
    )


def _decided(view: RequestView, decision: dict[str, Any], at: datetime) -> None:
    votes = decision.get("votes", [])
    view.decided_at = at
    view.reasons = [v["reason"] for v in votes if v["verdict"] == "deny"]
    if decision.get("allowed"):
        view.outcome = GRANTED
    elif (
        view.asked_owner and view.answer is None and [v["policy"] for v in votes] == ["terms.mode"]
    ):
        view.outcome = NO_ANSWER  # held, never answered, refused at the deadline
    else:
        view.outcome = REFUSED


def collect(records: Iterable[AuditRecord]) -> Activity:
    """Read records (in log order) into an :class:`Activity`. Unknown kinds are skipped."""
    act = Activity()
    for r in records:
        at, body = _time(r.at), r.body
        kind = r.kind
        if kind == AuditKind.INCIDENT_REPORTED:
            pos = body.get("position", {})
            act.incidents[body["id"]] = {
                "kind": body["kind"],
                "lat": pos.get("lat"),
                "lon": pos.get("lon"),
            }
        elif kind == AuditKind.REQUEST_HELD:
            view = act.requests.setdefault(body["request"]["id"], _request(body["request"], at))
            view.asked_owner = True
        elif kind == AuditKind.OWNER_ANSWERED:
            if body.get("request") in act.requests:
                act.requests[body["request"]].answer = body.get("answer")
        elif kind == AuditKind.DECISION:
            req = body["request"]
            view = act.requests.setdefault(req["id"], _request(req, at))
            _decided(view, body["decision"], at)
        elif kind == AuditKind.GRANT_ISSUED:
            act.grants[body["id"]] = body["request_id"]
            if body["request_id"] in act.requests:
                act.requests[body["request_id"]].grant = body["id"]
        elif kind == AuditKind.ACCESS_START:
            grant = body["grant"]
            act.accesses[grant["id"]] = {
                "grant": grant["id"],
                "camera": body.get("camera", grant.get("camera_id")),
                "scope": grant.get("scope"),
                "started_at": at,
                "ended_at": None,
                "seconds": None,
            }
        elif kind == AuditKind.ACCESS_END:
            access = act.accesses.get(body.get("grant", ""))
            if access is not None:
                access["ended_at"] = at
                access["seconds"] = (at - access["started_at"]).total_seconds()
                access |= {k: body.get(k) for k in ("packets", "bytes", "reason")}
                if "sha256" in body:
                    access["sha256"] = body["sha256"]
        elif kind == AuditKind.CLIP_EXPORTED:
            act.clips.append(body | {"at": at})
        elif kind == AuditKind.ARTIFACT_REGISTERED:
            act.exports.append(dict(body))
        elif kind == AuditKind.RETENTION_DELETED:
            act.deletions.append(body | {"at": at})
        elif kind == AuditKind.CAMERA_REMOVED:
            act.removals.append({"at": at, "cameras": [body.get("camera")]})
        elif kind == AuditKind.CONSENT_REVOKED:
            act.revocations.append(
                {"at": at, "owner": body.get("owner"), "cameras": body.get("cameras", [])}
            )
        elif kind in (AuditKind.OWNER_NOTIFIED, AuditKind.OWNER_NOTIFY_FAILED):
            act.notices.append(body | {"at": at, "delivered": kind == AuditKind.OWNER_NOTIFIED})
            told = act.requests.get(body.get("request_id", ""))
            if told is not None:
                told.incident_kind = told.incident_kind or body.get("incident_kind") or None
                if body.get("distance_m") is not None:
                    told.distance_m = float(body["distance_m"])
        elif kind == AuditKind.CONSENT_ENROLLED:
            act.enrolments.append(body | {"at": at})
        elif kind in (AuditKind.HOLD_PLACED, AuditKind.HOLD_RELEASED):
            act.holds.append(body | {"at": at, "kind": kind})
    _link(act)
    return act


def _link(act: Activity) -> None:
    """Attach accesses and exports to their requests; fill incident kinds from the incidents."""
    deleted = {d["artifact"]: d for d in act.deletions}
    for view in act.requests.values():
        if view.incident_kind is None and view.incident in act.incidents:
            view.incident_kind = act.incidents[view.incident]["kind"]
        if view.grant is not None and view.grant in act.accesses:
            access = act.accesses[view.grant]
            view.access = {
                k: v.isoformat() if isinstance(v, datetime) else v for k, v in access.items()
            }
    by_grant = {v.grant: v for v in act.requests.values() if v.grant}
    for export in act.exports:
        gone = deleted.get(export.get("artifact", ""))
        item = {
            k: export.get(k)
            for k in ("artifact", "kind", "path", "sha256", "size", "created_at", "expires_at")
        }
        item["deleted_at"] = gone["at"].isoformat() if gone else None
        owner_of = by_grant.get(str(export.get("grant")))
        if owner_of is not None:
            owner_of.exports.append(item)


def owner_history(store: Store, audit: AuditLog, owner_id: str) -> dict[str, Any]:
    """Every access to ``owner_id``'s cameras, with what was exported, revocations and notices.

    Built from the owner's slice of the audit log (the records tagged with the owner when they
    were written: nothing about another owner's cameras is read) plus incident kinds from the
    store. Raises NotFound for an unknown owner.
    """
    owner = store.get_owner(owner_id)
    act = collect(r for r in audit.records() if owner.id in r.owners)
    for view in act.requests.values():
        if view.incident_kind is None:
            try:
                view.incident_kind = store.get_incident(view.incident).kind
            except NotFound:
                view.incident_kind = None
    requests = sorted(act.requests.values(), key=lambda v: (v.at, v.id))
    outcomes = [v.outcome for v in requests]
    accessed = [v.access for v in requests if v.access and v.access.get("seconds") is not None]
    return {
        "owner": owner.id,
        "name": owner.name,
        "summary": {
            "requests": len(requests),
            GRANTED: outcomes.count(GRANTED),
            REFUSED: outcomes.count(REFUSED),
            NO_ANSWER: outcomes.count(NO_ANSWER),
            WAITING: outcomes.count(WAITING),
            "access_seconds": round(sum(a["seconds"] for a in accessed), 3),
            "exports": len(act.exports),
            "deleted": len(act.deletions),
            "revocations": len(act.revocations),
            "notifications": len(act.notices),
        },
        "requests": [v.to_json() for v in requests],
        "revocations": [
            {"at": r["at"].isoformat(), "cameras": r["cameras"]} for r in act.revocations
        ],
        "notifications": [
            {
                "at": n["at"].isoformat(),
                "event": n.get("event"),
                "camera": n.get("camera_id"),
                "request": n.get("request_id") or None,
                "delivered": n["delivered"],
            }
            for n in act.notices
        ],
    }
