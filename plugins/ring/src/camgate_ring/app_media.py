"""Stored media through the Ring app's API: event history, recordings and snapshots.

What it promises (each parser of Ring's replies is fuzzed):

- **History.** :func:`app_history` lists a device's recorded events from ``GET
  /clients_api/doorbots/{id}/history?limit=N`` (newest first), paging by ``older_than=<the
  oldest id seen>`` until a page is short or empty, an event is older than ``since``, or
  ``max_pages`` pages were read. :func:`parse_app_history` turns one page into
  :class:`AppEvent` values (CameraProtocolError naming what is wrong, never quoting a value).
- **Recordings.** :func:`recording` asks ``GET /clients_api/dings/{id}/share/play?
  disable_redirect=true`` for the recording's signed URL and downloads it only when
  :func:`check_media_url` accepts it: https on a host of the allow-list (or the API's own
  origin, as the simulator serves), no user info. The download carries no token (the URL is
  signed), follows no redirect (a 3xx is a CameraProtocolError) and stops at ``max_bytes``.
  No message holds the signed URL's query.
- **Snapshots.** :func:`app_snapshot` asks ``GET <snapshot_url>/next/{id}?after-ms=…&extras=
  force`` (bearer, ``hardware_id``) and returns the JPEG with its capture time
  (``x-time-millis``). Battery cameras answer with whatever image they last took, however old:
  the caller compares the capture time with the request and refuses a stale one.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

import attrs
import httpx
from camgate.errors import CameraProtocolError, CameraUnreachable
from camgate.models import redact_address

from camgate_ring.history import HistoryEvent
from camgate_ring.partner import MAX_BODY, MAX_CLIP_BODY, same_origin

if TYPE_CHECKING:
    from camgate_ring.app import AppClient

__all__ = [
    "DEFAULT_MEDIA_HOSTS",
    "AppEvent",
    "app_history",
    "app_snapshot",
    "check_media_url",
    "parse_app_history",
    "recording",
]

#: The hosts (and their sub-domains) a recording's signed URL may point to by default.
DEFAULT_MEDIA_HOSTS = ("ring.com", "s3.amazonaws.com")
#: The most events one history page may hold.
MAX_APP_EVENTS = 1000
_EVENT_KINDS = frozenset({"ding", "motion", "on_demand", "on_demand_link", "alarm"})


@attrs.frozen
class AppEvent:
    """One event of the app's history: Ring's ``id`` (its ding id, as text), ``kind``
    (``ding``, ``motion``, ``on_demand``…), when it began, ``end`` (``start`` plus Ring's
    ``duration``; None when Ring gives none) and ``recorded`` (its recording is ready)."""

    id: str
    kind: str
    start: datetime
    end: datetime | None
    recorded: bool

    def history(self, device_id: str) -> HistoryEvent:
        """The event as the adapter's :class:`~camgate_ring.history.HistoryEvent`."""
        return HistoryEvent(self.id, self.kind, None, device_id, self.start, self.end)


def _bad(what: str) -> CameraProtocolError:
    return CameraProtocolError(f"Ring app history: {what}")


def _ding_id(value: Any) -> str:
    if isinstance(value, bool):
        raise _bad("an event id is not a number")
    if isinstance(value, int) and 0 <= value < 10**20:
        return str(value)
    if isinstance(value, str) and 0 < len(value) <= 20 and value.isascii() and value.isdigit():
        return value
    raise _bad("an event id is not a number")


def _created_at(value: Any) -> datetime:
    if not isinstance(value, str) or len(value) > 40:
        raise _bad("an event's created_at is not a time")
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise _bad("an event's created_at is not a time") from None
    if moment.tzinfo is None or not 2000 <= moment.year <= 2100:
        raise _bad("an event's created_at is not a UTC time")
    return moment.astimezone(UTC)


def _event(item: Any) -> AppEvent:
    if not isinstance(item, Mapping):
        raise _bad("an event is not an object")
    kind = item.get("kind")
    if not isinstance(kind, str) or kind not in _EVENT_KINDS:
        raise _bad("an event's kind is not one Ring sends")
    start = _created_at(item.get("created_at"))
    duration = item.get("duration")
    end = None
    if duration is not None:
        if isinstance(duration, bool) or not isinstance(duration, int | float):
            raise _bad("an event's duration is not a number")
        if not math.isfinite(duration) or not 0 <= duration <= 86_400:
            raise _bad("an event's duration is out of range")
        end = start + timedelta(seconds=duration)
    recording = item.get("recording") or {}
    if not isinstance(recording, Mapping):
        raise _bad("an event's recording is not an object")
    return AppEvent(_ding_id(item.get("id")), kind, start, end, recording.get("status") == "ready")


def parse_app_history(document: Any) -> list[AppEvent]:
    """The events of one history page (a JSON list); CameraProtocolError when it is not what
    Ring sends or holds more than :data:`MAX_APP_EVENTS` events."""
    if not isinstance(document, list):
        raise _bad("the page is not a list")
    if len(document) > MAX_APP_EVENTS:
        raise _bad(f"more than {MAX_APP_EVENTS} events in a page")
    return [_event(item) for item in document]


