"""``camgate wyze link``: link a Wyze account to camgate, once, by its owner.

Logs in (email, password, the owner's developer key id and API key, and the second factor if
the account has one: the code is asked on the terminal), writes the tokens to the
``token_file`` setting (owner-only), then lists the account's cameras (MAC, model, online),
which the owner enrols in the ``cameras`` setting. Secrets never come from the command line:
the password from ``$CAMGATE_WYZE_PASSWORD`` (or a prompt), the API key from
``$CAMGATE_WYZE_API_KEY`` (or ``--setting api_key=…`` in a settings file, never shown).
Other settings (``key_id``, ``api_key_expires``, hosts) are ``--setting key=value``.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from typing import Any

from camgate.settings import add_setting_option

__all__ = ["API_KEY_ENV", "PASSWORD_ENV", "cmd_link", "configure", "link"]

PASSWORD_ENV = "CAMGATE_WYZE_PASSWORD"  # noqa: S105 - the variable's name, not a password
API_KEY_ENV = "CAMGATE_WYZE_API_KEY"


def configure(parser: argparse.ArgumentParser) -> None:
    """Add ``link`` to ``parser`` (the ``wyze`` command) and make it run :func:`cmd_link`."""
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = actions.add_parser(
        "link", help="link a Wyze account (writes its tokens)", description=__doc__
    )
    p.add_argument("--email", required=True, help="the Wyze account's email")
    add_setting_option(p, "an adapter setting (docs/wyze.md), the value in TOML; repeatable")
    p.set_defaults(func=cmd_link)


async def link(email: str, password: str, settings: dict[str, Any]) -> list[str]:
    """Log in, write the tokens to ``token_file``, and describe the account's cameras (one
    line each). Errors are camgate errors that show no secret."""
    from camgate.errors import ConfigError

    from camgate_wyze.client import Challenge, WyzeClient, save_tokens
    from camgate_wyze.settings import WyzeSettings

    s = WyzeSettings.from_mapping(settings)
    path = s.token_file
    if not path:
        raise ConfigError("camgate wyze link: set --setting token_file=PATH (where tokens go)")

    async def factor(challenge: Challenge) -> str:
        where = "your authenticator app" if challenge.kind == "totp" else "the SMS Wyze sent"
        print(f"Wyze verification code from {where}: ", end="", file=sys.stderr, flush=True)
        return sys.stdin.readline().strip()

    client = WyzeClient(s, on_tokens=lambda t: save_tokens(path, t))
    try:
        await client.login(email, password, factor)
        cameras = await client.cameras()
    finally:
        await client.aclose()
    lines = [f"linked: tokens written to {path}"]
    if s.api_key_expires is not None:
        lines.append(f"API key {s.key_id} expires on {s.api_key_expires.isoformat()}")
    lines += [
        f"{c.mac}  {c.model or '?'}  {'online' if c.online else 'offline'}  {c.nickname}"
        for c in cameras
    ]
    return lines


def cmd_link(args: argparse.Namespace) -> int:
    """``camgate wyze link --email E --setting key_id=… --setting token_file=…``."""
    import anyio

    settings: dict[str, Any] = dict(args.setting)
    if API_KEY_ENV in os.environ:
        settings["api_key"] = os.environ[API_KEY_ENV]
    password = os.environ.get(PASSWORD_ENV)
    if password is None:
        password = getpass.getpass("Wyze password: ")
    for line in anyio.run(link, args.email, password, settings):
        print(line)
    return 0
