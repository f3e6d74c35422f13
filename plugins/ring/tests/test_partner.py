"""The Partner API client against the simulator: tokens, 401, 429, devices, secrets."""

from __future__ import annotations

import json
import logging
import os
import stat
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from camgate.adapters import Secret
from camgate.errors import AdapterError, CameraAuthError, CameraProtocolError, ConfigError
from camgate_ring import PartnerClient, RingAdapter, RingSettings, Tokens
from camgate_ring.testing import CLIENT_ID, CLIENT_SECRET, RingSimulator

pytestmark = pytest.mark.anyio


def client(
    sim: RingSimulator,
    tokens: Tokens,
    on_tokens: Callable[[Tokens], None] | None = None,
    **kwargs: Any,
) -> PartnerClient:
    return PartnerClient(
        api_base=sim.base,
        token_url=f"{sim.base}/oauth/token",
        client_id=CLIENT_ID,
        client_secret=Secret(kwargs.pop("secret", CLIENT_SECRET)),
        tokens=tokens,
        on_tokens=on_tokens,
        **kwargs,
    )


def linked(sim: RingSimulator, *, fresh: bool = True) -> Tokens:
    """A new token pair from the simulator; ``fresh=False`` marks the access token expired
    on our side (the client refreshes before the first call)."""
    pair = sim.link()
    expires = time.time() + float(pair["expires_in"]) if fresh else 0.0
    return Tokens(pair["access_token"], pair["refresh_token"], expires)


def since(sim: RingSimulator, start: int) -> list[tuple[str, str, int]]:
    return [(e["method"], e["path"], e["status"]) for e in sim.log()[start:]]


async def test_devices_are_listed_with_their_power(sim: RingSimulator) -> None:
    async with client(sim, linked(sim)) as api:
        devices = await api.devices()
    assert [d.id for d in devices] == [f"ava1.ring.device.SIM{i}" for i in (1, 2, 3)]
    assert [d.name for d in devices] == [f"Simulated Ring {i}" for i in (1, 2, 3)]
    assert devices[0].battery_percentage == 82 and devices[0].battery_powered
    assert devices[1].line_powered and devices[1].battery_percentage is None
    assert [d.online for d in devices] == [True, True, False]


async def test_a_rotated_refresh_token_is_persisted_before_it_is_used(
    sim: RingSimulator,
) -> None:
    old = linked(sim, fresh=False)
    persisted: list[tuple[Tokens, int]] = []

    def on_tokens(tokens: Tokens) -> None:
        # What the simulator had seen when the tokens were handed over: nothing used them yet.
        persisted.append((tokens, len(sim.log())))

    start = len(sim.log())
    async with client(sim, old, on_tokens) as api:
        await api.devices()
        now = api.tokens
    assert len(persisted) == 1
    saved, seen = persisted[0]
    assert saved == now
    assert saved.refresh_token != old.refresh_token  # rotated
    assert saved.access_token != old.access_token
    # Handed over after the refresh and before the first call with the new access token.
    assert since(sim, start)[: seen - start] == [("POST", "/oauth/token", 200)]
    assert since(sim, start)[seen - start :] == [("GET", "/v1/devices", 200)]
    # The old refresh token is spent: using it again is the lost link, said so.
    async with client(sim, old) as stale:
        with pytest.raises(CameraAuthError, match="link is lost"):
            await stale.refresh()


async def test_the_adapter_persists_rotated_tokens_in_its_token_file(
    sim: RingSimulator, tmp_path: Path
) -> None:
    pair = sim.link()
    token_file = tmp_path / "tokens.json"
    settings = {
        **sim.settings,
        "access_token": pair["access_token"],
        "refresh_token": pair["refresh_token"],
        "access_expires_at": 0,
        "token_file": str(token_file),
    }
    adapter = RingAdapter.from_settings(settings)
    try:
        await adapter.devices()
        stored = json.loads(token_file.read_text())
        assert stored["refresh_token"] != pair["refresh_token"]
        assert stored["refresh_token"] == adapter.client().tokens.refresh_token.reveal()
        assert stat.S_IMODE(os.stat(token_file).st_mode) == 0o600
    finally:
        await adapter.aclose()
    # A new adapter starts from the file, not from the (spent) tokens in the settings.
    again = RingAdapter.from_settings(settings)
    try:
        assert len(await again.devices()) == 3
    finally:
        await again.aclose()


