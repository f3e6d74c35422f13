"""camgate's conformance suite: prove an adapter keeps the promises and meets its budgets.

The checks library (:mod:`.checks`, :mod:`.runner`) does not depend on pytest, so it runs from
``camgate conformance ADAPTER``, from an agency's own harness (:func:`run_suite`), or from pytest
through :class:`camgate_conformance.pytest_plugin.ConformanceSuite`.
"""

from __future__ import annotations

from camgate_conformance.checks import CEILINGS, CHECKS, FAULTS, Context, check_ids
from camgate_conformance.model import (
    Check,
    CheckFailed,
    CheckResult,
    NotRun,
    Report,
    Status,
    SuiteConfig,
)
from camgate_conformance.report import to_html, to_json, to_junit, write_reports
from camgate_conformance.runner import run_checks, run_suite
from camgate_conformance.target import (
    Backdoor,
    ConfigTarget,
    FaultCase,
    SimulatorTarget,
    Target,
    VendorEvent,
    resolve_target,
)

__all__ = [
    "CEILINGS",
    "CHECKS",
    "FAULTS",
    "Backdoor",
    "Check",
    "CheckFailed",
    "CheckResult",
    "ConfigTarget",
    "Context",
    "FaultCase",
    "NotRun",
    "Report",
    "SimulatorTarget",
    "Status",
    "SuiteConfig",
    "Target",
    "VendorEvent",
    "check_ids",
    "resolve_target",
    "run_checks",
    "run_suite",
    "to_html",
    "to_json",
    "to_junit",
    "write_reports",
]
