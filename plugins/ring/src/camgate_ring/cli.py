"""``camgate ring link``: link an owner's Ring account to camgate (OAuth 2 code with PKCE).

Prints the authorisation address for the owner to open, waits for their browser to come back
to a loopback redirect (``http://127.0.0.1:PORT/callback``), exchanges the code and writes the
account's tokens to the ``token_file`` setting (owner read/write only, replaced atomically),
where the adapter reads them. Settings are the adapter's (docs/ring.md) as ``--setting
key=value``; the partner's client secret only ever comes from ``$CAMGATE_RING_CLIENT_SECRET``.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from camgate.settings import add_setting_option

__all__ = ["SECRET_ENV", "cmd_link", "configure"]

SECRET_ENV = "CAMGATE_RING_CLIENT_SECRET"  # noqa: S105 - the variable's name, not a secret


def configure(parser: argparse.ArgumentParser) -> None:
    """Add ``link`` to ``parser`` (the ``ring`` command) and make it run :func:`cmd_link`."""
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = actions.add_parser(
        "link", help="link a Ring account (prints the address to open)", description=__doc__
    )
    add_setting_option(p, "an adapter setting (docs/ring.md), the value in TOML; repeatable")
    p.add_argument("--port", type=int, default=0, help="loopback port of the redirect (0: any)")
    p.add_argument(
        "--timeout", type=float, default=600.0, help="seconds to wait for the owner (600)"
    )
    p.set_defaults(func=cmd_link)


def cmd_link(args: argparse.Namespace) -> int:
    """Link an account (``camgate ring link``): exit status 0 once the tokens are persisted."""
    import anyio
    from camgate.errors import ConfigError

    from camgate_ring.adapter import RingSettings, TokenFile
    from camgate_ring.link import link_loopback

    raw: dict[str, Any] = dict(args.setting)
    if "client_secret" in raw:
        raise ConfigError(f"camgate ring link: give the client secret in ${SECRET_ENV}")
    secret = os.environ.get(SECRET_ENV)
    if secret:
        raw["client_secret"] = secret
    settings = RingSettings.from_mapping(raw)
    if settings.client_secret is None:
        raise ConfigError(f"camgate ring link: ${SECRET_ENV} (the partner's secret) is not set")
    if not settings.token_file:
        raise ConfigError("camgate ring link: --setting token_file=PATH is required")
    store = TokenFile(settings.token_file)

    def show(url: str) -> None:
        print("Open this address to link the Ring account:", flush=True)
        print(f"  {url}", flush=True)

    anyio.run(
        lambda: link_loopback(
            authorize_url=settings.authorize_url,
            token_url=settings.token_url,
            client_id=settings.client_id,
            client_secret=settings.client_secret,  # type: ignore[arg-type]
            on_tokens=store.save,
            show=show,
            port=args.port,
            timeout_s=args.timeout,
            request_timeout_s=settings.request_timeout_s,
        )
    )
    print(f"Linked: the account's tokens are in {store.path}", file=sys.stdout, flush=True)
    return 0
