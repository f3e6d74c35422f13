"""Retention: every file made from footage carries an expiry, and expired files are deleted
with a durable audit record; an evidence hold on an incident keeps its files past expiry.

What is registered (:meth:`Retention.register`): clips, snapshots written to disk, HLS segments
and playlists, caches — any file or folder, by whoever writes it (the edge registers the clips it
records, the CLI its snapshots; an HLS writer calls ``gate.retention.register`` per segment).
Its expiry is ``created + min(owner's ConsentTerms.retention_days, agency's
AgencyRules.retention_days)``: the shorter wins.

Deleting (:meth:`Retention.run`), for each expired file not under a hold:

1. the registry row is marked ``deleting`` (committed);
2. ``retention.deleted`` is appended to the audit log (durable on return) with the artifact, its
   registered SHA-256, what was found on disk (``present`` with the SHA-256 found, or
   ``missing``) and the reason;
3. the file is unlinked; 4. the row is marked ``deleted`` with the record's seq.

Steps 1 and 4 are one commit per batch of 256 files, and the records of a batch are appended
by 16 threads so they share commits (the audit log's group commit). So no file is unlinked
before its record is durable. A process killed between 1 and 4 leaves a
``deleting`` row; the next run looks for that artifact's record in the log, finishes the unlink
if the record is there, and writes the record first if it is not. Nothing is deleted unrecorded,
and each artifact gets exactly one deletion record.

Several hubs on one PostgreSQL store each keep their files on their own disk: an artifact's row
names its **node** (:func:`camgate.db.writers.node_name`, remembered in the store's home), and a
node's run deletes only its own. Another node's file is not "missing" here, and its export under
way is not abandoned because this machine has no such path. A row registered before nodes were
recorded is claimed (one atomic update, so one node) by the first node that has its file; one
whose file no node has is left and counted (``elsewhere``). On SQLite (one machine) every row
is the run's.
"""

from __future__ import annotations

import enum
import fcntl
import json
import os
import re
import shutil
import stat
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import attrs

from camgate.audit import AuditLog
from camgate.clock import Clock, SystemClock
from camgate.db.writers import node_name, pg_session_lock
from camgate.errors import CamgateError, ConfigError, NotFound, ValidationError
from camgate.media.files import PartialOutput, abandoned, partial_name, sha256_path
from camgate.models import new_id
from camgate.rules import AgencyRules
from camgate.store import Store
from camgate.vocab import AuditKind

__all__ = [
    "Artifact",
    "ArtifactState",
    "Export",
    "export_bytes",
    "Hold",
    "Retention",
    "RetentionRun",
    "sha256_path",
]

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS artifacts (
        id TEXT PRIMARY KEY, path TEXT NOT NULL, kind TEXT NOT NULL, camera_id TEXT NOT NULL,
        grant_id TEXT, incident_id TEXT, sha256 TEXT NOT NULL, size INTEGER NOT NULL,
        created_at TEXT NOT NULL, expires_at TEXT NOT NULL, expires_ts REAL NOT NULL,
        state TEXT NOT NULL DEFAULT 'kept', deleted_at TEXT, deletion_seq INTEGER)""",
    "CREATE INDEX IF NOT EXISTS artifacts_due ON artifacts(state, expires_ts)",
    "CREATE INDEX IF NOT EXISTS artifacts_incident ON artifacts(incident_id)",
    """CREATE TABLE IF NOT EXISTS holds (
        incident_id TEXT PRIMARY KEY, reason TEXT NOT NULL, placed_at TEXT NOT NULL,
        placed_by TEXT NOT NULL)""",
)
#: Deletions per batch (one 'deleting' commit, one 'deleted' commit) and concurrent appenders.
_BATCH, _WORKERS = 256, 16
_KIND = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}$")
_COLUMNS = (
    "id, path, kind, camera_id, grant_id, incident_id, sha256, size, created_at, expires_at, "
    "state, deleted_at"
)


class ArtifactState(enum.StrEnum):
    """Where an artifact is in its life: being written (under its partial name), kept, being
    deleted (record maybe written), deleted."""

    WRITING = "writing"
    KEPT = "kept"
    DELETING = "deleting"
    DELETED = "deleted"


@attrs.frozen
class Artifact:
    """A registered file (or folder) made from footage, with when it must be gone."""

    id: str
    path: str
    kind: str
    camera_id: str
    grant_id: str | None
    incident_id: str | None
    sha256: str
    size: int
    created_at: datetime
    expires_at: datetime
    state: ArtifactState = ArtifactState.KEPT
    deleted_at: datetime | None = None

    @classmethod
    def _from_row(cls, row: tuple[Any, ...]) -> Artifact:
        return cls(
            row[0],
            row[1],
            row[2],
            row[3],
            row[4],
            row[5],
            row[6],
            int(row[7]),
            datetime.fromisoformat(row[8]),
            datetime.fromisoformat(row[9]),
            ArtifactState(row[10]),
            datetime.fromisoformat(row[11]) if row[11] else None,
        )

    def _row(self) -> tuple[Any, ...]:
        return (
            *attrs.astuple(self, recurse=False)[:8],
            self.created_at.isoformat(),
            self.expires_at.isoformat(),
            str(self.state),
            self.deleted_at.isoformat() if self.deleted_at else None,
            self.expires_at.timestamp(),
        )

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "artifact": self.id,
            "path": self.path,
            "kind": self.kind,
            "camera": self.camera_id,
            "grant": self.grant_id,
            "incident": self.incident_id,
            "sha256": self.sha256,
            "size": self.size,
            "created_at": self.created_at.isoformat(),
            "expires_at": self.expires_at.isoformat(),
            "state": str(self.state),
            "deleted_at": self.deleted_at.isoformat() if self.deleted_at else None,
        }


@attrs.frozen
class Hold:
    """An evidence hold: the incident's artifacts are kept past their expiry until released."""

    incident_id: str
    reason: str
    placed_at: datetime
    placed_by: str

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "incident": self.incident_id,
            "reason": self.reason,
            "placed_at": self.placed_at.isoformat(),
            "by": self.placed_by,
        }


