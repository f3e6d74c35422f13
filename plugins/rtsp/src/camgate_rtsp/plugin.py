"""camgate-rtsp's hook implementations (the ``rtsp`` entry point of the ``camgate`` group)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from camgate import hookimpl
from camgate.adapters import AdapterFactory, Capabilities, LatencyBudgets, Simulator

from camgate_rtsp.adapter import RtspAdapter, RtspSettings

if TYPE_CHECKING:
    from camgate.targets import Target

__all__ = ["FACTORY", "RtspSimulator", "camgate_register_adapters"]


def _simulator(count: int) -> Simulator:
    """A GStreamer RTSP server serving ``count`` cameras for the ``rtsp`` adapter."""
    return RtspSimulator(count)


def _target(config: Mapping[str, Any] | None) -> Target | None:
    """The rtsp target: the test server with its request log; a settings file is left to the
    suite (plain ``sources`` and ``settings``)."""
    if config is not None:
        return None
    from camgate_rtsp.conformance import RtspTarget

    return RtspTarget()


FACTORY = AdapterFactory(
    name="rtsp",
    create=RtspAdapter.from_settings,
    settings_class=RtspSettings,
    capabilities=Capabilities(live=True, snapshot=True),
    budgets=LatencyBudgets(discovery_s=1.0, snapshot_s=3.0, first_frame_s=2.5, revocation_s=0.5),
    description="Plain RTSP cameras (H.264/H.265), read with PyAV; no re-encoding.",
    simulator=_simulator,
    conformance_target=_target,
)


@hookimpl
def camgate_register_adapters(register: Callable[[AdapterFactory], None]) -> None:
    """Register the ``rtsp`` adapter (with its simulator and conformance target)."""
    register(FACTORY)


class RtspSimulator(Simulator):
    """``count`` cameras served by a real GStreamer RTSP server on loopback.

    Cameras are ``/cam1`` .. ``/camN``: 640x360, 30 fps, H.264 with a keyframe every second.
    With ``auth=True`` every mount needs digest credentials, given in ``settings``.
    """

    def __init__(self, count: int, *, auth: bool = False, gop_frames: int = 30) -> None:
        from camgate_rtsp.testserver import Mount, RtspTestServer

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
