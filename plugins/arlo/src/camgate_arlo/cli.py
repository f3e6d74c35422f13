"""``camgate arlo``: link an Arlo account and list its cameras.

``camgate arlo link --email E --session-file F [--password-env VAR] [host options]`` logs in
(the password from the environment variable, or asked without echo), runs the second factor on
the terminal (choose a factor, type the code, or approve the push in the Arlo app), pairs this
client so later logins need no factor, writes the session to ``F`` (owner only) and lists the
account's cameras with the ``camgate camera add`` line that enrols each (the owner gives its
position). ``camgate arlo devices --session-file F`` lists them again with the stored session.
Nothing secret is printed.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from collections.abc import Sequence
from typing import Any

import anyio
from camgate.errors import ValidationError
from camgate.settings import add_setting_option

from camgate_arlo.adapter import NAME, ArloAdapter, ArloSettings
from camgate_arlo.wire import ArloDevice, Factor

__all__ = ["TerminalPrompt", "configure"]


class TerminalPrompt:
    """A :class:`~camgate_arlo.client.LoginPrompt` on the terminal (stdin, stdout)."""

    async def choose(self, factors: Sequence[Factor]) -> Factor:
        """List the factors and read the chosen number (the first on an empty line)."""
        print("Arlo asks for a second factor:")
        for number, factor in enumerate(factors, 1):
            print(f"  {number}. {factor.kind} {factor.name}")
        answer = (await anyio.to_thread.run_sync(input, "factor [1]: ")).strip() or "1"
        if not answer.isdigit() or not 1 <= int(answer) <= len(factors):
            raise ValidationError(f"arlo link: no factor {answer!r}")
        factor = factors[int(answer) - 1]
        if factor.kind == "PUSH":
            print("Approve the login in the Arlo app…")
        return factor

    async def code(self, factor: Factor) -> str:
        """Read the code Arlo sent through ``factor``."""
        text: str = await anyio.to_thread.run_sync(input, f"code sent by {factor.kind}: ")
        return text


def _add_hosts(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--session-file", required=True, help="where the session is kept")
    for host in ("auth", "api", "events"):
        parser.add_argument(f"--{host}-base-url", help=f"Arlo's {host} host (default: Arlo's)")
    add_setting_option(parser, "another adapter setting (e.g. media_hosts=127.0.0.1)")


def configure(parser: argparse.ArgumentParser) -> None:
    """Add ``link`` and ``devices`` to ``camgate arlo``."""
    actions = parser.add_subparsers(dest="arlo_action", required=True)
    link = actions.add_parser("link", help="log in (second factor), pair, save the session")
    link.add_argument("--email", required=True)
    link.add_argument("--password-env", help="environment variable holding the password")
    _add_hosts(link)
    link.set_defaults(func=_link)
    devices = actions.add_parser("devices", help="list the account's cameras")
    _add_hosts(devices)
    devices.set_defaults(func=_devices)


def _settings(args: argparse.Namespace, extra: dict[str, Any]) -> ArloSettings:
    values: dict[str, Any] = {"session_file": args.session_file, **extra}
    for host in ("auth", "api", "events"):
        url = getattr(args, f"{host}_base_url")
        if url:
            values[f"{host}_base_url"] = url
    for key, value in args.setting:
        values[key] = (
            value.split(",") if isinstance(value, str) and key.endswith("_hosts") else value
        )
    return ArloSettings.from_mapping(values)


def _print_devices(devices: Sequence[ArloDevice]) -> None:
    cameras = [d for d in devices if d.is_camera]
    print(f"{len(cameras)} camera(s):")
    for d in cameras:
        print(f"  {d.device_id}  {d.name!r}  {d.device_type} {d.model_id}  {d.state}")
        print(
            f"    camgate camera add --id arlo-{d.device_id.lower()} --owner OWNER "
            f"--adapter {NAME} --source {d.device_id} --lat LAT --lon LON"
        )


def _link(args: argparse.Namespace) -> int:
    if args.password_env:
        password = os.environ.get(args.password_env)
        if password is None:
            raise ValidationError(f"arlo link: ${args.password_env} is not set")
    else:
        password = getpass.getpass("Arlo password: ")
    settings = _settings(args, {"email": args.email, "password": password})
    # A new link starts from no session: the password and the factor decide.
    if os.path.exists(args.session_file):
        os.unlink(args.session_file)

    async def run() -> list[ArloDevice]:
        adapter = ArloAdapter(settings)
        try:
            await adapter.client().login(TerminalPrompt())
            return await adapter.devices()
        finally:
            await adapter.aclose()

    devices = anyio.run(run)
    print(f"Linked; the session is in {args.session_file}")
    _print_devices(devices)
    sys.stdout.flush()
    return 0


def _devices(args: argparse.Namespace) -> int:
    settings = _settings(args, {})

    async def run() -> list[ArloDevice]:
        adapter = ArloAdapter(settings)
        try:
            return await adapter.devices()
        finally:
            await adapter.aclose()

    _print_devices(anyio.run(run))
    return 0
