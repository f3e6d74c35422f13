"""The server's settings (what ``camgate serve`` passes to :func:`camgate_server.create_app`)."""

from __future__ import annotations

import attrs

__all__ = ["ServerSettings"]


@attrs.frozen
class ServerSettings:
    """How the server treats sessions and logins.

    ``secure_cookies`` sets the cookie's ``Secure`` flag: keep it on everywhere but a loopback
    test or a server behind a TLS-terminating proxy on the same host. Sessions last
    ``session_ttl_s`` from login. A login is refused with 429 after ``login_failures_per_account``
    failures for one username, or ``login_failures_per_address`` from one client address, within
    ``login_window_s``. Invites last ``invite_ttl_s``; API tokens at most ``token_max_ttl_s``.
    """

    secure_cookies: bool = True
    session_ttl_s: float = attrs.field(default=8 * 3600.0)
    login_failures_per_account: int = 5
    login_failures_per_address: int = 20
    login_window_s: float = 900.0
    invite_ttl_s: float = 7 * 86400.0
    token_max_ttl_s: float = 365 * 86400.0
    cookie_name: str = "camgate_session"
