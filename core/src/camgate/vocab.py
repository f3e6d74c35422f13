"""Named vocabularies: the words camgate writes where others read them.

Three sets of words leave camgate's code and outlive it: the **kind** of every audit record
(stored in the hash chain, read back by ``camgate owner history``, the transparency report and
outside auditors), the **reason** an access ended (in ``access.end`` records, in
:attr:`camgate.edge.StreamStats.end_reason` and in the ``camgate_access_ended`` hook), and the
**problem** that makes a grant stop holding (``Edge.grant_problem``). Each is a
:class:`enum.StrEnum` here, each value documented where it is defined, so that:

- a member *is* its string: ``AuditKind.ACCESS_END == "access.end"``, it is written, hashed,
  JSON-encoded and handed to hooks as exactly that text, and records written before these enums
  existed read back and verify unchanged (record kinds read from a log stay plain ``str``, which
  compare equal to the members);
- docs/audit.md (the kinds and their fields) and docs/hooks.md (the end reasons) are generated
  from these definitions (``python tests/meta/vocab_docs.py --write``), and tests/meta fails when
  they disagree or when code writes one of these words as a bare string literal.

Adding a value: add a member with its text, a sentence saying when it is written (and, for an
audit kind, the top-level fields of its body), use the member where the code writes it, then
regenerate the docs.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Self

__all__ = ["AuditKind", "EndReason", "GrantProblem"]


class _Word(StrEnum):
    """A documented word: each member is ``NAME = "text", "what it means"``."""

    #: What the value means, for the reader of the record, hook argument or docs.
    doc: str

    def __new__(cls, value: str, doc: str) -> Self:
        member = str.__new__(cls, value)
        member._value_ = value
        member.doc = doc
        return member


class EndReason(_Word):
    """Why an access ended: the ``reason`` of its ``access.end`` record, of
    :attr:`camgate.edge.StreamStats.end_reason` and of the ``camgate_access_ended`` hook."""

    COMPLETED = (
        "completed",
        "The access ran to its end: the camera ended the stream, or a snapshot or clip was "
        "handed over whole.",
    )
    CLOSED = (
        "closed",
        "The consumer closed the stream (``aclose``, leaving its context, its task cancelled) "
        "or the edge shut down.",
    )
    EXPIRED = (
        "expired",
        "The grant's time ran out (its expiry, or the time left for a snapshot or a stream's "
        "first packet); a relay subscription past its grant ends so too.",
    )
    REVOKED = (
        "revoked",
        "The owner revoked consent, the camera was removed, or the consent the grant was issued "
        "under no longer stands (see GrantProblem.REVOKED). Once a stream saw its revocation, "
        "every end is reported as this.",
    )
    ERROR = (
        "error",
        "The camera, the adapter or the consumer's packet transform failed; the record of an "
        "access that never opened names the exception (``error``).",
    )
    INCIDENT_CLOSED = (
        "incident-closed",
        "The grant's incident was closed or went past its window while the stream ran (see "
        "GrantProblem.INCIDENT_CLOSED).",
    )
    MASKS_CHANGED = (
        "masks-changed",
        "The owner changed the camera's privacy masks (here or in another process): the stream "
        "was masked otherwise than the owner now asks, so it ends; a new request gets the new "
        "masks.",
    )
    PRIVACY_ZONE = (
        "privacy-zone-unmasked",
        "A resident's privacy zone was registered in the camera's view and its owner has not "
        "yet confirmed that a privacy mask covers it: live view and snapshots of the camera "
        "stop until they do (see GrantProblem.PRIVACY_ZONE); recorded footage is not affected.",
    )

    ACCOUNT_UNLINKED = (
        "account-unlinked",
        "The camera's vendor account was unlinked or its authorisation withdrawn on the "
        "vendor's side (for example the owner removed camgate from Ring's \"My Apps\"): no "
        "camera of that account can be reached until its owner links it again, so every open "
        "access to them ended (see ``account.unlinked``).",
    )


class GrantProblem(_Word):
    """Why a verified, unexpired grant no longer holds for its camera (``Edge.grant_problem``).

    Each value is also an :class:`EndReason`: a stream whose grant stops holding ends with it.
    """

    REVOKED = (
        "revoked",
        "A revocation or removal of the camera is under way, or the consent the grant was "
        "issued under is no longer the camera's standing consent by its current owner (revoked, "
        "superseded by a re-enrolment, the camera changed hands) or no longer allows the scope.",
    )
    INCIDENT_CLOSED = (
        "incident-closed",
        "The grant's incident is closed, gone, or past its window.",
    )
    MASKS_CHANGED = (
        "masks-changed",
        "The camera's privacy masks changed and this edge does not hold the new ones yet (an "
        "edge at an owner's site storing the masks the hub sent): open streams, masked the old "
        "way, end; a new request is refused until the new masks are held.",
    )
    PRIVACY_ZONE = (
        "privacy-zone-unmasked",
        "A live or snapshot grant whose camera's view now covers a resident's privacy zone that "
        "the camera's owner has not confirmed a mask covers (the zone registered after the "
        "grant was issued, or the masks changed since the owner confirmed).",
    )

    @property
    def end_reason(self) -> EndReason:
        """The reason a stream ends with when its grant has this problem."""
        return EndReason[self.name]  # same name, same text (tests/meta checks)


#: The body of an owner notice record (``OwnerNotice.to_json``).
_NOTICE = (
    "id",
    "event",
    "owner_id",
    "camera_id",
    "request_id",
    "at",
    "scope",
    "incident_kind",
    "distance_m",
    "requested_by",
    "purpose",
    "duration_s",
    "note",
    "reasons",
    "deadline",
    "witness",
)
#: What every retention record says of its artifact.
_ARTIFACT = (
    "artifact",
    "kind",
    "path",
    "camera",
    "grant",
    "incident",
    "sha256",
    "size",
    "created_at",
    "expires_at",
)


class AuditKind(StrEnum):
    """The ``kind`` of an audit record, with what its ``body`` holds.

    Members are ``NAME = "kind", "when it is written", ("field", ...)``: ``fields`` lists
    every top-level key its body may have (docs/audit.md shows them; tests/meta checks the
    records the tests write against them).
    """

    #: When the record is written, for the auditor reading it.
    doc: str
    #: The top-level keys its body may carry.
    fields: tuple[str, ...]

    def __new__(cls, value: str, doc: str, fields: tuple[str, ...]) -> Self:
        member = str.__new__(cls, value)
        member._value_ = value
        member.doc = doc
        member.fields = fields
        return member

    # ---------------------------------------------------------------- waivers, consent, owners
    WAIVER_PUBLISHED = (
        "waiver.published",
        "A waiver version was published; owners accept it by its version and the hash of its text.",
        ("version", "sha256"),
    )
    CONSENT_ENROLLED = (
        "consent.enrolled",
        "An owner enrolled cameras under a waiver and terms: the consent record, with each "
        "camera's class (for the transparency report).",
        (
            "id",
            "owner_id",
            "camera_ids",
            "waiver_version",
            "waiver_sha256",
            "terms",
            "accepted_at",
            "revoked_at",
            "camera_classes",
        ),
    )
    CONSENT_REVOKED = (
        "consent.revoked",
        "An owner revoked every standing consent: the cameras and consent records it ended. "
        "Written before the streams' connections close.",
        ("owner", "cameras", "consents"),
    )
    CAMERA_REMOVED = (
        "camera.removed",
        "A camera left camgate; its streams were ended first.",
        ("camera",),
    )
    MASKS_SET = (
        "masks.set",
        "The owner set (or cleared, with no polygons) a camera's privacy masks.",
        ("camera_id", "polygons", "set_at", "set_by", "owner"),
    )
    MASKS_PUSHED = (
        "masks.pushed",
        "A camera that can mask its own picture (ONVIF Media2) took the owner's masks "
        "(``polygons``: how many).",
        ("camera_id", "owner", "polygons"),
    )
    OWNER_LOOK = (
        "owner.look",
        "An owner looked at their own camera (one still, to draw privacy masks on): not an "
        "access under a grant. Written before the camera is contacted; ``by``: who asked for "
        "the owner (the portal's account), if known.",
        ("look", "owner", "camera", "by"),
    )
    # ---------------------------------------------------------------- incidents
    INCIDENT_REPORTED = (
        "incident.reported",
        "An incident was opened: where, what kind, its radius and window.",
        ("id", "kind", "position", "radius_m", "reported_at", "status", "window_s"),
    )
    INCIDENT_CLOSED = (
        "incident.closed",
        "An incident was closed; ``caches_dropped`` lists the cameras whose GOP cache went "
        "with it.",
        ("incident", "caches_dropped"),
    )
    CACHE_WARM = (
        "cache.warm",
        "The edge opened its GOP cache for the cameras an incident reaches whose owners' terms "
        "allow it (a camera connection before any grant).",
        ("incident", "cameras"),
    )
    # ---------------------------------------------------------------- requests and decisions
    DECISION = (
        "decision",
        "The gate decided a request: the request and the decision with every vote. "
        "``held``: the request had been held for the owner; ``closes``: it closes a held "
        "request (``expired``, ``revoked``).",
        ("request", "decision", "held", "closes"),
    )
    REQUEST_HELD = (
        "request.held",
        "An ask-first request waits for the owner's answer until ``deadline``.",
        ("request", "pending", "deadline", "votes"),
    )
    OWNER_ANSWERED = (
        "owner.answered",
        "The owner answered a held request (``answer``: ``yes`` or ``no``).",
        ("request", "owner", "answer"),
    )
    GRANT_ISSUED = (
        "grant.issued",
        "A grant was issued: the grant itself (its token's content, without the signature).",
        (
            "id",
            "request_id",
            "camera_id",
            "incident_id",
            "consent_id",
            "scope",
            "audio",
            "issued_at",
            "expires_at",
            "window_start",
            "window_end",
            "approved_by",
            "approval_reason",
        ),
    )
    GRANT_REFUSED = (
        "grant.refused",
        "A granted request lost its consent before the grant was issued: the final refusal.",
        ("request", "decision"),
    )
    OWNER_NOTIFIED = (
        "owner.notified",
        "A notifier accepted an owner notice: the notice (``event``: ``ask``, ``granted``, "
        "``refused``, ``revoked``, ``program-ended``, ``program-renewed``) with the checkpoint "
        "it carries as ``witness``.",
        _NOTICE,
    )
    OWNER_NOTIFY_FAILED = (
        "owner.notify_failed",
        "No notifier accepted an owner notice (so no grant is issued): the notice, as for "
        "``owner.notified``.",
        _NOTICE,
    )
    # ---------------------------------------------------------------- access at the edge
    ACCESS_START = (
        "access.start",
        "The edge redeemed a grant, before the camera is contacted. A live stream adds "
        "``start`` (``cold`` or ``cached``) and ``cache_offset_s``.",
        ("grant", "camera", "start", "cache_offset_s"),
    )
    ACCESS_END = (
        "access.end",
        "An access ended: ``reason`` (an end reason, docs/hooks.md), what was handed over "
        "(``packets``, ``bytes``), a snapshot's ``sha256``, for an access that never "
        "opened the exception's name (``error``), and how the adapter reached the camera "
        "when it says so (``upstream``, e.g. a fallback to UDP).",
        ("grant", "camera", "reason", "packets", "bytes", "sha256", "error", "upstream"),
    )
    ACCOUNT_UNLINKED = (
        "account.unlinked",
        "A vendor account cameras are reached through was found unlinked, or its "
        "authorisation withdrawn, on the vendor's side (a token refresh refused): every open "
        "stream of its ``cameras`` ended (reason ``account-unlinked``) and their owners are "
        "told. ``adapter``, ``account`` (an opaque key, never a secret), ``error`` (what the "
        "vendor answered, without secrets).",
        ("adapter", "account", "cameras", "error"),
    )
    ACCESS_RENEWED = (
        "access.renewed",
        "A live access's connection to the camera was opened anew within its grant, before "
        "the new connection's first packet is handed over: a vendor's session cap (Ring ends "
        "live sessions after 30 s on a battery, 60 s on line power) or a lost connection. "
        "One record per grant served, with the upstream's ``renewal`` count and its "
        "``cause`` (what ended the previous connection).",
        ("grant", "camera", "renewal", "cause"),
    )
    EDGE_ACK = (
        "edge.ack",
        "An edge at an owner's site acknowledged a revocation the hub sent it over NATS: the "
        "``edge``, the ``camera``, the ``consent`` that no longer stands, the control stream's "
        "``seq``, how many live streams it ended (``streams_ended``) and when it applied it "
        "by its clock (``applied_at``). Written when the hub receives it.",
        ("edge", "camera", "consent", "seq", "streams_ended", "applied_at"),
    )
    CLIP_EXPORTED = (
        "clip.exported",
        "A clip was written and hashed, before it gets its final name (HLS: the "
        "playlist's hash, each segment's in ``segments``). ``partial`` with its ``reason`` "
        "when the camera stopped or the stream ended early; ``gaps`` lists where the "
        "camera was away (``at_s``, ``missing_s``).",
        (
            "grant_id",
            "camera_id",
            "path",
            "duration_s",
            "size",
            "sha256",
            "started_at",
            "format",
            "masked",
            "segments",
            "partial",
            "reason",
            "gaps",
        ),
    )
    CLIP_FAILED = (
        "clip.failed",
        "A clip did not complete: what was written was removed, nothing was exported.",
        ("grant", "camera", "path", "format", "error", "bytes_written", "exported", "removed"),
    )
    # ---------------------------------------------------------------- retention
    ARTIFACT_REGISTERED = (
        "artifact.registered",
        "A file made from footage was registered with its expiry and the terms that set it.",
        (*_ARTIFACT, "retention"),
    )
    RETENTION_DELETED = (
        "retention.deleted",
        "Retention deletes an artifact (written before the file is unlinked): ``reason`` "
        "``expired`` or ``incomplete``, whether it was ``found`` and ``intact``.",
        (*_ARTIFACT, "reason", "found", "sha256_found", "intact"),
    )
    HOLD_PLACED = (
        "hold.placed",
        "An evidence hold keeps an incident's artifacts past their expiry.",
        ("incident", "reason", "by"),
    )
    HOLD_RELEASED = (
        "hold.released",
        "An evidence hold was released; the incident's expired artifacts go at the next run.",
        ("incident", "reason", "by"),
    )
    # ---------------------------------------------------------------- approval by a second person
    APPROVAL_REQUESTED = (
        "approval.requested",
        "A request the agency's rules make wait for a second person's approval is held: the "
        "request, the camera's ``owner``, the ``role`` that approves, the ``deadline`` (no "
        "answer means no), ``why`` it needs approval and the votes so far.",
        ("request", "owner", "role", "deadline", "why", "votes"),
    )
    APPROVAL_ANSWERED = (
        "approval.answered",
        "A held request's approval was answered (``answer``: ``yes``, ``no``, or ``expired`` "
        "when nobody approved by the deadline): who (``approver``, ``role``) and their "
        "``reason``.",
        ("request", "answer", "approver", "role", "reason"),
    )
    # ---------------------------------------------------------------- the agency's program
    PROGRAM_NOTICE = (
        "program.notice",
        "The owners under active consent were told, once per rules version, that the agency's "
        "program ended (``event``: ``program-ended``) or was renewed as a new rules version "
        "(``program-renewed``): the agency, the version, the program's dates, the cameras, the "
        "words the owners were sent (``text``) and the once-only ``key``.",
        (
            "event",
            "agency",
            "version",
            "previous",
            "program_start",
            "program_end",
            "cameras",
            "text",
            "key",
        ),
    )
    # ---------------------------------------------------------------- residents' privacy zones
    ZONE_REGISTERED = (
        "zone.registered",
        "The agency registered a resident's privacy zone (a disc or a polygon, ``shape``) at the "
        "resident's request: every camera whose view covers it is refused live and snapshot "
        "until its owner attests a mask covers it. Who registered it (``by``), no resident's "
        "identity.",
        ("zone", "shape", "by", "registered_at"),
    )
    ZONE_REMOVED = (
        "zone.removed",
        "The agency removed a resident's privacy zone at the resident's request (``by``).",
        ("zone", "by"),
    )
    ZONE_ASKED = (
        "zone.asked",
        "The owners of the cameras whose view covers a privacy zone were asked, once per zone "
        "and camera, to set a privacy mask over it (``cameras``, the words sent: ``text``).",
        ("zone", "cameras", "text"),
    )
    ZONE_MASK_ATTESTED = (
        "zone.mask-attested",
        "A camera's owner attested that the camera's privacy masks cover a resident's zone; it "
        "holds while the masks are unchanged (``masks``: their digest, None for no masks).",
        ("zone", "camera", "owner", "masks", "at"),
    )
    # ---------------------------------------------------------------- surveys
    SURVEY = (
        "survey",
        "An incident's cameras were surveyed (the map; no access, no camera contacted): what "
        "was asked and how many candidates were allowed, would be asked first, or denied.",
        (
            "incident",
            "scope",
            "purpose",
            "requested_by",
            "at",
            "candidates",
            "allowed",
            "ask",
            "denied",
        ),
    )
