"""``camgate onvif probe``: a real subprocess against the simulator."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

from camgate_onvif.testing.simulator import OnvifSimulator, Quirks


def _probe(sim: OnvifSimulator, *args: str, password: str | None = None) -> Any:
    env = dict(os.environ)
    env["CAMGATE_ONVIF_PASSWORD"] = sim.password if password is None else password
    return subprocess.run(
        [sys.executable, "-m", "camgate.cli", "onvif", "probe", sim.device_url(), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def test_probe_lists_profiles_services_and_support(make_sim: Any) -> None:
    sim = make_sim(quirks=Quirks(invalid_encoders=True))
    got = _probe(sim, "--user", sim.username, "--json", "--setting", "timeout_s=4")
    assert got.returncode == 0, got.stderr
    report = json.loads(got.stdout)
    assert [(p["token"], p["codec"], p["width"], p["height"]) for p in report["profiles"]] == [
        ("main", "h264", 640, 360),
        ("sub", "h264", 320, 180),
    ]
    assert report["device"]["Manufacturer"] == "camgate" and report["recordings"] is True
    assert report["snapshot"].endswith("/dev1/snapshot/main.jpg")
    assert any("'bad-size' skipped" in n for n in report["notes"])
    text = _probe(sim, "--user", sim.username)
    assert text.returncode == 0 and "main" in text.stdout and "recorded yes" in text.stdout
    assert sim.password not in got.stdout + text.stdout + got.stderr + text.stderr


def test_probe_errors_are_clear_and_secret_free(make_sim: Any) -> None:
    sim = make_sim()
    got = _probe(sim, "--user", sim.username, password="wrong-pw-123")
    assert got.returncode != 0
    assert "camgate:" in got.stderr and "refused" in got.stderr
    assert "Traceback" not in got.stderr and "wrong-pw-123" not in got.stderr
    bad = _probe(sim, "--setting", "no_such=1")
    assert bad.returncode != 0 and "unknown" in bad.stderr
