"""Delivering owner notices: a webhook (signed with HMAC-SHA256) and e-mail (SMTP).

Each notifier is a ``camgate_notify_owner`` hook implementation that only **queues** the notice
durably (the store's ``deliveries`` table, one row per channel and notice) and returns ``True``:
the gate's decision or revocation never waits on a network. Delivery happens in
:meth:`DeliveryChannel.deliver_due` — call it, or run :meth:`DeliveryChannel.run` in a task
group — which sends what is due and, on failure, keeps the notice and retries it later with
exponential back-off (``backoff_s * 2**attempts``, at most ``max_backoff_s``). A notice is
marked delivered only after the receiver accepted it, so a notifier that is down loses nothing:
the owner gets every notice once it is back. Another process sharing the store (the CLI) queues
into the same table; whichever process runs the channel delivers.

Refusals can be batched: with ``digest_refusals=True`` every refusal due for an owner goes out as
one message (a digest); grants, ask-first requests and revocations always go out one by one.

Webhook receivers verify a request with :func:`verify_signature`: the body is signed with the
owner's shared secret as ``HMAC-SHA256(secret, timestamp + "." + body)``, sent in the
``X-Camgate-Signature: sha256=<hex>`` header with ``X-Camgate-Timestamp`` (Unix seconds).
Secrets are :class:`~camgate.adapters.Secret` objects: never in a log line, a repr or an error;
a webhook URL is logged without its query string or user info (also in httpx's own log).
"""

from __future__ import annotations

import abc
import hashlib
import hmac
import json
import logging
import smtplib
import ssl
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any
from urllib.parse import urlsplit

import anyio
import anyio.abc
import anyio.to_thread
import attrs
import httpx

from camgate.adapters import Secret
from camgate.codec import load
from camgate.errors import ValidationError
from camgate.hookspecs import hookimpl
from camgate.models import carries_credentials
from camgate.notify import OwnerNotice
from camgate.store import Store

__all__ = [
    "DeliveryChannel",
    "DeliveryFailed",
    "EmailNotifier",
    "WebhookNotifier",
    "WebhookTarget",
    "sign_body",
    "verify_signature",
]

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Camgate-Signature"
TIMESTAMP_HEADER = "X-Camgate-Timestamp"


class DeliveryFailed(Exception):
    """One attempt to deliver failed; the notices stay queued. The message holds no secret."""


def sign_body(secret: Secret, timestamp: int, body: bytes) -> str:
    """The ``X-Camgate-Signature`` value for ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret.reveal().encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify_signature(
    secret: Secret | str,
    body: bytes,
    timestamp: str,
    signature: str,
    *,
    tolerance_s: float = 300.0,
    now: float | None = None,
) -> bool:
    """True when a webhook request is camgate's: the signature matches and is recent.

    For receivers: pass the raw body and the two headers. Comparison is constant-time; a
    timestamp more than ``tolerance_s`` away from ``now`` is refused (replays).
    """
    key = secret if isinstance(secret, Secret) else Secret(secret)
    try:
        ts = int(timestamp)
    except (TypeError, ValueError):
        return False
    if abs((time.time() if now is None else now) - ts) > tolerance_s:
        return False
    return hmac.compare_digest(sign_body(key, ts, body), signature)


def _redacted(url: str) -> str:
    """The URL without user info, ``;`` parameters, query or fragment (where tokens live); a
    path that looks like it holds a credential is shown as ``/…``."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<unparsable url>"
    path = parts.path.split(";", 1)[0]
    if carries_credentials(path):
        path = "/…"
    return f"{parts.scheme}://{host}{port}{path}"


