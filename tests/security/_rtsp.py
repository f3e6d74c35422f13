"""Real RTSP peers on loopback for the RTSP attack tests (not camgate code).

``RedirectingCamera`` is a small RTSP server (asyncio, in its own thread) that asks for Basic
credentials and then answers DESCRIBE with a redirect chosen per path; ``Listener`` is a plain
TCP listener that records whether anything connected and what it sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from types import TracebackType

import anyio
from camgate_rtsp.adapter import RtspLiveStream, RtspSettings
from camgate_rtsp.testing.server import Mount, RtspTestServer, serving


async def _cancel_others() -> None:
    """Cancel and await every other task of the loop (its connections), so none is left."""
    others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for task in others:
        task.cancel()
    await asyncio.gather(*others, return_exceptions=True)


class RedirectingCamera:
    """An RTSP server on 127.0.0.1 that redirects DESCRIBE per path.

    ``redirects`` maps a path (``/a``) to a ``Location`` (absolute or relative); a path without
    an entry gets ``404``. With ``realm`` set, DESCRIBE without an ``Authorization`` header gets
    ``401`` with a Basic challenge first (so a client sends its credentials on every request
    afterwards, which is what carries them to a redirect's target); ``challenges`` replaces
    that Basic challenge by these ``WWW-Authenticate`` values, in order, and ``options_challenge``
    adds one to the (otherwise plain) ``200`` answer to OPTIONS. ``requests`` lists every
    request line with its ``Authorization`` header (or None), in order.
    """

    def __init__(
        self,
        redirects: dict[str, str],
        *,
        realm: str | None = "cam",
        challenges: tuple[str, ...] | None = None,
        options_challenge: str | None = None,
    ) -> None:
        self.redirects = redirects
        self.realm = realm
        self.challenges = challenges or (f'Basic realm="{realm}"',)
        self.options_challenge = options_challenge
        self.requests: list[tuple[str, str | None]] = []
        self.connections = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._main, name="redirecting-camera", daemon=True)
        self._tls: ssl.SSLContext | None = None
        self.port = 0

    def url(self, path: str) -> str:
        """``rtsp://127.0.0.1:<port><path>``."""
        return f"rtsp://127.0.0.1:{self.port}{path}"

    def __enter__(self) -> RedirectingCamera:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the redirecting camera did not start")
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        stop = self._stop
        if stop is not None:
            self._loop.call_soon_threadsafe(stop.set)
        self._thread.join(10)

    def _main(self) -> None:
        self._loop.run_until_complete(self._serve())
        self._loop.close()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        server = await asyncio.start_server(self._client, "127.0.0.1", 0, ssl=self._tls)
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        async with server:
            await self._stop.wait()
        await _cancel_others()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, uri = lines[0].split(" ")[:2]
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        name, _, value = line.partition(":")
                        headers[name.strip().lower()] = value.strip()
                self.requests.append((lines[0], headers.get("authorization")))
                cseq = headers.get("cseq", "0")
                path = "/" + uri.split("://", 1)[-1].partition("/")[2].split("?")[0]
                if method == "OPTIONS":
                    reply = "200 OK\r\nPublic: OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN"
                    if self.options_challenge:
                        reply += f"\r\nWWW-Authenticate: {self.options_challenge}"
                elif method != "DESCRIBE":
                    reply = "455 Method Not Valid in This State"
                elif self.realm and "authorization" not in headers:
                    reply = "401 Unauthorized" + "".join(
                        f"\r\nWWW-Authenticate: {c}" for c in self.challenges
                    )
                elif path in self.redirects:
                    reply = f"302 Moved Temporarily\r\nLocation: {self.redirects[path]}"
                else:
                    reply = "404 Not Found"
                writer.write(f"RTSP/1.0 {reply}\r\nCSeq: {cseq}\r\n\r\n".encode("latin-1"))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ValueError, asyncio.CancelledError):
            pass  # the client left, spoke garbage, or the camera is closing
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


class Listener:
    """A TCP listener on 127.0.0.1 that accepts nothing until asked: :meth:`received` then
    collects every connection made to it (from the backlog, so a connect that already
    happened is never missed) and what each sent."""

    def __init__(self) -> None:
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._sock.getsockname()[1]

    def received(self, wait_s: float = 1.0) -> list[bytes]:
        """One entry per connection made so far: the bytes it sent within ``wait_s``."""
        out: list[bytes] = []
        self._sock.setblocking(False)
        while True:
            try:
                conn, _ = self._sock.accept()
            except BlockingIOError:
                return out
            with conn:
                conn.settimeout(wait_s)
                data = b""
                with contextlib.suppress(OSError):
                    while chunk := conn.recv(65536):
                        data += chunk
                out.append(data)

    def close(self) -> None:
        self._sock.close()


async def first_packet(url: str, settings: RtspSettings) -> RtspLiveStream:
    """Open ``url`` and wait (at most 15 s) for its first packet, which must be a keyframe;
    the stream stays open (the caller closes it)."""
    stream = await RtspLiveStream.open(url, settings)
    with anyio.fail_after(15):
        packet = await stream.__anext__()
    assert packet.is_keyframe
    return stream


def gst_server(*mounts: Mount, auth: str = "digest") -> Iterator[RtspTestServer]:
    """GStreamer's RTSP server with ``mounts``, for a fixture to yield (fails when unusable)."""
    with serving(mounts, auth=auth) as server:
        yield server


@contextlib.contextmanager
def listener() -> Iterator[Listener]:
    """A :class:`Listener`, closed at the end."""
    peer = Listener()
    try:
        yield peer
    finally:
        peer.close()


def self_signed(directory: str, host: str = "127.0.0.1") -> tuple[str, str]:
    """A fresh self-signed certificate for ``host`` (an IP address) and its key, as PEM files
    in ``directory`` (made by the ``openssl`` command): the certificate is its own CA (pass it
    as ``ca_file``)."""
    cert_file = os.path.join(directory, "camera.pem")
    key_file = os.path.join(directory, "camera.key")
    command = "req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1"
    subprocess.run(
        [
            "openssl",
            *command.split(),
            *("-subj", "/CN=camgate rtsps test camera", "-addext", f"subjectAltName=IP:{host}"),
            *("-keyout", key_file, "-out", cert_file),
        ],
        check=True,
        capture_output=True,
    )
    return cert_file, key_file


class TlsFront(RedirectingCamera):
    """An ``rtsps`` camera: TLS on 127.0.0.1 in front of a plain RTSP server at ``backend``
    (``host``, ``port``), relaying bytes both ways unchanged."""

    def __init__(self, backend: tuple[str, int], cert_file: str, key_file: str) -> None:
        super().__init__({})
        self._backend = backend
        self._tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._tls.load_cert_chain(cert_file, key_file)

    def url(self, path: str) -> str:
        """``rtsps://127.0.0.1:<port><path>``."""
        return f"rtsps://127.0.0.1:{self.port}{path}"

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._backend)
        except OSError:
            writer.close()
            return

        async def copy(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        try:
            await asyncio.gather(copy(reader, up_writer), copy(up_reader, writer))
        except asyncio.CancelledError:  # the front is closing: end quietly
            writer.transport.abort()
            up_writer.transport.abort()
