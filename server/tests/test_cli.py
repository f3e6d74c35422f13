"""``camgate serve`` as a user runs it: a real subprocess, found through the commands hook."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

PASSWORD = "the root password, long enough"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _camgate(*args: str) -> list[str]:
    return [sys.executable, "-m", "camgate.cli", *args]


def _run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        _camgate(*args), env=env, capture_output=True, text=True, timeout=60, check=False
    )


def test_camgate_serve_creates_an_admin_then_serves_the_api(tmp_path: Path) -> None:
    db = tmp_path / "city.db"
    env = {**os.environ, "CAMGATE_ADMIN_PASSWORD": PASSWORD}
    made = _run("serve", "--db", str(db), "--create-admin", "root", env=env)
    assert made.returncode == 0, made.stderr
    assert (tmp_path / "city.accounts.db").exists()
    assert PASSWORD not in made.stdout + made.stderr
    port = _free_port()
    server = subprocess.Popen(
        _camgate("--db", str(db), "serve", "--port", str(port), "--insecure-cookies"),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:  # wait for the condition "it answers", bounded by a generous deadline
            try:
                httpx.get(f"{base}/openapi.json", timeout=5)
                break
            except httpx.TransportError:
                assert server.poll() is None, "camgate serve exited"
                assert time.monotonic() < deadline, "camgate serve did not start"
                time.sleep(0.05)
        with httpx.Client(base_url=base) as client:
            logged = client.post("/session", json={"username": "root", "password": PASSWORD})
            assert logged.status_code == 200
            assert logged.json()["account"]["role"] == "admin"
            assert client.get("/cameras").json() == {"cameras": []}
    finally:
        server.send_signal(signal.SIGINT)
        output, _ = server.communicate(timeout=60)
    assert server.returncode == 0, output
    assert PASSWORD not in output


def test_camgate_serve_wants_the_proxy_secret_with_proxy_roles(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "CAMGATE_PROXY_SECRET"}
    db = str(tmp_path / "c.db")
    ran = _run("serve", "--db", db, "--proxy-role", "rtcc=operator", env=env)
    assert ran.returncode == 1
    assert "CAMGATE_PROXY_SECRET" in ran.stderr
    env["CAMGATE_PROXY_SECRET"] = "s" * 40
    owners = _run("serve", "--db", db, "--proxy-role", "residents=owner", env=env)
    assert owners.returncode == 1
    assert "owners log in with their own accounts" in owners.stderr
    assert "s" * 40 not in owners.stderr


def test_accounts_of_a_postgresql_store_live_in_its_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from camgate_server.accounts import accounts_path

    monkeypatch.setenv("CAMGATE_HOME", str(tmp_path))
    dsn = "postgresql://camgate:pw@db.internal:5432/city"
    assert accounts_path(dsn) == dsn  # every hub on that database shares them
    assert accounts_path(tmp_path / "camgate.db") == tmp_path / "camgate.accounts.db"
