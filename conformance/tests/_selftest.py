"""One self-test run of the suite, in a process of its own: ``python _selftest.py JOB OUT``.

The self-tests run a whole suite per broken adapter. Each run gets a fresh process (its own
target, no leftovers of other runs, nothing shared with the recorder's process-wide watch) and
several run at once (:class:`SelfTestRuns`): the suite mostly waits on real-time video, so
the runs overlap well on two cores. The report comes back pickled.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import subprocess
import sys
import tempfile
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import attrs

#: The self-tests' configuration: small numbers (they check verdicts, not statistics), and
#: time limits times 4, since several runs share a loaded two-core machine.
SELFTEST = {
    "trials": 3,
    "stateful_examples": 3,
    "stateful_steps": 5,
    "settle_s": 0.3,
    "budget_slack": 4.0,
}
#: How many runs at once.
PARALLEL = int(os.environ.get("CAMGATE_SELFTEST_PARALLEL", "4"))
#: How long one run may take before its test fails (a loaded machine: generous, finite).
RUN_LIMIT_S = 420.0


def _run(job: str) -> Any:
    import anyio
    from camgate_conformance import SuiteConfig, run_checks
    from camgate_onvif.testing.target import OnvifTarget
    from camgate_rtsp.plugin import FACTORY
    from camgate_rtsp.testing.target import RtspTarget

    import conftest  # the broken adapters (this folder is on sys.path)

    config = SuiteConfig(**SELFTEST)
    kind, _, name = job.partition(":")
    name, _, extra = name.partition("+")
    with contextlib.ExitStack() as stack:
        if extra == "leftover":
            stack.enter_context(conftest.LeftoverRelay())
        if kind == "onvif":
            import _broken_onvif

            onvif = stack.enter_context(OnvifTarget())
            if name == "honest":
                from camgate_onvif.plugin import FACTORY as ONVIF

                return anyio.run(run_checks, ONVIF, onvif, config)
            return anyio.run(run_checks, _broken_onvif.factory(name), onvif, config)
        target = stack.enter_context(RtspTarget())
        if name == "honest":
            return anyio.run(run_checks, FACTORY, target, config)
        if name == "too-little":
            return anyio.run(
                run_checks, FACTORY, target, attrs.evolve(config, min_redemptions=1000)
            )
        if name == "prewarm":
            factory = attrs.evolve(FACTORY, name="rtsp-prewarm")
            # The hook reaches the cameras by their own address (it does not know the recorder's).
            plugin = conftest.PrewarmPlugin(factory, target.sources, target.settings)
            return anyio.run(run_checks, factory, target, config, None, None, plugin)
        factory, _expected = conftest.broken_factories()[name]
        return anyio.run(run_checks, factory, target, config)


class SelfTestRuns:
    """Every self-test run, started at once in the background, ``PARALLEL`` at a time."""

    def __init__(self, jobs: list[str]) -> None:
        self._pool = ThreadPoolExecutor(PARALLEL, thread_name_prefix="selftest")
        self._dir = tempfile.TemporaryDirectory(prefix="camgate-selftest-")
        self._runs: dict[str, Future[Any]] = {j: self._pool.submit(self._one, j) for j in jobs}
        self._lock = threading.Lock()

    def _one(self, job: str) -> Any:
        out = Path(self._dir.name) / f"{job.replace(':', '_').replace('+', '_')}.pickle"
        done = subprocess.run(
            [sys.executable, __file__, job, str(out)],
            capture_output=True,
            text=True,
            timeout=RUN_LIMIT_S,
            check=False,
        )
        if done.returncode != 0 or not out.exists():
            raise RuntimeError(f"self-test run {job} failed ({done.returncode}):\n{done.stderr}")
        return pickle.loads(out.read_bytes())  # our own child's output

    def report(self, job: str) -> Any:
        """The report of ``job`` (waits for it; raises what the run raised)."""
        return self._runs[job].result(RUN_LIMIT_S * 4)

    def close(self) -> None:
        """Wait for the runs still going, and remove their files."""
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._dir.cleanup()


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    Path(sys.argv[2]).write_bytes(pickle.dumps(_run(sys.argv[1])))
