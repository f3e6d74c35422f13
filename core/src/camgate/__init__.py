"""camgate: consent-gated access to privately owned security cameras.

The public API, re-exported here; the machinery lives in the submodules. Start with
:class:`Gate`, which decides requests and holds the embedded :class:`Edge`.
"""

from importlib.metadata import PackageNotFoundError, version

from camgate.adapters import (
    Adapter,
    AdapterFactory,
    Capabilities,
    Credentials,
    LatencyBudgets,
    LiveStream,
    Secret,
    Simulator,
)
from camgate.audit import AuditLog, VerifyResult
from camgate.edge import Edge, GuardedStream
from camgate.errors import *  # noqa: F403 - the whole error tree is public
from camgate.errors import __all__ as _errors
from camgate.gate import Gate
from camgate.grants import GrantSigner, GrantVerifier, SignedGrant
from camgate.hookspecs import hookimpl
from camgate.models import (
    AccessRequest,
    Camera,
    CameraClass,
    Clip,
    ConsentMode,
    ConsentRecord,
    ConsentTerms,
    Decision,
    GeoPoint,
    Grant,
    Incident,
    IncidentStatus,
    MediaPacket,
    Owner,
    PendingRequest,
    PrivacyMask,
    Scope,
    Snapshot,
    StreamInfo,
    Verdict,
    Vote,
    Waiver,
)
from camgate.notify import OwnerNotice
from camgate.plugins import PluginHost
from camgate.policy import PolicyContext
from camgate.rules import AgencyRules, SensitivePlace
from camgate.store import Store
from camgate.vocab import AuditKind, EndReason, GrantProblem

try:
    __version__ = version("camgate")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0+unknown"

__all__ = [
    "AccessRequest",
    "Adapter",
    "AdapterFactory",
    "AgencyRules",
    "AuditKind",
    "AuditLog",
    "Camera",
    "CameraClass",
    "Capabilities",
    "Clip",
    "ConsentMode",
    "ConsentRecord",
    "ConsentTerms",
    "Credentials",
    "Decision",
    "Edge",
    "EndReason",
    "Gate",
    "GeoPoint",
    "Grant",
    "GrantProblem",
    "GrantSigner",
    "GrantVerifier",
    "GuardedStream",
    "Incident",
    "IncidentStatus",
    "LatencyBudgets",
    "LiveStream",
    "MediaPacket",
    "Owner",
    "OwnerNotice",
    "PendingRequest",
    "PluginHost",
    "PolicyContext",
    "PrivacyMask",
    "Scope",
    "Secret",
    "SensitivePlace",
    "SignedGrant",
    "Simulator",
    "Snapshot",
    "Store",
    "StreamInfo",
    "Verdict",
    "VerifyResult",
    "Vote",
    "Waiver",
    "__version__",
    "hookimpl",
    *_errors,
]
