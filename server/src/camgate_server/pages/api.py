"""What the pages need that the JSON API does not have yet: INTERIM routes under ``/pages/api``.

The HTTP API's waiver, enrolment/terms and request resources are being built (issue #18);
until they land the pages call these few routes, each a thin call of the gate's public API
behind the same authentication, policy table and CSRF check as every route. When the API's own
resources exist, the pages' ``API`` table (static/common.js) points at them and this module
goes. Not in the OpenAPI document: they are the pages' plumbing, not a promise to agencies.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import anyio.to_thread
from camgate import Gate
from camgate.errors import NotFound
from camgate.models import ConsentRecord, ConsentTerms, Scope
from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from camgate_server.accounts import Caller
from camgate_server.app import require
from camgate_server.errors import Forbidden
from camgate_server.policy import Action, Role

__all__ = ["EnrolBody", "request_status", "router"]

router = APIRouter(prefix="/pages/api", include_in_schema=False)


def _gate(request: Request) -> Gate:
    gate: Gate = request.app.state.gate
    return gate


def _owner(caller: Caller) -> str:
    if caller.account.role is not Role.OWNER or caller.account.owner_id is None:
        raise Forbidden("only an owner has an owner's own cameras")
    return caller.account.owner_id


def _consent_json(record: ConsentRecord | None) -> dict[str, Any] | None:
    if record is None:
        return None
    terms = record.terms
    kinds = None if terms.incident_kinds is None else sorted(terms.incident_kinds)
    return {
        "id": record.id,
        "waiver_version": record.waiver_version,
        "waiver_sha256": record.waiver_sha256,
        "accepted_at": record.accepted_at.isoformat(),
        "terms": {
            "mode": str(terms.mode),
            "scopes": sorted(str(s) for s in terms.scopes),
            "ask_timeout_s": terms.ask_timeout_s,
            "max_session_s": terms.max_session_s,
            "max_radius_m": terms.max_radius_m,
            "incident_kinds": kinds,
        },
    }


@router.get("/waiver")
async def current_waiver(
    request: Request, caller: Annotated[Caller, Depends(require(Action.CAMERAS_READ))]
) -> dict[str, Any]:
    """The waiver published last: its version, the SHA-256 of its text, and the text (what an
    owner reads before accepting). 404 when none is published."""
    store = _gate(request).store

    def latest() -> dict[str, Any]:
        rows = store.query("SELECT version FROM waivers ORDER BY rowid DESC LIMIT 1")
        if not rows:
            raise NotFound("no waiver is published yet")
        waiver = store.get_waiver(rows[0][0])
        return {"version": waiver.version, "sha256": waiver.sha256, "text": waiver.text}

    return await anyio.to_thread.run_sync(latest)


@router.get("/my-cameras")
async def my_cameras(
    request: Request, caller: Annotated[Caller, Depends(require(Action.OWN_ACCESSES))]
) -> dict[str, Any]:
    """The calling owner's cameras, each with the consent in force (waiver, terms) or null."""
    store = _gate(request).store
    owner_id = _owner(caller)

    def listing() -> list[dict[str, Any]]:
        return [
            {
                "id": camera.id,
                "label": camera.label,
                "adapter": camera.adapter,
                "position": {"lat": camera.position.lat, "lon": camera.position.lon},
                "consent": _consent_json(store.active_consent(camera.id)),
            }
            for camera in store.cameras(owner_id)
        ]

    return {"owner": owner_id, "cameras": await anyio.to_thread.run_sync(listing)}


class EnrolBody(BaseModel):
    """An owner accepts a waiver (the version and the SHA-256 of the text they were shown) for
    some of their cameras, under their terms."""

    model_config = ConfigDict(extra="forbid")
    cameras: list[str] = Field(min_length=1, max_length=100)
    waiver_version: str = Field(min_length=1, max_length=100)
    waiver_sha256: str = Field(pattern="^[0-9a-f]{64}$")
    mode: Literal["ask", "pre-authorised"]
    scopes: list[Scope] = Field(min_length=1)
    ask_timeout_s: float = Field(default=300.0, ge=1.0, le=7 * 86400.0)


