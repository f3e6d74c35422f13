"""Logging in to the simulated Arlo cloud: each factor type, browser pairing, re-use of the
persisted session, and each login error (9204, 9261, a wrong password, Cloudflare, an expired
session), with no secret in any message or log record."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from camgate.errors import AdapterError, CameraAuthError, CameraUnreachable
from camgate_arlo import ArloAdapter, ArloSession, ArloSettings, Factor, LoginReply
from camgate_arlo.client import HttpxLoginTransport
from camgate_arlo.testing import PASSWORD, ArloSimulator

pytestmark = pytest.mark.anyio


class Prompt:
    """The embedder's side of the factor flow: picks ``kind``; reads the code the simulator
    "sent" (or a ``wrong`` one); for PUSH, sets ``chosen`` (the test approves at the
    simulator, as the owner taps "approve" on the phone)."""

    def __init__(self, sim: ArloSimulator, kind: str, *, wrong: bool = False) -> None:
        self.sim, self.kind, self.wrong = sim, kind, wrong
        self.offered: list[str] = []
        self.chosen = anyio.Event()

    async def choose(self, factors: Sequence[Factor]) -> Factor:
        self.offered = [f.kind for f in factors]
        self.chosen.set()
        return next(f for f in factors if f.kind == self.kind)

    async def code(self, factor: Factor) -> str:
        assert factor.kind != "PUSH"
        code = await anyio.to_thread.run_sync(self.sim.otp)
        assert code is not None
        return "000000" if self.wrong and code != "000000" else code


def fresh(sim: ArloSimulator, tmp_path: Path, **extra: Any) -> ArloAdapter:
    """An adapter with the account's e-mail and password, no session, a session file."""
    settings = sim.account_settings() | {"session_file": str(tmp_path / "s.json")} | extra
    return ArloAdapter(ArloSettings.from_mapping(settings))


def calls(sim: ArloSimulator, since: int) -> list[tuple[str, str, int]]:
    return [(e["host"], e["path"], e["status"]) for e in sim.log()[since:] if "path" in e]


