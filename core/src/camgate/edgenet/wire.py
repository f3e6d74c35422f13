"""What the hub and its edges say over NATS: subjects, signed control messages, media packets.

Every message an edge acts on comes from the network and is parsed here, strictly: anything
malformed is a :class:`camgate.errors.ValidationError` (the caller drops it and says so), never a
crash. Control messages (consent states, heartbeats) carry an Ed25519 signature by the hub's key
over their subject and body, so a peer that can publish on the subject still cannot lift a
revocation or keep a cut-off edge believing it is up to date.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import zlib
from datetime import UTC, datetime
from fractions import Fraction
from typing import Any

import attrs
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from camgate.errors import ConfigError, ValidationError
from camgate.grants import GrantSigner
from camgate.models import MediaPacket, PrivacyMask, StreamInfo

__all__ = [
    "ACK_STREAM",
    "CONTROL_STREAM",
    "LEASE_BUCKET",
    "Beat",
    "ConsentState",
    "IncidentClosed",
    "ControlVerifier",
    "ack_subject",
    "alive_subject",
    "audit_subject",
    "beat_subject",
    "check_edge_id",
    "consent_subject",
    "control_filter",
    "decode_packet",
    "encode_packet",
    "masks_digest",
    "incident_subject",
    "json_object",
    "media_subject",
    "open_request",
    "open_wants_browser",
    "snapshot_request",
    "snapshot_subject",
    "open_subject",
    "pack_audit",
    "sign_control",
    "unpack_audit",
]

#: JetStream stream of the hub's control messages to every edge (last message per subject kept).
CONTROL_STREAM = "CAMGATE_EDGE_CONTROL"
#: JetStream stream of the edges' acknowledgements to the hub.
ACK_STREAM = "CAMGATE_EDGE_ACKS"
#: JetStream key-value bucket of the edges' identity leases.
LEASE_BUCKET = "camgate_edge_leases"
#: The signature header of a control message.
SIG_HEADER = "Camgate-Sig"
_LABEL = b"camgate-edge-control-v1\n"
_EDGE_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
#: The largest control message an edge reads (a consent state is a few hundred bytes; with the
#: most masks a camera may have, 32 polygons of 64 corners, about 100 KiB).
MAX_CONTROL_BYTES = 256 * 1024


def check_edge_id(edge_id: str) -> str:
    """``edge_id`` when it is 1-64 letters, digits, ``_`` or ``-`` (one NATS subject token);
    ValidationError otherwise."""
    if not isinstance(edge_id, str) or not _EDGE_ID.fullmatch(edge_id):
        raise ValidationError(
            f"edge id {edge_id!r}: use 1-64 letters, digits, '_' or '-' (a NATS subject token)"
        )
    return edge_id


def _camera_token(camera_id: str) -> str:
    # Camera ids may hold any character; hex keeps one camera to one subject token.
    return camera_id.encode().hex()


def control_filter(edge_id: str) -> str:
    """Every control subject of one edge."""
    return f"camgate.ctl.{check_edge_id(edge_id)}.>"


def consent_subject(edge_id: str, camera_id: str) -> str:
    """Where the hub publishes one camera's consent state (the stream keeps the last)."""
    return f"camgate.ctl.{check_edge_id(edge_id)}.consent.{_camera_token(camera_id)}"


def incident_subject(edge_id: str, incident_id: str) -> str:
    """Where the hub tells one edge that an incident closed (kept until its window ends)."""
    return f"camgate.ctl.{check_edge_id(edge_id)}.incident.{_camera_token(incident_id)}"


def beat_subject(edge_id: str) -> str:
    """Where the hub publishes its heartbeats for one edge."""
    return f"camgate.ctl.{check_edge_id(edge_id)}.beat"


def ack_subject(edge_id: str) -> str:
    """Where an edge publishes its acknowledgements (into :data:`ACK_STREAM`)."""
    return f"camgate.ack.{check_edge_id(edge_id)}"


def audit_subject(edge_id: str) -> str:
    """Where the hub asks an edge for its audit log (NATS request/reply)."""
    return f"camgate.audit.{check_edge_id(edge_id)}"


