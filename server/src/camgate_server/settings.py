"""The server's settings (what ``camgate serve`` passes to :func:`camgate_server.create_app`)."""

from __future__ import annotations

from collections.abc import Mapping

import attrs
from camgate.errors import ValidationError

from camgate_server.policy import Role

__all__ = ["PROXY_SECRET_HEADER", "ProxyAuth", "ServerSettings"]

#: The header a trusted reverse proxy proves itself with (:class:`ProxyAuth`).
PROXY_SECRET_HEADER = "X-Camgate-Proxy-Secret"  # noqa: S105 - a header name


def _roles(value: Mapping[str, str]) -> dict[str, str]:
    try:
        roles = {str(group): str(Role(role)) for group, role in dict(value).items()}
    except ValueError:
        raise ValidationError(f"a group maps to a role, one of {', '.join(Role)}") from None
    if "owner" in roles.values():
        raise ValidationError(
            "owners log in with their own accounts, not the agency's single sign-on"
        )
    return roles


@attrs.frozen
class ProxyAuth:
    """People authenticated by the agency's single sign-on at a trusted reverse proxy.

    The proxy sends :data:`PROXY_SECRET_HEADER` with ``secret`` (compared in constant time), the
    person's username in ``user_header`` and their groups, comma-separated, in
    ``groups_header``; ``roles`` maps a group to a staff role. A request without the secret
    header is judged by its token or session as usual; one with a wrong secret is refused. The
    proxy must strip these headers from what it receives, and the server must be reachable only
    through it (docs/api.md).
    """

    secret: str = attrs.field(repr=False)
    roles: Mapping[str, str] = attrs.field(converter=_roles)
    user_header: str = "X-Forwarded-User"
    groups_header: str = "X-Forwarded-Groups"

    @secret.validator
    def _long(self, _attribute: object, value: str) -> None:
        if len(value) < 32:
            raise ValidationError("the proxy secret is at least 32 characters")


@attrs.frozen
class ServerSettings:
    """How the server treats sessions and logins.

    ``secure_cookies`` sets the cookie's ``Secure`` flag: keep it on everywhere but a loopback
    test or a server behind a TLS-terminating proxy on the same host. Sessions last
    ``session_ttl_s`` from login. A login is refused with 429 after ``login_failures_per_account``
    failures for one username, or ``login_failures_per_address`` from one client address, within
    ``login_window_s``. Invites last ``invite_ttl_s``; API tokens at most ``token_max_ttl_s``.
    Event streams (``GET /events``) look for new audit records every ``events_poll_s`` and send
    a heartbeat after ``events_heartbeat_s`` of quiet.
    """

    secure_cookies: bool = True
    session_ttl_s: float = attrs.field(default=8 * 3600.0)
    login_failures_per_account: int = 5
    login_failures_per_address: int = 20
    login_window_s: float = 900.0
    invite_ttl_s: float = 7 * 86400.0
    token_max_ttl_s: float = 365 * 86400.0
    #: How often an event stream looks for new audit records, and how long a quiet stream
    #: waits before a heartbeat comment (when it also re-checks its caller).
    events_poll_s: float = attrs.field(default=0.5, validator=attrs.validators.gt(0))
    events_heartbeat_s: float = attrs.field(default=15.0, validator=attrs.validators.gt(0))
    #: The trusted reverse proxy of the agency's single sign-on, if any.
    proxy: ProxyAuth | None = None
    #: The NATS server's URL through which live sockets reach cameras behind remote edges
    #: (``camgate serve --nats``; ``camgate edge assign``); None: such cameras are refused.
    #: Kept out of the repr: a NATS URL may carry a user's password.
    nats_url: str | None = attrs.field(default=None, repr=False)

    @property
    def cookie_name(self) -> str:
        """The session cookie's name: ``__Host-camgate_session`` with Secure cookies (the
        browser then accepts it only from this host over HTTPS, with Path=/ and no Domain, so a
        sibling subdomain cannot plant or overwrite it), ``camgate_session`` without."""
        return "__Host-camgate_session" if self.secure_cookies else "camgate_session"
