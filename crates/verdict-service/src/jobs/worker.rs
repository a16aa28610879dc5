//! The job worker: exports and NDJSON imports run in the background (their
//! HTTP side is the handlers' `jobs` module).
//!
//! Jobs live in storage, claimed under a lease that progress renews, so a job
//! whose runner died is claimed again: an export restarts, an import resumes
//! after its last committed step. Each import step commits its records, its
//! failed lines and the job's progress in one transaction, so a resumed
//! import neither loses nor repeats a line, and its report is exact. Lines
//! without an `id` get `{job}-{line}`.
//!
//! Bounds: at most `--job-workers` jobs run at once, one token's at most all
//! but one of them (so another token's job always finds a worker), and the
//! next one goes to the token with the fewest running; a token's queued import inputs are capped
//! (`--max-queued-import-bytes`); a monitor reads the job's state, never its
//! input or result; an export's records are stored and served in chunks, as
//! they were written, without being parsed again.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Map, Value};
use verdict::ApiError;

use crate::model::imports::{line_count, numbered_lines};
use crate::model::records::{record_json, valid_id, ID_RULE, MAX_PAGE_BYTES};
use crate::model::time::{now_ms, parse_rfc3339};
use crate::state::AppState;
use crate::storage::{
    CollectionRow, Conflict, ExportChunk, ImportStep, JobRow, JobState, LineFailure, ListRequest,
    RecordRow, SortKey, StorageError,
};

/// How long a claim lasts without progress.
const LEASE: Duration = Duration::from_secs(10);
/// Lines (or records) a step takes between saved progress.
const STEP: usize = 200;
/// Runs jobs until the process ends: up to `--job-workers` at once, claiming
/// the next when one ends; between claims it sleeps until notified (or a
/// second passes, to take over expired leases).
pub fn spawn_worker(st: AppState) -> tokio::task::JoinHandle<()> {
    let owner = uuid::Uuid::new_v4().simple().to_string();
    let workers = u32::from(st.config.job_workers);
    // One token may hold every worker but one: another token's job never waits
    // for a long one to finish.
    let per_token = workers.saturating_sub(1).max(1);
    let slots = Arc::new(tokio::sync::Semaphore::new(workers as usize));
    tokio::spawn(async move {
        loop {
            let Ok(permit) = slots.clone().acquire_owned().await else {
                return;
            };
            let now = now_ms();
            match st
                .storage
                .jobs
                .claim_job(&owner, now, now + LEASE.as_millis() as i64, per_token)
                .await
            {
                Ok(Some(job)) => {
                    let (st, owner) = (st.clone(), owner.clone());
                    tokio::spawn(async move {
                        let id = job.id.clone();
                        let run = tokio::spawn(run(st.clone(), owner.clone(), job));
                        if let Err(e) = run.await {
                            // A panic in a job fails that job, not the worker.
                            tracing::error!(job = %id, error = %e, "job runner panicked");
                            let _ = st
                                .storage
                                .jobs
                                .finish_job(
                                    &id,
                                    &owner,
                                    JobState::Failed,
                                    None,
                                    Some("internal error"),
                                    now_ms(),
                                )
                                .await;
                        }
                        drop(permit);
                        // A slot is free: look for the next job at once.
                        st.jobs.notify_one();
                    });
                    continue;
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "cannot claim jobs"),
            }
            drop(permit);
            let _ = tokio::time::timeout(Duration::from_secs(1), st.jobs.notified()).await;
        }
    })
}

enum Outcome {
    Done(Vec<u8>),
    Failed(String),
    /// Cancelled or taken over: stop without writing.
    Stopped,
}

/// Counts a job that ended here, and how long it ran.
fn job_metrics(kind: &str, state: &'static str, started: std::time::Instant) {
    // Bounded labels: the two kinds the service makes.
    let kind = if kind == "export" { "export" } else { "import" };
    metrics::counter!("verdict_jobs_finished_total", "kind" => kind, "state" => state).increment(1);
    metrics::histogram!("verdict_job_duration_seconds", "kind" => kind)
        .record(started.elapsed().as_secs_f64());
}

