"""camgate-server's hook implementations (the ``server`` entry point of the ``camgate`` group):
the ``camgate serve`` command."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from camgate import hookimpl
from camgate.commands import Command

__all__ = ["COMMAND", "camgate_register_commands"]


def _configure(parser: argparse.ArgumentParser) -> None:
    """``camgate serve``'s arguments, from :mod:`camgate_server.cli`."""
    from camgate_server.cli import configure

    configure(parser)


#: ``camgate serve [--host --port --db ...]``: the HTTP API over a gate store.
COMMAND = Command(
    name="serve",
    help="serve the HTTP API over a gate store (camgate-server)",
    configure=_configure,
)


@hookimpl
def camgate_register_commands(register: Callable[[Command], None]) -> None:
    """Register ``camgate serve``."""
    register(COMMAND)
