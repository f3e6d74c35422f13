"""Linking an account against the simulator's authorisation page and token endpoint: the
Python flow the owner portal reuses, and ``camgate ring link`` as a real process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import anyio
import attrs
import httpx
import pytest
from camgate.adapters import Secret
from camgate.errors import CameraAuthError, ConfigError
from camgate_ring import RingAdapter, TokenFile, Tokens
from camgate_ring.link import authorization_request, finish, link_loopback
from camgate_ring.testing import CLIENT_ID, CLIENT_SECRET, RingSimulator

pytestmark = pytest.mark.anyio


def _flow(sim: RingSimulator) -> dict[str, object]:
    return {
        "token_url": f"{sim.base}/oauth/token",
        "client_id": CLIENT_ID,
        "client_secret": Secret(CLIENT_SECRET),
    }


async def test_the_portal_flow_links_an_account_the_adapter_then_uses(
    sim: RingSimulator, tmp_path: Path
) -> None:
    request = authorization_request(
        f"{sim.base}/oauth/authorize", CLIENT_ID, "https://portal.example/ring/done"
    )
    asked = parse_qs(urlsplit(request.url).query)
    assert asked["code_challenge_method"] == ["S256"] and asked["response_type"] == ["code"]
    assert request.verifier.reveal() not in request.url  # only the challenge travels
    redirect = sim.owner_decides(request.url)
    store = TokenFile(tmp_path / "tokens.json")
    tokens = await finish(request, urlsplit(redirect).query, on_tokens=store.save, **_flow(sim))
    assert store.load() == tokens
    settings = {**sim.settings, "token_file": str(store.path)}
    async with RingAdapter.from_settings(settings) as adapter:
        assert [d.id for d in await adapter.devices()] == sim.sources
    # The code is single-use: a replayed redirect is refused.
    with pytest.raises(CameraAuthError, match="refused the authorisation code"):
        await finish(request, urlsplit(redirect).query, on_tokens=store.save, **_flow(sim))


async def test_a_denial_a_forged_state_or_a_wrong_verifier_links_nothing(
    sim: RingSimulator,
) -> None:
    saved: list[Tokens] = []
    request = authorization_request(f"{sim.base}/oauth/authorize", CLIENT_ID, "https://p.example/")
    denied = sim.owner_decides(request.url, approve=False)
    with pytest.raises(CameraAuthError, match="owner declined"):
        await finish(request, urlsplit(denied).query, on_tokens=saved.append, **_flow(sim))
    # A redirect made for another request (an attacker's code) is refused before any exchange.
    other = authorization_request(f"{sim.base}/oauth/authorize", CLIENT_ID, "https://p.example/")
    forged = sim.owner_decides(other.url)
    start = len(sim.log())
    with pytest.raises(CameraAuthError, match="state does not match"):
        await finish(request, urlsplit(forged).query, on_tokens=saved.append, **_flow(sim))
    assert not [e for e in sim.log()[start:] if e["path"] == "/oauth/token"]
    # The right state with another request's PKCE verifier: Ring refuses the code.
    stolen = attrs.evolve(request, state=other.state)
    with pytest.raises(CameraAuthError, match="refused the authorisation code"):
        await finish(stolen, urlsplit(forged).query, on_tokens=saved.append, **_flow(sim))
    assert saved == []


async def test_tokens_that_cannot_be_persisted_make_no_link(sim: RingSimulator) -> None:
    def broken(_tokens: Tokens) -> None:
        raise OSError("read-only")

    request = authorization_request(f"{sim.base}/oauth/authorize", CLIENT_ID, "https://p.example/")
    redirect = sim.owner_decides(request.url)
    with pytest.raises(ConfigError, match="could not be persisted"):
        await finish(request, urlsplit(redirect).query, on_tokens=broken, **_flow(sim))


async def test_the_loopback_flow_waits_for_the_callback_and_ignores_other_requests(
    sim: RingSimulator,
) -> None:
    saved: list[Tokens] = []
    shown: list[str] = []
    asked = anyio.Event()

    def show(url: str) -> None:
        shown.append(url)
        asked.set()

    async def owner() -> None:
        await asked.wait()
        redirect = await anyio.to_thread.run_sync(sim.owner_decides, shown[0])
        origin = redirect.split("/callback", 1)[0]
        async with httpx.AsyncClient() as browser:
            assert (await browser.get(f"{origin}/favicon.ico")).status_code == 404
            page = await browser.get(redirect)
        assert page.status_code == 200 and "linked" in page.text

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(owner)
        tokens = await link_loopback(
            authorize_url=f"{sim.base}/oauth/authorize",
            on_tokens=saved.append,
            show=show,
            timeout_s=30,
            **_flow(sim),  # type: ignore[arg-type]
        )
    assert saved == [tokens]


async def test_the_loopback_flow_gives_up_when_no_browser_comes(sim: RingSimulator) -> None:
    with pytest.raises(CameraAuthError, match="no answer from the browser"):
        await link_loopback(
            authorize_url=f"{sim.base}/oauth/authorize",
            on_tokens=lambda _t: None,
            show=lambda _u: None,
            timeout_s=0.2,
            **_flow(sim),  # type: ignore[arg-type]
        )


def test_camgate_ring_link_prints_the_address_and_persists_the_tokens(
    sim: RingSimulator, tmp_path: Path
) -> None:
    token_file = tmp_path / "linked.json"
    command = [
        sys.executable,
        "-m",
        "camgate.cli",
        "ring",
        "link",
        "--setting",
        f"client_id={CLIENT_ID}",
        "--setting",
        f"token_url={sim.base}/oauth/token",
        "--setting",
        f"authorize_url={sim.base}/oauth/authorize",
        "--setting",
        f"token_file={token_file}",
        "--timeout",
        "60",
    ]
    env = {**os.environ, "CAMGATE_RING_CLIENT_SECRET": CLIENT_SECRET}
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    ) as process:
        assert process.stdout is not None
        assert "Open this address" in process.stdout.readline()
        url = process.stdout.readline().strip()
        redirect = sim.owner_decides(url)
        assert httpx.get(redirect, timeout=10).status_code == 200
        out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert f"tokens are in {token_file}" in out
    stored = json.loads(token_file.read_text())
    assert stored["refresh_token"] and stat_mode(token_file) == 0o600
    assert stored["refresh_token"] not in out + err and CLIENT_SECRET not in out + err


def stat_mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_camgate_ring_link_refuses_a_secret_on_the_command_line(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "camgate.cli", "ring", "link", "--setting", "client_secret=x"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1 and "CAMGATE_RING_CLIENT_SECRET" in done.stderr