async fn run(st: AppState, owner: String, job: JobRow) {
    let started = std::time::Instant::now();
    if job.processed > 0 {
        // Claimed again after its runner died (or this process restarted).
        tracing::info!(job = %job.id, kind = %job.kind, collection = %job.collection,
            token = %job.token_id, after_line = job.processed, "job resumed");
    } else {
        tracing::info!(job = %job.id, kind = %job.kind, collection = %job.collection,
            token = %job.token_id, "job started");
    }
    let outcome = match job.kind.as_str() {
        "export" => run_export(&st, &owner, &job).await,
        "import" => run_import(&st, &owner, &job).await,
        other => Outcome::Failed(format!("unknown job kind {other}")),
    };
    let now = now_ms();
    let r = match outcome {
        Outcome::Done(result) => {
            tracing::info!(job = %job.id, kind = %job.kind,
                duration_ms = started.elapsed().as_millis() as u64, "job succeeded");
            job_metrics(&job.kind, "succeeded", started);
            st.storage
                .jobs
                .finish_job(
                    &job.id,
                    &owner,
                    JobState::Succeeded,
                    Some(&result),
                    None,
                    now,
                )
                .await
        }
        Outcome::Failed(why) => {
            tracing::warn!(job = %job.id, kind = %job.kind, reason = %why,
                duration_ms = started.elapsed().as_millis() as u64, "job failed");
            job_metrics(&job.kind, "failed", started);
            st.storage
                .jobs
                .finish_job(&job.id, &owner, JobState::Failed, None, Some(&why), now)
                .await
        }
        Outcome::Stopped => {
            tracing::info!(job = %job.id, kind = %job.kind, "job stopped (cancelled or taken over)");
            Ok(())
        }
    };
    if let Err(e) = r {
        tracing::info!(job = %job.id, error = %e, "job finished elsewhere or was cancelled");
    }
}

/// A job that storage failed: the cause in the log, a plain reason in the job.
fn failed_on_storage(job: &JobRow, e: StorageError) -> Outcome {
    match e {
        // Cancelled, taken over, or its collection deleted (which says so itself).
        StorageError::NotFound => Outcome::Stopped,
        StorageError::CollectionGone => {
            Outcome::Failed("the collection was deleted while the job was running".into())
        }
        e => {
            tracing::warn!(job = %job.id, error = %e, "job failed on storage");
            Outcome::Failed("the storage failed while the job ran; start it again".into())
        }
    }
}

fn lease_until() -> i64 {
    now_ms() + LEASE.as_millis() as i64
}

/// The job's collection as it is now.
async fn collection_of(st: &AppState, job: &JobRow) -> Result<CollectionRow, Outcome> {
    let gone = || Outcome::Failed("the collection was deleted".into());
    let id = job.collection_id.ok_or_else(gone)?;
    match st.storage.collections.get_collection_by_id(id).await {
        Ok(Some(c)) => Ok(c),
        Ok(None) => Err(gone()),
        Err(e) => Err(failed_on_storage(job, e)),
    }
}

async fn run_export(st: &AppState, owner: &str, job: &JobRow) -> Outcome {
    let c = match collection_of(st, job).await {
        Ok(c) => c,
        Err(outcome) => return outcome,
    };
    let mut after: Option<[serde_json::Value; 1]> = None;
    let mut count = 0i64;
    for seq in 0.. {
        let page = match st
            .storage
            .records
            .list_records(
                c.id,
                &ListRequest {
                    filters: &[],
                    sort: &[SortKey::BY_ID],
                    after: after.as_ref().map(|a| a.as_slice()),
                    limit: STEP as u32,
                    max_bytes: MAX_PAGE_BYTES,
                },
            )
            .await
        {
            Ok(p) => p,
            Err(e) => return failed_on_storage(job, e),
        };
        // Records as they are served, comma-separated: the result is these
        // chunks joined, never parsed again.
        let mut chunk = Vec::new();
        for (i, r) in page.rows.iter().enumerate() {
            if i > 0 {
                chunk.push(b',');
            }
            serde_json::to_writer(&mut chunk, &record_json(r)).expect("records serialize");
        }
        count += page.rows.len() as i64;
        let step = ExportChunk {
            job_id: &job.id,
            owner,
            seq,
            chunk: &chunk,
            processed: count,
            lease_until: lease_until(),
            now: now_ms(),
        };
        if let Err(e) = st.storage.jobs.export_chunk(&step).await {
            return failed_on_storage(job, e);
        }
        match page.rows.last() {
            Some(last) if page.rows.len() == STEP || page.cut_short => {
                after = Some([serde_json::Value::String(last.id.clone())])
            }
            _ => break,
        }
    }
    Outcome::Done(
        serde_json::to_vec(&json!({"collection": c.name, "count": count}))
            .expect("values serialize"),
    )
}