@attrs.frozen
class RetentionRun:
    """What a retention run did (or, with ``dry_run``, would do)."""

    dry_run: bool
    at: datetime
    deleted: list[dict[str, Any]]
    held: list[dict[str, Any]]
    #: Expired artifacts this run left to the nodes whose disks hold them (PostgreSQL).
    elsewhere: int = 0

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form (what ``camgate retention run --json`` prints)."""
        return {
            "dry_run": self.dry_run,
            "at": self.at.isoformat(),
            "deleted": self.deleted,
            "held": self.held,
            "elsewhere": self.elsewhere,
        }


def _present(path: Path) -> bool:
    """Whether an artifact's bytes are on disk: at its path, or still under the partial name a
    crash between its registration and the final rename left."""
    return any(p.exists() or p.is_symlink() for p in (path, partial_name(path)))


def _remove(path: Path) -> None:
    """Remove an artifact at ``path`` and its partial name, never following a symlink: one
    found there is removed itself (what it points to is not camgate's to delete)."""
    for target in (path, partial_name(path)):
        try:
            found = os.lstat(target)
        except FileNotFoundError:
            continue
        if stat.S_ISDIR(found.st_mode):
            shutil.rmtree(target)  # descriptor-based: symlinks inside are unlinked, not followed
        else:
            target.unlink(missing_ok=True)


class Retention:
    """The registry of exported artifacts, evidence holds and the deleting run.

    ``rules`` returns the agency's rules in force (their ``retention_days``); the owner's terms
    come from the consent the artifact's grant was issued under (else the camera's standing
    consent). ``node`` names the machine whose disk the files registered here are on (default
    :func:`~camgate.db.writers.node_name`); runs delete that node's files only. Every method
    is synchronous and durable on return; call them from a worker thread in async code.
    """

    def __init__(
        self,
        store: Store,
        audit: AuditLog,
        *,
        rules: Callable[[], AgencyRules] = AgencyRules,
        clock: Clock | None = None,
        node: str | None = None,
    ) -> None:
        self.store = store
        self.audit = audit
        self.rules = rules
        self.clock: Clock = clock or SystemClock()
        #: The node whose files this registers and deletes.
        remember = Path(f"{store.path}.node") if store.dsn is not None else None
        self.node = node or node_name(remember)  # on SQLite only a label: not remembered
        with store.transaction() as db:
            for statement in _SCHEMA:
                db.execute(statement)

    def __repr__(self) -> str:
        return f"<Retention store={self.store.path}>"

    # ------------------------------------------------------------------ registering

    def _grant_doc(self, grant_id: str) -> dict[str, Any]:
        rows = self.store.query("SELECT doc FROM grants WHERE id=?", (grant_id,))
        if not rows:
            raise NotFound(f"no grant {grant_id!r}")
        doc: dict[str, Any] = json.loads(rows[0][0])
        return doc

    def _owner_days(self, camera_id: str, consent_id: str | None) -> float | None:
        if consent_id is not None:
            owner = self.store.get_camera(camera_id).owner_id
            for record in self.store.consents(owner):
                if record.id == consent_id:
                    return record.terms.retention_days
        consent = self.store.active_consent(camera_id)
        return consent.terms.retention_days if consent is not None else None

    def expiry(
        self, camera_id: str, created_at: datetime, consent_id: str | None = None
    ) -> tuple[datetime, dict[str, float | None]]:
        """When an artifact of ``camera_id`` made at ``created_at`` expires, and the two terms
        (``owner_days``, ``agency_days``) it came from: the shorter wins."""
        agency = float(self.rules().retention_days)
        owner = self._owner_days(camera_id, consent_id)
        days = agency if owner is None else min(agency, owner)
        return created_at + timedelta(days=days), {"owner_days": owner, "agency_days": agency}

    def register(
        self,
        path: str | Path,
        kind: str,
        *,
        camera_id: str,
        grant_id: str | None = None,
        incident_id: str | None = None,
        sha256: str | None = None,
        created_at: datetime | None = None,
    ) -> Artifact:
        """Register a file (or folder) written from ``camera_id``'s footage; return it with its
        expiry. ``kind`` names what it is: ``clip``, ``snapshot``, ``hls-segment``, ``cache``...

        The incident is taken from the grant when not given. The row is committed before the
        ``artifact.registered`` audit record, so a crash between them leaves a file that will
        still be deleted (and its deletion recorded). Raises ValidationError for a missing file
        or a bad kind, NotFound for an unknown camera or grant.
        """
        target = Path(path).absolute()
        if target.is_symlink():
            raise ValidationError(f"{target} is a symlink: register the file itself")
        if not target.exists():
            raise ValidationError(f"{target}: no such file to register")
        found, size = sha256_path(target)
        if sha256 is not None and sha256 != found:
            raise ValidationError(f"{target}: its SHA-256 is not the one given")
        artifact, terms = self._new(target, kind, camera_id, grant_id, incident_id, created_at)
        artifact = attrs.evolve(artifact, sha256=found, size=size)
        self._insert(artifact)
        self._registered(artifact, terms)
        return artifact

    def _new(
        self,
        target: Path,
        kind: str,
        camera_id: str,
        grant_id: str | None,
        incident_id: str | None,
        created_at: datetime | None,
    ) -> tuple[Artifact, dict[str, float | None]]:
        """An artifact row (not stored, no hash yet) after checking kind, camera and grant,
        and the retention terms its expiry came from."""
        if not isinstance(kind, str) or not _KIND.match(kind):
            raise ValidationError(f"kind={kind!r}: lower-case letters, digits and '-' (≤ 32)")
        self.store.get_camera(camera_id)
        consent_id = None
        if grant_id is not None:
            grant = self._grant_doc(grant_id)
            if grant["camera_id"] != camera_id:
                raise ValidationError(f"grant {grant_id!r} is not for camera {camera_id!r}")
            incident_id = incident_id or grant["incident_id"]
            consent_id = grant.get("consent_id")
        created = (created_at or self.clock.now()).astimezone(UTC)
        expires, terms = self.expiry(camera_id, created, consent_id)
        artifact = Artifact(
            new_id("art"),
            str(target),
            kind,
            camera_id,
            grant_id,
            incident_id,
            "",
            0,
            created,
            expires,
        )
        return artifact, terms

    def _insert(self, artifact: Artifact) -> None:
        with self.store.transaction() as db:
            db.execute(
                f"INSERT INTO artifacts ({_COLUMNS}, expires_ts, node) "  # noqa: S608
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (*artifact._row(), self.node),
            )

    def _registered(self, artifact: Artifact, terms: dict[str, float | None]) -> None:
        body = artifact.to_json()
        del body["state"], body["deleted_at"]
        self.audit.append(
            AuditKind.ARTIFACT_REGISTERED, body | {"retention": terms}, artifact.created_at
        )

    def begin(
        self,
        partial: str | Path,
        kind: str,
        *,
        camera_id: str,
        grant_id: str | None = None,
        incident_id: str | None = None,
    ) -> Artifact:
        """Register an export *before its first byte*: ``partial`` is the file or folder it is
        being written to (:class:`camgate.media.files.PartialOutput`, whose writer holds its
        lock). The row is committed in state ``writing``; :meth:`complete` finishes it. If the
        writer dies first, :meth:`run` finds the partial's lock free and deletes what it left
        (``retention.deleted`` with reason ``incomplete``), whatever its expiry."""
        target = Path(partial).absolute()
        if not target.exists():
            raise ValidationError(f"{target}: no such file to register")
        artifact, _terms = self._new(target, kind, camera_id, grant_id, incident_id, None)
        artifact = attrs.evolve(artifact, state=ArtifactState.WRITING)
        self._insert(artifact)
        return artifact

    def complete(
        self,
        artifact: Artifact,
        final: str | Path,
        *,
        sha256: str | None = None,
        created_at: datetime | None = None,
        measured: tuple[str, int] | None = None,
    ) -> Artifact:
        """Finish an export :meth:`begin` registered: hash what was written (still under its
        partial name), then commit the row as ``kept`` at its ``final`` path (expiry from
        ``created_at`` when given) and append ``artifact.registered``. Call it before moving
        the partial to ``final``: a crash in between leaves bytes under the partial name of a
        kept artifact, which its deletion removes too. ``measured`` is the (SHA-256, size) the
        writer took through its own descriptor (:meth:`Export.commit` passes it); without it
        the partial is hashed by name, never through a symlink."""
        found, size = measured or sha256_path(artifact.path)
        if sha256 is not None and sha256 != found:
            raise ValidationError(f"{artifact.path}: its SHA-256 is not the one given")
        consent = None
        if artifact.grant_id is not None:
            consent = self._grant_doc(artifact.grant_id).get("consent_id")
        created = (created_at or artifact.created_at).astimezone(UTC)
        expires, terms = self.expiry(artifact.camera_id, created, consent)
        done = attrs.evolve(
            artifact,
            path=str(Path(final).absolute()),
            sha256=found,
            size=size,
            created_at=created,
            expires_at=expires,
            state=ArtifactState.KEPT,
        )
        with self.store.transaction() as db:
            db.execute(
                "UPDATE artifacts SET path=?, sha256=?, size=?, created_at=?, expires_at=?, "
                "expires_ts=?, state=? WHERE id=? AND state=?",
                (
                    done.path,
                    found,
                    size,
                    created.isoformat(),
                    expires.isoformat(),
                    expires.timestamp(),
                    str(ArtifactState.KEPT),
                    artifact.id,
                    str(ArtifactState.WRITING),
                ),
            )
        self._registered(done, terms)
        return done

    def abandon(self, artifact: Artifact, reason: str) -> dict[str, Any]:
        """Delete an export that failed (what it wrote, under its partial name), with its
        ``retention.deleted`` record (``reason``) durable first; returns that record's body."""
        entry = self._entry(artifact) | {"reason": reason}
        return self._delete([entry], {})[0]

    def orphans(self) -> list[Artifact]:
        """Exports registered by :meth:`begin` whose writer is gone (a crash): their partial
        file or folder's lock is free; and those whose deletion a crash interrupted."""
        rows = self._rows("state = 'writing' OR (state = 'deleting' AND sha256 = '')", ())
        return [a for a in rows if a.state is ArtifactState.DELETING or abandoned(a.path)]

    def artifacts(self, *, camera_id: str | None = None) -> list[Artifact]:
        """Every registered artifact (one camera's), oldest first, deleted ones included."""
        sql = f"SELECT {_COLUMNS} FROM artifacts"  # noqa: S608
        params: tuple[str, ...] = ()
        if camera_id is not None:
            sql, params = sql + " WHERE camera_id=?", (camera_id,)
        return [Artifact._from_row(r) for r in self.store.query(sql + " ORDER BY rowid", params)]

    # ------------------------------------------------------------------ holds

    def holds(self) -> list[Hold]:
        """The evidence holds in force, oldest first."""
        rows = self.store.query(
            "SELECT incident_id, reason, placed_at, placed_by FROM holds ORDER BY rowid"
        )
        return [Hold(r[0], r[1], datetime.fromisoformat(r[2]), r[3]) for r in rows]

    def place_hold(self, incident_id: str, reason: str, *, by: str = "") -> Hold:
        """Keep every artifact of ``incident_id`` past its expiry until the hold is released.

        Audited (``hold.placed``) before it takes effect; running it again after a crash in
        between is safe. Raises NotFound for an unknown incident, ValidationError for an empty
        reason or an incident already on hold.
        """
        if not isinstance(reason, str) or not reason.strip():
            raise ValidationError("a hold needs a reason (e.g. the case number)")
        self.store.get_incident(incident_id)
        for hold in self.holds():
            if hold.incident_id == incident_id:
                raise ValidationError(
                    f"incident {incident_id!r} is on hold since {hold.placed_at.isoformat()}"
                )
        hold = Hold(incident_id, reason.strip(), self.clock.now(), by or "unknown")
        self.audit.append(
            AuditKind.HOLD_PLACED,
            {"incident": incident_id, "reason": hold.reason, "by": hold.placed_by},
            hold.placed_at,
        )
        with self.store.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO holds VALUES (?, ?, ?, ?)",
                (incident_id, hold.reason, hold.placed_at.isoformat(), hold.placed_by),
            )
        return hold

    def release_hold(self, incident_id: str, *, reason: str = "", by: str = "") -> Hold:
        """Release an evidence hold; the incident's expired artifacts go at the next run.

        Audited (``hold.released``) before the hold is dropped, so a crash in between keeps the
        files (the safe side) and the release can be run again. NotFound when not on hold.
        """
        found = [h for h in self.holds() if h.incident_id == incident_id]
        if not found:
            raise NotFound(f"incident {incident_id!r} is not on hold")
        self.audit.append(
            AuditKind.HOLD_RELEASED,
            {"incident": incident_id, "reason": reason, "by": by or "unknown"},
            self.clock.now(),
        )
        with self.store.transaction() as db:
            db.execute("DELETE FROM holds WHERE incident_id=?", (incident_id,))
        return found[0]

    # ------------------------------------------------------------------ deleting

    def _rows(self, where: str, params: tuple[Any, ...]) -> list[Artifact]:
        """The artifacts matching ``where`` that are this run's: on SQLite all; on PostgreSQL
        this node's, and those of no recorded node whose file is here (see the module)."""
        if self.store.dsn is None:
            sql = f"SELECT {_COLUMNS} FROM artifacts WHERE {where} ORDER BY expires_ts, rowid"  # noqa: S608
            return [Artifact._from_row(r) for r in self.store.query(sql, params)]
        rows = self.store.query(
            f"SELECT {_COLUMNS}, node FROM artifacts WHERE ({where}) "  # noqa: S608
            "AND (node IS NULL OR node = ?) ORDER BY expires_ts, rowid",
            (*params, self.node),
        )
        return [
            Artifact._from_row(r[:-1]) for r in rows if r[-1] is not None or _present(Path(r[1]))
        ]

    def _elsewhere(self, ts: float) -> int:
        """Expired artifacts on other nodes' disks (or, of no recorded node, on none here)."""
        if self.store.dsn is None:
            return 0
        rows = self.store.query(
            "SELECT node, path FROM artifacts WHERE state IN ('kept', 'deleting', 'writing') "
            "AND expires_ts <= ? AND (node IS NULL OR node <> ?)",
            (ts, self.node),
        )
        return sum(1 for node, path in rows if node is not None or not _present(Path(path)))

    def _claim(self, artifacts: list[Artifact]) -> list[Artifact]:
        """On PostgreSQL, take the rows of no recorded node for this node (one update each,
        so one node gets each); the artifacts that are this node's."""
        if self.store.dsn is None or not artifacts:
            return artifacts
        mine: set[str] = set()
        for first in range(0, len(artifacts), _BATCH):
            ids = [a.id for a in artifacts[first : first + _BATCH]]
            marks = ",".join("?" * len(ids))
            with self.store.transaction() as db:
                db.execute(
                    f"UPDATE artifacts SET node=? WHERE node IS NULL AND id IN ({marks})",  # noqa: S608
                    (self.node, *ids),
                )
            rows = self.store.query(
                f"SELECT id FROM artifacts WHERE node = ? AND id IN ({marks})",  # noqa: S608
                (self.node, *ids),
            )
            mine |= {r[0] for r in rows}
        return [a for a in artifacts if a.id in mine]

    def due(self, now: datetime | None = None) -> tuple[list[Artifact], list[Artifact]]:
        """Expired artifacts still on disk: ``(to delete, kept by a hold)``."""
        ts = (now or self.clock.now()).timestamp()
        expired = self._rows("state IN ('kept', 'deleting') AND expires_ts <= ?", (ts,))
        held = {h.incident_id for h in self.holds()}
        return (
            [a for a in expired if a.incident_id not in held],
            [a for a in expired if a.incident_id in held],
        )

    def _set_states(self, state: ArtifactState, items: list[tuple[str, int | None]]) -> None:
        """Set the state (and deletion seq) of many artifacts in one transaction."""
        when = self.clock.now().isoformat() if state is ArtifactState.DELETED else None
        with self.store.transaction() as db:
            db.executemany(
                "UPDATE artifacts SET state=?, deleted_at=?, deletion_seq=? WHERE id=?",
                [(str(state), when, seq, ident) for ident, seq in items],
            )

    def _recorded(self, ids: set[str]) -> dict[str, int]:
        """Deletion records already in the log for these artifacts (after a crash)."""
        found: dict[str, int] = {}
        for record in self.audit.records(AuditKind.RETENTION_DELETED):
            if record.body.get("artifact") in ids:
                found[record.body["artifact"]] = record.seq
        return found

    def run(self, *, dry_run: bool = False, now: datetime | None = None) -> RetentionRun:
        """Delete every expired artifact not under a hold, each after its durable
        ``retention.deleted`` record; finish deletions a crash interrupted. ``dry_run`` lists
        what would go and changes nothing.

        One run at a time per store and node (an exclusive lock on ``<store>.retention.lock``,
        and on PostgreSQL also a session advisory lock named after the node, for processes of
        one node with different homes; the kernel or the server releases either if the process
        dies): a second one raises ConfigError rather than record a deletion twice.
        """
        if dry_run:
            return self._run(True, now)
        busy = ConfigError(
            f"another retention run is under way on {self.store.where} for node {self.node!r}; "
            "try again later"
        )
        lock = Path(f"{self.store.path}.retention.lock")
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise busy from None
            if self.store.dsn is None:
                return self._run(False, now)
            name = f"camgate-retention:{self.node}"
            with pg_session_lock(self.store.dsn, name, self.store.where) as taken:
                if not taken:
                    raise busy
                return self._run(False, now)
        finally:
            os.close(fd)  # closing releases the lock

    def _run(self, dry_run: bool, now: datetime | None) -> RetentionRun:
        at = now or self.clock.now()
        todo, held = self.due(at)
        # A crash's leftovers go at once, hold or not: never exported, they are no evidence.
        listed = {a.id for a in todo}
        orphans = [a for a in self.orphans() if a.id not in listed]
        if not dry_run:  # rows of no recorded node: this node's from now on, or another's
            todo, orphans = self._claim(todo), self._claim(orphans)
        kept = [a.to_json() for a in held]
        entries = [self._entry(a) | {"reason": "expired"} for a in todo]
        entries += [self._entry(a) | {"reason": "incomplete"} for a in orphans]
        todo += orphans
        elsewhere = self._elsewhere(at.timestamp())
        if dry_run:
            return RetentionRun(True, at, entries, kept, elsewhere)
        interrupted = {a.id for a in todo if a.state is ArtifactState.DELETING}
        recorded = self._recorded(interrupted) if interrupted else {}
        done: list[dict[str, Any]] = []
        for first in range(0, len(entries), _BATCH):
            done.extend(self._delete(entries[first : first + _BATCH], recorded))
        return RetentionRun(False, at, done, kept, elsewhere)

    @staticmethod
    def _entry(artifact: Artifact) -> dict[str, Any]:
        entry = artifact.to_json()
        entry["found"] = "present" if _present(Path(artifact.path)) else "missing"
        del entry["state"], entry["deleted_at"]
        return entry

    def _delete(
        self, entries: list[dict[str, Any]], recorded: dict[str, int]
    ) -> list[dict[str, Any]]:
        """Delete one batch: mark every row ``deleting`` (one commit); then, concurrently so
        the records share commits, append each ``retention.deleted`` and — only once it is
        durable — unlink its file; then mark every row ``deleted`` (one commit)."""
        fresh = [e for e in entries if e["artifact"] not in recorded]
        self._set_states(ArtifactState.DELETING, [(e["artifact"], None) for e in fresh])

        def one(entry: dict[str, Any]) -> dict[str, Any]:
            target = Path(entry["path"])
            seq = recorded.get(entry["artifact"])
            if seq is None:
                if entry["found"] == "present" and target.exists() and not target.is_symlink():
                    entry["sha256_found"] = sha256_path(target)[0]
                    if entry["sha256"]:
                        entry["intact"] = entry["sha256_found"] == entry["sha256"]
                seq = self.audit.append(AuditKind.RETENTION_DELETED, entry, self.clock.now()).seq
            else:
                entry["recovered"] = True  # the record was written before a crash
            if entry["found"] == "present":
                _remove(target)
            return entry | {"seq": seq}

        with ThreadPoolExecutor(max_workers=_WORKERS) as pool:
            done = list(pool.map(one, entries))
        self._set_states(ArtifactState.DELETED, [(e["artifact"], e["seq"]) for e in done])
        return done