class _RedactUrls(logging.Filter):
    """Strip user info and query strings from URLs that httpx logs ("HTTP Request: POST ...").

    A webhook URL often carries a token in its query; httpx logs every request's URL at INFO.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                _redacted(str(a)) if isinstance(a, httpx.URL) else a for a in record.args
            )
        return True


_REDACT = _RedactUrls()


class DeliveryChannel(abc.ABC):
    """A durable, retried delivery of owner notices; subclasses say how one message is sent.

    ``now`` is wall-clock seconds (shared with other processes through the store); tests may
    pass their own.
    """

    #: The channel's name in the ``deliveries`` table.
    name = "channel"

    def __init__(
        self,
        store: Store,
        *,
        backoff_s: float = 1.0,
        max_backoff_s: float = 300.0,
        digest_refusals: bool = False,
        now: Callable[[], float] = time.time,
    ) -> None:
        if not backoff_s > 0 or max_backoff_s < backoff_s:
            raise ValidationError("backoff_s must be > 0 and max_backoff_s ≥ backoff_s")
        self.store = store
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.digest_refusals = digest_refusals
        self.now = now

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"

    @abc.abstractmethod
    def handles(self, owner_id: str) -> bool:
        """True when this channel knows where to reach the owner."""

    @abc.abstractmethod
    async def send(self, owner_id: str, notices: Sequence[OwnerNotice]) -> None:
        """Send one message carrying ``notices``; raise DeliveryFailed when not accepted."""

    @hookimpl
    def camgate_notify_owner(self, notice: OwnerNotice) -> bool | None:
        """Queue the notice durably for this channel; True once queued, None for other owners."""
        if not self.handles(notice.owner_id):
            return None
        self.store.queue_delivery(self.name, notice, self.now())
        return True

    def retry_delay(self, attempts: int) -> float:
        """Seconds to wait after ``attempts`` failed attempts (exponential, capped)."""
        return float(min(self.max_backoff_s, self.backoff_s * 2 ** min(attempts, 30)))

    def _batches(self, due: list[tuple[str, int, dict[str, Any]]]) -> list[list[tuple[str, int]]]:
        by_owner: dict[str, list[tuple[str, int, dict[str, Any]]]] = {}
        for row in due:
            by_owner.setdefault(row[2]["owner_id"], []).append(row)
        batches: list[list[tuple[str, int]]] = []
        for rows in by_owner.values():
            digest = [
                (r[0], r[1]) for r in rows if self.digest_refusals and r[2]["event"] == "refused"
            ]
            batches.extend([(r[0], r[1])] for r in rows if (r[0], r[1]) not in digest)
            if digest:
                batches.append(digest)
        return batches

    async def deliver_due(self) -> int:
        """Send every notice that is due; return how many were delivered.

        A failed message stays queued, retried after :meth:`retry_delay`; nothing is dropped.
        """
        due = await anyio.to_thread.run_sync(self.store.due_deliveries, self.name, self.now())
        notices = {nid: load(OwnerNotice, doc) for nid, _a, doc in due}
        delivered = 0
        for batch in self._batches(due):
            ids = [nid for nid, _ in batch]
            owner = notices[ids[0]].owner_id
            try:
                await self.send(owner, [notices[n] for n in ids])
            except DeliveryFailed as exc:
                attempts = max(a for _, a in batch) + 1
                delay = self.retry_delay(attempts - 1)
                log.warning(
                    "%s: %d notice(s) for owner %s not delivered (%s); attempt %d, retry in %.1f s",
                    self.name,
                    len(ids),
                    owner,
                    exc,
                    attempts,
                    delay,
                )
                await anyio.to_thread.run_sync(
                    self.store.delivery_failed, self.name, ids, self.now() + delay
                )
                continue
            await anyio.to_thread.run_sync(
                self.store.delivery_done, self.name, ids, datetime.now(UTC)
            )
            delivered += len(ids)
        return delivered

    async def run(
        self,
        *,
        idle_s: float = 0.2,
        task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Deliver forever: what is due now, then again when the next retry is due.

        Notices queued by this or another process are picked up within ``idle_s``. Start it with
        ``await task_group.start(channel.run)``; cancel the task group to stop.
        """
        task_status.started()
        while True:
            await self.deliver_due()
            following = await anyio.to_thread.run_sync(self.store.next_delivery_at, self.name)
            wait = idle_s if following is None else min(idle_s, max(0.0, following - self.now()))
            await anyio.sleep(wait)


def _payload(notices: Sequence[OwnerNotice]) -> dict[str, Any]:
    return {
        "notices": [n.to_json() for n in notices],
        "summary": "\n".join(n.summary() for n in notices),
    }


@attrs.frozen
class WebhookTarget:
    """Where an owner's webhook lives and the secret it shares with camgate (never shown).

    The repr shows the URL without its query, fragment or user info, which often carry a token.
    """

    url: str = attrs.field(repr=lambda url: repr(_redacted(url)))
    secret: Secret = attrs.field(repr=False)

    def __attrs_post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValidationError(f"webhook url {_redacted(self.url)!r}: must be http(s)://host/…")
        if parts.username or parts.password:
            raise ValidationError("webhook url: must not carry credentials; use the secret")
        if not isinstance(self.secret, Secret):
            raise ValidationError("webhook secret: must be a camgate.Secret")


