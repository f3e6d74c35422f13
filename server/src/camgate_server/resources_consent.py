"""The resources of consent and record: waivers, enrolments and terms, masks, access requests
and their grants, audit verification, an owner's audit slice with its proof, the transparency
report, and the lists of owners and incidents.

Every route names its action (:mod:`camgate_server.policy`) and calls the gate's public API. An
owner reaches only their own: another owner's camera or request is 404, as if it did not exist.
"""

from __future__ import annotations

import hashlib
from typing import Annotated, Any

from camgate.audit import verify_owner_slice
from camgate.codec import dump, load
from camgate.errors import AuditError, NotFound
from camgate.models import ConsentRecord, ConsentTerms, PrivacyMask, Waiver
from camgate.report import Period, build_report
from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from camgate_server import problems
from camgate_server.accounts import Caller
from camgate_server.app import (
    _gate,
    _incident_json,
    _own_owner,
    _owner_json,
    _thread,
    grant_json,
    require,
    visible_camera,
)
from camgate_server.downloads import NO_STORE
from camgate_server.policy import Action

__all__ = ["router"]

router = APIRouter(responses=problems.RESPONSES)


# ---------------------------------------------------------------------- owners and incidents


@router.get("/owners", tags=["owners"])
async def list_owners(
    request: Request, caller: Annotated[Caller, Depends(require(Action.OWNERS_READ))]
) -> dict[str, Any]:
    """Every owner, in id order (admin, auditor)."""
    owners = await _thread(_gate(request).store.owners)
    return {"owners": [_owner_json(o) for o in owners]}


@router.get("/incidents", tags=["incidents"])
async def list_incidents(
    request: Request,
    caller: Annotated[Caller, Depends(require(Action.INCIDENTS_READ))],
    status: Annotated[str | None, Query(pattern="^(open|closed)$")] = None,
) -> dict[str, Any]:
    """Every incident, oldest report first; ``?status=open`` or ``closed`` keeps those."""
    found = await _thread(_gate(request).store.incidents)
    return {
        "incidents": [_incident_json(i) for i in found if status is None or str(i.status) == status]
    }


# ---------------------------------------------------------------------- waivers


class WaiverBody(BaseModel):
    """A waiver version to publish: its text can never change (a new text, a new version)."""

    model_config = ConfigDict(extra="forbid")
    version: str = Field(min_length=1, max_length=64)
    text: str = Field(min_length=1, max_length=100_000)


def _waiver_json(waiver: Waiver) -> dict[str, Any]:
    return {"version": waiver.version, "sha256": waiver.sha256, "text": waiver.text}


@router.get("/waivers", tags=["consent"])
async def waivers(
    request: Request, caller: Annotated[Caller, Depends(require(Action.WAIVERS_READ))]
) -> dict[str, Any]:
    """Every published waiver, oldest first, with the SHA-256 an owner accepts it by."""
    found = await _thread(_gate(request).store.waivers)
    return {"waivers": [_waiver_json(w) for w in found]}


@router.post("/waivers", status_code=201, tags=["consent"])
async def publish_waiver(
    body: WaiverBody,
    request: Request,
    caller: Annotated[Caller, Depends(require(Action.WAIVERS_PUBLISH))],
) -> dict[str, Any]:
    """Publish a waiver version (admin); audited. Another text under an existing version is
    422."""
    waiver = await _thread(_gate(request).publish_waiver, Waiver(body.version, body.text))
    return _waiver_json(waiver)


# ---------------------------------------------------------------------- enrolments and terms


class EnrolBody(BaseModel):
    """An owner's enrolment: cameras, the waiver they read (version and the SHA-256 of the text
    they were shown), and their terms (camgate.models.ConsentTerms' fields)."""

    model_config = ConfigDict(extra="forbid")
    cameras: list[Annotated[str, Field(max_length=64)]] = Field(min_length=1, max_length=1000)
    waiver_version: str = Field(min_length=1, max_length=64)
    waiver_sha256: str = Field(pattern="^[0-9a-f]{64}$")
    terms: dict[str, Any]


def _consent_json(record: ConsentRecord) -> dict[str, Any]:
    return dump(record)


@router.get("/owners/me/enrolments", tags=["consent"])
async def my_enrolments(
    request: Request, caller: Annotated[Caller, Depends(require(Action.OWN_CONSENT))]
) -> dict[str, Any]:
    """The calling owner's consent records (their terms, revoked or not), oldest first; the
    newest unrevoked one covering a camera is the one that stands."""
    owner_id = _own_owner(caller)
    found = await _thread(_gate(request).store.consents, owner_id)
    return {"owner": owner_id, "enrolments": [_consent_json(c) for c in found]}