async def test_tokens_that_cannot_be_persisted_are_not_used_until_they_are(
    sim: RingSimulator,
) -> None:
    failing = True
    saved: list[Tokens] = []

    def on_tokens(tokens: Tokens) -> None:
        if failing:
            raise OSError("disk full")
        saved.append(tokens)

    start = len(sim.log())
    async with client(sim, linked(sim, fresh=False), on_tokens) as api:
        with pytest.raises(ConfigError, match="could not be persisted"):
            await api.devices()
        assert since(sim, start) == [("POST", "/oauth/token", 200)]  # no call made with them
        failing = False
        await api.devices()
    # The same tokens were persisted, without a second refresh (that one spent the first).
    assert len(saved) == 1
    assert since(sim, start) == [("POST", "/oauth/token", 200), ("GET", "/v1/devices", 200)]


async def test_a_401_refreshes_and_retries_once(sim: RingSimulator) -> None:
    async with client(sim, linked(sim), lambda _t: None) as api:
        sim.expire_tokens()
        start = len(sim.log())
        assert len(await api.devices()) == 3
    assert since(sim, start) == [
        ("GET", "/v1/devices", 401),
        ("POST", "/oauth/token", 200),
        ("GET", "/v1/devices", 200),
    ]


async def test_a_401_whose_refresh_is_refused_is_an_auth_error(sim: RingSimulator) -> None:
    async with client(sim, linked(sim), lambda _t: None, secret="wrong-secret") as api:
        sim.expire_tokens()
        start = len(sim.log())
        with pytest.raises(CameraAuthError, match="link is lost"):
            await api.devices()
    assert since(sim, start) == [("GET", "/v1/devices", 401), ("POST", "/oauth/token", 401)]


async def test_a_429_is_waited_out_for_its_retry_after(sim: RingSimulator) -> None:
    async with client(sim, linked(sim)) as api:
        sim.rate_limit(1, 0.4)
        start = len(sim.log())
        assert len(await api.devices()) == 3
    entries = sim.log()[start:]
    assert [(e["path"], e["status"]) for e in entries] == [
        ("/v1/devices", 429),
        ("/v1/devices", 200),
    ]
    assert entries[1]["time"] - entries[0]["time"] >= 0.4


async def test_a_429_beyond_the_bound_is_an_error_at_once(sim: RingSimulator) -> None:
    async with client(sim, linked(sim), max_retry_after_s=5.0) as api:
        sim.rate_limit(1, 60)
        with anyio.fail_after(5), pytest.raises(AdapterError, match="retry after 60 s"):
            await api.devices()
        sim.rate_limit(3, 0.05)  # more 429s than the client retries
        with pytest.raises(AdapterError, match="rate-limiting"):
            await api.devices()
        sim.rate_limit(0, 1)


async def test_urls_on_another_host_are_refused(sim: RingSimulator) -> None:
    async with client(sim, linked(sim)) as api:
        assert api.checked("/v1/devices/x") == f"{sim.base}/v1/devices/x"
        for elsewhere in (
            "http://192.0.2.7/v1/devices",
            f"https://{sim.base.split('//')[1]}/v1/devices",  # another scheme
            "//192.0.2.7/v1/devices",
        ):
            with pytest.raises(CameraProtocolError, match="another host"):
                await api.request("GET", elsewhere)


def test_settings_refuse_plain_http_off_loopback_and_unknown_keys() -> None:
    with pytest.raises(ValueError, match="loopback"):
        RingSettings.from_mapping({"api_base_url": "http://api.example.com"})
    with pytest.raises(ValueError, match="unknown keys"):
        RingSettings.from_mapping({"api_base": "https://api.example.com"})


