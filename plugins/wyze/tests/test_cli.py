"""``camgate wyze link`` as a real process against the simulated cloud: the second factor
typed on stdin, the tokens written, the cameras listed, no secret printed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from camgate_wyze.testing import API_KEY, EMAIL, KEY_ID, PASSWORD, TOTP_CODE, WyzeSimulator


def _link(sim: WyzeSimulator, token_file: Path, code: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAMGATE_")}
    env |= {"CAMGATE_WYZE_PASSWORD": PASSWORD, "CAMGATE_WYZE_API_KEY": API_KEY}
    args = ["wyze", "link", "--email", EMAIL]
    for key, value in {
        "key_id": KEY_ID,
        "auth_url": sim.base,
        "api_url": sim.base,
        "token_file": str(token_file),
        "login_interval_s": 0.2,
        "api_key_expires": "2099-01-31",
    }.items():
        args += ["--setting", f"{key}={json.dumps(value)}"]
    return subprocess.run(
        [sys.executable, "-m", "camgate.cli", *args],
        input=code + "\n",
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


def test_link_asks_the_code_and_writes_tokens(tmp_path: Path) -> None:
    with WyzeSimulator(cameras=2, rtsp=0, mfa="totp", login_interval_s=0.2, link=False) as sim:
        wrong = _link(sim, tmp_path / "tokens.json", "111111")
        right = _link(sim, tmp_path / "tokens.json", TOTP_CODE)
    assert wrong.returncode == 1 and "camgate:" in wrong.stderr
    assert right.returncode == 0, right.stderr
    assert "authenticator app" in right.stderr
    assert f"tokens written to {tmp_path / 'tokens.json'}" in right.stdout
    assert "expires on 2099-01-31" in right.stdout
    assert all(mac in right.stdout for mac in sim.macs)
    saved = json.loads((tmp_path / "tokens.json").read_text())
    everything = wrong.stdout + wrong.stderr + right.stdout + right.stderr
    for secret in (PASSWORD, API_KEY, saved["access_token"], saved["refresh_token"]):
        assert secret not in everything
