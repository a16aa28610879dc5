//! Jobs: the queue, leases, inputs, results and progress.

use super::records::{check_collection, insert_record};
use super::*;

/// Whether a job is still `owner`'s to write.
fn owns_job(conn: &Connection, id: &str, owner: &str) -> StorageResult<()> {
    let held = query_opt(
        conn,
        "SELECT 1 FROM jobs WHERE id = ?1 AND lease_owner = ?2 AND state = 'running'",
        [id, owner],
        |_| Ok(()),
    )?;
    held.ok_or(StorageError::NotFound)
}

#[async_trait]
impl JobStore for SqliteStorage {
    async fn insert_job(
        &self,
        j: &JobRow,
        input: Option<&[u8]>,
        max_queued_bytes: i64,
    ) -> StorageResult<()> {
        let j = j.clone();
        let input = input.map(<[u8]>::to_vec);
        self.write(move |conn| {
            if j.input_bytes > 0 {
                let queued = query_opt(
                    conn,
                    "SELECT COALESCE(SUM(input_bytes), 0) AS queued FROM jobs
                     WHERE token_id = ?1 AND state IN ('queued', 'running')",
                    [&j.token_id],
                    |r| col::<i64>(r, "queued"),
                )?
                .unwrap_or(0);
                if queued + j.input_bytes > max_queued_bytes {
                    return Err(StorageError::Conflict(Conflict::ImportQueueFull { queued }));
                }
            }
            execute(
                conn,
                "INSERT INTO jobs (id, kind, collection_id, collection, token_id, state, processed, total, input_bytes, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                params![
                    j.id,
                    j.kind,
                    j.collection_id,
                    j.collection,
                    j.token_id,
                    j.state.as_str(),
                    j.processed,
                    j.total,
                    j.input_bytes,
                    j.created_at,
                    j.updated_at
                ],
            )?;
            if let Some(data) = input {
                execute(
                    conn,
                    "INSERT INTO job_inputs (job_id, data) VALUES (?1, ?2)",
                    params![j.id, data],
                )?;
            }
            Ok(())
        })
        .await
    }

    async fn get_job(&self, id: &str) -> StorageResult<Option<JobRow>> {
        self.read(|conn| {
            query_opt(
                conn,
                concat!("SELECT ", job_columns!(), " FROM jobs WHERE id = ?1"),
                [id],
                job_from_row,
            )
        })
    }

    async fn job_input(&self, id: &str) -> StorageResult<Option<Vec<u8>>> {
        let id = id.to_owned();
        self.scan(move |conn| {
            query_opt(
                conn,
                "SELECT data FROM job_inputs WHERE job_id = ?1",
                [&id],
                |r| col(r, "data"),
            )
        })
        .await
    }

    async fn job_result(&self, id: &str, seq: i64) -> StorageResult<Option<Vec<u8>>> {
        let id = id.to_owned();
        self.scan(move |conn| {
            let kind = query_opt(conn, "SELECT kind FROM jobs WHERE id = ?1", [&id], |r| {
                col::<String>(r, "kind")
            })?;
            match kind.as_deref() {
                Some("export") => query_opt(
                    conn,
                    "SELECT data FROM job_results WHERE job_id = ?1 AND seq = ?2",
                    params![id, seq],
                    |r| col(r, "data"),
                ),
                Some(_) if seq == 0 => Ok(query_opt(
                    conn,
                    "SELECT result FROM jobs WHERE id = ?1",
                    [&id],
                    |r| col::<Option<Vec<u8>>>(r, "result"),
                )?
                .flatten()),
                _ => Ok(None),
            }
        })
        .await
    }

    async fn job_failures(&self, id: &str) -> StorageResult<Vec<LineFailure>> {
        let id = id.to_owned();
        self.scan(move |conn| {
            query_all(
                conn,
                "SELECT line, errors FROM job_failures WHERE job_id = ?1 ORDER BY line",
                [&id],
                |r| {
                    let errors: String = col(r, "errors")?;
                    Ok(LineFailure {
                        line: col(r, "line")?,
                        errors: parse_json(&errors)?,
                    })
                },
            )
        })
        .await
    }

    async fn claim_job(
        &self,
        owner: &str,
        now: i64,
        lease_until: i64,
        per_token: u32,
    ) -> StorageResult<Option<JobRow>> {
        // A read first: the worker polls every second, and an idle poll that
        // went to the writer cost a commit (an fsync) each time.
        let claimable = self.read(|conn| {
            query_opt(
                conn,
                "SELECT 1 FROM jobs WHERE state = 'queued' OR (state = 'running' AND lease_until < ?1) LIMIT 1",
                [now],
                |_| Ok(()),
            )
        })?;
        if claimable.is_none() {
            return Ok(None);
        }
        let owner = owner.to_owned();
        self.write(move |conn| {
            // One statement, on the one writer: two claimers never get one job.
            // Fair between tokens: the token with the fewest jobs running goes first.
            query_opt(
                conn,
                concat!(
                    "UPDATE jobs SET state = 'running', lease_owner = ?1, lease_until = ?2, updated_at = ?3
                     WHERE id = (SELECT w.id FROM jobs w
                                 WHERE (w.state = 'queued' OR (w.state = 'running' AND w.lease_until < ?3))
                                   AND (SELECT COUNT(*) FROM jobs r WHERE r.token_id = w.token_id
                                          AND r.state = 'running' AND r.lease_until >= ?3) < ?4
                                 ORDER BY (SELECT COUNT(*) FROM jobs r WHERE r.token_id = w.token_id
                                             AND r.state = 'running' AND r.lease_until >= ?3),
                                          w.created_at
                                 LIMIT 1)
                     RETURNING ",
                    job_columns!()
                ),
                params![owner, lease_until, now, per_token],
                job_from_row,
            )
        })
        .await
    }

    async fn job_progress(
        &self,
        id: &str,
        owner: &str,
        processed: i64,
        lease_until: i64,
        now: i64,
    ) -> StorageResult<()> {
        let (id, owner) = (id.to_owned(), owner.to_owned());
        self.write(move |conn| {
            let changed = execute(
                conn,
                "UPDATE jobs SET processed = ?1, lease_until = ?2, updated_at = ?3
                 WHERE id = ?4 AND lease_owner = ?5 AND state = 'running'",
                params![processed, lease_until, now, id, owner],
            )?;
            if changed == 0 {
                return Err(StorageError::NotFound);
            }
            Ok(())
        })
        .await
    }

    async fn export_chunk(&self, c: &ExportChunk<'_>) -> StorageResult<()> {
        let (id, owner, chunk) = (c.job_id.to_owned(), c.owner.to_owned(), c.chunk.to_vec());
        let (seq, processed, lease_until, now) = (c.seq, c.processed, c.lease_until, c.now);
        self.write(move |conn| {
            owns_job(conn, &id, &owner)?;
            if seq == 0 {
                execute(conn, "DELETE FROM job_results WHERE job_id = ?1", [&id])?;
            }
            execute(
                conn,
                "INSERT INTO job_results (job_id, seq, data) VALUES (?1, ?2, ?3)",
                params![id, seq, chunk],
            )?;
            execute(
                conn,
                "UPDATE jobs SET processed = ?1, lease_until = ?2, updated_at = ?3 WHERE id = ?4",
                params![processed, lease_until, now, id],
            )?;
            Ok(())
        })
        .await
    }

    async fn import_step(
        &self,
        step: &ImportStep,
        describe: DescribeConflict,
    ) -> StorageResult<()> {
        let step = step.clone();
        self.write(move |conn| {
            owns_job(conn, &step.job_id, &step.owner)?;
            check_collection(conn, step.collection.id, step.collection.version)?;
            let mut failures = step.failures.clone();
            let mut imported = 0;
            for (line, record) in &step.records {
                execute(conn, "SAVEPOINT line", [])?;
                match insert_record(conn, step.collection.id, record, &step.collection.unique) {
                    Ok(()) => {
                        imported += 1;
                        execute(conn, "RELEASE line", [])?;
                    }
                    Err(StorageError::Conflict(c)) => {
                        execute(conn, "ROLLBACK TO line", [])?;
                        execute(conn, "RELEASE line", [])?;
                        failures.push(LineFailure {
                            line: *line,
                            errors: describe(record, &c),
                        });
                    }
                    Err(e) => return Err(e),
                }
            }
            failures.sort_by_key(|f| f.line);
            let kept: i64 = query_opt(
                conn,
                "SELECT COUNT(*) AS n FROM job_failures WHERE job_id = ?1",
                [&step.job_id],
                |r| col(r, "n"),
            )?
            .unwrap_or(0);
            for f in failures
                .iter()
                .take((MAX_KEPT_FAILURES - kept).max(0) as usize)
            {
                execute(
                    conn,
                    "INSERT INTO job_failures (job_id, line, errors) VALUES (?1, ?2, ?3)
                     ON CONFLICT (job_id, line) DO NOTHING",
                    params![step.job_id, f.line, json_text(&f.errors)],
                )?;
            }
            execute(
                conn,
                "UPDATE jobs SET processed = ?1, imported = imported + ?2, failed = failed + ?3,
                   lease_until = ?4, updated_at = ?5 WHERE id = ?6",
                params![
                    step.processed,
                    imported,
                    failures.len() as i64,
                    step.lease_until,
                    step.now,
                    step.job_id
                ],
            )?;
            Ok(())
        })
        .await
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
        let (id, owner) = (id.to_owned(), owner.to_owned());
        let result = result.map(<[u8]>::to_vec);
        let error = error.map(str::to_owned);
        self.write(move |conn| {
            let changed = execute(
                conn,
                "UPDATE jobs SET state = ?1, result = ?2, error = ?3, updated_at = ?4, lease_until = NULL
                 WHERE id = ?5 AND lease_owner = ?6 AND state = 'running'",
                params![state.as_str(), result, error, now, id, owner],
            )?;
            if changed == 0 {
                return Err(StorageError::NotFound);
            }
            execute(conn, "DELETE FROM job_inputs WHERE job_id = ?1", [&id])?;
            Ok(())
        })
        .await
    }

    async fn cancel_job(&self, id: &str, now: i64) -> StorageResult<JobRow> {
        let id = id.to_owned();
        self.write(move |conn| {
            let cancelled = query_opt(
                conn,
                concat!(
                    "UPDATE jobs SET state = 'cancelled', updated_at = ?1
                     WHERE id = ?2 AND state IN ('queued', 'running') RETURNING ",
                    job_columns!()
                ),
                params![now, id],
                job_from_row,
            )?;
            if let Some(job) = cancelled {
                execute(conn, "DELETE FROM job_inputs WHERE job_id = ?1", [&id])?;
                execute(conn, "DELETE FROM job_results WHERE job_id = ?1", [&id])?;
                return Ok(job);
            }
            let exists = query_opt(conn, "SELECT 1 FROM jobs WHERE id = ?1", [&id], |_| Ok(()))?;
            Err(match exists {
                Some(()) => StorageError::Conflict(Conflict::JobFinished),
                None => StorageError::NotFound,
            })
        })
        .await
    }

    async fn purge_jobs(&self, before: i64) -> StorageResult<u64> {
        self.write(move |conn| {
            // Inputs, results and failures go by the foreign keys' cascade.
            execute(
                conn,
                "DELETE FROM jobs WHERE state IN ('succeeded', 'failed', 'cancelled') AND updated_at < ?1",
                [before],
            )
            .map(|n| n as u64)
        })
        .await
    }

    async fn delete_finished_job(&self, id: &str) -> StorageResult<()> {
        let id = id.to_owned();
        self.write(move |conn| {
            // Inputs, results and failures go by the foreign keys' cascade.
            let deleted = execute(
                conn,
                "DELETE FROM jobs WHERE id = ?1 AND state IN ('succeeded', 'failed', 'cancelled')",
                [&id],
            )?;
            if deleted > 0 {
                return Ok(());
            }
            let exists = query_opt(conn, "SELECT 1 FROM jobs WHERE id = ?1", [&id], |_| Ok(()))?;
            Err(match exists {
                Some(()) => StorageError::Conflict(Conflict::JobRunning),
                None => StorageError::NotFound,
            })
        })
        .await
    }

    async fn count_jobs(&self) -> StorageResult<Vec<(JobState, u64)>> {
        self.read(|conn| {
            let mut stmt = conn
                .prepare_cached("SELECT state, COUNT(*) FROM jobs GROUP BY state")
                .map_err(db_err)?;
            let rows = stmt
                .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
                .map_err(db_err)?;
            let mut out = Vec::new();
            for row in rows {
                let (state, n) = row.map_err(db_err)?;
                if let Some(state) = JobState::parse(&state) {
                    out.push((state, n as u64));
                }
            }
            Ok(out)
        })
    }
}
