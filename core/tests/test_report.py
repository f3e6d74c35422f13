"""The transparency report: numbers that match a real flow with known counts (real gate, real
SQLite file, real RTSP streams), small-count suppression that cannot be undone from the totals,
an HTML page with embedded PNG charts and no owner identity, and a refusal over a broken log."""

from __future__ import annotations

import base64
import json
import re
import sqlite3
import statistics
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest
from camgate import AnswerPending, Camera, ConsentTerms, Gate, GeoPoint, Owner, Waiver
from camgate.audit import AuditLog
from camgate.errors import AccessDenied, ValidationError
from camgate.geofence import distance_m
from camgate.report import Period, build_report, suppress
from camgate.store import Store
from camgate.testing import ManualClock, run_cli
from camgate_rtsp.testing.server import RtspTestServer
from hypothesis import given, settings
from hypothesis import strategies as st

CENTRE = GeoPoint(32.2988, -90.1848)
OWNERS = [f"owner-{i}" for i in range(1, 8)]
NAMES = [f"Resident Number{i}" for i in range(1, 8)]


async def _flow(db: Path, url: str) -> dict[str, Any]:
    """Known counts in November 2026, one request in December. Returns the truth."""
    clock = ManualClock(datetime(2026, 11, 10, 12, 0, tzinfo=UTC))
    gate = Gate.open(db, clock=clock)
    try:
        waiver = gate.publish_waiver(Waiver("w1", "I agree."))
        for owner, name in zip(OWNERS, NAMES, strict=True):
            gate.add_owner(Owner(owner, name))
        for i in range(1, 7):  # six private cameras, 150 m apart going north
            north = GeoPoint(CENTRE.lat + 150 * i / 111_000, CENTRE.lon)
            gate.add_camera(Camera(f"p{i}", "rtsp", url, f"owner-{i}", north))
            gate.enrol(
                f"owner-{i}", [f"p{i}"], waiver_version="w1", waiver_sha256=waiver.sha256,
                terms=ConsentTerms(scopes=["live", "snapshot"], retention_days=1),
            )  # fmt: skip
        for c in ("c1", "c2"):  # two city cameras that ask first
            east = GeoPoint(CENTRE.lat, CENTRE.lon + 0.002 * (1 + (c == "c2")))
            gate.add_camera(Camera(c, "rtsp", url, "owner-7", east, camera_class="city"))
        gate.enrol(
            "owner-7", ["c1", "c2"], waiver_version="w1", waiver_sha256=waiver.sha256,
            terms=ConsentTerms(scopes=["snapshot"], mode="ask", ask_timeout_s=60),
        )  # fmt: skip
        burglary = gate.report_incident("burglary", CENTRE, 2000.0)
        shooting = gate.report_incident("shooting", CENTRE, 2000.0)
        now = clock.now()
        window = (now - timedelta(hours=2), now - timedelta(hours=1))

        async def ask(inc: str, cam: str, scope: str, **kw: Any) -> Any:
            return await gate.request_access(inc, cam, scope, requested_by="officer-9", **kw)

        snaps = [await ask(burglary.id, f"p{i}", "snapshot") for i in range(1, 7)]
        for i in range(1, 6):
            with pytest.raises(AccessDenied):
                await ask(burglary.id, f"p{i}", "recorded", window=window)
        for c in ("c1", "c2"):
            with pytest.raises(AnswerPending):
                await ask(burglary.id, c, "snapshot", wait=False)
        clock.advance(61)
        assert len(gate.expire_pending()) == 2
        for i in range(1, 4):  # three live sessions of exactly one minute each
            signed = await ask(shooting.id, f"p{i}", "live", duration_s=600)
            async with await gate.edge.open_live(f"p{i}", signed) as stream:
                got = 0
                async for _packet in stream:
                    got += 1
                    if got == 3:
                        break
                clock.advance(60)
        for i in (4, 5):  # two clips (the manual clock stands still while they record)
            signed = await ask(shooting.id, f"p{i}", "live", duration_s=600)
            await gate.edge.record_clip(f"p{i}", signed, db.parent / f"p{i}.mp4", 0.5)
        with pytest.raises(AccessDenied):
            await ask(shooting.id, "p6", "recorded", window=window)
        await gate.revoke("owner-6")
        for n, signed in enumerate(snaps):  # six snapshot files, kept one day (the owner's term)
            path = db.parent / f"snap-{n}.jpg"
            path.write_bytes(b"jpeg %d" % n)
            gate.retention.register(
                path, "snapshot", camera_id=signed.grant.camera_id, grant_id=signed.grant.id
            )
        clock.advance(2 * 86400)
        assert len(gate.retention.run().deleted) == 8  # the six snapshots and the two clips
        clock.advance(25 * 86400)  # December
        await ask(gate.report_incident("burglary", CENTRE, 2000.0).id, "p2", "snapshot")
        positions = {c.id: c.position for c in gate.store.cameras()}
        await gate.remove_camera("p5")  # leaves the December count of enrolled cameras
        cams = [f"p{i}" for i in range(1, 7)] + [f"p{i}" for i in range(1, 6)] + ["c1", "c2"]
        cams += ["p1", "p2", "p3", "p4", "p5", "p6"]
        return {"distances": [distance_m(CENTRE, positions[c]) for c in cams]}
    finally:
        await gate.aclose()


