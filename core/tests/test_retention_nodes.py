"""Retention with several hubs on one PostgreSQL store: each node deletes only the files on its
own disk (docs/retention.md, "Several hubs, one store").

Node "hub-b" has no such paths as node "hub-a"'s: without the node on each row, b's run
recorded a's expired files as deleted (found "missing") while they stayed on a's disk, and
deleted a's export under way as abandoned. On SQLite (one machine) every row stays the run's.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from camgate.db.writers import node_name
from camgate.errors import ConfigError
from camgate.retention import ArtifactState, Retention
from camgate.testing import wait_until

from .conftest import World

DAY = 86400.0


@pytest.fixture
def shared(tmp_path: Path, postgres: Any, store_template: str) -> Iterator[World]:
    """A world on a PostgreSQL store, as hubs share one."""
    world = World(tmp_path, db=postgres.create_database(template=store_template))
    try:
        world.enrol("alice", ["a1"], retention_days=7)
        yield world
    finally:
        anyio.run(world.gate.aclose)


def _node(w: World, name: str) -> Retention:
    return Retention(
        w.gate.store, w.gate.audit, rules=lambda: w.gate.rules, clock=w.clock, node=name
    )


def _snapshot(w: World, node: Retention, path: Path) -> str:
    grant = w.request("a1", "snapshot").grant
    path.write_bytes(f"snapshot {path.name}".encode())
    return node.register(path, "snapshot", camera_id="a1", grant_id=grant.id).id


def test_each_node_deletes_only_its_own_files(shared: World, tmp_path: Path) -> None:
    a, b = _node(shared, "hub-a"), _node(shared, "hub-b")
    on_a = tmp_path / "a.jpg"
    kept = _snapshot(shared, a, on_a)
    # An export under way on a's disk, whose path this machine (as b sees it) has not.
    partial = tmp_path / ".clip.mp4.partial"
    partial.write_bytes(b"")
    grant = shared.request("a1", "snapshot").grant
    writing = a.begin(partial, "clip", camera_id="a1", grant_id=grant.id).id
    partial.unlink()
    shared.clock.advance(8 * DAY)
    assert b.run(dry_run=True).deleted == []
    run = b.run()
    assert run.deleted == [] and run.elsewhere == 2  # not b's: neither "missing" nor abandoned
    states = {x.id: x.state for x in a.artifacts()}
    assert states == {kept: ArtifactState.KEPT, writing: ArtifactState.WRITING}
    assert on_a.exists() and not list(shared.gate.audit.records("retention.deleted"))
    # a's own run: the expired file, and its export whose writer is gone
    done = {d["artifact"]: d["reason"] for d in a.run().deleted}
    assert done == {kept: "expired", writing: "incomplete"}
    assert not on_a.exists()


def test_a_row_from_before_nodes_goes_to_the_node_that_has_its_file(
    shared: World, tmp_path: Path
) -> None:
    a = _node(shared, "hub-a")
    here, gone = tmp_path / "here.jpg", tmp_path / "gone.jpg"
    on_this_disk, on_no_disk_here = _snapshot(shared, a, here), _snapshot(shared, a, gone)
    gone.unlink()  # another node's file, as this machine sees it
    with shared.gate.store.transaction() as db:  # as an older camgate registered them
        db.execute("UPDATE artifacts SET node = NULL")
    shared.clock.advance(8 * DAY)
    run = _node(shared, "hub-b").run()
    assert [d["artifact"] for d in run.deleted] == [on_this_disk] and run.elsewhere == 1
    assert not here.exists()
    nodes = dict(shared.gate.store.query("SELECT id, node FROM artifacts"))
    assert nodes == {on_this_disk: "hub-b", on_no_disk_here: None}  # claimed once, by b
    assert _node(shared, "hub-c").run().deleted == []  # nobody deletes it twice


def test_on_sqlite_every_row_is_the_runs_whatever_its_node(tmp_path: Path) -> None:
    """A store on one machine: a container recreated under a new host name still deletes
    what it registered before (the node is not a filter there)."""
    world = World(tmp_path)  # a SQLite file
    try:
        world.enrol("alice", ["a1"], retention_days=7)
        path = tmp_path / "old.jpg"
        art = _snapshot(world, _node(world, "old-container-id"), path)
        world.clock.advance(8 * DAY)
        assert [d["artifact"] for d in _node(world, "new-container-id").run().deleted] == [art]
    finally:
        anyio.run(world.gate.aclose)


def test_the_node_is_camgate_node_else_remembered_else_the_host_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CAMGATE_NODE", raising=False)
    kept = tmp_path / "store.pg.node"
    assert node_name(kept) == socket.gethostname()
    assert kept.read_text().strip() == socket.gethostname() and kept.stat().st_mode & 0o077 == 0
    kept.write_text("hub-east\n")  # the host name changes; the node stays
    assert node_name(kept) == "hub-east"
    monkeypatch.setenv("CAMGATE_NODE", "hub-3")
    assert node_name(kept) == "hub-3"


#: A retention run of node "hub-a" in another process with another home, holding its lock.
HOLDER = textwrap.dedent(
    """
    import sys
    from camgate.db.writers import pg_session_lock

    with pg_session_lock(sys.argv[1], "camgate-retention:hub-a", "store") as taken:
        print("taken" if taken else "busy", flush=True)
        sys.stdin.read()
    """
)


def test_one_run_per_node_across_processes(shared: World) -> None:
    """Two processes of one node with different homes (so different lock files) cannot run
    at once; another node can."""
    assert shared.gate.store.dsn is not None
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, shared.gate.store.dsn],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "taken"
        with pytest.raises(ConfigError, match="another retention run.*'hub-a'"):
            _node(shared, "hub-a").run()
        assert _node(shared, "hub-b").run().deleted == []  # another node runs meanwhile
    finally:
        holder.kill()
        holder.wait()
    # The server dropped the dead process's lock with its session.
    wait_until(lambda: _runs(shared, "hub-a"), "hub-a's lock given back", 10)


def _runs(world: World, node: str) -> bool:
    try:
        _node(world, node).run()
    except ConfigError:
        return False
    return True
