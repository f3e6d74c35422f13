"""A simulated Example Cam: a real HTTP server on loopback, run as its own process.

``python -m camgate_examplecam.testing.server CONFIG`` where CONFIG is a JSON file::

    {"log": "/path/events.jsonl", "fps": 10, "width": 320, "height": 240,
     "cameras": {"/cam1": {"username": "viewer", "password": "..."}, "/cam2": null},
     "errors": {"/broken": 500}}

It prints ``port N`` once it listens, then serves ``<camera>/video.mjpeg`` (MJPEG,
``multipart/x-mixed-replace``) and ``<camera>/snapshot.jpg``, each behind HTTP Digest
(SHA-256) when the camera has credentials; a path under ``errors`` answers that status; any
other path 404. Each picture is drawn when it is sent and carries its capture time as the
picture clock (:func:`camgate.testing.draw_picture_clock`).

The log (the conformance suite's backdoor) is one JSON object a line, on this machine's
``time.monotonic()`` clock: ``{"at", "client", "kind", "path", "media"}`` with ``kind`` one of
``connect`` (a client connected), ``get`` (a request; ``media`` true when it asks for video or
a snapshot of a camera) and ``closed`` (the connection ended).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import select
import socket
import sys
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import av
import numpy as np
from camgate.media.jpeg import encode_jpeg
from camgate.testing import draw_picture_clock

REALM = "examplecam"
MEDIA = ("video.mjpeg", "snapshot.jpg")


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.config = config
        self.cameras: dict[str, dict[str, str] | None] = config["cameras"]
        self.errors: dict[str, int] = config.get("errors", {})
        self.nonces: set[str] = set()
        self._log = Path(config["log"]).open("a", encoding="utf-8")  # noqa: SIM115
        self._lock = threading.Lock()

    def log(self, client: str, kind: str, path: str | None = None, media: bool = False) -> None:
        line = json.dumps(
            {"at": time.monotonic(), "client": client, "kind": kind, "path": path, "media": media}
        )
        with self._lock:
            self._log.write(line + "\n")
            self._log.flush()

    def picture(self) -> bytes:
        """A new JPEG: a bright bar moving over a gradient, and the picture clock."""
        width, height = int(self.config["width"]), int(self.config["height"])
        luma = np.tile(np.linspace(40, 200, width, dtype=np.uint8), (height, 1))
        x = int(time.monotonic() * 80) % width
        luma[: height * 3 // 4, x : x + 16] = 250
        draw_picture_clock(luma, datetime.now(UTC))
        jpeg, _w, _h = encode_jpeg(av.VideoFrame.from_ndarray(luma, format="gray"), quality=2)
        return jpeg


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.0"

    def setup(self) -> None:
        super().setup()
        self.client = f"{self.client_address[0]}:{self.client_address[1]}"
        self.server.log(self.client, "connect")

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:
            pass
        finally:
            self.server.log(self.client, "closed")

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the JSON log is the record."""

    def do_GET(self) -> None:
        camera, _, leaf = self.path.partition("?")[0].rpartition("/")
        known = camera in self.server.cameras
        self.server.log(self.client, "get", camera or None, known and leaf in MEDIA)
        if camera in self.server.errors:
            self.send_error(self.server.errors[camera])
            return
        if not known or leaf not in MEDIA:
            self.send_error(404)
            return
        creds = self.server.cameras[camera]
        if creds is not None and not self._authorised(creds):
            nonce = secrets.token_hex(16)
            self.server.nonces.add(nonce)
            self.send_response(401)
            self.send_header(
                "WWW-Authenticate",
                f'Digest realm="{REALM}", qop="auth", algorithm=SHA-256, nonce="{nonce}"',
            )
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if leaf == "snapshot.jpg":
            jpeg = self.server.picture()
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", str(len(jpeg)))
            self.end_headers()
            self.wfile.write(jpeg)
            return
        self._stream()

    def _authorised(self, creds: dict[str, str]) -> bool:
        header = self.headers.get("Authorization", "")
        if not header.startswith("Digest "):
            return False
        fields = dict(
            (k.strip(), v.strip().strip('"'))
            for k, _, v in (p.partition("=") for p in header[7:].split(","))
        )
        if (
            fields.get("nonce") not in self.server.nonces
            or fields.get("username") != creds["username"]
        ):
            return False

        def h(text: str) -> str:
            return hashlib.sha256(text.encode()).hexdigest()

        ha1 = h(f"{creds['username']}:{REALM}:{creds['password']}")
        ha2 = h(f"GET:{fields.get('uri', '')}")
        want = h(
            f"{ha1}:{fields['nonce']}:{fields.get('nc', '')}:{fields.get('cnonce', '')}:"
            f"{fields.get('qop', '')}:{ha2}"
        )
        return hmac.compare_digest(want, fields.get("response", ""))

    def _stream(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        interval = 1.0 / float(self.server.config["fps"])
        due = time.monotonic()
        try:
            while True:
                jpeg = self.server.picture()
                head = f"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n"
                self.wfile.write(head.encode() + jpeg + b"\r\n")
                self.wfile.flush()
                due += interval
                # Wait for the next picture watching the socket: a client that closes is seen
                # at once, not at the next write.
                readable, _, _ = select.select(
                    [self.connection], [], [], max(0, due - time.monotonic())
                )
                if readable and not self.connection.recv(4096):
                    return
        except OSError:
            return


def main(argv: list[str]) -> int:
    """Serve until killed (or stdin closes: the parent went away)."""
    config = json.loads(Path(argv[1]).read_text(encoding="utf-8"))
    server = _Server(config)
    print(f"port {server.server_address[1]}", flush=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    sys.stdin.read()  # returns when the parent closes our stdin (or dies)
    server.shutdown()
    return 0


if __name__ == "__main__":
    socket.setdefaulttimeout(30)
    sys.exit(main(sys.argv))