@pytest.fixture(scope="module")
def flow(tmp_path_factory: pytest.TempPathFactory, server: RtspTestServer) -> tuple[Path, Any]:
    db = tmp_path_factory.mktemp("report") / "g.db"
    truth = anyio.run(_flow, db, server.url("/cam1"))
    return db, truth


def _report(db: Path, period: str, out: Path, *extra: str) -> dict[str, Any]:
    run_cli("--db", str(db), "report", "--period", period, "--out", str(out), *extra)
    data: dict[str, Any] = json.loads((out / "report.json").read_text())
    return data


def test_report_numbers_match_the_flow(flow: tuple[Path, Any], tmp_path: Path) -> None:
    db, truth = flow
    r = _report(db, "2026-11", tmp_path / "nov", "--k", "1")  # k=1: nothing suppressed
    assert r["log"]["verified"] is True and r["log"]["status"] in ("verified", "consistent")
    page = (tmp_path / "nov" / "report.html").read_text()
    assert ("no outside witness" in page) == (r["log"]["status"] == "consistent")
    assert r["requests"]["cells"] == {
        "burglary": {"granted": 6, "refused": 5, "no-answer": 2, "waiting": 0},
        "shooting": {"granted": 5, "refused": 1, "no-answer": 0, "waiting": 0},
    }
    assert r["requests"]["total"] == 19 and r["requests"]["column_totals"]["granted"] == 11
    f = r["figures"]
    assert f["live_sessions"] == 5 and f["live_minutes"] == 3.0
    assert f["clips_exported"] == 2 and f["files_exported"] == 8 and f["revocations"] == 1
    assert f["median_distance_m"] == pytest.approx(statistics.median(truth["distances"]), abs=0.1)
    assert r["enrolled_in_period"]["cells"]["cameras"] == {"city": 2, "private": 6, "unknown": 0}
    assert r["enrolled_at_end"]["cells"]["cameras"] == {"city": 2, "private": 5, "unknown": 0}
    assert r["retention_deletions"]["cells"] == {"files": {"clip": 2, "snapshot": 6}}

    store = Store(db)  # the same function over the same records, in this process
    audit = AuditLog(store)
    try:
        records = list(audit.records())
    finally:
        audit.close()
        store.close()
    assert build_report(records, Period.parse("2026-11"), k=1) | {"log": r["log"]} == r
    dec = build_report(records, Period.parse("2026-12"), k=1)
    assert dec["requests"]["total"] == 1 and dec["figures"]["revocations"] == 0
    assert dec["enrolled_in_period"]["total"] == 0
    assert dec["enrolled_at_end"]["cells"]["cameras"] == {"city": 2, "private": 4, "unknown": 0}
    year = build_report(records, Period.parse("2026"), k=1)
    quarter = build_report(records, Period.parse("2026-q4"), k=1)
    assert year["requests"]["total"] == quarter["requests"]["total"] == 20
    assert quarter["period"] == "2026-Q4" and quarter["from"].startswith("2026-10-01")


