"""Accounts, sessions, API tokens and owner invites: in their own SQLite file beside a SQLite
store, in the shared database of a PostgreSQL store.

With a SQLite store the file sits beside it (``camgate.db`` → ``camgate.accounts.db``): the
gate's store and audit log are the record of consent and access, which an agency may hand to an
auditor or an owner; password hashes and session rows do not belong in it, are replaced on a
different rhythm, and must never be exported with it (docs/api.md, "Where accounts live").
With a PostgreSQL store every hub behind the load balancer must know every account and
session, so the tables live in that database (schema version 4 of ``camgate.db.sql``),
reached through the store's connection wrapper :class:`camgate.db.pg.PgConnection` (its
password-free errors). The two engines run the same SQL; races between hubs are settled by
the database (a unique username, a conditional update that spends an invite once).

What is stored, and how:

- passwords: argon2id hashes (argon2-cffi's defaults, RFC 9106's second recommended set),
  rehashed on login when the parameters change;
- sessions, API token secrets and invite codes: 256-bit random values, stored only as their
  SHA-256 (a stolen file gives no live credential; a slow hash adds nothing for values that
  cannot be guessed); compared in constant time;
- login failures: in memory, per process (a restart forgets them; see docs/api.md).

Every method is synchronous and may block (SQLite, argon2): the app calls them in a worker
thread. Nothing here logs or repeats a secret in an error message.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import sqlite3
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import argon2
import attrs
from camgate.db import is_postgres
from camgate.errors import NotFound, ValidationError
from camgate.store import connect, sqlite_errors

from camgate_server.errors import Forbidden, InviteInvalid, NotAuthenticated, TooManyAttempts
from camgate_server.parsing import TOKEN_PREFIX, parse_api_token, parse_secret, parse_username
from camgate_server.policy import POLICY, Action, Role
from camgate_server.settings import ProxyAuth, ServerSettings

if TYPE_CHECKING:
    from camgate.db.pg import PgConnection

__all__ = ["Account", "AccountStore", "Caller", "LoginLimiter", "accounts_path", "proxy_caller"]


def _file_schema() -> str:
    """The accounts file's tables: those of the store's PostgreSQL schema version 4 (one
    definition for both engines; all TEXT, which SQLite reads alike), each ``IF NOT EXISTS``
    so a file made by an older camgate is taken as it is."""
    from camgate.db.migrations import migrations

    sql = next(m.sql for m in migrations("postgres") if m.name == "accounts")
    return re.sub(r"\bCREATE (TABLE|INDEX) ", r"CREATE \1 IF NOT EXISTS ", sql)


# Verified against when the username is unknown, so a miss costs what a hit costs.
_HASHER = argon2.PasswordHasher()
_DUMMY_HASH = _HASHER.hash(secrets.token_urlsafe(16))


def accounts_path(store_path: str | Path) -> str | Path:
    """Where the accounts of the gate store at ``store_path`` live: a SQLite store's beside
    it, ``<stem>.accounts.db``; a PostgreSQL store's in the same database (its DSN is
    returned as is), shared by every hub using it."""
    if is_postgres(store_path):
        return str(store_path)
    path = Path(store_path)
    return path.with_name(f"{path.stem}.accounts.db")


class _Conflict(Exception):
    """A constraint refused a write (a taken username); carries no driver text."""


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _new_secret() -> str:
    return secrets.token_urlsafe(32)  # 43 characters, 256 bits


@attrs.frozen
class Account:
    """A person's (or a machine's owning person's) account; never carries its password hash."""

    id: str
    username: str
    role: Role
    owner_id: str | None = None

    def to_json(self) -> dict[str, str | None]:
        """The account as the API shows it."""
        return {
            "id": self.id,
            "username": self.username,
            "role": str(self.role),
            "owner": self.owner_id,
        }


