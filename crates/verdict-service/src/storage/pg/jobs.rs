//! Jobs: the queue, leases, inputs, results and progress.

use super::records::{check_collection, insert_record};
use super::*;

/// Whether a job is still `owner`'s to write (locking its row for the transaction).
async fn owns_job(tx: &mut sqlx::PgConnection, id: &str, owner: &str) -> StorageResult<()> {
    let held = sqlx::query(
        "SELECT 1 FROM jobs WHERE id = $1 AND lease_owner = $2 AND state = 'running' FOR UPDATE",
    )
    .bind(id)
    .bind(owner)
    .fetch_optional(&mut *tx)
    .await
    .map_err(db_err)?;
    held.map(|_| ()).ok_or(StorageError::NotFound)
}

#[async_trait]
impl JobStore for PgStorage {
    async fn insert_job(
        &self,
        j: &JobRow,
        input: Option<&[u8]>,
        max_queued_bytes: i64,
    ) -> StorageResult<()> {
        let mut tx = self.begin().await?;
        if j.input_bytes > 0 {
            // One token's queue is checked and grown one request at a time.
            execute(
                &mut *tx,
                sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
                    .bind(format!("verdict-job-queue:{}", j.token_id)),
            )
            .await?;
            let queued: i64 = sqlx::query(
                "SELECT COALESCE(SUM(input_bytes), 0)::BIGINT AS queued FROM jobs
                 WHERE token_id = $1 AND state IN ('queued', 'running')",
            )
            .bind(&j.token_id)
            .fetch_one(&mut *tx)
            .await
            .map_err(db_err)?
            .get("queued");
            if queued + j.input_bytes > max_queued_bytes {
                return Err(StorageError::Conflict(Conflict::ImportQueueFull { queued }));
            }
        }
        execute(&mut *tx, sqlx::query(
            "INSERT INTO jobs (id, kind, collection_id, collection, token_id, state, processed, total, input_bytes, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(&j.id)
        .bind(&j.kind)
        .bind(j.collection_id)
        .bind(&j.collection)
        .bind(&j.token_id)
        .bind(j.state.as_str())
        .bind(j.processed)
        .bind(j.total)
        .bind(j.input_bytes)
        .bind(j.created_at)
        .bind(j.updated_at)).await?;
        if let Some(data) = input {
            execute(
                &mut *tx,
                sqlx::query("INSERT INTO job_inputs (job_id, data) VALUES ($1, $2)")
                    .bind(&j.id)
                    .bind(data),
            )
            .await?;
        }
        commit(tx).await
    }

    async fn get_job(&self, id: &str) -> StorageResult<Option<JobRow>> {
        fetch_opt(
            self.pool()?,
            sqlx::query(concat!(
                "SELECT ",
                job_columns!(),
                " FROM jobs WHERE id = $1"
            ))
            .bind(id),
            job_from_row,
        )
        .await
    }

    async fn job_input(&self, id: &str) -> StorageResult<Option<Vec<u8>>> {
        let row = sqlx::query("SELECT data FROM job_inputs WHERE job_id = $1")
            .bind(id)
            .fetch_optional(self.pool()?)
            .await
            .map_err(db_err)?;
        row.as_ref().map(|r| col(r, "data")).transpose()
    }

    async fn job_result(&self, id: &str, seq: i64) -> StorageResult<Option<Vec<u8>>> {
        let pool = self.pool()?;
        let kind: Option<String> = sqlx::query("SELECT kind FROM jobs WHERE id = $1")
            .bind(id)
            .fetch_optional(pool)
            .await
            .map_err(db_err)?
            .map(|r| r.get("kind"));
        let row = match kind.as_deref() {
            Some("export") => {
                sqlx::query("SELECT data FROM job_results WHERE job_id = $1 AND seq = $2")
                    .bind(id)
                    .bind(seq)
                    .fetch_optional(pool)
                    .await
                    .map_err(db_err)?
            }
            Some(_) if seq == 0 => {
                sqlx::query("SELECT result AS data FROM jobs WHERE id = $1 AND result IS NOT NULL")
                    .bind(id)
                    .fetch_optional(pool)
                    .await
                    .map_err(db_err)?
            }
            _ => None,
        };
        row.as_ref().map(|r| col(r, "data")).transpose()
    }

    async fn job_failures(&self, id: &str) -> StorageResult<Vec<LineFailure>> {
        let rows =
            sqlx::query("SELECT line, errors FROM job_failures WHERE job_id = $1 ORDER BY line")
                .bind(id)
                .fetch_all(self.pool()?)
                .await
                .map_err(db_err)?;
        rows.iter()
            .map(|r| {
                let errors: String = col(r, "errors")?;
                Ok(LineFailure {
                    line: col(r, "line")?,
                    errors: parse_json(&errors)?,
                })
            })
            .collect()
    }

    async fn claim_job(
        &self,
        owner: &str,
        now: i64,
        lease_until: i64,
        per_token: u32,
    ) -> StorageResult<Option<JobRow>> {
        // SKIP LOCKED: concurrent claimers on other instances pass over a row
        // being claimed instead of waiting for it, and never get the same job.
        // Fair between tokens: the token with the fewest jobs running goes first.
        fetch_opt(self.pool()?, sqlx::query(concat!(
            "UPDATE jobs SET state = 'running', lease_owner = $1, lease_until = $2, updated_at = $3
             WHERE id = (SELECT w.id FROM jobs w
                         CROSS JOIN LATERAL (SELECT COUNT(*) AS n FROM jobs r
                                   WHERE r.token_id = w.token_id AND r.state = 'running' AND r.lease_until >= $3) running
                         WHERE (w.state = 'queued' OR (w.state = 'running' AND w.lease_until < $3))
                           AND running.n < $4
                         ORDER BY running.n, w.created_at
                         LIMIT 1 FOR UPDATE OF w SKIP LOCKED)
             RETURNING ",
            job_columns!()
        ))
        .bind(owner)
        .bind(lease_until)
        .bind(now)
        .bind(i64::from(per_token)), job_from_row).await
    }

    async fn job_progress(
        &self,
        id: &str,
        owner: &str,
        processed: i64,
        lease_until: i64,
        now: i64,
    ) -> StorageResult<()> {
        let r = execute(
            self.pool()?,
            sqlx::query(
                "UPDATE jobs SET processed = $1, lease_until = $2, updated_at = $3
             WHERE id = $4 AND lease_owner = $5 AND state = 'running'",
            )
            .bind(processed)
            .bind(lease_until)
            .bind(now)
            .bind(id)
            .bind(owner),
        )
        .await?;
        if r == 0 {
            return Err(StorageError::NotFound);
        }
        Ok(())
    }

    async fn export_chunk(&self, c: &ExportChunk<'_>) -> StorageResult<()> {
        let (id, owner, seq, chunk) = (c.job_id, c.owner, c.seq, c.chunk);
        let (processed, lease_until, now) = (c.processed, c.lease_until, c.now);
        let mut tx = self.begin().await?;
        owns_job(&mut tx, id, owner).await?;
        if seq == 0 {
            execute(
                &mut *tx,
                sqlx::query("DELETE FROM job_results WHERE job_id = $1").bind(id),
            )
            .await?;
        }
        execute(
            &mut *tx,
            sqlx::query("INSERT INTO job_results (job_id, seq, data) VALUES ($1, $2, $3)")
                .bind(id)
                .bind(seq)
                .bind(chunk),
        )
        .await?;
        execute(
            &mut *tx,
            sqlx::query(
                "UPDATE jobs SET processed = $1, lease_until = $2, updated_at = $3 WHERE id = $4",
            )
            .bind(processed)
            .bind(lease_until)
            .bind(now)
            .bind(id),
        )
        .await?;
        commit(tx).await
    }

    async fn import_step(
        &self,
        step: &ImportStep,
        describe: DescribeConflict,
    ) -> StorageResult<()> {
        let mut tx = self.begin().await?;
        // The collection's lock before the job's: deleting a collection takes
        // them in that order too, and the opposite order deadlocked (one of
        // the two was aborted, a 500 when it was the delete).
        check_collection(&mut tx, step.collection.id, step.collection.version).await?;
        owns_job(&mut tx, &step.job_id, &step.owner).await?;
        let mut failures = step.failures.clone();
        let mut imported = 0i64;
        for (line, record) in &step.records {
            execute(&mut *tx, sqlx::query("SAVEPOINT line")).await?;
            match insert_record(&mut tx, step.collection.id, &step.collection.unique, record).await
            {
                Ok(()) => {
                    imported += 1;
                    execute(&mut *tx, sqlx::query("RELEASE SAVEPOINT line")).await?;
                }
                Err(StorageError::Conflict(c)) => {
                    execute(&mut *tx, sqlx::query("ROLLBACK TO SAVEPOINT line")).await?;
                    failures.push(LineFailure {
                        line: *line,
                        errors: describe(record, &c),
                    });
                }
                Err(e) => return Err(e),
            }
        }
        failures.sort_by_key(|f| f.line);
        let kept: i64 = sqlx::query("SELECT COUNT(*) AS n FROM job_failures WHERE job_id = $1")
            .bind(&step.job_id)
            .fetch_one(&mut *tx)
            .await
            .map_err(db_err)?
            .get("n");
        for f in failures
            .iter()
            .take((MAX_KEPT_FAILURES - kept).max(0) as usize)
        {
            execute(
                &mut *tx,
                sqlx::query(
                    "INSERT INTO job_failures (job_id, line, errors) VALUES ($1, $2, $3)
                 ON CONFLICT (job_id, line) DO NOTHING",
                )
                .bind(&step.job_id)
                .bind(f.line)
                .bind(json_text(&f.errors)),
            )
            .await?;
        }
        execute(
            &mut *tx,
            sqlx::query(
                "UPDATE jobs SET processed = $1, imported = imported + $2, failed = failed + $3,
               lease_until = $4, updated_at = $5 WHERE id = $6",
            )
            .bind(step.processed)
            .bind(imported)
            .bind(failures.len() as i64)
            .bind(step.lease_until)
            .bind(step.now)
            .bind(&step.job_id),
        )
        .await?;
        commit(tx).await
    }

    async fn finish_job(
        &self,
        id: &str,
        owner: &str,
        state: JobState,
        result: Option<&[u8]>,
        error: Option<&str>,
        now: i64,
    ) -> StorageResult<()> {
        let mut tx = self.begin().await?;
        let r = execute(&mut *tx, sqlx::query(
            "UPDATE jobs SET state = $1, result = $2, error = $3, updated_at = $4, lease_until = NULL
             WHERE id = $5 AND lease_owner = $6 AND state = 'running'",
        )
        .bind(state.as_str())
        .bind(result)
        .bind(error)
        .bind(now)
        .bind(id)
        .bind(owner)).await?;
        if r == 0 {
            return Err(StorageError::NotFound);
        }
        execute(
            &mut *tx,
            sqlx::query("DELETE FROM job_inputs WHERE job_id = $1").bind(id),
        )
        .await?;
        commit(tx).await
    }

    async fn cancel_job(&self, id: &str, now: i64) -> StorageResult<JobRow> {
        let mut tx = self.begin().await?;
        let row = sqlx::query(concat!(
            "UPDATE jobs SET state = 'cancelled', updated_at = $1
             WHERE id = $2 AND state IN ('queued', 'running') RETURNING ",
            job_columns!()
        ))
        .bind(now)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_err)?;
        let Some(row) = row else {
            drop(tx);
            return match self.get_job(id).await? {
                Some(_) => Err(StorageError::Conflict(Conflict::JobFinished)),
                None => Err(StorageError::NotFound),
            };
        };
        for sql in [
            "DELETE FROM job_inputs WHERE job_id = $1",
            "DELETE FROM job_results WHERE job_id = $1",
        ] {
            execute(&mut *tx, sqlx::query(sql).bind(id)).await?;
        }
        commit(tx).await?;
        job_from_row(&row)
    }

