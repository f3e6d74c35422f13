"""What the conformance suite runs against: a target, its backdoor and the faults it can stage.

An adapter's :class:`~camgate.adapters.AdapterFactory` names a ``conformance_target`` factory that
builds a :class:`Target`. The shapes here are :class:`typing.Protocol` classes and live in core,
their data read-only (a frozen attrs class or a plain attribute both fit), so a vendor plugin
implements them structurally (or imports them for its type checker) without depending on
``camgate-conformance``; the suite imports them from here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from types import TracebackType
from typing import Any, Protocol, runtime_checkable

__all__ = ["Backdoor", "FaultCase", "Target", "VendorEvent"]


@runtime_checkable
class VendorEvent(Protocol):
    """One thing the vendor side saw a client do.

    ``at`` is ``time.monotonic()`` on this machine when it happened (the vendor side's clock
    must be comparable); ``client`` identifies the connection; ``kind`` names the request
    (``connect``, ``describe``, ``play``, ``closed``, ...); ``camera`` is the source it concerns,
    when it concerns one; ``media`` is True for a request that asks for media.
    """

    @property
    def at(self) -> float:
        """``time.monotonic()`` when it happened."""
        ...

    @property
    def client(self) -> str:
        """The connection it came on."""
        ...

    @property
    def kind(self) -> str:
        """What the request was (``connect``, ``describe``, ``play``, ``closed``, ...)."""
        ...

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
    after the first packet (``drops``). An optional ``endpoints`` attribute lists ``(host,
    port)`` pairs the adapter may reach while the fault is staged, besides the source's own
    address (for a cloud adapter, whose sources are device ids and whose faulty peer is a host
    in ``settings``).
    """

    @property
    def source(self) -> str:
        """The faulty camera's address."""
        ...

    @property
    def settings(self) -> Mapping[str, Any]:
        """Adapter settings that reach it."""
        ...

    @property
    def secret(self) -> str:
        """A credential in ``settings`` that must never appear in an error."""
        ...

    @property
    def within_s(self) -> float:
        """How long the adapter may take to report the fault."""
        ...

    @property
    def mid_stream(self) -> bool:
        """True when the fault happens only when :meth:`trigger` is called."""
        ...

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

    @property
    def backdoor(self) -> Backdoor | None:
        """The vendor side's own log (valid once entered), None for a real device."""
        ...

    def __enter__(self) -> Any: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Any: ...

    def fault(self, name: str) -> AbstractContextManager[FaultCase] | None:
        """Stage the vendor fault ``name`` (see the suite's ``checks.FAULTS``), or None if it
        cannot."""
        ...

    def close(self) -> None:
        """Stop everything the target started. Idempotent."""
        ...
