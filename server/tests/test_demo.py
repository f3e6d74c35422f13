"""``camgate serve --demo`` as a newcomer runs it: a real process with simulated cameras (the
rtsp adapter's GStreamer server), accounts with random passwords printed on the console, and a
clean stop on SIGINT and SIGTERM, even with an event stream open."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from .test_cli import _free_port

DEADLINE_S = 90


def _read_until_ready(server: subprocess.Popen[str], lines: list[str]) -> None:
    """Collect the process's output lines until uvicorn says it runs (or fail)."""
    assert server.stdout is not None
    for line in server.stdout:
        lines.append(line)
        if "Uvicorn running on" in line:
            return
    raise AssertionError("camgate serve --demo exited:\n" + "".join(lines))


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_the_demo_serves_its_cameras_to_the_printed_accounts(
    tmp_path: Path, stop: signal.Signals
) -> None:
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "camgate.cli", "serve", "--demo", "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path,
    )  # fmt: skip
    lines: list[str] = []
    try:
        reader = threading.Thread(target=_read_until_ready, args=(server, lines), daemon=True)
        reader.start()
        reader.join(DEADLINE_S)
        assert not reader.is_alive(), "camgate serve --demo did not start:\n" + "".join(lines)
        accounts = dict(re.findall(r"^  \w+ +(\w+) +(\S+)$", "".join(lines), re.M))
        assert set(accounts) == {"admin", "operator", "supervisor", "auditor", "alice", "bob",
                                 "carol"}  # fmt: skip
        assert len(set(accounts.values())) == len(accounts)  # random, one each
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=DEADLINE_S) as client:
            login = {"username": "operator", "password": accounts["operator"]}
            assert client.post("/session", json=login).status_code == 200
            cameras = client.get("/cameras").json()["cameras"]
            assert {c["id"] for c in cameras} == {"cam-alice", "cam-bob", "cam-carol"}
            incidents = client.get("/incidents", params={"status": "open"}).json()["incidents"]
            assert len(incidents) == 1
            with client.stream("GET", "/events") as events:
                assert events.status_code == 200
                lines_in = events.iter_lines()
                assert next(lines_in).startswith("retry:")  # the stream is open
                server.send_signal(stop)
                start = time.monotonic()
                rest = list(lines_in)  # ends when the server ends the stream
                assert time.monotonic() - start < DEADLINE_S
                assert all(not line or line.startswith(":") for line in rest)
        output, _ = server.communicate(timeout=DEADLINE_S)
    finally:
        if server.poll() is None:
            server.kill()
            server.communicate()
    assert server.returncode == 0, "".join(lines) + output
    assert "Finished server process" in output
    assert not list(tmp_path.iterdir())  # nothing written where it was started


def test_the_demo_refuses_to_listen_beyond_loopback() -> None:
    ran = subprocess.run(
        [sys.executable, "-m", "camgate.cli", "serve", "--demo", "--host", "0.0.0.0"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert ran.returncode == 1
    assert "loopback only" in ran.stderr
