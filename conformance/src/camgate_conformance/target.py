"""What the suite runs against: a target, its backdoor and the vendor faults it can stage.

An adapter's :class:`~camgate.adapters.AdapterFactory` names its ``conformance_target`` factory.
The shapes (:class:`Target`, :class:`Backdoor`, :class:`FaultCase`, :class:`VendorEvent`) are
protocols of core's :mod:`camgate.targets`, re-exported here, so a plugin need not depend on this
distribution. When an adapter has no target, :func:`resolve_target` wraps its ``simulator``
(:class:`SimulatorTarget`): no backdoor and no faults, so the checks that need them are reported
as not run.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from camgate.adapters import Simulator
from camgate.errors import ConfigError
from camgate.plugins import PluginHost
from camgate.targets import Backdoor, FaultCase, Target, VendorEvent

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
    """A target around an adapter's plain ``simulator``: cameras, but no backdoor, no faults."""

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
    """The target for ``adapter``: ``"SIM"`` for the plugin's simulator, ``"SIM:<variant>"``
    for a variant of it the adapter's target factory offers (it is given ``{"simulator":
    variant}``; ConfigError when it offers none), else a settings file.

    The adapter's own ``conformance_target`` factory answers first (the host refuses one that
    lacks parts of the protocol); a settings file it does not claim becomes a
    :class:`ConfigTarget`; a simulator with no target becomes a :class:`SimulatorTarget`.
    PluginError when there is neither.
    """
    variant = spec[4:] if spec.upper().startswith("SIM:") else None
    config = None if spec.upper() == "SIM" else load_config(spec) if variant is None else None
    if variant is not None:  # a simulated variant the adapter's target factory offers
        config = {"simulator": variant}
    found = host.conformance_target(adapter, config)
    if found is not None:
        return found
    if variant is not None:
        raise ConfigError(f"{adapter!r} offers no simulated target {variant!r}")
    if config is not None:
        return ConfigTarget(config, str(config.get("description", "settings file")))
    return SimulatorTarget(host.simulator(adapter, 2))
