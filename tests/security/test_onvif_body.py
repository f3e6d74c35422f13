"""#12 item 15: an endless body from a device (a snapshot, a SOAP reply) is read only up to
the documented limit (``max_body_bytes``, default camgate.adapters.VENDOR_BODY_LIMIT) and
ends in a clear CameraProtocolError; memory stays bounded. Attacker: a hostile or broken
camera. Measured in bytes (tracemalloc's peak of Python allocations, and what the device
managed to send), not in time."""

from __future__ import annotations

import tracemalloc
from typing import Any

import anyio
import pytest
from camgate.errors import CameraProtocolError
from camgate_onvif.testing.simulator import Quirks

from tests.security._onvif import adapter, camera, grant, make_sim, rtsp_server

__all__ = ["make_sim", "rtsp_server"]

pytestmark = pytest.mark.anyio

LIMIT = 1024 * 1024


async def _sent(sim: Any) -> int:
    """What the device sent of its endless body, once its writer noticed the close."""
    for _ in range(200):
        if sim.sent_bytes:
            return int(sim.sent_bytes[0])
        await anyio.sleep(0.05)
    raise AssertionError("the device is still sending: the reader did not stop")


async def _peak(coro: Any) -> tuple[int, BaseException | None]:
    tracemalloc.start()
    error: BaseException | None = None
    try:
        await coro
    except Exception as exc:
        error = exc
    finally:
        _size, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return peak, error


async def test_endless_snapshot_body_is_cut_at_the_limit(make_sim: Any) -> None:
    sim = make_sim(quirks=Quirks(endless_body={"snapshot"}))
    cam = camera(sim)
    async with adapter(sim, max_body_bytes=LIMIT, timeout_s=4) as onvif:
        await onvif.streams(cam.source)  # connect first: measure the snapshot alone
        peak, error = await _peak(onvif.snapshot(cam, grant(cam, "snapshot")))
    assert isinstance(error, CameraProtocolError), error
    assert f"longer than {LIMIT} bytes" in str(error) and "/dev1/snapshot/main.jpg" in str(error)
    assert peak < 4 * LIMIT, f"peak {peak} bytes"
    assert await _sent(sim) < 64 * LIMIT  # the reader stopped early


async def test_endless_soap_reply_is_cut_at_the_limit(make_sim: Any) -> None:
    sim = make_sim(quirks=Quirks(endless_body={"GetProfiles"}))
    async with adapter(sim, max_body_bytes=LIMIT, timeout_s=4) as onvif:
        peak, error = await _peak(onvif.streams(sim.sources[0]))
    assert isinstance(error, CameraProtocolError), error
    assert f"longer than {LIMIT} bytes" in str(error) and "media_service" in str(error)
    assert peak < 8 * LIMIT, f"peak {peak} bytes"
    assert await _sent(sim) < 64 * LIMIT


def test_the_limit_is_documented_and_settable() -> None:
    from camgate.adapters import VENDOR_BODY_LIMIT
    from camgate_onvif.adapter import OnvifSettings

    assert OnvifSettings().max_body_bytes == VENDOR_BODY_LIMIT == 16 * 1024 * 1024
    assert OnvifSettings.from_mapping({"max_body_bytes": 1000}).max_body_bytes == 1000
