"""Hook specifications: the places where plugins plug into camgate.

Plugins implement these with ``@camgate.hookimpl`` and are found through the ``camgate``
entry-point group. camgate's own behaviour (the scope policy, the radius geofence, the durable
notification outbox) is registered on the same specifications, so an agency can add to it or
replace it. The core invariants of the gate — opt-in with a matching waiver, an open incident,
an adapter able to serve the scope — are checked by the gate itself and cannot be unplugged.

Every hook is synchronous (pluggy has no async hooks); adapters put their async work on the
objects they register. Decisions where every plugin must be heard (consent, geofence) collect all
answers (no hook is ``firstresult`` today: what belongs to one adapter is on its
:class:`~camgate.adapters.AdapterFactory`, not chosen by name among plugins).

Each hook has a section in docs/hooks.md and a ``test_hook_<hook>`` in
tests/integration/test_hooks.py that implements it; tests fail when either is missing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from camgate.adapters import AdapterFactory
    from camgate.commands import Command
    from camgate.geofence.shapes import Shape
    from camgate.models import Camera, Decision, Grant, Incident, Vote
    from camgate.notify import OwnerNotice
    from camgate.policy import PolicyContext
    from camgate.vocab import EndReason

PROJECT = "camgate"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


# -------------------------------------------------------------------------------- adapters


@hookspec
def camgate_register_adapters(register: Callable[[AdapterFactory], None]) -> None:
    """Register the camera adapters this plugin provides.

    Called once when the plugin host starts.

    :param register: call it with one :class:`camgate.adapters.AdapterFactory` per adapter:
        everything about the adapter at once (its builder, settings class, capabilities,
        budgets, and its ``simulator`` and ``conformance_target`` factories). Registering a name
        twice, or a factory declaring a capability its adapter class does not implement, is a
        :class:`camgate.errors.PluginError`.

    Implemented by every vendor plugin.
    """


# -------------------------------------------------------------------------------- consent


@hookspec
def camgate_consent_vote(ctx: PolicyContext) -> Vote | Sequence[Vote] | None:
    """Vote on one access request as a consent policy.

    Called for every request that reaches the gate, after the geofence and core checks are known,
    with everything the gate knows about it (request, camera, owner's consent record and waiver,
    incident, the time of the decision).

    :param ctx: a :class:`camgate.policy.PolicyContext`.
    :return: a :class:`camgate.models.Vote` (allow, deny or abstain, with a reason an owner or
        officer understands), several votes, or None to say nothing.

    Every implementation is heard; any deny refuses the request and every reason is kept in the
    decision and the audit log. Implemented by consent, agency and jurisdiction policies.
    """


# -------------------------------------------------------------------------------- geofence


@hookspec
def camgate_geofence_vote(incident: Incident, camera: Camera, now: datetime) -> Vote | None:
    """Say whether ``incident`` may reach ``camera`` at ``now``.

    Called for every request and for every candidate when the cameras an incident may reach
    are listed.

    :param incident: the reported incident (position, radius, time window, status).
    :param camera: the camera in question (position and, when known, field of view).
    :param now: the moment of the decision (UTC).
    :return: a :class:`camgate.models.Vote`: allow when a zone of this plugin covers the camera,
        deny when the plugin excludes it, abstain or None when it has no opinion.

    Every implementation is heard; any deny excludes the camera and at least one allow is needed
    to include it. Implemented by zone sources (radius, polygons, fields of view, exclusions).
    """


@hookspec
def camgate_geofence_extent(incident: Incident) -> Sequence[Shape] | None:
    """Say where this zone source may allow cameras for ``incident``.

    Called when the cameras an incident may reach are listed (``Gate.reachable``, ``camgate
    geofence query``): the spatial index is asked only for cameras inside some plugin's extent,
    then every geofence votes on those.

    :param incident: the reported incident.
    :return: shapes (:class:`camgate.geofence.Disc`, ``Area``, ``Corridor``, or any object with
        ``contains(lat, lon)`` and ``candidates(index)``) covering every camera this plugin could
        allow, or None when it allows none for this incident.

    Every implementation is heard; the union of the shapes is searched. Implemented by zone
    sources that allow cameras; exclusions and jurisdiction only deny and need not implement it.
    """


# -------------------------------------------------------------------------------- events


@hookspec
def camgate_decision_made(decision: Decision) -> None:
    """Observe a decision, granted or refused, after it is durably in the audit log.

    :param decision: the :class:`camgate.models.Decision` with every vote.

    Every implementation is called; exceptions are logged and do not change the decision.
    """


@hookspec
def camgate_access_started(grant: Grant, camera: Camera) -> None:
    """Observe the start of an access: the grant was redeemed and media is about to flow.

    Called after the access record is durable in the audit log, before the first byte.

    :param grant: the verified grant.
    :param camera: the camera being accessed.
    """


@hookspec
def camgate_access_ended(
    grant: Grant, camera: Camera, reason: EndReason, packets: int, nbytes: int
) -> None:
    """Observe the end of an access, with what was served.

    :param grant: the grant the access ran under.
    :param camera: the camera.
    :param reason: why it ended, a :class:`camgate.vocab.EndReason` (a ``str``: ``completed``,
        ``closed``, ``expired``, ``revoked``, ``error``, ``incident-closed``, ``masks-changed``;
        docs/hooks.md says what each means).
    :param packets: packets (or images) handed to the consumer.
    :param nbytes: bytes handed to the consumer.
    """


@hookspec
def camgate_consent_revoked(owner_id: str, camera_ids: Sequence[str], at: datetime) -> None:
    """Observe a revocation, after it is durable and every live stream of the cameras ended.

    :param owner_id: the owner who revoked.
    :param camera_ids: the cameras no longer reachable.
    :param at: when the revocation took effect (UTC).
    """


@hookspec
def camgate_camera_event(
    adapter: str, source: str | None, kind: str, at: datetime, details: Mapping[str, str]
) -> None:
    """Observe something a camera or its vendor reported on its own, once the adapter verified
    it came from the vendor (a signed webhook, an authenticated event stream).

    :param adapter: the adapter's name (``ring``).
    :param source: the camera's ``source`` as the adapter addresses it (the vendor's device id),
        None for an event about the whole account.
    :param kind: ``motion``, ``ding`` (a doorbell press), ``online``, ``offline``,
        ``device-added``, ``device-removed`` (the owner withdrew the device from the vendor's
        integration), ``unlinked`` (the owner withdrew the whole account), or another
        vendor word.
    :param at: when it happened (UTC).
    :param details: short vendor facts (``sub_type``, ``request_id``...), never a secret.

    Opens no media and grants nothing. Every implementation is called; exceptions are logged.
    """


@hookspec
def camgate_notify_owner(notice: OwnerNotice) -> bool | None:
    """Tell an owner about an access to one of their cameras, granted or refused.

    Called for every decision and every revocation.

    :param notice: a :class:`camgate.notify.OwnerNotice` (what, why, when, outcome).
    :return: True when this notifier accepted the notice for delivery (delivered or durably
        queued), None when it does not handle this owner.

    Every implementation is called. When none accepts, the gate raises a
    :class:`camgate.errors.PluginError`: an owner must always be told.
    """


# -------------------------------------------------------------------------------- commands


@hookspec
def camgate_register_commands(register: Callable[[Command], None]) -> None:
    """Add commands to the ``camgate`` command line.

    Called each time the ``camgate`` parser is built (every run of the command but those of
    core's own commands, parsed without loading plugins), through
    :meth:`camgate.plugins.PluginHost.commands`.

    :param register: call it with one :class:`camgate.commands.Command` per top-level command
        (``camgate NAME ...``); its ``configure(parser)`` adds the arguments and sets ``func``.
        A name core has, or another plugin registered, is a :class:`camgate.errors.PluginError`.

    Implemented by the conformance suite (``camgate conformance``) and by vendor plugins with
    vendor commands (``camgate onvif probe``, account linking for cloud vendors).
    """
