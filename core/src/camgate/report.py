"""The transparency report: what the agency did with the cameras in a period, as counts only.

:func:`build_report` is a pure function of audit records (the log, or an export of it) and a
period, so anyone holding the export can compute the same report; the report names the records
it was computed from (their count and the head hash). It holds no owner identity: counts by
incident kind, outcome, camera class and file kind, live minutes, and a median distance.

Small counts are suppressed (:func:`suppress`): a count of 1 to k-1 (k = 5 by default) is
published as null, and so are enough other cells that no suppressed count can be worked out from
the published totals. See docs/report.md for the rule.
"""

from __future__ import annotations

import base64
import html
import io
import json
import re
import statistics
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import attrs

from camgate.activity import GRANTED, NO_ANSWER, REFUSED, WAITING, collect
from camgate.audit import AuditRecord, Checkpoint, VerifyResult
from camgate.audit.chain import ChainVerifier
from camgate.codec import canonical
from camgate.errors import ValidationError
from camgate.extras import needs_extra
from camgate.media.files import make_dirs, write_private
from camgate.vocab import AuditKind

__all__ = ["Period", "Table", "build_report", "suppress", "verify_export", "write_report"]

OUTCOMES = (GRANTED, REFUSED, NO_ANSWER, WAITING)
TOTAL = "total"
CLASSES = ("city", "private", "unknown")
_RECORD_KEYS = ("seq", "at", "kind", "body", "prev", "hash", "owners")


