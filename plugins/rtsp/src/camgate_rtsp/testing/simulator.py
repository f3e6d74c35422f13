"""The rtsp adapter's simulator: what the ``rtsp`` factory's ``simulator`` builds."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from camgate.adapters import Simulator

from camgate_rtsp.testing.server import Mount, RtspTestServer

__all__ = ["RtspSimulator"]


class RtspSimulator(Simulator):
    """``count`` cameras served by a real GStreamer RTSP server on loopback.

    Cameras are ``/cam1`` .. ``/camN``: 640x360, 30 fps, H.264 with a keyframe every second.
    With ``auth=True`` every mount needs digest credentials, given in ``settings``.
    """

    def __init__(self, count: int, *, auth: bool = False, gop_frames: int = 30) -> None:
        if count < 1:
            raise ValueError("a simulator serves at least one camera")
        user, password = ("officer", "s3cret:pa ss") if auth else (None, None)
        self.mounts = [
            Mount(path=f"/cam{i}", gop_frames=gop_frames, username=user, password=password)
            for i in range(1, count + 1)
        ]
        self.server = RtspTestServer(self.mounts)
        self.sources: list[str] = []
        self.settings: dict[str, Any] = {}

    def __enter__(self) -> RtspSimulator:
        self.server.start()
        self.sources = [self.server.url(m.path) for m in self.mounts]
        creds = {
            self.server.url(m.path): {"username": m.username, "password": m.password}
            for m in self.mounts
            if m.username
        }
        self.settings = {"credentials": creds} if creds else {}
        return self

    def close(self) -> None:
        """Stop the RTSP server process."""
        self.server.stop()


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m camgate_rtsp.testing.simulator [--count N] [--auth]``: serve ``N`` cameras,
    print one JSON line (``sources``, ``credentials``), and serve until stdin closes (the
    sites of ``camgate demo --distributed`` run their cameras so, in their own namespaces)."""
    parser = argparse.ArgumentParser(prog="camgate_rtsp.testing.simulator")
    parser.add_argument("--count", type=int, default=2)
    parser.add_argument("--auth", action="store_true", help="cameras ask for digest credentials")
    args = parser.parse_args(argv)
    with RtspSimulator(args.count, auth=args.auth) as sim:
        creds = sim.settings.get("credentials", {})
        print(json.dumps({"sources": sim.sources, "credentials": creds}), flush=True)
        sys.stdin.read()


if __name__ == "__main__":
    main()