@router.post("/enrol", status_code=201)
async def enrol(
    body: EnrolBody,
    request: Request,
    # Changing one's own consent: the owner-only action that revocation (its inverse) uses.
    caller: Annotated[Caller, Depends(require(Action.OWN_REVOKE))],
) -> dict[str, Any]:
    """Enrol the calling owner's cameras under the waiver and terms (a newer record replaces
    the terms in force). Another owner's camera is 404, as if it did not exist; a SHA-256 that
    is not the published text's is 422 (the owner must see the current text)."""
    gate = _gate(request)
    owner_id = _owner(caller)

    def enrolled() -> ConsentRecord:
        for camera_id in body.cameras:
            if gate.store.get_camera(camera_id).owner_id != owner_id:
                raise NotFound(f"no camera {camera_id!r}")
        terms = ConsentTerms(
            scopes=set(body.scopes), mode=body.mode, ask_timeout_s=body.ask_timeout_s
        )
        return gate.enrol(
            owner_id,
            body.cameras,
            waiver_version=body.waiver_version,
            waiver_sha256=body.waiver_sha256,
            terms=terms,
        )

    record = await anyio.to_thread.run_sync(enrolled)
    return {"cameras": list(record.camera_ids), "consent": _consent_json(record)}


def request_status(gate: Gate, request_id: str, now: datetime) -> dict[str, Any]:
    """Where an access request stands now, in words an officer reads.

    ``status`` is ``waiting`` (with the owner's ``deadline``; also between the owner's yes
    and the grant's issue), ``granted`` (with the grant's
    ``expires_at``), ``ended`` (a granted access the owner revoked or that expired, with the
    ``reason``), ``refused`` (every ``reasons``, ``policy: reason``) or ``no-answer`` (the owner
    let the deadline pass, which counts as no). NotFound for an unknown request."""
    store = gate.store
    asked = store.get_request(request_id)
    body: dict[str, Any] = {
        "request": asked.id,
        "camera": asked.camera_id,
        "incident": asked.incident_id,
        "scope": str(asked.scope),
        "purpose": asked.purpose,
        "requested_at": asked.requested_at.isoformat(),
    }
    try:
        held = store.get_pending(request_id)
    except NotFound:
        held = None
    if held is not None and held.open:
        if now < held.deadline:
            return body | {"status": "waiting", "deadline": held.deadline.isoformat()}
        return body | {"status": "no-answer", "reason": "the owner did not answer in time"}
    if held is not None and held.outcome == "expired":
        return body | {"status": "no-answer", "reason": "the owner did not answer in time"}
    found = store.grant_for_request(request_id)
    if found is not None:
        grant = found[0]
        body["grant"] = {"id": grant.id, "expires_at": grant.expires_at.isoformat()}
        consent = store.get_consent(grant.consent_id) if grant.consent_id else None
        if consent is not None and consent.revoked_at is not None:
            when = consent.revoked_at.isoformat(timespec="seconds")
            return body | {"status": "ended", "reason": f"the owner revoked consent at {when}"}
        if grant.expires_at <= now:
            when = grant.expires_at.isoformat(timespec="seconds")
            return body | {"status": "ended", "reason": f"the grant expired at {when}"}
        return body | {"status": "granted"}
    try:
        decision = store.decision_json(request_id)
    except NotFound:
        decision = {"votes": []}
    reasons = [f"{v['policy']}: {v['reason']}" for v in decision["votes"] if v["verdict"] == "deny"]
    if held is not None and held.outcome == "yes" and not reasons:
        # The owner said yes and the gate is deciding again before it issues the grant.
        return body | {"status": "waiting", "deadline": held.deadline.isoformat()}
    if held is not None and held.outcome == "no":
        reasons = reasons or ["the owner said no"]
    if held is not None and held.outcome == "revoked":
        reasons = reasons or ["the owner revoked consent before answering"]
    return body | {"status": "refused", "reasons": reasons}


@router.get("/requests/{request_id}")
async def get_request_status(
    request_id: str,
    request: Request,
    caller: Annotated[Caller, Depends(require(Action.INCIDENTS_READ))],
) -> dict[str, Any]:
    """Where an access request stands (:func:`request_status`): staff who read incidents."""
    gate = _gate(request)
    return await anyio.to_thread.run_sync(request_status, gate, request_id, gate.clock.now())
