"""Which cameras an incident may reach, ranked by how well they see it, each with its reasons.

:func:`survey` asks every zone source for its extent (``camgate_geofence_extent``), finds the
indexed cameras that may lie in any of them, keeps those that really do (the exact geodesic
test), and has every geofence plugin vote on each. The result is a list of :class:`Sighting`:
reachable cameras first, best view first; then the others, nearest first, with their reasons.

A camera that no zone's extent touches is not listed; ``Gate.decide`` still asks every plugin
about any camera, so a zone source that allows cameras outside the extent it declares is obeyed
there, but its cameras are missing from listings. Declare your extent.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import attrs
import numpy as np

from camgate.geofence.geodesy import inverse
from camgate.geofence.index import CameraIndex
from camgate.geofence.shapes import Shape
from camgate.geofence.view import has_fov, view_of
from camgate.models import Camera, Incident, Verdict, Vote

__all__ = ["Sighting", "survey"]


def _votes(value: Sequence[Vote]) -> tuple[Vote, ...]:
    return tuple(value)


@attrs.frozen
class Sighting:
    """One camera near an incident: where it is, whether it sees the place, and every vote.

    ``distance_m`` and ``bearing_deg`` go from the incident to the camera. ``fov_covers`` is
    None for a camera without a field of view. ``score`` (0 to 1) ranks how well the camera sees
    the incident: nearer and closer to its axis is better; a camera whose field of view is known
    to cover the place ranks above one whose field of view is unknown. ``why`` says so in words.
    """

    camera: Camera
    votes: tuple[Vote, ...] = attrs.field(converter=_votes)
    distance_m: float
    bearing_deg: float
    fov_covers: bool | None
    off_axis_deg: float | None
    score: float
    why: str

    @property
    def reachable(self) -> bool:
        """No geofence denies and at least one allows."""
        return not any(v.verdict is Verdict.DENY for v in self.votes) and any(
            v.verdict is Verdict.ALLOW for v in self.votes
        )

    @property
    def status(self) -> str:
        """``reachable``, ``excluded`` (a geofence denied), ``out_of_view`` or ``out_of_zone``."""
        if self.reachable:
            return "reachable"
        if any(v.verdict is Verdict.DENY and v.policy != "core.geofence" for v in self.votes):
            return "excluded"
        if self.fov_covers is False:
            return "out_of_view"
        return "out_of_zone"

    @property
    def reasons(self) -> list[str]:
        """Why the camera is not reachable (``policy: reason``); empty when it is."""
        if self.reachable:
            return []
        denials = [v for v in self.votes if v.verdict is Verdict.DENY]
        said = denials or [v for v in self.votes if v.verdict is Verdict.ABSTAIN]
        return [f"{v.policy}: {v.reason}" for v in said]

    def to_json(self) -> dict[str, Any]:
        """The row ``camgate geofence query --json`` prints for this camera."""
        return {
            "camera": self.camera.id,
            "lat": self.camera.position.lat,
            "lon": self.camera.position.lon,
            "distance_m": round(self.distance_m, 1),
            "bearing_deg": round(self.bearing_deg, 1),
            "has_fov": has_fov(self.camera),
            "fov_covers": self.fov_covers,
            "off_axis_deg": None if self.off_axis_deg is None else round(self.off_axis_deg, 1),
            "reachable": self.reachable,
            "status": self.status,
            "score": round(self.score, 3),
            "why": self.why,
            "reasons": self.reasons,
            "votes": [
                {"policy": v.policy, "verdict": str(v.verdict), "reason": v.reason}
                for v in self.votes
            ],
        }


def _score(
    camera: Camera, incident: Incident, dist: float
) -> tuple[float, bool | None, float | None, str]:
    view = view_of(camera, incident.position)
    if view.covers is None:
        score = 0.5 * max(0.0, 1.0 - dist / incident.radius_m)
        return score, None, None, f"{dist:.0f} m away; no field of view known, ranked by distance"
    off = view.off_axis_deg or 0.0
    assert camera.fov_deg is not None
    half = camera.fov_deg / 2.0
    if not view.covers:
        return 0.0, False, off, f"{dist:.0f} m away, looking elsewhere ({off:.0f}° off its axis)"
    reach = camera.range_m or max(incident.radius_m, dist, 1.0)
    score = 0.5 + 0.25 * max(0.0, 1.0 - dist / reach) + 0.25 * max(0.0, 1.0 - off / max(half, 1e-9))
    return score, True, off, f"sees the incident {dist:.0f} m away, {off:.0f}° off its axis"


def survey(
    incident: Incident,
    index: CameraIndex,
    extents: Sequence[Shape],
    vote: Callable[[Camera], list[Vote]],
) -> list[Sighting]:
    """Every indexed camera inside one of ``extents``, voted on and ranked.

    ``vote`` returns a camera's geofence votes (the gate passes its own, which adds the
    ``core.geofence`` deny when no zone allows).
    """
    parts = [shape.candidates(index) for shape in extents]
    slots = np.unique(np.concatenate(parts)) if parts else np.zeros(0, np.int64)
    lat, lon = index.lat[slots], index.lon[slots]
    inside = np.zeros(len(slots), bool)
    for shape in extents:
        inside |= shape.contains(lat, lon)
    slots = slots[inside]
    p = incident.position
    bearing, dist = inverse(p.lat, p.lon, index.lat[slots], index.lon[slots])
    rows: list[Sighting] = []
    for slot, d, b in zip(slots.tolist(), dist.tolist(), bearing.tolist(), strict=True):
        camera = index.camera(slot)
        if camera is None:
            continue
        score, covers, off, why = _score(camera, incident, d)
        rows.append(Sighting(camera, vote(camera), d, b, covers, off, score, why))
    rows.sort(key=lambda s: (not s.reachable, -s.score if s.reachable else s.distance_m))
    return rows
