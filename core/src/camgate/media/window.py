"""Clips cut to a grant's window, on the packets' capture (wall-clock) times.

The cut is at keyframes on the safe side, without re-encoding: the clip starts at the first
keyframe captured at or after the window's start (the picture before it needs an earlier
keyframe, which lies outside) and ends before the first packet whose picture would end after
the window's end. Everything in the clip was captured inside the window; up to one GOP at the
start of the window may be missing. See docs/media.md, Clip windows.
"""

from __future__ import annotations

import enum
from datetime import datetime, timedelta

from camgate.errors import CameraProtocolError, ValidationError
from camgate.models import MediaPacket

__all__ = ["Cut", "WindowCut"]


class Cut(enum.Enum):
    """What to do with a packet: keep it, skip it, or stop (the window is over)."""

    KEEP = "keep"
    SKIP = "skip"
    STOP = "stop"


class WindowCut:
    """Decide packet by packet what of a stream falls inside ``[start, end)``.

    Video packets need a ``wallclock`` (CameraProtocolError otherwise: a window cannot be cut
    on times nobody knows). Audio is kept only between the first kept keyframe and the end
    (audio without a ``wallclock`` too: the writer places it after the sound before it).
    ``first``/``last`` are the capture times of the first kept picture and of the end of the
    last one.
    """

    def __init__(self, start: datetime, end: datetime) -> None:
        if start.tzinfo is None or end.tzinfo is None or not start < end:
            raise ValidationError("a clip window needs aware start < end")
        self.start = start
        self.end = end
        self.first: datetime | None = None
        self.last: datetime | None = None
        self._done = False

    def __call__(self, packet: MediaPacket) -> Cut:
        """Classify ``packet`` (once STOP was returned, every later packet is STOP)."""
        if self._done:
            return Cut.STOP
        at = packet.wallclock
        if at is None:
            if packet.stream.kind != "video":
                # An AAC frame packed behind another one has no time of its own: it follows
                # the sound before it, inside the window while the pictures are.
                return Cut.KEEP if self.first is not None else Cut.SKIP
            raise CameraProtocolError(
                "the camera's packets carry no capture time: a clip cannot be cut to the window"
            )
        ticks = packet.duration or 0
        span = timedelta(seconds=float(ticks * packet.stream.time_base))
        if at + span > self.end:
            if packet.stream.kind != "video":
                return Cut.SKIP
            self._done = True
            return Cut.STOP
        if at < self.start:
            return Cut.SKIP
        if packet.stream.kind != "video":
            return Cut.KEEP if self.first is not None else Cut.SKIP
        if self.first is None:
            if not packet.is_keyframe:
                return Cut.SKIP
            self.first = at
        self.last = max(self.last or at, at + span)
        return Cut.KEEP
