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
            "reason": self.reason,
            "evidence": list(self.evidence),
            "duration_s": round(self.duration_s, 3),
        }
        for key in ("median", "p95", "budget", "ceiling"):
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
    def ok(self) -> bool:
        """True when no check failed or errored."""
        return not any(r.failed for r in self.results)

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
            },
            "ok": self.ok,
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
