"""camgate-arlo's hook implementations (the ``arlo`` entry point of the ``camgate`` group): the
adapter factory and the ``camgate arlo`` command. It declares live video, snapshots and
recordings (the library); audio is not built yet (docs/arlo.md). The conformance target is
the simulator with its log as the backdoor."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from typing import Any

from camgate import hookimpl
from camgate.adapters import AdapterFactory, Capabilities, LatencyBudgets, Simulator
from camgate.commands import Command
from camgate.targets import Target

from camgate_arlo.adapter import NAME, ArloAdapter, ArloSettings

__all__ = ["COMMAND", "FACTORY", "camgate_register_adapters", "camgate_register_commands"]


def _simulator(count: int) -> Simulator:
    """The Arlo cloud on loopback with ``count`` cameras, the account linked."""
    from camgate_arlo.testing import ArloSimulator  # test code, loaded only when asked

    return ArloSimulator(cameras=count)


def _target(config: Mapping[str, Any] | None) -> Target | None:
    """The simulated Arlo cloud with its log as the backdoor; None for a real account's
    settings file (the suite then needs only its sources and settings)."""
    if config is not None:
        return None
    from camgate_arlo.testing.target import ArloTarget

    return ArloTarget()


FACTORY = AdapterFactory(
    name=NAME,
    create=ArloAdapter.from_settings,
    settings_class=ArloSettings,
    capabilities=Capabilities(live=True, snapshot=True, recorded=True),
    budgets=LatencyBudgets(snapshot_s=5.0, first_frame_s=5.0, revocation_s=1.0),
    description="Arlo cameras through the Arlo cloud (factor login, RTSPS live, snapshots).",
    simulator=_simulator,
    conformance_target=_target,
)


def _configure(parser: argparse.ArgumentParser) -> None:
    """``camgate arlo``'s arguments, from :mod:`camgate_arlo.cli` (imported only then)."""
    from camgate_arlo.cli import configure

    configure(parser)


#: ``camgate arlo link|devices``: link an account (factors, pairing), list its cameras.
COMMAND = Command(
    name="arlo",
    help="link an Arlo account (log in with its second factor) and list its cameras",
    configure=_configure,
)


@hookimpl
def camgate_register_adapters(register: Callable[[AdapterFactory], None]) -> None:
    """Register the ``arlo`` adapter."""
    register(FACTORY)


@hookimpl
def camgate_register_commands(register: Callable[[Command], None]) -> None:
    """Register ``camgate arlo``."""
    register(COMMAND)
