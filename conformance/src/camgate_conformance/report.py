"""The suite's reports: JSON (everything), JUnit XML (for CI) and one self-contained HTML page.

The HTML page has no scripts and fetches nothing: styles and one inline SVG chart per budget
(every trial as a dot, with the median, the p95, the declared budget and camgate's ceiling).
"""

from __future__ import annotations

import html
import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from camgate_conformance.model import CheckResult, Report, Status

__all__ = ["latency_svg", "to_html", "to_junit", "to_json", "write_reports"]


def to_json(report: Report) -> str:
    """The report as indented JSON."""
    return json.dumps(report.to_json(), indent=2)


def to_junit(report: Report) -> str:
    """The report as JUnit XML: one testcase per check (skipped and not-run as skipped)."""
    counts = report.counts()
    suite = ET.Element(
        "testsuite",
        {
            "name": f"camgate-conformance.{report.adapter}",
            "tests": str(len(report.results)),
            "failures": str(counts[str(Status.FAILED)]),
            "errors": str(counts[str(Status.ERROR)]),
            "skipped": str(counts[str(Status.SKIPPED)] + counts[str(Status.NOT_RUN)]),
            "time": f"{report.duration_s:.3f}",
            "timestamp": report.started_at,
        },
    )
    props = ET.SubElement(suite, "properties")
    for name, value in (
        ("target", report.target),
        ("trials", str(report.config.trials)),
        ("budget_slack", f"{report.config.budget_slack:g}"),
        ("allow_incomplete", str(report.config.allow_incomplete).lower()),
        ("certified", str(report.certified).lower()),
        ("verdict", report.verdict),
    ):
        ET.SubElement(props, "property", {"name": name, "value": value})
    for r in report.results:
        case = ET.SubElement(
            suite,
            "testcase",
            {
                "classname": f"{report.adapter}.{r.group}",
                "name": r.id,
                "time": f"{r.duration_s:.3f}",
            },
        )
        ET.SubElement(
            ET.SubElement(case, "properties"), "property", {"name": "observer", "value": r.observer}
        )
        text = "\n".join(r.evidence)
        if r.status is Status.FAILED:
            ET.SubElement(
                case, "failure", {"message": r.evidence[0] if r.evidence else ""}
            ).text = text
        elif r.status is Status.ERROR:
            ET.SubElement(
                case, "error", {"message": r.evidence[0] if r.evidence else ""}
            ).text = text
        elif r.status in (Status.SKIPPED, Status.NOT_RUN):
            ET.SubElement(case, "skipped", {"message": f"{r.status}: {r.reason}"})
        if r.measurements:
            ET.SubElement(case, "system-out").text = json.dumps(r.measurements)
    ET.indent(suite)
    return ET.tostring(suite, encoding="unicode", xml_declaration=True) + "\n"


