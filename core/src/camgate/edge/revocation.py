"""Revocation state: what the edge refuses in memory before the store says so.

A revocation (or a camera's removal) trips every live stream of the owner's cameras at once,
synchronously, before anything touches the disk; until the change is durable the in-memory
marks refuse new grants and GOP caches. :meth:`Revocations.version` moves on any such change
(or any commit by another process), so every guard re-reads consent before its next packet.

A resident's privacy zone works the same way without a mark: :meth:`Revocations.grant_problem`
asks the gate's camera → zones map (rebuilt only when the zones counter moved), and a zone
registered in this process halts the covered cameras' live streams at once
(:meth:`Revocations.halt_zone_streams`); other processes' streams see it at their next packet
through the store's change version, as they see a revocation.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from camgate.adapters import Adapter
from camgate.errors import (
    AccountUnlinked,
    CamgateError,
    ConsentRevoked,
    GrantExpired,
    NotFound,
    ZoneRefused,
)
from camgate.models import Camera, Grant
from camgate.relay import Relay, Upstream
from camgate.store import Store
from camgate.vocab import EndReason, GrantProblem

if TYPE_CHECKING:
    from camgate.edge.guard import GuardedStream
    from camgate.gate.residents import ZoneMap

__all__ = ["Revocations", "refusal"]


def refusal(problem: GrantProblem, camera_id: str, grant: Grant) -> CamgateError:
    """The error a consumer gets for a grant with ``problem``: ConsentRevoked (also while an
    edge waits for new masks), ZoneRefused or GrantExpired (an incident closed or past its
    window), each saying why."""
    if problem is GrantProblem.REVOKED:
        return ConsentRevoked(f"consent for camera {camera_id!r} is not in force")
    if problem is GrantProblem.PRIVACY_ZONE:
        return ZoneRefused(
            f"grant {grant.id}: a resident's privacy zone lies in camera {camera_id!r}'s view "
            "and its owner has not yet confirmed a mask covers it; live view and snapshots "
            "are refused until they do"
        )
    if problem is GrantProblem.MASKS_CHANGED:
        return ConsentRevoked(
            f"consent for camera {camera_id!r} is not in force until this edge holds the "
            "owner's new privacy masks; ask again in a moment"
        )
    return GrantExpired(f"grant {grant.id}: its incident is closed or past its window")


class Revocations:
    """The revocation part of :class:`~camgate.edge.Edge` (a mixin: its state lives on the
    edge, set up by ``Edge.__init__``)."""

    #: The gate's camera → privacy zones map (set by the gate); None: no zone is checked.
    zone_map: ZoneMap | None = None
    #: Told once per vendor account found unlinked: (adapter, account key, its cameras, the
    #: error's text); the gate audits it and tells the owners. None: not told.
    on_account_unlinked: Callable[[str, str, list[str], str], Awaitable[None]] | None = None

    if TYPE_CHECKING:
        store: Store
        _live: set[GuardedStream]
        _marks: dict[tuple[str, str], int]
        _generation: int
        _relay: Relay
        _dropping: dict[tuple[str, str], list[Any]]
        _unlinked: set[tuple[str, str]]

        def _drop_upstreams(self, camera_ids: list[str]) -> list[Upstream]: ...

        def _adapter(self, name: str, camera_id: str | None = None) -> Adapter: ...

    def version(self) -> tuple[int, int]:
        """Changes whenever consent may have changed: a commit by another process to the store
        (:meth:`Store.live_version`: no query per packet) or a revocation begun or finished in
        this process."""
        return (self.store.live_version(), self._generation)

    def changed_since(self, stream: GuardedStream) -> bool:
        """True when :meth:`version` moved since ``stream`` last looked (and remember it)."""
        now = self.version()
        if now == stream._seen:
            return False
        stream._seen = now
        return True

    def grant_problem(self, camera: Camera, grant: Grant, now: datetime) -> GrantProblem | None:
        """Why ``grant`` no longer holds for ``camera`` at ``now``, or None while it does.

        :class:`~camgate.vocab.GrantProblem` says what each value means (``REVOKED``: the
        consent the grant was issued under no longer stands; ``INCIDENT_CLOSED``;
        ``PRIVACY_ZONE``: a live or snapshot grant's camera now covers a resident's zone its
        owner has not attested). The zones come from :attr:`zone_map`, a dict look-up while
        the store is unchanged.
        """
        if ("owner", camera.owner_id) in self._marks or ("camera", camera.id) in self._marks:
            return GrantProblem.REVOKED
        consent = self.store.active_consent(camera.id)
        if consent is None or grant.scope not in consent.terms.scopes:
            return GrantProblem.REVOKED
        if grant.consent_id is None or consent.id != grant.consent_id:
            # a grant bound to no consent record, or to one no longer standing
            return GrantProblem.REVOKED
        try:
            incident = self.store.get_incident(grant.incident_id)
        except NotFound:
            return GrantProblem.INCIDENT_CLOSED
        if not incident.active_at(now):
            return GrantProblem.INCIDENT_CLOSED
        if self._zone_unmasked(camera.id, grant):
            return GrantProblem.PRIVACY_ZONE
        return None

    def _zone_unmasked(self, camera_id: str, grant: Grant) -> bool:
        return self.zone_map is not None and self.zone_map.unmasked(camera_id, grant.scope)

    def halt_zone_streams(self) -> int:
        """End every live stream whose camera now covers a privacy zone its owner has not
        attested (reason ``privacy-zone-unmasked``): no packet is handed over after this call,
        and a consumer waiting for one is woken. Synchronous: the gate calls it once a zone is
        on record. Returns how many streams were halted."""
        self._generation += 1  # every other stream re-reads its grant before its next packet
        halted = 0
        for stream in list(self._live):
            if self._zone_unmasked(stream.camera.id, stream.grant):
                stream.halt(EndReason.PRIVACY_ZONE)
                halted += 1
        return halted

    def _begin(self, key: tuple[str, str]) -> int:
        self._marks[key] = self._marks.get(key, 0) + 1
        self._generation += 1
        hit = [s for s in self._live if self._matches(s, key)]
        for stream in hit:
            stream.trip(closer=True)  # the caller closes them (_close_marked)
        # The GOP caches of those cameras are dropped now, their upstreams start closing.
        kind, ident = key
        cameras = [
            up.camera.id
            for up in self._relay.upstreams()
            if (up.camera.owner_id if kind == "owner" else up.camera.id) == ident
        ]
        self._dropping.setdefault(key, []).extend(self._drop_upstreams(cameras))
        return len(hit)

    def _finish(self, key: tuple[str, str]) -> None:
        left = self._marks.get(key, 0) - 1
        if left > 0:
            self._marks[key] = left
        else:
            self._marks.pop(key, None)
            self._dropping.pop(key, None)
        self._generation += 1

    @staticmethod
    def _matches(stream: GuardedStream, key: tuple[str, str]) -> bool:
        kind, ident = key
        return (stream.camera.owner_id if kind == "owner" else stream.camera.id) == ident

    async def _close_marked(self, key: tuple[str, str]) -> None:
        for stream in [s for s in self._live if self._matches(s, key)]:
            stream.trip(closer=True)
            await stream._end(EndReason.REVOKED)
        for upstream in self._dropping.pop(key, []):
            await upstream.aclose()

    def begin_revocation(self, owner_id: str) -> int:
        """Trip every live stream of the owner's cameras now, and refuse new ones.

        Synchronous and instant: call it before anything touches the disk. Returns how many
        streams were tripped. Close them with :meth:`close_owner_streams`, and call
        :meth:`end_revocation` once the revocation is durable (or failed).
        """
        return self._begin(("owner", owner_id))

    def end_revocation(self, owner_id: str) -> None:
        """The revocation is on record (or failed): stop refusing by the in-memory mark."""
        self._finish(("owner", owner_id))

    async def close_owner_streams(self, owner_id: str) -> None:
        """End (reason ``revoked``) every stream of the owner's cameras and close their
        connections before returning."""
        await self._close_marked(("owner", owner_id))

    def begin_removal(self, camera_id: str) -> int:
        """Like :meth:`begin_revocation`, for one camera leaving camgate."""
        return self._begin(("camera", camera_id))

    def end_removal(self, camera_id: str) -> None:
        """The camera's removal is on record (or failed)."""
        self._finish(("camera", camera_id))

    async def close_camera_streams(self, camera_id: str) -> None:
        """End (reason ``revoked``) every stream of one camera, connections closed on return."""
        await self._close_marked(("camera", camera_id))

    async def account_unlinked(self, camera: Camera, error: AccountUnlinked) -> list[str]:
        """``error`` says the vendor account ``camera`` is reached through is unlinked: end
        every open stream of the account's cameras (reason ``account-unlinked``, their relay
        upstreams closed) and, once per account until one of its cameras is reached again,
        tell :attr:`on_account_unlinked` (the gate audits it and tells the owners). Returns the
        cameras of the account (those whose adapter names the same :meth:`account_key`)."""
        cameras = self._account_cameras(camera, error.account)  # the loop's thread: _adapters
        for camera_id in cameras:
            await self.end_camera_streams(camera_id, EndReason.ACCOUNT_UNLINKED)
        key = (camera.adapter, error.account or camera.id)
        if key not in self._unlinked:
            self._unlinked.add(key)
            if self.on_account_unlinked is not None:
                await self.on_account_unlinked(camera.adapter, error.account, cameras, str(error))
        return cameras

    def _account_cameras(self, camera: Camera, account: str) -> list[str]:
        if not account:
            return [camera.id]
        found = [
            other.id
            for other in self.store.cameras()
            if other.adapter == camera.adapter and self._account_of(other) == account
        ]
        return sorted(set(found) | {camera.id})

    def account_reached(self, camera: Camera) -> None:
        """``camera``'s vendor account answered again (an access opened): a later unlinking is
        reported anew."""
        if any(adapter == camera.adapter for adapter, _key in self._unlinked):
            key = self._account_of(camera)
            self._unlinked.discard((camera.adapter, key or camera.id))

    def _account_of(self, camera: Camera) -> str | None:
        """The camera's vendor account key (None for an adapter without accounts)."""
        try:
            adapter = self._adapter(camera.adapter, camera.id)
        except CamgateError:  # its plugin or settings are gone: no account to name
            return None
        account_key = getattr(adapter, "account_key", None)
        key = account_key(camera) if callable(account_key) else None
        return key if isinstance(key, str) else None

    def live_streams(self) -> list[GuardedStream]:
        """The streams open right now."""
        return list(self._live)

    async def end_camera_streams(self, camera_id: str, reason: EndReason) -> int:
        """End every open stream of one camera with ``reason`` and close its relay upstream
        (with its GOP cache and transform: the next consumer starts afresh); returns how many
        streams ended."""
        dropped = self._drop_upstreams([camera_id])
        self._generation += 1  # every stream re-reads the store before its next packet
        streams = [s for s in self._live if s.camera.id == camera_id]
        for stream in streams:
            await stream._end(reason)
        for up in dropped:
            await up.aclose()
        return len(streams)
