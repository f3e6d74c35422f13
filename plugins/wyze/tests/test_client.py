"""The Wyze cloud client against the simulated cloud (a real HTTP server on loopback): login
with its factors and rate limit, refresh on code 2001, rate-limit back-off, discovery, paging."""

from __future__ import annotations

import itertools
import json
import logging
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from camgate.errors import AdapterError, CameraAuthError, ConfigError, ValidationError
from camgate_wyze.adapter import WyzeAdapter
from camgate_wyze.client import Challenge, WyzeClient, load_tokens, save_tokens, triple_md5
from camgate_wyze.settings import WyzeSettings
from camgate_wyze.testing import API_KEY, EMAIL, PASSWORD, TOTP_CODE, WyzeSimulator

pytestmark = pytest.mark.anyio


def test_triple_md5() -> None:
    # md5(md5(md5("password"))) as hex, computed with coreutils' md5sum.
    assert triple_md5("password") == "5a22e6c339c96c9c0513a46e44c39683"


def _client(sim: WyzeSimulator, tmp_path: Path, **overrides: Any) -> WyzeClient:
    settings = WyzeSettings.from_mapping(
        sim.settings_for(token_file=str(tmp_path / "t.json"), **overrides)
    )
    return WyzeClient(settings, on_tokens=lambda t: save_tokens(tmp_path / "t.json", t))


def _logins(sim: WyzeSimulator) -> list[dict[str, Any]]:
    return [e for e in sim.log() if e["kind"] == "login"]


@pytest.mark.parametrize("mfa", ["totp", "sms"])
async def test_login_with_second_factor_writes_tokens(mfa: str, tmp_path: Path) -> None:
    asked: list[str] = []

    async def factor(challenge: Challenge) -> str:
        asked.append(challenge.kind)
        return TOTP_CODE

    with WyzeSimulator(cameras=1, rtsp=0, mfa=mfa, login_interval_s=0.3, link=False) as sim:
        client = _client(sim, tmp_path)
        try:
            await client.login(EMAIL, PASSWORD, factor)
            cameras = await client.cameras()
        finally:
            await client.aclose()
        assert asked == [mfa]
        assert [c.mac for c in cameras] == sim.macs
        saved = load_tokens(tmp_path / "t.json")
        assert saved is not None and saved.access_token.reveal()
        assert (tmp_path / "t.json").stat().st_mode & 0o077 == 0
        assert PASSWORD not in json.dumps(sim.log())


async def test_wrong_code_and_wrong_password_are_auth_errors(tmp_path: Path) -> None:
    async def wrong(_: Challenge) -> str:
        return "000000"

    with WyzeSimulator(cameras=1, rtsp=0, mfa="totp", login_interval_s=0.2, link=False) as sim:
        client = _client(sim, tmp_path, login_interval_s=0.2)
        try:
            with pytest.raises(CameraAuthError, match="second factor|refused") as code:
                await client.login(EMAIL, PASSWORD, wrong)
            with pytest.raises(CameraAuthError, match="refused the login") as pw:
                await client.login(EMAIL, "not-the-pa55word", wrong)
            with pytest.raises(CameraAuthError, match="second factor"):
                await client.login(EMAIL, PASSWORD, None)
        finally:
            await client.aclose()
        for exc in (code.value, pw.value):
            assert "pa55" not in str(exc) and API_KEY not in str(exc)
        assert not (tmp_path / "t.json").exists()


async def test_rate_limited_login_waits_instead_of_hammering(tmp_path: Path) -> None:
    with WyzeSimulator(cameras=1, rtsp=0, login_interval_s=1.5, link=False) as sim:
        client = _client(sim, tmp_path, login_interval_s=1.5)
        try:
            for _ in range(3):
                await client.login(EMAIL, PASSWORD)
        finally:
            await client.aclose()
        logins = _logins(sim)
    assert [e["status"] for e in logins] == [200, 200, 200]  # never a 429
    gaps = [b["at"] - a["at"] for a, b in itertools.pairwise(logins)]
    assert all(gap >= 1.45 for gap in gaps), gaps


