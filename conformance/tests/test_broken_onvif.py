"""Broken ONVIF adapters (recorded footage): each fails exactly the check meant for it.

Each run is a whole suite in a process of its own, several at once (``_selftest.py``).
"""

from __future__ import annotations

from typing import Any

import pytest
from camgate_conformance import Status

from ._broken_onvif import BROKEN

pytestmark = [pytest.mark.rtsp, pytest.mark.timeout(900)]


@pytest.mark.parametrize("job", [f"onvif:{name}" for name in sorted(BROKEN)])
def test_a_broken_onvif_adapter_fails_exactly_its_check(selftest_runs: Any, job: str) -> None:
    _adapter, check_id, says = BROKEN[job.split(":")[1]]
    report = selftest_runs.report(job)
    failed = {r.id: r.evidence for r in report.results if r.failed}
    assert set(failed) == {check_id}, failed
    assert says in failed[check_id][0], failed[check_id]
    assert not report.certified


@pytest.mark.parametrize("job", ["onvif:honest"])
def test_the_honest_onvif_adapter_reads_the_window_from_the_pictures(
    selftest_runs: Any, job: str
) -> None:
    report = selftest_runs.report(job)
    result = report.result("gating.recorded-window")
    assert result.status is Status.PASSED, result
    assert result.measurements["pictures"] >= 5
    # ... and from the exported clip of a second grant: one replay request per grant.
    assert result.measurements["clip_pictures"] >= 5
    assert result.measurements["replay_requests"] == 2
    discovery = report.result("budget.discovery")
    # Each timed discover() is a real one: a fresh adapter asks the device every time.
    assert all(n > 0 for n in discovery.measurements["requests_per_trial"]), discovery
    assert report.certified, report.verdict
