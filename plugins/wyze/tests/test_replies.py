"""Properties of the parsers of Wyze's replies (Hypothesis, bounded): whatever the bytes, a
parser returns typed values or raises a camgate AdapterError, and well-formed replies read
back what was in them."""

from __future__ import annotations

import base64
import contextlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from camgate.errors import AdapterError, CameraAuthError, CameraProtocolError
from camgate_wyze.kvs import check_signaling_url, offer_message, parse_ice_servers, parse_message
from camgate_wyze.replies import (
    TokenExpired,
    envelope_data,
    parse_devices,
    parse_events,
    parse_login,
    parse_reset_by,
)
from hypothesis import given, settings
from hypothesis import strategies as st

W = "https://api.example/app"
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=20,
)
# Replies shaped like Wyze's, with any values in their fields.
SHAPED = st.fixed_dictionaries(
    {},
    optional={
        "code": JSON | st.sampled_from(["1", "2001", "2002", "1001"]),
        "msg": JSON,
        "data": JSON
        | st.fixed_dictionaries(
            {},
            optional={
                "device_list": st.lists(
                    st.fixed_dictionaries(
                        {},
                        optional={
                            "mac": JSON,
                            "product_type": st.sampled_from(["Camera", "Plug"]) | JSON,
                            "conn_state": JSON,
                            "product_model": JSON,
                        },
                    )
                    | JSON,
                    max_size=3,
                )
                | JSON,
                "event_list": st.lists(
                    st.fixed_dictionaries(
                        {},
                        optional={
                            "event_ts": JSON | st.integers(-1, 5_000_000_000_000),
                            "file_list": st.lists(
                                st.fixed_dictionaries({}, optional={"type": JSON, "url": JSON}),
                                max_size=3,
                            )
                            | JSON,
                        },
                    )
                    | JSON,
                    max_size=3,
                )
                | JSON,
            },
        ),
        "access_token": JSON,
        "refresh_token": JSON,
        "mfa_options": JSON,
        "mfa_details": JSON,
        "errorCode": JSON,
    },
)
BODIES = st.binary(max_size=300) | SHAPED.map(lambda v: json.dumps(v).encode())


def _every_parser(body: bytes) -> None:
    for parse in (envelope_data, parse_login):
        with contextlib.suppress(AdapterError):
            parse(body, W)
    try:
        data = envelope_data(body, W)
    except AdapterError:
        return
    for read in (parse_devices, parse_events):
        with contextlib.suppress(CameraProtocolError):
            read(data, W)


@settings(max_examples=300, deadline=None)
@given(BODIES)
def test_any_reply_is_values_or_an_adapter_error(body: bytes) -> None:
    _every_parser(body)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=120))
def test_reset_by_never_raises(text: str) -> None:
    at = parse_reset_by(text)
    assert at is None or at.tzinfo is not None


@settings(max_examples=100, deadline=None)
@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 1, 1)))
def test_reset_by_reads_javascript_date_text(at: datetime) -> None:
    at = at.replace(microsecond=0, tzinfo=UTC)
    text = at.strftime("%a %b %d %Y %H:%M:%S GMT+0000 (Coordinated Universal Time)")
    assert parse_reset_by(text) == at
    assert parse_reset_by(at.isoformat()) == at


EVENT = st.fixed_dictionaries(
    {
        "event_id": st.text(min_size=1, max_size=8),
        "device_mac": st.text(max_size=12),
        "event_ts": st.integers(0, 4_000_000_000_000),
        "file_list": st.lists(
            st.fixed_dictionaries(
                {"type": st.sampled_from([1, 2]), "url": st.text(min_size=1, max_size=30)}
            ),
            max_size=3,
        ),
    }
)


@settings(max_examples=150, deadline=None)
@given(st.lists(EVENT, max_size=20))
def test_events_read_back(events: list[dict[str, Any]]) -> None:
    body = json.dumps({"code": "1", "msg": "", "data": {"event_list": events}}).encode()
    parsed = parse_events(envelope_data(body, W), W)
    assert [e.event_id for e in parsed] == [e["event_id"] for e in events]
    for got, sent in zip(parsed, events, strict=True):
        assert got.at == datetime.fromtimestamp(0, UTC) + timedelta(milliseconds=sent["event_ts"])
        assert got.videos == tuple(f["url"] for f in sent["file_list"] if f["type"] == 2)
        assert got.images == tuple(f["url"] for f in sent["file_list"] if f["type"] == 1)


