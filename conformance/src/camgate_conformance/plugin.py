"""camgate-conformance as a camgate plugin (the ``conformance`` entry point of the ``camgate``
group): it adds ``camgate conformance ADAPTER`` to the ``camgate`` command line, so core never
imports the suite."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from camgate import hookimpl
from camgate.commands import Command

__all__ = ["COMMAND", "camgate_register_commands"]


def _configure(parser: argparse.ArgumentParser) -> None:
    """The suite's arguments, from :func:`camgate_conformance.cli.configure`."""
    from camgate_conformance.cli import configure

    configure(parser)


#: ``camgate conformance ADAPTER``: the same command as ``camgate-conformance``.
COMMAND = Command(
    name="conformance",
    help="run the conformance suite against an adapter (camgate-conformance)",
    description="Run the conformance suite against an adapter's simulator or a real device.",
    configure=_configure,
)


@hookimpl
def camgate_register_commands(register: Callable[[Command], None]) -> None:
    """Register ``camgate conformance``."""
    register(COMMAND)
