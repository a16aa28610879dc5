//! Jobs: exports and NDJSON imports run in the background.
//!
//! `POST .../exports` and `POST .../imports` answer 202 with the monitor's
//! `Location`; `GET /v1/jobs/{id}` shows progress, then 303 to the result;
//! `DELETE` cancels a job that has not finished (409 once it has).
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

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{json, Map, Value};
use verdict::auth::{Authenticated, Principal};
use verdict::extract::RawBody;
use verdict::ApiError;

use crate::collections::resolve;
use crate::fail::{Fail, Reply};
use crate::records::{record_json, valid_id, ID_RULE, MAX_PAGE_BYTES};
use crate::state::AppState;
use crate::storage::{
    CollectionRow, Conflict, ExportChunk, ImportStep, JobRow, JobState, LineFailure, RecordRow,
    StorageError,
};
use crate::time::{now_ms, rfc3339};
use crate::tokens::Grants;

/// How long a claim lasts without progress.
const LEASE: Duration = Duration::from_secs(10);
/// Lines (or records) a step takes between saved progress.
const STEP: usize = 200;

fn job_json(j: &JobRow) -> Value {
    let mut out = json!({
        "id": j.id,
        "kind": j.kind,
        "collection": j.collection,
        "state": j.state.as_str(),
        "processed": j.processed,
        "total": j.total,
        "error": j.error,
        "created_at": rfc3339(j.created_at),
        "updated_at": rfc3339(j.updated_at),
        "monitor": format!("/v1/jobs/{}", j.id),
        "result": j.state.eq(&JobState::Succeeded).then(|| format!("/v1/jobs/{}/result", j.id)),
    });
    if j.kind == "import" {
        out["imported"] = json!(j.imported);
        out["failed"] = json!(j.failed);
    }
    out
}

fn job_not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("The job identified by {id} could not be found."))
        .with_code("job_not_found")
        .with_title("Job not found")
}

async fn enqueue(
    st: &AppState,
    p: &Principal,
    collection: &CollectionRow,
    kind: &str,
    input: Option<Bytes>,
    total: Option<i64>,
) -> Reply {
    // The resource's own budget: 429 under every preset (seed-001's 429).
    if let Some(quota) = st.config.job_rate_limit.0 {
        let d = st
            .shared
            .rate(&format!("jobs:{}", p.subject()), quota)
            .await?;
        if !d.allowed {
            let e = ApiError::resource_rate_limited(
                verdict::headers::RetryAfter::from_duration(d.retry_after),
                format!(
                    "This token may start {} jobs per {} seconds; retry after the delay given.",
                    quota.requests,
                    quota.per.as_secs()
                ),
            );
            return Err(d.annotate(e).into());
        }
    }
    let now = now_ms();
    let job = JobRow {
        id: uuid::Uuid::now_v7().simple().to_string(),
        kind: kind.to_string(),
        collection_id: Some(collection.id),
        collection: collection.name.clone(),
        token_id: p.subject().to_string(),
        state: JobState::Queued,
        processed: 0,
        total,
        imported: 0,
        failed: 0,
        input_bytes: input.as_ref().map_or(0, |i| i.len() as i64),
        error: None,
        created_at: now,
        updated_at: now,
    };
    st.storage
        .insert_job(
            &job,
            input.as_deref(),
            st.config.max_queued_import_bytes as i64,
        )
        .await?;
    st.jobs.notify_one();
    Ok((
        StatusCode::ACCEPTED,
        [(
            header::LOCATION,
            HeaderValue::from_str(&format!("/v1/jobs/{}", job.id)).expect("uuid"),
        )],
        axum::Json(job_json(&job)),
    )
        .into_response())
}

/// `POST /v1/collections/{c}/exports`.
pub async fn export(
    State(st): State<AppState>,
    Path(name): Path<String>,
    Authenticated(p): Authenticated,
    uri: Uri,
) -> Reply {
    let c = resolve(&st, &name, &uri).await?;
    enqueue(&st, &p, &c, "export", None, None).await
}

/// How many lines the input has, as an editor counts them (a final newline
/// ends the last line; it does not start another).
fn line_count(input: &[u8]) -> i64 {
    let pieces = input.split(|b| *b == b'\n').count() as i64;
    if input.ends_with(b"\n") {
        pieces - 1
    } else {
        pieces
    }
}

