"""Decisions at policy-engine speed: one request, and an incident's whole map, against Cedar.

The store is bench/consent.py's: N cameras (default 100 000) of N/2 owners, each owner enrolled
under one consent record that sets every term, agency rules with every rule set (live-view
kinds, a banned purpose, 50 sensitive places, required waivers), 40 open incidents.

Measured, in one run, on the same store and the same requests:

- ``decide``: ``Gate.decide(request)`` — every core invariant, the geofences, the owner's terms
  and the agency's rules, from the fact cache (warm; re-validated by one read of the store's
  change counters per decision). In-process; a decision writes nothing, so no fsync is in it.
- ``decide_reference`` (today's per-camera path): ``Gate.decide(request, cached=False)``,
  every fact read afresh from SQLite. Interleaved with ``decide``.
- ``cedar``: the same built-in policies written in Cedar (below), evaluated with ``cedarpy``
  (parsed policy set, entities built beforehand, so only the evaluation is timed) on the same
  facts: what Cedar cannot compute (geodesic distance, the owner's local time, sensitive
  places, the waiver hash) is handed to it in the request context, computed by camgate.
- ``survey``: ``Gate.survey(incident)`` over an incident whose zone holds about 1 000 cameras
  — every candidate decided with its reasons; ``survey_recorded`` adds its one durable audit
  record (one fsync); ``survey_cold`` starts from an empty fact cache. Baselines:
  ``survey_reference`` (one ``decide(cached=False)`` per candidate, today's path) and
  ``survey_cedar`` (``cedarpy.is_authorized_batch`` over the candidates).

``--before FILE`` adds the figures of an earlier run (its JSON, e.g. of the code before a
change, run the same way in the same session) and the ratios now/before.

Usage: uv run python bench/decisions.py [--cameras 100000] [--decisions 3000] [--surveys 30]
       [--before bench/results/decisions-before.json]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import tempfile
import time
import zoneinfo
from datetime import datetime
from pathlib import Path
from typing import Any

import cedarpy

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import summary, write_result
from camgate import AccessRequest, Gate, GeoPoint
from camgate.facts import DecisionFacts
from camgate.gate import builtin_plugins
from camgate.geofence import distance_m
from camgate.grants import GrantSigner
from camgate.models import Decision, Scope, purpose_names
from camgate.plugins import PluginHost
from camgate.store import Store
from camgate.testing import DeclaringAdapters, ManualClock
from consent import KINDS, make_requests, near, populate, rules

#: The built-in policies in Cedar, one ``forbid`` per camgate vote that can deny, in the order
#: camgate casts them; the ``permit`` stands for the allows (``policy{i}`` is line ``i``).
CEDAR = [
    ("core.opt-in", "forbid(principal, action, resource) unless { resource.enrolled };"),
    (
        "core.scope",
        "forbid(principal, action, resource) when { resource.enrolled && "
        "!resource.scopes.contains(context.scope) };",
    ),
    ("core.incident", "forbid(principal, action, resource) unless { context.incident_open };"),
    (
        "core.capability",
        "forbid(principal, action, resource) unless "
        "{ resource.adapter_scopes.contains(context.scope) };",
    ),
    (
        "core.geofence",
        "forbid(principal, action, resource) unless "
        "{ context.distance_mm <= context.incident_radius_mm };",
    ),
    (
        "core.window",
        "forbid(principal, action, resource) when "
        '{ context.scope == "recorded" && context.window_end > context.now };',
    ),
    (
        "terms.max-session",
        "forbid(principal, action, resource) when { resource.enrolled && "
        'context.scope != "snapshot" && context.duration_s > resource.max_session_s };',
    ),
    (
        "terms.incident-kind",
        "forbid(principal, action, resource) when { resource.enrolled && "
        "!resource.incident_kinds.contains(context.kind) };",
    ),
    (
        "terms.radius",
        "forbid(principal, action, resource) when { resource.enrolled && "
        "context.distance_mm > resource.max_radius_mm };",
    ),
    (
        "terms.quiet-hours",
        "forbid(principal, action, resource) when { resource.enrolled && "
        "(if resource.quiet_start < resource.quiet_end "
        "then context.local_minute >= resource.quiet_start && "
        "context.local_minute < resource.quiet_end "
        "else context.local_minute >= resource.quiet_start || "
        "context.local_minute < resource.quiet_end) };",
    ),
    (
        "terms.lookback",
        "forbid(principal, action, resource) when { resource.enrolled && "
        'context.scope == "recorded" && context.window_start < context.now - '
        "resource.max_lookback_s };",
    ),
    (
        "terms.end-date",
        "forbid(principal, action, resource) when { resource.enrolled && "
        "context.now >= resource.ends_at };",
    ),
    (
        "agency.live-kinds",
        'forbid(principal, action, resource) when { context.scope == "live" && '
        '!["shooting", "homicide", "armed-robbery"].contains(context.kind) };',
    ),
    (
        "agency.purpose",
        "forbid(principal, action, resource) when "
        '{ context.purposes.containsAny(["face-recognition"]) || '
        '!["investigation"].containsAll(context.purposes) };',
    ),
    ("agency.sensitive-place", "forbid(principal, action, resource) when { resource.sensitive };"),
    (
        "agency.waiver",
        "forbid(principal, action, resource) when { resource.enrolled && "
        '!["2026-1"].contains(resource.waiver_version) };',
    ),
    ("permit", 'permit(principal, action == Action::"view", resource);'),
]
POLICY_NAMES = {f"policy{i}": name for i, (name, _text) in enumerate(CEDAR)}


def _epoch(when: datetime) -> int:
    return int(when.timestamp())


def _minutes(hhmm: str) -> int:
    hours, minutes = hhmm.split(":")
    return int(hours) * 60 + int(minutes)


def cedar_inputs(
    facts: DecisionFacts, request: AccessRequest, now: datetime, distance: float
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The Cedar request and the camera's entity for ``request``, from camgate's facts."""
    camera, incident = facts.camera, facts.incident
    consent = facts.standing_consent
    attrs: dict[str, Any] = {
        "enrolled": consent is not None,
        "adapter_scopes": ["live", "recorded", "snapshot"],
        "sensitive": facts.rules.sensitive_place_of(camera) is not None,
    }
    zone = "UTC"
    if consent is not None:
        terms = consent.terms
        quiet = terms.quiet_hours or ("00:00", "00:00")
        zone = facts.owner.time_zone if facts.owner is not None else "UTC"
        attrs |= {
            "scopes": sorted(str(s) for s in terms.scopes),
            "incident_kinds": sorted(terms.incident_kinds or ()),
            "max_radius_mm": int((terms.max_radius_m or 1e9) * 1000),
            "max_session_s": int(terms.max_session_s or 10**9),
            "max_lookback_s": int(terms.max_lookback_s or 10**9),
            "ends_at": _epoch(terms.ends_at) if terms.ends_at else 2**40,
            "quiet_start": _minutes(quiet[0]),
            "quiet_end": _minutes(quiet[1]),
            "waiver_version": consent.waiver_version,
        }
    local = now.astimezone(zoneinfo.ZoneInfo(zone))
    context = {
        "scope": str(request.scope),
        "kind": incident.kind,
        "incident_open": incident.active_at(now),
        "incident_radius_mm": int(incident.radius_m * 1000),
        "distance_mm": math.ceil(distance * 1000),
        "now": _epoch(now),
        "local_minute": local.hour * 60 + local.minute,
        "duration_s": math.ceil(request.duration_s),
        "window_start": _epoch(request.window_start) if request.window_start else 0,
        "window_end": _epoch(request.window_end) if request.window_end else 0,
        "purposes": list(purpose_names(request.purpose)),
    }
    entity = {"uid": {"type": "Camera", "id": camera.id}, "attrs": attrs, "parents": []}
    cedar_request = {
        "principal": 'Officer::"bench"',
        "action": 'Action::"view"',
        "resource": f'Camera::"{camera.id}"',
        "context": context,
    }
    return cedar_request, entity


