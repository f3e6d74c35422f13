"""camgate-wyze's hook implementations (the ``wyze`` entry point of the ``camgate`` group):
the adapter factory and ``camgate wyze link``. Live video and snapshots come over Wyze's RTSP
firmware or Wyze's cloud WebRTC, recordings from Wyze's event clips (docs/wyze.md)."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from typing import Any

from camgate import hookimpl
from camgate.adapters import AdapterFactory, Capabilities, LatencyBudgets, Simulator
from camgate.commands import Command
from camgate.targets import Target

from camgate_wyze.adapter import NAME, WyzeAdapter
from camgate_wyze.settings import WyzeSettings

__all__ = ["COMMAND", "FACTORY", "camgate_register_adapters", "camgate_register_commands"]


def _simulator(count: int) -> Simulator:
    """The Wyze cloud and ``count`` RTSP-firmware cameras on loopback, the account linked."""
    from camgate_wyze.testing import WyzeSimulator  # test code, loaded only when asked

    return WyzeSimulator(cameras=count)


def _target(config: Mapping[str, Any] | None) -> Target | None:
    """The simulated cloud and RTSP firmware (``config`` None); a real account's settings
    file needs nothing more than its sources and settings."""
    if config is not None:
        return None
    from camgate_wyze.testing.target import WyzeTarget

    return WyzeTarget()


FACTORY = AdapterFactory(
    name=NAME,
    create=WyzeAdapter.from_settings,
    settings_class=WyzeSettings,
    capabilities=Capabilities(live=True, snapshot=True, recorded=True),
    budgets=LatencyBudgets(discovery_s=5.0, snapshot_s=4.0, first_frame_s=4.0, revocation_s=1.0),
    description="Wyze cameras: cloud API, event clips, live over RTSP firmware or cloud WebRTC.",
    simulator=_simulator,
    conformance_target=_target,
)


def _configure(parser: argparse.ArgumentParser) -> None:
    """``camgate wyze``'s actions (``link``), from :mod:`camgate_wyze.cli`."""
    from camgate_wyze.cli import configure

    configure(parser)


#: ``camgate wyze link``: log in once and write the account's tokens.
COMMAND = Command(name="wyze", help="Wyze accounts: link (camgate-wyze)", configure=_configure)


@hookimpl
def camgate_register_adapters(register: Callable[[AdapterFactory], None]) -> None:
    """Register the ``wyze`` adapter (with its simulator and conformance target)."""
    register(FACTORY)


@hookimpl
def camgate_register_commands(register: Callable[[Command], None]) -> None:
    """Register ``camgate wyze`` (``link``)."""
    register(COMMAND)
