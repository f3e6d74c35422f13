"""``camgate serve``: the HTTP API over the gate store of ``--db``."""

from __future__ import annotations

import argparse
import contextlib
import getpass
import os
import signal
import tempfile
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import anyio
import attrs
from camgate.errors import ValidationError

from camgate_server.settings import ProxyAuth, ServerSettings

if TYPE_CHECKING:
    from camgate_server.events import EventFeed

__all__ = ["configure"]


def configure(parser: argparse.ArgumentParser) -> None:
    """Add ``camgate serve``'s arguments and set its handler."""
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port to listen on (8000)")
    # Also accepted after the command; when absent, camgate's own --db (before it) stands.
    parser.add_argument("--db", default=argparse.SUPPRESS, help="the gate's SQLite store")
    parser.add_argument(
        "--accounts",
        default=None,
        help="the accounts file (default: beside a SQLite store, <stem>.accounts.db; "
        "in the database of a PostgreSQL store)",
    )
    parser.add_argument(
        "--insecure-cookies",
        action="store_true",
        help="send the session cookie without Secure (only for plain HTTP on loopback)",
    )
    parser.add_argument(
        "--proxy-role",
        metavar="GROUP=ROLE",
        action="append",
        default=[],
        help="believe the agency's single-sign-on proxy (its secret in $CAMGATE_PROXY_SECRET) "
        "and give people in GROUP this staff role; repeat per group (docs/api.md)",
    )
    parser.add_argument(
        "--create-admin",
        metavar="USERNAME",
        default=None,
        help="create an admin account (password from $CAMGATE_ADMIN_PASSWORD, else asked) and exit",
    )
    parser.add_argument(
        "--nats",
        metavar="URL",
        default=None,
        help="the NATS server (nats://host:port) through which live sockets reach cameras "
        "behind remote edges (camgate edge assign; docs/deployment.md)",
    )
    parser.add_argument(
        "--demo",
        action="store_true",
        help="serve a throwaway demo city: simulated cameras, an open incident and one account "
        "per role with random passwords printed here (loopback, plain HTTP)",
    )
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from camgate_server.accounts import AccountStore, accounts_path
    from camgate_server.policy import Role

    settings = ServerSettings(
        secure_cookies=not args.insecure_cookies, proxy=_proxy(args), nats_url=args.nats
    )
    path = args.accounts or accounts_path(args.db)
    if args.create_admin is not None:
        password = os.environ.get("CAMGATE_ADMIN_PASSWORD") or getpass.getpass("password: ")
        accounts = AccountStore(path, settings=settings)
        try:
            account = accounts.create_account(args.create_admin, password, Role.ADMIN)
        finally:
            accounts.close()
        print(f"created admin {account.username} ({account.id}) in {accounts.where}")
        return 0
    if args.demo:
        if args.host not in _LOOPBACK:
            raise ValidationError(
                "--demo serves plain HTTP with passwords printed here: loopback only "
                "(--host 127.0.0.1 or ::1)"
            )
        settings = attrs.evolve(settings, secure_cookies=False)
    # uvicorn re-raises the signal that stopped it after a clean shutdown: Ctrl-C as
    # KeyboardInterrupt, and SIGTERM (whose default would kill the process before the gate is
    # closed) as the same, through this handler. Both are a normal stop of ``camgate serve``.
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        with contextlib.suppress(KeyboardInterrupt):
            anyio.run(_serve, args, path, settings)
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0


_LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})


def _interrupt(_sig: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _proxy(args: argparse.Namespace) -> ProxyAuth | None:
    """``--proxy-role`` and ``$CAMGATE_PROXY_SECRET`` as a :class:`ProxyAuth`, or None."""
    if not args.proxy_role:
        return None
    secret = os.environ.get("CAMGATE_PROXY_SECRET")
    if not secret:
        raise ValidationError("--proxy-role needs the proxy's secret in $CAMGATE_PROXY_SECRET")
    roles = {}
    for item in args.proxy_role:
        group, sep, role = item.partition("=")
        if not sep or not group:
            raise ValidationError(f"--proxy-role is GROUP=ROLE, not {item!r}")
        roles[group] = role
    return ProxyAuth(secret, roles)


async def _serve(args: argparse.Namespace, path: str | Path, settings: ServerSettings) -> None:
    import uvicorn
    from camgate import AgencyRules, Gate

    from camgate_server.accounts import AccountStore
    from camgate_server.app import create_app
    from camgate_server.live import close_remote_edges

    async with contextlib.AsyncExitStack() as stack:
        if args.demo:
            from camgate_server.demo import demo_city

            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="camgate-demo-")))
            accounts = AccountStore(folder / "demo.accounts.db", settings=settings)
            stack.callback(accounts.close)
            gate = await stack.enter_async_context(demo_city(folder, accounts))
        else:
            rules = AgencyRules.from_toml(args.rules) if args.rules else None
            gate = Gate.open(args.db, rules=rules, audit_dsn=args.audit_dsn)
            stack.push_async_callback(gate.aclose)
            accounts = AccountStore(path, settings=settings, now=gate.clock.now)
            stack.callback(accounts.close)
        app = create_app(gate, accounts, settings)
        stack.push_async_callback(close_remote_edges, app)
        config = uvicorn.Config(
            app, host=args.host, port=args.port, log_level="info", server_header=False
        )
        await _server(config, app.state.events).serve()


def _server(config: Any, events: EventFeed) -> Any:
    """uvicorn's server, ending the event streams when a signal tells it to stop: uvicorn
    waits for open responses before it shuts down, and an event stream never ends on its own."""
    import uvicorn

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            events.close()
            super().handle_exit(sig, frame)

    return Server(config)
