"""A sans-IO reader of ``multipart/x-mixed-replace`` bodies (an MJPEG stream): bytes in as
they arrive, whole parts out. Untrusted input: every part and every header block is bounded,
and anything it cannot read is a CameraProtocolError (never another exception)."""

from __future__ import annotations

import re

from camgate.errors import CameraProtocolError

__all__ = ["MultipartReader"]

#: The longest header block of one part.
MAX_HEADER_BYTES = 4096
_LENGTH = re.compile(rb"(?im)^content-length:[ \t]*(\d{1,12})[ \t]*$")


class MultipartReader:
    """Feed it a body's chunks; it returns each complete part's payload, in order.

    A part is ``--BOUNDARY CRLF headers CRLF CRLF payload``; with a ``Content-Length`` header
    the payload is that long, without one it runs to the next ``CRLF--BOUNDARY``. A payload
    longer than ``limit`` bytes, a header block longer than :data:`MAX_HEADER_BYTES`, or bytes
    where a boundary must be raise CameraProtocolError; nothing more than ``limit`` plus the
    header block and one chunk is ever held.
    """

    def __init__(self, boundary: str, limit: int) -> None:
        if not boundary or len(boundary) > 70:
            raise CameraProtocolError("the stream's multipart boundary is empty or too long")
        self._delimiter = b"--" + boundary.encode("latin-1", "replace")
        self._limit = limit
        self._buffer = b""
        self._length: int | None = None
        self._in_payload = False

    def feed(self, data: bytes) -> list[bytes]:
        """Add ``data``; return the payloads completed by it."""
        self._buffer += data
        parts: list[bytes] = []
        while True:
            if not self._in_payload:
                if not self._header():
                    return parts
                continue
            payload = self._payload()
            if payload is None:
                return parts
            parts.append(payload)

    def _header(self) -> bool:
        """Read one part's header block; False when more bytes are needed."""
        buffer = self._buffer.lstrip(b"\r\n")
        if len(buffer) < len(self._delimiter):
            if not self._delimiter.startswith(buffer):
                raise CameraProtocolError("the MJPEG stream has no boundary where one must be")
            self._buffer = buffer
            return False
        if not buffer.startswith(self._delimiter):
            raise CameraProtocolError("the MJPEG stream has no boundary where one must be")
        end = buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(buffer) > MAX_HEADER_BYTES:
                raise CameraProtocolError("a part's headers in the MJPEG stream are too long")
            self._buffer = buffer
            return False
        if end > MAX_HEADER_BYTES:
            raise CameraProtocolError("a part's headers in the MJPEG stream are too long")
        found = _LENGTH.search(buffer[len(self._delimiter) : end])
        self._length = int(found.group(1)) if found else None
        if self._length is not None and self._length > self._limit:
            raise CameraProtocolError(
                f"a picture of {self._length} bytes is over the limit of {self._limit}"
            )
        self._buffer = buffer[end + 4 :]
        self._in_payload = True
        return True

    def _payload(self) -> bytes | None:
        if self._length is not None:
            if len(self._buffer) < self._length:
                return None
            size = self._length
            rest = self._buffer[size:]
        else:
            size = self._buffer.find(b"\r\n" + self._delimiter)
            if size < 0:
                if len(self._buffer) > self._limit:
                    raise CameraProtocolError(
                        f"a picture in the MJPEG stream is over the limit of {self._limit} bytes"
                    )
                return None
            rest = self._buffer[size:]
        if size > self._limit:
            raise CameraProtocolError(
                f"a picture in the MJPEG stream is over the limit of {self._limit} bytes"
            )
        payload = self._buffer[:size]
        self._buffer = rest
        self._in_payload = False
        return payload