async def app_history(
    client: AppClient,
    device_id: str,
    *,
    since: datetime | None = None,
    page_size: int = 50,
    max_pages: int = 20,
) -> list[AppEvent]:
    """The device's events, newest first, paged by ``older_than`` (module docstring); with
    ``since``, paging stops once an event began before it (the older ones are not asked for)."""
    await client.session()
    device = quote(device_id, safe="")
    events: list[AppEvent] = []
    older = ""
    for _page in range(max_pages):
        path = f"/clients_api/doorbots/{device}/history?limit={page_size}{older}"
        page = parse_app_history(await client.get_json(path))
        events += page
        if len(page) < page_size or (since is not None and page[-1].start < since):
            break
        older = f"&older_than={page[-1].id}"
    return events


def check_media_url(url: Any, api_base: str, hosts: tuple[str, ...]) -> str:
    """``url`` when a recording may be downloaded from it: https on one of ``hosts`` (or a
    sub-domain), or the API's own origin; CameraProtocolError (showing the host only)
    otherwise."""
    if not isinstance(url, str) or not 0 < len(url) <= 8192 or not url.isascii():
        raise CameraProtocolError("Ring's recording reply carries no URL")
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        _ = parts.port
    except ValueError:
        raise CameraProtocolError("Ring's recording URL is not a URL") from None
    if parts.username is not None or parts.password is not None:
        raise CameraProtocolError("Ring's recording URL carries user info: not followed")
    if same_origin(url, api_base):
        return url
    allowed = any(host == h or host.endswith("." + h) for h in hosts)
    if parts.scheme != "https" or not allowed:
        shown = f"{parts.scheme}://{host or '***'}" if host.isprintable() else "***"
        raise CameraProtocolError(
            f"Ring's recording URL points to {shown}, not an allowed media host: not followed"
        )
    return url


async def recording(
    client: AppClient,
    ding_id: str,
    *,
    hosts: tuple[str, ...] = DEFAULT_MEDIA_HOSTS,
    max_bytes: int = MAX_CLIP_BODY,
) -> bytes:
    """The MP4 of event ``ding_id`` (module docstring): its signed URL from ``share/play``,
    checked by :func:`check_media_url`, downloaded without a token or a redirect, at most
    ``max_bytes`` long (CameraProtocolError beyond)."""
    ding = quote(ding_id, safe="")
    reply = await client.get_json(f"/clients_api/dings/{ding}/share/play?disable_redirect=true")
    url = check_media_url(
        reply.get("url") if isinstance(reply, Mapping) else None, client.api_base, hosts
    )
    where = redact_address(url)
    chunks: list[bytes] = []
    size = 0
    try:
        async with client.http.stream("GET", url) as response:
            if 300 <= response.status_code < 400:
                raise CameraProtocolError(f"{where}: the recording redirects; not followed")
            if response.status_code in (403, 404, 410):
                raise CameraUnreachable(
                    f"{where}: Ring's recording is gone or its link expired "
                    f"({response.status_code})"
                )
            if response.status_code != 200:
                raise CameraProtocolError(f"{where}: answered {response.status_code}")
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > max_bytes:
                    raise CameraProtocolError(
                        f"{where}: Ring's recording is larger than {max_bytes} bytes"
                    )
                chunks.append(chunk)
    except httpx.HTTPError as exc:
        raise CameraUnreachable(f"{where}: download failed ({type(exc).__name__})") from None
    return b"".join(chunks)


def capture_time(raw: str) -> int:
    """The ``x-time-millis`` header's epoch milliseconds; CameraProtocolError when absent or
    not a number of milliseconds between 2000 and 2100."""
    value = raw.strip()
    if not value.isascii() or not value.isdigit() or len(value) > 15:
        raise CameraProtocolError("Ring's snapshot carries no capture time")
    millis = int(value)
    if not 946_684_800_000 <= millis <= 4_102_444_800_000:
        raise CameraProtocolError("Ring's snapshot's capture time is out of range")
    return millis


async def app_snapshot(
    client: AppClient, snapshot_url: str, device_id: str, after_ms: int
) -> tuple[bytes, int]:
    """The device's next image after ``after_ms`` as Ring serves it (possibly older: the caller
    checks) and its capture time in epoch ms. A 401 refreshes the token and retries once;
    other refusals as the app client maps them."""
    url = f"{snapshot_url}/next/{quote(device_id, safe='')}?after-ms={after_ms}&extras=force"
    where = redact_address(url)
    for attempt in range(2):
        used, auth = await client.authorised()
        headers = {**client._headers(), "Accept": "image/jpeg", **auth}
        try:
            response = await client.http.get(url, headers=headers)
        except httpx.HTTPError as exc:
            raise CameraUnreachable(f"{where}: no snapshot ({type(exc).__name__})") from None
        if response.status_code == 401 and not attempt:
            await client.refresh(stale=used)
            continue
        if response.status_code != 200:
            raise client._status_error(response, where)
        if len(response.content) > MAX_BODY:
            raise CameraProtocolError(f"{where}: Ring's image is larger than {MAX_BODY} bytes")
        return response.content, capture_time(response.headers.get("x-time-millis", ""))
    raise AssertionError("unreachable")  # pragma: no cover