def _lines(table: dict[str, Any]) -> list[list[tuple[str, str]]]:
    rows, cols = table["rows"], table["columns"]
    lines = [[(r, c) for c in [*cols, "total"]] for r in [*rows, "total"]]
    return lines + [[(r, c) for r in [*rows, "total"]] for c in [*cols, "total"]]


def _check_suppression(table: dict[str, Any], truth: dict[tuple[str, str], int], k: int) -> None:
    hidden = {tuple(x) for x in table["suppressed"]}
    shown = {(r, c): table["cells"][r][c] for r in table["rows"] for c in table["columns"]} | {
        (r, "total"): v for r, v in table["row_totals"].items()
    }
    shown |= {("total", c): v for c, v in table["column_totals"].items()}
    shown[("total", "total")] = table["total"]
    for key, value in truth.items():
        if key in hidden:
            assert shown[key] is None
        else:
            assert shown[key] == value, key
            assert not 0 < value < k, f"{key}={value} was published"
    for line in _lines(table):
        out = [key for key in line if key in hidden]
        cells = [key for key in line[:-1]]
        assert len(out) != 1, f"a line with one suppressed entry can be solved: {line}"
        mass = sum(truth[key] for key in cells if key in hidden)
        assert not out or mass >= k or all(key in hidden for key in cells)


def _truth(cells: dict[str, dict[str, int]], cols: list[str]) -> dict[tuple[str, str], int]:
    t = {(r, c): cells[r].get(c, 0) for r in cells for c in cols}
    for r in cells:
        t[r, "total"] = sum(t[r, c] for c in cols)
    for c in [*cols, "total"]:
        t["total", c] = sum(t[r, c] for r in cells)
    return t


