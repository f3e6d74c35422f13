"""``camgate conformance ADAPTER``: run the suite, show progress, print a summary, write reports.

This distribution's ``camgate`` plugin (:mod:`camgate_conformance.plugin`) registers
``camgate conformance`` through the ``camgate_register_commands`` hook, which hands the parser to
:func:`configure`; ``camgate-conformance`` is the same command on its own. Exit status:
0 when the adapter is certified (no check failed, every gating, robustness and stateful check
passed or does not apply to its declared capabilities), 1 otherwise ("not certified" with the
list), 2 for bad usage. ``--allow-incomplete`` (development) exits 0 when nothing failed.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from typing import TextIO

from camgate.errors import CamgateError

from camgate_conformance.model import Check, CheckResult, Report, Status, SuiteConfig
from camgate_conformance.report import write_reports
from camgate_conformance.runner import run_suite

__all__ = ["configure", "main", "summary_table"]

_MARK = {
    Status.PASSED: "ok",
    Status.FAILED: "FAIL",
    Status.ERROR: "ERROR",
    Status.SKIPPED: "skip",
    Status.NOT_RUN: "not run",
}


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the command's arguments to ``parser`` and make it run :func:`cmd_conformance`."""
    parser.add_argument("adapter", metavar="ADAPTER", help="an installed adapter, e.g. rtsp")
    parser.add_argument(
        "--target",
        default="SIM",
        metavar="SIM|SIM:VARIANT|CONFIG",
        help="SIM (default) for the plugin's simulator, SIM:VARIANT for a variant its plugin "
        "offers (e.g. ring's SIM:app), or a TOML/JSON settings file for a real "
        "device (checks that need the simulator's request log are then not run)",
    )
    parser.add_argument("--json", metavar="FILE", help="write the JSON report here")
    parser.add_argument("--junit", metavar="FILE", help="write JUnit XML here")
    parser.add_argument("--html", metavar="FILE", help="write the HTML report here")
    parser.add_argument(
        "--trials", type=int, default=20, metavar="N", help="trials per latency budget (20)"
    )
    parser.add_argument(
        "--budget-slack",
        type=_slack,
        default=1.0,
        metavar="X",
        help="multiply every time limit by X on a shared, loaded machine (1: the real verdict)",
    )
    parser.add_argument(
        "--skip",
        action="append",
        default=[],
        metavar="CHECK",
        help="leave out a non-gating check (repeatable); gating checks cannot be left out",
    )
    parser.add_argument(
        "--allow-incomplete",
        action="store_true",
        help="development only: exit 0 when nothing failed although gating, robustness or "
        "stateful checks did not run (said in every report; never a certification)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress display")
    parser.set_defaults(func=cmd_conformance)


class _ProgressDisplay:
    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.tty = out.isatty()

    def __call__(self, number: int, total: int, check: Check, result: CheckResult | None) -> None:
        head = f"[{number:>2}/{total}] {check.id}"
        if result is None:
            if self.tty:
                self.out.write(f"{head} ...")
                self.out.flush()
            return
        tail = _MARK[result.status]
        if result.measurements.get("median") is not None:
            m = result.measurements
            tail += f"  median {m['median']:.3f}s p95 {m['p95']:.3f}s max {m['max']:.3f}s"
        elif result.failed and result.evidence:
            tail += f"  {result.evidence[0]}"
        elif result.reason:
            tail += f"  ({result.reason})"
        prefix = "\r" if self.tty else ""
        self.out.write(
            f"{prefix}{head} {'.' * max(2, 44 - len(head))} {tail}  [{result.duration_s:.1f}s]\n"
        )
        self.out.flush()


def _slack(text: str) -> float:
    """``--budget-slack``: a finite number of at least 1."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value >= 1.0):
        raise argparse.ArgumentTypeError(f"must be a finite number of at least 1, not {text!r}")
    return value


def summary_table(report: Report) -> str:
    """A plain-text table: one line per check, then the counts and the verdict."""
    width = max(len(r.id) for r in report.results)
    lines = [
        f"{'check':<{width}}  {'status':<8}  {'observer':<8}  detail",
        f"{'-' * width}  {'-' * 8}  {'-' * 8}  ------",
    ]
    for r in report.results:
        if "median" in r.measurements:
            m = r.measurements
            detail = (
                f"median {m['median']:.3f}s  p95 {m['p95']:.3f}s  max {m['max']:.3f}s  "
                f"budget {m['budget']:g}s"
            )
            if m.get("budget_slack", 1.0) != 1.0:
                detail += f" (x{m['budget_slack']:g} slack)"
        else:
            detail = r.reason or (r.evidence[0] if r.evidence else "")
        lines.append(f"{r.id:<{width}}  {_MARK[r.status]:<8}  {r.observer:<8}  {detail}")
    counts = ", ".join(f"{n} {s}" for s, n in report.counts().items() if n)
    lines.append("")
    took = f"{report.duration_s:.1f} s"
    lines.append(f"{report.adapter} against {report.target}: ({counts}) in {took}")
    lines.append(report.verdict)
    return "\n".join(lines)


def cmd_conformance(args: argparse.Namespace) -> int:
    """Run the conformance suite against an adapter's simulator or a real device."""
    config = SuiteConfig(
        trials=args.trials,
        skip=frozenset(args.skip),
        budget_slack=args.budget_slack,
        allow_incomplete=args.allow_incomplete,
    )
    progress = None if args.quiet else _ProgressDisplay(sys.stderr)
    report = run_suite(args.adapter, args.target, config, progress)
    write_reports(report, json_path=args.json, junit_path=args.junit, html_path=args.html)
    print(summary_table(report))
    return 0 if report.ok else 1


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``camgate-conformance`` (the same as ``camgate conformance``)."""
    parser = argparse.ArgumentParser(
        prog="camgate-conformance", description=cmd_conformance.__doc__
    )
    configure(parser)
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
    except CamgateError as exc:
        print(f"camgate conformance: {exc}", file=sys.stderr)
        return 1
    return code
