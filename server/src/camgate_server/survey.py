"""The incident map: ``GET /incidents/{id}/cameras`` surveys an incident's cameras in one pass.

It is :meth:`camgate.Gate.survey` over HTTP: every candidate camera of the incident's zones,
judged as a request for it would be judged now (``allowed``, ``ask`` — the owner is asked
first — or ``denied``), each with its reasons in words. A survey grants nothing and opens no
camera; the gate writes ONE ``survey`` audit record with the counts, naming the caller as
``requested_by``, before the answer is sent (docs/audit.md).

Staff who read incidents (admin, operator, supervisor, auditor) may survey; an owner may not
(403: an owner never sees the crime map at large, docs/api.md).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import anyio.to_thread
from camgate import Gate
from camgate.models import DEFAULT_PURPOSE, Scope
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse

from camgate_server import problems
from camgate_server.accounts import Caller
from camgate_server.app import require
from camgate_server.parsing import parse_window
from camgate_server.policy import Action

__all__ = ["router", "survey_geojson"]

router = APIRouter(responses=problems.RESPONSES)


def survey_geojson(body: dict[str, Any]) -> dict[str, Any]:
    """A survey's JSON (as ``GET /incidents/{id}/cameras`` answers it) as a GeoJSON
    FeatureCollection: one Point feature per camera (``id`` the camera, every other field of the
    row a property), and the survey's own fields as foreign members (RFC 7946 §6.1)."""
    features = [
        {
            "type": "Feature",
            "id": row["camera"],
            "geometry": {"type": "Point", "coordinates": [row["lon"], row["lat"]]},
            "properties": {k: v for k, v in row.items() if k not in ("lat", "lon")},
        }
        for row in body["cameras"]
    ]
    members = {k: v for k, v in body.items() if k != "cameras"}
    return {"type": "FeatureCollection", "features": features, **members}


@router.get(
    "/incidents/{incident_id}/cameras",
    tags=["incidents"],
    responses={200: {"content": {"application/geo+json": {}}}},
)
async def incident_cameras(
    incident_id: str,
    request: Request,
    caller: Annotated[Caller, Depends(require(Action.INCIDENTS_READ))],
    scope: Annotated[Scope, Query(description="the scope a request would ask for")] = Scope.LIVE,
    purpose: Annotated[
        str, Query(max_length=200, description="one of the agency's purposes")
    ] = DEFAULT_PURPOSE,
    duration_s: Annotated[float, Query(gt=0, le=86400.0)] = 60.0,
    format: Annotated[Literal["json", "geojson"] | None, Query()] = None,
    start: Annotated[
        datetime | None, Query(alias="from", description="recorded: the window's start")
    ] = None,
    end: Annotated[datetime | None, Query(alias="to", description="recorded: its end")] = None,
) -> JSONResponse:
    """The incident's map: every candidate camera with its outcome (``allowed``, ``ask``,
    ``denied``) and, for every camera not allowed at once, the reasons (``outcome_reasons``,
    ``policy: reason`` each; ``decision_votes`` has every vote). ``area`` is the incident's
    point and radius, ``purposes`` the agency's list a request may name, ``counts`` the
    outcomes. GeoJSON with ``?format=geojson`` or ``Accept: application/geo+json``. For
    ``scope=recorded``, ``from`` and ``to`` (ISO 8601 with a time zone) are the footage's
    window, as a request would give them (without them, 422).

    One ``survey`` audit record (the counts, the caller as ``requested_by``) is durable before
    the answer; nothing is granted and no camera is contacted. 404 for an unknown incident,
    422 for a malformed scope, purpose or duration; a purpose outside the agency's list is
    not an error but a reason on every camera (the gate's policies refuse it)."""
    gate: Gate = request.app.state.gate
    window = parse_window(start, end)

    def surveyed() -> dict[str, Any]:
        incident = gate.store.get_incident(incident_id)
        result = gate.survey(
            incident,
            scope=scope,
            purpose=purpose,
            duration_s=duration_s,
            requested_by=caller.account.id,
            window=window,
        )
        return result.to_json() | {
            "area": {
                "lat": incident.position.lat,
                "lon": incident.position.lon,
                "radius_m": incident.radius_m,
            },
            "kind": incident.kind,
            "status": str(incident.status),
            "purposes": sorted(gate.rules.purposes),
        }

    body = await anyio.to_thread.run_sync(surveyed)
    geo = format == "geojson" or (
        format is None and "application/geo+json" in request.headers.get("accept", "")
    )
    if geo:
        return JSONResponse(survey_geojson(body), media_type="application/geo+json")
    return JSONResponse(body)
