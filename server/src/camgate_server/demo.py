"""``camgate serve --demo``: the HTTP API over a fresh demo city, to click through at once.

A throwaway folder holds a new gate store with the rtsp adapter's simulated cameras (a real
GStreamer RTSP server on loopback), three owners with different terms, an open incident near
their cameras, and one account per role whose passwords are made at random for this run and
printed once on the console. Nothing is kept: the folder goes when the server stops.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from camgate import Gate
from camgate.demo import JACKSON, WAIVER_TEXT
from camgate.models import Camera, CameraClass, ConsentTerms, GeoPoint, Owner, Scope, Waiver

from camgate_server.accounts import AccountStore
from camgate_server.policy import Role

__all__ = ["DEMO_OWNERS", "demo_city"]

#: owner id → (name, metres north of the incident, terms): alice shares live and snapshots at
#: once, bob is asked first, carol shares snapshots only.
DEMO_OWNERS: dict[str, tuple[str, float, ConsentTerms]] = {
    "alice": ("Alice (corner store)", 40.0, ConsentTerms(scopes={Scope.LIVE, Scope.SNAPSHOT})),
    "bob": ("Bob (residence)", -60.0, ConsentTerms(scopes={Scope.LIVE}, mode="ask")),
    "carol": ("Carol (laundromat)", 120.0, ConsentTerms(scopes={Scope.SNAPSHOT})),
}
_STAFF = (Role.ADMIN, Role.OPERATOR, Role.SUPERVISOR, Role.AUDITOR)


def _populate(gate: Gate, sources: list[str]) -> None:
    waiver = gate.publish_waiver(Waiver("demo-1", WAIVER_TEXT))
    for (owner_id, (name, north_m, terms)), source in zip(
        DEMO_OWNERS.items(), sources, strict=True
    ):
        gate.add_owner(Owner(owner_id, name))
        camera_id = f"cam-{owner_id}"
        gate.add_camera(
            Camera(
                id=camera_id,
                adapter="rtsp",
                source=source,
                owner_id=owner_id,
                position=GeoPoint(JACKSON.lat + north_m / 111_000, JACKSON.lon),
                camera_class=CameraClass.PRIVATE,
                label=name,
            )
        )
        gate.enrol(
            owner_id,
            [camera_id],
            waiver_version=waiver.version,
            waiver_sha256=waiver.sha256,
            terms=terms,
        )
    gate.report_incident("burglary", JACKSON, 500.0)


def _accounts(accounts: AccountStore) -> dict[str, tuple[str, str]]:
    """One account per staff role and one per owner, each with a fresh random password:
    username → (role, password)."""
    made = {str(staff): (str(staff), secrets.token_urlsafe(12)) for staff in _STAFF}
    for owner_id in DEMO_OWNERS:
        made[owner_id] = (str(Role.OWNER), secrets.token_urlsafe(12))
    for username, (role, password) in made.items():
        owner = username if role == Role.OWNER else None
        accounts.create_account(username, password, role, owner_id=owner)
    return made


@asynccontextmanager
async def demo_city(
    folder: Path, accounts: AccountStore, *, say: Callable[[str], Any] | None = None
) -> AsyncIterator[Gate]:
    """The demo's gate in ``folder`` (a new store), its simulated cameras running, and its
    accounts created in ``accounts``; the accounts and their passwords are told through
    ``say`` (default: printed and flushed to the console) once. On exit the gate closes,
    then the simulator stops."""
    say = say or (lambda line: print(line, flush=True))
    gate = Gate.open(folder / "demo.db")
    closed = False
    try:
        with gate.host.simulator("rtsp", len(DEMO_OWNERS)) as sim:
            try:
                gate.edge.configure("rtsp", sim.settings)
                _populate(gate, list(sim.sources))
                made = _accounts(accounts)
                say("camgate demo: simulated cameras cam-alice, cam-bob, cam-carol near an open")
                say("burglary. Accounts for this run only (random passwords, not kept):")
                for username, (role, password) in made.items():
                    say(f"  {role:<10} {username:<10} {password}")
                yield gate
            finally:
                closed = True
                await gate.aclose()  # streams end before their cameras go
    finally:
        if not closed:
            await gate.aclose()
