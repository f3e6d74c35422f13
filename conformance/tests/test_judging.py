"""The suite's verdict functions on their own: budgets judged on the tail, secret forms."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from camgate.errors import CameraUnreachable
from camgate_conformance import CheckFailed, SuiteConfig
from camgate_conformance.checks import Context, _judge, _texts, secret_forms
from camgate_rtsp.plugin import FACTORY
from camgate_rtsp.testing.target import RtspTarget


def _ctx(tmp_path: Path, slack: float = 1.0) -> Context:
    target = RtspTarget()  # not started: _judge reads only the budgets and the slack
    return Context(FACTORY, target, SuiteConfig(budget_slack=slack), tmp_path)


def test_one_slow_call_in_twenty_fails_the_budget_on_its_max(tmp_path: Path) -> None:
    """Item 7: nearest-rank p95 over 20 samples hid a 21 s call; the max is judged too."""
    ctx = _ctx(tmp_path)
    samples = [0.1] * 19 + [21.0]
    with pytest.raises(CheckFailed, match="slowest of 20 trials took 21.000 s"):
        _judge(ctx, "snapshot", samples)
    m = ctx.measurements
    assert (m["median"], m["p95"], m["max"]) == (0.1, 0.1, 21.0)


def test_slack_applies_to_the_max(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path, slack=3.0)
    _judge(ctx, "snapshot", [0.1] * 19 + [12.0])  # ceiling 5 s times 3
    with pytest.raises(CheckFailed, match="slowest"):
        _judge(_ctx(tmp_path, slack=3.0), "snapshot", [0.1] * 19 + [16.0])


def test_a_hundred_trials_are_judged_on_p99(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path)
    _judge(ctx, "snapshot", [0.1] * 98 + [1.5, 1.6])  # p99 0.1... max under the ceiling
    assert ctx.measurements["judged_on"] == "p99 and max"


def test_secrets_are_found_in_attributes_and_base64() -> None:
    """Item 5: `exc.url`, `Authorization: Basic ...` in a message, `user:pass` forms."""
    settings = {"credentials": {"rtsp://h/x": {"username": "qa", "password": "s3cr:et"}}}
    forms = secret_forms("s3cr:et", settings)
    basic = base64.b64encode(b"qa:s3cr:et").decode()
    assert {"s3cr:et", "s3cr%3Aet", "qa:s3cr:et", basic} <= forms

    error = CameraUnreachable("camera gone")
    error.url = "rtsp://qa:s3cr:et@h/x"  # type: ignore[attr-defined]
    assert any(f in t for t in _texts(error) for f in forms)
    header = CameraUnreachable(f"refused (Authorization: Basic {basic})")
    assert any(f in t for t in _texts(header) for f in forms)
    clean = CameraUnreachable("camera gone")
    assert not any(f in t for t in _texts(clean) for f in forms)
