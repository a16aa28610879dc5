-- Collections get a stable id that everything belonging to one refers to, so
-- a rename moves nothing and a name deleted and created again is a new
-- collection: records, unique values, aliases, jobs and token grants follow
-- the id. Every change bumps `version` (compare-and-swap). Foreign keys
-- cascade what a collection's deletion takes with it.

CREATE TABLE collections_v2 (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,   -- never reused
    name       TEXT NOT NULL UNIQUE,
    schema     TEXT,
    uniq       TEXT NOT NULL DEFAULT '[]',
    version    INTEGER NOT NULL DEFAULT 1,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
INSERT INTO collections_v2 (name, schema, uniq, version, created_at, updated_at)
    SELECT name, schema, uniq, 1, created_at, updated_at FROM collections ORDER BY created_at, name;

CREATE TABLE records_v2 (
    collection_id INTEGER NOT NULL REFERENCES collections_v2 (id) ON DELETE CASCADE,
    id            TEXT NOT NULL,
    data          TEXT NOT NULL,
    version       INTEGER NOT NULL,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    PRIMARY KEY (collection_id, id)
) WITHOUT ROWID;
INSERT INTO records_v2 (collection_id, id, data, version, created_at, updated_at)
    SELECT c.id, r.id, r.data, r.version, r.created_at, r.updated_at
    FROM records r JOIN collections_v2 c ON c.name = r.collection;

CREATE TABLE unique_values_v2 (
    collection_id INTEGER NOT NULL,
    field         TEXT NOT NULL,
    value         TEXT NOT NULL,
    record_id     TEXT NOT NULL,
    PRIMARY KEY (collection_id, field, value),
    FOREIGN KEY (collection_id, record_id) REFERENCES records_v2 (collection_id, id) ON DELETE CASCADE
) WITHOUT ROWID;
INSERT INTO unique_values_v2 (collection_id, field, value, record_id)
    SELECT c.id, u.field, u.value, u.record_id
    FROM unique_values u JOIN collections_v2 c ON c.name = u.collection
    WHERE EXISTS (SELECT 1 FROM records_v2 r WHERE r.collection_id = c.id AND r.id = u.record_id);

CREATE TABLE aliases_v2 (
    old_name      TEXT PRIMARY KEY,
    collection_id INTEGER NOT NULL REFERENCES collections_v2 (id) ON DELETE CASCADE,
    until         INTEGER NOT NULL
);
INSERT INTO aliases_v2 (old_name, collection_id, until)
    SELECT a.old_name, c.id, a.until FROM aliases a JOIN collections_v2 c ON c.name = a.new_name;

CREATE TABLE jobs_v2 (
    id            TEXT PRIMARY KEY,
    kind          TEXT NOT NULL,                 -- export | import
    collection_id INTEGER REFERENCES collections_v2 (id) ON DELETE SET NULL,
    collection    TEXT NOT NULL,                 -- the name when the job was created
    token_id      TEXT NOT NULL,
    state         TEXT NOT NULL,                 -- queued | running | succeeded | failed | cancelled
    processed     INTEGER NOT NULL DEFAULT 0,
    total         INTEGER,
    imported      INTEGER NOT NULL DEFAULT 0,
    failed        INTEGER NOT NULL DEFAULT 0,
    input_bytes   INTEGER NOT NULL DEFAULT 0,
    result        BLOB,                          -- an import's result document
    error         TEXT,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    lease_owner   TEXT,
    lease_until   INTEGER
);
-- Jobs that were running resume from the start under the new layout.
INSERT INTO jobs_v2 (id, kind, collection_id, collection, token_id, state, processed, total,
                     input_bytes, result, error, created_at, updated_at)
    SELECT j.id, j.kind, c.id, j.collection, j.token_id,
           CASE WHEN j.state = 'running' THEN 'queued' ELSE j.state END,
           CASE WHEN j.state IN ('queued', 'running') THEN 0 ELSE j.processed END,
           j.total, COALESCE(length(j.input), 0),
           CASE WHEN j.kind = 'import' THEN CAST(j.result AS BLOB) END, j.error, j.created_at, j.updated_at
    FROM jobs j LEFT JOIN collections_v2 c ON c.name = j.collection;

-- Inputs and results apart from the job's state, so a monitor reads a few columns.
CREATE TABLE job_inputs (
    job_id TEXT PRIMARY KEY REFERENCES jobs_v2 (id) ON DELETE CASCADE,
    data   BLOB NOT NULL
);
INSERT INTO job_inputs (job_id, data) SELECT id, input FROM jobs WHERE input IS NOT NULL;

-- An export's records, in chunks of comma-separated JSON objects, served as they are.
CREATE TABLE job_results (
    job_id TEXT NOT NULL REFERENCES jobs_v2 (id) ON DELETE CASCADE,
    seq    INTEGER NOT NULL,
    data   BLOB NOT NULL,
    PRIMARY KEY (job_id, seq)
) WITHOUT ROWID;
-- Exports finished under the old layout kept their records inside one document.
INSERT INTO job_results (job_id, seq, data)
    SELECT j.id, 0, CAST((SELECT COALESCE(group_concat(value, ','), '') FROM json_each(j.result, '$.records')) AS BLOB)
    FROM jobs j WHERE j.kind = 'export' AND j.state = 'succeeded' AND j.result IS NOT NULL;

-- An import's failed lines (the first MAX_KEPT_FAILURES; past them, the count).
CREATE TABLE job_failures (
    job_id TEXT NOT NULL REFERENCES jobs_v2 (id) ON DELETE CASCADE,
    line   INTEGER NOT NULL,
    errors TEXT NOT NULL,                        -- JSON array of {pointer, detail}
    PRIMARY KEY (job_id, line)
) WITHOUT ROWID;

DROP TABLE jobs;
DROP TABLE aliases;
DROP TABLE unique_values;
DROP TABLE records;
DROP TABLE collections;
ALTER TABLE collections_v2 RENAME TO collections;
ALTER TABLE records_v2 RENAME TO records;
ALTER TABLE unique_values_v2 RENAME TO unique_values;
ALTER TABLE aliases_v2 RENAME TO aliases;
ALTER TABLE jobs_v2 RENAME TO jobs;

CREATE INDEX unique_values_by_record ON unique_values (collection_id, record_id);
CREATE INDEX aliases_by_collection ON aliases (collection_id);
CREATE INDEX jobs_by_state ON jobs (state, lease_until);
CREATE INDEX jobs_by_collection ON jobs (collection_id);
CREATE INDEX jobs_by_token ON jobs (token_id, state);

-- Token grants name collections by id (grants to names that no longer exist are dropped).
UPDATE tokens SET collections = (
    SELECT json_group_array(c.id) FROM json_each(tokens.collections) g
    JOIN collections c ON c.name = g.value
) WHERE collections IS NOT NULL;
