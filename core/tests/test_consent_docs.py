"""The worked example of docs/consent.md runs, and does what the page says."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import pytest
from camgate import AccessDenied, Camera, ConsentTerms, Gate, GeoPoint, Owner, Waiver
from camgate.gate import builtin_plugins
from camgate.grants import GrantSigner
from camgate.plugins import PluginHost
from camgate.store import Store
from camgate.testing import DeclaringAdapters, ManualClock

DOC = Path(__file__).resolve().parents[2] / "docs" / "consent.md"
SCHOOL = GeoPoint(32.3137, -90.2029)


def _example() -> str:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.DOTALL)
    (block,) = [b for b in blocks if "class SchoolHours" in b]
    return block


@pytest.fixture
def gate(tmp_path: Path) -> Iterator[Gate]:
    # Tuesday 2026-11-24, 10:00 in Jackson (16:00 UTC): school hours
    clock = ManualClock(datetime(2026, 11, 24, 16, 0, tzinfo=UTC))
    store = Store(tmp_path / "g.db")
    host = PluginHost(
        builtins=builtin_plugins(store) | {"adapters": DeclaringAdapters()}, entry_points=False
    )
    gate = Gate(store=store, host=host, signer=GrantSigner.generate(), clock=clock)
    waiver = gate.publish_waiver(Waiver("w1", "I agree."))
    gate.add_owner(Owner("dee", "Dee", time_zone="America/Chicago"))
    near = GeoPoint(SCHOOL.lat + 100 / 111_000, SCHOOL.lon)
    gate.add_camera(Camera("near", "test", "test://near", "dee", near))
    gate.enrol(
        "dee",
        ["near"],
        waiver_version="w1",
        waiver_sha256=waiver.sha256,
        terms=ConsentTerms(scopes=["live", "snapshot"]),
    )
    yield gate
    store.close()


def test_the_worked_example_refuses_live_view_near_a_school(gate: Gate) -> None:
    namespace: dict[str, Any] = {"gate": gate}
    exec(compile(_example(), str(DOC), "exec"), namespace)
    incident = gate.report_incident("shooting", SCHOOL, 500.0)

    def ask(scope: str) -> Any:
        return anyio.run(lambda: gate.request_access(incident.id, "near", scope, requested_by="o7"))

    with pytest.raises(AccessDenied, match="no live view within 150 m of Lanier High"):
        ask("live")
    assert ask("snapshot").grant.camera_id == "near"
    gate.clock.advance(8 * 3600)  # type: ignore[attr-defined] - 18:00 local
    assert ask("live").grant.scope == "live"


def test_the_worked_ordinance_example_does_what_the_page_says(tmp_path: Path) -> None:
    import json
    import os
    import subprocess
    import sys
    from datetime import timedelta

    from camgate.errors import ValidationError
    from camgate.rules import AgencyRules

    (block,) = [
        b for b in re.findall(r"```toml\n(.*?)```", DOC.read_text(), re.DOTALL) if "live_caps" in b
    ]
    rules_file = tmp_path / "ordinance.toml"
    rules_file.write_text(block, encoding="utf-8")
    centre = GeoPoint(32.2988, -90.1848)
    clock = ManualClock(datetime(2026, 3, 2, 18, 0, tzinfo=UTC))
    db = tmp_path / "g.db"
    gate = Gate.open(db, clock=clock, rules=AgencyRules.from_toml(rules_file))
    try:
        waiver = gate.publish_waiver(Waiver("w1", "I agree."))
        for n in range(1, 7):
            gate.add_owner(Owner(f"o{n}", f"Owner {n}"))
            where = GeoPoint(centre.lat + 20.0 * n / 111_000, centre.lon)
            gate.add_camera(Camera(f"p{n}", "rtsp", f"rtsp://127.0.0.1:9/p{n}", f"o{n}", where))
        for n in range(1, 7):
            enrol = lambda n=n: gate.enrol(  # noqa: E731
                f"o{n}", [f"p{n}"], waiver_version="w1", waiver_sha256=waiver.sha256,
                terms=ConsentTerms(scopes=["live", "snapshot"]),
            )  # fmt: skip
            if n < 6:
                enrol()
            else:
                with pytest.raises(ValidationError, match="caps enrolment at 5 private"):
                    enrol()
        shooting = gate.report_incident("shooting", centre, 500.0, window_s=48 * 3600)
        protest = gate.report_incident("protest", centre, 500.0)

        def ask(incident: str, scope: str, hours: float, purpose: str = "investigation") -> Any:
            return anyio.run(
                lambda: gate.request_access(
                    incident,
                    "p1",
                    scope,
                    requested_by="o-17",
                    duration_s=hours * 3600,
                    purpose=purpose,
                )
            )

        assert ask(shooting.id, "live", 1).grant.scope == "live"
        with pytest.raises(AccessDenied) as more:
            ask(shooting.id, "live", 25)
        (why,) = more.value.decision.reasons
        assert why.startswith(
            "agency.live-time: Jackson RTCC allows 24 h of live view for this incident; 1 h "
            "used, 23 h left; "
        )
        assert why.endswith("; 25 h asked")
        for purpose in ("investigation", "crowd-safety"):
            with pytest.raises(AccessDenied) as watched:
                ask(protest.id, "snapshot", 0.01, purpose)
            assert [v.policy for v in watched.value.decision.denials] == [
                "agency.protected-activity"
            ]
        clock.advance((datetime(2026, 4, 15, 5, 0, tzinfo=UTC) - clock.now()).total_seconds())
        late = gate.report_incident("shooting", centre, 500.0)
        with pytest.raises(AccessDenied) as ended:
            ask(late.id, "snapshot", 0.01)
        refused = ended.value.decision.request_id
        assert [n["event"] for n in gate.store.notices("o1")].count("program-ended") == 1
        clock.advance(timedelta(days=1).total_seconds())
        with pytest.raises(AccessDenied):
            ask(late.id, "snapshot", 0.01)
        assert [n["event"] for n in gate.store.notices("o1")].count("program-ended") == 1
    finally:
        gate.store.close()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAMGATE_")}
    done = subprocess.run(
        [sys.executable, "-m", "camgate.cli", "--db", str(db), "consent", "explain", refused],
        capture_output=True, text=True, env=env, timeout=60, check=True,
    )  # fmt: skip
    assert "ended on 2026-04-15 00:00-05:00" in done.stdout
    assert "(agency.program)" in done.stdout
    assert (
        json.loads(
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "camgate.cli",
                    "--db",
                    str(db),
                    "--rules",
                    str(rules_file),
                    "consent",
                    "program",
                ],
                capture_output=True,
                text=True,
                env=env,
                timeout=60,
                check=True,
            ).stdout
        )["state"]
        == "ended"
    )
