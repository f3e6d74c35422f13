"""The suite's vocabulary: checks, their results, the run's configuration and its report.

No pytest here: the runner, the CLI and an agency's own harness all use these.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    from camgate_conformance.checks import Context

__all__ = [
    "Check",
    "CheckFailed",
    "CheckResult",
    "NotRun",
    "Report",
    "Status",
    "SuiteConfig",
    "percentile",
]


class Status(enum.StrEnum):
    """How a check ended. ``failed`` and ``error`` make the run fail."""

    PASSED = "passed"
    FAILED = "failed"
    ERROR = "error"
    SKIPPED = "skipped"  # the adapter's capabilities say it does not apply
    NOT_RUN = "not run"  # it applies, but could not run here (no backdoor, a failed dependency)


#: The groups whose every check must pass (or not apply) for an adapter to be certified.
CERTIFYING_GROUPS = frozenset({"gating", "robustness", "stateful", "media"})
#: A skip's reason when the adapter's capabilities say the check does not apply.
NOT_DECLARED = "the adapter does not declare"
#: Who observed a check: the suite's own recorder (and the vendor log as a second witness), the
#: edge (the gate refuses before the adapter is called: no evidence about the adapter), or the
#: suite itself timing and catching what the adapter does.
OBSERVERS = {
    "recorder": "the suite's recorder between adapter and camera (vendor log: second witness)",
    "edge": "the edge, before the adapter is called (no evidence about the adapter)",
    "suite": "the suite, calling the adapter and timing it",
}


class CheckFailed(Exception):
    """Raised by a check when the promise is broken; ``evidence`` says what was seen."""

    def __init__(self, summary: str, evidence: Sequence[str] = ()) -> None:
        super().__init__(summary)
        self.evidence = [summary, *evidence]


class NotRun(Exception):
    """Raised by a check that applies but cannot run against this target; the message says why."""


@attrs.frozen
class Check:
    """One promise the suite checks.

    ``requires`` names the capabilities that make it apply (``live``, ``snapshot``,
    ``recorded``, ``audio``, ``edge_cache``); ``backdoor`` says it needs the vendor side's own
    log; ``fault`` names the vendor fault it stages; ``depends`` lists checks whose failure makes
    this one meaningless (it is then not run). Gating checks cannot be skipped by configuration.
    """

    id: str
    group: str
    promise: str
    run: Callable[[Context], Awaitable[None]] = attrs.field(repr=False)
    requires: frozenset[str] = frozenset()
    backdoor: bool = False
    fault: str | None = None
    depends: tuple[str, ...] = ()
    budget: str | None = None
    timeout_s: float = 120.0
    observer: str = "suite"

    @property
    def certifying(self) -> bool:
        """True for the checks certification needs passed: gating, robustness, stateful."""
        return self.group in CERTIFYING_GROUPS


@attrs.frozen
class CheckResult:
    """What one check found: status, why (for skips), evidence (for failures), measurements."""

    id: str
    group: str
    promise: str
    status: Status
    reason: str = ""
    evidence: tuple[str, ...] = ()
    duration_s: float = 0.0
    measurements: dict[str, Any] = attrs.field(factory=dict)
    observer: str = "suite"

    @property
    def certifying(self) -> bool:
        """True for a check certification needs passed (gating, robustness, stateful)."""
        return self.group in CERTIFYING_GROUPS

    @property
    def complete(self) -> bool:
        """True when it passed, or does not apply because the adapter does not declare it."""
        return self.status is Status.PASSED or (
            self.status is Status.SKIPPED and self.reason.startswith(NOT_DECLARED)
        )

    @property
    def failed(self) -> bool:
        """True for ``failed`` and ``error``."""
        return self.status in (Status.FAILED, Status.ERROR)

    def to_json(self) -> dict[str, Any]:
        """The result as JSON; budgets carry ``median`` and ``p95`` (seconds) at the top."""
        out: dict[str, Any] = {
            "id": self.id,
            "group": self.group,
            "promise": self.promise,
            "status": str(self.status),
            "observer": self.observer,
            "reason": self.reason,
            "evidence": list(self.evidence),
            "duration_s": round(self.duration_s, 3),
        }
        for key in ("median", "p95", "max", "budget", "ceiling"):
            if key in self.measurements:
                out[key] = self.measurements[key]
        if self.measurements:
            out["measurements"] = self.measurements
        return out


def _valid_slack(_config: object, _attribute: object, value: float) -> None:
    if not (math.isfinite(value) and value >= 1.0):
        raise ValueError(f"budget_slack must be a finite number of at least 1, not {value!r}")


@attrs.frozen
class SuiteConfig:
    """How to run: trials per budget, the observation window, the stateful test's size,
    non-gating checks to leave out (``skip``), and ``budget_slack``.

    ``allow_incomplete`` (development only, printed in every report) lets a run whose gating,
    robustness or stateful checks did not all pass still count as ok when none failed; it is
    never certified. ``min_redemptions`` is how many grants the stateful check must have
    redeemed through the adapter for its verdict to count.

    ``budget_slack`` multiplies every time limit a check holds an adapter to (its declared
    budgets, camgate's ceilings, the revocation window, the idle-connection limit, a fault's
    time to report) before comparing: for a shared, loaded
    CI machine, where a p95 over a few trials is one slow trial. At 1.0 (the default) the
    verdict is the one an adapter is certified on; reports say which slack a run used.
    """

    trials: int = attrs.field(default=20, validator=attrs.validators.ge(1))
    settle_s: float = 0.4
    stateful_examples: int = attrs.field(default=4, validator=attrs.validators.ge(1))
    stateful_steps: int = attrs.field(default=8, validator=attrs.validators.ge(1))
    skip: frozenset[str] = attrs.field(factory=frozenset, converter=frozenset)
    budget_slack: float = attrs.field(default=1.0, validator=_valid_slack)
    allow_incomplete: bool = False
    min_redemptions: int = attrs.field(default=3, validator=attrs.validators.ge(1))


@attrs.frozen
class Report:
    """A whole run: the adapter, the target, every result, and how long it took."""

    adapter: str
    distribution: str
    version: str
    target: str
    capabilities: tuple[str, ...]
    budgets: dict[str, float]
    config: SuiteConfig
    results: tuple[CheckResult, ...]
    started_at: str
    duration_s: float

    @property
    def incomplete(self) -> list[CheckResult]:
        """Gating, robustness and stateful checks that neither passed nor are inapplicable."""
        return [r for r in self.results if r.certifying and not r.complete]

    @property
    def certified(self) -> bool:
        """True when no check failed and every gating, robustness and stateful check passed
        (or does not apply to the adapter's declared capabilities)."""
        return not any(r.failed for r in self.results) and not self.incomplete

    @property
    def ok(self) -> bool:
        """The run's verdict: certified; with ``allow_incomplete``, only that nothing failed."""
        if self.config.allow_incomplete:
            return not any(r.failed for r in self.results)
        return self.certified

    @property
    def verdict(self) -> str:
        """One line: certified, or not and why (with ``--allow-incomplete`` said)."""
        failed = [r.id for r in self.results if r.failed]
        if self.certified:
            return "CERTIFIED"
        parts = []
        if failed:
            parts.append("failed: " + ", ".join(failed))
        if self.incomplete:
            parts.append("did not pass: " + ", ".join(r.id for r in self.incomplete))
        text = "NOT CERTIFIED (" + "; ".join(parts) + ")"
        if self.config.allow_incomplete:
            text += " [--allow-incomplete: development run, never a certification]"
        return text

    def counts(self) -> dict[str, int]:
        """How many checks ended in each status (every status present, zeros included)."""
        counts = {str(s): 0 for s in Status}
        for result in self.results:
            counts[str(result.status)] += 1
        return counts

    def result(self, check_id: str) -> CheckResult:
        """The result of one check; KeyError when the run had no such check."""
        for result in self.results:
            if result.id == check_id:
                return result
        raise KeyError(check_id)

    def to_json(self) -> dict[str, Any]:
        """The report as JSON (see docs/conformance.md for the keys)."""
        return {
            "adapter": self.adapter,
            "distribution": self.distribution,
            "version": self.version,
            "target": self.target,
            "capabilities": list(self.capabilities),
            "budgets": self.budgets,
            "config": {
                "trials": self.config.trials,
                "settle_s": self.config.settle_s,
                "stateful_examples": self.config.stateful_examples,
                "stateful_steps": self.config.stateful_steps,
                "skip": sorted(self.config.skip),
                "budget_slack": self.config.budget_slack,
                "allow_incomplete": self.config.allow_incomplete,
                "min_redemptions": self.config.min_redemptions,
            },
            "ok": self.ok,
            "certified": self.certified,
            "verdict": self.verdict,
            "incomplete": [r.id for r in self.incomplete],
            "summary": self.counts(),
            "started_at": self.started_at,
            "duration_s": round(self.duration_s, 2),
            "checks": [r.to_json() for r in self.results],
        }


def percentile(samples: Sequence[float], q: float) -> float:
    """The nearest-rank ``q``-th percentile (0 < q <= 100) of non-empty ``samples``."""
    if not samples:
        raise ValueError("no samples")
    ordered = sorted(samples)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]
