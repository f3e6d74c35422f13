"""The contract between the gate and a vendor adapter.

A plugin registers an :class:`AdapterFactory` through the ``camgate_register_adapters`` hook. The
factory declares what the adapter can do (:class:`Capabilities`) and how fast it promises to do it
(:class:`LatencyBudgets`), and builds an :class:`Adapter` from the edge's settings for that vendor
(credentials included; they never leave the edge).

Adapters are only ever called by the edge's guard, after it has verified a signed grant; they get
the verified :class:`~camgate.models.Grant` so they can fetch exactly what it covers and nothing
more. Hooks are synchronous (pluggy has no async hooks); the async work lives on the objects.
"""

from __future__ import annotations

import abc
import contextlib
import inspect
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterator, Mapping
from contextlib import AbstractContextManager
from types import TracebackType
from typing import Any, Protocol, Self, get_type_hints, runtime_checkable

import attrs

from camgate.errors import CameraProtocolError, CameraUnreachable, ValidationError
from camgate.models import Camera, Grant, MediaPacket, Scope, Snapshot, StreamInfo
from camgate.targets import Target

__all__ = [
    "Adapter",
    "AdapterFactory",
    "CAPABILITY_METHODS",
    "Capabilities",
    "Credentials",
    "LatencyBudgets",
    "LiveStream",
    "SECRET",
    "Secret",
    "SettingsClass",
    "Simulator",
    "SimulatorFactory",
    "TargetFactory",
    "VENDOR_BODY_LIMIT",
    "http_errors",
    "read_capped",
]

#: The most bytes an adapter reads of any one body a vendor sends (a snapshot, a SOAP or JSON
#: reply), unless its settings lower it: 16 MiB, several times a 4K JPEG. A device that sends
#: more (an endless body, a decompression bomb) gets a CameraProtocolError, and memory stays
#: bounded by the limit (the ONVIF adapter: ``max_body_bytes`` in docs/onvif.md).
VENDOR_BODY_LIMIT = 16 * 1024 * 1024


@contextlib.contextmanager
def http_errors(where: str, peer: str) -> Iterator[None]:
    """Map httpx's errors inside the block to camgate's tree, for an adapter that speaks HTTP to
    ``peer`` (a vendor's name, or "the camera"): time-outs, refused connections and lost
    connections are CameraUnreachable, a reply that is not HTTP is CameraProtocolError.
    ``where`` names the call (a URL without secrets); httpx's own messages, which may hold a
    URL with its query, are dropped (``from None``)."""
    import httpx  # only adapters that speak HTTP pay for the import

    try:
        yield
    except httpx.TimeoutException:
        raise CameraUnreachable(f"{where}: {peer} did not answer in time") from None
    except httpx.ConnectError:
        raise CameraUnreachable(f"{where}: cannot connect to {peer}") from None
    except httpx.RemoteProtocolError:
        raise CameraProtocolError(f"{where}: the peer does not answer in HTTP") from None
    except httpx.HTTPError as exc:
        raise CameraUnreachable(f"{where}: connection lost ({type(exc).__name__})") from None


async def read_capped(chunks: AsyncIterable[bytes], limit: int, where: str) -> bytes:
    """Join the body ``chunks`` (as they arrive, e.g. httpx's ``aiter_bytes()``), stopping
    at ``limit`` bytes: raises CameraProtocolError naming ``where`` (a URL without secrets)
    as soon as the body is longer, so no more than ``limit`` plus one chunk is ever held."""
    parts: list[bytes] = []
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > limit:
            raise CameraProtocolError(
                f"{where}: the body is longer than {limit} bytes (the limit for a vendor's "
                "reply); refused"
            )
        parts.append(chunk)
    return b"".join(parts)


class Secret:
    """A string that never shows itself: repr, str and format give ``'***'``.

    Call :meth:`reveal` at the one place that needs the value (building the connection).
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            raise ValidationError("a secret must be a string")
        self._value = value

    def reveal(self) -> str:
        """The secret value. Never log or format it."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return "***"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self) -> Any:
        raise TypeError("secrets are not pickled")