class WebhookNotifier(DeliveryChannel):
    """POST each message as JSON to the owner's webhook, signed with HMAC-SHA256.

    The body is ``{"notices": [...], "summary": "..."}``; headers ``X-Camgate-Signature`` and
    ``X-Camgate-Timestamp`` (see :func:`verify_signature`). A 2xx answer is delivery; anything
    else (an error status, a refused connection, a time-out) is retried.
    """

    name = "webhook"

    def __init__(
        self,
        store: Store,
        targets: Mapping[str, WebhookTarget],
        *,
        timeout_s: float = 10.0,
        **options: Any,
    ) -> None:
        super().__init__(store, **options)
        if _REDACT not in logging.getLogger("httpx").filters:
            logging.getLogger("httpx").addFilter(_REDACT)
        self.targets = dict(targets)
        self.timeout_s = timeout_s

    def handles(self, owner_id: str) -> bool:
        """True when the owner has a webhook."""
        return owner_id in self.targets

    async def send(self, owner_id: str, notices: Sequence[OwnerNotice]) -> None:
        """POST one signed message; DeliveryFailed unless the receiver answers 2xx."""
        target = self.targets[owner_id]
        body = json.dumps(_payload(notices), sort_keys=True).encode()
        ts = int(self.now())
        headers = {
            "Content-Type": "application/json",
            TIMESTAMP_HEADER: str(ts),
            SIGNATURE_HEADER: sign_body(target.secret, ts, body),
        }
        where = _redacted(target.url)
        try:
            async with httpx.AsyncClient(timeout=self.timeout_s) as client:
                answer = await client.post(target.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            # httpx messages may repeat the URL (and its query); name the class only.
            raise DeliveryFailed(f"{where}: {type(exc).__name__}") from None
        if not answer.is_success:
            raise DeliveryFailed(f"{where}: HTTP {answer.status_code}")


class EmailNotifier(DeliveryChannel):
    """E-mail each message to the owner through an SMTP server (stdlib ``smtplib``).

    ``starttls`` upgrades the connection before logging in; ``password`` is a Secret. Any SMTP
    or network error is retried.
    """

    name = "email"

    def __init__(
        self,
        store: Store,
        addresses: Mapping[str, str],
        *,
        host: str,
        port: int = 587,
        sender: str,
        username: str | None = None,
        password: Secret | None = None,
        starttls: bool = True,
        timeout_s: float = 10.0,
        **options: Any,
    ) -> None:
        super().__init__(store, **options)
        if any("@" not in a for a in addresses.values()):
            raise ValidationError("addresses: every owner needs an e-mail address")
        self.addresses = dict(addresses)
        self.host, self.port, self.sender = host, port, sender
        self.username, self._password = username, password
        self.starttls, self.timeout_s = starttls, timeout_s

    def handles(self, owner_id: str) -> bool:
        """True when the owner has an e-mail address."""
        return owner_id in self.addresses

    def message(self, owner_id: str, notices: Sequence[OwnerNotice]) -> EmailMessage:
        """The e-mail for ``notices``: a plain-text summary and the JSON of each notice."""
        msg = EmailMessage()
        first = notices[0]
        if len(notices) > 1:
            subject = f"camgate: {len(notices)} requests for your cameras were refused"
        elif first.event == "ask":
            subject = f"camgate: may the police see camera {first.camera_id}? ({first.request_id})"
        else:
            subject = f"camgate: {first.scope or 'access'} {first.event} on {first.camera_id}"
        msg["Subject"] = subject
        msg["From"] = self.sender
        msg["To"] = self.addresses[owner_id]
        body = "\n\n".join(n.summary() for n in notices)
        msg.set_content(body + "\n\n-- \n" + json.dumps(_payload(notices)["notices"], indent=1))
        return msg

    def _send_sync(self, msg: EmailMessage) -> None:
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout_s) as smtp:
                if self.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if self.username and self._password is not None:
                    smtp.login(self.username, self._password.reveal())
                smtp.send_message(msg)
        except (smtplib.SMTPException, OSError) as exc:
            raise DeliveryFailed(f"smtp {self.host}:{self.port}: {type(exc).__name__}") from None

    async def send(self, owner_id: str, notices: Sequence[OwnerNotice]) -> None:
        """Send one e-mail; DeliveryFailed when the server does not accept it."""
        await anyio.to_thread.run_sync(self._send_sync, self.message(owner_id, notices))
