"""The Arlo cloud simulated on loopback, for tests, benchmarks and demos (never imported by the
adapter). :class:`ArloSimulator` starts GStreamer's RTSP server (``camgate_rtsp.testing``)
and :mod:`camgate_arlo.testing.server` as processes, makes a self-signed certificate for the
RTSPS front, links the account (a paired session) and gives adapter settings that reach it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx
from camgate.adapters import Simulator
from camgate_rtsp.testing import Mount, RtspTestServer

__all__ = ["EMAIL", "PASSWORD", "ArloSimulator", "self_signed"]

EMAIL = "owner@example.org"
PASSWORD = "sim-Arlo-pässword-7f1c"  # noqa: S105 (the simulator's own)
#: The length of each recording in a simulated library (seconds).
CLIP_S = 4.0


def self_signed(directory: str, host: str = "127.0.0.1") -> tuple[str, str]:
    """A fresh self-signed certificate for ``host`` (an IP address) and its key, as PEM files
    in ``directory`` (the ``openssl`` command); the certificate is its own authority."""
    cert_file = os.path.join(directory, "arlo-stream.pem")
    key_file = os.path.join(directory, "arlo-stream.key")
    command = "req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1"
    openssl = shutil.which("openssl")
    if openssl is None:
        raise RuntimeError("the Arlo simulator needs the openssl command (scripts/setup.sh)")
    subprocess.run(
        [
            openssl,
            *command.split(),
            *("-subj", "/CN=camgate arlo simulator", "-addext", f"subjectAltName=IP:{host}"),
            *("-keyout", key_file, "-out", cert_file),
        ],
        check=True,
        capture_output=True,
    )
    return cert_file, key_file


class ArloSimulator(Simulator):
    """``cameras`` simulated Arlo cameras behind one base station (device ids ``SIMCAM1``…,
    the base station ``SIMBASE``), an account with a second factor (``factors``), a stream
    cap of ``session_cap_s`` and a connect window of ``connect_window_s`` seconds. Entering
    starts everything; ``sources`` are the camera device ids and ``settings`` reach them with
    a linked, paired session (persisted to a temporary session file). Devices in ``broken``
    answer 500 to startStream and snapshots. With ``recorded=(start, end)`` (UNIX seconds)
    each camera's library holds back-to-back recordings of :data:`CLIP_S` seconds covering it
    (real MP4 files whose pictures carry the picture clock)."""

    def __init__(
        self,
        cameras: int = 2,
        *,
        factors: tuple[str, ...] = ("EMAIL", "SMS", "PUSH"),
        two_factor: bool = True,
        session_cap_s: float = 1800.0,
        connect_window_s: float = 30.0,
        snapshot_delay_s: float = 0.2,
        broken: tuple[str, ...] = (),
        recorded: tuple[float, float] | None = None,
    ) -> None:
        base = {
            "deviceId": "SIMBASE",
            "deviceName": "Base station",
            "deviceType": "basestation",
            "parentId": "SIMBASE",
            "xCloudId": "XC-SIMBASE",
            "modelId": "VMB4540",
            "state": "provisioned",
        }
        self.mounts = [
            Mount(f"/cam{i}", width=640, height=360, fps=10, gop_frames=20, picture_clock=True)
            for i in range(1, cameras + 1)
        ]
        cams = [
            {
                "deviceId": f"SIMCAM{i}",
                "deviceName": f"Simulated Arlo {i}",
                "deviceType": "camera",
                "parentId": "SIMBASE",
                "xCloudId": "XC-SIMBASE",
                "modelId": "VMC4041P",
                "state": "provisioned",
                "mount": f"/cam{i}",
            }
            for i in range(1, cameras + 1)
        ]
        self.config: dict[str, Any] = {
            "devices": [base, *cams],
            "account": {"email": EMAIL, "password": PASSWORD},
            "factors": list(factors),
            "two_factor": two_factor,
            "session_cap_s": session_cap_s,
            "connect_window_s": connect_window_s,
            "snapshot_delay_s": snapshot_delay_s,
            "broken": list(broken),
            "library": [
                {"deviceId": cam["deviceId"], "start": recorded[0] + k * CLIP_S, "seconds": CLIP_S}
                for cam in cams
                for k in range(round((recorded[1] - recorded[0]) / CLIP_S))
            ]
            if recorded is not None
            else [],
        }
        #: The recorded span (UNIX seconds) every camera's library covers, when asked for.
        self.recorded = recorded
        self._dir: tempfile.TemporaryDirectory[str] | None = None
        self._rtsp: RtspTestServer | None = None
        self.process: subprocess.Popen[str] | None = None
        self.auth = self.api = self.events = ""
        self.rtsps_port = 0
        self.ca_file = ""
        self.sources: list[str] = []
        self.settings: dict[str, Any] = {}

    def __repr__(self) -> str:
        return f"ArloSimulator(api={self.api!r})"

    def __enter__(self) -> ArloSimulator:
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def _start(self) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="arlo-sim-")
        directory = self._dir.name
        cert, key = self_signed(directory)
        self.ca_file = cert
        self._rtsp = RtspTestServer(self.mounts)
        self._rtsp.__enter__()
        config = Path(directory) / "config.json"
        self.config |= {
            "backend": [self._rtsp.host, self._rtsp.port],
            "cert_file": cert,
            "key_file": key,
        }
        config.write_text(json.dumps(self.config), encoding="utf-8")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "camgate_arlo.testing.server", str(config)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line.startswith("READY "):
            raise RuntimeError("the Arlo simulator did not start")
        _, self.auth, self.api, self.events, port = line.split()
        self.rtsps_port = int(port)
        self.sources = [d["deviceId"] for d in self.config["devices"][1:]]
        self.settings = self.account_settings() | {
            "session": json.dumps(self.link()),
            "session_file": str(Path(directory) / "session.json"),
        }

    def account_settings(self) -> dict[str, Any]:
        """Settings that reach the simulator with the account's e-mail and password but no
        session (a login, with its factors, comes first)."""
        return {
            "auth_base_url": self.auth,
            "api_base_url": self.api,
            "events_base_url": self.events,
            "stream_hosts": ["127.0.0.1"],
            "media_hosts": ["127.0.0.1"],
            "ca_file": self.ca_file,
            "email": EMAIL,
            "password": PASSWORD,
        }

    def _call(self, name: str, body: Any = None) -> Any:
        response = httpx.post(f"{self.api}/_sim/{name}", json=body, timeout=10)
        response.raise_for_status()
        return response.json()

    def link(self) -> dict[str, Any]:
        """A complete session for a client paired as a trusted browser (what
        ``camgate arlo link`` leaves behind), as :class:`~camgate_arlo.client.ArloSession`'s
        JSON."""
        result: dict[str, Any] = self._call("link")
        return result

    def log(self) -> list[dict[str, Any]]:
        """Every request so far (host, method, path, status, user_agent, client, kind, camera,
        media), every connection's ``connect`` and ``closed``, and every RTSPS ``play``
        (client, camera); never a token."""
        result: list[dict[str, Any]] = self._call("log")
        return result

    def otp(self) -> str | None:
        """The one-time code the last EMAIL or SMS factor "sent"."""
        value: str | None = self._call("otp")["otp"]
        return value

    def approve(self) -> None:
        """The owner approves every pending PUSH factor."""
        self._call("approve")

    def expire(self) -> None:
        """Every token issued so far expires now (the next API call gets 401)."""
        self._call("expire")

    def lock_events(self, count: int = 1) -> None:
        """The event streams open now, and the next ``count`` opened, go silent."""
        self._call("lock", {"count": count})

    def cloudflare(self, status: str | None) -> None:
        """The login host answers every request with Cloudflare's ``"403"`` or ``"429"``
        page (None: normal again)."""
        self._call("fault", {"auth": status})

    def set_offline(self, *device_ids: str) -> None:
        """These devices are offline (2059) from now on; none when called without."""
        self._call("offline", {"devices": list(device_ids)})

    def drop(self, *device_ids: str) -> None:
        """End the live streams of these devices now (their RTSPS connections close); they
        are offline from then on (``set_offline()`` brings them back)."""
        self._call("drop", {"devices": list(device_ids)})

    def configure(self, **values: float) -> None:
        """Change ``session_cap_s``, ``connect_window_s`` or ``snapshot_delay_s`` now (for
        stream sessions started from now on)."""
        self._call("config", values)

    def state(self) -> dict[str, Any]:
        """The stream sessions: device, used, ended (``idle``, ``cap`` or None), open
        connections."""
        result: dict[str, Any] = self._call("state")
        return result

    def close(self) -> None:
        """Stop the processes and remove the files. Idempotent."""
        if self.process is not None:
            if self.process.stdin is not None:
                self.process.stdin.close()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            if self.process.stdout is not None:
                self.process.stdout.close()
            self.process = None
        if self._rtsp is not None:
            self._rtsp.__exit__(None, None, None)
            self._rtsp = None
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None
