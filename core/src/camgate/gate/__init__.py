"""The gate: the only path from an officer's request to a camera's media.

    request → geofence → every consent policy votes → grant → owner notified
            → media flows inside the edge's guard → audit record

The hub side (this package) decides and signs; the edge side (:mod:`camgate.edge`) verifies and
serves. In the embedded default both live in one process around one SQLite file, and
:class:`Gate` holds its :class:`~camgate.edge.Edge` as ``gate.edge``.

Core invariants, checked here and not through plugins, so no plugin set can switch them off
(one function each in :mod:`camgate.gate.invariants`):

- ``core.opt-in`` — the camera's owner enrolled it and accepted a published waiver whose hash
  matches the record, and has not revoked;
- ``core.incident`` — the incident is open and the request falls inside its time window;
- ``core.scope`` — the owner's terms allow the scope (live, recorded, snapshot);
- ``core.capability`` — the camera's adapter is installed and can serve the scope;
- ``core.geofence`` — at least one geofence plugin includes the camera and none excludes it;
- ``core.window`` — a recorded window ends no later than the decision.

The package's rooms: :mod:`~camgate.gate.facade` (:class:`Gate`: the registry, consent, and the
parts assembled), :mod:`~camgate.gate.decisions` (votes and grants, from one record of the facts
a decision saw: :class:`camgate.facts.DecisionFacts`), :mod:`~camgate.gate.asking` (ask-first),
:mod:`~camgate.gate.incidents` (incidents, geofence, surveys), :mod:`~camgate.gate.changes`
(audited changes and crash recovery), :mod:`~camgate.gate.invariants` (the ``core.*`` votes),
:mod:`~camgate.gate.owner_look` (an owner's own still of their own camera, to draw masks on:
audited as the owner's, never an officer's access), :mod:`~camgate.gate.parts` (what the parts
share). Import the public names from here.
"""

from camgate.gate.asking import CONCLUDE_GRACE_S
from camgate.gate.decisions import SNAPSHOT_GRANT_S
from camgate.gate.facade import Gate, builtin_plugins

__all__ = ["CONCLUDE_GRACE_S", "SNAPSHOT_GRANT_S", "Gate", "builtin_plugins"]
