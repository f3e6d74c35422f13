"""Fuzzing the per-camera settings parsers (#14 item 7, #15 item 10): ``--setting KEY=VALUE``
text from the shell and the mapping a camera's settings become, validated by the rtsp and onvif
adapters. Bad input gives camgate's own error — argparse's for the text, ValidationError for the
mapping — never another exception, and never a secret value in a message."""

from __future__ import annotations

import argparse
from typing import Any

import pytest
from camgate.errors import ValidationError
from camgate.settings import parse_setting, split_camera_settings
from camgate_onvif.plugin import FACTORY as ONVIF
from camgate_rtsp.plugin import FACTORY as RTSP
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

SECRET = "s3cr3t-Pa55"  # a password that must never appear in an error

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**40), max_value=2**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)
credentials = st.dictionaries(
    st.text(min_size=1, max_size=8),
    st.one_of(
        st.fixed_dictionaries({"username": st.text(max_size=8), "password": st.just(SECRET)}),
        st.just(SECRET),
        st.fixed_dictionaries({"password": st.just(SECRET)}),
        st.lists(st.just(SECRET), max_size=2),
    ),
    max_size=3,
)


def _keys(factory: Any) -> list[str]:
    import attrs

    return [f.name for f in attrs.fields(factory.settings_class)] + ["typo", ""]


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=60))
def test_setting_text_parses_or_is_refused_without_repeating_it(text: str) -> None:
    if not text.partition("=")[0].strip() or "=" not in text:
        with pytest.raises(argparse.ArgumentTypeError, match="^expected KEY=VALUE$"):
            parse_setting(text)
        return
    key, _value = parse_setting(text)
    assert key and key == key.strip() and "=" not in key


@pytest.mark.parametrize("factory", [RTSP, ONVIF], ids=["rtsp", "onvif"])
@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_camera_settings_validate_or_give_a_validation_error(factory: Any, data: Any) -> None:
    mapping = data.draw(st.dictionaries(st.sampled_from(_keys(factory)), values, max_size=4))
    if data.draw(st.booleans()):
        mapping["credentials"] = data.draw(credentials)
    error: ValidationError | None = None
    try:
        plain, secret = split_camera_settings(factory, mapping)
    except ValidationError as exc:
        error = exc
    if error is not None:
        assert SECRET not in str(error) and SECRET not in repr(error)
        return
    assert set(plain) | set(secret) == set(mapping)
    assert "credentials" not in plain and SECRET not in repr(plain)
