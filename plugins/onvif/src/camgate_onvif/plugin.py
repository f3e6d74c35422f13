"""camgate-onvif's hook implementations (the ``onvif`` entry point of the ``camgate`` group)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from camgate import hookimpl
from camgate.adapters import AdapterFactory, Capabilities, LatencyBudgets, Simulator

from camgate_onvif.adapter import OnvifAdapter, OnvifSettings

__all__ = [
    "FACTORY",
    "camgate_conformance_target",
    "camgate_register_adapters",
    "camgate_simulator",
]

FACTORY = AdapterFactory(
    name="onvif",
    create=OnvifAdapter.from_settings,
    settings_class=OnvifSettings,
    capabilities=Capabilities(live=True, snapshot=True, recorded=True),
    budgets=LatencyBudgets(discovery_s=3.0, snapshot_s=3.0, first_frame_s=2.5, revocation_s=0.5),
    description="ONVIF cameras and NVRs (Profile S/T/G): SOAP via zeep, media via RTSP/PyAV.",
)


@hookimpl
def camgate_register_adapters(register: Any) -> None:
    """Register the ``onvif`` adapter."""
    register(FACTORY)


@hookimpl
def camgate_simulator(adapter: str, count: int) -> Simulator | None:
    """A simulated ONVIF device per camera pair (SOAP on loopback, streams from GStreamer)."""
    if adapter != "onvif":
        return None
    from camgate_onvif.testing.simulator import OnvifSimulator

    return OnvifSimulator(count)


@hookimpl
def camgate_conformance_target(adapter: str, config: Mapping[str, Any] | None) -> object | None:
    """The onvif target: simulated devices with their SOAP and RTSP logs as the backdoor, and
    staged faults; a settings file is left to the suite (plain ``sources`` and ``settings``)."""
    if adapter != "onvif" or config is not None:
        return None
    from camgate_onvif.conformance import OnvifTarget

    return OnvifTarget()
