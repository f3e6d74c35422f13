"""The gate helpers' shared parts (tests/security/test_gate_*.py), and a child process to crash.

``build_gate(db)`` opens a real gate over the SQLite file ``db`` (its key beside it, the audit log
where ``CAMGATE_AUDIT_DSN`` says) with the decision-only ``test`` adapter. Run as a script,
``python _gate.py DB ACTION [ARG] [--kill KIND POINT]`` performs one gate action in a process of
its own, and with ``--kill`` SIGKILLs itself at an exact point of writing the audit record
``KIND``:

- ``in-tx``: when the record's row is inserted into the SQLite audit table (for a change made in
  the same transaction, before COMMIT; otherwise after the change committed on its own);
- ``before-record`` / ``after-record``: just before / after the record is appended to the audit
  backend (PostgreSQL: its own database).
- ``at-notice``: when the owner notice of that event is handed to the notifiers.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from camgate import ConsentTerms, Gate, GeoPoint, Owner, Waiver
from camgate.audit.base import ChainingBackend
from camgate.audit.sqlite import _SQLiteTx
from camgate.errors import AnswerPending, ValidationError
from camgate.gate import builtin_plugins
from camgate.grants import GrantSigner
from camgate.plugins import PluginHost
from camgate.rules import AgencyRules
from camgate.store import Store
from camgate.testing import DeclaringAdapters, ManualClock, camera_north_of

CENTRE = GeoPoint(32.2988, -90.1848)
WAIVER = Waiver("w1", "I agree.")
ALL = ("live", "snapshot", "recorded")


@pytest.fixture(scope="module")
def postgres() -> Iterator[Any]:
    """A real PostgreSQL server (Debian's package) for a test module, on loopback (assign it
    in the module: ``postgres = _gate.postgres``)."""
    from camgate.testing.pgserver import server_for_tests

    with server_for_tests() as server:
        yield server


def build_gate(
    db: Path,
    *,
    clock: Any = None,
    rules: AgencyRules | None = None,
    plugins: dict[str, object] | None = None,
) -> Gate:
    """A real gate over ``db`` (key file beside it) with the ``test`` adapter."""
    store = Store(db)
    builtins = builtin_plugins(store, rules) | {"adapters": DeclaringAdapters()}
    host = PluginHost(builtins=builtins | (plugins or {}), entry_points=False)
    signer = GrantSigner.load_or_create(Path(db).with_suffix(".key"))
    return Gate(store=store, host=host, signer=signer, clock=clock or ManualClock())


def terms(mode: str = "pre-authorised", **more: Any) -> ConsentTerms:
    """Consent terms sharing every scope, in ``mode``."""
    return ConsentTerms(scopes=ALL, mode=mode, **more)  # type: ignore[arg-type]


def enrol(gate: Gate, owner: str, cams: list[str], mode: str = "pre-authorised") -> str:
    """Enrol ``cams`` of ``owner`` under waiver w1; the consent record's id."""
    return gate.enrol(
        owner, cams, waiver_version="w1", waiver_sha256=WAIVER.sha256, terms=terms(mode)
    ).id


def populate(gate: Gate, cameras: int = 2) -> str:
    """Owner alice with cameras a1..aN (a1 enrolled pre-authorised), an open incident; its id."""
    gate.publish_waiver(WAIVER)
    gate.add_owner(Owner("alice", "Alice"))
    for i in range(1, cameras + 1):
        gate.add_camera(camera_north_of(f"a{i}", "alice", CENTRE, 40.0 * i))
    enrol(gate, "alice", ["a1"])
    return gate.report_incident("shooting", CENTRE, 1000.0).id


