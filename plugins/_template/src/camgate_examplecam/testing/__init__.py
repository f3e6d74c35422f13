"""Test infrastructure of the Example Cam adapter: a simulator that really serves pictures on
loopback (:class:`ExampleSimulator`, the server in :mod:`.server`) and the conformance target
(:mod:`.target`). Nothing here is imported by the adapter itself."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import attrs
from camgate.adapters import Simulator
from camgate.errors import ConfigError

__all__ = ["ExampleSimulator", "ServerEvent"]

#: How long the server process may take to say it listens.
STARTUP_S = 20.0


@attrs.frozen
class ServerEvent:
    """One line of the server's log: ``at`` (``time.monotonic()``), ``client`` (its address),
    ``kind`` (``connect``, ``get``, ``closed``), ``path`` (the camera path) and ``media``."""

    at: float
    client: str
    kind: str
    path: str | None
    media: bool


class ExampleSimulator(Simulator):
    """Simulated Example Cams in a server process of their own.

    ``cameras`` maps a path (``/cam1``) to ``{"username", "password"}`` or None (open);
    ``errors`` maps a path to the HTTP status it always answers. ``sources`` and ``settings``
    (credentials included) reach every camera once entered.
    """

    def __init__(
        self,
        cameras: dict[str, dict[str, str] | None],
        *,
        errors: dict[str, int] | None = None,
        fps: int = 10,
        size: tuple[int, int] = (320, 240),
    ) -> None:
        self._dir: tempfile.TemporaryDirectory[str] | None = None
        self.log_path = Path()
        self.config: dict[str, Any] = {
            "fps": fps,
            "width": size[0],
            "height": size[1],
            "cameras": cameras,
            "errors": errors or {},
        }
        self.process: subprocess.Popen[str] | None = None
        self.port = 0
        self.sources: list[str] = []
        self.settings: dict[str, Any] = {}

    def __enter__(self) -> ExampleSimulator:
        self._dir = tempfile.TemporaryDirectory(prefix="examplecam-")
        self.log_path = Path(self._dir.name) / "events.jsonl"
        self.log_path.touch()
        config = Path(self._dir.name) / "config.json"
        config.write_text(json.dumps(self.config | {"log": str(self.log_path)}), encoding="utf-8")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "camgate_examplecam.testing.server", str(config)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()  # "port N", or "" if it died
        if not line.startswith("port "):
            self.close()
            raise ConfigError("the Example Cam simulator did not start")
        self.port = int(line.split()[1])
        self.sources = [self.url(path) for path in self.config["cameras"]]
        creds = {self.url(p): c for p, c in self.config["cameras"].items() if c is not None}
        self.settings = {"credentials": creds} if creds else {}
        return self

    def url(self, path: str) -> str:
        """The source address of the camera at ``path``."""
        return f"http://127.0.0.1:{self.port}{path}"

    def events(self) -> list[ServerEvent]:
        """Every line of the server's log so far."""
        lines = self.log_path.read_text(encoding="utf-8").splitlines()
        # The last line may be half-written: take only whole ones.
        return [ServerEvent(**json.loads(line)) for line in lines if line.endswith("}")]

    def open_clients(self) -> set[str]:
        """The connections the server has open now."""
        open_: set[str] = set()
        for event in self.events():
            if event.kind == "connect":
                open_.add(event.client)
            elif event.kind == "closed":
                open_.discard(event.client)
        return open_

    def kill(self) -> None:
        """Kill the server process at once (a camera that drops off the network)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(5)

    def close(self) -> None:
        """Stop the server process and remove its files. Idempotent."""
        process, self.process = self.process, None
        if process is not None:
            if process.poll() is None:
                assert process.stdin is not None
                process.stdin.close()  # the server shuts down when its stdin closes
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
