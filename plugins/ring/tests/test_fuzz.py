"""Properties of the parsers of untrusted input: the JSON:API device list, the webhooks, the
token endpoint's replies, the linking redirect's query, recorded clips and the app backend's
device list and 2FA answers."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
from camgate.adapters import Secret
from camgate.errors import CameraAuthError, CameraProtocolError, ValidationError
from camgate_ring import Tokens, WebhookRejected, WebhookVerifier, parse_devices
from camgate_ring.app import ASSET_ERRORS, asset_error, parse_app_devices, two_factor
from camgate_ring.app_media import capture_time, check_media_url, parse_app_history
from camgate_ring.history import parse_history_page
from camgate_ring.link import _check_callback, authorization_request, parse_callback, pkce_challenge
from camgate_ring.partner import _token_reply
from camgate_ring.recorded import clip_packets
from camgate_ring.signalling import _close_reason, _message
from camgate_ring.webhooks import sign
from hypothesis import given, settings
from hypothesis import strategies as st

KEY = Secret("hmac-signing-key-for-tests")
NOW = datetime(2026, 2, 13, 13, 40, tzinfo=UTC)

#: The keys a device document uses, and one it does not.
KEYS = [
    "data",
    "included",
    "type",
    "id",
    "attributes",
    "name",
    "relationships",
    "status",
    "online",
    "battery_status",
]
KEYS += ["percentage", "x"]


def documents(keys: list[str], leaves: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """JSON documents of ``leaves`` in lists and objects keyed by ``keys``."""
    return st.recursive(
        leaves,
        lambda children: (
            st.lists(children, max_size=4)
            | st.dictionaries(st.sampled_from(keys), children, max_size=5)
        ),
        max_leaves=25,
    )


json_values = documents(
    KEYS,
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
)

ids = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=40)


def device_document(entries: list[tuple[str, str, bool, int]]) -> dict[str, Any]:
    data, included = [], []
    for device_id, name, online, battery in entries:
        data.append(
            {
                "type": "devices",
                "id": device_id,
                "attributes": {"name": name},
                "relationships": {"status": {"data": {"type": "device-status", "id": device_id}}},
            }
        )
        included.append(
            {
                "type": "device-status",
                "id": device_id,
                "attributes": {"online": online, "battery_status": {"percentage": battery}},
            }
        )
    return {"data": data, "included": included}


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_any_json_is_devices_or_a_protocol_error(document: Any) -> None:
    try:
        devices = parse_devices(document)
    except CameraProtocolError as exc:
        message = str(exc)
        assert message.startswith("Ring device list: ")
        return
    assert all(d.id and d.name for d in devices)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(ids, ids, st.booleans(), st.sampled_from([0, 50, 100, 255])),
        max_size=6,
        unique_by=lambda entry: entry[0],
    )
)
def test_a_well_formed_device_list_parses_to_what_it_says(
    entries: list[tuple[str, str, bool, int]],
) -> None:
    devices = parse_devices(device_document(entries))
    assert [(d.id, d.name, d.online) for d in devices] == [(e[0], e[1], e[2]) for e in entries]
    for device, entry in zip(devices, entries, strict=True):
        assert device.line_powered == (entry[3] == 255)
        assert device.battery_percentage == (None if entry[3] == 255 else entry[3])


def test_a_device_listed_twice_or_a_bad_percentage_is_refused() -> None:
    twice = device_document([("a", "A", True, 5), ("a", "B", True, 5)])
    with pytest.raises(CameraProtocolError, match="twice"):
        parse_devices(twice)
    with pytest.raises(CameraProtocolError, match="out of range"):
        parse_devices(device_document([("a", "A", True, 101)]))


def delivery(when: datetime, request_id: str | None = None) -> bytes:
    return json.dumps(
        {
            "meta": {
                "version": "1.1",
                "time": when.strftime("%Y-%m-%dT%H:%M:%S.%f") + "123Z",  # nanoseconds, as Ring
                "request_id": request_id or str(uuid.uuid4()),
                "account_id": "ava1.ring.account.X",
            },
            "data": {
                "id": "dev_human_1770989995231",
                "type": "motion_detected",
                "subType": "human",
                "attributes": {"source": "dev", "source_type": "devices", "timestamp": 1},
            },
        }
    ).encode()


def verifier() -> WebhookVerifier:
    return WebhookVerifier(KEY, max_age_s=300, clock=lambda: NOW)


def test_a_signed_fresh_delivery_is_an_event_once() -> None:
    check = verifier()
    body = delivery(NOW - timedelta(seconds=2))
    event = check.verify(body, sign(body, KEY))
    assert (event.type, event.device_id, event.sub_type) == ("motion_detected", "dev", "human")
    assert event.account_id == "ava1.ring.account.X"
    with pytest.raises(WebhookRejected, match="duplicate"):
        check.verify(body, sign(body, KEY))


def test_stale_tampered_and_unsigned_deliveries_are_rejected() -> None:
    check = verifier()
    stale = delivery(NOW - timedelta(minutes=10))
    with pytest.raises(WebhookRejected, match="freshness"):
        check.verify(stale, sign(stale, KEY))
    body = delivery(NOW)
    signature = sign(body, KEY)
    with pytest.raises(WebhookRejected, match="does not match"):
        check.verify(body.replace(b"human", b"other"), signature)
    with pytest.raises(WebhookRejected, match="does not match"):
        check.verify(body, sign(body, Secret("another key")))
    with pytest.raises(WebhookRejected, match="no sha256"):
        check.verify(body, None)
    # A rejected delivery is not remembered: the genuine one still passes.
    assert check.verify(body, signature).type == "motion_detected"


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.text(max_size=80), st.booleans())
def test_any_delivery_is_an_event_only_when_signed(body: bytes, header: str, signed: bool) -> None:
    given_header = sign(body, KEY) if signed else header
    try:
        event = verifier().verify(body, given_header)
    except WebhookRejected as exc:
        message = str(exc)
        assert message.startswith("Ring webhook: ")  # one of the fixed messages
        return
    assert given_header == sign(body, KEY)
    assert event.request_id


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_any_signed_json_is_an_event_or_rejected(document: Any) -> None:
    body = json.dumps(document).encode()
    try:
        verifier().verify(body, sign(body, KEY))
    except WebhookRejected as exc:
        message = str(exc)
        assert message.startswith("Ring webhook: ")


OLD = Tokens("old-access", "old-refresh", 0.0, "ava.v1:read")
scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12)
#: Replies shaped like a token endpoint's, with any values (or none) in its fields.
token_replies = st.fixed_dictionaries(
    {},
    optional={key: scalars for key in ("access_token", "refresh_token", "expires_in", "scope")},
)


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=200),
        json_values.map(lambda v: json.dumps(v).encode()),
        token_replies.map(lambda v: json.dumps(v).encode()),
    )
)
def test_any_token_reply_is_tokens_or_a_protocol_error(content: bytes) -> None:
    try:
        tokens = _token_reply(content, OLD, 1000.0, "token endpoint")
    except CameraProtocolError as exc:
        message = str(exc)
        assert message == "token endpoint: the token reply is not an OAuth token"
        return
    for token in (tokens.access_token.reveal(), tokens.refresh_token.reveal()):
        assert token and all(0x21 <= ord(ch) <= 0x7E for ch in token)  # fits a header
    assert tokens.expires_at > 1000.0


@settings(max_examples=100, deadline=None)
@given(
    st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=30),
    st.integers(1, 10**6),
    st.booleans(),
)
def test_a_token_reply_rotates_or_keeps_the_refresh_token(
    access: str, lifetime: int, rotated: bool
) -> None:
    reply: dict[str, Any] = {"access_token": access, "expires_in": lifetime}
    if rotated:
        reply["refresh_token"] = "new-refresh"
    tokens = _token_reply(json.dumps(reply).encode(), OLD, 1000.0, "t")
    assert tokens.access_token.reveal() == access
    assert tokens.refresh_token.reveal() == ("new-refresh" if rotated else "old-refresh")
    assert tokens.expires_at == 1000.0 + lifetime and tokens.scope == OLD.scope


def test_a_first_token_reply_without_a_refresh_token_is_refused() -> None:
    with pytest.raises(CameraProtocolError):
        _token_reply(json.dumps({"access_token": "a", "expires_in": 60}).encode(), None, 0.0, "t")


callback_words = st.sampled_from(["code", "state", "error", "x", "code", "&", "=", "%", "?"])


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.text(max_size=300),
        st.lists(st.tuples(callback_words, st.text(max_size=20)), max_size=6).map(
            lambda pairs: "&".join(f"{k}={v}" for k, v in pairs)
        ),
    )
)
def test_any_callback_query_is_a_callback_or_a_validation_error(query: str) -> None:
    secret_like = "s3cr3t-value-in-the-query"
    try:
        callback = parse_callback(
            query + f"&state={secret_like}" if "state=" not in query else query
        )
    except ValidationError as exc:
        message = str(exc)
        assert secret_like not in message and message.startswith("Ring linking: ")
        return
    assert callback.code is not None or callback.error is not None
    assert secret_like not in repr(callback)
    if callback.error is not None:
        assert all(ch.isalnum() or ch in "_-." for ch in callback.error)


def test_a_callback_is_checked_against_its_request() -> None:
    request = authorization_request("https://ring.example/authorize", "cid", "https://p.example/")
    good = f"code=abc&state={request.state.reveal()}"
    assert _check_callback(request, parse_callback(good)).reveal() == "abc"
    with pytest.raises(CameraAuthError, match="state does not match"):
        _check_callback(request, parse_callback("code=abc&state=other"))
    with pytest.raises(CameraAuthError, match="state does not match"):
        _check_callback(request, parse_callback("code=abc"))
    with pytest.raises(ValidationError, match="twice"):
        parse_callback(f"code=a&code=b&state={request.state.reveal()}")
    assert pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk") == (
        "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"  # RFC 7636, appendix B
    )


@settings(max_examples=60, deadline=None)
@given(st.one_of(st.binary(max_size=400), st.binary(max_size=64).map(lambda b: MP4_HEAD + b)))
def test_any_clip_body_is_packets_or_a_protocol_error(data: bytes) -> None:
    window = (NOW, NOW + timedelta(seconds=10))
    try:
        packets = clip_packets(data, NOW, window)
    except CameraProtocolError:
        return
    assert all(window[0] <= p.wallclock <= window[1] for p in packets)  # type: ignore[operator]
    assert not packets or packets[0].is_keyframe


#: The start of an MP4 (an ``ftyp`` box), so the fuzzer reaches past the first check.
MP4_HEAD = b"\\x00\\x00\\x00\\x18ftypisom\\x00\\x00\\x02\\x00isomiso2"


app_keys = ["doorbots", "stickup_cams", "authorized_doorbots", "chimes", "id", "description"]
app_keys += ["kind", "latitude", "longitude", "battery_life", "alerts", "settings"]
app_keys += ["connection", "live_view_disabled"]
app_values = documents(
    app_keys,
    st.none() | st.booleans() | st.integers(-5, 5000) | st.floats() | st.text(max_size=6),
)


@settings(max_examples=300, deadline=None)
@given(app_values)
def test_any_app_device_list_is_devices_or_a_protocol_error(document: Any) -> None:
    try:
        devices = parse_app_devices(document)
    except CameraProtocolError as exc:
        message = str(exc)
        assert message.startswith("Ring app device list: ")
        return
    assert len({d.id for d in devices}) == len(devices)
    for d in devices:
        assert d.id.isdigit()
        assert d.latitude is None or -90 <= d.latitude <= 90
        assert d.battery_percentage is None or 0 <= d.battery_percentage <= 100


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.binary(max_size=80), app_values.map(lambda v: json.dumps(v).encode())))
def test_any_2fa_answer_is_a_2fa_request_or_a_protocol_error(content: bytes) -> None:
    try:
        asked = two_factor(content)
    except CameraProtocolError:
        return
    assert asked.channel in ("sms", "email", "totp") and asked.retry_in_s >= 0


history_keys = ["data", "links", "next", "type", "id", "attributes", "event_type", "sub_type"]
history_keys += ["start", "end", "relationships", "source"]
history_values = documents(
    history_keys,
    st.none()
    | st.booleans()
    | st.integers(0, 5_000_000_000_000)
    | st.just("history-events")
    | st.text(max_size=6),
)


@settings(max_examples=300, deadline=None)
@given(history_values)
def test_any_history_page_is_events_or_a_protocol_error(document: Any) -> None:
    try:
        events, following = parse_history_page(document)
    except CameraProtocolError as exc:
        message = str(exc)
        assert message.startswith("Ring history: ")
        return
    for e in events:
        assert e.id and e.event_type and (e.end is None or e.end >= e.start)
    assert following is None or isinstance(following, str)


_ANY_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.binary(max_size=300), _ANY_JSON.map(lambda v: json.dumps(v).encode())))
def test_fuzz_asset_error_codes_only_or_none(body: bytes) -> None:
    code = asset_error(body)
    assert code is None or code in ASSET_ERRORS


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.text(max_size=300), _ANY_JSON.map(json.dumps)))
def test_fuzz_signalling_messages_parse_or_are_refused_clearly(raw: str) -> None:
    try:
        method, body = _message(raw)
    except CameraProtocolError:
        return
    assert isinstance(method, str) and isinstance(body, dict)
    code, text = _close_reason(body)
    assert isinstance(code, int) and isinstance(text, str) and len(text) <= 200


def test_deeply_nested_signalling_and_asset_replies_are_refused_clearly() -> None:
    deep = "[" * 100_000 + "]" * 100_000
    assert asset_error(deep.encode()) is None
    with pytest.raises(CameraProtocolError):
        _message(deep)


#: App history events: Ring's shape with every field drawn from good and bad values.
_APP_EVENT = st.fixed_dictionaries(
    {},
    optional={
        "id": st.integers(min_value=-5, max_value=10**21) | st.text(max_size=22) | st.booleans(),
        "kind": st.sampled_from(["ding", "motion", "on_demand", "x"]) | st.integers(),
        "created_at": st.datetimes(timezones=st.just(UTC)).map(lambda d: d.isoformat())
        | st.text(max_size=30)
        | st.integers(),
        "duration": st.floats() | st.integers() | st.none() | st.booleans() | st.text(max_size=3),
        "recording": st.none() | st.just({"status": "ready"}) | _ANY_JSON,
    },
)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.lists(_APP_EVENT, max_size=4), _ANY_JSON))
def test_any_app_history_page_is_events_or_a_protocol_error(document: Any) -> None:
    try:
        events = parse_app_history(document)
    except CameraProtocolError as exc:
        message = str(exc)
        assert message.startswith("Ring app history: ")
        return
    for e in events:
        assert e.id.isdigit() and e.start.tzinfo is not None
        assert e.end is None or e.end >= e.start


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.text(max_size=80),
        st.builds(
            lambda scheme, host, rest: f"{scheme}://{host}{rest}",
            st.sampled_from(["https", "http", "ftp", "HTTPS"]),
            st.sampled_from(
                ["x.ring.com", "ring.com.evil", "a.s3.amazonaws.com", "[::1]", "h:99999"]
            )
            | st.text(max_size=20),
            st.text(max_size=20),
        ),
    )
)
def test_any_recording_url_is_an_allowed_https_url_or_refused(url: str) -> None:
    hosts = ("ring.com", "s3.amazonaws.com")
    try:
        checked = check_media_url(url, "https://api.ring.com", hosts)
    except CameraProtocolError as exc:
        message = str(exc)
        assert "?" not in message  # never the signed query
        return
    parts = urlsplit(checked)
    host = (parts.hostname or "").lower()
    assert parts.scheme.lower() == "https"
    assert any(host == h or host.endswith("." + h) for h in (*hosts, "api.ring.com"))
    assert parts.username is None and parts.password is None


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=20))
def test_any_capture_time_header_is_milliseconds_or_a_protocol_error(raw: str) -> None:
    try:
        millis = capture_time(raw)
    except CameraProtocolError:
        return
    assert 946_684_800_000 <= millis <= 4_102_444_800_000
