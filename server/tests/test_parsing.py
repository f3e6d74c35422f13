"""The parsers of untrusted input (headers, cookies, tokens, usernames, ``near``), fuzzed:
each answers a value, None or a ValidationError, never another exception."""

from __future__ import annotations

import math
from typing import Any

import anyio
import httpx
import pytest
from camgate.errors import ValidationError
from camgate_server.parsing import (
    parse_api_token,
    parse_bearer,
    parse_event_id,
    parse_near,
    parse_secret,
    parse_username,
    parse_window,
)
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

_WHEN = st.one_of(
    st.none(), st.datetimes(), st.datetimes(timezones=st.timezones(), allow_imaginary=False)
)
SECRET = st.text(alphabet="ABCabc019_-", min_size=43, max_size=43)
HEX16 = st.text(alphabet="0123456789abcdef", min_size=16, max_size=16)


@settings(max_examples=300)
@given(st.one_of(st.none(), st.text(max_size=600)))
def test_parse_bearer_takes_any_header(header: str | None) -> None:
    value = parse_bearer(header)
    if value is not None:
        assert header is not None and header.strip().lower().startswith("bearer ")
        assert value == value.strip() and value


@settings(max_examples=200)
@given(HEX16, SECRET)
def test_a_token_round_trips_and_any_change_of_shape_is_refused(token_id: str, secret: str) -> None:
    token = f"cgt_{token_id}_{secret}"
    assert parse_bearer(f"Bearer {token}") == token
    assert parse_bearer(f"bearer   {token}  ") == token
    assert parse_api_token(token) == (token_id, secret)
    assert parse_api_token(token + "x") is None
    assert parse_api_token(token[:-1]) is None
    assert parse_api_token("CGT_" + token[4:]) is None
    assert parse_secret(secret) == secret


@settings(max_examples=300)
@given(st.text(max_size=100))
def test_parse_api_token_and_secret_refuse_or_return_their_input(text: str) -> None:
    parsed = parse_api_token(text)
    if parsed is not None:
        assert text == f"cgt_{parsed[0]}_{parsed[1]}"
    secret = parse_secret(text)
    assert secret is None or (secret == text and len(text) == 43)


@settings(max_examples=300)
@given(st.text(max_size=80))
def test_parse_username_returns_it_or_a_validation_error_without_it(text: str) -> None:
    try:
        assert parse_username(text) == text
    except ValidationError as exc:
        message = str(exc)
    else:
        return
    # One fixed message: the input (perhaps a password typed in the wrong field) is not repeated.
    assert message.startswith("a username is 1-64 lowercase letters")


@settings(max_examples=300)
@given(st.text(max_size=60), st.one_of(st.none(), st.floats()))
def test_parse_near_returns_a_point_and_radius_or_a_validation_error(
    near: str, radius: float | None
) -> None:
    try:
        point, radius_m = parse_near(near, radius)
    except ValidationError:
        return
    assert -90 <= point.lat <= 90 and -180 <= point.lon <= 180
    assert math.isfinite(radius_m) and 0 < radius_m <= 50_000


@settings(max_examples=200)
@given(st.floats(-90, 90), st.floats(-180, 180), st.one_of(st.none(), st.floats(0.001, 50_000)))
def test_parse_near_reads_what_a_client_writes(
    lat: float, lon: float, radius: float | None
) -> None:
    point, radius_m = parse_near(f"{lat!r},{lon!r}", radius)
    assert (point.lat, point.lon) == (lat, lon)
    assert radius_m == (500.0 if radius is None else radius)


@pytest.mark.parametrize("near", ["1,2,3", "a,b", "nan,0", "0,inf", "", "91,0", "0,181"])
def test_parse_near_refuses(near: str) -> None:
    with pytest.raises(ValidationError):
        parse_near(near, None)


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=3)
    ),
    max_leaves=8,
)
LOGIN = st.one_of(
    JSON,
    st.fixed_dictionaries({"username": st.text(max_size=70), "password": st.text(max_size=70)}),
)


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=LOGIN, cookie=st.text(max_size=60), bearer=st.text(max_size=80))
def test_any_login_body_cookie_or_bearer_is_answered_with_a_problem_never_a_500(
    app: FastAPI, body: Any, cookie: str, bearer: str
) -> None:
    """Whatever arrives at ``POST /session`` or as a credential: 401, 422 or 429 (the limit is
    reached within the run), a problem document that does not repeat the password sent."""

    async def send() -> tuple[httpx.Response, httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            login = await c.post("/session", json=body)
            c.cookies.set("camgate_session", cookie.encode("ascii", "ignore").decode())
            header = bearer.encode("ascii", "ignore").decode().strip()
            read = await c.get("/cameras", headers={"Authorization": header} if header else {})
            return login, read

    login, read = anyio.run(send)
    assert login.status_code in (401, 422, 429), login.text
    assert read.status_code == 401, read.text
    for answer in (login, read):
        assert answer.headers["content-type"] == "application/problem+json"
    password = body.get("password") if isinstance(body, dict) else None
    if isinstance(password, str) and len(password) >= 8:
        assert password not in login.text


@settings(max_examples=300)
@given(st.one_of(st.none(), st.text(max_size=40), st.integers(0, 10**18 - 1).map(str)))
def test_parse_event_id_takes_any_header(text: str | None) -> None:
    stripped = "" if text is None else text.strip()
    if not stripped:
        assert parse_event_id(text) is None
    elif stripped.isascii() and stripped.isdigit() and len(stripped) <= 18:
        assert parse_event_id(text) == int(stripped)
    else:  # the message never repeats the input
        with pytest.raises(ValidationError, match="^an event id is a non-negative whole number"):
            parse_event_id(text)


@settings(max_examples=300)
@given(_WHEN, _WHEN)
def test_parse_window_takes_both_aware_or_neither(start: Any, end: Any) -> None:
    given_one = (start is None) != (end is None)
    naive = any(t is not None and t.tzinfo is None for t in (start, end))
    if given_one or naive:
        with pytest.raises(ValidationError):
            parse_window(start, end)
        return
    assert parse_window(start, end) == (None if start is None else (start, end))
