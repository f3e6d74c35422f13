"""The plugin host: a typed facade over pluggy, so core code never calls ``pm.hook.x`` by hand.

Start-up is four steps: a ``PluginManager("camgate")``, the hook specifications, camgate's own
built-in plugins, then the plugins found in the ``camgate`` entry-point group.

Two environment variables rescue an install that a broken plugin made unusable:

- ``CAMGATE_LOAD_PLUGINS=rtsp,onvif`` loads only these entry points (an empty value loads none);
- ``CAMGATE_DISABLE_PLUGINS=wyze`` loads every entry point but these.

They act on external plugins only. The built-ins can be replaced through the API
(:meth:`PluginHost.unregister`), and the gate's core invariants are not plugins at all.
A plugin that fails to import is named, with its distribution, in the :class:`PluginError`.
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import attrs
import pluggy

from camgate import hookspecs
from camgate.adapters import AdapterFactory, Simulator
from camgate.commands import Command
from camgate.errors import PluginError
from camgate.models import Camera, Decision, Grant, Incident, Vote
from camgate.targets import Target

if TYPE_CHECKING:
    from camgate.geofence.shapes import Shape
    from camgate.notify import OwnerNotice
    from camgate.policy import PolicyContext
    from camgate.vocab import EndReason

__all__ = ["ENTRY_POINT_GROUP", "PluginHost", "PluginInfo"]

ENTRY_POINT_GROUP = "camgate"
log = logging.getLogger(__name__)


def _names(value: str) -> set[str]:
    return {part.strip() for part in value.split(",") if part.strip()}


@attrs.frozen
class PluginInfo:
    """A loaded plugin: its registered name, where it came from, and whether it is built in."""

    name: str
    distribution: str
    version: str
    builtin: bool


class PluginHost:
    """Loads plugins and calls their hooks with types, collecting what the gate needs.

    ``PluginHost()`` loads entry points (subject to the environment variables above);
    ``PluginHost(entry_points=False)`` loads none, for tests and embedding. ``builtins`` are
    objects registered before external plugins (the gate passes its policy, geofence and
    notifier).
    """

    def __init__(
        self,
        *,
        builtins: Mapping[str, object] | None = None,
        entry_points: bool = True,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        # pluggy's own executor: while it is in place (no tracing or monitoring), the decision
        # hooks may be called directly (see _direct).
        self._plain_exec = self.pm._inner_hookexec
        self._plans: dict[str, tuple[list[Any], list[tuple[Any, tuple[str, ...]]] | None]] = {}
        self._callers: dict[str, Any] = {}
        self._info: dict[str, PluginInfo] = {}
        for name, plugin in (builtins or {}).items():
            self.register(plugin, name, builtin=True)
        if entry_points:
            self._load_entry_points(os.environ if environ is None else environ)
        try:
            self.pm.check_pending()
        except pluggy.PluginValidationError as exc:
            raise PluginError(f"a plugin implements a hook camgate does not have: {exc}") from exc
        self._adapters: dict[str, AdapterFactory] | None = None
        self._registrars: dict[str, object] = {}

    # ------------------------------------------------------------------ loading

    def register(
        self,
        plugin: object,
        name: str,
        *,
        builtin: bool = False,
        distribution: str = "camgate",
        version: str = "",
    ) -> None:
        """Register one plugin object (or module) under ``name``."""
        try:
            self.pm.register(plugin, name=name)
        except (ValueError, pluggy.PluginValidationError) as exc:
            raise PluginError(f"plugin {name!r} could not be registered: {exc}") from exc
        if not version and distribution == "camgate":
            version = _version("camgate")
        self._info[name] = PluginInfo(name, distribution, version, builtin)
        self._adapters = None

    def unregister(self, name: str) -> None:
        """Remove a plugin (built-in or not) by name; unknown names are an error."""
        if self.pm.unregister(name=name) is None:
            raise PluginError(f"no plugin named {name!r} is registered")
        self._info.pop(name, None)
        self._adapters = None

    def _load_entry_points(self, environ: Mapping[str, str]) -> None:
        allow = (
            _names(environ["CAMGATE_LOAD_PLUGINS"]) if "CAMGATE_LOAD_PLUGINS" in environ else None
        )
        block = _names(environ.get("CAMGATE_DISABLE_PLUGINS", ""))
        for ep in sorted(
            importlib.metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name
        ):
            if (allow is not None and ep.name not in allow) or ep.name in block:
                log.debug(
                    "plugin %s skipped by CAMGATE_LOAD_PLUGINS/CAMGATE_DISABLE_PLUGINS", ep.name
                )
                continue
            dist = ep.dist.name if ep.dist is not None else "?"
            version = ep.dist.version if ep.dist is not None else ""
            try:
                plugin = ep.load()
            except Exception as exc:
                raise PluginError(
                    f"plugin {ep.name!r} (distribution {dist}) failed to import: "
                    f"{type(exc).__name__}: {exc}. Start without it with "
                    f"CAMGATE_DISABLE_PLUGINS={ep.name}"
                ) from exc
            self.register(plugin, ep.name, distribution=dist, version=version)

    def plugins(self) -> list[PluginInfo]:
        """Every registered plugin, built-ins first, then by name."""
        return sorted(self._info.values(), key=lambda p: (not p.builtin, p.name))

    # ------------------------------------------------------------------ adapters

    def adapters(self) -> dict[str, AdapterFactory]:
        """Every registered adapter factory by name (collected once, then cached)."""
        if self._adapters is None:
            found: dict[str, AdapterFactory] = {}
            registrars: dict[str, object] = {}
            for impl in self.pm.hook.camgate_register_adapters.get_hookimpls():
                info = self._info.get(self.pm.get_name(impl.plugin) or "")

                def register(
                    factory: AdapterFactory,
                    info: PluginInfo | None = info,
                    plugin: object = impl.plugin,
                ) -> None:
                    if not isinstance(factory, AdapterFactory):
                        raise PluginError(f"register() takes an AdapterFactory, got {factory!r}")
                    if factory.name in found:
                        raise PluginError(f"adapter {factory.name!r} is registered twice")
                    _refuse_unimplemented(factory, info)
                    if info is not None and not factory.distribution:
                        factory = attrs.evolve(
                            factory, distribution=info.distribution, version=info.version
                        )
                    found[factory.name] = factory
                    registrars[factory.name] = plugin

                try:
                    impl.function(register=register)
                except PluginError:
                    raise
                except Exception as exc:
                    name = self.pm.get_name(impl.plugin) or impl.plugin_name
                    dist = f" (distribution {info.distribution})" if info is not None else ""
                    raise PluginError(
                        f"plugin {name!r}{dist} failed in camgate_register_adapters: "
                        f"{type(exc).__name__}: {exc}. Start without it with "
                        f"CAMGATE_DISABLE_PLUGINS={name}"
                    ) from exc
            self._adapters = found
            self._registrars = registrars
        return dict(self._adapters)

    def adapter(self, name: str) -> AdapterFactory:
        """The adapter factory called ``name``; PluginError names the ones that exist."""
        adapters = self._adapters
        if adapters is None:  # collected once (adapters()), then read without a copy
            adapters = self.adapters()
        factory = adapters.get(name)
        if factory is None:
            known = ", ".join(sorted(adapters)) or "none"
            raise PluginError(f"no adapter named {name!r} (installed: {known})")
        return factory

    def registrar(self, adapter: str) -> object:
        """The plugin (module or object) that registered ``adapter``: where its package's files
        (its quality declaration) are found. PluginError for an unknown adapter."""
        self.adapter(adapter)
        return self._registrars[adapter]

    def has_simulator(self, adapter: str) -> bool:
        """True when ``adapter`` is registered with a ``simulator`` factory (nothing is built)."""
        factory = self.adapters().get(adapter)
        return factory is not None and factory.simulator is not None

    def has_conformance_target(self, adapter: str) -> bool:
        """True when ``adapter`` is registered with a ``conformance_target`` factory (nothing is
        built); without one the suite wraps the simulator and cannot certify."""
        factory = self.adapters().get(adapter)
        return factory is not None and factory.conformance_target is not None

    def simulator(self, adapter: str, count: int) -> Simulator:
        """A simulator for ``adapter`` serving ``count`` cameras, from its factory's
        ``simulator``, not started; PluginError for an unknown adapter or one without."""
        factory = self.adapter(adapter)
        if factory.simulator is None:
            raise PluginError(f"adapter {adapter!r} registers no simulator")
        sim = factory.simulator(count)
        if not isinstance(sim, Simulator):
            raise PluginError(
                f"adapter {adapter!r}'s simulator factory returned {type(sim).__name__}, "
                "not a camgate.adapters.Simulator"
            )
        return sim

    def conformance_target(self, adapter: str, config: Mapping[str, Any] | None) -> Target | None:
        """The conformance target ``adapter``'s factory builds for ``config`` (None: its
        simulator), not started; None when the adapter is unknown, has no target factory, or
        leaves this settings file to the suite. PluginError when what it builds lacks parts of
        the :class:`camgate.targets.Target` protocol."""
        factory = self.adapters().get(adapter)
        if factory is None or factory.conformance_target is None:
            return None
        target = factory.conformance_target(config)
        if target is not None and not isinstance(target, Target):
            raise PluginError(
                f"the conformance target for {adapter!r} ({type(target).__name__}) lacks parts "
                "of the Target protocol (sources, settings, audio_source, backdoor, fault, close)"
            )
        return target

    # ------------------------------------------------------------------ commands

    def commands(self, reserved: Iterable[str] = ()) -> list[Command]:
        """Every command plugins register through ``camgate_register_commands``, in plugin
        order. PluginError (naming the plugin) when a
        plugin registers something else than a :class:`Command`, a name twice, or one of
        ``reserved`` (core's own command names)."""
        taken = set(reserved)
        found: list[Command] = []
        names: dict[str, str] = {}
        for impl in self.pm.hook.camgate_register_commands.get_hookimpls():
            plugin = self.pm.get_name(impl.plugin) or impl.plugin_name

            def register(command: Command, plugin: str = plugin) -> None:
                if not isinstance(command, Command):
                    raise PluginError(
                        f"plugin {plugin!r}: register() takes a camgate.commands.Command, "
                        f"got {command!r}"
                    )
                if command.name in taken:
                    raise PluginError(
                        f"plugin {plugin!r} registers the command {command.name!r}, which is "
                        "camgate's own"
                    )
                if command.name in names:
                    raise PluginError(
                        f"plugins {names[command.name]!r} and {plugin!r} both register the "
                        f"command {command.name!r}"
                    )
                names[command.name] = plugin
                found.append(command)

            try:
                impl.function(register=register)
            except PluginError:
                raise
            except Exception as exc:
                raise PluginError(
                    f"plugin {plugin!r} failed in camgate_register_commands: "
                    f"{type(exc).__name__}: {exc}. Start without it with "
                    f"CAMGATE_DISABLE_PLUGINS={plugin}"
                ) from exc
        return found

    # ------------------------------------------------------------------ decisions

    def _direct(self, hook: str) -> list[tuple[Any, tuple[str, ...]]] | None:
        """The implementations of ``hook`` in the order pluggy calls them (last registered
        first), each with the argument names it takes — or None when pluggy itself must call
        them (a wrapper, keyword-only arguments, tracing or monitoring switched on).

        A hook called per camera of a survey pays pluggy's general machinery each time; with
        plain implementations, calling them in pluggy's order with pluggy's arguments and
        keeping the non-None results is the same call. The plan is checked against the hook's
        current implementations on every call, so a plugin registered or unregistered by any
        route (``pm.register`` included) is seen at once.
        """
        caller = self._callers.get(hook)
        if caller is None:
            caller = self._callers[hook] = getattr(self.pm.hook, hook)
        impls = caller.get_hookimpls()
        known = self._plans.get(hook)
        if known is not None and known[0] == impls:
            plan = known[1]
        else:
            plain = all(not (impl.hookwrapper or impl.wrapper or impl.kwargnames) for impl in impls)
            plan = (
                [(impl.function, tuple(impl.argnames)) for impl in reversed(impls)]
                if plain
                else None
            )
            self._plans[hook] = (impls, plan)
        if self.pm._inner_hookexec is not self._plain_exec:
            return None
        return plan

    def _call(self, hook: str, **kwargs: Any) -> list[Any]:
        """``pm.hook.<hook>(**kwargs)``: pluggy's result list, called directly when it can be
        (:meth:`_direct`)."""
        plan = self._direct(hook)
        if plan is None:
            result: list[Any] = getattr(self.pm.hook, hook)(**kwargs)
            return result
        results = []
        for function, argnames in plan:
            res = function(*[kwargs[name] for name in argnames])
            if res is not None:
                results.append(res)
        return results

    def consent_votes(self, ctx: PolicyContext) -> list[Vote]:
        """Every consent policy's votes, flattened, in plugin order."""
        return _votes(self._call("camgate_consent_vote", ctx=ctx), "camgate_consent_vote")

    def geofence_votes(self, incident: Incident, camera: Camera, now: datetime) -> list[Vote]:
        """Every geofence's vote on whether ``incident`` may reach ``camera``."""
        results = self._call("camgate_geofence_vote", incident=incident, camera=camera, now=now)
        return _votes(results, "camgate_geofence_vote")

    def geofence_extents(self, incident: Incident) -> list[Shape]:
        """Every zone source's shapes for ``incident``, flattened, in plugin order."""
        results = self.pm.hook.camgate_geofence_extent(incident=incident)
        return [shape for result in reversed(results) for shape in result or ()]

    # ------------------------------------------------------------------ events

    def notify_owner(self, notice: OwnerNotice) -> bool:
        """Hand a notice to every notifier; True when at least one accepted it."""
        return any(r is True for r in self.pm.hook.camgate_notify_owner(notice=notice))

    def emit(self, hook: str, **kwargs: Any) -> None:
        """Call an event hook; an observer's exception is logged, never propagated."""
        caller = getattr(self.pm.hook, hook)
        for impl in reversed(caller.get_hookimpls()):
            try:
                impl.function(**{k: kwargs[k] for k in impl.argnames})
            except Exception:
                log.exception("event hook %s of plugin %s failed", hook, impl.plugin_name)

    def decision_made(self, decision: Decision) -> None:
        """Emit ``camgate_decision_made``."""
        self.emit("camgate_decision_made", decision=decision)

    def access_started(self, grant: Grant, camera: Camera) -> None:
        """Emit ``camgate_access_started``."""
        self.emit("camgate_access_started", grant=grant, camera=camera)

    def access_ended(
        self, grant: Grant, camera: Camera, reason: EndReason, packets: int, nbytes: int
    ) -> None:
        """Emit ``camgate_access_ended``."""
        self.emit(
            "camgate_access_ended",
            grant=grant,
            camera=camera,
            reason=reason,
            packets=packets,
            nbytes=nbytes,
        )

    def consent_revoked(self, owner_id: str, camera_ids: Sequence[str], at: datetime) -> None:
        """Emit ``camgate_consent_revoked``."""
        self.emit("camgate_consent_revoked", owner_id=owner_id, camera_ids=camera_ids, at=at)

    def camera_event(
        self,
        adapter: str,
        source: str | None,
        kind: str,
        at: datetime,
        details: Mapping[str, str],
    ) -> None:
        """Emit ``camgate_camera_event`` (a vendor-verified camera event)."""
        self.emit(
            "camgate_camera_event",
            adapter=adapter,
            source=source,
            kind=kind,
            at=at,
            details=details,
        )


def _refuse_unimplemented(factory: AdapterFactory, info: PluginInfo | None) -> None:
    """PluginError naming the adapter, the capability and the method, when ``factory`` declares
    a capability its adapter class does not implement."""
    missing = factory.unimplemented()
    if not missing:
        return
    who = f" (plugin {info.name!r}, distribution {info.distribution})" if info is not None else ""
    problems = "; ".join(f"{cap!r}: {why}" for cap, why in sorted(missing.items()))
    raise PluginError(
        f"adapter {factory.name!r}{who} declares capabilities it does not implement — "
        f"{problems}. Implement them or leave them out of its Capabilities"
    )


def _votes(results: list[Any], hook: str) -> list[Vote]:
    votes: list[Vote] = []
    # pluggy calls the last-registered plugin first; report votes in registration order.
    for result in reversed(results):
        items = [result] if isinstance(result, Vote) else list(result)
        for vote in items:
            if not isinstance(vote, Vote):
                raise PluginError(f"{hook} must return Vote objects, got {vote!r}")
            votes.append(vote)
    return votes


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return ""
