"""Server-sent events: what a console or portal must see at once, read from the audit log.

``GET /events`` (``text/event-stream``) sends one event per audit record of the kinds in
:data:`EVENT_KINDS`, named by :data:`EVENT_KINDS` and with the record's seq as its ``id``. The
feed is derived from durable state only: each stream reads the records after its cursor from
the audit log (the store's file, or the PostgreSQL log every process shares), so an event
raised by another process — the CLI, an edge, a second server — reaches every stream exactly
as one raised here, and ``Last-Event-ID`` resumes after the last event a client saw without
losing one. Nothing is kept in memory but each stream's cursor and one shared, briefly cached
"highest seq" (:class:`EventFeed`), so N idle streams cost one cheap query per poll interval.

Who sees what: an owner only the records about their own cameras and consent (the audit log's
per-owner index: the very records of their slice); every staff role the agency's whole feed.
A stream re-checks its caller every heartbeat: a logged-out session, an expired or revoked
token ends it.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import anyio
import anyio.to_thread
from camgate import Gate
from camgate.audit.base import Row
from fastapi.responses import StreamingResponse

from camgate_server.accounts import Caller
from camgate_server.errors import Forbidden
from camgate_server.policy import Role
from camgate_server.settings import ServerSettings

__all__ = ["EVENT_KINDS", "EventFeed", "event_of", "event_stream"]

#: audit record kind → the event's name. A grant issued after an owner's yes is how an
#: officer's console learns the grant of a request it was told to wait for (202).
EVENT_KINDS: dict[str, str] = {
    "request.held": "request.waiting",
    "decision": "decision",
    "grant.issued": "grant.issued",
    "access.start": "access.started",
    "access.end": "access.ended",
    "consent.revoked": "revocation",
}

#: Records read per query while a stream catches up (a resume from far back is paged).
_PAGE = 500


#: event data key → where in the audit record's body it is (a path of keys), per record kind.
#: Only what a console must show: no signature, witness or consent internals.
_FIELDS: dict[str, dict[str, tuple[str, ...]]] = {
    "request.held": {
        "request": ("request", "id"),
        "camera": ("request", "camera_id"),
        "owner": ("pending", "owner_id"),
        "incident": ("request", "incident_id"),
        "scope": ("request", "scope"),
        "purpose": ("request", "purpose"),
        "duration_s": ("request", "duration_s"),
        "requested_by": ("request", "requested_by"),
        "deadline": ("deadline",),
    },
    "decision": {
        "request": ("decision", "request"),
        "camera": ("decision", "camera"),
        "allowed": ("decision", "allowed"),
        "decided_at": ("decision", "decided_at"),
        "votes": ("decision", "votes"),
        "held": ("held",),
        "closes": ("closes",),
    },
    "grant.issued": {
        k: (k,)
        for k in (
            "id",
            "request_id",
            "camera_id",
            "incident_id",
            "scope",
            "audio",
            "issued_at",
            "expires_at",
        )
    },
    "access.start": {
        "grant": ("grant", "id"),
        "camera": ("camera",),
        "scope": ("grant", "scope"),
        "incident": ("grant", "incident_id"),
        "start": ("start",),
    },
    "access.end": {k: (k,) for k in ("grant", "camera", "reason", "packets", "bytes", "error")},
    "consent.revoked": {"owner": ("owner",), "cameras": ("cameras",)},
}


def _at(body: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        body = body.get(key) if isinstance(body, dict) else None
    return body


def event_of(kind: str, body: dict[str, Any]) -> dict[str, Any]:
    """The data of the event for one audit record of ``kind`` (a key of :data:`EVENT_KINDS`):
    a request awaiting the owner carries who asks, for which camera, incident, scope and
    purpose, and the deadline; a decision its every vote and reason; an access its grant,
    camera and (at its end) why it ended and what was handed over; a revocation the owner and
    cameras. A field the record lacks is null. ValueError for a kind that makes no event."""
    fields = _FIELDS.get(kind)
    if fields is None:
        raise ValueError(f"no event for audit records of kind {kind!r}")
    data = {key: _at(body, path) for key, path in fields.items()}
    if kind == "decision":
        data["held"] = bool(data["held"])
    return data


class EventFeed:
    """The audit log read as events, shared by every stream of one app.

    :meth:`head` answers the log's highest seq, fetched at most once per ``poll_s`` whoever
    asks; :meth:`read` the events after a cursor for one caller; :meth:`close` (thread-safe,
    from a signal handler too) ends every stream at its next tick.
    """

    def __init__(self, gate: Gate, settings: ServerSettings) -> None:
        self._gate = gate
        self.poll_s = settings.events_poll_s
        self.heartbeat_s = settings.events_heartbeat_s
        self._closed = threading.Event()
        self._lock = anyio.Lock()
        self._head = 0
        self._fetched = -float("inf")

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._closed.is_set()

    def close(self) -> None:
        """End every stream at its next tick (the server is shutting down)."""
        self._closed.set()

    async def head(self) -> int:
        """The audit log's highest seq, at most ``poll_s`` old."""
        async with self._lock:
            if time.monotonic() - self._fetched >= self.poll_s:
                self._head = await anyio.to_thread.run_sync(self._gate.audit.last_seq)
                self._fetched = time.monotonic()
            return self._head

    def read(self, owner: str | None, after: int, until: int) -> list[tuple[int, str, str]]:
        """``(seq, event name, data JSON)`` of the events in ``(after, until]``: an owner's
        (``owner``) from their records only, else the whole log's."""
        backend = self._gate.audit.backend
        rows: list[Row] = (
            backend.owner_rows(owner, after, until)
            if owner is not None
            else list(backend.rows(after, until))
        )
        found = []
        for seq, at, kind, body, *_ in rows:
            name = EVENT_KINDS.get(kind)
            if name is None:
                continue
            data = event_of(kind, json.loads(body)) | {"at": at}
            found.append((seq, name, json.dumps(data, separators=(",", ":"), sort_keys=True)))
        return found


