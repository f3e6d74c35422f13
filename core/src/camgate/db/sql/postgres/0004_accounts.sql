-- Version 4: the HTTP API's accounts, sessions, API tokens and invites (camgate_server.accounts).
-- On PostgreSQL every hub behind the load balancer reads the same rows, so an account made or a
-- session opened on one hub is known to all. Secrets are stored only as SHA-256 digests and
-- passwords as argon2id hashes. Read-then-write races are settled by these constraints (a
-- unique username) and by row locks in AccountStore (an invite is spent once).
-- The accounts file beside a SQLite store takes these same tables (all TEXT; AccountStore makes
-- each statement IF NOT EXISTS): keep them portable.
CREATE TABLE accounts (
    id TEXT PRIMARY KEY,
    username TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL,
    owner_id TEXT,
    password_hash TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE sessions (
    digest TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts(id),
    csrf TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
CREATE TABLE tokens (
    id TEXT PRIMARY KEY,
    digest TEXT NOT NULL,
    account_id TEXT NOT NULL REFERENCES accounts(id),
    name TEXT NOT NULL,
    scopes TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    revoked_at TEXT
);
CREATE TABLE invites (
    digest TEXT PRIMARY KEY,
    owner_id TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    used_at TEXT
);
