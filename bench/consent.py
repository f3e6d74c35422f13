"""Decision latency with 100 000 enrolled cameras and every built-in policy.

The store holds N cameras (default 100 000) of N/2 owners, each owner enrolled under one consent
record with terms that set every term (scopes, ask-first for a third, incident kinds, radius,
quiet hours in the owner's time zone, session length, look-back, end date), and agency rules
with every rule set (enrolment caps left out: 100 000 cameras is far over any pilot's cap;
live-view kinds, a banned purpose, 50 sensitive places, required waivers). 40 incidents are open.

Measured: ``Gate.decide(request)`` for random (camera, incident, scope, purpose) requests — every
core invariant, the radius geofence, the owner's terms and the agency's rules, reading the
camera, incident, consent, waiver and owner from SQLite. Baseline in the same run, on the same
store and the same requests, interleaved: the decision with the core invariants and the
geofence only (plugins ``camgate.policy`` and ``camgate.agency`` removed), i.e. what the terms
and rules add.

Usage: uv run python bench/consent.py [--cameras 100000] [--decisions 3000]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import summary, write_result
from camgate import AccessRequest, Camera, ConsentRecord, ConsentTerms, Gate, GeoPoint, Owner
from camgate.codec import dump
from camgate.gate import builtin_plugins
from camgate.grants import GrantSigner
from camgate.models import Incident, Waiver, new_id
from camgate.plugins import PluginHost
from camgate.rules import AgencyRules, SensitivePlace
from camgate.store import Store
from camgate.testing import DeclaringAdapters, ManualClock

CENTRE = GeoPoint(32.2988, -90.1848)
ZONES = ["America/Chicago", "America/New_York", "UTC", "Europe/London"]
KINDS = ["shooting", "burglary", "armed-robbery", "homicide", "assault"]


def near(rng: random.Random, km: float) -> GeoPoint:
    return GeoPoint(
        CENTRE.lat + rng.uniform(-km, km) / 111.0, CENTRE.lon + rng.uniform(-km, km) / 94.0
    )


def populate(
    store: Store, cameras: int, clock: ManualClock, rng: random.Random
) -> list[tuple[str, GeoPoint]]:
    """Write owners, cameras and consent records in bulk (one transaction each)."""
    waiver = Waiver("2026-1", "I agree to share my camera on my terms.")
    store.add_waiver(waiver)
    owners, cams, consents, links = [], [], [], []
    placed: list[tuple[str, GeoPoint]] = []
    for i in range(cameras // 2):
        owner = Owner(f"o{i}", f"Owner {i}", time_zone=rng.choice(ZONES))
        owners.append((owner.id, json.dumps(dump(owner))))
        ids = []
        for j in range(2):
            cam = Camera(
                id=f"c{2 * i + j}",
                adapter="test",
                source=f"test://c{2 * i + j}",
                owner_id=owner.id,
                position=near(rng, 8.0),
            )
            cams.append((cam.id, owner.id, json.dumps(dump(cam))))
            ids.append(cam.id)
            placed.append((cam.id, cam.position))
        terms = ConsentTerms(
            scopes=rng.sample(["live", "recorded", "snapshot"], k=rng.randint(1, 3)),
            max_session_s=rng.choice([300.0, 900.0, 3600.0]),
            mode=rng.choice(["ask", "pre-authorised", "pre-authorised"]),
            incident_kinds=rng.sample(KINDS, k=rng.randint(1, 5)),
            max_radius_m=rng.choice([200.0, 500.0, 1000.0]),
            quiet_hours=rng.choice([("22:00", "07:00"), ("00:00", "06:00"), ("12:00", "13:00")]),
            max_lookback_s=rng.choice([3600.0, 86400.0]),
            ends_at=clock.now() + timedelta(days=rng.randint(1, 365)),
        )
        record = ConsentRecord(
            id=new_id("con"),
            owner_id=owner.id,
            camera_ids=ids,
            waiver_version=waiver.version,
            waiver_sha256=waiver.sha256,
            accepted_at=clock.now(),
            terms=terms,
        )
        consents.append((record.id, owner.id, None, json.dumps(dump(record), sort_keys=True)))
        links.extend((record.id, cam) for cam in ids)
    with store.transaction() as db:
        db.executemany("INSERT INTO owners VALUES (?, ?)", owners)
        db.executemany("INSERT INTO cameras VALUES (?, ?, ?)", cams)
        db.executemany("INSERT INTO consents VALUES (?, ?, ?, ?)", consents)
        db.executemany("INSERT INTO consent_cameras VALUES (?, ?)", links)
    return placed


def make_requests(
    rng: random.Random,
    incidents: list[Incident],
    placed: list[tuple[str, GeoPoint]],
    now: datetime,
    count: int,
) -> list[AccessRequest]:
    """Random requests, as an officer makes them: half for a camera within 1.5 km of the
    incident (flat approximation, for picking only), half any camera; one in ten naming face
    recognition; recorded ones for the hour that ended an hour ago."""
    nearby = {
        inc.id: [
            cam
            for cam, pos in placed
            if ((pos.lat - inc.position.lat) * 111.0) ** 2
            + ((pos.lon - inc.position.lon) * 94.0) ** 2
            <= 1.5**2
        ]
        for inc in incidents
    }
    camera_ids = [cam for cam, _pos in placed]
    requests = []
    for _ in range(count):
        scope = rng.choice(["live", "snapshot", "recorded"])
        incident = rng.choice(incidents)
        pool = nearby[incident.id] if nearby[incident.id] and rng.random() < 0.5 else camera_ids
        window = (now - timedelta(hours=2), now - timedelta(hours=1))
        requests.append(
            AccessRequest(
                id=new_id("req"),
                incident_id=incident.id,
                camera_id=rng.choice(pool),
                scope=scope,
                requested_by="bench",
                requested_at=now,
                purpose=rng.choice(["investigation"] * 9 + ["face-recognition"]),
                duration_s=rng.choice([60.0, 600.0]),
                window_start=window[0] if scope == "recorded" else None,
                window_end=window[1] if scope == "recorded" else None,
            )
        )
    return requests


def rules(rng: random.Random) -> AgencyRules:
    return AgencyRules(
        name="Jackson RTCC",
        live_incident_kinds=["shooting", "homicide", "armed-robbery"],
        banned_purposes=["face-recognition"],
        sensitive_places=[SensitivePlace(f"place {i}", near(rng, 8.0), 75.0) for i in range(50)],
        required_waivers=["2026-1"],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cameras", type=int, default=100_000)
    parser.add_argument("--decisions", type=int, default=3000)
    args = parser.parse_args()
    rng = random.Random(20261121)
    clock = ManualClock()
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "bench.db")
        t0 = time.perf_counter()
        placed = populate(store, args.cameras, clock, rng)
        populate_s = time.perf_counter() - t0
        signer = GrantSigner.generate()
        full = Gate(
            store=store,
            host=PluginHost(
                builtins=builtin_plugins(store, rules(rng)) | {"adapters": DeclaringAdapters()},
                entry_points=False,
            ),
            signer=signer,
            clock=clock,
        )
        core_host = PluginHost(
            builtins=builtin_plugins(store) | {"adapters": DeclaringAdapters()},
            entry_points=False,
        )
        core_host.unregister("camgate.policy")
        core_host.unregister("camgate.agency")
        core = Gate(store=store, host=core_host, signer=signer, clock=clock)
        incidents = [
            full.report_incident(rng.choice(KINDS), near(rng, 6.0), 1500.0) for _ in range(40)
        ]
        clock.advance(600)
        now = clock.now()
        requests = make_requests(rng, incidents, placed, now, args.decisions)
        for request in requests[:200]:  # warm the page cache and pyproj
            full.decide(request)
            core.decide(request)
        full_s, core_s, allowed, votes = [], [], 0, 0
        for request in requests:
            pair = [(full, full_s), (core, core_s)]
            rng.shuffle(pair)
            for gate, samples in pair:
                t = time.perf_counter()
                decision = gate.decide(request)
                samples.append(time.perf_counter() - t)
                if gate is full:
                    allowed += decision.allowed
                    votes += len(decision.votes)
        store.close()
    f, c = summary(full_s), summary(core_s)
    write_result(
        "consent",
        {
            "command": "uv run python bench/consent.py",
            "cameras": args.cameras,
            "consent_records": args.cameras // 2,
            "decisions": args.decisions,
            "populate_s": round(populate_s, 1),
            "allowed_share": round(allowed / args.decisions, 3),
            "votes_per_decision": round(votes / args.decisions, 1),
            "results": {"decide_all_builtin_policies": f},
            "baseline": {"decide_core_invariants_and_geofence_only": c},
            "ratio_median": round(f["median_ms"] / max(c["median_ms"], 1e-6), 2),
            "ratio_p99": round(f["p99_ms"] / max(c["p99_ms"], 1e-6), 2),
        },
    )


if __name__ == "__main__":
    main()
