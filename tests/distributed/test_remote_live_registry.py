"""Which remote edge serves a camera: the registry's mapping on both engines (real SQLite file,
real PostgreSQL), the hub's link following it while it runs (real nats-server), and the
parsers of what an edge or consumer sends (fuzzed)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import nats
import pytest
from camgate import Camera, ConsentTerms, Gate, GeoPoint, Owner, Waiver
from camgate.edgenet import EdgeStale, HubLink, wire
from camgate.edgenet.hub import _refusal
from camgate.errors import CamgateError, GrantReplayed, NotFound, ValidationError
from camgate.store import Store
from camgate.testing import until
from camgate.testing.natsserver import server_for_tests
from hypothesis import given, settings
from hypothesis import strategies as st

HOME = GeoPoint(32.2988, -90.1848)


def _cameras(store: Store, *ids: str) -> None:
    store.add_owner(Owner("alice", "Alice"))
    for camera_id in ids:
        store.add_camera(Camera(id=camera_id, adapter="rtsp", source=f"rtsp://127.0.0.1:9/{camera_id}",
                                owner_id="alice", position=HOME))  # fmt: skip


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        s = Store(tmp_path / "hub.db")
    else:
        postgres: Any = request.getfixturevalue("postgres")
        s = Store(postgres.create_database(), home=tmp_path)
    try:
        yield s
    finally:
        s.close()


def test_the_registry_maps_cameras_to_edges(store: Store) -> None:
    _cameras(store, "c1", "c2", "c3")
    assert store.camera_edges() == {} and store.edge_of("c1") is None
    store.assign_edge("site1", ["c1", "c2"])
    store.assign_edge("site2", ["c3"])
    assert store.camera_edges() == {"c1": "site1", "c2": "site1", "c3": "site2"}
    store.assign_edge("site2", ["c2"])  # moved to another edge: replaced, not added
    assert store.edge_of("c2") == "site2"
    # All or nothing: an unknown camera records none.
    with pytest.raises(NotFound, match="nope"):
        store.assign_edge("site3", ["c1", "nope"])
    assert store.edge_of("c1") == "site1"
    with pytest.raises(ValidationError, match="NATS subject token"):
        store.assign_edge("site.1", ["c1"])  # a dot would reach into other edges' subjects
    assert store.unassign_edge(["c1", "c3", "c3"]) == ["c1", "c3"]
    assert store.camera_edges() == {"c2": "site2"}
    store.remove_camera("c2")  # a camera removed takes its mapping with it
    assert store.camera_edges() == {}


def _consents(got: list[tuple[str, dict[str, Any]]], subject: str) -> list[Any]:
    return [body.get("consent", "-") for subj, body in got if subj == subject]


@pytest.mark.anyio
async def test_the_hub_link_follows_assignments_made_while_it_runs(tmp_path: Path) -> None:
    """A camera assigned while the link runs gets its consent published to its edge; taken
    off the edge, that edge is told it has no consent there (so it serves it no more)."""
    gate = Gate.open(tmp_path / "hub.db")
    _cameras(gate.store, "c1")
    waiver = gate.publish_waiver(Waiver("w1", "I agree."))
    consent = gate.enrol("alice", ["c1"], waiver_version="w1", waiver_sha256=waiver.sha256,
                         terms=ConsentTerms(scopes=["live"]))  # fmt: skip
    got: list[tuple[str, dict[str, Any]]] = []
    with server_for_tests() as natsd:
        link = HubLink(gate, natsd.url, beat_s=0.05)
        nc = await nats.connect(natsd.url)
        try:

            async def seen(msg: Any) -> None:
                got.append((msg.subject, json.loads(msg.data)))

            await nc.subscribe("camgate.ctl.>", cb=seen)
            async with anyio.create_task_group() as tg:

                async def run(*, task_status: anyio.abc.TaskStatus[None]) -> None:
                    await link.run(ready=lambda: task_status.started())

                await tg.start(run)
                assert link.edges == {}
                subject = wire.consent_subject("site1", "c1")
                await anyio.to_thread.run_sync(gate.store.assign_edge, "site1", ["c1"])
                await until(
                    lambda: _consents(got, subject) == [consent.id], "the consent published"
                )
                assert link.edges == {"site1": ("c1",)}
                await anyio.to_thread.run_sync(gate.store.unassign_edge, ["c1"])
                await until(
                    lambda: _consents(got, subject) == [consent.id, None], "no consent published"
                )
                assert link.edges == {}
                tg.cancel_scope.cancel()
        finally:
            await nc.close()
            await gate.aclose()


def test_an_edges_refusal_names_only_known_errors() -> None:
    assert _refusal("EdgeStale") is EdgeStale
    assert _refusal("GrantReplayed") is GrantReplayed
    assert _refusal("GrantSomethingNew").__name__ == "GrantError"
    assert _refusal("ConfigError").__name__ == "ConfigError"
    assert _refusal("__class__") is CamgateError  # not a camgate error: the generic one
    assert _refusal("Path") is CamgateError


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_fuzz_refusal_names(name: str) -> None:
    cls = _refusal(name)
    assert issubclass(cls, CamgateError)


_VALUES = st.one_of(st.booleans(), st.none(), st.text(max_size=4))
_KEYS = st.one_of(st.sampled_from(["camera", "token", "browser"]), st.text(max_size=8))
_OBJECTS = st.dictionaries(_KEYS, _VALUES, max_size=4)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=200), st.builds(lambda d: json.dumps(d).encode(), _OBJECTS)))
def test_fuzz_snapshot_request(body: bytes) -> None:
    try:
        camera, token = wire.snapshot_request(body)
    except ValidationError:
        return
    assert (camera, token) == (json.loads(body)["camera"], json.loads(body)["token"])


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=200), st.builds(lambda d: json.dumps(d).encode(), _OBJECTS)))
def test_fuzz_open_wants_browser(body: bytes) -> None:
    try:
        wants = wire.open_wants_browser(body)
    except ValidationError:
        return
    assert wants is (json.loads(body).get("browser") is True)


def test_the_servers_nats_url_stays_out_of_reprs() -> None:
    from camgate_server.live import RemoteEdges
    from camgate_server.settings import ServerSettings

    url = "nats://camgate:s3cret-pass@nats.city.example:4222"
    assert "s3cret" not in repr(ServerSettings(nats_url=url))
    assert "s3cret" not in repr(RemoteEdges(url))
