"""``camgate arlo link`` and ``camgate arlo devices`` as real processes against the simulator:
the owner picks a factor on the terminal, approves the push, and the session file they leave is
what the adapter then uses without any factor."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from camgate.testing import run_cli
from camgate_arlo.testing import EMAIL, PASSWORD, ArloSimulator


def hosts(sim: ArloSimulator) -> list[str]:
    return [
        *("--auth-base-url", sim.auth, "--api-base-url", sim.api),
        *("--events-base-url", sim.events),
    ]


def test_link_with_a_push_then_list_the_cameras(arlo: ArloSimulator, tmp_path: Path) -> None:
    session = tmp_path / "arlo-session.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAMGATE_")}
    env["ARLO_PASSWORD"] = PASSWORD
    command = [
        *(sys.executable, "-m", "camgate.cli", "arlo", "link", "--email", EMAIL),
        *("--password-env", "ARLO_PASSWORD", "--session-file", str(session), *hosts(arlo)),
        *("--setting", "push_poll_s=0.2"),
    ]
    with subprocess.Popen(
        command,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    ) as process:
        assert process.stdin is not None
        process.stdin.write("3\n")  # EMAIL, SMS, PUSH: the push
        process.stdin.flush()
        deadline = time.monotonic() + 60
        while process.poll() is None:  # the owner approves on the phone, whenever asked
            assert time.monotonic() < deadline, "camgate arlo link did not finish"
            arlo.approve()
            time.sleep(0.2)
        out, err = process.communicate()
    assert process.returncode == 0, err
    assert "1. EMAIL o***@example.org" in out and "3. PUSH" in out
    assert "Approve the login in the Arlo app" in out
    assert (
        "camgate camera add --id arlo-simcam1 --owner OWNER --adapter arlo --source SIMCAM1" in out
    )
    assert "SIMBASE " not in out  # base stations are not cameras
    assert PASSWORD not in out + err
    assert session.stat().st_mode & 0o777 == 0o600

    # The stored session lists the cameras again, with no password and no factor.
    listed = run_cli("arlo", "devices", "--session-file", str(session), *hosts(arlo))
    assert "2 camera(s)" in listed.stdout and "SIMCAM2" in listed.stdout


def test_link_with_a_wrong_code_fails_cleanly(arlo: ArloSimulator, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAMGATE_")}
    env["ARLO_PASSWORD"] = PASSWORD
    result = subprocess.run(
        [
            *(sys.executable, "-m", "camgate.cli", "arlo", "link", "--email", EMAIL),
            *("--password-env", "ARLO_PASSWORD", "--session-file", str(tmp_path / "s.json")),
            *hosts(arlo),
        ],
        input="1\n000000\n" if arlo.otp() != "000000" else "1\n111111\n",
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "9261" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "s.json").exists()
