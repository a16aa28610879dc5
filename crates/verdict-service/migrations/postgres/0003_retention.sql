-- Expiry of idempotent answers and finished jobs reads them by age.
CREATE INDEX idempotency_by_age ON idempotency (created_at);
CREATE INDEX jobs_by_age ON jobs (state, updated_at);
