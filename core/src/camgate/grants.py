"""Signed grants: the hub signs with Ed25519, the edge verifies offline with the public key.

A token is ``base64url(canonical JSON of the grant) + "." + base64url(signature)``. The edge
needs nothing but the hub's public key to check it, so a box at the owner's side can refuse a
forged grant without calling the hub. Beyond the signature the edge checks the grant's time
(:class:`~camgate.errors.GrantExpired`), that it names the camera and scope asked for
(:class:`~camgate.errors.GrantMismatch`), and redeems it once
(:class:`~camgate.errors.GrantReplayed`).
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from datetime import datetime
from pathlib import Path

import attrs
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from camgate.codec import canonical, dump, load
from camgate.errors import (
    ConfigError,
    GrantExpired,
    GrantForged,
    GrantMismatch,
    ValidationError,
)
from camgate.models import Grant, Scope

__all__ = ["GrantSigner", "GrantVerifier", "SignedGrant", "check_grant"]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@attrs.frozen(repr=False)
class SignedGrant:
    """A grant with its token (what crosses from hub to edge).

    The token is a bearer credential: whoever holds it may redeem the grant once. ``str``,
    ``repr`` and ``format`` therefore never show it, only the grant's id, camera and scope, so
    ``log.info(f"issued {signed}")`` is safe. Read :attr:`token` where the token must travel.
    """

    grant: Grant
    #: The redeemable token, ``<payload>.<signature>``: hand it to the edge, never log it.
    token: str

    def __repr__(self) -> str:
        g = self.grant
        return f"SignedGrant(grant={g.id!r}, camera={g.camera_id!r}, scope={str(g.scope)!r})"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return format(repr(self), spec)


class GrantSigner:
    """The hub's signing key. ``sign`` turns a grant into a token."""

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key = key

    def __repr__(self) -> str:
        return "GrantSigner(<private key>)"

    @classmethod
    def generate(cls) -> GrantSigner:
        """A signer with a fresh random key."""
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def load(cls, path: str | Path) -> GrantSigner:
        """Load the key at ``path`` (PEM, PKCS8); ConfigError naming the file when it is
        missing, unreadable or not an Ed25519 private key. Never creates one."""
        path = Path(path)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise ConfigError(f"the signing key {path} is missing") from None
        except OSError as exc:
            raise ConfigError(f"cannot read the signing key {path}: {exc.strerror}") from None
        try:
            key = serialization.load_pem_private_key(data, password=None)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"{path}: not a PEM private key ({exc})") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise ConfigError(f"{path}: the key is not an Ed25519 key")
        return cls(key)

    @classmethod
    def load_or_create(cls, path: str | Path) -> GrantSigner:
        """Load the key at ``path`` (PEM, PKCS8), creating it with mode 0600 when missing.

        For the hub's key beside a store use :func:`camgate.audit.hub_signer`, which refuses to
        create a new key for an audit log that already has records.
        """
        path = Path(path)
        if path.exists():
            return cls.load(path)
        signer = cls.generate()
        pem = signer._key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process created it meanwhile: use theirs
            return cls.load(path)
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
            fh.flush()
            os.fsync(fh.fileno())
        return signer

    @property
    def public_key(self) -> bytes:
        """The raw 32-byte public key an edge needs to verify grants."""
        return self._key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )

    def sign_message(self, message: bytes) -> bytes:
        """Ed25519 signature of ``message`` (the audit log's checkpoints).

        Callers must prefix their messages with a label of their own (the audit log uses
        ``camgate-audit-checkpoint-v1``), so no signature can stand for a grant's, whose signed
        bytes are canonical JSON starting with ``{``.
        """
        return self._key.sign(message)

    def sign(self, grant: Grant) -> SignedGrant:
        """Sign a grant; the token carries the grant's full content."""
        payload = canonical(dump(grant))
        signature = self._key.sign(payload)
        return SignedGrant(grant, f"{_b64(payload)}.{_b64(signature)}")


class GrantVerifier:
    """The edge's check of a token against the hub's public key, with no call to the hub."""

    def __init__(self, public_key: bytes) -> None:
        try:
            self._key = Ed25519PublicKey.from_public_bytes(public_key)
        except ValueError as exc:
            raise ConfigError(f"not an Ed25519 public key: {exc}") from None

    def verify(self, token: str | SignedGrant) -> Grant:
        """Return the grant a token carries, or raise GrantForged when it is not the hub's."""
        text = token.token if isinstance(token, SignedGrant) else token
        if not isinstance(text, str) or text.count(".") != 1:
            raise GrantForged("malformed grant token: expected '<payload>.<signature>'")
        payload_b64, signature_b64 = text.split(".")
        try:
            payload, signature = _unb64(payload_b64), _unb64(signature_b64)
        except (binascii.Error, ValueError):
            raise GrantForged("malformed grant token: not base64url") from None
        try:
            self._key.verify(signature, payload)
        except InvalidSignature:
            raise GrantForged("grant signature does not verify against the hub's key") from None
        try:
            return load(Grant, json.loads(payload))
        except RecursionError:
            raise GrantForged("signed grant content is malformed: nested too deeply") from None
        except (ValueError, ValidationError) as exc:
            # Signed by the hub but unreadable: a bug or a key compromise; refuse either way.
            raise GrantForged(f"signed grant content is malformed: {exc}") from None


def check_grant(
    grant: Grant,
    *,
    camera_id: str,
    scope: Scope,
    now: datetime,
    window: tuple[datetime, datetime] | None = None,
) -> None:
    """Raise unless ``grant`` covers ``scope`` of ``camera_id`` at ``now`` (and ``window``)."""
    if grant.camera_id != camera_id:
        raise GrantMismatch(
            f"grant {grant.id} is for camera {grant.camera_id!r}, not {camera_id!r}"
        )
    if grant.scope is not scope:
        raise GrantMismatch(f"grant {grant.id} is for {grant.scope} access, not {scope}")
    if now < grant.issued_at:
        raise GrantExpired(f"grant {grant.id} is not valid before {grant.issued_at.isoformat()}")
    if now >= grant.expires_at:
        raise GrantExpired(f"grant {grant.id} expired at {grant.expires_at.isoformat()}")
    if window is not None:
        start, end = window
        if grant.window_start is None or grant.window_end is None:
            raise GrantMismatch(f"grant {grant.id} covers no recorded window")
        if start < grant.window_start or end > grant.window_end:
            raise GrantMismatch(
                f"window {start.isoformat()}..{end.isoformat()} is outside grant {grant.id}'s "
                f"{grant.window_start.isoformat()}..{grant.window_end.isoformat()}"
            )
