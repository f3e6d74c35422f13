"""camgate's HTTP API: :func:`create_app` over a :class:`camgate.Gate` and an
:class:`AccountStore`; ``camgate serve`` runs it under uvicorn. See docs/api.md.

The names are loaded on first use, so the ``camgate`` command line (which imports this package
to find ``camgate serve``) does not import FastAPI.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from camgate_server.accounts import Account, AccountStore, Caller
    from camgate_server.app import create_app
    from camgate_server.policy import POLICY, Action, Role, allowed
    from camgate_server.settings import ServerSettings

__all__ = [
    "POLICY",
    "Account",
    "AccountStore",
    "Action",
    "Caller",
    "Role",
    "ServerSettings",
    "allowed",
    "create_app",
]

_WHERE = {
    "Account": "accounts",
    "AccountStore": "accounts",
    "Caller": "accounts",
    "create_app": "app",
    "POLICY": "policy",
    "Action": "policy",
    "Role": "policy",
    "allowed": "policy",
    "ServerSettings": "settings",
}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'camgate_server' has no attribute {name!r}")
    return getattr(importlib.import_module(f"camgate_server.{_WHERE[name]}"), name)