def run_child(db: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run this file as a child process on ``db`` (environment inherited)."""
    return subprocess.run(
        [sys.executable, __file__, str(db), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _inject(gate: Gate, kind: str, point: str) -> None:
    if point == "in-tx":
        insert = _SQLiteTx.insert

        def killing_insert(self: Any, rows: Any, *rest: Any) -> None:
            if any(row[2] == kind for row in rows):
                _die()
            insert(self, rows, *rest)

        _SQLiteTx.insert = killing_insert  # type: ignore[method-assign]
    elif point in ("before-record", "after-record"):
        append = ChainingBackend.append

        def killing_append(self: Any, entry: Any) -> Any:
            if entry.kind == kind and point == "before-record":
                _die()
            record = append(self, entry)
            if entry.kind == kind:
                _die()
            return record

        ChainingBackend.append = killing_append  # type: ignore[method-assign]
    elif point == "at-notice":
        notify = gate.host.notify_owner

        def killing_notify(notice: Any) -> bool:
            if notice.event == kind:
                _die()
            return notify(notice)

        gate.host.notify_owner = killing_notify  # type: ignore[method-assign]
    else:
        raise SystemExit(f"unknown kill point {point!r}")


def _child(argv: list[str]) -> None:
    db, action, *rest = argv
    kill = None
    if "--kill" in rest:
        i = rest.index("--kill")
        kill = (rest[i + 1], rest[i + 2])
        rest = rest[:i]
    rules = None
    if "--cap" in rest:
        i = rest.index("--cap")
        rules = AgencyRules(name="test", enrolment_caps={"private": int(rest[i + 1])})
        rest = rest[:i] + rest[i + 2 :]
    gate = build_gate(Path(db), rules=rules)
    if kill is not None:
        _inject(gate, *kill)

    async def act() -> Any:
        if action == "setup":
            incident = populate(gate)
            enrol_ask = rest and rest[0] == "ask"
            if enrol_ask:  # a1 re-enrolled ask-first, and a request held for alice's answer
                await gate.revoke("alice")
                enrol(gate, "alice", ["a1"], mode="ask")
                try:
                    await gate.request_access(
                        incident, "a1", "live", requested_by="officer-7", wait=False
                    )
                except AnswerPending as held:
                    return {"incident": incident, "request": held.pending.request_id}
            return {"incident": incident}
        if action == "enrol":
            return enrol(gate, "alice", ["a2"])
        if action == "setup-race":  # alice with cameras r1..rN, none enrolled
            gate.publish_waiver(WAIVER)
            gate.add_owner(Owner("alice", "Alice"))
            for i in range(1, int(rest[0]) + 1):
                gate.add_camera(camera_north_of(f"r{i}", "alice", CENTRE, 40.0 * i))
            return None
        if action == "race-enrol":  # say ready, wait for the go, enrol one camera
            camera, sync = rest[0], Path(rest[1])
            (sync / f"ready-{camera}").touch()
            while not (sync / "go").exists():  # noqa: ASYNC110 (another process's file)
                await anyio.sleep(0.001)
            try:
                return enrol(gate, "alice", [camera])
            except ValidationError as exc:
                return f"refused: {exc}"
        if action == "revoke":
            return await gate.revoke("alice")
        if action == "masks":
            return str(await gate.set_masks("alice", "a1", [[(0, 0), (0.5, 0), (0.5, 0.5)]]))
        if action == "remove":
            return (await gate.remove_camera("a1")).id
        if action == "answer":
            return str(await gate.answer(rest[0], True))
        if action in ("request", "hold"):  # a1 live under incident rest[0]; hold: don't wait
            try:
                signed = await gate.request_access(
                    rest[0], "a1", "live", requested_by="officer-7", wait=action == "request"
                )
            except AnswerPending as held:
                return held.pending.request_id
            return signed.grant.id
        if action == "inspect":
            return None
        raise SystemExit(f"unknown action {action!r}")

    result = anyio.run(act)
    await_close = gate.aclose
    anyio.run(await_close)
    print(json.dumps(result))


if __name__ == "__main__":
    _child(sys.argv[1:])