@pytest.fixture(scope="module")
def published(flow: tuple[Path, Any], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The November report with the default k=5, as `camgate report` writes it."""
    out = tmp_path_factory.mktemp("published")
    _report(flow[0], "2026-11", out)
    return out


def test_small_counts_are_suppressed_with_their_complements(published: Path) -> None:
    r = json.loads((published / "report.json").read_text())
    cols = ["granted", "refused", "no-answer", "waiting"]
    truth = {
        "burglary": {"granted": 6, "refused": 5, "no-answer": 2},
        "shooting": {"granted": 5, "refused": 1},
    }
    _check_suppression(r["requests"], _truth(truth, cols), 5)
    assert r["requests"]["cells"]["burglary"]["no-answer"] is None
    assert r["requests"]["cells"]["shooting"]["refused"] is None
    enrolled = r["enrolled_in_period"]
    assert enrolled["cells"]["cameras"]["city"] is None  # 2 city cameras: fewer than 5
    assert enrolled["cells"]["cameras"]["private"] is None  # else 8 - 6 would tell the 2
    assert enrolled["total"] == 8
    f = r["figures"]
    assert f["clips_exported"] is None and f["revocations"] is None
    assert f["live_sessions"] == 5 and f["live_minutes"] == 3.0
    assert {"clips_exported", "revocations"} <= set(r["suppression"]["suppressed_figures"])


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["a", "b", "c", "d"]),
        st.dictionaries(st.sampled_from(["x", "y", "z"]), st.integers(0, 12), min_size=1),
        min_size=1,
    ),
    st.integers(1, 6),
)
def test_suppression_never_leaves_a_small_count_recoverable(
    cells: dict[str, dict[str, int]], k: int
) -> None:
    cols = ["x", "y", "z"]
    _check_suppression(suppress(cells, cols, k).to_json(), _truth(cells, cols), k)


def test_html_embeds_png_charts_and_names_no_owner(published: Path) -> None:
    out = published
    page = (out / "report.html").read_text()
    pngs = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(pngs) == 3
    assert all(base64.b64decode(p).startswith(b"\x89PNG\r\n\x1a\n") for p in pngs)
    text = re.sub(r"base64,[A-Za-z0-9+/=]+", "", page) + (out / "report.json").read_text()
    for secret in [*OWNERS, *NAMES, "Resident", "officer-9"]:
        assert secret not in text, secret
    for camera in ("p1", "p6", "c1", "c2"):
        assert not re.search(rf"\b{camera}\b", text), camera
    assert "<td>*</td>" in page and "burglary" in page


def test_a_report_over_a_broken_log_is_refused_or_flagged(
    flow: tuple[Path, Any], tmp_path: Path
) -> None:
    db, _ = flow
    broken = tmp_path / "broken.db"
    with sqlite3.connect(db) as src, sqlite3.connect(broken) as dst:
        src.backup(dst)
    (tmp_path / "broken.key").write_bytes(db.with_suffix(".key").read_bytes())
    with sqlite3.connect(broken) as conn:
        conn.execute("UPDATE audit SET body = replace(body, 'burglary', 'robbery') WHERE seq = 20")
    out = tmp_path / "refused"
    refused = run_cli(
        "--db", str(broken), "report", "--period", "2026-11", "--out", str(out), check=False
    )
    assert refused.returncode == 1 and "does not verify (record" in refused.stderr
    assert not out.exists()
    r = _report(broken, "2026-11", tmp_path / "flagged", "--allow-unverified")
    assert r["log"]["verified"] is False and r["log"]["problem"]
    assert "did NOT verify" in (tmp_path / "flagged" / "report.html").read_text()


def test_bad_periods_are_refused() -> None:
    assert Period.parse("2026-02").end == datetime(2026, 3, 1, tzinfo=UTC)
    assert Period.parse("2026-12").end == datetime(2027, 1, 1, tzinfo=UTC)
    # Years datetime cannot hold (0000; 9999's end is in year 10000) are refused the same way.
    for bad in ("2026-13", "26-10", "2026-Q5", "October", "0000", "9999-12", "9999"):
        with pytest.raises(ValidationError, match="YYYY-MM"):
            Period.parse(bad)
    with pytest.raises(ValidationError, match="k="):
        suppress({"a": {"x": 1}}, ["x"], 0)
    empty = build_report([], Period.parse("2026-10"))
    assert empty["requests"]["total"] == 0 and empty["figures"]["median_distance_m"] is None


def test_anyone_with_the_export_recomputes_the_published_report(
    flow: tuple[Path, Any], published: Path, tmp_path: Path
) -> None:
    """The procedure in docs/report.md, run on `camgate audit export`, gives the same numbers."""
    doc = (Path(__file__).parents[2] / "docs" / "report.md").read_text()
    [code] = [b for b in re.findall(r"```python\n(.*?)```", doc, re.S) if "report_from_export" in b]
    namespace: dict[str, Any] = {}
    exec(compile(code, "docs/report.md", "exec"), namespace)
    report = json.loads((published / "report.json").read_text())
    lines = run_cli("--db", str(flow[0]), "audit", "export").stdout.splitlines()
    records = [ln for ln in lines if json.loads(ln)["type"] == "record"]
    again = namespace["report_from_export"](records[: report["log"]["records"]], "2026-11")
    assert again | {"log": report["log"]} == report

    export = tmp_path / "audit.jsonl"  # the same from the command line, with no database
    export.write_text("\n".join(lines) + "\n")
    key = json.loads(lines[0])["key"]  # the test is the trusted channel for the hub's key
    out = tmp_path / "from-export"
    args = ["--db", str(tmp_path / "none.db"), "report", "--period", "2026-11", "--out", str(out)]
    run_cli(*args, "--export", str(export), "--key", key)
    assert not (tmp_path / "none.db").exists()
    from_export = json.loads((out / "report.json").read_text())
    assert from_export["log"]["verified"] is True
    assert from_export | {"log": report["log"]} == report
    wrong = run_cli(*args, "--export", str(export), "--key", "11" * 32, check=False)
    assert wrong.returncode == 1 and "does not verify" in wrong.stderr
