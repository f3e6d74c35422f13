"""camgate.settings: the settings parsing adapters share."""

from __future__ import annotations

from typing import Any

import attrs
import pytest
from camgate.adapters import Credentials
from camgate.errors import ValidationError
from camgate.settings import build_settings, parse_credentials, positive


def _creds(value: Any) -> dict[str, Credentials]:
    return parse_credentials(value, "demo")


@attrs.frozen
class DemoSettings:
    timeout_s: float = attrs.field(default=1.0, validator=positive("demo"))
    credentials: dict[str, Credentials] = attrs.field(factory=dict, converter=_creds, repr=False)


def test_known_keys_build_the_settings() -> None:
    built = build_settings(
        DemoSettings,
        "demo",
        {"timeout_s": 2, "credentials": {"cam": {"username": "u", "password": "pw-1"}}},
    )
    assert built.timeout_s == 2 and built.credentials["cam"].username == "u"
    assert built.credentials["cam"].password.reveal() == "pw-1" and "pw-1" not in repr(built)


def test_unknown_keys_and_bad_values_are_named_errors() -> None:
    with pytest.raises(ValidationError, match=r"demo settings: unknown keys \['timout_s'\]"):
        build_settings(DemoSettings, "demo", {"timout_s": 2})
    for bad in (0, -1, True, "5"):
        with pytest.raises(ValidationError, match="demo setting timeout_s=.*positive"):
            build_settings(DemoSettings, "demo", {"timeout_s": bad})


def test_credentials_errors_never_show_the_password() -> None:
    with pytest.raises(ValidationError, match=r"credentials\['cam'\]: needs a username") as info:
        build_settings(DemoSettings, "demo", {"credentials": {"cam": {"password": "s3cr3t"}}})
    assert "s3cr3t" not in str(info.value)
    with pytest.raises(ValidationError, match="must be a mapping"):
        build_settings(DemoSettings, "demo", {"credentials": ["x"]})
