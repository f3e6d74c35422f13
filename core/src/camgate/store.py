"""Storage: one SQLite file holds the registry, consent, incidents, grants, outbox and audit log.

Each write is its own transaction, committed with ``synchronous=FULL`` in WAL mode, so a method
that returned has reached the disk. The connection is shared by threads behind a lock; the gate
calls the store from worker threads so the event loop never waits on fsync. Models are stored as
their :mod:`camgate.codec` JSON, and rebuilt (and validated again) on the way out.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import urllib.parse
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

from camgate.codec import dump, load
from camgate.db import is_postgres
from camgate.db.migrations import Status, sqlite_status, upgrade_sqlite
from camgate.db.writers import process_alive, process_identity
from camgate.errors import CamgateError, ConfigError, NotFound, StorageError, ValidationError
from camgate.models import (
    AccessRequest,
    Camera,
    ConsentRecord,
    Decision,
    Grant,
    Incident,
    Owner,
    PendingRequest,
    PrivacyMask,
    Waiver,
)

if TYPE_CHECKING:
    from camgate.adapters import Credentials
    from camgate.db.pg import Listener, PgConnection
    from camgate.db.writers import WriterLease

    #: A write connection of either engine: both give ``execute(...).rowcount/fetchall``.
    Connection = sqlite3.Connection | PgConnection
    from camgate.notify import OwnerNotice

__all__ = [
    "Changes",
    "Store",
    "connect",
    "local_path",
    "process_alive",
    "process_identity",
    "sqlite_errors",
    "storage_error",
]

T = TypeVar("T")

SCHEMA_VERSION = "1"

_LOW_SPACE = 1 << 20  # bytes free below which an I/O error is reported as a full disk


def storage_error(exc: sqlite3.Error, path: str | Path) -> CamgateError:
    """The camgate error for an ``sqlite3`` failure on the file ``path``, naming it.

    A full disk (``SQLITE_FULL``, or an I/O error while the file's filesystem has under 1 MiB
    left) is :class:`~camgate.errors.StorageError` saying so; a damaged file ("database disk
    image is malformed", "file is not a database") says the file is damaged; a file that
    cannot be opened says that. Others keep SQLite's words, with the file named.
    """
    text = str(exc)
    name = getattr(exc, "sqlite_errorname", "") or ""
    if name.startswith("SQLITE_FULL") or "disk is full" in text or _low_space(path):
        return StorageError(f"disk full: no space left to write {path} (SQLite: {text})")
    if name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")) or "malformed" in text:
        return StorageError(f"{path} is damaged: {text}; restore it from a backup")
    if name.startswith("SQLITE_READONLY"):
        return StorageError(f"{path} is read-only ({text}); this command writes to it")
    if name.startswith("SQLITE_CANTOPEN"):
        return StorageError(f"cannot open {path} ({text}): is the path right, and readable?")
    return StorageError(f"{path}: {text}")


def _low_space(path: str | Path) -> bool:
    try:
        st = os.statvfs(Path(path).parent)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < _LOW_SPACE


@contextmanager
def sqlite_errors(path: str | Path) -> Iterator[None]:
    """Turn a storage failure of SQLite (``sqlite3.OperationalError``, or a bare
    ``sqlite3.DatabaseError`` such as a damaged page) inside the block into
    :func:`storage_error`; constraint and programming errors pass unchanged."""
    try:
        yield
    except sqlite3.OperationalError as exc:
        raise storage_error(exc, path) from exc
    except sqlite3.DatabaseError as exc:
        if type(exc) is not sqlite3.DatabaseError:
            raise
        raise storage_error(exc, path) from exc


def connect(path: str | Path, *, read_only: bool = False, **options: Any) -> sqlite3.Connection:
    """A connection to the SQLite file ``path``; ``read_only`` opens it with ``mode=ro`` (no
    file, journal or WAL is created or written), so a read-only file, directory or mount works.

    A WAL file in a directory where SQLite cannot create the ``-shm`` index is opened as
    ``immutable`` when no ``-wal`` file holds data that would then be missed; otherwise
    StorageError says what to do. Errors name the file (:func:`storage_error`).
    """
    if not read_only:
        with sqlite_errors(path):
            conn: sqlite3.Connection = sqlite3.connect(path, **options)
            return conn
    path = Path(path)
    if not path.exists():
        raise StorageError(f"no camgate store at {path}")
    uri = "file:" + urllib.parse.quote(str(path.resolve()))
    wal = path.with_name(path.name + "-wal")
    tries = [f"{uri}?mode=ro"]
    if not (wal.exists() and wal.stat().st_size > 0):
        tries.append(f"{uri}?mode=ro&immutable=1")
    for i, target in enumerate(tries):
        try:
            ro: sqlite3.Connection = sqlite3.connect(target, uri=True, **options)
            try:
                ro.execute("SELECT count(*) FROM sqlite_master").fetchone()
            except sqlite3.Error:
                ro.close()
                raise
            else:
                return ro
        except sqlite3.OperationalError as exc:
            if i + 1 < len(tries) and "unable to open" in str(exc):
                continue
            if "unable to open" in str(exc) and wal.exists():
                raise StorageError(
                    f"cannot open {path} read-only: its write-ahead log {wal.name} holds data "
                    "and no index file can be created beside it; copy the files to a "
                    "writable directory"
                ) from exc
            raise storage_error(exc, path) from exc
        except sqlite3.DatabaseError as exc:
            raise storage_error(exc, path) from exc
    raise AssertionError("unreachable")  # pragma: no cover


def local_path(target: str | Path, home: str | Path | None = None) -> Path:
    """Where files that belong beside the store ``target`` go (:attr:`Store.path`): a SQLite
    store's own path; for a PostgreSQL DSN, ``<dbname>.pg`` in ``home`` (default
    ``$CAMGATE_HOME``, else the working directory) — the hub's key and the audit seal are kept
    beside it."""
    if not is_postgres(target):
        return Path(target)
    from camgate.audit.postgres import redact_dsn

    base = Path(home or os.environ.get("CAMGATE_HOME") or ".")
    return base / f"{redact_dsn(str(target)).rsplit('/', 1)[-1] or 'postgres'}.pg"


class Changes(NamedTuple):
    """The store's change counters (:meth:`Store.changes`): each grows with every committed
    write to its facts."""

    #: The registry of cameras (added, moved, re-owned, removed).
    cameras: int
    #: Owners, published waivers, consent records (enrolled, revoked) and the cameras they cover.
    consents: int
    #: Incidents (reported, closed).
    incidents: int


#: What the edge keeps for a camera that belongs to its device and owner: dropped when the
#: camera changes owner or source, and when it is removed.
_CAMERA_EDGE_TABLES = ("edge_credentials", "camera_settings", "edge_secret_settings")


class Store:
    """The state of one camgate installation: a SQLite file (the embedded default), or a
    PostgreSQL database shared by several hubs.

    ``Store(path)`` creates the file and schema when missing; ``Store("postgresql://...")``
    uses that database (:mod:`camgate.db.pg`), and ``home`` (default ``$CAMGATE_HOME``, else
    the working directory) is where the files kept beside a store go (the hub's key, audit
    seals), as :attr:`path`. Either way the schema is brought to this camgate's version
    (:mod:`camgate.db.migrations`); a newer one is refused with ConfigError. Every
    ``add_*``/``set_*`` method is durable when it returns; ``get_*`` methods raise
    :class:`camgate.errors.NotFound` for an unknown id. ``Store(path, read_only=True)`` opens
    an existing file with ``mode=ro`` (see :func:`connect`): nothing is created or written,
    so it works on a read-only file, directory or mount; writes then fail with StorageError.
    A storage failure (full disk, damaged file, server gone) is a
    :class:`~camgate.errors.StorageError` naming the file or database, not a driver error.
    """

    def __init__(
        self, path: str | Path, *, read_only: bool = False, home: str | Path | None = None
    ) -> None:
        self.read_only = read_only
        self._lock = threading.RLock()
        self._read_lock = threading.Lock()
        self._local = threading.local()  # the write transaction this thread is inside, if any
        self._listener: Listener | None = None
        self._lease: WriterLease | None = None  # taken before a row names this process
        #: The PostgreSQL DSN when the store is there (:mod:`camgate.db.pg`), else None.
        self.dsn: str | None = None
        if is_postgres(path):
            self._open_postgres(str(path), home)
            return
        self.path = Path(path)
        #: Where the store is, for messages: the file, or the DSN without its password.
        self.where = str(self.path)
        if read_only:
            self._conn: Connection = connect(
                self.path, read_only=True, check_same_thread=False, isolation_level=None
            )
            self._reader: Connection = self._conn
            with sqlite_errors(self.path):
                sqlite_status(self._conn, self.where)  # newer than this camgate: refused
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if not self.path.exists():
                # The file holds camera credentials: owner-only from the start. SQLite gives
                # the -wal and -shm files the same permissions.
                os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            conn = sqlite3.connect(
                self.path, check_same_thread=False, isolation_level=None, timeout=30.0
            )
            self._conn = conn
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA foreign_keys=ON")
            upgrade_sqlite(conn, self.where)
            # Reads (the guard's per-packet checks among them) use their own connection, so
            # they never wait behind a writer that is waiting for another process's lock.
            self._reader = sqlite3.connect(
                self.path, check_same_thread=False, isolation_level=None, timeout=30.0
            )
        except sqlite3.DatabaseError as exc:
            raise storage_error(exc, self.path) from exc
        self._check_meta()

    def _open_postgres(self, dsn: str, home: str | Path | None) -> None:
        """Open the store in the PostgreSQL database ``dsn`` (see :mod:`camgate.db.pg`)."""
        from camgate.db.migrations import postgres_status, upgrade_postgres
        from camgate.db.pg import Listener, PgConnection

        self.dsn = dsn
        conn = PgConnection(dsn)
        self.where = conn.where
        self.path = local_path(dsn, home)
        self._conn = conn
        self._reader = PgConnection(dsn)
        try:
            if self.read_only:
                postgres_status(conn)
            else:
                upgrade_postgres(conn)
        except BaseException:
            conn.close()
            raise
        self._listener = Listener(dsn)
        if not self.read_only:
            self._check_meta()

    def _check_meta(self) -> None:
        version = self.meta("schema")
        if version is None:
            self.set_meta("schema", SCHEMA_VERSION)
        elif version != SCHEMA_VERSION:
            raise ConfigError(
                f"{self.where}: schema {version}, this camgate reads {SCHEMA_VERSION}"
            )

    @property
    def target(self) -> str | Path:
        """What opens this store again: the SQLite path, or the PostgreSQL DSN."""
        return self.path if self.dsn is None else self.dsn

    @property
    def engine(self) -> str:
        """``sqlite`` or ``postgres``."""
        return "sqlite" if self.dsn is None else "postgres"

    def schema_status(self) -> Status:
        """Where this store's schema stands (versions applied and shipped)."""
        with self._read_lock, self._errors():
            if isinstance(self._reader, sqlite3.Connection):
                return sqlite_status(self._reader, self.where)
            from camgate.db.migrations import postgres_status

            return postgres_status(self._reader)

    def __repr__(self) -> str:
        return f"Store({self.where!r})"

    # ------------------------------------------------------------------ plumbing

    def _errors(self) -> AbstractContextManager[None]:
        """Map SQLite's storage failures (PostgreSQL's are mapped by its connection)."""
        return sqlite_errors(self.path) if self.dsn is None else nullcontext()

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """One durable write transaction, under the store's lock.

        On SQLite, BEGIN IMMEDIATE takes the file's write lock at once; on PostgreSQL the
        transaction first takes one advisory transaction lock (:data:`camgate.db.pg.WRITE_LOCK`).
        Either way writers in every process are serialised: what a transaction reads (on the
        read connection too) after it began stays true until it commits. Inside another
        transaction of the same thread (this one, or one given with :meth:`joined`) it joins
        that transaction: the work commits with it.
        """
        outer: Connection | None = getattr(self._local, "db", None)
        if outer is not None:
            yield outer
            return
        conn = self._conn
        if not isinstance(conn, sqlite3.Connection):
            with self._lock, conn.transaction():
                self._local.db = conn
                try:
                    yield conn
                finally:
                    self._local.db = None
            assert self._listener is not None
            self._listener.bump()  # this process's own commit: caches read again
            return
        with self._lock, sqlite_errors(self.path):
            conn.execute("BEGIN IMMEDIATE")
            self._local.db = conn
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")  # never leave the connection wedged
                raise
            finally:
                self._local.db = None

    @contextmanager
    def joined(self, db: Connection) -> Iterator[None]:
        """Make this thread's store writes join ``db``'s open write transaction on this file
        (the audit log's, so a change and its audit record commit together)."""
        if getattr(self._local, "db", None) is not None:
            raise RuntimeError("already inside a store transaction")
        self._local.db = db
        try:
            yield
        finally:
            self._local.db = None

    def write_lock(self) -> threading.RLock:
        """The lock this process's store writers hold for their transaction (reentrant)."""
        return self._lock

    @contextmanager
    def joined_postgres(self, conn: Any) -> Iterator[None]:
        """PostgreSQL: make this thread's store writes join the open transaction of the psycopg
        connection ``conn`` to this store's database (the audit log's, so a change and its
        record commit together), under the store's lock. The caller's transaction must take
        the store's write lock first (:data:`camgate.db.pg.WRITE_LOCK`, before the log's)."""
        from camgate.db.pg import PgConnection

        assert self.dsn is not None and isinstance(self._conn, PgConnection)
        joined = PgConnection(self.dsn, conn=conn, tables=self._conn.tables())
        with self.joined(joined):
            yield
        assert self._listener is not None
        self._listener.bump()

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Run a read query (on the read connection) and return all rows."""
        with self._read_lock, self._errors():
            return list(self._reader.execute(sql, params).fetchall())

    def close(self) -> None:
        """Close the connections (and give back this process's writer lease). Idempotent."""
        if self._listener is not None:
            self._listener.close()
        lease, self._lease = self._lease, None
        if lease is not None:
            lease.release()
        with self._lock, self._read_lock:
            self._conn.close()
            self._reader.close()  # the same connection when read-only: closing twice is fine

    def data_version(self) -> int:
        """A number that changes whenever a commit reaches the store (this store's own writes
        included: they come from its other connection).

        On SQLite it is ``PRAGMA data_version``: microseconds, no table read. On PostgreSQL it
        is the ``store_version`` row, bumped by the triggers of every commit that changes
        consent, the registry, incidents, zones or decisions: one row read (one round trip).
        Either way it is exact: a commit that returned in any process is seen by the next call.
        """
        if self._listener is not None:
            with self._read_lock:
                rows = self._reader.execute("SELECT n FROM store_version").fetchall()
            return int(rows[0][0])
        with self._read_lock:
            rows = self._reader.execute("PRAGMA data_version").fetchall()
        return int(rows[0][0])

    def live_version(self) -> int:
        """Like :meth:`data_version`, but never a query: what a guard asks for every packet.

        On SQLite it is :meth:`data_version`. On PostgreSQL it is a counter in memory, bumped
        by this process's commits and by every ``NOTIFY`` other processes' triggers send
        (:class:`camgate.db.pg.Listener`), so it moves a notification's delay (milliseconds on
        a LAN) after another hub's commit; while the listener is disconnected it is a new
        number on every call (whatever is kept on it is read again).
        """
        if self._listener is not None:
            return self._listener.version()
        return self.data_version()

    def changes(self) -> Changes | None:
        """The store's change counters: one number per kind of fact a decision reads
        (:class:`Changes`), each bumped by every committed write to its tables, from any process
        or connection (triggers, in the writing transaction).

        One row read, a few microseconds: a cache of those facts is valid while the counter it
        was filled under is unchanged. None for a file made by an older camgate and opened
        read-only (it has no counters; then nothing may be kept).
        """
        with self._read_lock, self._errors():
            try:
                row = self._reader.execute(
                    "SELECT cameras, consents, incidents FROM fact_changes"
                ).fetchone()
            except sqlite3.OperationalError as exc:
                if "no such table" in str(exc):
                    return None
                raise
        return None if row is None else Changes(*row)

    def meta(self, key: str) -> str | None:
        """A value from the meta table, or None."""
        rows = self.query("SELECT value FROM meta WHERE key=?", (key,))
        return rows[0][0] if rows else None

    def set_meta(self, key: str, value: str) -> None:
        """Set a value in the meta table."""
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def _doc(self, cls: type[T], table: str, key: str, value: str) -> T:
        rows = self.query(f"SELECT doc FROM {table} WHERE {key}=?", (value,))  # noqa: S608
        if not rows:
            raise NotFound(f"no {cls.__name__.lower()} {value!r}")
        return load(cls, json.loads(rows[0][0]))

    def _docs(self, cls: type[T], sql: str, params: tuple[Any, ...] = ()) -> list[T]:
        return [load(cls, json.loads(row[0])) for row in self.query(sql, params)]

    @staticmethod
    def _json(obj: Any) -> str:
        return json.dumps(dump(obj), sort_keys=True)

    # ------------------------------------------------------------------ registry

    def add_owner(self, owner: Owner) -> None:
        """Create or update an owner."""
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO owners VALUES (?, ?)", (owner.id, self._json(owner)))

    def get_owner(self, owner_id: str) -> Owner:
        """The owner with this id."""
        return self._doc(Owner, "owners", "id", owner_id)

    def owners(self) -> list[Owner]:
        """Every owner, in id order."""
        return self._docs(Owner, "SELECT doc FROM owners ORDER BY id")

    def add_camera(
        self,
        camera: Camera,
        settings: Mapping[str, Any] | None = None,
        secrets: Mapping[str, Any] | None = None,
    ) -> bool:
        """Create or update a camera; its owner must exist.

        When an existing camera changes owner or source, the credentials and settings kept for
        it are dropped (they belonged to the old device or owner). Returns True when they were.
        ``settings`` and ``secrets`` (already validated: see :meth:`set_camera_settings`), when
        given, replace the camera's in the same transaction.
        """
        self.get_owner(camera.owner_id)
        with self.transaction() as db:
            row = db.execute("SELECT doc FROM cameras WHERE id=?", (camera.id,)).fetchone()
            moved = False
            if row is not None:
                old = load(Camera, json.loads(row[0]))
                moved = (old.owner_id, old.source) != (camera.owner_id, camera.source)
                if moved:
                    for table in _CAMERA_EDGE_TABLES:
                        db.execute(f"DELETE FROM {table} WHERE camera_id=?", (camera.id,))  # noqa: S608
            db.execute(
                "INSERT OR REPLACE INTO cameras VALUES (?, ?, ?)",
                (camera.id, camera.owner_id, self._json(camera)),
            )
            if settings is not None or secrets is not None:
                self._put_settings(db, camera.id, settings or {}, secrets or {})
        return moved

    @staticmethod
    def _put_settings(
        db: Connection,
        camera_id: str,
        settings: Mapping[str, Any],
        secrets: Mapping[str, Any],
    ) -> None:
        for table, values in (("camera_settings", settings), ("edge_secret_settings", secrets)):
            db.execute(f"DELETE FROM {table} WHERE camera_id=?", (camera_id,))  # noqa: S608
            if values:
                db.execute(
                    f"INSERT INTO {table} VALUES (?, ?)",  # noqa: S608
                    (camera_id, json.dumps(dict(values), sort_keys=True)),
                )

    def set_camera_settings(
        self, camera_id: str, settings: Mapping[str, Any], secrets: Mapping[str, Any]
    ) -> None:
        """Replace a camera's adapter settings: ``settings`` (shown by ``camera show``) and
        ``secrets`` (the values of keys its adapter marks secret, kept like credentials). Both
        must be JSON values; the caller validated them (``Gate.set_camera_settings``)."""
        self.get_camera(camera_id)
        with self.transaction() as db:
            self._put_settings(db, camera_id, settings, secrets)

    def camera_settings(self, camera_id: str) -> dict[str, Any]:
        """The camera's own adapter settings, without the secret ones ({} when none)."""
        return self._settings_doc("camera_settings", camera_id)

    def secret_settings(self, camera_id: str) -> dict[str, Any]:
        """The values of the camera's secret settings ({} when none). Never show them."""
        return self._settings_doc("edge_secret_settings", camera_id)

    def _settings_doc(self, table: str, camera_id: str) -> dict[str, Any]:
        rows = self.query(f"SELECT doc FROM {table} WHERE camera_id=?", (camera_id,))  # noqa: S608
        return dict(json.loads(rows[0][0])) if rows else {}

    def get_camera(self, camera_id: str) -> Camera:
        """The camera with this id."""
        return self._doc(Camera, "cameras", "id", camera_id)

    def cameras(self, owner_id: str | None = None) -> list[Camera]:
        """Every camera, or one owner's, in id order."""
        if owner_id is None:
            return self._docs(Camera, "SELECT doc FROM cameras ORDER BY id")
        return self._docs(
            Camera, "SELECT doc FROM cameras WHERE owner_id=? ORDER BY id", (owner_id,)
        )

    def remove_camera(self, camera_id: str) -> Camera:
        """Delete a camera, its edge credentials and settings; its consent and audit history
        remain."""
        camera = self.get_camera(camera_id)
        with self.transaction() as db:
            for table in (*_CAMERA_EDGE_TABLES, "masks", "camera_edges"):
                db.execute(f"DELETE FROM {table} WHERE camera_id=?", (camera_id,))  # noqa: S608
            db.execute("DELETE FROM cameras WHERE id=?", (camera_id,))
        return camera

    def set_masks(self, mask: PrivacyMask) -> None:
        """Store a camera's privacy masks (replacing any); the camera must exist."""
        self.get_camera(mask.camera_id)
        with self.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO masks VALUES (?, ?)", (mask.camera_id, self._json(mask))
            )

    def masks(self, camera_id: str) -> PrivacyMask | None:
        """The camera's privacy masks, or None when the owner set none."""
        rows = self._docs(PrivacyMask, "SELECT doc FROM masks WHERE camera_id=?", (camera_id,))
        return rows[0] if rows and rows[0].polygons else None

    # ------------------------------------------------------------------ privacy zones

    def zone_changes(self) -> int | None:
        """How often zones, attestations, masks or cameras changed (None: a read-only file made
        before privacy zones existed; then nothing may be kept)."""
        try:
            rows = self.query("SELECT n FROM zone_changes")
        except StorageError:
            return None
        return int(rows[0][0]) if rows else None

    def put_privacy_zone(self, zone_id: str, doc: dict[str, Any]) -> None:
        """Store a resident's privacy zone (JSON ``doc``, replacing one with its id)."""
        with self.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO privacy_zones VALUES (?, ?)", (zone_id, json.dumps(doc))
            )

    def delete_privacy_zone(self, zone_id: str) -> bool:
        """Delete a privacy zone, its attestations and asks; False when there was none."""
        with self.transaction() as db:
            gone = db.execute("DELETE FROM privacy_zones WHERE id=?", (zone_id,)).rowcount
            db.execute("DELETE FROM zone_attestations WHERE zone_id=?", (zone_id,))
            db.execute("DELETE FROM zone_asks WHERE zone_id=?", (zone_id,))
        return bool(gone)

    def privacy_zones(self) -> list[dict[str, Any]]:
        """Every privacy zone's JSON doc, in the order they were registered."""
        try:
            rows = self.query("SELECT doc FROM privacy_zones ORDER BY rowid")
        except StorageError:  # a read-only file made before privacy zones existed
            return []
        return [json.loads(doc) for (doc,) in rows]

    def put_zone_attestation(self, zone_id: str, camera_id: str, doc: dict[str, Any]) -> None:
        """Store an owner's attestation that a mask covers ``zone_id`` on ``camera_id``."""
        with self.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO zone_attestations VALUES (?, ?, ?)",
                (zone_id, camera_id, json.dumps(doc)),
            )

    def zone_attestations(self) -> dict[tuple[str, str], dict[str, Any]]:
        """Every attestation's JSON doc by (zone id, camera id)."""
        try:
            rows = self.query("SELECT zone_id, camera_id, doc FROM zone_attestations")
        except StorageError:
            return {}
        return {(z, c): json.loads(doc) for z, c, doc in rows}

    def mark_zone_asked(self, zone_id: str, camera_id: str, at: str) -> bool:
        """Record that the camera's owner was asked to mask the zone; False when asked before."""
        with self.transaction() as db:
            added = db.execute(
                "INSERT OR IGNORE INTO zone_asks VALUES (?, ?, ?)", (zone_id, camera_id, at)
            ).rowcount
        return bool(added)

    def add_waiver(self, waiver: Waiver) -> None:
        """Publish a waiver version. Its text can never change: a new text needs a new version."""
        rows = self.query("SELECT sha256 FROM waivers WHERE version=?", (waiver.version,))
        if rows and rows[0][0] != waiver.sha256:
            raise ValidationError(
                f"waiver {waiver.version!r} exists with other text; publish a new version"
            )
        with self.transaction() as db:
            db.execute(
                "INSERT OR IGNORE INTO waivers VALUES (?, ?, ?)",
                (waiver.version, waiver.sha256, waiver.text),
            )

    def waivers(self) -> list[Waiver]:
        """Every published waiver version, oldest first."""
        rows = self.query("SELECT version, text FROM waivers ORDER BY rowid")
        return [Waiver(version=version, text=text) for version, text in rows]

    def get_waiver(self, version: str) -> Waiver:
        """The waiver with this version."""
        rows = self.query("SELECT version, text FROM waivers WHERE version=?", (version,))
        if not rows:
            raise NotFound(f"no waiver version {version!r}")
        return Waiver(version=rows[0][0], text=rows[0][1])

    # ------------------------------------------------------------------ consent

    def add_consent(self, record: ConsentRecord) -> None:
        """Store a consent record and index its cameras."""
        with self.transaction() as db:
            db.execute(
                "INSERT INTO consents VALUES (?, ?, ?, ?)",
                (record.id, record.owner_id, None, self._json(record)),
            )
            db.executemany(
                "INSERT INTO consent_cameras VALUES (?, ?)",
                [(record.id, cam) for cam in record.camera_ids],
            )

    def active_consent(self, camera_id: str) -> ConsentRecord | None:
        """The newest unrevoked consent covering the camera, given by its *current* owner.

        A record given by someone else (the camera changed hands, or a removed camera's id was
        registered again) does not count.
        """
        found = self._docs(
            ConsentRecord,
            "SELECT c.doc FROM consents c JOIN consent_cameras cc ON cc.consent_id = c.id "
            "JOIN cameras cam ON cam.id = cc.camera_id AND cam.owner_id = c.owner_id "
            "WHERE cc.camera_id=? AND c.revoked_at IS NULL ORDER BY c.rowid DESC LIMIT 1",
            (camera_id,),
        )
        return found[0] if found else None

    def get_consent(self, consent_id: str) -> ConsentRecord:
        """The consent record with this id (revoked or not)."""
        return self._doc(ConsentRecord, "consents", "id", consent_id)

    def consents(self, owner_id: str) -> list[ConsentRecord]:
        """Every consent record of an owner, oldest first."""
        return self._docs(
            ConsentRecord, "SELECT doc FROM consents WHERE owner_id=? ORDER BY rowid", (owner_id,)
        )

    def active_consent_ids(self, owner_id: str) -> list[str]:
        """The ids of the owner's unrevoked consent records, oldest first."""
        rows = self.query(
            "SELECT id FROM consents WHERE owner_id=? AND revoked_at IS NULL ORDER BY rowid",
            (owner_id,),
        )
        return [r[0] for r in rows]

    def revoke_consent_ids(self, consent_ids: list[str], at: datetime) -> list[str]:
        """Mark these consent records revoked at ``at`` (those not revoked yet); return the
        cameras they covered."""
        with self.transaction() as db:
            cameras: list[str] = []
            for consent_id in consent_ids:
                row = db.execute(
                    "SELECT doc FROM consents WHERE id=? AND revoked_at IS NULL", (consent_id,)
                ).fetchone()
                if row is None:
                    continue
                record = load(ConsentRecord, json.loads(row[0]))
                cameras.extend(record.camera_ids)
                revoked = dump(record) | {"revoked_at": at.isoformat()}
                db.execute(
                    "UPDATE consents SET revoked_at=?, doc=? WHERE id=?",
                    (at.isoformat(), json.dumps(revoked, sort_keys=True), consent_id),
                )
        return sorted(set(cameras))

    def revoked_since(self, camera_id: str) -> str | None:
        """When the camera's newest consent was revoked (ISO text), or None while it stands.

        Cheap enough for a guard to poll: one indexed lookup.
        """
        rows = self.query(
            "SELECT c.revoked_at FROM consents c JOIN consent_cameras cc ON cc.consent_id = c.id "
            "WHERE cc.camera_id=? ORDER BY c.rowid DESC LIMIT 1",
            (camera_id,),
        )
        return rows[0][0] if rows else None

    # ------------------------------------------------------------------ incidents and requests

    def add_incident(self, incident: Incident) -> None:
        """Create or update an incident."""
        with self.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO incidents VALUES (?, ?)",
                (incident.id, self._json(incident)),
            )

    def get_incident(self, incident_id: str) -> Incident:
        """The incident with this id."""
        return self._doc(Incident, "incidents", "id", incident_id)

    def incidents(self) -> list[Incident]:
        """Every incident, open or closed, oldest report first."""
        found = self._docs(Incident, "SELECT doc FROM incidents")
        return sorted(found, key=lambda i: (i.reported_at, i.id))

    def add_request(self, request: AccessRequest, decision: Decision) -> None:
        """Store a request with the decision made on it."""
        with self.transaction() as db:
            db.execute("INSERT INTO requests VALUES (?, ?)", (request.id, self._json(request)))
            db.execute(
                "INSERT INTO decisions VALUES (?, ?)",
                (request.id, json.dumps(decision.to_json(), sort_keys=True)),
            )

    # ------------------------------------------------------------------ ask-first (consent)

    def add_held_request(self, request: AccessRequest, pending: PendingRequest) -> None:
        """Store an ask-first request, held (no decision yet) until its owner answers."""
        with self.transaction() as db:
            db.execute("INSERT INTO requests VALUES (?, ?)", (request.id, self._json(request)))
            db.execute(
                "INSERT INTO pending VALUES (?, ?, ?, NULL, ?)",
                (
                    pending.request_id,
                    pending.owner_id,
                    pending.deadline.isoformat(),
                    self._json(pending),
                ),
            )

    def get_pending(self, request_id: str) -> PendingRequest:
        """The held request with this id (answered or not); NotFound when none was held."""
        rows = self.query("SELECT doc FROM pending WHERE request_id=?", (request_id,))
        if not rows:
            raise NotFound(
                f"no ask-first request {request_id!r}: it was never made, or its camera's owner "
                "pre-authorised it"
            )
        return load(PendingRequest, json.loads(rows[0][0]))

    def pending(self, owner_id: str | None = None) -> list[PendingRequest]:
        """Held requests still waiting for an answer, oldest first (one owner's, or all)."""
        sql = "SELECT doc FROM pending WHERE outcome IS NULL"
        params: tuple[Any, ...] = ()
        if owner_id is not None:
            sql, params = sql + " AND owner_id=?", (owner_id,)
        return self._docs(PendingRequest, sql + " ORDER BY rowid", params)

    def resolve_pending(self, request_id: str, outcome: str, at: datetime) -> bool:
        """Close a held request with ``outcome``; False when it was already closed (a race lost)."""
        with self.transaction() as db:
            row = db.execute(
                "SELECT doc FROM pending WHERE request_id=? AND outcome IS NULL", (request_id,)
            ).fetchone()
            if row is None:
                return False
            doc = json.loads(row[0]) | {"outcome": outcome, "answered_at": at.isoformat()}
            # Conditional: of two racing answers one changes the row (a constraint, not the
            # read above, decides), even where writers are not serialised.
            return bool(
                db.execute(
                    "UPDATE pending SET outcome=?, doc=? WHERE request_id=? AND outcome IS NULL",
                    (outcome, json.dumps(doc, sort_keys=True), request_id),
                ).rowcount
                == 1
            )

    # ------------------------------------------------------------------ approvals (agency rules)

    def add_approval_wait(self, request_id: str, deadline: datetime, doc: dict[str, Any]) -> None:
        """Store a request that waits for a second person's approval until ``deadline``."""
        with self.transaction() as db:
            db.execute(
                "INSERT INTO approval_waits VALUES (?, ?, NULL, ?)",
                (request_id, deadline.isoformat(), json.dumps(doc, sort_keys=True)),
            )

    def approval_wait(self, request_id: str) -> dict[str, Any] | None:
        """The approval wait of a request (answered or not), or None when it never waited."""
        rows = self._rows_if_any("SELECT doc FROM approval_waits WHERE request_id=?", (request_id,))
        return json.loads(rows[0][0]) if rows else None

    def open_approval_waits(self) -> list[dict[str, Any]]:
        """Requests still waiting for approval, oldest first."""
        rows = self._rows_if_any(
            "SELECT doc FROM approval_waits WHERE outcome IS NULL ORDER BY rowid"
        )
        return [json.loads(r[0]) for r in rows]

    def close_approval_wait(self, request_id: str, answer: dict[str, Any]) -> bool:
        """Close an approval wait with ``answer`` (its ``outcome``, and who and why); False
        when it was closed already (a race lost)."""
        with self.transaction() as db:
            row = db.execute(
                "SELECT doc FROM approval_waits WHERE request_id=? AND outcome IS NULL",
                (request_id,),
            ).fetchone()
            if row is None:
                return False
            doc = json.loads(row[0]) | answer
            return bool(
                db.execute(
                    "UPDATE approval_waits SET outcome=?, doc=? "
                    "WHERE request_id=? AND outcome IS NULL",
                    (answer["outcome"], json.dumps(doc, sort_keys=True), request_id),
                ).rowcount
                == 1
            )

    def add_decision(self, request_id: str, decision: Decision, *, replace: bool = False) -> None:
        """Store the final decision on a held request (``replace``: instead of the stored one)."""
        verb = "INSERT OR REPLACE" if replace else "INSERT"
        with self.transaction() as db:
            db.execute(
                f"{verb} INTO decisions VALUES (?, ?)",
                (request_id, json.dumps(decision.to_json(), sort_keys=True)),
            )

    def grant_for_request(self, request_id: str) -> tuple[Grant, str] | None:
        """The grant issued for a request with its token, or None."""
        rows = self.query(
            "SELECT doc, token FROM grants WHERE json_extract(doc, '$.request_id')=?",
            (request_id,),
        )
        if not rows:
            return None
        return load(Grant, json.loads(rows[0][0])), rows[0][1]

    def enrolled_cameras(self) -> list[Camera]:
        """Every camera under an active consent record."""
        return self._docs(
            Camera,
            "SELECT k.doc FROM cameras k WHERE EXISTS (SELECT 1 FROM consent_cameras cc "
            "JOIN consents c ON c.id = cc.consent_id "
            "WHERE cc.camera_id = k.id AND c.revoked_at IS NULL) ORDER BY k.id",
        )

    # ------------------------------------------------------------------ notice deliveries

    def queue_delivery(self, channel: str, notice: OwnerNotice, due: float) -> None:
        """Queue a notice for a delivery channel (webhook, e-mail) durably, due at ``due``."""
        with self.transaction() as db:
            db.execute(
                "INSERT OR IGNORE INTO deliveries VALUES (?, ?, ?, ?, 0, ?, NULL)",
                (
                    channel,
                    notice.id,
                    notice.owner_id,
                    json.dumps(notice.to_json(), sort_keys=True),
                    due,
                ),
            )

    def due_deliveries(self, channel: str, now: float) -> list[tuple[str, int, dict[str, Any]]]:
        """Undelivered notices of a channel due by ``now``: ``(notice id, attempts, notice)``."""
        rows = self.query(
            "SELECT notice_id, attempts, doc FROM deliveries WHERE channel=? AND "
            "delivered_at IS NULL AND next_at<=? ORDER BY rowid",
            (channel, now),
        )
        return [(r[0], int(r[1]), json.loads(r[2])) for r in rows]

    def next_delivery_at(self, channel: str) -> float | None:
        """When the channel's earliest undelivered notice is due, or None when all are out."""
        rows = self.query(
            "SELECT MIN(next_at) FROM deliveries WHERE channel=? AND delivered_at IS NULL",
            (channel,),
        )
        return None if rows[0][0] is None else float(rows[0][0])

    def delivery_done(self, channel: str, notice_ids: list[str], at: datetime) -> None:
        """Mark notices delivered on a channel."""
        with self.transaction() as db:
            db.executemany(
                "UPDATE deliveries SET delivered_at=? WHERE channel=? AND notice_id=?",
                [(at.isoformat(), channel, n) for n in notice_ids],
            )

    def delivery_failed(self, channel: str, notice_ids: list[str], retry_at: float) -> None:
        """Count a failed attempt and set when to try again."""
        with self.transaction() as db:
            db.executemany(
                "UPDATE deliveries SET attempts=attempts+1, next_at=? "
                "WHERE channel=? AND notice_id=?",
                [(retry_at, channel, n) for n in notice_ids],
            )

    def get_request(self, request_id: str) -> AccessRequest:
        """The request with this id."""
        return self._doc(AccessRequest, "requests", "id", request_id)

    def decision_json(self, request_id: str) -> dict[str, Any]:
        """The stored decision on a request, as JSON (every vote)."""
        rows = self.query("SELECT doc FROM decisions WHERE request_id=?", (request_id,))
        if not rows:
            raise NotFound(f"no decision on request {request_id!r}")
        result: dict[str, Any] = json.loads(rows[0][0])
        return result

    # ------------------------------------------------------------------ grants

    def add_grant(self, grant: Grant, token: str) -> None:
        """Store an issued grant with its signed token."""
        with self.transaction() as db:
            db.execute(
                "INSERT INTO grants VALUES (?, ?, ?, ?)",
                (grant.id, grant.camera_id, token, self._json(grant)),
            )

    def get_grant_token(self, grant_id: str) -> str:
        """The signed token of an issued grant."""
        rows = self.query("SELECT token FROM grants WHERE id=?", (grant_id,))
        if not rows:
            raise NotFound(f"no grant {grant_id!r}")
        token: str = rows[0][0]
        return token

    def redeem(self, grant_id: str, at: datetime) -> bool:
        """Mark a grant redeemed; False when it already was (a replay)."""
        with self.transaction() as db:
            cur = db.execute(
                "INSERT OR IGNORE INTO redeemed VALUES (?, ?)", (grant_id, at.isoformat())
            )
            return cur.rowcount == 1

    # ------------------------------------------------------------------ writers

    def writer_alive(self, pid: int | None, started: str | None) -> bool:
        """Whether the process that wrote a row naming ``(pid, started)`` still runs
        (:mod:`camgate.db.writers`): on this machine by ``/proc``, and on PostgreSQL also by
        its writer lease, which speaks for a hub on any machine or in any container."""
        if process_alive(pid, started):
            return True
        if self.dsn is None or pid is None:
            return False
        from camgate.db.writers import lease_held

        with self._read_lock, self._errors():
            return lease_held(self._reader, pid, started)

    def hold_writer_lease(self) -> None:
        """On PostgreSQL, hold this process's writer lease (:mod:`camgate.db.writers`) from now
        until the store closes: done before any row names the process, and by a hub when it
        opens, so the first one is not taken inside a write transaction. Nothing on SQLite or
        read-only."""
        if self.dsn is None or self.read_only:
            return
        from camgate.db.writers import lease_held, writer_lease

        with self._lock:
            if self._lease is not None and self._lease.pid != os.getpid():
                self._lease = None  # a forked child: the parent's lease is not its own
            if self._lease is None:
                self._lease = writer_lease(self.dsn)
            lease = self._lease
        if lease.held:  # the keeper's view, at most one poll old: no round trip
            return

        def held() -> bool:
            with self._read_lock, self._errors():
                return lease_held(self._reader, lease.pid, lease.started)

        lease.ensure(self.where, held)

    # ------------------------------------------------------------------ notices

    def add_notice(self, notice: OwnerNotice) -> None:
        """Queue an owner notice durably."""
        with self.transaction() as db:
            db.execute(
                # A notice owed by a crashed process may be sent twice: the id makes it one.
                "INSERT OR IGNORE INTO notices VALUES (?, ?, ?, NULL)",
                (notice.id, notice.owner_id, json.dumps(notice.to_json(), sort_keys=True)),
            )

    def owe_notices(self, notices: list[OwnerNotice]) -> None:
        """Record notices a change owes its owner (sent after the change commits)."""
        self.hold_writer_lease()
        me, started = os.getpid(), process_identity()
        with self.transaction() as db:
            db.executemany(
                "INSERT OR IGNORE INTO owed_notices VALUES (?, ?, ?, ?)",
                [(n.id, json.dumps(n.to_json(), sort_keys=True), me, started) for n in notices],
            )

    def owed_notices(self) -> list[tuple[dict[str, Any], int | None, str | None]]:
        """Every notice still owed (its change committed, its sending not confirmed), as JSON,
        with the process that owes it: ``(doc, pid, started)``."""
        rows = self._rows_if_any("SELECT doc, pid, started FROM owed_notices ORDER BY rowid")
        return [(json.loads(r[0]), r[1], r[2]) for r in rows]

    def claim_notice(self, notice_id: str, pid: int | None, started: str | None) -> bool:
        """Take over a notice owed by the process ``(pid, started)`` (this process sends it now);
        False when another process took it first or it was sent."""
        self.hold_writer_lease()
        with self.transaction() as db:
            cur = db.execute(
                "UPDATE owed_notices SET pid=?, started=? WHERE id=? AND pid IS ? AND started IS ?",
                (os.getpid(), process_identity(), notice_id, pid, started),
            )
            return cur.rowcount == 1

    def has_leftovers(self) -> bool:
        """Whether any intent or owed notice is stored (one cheap query, run before decisions)."""
        rows = self._rows_if_any(
            "SELECT EXISTS (SELECT 1 FROM audit_intents) OR EXISTS (SELECT 1 FROM owed_notices)"
        )
        return bool(rows and rows[0][0])

    def notice_paid(self, notice_id: str) -> None:
        """Forget an owed notice once it was handed to the notifiers."""
        with self.transaction() as db:
            db.execute("DELETE FROM owed_notices WHERE id=?", (notice_id,))

    # ------------------------------------------------------------------ audit intents

    def add_intent(self, kind: str, body: str, at: str, after_seq: int) -> int:
        """Record, before its audit record is written elsewhere, a change about to be made."""
        self.hold_writer_lease()
        with self.transaction() as db:
            row = db.execute(
                "INSERT INTO audit_intents (kind, body, at, after_seq, pid, started) "
                "VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
                (kind, body, at, after_seq, os.getpid(), process_identity()),
            ).fetchall()
            return int(row[0][0])

    def intents(self) -> list[tuple[int, str, str, str, int, int, str | None]]:
        """Every unsettled intent: ``(id, kind, body, at, after_seq, pid, started)``."""
        rows = self._rows_if_any(
            "SELECT id, kind, body, at, after_seq, pid, started FROM audit_intents ORDER BY id"
        )
        return [(int(r[0]), r[1], r[2], r[3], int(r[4]), int(r[5]), r[6]) for r in rows]

    def _rows_if_any(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """``query``, with no rows for a table an older file (opened read-only) lacks."""
        try:
            return self.query(sql, params)
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc) or "no such column" in str(exc):
                return []  # an older file opened read-only: nothing of the kind stored
            raise

    def drop_intent(self, intent_id: int) -> bool:
        """Settle an intent; False when it was already settled."""
        with self.transaction() as db:
            cur = db.execute("DELETE FROM audit_intents WHERE id=?", (intent_id,))
            return cur.rowcount == 1

    def notices(self, owner_id: str) -> list[dict[str, Any]]:
        """Every notice for an owner, oldest first, as JSON."""
        rows = self.query("SELECT doc FROM notices WHERE owner_id=? ORDER BY rowid", (owner_id,))
        return [json.loads(r[0]) for r in rows]

    # ------------------------------------------------------------------ edge credentials

    def set_credentials(self, camera_id: str, credentials: Credentials) -> None:
        """Keep a camera's credentials at the edge (this file is the owner's side)."""
        with self.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO edge_credentials VALUES (?, ?, ?)",
                (camera_id, credentials.username, credentials.password.reveal()),
            )

    def credentials(self) -> dict[str, Credentials]:
        """Every camera's credentials, by camera id."""
        from camgate.adapters import Credentials

        rows = self.query("SELECT camera_id, username, password FROM edge_credentials")
        return {cam: Credentials(user, pw) for cam, user, pw in rows}

    # ------------------------------------------------------------------ remote edges

    def assign_edge(self, edge_id: str, camera_ids: list[str] | tuple[str, ...]) -> None:
        """Record that the remote edge ``edge_id`` (``camgate edge serve`` at an owner's site)
        serves these cameras, replacing the edge any of them had, all in one transaction.
        ValidationError for an edge id that is not one NATS subject token, NotFound for a
        camera not in the registry (then nothing is recorded)."""
        from camgate.edgenet.wire import check_edge_id

        check_edge_id(edge_id)
        with self.transaction() as db:
            for camera_id in camera_ids:
                if not db.execute("SELECT 1 FROM cameras WHERE id=?", (camera_id,)).fetchall():
                    raise NotFound(f"no camera {camera_id!r}")
                db.execute(
                    "INSERT OR REPLACE INTO camera_edges VALUES (?, ?)", (camera_id, edge_id)
                )

    def unassign_edge(self, camera_ids: list[str] | tuple[str, ...]) -> list[str]:
        """Forget which edge serves these cameras (they are the hub's own again); returns those
        that had one."""
        gone = []
        with self.transaction() as db:
            for camera_id in camera_ids:
                if db.execute("DELETE FROM camera_edges WHERE camera_id=?", (camera_id,)).rowcount:
                    gone.append(camera_id)
        return gone

    def camera_edges(self) -> dict[str, str]:
        """Every camera served by a remote edge: camera id -> edge id, in camera id order."""
        rows = self.query("SELECT camera_id, edge_id FROM camera_edges ORDER BY camera_id")
        return {camera: edge for camera, edge in rows}

    def edge_of(self, camera_id: str) -> str | None:
        """The remote edge that serves ``camera_id``, or None (the hub's own edge does)."""
        rows = self.query("SELECT edge_id FROM camera_edges WHERE camera_id=?", (camera_id,))
        return str(rows[0][0]) if rows else None