def latency_svg(result: CheckResult, width: int = 560, height: int = 120) -> str:
    """An inline SVG strip chart of one budget's trials with its median, p95, budget, ceiling."""
    m = result.measurements
    samples: list[float] = list(m.get("samples", []))
    if not samples:
        return ""
    slack = float(m.get("budget_slack", 1.0))
    # the limits the trials were judged against: the budget and ceiling times the run's slack
    times = "" if slack == 1.0 else f" x{slack:g}"
    marks = {
        "median": m["median"],
        "p95": m["p95"],
        f"budget{times}": m["budget"] * slack,
        f"ceiling{times}": m["ceiling"] * slack,
    }
    top = max([*samples, *marks.values()]) * 1.08 or 1.0
    left, right, axis_y = 10, width - 10, height - 30

    def x(value: float) -> float:
        return left + (right - left) * value / top

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'role="img" aria-label="{html.escape(result.id)} latency">',
        f'<line x1="{left}" y1="{axis_y}" x2="{right}" y2="{axis_y}" stroke="#888"/>',
    ]
    for tick in range(6):
        value = top * tick / 5
        parts.append(
            f'<text x="{x(value):.1f}" y="{axis_y + 14}" font-size="10" text-anchor="middle">'
            f"{value:.2f}s</text>"
        )
    for i, sample in enumerate(samples):
        jitter = 10 + (i * 7) % 40
        parts.append(
            f'<circle cx="{x(sample):.1f}" cy="{axis_y - jitter}" r="3" fill="#3465a4" '
            f'fill-opacity="0.7"><title>trial {i + 1}: {sample:.3f} s</title></circle>'
        )
    colours = ["#4e9a06", "#c4a000", "#cc0000", "#555"]  # median, p95, budget, ceiling
    for n, (name, value) in enumerate(marks.items()):
        dash = ' stroke-dasharray="4 3"' if n >= 2 else ""
        parts.append(
            f'<line x1="{x(value):.1f}" y1="8" x2="{x(value):.1f}" y2="{axis_y}" '
            f'stroke="{colours[n]}" stroke-width="2"{dash}/>'
            f'<text x="{x(value) + 3:.1f}" y="{12 + 11 * n}" font-size="10" '
            f'fill="{colours[n]}">{name} {value:.3f}s</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


_CSS = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #ddd;padding:4px 8px;
text-align:left;vertical-align:top}.passed{color:#4e9a06}.failed,.error{color:#cc0000;
font-weight:bold}.skipped,.not.run{color:#777}.evidence{font-family:monospace;font-size:90%;
white-space:pre-wrap}h2{margin-top:1.5em}
"""


def to_html(report: Report) -> str:
    """A self-contained HTML page: summary, every check, a latency chart per budget."""
    e = html.escape
    counts = ", ".join(f"{n} {s}" for s, n in report.counts().items() if n)
    rows = []
    for r in report.results:
        detail = r.reason or "\n".join(r.evidence)
        if "median" in r.measurements:
            detail = (
                f"median {r.measurements['median']:.3f} s, p95 {r.measurements['p95']:.3f} s, "
                f"max {r.measurements['max']:.3f} s "
                f"(budget {r.measurements['budget']:g} s, ceiling {r.measurements['ceiling']:g} s)"
                + (f"\n{detail}" if detail else "")
            )
        rows.append(
            f'<tr><td><code>{e(r.id)}</code></td><td class="{e(str(r.status))}">'
            f"{e(str(r.status))}</td><td>{e(r.observer)}</td><td>{e(r.promise)}</td>"
            f'<td class="evidence">{e(detail)}</td><td>{r.duration_s:.2f}s</td></tr>'
        )
    charts = [
        f"<h3><code>{e(r.id)}</code> — {e(str(r.status))}</h3>{latency_svg(r)}"
        for r in report.results
        if r.measurements.get("samples")
    ]
    verdict = "CERTIFIED" if report.certified else "NOT CERTIFIED"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>camgate conformance: {e(report.adapter)} {verdict}</title><style>{_CSS}</style></head>
<body><h1>camgate conformance: <code>{e(report.adapter)}</code> —
<span class="{"passed" if report.certified else "failed"}">{verdict}</span></h1>
<p>{e(report.distribution)} {e(report.version)}; target: {e(report.target)};
capabilities: {e(", ".join(report.capabilities))}; {report.config.trials} trials per budget{
        ""
        if report.config.budget_slack == 1.0
        else f", time limits times {report.config.budget_slack:g} (slack for a shared machine)"
    };
started {e(report.started_at)}, took {report.duration_s:.1f} s.</p>
<p>{e(counts)}</p>
<p class="{"passed" if report.certified else "failed"}">{e(report.verdict)}</p>
<p>Observers: the recorder is the suite's own proxy between adapter and camera (the vendor's log
is a second witness); "edge" checks are enforced by camgate before the adapter is called and say
nothing about the adapter; "suite" checks time and catch what the adapter does.</p>
<h2>Checks</h2>
<table><tr><th>check</th><th>status</th><th>observed by</th><th>promise</th>
<th>evidence / why</th><th>time</th></tr>
{"".join(rows)}</table>
<h2>Latency budgets</h2>
{"".join(charts) or "<p>No budget was measured.</p>"}
</body></html>
"""


def write_reports(
    report: Report, *, json_path: Any = None, junit_path: Any = None, html_path: Any = None
) -> None:
    """Write whichever of the three reports has a path."""
    for path, render in ((json_path, to_json), (junit_path, to_junit), (html_path, to_html)):
        if path is not None:
            Path(path).write_text(render(report), encoding="utf-8")
