-- The same change as SQLite's 0002: collections get a stable id that records,
-- unique values, aliases, jobs and token grants refer to; every change bumps
-- `version`; foreign keys cascade what a collection's deletion takes with it.

ALTER TABLE collections ADD COLUMN id BIGINT GENERATED ALWAYS AS IDENTITY;
ALTER TABLE collections ADD COLUMN version BIGINT NOT NULL DEFAULT 1;
ALTER TABLE collections DROP CONSTRAINT collections_pkey;
ALTER TABLE collections ADD PRIMARY KEY (id);
ALTER TABLE collections ADD CONSTRAINT collections_name_key UNIQUE (name);

ALTER TABLE records ADD COLUMN collection_id BIGINT;
UPDATE records r SET collection_id = c.id FROM collections c WHERE c.name = r.collection;
DELETE FROM records WHERE collection_id IS NULL;
ALTER TABLE records DROP CONSTRAINT records_pkey;
ALTER TABLE records DROP COLUMN collection;
ALTER TABLE records ALTER COLUMN collection_id SET NOT NULL;
ALTER TABLE records ADD PRIMARY KEY (collection_id, id);
ALTER TABLE records ADD FOREIGN KEY (collection_id) REFERENCES collections (id) ON DELETE CASCADE;

ALTER TABLE unique_values ADD COLUMN collection_id BIGINT;
UPDATE unique_values u SET collection_id = c.id FROM collections c WHERE c.name = u.collection;
DELETE FROM unique_values u WHERE collection_id IS NULL
    OR NOT EXISTS (SELECT 1 FROM records r WHERE r.collection_id = u.collection_id AND r.id = u.record_id);
ALTER TABLE unique_values DROP CONSTRAINT unique_values_pkey;
ALTER TABLE unique_values DROP COLUMN collection;
ALTER TABLE unique_values ALTER COLUMN collection_id SET NOT NULL;
ALTER TABLE unique_values ADD PRIMARY KEY (collection_id, field, value);
ALTER TABLE unique_values ADD FOREIGN KEY (collection_id, record_id)
    REFERENCES records (collection_id, id) ON DELETE CASCADE;
CREATE INDEX unique_values_by_record ON unique_values (collection_id, record_id);

ALTER TABLE aliases ADD COLUMN collection_id BIGINT;
UPDATE aliases a SET collection_id = c.id FROM collections c WHERE c.name = a.new_name;
DELETE FROM aliases WHERE collection_id IS NULL;
ALTER TABLE aliases DROP COLUMN new_name;
ALTER TABLE aliases ALTER COLUMN collection_id SET NOT NULL;
ALTER TABLE aliases ADD FOREIGN KEY (collection_id) REFERENCES collections (id) ON DELETE CASCADE;
CREATE INDEX aliases_by_collection ON aliases (collection_id);

-- Inputs and results apart from the job's state, so a monitor reads a few columns.
CREATE TABLE job_inputs (
    job_id TEXT PRIMARY KEY REFERENCES jobs (id) ON DELETE CASCADE,
    data   BYTEA NOT NULL
);
INSERT INTO job_inputs (job_id, data) SELECT id, input FROM jobs WHERE input IS NOT NULL;

CREATE TABLE job_results (
    job_id TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    seq    BIGINT NOT NULL,
    data   BYTEA NOT NULL,
    PRIMARY KEY (job_id, seq)
);
INSERT INTO job_results (job_id, seq, data)
    SELECT j.id, 0, convert_to(COALESCE(
        (SELECT string_agg(e::text, ',') FROM json_array_elements(j.result::json -> 'records') e), ''), 'UTF8')
    FROM jobs j WHERE j.kind = 'export' AND j.state = 'succeeded' AND j.result IS NOT NULL;

CREATE TABLE job_failures (
    job_id TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    line   BIGINT NOT NULL,
    errors TEXT NOT NULL,
    PRIMARY KEY (job_id, line)
);

ALTER TABLE jobs ADD COLUMN collection_id BIGINT REFERENCES collections (id) ON DELETE SET NULL;
UPDATE jobs j SET collection_id = c.id FROM collections c WHERE c.name = j.collection;
ALTER TABLE jobs ADD COLUMN imported BIGINT NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN failed BIGINT NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN input_bytes BIGINT NOT NULL DEFAULT 0;
UPDATE jobs SET input_bytes = COALESCE(length(input), 0);
UPDATE jobs SET state = 'queued', processed = 0, lease_owner = NULL, lease_until = NULL
    WHERE state IN ('queued', 'running');
ALTER TABLE jobs ADD COLUMN result_doc BYTEA;
UPDATE jobs SET result_doc = convert_to(result, 'UTF8') WHERE kind = 'import' AND result IS NOT NULL;
ALTER TABLE jobs DROP COLUMN result;
ALTER TABLE jobs RENAME COLUMN result_doc TO result;
ALTER TABLE jobs DROP COLUMN input;
CREATE INDEX jobs_by_collection ON jobs (collection_id);
CREATE INDEX jobs_by_token ON jobs (token_id, state);

UPDATE tokens SET collections = (
    SELECT COALESCE(json_agg(c.id ORDER BY c.id), '[]'::json)::text
    FROM json_array_elements_text(tokens.collections::json) g(name)
    JOIN collections c ON c.name = g.name
) WHERE collections IS NOT NULL;
