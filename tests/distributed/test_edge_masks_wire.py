"""The owner's masks in a camera's signed consent state (camgate.edgenet.wire): they round-trip,
are validated as PrivacyMask validates them, must be the version the state names, and the
parser of the message is fuzzed (anything ends as a ValidationError or a parsed state)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from camgate.edgenet import wire
from camgate.errors import ValidationError
from camgate.models import PrivacyMask
from hypothesis import given, settings
from hypothesis import strategies as st

AT = datetime(2026, 1, 1, tzinfo=UTC)
MASK = PrivacyMask("cam-a", [[(0.0, 0.0), (0.5, 0.0), (0.5, 0.5), (0.0, 0.5)]], AT, "alice")
STATE = wire.ConsentState("cam-a", "consent-1", ("live",), AT, MASK)


def test_masks_round_trip_in_the_consent_state_with_their_version() -> None:
    data = json.loads(STATE.to_json())
    assert data["masks_version"] == wire.masks_digest(MASK) != ""
    back = wire.ConsentState.from_dict(data)
    assert back == STATE and back.masks == MASK
    # Cleared masks (no polygons) travel too, as another version; none at all is version "".
    cleared = PrivacyMask("cam-a", [], AT, "alice")
    assert wire.masks_digest(cleared) not in ("", wire.masks_digest(MASK))
    state = wire.ConsentState("cam-a", None, (), AT, cleared)
    assert wire.ConsentState.from_dict(json.loads(state.to_json())).masks == cleared
    assert wire.ConsentState("cam-a", None, (), AT).masks_version == ""


def test_a_masks_change_is_a_new_version() -> None:
    later = PrivacyMask("cam-a", MASK.polygons, datetime(2026, 1, 2, tzinfo=UTC), "alice")
    moved = PrivacyMask("cam-a", [[(0.1, 0.0), (0.5, 0.0), (0.5, 0.5)]], AT, "alice")
    assert len({wire.masks_digest(m) for m in (MASK, later, moved)}) == 3


def test_masks_not_of_the_named_version_or_invalid_are_refused() -> None:
    data = json.loads(STATE.to_json())
    data["masks_version"] = wire.masks_digest(None)
    with pytest.raises(ValidationError, match="not the version"):
        wire.ConsentState.from_dict(data)
    # A state naming masks but carrying none (lost, or stripped) is refused too.
    data = json.loads(STATE.to_json()) | {"masks": None}
    with pytest.raises(ValidationError, match="not the version"):
        wire.ConsentState.from_dict(data)
    for bad in (
        {"polygons": [[[0, 0], [2, 0], [0, 1]]], "set_at": AT.isoformat(), "set_by": "alice"},
        {"polygons": [[[0, 0], [1, 1], [0.5, 0.5]]], "set_at": AT.isoformat(), "set_by": "a"},
        {"polygons": [[[0, 0], [1, 0], [0, 1]]], "set_at": "2026-01-01", "set_by": "alice"},
        {"polygons": "x", "set_at": AT.isoformat(), "set_by": "alice"},
        {"polygons": [], "set_at": AT.isoformat(), "set_by": 7},
        [1, 2],
    ):
        data = json.loads(STATE.to_json()) | {"masks": bad}
        with pytest.raises(ValidationError):
            wire.ConsentState.from_dict(data)


def test_the_most_masks_a_camera_may_have_fit_in_one_control_message() -> None:
    square = [(0.0, 0.0), (0.123456789, 0.0), (0.123456789, 0.987654321), (0.0, 0.987654321)]
    polygon = square + [(0.0, 0.5 + i / 1000) for i in range(60)][::-1]
    big = PrivacyMask("cam-a", [polygon] * 32, AT, "alice")
    body = wire.ConsentState("cam-a", "c", ("live",), AT, big).to_json()
    assert len(body) <= wire.MAX_CONTROL_BYTES
    assert wire.ConsentState.from_dict(json.loads(body)).masks == big


_json = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=True) | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=40,
)
_point = st.lists(st.floats(-0.5, 1.5) | st.integers(-1, 2) | st.text(max_size=2), max_size=3)
_masks = st.fixed_dictionaries(
    {
        "polygons": st.lists(st.lists(_point, max_size=6), max_size=3) | _json,
        "set_at": st.just(AT.isoformat()) | _json,
        "set_by": st.just("alice") | _json,
    }
)


@settings(max_examples=300, deadline=None)
@given(masks=_masks | _json, version=st.none() | st.text(max_size=4) | st.just("fill"))
def test_fuzz_the_masks_of_a_consent_state(masks: Any, version: Any) -> None:
    data = json.loads(STATE.to_json()) | {"masks": masks}
    if version == "fill":  # the right digest, when the masks are valid: then they must parse
        try:
            good = PrivacyMask("cam-a", masks["polygons"], AT, "alice")
        except (ValidationError, TypeError, KeyError):
            good = None
        if (
            good is not None
            and masks.get("set_at") == AT.isoformat()
            and masks["set_by"] == "alice"
        ):
            data["masks_version"] = wire.masks_digest(good)
            assert wire.ConsentState.from_dict(data).masks == good
            return
    elif version is not None:
        data["masks_version"] = version
    try:
        state = wire.ConsentState.from_dict(data)
    except ValidationError:
        return
    # Whatever parsed is a valid mask (or none) of exactly the version the message named.
    assert state.masks_version == data.get("masks_version", "")
    assert state.masks is None or state.masks.camera_id == "cam-a"
