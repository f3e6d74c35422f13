"""The server's own errors, beside :mod:`camgate.errors` (every one a CamgateError, so a problem
document names it the same way). Messages never contain a password, token or cookie."""

from __future__ import annotations

from camgate.errors import CamgateError

__all__ = ["CsrfRejected", "Forbidden", "InviteInvalid", "NotAuthenticated", "TooManyAttempts"]


class NotAuthenticated(CamgateError):
    """No valid session or token came with the request (missing, unknown, expired, revoked), or
    a login's username and password did not match. Answered 401."""


class Forbidden(CamgateError):
    """The caller's role (or token's scopes) does not allow the action. Answered 403."""


class CsrfRejected(Forbidden):
    """A state-changing request from a session came without its CSRF token, or a wrong one."""


class TooManyAttempts(CamgateError):
    """Too many failed logins for this account or from this address; ``retry_after_s`` says
    when to try again. Answered 429 with ``Retry-After``."""

    def __init__(self, retry_after_s: int) -> None:
        self.retry_after_s = retry_after_s
        super().__init__(f"too many failed logins; try again in {retry_after_s} s")


class InviteInvalid(CamgateError):
    """An invite link is unknown, used already, or expired. Answered 410."""
