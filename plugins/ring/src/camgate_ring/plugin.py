"""camgate-ring's hook implementations (the ``ring`` entry point of the ``camgate`` group): the
adapter factory. It declares live video only: snapshots, recordings and audio are not built yet
(docs/ring.md), and no conformance target exists yet."""

from __future__ import annotations

from collections.abc import Callable

from camgate import hookimpl
from camgate.adapters import AdapterFactory, Capabilities, LatencyBudgets, Simulator

from camgate_ring.adapter import NAME, RingAdapter, RingSettings

__all__ = ["FACTORY", "camgate_register_adapters"]


def _simulator(count: int) -> Simulator:
    """The Ring Partner API on loopback with ``count`` line-powered cameras, linked."""
    from camgate_ring.testing import RingSimulator  # test code, loaded only when asked

    return RingSimulator(devices=count)


FACTORY = AdapterFactory(
    name=NAME,
    create=RingAdapter.from_settings,
    settings_class=RingSettings,
    capabilities=Capabilities(live=True),
    budgets=LatencyBudgets(first_frame_s=5.0, revocation_s=1.0),
    description="Ring cameras through the Ring Partner API (OAuth 2, WHEP live).",
    simulator=_simulator,
)


@hookimpl
def camgate_register_adapters(register: Callable[[AdapterFactory], None]) -> None:
    """Register the ``ring`` adapter."""
    register(FACTORY)
