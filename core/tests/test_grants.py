"""Grant signing: what the hub signs verifies at the edge; anything else is refused."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest
from camgate.errors import GrantExpired, GrantForged, GrantMismatch
from camgate.grants import GrantSigner, GrantVerifier, check_grant
from camgate.models import ID_RULE, Grant, Scope
from hypothesis import given, settings
from hypothesis import strategies as st

SIGNER = GrantSigner.generate()
VERIFIER = GrantVerifier(SIGNER.public_key)
T0 = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)

#: Ids as the models accept them (camgate.models.ID_RULE).
ids = st.from_regex(ID_RULE, fullmatch=True).filter(lambda s: ".." not in s)
grants = st.builds(
    Grant,
    id=ids,
    request_id=st.just("req_1"),
    camera_id=ids,
    incident_id=st.just("inc_1"),
    scope=st.sampled_from([Scope.LIVE, Scope.SNAPSHOT]),
    issued_at=st.just(T0),
    expires_at=st.integers(1, 10**6).map(lambda s: T0 + timedelta(seconds=s)),
    audio=st.booleans(),
)


@given(grants)
def test_signed_grant_verifies_to_the_same_grant(grant: Grant) -> None:
    assert VERIFIER.verify(SIGNER.sign(grant)) == grant


@settings(max_examples=200)
@given(grants, st.data())
def test_any_changed_byte_is_refused(grant: Grant, data: st.DataObject) -> None:
    token = SIGNER.sign(grant).token
    i = data.draw(st.integers(0, len(token) - 1))
    replacement = data.draw(st.sampled_from("AbZ09-_.x"))
    forged = token[:i] + replacement + token[i + 1 :]
    if forged == token:
        return
    try:
        got = VERIFIER.verify(forged)
    except GrantForged:
        return
    # base64url ignores the low bits of a final character: only then may it decode the same.
    assert got == grant


@given(grants)
def test_a_grant_signed_by_another_key_is_refused(grant: Grant) -> None:
    other = GrantSigner.generate()
    with pytest.raises(GrantForged, match="does not verify"):
        VERIFIER.verify(other.sign(grant))


def test_payload_rewritten_with_a_wider_scope_is_refused() -> None:
    grant = Grant(
        id="g",
        request_id="r",
        camera_id="cam-1",
        incident_id="i",
        scope="snapshot",
        issued_at=T0,
        expires_at=T0 + timedelta(minutes=1),
    )
    payload, sig = SIGNER.sign(grant).token.split(".")
    body = json.loads(base64.urlsafe_b64decode(payload + "=="))
    body["scope"] = "live"
    new = base64.urlsafe_b64encode(json.dumps(body).encode()).rstrip(b"=").decode()
    with pytest.raises(GrantForged):
        VERIFIER.verify(f"{new}.{sig}")


@pytest.mark.parametrize("token", ["", "abc", "a.b.c", "!!!.???", "e30.AAAA"])
def test_malformed_tokens_are_refused_clearly(token: str) -> None:
    with pytest.raises(GrantForged, match="malformed|does not verify"):
        VERIFIER.verify(token)


def test_check_grant_time_camera_scope_and_window() -> None:
    grant = Grant(
        id="g",
        request_id="r",
        camera_id="cam-1",
        incident_id="i",
        scope="recorded",
        issued_at=T0,
        expires_at=T0 + timedelta(minutes=5),
        window_start=T0 - timedelta(hours=2),
        window_end=T0 - timedelta(hours=1),
    )
    ok = {"camera_id": "cam-1", "scope": Scope.RECORDED}
    check_grant(grant, now=T0 + timedelta(minutes=1), **ok)  # type: ignore[arg-type]
    with pytest.raises(GrantExpired, match="expired"):
        check_grant(grant, now=T0 + timedelta(minutes=5), **ok)  # type: ignore[arg-type]
    with pytest.raises(GrantExpired, match="not valid before"):
        check_grant(grant, now=T0 - timedelta(seconds=1), **ok)  # type: ignore[arg-type]
    with pytest.raises(GrantMismatch, match="camera"):
        check_grant(grant, camera_id="cam-2", scope=Scope.RECORDED, now=T0)
    with pytest.raises(GrantMismatch, match="live"):
        check_grant(grant, camera_id="cam-1", scope=Scope.LIVE, now=T0)
    inside = (T0 - timedelta(minutes=110), T0 - timedelta(minutes=70))
    check_grant(grant, now=T0, window=inside, **ok)  # type: ignore[arg-type]
    with pytest.raises(GrantMismatch, match="outside"):
        check_grant(grant, now=T0, window=(T0 - timedelta(hours=3), T0), **ok)  # type: ignore[arg-type]


def test_key_file_is_private_and_reloads(tmp_path: object) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "hub.key"
    first = GrantSigner.load_or_create(path)
    assert path.stat().st_mode & 0o777 == 0o600
    again = GrantSigner.load_or_create(path)
    assert first.public_key == again.public_key
    assert "PRIVATE" not in repr(first)
