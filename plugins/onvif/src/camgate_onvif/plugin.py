"""camgate-onvif's hook implementations (the ``onvif`` entry point of the ``camgate`` group):
the adapter with its simulator and conformance target, and the ``camgate onvif`` command."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from camgate import hookimpl
from camgate.adapters import AdapterFactory, Capabilities, LatencyBudgets, Simulator
from camgate.commands import Command

from camgate_onvif.adapter import OnvifAdapter, OnvifSettings

if TYPE_CHECKING:
    from camgate.targets import Target

__all__ = ["COMMAND", "FACTORY", "camgate_register_adapters", "camgate_register_commands"]


def _simulator(count: int) -> Simulator:
    """A simulated ONVIF device per camera pair (SOAP on loopback, streams from GStreamer)."""
    from camgate_onvif.testing.simulator import OnvifSimulator

    return OnvifSimulator(count)


def _target(config: Mapping[str, Any] | None) -> Target | None:
    """The onvif target: simulated devices with their SOAP and RTSP logs as the backdoor, and
    staged faults; a settings file is left to the suite (plain ``sources`` and ``settings``)."""
    if config is not None:
        return None
    from camgate_onvif.testing.target import OnvifTarget

    return OnvifTarget()


FACTORY = AdapterFactory(
    name="onvif",
    create=OnvifAdapter.from_settings,
    settings_class=OnvifSettings,
    capabilities=Capabilities(live=True, snapshot=True, recorded=True),
    budgets=LatencyBudgets(discovery_s=3.0, snapshot_s=3.0, first_frame_s=2.5, revocation_s=0.5),
    description="ONVIF cameras and NVRs (Profile S/T/G): SOAP via zeep, media via RTSP/PyAV.",
    simulator=_simulator,
    conformance_target=_target,
)


def _configure(parser: argparse.ArgumentParser) -> None:
    """``camgate onvif``'s actions (``probe``), from :mod:`camgate_onvif.cli`."""
    from camgate_onvif.cli import configure

    configure(parser)


#: ``camgate onvif probe URL``: what a device offers, before a camera is registered.
COMMAND = Command(name="onvif", help="ONVIF devices: probe (camgate-onvif)", configure=_configure)


@hookimpl
def camgate_register_adapters(register: Callable[[AdapterFactory], None]) -> None:
    """Register the ``onvif`` adapter (with its simulator and conformance target)."""
    register(FACTORY)


@hookimpl
def camgate_register_commands(register: Callable[[Command], None]) -> None:
    """Register ``camgate onvif`` (``probe``)."""
    register(COMMAND)
