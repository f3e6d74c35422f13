"""Ring's webhooks, signed and sent by the simulator over real HTTP to the adapter's ASGI
receiver (uvicorn on loopback), become ``camgate_camera_event`` events: once, verified."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import pytest
import uvicorn
from camgate import hookimpl
from camgate.adapters import Secret
from camgate.plugins import PluginHost
from camgate_ring.testing import SIGNING_KEY, RingSimulator
from camgate_ring.webhooks import (
    WebhookApp,
    WebhookEvent,
    WebhookReceiver,
    WebhookVerifier,
    host_events,
)

pytestmark = pytest.mark.anyio

Seen = tuple[str, str | None, str, datetime, dict[str, str]]


class Observer:
    """A plugin that keeps every camera event."""

    def __init__(self) -> None:
        self.seen: list[Seen] = []

    @hookimpl
    def camgate_camera_event(
        self, adapter: str, source: str | None, kind: str, at: datetime, details: Any
    ) -> None:
        self.seen.append((adapter, source, kind, at, dict(details)))


@contextlib.asynccontextmanager
async def serve(receiver: WebhookReceiver) -> AsyncIterator[str]:
    """The receiver's ASGI app under uvicorn on a loopback socket that listens before the
    server runs (a delivery waits in its backlog): the Webhook URL."""
    sock = socket.create_server(("127.0.0.1", 0))
    server = uvicorn.Server(
        uvicorn.Config(WebhookApp(receiver), log_level="warning", lifespan="off")
    )
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(lambda: server.serve(sockets=[sock]))
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/ring/webhook"
        server.should_exit = True
    sock.close()


@pytest.fixture
async def hooked() -> AsyncIterator[tuple[Observer, str, WebhookReceiver]]:
    host = PluginHost()
    observer = Observer()
    host.register(observer, "observer")
    receiver = WebhookReceiver(WebhookVerifier(Secret(SIGNING_KEY)), host_events(host))
    async with serve(receiver) as url:
        yield observer, url, receiver


async def send(sim: RingSimulator, *args: Any, **kwargs: Any) -> list[int]:
    return await anyio.to_thread.run_sync(lambda: sim.send_webhook(*args, **kwargs))


async def test_hook_camgate_camera_event(sim: RingSimulator) -> None:
    seen: list[Seen] = []

    class Plugin:
        @hookimpl
        def camgate_camera_event(
            self, adapter: str, source: str | None, kind: str, at: datetime, details: Any
        ) -> None:
            seen.append((adapter, source, kind, at, dict(details)))

    host = PluginHost()
    host.register(Plugin(), "observer")
    receiver = WebhookReceiver(WebhookVerifier(Secret(SIGNING_KEY)), host_events(host))
    async with serve(receiver) as url:
        await deliver_every_kind(sim, url, seen)


async def deliver_every_kind(sim: RingSimulator, url: str, seen: list[Seen]) -> None:
    device = sim.sources[0]
    # Ring retries a delivery: the second one is acknowledged and not handed on again.
    assert await send(sim, url, "motion_detected", device, sub_type="human", times=2) == [204, 200]
    assert await send(sim, url, "button_press", device) == [204]
    assert await send(sim, url, "device_removed", device) == [204]
    assert await send(sim, url, "app_integration_removed") == [204]
    kinds = [(a, s, k, d.get("sub_type")) for a, s, k, _at, d in seen]
    assert kinds == [
        ("ring", device, "motion", "human"),
        ("ring", device, "ding", None),
        ("ring", device, "device-removed", None),
        ("ring", None, "unlinked", None),
    ]
    now = datetime.now(UTC)
    assert all(now - timedelta(seconds=30) < at <= now for *_x, at, _d in seen)
    assert all(SIGNING_KEY not in repr(event) for event in seen)


async def test_unsigned_stale_or_tampered_deliveries_become_nothing(
    sim: RingSimulator, hooked: tuple[Observer, str, WebhookReceiver]
) -> None:
    observer, url, _ = hooked
    device = sim.sources[0]
    assert await send(sim, url, "motion_detected", device, tamper=True) == [401]
    assert await send(sim, url, "motion_detected", device, age_s=3600) == [400]
    assert observer.seen == []


async def test_a_delivery_whose_handling_failed_is_handled_when_ring_retries(
    sim: RingSimulator,
) -> None:
    handed: list[WebhookEvent] = []
    failures = [RuntimeError("the event bus is down")]

    def emit(event: WebhookEvent) -> None:
        if failures:
            raise failures.pop()
        handed.append(event)

    receiver = WebhookReceiver(WebhookVerifier(Secret(SIGNING_KEY)), emit)
    async with serve(receiver) as url:
        statuses = await send(sim, url, "motion_detected", sim.sources[1], times=3)
    assert statuses == [500, 204, 200]
    assert [e.type for e in handed] == ["motion_detected"]
