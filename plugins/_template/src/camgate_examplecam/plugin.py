"""camgate-examplecam's hook implementations (the ``examplecam`` entry point of the ``camgate``
group): the adapter factory, which carries everything about the adapter — its builder, settings,
capabilities, budgets, simulator and conformance target."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from camgate import hookimpl
from camgate.adapters import AdapterFactory, Capabilities, LatencyBudgets, Simulator

from camgate_examplecam.adapter import NAME, ExampleAdapter, ExampleSettings

if TYPE_CHECKING:
    from camgate.targets import Target

__all__ = ["FACTORY", "camgate_register_adapters"]


def _simulator(count: int) -> Simulator:
    """``count`` open (no password) simulated Example Cams, for demos and tests."""
    from camgate_examplecam.testing import ExampleSimulator

    return ExampleSimulator({f"/cam{i}": None for i in range(1, count + 1)})


def _target(config: Mapping[str, Any] | None) -> Target | None:
    """The simulator with its log and staged faults; a settings file (a real camera) is left to
    the suite, which needs only ``sources`` and ``settings`` for it."""
    if config is not None:
        return None
    from camgate_examplecam.testing.target import ExampleTarget

    return ExampleTarget()


FACTORY = AdapterFactory(
    name=NAME,
    create=ExampleAdapter.from_settings,
    settings_class=ExampleSettings,
    capabilities=Capabilities(live=True, snapshot=True),
    budgets=LatencyBudgets(snapshot_s=2.0, first_frame_s=2.0, revocation_s=0.5),
    description="Example Cam MJPEG-over-HTTP cameras, transcoded to H.264 (the template).",
    simulator=_simulator,
    conformance_target=_target,
)


@hookimpl
def camgate_register_adapters(register: Callable[[AdapterFactory], None]) -> None:
    """Register the ``examplecam`` adapter."""
    register(FACTORY)
