"""Every exception camgate raises on purpose, in one tree.

```
CamgateError                     base of everything below; never carries a secret
├── ValidationError              a model or setting was built from bad values (also a ValueError)
├── PluginError                  a plugin failed to load, or broke its hook's contract
├── ConfigError                  storage, keys or settings are missing or inconsistent
│   ├── StorageError             a store file: disk full, damaged, missing or read-only
│   └── MissingExtra             a feature needs an optional extra that is not installed
├── NotFound                     an id names no camera, owner, incident, request or grant
├── AccessDenied                 the gate refused a request; `.decision` holds every reason
├── AnswerPending                an ask-first request is held for the owner; `.pending` says until
├── RequestExpired               the owner's answer came after the request's deadline (a no)
├── GrantError                   a grant could not be honoured at the edge
│   ├── GrantForged              the signature does not verify against the hub's key
│   ├── GrantExpired             the grant's expiry has passed (or it is not yet valid)
│   ├── GrantReplayed            the grant was already redeemed once
│   ├── GrantMismatch            the grant names another camera, scope or window
│   └── ZoneRefused              a resident's privacy zone, unmasked, is now in the camera's view
├── ConsentRevoked               the owner revoked consent; the stream was ended
├── AuditError                   the audit log could not be written or does not verify
├── ExportError                  a clip, snapshot or report could not be written (disk full)
└── AdapterError                 a vendor adapter failed to reach or read a camera
    ├── CameraUnreachable        connection refused, timed out, or the peer vanished
    ├── CameraAuthError          the camera refused the credentials (or none were given)
    │   └── AccountUnlinked      the vendor account was unlinked on the vendor's side
    ├── CameraProtocolError      the peer does not speak the expected protocol (e.g. not RTSP)
    ├── NoVideoError             the camera's stream has no video track
    └── UnsupportedScope         the adapter does not serve that scope (live, snapshot, recorded)
```

Lower-level errors (PyAV, sockets, sqlite3) are mapped to the most specific class above with
``raise ... from`` — or ``from None`` when the lower-level message could carry a credential (PyAV
repeats the URL it was given, user and password included).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from camgate.models import Decision, PendingRequest

__all__ = [
    "AccessDenied",
    "AccountUnlinked",
    "AdapterError",
    "AnswerPending",
    "AuditError",
    "CameraAuthError",
    "CameraProtocolError",
    "CameraUnreachable",
    "CamgateError",
    "ConfigError",
    "ConsentRevoked",
    "ExportError",
    "GrantError",
    "GrantExpired",
    "GrantForged",
    "GrantMismatch",
    "GrantReplayed",
    "MissingExtra",
    "NoVideoError",
    "NotFound",
    "PluginError",
    "RequestExpired",
    "StorageError",
    "UnsupportedScope",
    "ValidationError",
    "ZoneRefused",
]


class CamgateError(Exception):
    """Base class of every error camgate raises on purpose. Messages never contain secrets."""


class ValidationError(CamgateError, ValueError):
    """A model, setting or command argument was given a value it cannot accept."""


class PluginError(CamgateError):
    """A plugin could not be loaded, or an implementation broke its hook's contract."""


class ConfigError(CamgateError):
    """Storage, keys or settings are missing or do not fit together."""


class MissingExtra(ConfigError):
    """A feature needs a package of one of camgate's optional extras, and it is not installed.

    ``extra`` is the extra's name (``postgres``, ``plot``) and ``module`` the package that could
    not be imported; the message says what to install: ``pip install 'camgate[<extra>]'``.
    """

    def __init__(self, extra: str, module: str, feature: str) -> None:
        self.extra = extra
        self.module = module
        super().__init__(
            f"{feature} needs {module!r}, which is not installed: "
            f"install camgate[{extra}] (pip install 'camgate[{extra}]')"
        )


class NotFound(CamgateError, LookupError):
    """An identifier names nothing that camgate knows."""


class AccessDenied(CamgateError):
    """The gate refused a request. ``decision`` carries every policy's vote and reason."""

    def __init__(self, decision: Decision) -> None:
        self.decision = decision
        reasons = "; ".join(f"{v.policy}: {v.reason}" for v in decision.denials) or "no reason"
        super().__init__(f"access to camera {decision.camera_id!r} denied: {reasons}")


class AnswerPending(CamgateError):
    """An ask-first request is held until its owner answers; ``pending`` names it and its deadline.

    Raised by ``Gate.request_access(..., wait=False)``; await ``Gate.wait_for_answer`` later.
    """

    def __init__(self, pending: PendingRequest, waits_for: str = "the owner's answer") -> None:
        self.pending = pending
        #: Whose answer it waits for: the owner's, or an approver's (the agency's rules).
        self.waits_for = waits_for
        super().__init__(
            f"request {pending.request_id!r} waits for {waits_for} until "
            f"{pending.deadline.isoformat(timespec='seconds')}"
        )


class RequestExpired(CamgateError):
    """The request's deadline passed before the owner answered: it counts as a no.

    An answer given after the deadline is refused with this error and is not recorded.
    """


class GrantError(CamgateError):
    """A grant was presented at the edge and could not be honoured."""


class GrantForged(GrantError):
    """The grant's signature does not verify against the hub's public key."""


class GrantExpired(GrantError):
    """The grant is past its expiry, or not yet valid."""


class GrantReplayed(GrantError):
    """The grant was already redeemed; each grant opens media once."""


class GrantMismatch(GrantError):
    """The grant does not cover what was asked: another camera, scope or time window."""


class ZoneRefused(GrantError):
    """A live or snapshot grant no longer opens: a resident's privacy zone lies in the camera's
    view and its owner has not confirmed that a privacy mask covers it (registered after the
    grant was issued, or the masks changed since). Recorded footage is not affected."""


class ConsentRevoked(CamgateError):
    """The owner revoked consent; the stream was ended and no later packet was served."""


class StorageError(ConfigError):
    """A store file cannot be read or written: the disk is full, the file is damaged, missing
    or read-only. The message names the file."""


class AuditError(CamgateError):
    """The audit log could not be appended durably, or its chain does not verify."""


class ExportError(CamgateError):
    """A file could not be written (a full disk, a file-size limit, no permission): the message
    names the file and the cause; nothing partial is left at the final name."""


class AdapterError(CamgateError):
    """A vendor adapter could not reach or read a camera."""


class CameraUnreachable(AdapterError):
    """The camera refused the connection, did not answer in time, or went away."""


class CameraAuthError(AdapterError):
    """The camera refused the credentials, or asked for credentials that were not configured."""


class AccountUnlinked(CameraAuthError):
    """The vendor account a camera is reached through was unlinked, or its authorisation
    withdrawn, on the vendor's side (a token refresh refused: the owner removed camgate from
    Ring's "My Apps", say). No camera of that account can be reached until its owner links it
    again; the edge ends every open stream of the account's cameras. ``account`` is an opaque
    key naming the account (:meth:`camgate.adapters.Adapter.account_key`), never a secret."""

    def __init__(self, message: str, *, account: str = "") -> None:
        super().__init__(message)
        self.account = account


class CameraProtocolError(AdapterError):
    """The peer answered, but not in the protocol the adapter speaks."""


class NoVideoError(AdapterError):
    """The camera's stream carries no video track."""


class UnsupportedScope(AdapterError):
    """The adapter does not declare the capability needed for this scope."""