@router.post("/owners/me/enrolments", status_code=201, tags=["consent"])
async def enrol(
    body: EnrolBody,
    request: Request,
    caller: Annotated[Caller, Depends(require(Action.OWN_CONSENT))],
) -> dict[str, Any]:
    """Enrol the calling owner's cameras under a waiver and terms, or change their terms: a
    new enrolment of a camera supersedes the one before. Another owner's camera is 404; terms
    that do not validate, or a waiver hash that is not the published text's, are 422."""
    gate = _gate(request)
    owner_id = _own_owner(caller)
    terms = load(ConsentTerms, body.terms)

    def enrolled() -> ConsentRecord:
        for camera_id in body.cameras:
            visible_camera(caller, gate, camera_id)
        return gate.enrol(
            owner_id,
            body.cameras,
            waiver_version=body.waiver_version,
            waiver_sha256=body.waiver_sha256,
            terms=terms,
        )

    return _consent_json(await _thread(enrolled))


@router.get("/owners/{owner_id}/enrolments", tags=["consent"])
async def owner_enrolments(
    owner_id: str,
    request: Request,
    caller: Annotated[Caller, Depends(require(Action.CONSENT_READ))],
) -> dict[str, Any]:
    """An owner's consent records and terms (admin, supervisor, auditor)."""
    gate = _gate(request)
    await _thread(gate.store.get_owner, owner_id)  # NotFound for an unknown owner
    found = await _thread(gate.store.consents, owner_id)
    return {"owner": owner_id, "enrolments": [_consent_json(c) for c in found]}


# ---------------------------------------------------------------------- masks


class MasksBody(BaseModel):
    """Privacy masks: polygons of 3 to 64 corners ``[x, y]`` in normalised image coordinates
    ((0, 0) top left, (1, 1) bottom right), at most 32; none clears them."""

    model_config = ConfigDict(extra="forbid")
    polygons: list[list[tuple[float, float]]] = Field(max_length=32)


def _masks_json(camera_id: str, mask: PrivacyMask | None) -> dict[str, Any]:
    if mask is None:
        return {"camera": camera_id, "polygons": [], "set_at": None, "set_by": None}
    return {
        "camera": camera_id,
        "polygons": [[list(p) for p in poly] for poly in mask.polygons],
        "set_at": mask.set_at.isoformat(),
        "set_by": mask.set_by,
    }


@router.get("/cameras/{camera_id}/masks", tags=["cameras"])
async def masks(
    camera_id: str,
    request: Request,
    caller: Annotated[Caller, Depends(require(Action.CAMERAS_READ))],
) -> dict[str, Any]:
    """A camera's privacy masks (another owner's camera is 404 to an owner)."""
    gate = _gate(request)
    await _thread(visible_camera, caller, gate, camera_id)
    return _masks_json(camera_id, await _thread(gate.masks, camera_id))


@router.put("/cameras/{camera_id}/masks", tags=["cameras"])
async def set_masks(
    camera_id: str,
    body: MasksBody,
    request: Request,
    caller: Annotated[Caller, Depends(require(Action.OWN_MASKS))],
) -> dict[str, Any]:
    """Set (or, with no polygons, clear) the calling owner's camera's masks: audited, and every
    open stream of the camera ends so nothing flows under the old masks."""
    gate = _gate(request)
    owner_id = _own_owner(caller)
    await _thread(visible_camera, caller, gate, camera_id)
    mask = await gate.set_masks(owner_id, camera_id, body.polygons)
    return _masks_json(camera_id, mask)


@router.post(
    "/cameras/{camera_id}/look",
    tags=["cameras"],
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}}, "description": "the JPEG, unmasked"}},
)
async def owner_look(
    camera_id: str,
    request: Request,
    caller: Annotated[Caller, Depends(require(Action.OWN_MASKS))],
) -> Response:
    """The calling owner's own look at their own camera: one JPEG still, without masks, to draw
    the masks on (``Gate.owner_look``). Audited as the owner's (``owner.look``, naming the
    account) before the camera is contacted; never an officer's access. Another owner's camera
    is 404. ``X-Camgate-Sha256`` is the JPEG's hash."""
    gate = _gate(request)
    owner_id = _own_owner(caller)
    await _thread(visible_camera, caller, gate, camera_id)
    snap = await gate.owner_look(owner_id, camera_id, by=caller.account.username)
    headers = NO_STORE | {"X-Camgate-Sha256": hashlib.sha256(snap.jpeg).hexdigest()}
    return Response(snap.jpeg, media_type="image/jpeg", headers=headers)


