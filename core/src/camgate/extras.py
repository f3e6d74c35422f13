"""camgate's optional extras, and the one way code imports a package that belongs to one.

``camgate[postgres]`` (psycopg) serves the PostgreSQL audit log; ``camgate[plot]`` (matplotlib)
draws the geofence plot and the transparency report's charts; ``camgate[webrtc]`` (aiortc)
receives live video over WebRTC (:mod:`camgate.media.webrtc`); ``camgate[edgenet]``
(nats-py) links edges at owners' sites to the hub over NATS (:mod:`camgate.edgenet`).
Everything else works without them. Code that needs one imports it inside
:func:`needs_extra`, so a missing package is a :class:`camgate.errors.MissingExtra` naming
the extra to install, never a bare ImportError::

    with needs_extra("postgres", "the PostgreSQL audit log"):
        import psycopg
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from camgate.errors import MissingExtra

__all__ = ["EXTRAS", "needs_extra"]

#: Each optional extra of the ``camgate`` distribution and the top-level packages it installs.
EXTRAS: dict[str, tuple[str, ...]] = {
    "postgres": ("psycopg",),
    "plot": ("matplotlib",),
    "webrtc": ("aiortc",),
    "edgenet": ("nats",),
}


@contextmanager
def needs_extra(extra: str, feature: str) -> Iterator[None]:
    """Run the imports in the block; an ImportError of a package of ``extra`` (one of
    :data:`EXTRAS`) becomes :class:`MissingExtra` saying ``feature`` needs ``camgate[extra]``.
    An ImportError of any other module passes through unchanged (it is a different fault)."""
    packages = EXTRAS[extra]
    try:
        yield
    except ImportError as exc:
        name = (exc.name or "").partition(".")[0]
        if name not in packages:
            raise
        raise MissingExtra(extra, name, feature) from exc