@attrs.frozen
class Period:
    """A reporting period ``[start, end)`` in UTC: a month, a quarter or a year."""

    label: str
    start: datetime
    end: datetime

    @classmethod
    def parse(cls, text: str) -> Period:
        """``2026-10`` (a month), ``2026-Q4`` (a quarter) or ``2026`` (a year)."""
        m = re.fullmatch(r"(\d{4})(?:-(\d{2})|-[Qq]([1-4]))?", text.strip())
        if not m or (m.group(2) and not 1 <= int(m.group(2)) <= 12):
            raise ValidationError(f"--period {text!r}: give YYYY-MM, YYYY-Qn or YYYY")
        year = int(m.group(1))
        if m.group(2):
            first, months = int(m.group(2)), 1
        elif m.group(3):
            first, months = 3 * int(m.group(3)) - 2, 3
        else:
            first, months = 1, 12
        last = first + months
        try:  # years 1-9998: the period's end must be a datetime too
            start = datetime(year, first, 1, tzinfo=UTC)
            end = datetime(year + (last - 1) // 12, (last - 1) % 12 + 1, 1, tzinfo=UTC)
        except ValueError:
            raise ValidationError(f"--period {text!r}: give YYYY-MM, YYYY-Qn or YYYY") from None
        return cls(text.strip().upper(), start, end)

    def __contains__(self, when: object) -> bool:
        return isinstance(when, datetime) and self.start <= when < self.end


@attrs.frozen
class Table:
    """Counts by row and column with their totals, after suppression (None = suppressed)."""

    rows: list[str]
    columns: list[str]
    cells: dict[str, dict[str, int | None]]
    row_totals: dict[str, int | None]
    column_totals: dict[str, int | None]
    total: int | None
    suppressed: list[list[str]]

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form."""
        return attrs.asdict(self)


def suppress(counts: Mapping[str, Mapping[str, int]], columns: Sequence[str], k: int) -> Table:
    """Publish ``counts[row][column]`` with its row, column and grand totals, suppressing small
    counts so that none can be recovered from what is published.

    1. Primary: every count (cell or total) from 1 to k-1 is suppressed.
    2. Complementary, repeated until nothing changes: in every row and every column (its cells
       and its total), if exactly one entry is suppressed, or the suppressed cells hold fewer
       than k between them while some cell is still shown, the smallest shown cell (a non-zero
       one first) is suppressed too — or the total, when every cell is suppressed.

    So no row or column has a single unknown (which subtraction from its total would reveal),
    and what is hidden in a line is at least k or the whole line.
    """
    if k < 1:
        raise ValidationError(f"k={k!r}: the suppression threshold must be at least 1")
    rows = sorted(counts)
    value: dict[tuple[str, str], int] = {}
    for r in rows:
        for c in columns:
            value[r, c] = int(counts[r].get(c, 0))
        value[r, TOTAL] = sum(value[r, c] for c in columns)
    for c in [*columns, TOTAL]:
        value[TOTAL, c] = sum(value[r, c] for r in rows)
    hidden = {key for key, v in value.items() if 0 < v < k}
    lines = [([(r, c) for c in columns], (r, TOTAL)) for r in [*rows, TOTAL]]
    lines += [([(r, c) for r in rows], (TOTAL, c)) for c in [*columns, TOTAL]]
    changed = True
    while changed:
        changed = False
        for cells, total in lines:
            shown = [key for key in cells if key not in hidden]
            out = [key for key in [*cells, total] if key in hidden]
            mass = sum(value[key] for key in cells if key in hidden)
            if not out or (len(out) >= 2 and (mass >= k or not shown)):
                continue
            if shown:
                pick = min(shown, key=lambda key: (value[key] == 0, value[key]))
            elif total not in hidden:
                pick = total
            else:
                continue
            hidden.add(pick)
            changed = True

    def pub(key: tuple[str, str]) -> int | None:
        return None if key in hidden else value[key]

    return Table(
        rows=rows,
        columns=list(columns),
        cells={r: {c: pub((r, c)) for c in columns} for r in rows},
        row_totals={r: pub((r, TOTAL)) for r in rows},
        column_totals={c: pub((TOTAL, c)) for c in columns},
        total=pub((TOTAL, TOTAL)),
        suppressed=sorted([r, c] for r, c in hidden),
    )


def _export_item(item: Any) -> AuditRecord | Checkpoint | None:
    """One parsed export line as a record or checkpoint (None: the header); raises ValueError,
    KeyError or TypeError for anything else."""
    if item["type"] == "record":
        return AuditRecord(**{key: item[key] for key in _RECORD_KEYS})
    if item["type"] == "checkpoint":
        cp = Checkpoint.from_json(item)
        if not isinstance(cp.seq, int) or not isinstance(cp.head, str):
            raise TypeError("the checkpoint names no record")
        return cp
    if item["type"] != "log":
        raise ValueError(f"unknown line type {str(item['type'])[:40]!r}")
    return None


def verify_export(
    lines: Iterable[str], public_key: bytes
) -> tuple[list[AuditRecord], VerifyResult]:
    """Read an audit export (``camgate audit export``: JSON Lines) and verify it as
    ``camgate audit verify`` does — every hash and link, each owner's sub-chain, and every
    checkpoint against ``public_key`` (the hub's key, from a channel you trust; not the
    export's header). Returns the records and the result. Raises ValidationError for a line
    that is not an export line (text that is not UTF-8 or JSON, a line of unknown type, a
    record or checkpoint missing a field). An export with no signed checkpoint is not OK
    (status ``unsigned``): nothing in it is vouched for by the hub."""
    records: list[AuditRecord] = []
    rows: list[tuple[int, str, str, str, str, str, str]] = []  # as the log stores them
    checkpoints: list[Checkpoint] = []
    number = 0
    try:
        for number, line in enumerate(lines, 1):  # noqa: B007 - the error names the line
            if not line.strip():
                continue
            item = _export_item(json.loads(line))
            if isinstance(item, AuditRecord):
                texts = (canonical(item.body).decode(), canonical(item.owners).decode())
                rows.append((item.seq, item.at, item.kind, *texts, item.prev, item.hash))
                records.append(item)
            elif item is not None:
                checkpoints.append(item)
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
        at = number + 1 if isinstance(exc, UnicodeDecodeError) else number
        raise ValidationError(
            f"export line {at}: not an audit export line ({type(exc).__name__}: {str(exc)[:200]})"
        ) from None
    result = ChainVerifier(checkpoints, public_key).run(rows)
    if result.ok and not checkpoints:
        problem = "no signed checkpoint: nothing in the export is vouched for by the hub's key"
        result = attrs.evolve(result, ok=False, problem=problem, status="unsigned")
    return records, result


def _count(n: int, k: int) -> int | None:
    return None if 0 < n < k else n


def build_report(
    records: Iterable[AuditRecord],
    period: Period,
    *,
    k: int = 5,
    verified: VerifyResult | None = None,
) -> dict[str, Any]:
    """The report over ``records`` for ``period`` (see the module docstring); ``verified`` is
    the log's verification result, copied into the report."""
    records = list(records)
    act = collect(records)
    requests = [v for v in act.requests.values() if v.at in period]
    by_kind: dict[str, Counter[str]] = {}
    for v in requests:
        by_kind.setdefault(v.incident_kind or "unknown", Counter())[v.outcome] += 1
    live = [
        a
        for a in act.accesses.values()
        if a["scope"] == "live" and a["started_at"] in period and a["seconds"] is not None
    ]
    distances = [v.distance_m for v in requests if v.distance_m is not None]
    classes = _enrolments(act.enrolments, act.revocations + act.removals, period)
    deletions = Counter(d.get("kind", "unknown") for d in act.deletions if d["at"] in period)
    sessions = _count(len(live), k)
    figures = {
        "live_sessions": sessions,
        "live_minutes": None
        if sessions is None
        else round(sum(a["seconds"] for a in live) / 60, 1),
        "clips_exported": _count(sum(1 for c in act.clips if c["at"] in period), k),
        "files_exported": _count(
            sum(1 for e in act.exports if datetime.fromisoformat(e["created_at"]) in period), k
        ),
        "revocations": _count(sum(1 for r in act.revocations if r["at"] in period), k),
        "median_distance_m": (
            round(statistics.median(distances), 1) if len(distances) >= k else None
        ),
    }
    log: dict[str, Any] = {"records": len(records), "head": records[-1].hash if records else None}
    if verified is not None:
        log |= {
            # True for "consistent" too (nothing wrong found); "status" says which verdict:
            # "verified" means outside witnesses also proved the log's length.
            "verified": verified.ok,
            "status": verified.status,
            "checkpoints": verified.checkpoints,
            "problem": verified.problem or None,
        }
    return {
        "format": 1,
        "period": period.label,
        "from": period.start.isoformat(),
        "until": period.end.isoformat(),
        "log": log,
        "suppression": {
            "k": k,
            "rule": f"counts from 1 to {k - 1} are null, and so are enough other cells that "
            "none can be worked out from the totals (docs/report.md)",
            "suppressed_figures": sorted(
                name
                for name, v in figures.items()
                if v is None and not (name == "median_distance_m" and not distances)
            ),
        },
        "requests": suppress(by_kind, OUTCOMES, k).to_json(),
        "enrolled_in_period": suppress({"cameras": classes[0]}, CLASSES, k).to_json(),
        "enrolled_at_end": suppress({"cameras": classes[1]}, CLASSES, k).to_json(),
        "retention_deletions": suppress({"files": deletions}, sorted(deletions), k).to_json(),
        "figures": figures,
        "ordinance": _ordinance(records, requests, act.notices, live, period, k),
    }


#: What the report counts of residents' privacy zones: zones registered and removed, cameras
#: whose owners were asked to mask one, masks attested (``zone.*`` records).
ZONE_EVENTS = ("registered", "removed", "cameras asked", "masks attested")
_ZONE_KINDS: dict[str, str] = {
    AuditKind.ZONE_REGISTERED: "registered",
    AuditKind.ZONE_REMOVED: "removed",
    AuditKind.ZONE_MASK_ATTESTED: "masks attested",
}

#: How an approval was answered (``approval.answered``).
APPROVAL_ANSWERS = ("yes", "no", "expired")


def _ordinance(
    records: list[AuditRecord],
    requests: list[Any],
    notices: list[dict[str, Any]],
    live: list[dict[str, Any]],
    period: Period,
    k: int,
) -> dict[str, Any]:
    """What a surveillance-use ordinance asks of the annual report (docs/report.md, "The
    ordinance section"): uses by purpose, live hours, approvals, refusals by the rule that
    refused (the violations caught before any access), owners notified, program notices,
    residents' privacy zones honoured."""
    by_purpose: dict[str, Counter[str]] = {}
    for v in requests:
        by_purpose.setdefault(v.purpose or "unknown", Counter())[v.outcome] += 1
    refused_by: dict[str, set[str]] = {}  # the last decision on each request stands
    approvals: Counter[str] = Counter()
    program: Counter[str] = Counter()
    zones: Counter[str] = Counter()
    for r in records:
        if r.kind in (AuditKind.DECISION, AuditKind.GRANT_REFUSED):
            votes = (r.body.get("decision") or {}).get("votes", [])
            request = r.body.get("request")
            request_id = request.get("id") if isinstance(request, dict) else request
            refused_by[str(request_id)] = {
                str(v.get("policy")) for v in votes if v.get("verdict") == "deny"
            }
        if datetime.fromisoformat(r.at) not in period:
            continue
        if r.kind == AuditKind.APPROVAL_ANSWERED:
            approvals[str(r.body.get("answer"))] += 1
        elif r.kind == AuditKind.PROGRAM_NOTICE:
            program[str(r.body.get("event"))] += 1
        elif r.kind in _ZONE_KINDS:
            zones[_ZONE_KINDS[r.kind]] += 1
        elif r.kind == AuditKind.ZONE_ASKED:
            zones["cameras asked"] += len(r.body.get("cameras") or ())
    refusals: Counter[str] = Counter()
    for v in requests:
        if v.outcome != GRANTED:
            refusals.update(refused_by.get(v.id, ()))
    told = [n for n in notices if n["at"] in period and n["delivered"]]
    sessions = _count(len(live), k)
    return {
        "uses_by_purpose": suppress(by_purpose, OUTCOMES, k).to_json(),
        "live_hours": None
        if sessions is None
        else round(sum(a["seconds"] for a in live) / 3600, 2),
        "approvals": suppress({"answers": approvals}, APPROVAL_ANSWERS, k).to_json(),
        "refusals_by_rule": suppress({"refusals": refusals}, sorted(refusals), k).to_json(),
        "owners_notified": _count(len({n.get("owner_id") for n in told}), k),
        "notices_sent": _count(len(told), k),
        "program_notices": dict(sorted(program.items())),
        "zones_honoured": suppress({"zones": zones}, ZONE_EVENTS, k).to_json(),
    }


def _enrolments(
    enrolments: list[dict[str, Any]], ends: list[dict[str, Any]], period: Period
) -> tuple[Counter[str], Counter[str]]:
    """Cameras enrolled in the period, and enrolled at its end (less those revoked or removed
    by then), by camera class."""
    events = [(e["at"], 0, e) for e in enrolments] + [(r["at"], 1, r) for r in ends]
    new: Counter[str] = Counter()
    active: dict[str, str] = {}
    for at, is_revocation, event in sorted(events, key=lambda x: (x[0], x[1])):
        if at >= period.end:
            break
        if is_revocation:
            for camera in event.get("cameras", []):
                active.pop(camera, None)
            continue
        classes = event.get("camera_classes") or {}
        for camera in event.get("camera_ids", []):
            cls = classes.get(camera, "unknown")
            active[camera] = cls
            if at in period:
                new[cls] += 1
    return new, Counter(active.values())


# ---------------------------------------------------------------------- output


def _png(fig: Any) -> str:
    with needs_extra("plot", "the report's charts"):
        from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=96, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _bars(title: str, panels: list[tuple[str, Mapping[str, int | None]]]) -> str:
    """A PNG (base64) of published counts, one bar chart per panel; a suppressed count is drawn
    as a '*' on an empty bar (never as a value)."""
    with needs_extra("plot", "the report's charts"):
        from matplotlib.figure import Figure

    tallest = max([1, *(len(values) for _, values in panels)])
    fig = Figure(figsize=(7, 0.8 + (0.35 * tallest + 0.5) * len(panels)))
    fig.suptitle(title)
    for n, (name, values) in enumerate(panels):
        ax = fig.add_subplot(len(panels), 1, n + 1)
        labels = list(values)
        bars = ax.barh(labels, [values[label] or 0 for label in labels], color=f"C{n}")
        for bar, label in zip(bars, labels, strict=True):
            shown = values[label]
            ax.annotate("*" if shown is None else str(shown), (bar.get_width(),
                        bar.get_y() + bar.get_height() / 2), va="center", xytext=(3, 0),
                        textcoords="offset points")  # fmt: skip
        ax.set_title(name, fontsize="medium")
        ax.invert_yaxis()
        ax.margins(x=0.15)
    fig.tight_layout()
    return _png(fig)


def _html_table(caption: str, table: dict[str, Any]) -> str:
    def cell(v: int | None) -> str:
        return "<td>*</td>" if v is None else f"<td>{v}</td>"

    head = "".join(f"<th>{html.escape(c)}</th>" for c in table["columns"])
    body = "".join(
        f"<tr><th>{html.escape(r)}</th>"
        + "".join(cell(table["cells"][r][c]) for c in table["columns"])
        + cell(table["row_totals"][r])
        + "</tr>"
        for r in table["rows"]
    )
    foot = "".join(cell(table["column_totals"][c]) for c in table["columns"])
    if len(table["rows"]) > 1:  # one row: its cells are the column totals
        body += f"<tr><th>total</th>{foot}{cell(table['total'])}</tr>"
    return (
        f"<table><caption>{html.escape(caption)}</caption><tr><th></th>{head}<th>total</th></tr>"
        f"{body}</table>"
    )


def _ordinance_html(section: dict[str, Any] | None) -> str:
    """The ordinance section of the page (empty for a report made before it existed)."""
    if section is None:
        return ""

    def shown(v: object) -> str:
        return "*" if v is None else html.escape(str(v))

    program = ", ".join(f"{html.escape(e)}: {n}" for e, n in section["program_notices"].items())
    return f"""<h2>Surveillance-use ordinance</h2>
{_html_table("Requests by purpose", section["uses_by_purpose"])}
{_html_table("Approvals by a second person, by answer", section["approvals"])}
{
        _html_table(
            "Refusals by the rule that refused (a request may count under several)",
            section["refusals_by_rule"],
        )
    }
<ul>
<li>Hours of live view: {shown(section["live_hours"])}</li>
<li>Owners notified: {shown(section["owners_notified"])}; notices sent:
{shown(section["notices_sent"])}</li>
<li>Program notices (sunset, renewal): {program or "none"}</li>
</ul>
{_zones_html(section.get("zones_honoured"))}"""


def _zones_html(table: dict[str, Any] | None) -> str:
    """The residents' privacy zones table (empty for a report made before it existed)."""
    if table is None:
        return ""
    return _html_table("Privacy zones of homes honoured", table)


def render_html(report: dict[str, Any]) -> str:
    """The report as one self-contained HTML page (charts embedded as PNG data URIs)."""
    f = report["figures"]
    k = report["suppression"]["k"]
    req = report["requests"]
    charts = [
        (
            "Requests by incident kind and by outcome",
            _bars(
                "Requests",
                [("by incident kind", req["row_totals"]), ("by outcome", req["column_totals"])],
            ),
        ),
        (
            "Cameras enrolled at the end of the period, by class",
            _bars(
                "Enrolled cameras", [("by class", report["enrolled_at_end"]["cells"]["cameras"])]
            ),
        ),
    ]
    if report["retention_deletions"]["columns"]:
        deleted = report["retention_deletions"]["cells"]["files"]
        charts.append(
            ("Files deleted by retention, by kind", _bars("Retention", [("by kind", deleted)]))
        )

    def fig(name: str, unit: str = "") -> str:
        v = f[name]
        return "*" if v is None else f"{v}{unit}"

    log = report["log"]
    problem = html.escape(str(log.get("problem")))
    banner = (
        f"<p class=bad>The audit log did NOT verify: {problem}</p>"
        if not log.get("verified", True)
        else "<p>The audit log is consistent (every hash, link and signed checkpoint holds), "
        "but no outside witness was given to prove that no records are missing at its end.</p>"
        if log.get("status") == "consistent"
        else ""
    )
    imgs = "".join(
        f'<figure><img alt="{html.escape(t)}" src="data:image/png;base64,{png}">'
        f"<figcaption>{html.escape(t)}</figcaption></figure>"
        for t, png in charts
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Camera access transparency report {html.escape(report["period"])}</title>
<style>body{{font-family:sans-serif;max-width:60em;margin:auto}}td,th{{padding:.2em .6em;
text-align:right}}table{{border-collapse:collapse;margin:1em 0}}
tr:nth-child(even){{background:#eee}}
.bad{{color:#a00;font-weight:bold}}</style></head><body>
<h1>Camera access transparency report: {html.escape(report["period"])}</h1>
<p>From {report["from"]} to {report["until"]} (UTC). Computed from the first {log["records"]}
records of the audit log (head {log["head"]}); anyone holding the export can compute it again.</p>
{banner}
<p>* suppressed: counts from 1 to {k - 1} are not shown, nor enough other cells that they
cannot be worked out from the totals.</p>
<h2>Requests</h2>
{_html_table("Requests by incident kind", report["requests"])}
<ul>
<li>Live sessions: {fig("live_sessions")}; live minutes: {fig("live_minutes")}</li>
<li>Clips exported: {fig("clips_exported")}; files exported (clips, snapshots, segments):
{fig("files_exported")}</li>
<li>Median distance from the incident: {fig("median_distance_m", " m")}</li>
<li>Revocations by owners: {fig("revocations")}</li>
</ul>
<h2>Enrolment</h2>
{_html_table("Cameras enrolled during the period, by class", report["enrolled_in_period"])}
{_html_table("Cameras enrolled at the end of the period, by class", report["enrolled_at_end"])}
<h2>Retention</h2>
{_html_table("Files deleted by retention, by kind", report["retention_deletions"])}
{_ordinance_html(report.get("ordinance"))}
<h2>Charts</h2>
{imgs}
</body></html>
"""


def write_report(report: dict[str, Any], out: str | Path) -> tuple[Path, Path]:
    """Write ``report.json`` and ``report.html`` into ``out`` (created ``0700`` when missing);
    return their paths. Each file is written whole under a partial name and renamed, with
    camgate's private file mode (:func:`camgate.media.files.file_mode`, ``0600`` unless
    ``CAMGATE_FILE_MODE`` says otherwise); a report already there is replaced. ExportError
    (naming the file) when it cannot be written."""
    folder = make_dirs(out)
    data = folder / "report.json"
    page = folder / "report.html"
    for path, text in (
        (data, json.dumps(report, indent=2, sort_keys=True) + "\n"),
        (page, render_html(report)),
    ):
        write_private(path, text.encode("utf-8"), replace=True)
    return page, data