#: The largest audit export one reply carries, compressed (NATS' default max payload is 1 MiB).
MAX_AUDIT_REPLY = 900 * 1024
#: The largest audit export the hub inflates from one reply.
MAX_AUDIT_TEXT = 64 * 1024 * 1024


def pack_audit(lines: list[str]) -> bytes:
    """An audit export (JSON Lines) as one reply body: zlib-compressed; ValidationError when it
    does not fit in :data:`MAX_AUDIT_REPLY`."""
    body = zlib.compress("\n".join(lines).encode(), 6)
    if len(body) > MAX_AUDIT_REPLY:
        raise ValidationError(
            f"the edge's audit export is {len(body)} bytes compressed, over one reply's "
            f"{MAX_AUDIT_REPLY}: export it at the site (camgate audit export)"
        )
    return body


def unpack_audit(body: bytes) -> list[str]:
    """The export lines of a :func:`pack_audit` reply; ValidationError for anything else
    (not zlib, truncated, or inflating past :data:`MAX_AUDIT_TEXT`)."""
    inflater = zlib.decompressobj()
    try:
        text = inflater.decompress(body, MAX_AUDIT_TEXT)
    except zlib.error:
        raise ValidationError("the edge's audit reply is not a compressed export") from None
    if inflater.unconsumed_tail or not inflater.eof:
        raise ValidationError("the edge's audit reply is truncated or too large")
    try:
        return text.decode().split("\n")
    except UnicodeDecodeError:
        raise ValidationError("the edge's audit reply is not UTF-8") from None


def snapshot_subject(edge_id: str) -> str:
    """Where a consumer asks an edge for one still under a snapshot grant (NATS request/reply:
    the reply is the JPEG, or a JSON refusal)."""
    return f"camgate.snap.{check_edge_id(edge_id)}"


def snapshot_request(body: bytes) -> tuple[str, str]:
    """The camera and grant token of a consumer's snapshot request; ValidationError for
    anything else."""
    req = json_object(body, "a snapshot request")
    camera, token = req.get("camera"), req.get("token")
    if not (isinstance(camera, str) and isinstance(token, str)):
        raise ValidationError("a snapshot request names camera and token")
    return camera, token


def open_subject(edge_id: str) -> str:
    """Where a consumer asks an edge to open a guarded stream (NATS request/reply)."""
    return f"camgate.open.{check_edge_id(edge_id)}"


def media_subject(edge_id: str, stream_key: str) -> str:
    """Where an edge publishes one guarded stream's packets."""
    if not re.fullmatch(r"[A-Za-z0-9_-]{8,64}", stream_key):
        raise ValidationError("a media stream key is 8-64 letters, digits, '_' or '-'")
    return f"camgate.media.{check_edge_id(edge_id)}.{stream_key}"


def alive_subject(media: str) -> str:
    """Where the edge asks whether the consumer of media subject ``media`` still listens."""
    return f"{media}.alive"


def _signed_bytes(subject: str, body: bytes) -> bytes:
    return _LABEL + subject.encode() + b"\n" + body


def sign_control(signer: GrantSigner, subject: str, body: bytes) -> dict[str, str]:
    """The headers that carry the hub's signature of ``body`` published on ``subject``."""
    sig = signer.sign_message(_signed_bytes(subject, body))
    return {SIG_HEADER: base64.urlsafe_b64encode(sig).decode()}


class ControlVerifier:
    """The edge's check that a control message is the hub's, with the hub's public key."""

    def __init__(self, public_key: bytes) -> None:
        try:
            self._key = Ed25519PublicKey.from_public_bytes(public_key)
        except ValueError as exc:
            raise ConfigError(f"not an Ed25519 public key: {exc}") from None

    def verify(self, subject: str, body: bytes, headers: dict[str, str] | None) -> dict[str, Any]:
        """The message's JSON object when the hub signed it; ValidationError otherwise."""
        if len(body) > MAX_CONTROL_BYTES:
            raise ValidationError(f"control message of {len(body)} bytes is too large")
        sig_text = (headers or {}).get(SIG_HEADER)
        if not sig_text:
            raise ValidationError("control message without the hub's signature")
        try:
            sig = base64.urlsafe_b64decode(sig_text.encode("ascii"))
            self._key.verify(sig, _signed_bytes(subject, body))
        except (binascii.Error, ValueError, UnicodeEncodeError):
            raise ValidationError("control message signature is malformed") from None
        except InvalidSignature:
            raise ValidationError("control message not signed by the hub's key") from None
        return json_object(body, "control message")