@attrs.frozen
class Caller:
    """Who made a request: the account, and how it proved it.

    ``scopes`` is None for a session (the role's actions) and the token's scopes for an API
    token; ``csrf`` is the session's CSRF token (None for a token, which browsers never send
    on their own, so it needs none)."""

    account: Account
    scopes: frozenset[Action] | None = None
    csrf: str | None = attrs.field(default=None, repr=False)
    session_digest: str | None = attrs.field(default=None, repr=False)


class LoginLimiter:
    """Failed logins counted per username and per client address in a sliding window.

    :meth:`check` raises :class:`TooManyAttempts` (with the seconds until the oldest counted
    failure leaves the window) when either count reached its limit; :meth:`failed` counts one;
    :meth:`succeeded` clears the username's count (not the address's: one good password must
    not reopen an address that is guessing others' passwords).
    """

    def __init__(self, settings: ServerSettings, monotonic: Callable[[], float]) -> None:
        self._settings = settings
        self._monotonic = monotonic
        self._failures: dict[tuple[str, str], deque[float]] = {}
        self._lock = threading.Lock()

    def _window(self, key: tuple[str, str], now: float) -> deque[float]:
        times = self._failures.setdefault(key, deque())
        while times and times[0] <= now - self._settings.login_window_s:
            times.popleft()
        return times

    def check(self, username: str, address: str) -> None:
        """Raise TooManyAttempts when this username or address is locked out now."""
        now = self._monotonic()
        limits = (
            (("user", username), self._settings.login_failures_per_account),
            (("addr", address), self._settings.login_failures_per_address),
        )
        with self._lock:
            for key, limit in limits:
                times = self._window(key, now)
                if len(times) >= limit:
                    wait = times[-limit] + self._settings.login_window_s - now
                    raise TooManyAttempts(max(1, int(wait + 0.999)))

    def failed(self, username: str, address: str) -> None:
        """Count a failed login."""
        now = self._monotonic()
        with self._lock:
            for key in (("user", username), ("addr", address)):
                self._window(key, now).append(now)

    def succeeded(self, username: str) -> None:
        """Forget the username's failures."""
        with self._lock:
            self._failures.pop(("user", username), None)


def _usable(row: tuple[object, ...] | None, now: datetime) -> str:
    """The owner of the invite row ``(owner_id, expires_at, used_at)``; InviteInvalid unless it
    is unused and unexpired."""
    if row is None or row[2] is not None or datetime.fromisoformat(str(row[1])) <= now:
        raise InviteInvalid("the invite link is not valid, used already, or expired")
    return str(row[0])


def proxy_caller(proxy: ProxyAuth, username: str, groups: str) -> Caller:
    """The caller a trusted proxy vouched for (the caller checked its secret header): an
    account ``sso:<username>`` with the one staff role its groups map to (``proxy.roles``).

    Forbidden when the groups map to no role or to more than one (an account has one role;
    the agency's mapping must say which). Its CSRF token is an HMAC of the username under
    the proxy secret: the same on every request, and unknowable to another site.
    """
    try:
        name = parse_username(username.strip().lower())
    except ValidationError:
        raise NotAuthenticated("the proxy sent no valid username") from None
    roles = {proxy.roles[g.strip()] for g in groups.split(",") if g.strip() in proxy.roles}
    if len(roles) != 1:
        raise Forbidden(
            "your groups map to no camgate role" if not roles else
            "your groups map to more than one camgate role; ask the agency's admin"
        )  # fmt: skip
    mac = hmac.new(proxy.secret.encode(), f"csrf:{name}".encode(), hashlib.sha256)
    csrf = base64.urlsafe_b64encode(mac.digest()).decode().rstrip("=")
    return Caller(Account(f"sso:{name}", name, Role(roles.pop())), None, csrf)