    async fn purge_jobs(&self, before: i64) -> StorageResult<u64> {
        // Inputs, results and failures go by the foreign keys' cascade.
        execute(
            self.pool()?,
            sqlx::query(
                "DELETE FROM jobs WHERE state IN ('succeeded', 'failed', 'cancelled') AND updated_at < $1",
            )
            .bind(before),
        )
        .await
    }

    async fn delete_finished_job(&self, id: &str) -> StorageResult<()> {
        // Inputs, results and failures go by the foreign keys' cascade.
        let deleted = execute(
            self.pool()?,
            sqlx::query(
                "DELETE FROM jobs WHERE id = $1 AND state IN ('succeeded', 'failed', 'cancelled')",
            )
            .bind(id),
        )
        .await?;
        if deleted > 0 {
            return Ok(());
        }
        match self.get_job(id).await? {
            Some(_) => Err(StorageError::Conflict(Conflict::JobRunning)),
            None => Err(StorageError::NotFound),
        }
    }

    async fn count_jobs(&self) -> StorageResult<Vec<(JobState, u64)>> {
        let counts = fetch_all(
            self.pool()?,
            sqlx::query("SELECT state, COUNT(*) FROM jobs GROUP BY state"),
            |row| {
                let state: String = row.try_get(0).map_err(db_err)?;
                let n: i64 = row.try_get(1).map_err(db_err)?;
                Ok((state, n))
            },
        )
        .await?;
        Ok(counts
            .into_iter()
            .filter_map(|(state, n)| Some((JobState::parse(&state)?, n as u64)))
            .collect())
    }
}
