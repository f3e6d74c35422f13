"""Retention with several hubs on one store: each node deletes only the files on its own disk.

Two nodes share the store (both engines; on PostgreSQL this is the distributed shape of
docs/deployment.md). Node "hub-b" has no such paths as node "hub-a"'s: without the node on each
row, b's run recorded a's expired files as deleted (found "missing") while they stayed on a's
disk, and deleted a's export under way as abandoned.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
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


def _node(w: World, name: str) -> Retention:
    return Retention(
        w.gate.store, w.gate.audit, rules=lambda: w.gate.rules, clock=w.clock, node=name
    )


def test_each_node_deletes_only_its_own_files(world: World, tmp_path: Path) -> None:
    world.enrol("alice", ["a1"], retention_days=7)
    a, b = _node(world, "hub-a"), _node(world, "hub-b")
    grant = world.request("a1", "snapshot").grant
    on_a = tmp_path / "a.jpg"
    on_a.write_bytes(b"a's snapshot")
    kept = a.register(on_a, "snapshot", camera_id="a1", grant_id=grant.id)
    # An export under way on a's disk, whose path this machine (as b sees it) has not.
    partial = tmp_path / ".clip.mp4.partial"
    partial.write_bytes(b"")
    writing = a.begin(partial, "clip", camera_id="a1", grant_id=grant.id)
    partial.unlink()
    world.clock.advance(8 * DAY)
    assert b.run(dry_run=True).deleted == []
    assert b.run().deleted == []  # not b's files: neither "missing" nor abandoned
    states = {x.id: x.state for x in a.artifacts()}
    assert states == {kept.id: ArtifactState.KEPT, writing.id: ArtifactState.WRITING}
    assert on_a.exists() and not list(world.gate.audit.records("retention.deleted"))
    # a's own run: the expired file, and its export whose writer is gone
    done = {d["artifact"]: d["reason"] for d in a.run().deleted}
    assert done == {kept.id: "expired", writing.id: "incomplete"}
    assert not on_a.exists()


def test_a_row_from_before_nodes_is_any_nodes(world: World, tmp_path: Path) -> None:
    world.enrol("alice", ["a1"], retention_days=7)
    grant = world.request("a1", "snapshot").grant
    old = tmp_path / "old.jpg"
    old.write_bytes(b"registered by an older camgate")
    art = _node(world, "hub-a").register(old, "snapshot", camera_id="a1", grant_id=grant.id)
    with world.gate.store.transaction() as db:
        db.execute("UPDATE artifacts SET node = NULL WHERE id = ?", (art.id,))
    world.clock.advance(8 * DAY)
    assert [d["artifact"] for d in _node(world, "hub-b").run().deleted] == [art.id]
    assert not old.exists()


def test_the_node_is_camgate_node_or_the_host_name(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    monkeypatch.delenv("CAMGATE_NODE", raising=False)
    assert node_name() == socket.gethostname()
    monkeypatch.setenv("CAMGATE_NODE", "hub-3")
    assert node_name() == "hub-3"


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


def test_one_run_per_node_across_processes_on_postgresql(
    tmp_path: Path, postgres: Any, store_template: str
) -> None:
    """Two processes of one node with different homes (so different lock files) cannot run
    at once; another node can."""
    world = World(tmp_path, db=postgres.create_database(template=store_template))
    try:
        assert world.gate.store.dsn is not None
        holder = subprocess.Popen(
            [sys.executable, "-c", HOLDER, world.gate.store.dsn],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert holder.stdout is not None and holder.stdout.readline().strip() == "taken"
            with pytest.raises(ConfigError, match="another retention run.*'hub-a'"):
                _node(world, "hub-a").run()
            assert _node(world, "hub-b").run().deleted == []  # another node runs meanwhile
        finally:
            holder.kill()
            holder.wait()
        # The server dropped the dead process's lock with its session.
        wait_until(lambda: _runs(world, "hub-a"), "hub-a's lock given back", 10)
    finally:
        anyio.run(world.gate.aclose)


def _runs(world: World, node: str) -> bool:
    try:
        _node(world, node).run()
    except ConfigError:
        return False
    return True