class AccountStore:
    """Accounts, sessions, API tokens and invites (see the module docstring).

    ``path`` is a SQLite file, or a ``postgresql://`` DSN (the gate store's): there the tables
    are created by the store's migrations if missing, and shared by every hub on that
    database. ``where`` names it for people (a PostgreSQL DSN without its password).
    ``now`` is the clock (aware UTC datetimes); tests pass one they move.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        settings: ServerSettings | None = None,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        self.settings = settings or ServerSettings()
        self.now = now or (lambda: datetime.now(UTC))
        self._lock = threading.Lock()
        self._pg: PgConnection | None = None
        self._db: sqlite3.Connection | PgConnection
        if is_postgres(path):
            from camgate.db.migrations import upgrade_postgres
            from camgate.db.pg import PgConnection

            self._pg = self._db = PgConnection(str(path))
            self.where = self._pg.where
            try:
                with self._errors():
                    upgrade_postgres(self._pg)
            except BaseException:
                self._pg.close()
                raise
            return
        self.where = str(path)
        self._db = connect(path, check_same_thread=False, isolation_level=None)
        with sqlite_errors(path):
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.executescript(_file_schema())

    def __repr__(self) -> str:
        return f"<AccountStore {self.where}>"

    def close(self) -> None:
        """Close the file (or the database connection)."""
        with self._lock:
            self._db.close()

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """Storage failures as StorageError (a PostgreSQL one without the DSN's password or
        the driver's exception chained), a constraint's refusal as :class:`_Conflict`."""
        if self._pg is None:
            with sqlite_errors(self.where):
                try:
                    yield
                except sqlite3.IntegrityError:
                    raise _Conflict() from None
            return
        import psycopg

        try:
            yield
        except psycopg.IntegrityError:
            raise _Conflict() from None
        except psycopg.Error as exc:
            self._pg.fail(exc)

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection | PgConnection]:
        """One transaction (SQLite: ``BEGIN IMMEDIATE``; PostgreSQL: row locks taken by its
        statements), committed when the block ends, rolled back on an exception."""
        with self._lock, self._errors():
            if self._pg is not None:
                with self._pg.transaction(lock=None):
                    yield self._pg
                return
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def _run(self, sql: str, params: Iterable[object] = ()) -> list[tuple[object, ...]]:
        with self._lock, self._errors():
            return list(self._db.execute(sql, tuple(params)))

    # ------------------------------------------------------------------ accounts

    def create_account(
        self, username: str, password: str, role: Role | str, *, owner_id: str | None = None
    ) -> Account:
        """A new account with an argon2id hash of ``password`` (at least 12 characters).

        An owner account names the owner it speaks for; no other role may. ValidationError for
        a bad username, a short password, a taken username or a role/owner mismatch.
        """
        username = parse_username(username)
        role = Role(role)
        if not isinstance(password, str) or len(password) < 12 or len(password) > 1024:
            raise ValidationError("a password is 12 to 1024 characters")
        if (role is Role.OWNER) != (owner_id is not None):
            raise ValidationError("an owner account names its owner; no other account does")
        account = Account(f"acc_{secrets.token_hex(8)}", username, role, owner_id)
        hashed = _HASHER.hash(password)
        try:
            self._run(
                "INSERT INTO accounts VALUES (?, ?, ?, ?, ?, ?)",
                (account.id, username, str(role), owner_id, hashed, self.now().isoformat()),
            )
        except _Conflict:
            raise ValidationError(f"the username {username!r} is taken") from None
        return account

    def _account(self, row: tuple[object, ...]) -> Account:
        return Account(
            str(row[0]), str(row[1]), Role(str(row[2])), None if row[3] is None else str(row[3])
        )

    def get_account(self, account_id: str) -> Account:
        """The account ``account_id``; NotFound when there is none."""
        rows = self._run(
            "SELECT id, username, role, owner_id FROM accounts WHERE id = ?", (account_id,)
        )
        if not rows:
            raise NotFound(f"no account {account_id!r}")
        return self._account(rows[0])

    def list_accounts(self) -> list[Account]:
        """Every account, by username (never a password hash, session or token)."""
        rows = self._run("SELECT id, username, role, owner_id FROM accounts ORDER BY username")
        return [self._account(row) for row in rows]

    def verify_password(self, username: str, password: str) -> Account:
        """The account whose username and password these are; NotAuthenticated otherwise (the
        same error, after the same work, for an unknown username and a wrong password)."""
        rows = self._run(
            "SELECT id, username, role, owner_id, password_hash FROM accounts WHERE username = ?",
            (username,),
        )
        stored = str(rows[0][4]) if rows else _DUMMY_HASH
        try:
            _HASHER.verify(stored, password)
        except (argon2.exceptions.VerificationError, argon2.exceptions.InvalidHashError):
            raise NotAuthenticated("wrong username or password") from None
        if not rows:
            raise NotAuthenticated("wrong username or password")
        account = self._account(rows[0])
        if _HASHER.check_needs_rehash(stored):
            self._run(
                "UPDATE accounts SET password_hash = ? WHERE id = ?",
                (_HASHER.hash(password), account.id),
            )
        return account

    # ------------------------------------------------------------------ sessions

    def open_session(self, account: Account) -> tuple[str, str, datetime]:
        """A new session: ``(session_id, csrf_token, expires_at)``. Only the session id's
        digest is stored; the id itself goes to the browser in a cookie, once."""
        session_id, csrf = _new_secret(), _new_secret()
        now = self.now()
        expires = now + timedelta(seconds=self.settings.session_ttl_s)
        self._run(
            "INSERT INTO sessions VALUES (?, ?, ?, ?, ?)",
            (_digest(session_id), account.id, csrf, now.isoformat(), expires.isoformat()),
        )
        return session_id, csrf, expires

    def session_caller(self, cookie: str | None) -> Caller:
        """The caller of a session cookie; NotAuthenticated when it is malformed, unknown or
        expired (an expired session is deleted)."""
        session_id = parse_secret(cookie)
        if session_id is None:
            raise NotAuthenticated("no valid session")
        digest = _digest(session_id)
        rows = self._run(
            "SELECT account_id, csrf, expires_at FROM sessions WHERE digest = ?", (digest,)
        )
        if not rows:
            raise NotAuthenticated("no valid session")
        account_id, csrf, expires = rows[0]
        if datetime.fromisoformat(str(expires)) <= self.now():
            self._run("DELETE FROM sessions WHERE digest = ?", (digest,))
            raise NotAuthenticated("the session expired; log in again")
        return Caller(self.get_account(str(account_id)), None, str(csrf), digest)

    def close_session(self, caller: Caller) -> None:
        """End the caller's session (logout); a token caller has none."""
        if caller.session_digest is not None:
            self._run("DELETE FROM sessions WHERE digest = ?", (caller.session_digest,))

    # ------------------------------------------------------------------ API tokens

    def create_token(
        self, account: Account, name: str, scopes: Iterable[Action | str], ttl_s: float
    ) -> tuple[str, str, datetime]:
        """A new API token for ``account``: ``(token_id, token, expires_at)``. The token is
        returned here only; the file keeps its secret's digest.

        Every scope must be an action the account's role may take (ValidationError otherwise);
        ``ttl_s`` is at most ``settings.token_max_ttl_s``.
        """
        wanted = frozenset(Action(s) for s in scopes)
        if not wanted:
            raise ValidationError("a token needs at least one scope")
        beyond = sorted(str(s) for s in wanted - POLICY[account.role])
        if beyond:
            raise ValidationError(f"the account's role does not allow {', '.join(beyond)}")
        if not 0 < ttl_s <= self.settings.token_max_ttl_s:
            raise ValidationError(
                f"a token lasts more than 0 and at most {self.settings.token_max_ttl_s:g} s"
            )
        if not name or len(name) > 100:
            raise ValidationError("a token's name is 1-100 characters")
        token_id, secret = secrets.token_hex(8), _new_secret()
        now = self.now()
        expires = now + timedelta(seconds=ttl_s)
        self._run(
            "INSERT INTO tokens VALUES (?, ?, ?, ?, ?, ?, ?, NULL)",
            (
                token_id,
                _digest(secret),
                account.id,
                name,
                json.dumps(sorted(str(s) for s in wanted)),
                now.isoformat(),
                expires.isoformat(),
            ),
        )
        return token_id, f"{TOKEN_PREFIX}{token_id}_{secret}", expires

    def token_caller(self, token: str) -> Caller:
        """The caller of an API token; NotAuthenticated when it is malformed, unknown, wrong,
        expired or revoked (one message for all: the caller learns nothing more)."""
        parsed = parse_api_token(token)
        if parsed is None:
            raise NotAuthenticated("no valid API token")
        token_id, secret = parsed
        rows = self._run(
            "SELECT digest, account_id, scopes, expires_at, revoked_at FROM tokens WHERE id = ?",
            (token_id,),
        )
        if not rows or not hmac.compare_digest(str(rows[0][0]), _digest(secret)):
            raise NotAuthenticated("no valid API token")
        _, account_id, scopes, expires, revoked = rows[0]
        if revoked is not None or datetime.fromisoformat(str(expires)) <= self.now():
            raise NotAuthenticated("no valid API token")
        account = self.get_account(str(account_id))
        # A scope the role lost since the token was made is dropped, never kept.
        granted = frozenset(Action(s) for s in json.loads(str(scopes))) & POLICY[account.role]
        return Caller(account, granted)

    def revoke_token(self, token_id: str) -> None:
        """Revoke an API token at once; NotFound when there is no such token."""
        rows = self._run("SELECT id FROM tokens WHERE id = ?", (token_id,))
        if not rows:
            raise NotFound(f"no API token {token_id!r}")
        self._run(
            "UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
            (self.now().isoformat(), token_id),
        )

    # ------------------------------------------------------------------ invites

    def create_invite(self, owner_id: str, created_by: Account) -> tuple[str, datetime]:
        """A single-use invite for the owner ``owner_id``: ``(code, expires_at)``. The code is
        returned here only (it goes into the link sent to the owner); the file keeps its
        digest."""
        code = _new_secret()
        now = self.now()
        expires = now + timedelta(seconds=self.settings.invite_ttl_s)
        self._run(
            "INSERT INTO invites VALUES (?, ?, ?, ?, ?, NULL)",
            (_digest(code), owner_id, created_by.id, now.isoformat(), expires.isoformat()),
        )
        return code, expires

    def accept_invite(self, code: str, username: str, password: str) -> Account:
        """Use an invite: the owner account it promised. InviteInvalid when the code is unknown,
        used already or expired; the code is spent in the same transaction that creates the
        account, so two uses racing cannot both succeed."""
        parsed = parse_secret(code)
        if parsed is None:
            raise InviteInvalid("the invite link is not valid")
        digest, now = _digest(parsed), self.now()
        username = parse_username(username)
        if not isinstance(password, str) or len(password) < 12 or len(password) > 1024:
            raise ValidationError("a password is 12 to 1024 characters")
        hashed = _HASHER.hash(password)
        account_id = f"acc_{secrets.token_hex(8)}"
        try:
            with self._transaction() as db:
                row = db.execute(
                    "SELECT owner_id, expires_at, used_at FROM invites WHERE digest = ?",
                    (digest,),
                ).fetchone()
                owner_id = _usable(row, now)
                # Spent only if still unused: a hub racing on the same code waits on the row
                # (PostgreSQL) or the file (SQLite), then changes nothing and is refused.
                spent = db.execute(
                    "UPDATE invites SET used_at = ? WHERE digest = ? AND used_at IS NULL",
                    (now.isoformat(), digest),
                )
                if spent.rowcount != 1:
                    raise InviteInvalid("the invite link is not valid, used already, or expired")
                db.execute(
                    "INSERT INTO accounts VALUES (?, ?, ?, ?, ?, ?)",
                    (account_id, username, "owner", owner_id, hashed, now.isoformat()),
                )
        except _Conflict:
            raise ValidationError(f"the username {username!r} is taken") from None
        return Account(account_id, username, Role.OWNER, owner_id)