class Export:
    """A file (or, with ``directory=True``, a folder) being exported from footage to ``path``.

    Creating it creates the partial output (:class:`camgate.media.files.PartialOutput`: hidden
    name, private mode, locked) and, with a ``retention``, registers it (:meth:`Retention.begin`)
    before the first byte. Write into :attr:`partial` (or call :meth:`write`), then
    :meth:`commit` — the row is finished, then the output moved to ``path`` — or
    :meth:`discard`. ``replace`` lets it replace a file (or empty folder) at ``path``.
    Blocking: call it from a worker thread in async code.
    """

    def __init__(
        self,
        retention: Retention | None,
        path: str | Path,
        kind: str,
        *,
        camera_id: str,
        grant_id: str | None = None,
        incident_id: str | None = None,
        directory: bool = False,
        replace: bool = False,
    ) -> None:
        self.out = PartialOutput(path, directory=directory, replace=replace)
        self.partial, self.final = self.out.partial, self.out.final
        self.retention = retention
        self.artifact: Artifact | None = None
        if retention is not None:
            try:
                self.artifact = retention.begin(
                    self.partial,
                    kind,
                    camera_id=camera_id,
                    grant_id=grant_id,
                    incident_id=incident_id,
                )
            except BaseException:
                self.out.discard()
                raise

    def write(self, data: bytes) -> None:
        """Write ``data`` as the whole file (ExportError naming the final file on a failure)."""
        self.out.write(data)

    def commit(
        self, *, sha256: str | None = None, created_at: datetime | None = None
    ) -> Artifact | None:
        """Hash the output through its descriptor (ExportError if the partial name no longer
        holds it: see :meth:`PartialOutput.verify`), finish the retention row at the final path
        with that hash, then move the output there; returns the registered artifact (None
        without retention). On an error, call :meth:`discard`."""
        measured = self.out.digest()
        if sha256 is not None and sha256 != measured[0]:
            raise ValidationError(f"{self.partial}: its SHA-256 is not the one given")
        done = None
        if self.retention is not None and self.artifact is not None:
            done = self.retention.complete(
                self.artifact, self.final, created_at=created_at, measured=measured
            )
            self.artifact = None
        self.out.commit()
        return done

    def discard(self, reason: str) -> None:
        """Remove what was written; with retention, its row goes with a deletion record
        (``retention.deleted``, ``reason``). Idempotent."""
        try:
            if self.retention is not None and self.artifact is not None:
                artifact, self.artifact = self.artifact, None
                self.retention.abandon(artifact, reason)
        finally:
            # Without its record (the audit log failed too) the row stays ``writing``: the
            # next run finds it, its lock free, and records it as missing.
            self.out.discard()


def export_bytes(
    retention: Retention | None,
    path: str | Path,
    kind: str,
    data: bytes,
    *,
    camera_id: str,
    grant_id: str | None = None,
    created_at: datetime | None = None,
    replace: bool = False,
) -> Artifact | None:
    """Write ``data`` (a snapshot, say) as one :class:`Export` at ``path``: partial name, private
    mode, registered for retention before its first byte, renamed when complete. On any
    failure nothing is left and the row goes with a ``retention.deleted`` record."""
    export = Export(retention, path, kind, camera_id=camera_id, grant_id=grant_id, replace=replace)
    try:
        export.write(data)
        return export.commit(created_at=created_at)
    except BaseException as exc:
        export.discard(str(exc) if isinstance(exc, CamgateError) else type(exc).__name__)
        raise
