"""Revocation state: what the edge refuses in memory before the store says so.

A revocation (or a camera's removal) trips every live stream of the owner's cameras at once,
synchronously, before anything touches the disk; until the change is durable the in-memory
marks refuse new grants and GOP caches. :meth:`Revocations.version` moves on any such change
(or any commit by another process), so every guard re-reads consent before its next packet.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from camgate.errors import NotFound
from camgate.models import Camera, Grant
from camgate.relay import Relay, Upstream
from camgate.store import Store
from camgate.vocab import EndReason, GrantProblem

if TYPE_CHECKING:
    from camgate.edge.guard import GuardedStream

__all__ = ["Revocations"]


class Revocations:
    """The revocation part of :class:`~camgate.edge.Edge` (a mixin: its state lives on the
    edge, set up by ``Edge.__init__``)."""

    if TYPE_CHECKING:
        store: Store
        _live: set[GuardedStream]
        _marks: dict[tuple[str, str], int]
        _generation: int
        _relay: Relay
        _dropping: dict[tuple[str, str], list[Any]]

        def _drop_upstreams(self, camera_ids: list[str]) -> list[Upstream]: ...

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
        consent the grant was issued under no longer stands; ``INCIDENT_CLOSED``).
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
        return None

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
