"""Stateful property test of the gate's decisions against a reference model.

Rules enrol, revoke, open and close incidents, let time pass and request access; after every
request the gate's answer must equal the model's: granted exactly when the camera's owner has an
active consent allowing the scope, the incident is open and inside its window, and the camera is
inside the incident's radius. Every decision must be in the audit chain, which must verify.
"""

from __future__ import annotations

import tempfile
from datetime import datetime, timedelta
from pathlib import Path

import anyio
from camgate import (
    AccessDenied,
    ConsentTerms,
    Gate,
    GeoPoint,
    GrantVerifier,
    Owner,
    Scope,
    Waiver,
)
from camgate.gate import builtin_plugins
from camgate.geofence import distance_m
from camgate.grants import GrantSigner
from camgate.plugins import PluginHost
from camgate.store import Store
from camgate.testing import DeclaringAdapters, ManualClock, camera_north_of
from hypothesis import event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

CENTRE = GeoPoint(32.2988, -90.1848)
CAMERAS = {  # id: (owner, metres north of the centre)
    "c1": ("alice", 50.0),
    "c2": ("alice", 400.0),
    "c3": ("bob", 150.0),
    "c4": ("carol", 900.0),
}
SCOPES = [Scope.LIVE, Scope.SNAPSHOT]


class GateMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tmp = tempfile.TemporaryDirectory()
        self.clock = ManualClock()
        store = Store(Path(self.tmp.name) / "g.db")
        host = PluginHost(
            builtins=builtin_plugins(store) | {"adapters": DeclaringAdapters()}, entry_points=False
        )
        self.signer = GrantSigner.generate()
        self.gate = Gate(store=store, host=host, signer=self.signer, clock=self.clock)
        self.waiver = self.gate.publish_waiver(Waiver("w1", "I agree."))
        for owner in ("alice", "bob", "carol"):
            self.gate.add_owner(Owner(owner, owner.title()))
        for cam, (owner, north) in CAMERAS.items():
            self.gate.add_camera(camera_north_of(cam, owner, CENTRE, north))
        # the model
        self.consent: dict[str, set[Scope]] = {}  # owner -> allowed scopes (active consent)
        self.enrolled: dict[str, set[str]] = {}  # owner -> cameras under the active consent
        self.incidents: dict[str, tuple[float, datetime, bool]] = {}  # id -> radius, end, open
        self.decisions = 0

    @initialize(owner=st.sampled_from(["alice", "bob"]), radius=st.sampled_from([300.0, 1000.0]))
    def start(self, owner: str, radius: float) -> None:
        """Begin from a state where grants are possible, so both outcomes are exercised."""
        self.report(radius, 3600.0)
        cams = sorted(c for c, (o, _) in CAMERAS.items() if o == owner)
        self.gate.enrol(
            owner,
            cams,
            waiver_version="w1",
            waiver_sha256=self.waiver.sha256,
            terms=ConsentTerms(scopes=SCOPES),
        )
        self.enrolled[owner] = set(cams)
        self.consent.update({cam: set(SCOPES) for cam in cams})

    def teardown(self) -> None:
        self.gate.store.close()
        self.tmp.cleanup()

    @rule(
        owner=st.sampled_from(["alice", "bob", "carol"]),
        scopes=st.sets(st.sampled_from(SCOPES), min_size=1) | st.just(set()),
        data=st.data(),
    )
    def enrol(self, owner: str, scopes: set[Scope], data: st.DataObject) -> None:
        mine = sorted(c for c, (o, _) in CAMERAS.items() if o == owner)
        cams = data.draw(st.lists(st.sampled_from(mine), min_size=1, unique=True))
        self.gate.enrol(
            owner,
            cams,
            waiver_version="w1",
            waiver_sha256=self.waiver.sha256,
            terms=ConsentTerms(scopes=scopes),
        )
        # the newest active record covering a camera wins; model per camera
        for cam in cams:
            self.enrolled.setdefault(owner, set()).add(cam)
            self.consent[cam] = set(scopes)

    @rule(owner=st.sampled_from(["alice", "bob", "carol"]))
    def revoke(self, owner: str) -> None:
        anyio.run(self.gate.revoke, owner)
        for cam in self.enrolled.pop(owner, set()):
            self.consent.pop(cam, None)

    @rule(radius=st.sampled_from([100.0, 300.0, 1000.0]), window=st.sampled_from([60.0, 3600.0]))
    def report(self, radius: float, window: float) -> None:
        inc = self.gate.report_incident("burglary", CENTRE, radius, window_s=window)
        self.incidents[inc.id] = (radius, self.clock.now() + timedelta(seconds=window), True)

    @precondition(lambda self: self.incidents)
    @rule(data=st.data())
    def close(self, data: st.DataObject) -> None:
        inc = data.draw(st.sampled_from(sorted(self.incidents)))
        self.gate.close_incident(inc)
        radius, end, _ = self.incidents[inc]
        self.incidents[inc] = (radius, end, False)

    @rule(seconds=st.sampled_from([1.0, 30.0, 120.0, 4000.0]))
    def time_passes(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @precondition(lambda self: self.incidents)
    @rule(cam=st.sampled_from(sorted(CAMERAS)), scope=st.sampled_from(SCOPES), data=st.data())
    def request(self, cam: str, scope: Scope, data: st.DataObject) -> None:
        inc = data.draw(st.sampled_from(sorted(self.incidents)))
        radius, end, is_open = self.incidents[inc]
        north = CAMERAS[cam][1]
        inside = distance_m(CENTRE, GeoPoint(CENTRE.lat + north / 111_000, CENTRE.lon)) <= radius
        expected = (
            scope in self.consent.get(cam, set()) and is_open and self.clock.now() < end and inside
        )
        self.decisions += 1
        try:
            signed = anyio.run(
                lambda: self.gate.request_access(inc, cam, scope, requested_by="officer")
            )
        except AccessDenied as refusal:
            assert not expected, f"refused but the model allows: {refusal.decision.reasons}"  # noqa: PT017
            event("refused")
            return
        assert expected, "granted but the model refuses"
        event("granted")
        grant = GrantVerifier(self.signer.public_key).verify(signed.token)
        assert (grant.camera_id, grant.scope, grant.incident_id) == (cam, scope, inc)

    @invariant()
    def every_decision_is_in_the_verified_chain(self) -> None:
        result = self.gate.audit.verify()
        # A log nothing was written to yet is "empty": never OK, and never a broken chain.
        assert result.ok or (result.status == "empty" and self.decisions == 0), result
        assert sum(1 for _ in self.gate.audit.records("decision")) == self.decisions


GateMachine.TestCase.settings = settings(max_examples=60, stateful_step_count=30, deadline=None)
TestGate = GateMachine.TestCase
