"""The app (consumer) backend against the simulator: sign-in with 2FA and its limit, a stable
hardware id persisted with the account, single-use refresh tokens persisted before use, the
device list of every group."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from camgate.adapters import Secret
from camgate.errors import CameraAuthError
from camgate_ring.app import (
    AppAccountFile,
    AppClient,
    TwoFactorLimited,
    TwoFactorRequired,
    WrongCode,
    app_login,
)
from camgate_ring.testing import APP_CODE, APP_PASSWORD, APP_USER, RingSimulator

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def app_sim() -> Iterator[RingSimulator]:
    """Two devices: a battery doorbell at 71 % and a line-powered stick-up camera."""
    with RingSimulator(devices=2, battery={1: 71}) as running:
        yield running


async def sign_in(sim: RingSimulator, account: AppAccountFile) -> AppClient:
    """Sign in (password, then the code) and return a client whose tokens persist to
    ``account``."""
    hardware_id = account.load_or_create().hardware_id
    login = {
        "token_url": f"{sim.base}/oauth/token",
        "username": APP_USER,
        "password": Secret(APP_PASSWORD),
        "hardware_id": hardware_id,
    }
    with pytest.raises(TwoFactorRequired) as asked:
        await app_login(**login)  # type: ignore[arg-type]
    assert (asked.value.channel, asked.value.destination) == ("sms", "+1xxxxxxx89")
    tokens = await app_login(code=Secret(APP_CODE), **login)  # type: ignore[arg-type]
    account.save_tokens(tokens)
    return AppClient(
        api_base=sim.base,
        token_url=f"{sim.base}/oauth/token",
        hardware_id=hardware_id,
        tokens=tokens,
        on_tokens=account.save_tokens,
    )


async def test_sign_in_with_2fa_lists_every_camera_with_its_position(
    app_sim: RingSimulator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    account = AppAccountFile(tmp_path / "ring-app.json")
    with pytest.raises(WrongCode):
        await app_login(
            token_url=f"{app_sim.base}/oauth/token",
            username=APP_USER,
            password=Secret(APP_PASSWORD),
            hardware_id=account.load_or_create().hardware_id,
            code=Secret("000000"),
        )
    async with await sign_in(app_sim, account) as client:
        devices = await client.app_devices()
        await client.app_devices()  # the session is reused
    assert [(d.id, d.group, d.kind) for d in devices] == [
        ("1001", "doorbots", "doorbell_v3"),
        ("1002", "stickup_cams", "stickup_cam_v4"),
    ]
    assert devices[0].battery_percentage == 71 and devices[1].battery_percentage is None
    assert devices[0].latitude == pytest.approx(32.2998) and devices[0].longitude == -90.1848
    assert not devices[0].live_view_disabled and devices[0].online
    state = app_sim.app_state()
    hardware_id = account.load_or_create().hardware_id
    assert state["sessions"] == 1 and hardware_id in state["hardware_ids"]
    app_calls = [e for e in app_sim.log() if e["path"].startswith("/clients_api/")]
    assert app_calls and all(e["hardware_id"] == hardware_id for e in app_calls)
    # The hardware id is random and stable: a UUID 4 (not uuid1's MAC), kept in the file.
    assert uuid.UUID(hardware_id).version == 4
    assert AppAccountFile(account.path).load_or_create().hardware_id == hardware_id
    for secret in (
        APP_PASSWORD,
        APP_CODE,
        json.loads(account.path.read_text())["tokens"]["refresh_token"],
    ):
        assert secret not in caplog.text


async def test_a_single_use_refresh_token_is_persisted_before_it_is_used(
    app_sim: RingSimulator, tmp_path: Path
) -> None:
    account = AppAccountFile(tmp_path / "ring-app.json")
    client = await sign_in(app_sim, account)
    spent = client.tokens.refresh_token
    app_sim.expire_tokens()  # Ring answers 401: the client refreshes, then retries once
    async with client:
        await client.app_devices()
        rotated = client.tokens
    stored = account.load_or_create()
    assert stored.tokens == rotated and rotated.refresh_token != spent
    grants = [e["grant_type"] for e in app_sim.log() if e["path"] == "/oauth/token"]
    assert grants[-1] == "refresh_token"
    # The spent refresh token is refused: an unsaved rotation would have lost the account.
    old = AppClient(
        api_base=app_sim.base,
        token_url=f"{app_sim.base}/oauth/token",
        hardware_id=stored.hardware_id,
        tokens=type(rotated)(rotated.access_token, spent, 0.0),
        on_tokens=lambda _t: None,
    )
    async with old:
        with pytest.raises(CameraAuthError, match="link is lost"):
            await old.refresh()


async def test_the_limit_of_ten_codes_is_reported_clearly(app_sim: RingSimulator) -> None:
    login = {
        "token_url": f"{app_sim.base}/oauth/token",
        "username": APP_USER,
        "password": Secret(APP_PASSWORD),
        "hardware_id": str(uuid.uuid4()),
    }
    sent = app_sim.app_state()["codes_sent"]
    for _ in range(10 - sent):
        with pytest.raises(TwoFactorRequired):
            await app_login(**login)  # type: ignore[arg-type]
    with pytest.raises(TwoFactorLimited, match="10 verification codes in 10 minutes"):
        await app_login(**login)  # type: ignore[arg-type]
    with pytest.raises(CameraAuthError, match="user name or password"):
        await app_login(**{**login, "password": Secret("wrong")})  # type: ignore[arg-type]