def json_object(body: bytes, what: str) -> dict[str, Any]:
    """``body`` parsed as one JSON object; ValidationError naming ``what`` otherwise."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        raise ValidationError(f"{what} is not JSON") from None
    if not isinstance(data, dict):
        raise ValidationError(f"{what} is not a JSON object")
    return data


def _time(value: object, what: str) -> datetime:
    if not isinstance(value, str):
        raise ValidationError(f"{what}: expected an ISO time")
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise ValidationError(f"{what}: not an ISO time") from None
    if at.tzinfo is None:
        raise ValidationError(f"{what}: the time has no zone")
    return at


def masks_digest(masks: PrivacyMask | None) -> str:
    """The version of a camera's masks as a consent state names it: the SHA-256 of the masks'
    polygons, time and author (canonical JSON), or ``""`` when the hub holds none for it."""
    if masks is None:
        return ""
    doc = {
        "polygons": [[list(p) for p in poly] for poly in masks.polygons],
        "set_at": masks.set_at.isoformat(),
        "set_by": masks.set_by,
    }
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _masks(camera: str, raw: object) -> PrivacyMask | None:
    """The masks a consent state carries, validated as :class:`PrivacyMask` validates them."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise ValidationError("consent state: 'masks' is not an object or null")
    set_by = raw.get("set_by")
    if not isinstance(set_by, str):
        raise ValidationError("consent state: masks' 'set_by' is not a string")
    try:
        return PrivacyMask(camera, raw.get("polygons"), _time(raw.get("set_at"), "masks"), set_by)
    except (TypeError, ValueError) as exc:  # ValidationError is a ValueError
        raise ValidationError(f"consent state: bad masks: {str(exc)[:200]}") from None


@attrs.frozen
class ConsentState:
    """One camera's consent as the hub has it: the standing consent record's id and scopes,
    or ``consent=None`` when none stands (revoked, or never enrolled); and the owner's privacy
    masks for it (``masks``: None when the hub holds none; cleared masks have no polygons).

    ``masks_version`` is :func:`masks_digest` of ``masks``: the edge serves the camera only
    while the masks it stored are that version (fail closed).
    """

    camera: str
    consent: str | None
    scopes: tuple[str, ...]
    at: datetime
    masks: PrivacyMask | None = None

    @property
    def masks_version(self) -> str:
        """:func:`masks_digest` of :attr:`masks`."""
        return masks_digest(self.masks)

    def to_json(self) -> bytes:
        """The message body (compact JSON)."""
        masks = None
        if self.masks is not None:
            masks = {
                "polygons": [[list(p) for p in poly] for poly in self.masks.polygons],
                "set_at": self.masks.set_at.isoformat(),
                "set_by": self.masks.set_by,
            }
        return json.dumps(
            {
                "kind": "consent",
                "camera": self.camera,
                "consent": self.consent,
                "scopes": list(self.scopes),
                "at": self.at.isoformat(),
                "masks": masks,
                "masks_version": self.masks_version,
            },
            separators=(",", ":"),
        ).encode()

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ConsentState:
        """Parse a verified message body; ValidationError when it is not a consent state, or
        its masks are not valid masks or not the version it names."""
        camera, consent, scopes = data.get("camera"), data.get("consent"), data.get("scopes")
        if data.get("kind") != "consent" or not isinstance(camera, str) or not camera:
            raise ValidationError("not a consent state message")
        if consent is not None and not isinstance(consent, str):
            raise ValidationError("consent state: 'consent' is not a string or null")
        if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
            raise ValidationError("consent state: 'scopes' is not a list of strings")
        at = _time(data.get("at"), "consent state")
        state = cls(camera, consent, tuple(scopes), at, _masks(camera, data.get("masks")))
        # A hub of before masks travelled sends neither: no masks, version "".
        if data.get("masks_version", "") != state.masks_version:
            raise ValidationError("consent state: the masks are not the version it names")
        return state


