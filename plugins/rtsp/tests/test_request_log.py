"""The test server's request log: the server's own view of what each client asked for."""

from __future__ import annotations

import time

import av
import pytest
from camgate_rtsp.testing.server import RequestEvent, RtspTestServer


def test_event_lines_parse_and_other_lines_do_not() -> None:
    event = RequestEvent.from_line("EVENT 12.5 3 play /cam1 npt=0.000-\n", run=2)
    assert event == RequestEvent(12.5, "2.3", "play", "/cam1", "npt=0.000-")
    assert event.media
    assert RequestEvent.from_line("EVENT 1.0 1 closed -", run=1) == RequestEvent(
        1.0, "1.1", "closed"
    )
    assert RequestEvent.from_line("READY 8554", run=1) is None
    assert RequestEvent.from_line("EVENT soon 1 play /x", run=1) is None


@pytest.mark.rtsp
def test_the_server_logs_each_request_and_the_close(rtsp_server: RtspTestServer) -> None:
    before = time.monotonic()
    known = {e.client for e in rtsp_server.requests()}
    container = av.open(rtsp_server.url("/cam2"), options={"rtsp_transport": "tcp"})
    try:
        next(iter(container.demux(container.streams.video[0])))
    finally:
        container.close()

    def closed(events: list[RequestEvent]) -> bool:
        return any(e.kind == "closed" and e.client not in known for e in events)

    assert rtsp_server.wait_requests(closed, timeout=5)
    mine = [e for e in rtsp_server.requests() if e.client not in known]
    kinds = [e.kind for e in mine]
    assert kinds[0] == "connect" and kinds[-1] == "closed"
    assert {"describe", "setup", "play"} <= set(kinds)
    assert all(e.path is not None and e.path.startswith("/cam2") for e in mine if e.media)
    # The server's clock is this machine's CLOCK_MONOTONIC: its times fall inside ours.
    assert all(before <= e.at <= time.monotonic() for e in mine)
    assert not {e.client for e in mine} & rtsp_server.open_clients()
