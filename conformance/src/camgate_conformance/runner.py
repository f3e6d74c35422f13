"""Run the checks against one adapter and one target, and collect a :class:`Report`.

:func:`run_suite` is the synchronous entry (the CLI, an agency's harness); :func:`run_checks`
is the async core. Neither needs pytest.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import anyio
from camgate.adapters import AdapterFactory
from camgate.errors import ConfigError
from camgate.plugins import PluginHost

from camgate_conformance.checks import CHECKS, Context
from camgate_conformance.model import (
    NOT_DECLARED,
    Check,
    CheckFailed,
    CheckResult,
    NotRun,
    Report,
    Status,
    SuiteConfig,
)
from camgate_conformance.recorder import Recorder
from camgate_conformance.target import Target, resolve_target

__all__ = ["Progress", "run_checks", "run_suite", "validate"]

#: Called before each check (result None) and after it (with its result).
Progress = Callable[[int, int, Check, CheckResult | None], None]


def _capabilities(factory: AdapterFactory) -> set[str]:
    caps = set(factory.capabilities.to_list())
    if factory.capabilities.keeps_connections_open:
        caps.add("edge_cache")
    return caps


def _precheck(check: Check, ctx: Context, done: dict[str, CheckResult]) -> CheckResult | None:
    """A result without running, when the check does not apply or cannot run."""

    def result(status: Status, reason: str) -> CheckResult:
        return CheckResult(
            check.id, check.group, check.promise, status, reason, observer=check.observer
        )

    if check.id in ctx.config.skip:
        return result(Status.SKIPPED, "left out by configuration (--skip)")
    missing = sorted(check.requires - _capabilities(ctx.factory))
    if missing:
        return result(Status.SKIPPED, f"{NOT_DECLARED} {', '.join(missing)}")
    if check.backdoor and not ctx.observed:
        return result(
            Status.NOT_RUN,
            "needs a view of the vendor side: the recorder could not be put in front of this "
            "target's cameras and it has no backdoor",
        )
    failed = [d for d in check.depends if d in done and done[d].failed]
    if failed:
        return result(Status.NOT_RUN, f"depends on {', '.join(failed)}, which failed")
    return None


#: How long the suite waits for a check's threads, descriptors and tasks to be released
#: (times the slack, at most twice this).
SETTLE_RESOURCES_S = 2.0


def _resources(ctx: Context) -> dict[str, int]:
    """Threads, open file descriptors and asyncio tasks now (the recorder's own left out)."""
    own_threads = set(ctx.recorder.threads) if ctx.recorder is not None else set()
    own_fds = ctx.recorder.own_fds() if ctx.recorder is not None else set()
    recorder = ctx.recorder
    threads = [
        t
        for t in threading.enumerate()
        # anyio's idle worker threads wait for work and go after 10 s; they are a pool
        if t not in own_threads
        and not t.name.startswith("AnyIO worker")
        # threads that are not the run's (an earlier test's relay, reconnecting) come and go
        and not (recorder is not None and recorder.is_foreign(t))
    ]
    try:
        fds = {int(fd) for fd in os.listdir("/proc/self/fd")} - own_fds
    except OSError:
        fds = set()
    return {"threads": len(threads), "fds": len(fds), "tasks": len(asyncio.all_tasks())}


class _Capture(logging.Handler):
    """Keeps every log record of the run (DEBUG up), formatted with its traceback."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__(logging.DEBUG)
        self.lines = lines
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        with contextlib.suppress(Exception):
            self.lines.append(self.format(record) + " " + repr(record.args))


@contextlib.contextmanager
def _capture_logs(lines: list[str]) -> Iterator[None]:
    """Capture every log record at DEBUG for the run (the root level restored after)."""
    root = logging.getLogger()
    handler, level = _Capture(lines), root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


async def _leaked(ctx: Context, before: dict[str, int]) -> dict[str, int]:
    """What stays above ``before`` once the check's resources had time to be released."""
    grown: dict[str, int] = {}
    with anyio.move_on_after(SETTLE_RESOURCES_S * min(ctx.config.budget_slack, 2.0)):
        while True:
            now = _resources(ctx)
            grown = {k: now[k] - before[k] for k in now if now[k] > before[k]}
            if not grown:
                break
            await anyio.sleep(0.05)
    return grown


async def _run_one(check: Check, ctx: Context) -> CheckResult:
    before = _resources(ctx)
    result = await _run_body(check, ctx)
    grown = await _leaked(ctx, before)
    if grown:
        ctx.leaks.append(
            f"{check.id}: " + ", ".join(f"{n} more {what}" for what, n in grown.items())
        )
    return result


async def _run_body(check: Check, ctx: Context) -> CheckResult:
    ctx.measurements = {}
    started = time.perf_counter()
    status, reason = Status.PASSED, ""
    evidence: tuple[str, ...] = ()
    try:
        with anyio.fail_after(check.timeout_s):
            await check.run(ctx)
    except CheckFailed as exc:
        status, evidence = Status.FAILED, tuple(exc.evidence)
        if check.observer == "recorder" and not any(e.startswith("[recorder") for e in evidence):
            evidence += tuple(ctx.evidence(time.monotonic() - 1.0))
    except NotRun as exc:
        status, reason = Status.NOT_RUN, str(exc)
    except TimeoutError:
        status, evidence = Status.ERROR, (f"the check did not finish within {check.timeout_s:g} s",)
    except Exception as exc:
        lines = traceback.format_exception_only(exc)
        status, evidence = Status.ERROR, (f"{type(exc).__name__}: {exc}", *lines[-1:])
    return CheckResult(
        check.id,
        check.group,
        check.promise,
        status,
        reason,
        evidence,
        time.perf_counter() - started,
        dict(ctx.measurements),
        check.observer,
    )


async def _run_all(ctx: Context, done: dict[str, CheckResult], progress: Progress | None) -> None:
    for number, check in enumerate(CHECKS, 1):
        if progress is not None:
            progress(number, len(CHECKS), check, None)
        result = _precheck(check, ctx, done) or await _run_one(check, ctx)
        done[check.id] = result
        if progress is not None:
            progress(number, len(CHECKS), check, result)


def validate(config: SuiteConfig) -> SuiteConfig:
    """``config`` if it leaves out only known, non-gating checks; ConfigError otherwise."""
    gating = sorted(i for i in config.skip if i.startswith("gating."))
    if gating:
        raise ConfigError(f"gating checks cannot be switched off: {', '.join(gating)}")
    unknown = sorted(config.skip - {c.id for c in CHECKS})
    if unknown:
        raise ConfigError(f"no such checks: {', '.join(unknown)}")
    return config


async def run_checks(
    factory: AdapterFactory,
    target: Target,
    config: SuiteConfig | None = None,
    progress: Progress | None = None,
    workdir: Path | None = None,
    plugin: object | None = None,
    foreign_threads: Iterable[threading.Thread] | None = None,
) -> Report:
    """Run every check against ``factory``'s adapter and a started ``target``; ``plugin``, the
    vendor's whole plugin, is registered in every check's gate (all its hooks run).

    ``foreign_threads`` are threads that are not the run's: connects made by them (and the
    threads they start) outside the run's context are left out of the egress check (see
    :mod:`camgate_conformance.recorder`). By default, every thread alive when the run begins
    except the calling one; :func:`run_suite` passes none."""
    config = validate(config or SuiteConfig())
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    began = time.perf_counter()
    done: dict[str, CheckResult] = {}
    with (
        tempfile.TemporaryDirectory(prefix="camgate-conformance-") as scratch,
        Recorder(foreign_threads=foreign_threads) as recorder,
    ):
        ctx = Context(factory, target, config, workdir or Path(scratch), recorder, plugin)
        with _capture_logs(ctx.log_lines):
            await _run_all(ctx, done, progress)
    b = factory.budgets
    return Report(
        adapter=factory.name,
        distribution=factory.distribution,
        version=factory.version,
        target=target.description,
        capabilities=tuple(sorted(_capabilities(factory))),
        budgets={
            "discovery_s": b.discovery_s,
            "snapshot_s": b.snapshot_s,
            "first_frame_s": b.first_frame_s,
            "revocation_s": b.revocation_s,
        },
        config=config,
        results=tuple(done.values()),
        started_at=started_at,
        duration_s=time.perf_counter() - began,
    )


def run_suite(
    adapter: str,
    target: str = "SIM",
    config: SuiteConfig | None = None,
    progress: Progress | None = None,
    host: PluginHost | None = None,
) -> Report:
    """Run the suite for the installed adapter ``adapter`` against ``target`` (``SIM`` or a
    settings file), starting and stopping the target."""
    config = validate(config or SuiteConfig())
    host = host or PluginHost()
    factory = host.adapter(adapter)
    resolved = resolve_target(host, adapter, target)
    with resolved:
        # No thread is foreign here: the vendor's plugin is loaded, and a thread it started
        # at import must not act for it unwatched.
        plugin = _plugin_of(host, adapter)
        return anyio.run(run_checks, factory, resolved, config, progress, None, plugin, ())


def _plugin_of(host: PluginHost, adapter: str) -> object | None:
    """The plugin object that registers ``adapter`` (its other hooks run under test too)."""
    for impl in host.pm.hook.camgate_register_adapters.get_hookimpls():
        names: list[str] = []
        impl.function(register=lambda factory, names=names: names.append(factory.name))
        if adapter in names:
            return impl.plugin
    return None
