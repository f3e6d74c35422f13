"""The suite under pytest: subclass :class:`ConformanceSuite` in a test file, one check a test.

```python
from camgate_conformance.pytest_plugin import ConformanceSuite


class TestMyVendor(ConformanceSuite):
    adapter = "myvendor"
    trials = 5
```

The suite runs once per (adapter, target, configuration) in a test session; each check is then
one test that passes, fails with the check's evidence, or is skipped with why (skipped and not
run alike). The checks themselves live in :mod:`camgate_conformance.checks` and need no pytest.
"""

from __future__ import annotations

from typing import ClassVar

import pytest

from camgate_conformance.checks import check_ids
from camgate_conformance.model import Report, Status, SuiteConfig
from camgate_conformance.runner import run_suite

__all__ = ["ConformanceSuite", "cached_report"]

_REPORTS: dict[tuple[str, str, SuiteConfig], Report] = {}


def cached_report(adapter: str, target: str = "SIM", config: SuiteConfig | None = None) -> Report:
    """Run the suite for ``adapter`` once per session and configuration; later calls reuse it."""
    key = (adapter, target, config or SuiteConfig())
    if key not in _REPORTS:
        _REPORTS[key] = run_suite(adapter, target, key[2])
    return _REPORTS[key]


class ConformanceSuite:
    """Base class of a conformance test class: set ``adapter`` (and ``target``, ``trials``)."""

    adapter: ClassVar[str] = ""
    target: ClassVar[str] = "SIM"
    trials: ClassVar[int] = 5
    stateful_examples: ClassVar[int] = 3
    budget_slack: ClassVar[float] = 1.0
    allow_incomplete: ClassVar[bool] = False

    @pytest.fixture(scope="class")
    @classmethod
    def conformance_report(cls) -> Report:
        """The suite's report for this class's adapter (run once, cached)."""
        if not cls.adapter:
            pytest.fail(f"{cls.__name__} must set `adapter`", pytrace=False)
        config = SuiteConfig(
            trials=cls.trials,
            stateful_examples=cls.stateful_examples,
            budget_slack=cls.budget_slack,
            allow_incomplete=cls.allow_incomplete,
        )
        return cached_report(cls.adapter, cls.target, config)

    @pytest.mark.parametrize("check_id", check_ids())
    def test_conformance(self, conformance_report: Report, check_id: str) -> None:
        """One check of the suite: its status becomes the test's."""
        __tracebackhide__ = True
        result = conformance_report.result(check_id)
        if result.certifying and not result.complete and not self.allow_incomplete:
            # Certification needs it passed: a gating/robustness/stateful check not run fails.
            pytest.fail(f"not certified: {result.id} {result.status}: {result.reason}", False)
        if result.status in (Status.SKIPPED, Status.NOT_RUN):
            pytest.skip(f"{result.status}: {result.reason}")
        if result.failed:
            pytest.fail(f"{result.promise}\n" + "\n".join(result.evidence), pytrace=False)