# ---------------------------------------------------------------------- requests and grants


@router.get("/requests/{request_id}", tags=["requests"])
async def get_request(
    request_id: str,
    request: Request,
    caller: Annotated[Caller, Depends(require(Action.REQUESTS_READ))],
) -> dict[str, Any]:
    """One access request: what was asked, its status (``waiting``, ``granted``, ``refused``),
    the decision with every vote and reason once made, and its grant (never the grant's signed
    token). A request for another owner's camera is 404 to an owner."""
    gate = _gate(request)

    def read() -> dict[str, Any]:
        asked = gate.store.get_request(request_id)
        visible_camera(caller, gate, asked.camera_id)
        try:
            decision = gate.store.decision_json(request_id)
        except NotFound:
            decision = None
        found = gate.store.grant_for_request(request_id)
        grant = None if found is None else grant_json(found[0])
        if decision is None:
            status = "waiting"
        else:
            status = "granted" if decision.get("allowed") and grant is not None else "refused"
        return {
            "request": dump(asked),
            "status": status,
            "decision": decision,
            "grant": grant,
        }

    return await _thread(read)


# ---------------------------------------------------------------------- audit and report


@router.get("/audit/verify", tags=["audit"])
async def verify_audit(
    request: Request, caller: Annotated[Caller, Depends(require(Action.AUDIT_VERIFY))]
) -> dict[str, Any]:
    """Verify the whole audit log (chain, every owner's sub-chain, every checkpoint) against
    the hub's key: ``status`` (``consistent`` when it holds), the first bad record if any."""
    result = await _thread(_gate(request).audit.verify)
    return result.to_json()


def _verified_slice(gate: Any, owner_id: str) -> dict[str, Any]:
    """Sign a checkpoint now, then the owner's records up to it with the Merkle proof of their
    head, and that proof checked against the hub's key."""
    gate.audit.checkpoint()
    piece = gate.audit.owner_slice(owner_id)
    key = gate.audit.public_key
    if key is None:
        raise AuditError("the audit log has no signing key")
    return {"slice": piece.to_json(), "verified": verify_owner_slice(piece, key).to_json()}


@router.get("/owners/me/audit", tags=["audit"])
async def my_audit(
    request: Request, caller: Annotated[Caller, Depends(require(Action.OWN_ACCESSES))]
) -> dict[str, Any]:
    """The calling owner's slice of the audit log, to now, with its proof (a signed
    checkpoint and the Merkle path of their head) and the server's check of it. The owner can
    check it again offline with ``camgate audit verify --slice`` and the hub's key."""
    return await _thread(_verified_slice, _gate(request), _own_owner(caller))


@router.get("/owners/{owner_id}/audit", tags=["audit"])
async def owner_audit(
    owner_id: str,
    request: Request,
    caller: Annotated[Caller, Depends(require(Action.AUDIT_VERIFY))],
) -> dict[str, Any]:
    """An owner's slice of the audit log with its proof (admin, supervisor, auditor)."""
    gate = _gate(request)
    await _thread(gate.store.get_owner, owner_id)
    return await _thread(_verified_slice, gate, owner_id)


@router.get("/report", tags=["audit"])
async def report(
    request: Request,
    caller: Annotated[Caller, Depends(require(Action.REPORT_READ))],
    period: Annotated[
        str,
        Query(
            pattern=r"^[0-9]{4}(-(0[1-9]|1[0-2])|-[Qq][1-4])?$",
            description="YYYY-MM, YYYY-Qn or YYYY",
        ),
    ],
    k: Annotated[int, Query(ge=1, le=100, description="suppress counts below k")] = 5,
) -> dict[str, Any]:
    """The transparency report for a period as JSON: counts only, no owner identity, counts
    below ``k`` suppressed. The log is verified first; one that does not verify is 503
    ``AuditError``, no report."""
    gate = _gate(request)
    span = Period.parse(period)

    def made() -> dict[str, Any]:
        verified = gate.audit.verify()
        if not verified.ok:
            raise AuditError(f"the audit log does not verify ({verified.status}); no report")
        records = [r for r in gate.audit.records() if r.seq <= verified.records]
        return build_report(records, span, k=k, verified=verified)

    return await _thread(made)