def _frame(seq: int, name: str, data: str) -> str:
    # json.dumps escapes newlines, so data is one line: one `data:` field per event.
    return f"id: {seq}\nevent: {name}\ndata: {data}\n\n"


async def _stream(
    feed: EventFeed,
    caller: Caller,
    cursor: int,
    still_allowed: Callable[[], Awaitable[bool]],
) -> AsyncIterator[str]:
    owner = caller.account.owner_id if caller.account.role is Role.OWNER else None
    yield f"retry: {int(feed.poll_s * 1000) + 1000}\n: camgate events after {cursor}\n\n"
    quiet_since = checked_at = time.monotonic()
    while not feed.closed:
        # The caller is checked again every heartbeat interval, busy stream or quiet.
        if time.monotonic() - checked_at >= feed.heartbeat_s:
            if not await still_allowed():
                return
            checked_at = time.monotonic()
        head = await feed.head()
        if head > cursor:
            until = min(head, cursor + _PAGE) if owner is None else head
            for seq, name, data in await anyio.to_thread.run_sync(feed.read, owner, cursor, until):
                yield _frame(seq, name, data)
            cursor = until
            quiet_since = time.monotonic()
            continue
        if time.monotonic() - quiet_since >= feed.heartbeat_s:
            yield ": heartbeat\n\n"
            quiet_since = time.monotonic()
        await anyio.sleep(feed.poll_s)


def event_stream(
    feed: EventFeed, caller: Caller, cursor: int, still_allowed: Callable[[], Awaitable[bool]]
) -> StreamingResponse:
    """The ``text/event-stream`` response for ``caller`` from after seq ``cursor``.
    ``still_allowed`` is asked every heartbeat interval, busy or quiet, whether the caller may
    still read events (False ends the stream). An owner's account without its owner is
    refused (Forbidden), never given the agency's whole feed."""
    if caller.account.role is Role.OWNER and caller.account.owner_id is None:
        raise Forbidden("this owner account names no owner")
    return StreamingResponse(
        _stream(feed, caller, cursor, still_allowed),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
