"""The suite tests itself: each deliberately broken adapter fails its own check, and only it."""

from __future__ import annotations

import anyio
import pytest
from camgate_conformance import Status, run_checks
from camgate_rtsp.conformance import RtspTarget

from .conftest import QUICK, broken_factories

# A whole suite runs inside one test (about 30 s quiet): room for a loaded machine.
pytestmark = [pytest.mark.rtsp, pytest.mark.timeout(600)]


@pytest.mark.parametrize("name", ["eager", "lingering", "leaky", "slow"])
def test_a_broken_adapter_fails_exactly_its_check(rtsp_target: RtspTarget, name: str) -> None:
    factory, expected = broken_factories(rtsp_target)[name]
    report = anyio.run(run_checks, factory, rtsp_target, QUICK)
    failed = {r.id: r.evidence for r in report.results if r.failed}
    assert set(failed) == expected, failed
    assert not report.ok
    for check_id in expected:
        result = report.result(check_id)
        assert result.status is Status.FAILED and result.evidence, result
    if name == "lingering":
        # The edge believes the stream closed; only the server's own log shows the connection
        # still open. The revocation budget is then not measured: its gating check failed.
        assert "did not see the connection closed" in failed["gating.revocation-closes"][0]
        budget = report.result("budget.revocation")
        assert budget.status is Status.NOT_RUN and "gating.revocation-closes" in budget.reason
    if name == "leaky":
        assert "carries the password" in failed["robustness.no-secret-in-errors"][0]
