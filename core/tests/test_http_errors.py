"""camgate.adapters.http_errors: an HTTP-speaking adapter's calls end in camgate's errors, with
messages of our own (httpx's, which may repeat a URL with its query, are dropped)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import httpx
import pytest
from camgate.adapters import http_errors
from camgate.errors import CameraProtocolError, CameraUnreachable

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def not_http() -> Iterator[int]:
    """A loopback port whose server answers every connection with bytes that are not HTTP."""
    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            with conn:
                conn.recv(1024)
                conn.sendall(b"SSH-2.0-OpenSSH_9.2\r\n\r\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    server.close()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_a_refused_connection_is_unreachable_and_shows_no_query() -> None:
    url = f"http://127.0.0.1:{_closed_port()}/x?token=hunter2"
    async with httpx.AsyncClient() as client:
        with (
            pytest.raises(CameraUnreachable, match="cannot connect to Acme") as caught,
            http_errors("GET /x", "Acme"),
        ):
            await client.get(url)
    assert "hunter2" not in str(caught.value) and caught.value.__cause__ is None


async def test_a_reply_that_is_not_http_is_a_protocol_error(not_http: int) -> None:
    async with httpx.AsyncClient() as client:
        with (
            pytest.raises(CameraProtocolError, match="does not answer in HTTP"),
            http_errors("GET /x", "Acme"),
        ):
            await client.get(f"http://127.0.0.1:{not_http}/x?token=hunter2")


async def test_a_time_out_is_unreachable() -> None:
    quiet = socket.create_server(("127.0.0.1", 0))  # accepts into the backlog, never answers
    try:
        async with httpx.AsyncClient(timeout=0.2) as client:
            with (
                pytest.raises(CameraUnreachable, match="Acme did not answer in time"),
                http_errors("GET /x", "Acme"),
            ):
                await client.get(f"http://127.0.0.1:{quiet.getsockname()[1]}/x")
    finally:
        quiet.close()