/// The input's lines, numbered from 1 as a text editor numbers them (blank
/// ones counted), without the blank ones.
fn numbered_lines(input: &[u8]) -> impl Iterator<Item = (i64, &[u8])> {
    input
        .split(|b| *b == b'\n')
        .enumerate()
        .map(|(i, l)| (i as i64 + 1, l))
        .filter(|(_, l)| !l.iter().all(u8::is_ascii_whitespace))
}

/// `POST /v1/collections/{c}/imports`: an NDJSON body, one record a line.
pub async fn import(
    State(st): State<AppState>,
    Path(name): Path<String>,
    Authenticated(p): Authenticated,
    uri: Uri,
    RawBody(body): RawBody,
) -> Reply {
    let c = resolve(&st, &name, &uri).await?;
    // Progress counts the input's lines, blank ones included.
    let lines = line_count(&body);
    enqueue(&st, &p, &c, "import", Some(body), Some(lines)).await
}

/// The job, if this principal may see it: its collection must be granted
/// (a job whose collection was deleted is its creator's and admins' only).
async fn visible_job(st: &AppState, p: &Principal, id: &str) -> Result<JobRow, Fail> {
    let job = st
        .storage
        .get_job(id)
        .await?
        .ok_or_else(|| job_not_found(id))?;
    if p.has_scope("admin") {
        return Ok(job);
    }
    let grants = p.extension::<Grants>();
    let granted = match job.collection_id {
        Some(cid) => grants.is_none_or(|g| g.allows(cid)),
        None => job.token_id == p.subject(),
    };
    if !granted {
        return Err(ApiError::forbidden(format!(
            "This token has no grant for the collection `{}`.",
            job.collection
        ))
        .with_code("collection_not_granted")
        .with_title("Collection not granted")
        .into());
    }
    Ok(job)
}

/// `GET /v1/jobs/{id}`: 200 while it runs (or failed, or was cancelled); 303 to the result once done.
pub async fn show(
    State(st): State<AppState>,
    Path(id): Path<String>,
    Authenticated(p): Authenticated,
) -> Reply {
    let job = visible_job(&st, &p, &id).await?;
    if job.state == JobState::Succeeded && st.preset.allows(StatusCode::SEE_OTHER) {
        return Ok((
            StatusCode::SEE_OTHER,
            [(
                header::LOCATION,
                HeaderValue::from_str(&format!("/v1/jobs/{id}/result")).expect("uuid"),
            )],
            axum::Json(job_json(&job)),
        )
            .into_response());
    }
    Ok(axum::Json(job_json(&job)).into_response())
}

/// `GET /v1/jobs/{id}/result`: an import's report, or an export's records,
/// streamed chunk by chunk as they were stored.
pub async fn result(
    State(st): State<AppState>,
    Path(id): Path<String>,
    Authenticated(p): Authenticated,
) -> Reply {
    let job = visible_job(&st, &p, &id).await?;
    let document = match job.state {
        JobState::Succeeded => st.storage.job_result(&id, 0).await?,
        _ => None,
    };
    let not_ready = || -> Fail {
        ApiError::not_found(format!(
            "The job {id} has no result: it is {}.",
            job.state.as_str()
        ))
        .with_code("job_result_not_ready")
        .with_title("No result yet")
        .into()
    };
    let body = match (job.kind.as_str(), document) {
        ("export", Some(first)) => export_body(st, job, first),
        (_, Some(doc)) => Body::from(doc),
        (_, None) if job.kind == "export" && job.state == JobState::Succeeded => {
            export_body(st, job, Vec::new())
        }
        _ => return Err(not_ready()),
    };
    Ok(Response::builder()
        .header(header::CONTENT_TYPE, "application/json")
        .body(body)
        .map_err(ApiError::internal)?)
}