def survey_request(
    camera_id: str, request_id: str, incident_id: str, at: datetime
) -> AccessRequest:
    """The request a survey's row judged (``Gate.survey``'s defaults: live, investigation)."""
    return AccessRequest(
        id=request_id,
        incident_id=incident_id,
        camera_id=camera_id,
        scope=Scope.LIVE,
        requested_by="survey",
        requested_at=at,
        purpose="investigation",
        duration_s=60.0,
    )


def _same(a: Decision, b: Decision) -> bool:
    return a.allowed == b.allowed and a.votes == b.votes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cameras", type=int, default=100_000)
    parser.add_argument("--decisions", type=int, default=3000)
    parser.add_argument("--surveys", type=int, default=30)
    parser.add_argument("--candidates", type=int, default=1000)
    parser.add_argument("--before", type=Path, help="an earlier run's JSON, compared with")
    args = parser.parse_args()
    rng = random.Random(20261206)
    clock = ManualClock()
    load_before = os.getloadavg()
    policies = cedarpy.PolicySet.from_str("\n".join(text for _name, text in CEDAR))
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "bench.db")
        t0 = time.perf_counter()
        placed = populate(store, args.cameras, clock, rng)
        populate_s = time.perf_counter() - t0
        gate = Gate(
            store=store,
            host=PluginHost(
                builtins=builtin_plugins(store, rules(rng)) | {"adapters": DeclaringAdapters()},
                entry_points=False,
            ),
            signer=GrantSigner.generate(),
            clock=clock,
        )
        incidents = [
            gate.report_incident(rng.choice(KINDS), near(rng, 6.0), 1500.0) for _ in range(40)
        ]
        # the survey's incident: a zone holding about --candidates cameras (uniform density)
        density = args.cameras / (16_000.0 * 16_000.0)
        radius = math.sqrt(args.candidates / density / math.pi)
        mapped = gate.report_incident("shooting", GeoPoint(32.2988, -90.1848), radius)
        clock.advance(600)
        now = clock.now()
        requests = make_requests(rng, incidents, placed, now, args.decisions)

        # ---- one decision: cached vs reference, interleaved; then Cedar on the same facts
        for request in requests:  # warm: pyproj, the page cache, the fact cache
            gate.decide(request)
        fast_s, ref_s, differ = [], [], 0
        for request in requests:
            pair = [(True, fast_s), (False, ref_s)]
            rng.shuffle(pair)
            got = []
            for cached, samples in pair:
                t = time.perf_counter()
                got.append(gate.decide(request, cached=cached))
                samples.append(time.perf_counter() - t)
            differ += not _same(*got)
        cedar_s, agree = [], 0
        entities_of: list[Any] = []
        for request in requests:
            facts = gate.decision_facts(request)
            distance = gate_distance(facts)
            creq, entity = cedar_inputs(facts, request, now, distance)
            entities_of.append((creq, [entity]))
        for request, (creq, entities) in zip(requests, entities_of, strict=True):
            t = time.perf_counter()
            result = cedarpy.is_authorized(creq, policies, entities)
            cedar_s.append(time.perf_counter() - t)
            agree += result.allowed == gate.decide(request).allowed

        # ---- the survey of one incident's ~1 000 candidates
        gate.survey(mapped.id, record=False)  # warm
        survey_s, recorded_s, cold_s, ref_survey_s, cedar_survey_s = [], [], [], [], []
        survey = gate.survey(mapped.id, record=False)
        for i in range(args.surveys):
            t = time.perf_counter()
            survey = gate.survey(mapped.id, record=False)
            survey_s.append(time.perf_counter() - t)
            t = time.perf_counter()
            gate.survey(mapped.id, record=True)
            recorded_s.append(time.perf_counter() - t)
            if i < 5:
                gate.facts = type(gate.facts)(store)  # an empty cache
                t = time.perf_counter()
                gate.survey(mapped.id, record=False)
                cold_s.append(time.perf_counter() - t)
        survey_differ = 0
        batch = []
        for row in survey.rows:
            request = survey_request(row.camera_id, row.decision.request_id, mapped.id, survey.at)
            facts = gate.decision_facts(request)
            batch.append(cedar_inputs(facts, request, survey.at, row.sighting.distance_m))
        for _ in range(max(3, args.surveys // 3)):
            t = time.perf_counter()
            survey_differ = 0
            for row in survey.rows:
                request = survey_request(
                    row.camera_id, row.decision.request_id, mapped.id, survey.at
                )
                reference = gate.decide(request, cached=False)
                survey_differ += not _same(reference, row.decision)
            ref_survey_s.append(time.perf_counter() - t)
            t = time.perf_counter()
            cedarpy.is_authorized_batch(
                [creq for creq, _e in batch], policies, [e for _c, e in batch]
            )
            cedar_survey_s.append(time.perf_counter() - t)
        counts = survey.counts
        store.close()

    def us(samples: list[float]) -> dict[str, float]:
        """:func:`summary` in microseconds, to 0.1 µs."""
        stats = summary([x * 1000 for x in samples])  # summary's ms are then µs
        return {k.replace("_ms", "_us"): v for k, v in stats.items()}

    f, r, c = us(fast_s), us(ref_s), us(cedar_s)
    s, sr, sc = summary(survey_s), summary(ref_survey_s), summary(cedar_survey_s)

    def ratio(a: dict[str, float], b: dict[str, float], key: str) -> float:
        return round(a[key] / max(b[key], 1e-9), 2)

    before: dict[str, Any] = {}
    if args.before is not None:
        earlier = json.loads(args.before.read_text())
        keys = ("decide_us", "survey", "survey_recorded_ms", "survey_cold_ms")
        was = {k: earlier[k] for k in keys} | {"when": earlier["when"]}
        was["survey_ms"] = was.pop("survey")["ms"]
        before = {
            "before": was,
            "now_vs_before": {
                "decide": {
                    "median": ratio(f, was["decide_us"], "median_us"),
                    "p99": ratio(f, was["decide_us"], "p99_us"),
                },
                "survey": {
                    "median": ratio(s, was["survey_ms"], "median_ms"),
                    "p99": ratio(s, was["survey_ms"], "p99_ms"),
                },
            },
        }
    write_result(
        "decisions",
        {
            "command": "uv run python bench/decisions.py",
            "cameras": args.cameras,
            "consent_records": args.cameras // 2,
            "populate_s": round(populate_s, 1),
            "decisions": args.decisions,
            "units": "decide_us, decide_reference_us, cedar_us in µs; survey* in ms",
            "decide_us": f,
            "decide_reference_us": r,
            "cedar_us": c,
            "decide_vs_reference": {
                "median": ratio(f, r, "median_us"),
                "p99": ratio(f, r, "p99_us"),
            },
            "decide_vs_cedar": {"median": ratio(f, c, "median_us"), "p99": ratio(f, c, "p99_us")},
            "decisions_differing_from_reference": differ,
            "cedar_agrees_on_outcome": round(agree / args.decisions, 4),
            "survey": {"candidates": counts["candidates"], "counts": counts, "ms": s},
            "survey_recorded_ms": summary(recorded_s),
            "survey_cold_ms": summary(cold_s),
            "survey_reference_ms": sr,
            "survey_cedar_ms": sc,
            "survey_vs_reference": {
                "median": ratio(s, sr, "median_ms"),
                "p99": ratio(s, sr, "p99_ms"),
            },
            "survey_vs_cedar": {"median": ratio(s, sc, "median_ms"), "p99": ratio(s, sc, "p99_ms")},
            "survey_rows_differing_from_reference": survey_differ,
            # the machine is shared: the 1-minute load average before and after the run
            "load_average": [round(load_before[0], 1), round(os.getloadavg()[0], 1)],
            "targets": {"decide_median_us": 50, "decide_p99_us": 500, "survey_ms": 50},
            **before,
        },
    )


def gate_distance(facts: DecisionFacts) -> float:
    return distance_m(facts.incident.position, facts.camera.position)


if __name__ == "__main__":
    main()