/// One line's record (its id and data), or what is wrong with it.
/// A line's record: its id, data, and the times an export wrote (if any).
type ParsedLine = Result<(String, Map<String, Value>, Times), Value>;

/// `created_at` and `updated_at` as a line gave them (unix ms).
#[derive(Clone, Copy, Debug, Default)]
struct Times {
    created: Option<i64>,
    updated: Option<i64>,
}

/// One line's record, or what is wrong with it (before storage).
fn parse_line(job: &JobRow, line: i64, text: &[u8]) -> ParsedLine {
    let one = |pointer: &str, detail: String| json!([{"pointer": pointer, "detail": detail}]);
    let value = verdict::extract::parse_value(text).map_err(|e| problem_errors(&e))?;
    let Value::Object(mut data) = value else {
        return Err(one("", "must be a JSON object".into()));
    };
    let id = match data.remove("id") {
        None | Some(Value::Null) => format!("{}-{line}", job.id),
        Some(Value::String(s)) if valid_id(&s) => s,
        Some(_) => return Err(one("/id", ID_RULE.into())),
    };
    // An export's lines carry the records' times: an import of them keeps
    // those, so export -> import reproduces a collection.
    let mut time = |field: &str| match data.remove(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(t)) => parse_rfc3339(&t).map(Some).ok_or(()),
        Some(_) => Err(()),
    };
    let times = match (time("created_at"), time("updated_at")) {
        (Ok(created), Ok(updated)) => Times { created, updated },
        (Err(()), _) => return Err(one("/created_at", "must be an RFC 3339 time".into())),
        (_, Err(())) => return Err(one("/updated_at", "must be an RFC 3339 time".into())),
    };
    Ok((id, data, times))
}

/// An error's failing fields as `[{pointer, detail}]` (its detail if it names none).
fn problem_errors(e: &ApiError) -> Value {
    if e.field_errors().is_empty() {
        json!([{"pointer": "", "detail": e.detail()}])
    } else {
        Value::Array(
            e.field_errors()
                .iter()
                .map(|f| json!({"pointer": f.pointer, "detail": f.detail}))
                .collect(),
        )
    }
}

/// What a line that storage refused gets in the report.
fn describe_conflict(r: &RecordRow, c: &Conflict) -> Value {
    match c {
        Conflict::Unique { field } => json!([{
            "pointer": format!("/{}", field.replace('~', "~0").replace('/', "~1")),
            "detail": "another record already has this value",
        }]),
        Conflict::RecordExists => json!([{
            "pointer": "/id",
            "detail": format!("a record with the id {} already exists", r.id),
        }]),
        other => json!([{"pointer": "", "detail": format!("could not be stored: {other:?}")}]),
    }
}