/// `{"collection", "count", "records": [...]}` with the records read chunk by chunk.
fn export_body(st: AppState, job: JobRow, first: Vec<u8>) -> Body {
    let head = format!(
        "{{\"collection\":{},\"count\":{},\"records\":[",
        Value::String(job.collection.clone()),
        job.processed
    );
    struct Cursor {
        st: AppState,
        id: String,
        next: i64,
        first: Option<Vec<u8>>,
        wrote_any: bool,
        done: bool,
    }
    let cursor = Cursor {
        st,
        id: job.id,
        next: 1,
        first: Some(first),
        wrote_any: false,
        done: false,
    };
    let chunks = futures_util::stream::unfold(cursor, |mut c| async move {
        if c.done {
            return None;
        }
        let chunk = match c.first.take() {
            Some(first) => Some(first),
            None => {
                let seq = c.next;
                c.next += 1;
                match c.st.storage.job_result(&c.id, seq).await {
                    Ok(chunk) => chunk,
                    Err(e) => return Some((Err(std::io::Error::other(e.to_string())), c)),
                }
            }
        };
        let Some(chunk) = chunk else {
            c.done = true;
            return Some((Ok(Bytes::from_static(b"]}")), c));
        };
        let mut out = Vec::with_capacity(chunk.len() + 1);
        if !chunk.is_empty() {
            if c.wrote_any {
                out.push(b',');
            }
            c.wrote_any = true;
            out.extend_from_slice(&chunk);
        }
        Some((Ok(Bytes::from(out)), c))
    });
    let head = futures_util::stream::once(async move { Ok(Bytes::from(head)) });
    Body::from_stream(futures_util::StreamExt::chain(head, chunks))
}

/// `DELETE /v1/jobs/{id}`: cancel.
pub async fn cancel(
    State(st): State<AppState>,
    Path(id): Path<String>,
    Authenticated(p): Authenticated,
) -> Reply {
    visible_job(&st, &p, &id).await?;
    match st.storage.cancel_job(&id, now_ms()).await {
        Ok(_) => Ok(StatusCode::NO_CONTENT.into_response()),
        Err(StorageError::NotFound) => Err(job_not_found(&id).into()),
        Err(e) => Err(e.into()),
    }
}

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

async fn run(st: AppState, owner: String, job: JobRow) {
    let outcome = match job.kind.as_str() {
        "export" => run_export(&st, &owner, &job).await,
        "import" => run_import(&st, &owner, &job).await,
        other => Outcome::Failed(format!("unknown job kind {other}")),
    };
    let now = now_ms();
    let r = match outcome {
        Outcome::Done(result) => {
            st.storage
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
            st.storage
                .finish_job(&job.id, &owner, JobState::Failed, None, Some(&why), now)
                .await
        }
        Outcome::Stopped => Ok(()),
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
    match st.storage.get_collection_by_id(id).await {
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
    let mut after: Option<String> = None;
    let mut count = 0i64;
    for seq in 0.. {
        let page = match st
            .storage
            .list_records(c.id, after.as_deref(), STEP as u32, &[], MAX_PAGE_BYTES)
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
        if let Err(e) = st.storage.export_chunk(&step).await {
            return failed_on_storage(job, e);
        }
        match page.rows.last() {
            Some(last) if page.rows.len() == STEP || page.cut_short => {
                after = Some(last.id.clone())
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
type ParsedLine = Result<(String, Map<String, Value>), Value>;

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
    data.remove("created_at");
    data.remove("updated_at");
    Ok((id, data))
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
    let input = match st.storage.job_input(&job.id).await {
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
        for _ in 0..crate::records::WRITE_ATTEMPTS {
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
                    Ok((id, data)) => match st.schemas.validate(&c, data.clone()).await {
                        Err(e) => step.failures.push(LineFailure {
                            line: *line,
                            errors: problem_errors(&e),
                        }),
                        Ok(data) => {
                            let now = now_ms();
                            step.records.push((
                                *line,
                                RecordRow {
                                    id: id.clone(),
                                    data,
                                    version: 1,
                                    created_at: now,
                                    updated_at: now,
                                },
                            ));
                        }
                    },
                }
            }
            step.lease_until = lease_until();
            step.now = now_ms();
            match st.storage.import_step(&step, describe_conflict).await {
                Ok(()) => {
                    committed = true;
                    break;
                }
                Err(StorageError::CollectionChanged) => match collection_of(st, job).await {
                    Ok(now) => c = now,
                    Err(outcome) => return outcome,
                },
                Err(e) => return failed_on_storage(job, e),
            }
        }
        if !committed {
            return Outcome::Failed("the collection kept changing while the import ran".into());
        }
    }
    if lines.is_empty() {
        if let Err(e) = st
            .storage
            .job_progress(&job.id, owner, last_line, lease_until(), now_ms())
            .await
        {
            return failed_on_storage(job, e);
        }
    }
    let (done, failures) = match (
        st.storage.get_job(&job.id).await,
        st.storage.job_failures(&job.id).await,
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