@attrs.frozen
class IncidentClosed:
    """An incident closed before its window ended: grants under it no longer hold."""

    incident: str
    at: datetime

    def to_json(self) -> bytes:
        """The message body."""
        return json.dumps(
            {"kind": "closure", "incident": self.incident, "at": self.at.isoformat()}
        ).encode()

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> IncidentClosed:
        """Parse a verified message body; ValidationError when it is not an incident closure."""
        incident = data.get("incident")
        if data.get("kind") != "closure" or not isinstance(incident, str) or not incident:
            raise ValidationError("not an incident closure message")
        return cls(incident, _time(data.get("at"), "incident closure"))


@attrs.frozen
class Beat:
    """A hub heartbeat: the hub's time when it sent it."""

    at: datetime

    def to_json(self) -> bytes:
        """The message body."""
        return json.dumps({"kind": "beat", "at": self.at.isoformat()}).encode()

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Beat:
        """Parse a verified message body; ValidationError when it is not a beat."""
        if data.get("kind") != "beat":
            raise ValidationError("not a heartbeat message")
        return cls(_time(data.get("at"), "heartbeat"))


def encode_packet(packet: MediaPacket) -> tuple[bytes, dict[str, str]]:
    """A packet as a NATS message: its bytes as the body, the rest in headers."""
    info = packet.stream
    headers = {
        "k": "1" if packet.is_keyframe else "0",
        "c": info.codec,
        "tb": f"{info.time_base.numerator}/{info.time_base.denominator}",
        "w": str(info.width),
        "h": str(info.height),
        "kind": info.kind,
    }
    if packet.pts is not None:
        headers["pts"] = str(packet.pts)
    if packet.dts is not None:
        headers["dts"] = str(packet.dts)
    if packet.duration is not None:
        headers["dur"] = str(packet.duration)
    if packet.discontinuity:
        headers["gap"] = "1"
    if info.extradata:
        headers["x"] = base64.b64encode(info.extradata).decode()
    return packet.data, headers


def _int(headers: dict[str, str], key: str) -> int | None:
    raw = headers.get(key)
    if raw is None:
        return None
    if not re.fullmatch(r"-?[0-9]{1,20}", raw):
        raise ValidationError(f"media packet: header {key!r} is not an integer")
    return int(raw)


def decode_packet(body: bytes, headers: dict[str, str] | None, arrival: float) -> MediaPacket:
    """The packet :func:`encode_packet` made; ValidationError for anything else."""
    h = headers or {}
    tb = h.get("tb", "")
    match = re.fullmatch(r"([1-9][0-9]{0,9})/([1-9][0-9]{0,9})", tb)
    codec = h.get("c", "")
    if match is None or not codec or len(codec) > 32:
        raise ValidationError("media packet: missing or bad codec or time base")
    try:
        extradata = base64.b64decode(h["x"], validate=True) if "x" in h else None
    except (binascii.Error, ValueError):
        raise ValidationError("media packet: bad extradata") from None
    info = StreamInfo(
        codec=codec,
        time_base=Fraction(int(match[1]), int(match[2])),
        width=_int(h, "w") or 0,
        height=_int(h, "h") or 0,
        extradata=extradata,
        kind=h.get("kind", "video")[:16],
    )
    return MediaPacket(
        data=bytes(body),
        pts=_int(h, "pts"),
        dts=_int(h, "dts"),
        is_keyframe=h.get("k") == "1",
        stream=info,
        arrival=arrival,
        duration=_int(h, "dur"),
        discontinuity=h.get("gap") == "1",
    )


def open_request(body: bytes) -> tuple[str, str, str]:
    """The camera, grant token and stream key of a consumer's open request; ValidationError for
    anything else."""
    req = json_object(body, "an open request")
    camera, token, key = req.get("camera"), req.get("token"), req.get("stream")
    if not (isinstance(camera, str) and isinstance(token, str) and isinstance(key, str)):
        raise ValidationError("an open request names camera, token and stream")
    return camera, token, key


def open_wants_browser(body: bytes) -> bool:
    """Whether a consumer's open request (already accepted by :func:`open_request`) asks for
    video every browser plays (``"browser": true``: H.265 transcoded to H.264)."""
    return json_object(body, "an open request").get("browser") is True


def now_utc() -> datetime:
    """The current UTC time."""
    return datetime.now(UTC)
