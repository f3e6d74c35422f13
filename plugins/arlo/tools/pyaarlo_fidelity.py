"""Check the Arlo simulator against pyaarlo: login and device list must agree with ours.

pyaarlo is not a workspace dependency (its tree is heavy for a test-only client), so it runs
from a virtualenv of its own::

    uv venv /tmp/pyaarlo-venv && uv pip install --python /tmp/pyaarlo-venv/bin/python pyaarlo
    uv run --locked python plugins/arlo/tools/pyaarlo_fidelity.py /tmp/pyaarlo-venv/bin/python

It starts the simulator, runs pyaarlo in that interpreter against it (push factor, approved
through the backdoor while pyaarlo polls), and compares pyaarlo's base stations and cameras
with what camgate's client lists. Exit status 0 when they agree.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading

import anyio
from camgate_arlo import ArloAdapter
from camgate_arlo.testing import EMAIL, PASSWORD, ArloSimulator

PROBE = """
import json, sys, tempfile, pyaarlo
api, auth, email, password = sys.argv[1:5]
arlo = pyaarlo.PyArlo(username=email, password=password, host=api, auth_host=auth,
    tfa_source="push", tfa_type="push", storage_dir=tempfile.mkdtemp(), backend="sse",
    synchronous_mode=True, request_timeout=10, tfa_retries=40, tfa_delay=0.5, save_state=False)
print(json.dumps({
    "connected": bool(arlo.is_connected),
    "bases": sorted(b.device_id for b in arlo.base_stations),
    "cameras": sorted([c.device_id, c.model_id, c.parent_id] for c in arlo.cameras),
}))
arlo.stop()
"""


def main() -> int:
    python = sys.argv[1]
    with ArloSimulator(cameras=2) as sim:
        done = threading.Event()

        def approve() -> None:
            while not done.wait(0.3):
                sim.approve()

        threading.Thread(target=approve, daemon=True).start()
        try:
            result = subprocess.run(
                [python, "-c", PROBE, sim.api, sim.auth, EMAIL, PASSWORD],
                capture_output=True,
                text=True,
                timeout=120,
                check=True,
            )
        finally:
            done.set()
        theirs = json.loads(result.stdout.strip().splitlines()[-1])

        async def ours() -> list[list[str]]:
            adapter = ArloAdapter.from_settings(sim.settings)
            try:
                return sorted(
                    [d.device_id, d.model_id, d.parent_id]
                    for d in await adapter.devices()
                    if d.is_camera
                )
            finally:
                await adapter.aclose()

        mine = anyio.run(ours)
    print(json.dumps({"pyaarlo": theirs, "camgate": mine}, indent=1))
    agree = theirs["connected"] and theirs["cameras"] == mine and theirs["bases"] == ["SIMBASE"]
    print("AGREE" if agree else "DISAGREE")
    return 0 if agree else 1


if __name__ == "__main__":
    sys.exit(main())