async def test_expired_api_key_is_refused_before_asking_wyze(
    sim: WyzeSimulator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    before = len(_logins(sim))
    client = _client(sim, tmp_path, api_key_expires="2020-01-31")
    try:
        with pytest.raises(CameraAuthError, match="expired on 2020-01-31"):
            await client.login(EMAIL, PASSWORD)
    finally:
        await client.aclose()
    assert len(_logins(sim)) == before
    soon = (datetime.now(UTC).date() + timedelta(days=10)).isoformat()
    client = _client(sim, tmp_path, api_key_expires=soon)
    with caplog.at_level(logging.WARNING, logger="camgate_wyze.client"):
        client.check_key()
    await client.aclose()
    assert f"expires on {soon}" in caplog.text and API_KEY not in caplog.text
    client = _client(sim, tmp_path, api_key="")
    with pytest.raises(ConfigError, match="api_key"):
        client.check_key(date(2026, 1, 1))
    await client.aclose()


async def test_code_2001_refreshes_and_persists_tokens(sim: WyzeSimulator) -> None:
    adapter = WyzeAdapter.from_settings(sim.settings)
    before = load_tokens(sim.token_file)
    try:
        await adapter.discover()
        sim.expire_tokens()
        start = len(sim.log())
        cameras = await adapter.discover()
    finally:
        await adapter.aclose()
    kinds = [(e["kind"], e["code"]) for e in sim.log()[start:]]
    assert kinds == [
        ("get_object_list", "2001"),
        ("refresh_token", "1"),
        ("get_object_list", "1"),
    ]
    assert len(cameras) == 3
    after = load_tokens(sim.token_file)
    assert after is not None and before is not None
    assert after.access_token != before.access_token


async def test_refused_refresh_asks_for_a_new_link(sim: WyzeSimulator, tmp_path: Path) -> None:
    path = tmp_path / "t.json"
    save_tokens(path, sim.issue())
    tokens = load_tokens(path)
    assert tokens is not None
    from camgate_wyze.client import Tokens

    save_tokens(path, Tokens(tokens.access_token, "not-a-refresh-token", tokens.user_id))
    sim.expire_tokens()
    adapter = WyzeAdapter.from_settings(sim.settings_for(token_file=str(path)))
    try:
        with pytest.raises(CameraAuthError, match="camgate wyze link"):
            await adapter.discover()
    finally:
        await adapter.aclose()


async def test_unlinked_account_is_a_config_error(sim: WyzeSimulator, tmp_path: Path) -> None:
    adapter = WyzeAdapter.from_settings(sim.settings_for(token_file=str(tmp_path / "none")))
    with pytest.raises(ConfigError, match="camgate wyze link"):
        await adapter.discover()


async def test_backs_off_until_the_rate_limit_resets(sim: WyzeSimulator) -> None:
    adapter = WyzeAdapter.from_settings(sim.settings)
    try:
        await adapter.discover()
        sim.set_quota(remaining=6, reset_in_s=2.0)
        await adapter.discover()  # answered with 5 left: the next call waits for the reset
        mark = len(sim.log())
        await adapter.discover()
    finally:
        await adapter.aclose()
    log = sim.log()
    waited = log[mark]["at"] - log[mark - 1]["at"]
    assert waited >= 0.9, waited  # Reset-By has whole seconds: at least the rest of 2 s - 1
    assert all(e["status"] != 429 for e in log)


async def test_rate_limit_beyond_the_bound_is_an_error(sim: WyzeSimulator) -> None:
    adapter = WyzeAdapter.from_settings(sim.settings_for(max_rate_wait_s=2.0))
    try:
        sim.set_quota(remaining=6, reset_in_s=600.0)
        await adapter.discover()
        with pytest.raises(AdapterError, match="rate limit"):
            await adapter.discover()
    finally:
        await adapter.aclose()
        sim.set_quota(remaining=300, reset_in_s=3600.0)


async def test_discovery_lists_enrolled_cameras_only(sim: WyzeSimulator) -> None:
    settings = sim.settings
    only_first = {sim.macs[0]: settings["cameras"][sim.macs[0]]}
    adapter = WyzeAdapter.from_settings(settings | {"cameras": only_first})
    start = len(sim.log())
    try:
        cameras = await adapter.discover()
    finally:
        await adapter.aclose()
    assert [(c.id, c.source, c.owner_id) for c in cameras] == [
        (f"wyze-{sim.macs[0].lower()}", sim.macs[0], "owner-1")
    ]
    assert cameras[0].position.lat == 52.52
    assert "WYZE_CAKP2JFUS" in cameras[0].label and "online" in cameras[0].label
    assert not any(e["media"] for e in sim.log()[start:])  # discovery asks for no media


async def test_events_are_paged_twenty_at_a_time(tmp_path: Path) -> None:
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    times = [base + timedelta(seconds=30 * i) for i in range(45)]
    with WyzeSimulator(cameras=1, rtsp=0, events_at=times, clip_seconds=0.3) as sim:
        adapter = WyzeAdapter.from_settings(sim.settings)
        try:
            events = await adapter.client().events(sim.macs[0], times[2], times[44])
        finally:
            await adapter.aclose()
        asks = [e for e in sim.log() if e["kind"] == "get_event_list"]
    assert [e.at for e in events] == times[2:44]  # [start, end): the last one is outside
    assert len(asks) == 3  # 20 + 20 + 2


@pytest.mark.parametrize(
    ("key", "value", "why"),
    [
        ("cameras", {"AA": {"rtsp_url": "rtsp://viewer:hunter2-pw@10.0.0.7/live"}}, "no user"),
        ("cameras", {"AA": {"rtsp_url": "http://10.0.0.7/live"}}, "rtsp://"),
        ("cameras", {"AA": {"position": [1.0]}}, "latitude"),
        ("cameras", {"AA": {"color": "red"}}, "unknown keys"),
        ("api_url", "http://api.example.org", "plain http"),
        ("api_key_expires", "next year", "YYYY-MM-DD"),
        ("media_hosts", "one.example", "list of host names"),
        ("login_interval_s", 0, "positive"),
        ("no_such_setting", 1, "unknown keys"),
    ],
)
def test_bad_settings_are_validation_errors_that_show_no_secret(
    key: str, value: Any, why: str
) -> None:
    with pytest.raises(ValidationError, match=why) as info:
        WyzeSettings.from_mapping({key: value})
    assert "hunter2" not in str(info.value)


def test_settings_repr_shows_no_secret() -> None:
    settings = WyzeSettings.from_mapping(
        {
            "key_id": "k1",
            "api_key": API_KEY,
            "credentials": {"AA": {"username": "u", "password": "pw-x9"}},
        }
    )
    assert API_KEY not in repr(settings) and "pw-x9" not in repr(settings)