@pytest.mark.parametrize("kind", ["EMAIL", "SMS"])
async def test_a_code_factor_logs_in_pairs_and_the_next_login_needs_none(
    arlo: ArloSimulator, tmp_path: Path, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    adapter = fresh(arlo, tmp_path)
    start = len(arlo.log())
    prompt = Prompt(arlo, kind)
    try:
        session = await adapter.client().login(prompt)
    finally:
        await adapter.aclose()
    assert prompt.offered == ["EMAIL", "SMS", "PUSH"]
    paths = [p for _, p, _ in calls(arlo, start)]
    assert [p.split("?")[0] for p in paths] == [
        "/api/auth",
        "/api/getFactorId",  # 9204: a new client is not trusted
        "/api/getFactors",
        "/api/startAuth",
        "/api/finishAuth",
        "/api/startPairingFactor",
        "/api/validateAccessToken",
        "/hmsweb/users/session/v3",
    ]
    # Persisted (owner only) before use, with the trust cookie the pairing set.
    stored = tmp_path / "s.json"
    assert stored.stat().st_mode & 0o777 == 0o600
    assert ArloSession.from_json(stored.read_text()) == session
    assert any(name.startswith("browser_trust_") for name in session.cookies)

    # Next time (the token expired), the paired client logs in without any factor.
    arlo.expire()
    again = fresh(arlo, tmp_path)
    start = len(arlo.log())
    try:
        devices = await again.devices()
    finally:
        await again.aclose()
    assert [d.device_id for d in devices if d.is_camera] == ["SIMCAM1", "SIMCAM2"]
    paths = [p.split("?")[0] for _, p, _ in calls(arlo, start)]
    assert "/api/getFactors" not in paths and "/api/finishAuth" not in paths
    assert paths[:4] == [
        "/hmsweb/v2/users/devices",  # 401: expired
        "/api/auth",
        "/api/getFactorId",  # trusted now
        "/api/startAuth",
    ]
    text = caplog.text + repr(session) + str(session)
    for secret in (PASSWORD, session.token.reveal(), *session.cookies.values()):
        assert secret not in text


async def test_a_push_factor_is_polled_until_the_owner_approves(
    arlo: ArloSimulator, tmp_path: Path
) -> None:
    adapter = fresh(arlo, tmp_path, push_poll_s=0.1)
    prompt = Prompt(arlo, "PUSH")
    start = len(arlo.log())
    try:
        async with anyio.create_task_group() as tasks:

            async def login() -> None:
                await adapter.client().login(prompt)

            tasks.start_soon(login)
            await prompt.chosen.wait()
            await anyio.sleep(0.3)  # the client polls meanwhile
            await anyio.to_thread.run_sync(arlo.approve)
    finally:
        await adapter.aclose()
    finishes = [s for _, p, s in calls(arlo, start) if p == "/api/finishAuth"]
    assert len(finishes) >= 2  # polled: refused until approved
    assert (tmp_path / "s.json").exists()


async def test_a_wrong_code_is_9261(arlo: ArloSimulator, tmp_path: Path) -> None:
    adapter = fresh(arlo, tmp_path)
    try:
        with pytest.raises(CameraAuthError, match="9261") as info:
            await adapter.client().login(Prompt(arlo, "EMAIL", wrong=True))
    finally:
        await adapter.aclose()
    assert "code" in str(info.value)
    assert not (tmp_path / "s.json").exists()


async def test_an_untrusted_client_without_a_prompt_is_9204(
    arlo: ArloSimulator, tmp_path: Path
) -> None:
    adapter = fresh(arlo, tmp_path)
    try:
        with pytest.raises(CameraAuthError, match="9204.*camgate arlo link"):
            await adapter.devices()  # no session: a login without a prompt
    finally:
        await adapter.aclose()


async def test_a_wrong_password_is_an_auth_error(arlo: ArloSimulator, tmp_path: Path) -> None:
    adapter = fresh(arlo, tmp_path, password="not-the-password")
    try:
        with pytest.raises(CameraAuthError, match="e-mail or password") as info:
            await adapter.client().login(Prompt(arlo, "EMAIL"))
    finally:
        await adapter.aclose()
    assert "not-the-password" not in str(info.value)


async def test_an_expired_session_without_a_password_says_so(
    arlo: ArloSimulator, tmp_path: Path
) -> None:
    settings = {k: v for k, v in arlo.settings.items() if k not in ("password", "session_file")}
    settings["session"] = json.dumps(arlo.link())
    arlo.expire()
    adapter = ArloAdapter(ArloSettings.from_mapping(settings))
    try:
        with pytest.raises(CameraAuthError, match="expired"):
            await adapter.devices()
    finally:
        await adapter.aclose()


@pytest.mark.parametrize("status", ["403", "429"])
async def test_cloudflare_refusing_the_login_host_names_the_transport(
    arlo: ArloSimulator, tmp_path: Path, status: str
) -> None:
    arlo.cloudflare(status)
    adapter = fresh(arlo, tmp_path)
    try:
        with pytest.raises(AdapterError, match=f"{status}.*login transport") as info:
            await adapter.client().login(Prompt(arlo, "EMAIL"))
    finally:
        await adapter.aclose()
    assert not isinstance(info.value, CameraAuthError)  # not the owner's password


class RecordingTransport:
    """A login transport of the embedder's (here: httpx, recording the URLs it was given)."""

    def __init__(self) -> None:
        self.inner = HttpxLoginTransport()
        self.urls: list[str] = []

    async def send(
        self, method: str, url: str, headers: Mapping[str, str], body: Any
    ) -> LoginReply:
        self.urls.append(url)
        return await self.inner.send(method, url, headers, body)

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_the_login_transport_carries_the_login_host_only(
    arlo: ArloSimulator, tmp_path: Path
) -> None:
    transport = RecordingTransport()
    settings = ArloSettings.from_mapping(
        arlo.account_settings() | {"session_file": str(tmp_path / "s.json")}
    )
    adapter = ArloAdapter(settings, transport=transport)
    try:
        await adapter.client().login(Prompt(arlo, "SMS"))
        await adapter.devices()
    finally:
        await adapter.aclose()
    assert transport.urls and all(u.startswith(arlo.auth + "/api/") for u in transport.urls)


async def test_an_offline_device_is_2059(arlo: ArloSimulator) -> None:
    adapter = ArloAdapter.from_settings(arlo.settings)
    arlo.set_offline("SIMCAM2")
    try:
        device = await adapter.device("SIMCAM2")
        with pytest.raises(CameraUnreachable, match="2059"):
            await adapter.client().start_stream(device, adapter.settings.user_agent)
        with pytest.raises(CameraUnreachable, match="no camera 'SIMBASE'"):
            await adapter.device("SIMBASE")  # a base station is not a camera
    finally:
        await adapter.aclose()


async def test_the_simulator_refuses_an_unknown_host(arlo: ArloSimulator) -> None:
    """The hosts are separate: the API host does not answer the login host's paths."""
    async with httpx.AsyncClient() as client:
        response = await client.post(f"{arlo.events}/api/auth", json={})
    assert response.status_code == 404


async def test_a_push_nobody_approves_times_out(arlo: ArloSimulator, tmp_path: Path) -> None:
    adapter = fresh(arlo, tmp_path, push_poll_s=0.1, push_timeout_s=0.5)
    try:
        with anyio.fail_after(10), pytest.raises(CameraAuthError, match="not approved"):
            await adapter.client().login(Prompt(arlo, "PUSH"))
    finally:
        await adapter.aclose()
    assert not (tmp_path / "s.json").exists()
