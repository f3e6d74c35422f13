"""What every command module of the ``camgate`` command line shares: exit statuses, JSON
output, opening the gate (or the store and log read-only) and building parsers."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any, Generic, TypeVar

from camgate.errors import ValidationError
from camgate.gate import Gate
from camgate.rules import AgencyRules
from camgate.settings import add_setting_option
from camgate.store import Store

EXIT_ERROR, EXIT_USAGE, EXIT_DENIED, EXIT_PENDING = 1, 2, 3, 4
#: A live grant covers the clip plus this much, for connecting and waiting for a keyframe.
CONNECT_MARGIN_S = 5.0


def print_json(data: Any) -> None:
    """Print ``data`` as indented JSON, keys in their order."""
    print(json.dumps(data, indent=2, sort_keys=False))


def open_gate(args: argparse.Namespace) -> Gate:
    """The gate of ``--db``, with ``--rules`` and ``--audit-dsn`` (created when missing)."""
    rules = AgencyRules.from_toml(args.rules) if args.rules else None
    return Gate.open(args.db, rules=rules, audit_dsn=args.audit_dsn)


class Reader:
    """The store and audit log opened read-only (``mode=ro``: no key, table, journal or WAL is
    created or written), for the commands that only read: an auditor can run them on a
    read-only copy, directory or mount. A command that reads only the audit log
    (``store=False``) of a PostgreSQL log needs no store file."""

    def __init__(self, args: argparse.Namespace, *, store: bool = True) -> None:
        from camgate.audit import AUDIT_DSN_ENV, AuditLog

        dsn = args.audit_dsn or os.environ.get(AUDIT_DSN_ENV) or None
        self._store = (
            Store(args.db, read_only=True) if store or not dsn or Path(args.db).exists() else None
        )
        try:
            self.audit = AuditLog(self._store, dsn=dsn, read_only=True)
        except BaseException:
            if self._store is not None:
                self._store.close()
            raise

    @property
    def store(self) -> Store:
        """The store, read-only."""
        assert self._store is not None  # commands that use it open it (store=True)
        return self._store

    def close(self) -> None:
        """Close the log and the store."""
        self.audit.close()
        if self._store is not None:
            self._store.close()


def open_reader(args: argparse.Namespace, *, store: bool = True) -> Reader:
    """The store and audit log of ``args``, read-only (:class:`Reader`)."""
    return Reader(args, store=store)


def audit_key(args: argparse.Namespace, gate: Gate | Reader | None) -> bytes | None:
    """The hub's public key: ``--key`` (hex, checked), else ``gate``'s, else None."""
    from camgate.audit.chain import check_public_key

    if getattr(args, "key", None):
        try:
            return check_public_key(bytes.fromhex(args.key))
        except ValueError:
            raise ValidationError(
                "--key: bad key: expected the Ed25519 public key as 64 hex digits"
            ) from None
    return gate.audit.public_key if gate is not None else None


_G = TypeVar("_G", bound=Gate | Reader)


class closing(Generic[_G]):
    """``with closing(open_gate(args)) as gate``: closes the audit log (signing what the command
    appended) and the store on the way out."""

    def __init__(self, gate: _G) -> None:
        self.gate: _G = gate

    def __enter__(self) -> _G:
        return self.gate

    def __exit__(self, *exc: object) -> None:
        self.gate.audit.close()  # signs the records this command appended (the seal follows)
        self.gate.store.close()


def add_setting(p: argparse.ArgumentParser, where: str) -> None:
    """Add the repeatable ``--setting KEY=VALUE`` option (a TOML value) to ``p``."""
    help_text = "an adapter setting (docs/rtsp.md, docs/onvif.md), the value in TOML"
    add_setting_option(p, f"{help_text}; {where}; repeatable")


class Builder:
    """Adds commands to the top-level parser: ``add`` one command (its handler's docstring is
    its description), ``group`` a command with actions."""

    def __init__(self, top: Any) -> None:
        self.top = top

    def add(self, group: Any, name: str, func: Any, help_text: str) -> argparse.ArgumentParser:
        """Add command (or action) ``name`` to ``group``, run by ``func``."""
        p: argparse.ArgumentParser = group.add_parser(
            name, help=help_text, description=func.__doc__
        )
        p.set_defaults(func=func)
        return p

    def group(self, name: str, help_text: str) -> Any:
        """Add command ``name`` whose actions are added to what this returns."""
        p = self.top.add_parser(name, help=help_text, description=help_text)
        return p.add_subparsers(dest="action", required=True, metavar="ACTION")
