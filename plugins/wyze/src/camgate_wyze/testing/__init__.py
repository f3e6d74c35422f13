"""Wyze simulated on loopback, for tests and demos (never imported by the adapter).

:class:`WyzeSimulator` starts the simulated cloud (:mod:`camgate_wyze.testing.server`, a
process of its own) and, for the cameras on Wyze's RTSP firmware, camgate-rtsp's GStreamer
RTSP test server (digest-protected mounts with the picture clock). Entering links the account
(a token file in a temporary folder) and gives ``sources`` (the cameras' MACs) and
``settings`` that reach everything.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from camgate.adapters import Simulator
from camgate.errors import ConfigError
from camgate_rtsp.testing import Mount, RtspTestServer

from camgate_wyze.client import Tokens, save_tokens

__all__ = ["API_KEY", "EMAIL", "KEY_ID", "PASSWORD", "RTSP_PASSWORD", "TOTP_CODE", "WyzeSimulator"]

EMAIL = "owner@example.org"
PASSWORD = "sim-wyze-pa55:word"  # noqa: S105 (the simulator's own)
KEY_ID = "sim-key-id-0001"
API_KEY = "sim-api-key-9f8e7d6c5b4a"
TOTP_CODE = "246810"
RTSP_PASSWORD = "rtsp-pa55/w0rd"  # noqa: S105


class WyzeSimulator(Simulator):
    """``cameras`` simulated Wyze cameras (MACs ``D03F27000001``…); the first ``rtsp`` of them
    run Wyze's RTSP firmware (served by a GStreamer RTSP server, 2 s GOP), the others are v4s
    reached over the cloud's KVS-style signalling websocket and an aiortc peer (2 s GOP); the
    cameras numbered in ``offline`` (from 1) are offline. ``mfa`` is the
    account's second factor (None, ``"totp"`` or ``"sms"``; the code is :data:`TOTP_CODE`).
    ``events_at`` are event times (UTC) for the first camera, each with a ``clip_seconds``
    clip; by default three events a minute apart, ending two minutes ago.
    ``link`` writes a token file on entering (as ``camgate wyze link`` would);
    ``events_everywhere`` gives every camera those events (else only the first)."""

    def __init__(
        self,
        cameras: int = 2,
        *,
        rtsp: int | None = None,
        mfa: str | None = None,
        events_at: list[datetime] | None = None,
        clip_seconds: float = 4.0,
        login_interval_s: float = 30.0,
        quota: int = 300,
        access_ttl_s: float = 7200.0,
        link: bool = True,
        events_everywhere: bool = False,
        offline: frozenset[int] = frozenset(),
    ) -> None:
        self.macs = [f"D03F27{i:06X}" for i in range(1, cameras + 1)]
        self.rtsp_count = cameras if rtsp is None else rtsp
        if events_at is None:
            base = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
            events_at = [base + timedelta(minutes=i) for i in range(3)]
        self.events_at = events_at
        self.clip_seconds = clip_seconds
        self.link = link
        self.config: dict[str, Any] = {
            "email": EMAIL,
            "password": PASSWORD,
            "key_id": KEY_ID,
            "api_key": API_KEY,
            "mfa": mfa,
            "code": TOTP_CODE,
            "login_interval_s": login_interval_s,
            "quota": quota,
            "access_ttl_s": access_ttl_s,
            "clip_seconds": clip_seconds,
            "cameras": [
                {
                    "mac": mac,
                    "nickname": f"Porch {i}",
                    "model": "WYZE_CAKP2JFUS" if i <= self.rtsp_count else "HL_CAM4",
                    "online": i not in offline,
                }
                for i, mac in enumerate(self.macs, 1)
            ],
            "events": [
                {
                    "event_id": f"{mac}-ev{i}",
                    "mac": mac,
                    "ts_ms": int(at.timestamp() * 1000),
                    "file": f"{mac}-ev{i}.mp4",
                }
                for mac in self.macs[: 1 if events_everywhere is False else cameras]
                for i, at in enumerate(events_at, 1)
            ],
        }
        self._dir: tempfile.TemporaryDirectory[str] | None = None
        self.process: subprocess.Popen[str] | None = None
        self.rtsp: RtspTestServer | None = None
        self.base = ""
        #: ``ws://127.0.0.1:PORT`` of the KVS-style signalling websocket.
        self.ws_base = ""
        self.token_file = ""
        self.sources: list[str] = []
        self.settings: dict[str, Any] = {}

    def __repr__(self) -> str:
        return f"WyzeSimulator(base={self.base!r})"

    def __enter__(self) -> WyzeSimulator:
        self._dir = tempfile.TemporaryDirectory(prefix="wyze-sim-")
        folder = Path(self._dir.name)
        (folder / "clips").mkdir()
        config = folder / "config.json"
        config.write_text(
            json.dumps(self.config | {"clip_dir": str(folder / "clips")}), encoding="utf-8"
        )
        try:
            self._start_cloud(config)
            rtsp_macs = self.macs[: self.rtsp_count]
            if rtsp_macs:
                self.rtsp = RtspTestServer(
                    [
                        Mount(
                            f"/{mac}",
                            width=320,
                            height=240,
                            fps=10,
                            gop_frames=20,
                            username="viewer",
                            password=RTSP_PASSWORD,
                            picture_clock=True,
                        )
                        for mac in rtsp_macs
                    ]
                )
                self.rtsp.start()
        except BaseException:
            self.close()
            raise
        self.token_file = str(folder / "tokens.json")
        if self.link:
            self.link_account()
        self.sources = list(self.macs)
        self.settings = self.settings_for()
        return self

    def _start_cloud(self, config: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "camgate_wyze.testing.server", str(config)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line.startswith("READY "):
            raise ConfigError("the Wyze simulator did not start")
        self.base, self.ws_base = line.split()[1:3]

    def settings_for(self, **overrides: Any) -> dict[str, Any]:
        """Adapter settings reaching this simulator (every camera enrolled with an owner and
        a position, the RTSP ones with their URL and credentials), with ``overrides``."""
        cameras: dict[str, Any] = {}
        credentials: dict[str, Any] = {}
        for i, mac in enumerate(self.macs):
            entry: dict[str, Any] = {"owner_id": "owner-1", "position": [52.52, 13.40 + i / 1000]}
            if self.rtsp is not None and i < self.rtsp_count:
                entry["rtsp_url"] = self.rtsp.url(f"/{mac}")
                credentials[mac] = {"username": "viewer", "password": RTSP_PASSWORD}
            cameras[mac] = entry
        return {
            "key_id": KEY_ID,
            "api_key": API_KEY,
            "auth_url": self.base,
            "api_url": self.base,
            "webrtc_url": self.base,
            "media_hosts": ["127.0.0.1"],
            "signaling_hosts": ["127.0.0.1"],
            "token_file": self.token_file,
            "cameras": cameras,
            "credentials": credentials,
            "login_interval_s": float(self.config["login_interval_s"]),
        } | overrides

    def link_account(self) -> Tokens:
        """Write a token file with a fresh token pair (what ``camgate wyze link`` leaves),
        so tests that are not about the login need not wait out its rate limit."""
        tokens = self.issue()
        save_tokens(self.token_file, tokens)
        return tokens

    def issue(self) -> Tokens:
        """A fresh token pair from the simulator (as a completed login gives)."""
        value = self._backdoor("POST", "/_sim/issue")
        return Tokens(value["access_token"], value["refresh_token"], value["user_id"])

    def _backdoor(self, method: str, path: str, body: Any = None) -> Any:
        response = httpx.request(method, self.base + path, json=body, trust_env=False)
        response.raise_for_status()
        return response.json()

    def log(self, *, connections: bool = False) -> list[dict[str, Any]]:
        """Every request the simulated cloud answered so far (see the server's docstring);
        with ``connections`` also each connection's ``connect`` and ``closed``."""
        value: list[dict[str, Any]] = self._backdoor("GET", "/_sim/log")
        if connections:
            return value
        return [e for e in value if e["kind"] not in ("connect", "closed")]

    def expire_tokens(self) -> None:
        """Every access token expires now (the next API call gets code 2001)."""
        self._backdoor("POST", "/_sim/expire")

    def set_quota(self, remaining: int, reset_in_s: float) -> None:
        """Set the rate-limit quota left and when it resets."""
        self._backdoor("POST", "/_sim/quota", {"remaining": remaining, "reset_in_s": reset_in_s})

    def close(self) -> None:
        """Stop the servers and remove the files. Idempotent."""
        rtsp, self.rtsp = self.rtsp, None
        if rtsp is not None:
            rtsp.stop()
        process, self.process = self.process, None
        if process is not None:
            if process.poll() is None:
                assert process.stdin is not None
                process.stdin.close()
                try:
                    process.wait(5)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(5)
            for pipe in (process.stdin, process.stdout):
                if pipe is not None:
                    pipe.close()
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None
