"""An incident's map: every candidate camera decided in one pass, each with its outcome and reasons.

:meth:`camgate.gate.Gate.survey` finds the cameras in the incident's zones (the spatial index and
every zone source, as :meth:`~camgate.gate.Gate.sightings`), loads their facts at one validation
of the fact cache, and judges each exactly as :meth:`~camgate.gate.Gate.decide` would judge a
request for it (core invariants, geofences, every consent policy). A survey grants nothing and
opens no media: it is recorded as one ``survey`` audit record with its counts (docs/audit.md).
"""

from __future__ import annotations

import enum
from collections import Counter
from datetime import datetime
from typing import Any

import attrs

from camgate.geofence.survey import Sighting
from camgate.models import Decision, Scope, Verdict

__all__ = ["Outcome", "Survey", "SurveyRow"]


class Outcome(enum.StrEnum):
    """What a request for one camera would meet now."""

    ALLOWED = "allowed"  #: granted at once (the owner pre-authorised it)
    ASK = "ask"  #: every term holds; the owner is asked first (ask-first consent)
    DENIED = "denied"  #: refused, with every reason


def _rows(value: Any) -> tuple[SurveyRow, ...]:
    return tuple(value)


@attrs.frozen
class SurveyRow:
    """One candidate camera of a survey: where it sees from, the decision, the outcome."""

    sighting: Sighting
    decision: Decision
    outcome: Outcome

    @property
    def camera_id(self) -> str:
        """The camera's id."""
        return self.decision.camera_id

    @property
    def reasons(self) -> list[str]:
        """Why the camera is refused (every deny, ``policy: reason``), or for an ask-first
        camera why the owner is asked; empty when allowed."""
        if self.outcome is Outcome.ALLOWED:
            return []
        wanted = Verdict.DENY if self.outcome is Outcome.DENIED else Verdict.ABSTAIN
        return [f"{v.policy}: {v.reason}" for v in self.decision.votes if v.verdict is wanted]

    def to_json(self) -> dict[str, Any]:
        """The sighting's JSON (position, view, geofence votes) with ``outcome``,
        ``outcome_reasons`` and the decision's ``decision_votes``."""
        return self.sighting.to_json() | {
            "outcome": str(self.outcome),
            "outcome_reasons": self.reasons,
            "decision_votes": self.decision.to_json()["votes"],
        }


@attrs.frozen
class Survey:
    """The outcome for every candidate camera of one incident, for one scope and purpose.

    ``rows`` come as :meth:`camgate.gate.Gate.sightings` ranks them (reachable by the
    geofences first, best view first). ``at`` is the moment judged.
    """

    incident_id: str
    scope: Scope
    purpose: str
    at: datetime
    rows: tuple[SurveyRow, ...] = attrs.field(converter=_rows)

    @property
    def counts(self) -> dict[str, int]:
        """``candidates`` and how many rows have each outcome."""
        by = Counter(row.outcome for row in self.rows)
        return {"candidates": len(self.rows)} | {str(o): by.get(o, 0) for o in Outcome}

    def audit_body(self, requested_by: str) -> dict[str, Any]:
        """The body of the survey's one ``survey`` audit record: who asked, about what, the
        counts (no per-camera rows: a survey opens no camera)."""
        return {
            "incident": self.incident_id,
            "scope": str(self.scope),
            "purpose": self.purpose,
            "requested_by": requested_by,
            "at": self.at.isoformat(),
            **self.counts,
        }

    def to_json(self) -> dict[str, Any]:
        """JSON for a map: the incident, the counts and every row (:meth:`SurveyRow.to_json`)."""
        return {
            "incident": self.incident_id,
            "scope": str(self.scope),
            "purpose": self.purpose,
            "at": self.at.isoformat(),
            "counts": self.counts,
            "cameras": [row.to_json() for row in self.rows],
        }
