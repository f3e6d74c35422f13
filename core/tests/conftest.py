"""Shared by the consent tests: a real gate over a real store, with a clock moved by hand."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from camgate import AccessDenied, ConsentTerms, Gate, GeoPoint, Owner, Waiver
from camgate.gate import builtin_plugins
from camgate.grants import GrantSigner
from camgate.plugins import PluginHost
from camgate.rules import AgencyRules, SensitivePlace
from camgate.store import Store
from camgate.testing import DeclaringAdapters, ManualClock, camera_north_of
from camgate_rtsp.testing.server import Mount, RtspTestServer, serving

CENTRE = GeoPoint(32.2988, -90.1848)
CLINIC = GeoPoint(CENTRE.lat + 300 / 111_000, CENTRE.lon)
JACKSON = AgencyRules(
    name="Jackson RTCC",
    enrolment_caps={"city": 5, "private": 5},
    live_incident_kinds=["shooting", "armed robbery"],
    banned_purposes=["Face Recognition"],
    sensitive_places=[SensitivePlace("women's clinic", CLINIC, 50.0)],
)


class World:
    """A gate with owners alice (America/Chicago) and bob, cameras north of the centre."""

    def __init__(
        self,
        tmp: Path,
        rules: AgencyRules | None = None,
        plugins: dict[str, object] | None = None,
        db: str | Path | None = None,
    ) -> None:
        self.clock = ManualClock()
        store = Store(db or tmp / "g.db", home=tmp)
        host = PluginHost(
            builtins=builtin_plugins(store, rules)
            | {"adapters": DeclaringAdapters()}
            | (plugins or {}),
            entry_points=False,
        )
        self.gate = Gate(store=store, host=host, signer=GrantSigner.generate(), clock=self.clock)
        self.waiver = self.gate.publish_waiver(Waiver("w1", "I agree."))
        self.gate.add_owner(Owner("alice", "Alice", time_zone="America/Chicago"))
        self.gate.add_owner(Owner("bob", "Bob"))
        self.camera("a1", "alice", 50.0)
        self.camera("b1", "bob", 120.0)
        self.incident = self.gate.report_incident("shooting", CENTRE, 1000.0)

    def camera(self, cam: str, owner: str, north: float, cls: str = "private") -> None:
        self.gate.add_camera(camera_north_of(cam, owner, CENTRE, north, camera_class=cls))

    def enrol(self, owner: str, cams: list[str], **terms: Any) -> None:
        terms.setdefault("scopes", ["live", "snapshot", "recorded"])
        self.gate.enrol(
            owner,
            cams,
            waiver_version="w1",
            waiver_sha256=self.waiver.sha256,
            terms=ConsentTerms(**terms),
        )

    def request(self, cam: str = "a1", scope: str = "live", **kw: Any) -> Any:
        kw.setdefault("requested_by", "officer-7")
        return anyio.run(
            lambda: self.gate.request_access(self.incident.id, cam, scope, wait=False, **kw)
        )

    def refusal(self, cam: str = "a1", scope: str = "live", **kw: Any) -> dict[str, str]:
        with pytest.raises(AccessDenied) as refused:
            self.request(cam, scope, **kw)
        return {v.policy: v.reason for v in refused.value.decision.denials}

    def state(self) -> tuple[Any, ...]:
        """Everything a bad input must leave unchanged."""
        q = self.gate.store.query
        return tuple(
            q(f"SELECT * FROM {t} ORDER BY 1")  # audit: seq; others: their id
            for t in ("consents", "requests", "decisions", "grants", "pending", "notices", "audit")
        )


@pytest.fixture(scope="session")
def store_template(postgres: Any, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A database holding the store's migrated schema, copied for each test (faster than
    migrating each); its name."""
    dsn = postgres.create_database()
    Store(dsn, home=tmp_path_factory.mktemp("template")).close()
    return str(dsn.rsplit("/", 1)[1])


@pytest.fixture(params=["sqlite", "postgres"])
def store_db(request: pytest.FixtureRequest, tmp_path: Path) -> str | Path:
    """The store of a test, once per engine: a SQLite file, then a fresh PostgreSQL database
    (the same tests prove both; see docs/deployment.md "PostgreSQL")."""
    if request.param == "postgres":
        template = request.getfixturevalue("store_template")
        return str(request.getfixturevalue("postgres").create_database(template=template))
    return tmp_path / "g.db"


@pytest.fixture
def world(tmp_path: Path, store_db: str | Path) -> Iterator[World]:
    w = World(tmp_path, db=store_db)
    yield w
    anyio.run(w.gate.aclose)


@pytest.fixture
def jackson(tmp_path: Path, store_db: str | Path) -> Iterator[World]:
    w = World(tmp_path, JACKSON, db=store_db)
    yield w
    anyio.run(w.gate.aclose)


# ---------------------------------------------------------------------- audit stores


@pytest.fixture(scope="session")
def postgres() -> Iterator[Any]:
    """A real PostgreSQL server (Debian's package) for the session, on loopback.

    Missing PostgreSQL fails the tests that need it; set CAMGATE_SKIP_POSTGRES=1 to skip them.
    """
    from camgate.testing.pgserver import server_for_tests

    with server_for_tests() as server:
        yield server


@pytest.fixture(scope="module")
def own_server() -> Iterator[Any]:
    """A PostgreSQL server of the test module's own, which its tests may stop and start
    (``pause``/``resume``) without disturbing the session's."""
    from camgate.testing.pgserver import server_for_tests

    with server_for_tests() as server:
        yield server


@pytest.fixture(params=["sqlite", "postgres"])
def audit_store(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Runs a test once per audit store. For "postgres", CAMGATE_AUDIT_DSN names a fresh
    database, so every AuditLog (and Gate, CLI, child process) in the test uses it."""
    from camgate.audit import AUDIT_DSN_ENV

    if request.param == "postgres":
        server = request.getfixturevalue("postgres")
        monkeypatch.setenv(AUDIT_DSN_ENV, server.create_database())
    else:
        monkeypatch.delenv(AUDIT_DSN_ENV, raising=False)
    return str(request.param)


@pytest.fixture(scope="module")
def server() -> Iterator[RtspTestServer]:
    """A GStreamer RTSP server with one camera, ``/cam1`` (for the tests that stream for real)."""
    with serving([Mount("/cam1", gop_frames=10)]) as srv:
        yield srv
