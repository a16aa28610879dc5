-- The same schema as SQLite's (migrations/sqlite), in PostgreSQL's types.
-- Tokens: only a hash of the secret is kept.
CREATE TABLE tokens (
    id               TEXT PRIMARY KEY,
    secret_hash      BYTEA NOT NULL,
    scopes           TEXT NOT NULL,          -- JSON array
    collections      TEXT,                   -- JSON array, NULL: every collection
    rate_requests    BIGINT,
    rate_per_seconds BIGINT,
    write_quota      BIGINT,
    created_at       BIGINT NOT NULL,       -- unix ms
    revoked_at       BIGINT
);

CREATE TABLE collections (
    name       TEXT PRIMARY KEY,
    schema     TEXT,                         -- JSON Schema, NULL: any object
    uniq       TEXT NOT NULL DEFAULT '[]',   -- JSON array of unique field names
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- A renamed collection's old name, redirecting until `until`.
CREATE TABLE aliases (
    old_name TEXT PRIMARY KEY,
    new_name TEXT NOT NULL,
    until    BIGINT NOT NULL
);

CREATE TABLE records (
    collection TEXT NOT NULL,
    id         TEXT NOT NULL,
    data       TEXT NOT NULL,                -- JSON object
    version    BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (collection, id)
);

-- One row per (collection, unique field, value): the primary key enforces uniqueness.
CREATE TABLE unique_values (
    collection TEXT NOT NULL,
    field      TEXT NOT NULL,
    value      TEXT NOT NULL,                -- canonical JSON of the value
    record_id  TEXT NOT NULL,
    PRIMARY KEY (collection, field, value)
);

CREATE TABLE idempotency (
    token_id    TEXT NOT NULL,
    key         TEXT NOT NULL,
    fingerprint TEXT NOT NULL,               -- method, path and body hash of the first request
    status      BIGINT NOT NULL,
    headers     TEXT NOT NULL,               -- JSON object
    body        BYTEA NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (token_id, key)
);

CREATE TABLE jobs (
    id          TEXT PRIMARY KEY,
    kind        TEXT NOT NULL,               -- export | import
    collection  TEXT NOT NULL,
    token_id    TEXT NOT NULL,
    state       TEXT NOT NULL,               -- queued | running | succeeded | failed | cancelled
    processed   BIGINT NOT NULL DEFAULT 0,
    total       BIGINT,
    input       BYTEA,                        -- an import's NDJSON
    result      TEXT,                        -- JSON
    error       TEXT,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    lease_owner TEXT,
    lease_until BIGINT
);
CREATE INDEX jobs_by_state ON jobs (state, lease_until);