def test_envelope_codes() -> None:
    with pytest.raises(TokenExpired):
        envelope_data(b'{"code": "2001", "msg": "AccessTokenError"}', W)
    with pytest.raises(CameraAuthError, match="camgate wyze link"):
        envelope_data(b'{"code": "2002", "msg": "RefreshTokenError"}', W)
    token = "tok_" + "a" * 40
    with pytest.raises(AdapterError) as info:
        envelope_data(json.dumps({"code": "1001", "msg": f"bad {token}"}).encode(), W)
    assert token not in str(info.value)
    assert envelope_data(b'{"code": "1", "data": null}', W) == {}


def test_login_reply_shows_no_token() -> None:
    reply = parse_login(b'{"access_token": "A-secret", "refresh_token": "R-secret"}', W)
    assert "secret" not in repr(reply) and not reply.needs_factor
    factor = parse_login(
        b'{"mfa_options": ["TotpVerificationCode"], '
        b'"mfa_details": {"totp_apps": [{"app_id": "app-7"}]}}',
        W,
    )
    assert factor.needs_factor and factor.totp_app_id == "app-7"
    with pytest.raises(CameraAuthError, match="UserNamePasswordError"):
        parse_login(b'{"errorCode": 1000, "description": "UserNamePasswordError"}', W)


# ------------------------------------------------------------------ KVS signalling

KVS_PAYLOAD = st.one_of(
    st.text(max_size=40),
    JSON.map(lambda v: base64.b64encode(json.dumps(v).encode()).decode()),
    st.fixed_dictionaries(
        {},
        optional={
            "sdp": JSON,
            "candidate": JSON,
            "sdpMid": JSON,
            "sdpMLineIndex": JSON,
        },
    ).map(lambda v: base64.b64encode(json.dumps(v).encode()).decode()),
)
KVS = st.fixed_dictionaries(
    {},
    optional={
        "messageType": st.sampled_from(["SDP_ANSWER", "ICE_CANDIDATE", "STATUS_RESPONSE", "X"])
        | JSON,
        "messagePayload": KVS_PAYLOAD | JSON,
        "statusResponse": st.fixed_dictionaries(
            {}, optional={"statusCode": JSON, "description": JSON}
        )
        | JSON,
    },
)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200) | KVS.map(lambda v: json.dumps(v).encode()))
def test_any_signalling_message_is_a_message_or_a_protocol_error(body: bytes) -> None:
    try:
        message = parse_message(body)
    except CameraProtocolError:
        return
    assert isinstance(message.kind, str) and len(message.kind) <= 40
    assert len(message.description) <= 80


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=300), st.text(max_size=20), st.integers(0, 5))
def test_signalling_messages_read_back(sdp: str, candidate: str, index: int) -> None:
    def wrap(kind: str, payload: dict[str, Any]) -> str:
        encoded = base64.b64encode(json.dumps(payload).encode()).decode()
        return json.dumps({"messageType": kind, "messagePayload": encoded})

    if sdp:
        assert parse_message(wrap("SDP_ANSWER", {"type": "answer", "sdp": sdp})).sdp == sdp
    ice = parse_message(
        wrap("ICE_CANDIDATE", {"candidate": candidate, "sdpMid": "0", "sdpMLineIndex": index})
    )
    assert (ice.candidate, ice.sdp_mid, ice.sdp_mline_index) == (candidate, "0", index)
    sent = json.loads(offer_message(sdp))
    assert sent["action"] == "SDP_OFFER"
    assert json.loads(base64.b64decode(sent["messagePayload"]))["sdp"] == sdp


@settings(max_examples=150, deadline=None)
@given(JSON)
def test_ice_servers_are_servers_or_a_protocol_error(value: Any) -> None:
    with contextlib.suppress(CameraProtocolError):
        for server in parse_ice_servers(value):
            assert all(isinstance(u, str) for u in server.urls)


def test_signalling_url_must_be_wss_on_an_allowed_host() -> None:
    hosts = (".amazonaws.com", "127.0.0.1")
    good = "wss://v-1a2b.kinesisvideo.us-west-2.amazonaws.com/?X-Amz-Signature=abc"
    assert check_signaling_url(good, hosts) == good
    assert check_signaling_url("ws://127.0.0.1:9/x", hosts)
    for bad in (
        "ws://v.kinesisvideo.us-west-2.amazonaws.com/?X-Amz-Signature=abc",  # not TLS
        "wss://evil.example/?X-Amz-Signature=abc",
        "wss://amazonaws.com.evil.example/",
        None,
    ):
        with pytest.raises(CameraProtocolError) as info:
            check_signaling_url(bad, hosts)
        assert "Signature" not in str(info.value)
