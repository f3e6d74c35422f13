"""The ``camgate`` command line.

Every command takes ``--help``. State lives in one SQLite file: ``--db PATH`` (or the
``CAMGATE_DB`` environment variable; default ``./camgate.db``), with the hub's signing key beside
it (``.key``); the agency's rules are read from ``--rules PATH`` (or ``$CAMGATE_RULES``; a TOML
file, see docs/consent.md). Exit status: 0 success, 1 an error (message on stderr), 2 bad usage,
3 the gate refused the request (reasons on stderr and in ``--json`` output), 4 the request waits
for the owner's answer (``camgate request --no-wait``).

The commands live one group to a module of this package (``owners``, ``cameras``, ``access``,
``geofence``, ``retention``, ``audit``, ``plugins``, ``zones``, ``edge``), each parser beside its
handlers.
Plugins add commands through the ``camgate_register_commands`` hook (:meth:`PluginHost.commands`):
``camgate conformance`` comes from camgate-conformance that way, ``camgate onvif`` from
camgate-onvif; core never imports them.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
from collections.abc import Sequence

from camgate import __version__
from camgate.cli import (
    access,
    audit,
    cameras,
    db,
    edge,
    geofence,
    owners,
    plugins,
    retention,
    zones,
)
from camgate.cli._common import EXIT_ERROR, Builder
from camgate.errors import CamgateError, PluginError

__all__ = ["build_parser", "main"]

#: Commands whose absence the CLI explains: name → (its help line, how to get it).
_PLACEHOLDERS = {
    "conformance": (
        "run the conformance suite against an adapter (camgate-conformance)",
        "the conformance suite is not installed: pip install camgate-conformance "
        "(in this repository: uv sync)",
    ),
}


def _placeholder(name: str, why: str) -> object:
    def missing(args: argparse.Namespace) -> int:
        """Say how to install the plugin that provides this command."""
        print(f"camgate: {why}", file=sys.stderr)
        if "CAMGATE_LOAD_PLUGINS" in os.environ or "CAMGATE_DISABLE_PLUGINS" in os.environ:
            print(
                f"camgate: (if it is installed: CAMGATE_LOAD_PLUGINS/CAMGATE_DISABLE_PLUGINS "
                f"may leave out the plugin that provides `camgate {name}`)",
                file=sys.stderr,
            )
        return EXIT_ERROR

    return missing


def _add_plugin_commands(b: Builder, core: set[str]) -> None:
    """Every command plugins register (:meth:`PluginHost.commands`), then a placeholder for a
    known command no plugin provided. A plugin that cannot be loaded, or whose commands clash,
    is reported on stderr and left out: core's commands keep working."""
    from camgate.plugins import PluginHost

    try:
        commands = PluginHost().commands(reserved=core)
    except PluginError as exc:
        print(f"camgate: plugin commands left out: {exc}", file=sys.stderr)
        commands = []
    for command in commands:
        p = b.top.add_parser(
            command.name, help=command.help, description=command.description or command.help
        )
        command.configure(p)
    given = {c.name for c in commands}
    for name, (help_text, why) in _PLACEHOLDERS.items():
        if name not in given:
            p = b.top.add_parser(name, help=help_text, description=f"Not available: {why}.")
            p.add_argument("args", nargs=argparse.REMAINDER, help="the command's arguments")
            p.set_defaults(func=_placeholder(name, why))


#: The options before the command that take a value (``--db PATH``).
_VALUED = ("--db", "--rules", "--audit-dsn")


def _core_command(argv: Sequence[str], core: set[str]) -> bool:
    """True when ``argv`` runs one of core's commands: the plugins need not be loaded to parse
    it (loading imports every plugin's modules, half a second on a quiet machine)."""
    tokens = iter(argv)
    for token in tokens:
        if token in _VALUED:
            next(tokens, None)
        elif token.startswith(tuple(f"{o}=" for o in _VALUED)):
            continue
        elif token.startswith("-"):
            return False  # --help, --version or a typo: the whole parser answers
        else:
            return token in core
    return False


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The argument parser (exposed for docs and tests): core's commands, then every command a
    plugin registers through ``camgate_register_commands`` — unless ``argv`` (the arguments
    about to be parsed) runs a core command, which needs no plugin loaded."""
    parser = argparse.ArgumentParser(
        prog="camgate",
        description="Consent-gated access to privately owned security cameras.",
    )
    parser.add_argument("--version", action="version", version=f"camgate {__version__}")
    parser.add_argument(
        "--db",
        default=os.environ.get("CAMGATE_DB", "camgate.db"),
        help="the store: a SQLite file, or a postgresql:// DSN shared by several hubs "
        "(default: $CAMGATE_DB or ./camgate.db)",
    )
    parser.add_argument(
        "--rules",
        default=os.environ.get("CAMGATE_RULES") or None,
        help="the agency's rules, a TOML file (default: $CAMGATE_RULES; none)",
    )
    parser.add_argument(
        "--audit-dsn",
        default=None,
        help="keep the audit log in this PostgreSQL database (default: $CAMGATE_AUDIT_DSN, "
        "else in the store); prefer PGPASSWORD or ~/.pgpass to a password in the DSN",
    )
    top = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    b = Builder(top)
    for group in (plugins, owners, cameras, access, geofence, retention, audit, zones, db, edge):
        group.add_parsers(b)
    core = set(top.choices)
    if argv is None or not _core_command(argv, core):
        _add_plugin_commands(b, core)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``camgate`` command."""
    parser = build_parser(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
    except BrokenPipeError:
        # The reader went away (`camgate ... | head`): stop quietly, as Unix tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except CamgateError as exc:
        print(f"camgate: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except sqlite3.Error as exc:  # a path that did not map it: still name the file
        from camgate.store import storage_error

        print(f"camgate: {storage_error(exc, args.db)}", file=sys.stderr)
        return EXIT_ERROR
    except (OSError, ValueError) as exc:
        print(f"camgate: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_ERROR
    return code
