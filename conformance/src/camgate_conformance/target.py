"""What the suite runs against: a target, its backdoor and the vendor faults it can stage.

A vendor plugin provides a target through the ``camgate_conformance_target`` hook. The shapes
below are :class:`typing.Protocol` classes, so a plugin implements them structurally and need not
depend on this distribution. When no plugin provides a target, :func:`resolve_target` wraps the
plugin's ``camgate_simulator`` (:class:`SimulatorTarget`): no backdoor and no faults, so the checks
that need them are reported as not run.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, runtime_checkable

from camgate.adapters import Simulator
from camgate.errors import ConfigError, PluginError
from camgate.plugins import PluginHost

__all__ = [
    "Backdoor",
    "ConfigTarget",
    "FaultCase",
    "SimulatorTarget",
    "Target",
    "VendorEvent",
    "load_config",
    "resolve_target",
]


@runtime_checkable
class VendorEvent(Protocol):
    """One thing the vendor side saw a client do.

    ``at`` is ``time.monotonic()`` on this machine when it happened (the vendor side's clock
    must be comparable); ``client`` identifies the connection; ``kind`` names the request
    (``connect``, ``describe``, ``play``, ``closed``, ...); ``camera`` is the source it concerns,
    when it concerns one; ``media`` is True for a request that asks for media.
    """

    at: float
    client: str
    kind: str

    @property
    def camera(self) -> str | None:
        """The camera source the event concerns, if any."""
        ...

    @property
    def media(self) -> bool:
        """True when this request asks the vendor for media."""
        ...


@runtime_checkable
class Backdoor(Protocol):
    """The vendor side's own record of what happened: read without going through the adapter."""

    def events(self) -> Sequence[VendorEvent]:
        """Every event so far, in order."""
        ...

    def open_clients(self) -> set[str]:
        """The connections open now."""
        ...


@runtime_checkable
class FaultCase(Protocol):
    """A vendor fault staged by a target.

    ``source`` and ``settings`` reach the faulty camera; ``secret`` is a credential in those
    settings that must never appear in an error; ``within_s`` is how long the adapter may take
    to report the fault; with ``mid_stream`` the fault happens only when ``trigger`` is called,
    after the first packet (``drops``).
    """

    source: str
    settings: Mapping[str, Any]
    secret: str
    within_s: float
    mid_stream: bool

    def trigger(self) -> None:
        """Make the fault happen now (a no-op for faults present from the start)."""
        ...


@runtime_checkable
class Target(Protocol):
    """Cameras for the suite to reach, and what the suite may know about the vendor side.

    Entering starts it; ``close`` (and leaving) stops everything it started. ``sources`` are
    camera addresses (two or more so a grant can name the wrong camera); ``settings`` the
    adapter settings that reach them; ``audio_source`` a camera that has audio, or None;
    ``backdoor`` the vendor side's own log, None for a real device.
    """

    description: str
    sources: list[str]
    settings: dict[str, Any]
    audio_source: str | None
    backdoor: Backdoor | None

    def __enter__(self) -> Any: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Any: ...

    def fault(self, name: str) -> AbstractContextManager[FaultCase] | None:
        """Stage the vendor fault ``name`` (see ``checks.FAULTS``), or None if it cannot."""
        ...

    def close(self) -> None:
        """Stop everything the target started. Idempotent."""
        ...


class _PlainTarget:
    """A target with no backdoor and no faults: the checks that need them are not run."""

    description = "target"
    backdoor: Backdoor | None = None

    def __exit__(self, *exc: object) -> None:
        self.close()

    def fault(self, name: str) -> AbstractContextManager[FaultCase] | None:
        """No faults: a bare simulator has none, and the suite never breaks real devices."""
        return None

    def close(self) -> None:
        """Nothing to stop."""


class SimulatorTarget(_PlainTarget):
    """A target around a plain ``camgate_simulator``: cameras, but no backdoor and no faults."""

    def __init__(self, simulator: Simulator) -> None:
        self._simulator = simulator
        self.description = f"simulator {type(simulator).__name__} (no backdoor)"
        self.sources: list[str] = []
        self.settings: dict[str, Any] = {}
        self.audio_source: str | None = None

    def __enter__(self) -> SimulatorTarget:
        self._simulator.__enter__()
        self.sources = list(self._simulator.sources)
        self.settings = dict(self._simulator.settings)
        return self

    def close(self) -> None:
        """Stop the simulator."""
        self._simulator.close()


class ConfigTarget(_PlainTarget):
    """A real device or account described by a settings file: no backdoor, no faults.

    The file (TOML or JSON) has ``sources`` (a list of camera addresses), ``settings`` (the
    adapter's settings, credentials included) and optionally ``audio_source``.
    """

    def __init__(self, config: Mapping[str, Any], description: str = "settings file") -> None:
        sources = config.get("sources")
        if (
            not isinstance(sources, list)
            or not sources
            or not all(isinstance(s, str) for s in sources)
        ):
            raise ConfigError("a target settings file needs 'sources': a list of camera addresses")
        settings = config.get("settings", {})
        if not isinstance(settings, Mapping):
            raise ConfigError("a target settings file's 'settings' must be a table")
        self.description = description
        self.sources = list(sources)
        self.settings = dict(settings)
        audio = config.get("audio_source")
        self.audio_source: str | None = audio if isinstance(audio, str) else None

    def __enter__(self) -> ConfigTarget:
        return self


def load_config(path: str | Path) -> dict[str, Any]:
    """Read a target settings file (``.toml`` or ``.json``); ConfigError says what is wrong."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read the target settings file {path}: {exc}") from exc
    try:
        data: Any = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(
            f"{path} is not valid {path.suffix.lstrip('.') or 'TOML'}: {exc}"
        ) from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a table of settings")
    data.setdefault("description", f"device from {path.name}")
    return data


def resolve_target(host: PluginHost, adapter: str, spec: str = "SIM") -> Target:
    """The target for ``adapter``: ``"SIM"`` for the plugin's simulator, else a settings file.

    The plugin's ``camgate_conformance_target`` answers first; a settings file no plugin claims
    becomes a :class:`ConfigTarget`; a simulator no plugin wraps becomes a
    :class:`SimulatorTarget`. PluginError when there is neither.
    """
    config = None if spec.upper() == "SIM" else load_config(spec)
    found = host.conformance_target(adapter, config)
    if found is not None:
        if not isinstance(found, Target):
            raise PluginError(
                f"the conformance target for {adapter!r} ({type(found).__name__}) lacks parts of "
                "the Target protocol (sources, settings, audio_source, backdoor, fault, close)"
            )
        return found
    if config is not None:
        return ConfigTarget(config, str(config.get("description", "settings file")))
    return SimulatorTarget(host.simulator(adapter, 2))