async fn run_import(st: &AppState, owner: &str, job: &JobRow) -> Outcome {
    let input = match st.storage.jobs.job_input(&job.id).await {
        Ok(Some(input)) => input,
        Ok(None) => return Outcome::Failed("the import's input is gone".into()),
        Err(e) => return failed_on_storage(job, e),
    };
    let mut c = match collection_of(st, job).await {
        Ok(c) => c,
        Err(outcome) => return outcome,
    };
    // Resume after the last committed step: `processed` counts input lines.
    let lines: Vec<(i64, &[u8])> = numbered_lines(&input)
        .filter(|(n, _)| *n > job.processed)
        .collect();
    let last_line = line_count(&input);
    let steps: Vec<&[(i64, &[u8])]> = lines.chunks(STEP).collect();
    for (k, step_lines) in steps.iter().enumerate() {
        let parsed: Vec<(i64, ParsedLine)> = step_lines
            .iter()
            .map(|(n, text)| (*n, parse_line(job, *n, text)))
            .collect();
        // The last step takes the input's trailing blank lines with it.
        let processed = if k + 1 == steps.len() {
            last_line
        } else {
            step_lines.last().map_or(job.processed, |(n, _)| *n)
        };
        // Checked against the collection as it is; again if it changes meanwhile.
        let mut committed = false;
        for _ in 0..crate::model::records::WRITE_ATTEMPTS {
            let mut step = ImportStep {
                job_id: job.id.clone(),
                owner: owner.to_string(),
                collection: c.clone(),
                records: Vec::new(),
                failures: Vec::new(),
                processed,
                lease_until: 0,
                now: 0,
            };
            for (line, outcome) in &parsed {
                match outcome {
                    Err(errors) => step.failures.push(LineFailure {
                        line: *line,
                        errors: errors.clone(),
                    }),
                    Ok((id, data, times)) => match st.schemas.validate(&c, data.clone()).await {
                        Err(e) => step.failures.push(LineFailure {
                            line: *line,
                            errors: problem_errors(&e),
                        }),
                        Ok(data) => {
                            let now = now_ms();
                            let created_at = times.created.unwrap_or(now);
                            let updated_at = times.updated.unwrap_or(now).max(created_at);
                            step.records.push((
                                *line,
                                RecordRow {
                                    id: id.clone(),
                                    data,
                                    version: 1,
                                    created_at,
                                    updated_at,
                                },
                            ));
                        }
                    },
                }
            }
            step.lease_until = lease_until();
            step.now = now_ms();
            match st.storage.jobs.import_step(&step, describe_conflict).await {
                Ok(()) => {
                    committed = true;
                    break;
                }
                Err(StorageError::CollectionChanged) => {
                    st.storage.collections.stale(&c.name);
                    match collection_of(st, job).await {
                        Ok(now) => c = now,
                        Err(outcome) => return outcome,
                    }
                }
                Err(e) => return failed_on_storage(job, e),
            }
        }
        if !committed {
            return Outcome::Failed("the collection kept changing while the import ran".into());
        }
        // Milestones at each quarter of the input, not at every step.
        let quarter = |line: i64| (line * 4) / last_line.max(1);
        let before = step_lines.first().map_or(job.processed, |(n, _)| n - 1);
        if quarter(processed) > quarter(before) && processed < last_line {
            tracing::info!(job = %job.id, processed, of = last_line, "import progress");
        }
    }
    if lines.is_empty() {
        if let Err(e) = st
            .storage
            .jobs
            .job_progress(&job.id, owner, last_line, lease_until(), now_ms())
            .await
        {
            return failed_on_storage(job, e);
        }
    }
    let (done, failures) = match (
        st.storage.jobs.get_job(&job.id).await,
        st.storage.jobs.job_failures(&job.id).await,
    ) {
        (Ok(Some(done)), Ok(failures)) => (done, failures),
        (Err(e), _) | (_, Err(e)) => return failed_on_storage(job, e),
        (Ok(None), _) => return Outcome::Stopped,
    };
    let failed: Vec<Value> = failures
        .iter()
        .map(|f| json!({"line": f.line, "errors": f.errors}))
        .collect();
    Outcome::Done(
        serde_json::to_vec(&json!({
            "collection": c.name,
            "lines": numbered_lines(&input).count(),
            "imported": done.imported,
            "failed_count": done.failed,
            "failed": failed,
            "failed_truncated": (failed.len() as i64) < done.failed,
        }))
        .expect("values serialize"),
    )
}
