"""Item 16: no str or repr shows a secret.

Before: ``str(SignedGrant)`` *was* the redeemable token, so ``f"issued {signed}"`` logged a bearer
token; ``WebhookTarget``'s repr showed ``?token=…``; a camera source carrying ``;password=`` or
``/user=admin&password=`` passed the model's credential check and was stored.
"""

from __future__ import annotations

import string
from datetime import UTC, datetime, timedelta

import pytest
from camgate.adapters import Secret
from camgate.delivery import WebhookTarget
from camgate.errors import ValidationError
from camgate.grants import GrantSigner, GrantVerifier, SignedGrant
from camgate.models import Camera, Grant
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from tests.security._models import CENTRE

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
#: Secrets long and distinctive enough that finding one in a text is not a coincidence.
SECRETS = st.text(alphabet=string.ascii_letters + string.digits, min_size=12, max_size=40)


def _signed() -> tuple[GrantSigner, SignedGrant]:
    signer = GrantSigner.generate()
    grant = Grant(
        "grt_1",
        "req_1",
        "a1",
        "inc_1",
        "snapshot",
        NOW,
        NOW + timedelta(minutes=5),
        consent_id="cns_1",
    )
    return signer, signer.sign(grant)


def test_str_and_repr_of_a_signed_grant_never_show_the_token() -> None:
    signer, signed = _signed()
    token = signed.token
    texts = [str(signed), repr(signed), f"issued {signed}", f"{signed!r}", f"{signed:>200}"]
    texts.append("issued %s" % (signed,))  # noqa: UP031 - the logging module's way
    for text in texts:
        assert (
            token not in text
            and token.split(".")[0] not in text
            and token.split(".")[1] not in text
        )
        assert "grt_1" in text
    # The explicit accessor is the way to the token, and it verifies.
    assert GrantVerifier(signer.public_key).verify(signed.token).id == "grt_1"


def test_webhook_target_repr_hides_the_url_token() -> None:
    target = WebhookTarget("https://hooks.example/n?token=s3cr3t-t0k3n&x=1", Secret("hmac-key-42"))
    for text in (repr(target), str(target)):
        assert "s3cr3t-t0k3n" not in text and "hmac-key-42" not in text
        assert "hooks.example" in text


@pytest.mark.parametrize(
    "source",
    [
        "rtsp://10.0.0.5/stream;user=admin;password=hunter22",
        "rtsp://10.0.0.5:554/user=admin&password=hunter22&channel=1&stream=0.sdp",
        "rtsp://10.0.0.5/cam/realmonitor?channel=1&PassWord=hunter22",
        "rtsp://10.0.0.5/live;pwd=hunter22",
        "rtsp://10.0.0.5/live%3Bpassword%3Dhunter22",
        "http://10.0.0.5/snap.jpg#access_token=hunter22",
        "rtsp://10.0.0.5/live?auth=hunter22",
        "admin:hunter22@10.0.0.5/stream",
        "rtsp://admin:hunter22@10.0.0.5/stream",
        "rtsp://10.0.0.5/live/user=admin_password=hunter22",
        "rtsp://10.0.0.5/live/loginuse=admin&loginpas=hunter22",
    ],
)
def test_credential_forms_in_a_camera_source_are_refused(source: str) -> None:
    with pytest.raises(ValidationError) as err:
        Camera("a1", "rtsp", source, "alice", CENTRE)
    assert "hunter22" not in str(err.value)


@pytest.mark.parametrize(
    "source",
    [
        "rtsp://10.0.0.5:554/cam/realmonitor?channel=1&subtype=0",
        "http://10.0.0.5/onvif/device_service#profile=Profile_1",
        "test://a1",
        "rtsp://10.0.0.5/Streaming/Channels/101",
        "rtsp://10.0.0.5/h264/ch1/main/av_stream?keyframe=1",
    ],
)
def test_ordinary_camera_sources_still_pass(source: str) -> None:
    assert Camera("a1", "rtsp", source, "alice", CENTRE).source == source


@example(secret="WebhookTarge", key="password", sep="?")
@settings(max_examples=150, deadline=None)
@given(
    secret=SECRETS,
    key=st.sampled_from(["password", "pwd", "token", "passwd", "user", "access_token", "apikey"]),
    sep=st.sampled_from(["?", ";", "/", "&", "#", "?x=1&", "%3B", "%3F"]),
)
def test_no_repr_or_error_contains_a_secret(secret: str, key: str, sep: str) -> None:
    # A "secret" that is part of the fixed text around it (a class name) proves nothing.
    plain = WebhookTarget("https://hooks.example/n", Secret("-"))
    assume(secret not in f"{plain!r} {plain} rtsp://10.0.0.5/live {key}")
    source = f"rtsp://10.0.0.5/live{sep}{key}={secret}"
    with pytest.raises(ValidationError) as err:
        Camera("a1", "rtsp", source, "alice", CENTRE)
    assert secret not in str(err.value)
    target = WebhookTarget(f"https://hooks.example/n{sep}{key}={secret}", Secret(secret))
    assert secret not in repr(target) and secret not in str(target)
    _signer, signed = _signed()
    assert signed.token not in repr(signed) and signed.token not in str(signed)
    assert secret not in repr(Secret(secret)) and secret not in f"{Secret(secret)}"
