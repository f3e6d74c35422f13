"""Incidents and their cameras: reporting and closing, the geofence, the survey of a whole map.

An incident's zones reach cameras (:meth:`Incidents.sightings`, through the spatial index and
every zone source); :meth:`Incidents.survey` judges each exactly as a request would be judged,
on facts loaded once for the whole set; a new incident warms the edge's GOP cache for the
cameras whose live view the policies pre-authorise now (docs/media.md).
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timedelta

import anyio.from_thread
import attrs

from camgate.codec import dump
from camgate.errors import NotFound
from camgate.facts import DecisionFacts
from camgate.gate.invariants import capability_vote, geofence_votes, incident_vote, window_votes
from camgate.gate.parts import GateParts
from camgate.geofence import Sighting, ZoneBook, survey
from camgate.models import (
    DEFAULT_PURPOSE,
    AccessRequest,
    Camera,
    ConsentMode,
    GeoPoint,
    Incident,
    IncidentStatus,
    Scope,
    Vote,
    new_id,
)
from camgate.plugins import PluginHost
from camgate.policy import needs_approval
from camgate.surveys import Outcome, Survey, SurveyRow
from camgate.vocab import AuditKind

__all__ = ["Incidents", "SurveyVotes"]


class Incidents(GateParts):
    """The incidents part of :class:`~camgate.gate.Gate` (a mixin)."""

    def report_incident(
        self,
        kind: str,
        position: GeoPoint,
        radius_m: float,
        *,
        reported_at: datetime | None = None,
        window_s: float = 12 * 3600.0,
    ) -> Incident:
        """Open an incident; cameras inside its geofence become reachable for its window."""
        incident = Incident(
            id=new_id("inc"),
            kind=kind,
            position=position,
            reported_at=reported_at or self.clock.now(),
            radius_m=radius_m,
            window_s=window_s,
        )
        self.store.add_incident(incident)
        self.audit.append(AuditKind.INCIDENT_REPORTED, dump(incident), self.clock.now())
        self._warm_up(incident)
        return incident

    def _warm_up(self, incident: Incident) -> None:
        """Start the edge's GOP cache for the cameras the incident's geofence reaches (only
        where an event loop runs: the cache lives in the process that serves media), and
        only for those whose live view the policies pre-authorise now (see ``authorised``).

        Called inside the loop, it starts them here; called from a worker thread of the loop
        (``anyio.to_thread``, as the HTTP server reports incidents, keeping disk waits off the
        loop), the loop starts them, and this thread waits for it; anywhere else, nothing."""
        if not self.edge.relay_statistics().settings.gop_cache:
            return
        in_loop = self.edge.cache_enabled()

        def authorised(camera_id: str) -> Callable[[], datetime | None]:
            def until() -> datetime | None:
                """Until when a live request for the camera under this incident would be
                granted now with nobody asked, or None: the gate's own decision (every core
                check and consent policy, nothing written) on a stand-in request, and for an
                ask-first owner never; the horizon is the grant's (``_terms_horizon``: window,
                end date, quiet hours), searched an hour ahead (the edge asks again then)."""
                now = self.clock.now()
                request = AccessRequest(
                    id=new_id("req"),
                    incident_id=incident.id,
                    camera_id=camera_id,
                    scope=Scope.LIVE,
                    requested_by="camgate-cache",
                    requested_at=now,
                    purpose=min(self.rules.purposes),  # any purpose the agency allows
                    duration_s=1.0,
                )
                try:
                    decision, facts = self._decide(request, at=now)
                except NotFound:  # the camera or incident is gone
                    return None
                consent = facts.standing_consent  # the record the decision judged
                if (
                    not decision.allowed
                    or needs_approval(decision.votes)
                    or consent is None
                    or consent.terms.mode is not ConsentMode.PRE_AUTHORISED
                ):
                    return None
                span = min(3600.0, max(1.0, (incident.window_end - now).total_seconds()))
                ahead = attrs.evolve(request, duration_s=span)
                horizon = self._terms_horizon(ahead, now, consent, facts)
                return None if horizon is None else min(horizon, now + timedelta(seconds=span))

            return until

        sightings = [s for s in self.sightings(incident) if s.reachable]

        def warm_all() -> list[str]:
            return [
                s.camera.id
                for s in sightings
                if self.edge.warm(incident, s.camera, authorised(s.camera.id))
            ]

        if in_loop:
            warmed = warm_all()
        else:
            try:
                anyio.from_thread.check_cancelled()  # RuntimeError: not a loop's worker thread
            except RuntimeError:
                return  # no loop to serve media from here: no cache
            warmed = anyio.from_thread.run_sync(warm_all)
        if warmed:
            self.audit.append(
                AuditKind.CACHE_WARM, {"incident": incident.id, "cameras": warmed}, self.clock.now()
            )

    def close_incident(self, incident_id: str) -> Incident:
        """Close an incident: it reaches no camera any more."""
        incident = attrs.evolve(self.store.get_incident(incident_id), status=IncidentStatus.CLOSED)
        self.store.add_incident(incident)
        dropped = self.edge.cool(incident.id)
        self.audit.append(
            AuditKind.INCIDENT_CLOSED,
            {"incident": incident.id, "caches_dropped": dropped},
            self.clock.now(),
        )
        return incident

    def reachable(self, incident_id: str) -> list[tuple[Camera, list[Vote]]]:
        """The cameras in the incident's zones with their geofence votes, reachable ones first.

        Reachable cameras come best view first (see :meth:`sightings`), then the others, nearest
        first. A closed incident, or one past its window, reaches none. The geofence part of
        :meth:`survey` (which adds every other vote and an outcome per camera).
        """
        incident = self.facts.incident(incident_id)
        return [(s.camera, list(s.votes)) for s in self.sightings(incident)]

    def sightings(self, incident: Incident, now: datetime | None = None) -> list[Sighting]:
        """Every camera in the zones of ``incident`` (stored or not), voted on and ranked.

        Uses the spatial index: only cameras that may lie in a zone source's extent are tested.
        """
        when = now or self.clock.now()
        with ZoneBook.held(self.store):  # the zones checked once for every camera's votes
            return survey(
                incident,
                self.camera_index.get(),
                self.host.geofence_extents(incident),
                lambda camera: geofence_votes(self.host, incident, camera, when),
            )

    def survey(
        self,
        incident: Incident | str,
        *,
        scope: Scope | str = Scope.LIVE,
        purpose: str | Sequence[str] = DEFAULT_PURPOSE,
        duration_s: float = 60.0,
        window: tuple[datetime, datetime] | None = None,
        requested_by: str = "survey",
        at: datetime | None = None,
        record: bool = True,
    ) -> Survey:
        """Decide every candidate camera of an incident in one pass: the map an officer sees.

        The candidates are the cameras in the incident's zones (:meth:`sightings`: the spatial
        index and every zone source, ranked). Each is judged exactly as :meth:`decide` judges a
        request for it with this ``scope``, ``purpose``, ``duration_s`` and recorded ``window``
        made at ``at`` (default: now): every core invariant, geofence and consent policy, on
        facts loaded once for the whole set. Each row says ``allowed``, ``ask`` (the owner is
        asked first) or ``denied``, with every reason.

        A survey grants nothing and opens no camera, so it is not an access: with ``record``
        (the default) it is written as ONE ``survey`` audit record with its counts, durable
        before this returns (docs/audit.md). ``incident`` is a stored incident's id, or an
        :class:`Incident` (``camgate geofence query`` surveys a point that way). NotFound for
        an unknown incident id; ValidationError for a bad scope, purpose or window.
        """
        if isinstance(incident, str):
            incident = self.facts.incident(incident)
        now = at or self.clock.now()
        template = AccessRequest(
            id=new_id("req"),
            incident_id=incident.id,
            camera_id="survey",
            scope=scope,
            requested_by=requested_by,
            requested_at=now,
            purpose=purpose,
            duration_s=duration_s,
            window_start=window[0] if window else None,
            window_end=window[1] if window else None,
        )
        with _collector_paused():
            rows = self._survey_rows(template, incident, now)
        result = Survey(incident.id, template.scope, template.purpose, now, rows)
        if record:
            self.audit.append(AuditKind.SURVEY, result.audit_body(requested_by), self.clock.now())
        return result

    def _survey_rows(
        self, template: AccessRequest, incident: Incident, now: datetime
    ) -> list[SurveyRow]:
        """Every candidate of ``incident`` judged on ``template`` (see :meth:`survey`)."""
        sightings = self.sightings(incident, now)
        cameras, changes = self.facts.cameras([s.camera.id for s in sightings])
        rules = self.rules
        shared = SurveyVotes(template, incident, now)
        rows = []
        for sighting in sightings:
            found = cameras.get(sighting.camera.id)
            if found is None:  # removed since the index was read
                continue
            request = _for_camera(template, found.camera.id)
            decision, consent = self._judge(
                request,
                DecisionFacts.of(found, incident, rules, changes),
                now,
                geofence=sighting.votes,
                distance=sighting.distance_m,
                shared=shared,
            )
            if not decision.allowed:
                outcome = Outcome.DENIED
            elif (consent is not None and consent.terms.mode is ConsentMode.ASK) or needs_approval(
                decision.votes
            ):
                outcome = Outcome.ASK  # someone is asked first: the owner, or an approver
            else:
                outcome = Outcome.ALLOWED
            rows.append(SurveyRow(sighting, decision, outcome))
        return rows


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cycle collector paused (when it runs) for the block: a survey.

    A survey of 1 000 cameras makes some 40 000 small objects that live until it returns and
    form no reference cycle (refcounting frees them). With the collector running, they trigger
    dozens of collections and, as they are promoted, full ones over everything the process
    keeps — the fact cache and the spatial index of every camera: tens of milliseconds, a
    survey's median doubled (bench/decisions.py). Paused, nothing is collected late but
    cycles made elsewhere meanwhile, at the next collection. Process-wide, like the
    collector: an application that turned it off itself keeps it off.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _for_camera(template: AccessRequest, camera_id: str) -> AccessRequest:
    """``template`` (validated) for another camera: a copy with that camera id and a new request
    id, both camgate's own (a stored camera's id, :func:`new_id`), so the validators that
    ``attrs.evolve`` would run again — a third of a survey's time — are not."""
    request = object.__new__(AccessRequest)
    for name in _REQUEST_FIELDS:
        object.__setattr__(request, name, getattr(template, name))
    object.__setattr__(request, "camera_id", camera_id)
    object.__setattr__(request, "id", new_id("req"))
    return request


_REQUEST_FIELDS = tuple(field.name for field in attrs.fields(AccessRequest))


class SurveyVotes:
    """The core votes every camera of one survey shares (same incident, moment, scope and
    window), cast once; ``core.capability`` once per adapter."""

    def __init__(self, request: AccessRequest, incident: Incident, now: datetime) -> None:
        self.scope = request.scope
        self.incident = incident_vote(incident, now)
        self.window = window_votes(request, now)
        self._capability: dict[str, Vote] = {}

    def capability(self, host: PluginHost, camera: Camera) -> Vote:
        """``core.capability`` for ``camera``'s adapter, cast once per adapter."""
        vote = self._capability.get(camera.adapter)
        if vote is None:
            vote = self._capability[camera.adapter] = capability_vote(host, camera, self.scope)
        return vote
