"""The host settings of cloud adapters (camgate.settings.check_base_url): https, or plain http
to a loopback simulator; no credentials, query or fragment; the error names the vendor and the
setting, never the URL."""

from __future__ import annotations

import pytest
from camgate.adapters import Secret
from camgate.errors import ValidationError
from camgate.settings import check_base_url, optional_secret
from hypothesis import given
from hypothesis import strategies as st


@pytest.mark.parametrize(
    ("url", "kept"),
    [
        ("https://api.example.com/", "https://api.example.com"),
        ("https://api.example.com/v1", "https://api.example.com/v1"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("http://localhost/x/", "http://localhost/x"),
    ],
)
def test_https_or_loopback_http_is_kept_without_a_trailing_slash(url: str, kept: str) -> None:
    assert check_base_url(url, "api_url", "acme") == kept


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("http://api.example.com", "plain http only to a loopback host"),
        ("ftp://api.example.com", "must be an https URL"),
        ("https://", "must be an https URL"),
        ("https://user:hunter2@api.example.com", "no credentials"),
        ("https://api.example.com/?token=hunter2", "no credentials, query or fragment"),
        ("https://api.example.com/#hunter2", "no credentials, query or fragment"),
        ("https://[::1", "must be an https URL"),
    ],
)
def test_anything_else_is_refused_naming_the_setting_not_the_url(url: str, said: str) -> None:
    with pytest.raises(ValidationError, match=said) as caught:
        check_base_url(url, "api_url", "acme")
    assert str(caught.value).startswith("acme setting api_url:")
    assert "hunter2" not in str(caught.value)


@given(st.text(max_size=80))
def test_any_text_is_a_url_or_a_validation_error(text: str) -> None:
    message = None
    try:
        check_base_url(text, "api_url", "acme")
    except ValidationError as error:
        message = str(error)
    # one of the fixed messages: nothing of the text itself is echoed
    assert message is None or message.removeprefix("acme setting api_url: ") in {
        "must be an https URL",
        "plain http only to a loopback host",
        "no credentials, query or fragment",
    }


def test_optional_secret_hides_the_text() -> None:
    assert optional_secret(None) is None
    kept = optional_secret("hunter2")
    assert isinstance(kept, Secret) and "hunter2" not in repr(kept)
    assert optional_secret(kept) is kept
