"""camgate-ring's hook implementations (the ``ring`` entry point of the ``camgate`` group): the
adapter factory (with its simulator and conformance target) and the ``camgate ring`` command
(``link``). It declares live video, snapshots and recordings, on both backends (the Partner
API's, and the Ring app's for an account with ``backend = "app"``); not audio (Ring's live
video is video only; docs/ring.md)."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from camgate import hookimpl
from camgate.adapters import AdapterFactory, Capabilities, LatencyBudgets, Simulator
from camgate.commands import Command

from camgate_ring.adapter import NAME, RingAdapter, RingSettings

if TYPE_CHECKING:
    from camgate.targets import Target

__all__ = ["COMMAND", "FACTORY", "camgate_register_adapters", "camgate_register_commands"]


def _simulator(count: int) -> Simulator:
    """The Ring Partner API on loopback with ``count`` line-powered cameras, linked."""
    from camgate_ring.testing import RingSimulator  # test code, loaded only when asked

    return RingSimulator(devices=count)


def _target(config: Mapping[str, Any] | None) -> Target | None:
    """The simulated account with its request log as the backdoor, staged faults and the
    addresses the adapter may reach: the Partner backend's (``--target SIM``, the default) or
    the app backend's (``--target SIM:app``, which the suite hands over as ``{"simulator":
    "app"}``); a settings file (a real account) is left to the suite."""
    from camgate_ring.testing.target import RingTarget

    if config is None:
        return RingTarget()
    if dict(config) == {"simulator": "app"}:
        return RingTarget(backend="app")
    return None


FACTORY = AdapterFactory(
    name=NAME,
    create=RingAdapter.from_settings,
    settings_class=RingSettings,
    capabilities=Capabilities(live=True, snapshot=True, recorded=True),
    budgets=LatencyBudgets(snapshot_s=3.0, first_frame_s=5.0, revocation_s=1.0),
    description="Ring cameras through the Ring Partner API (OAuth 2, WHEP live, snapshots, "
    "clips) or, per account, the Ring app's API (live over its signalling websocket, "
    "snapshots, recorded events through share/play).",
    simulator=_simulator,
    conformance_target=_target,
)


@hookimpl
def camgate_register_adapters(register: Callable[[AdapterFactory], None]) -> None:
    """Register the ``ring`` adapter."""
    register(FACTORY)


def _configure(parser: argparse.ArgumentParser) -> None:
    """``camgate ring``'s actions (``link``), from :mod:`camgate_ring.cli`."""
    from camgate_ring.cli import configure

    configure(parser)


#: ``camgate ring link``: link an owner's Ring account (docs/ring.md, "Linking").
COMMAND = Command(name="ring", help="Ring accounts: link (camgate-ring)", configure=_configure)


@hookimpl
def camgate_register_commands(register: Callable[[Command], None]) -> None:
    """Register ``camgate ring`` (``link``)."""
    register(COMMAND)
