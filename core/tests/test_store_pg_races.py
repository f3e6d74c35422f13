"""Two hubs on one PostgreSQL, racing where a narrower write lock would let them run side by
side (docs/deployment.md "PostgreSQL"): a grant and a revocation of its consent, and live grants
under a per-camera cap. Whatever locks the store takes, these outcomes must hold.

Each hub is its own Gate with its own connections (as two ``camgate serve`` processes). The
interleavings are forced with PostgreSQL's own locks, taken by the test on its own connection
(a table lock that holds one hub at a chosen statement), never by patching camgate.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import psycopg
import pytest
from camgate import AccessDenied, ConsentTerms, Gate, GeoPoint, Owner, Waiver
from camgate.gate import builtin_plugins
from camgate.grants import GrantSigner
from camgate.plugins import PluginHost
from camgate.rules import AgencyRules, LiveCaps
from camgate.store import Store
from camgate.testing import DeclaringAdapters, camera_north_of, wait_until

CENTRE = GeoPoint(32.2988, -90.1848)


def _hub(dsn: str, home: Path, rules: AgencyRules | None = None) -> Gate:
    """One hub: its own store connections and audit log over the shared database."""
    store = Store(dsn, home=home)
    builtins = builtin_plugins(store, rules) | {"adapters": DeclaringAdapters()}
    host = PluginHost(builtins=builtins, entry_points=False)
    return Gate(store=store, host=host, signer=GrantSigner.load_or_create(home / "hub.key"))


Hubs = tuple[Gate, Gate, str, str]


@pytest.fixture
def two_hubs(
    tmp_path: Path, postgres: Any, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[[AgencyRules | None], Hubs]]:
    """Make two hubs under ``rules`` over a fresh database, owner o1's camera c1 enrolled for
    snapshots and live view and an open incident: ``(hub a, hub b, incident id, dsn)``."""
    monkeypatch.setenv("CAMGATE_HOME", str(tmp_path))
    made: list[Gate] = []

    def make(rules: AgencyRules | None = None) -> Hubs:
        dsn = postgres.create_database()
        a, b = _hub(dsn, tmp_path, rules), _hub(dsn, tmp_path, rules)
        made.extend((a, b))
        waiver = a.publish_waiver(Waiver("w1", "I agree."))
        a.add_owner(Owner("o1", "Owner 1"))
        a.add_camera(camera_north_of("c1", "o1", CENTRE, 20.0))
        a.enrol(
            "o1",
            ["c1"],
            waiver_version="w1",
            waiver_sha256=waiver.sha256,
            terms=ConsentTerms(scopes=["snapshot", "live"]),
        )
        incident = a.report_incident("burglary", CENTRE, radius_m=500).id
        return a, b, incident, dsn

    try:
        yield make
    finally:
        for gate in made:
            anyio.run(gate.aclose)


def _in_thread(work: Callable[[], Any]) -> tuple[threading.Thread, dict[str, Any]]:
    """Run ``work`` in a thread; the dict gets its ``result`` or its ``error``."""
    out: dict[str, Any] = {}

    def run() -> None:
        try:
            out["result"] = work()
        except Exception as exc:
            out["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, out


def _lock_waits(watch: psycopg.Connection[Any], relation: str | None = None) -> int:
    """Backends waiting for a heavyweight lock (on ``relation`` only, when given)."""
    if relation is None:
        row = watch.execute("SELECT count(*) FROM pg_locks WHERE NOT granted").fetchone()
    else:
        row = watch.execute(
            "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
            "WHERE NOT l.granted AND c.relname = %s",
            (relation,),
        ).fetchone()
    assert row is not None
    return int(row[0])


def test_a_grant_racing_a_revocation_of_its_consent_commits_before_it_or_not_at_all(
    two_hubs: Callable[[AgencyRules | None], Hubs],
) -> None:
    """Hub a has checked the consent and is about to write the grant when hub b revokes it.
    Either the grant commits (and its grant.issued record) before the revocation, or it is
    refused: never a grant recorded after the consent.revoked record of its consent."""
    a, b, incident, dsn = two_hubs(None)
    with (
        psycopg.connect(dsn, autocommit=True) as holder,
        psycopg.connect(dsn, autocommit=True) as watch,
    ):
        holder.execute("BEGIN")
        holder.execute("LOCK TABLE grants IN SHARE MODE")  # hub a stops at its grant's INSERT
        granting, got = _in_thread(
            lambda: anyio.run(
                lambda: a.request_access(incident, "c1", "snapshot", requested_by="x", wait=False)
            )
        )
        wait_until(lambda: _lock_waits(watch, "grants") == 1, limit=60.0)
        revoking, revoked = _in_thread(lambda: anyio.run(b.revoke, "o1"))
        # The revocation either finishes (nothing holds it) or waits for hub a's transaction.
        wait_until(lambda: not revoking.is_alive() or _lock_waits(watch) >= 2, limit=60.0)
        holder.execute("COMMIT")
        granting.join(60)
        revoking.join(60)
    assert "error" not in revoked, revoked
    assert revoked["result"] == ["c1"]
    assert "result" in got or isinstance(got.get("error"), AccessDenied), got
    seqs = {r.kind: r.seq for r in a.audit.records() if r.kind != "owner.notified"}
    assert "consent.revoked" in seqs
    if "grant.issued" in seqs:
        assert seqs["grant.issued"] < seqs["consent.revoked"], seqs
        assert "result" in got  # the grant handed out is the one recorded before
    else:
        assert isinstance(got.get("error"), AccessDenied)
    assert a.store.active_consent("c1") is None


def test_live_grants_racing_on_two_hubs_never_pass_a_per_camera_cap(
    two_hubs: Callable[[AgencyRules | None], Hubs],
) -> None:
    """Both hubs decide a 60 s live view of c1 under a 90 s per-camera cap, their grants
    written at once: exactly one is granted, the other refused by the cap."""
    a, b, incident, dsn = two_hubs(AgencyRules(live_caps=LiveCaps(per_camera_week_s=90.0)))
    with (
        psycopg.connect(dsn, autocommit=True) as holder,
        psycopg.connect(dsn, autocommit=True) as watch,
    ):
        holder.execute("BEGIN")
        holder.execute("LOCK TABLE grants IN SHARE MODE")  # both hubs reach the grant first
        threads = [
            _in_thread(
                lambda hub=hub: anyio.run(  # type: ignore[misc]
                    lambda: hub.request_access(
                        incident,
                        "c1",
                        "live",
                        requested_by=f"officer-{id(hub)}",
                        duration_s=60,
                        wait=False,
                    )
                )
            )
            for hub in (a, b)
        ]
        # Both at the grant: one waits on the table, the other (holding the camera's cap
        # lock) behind it, or both on the table when the cap is not locked.
        wait_until(lambda: _lock_waits(watch) >= 2, limit=60.0)
        holder.execute("COMMIT")
        for thread, _ in threads:
            thread.join(60)
    outcomes = [out for _, out in threads]
    granted = [o for o in outcomes if "result" in o]
    refused = [o for o in outcomes if isinstance(o.get("error"), AccessDenied)]
    assert len(granted) == 1 and len(refused) == 1, outcomes
    assert "agency.live-time" in str(refused[0]["error"].decision.reasons)
    issued = [r for r in a.audit.records("grant.issued")]
    assert len(issued) == 1
