"""camgate-rtsp's hook implementations (the ``rtsp`` entry point of the ``camgate`` group)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from camgate import hookimpl
from camgate.adapters import AdapterFactory, Capabilities, LatencyBudgets, Simulator

from camgate_rtsp.adapter import RtspAdapter, RtspSettings
from camgate_rtsp.testing.simulator import RtspSimulator

__all__ = [
    "FACTORY",
    "RtspSimulator",
    "camgate_conformance_target",
    "camgate_register_adapters",
    "camgate_simulator",
]

FACTORY = AdapterFactory(
    name="rtsp",
    create=RtspAdapter.from_settings,
    settings_class=RtspSettings,
    capabilities=Capabilities(live=True, snapshot=True),
    budgets=LatencyBudgets(discovery_s=1.0, snapshot_s=3.0, first_frame_s=2.5, revocation_s=0.5),
    description="Plain RTSP cameras (H.264/H.265), read with PyAV; no re-encoding.",
)


@hookimpl
def camgate_register_adapters(register: Any) -> None:
    """Register the ``rtsp`` adapter."""
    register(FACTORY)


@hookimpl
def camgate_simulator(adapter: str, count: int) -> Simulator | None:
    """A GStreamer RTSP server for the ``rtsp`` adapter."""
    if adapter != "rtsp":
        return None
    return RtspSimulator(count)


@hookimpl
def camgate_conformance_target(adapter: str, config: Mapping[str, Any] | None) -> object | None:
    """The rtsp target: the test server with its request log; a settings file is left to the
    suite (plain ``sources`` and ``settings``)."""
    if adapter != "rtsp" or config is not None:
        return None
    from camgate_rtsp.conformance import RtspTarget

    return RtspTarget()
