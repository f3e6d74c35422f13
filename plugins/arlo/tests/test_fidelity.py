"""The simulator checked by an independent client: pyaarlo (a test-only dependency, unchanged
and unpatched), pointed at the simulator's login and API hosts, must log in through the push
factor and the pairing step and list the same base station and cameras as camgate's own client.

pyaarlo is synchronous and starts threads of its own (the event stream, its background
refresher), so it runs in a child interpreter of this environment and reports as JSON.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading

import anyio
import pytest
from camgate_arlo import ArloAdapter
from camgate_arlo.testing import EMAIL, PASSWORD, ArloSimulator

PROBE = """
import json, os, sys, tempfile, pyaarlo
api, auth, email, password = sys.argv[1:5]
arlo = pyaarlo.PyArlo(username=email, password=password, host=api, auth_host=auth,
    tfa_source="push", tfa_type="push", storage_dir=tempfile.mkdtemp(), backend="sse",
    synchronous_mode=True, request_timeout=10, tfa_retries=40, tfa_delay=0.5, save_state=False)
print(json.dumps({
    "connected": bool(arlo.is_connected),
    # pyaarlo's own flag: the event stream said {"status": "connected"} (it waits 30 s, then
    # carries on without it)
    "events": bool(arlo.be._event_connected),
    "bases": sorted(b.device_id for b in arlo.base_stations),
    "cameras": sorted([c.device_id, c.model_id, c.parent_id] for c in arlo.cameras),
}), flush=True)
os._exit(0)  # pyaarlo's stop() waits up to 10 s for its event thread; nothing is left to check
"""


def _pyaarlo_sees(sim: ArloSimulator) -> dict[str, object]:
    """Run pyaarlo against ``sim``, approving its push factor while it polls."""
    done = threading.Event()

    def approve() -> None:
        while not done.wait(0.3):
            sim.approve()

    threading.Thread(target=approve, daemon=True).start()
    try:
        result = subprocess.run(
            [sys.executable, "-c", PROBE, sim.api, sim.auth, EMAIL, PASSWORD],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        done.set()
    assert result.returncode == 0, result.stderr[-2000:]
    seen: dict[str, object] = json.loads(result.stdout.strip().splitlines()[-1])
    return seen


async def _camgate_sees(sim: ArloSimulator) -> list[list[str]]:
    adapter = ArloAdapter.from_settings(sim.settings)
    try:
        return sorted(
            [d.device_id, d.model_id, d.parent_id] for d in await adapter.devices() if d.is_camera
        )
    finally:
        await adapter.aclose()


def test_pyaarlo_logs_in_and_lists_the_same_devices_as_camgate() -> None:
    pytest.importorskip("pyaarlo")  # a dev dependency: absent only outside the workspace
    with ArloSimulator(cameras=2) as sim:
        theirs = _pyaarlo_sees(sim)
        paths = {str(entry.get("path", "")).rsplit("/", 1)[-1] for entry in sim.log()}
        mine = anyio.run(_camgate_sees, sim)
    assert theirs["connected"] is True
    assert theirs["events"] is True, "pyaarlo never saw the event stream's first event"
    assert theirs["bases"] == ["SIMBASE"]
    assert theirs["cameras"] == mine
    assert len(mine) == 2
    # pyaarlo went through the same factor flow and pairing step as our client
    assert {"startAuth", "finishAuth", "validateAccessToken", "startPairingFactor"} <= paths
