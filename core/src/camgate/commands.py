"""A plugin's command for the ``camgate`` command line (the ``camgate_register_commands`` hook).

A :class:`Command` is one top-level subcommand: ``camgate NAME ...``. Core's CLI adds a parser
for it and hands it to ``configure``, which adds the arguments (or sub-actions) and sets the
handler as the parser's ``func`` default: ``func(args) -> int`` returns the exit status; a
:class:`camgate.errors.CamgateError` it raises is printed as ``camgate: <message>`` with exit
status 1, like core's own commands.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable

import attrs

from camgate.errors import ValidationError

__all__ = ["Command"]

_NAME = re.compile(r"[a-z][a-z0-9-]*")


def _name(_inst: object, _attribute: attrs.Attribute[str], value: str) -> None:
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise ValidationError(
            f"a command name is lowercase letters, digits and dashes, not {value!r}"
        )


@attrs.frozen
class Command:
    """One ``camgate NAME`` subcommand a plugin provides.

    ``help`` is its line in ``camgate --help``; ``description`` (default: ``help``) heads its
    own ``--help``. ``configure(parser)`` adds its arguments and sets ``func`` (see the module
    docstring); it runs every time the ``camgate`` parser is built, so it should import little.
    A name core already has, or another plugin registered, is refused with a
    :class:`camgate.errors.PluginError`.
    """

    name: str = attrs.field(validator=_name)
    help: str
    configure: Callable[[argparse.ArgumentParser], None] = attrs.field(repr=False)
    description: str = ""