async def test_no_token_in_logs_reprs_or_errors(
    sim: RingSimulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    pair = linked(sim, fresh=False)
    seen: list[Tokens] = []
    errors: list[Exception] = []
    api = client(sim, pair, seen.append)
    async with api:
        await api.devices()  # a refresh
        sim.expire_tokens()
        await api.devices()  # 401, refresh, retry
        sim.rate_limit(1, 60)
        with pytest.raises(AdapterError) as limited:
            await api.devices()
        errors.append(limited.value)
    async with client(sim, pair, secret="nope") as refused:
        with pytest.raises(CameraAuthError) as lost:
            await refused.refresh()
        errors.append(lost.value)
    settings = RingSettings.from_mapping(sim.settings)
    adapter = RingAdapter(settings)
    secrets = {
        CLIENT_SECRET,
        pair.access_token.reveal(),
        pair.refresh_token.reveal(),
        *(t.access_token.reveal() for t in seen),
        *(t.refresh_token.reveal() for t in seen),
    }
    shown = [
        caplog.text,
        repr(api),
        repr(pair),
        str(pair),
        repr(settings),
        repr(adapter),
        *(t.__repr__() for t in seen),
        *(str(e) for e in errors),
        *(repr(e) for e in errors),
    ]
    assert "Ring answered 401" in caplog.text  # the log did record what happened
    for text in shown:
        for secret in secrets:
            assert secret not in text


async def test_requests_refused_together_refresh_once(sim: RingSimulator) -> None:
    saved: list[Tokens] = []
    async with client(sim, linked(sim), saved.append) as api:
        sim.expire_tokens()
        start = len(sim.log())
        async with anyio.create_task_group() as tasks:
            for _ in range(3):
                tasks.start_soon(api.devices)
    calls = since(sim, start)
    assert calls.count(("POST", "/oauth/token", 200)) == 1
    assert len(saved) == 1
    assert calls.count(("GET", "/v1/devices", 200)) == 3


async def test_adapters_sharing_a_token_file_adopt_each_others_rotation(
    sim: RingSimulator, tmp_path: Path
) -> None:
    pair = sim.link()
    settings = {
        **sim.settings,
        "access_token": pair["access_token"],
        "refresh_token": pair["refresh_token"],
        "access_expires_at": 0,
        "token_file": str(tmp_path / "tokens.json"),
    }
    first, second = RingAdapter.from_settings(settings), RingAdapter.from_settings(settings)
    try:
        second.client()  # holds the tokens from the settings, as the first one does
        start = len(sim.log())
        await first.devices()  # rotates: the refresh token both started with is spent
        assert len(await second.devices()) == 3  # adopts the rotated tokens from the file
        assert since(sim, start) == [
            ("POST", "/oauth/token", 200),
            ("GET", "/v1/devices", 200),
            ("GET", "/v1/devices", 200),
        ]
        assert second.client().tokens == first.client().tokens
    finally:
        await first.aclose()
        await second.aclose()


async def test_the_event_history_is_followed_page_by_page(sim: RingSimulator) -> None:
    async with client(sim, linked(sim)) as api:
        events = await api.history("ava1.ring.device.SIM1")
        humans = await api.history("ava1.ring.device.SIM1", ("motion.human",))
    assert [e.id for e in events] == [f"ava1.ring.device.SIM1.event.{k}" for k in range(7)]
    assert {e.event_type for e in events} == {"motion", "ding"}
    assert all(e.device_id == "ava1.ring.device.SIM1" for e in events)
    assert [e.start for e in events] == sorted((e.start for e in events), reverse=True)
    assert {(e.event_type, e.sub_type) for e in humans} == {("motion", "human")}
    pages = [
        e for e in sim.log() if e["path"] == "/v1/history/devices/ava1.ring.device.SIM1/events"
    ]
    assert len(pages) == 3 + 1  # seven events, three a page; then the three human ones
