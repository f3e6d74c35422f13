"""A fresh gate around one adapter and a target's cameras, for one check.

Every check runs in its own :class:`Harness`: a new SQLite store in a scratch folder, the adapter
under test registered as the only adapter plugin, one owner per camera (so revoking one owner
touches one camera), every camera enrolled for every scope the adapter declares, and an open
incident covering them all. Time is the machine's, plus an offset the check may move forward
(:class:`OffsetClock`), so an expired grant needs no waiting.
"""

from __future__ import annotations

import itertools
import secrets
import time
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from camgate import hookimpl
from camgate.adapters import Adapter, AdapterFactory
from camgate.clock import SystemClock
from camgate.gate import Gate
from camgate.grants import SignedGrant
from camgate.models import Camera, ConsentTerms, GeoPoint, Incident, Owner, Scope, Waiver

__all__ = ["FAR", "HOME", "Harness", "OffsetClock"]

#: Where the harness's cameras stand (Jackson, Mississippi) and a place no incident there covers.
HOME = GeoPoint(32.2988, -90.1848)
FAR = GeoPoint(32.4000, -90.0000)
_WAIVER = "I agree to share my camera with the city's RTCC under these terms. (conformance)"
_runs = itertools.count(1)


def _token(prefix: str) -> str:
    """A random id, so an adapter cannot tell it is under test by its names."""
    return f"{prefix}{secrets.token_hex(6)}"


class OffsetClock(SystemClock):
    """The system clock, with wall time that a check can move forward."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def now(self) -> datetime:
        """Wall time plus the offset."""
        return super().now() + self.offset

    def advance(self, seconds: float) -> None:
        """Move wall time forward (grants and incidents see the later time)."""
        self.offset += timedelta(seconds=seconds)


class _Provider:
    """The plugin that registers the adapter under test."""

    def __init__(self, factory: AdapterFactory) -> None:
        self.factory = factory

    @hookimpl
    def camgate_register_adapters(self, register: Any) -> None:
        """Register the adapter under test."""
        register(self.factory)


class Harness:
    """A gate with the target's cameras enrolled and an incident covering them.

    Use as ``async with Harness(...) as h``; ``h.cameras[i]`` is the camera for ``sources[i]``,
    owned by ``h.owners[i]``.
    """

    def __init__(
        self,
        factory: AdapterFactory,
        settings: Mapping[str, Any],
        sources: Sequence[str],
        workdir: Path,
        plugin: object | None = None,
    ) -> None:
        self.factory = factory
        self.plugin = plugin
        self.settings = dict(settings)
        self.sources = list(sources)
        self.workdir = workdir
        self.clock = OffsetClock()
        self.cameras: list[Camera] = []
        self.owners: list[str] = []

    async def __aenter__(self) -> Harness:
        run = next(_runs)
        self.gate = Gate.open(
            self.workdir / f"gate-{run}.db",
            entry_points=False,
            clock=self.clock,
            adapter_settings={self.factory.name: self.settings},
        )
        if self.plugin is not None:
            # The vendor's whole plugin, every hook of it (item 9): not only its adapter.
            self.gate.host.register(self.plugin, "conformance.vendor-plugin")
        if self.factory.name not in self.gate.host.adapters():
            self.gate.host.register(_Provider(self.factory), "conformance.adapter-under-test")
        self.waiver = self.gate.publish_waiver(Waiver(_token("waiver"), _WAIVER))
        for i, source in enumerate(self.sources):
            # Ids an adapter cannot tell from production ones (no "owner-0", "cam-1").
            owner = self.gate.add_owner(Owner(_token("o"), f"Owner {_token('n')}"))
            camera = self.gate.add_camera(
                Camera(
                    id=_token("c"),
                    adapter=self.factory.name,
                    source=source,
                    owner_id=owner.id,
                    position=GeoPoint(HOME.lat + 0.0005 * i, HOME.lon),
                )
            )
            self.owners.append(owner.id)
            self.cameras.append(camera)
            self.enrol(i)
        self.incident: Incident = self.gate.report_incident("conformance", HOME, radius_m=500)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.gate.aclose()

    @property
    def adapter(self) -> Adapter:
        """The adapter as the edge built it (settings and credentials applied).

        The suite tests the adapter itself, so it reaches past the edge's guard on purpose;
        production code never does (``Edge._adapter`` is private for that reason).
        """
        return self.gate.edge._adapter(self.factory.name)

    @property
    def scope(self) -> Scope:
        """The scope checks use by default: live when the adapter serves it, else the first."""
        scopes = self.factory.capabilities.scopes
        if Scope.LIVE in scopes:
            return Scope.LIVE
        return sorted(scopes)[0] if scopes else Scope.LIVE

    def enrol(self, index: int) -> None:
        """(Re-)enrol camera ``index`` for every scope the adapter declares."""
        scopes = self.factory.capabilities.scopes or frozenset({Scope.LIVE})
        self.gate.enrol(
            self.owners[index],
            [self.cameras[index].id],
            waiver_version=self.waiver.version,
            waiver_sha256=self.waiver.sha256,
            terms=ConsentTerms(scopes=scopes),
        )

    async def grant(
        self,
        index: int = 0,
        scope: Scope | str | None = None,
        duration_s: float | None = None,
        incident: Incident | None = None,
        window: tuple[datetime, datetime] | None = None,
    ) -> SignedGrant:
        """Ask the gate for a grant on camera ``index`` (raises AccessDenied when refused);
        without ``duration_s``, a random duration between 45 and 120 s; a recorded grant
        covers ``window`` (by default 15 to 10 minutes ago)."""
        if duration_s is None:
            duration_s = secrets.randbelow(76) + 45.0
        scope = Scope(scope) if scope is not None else self.scope
        if scope is Scope.RECORDED and window is None:
            end = self.clock.now() - timedelta(minutes=10)
            window = (end - timedelta(minutes=5), end)
        return await self.gate.request_access(
            (incident or self.incident).id,
            self.cameras[index].id,
            scope,
            requested_by="conformance",
            duration_s=duration_s,
            window=window,
        )

    async def revoke(self, index: int = 0) -> float:
        """Revoke camera ``index``'s owner; returns ``time.monotonic()`` just before."""
        started = time.monotonic()
        await self.gate.revoke(self.owners[index])
        return started
