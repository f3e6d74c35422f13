"""What the hub and edges say over NATS (camgate.edgenet.wire, the hub's acknowledgement
parser): signed control messages, media packets, requests. Every parser of network input is
fuzzed: anything it is given ends as a ValidationError or a parsed value, never a crash."""

from __future__ import annotations

import contextlib
import json
import zlib
from datetime import UTC, datetime
from fractions import Fraction

import pytest
from camgate.edgenet import wire
from camgate.edgenet.hub import _ack_body
from camgate.errors import ValidationError
from camgate.grants import GrantSigner
from camgate.models import MediaPacket, StreamInfo
from hypothesis import given, settings
from hypothesis import strategies as st

HUB = GrantSigner.generate()
SUBJECT = wire.consent_subject("site1", "cam-a")
STATE = wire.ConsentState("cam-a", None, (), datetime(2026, 1, 1, tzinfo=UTC))


def test_a_signed_consent_state_round_trips() -> None:
    body = STATE.to_json()
    headers = wire.sign_control(HUB, SUBJECT, body)
    data = wire.ControlVerifier(HUB.public_key).verify(SUBJECT, body, headers)
    assert wire.ConsentState.from_dict(data) == STATE


def test_control_messages_not_signed_by_the_hub_are_refused() -> None:
    verifier = wire.ControlVerifier(HUB.public_key)
    lifted = wire.ConsentState("cam-a", "consent-1", ("live",), STATE.at).to_json()
    with pytest.raises(ValidationError, match="without the hub's signature"):
        verifier.verify(SUBJECT, lifted, None)
    other = GrantSigner.generate()
    with pytest.raises(ValidationError, match="not signed by the hub"):
        verifier.verify(SUBJECT, lifted, wire.sign_control(other, SUBJECT, lifted))
    # The hub's signature of one camera's state does not stand for another camera's subject.
    headers = wire.sign_control(HUB, SUBJECT, lifted)
    with pytest.raises(ValidationError, match="not signed by the hub"):
        verifier.verify(wire.consent_subject("site1", "cam-b"), lifted, headers)


def test_edge_ids_are_one_subject_token() -> None:
    assert wire.check_edge_id("site-1_a") == "site-1_a"
    for bad in ("", "a.b", "a*", ">", "a b", "x" * 65):
        with pytest.raises(ValidationError):
            wire.check_edge_id(bad)
    # Any camera id maps to one token of its own.
    assert wire.consent_subject("e", "a.b >") != wire.consent_subject("e", "a.b")
    assert wire.consent_subject("e", "a.b >").count(".") == 4


def test_a_media_packet_round_trips() -> None:
    info = StreamInfo("h264", Fraction(1, 90000), 640, 360, extradata=b"\x01\x02")
    packet = MediaPacket(b"\x00\x00\x01", 9000, 8000, True, info, 1.0, 3000, discontinuity=True)
    body, headers = wire.encode_packet(packet)
    again = wire.decode_packet(body, headers, 1.0)
    assert again == packet


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300), st.dictionaries(st.sampled_from(["Camgate-Sig", "x"]), st.text()))
def test_fuzz_control_verify(body: bytes, headers: dict[str, str]) -> None:
    with contextlib.suppress(ValidationError):
        wire.ControlVerifier(HUB.public_key).verify(SUBJECT, body, headers)


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["kind", "camera", "consent", "scopes", "at", "incident"]),
        st.one_of(
            st.none(), st.text(max_size=30), st.integers(), st.lists(st.text(max_size=5)),
            st.sampled_from(
                ["consent", "beat", "closure", "2026-01-01T00:00:00+00:00", "2026-01-01"]
            ),
        ),
    )
)  # fmt: skip
def test_fuzz_consent_state_and_beat(data: dict[str, object]) -> None:
    for parse in (wire.ConsentState.from_dict, wire.Beat.from_dict, wire.IncidentClosed.from_dict):
        with contextlib.suppress(ValidationError):
            parse(data)


@settings(max_examples=300, deadline=None)
@given(
    st.binary(max_size=50),
    st.dictionaries(
        st.sampled_from(["k", "c", "tb", "w", "h", "kind", "pts", "dts", "dur", "gap", "x"]),
        st.one_of(st.text(max_size=20), st.sampled_from(["1/90000", "h264", "12", "-3", "AAE="])),
    ),
)
def test_fuzz_decode_packet(body: bytes, headers: dict[str, str]) -> None:
    try:
        packet = wire.decode_packet(body, headers, 0.0)
    except ValidationError:
        return
    assert packet.data == body


@settings(max_examples=200, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=200),
        st.dictionaries(
            st.sampled_from(["camera", "token", "stream"]),
            st.one_of(st.text(max_size=10), st.integers()),
        ).map(lambda d: json.dumps(d).encode()),
    )
)
def test_fuzz_open_request(body: bytes) -> None:
    try:
        camera, token, key = wire.open_request(body)
    except ValidationError:
        return
    assert all(isinstance(v, str) for v in (camera, token, key))


EDGES = {"site1": ["cam-a"]}
GOOD_ACK = {
    "edge": "site1",
    "camera": "cam-a",
    "consent": "c-1",
    "seq": 4,
    "streams_ended": 1,
    "applied_at": "2026-01-01T00:00:00+00:00",
}


def test_acknowledgements_name_their_own_edge_and_camera() -> None:
    assert _ack_body("camgate.ack.site1", json.dumps(GOOD_ACK).encode(), EDGES) == GOOD_ACK
    with pytest.raises(ValidationError, match="another's subject"):
        _ack_body("camgate.ack.site2", json.dumps(GOOD_ACK).encode(), EDGES)
    with pytest.raises(ValidationError, match="not behind edge"):
        _ack_body("camgate.ack.site1", json.dumps(GOOD_ACK | {"camera": "x"}).encode(), EDGES)


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(sorted(GOOD_ACK)),
        st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.text(max_size=70)),
    ),
    st.booleans(),
)
def test_fuzz_ack_body(changes: dict[str, object], raw: bool) -> None:
    data = json.dumps(GOOD_ACK | changes).encode() if not raw else repr(changes).encode()
    try:
        body = _ack_body("camgate.ack.site1", data, EDGES)
    except ValidationError:
        return
    assert set(body) == set(GOOD_ACK)


def test_an_audit_export_round_trips_and_bombs_are_refused() -> None:
    lines = ['{"type": "log"}', '{"type": "record", "seq": 1}']
    assert wire.unpack_audit(wire.pack_audit(lines)) == lines
    with pytest.raises(ValidationError, match="too large"):
        wire.unpack_audit(zlib.compress(b"x" * (wire.MAX_AUDIT_TEXT + 1)))


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.binary(max_size=200), st.binary(max_size=200).map(zlib.compress)))
def test_fuzz_unpack_audit(body: bytes) -> None:
    with contextlib.suppress(ValidationError):
        assert isinstance(wire.unpack_audit(body), list)
