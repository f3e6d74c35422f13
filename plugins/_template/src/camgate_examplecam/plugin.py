"""camgate-examplecam's hook implementations (the ``examplecam`` entry point of the ``camgate``
group): the adapter factory, its simulator and its conformance target."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from camgate import hookimpl
from camgate.adapters import AdapterFactory, Capabilities, LatencyBudgets, Simulator

from camgate_examplecam.adapter import NAME, ExampleAdapter, ExampleSettings

__all__ = [
    "FACTORY",
    "camgate_conformance_target",
    "camgate_register_adapters",
    "camgate_simulator",
]

FACTORY = AdapterFactory(
    name=NAME,
    create=ExampleAdapter.from_settings,
    settings_class=ExampleSettings,
    capabilities=Capabilities(live=True, snapshot=True),
    budgets=LatencyBudgets(snapshot_s=2.0, first_frame_s=2.0, revocation_s=0.5),
    description="Example Cam MJPEG-over-HTTP cameras, transcoded to H.264 (the template).",
)


@hookimpl
def camgate_register_adapters(register: Callable[[AdapterFactory], None]) -> None:
    """Register the ``examplecam`` adapter."""
    register(FACTORY)


@hookimpl
def camgate_simulator(adapter: str, count: int) -> Simulator | None:
    """``count`` open (no password) simulated Example Cams, for demos and tests."""
    if adapter != NAME:
        return None
    from camgate_examplecam.testing import ExampleSimulator

    return ExampleSimulator({f"/cam{i}": None for i in range(1, count + 1)})


@hookimpl
def camgate_conformance_target(adapter: str, config: Mapping[str, Any] | None) -> object | None:
    """The simulator with its log and staged faults; a settings file (a real camera) is left to
    the suite, which needs only ``sources`` and ``settings`` for it."""
    if adapter != NAME or config is not None:
        return None
    from camgate_examplecam.testing.target import ExampleTarget

    return ExampleTarget()