def _secret(value: str | Secret) -> Secret:
    return value if isinstance(value, Secret) else Secret(value)


@attrs.frozen
class Credentials:
    """A username and password for one camera, held at the edge only."""

    username: str
    password: Secret = attrs.field(converter=_secret)


@attrs.frozen
class Capabilities:
    """What an adapter can serve, and how it behaves toward the camera.

    ``keeps_connections_open`` is True when the adapter holds a connection to the camera between
    grants (an edge cache); the gate's rules on caches then apply to it.
    """

    live: bool = False
    recorded: bool = False
    snapshot: bool = False
    audio: bool = False
    keeps_connections_open: bool = False

    @property
    def scopes(self) -> frozenset[Scope]:
        """The scopes this adapter can serve."""
        pairs = (
            (Scope.LIVE, self.live),
            (Scope.RECORDED, self.recorded),
            (Scope.SNAPSHOT, self.snapshot),
        )
        return frozenset(scope for scope, able in pairs if able)

    def to_list(self) -> list[str]:
        """Capability names, sorted (``live``, ``recorded``, ``snapshot``, ``audio``)."""
        names = [str(s) for s in self.scopes]
        if self.audio:
            names.append("audio")
        return sorted(names)


def _budget(_inst: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not value > 0:
        raise ValidationError(f"{attribute.name}={value!r}: a budget must be a positive number")


@attrs.frozen
class LatencyBudgets:
    """The adapter's promised latencies in seconds, checked by the conformance suite."""

    discovery_s: float = attrs.field(default=5.0, validator=_budget)
    snapshot_s: float = attrs.field(default=3.0, validator=_budget)
    first_frame_s: float = attrs.field(default=3.0, validator=_budget)
    revocation_s: float = attrs.field(default=0.5, validator=_budget)


@runtime_checkable
class LiveStream(Protocol):
    """An open live stream from one camera: packets in arrival order, then the end.

    ``info`` describes the video stream. Iteration ends (StopAsyncIteration) when the camera ends
    the stream; errors are :class:`camgate.errors.AdapterError`. ``aclose`` closes the connection
    to the camera and may be called more than once.
    """

    info: StreamInfo

    def __aiter__(self) -> AsyncIterator[MediaPacket]: ...

    async def aclose(self) -> None:
        """Close the connection to the camera; return once it is closed. Idempotent."""
        ...


class Adapter:
    """One vendor's way to reach cameras, built from the edge's settings for that vendor.

    Subclasses implement the methods matching their declared capabilities; the others raise
    :class:`camgate.errors.UnsupportedScope` (the default). The edge calls them only with a
    verified grant for that camera and scope.
    """

    async def discover(self) -> list[Camera]:
        """Cameras the adapter's settings give access to (may be empty for URL-addressed ones)."""
        return []

    async def open_live(self, camera: Camera, grant: Grant) -> LiveStream:
        """Open the camera's live stream for ``grant``; packets from the first keyframe."""
        from camgate.errors import UnsupportedScope

        raise UnsupportedScope(f"adapter {type(self).__name__} does not serve live video")

    async def request_keyframe(self, camera: Camera) -> bool:
        """Ask the camera to send a keyframe now (ONVIF ``SetSynchronizationPoint``, say), so a
        consumer that is about to join its stream need not wait for the next GOP.

        Returns True when the camera accepted, False when it cannot (the default: a plain RTSP
        camera has no such call). The edge calls it when a live grant is issued and when a
        consumer joins a stream already running; failures should be AdapterError.
        """
        return False

    async def snapshot(self, camera: Camera, grant: Grant) -> Snapshot:
        """Return one JPEG still of the camera for ``grant``."""
        from camgate.errors import UnsupportedScope

        raise UnsupportedScope(f"adapter {type(self).__name__} does not serve snapshots")

    async def recorded(self, camera: Camera, grant: Grant) -> LiveStream:
        """Stream stored footage inside ``grant.window_start``..``grant.window_end`` only."""
        from camgate.errors import UnsupportedScope

        raise UnsupportedScope(f"adapter {type(self).__name__} does not serve recordings")

    async def push_masks(
        self, camera: Camera, polygons: tuple[tuple[tuple[float, float], ...], ...]
    ) -> bool:
        """Ask the camera to mask ``polygons`` itself (normalised coordinates, origin top left),
        as well as the gate's own masking, which applies whatever this returns. True when the
        camera took them; False (the default) when it cannot. Best effort: the edge calls it
        when the owner sets masks, and logs a failure."""
        return False

    def account_key(self, camera: Camera) -> str | None:
        """An opaque key of the vendor account this adapter reaches ``camera`` through: equal
        for every camera of one account (across adapter instances sharing it), never a secret;
        None (the default) for cameras reached without a vendor account. An
        :class:`~camgate.errors.AccountUnlinked` the adapter raises names the same key, so the
        edge can end the streams of every camera of that account."""
        return None

    async def aclose(self) -> None:
        """Release whatever the adapter holds (sessions, pools). Idempotent."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


@runtime_checkable
class SettingsClass(Protocol):
    """An adapter's settings class: ``from_mapping`` validates a settings mapping (unknown keys
    and bad values are a :class:`ValidationError` naming the key, never a secret value).

    An attrs class marks a field whose value is secret with ``metadata={"secret": True}``
    (:data:`SECRET`): per-camera values of such keys are kept with the camera's credentials,
    never with its other settings, and never shown."""

    @classmethod
    def from_mapping(cls, settings: Mapping[str, Any]) -> Any:
        """Validated settings built from ``settings``."""
        ...


#: The attrs field metadata that marks a setting secret (``attrs.field(metadata=SECRET)``).
SECRET: Mapping[str, Any] = {"secret": True}


#: Each capability an :class:`AdapterFactory` may declare → the :class:`Adapter` method its
#: adapter class must override to serve it. ``audio`` rides in a stream, so it needs ``live`` or
#: ``recorded`` declared too; ``keeps_connections_open`` is a behaviour, not a method.
CAPABILITY_METHODS: Mapping[str, str] = {
    "live": "open_live",
    "recorded": "recorded",
    "snapshot": "snapshot",
}

#: Builds a simulator of the vendor side serving ``count`` cameras (at least 1), not started.
SimulatorFactory = Callable[[int], "Simulator"]
#: Builds the conformance target, not started: ``config`` is None for the plugin's simulator,
#: else the parsed settings file QA gave with ``--target CONFIG``; None leaves that file to the
#: suite (which then needs only its ``sources`` and ``settings``).
TargetFactory = Callable[[Mapping[str, Any] | None], Target | None]


@attrs.frozen
class AdapterFactory:
    """What a plugin registers: the adapter's name, promises and builders — everything about it,
    once.

    ``create(settings)`` builds the adapter from the edge's settings for this vendor (a mapping the
    adapter documents; credentials arrive as :class:`Secret`). ``settings_class`` (optional)
    validates a settings mapping without building anything (:meth:`check_settings`): the gate
    uses it to refuse a camera's bad settings before storing them; without it the adapter takes
    no per-camera settings. ``distribution`` and ``version`` are filled in by the plugin host from
    the plugin's package metadata when left empty.

    ``simulator`` (optional, a :data:`SimulatorFactory`) builds the vendor side on loopback for
    the demo, tests and the suite; ``conformance_target`` (optional, a :data:`TargetFactory`)
    builds the suite's :class:`camgate.targets.Target` with its backdoor and faults. Without a
    target the suite wraps the simulator (no backdoor, no faults: it cannot certify). Import the
    simulator's module inside the factory, so a production install never loads test servers.

    The plugin host refuses (:class:`camgate.errors.PluginError`) a factory that declares a
    capability its adapter class does not implement (:data:`CAPABILITY_METHODS`,
    :meth:`unimplemented`). The class is known when ``create`` is the class itself, a
    classmethod of it (``MyAdapter.from_settings``) or a function annotated to return it; a
    factory built otherwise (a bare lambda) is not checked here, only by the suite.
    """

    name: str
    create: Callable[[Mapping[str, Any]], Adapter] = attrs.field(repr=False)
    capabilities: Capabilities
    budgets: LatencyBudgets = attrs.field(factory=LatencyBudgets)
    description: str = ""
    distribution: str = ""
    version: str = ""
    settings_class: type[SettingsClass] | None = attrs.field(default=None, repr=False)
    simulator: SimulatorFactory | None = attrs.field(default=None, repr=False)
    conformance_target: TargetFactory | None = attrs.field(default=None, repr=False)

    @property
    def adapter_class(self) -> type[Adapter] | None:
        """The :class:`Adapter` subclass ``create`` builds, when it can be told without building
        one (see the class docstring); None otherwise."""
        create: Any = self.create
        if inspect.isclass(create):
            return create if issubclass(create, Adapter) else None
        owner = getattr(create, "__self__", None)
        if inspect.isclass(owner) and issubclass(owner, Adapter):
            return owner
        try:
            returned = get_type_hints(create).get("return")
        except Exception:  # unresolvable annotations: not knowable, not an error
            return None
        return returned if inspect.isclass(returned) and issubclass(returned, Adapter) else None

    def unimplemented(self) -> dict[str, str]:
        """Each declared capability the adapter class does not implement → why (empty when all
        are, or when the class is not known). The plugin host refuses such a factory."""
        missing: dict[str, str] = {}
        caps = self.capabilities
        if caps.audio and not (caps.live or caps.recorded):
            missing["audio"] = "audio rides in a stream: declare live or recorded too"
        cls = self.adapter_class
        if cls is None:
            return missing
        for capability, method in CAPABILITY_METHODS.items():
            if getattr(caps, capability) and getattr(cls, method) is getattr(Adapter, method):
                missing[capability] = (
                    f"{cls.__name__} does not override Adapter.{method}() "
                    f"(the base raises UnsupportedScope)"
                )
        return missing

    def check_settings(self, settings: Mapping[str, Any]) -> None:
        """Return when ``settings`` (a partial mapping: missing keys take their defaults) are
        valid settings of this adapter; otherwise raise :class:`ValidationError` — the settings
        class's own, or one naming the adapter (never a value: it may be secret). An adapter
        without a ``settings_class`` accepts only an empty mapping."""
        if self.settings_class is None:
            if settings:
                raise ValidationError(
                    f"adapter {self.name!r} declares no settings class: it takes no per-camera "
                    f"settings (given {sorted(settings)})"
                )
            return
        try:
            self.settings_class.from_mapping(settings)
        except ValidationError:
            raise
        except (TypeError, ValueError, KeyError, AttributeError):
            raise ValidationError(
                f"{self.name} settings: a value of {sorted(settings)} has the wrong type"
            ) from None

    @property
    def secret_keys(self) -> frozenset[str]:
        """The settings keys whose values are secret (fields with :data:`SECRET` metadata)."""
        cls = self.settings_class
        if cls is None or not attrs.has(cls):
            return frozenset()
        return frozenset(
            field.alias or field.name for field in attrs.fields(cls) if field.metadata.get("secret")
        )


class Simulator(AbstractContextManager["Simulator"], abc.ABC):
    """A vendor's side running for real on loopback, for the demo, tests and conformance.

    Entering starts it (processes, servers); leaving stops everything it started. ``sources``
    are the camera addresses it serves and ``settings`` the adapter settings that reach them
    (credentials included).
    """

    sources: list[str]
    settings: dict[str, Any]

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @abc.abstractmethod
    def close(self) -> None:
        """Stop everything the simulator started. Idempotent."""
