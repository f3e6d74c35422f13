"""Properties of the parsers of what Arlo's hosts send (Hypothesis, bounded): whatever the
bytes, a typed value or a CameraProtocolError (Arlo's own codes an AdapterError), never
another exception; server-sent events come out whole however the bytes are cut."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from camgate.errors import AdapterError, CameraAuthError, CameraProtocolError, CameraUnreachable
from camgate_arlo import wire
from camgate_arlo.client import ArloSession, allowed_url, expiry
from camgate_arlo.wire import Reply, SseDecoder
from hypothesis import given, settings
from hypothesis import strategies as st

BOUND = settings(max_examples=150, deadline=None)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=20,
)
keys = st.sampled_from(
    [
        "success",
        "meta",
        "data",
        "code",
        "error",
        "message",
        "token",
        "userId",
        "expiresIn",
        "authCompleted",
        "items",
        "factorId",
        "factorType",
        "deviceId",
        "parentId",
        "url",
        "accessToken",
        "browserAuthCode",
        "resource",
        "properties",
    ]
)
arlo_like = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=6),
    max_leaves=25,
)


@BOUND
@given(st.binary(max_size=300) | arlo_like.map(lambda v: json.dumps(v).encode()))
def test_any_reply_parses_or_is_a_protocol_error(content: bytes) -> None:
    try:
        reply = wire.parse_reply(content, "test")
    except CameraProtocolError:
        return
    assert isinstance(reply.ok, bool) and reply.message.isprintable()
    if not reply.ok:
        assert isinstance(wire.arlo_error(reply, "test"), AdapterError)


@BOUND
@given(arlo_like)
def test_any_data_parses_or_is_a_protocol_error(data: Any) -> None:
    for parse in (
        wire.parse_auth,
        wire.parse_factors,
        wire.parse_devices,
        wire.parse_stream_url,
        wire.parse_library,
    ):
        with contextlib.suppress(CameraProtocolError):
            parse(data, "test")
    if isinstance(data, dict):
        assert wire.parse_snapshot_event(data, "X") is None or data["resource"] == "cameras/X"


def test_the_envelopes_and_arlos_codes() -> None:
    ok = wire.parse_reply(b'{"meta": {"code": 200}, "data": {"a": 1}}', "t")
    assert ok == Reply(True, {"a": 1})
    untrusted = wire.parse_reply(
        b'{"meta": {"code": 400, "error": 9204, "message": "Browser is not trusted"}}', "t"
    )
    assert isinstance(wire.arlo_error(untrusted, "t"), CameraAuthError)
    offline = wire.parse_reply(
        b'{"success": false, "data": {"error": "2059", "message": "Device is offline."}}', "t"
    )
    assert offline.error == 2059
    assert isinstance(wire.arlo_error(offline, "t"), CameraUnreachable)
    bad = wire.parse_reply(b'{"meta": {"code": 400, "error": 9261}}', "t")
    assert "9261" in str(wire.arlo_error(bad, "t"))


@BOUND
@given(
    st.lists(st.dictionaries(st.text(max_size=8), st.text(max_size=12), max_size=3), max_size=5),
    st.lists(st.integers(min_value=1, max_value=40), max_size=30),
    st.sampled_from([b"\n", b"\r\n"]),
)
def test_events_come_out_whole_however_the_bytes_are_cut(
    events: list[dict[str, str]], cuts: list[int], newline: bytes
) -> None:
    stream = b""
    for event in events:
        stream += b": keep-alive" + newline + b"event: message" + newline
        stream += b"data: " + json.dumps(event).encode() + newline + newline
    decoder = SseDecoder("test")
    out: list[str] = []
    rest = stream
    for cut in cuts:
        out += decoder.feed(rest[:cut])
        rest = rest[cut:]
    out += decoder.feed(rest)
    assert [wire.parse_event(text) for text in out] == events


def test_an_endless_event_line_is_refused() -> None:
    decoder = SseDecoder("test")
    with pytest.raises(CameraProtocolError, match="too long"):
        for _ in range(300):
            decoder.feed(b"data: " + b"x" * 1024)


@BOUND
@given(st.text(max_size=80))
def test_any_url_is_allowed_only_on_a_listed_host(url: str) -> None:
    try:
        allowed_url(url, (".arlo.com", "127.0.0.1"), ("https", "http", "rtsp"), "media")
    except CameraProtocolError:
        return
    host = url.split("://", 1)[1].split("/", 1)[0].split("?", 1)[0].split(":", 1)[0]
    assert host.lower().rstrip(".").endswith(".arlo.com") or host.lower() in (
        "127.0.0.1",
        "arlo.com",
    )


@BOUND
@given(json_values)
def test_a_stored_session_parses_or_is_a_validation_error(value: Any) -> None:
    from camgate.errors import ValidationError

    try:
        session = ArloSession.from_json(value)
    except ValidationError:
        return
    assert ArloSession.from_json(session.to_json()) == session


def test_expiry_reads_arlos_three_forms() -> None:
    assert expiry(3600, 1000.0) == 4600.0
    assert expiry(1_800_000_000, 0.0) == 1_800_000_000
    assert expiry(1_800_000_000_000, 0.0) == 1_800_000_000
