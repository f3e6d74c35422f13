"""The simulator's app side, checked by an independent client: python-ring-doorbell (a
test-only dependency, unchanged and unpatched) reaches Ring's own HTTPS host names, which a
resolver maps to the simulator's TLS port; TLS is verified against the simulator's test CA.
It must sign in with 2FA and list the same devices and history that camgate's own client and
the simulator's configuration give."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator
from typing import Any

import aiohttp
import aiohttp.abc
import pytest
from camgate.adapters import Secret
from camgate_ring.app import AppClient, app_login
from camgate_ring.testing import APP_CODE, APP_PASSWORD, APP_USER, RING_HOSTS, RingSimulator
from ring_doorbell import Auth, Requires2FAError, Ring

pytestmark = pytest.mark.anyio


class ToSimulator(aiohttp.abc.AbstractResolver):
    """Resolves Ring's host names to the simulator's TLS port on loopback (nothing else)."""

    def __init__(self, port: int) -> None:
        self.port = port

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[dict[str, Any]]:
        if host not in RING_HOSTS:
            raise OSError(f"not a Ring host: {host}")
        return [
            {
                "hostname": host,
                "host": "127.0.0.1",
                "port": self.port,
                "family": socket.AF_INET,
                "proto": 0,
                "flags": socket.AI_NUMERICHOST,
            }
        ]

    async def close(self) -> None:
        return None


@pytest.fixture(scope="module")
def tls_sim() -> Iterator[RingSimulator]:
    with RingSimulator(devices=2, battery={1: 71}, tls=True) as running:
        yield running


async def test_python_ring_doorbell_lists_the_same_devices_and_history(
    tls_sim: RingSimulator,
) -> None:
    assert tls_sim.ca_file is not None
    trust = ssl.create_default_context(cafile=str(tls_sim.ca_file))
    connector = aiohttp.TCPConnector(resolver=ToSimulator(tls_sim.tls_port), ssl=trust)
    saved: list[dict[str, Any]] = []
    hardware_id = "5f1f6a0e-7c1b-4b9e-9d55-2d0c3f7a9e11"
    async with aiohttp.ClientSession(connector=connector) as session:
        auth = Auth(
            "camgate-fidelity/1.0", None, saved.append, hardware_id, http_client_session=session
        )
        with pytest.raises(Requires2FAError):
            await auth.async_fetch_token(APP_USER, APP_PASSWORD)
        await auth.async_fetch_token(APP_USER, APP_PASSWORD, APP_CODE)
        assert saved and saved[-1]["scope"] == ["client"]
        ring = Ring(auth)
        await ring.async_update_data()
        theirs = {str(d.id): d for d in ring.get_device_list() if d.family != "chimes"}
        history = {
            key: [e["id"] for e in await device.async_history(limit=4)]
            for key, device in theirs.items()
        }
        older = await theirs["1001"].async_history(limit=10, older_than=history["1001"][-1])
    async with AppClient(
        api_base=tls_sim.base,
        token_url=f"{tls_sim.base}/oauth/token",
        hardware_id=hardware_id,
        tokens=await app_login(
            token_url=f"{tls_sim.base}/oauth/token",
            username=APP_USER,
            password=Secret(APP_PASSWORD),
            hardware_id=hardware_id,
            code=Secret(APP_CODE),
        ),
        on_tokens=lambda _t: None,
    ) as ours:
        mine = await ours.app_devices()
    assert sorted(theirs) == [d.id for d in mine] == ["1001", "1002"]
    assert [theirs[d.id].name for d in mine] == [d.name for d in mine]
    assert theirs["1001"].battery_life == 71 and mine[0].battery_percentage == 71
    # Newest first, paged by older_than: the simulator's seven events per device.
    assert history["1001"] == [100107, 100106, 100105, 100104]
    assert [e["id"] for e in older] == [100103, 100102, 100101]
    # Every request of the library carried the hardware id it was given.
    app_calls = [e for e in tls_sim.log() if e["path"].startswith("/clients_api/")]
    assert app_calls and {e["hardware_id"] for e in app_calls} == {hardware_id}
