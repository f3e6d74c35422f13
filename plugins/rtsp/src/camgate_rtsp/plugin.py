"""camgate-rtsp's hook implementations (the ``rtsp`` entry point of the ``camgate`` group)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from camgate import hookimpl
from camgate.adapters import AdapterFactory, Capabilities, LatencyBudgets, Simulator

from camgate_rtsp.adapter import RtspAdapter, RtspSettings

if TYPE_CHECKING:
    from camgate.targets import Target

__all__ = ["FACTORY", "camgate_register_adapters"]


def _simulator(count: int) -> Simulator:
    """A GStreamer RTSP server serving ``count`` cameras for the ``rtsp`` adapter."""
    from camgate_rtsp.testing.simulator import RtspSimulator

    return RtspSimulator(count)


def _target(config: Mapping[str, Any] | None) -> Target | None:
    """The rtsp target: the test server with its request log; a settings file is left to the
    suite (plain ``sources`` and ``settings``)."""
    if config is not None:
        return None
    from camgate_rtsp.testing.target import RtspTarget

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
