"""Owner notices over a real webhook (an HTTP server on loopback) and real SMTP (aiosmtpd).

The owner must receive a verifiable notice for every access, granted or refused, and for a
revocation; with the receiver down, a revocation is not held up and every notice arrives once
the receiver is back.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Iterator
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import pytest
from aiosmtpd.controller import Controller
from camgate import AccessDenied, Secret
from camgate.delivery import EmailNotifier, WebhookNotifier, WebhookTarget, verify_signature

if TYPE_CHECKING:
    from conftest import World

SECRET = "whsec-alice-0123456789"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Receiver:
    """The owner's webhook: a real HTTP server; answers ``status`` and records what came."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.status = 200
        self.got: list[tuple[dict[str, str], bytes]] = []
        self.changed = threading.Condition()
        self.server: ThreadingHTTPServer | None = None
        self.now: float | None = None  # the sender's clock, when a test moves it by hand

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                self.send_response(receiver.status)
                self.end_headers()
                with receiver.changed:
                    if receiver.status == 200:
                        receiver.got.append((dict(self.headers), body))
                    receiver.changed.notify_all()

            def log_message(self, *args: Any) -> None:
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def notices(self) -> list[dict[str, Any]]:
        """Every notice received, after checking each message's signature."""
        found = []
        for headers, body in self.got:
            assert verify_signature(
                SECRET,
                body,
                headers["X-Camgate-Timestamp"],
                headers["X-Camgate-Signature"],
                now=self.now,
            )
            found.extend(json.loads(body)["notices"])
        return found

    def wait_for(self, count: int, timeout: float = 10.0) -> bool:
        with self.changed:
            return self.changed.wait_for(lambda: len(self.notices()) >= count, timeout)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver(free_port())
    yield r
    r.stop()


def _webhook(world: World, receiver: Receiver, **options: Any) -> WebhookNotifier:
    url = f"http://127.0.0.1:{receiver.port}/hooks/camgate?token=abc"
    notifier = WebhookNotifier(
        world.gate.store, {"alice": WebhookTarget(url, Secret(SECRET))}, **options
    )
    world.gate.host.register(notifier, "owner.webhook")
    return notifier


def _accesses(world: World) -> None:
    """A grant, a refusal and a revocation for alice's camera."""
    world.enrol("alice", ["a1"], scopes=["snapshot"])
    world.request(scope="snapshot")
    with pytest.raises(AccessDenied):
        world.request(scope="live")
    anyio.run(world.gate.revoke, "alice")


def test_every_access_reaches_the_owner_signed(world: World, receiver: Receiver) -> None:
    receiver.start()
    notifier = _webhook(world, receiver)
    _accesses(world)
    assert anyio.run(notifier.deliver_due) == 3
    got = receiver.notices()
    assert [n["event"] for n in got] == ["granted", "refused", "revoked"]
    assert got[1]["reasons"] == [
        "core.scope: the owner does not allow live access (allowed: snapshot)"
    ]
    headers, body = receiver.got[0]
    assert not verify_signature("another secret", body, headers["X-Camgate-Timestamp"],
                                headers["X-Camgate-Signature"])  # fmt: skip
    assert not verify_signature(SECRET, body + b" ", headers["X-Camgate-Timestamp"],
                                headers["X-Camgate-Signature"])  # fmt: skip
    assert anyio.run(notifier.deliver_due) == 0  # delivered once


def test_with_the_webhook_down_nothing_is_lost_and_revocation_is_not_held_up(
    world: World, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    clock = [1_000_000.0]
    notifier = _webhook(world, receiver, backoff_s=2.0, now=lambda: clock[0])
    caplog.set_level(logging.DEBUG)
    _accesses(world)  # the revocation returns although no receiver listens
    assert anyio.run(notifier.deliver_due) == 0
    assert "attempt 1, retry in 2.0 s" in caplog.text
    receiver.start()
    receiver.status = 503
    clock[0] += 2.0
    assert anyio.run(notifier.deliver_due) == 0
    assert "HTTP 503" in caplog.text and "retry in 4.0 s" in caplog.text
    receiver.status = 200
    clock[0] += 1.0
    assert anyio.run(notifier.deliver_due) == 0  # not due yet: back-off
    clock[0] += 3.0
    assert anyio.run(notifier.deliver_due) == 3
    receiver.now = clock[0]
    assert [n["event"] for n in receiver.notices()] == ["granted", "refused", "revoked"]
    assert SECRET not in caplog.text and "token=abc" not in caplog.text
    assert SECRET not in repr(notifier.targets) and "token=abc" not in caplog.text


def test_the_running_channel_retries_until_the_receiver_is_back(
    world: World, receiver: Receiver
) -> None:
    notifier = _webhook(world, receiver, backoff_s=0.05, max_backoff_s=0.2)
    _accesses(world)

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            await tg.start(notifier.run)
            receiver.start()
            assert await anyio.to_thread.run_sync(receiver.wait_for, 3)
            tg.cancel_scope.cancel()

    anyio.run(main)
    assert len(receiver.notices()) == 3


def test_refusals_can_come_as_a_digest(world: World, receiver: Receiver) -> None:
    receiver.start()
    notifier = _webhook(world, receiver, digest_refusals=True)
    world.enrol("alice", ["a1"], scopes=["snapshot"])
    for _ in range(3):
        with pytest.raises(AccessDenied):
            world.request(scope="live")
    world.request(scope="snapshot")
    assert anyio.run(notifier.deliver_due) == 4
    sizes = sorted(len(json.loads(body)["notices"]) for _h, body in receiver.got)
    assert sizes == [1, 3]


# ---------------------------------------------------------------------------- e-mail


class Mailbox:
    """aiosmtpd handler keeping every message."""

    def __init__(self) -> None:
        self.messages: list[Any] = []
        self.arrived = threading.Event()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.content))
        self.arrived.set()
        return "250 OK"


def test_email_reaches_the_owner_and_survives_an_smtp_outage(world: World, tmp_path: Path) -> None:
    port = free_port()
    clock = [1_000_000.0]
    notifier = EmailNotifier(
        world.gate.store,
        {"alice": "alice@example.org"},
        host="127.0.0.1",
        port=port,
        sender="rtcc@jackson.example",
        starttls=False,
        backoff_s=1.0,
        now=lambda: clock[0],
    )
    world.gate.host.register(notifier, "owner.email")
    world.enrol("alice", ["a1"], mode="ask")
    with pytest.raises(Exception, match="waits for the owner's answer"):
        world.request(scope="snapshot", note="identify a vehicle")
    assert anyio.run(notifier.deliver_due) == 0  # no SMTP server yet
    mailbox = Mailbox()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        clock[0] += 1.0
        assert anyio.run(notifier.deliver_due) == 1
        assert mailbox.arrived.wait(5)
        (mail,) = mailbox.messages
        assert mail["To"] == "alice@example.org"
        assert "may the police see camera a1?" in mail["Subject"]
        text = mail.get_payload(decode=True).decode()  # quoted-printable: soft line breaks
        assert "asks for snapshot access to camera a1 for a shooting incident" in text
        assert "no answer means no" in text and "identify a vehicle" in text
    finally:
        controller.stop()
