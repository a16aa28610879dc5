//! Jobs: exports and NDJSON imports run in the background.
//!
//! `POST .../exports` and `POST .../imports` answer 202 with the monitor's
//! `Location`; `GET /v1/jobs/{id}` shows progress, then 303 to the result;
//! `DELETE` cancels a job that has not finished (409 once it has).
//!
//! Jobs live in storage, claimed under a lease that progress renews, so a job
//! whose runner died is claimed again: an export restarts, an import resumes
//! from its last saved line (lines without an id get the deterministic id
//! `{job}-{line}`, so a replayed line finds its own record instead of making a
//! second one). Nothing accepted is lost.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode, Uri};
use axum::response::IntoResponse;
use serde_json::{json, Value};
use verdict::auth::{Authenticated, Principal};
use verdict::ApiError;

use crate::collections::resolve;
use crate::fail::Reply;
use crate::records::{record_json, validate};
use crate::state::AppState;
use crate::storage::{Conflict, JobRow, JobState, RecordRow, StorageError};
use crate::time::{now_ms, rfc3339};
use crate::tokens::Grants;

/// How long a claim lasts without progress.
const LEASE: Duration = Duration::from_secs(10);
/// Lines (or records) between saved progress.
const STEP: usize = 200;

fn job_json(j: &JobRow) -> Value {
    json!({
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
    })
}

fn job_not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("The job identified by {id} could not be found."))
        .with_code("job_not_found")
        .with_title("Job not found")
}

async fn enqueue(
    st: &AppState,
    p: &Principal,
    collection: &str,
    kind: &str,
    input: Option<Vec<u8>>,
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
        collection: collection.to_string(),
        token_id: p.subject().to_string(),
        state: JobState::Queued,
        processed: 0,
        total,
        input,
        result: None,
        error: None,
        created_at: now,
        updated_at: now,
    };
    st.storage.insert_job(&job).await?;
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
    enqueue(&st, &p, &c.name, "export", None, None).await
}

/// `POST /v1/collections/{c}/imports`: an NDJSON body, one record a line.
pub async fn import(
    State(st): State<AppState>,
    Path(name): Path<String>,
    Authenticated(p): Authenticated,
    uri: Uri,
    body: Bytes,
) -> Reply {
    let c = resolve(&st, &name, &uri).await?;
    let lines = body
        .split(|b| *b == b'\n')
        .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
        .count();
    enqueue(
        &st,
        &p,
        &c.name,
        "import",
        Some(body.to_vec()),
        Some(lines as i64),
    )
    .await
}

/// The job, if this principal may see it (grants apply to its collection).
async fn visible_job(st: &AppState, p: &Principal, id: &str) -> Result<JobRow, crate::fail::Fail> {
    let job = st
        .storage
        .get_job(id)
        .await?
        .ok_or_else(|| job_not_found(id))?;
    let granted = p
        .extension::<Grants>()
        .and_then(|g| g.collections.as_ref())
        .is_none_or(|g| g.contains(&job.collection));
    if !granted && !p.has_scope("admin") {
        return Err(ApiError::forbidden(format!(
            "This token has no grant for the collection `{}`.",
            job.collection
        ))
        .with_code("collection_not_granted")
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

/// `GET /v1/jobs/{id}/result`.
pub async fn result(
    State(st): State<AppState>,
    Path(id): Path<String>,
    Authenticated(p): Authenticated,
) -> Reply {
    let job = visible_job(&st, &p, &id).await?;
    match (job.state, job.result) {
        (JobState::Succeeded, Some(result)) => Ok(axum::Json(result).into_response()),
        _ => Err(ApiError::not_found(format!(
            "The job {id} has no result: it is {}.",
            job.state.as_str()
        ))
        .with_code("job_result_not_ready")
        .with_title("No result yet")
        .into()),
    }
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

/// Runs jobs until the process ends: claims one, runs it, repeats; sleeps
/// until notified (or a second passes, to take over expired leases).
pub fn spawn_worker(st: AppState) -> tokio::task::JoinHandle<()> {
    let owner = uuid::Uuid::new_v4().simple().to_string();
    tokio::spawn(async move {
        loop {
            let now = now_ms();
            match st
                .storage
                .claim_job(&owner, now, now + LEASE.as_millis() as i64)
                .await
            {
                Ok(Some(job)) => {
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
                    continue;
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "cannot claim jobs"),
            }
            let _ = tokio::time::timeout(Duration::from_secs(1), st.jobs.notified()).await;
        }
    })
}

enum Outcome {
    Done(Value),
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
    tracing::warn!(job = %job.id, error = %e, "job failed on storage");
    Outcome::Failed("the storage failed while the job ran; start it again".into())
}

/// Saves progress; `false` when the job was cancelled or taken over.
async fn progress(
    st: &AppState,
    owner: &str,
    job: &JobRow,
    processed: usize,
    total: Option<i64>,
) -> bool {
    let now = now_ms();
    st.storage
        .job_progress(
            &job.id,
            owner,
            processed as i64,
            total,
            now + LEASE.as_millis() as i64,
            now,
        )
        .await
        .is_ok()
}

async fn run_export(st: &AppState, owner: &str, job: &JobRow) -> Outcome {
    let mut records = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = match st
            .storage
            .list_records(&job.collection, after.as_deref(), STEP as u32, &[])
            .await
        {
            Ok(p) => p,
            Err(e) => return failed_on_storage(job, e),
        };
        let last = page.last().map(|r| r.id.clone());
        records.extend(
            page.iter()
                .map(|r| serde_json::to_value(record_json(r)).expect("records serialize")),
        );
        if !progress(st, owner, job, records.len(), None).await {
            return Outcome::Stopped;
        }
        match last {
            Some(id) if page.len() == STEP => after = Some(id),
            _ => break,
        }
    }
    Outcome::Done(json!({"collection": job.collection, "count": records.len(), "records": records}))
}

async fn run_import(st: &AppState, owner: &str, job: &JobRow) -> Outcome {
    let Some(input) = &job.input else {
        return Outcome::Failed("the import's input is gone".into());
    };
    let collection = match st.storage.get_collection(&job.collection).await {
        Ok(Some(c)) => c,
        Ok(None) => {
            return Outcome::Failed(format!(
                "the collection {} no longer exists",
                job.collection
            ))
        }
        Err(e) => return failed_on_storage(job, e),
    };
    let lines: Vec<&[u8]> = input
        .split(|b| *b == b'\n')
        .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
        .collect();
    let total = Some(lines.len() as i64);
    let mut failed: Vec<Value> = Vec::new();
    let mut imported = 0usize;
    // Resume after the last saved progress; lines before it were imported.
    let start = (job.processed.max(0) as usize).min(lines.len());
    for (i, line) in lines.iter().enumerate().skip(start) {
        match import_line(st, &collection, job, i, line).await {
            Ok(()) => imported += 1,
            Err(errors) => failed.push(json!({"line": i + 1, "errors": errors})),
        }
        if (i + 1) % STEP == 0 && !progress(st, owner, job, i + 1, total).await {
            return Outcome::Stopped;
        }
    }
    if !progress(st, owner, job, lines.len(), total).await {
        return Outcome::Stopped;
    }
    Outcome::Done(json!({
        "collection": job.collection,
        "lines": lines.len(),
        "imported": imported + start,
        "failed": failed,
    }))
}

/// Imports one line; the errors say what is wrong with it.
async fn import_line(
    st: &AppState,
    collection: &crate::storage::CollectionRow,
    job: &JobRow,
    index: usize,
    line: &[u8],
) -> Result<(), Vec<Value>> {
    let one = |pointer: &str, detail: String| vec![json!({"pointer": pointer, "detail": detail})];
    let value: Value =
        serde_json::from_slice(line).map_err(|e| one("", format!("not valid JSON: {e}")))?;
    let Value::Object(mut data) = value else {
        return Err(one("", "must be a JSON object".into()));
    };
    let id = match data.remove("id") {
        None | Some(Value::Null) => format!("{}-{}", job.id, index + 1),
        Some(Value::String(s)) if crate::records::valid_id(&s) => s,
        Some(_) => return Err(one("/id", crate::records::ID_RULE.into())),
    };
    data.remove("created_at");
    data.remove("updated_at");
    if let Err(e) = validate(st, collection, &data) {
        return Err(e
            .field_errors()
            .iter()
            .map(|f| json!({"pointer": f.pointer, "detail": f.detail}))
            .collect());
    }
    let now = now_ms();
    let row = RecordRow {
        id: id.clone(),
        data: data.clone(),
        version: 1,
        created_at: now,
        updated_at: now,
    };
    match st.storage.create_record(collection, &row).await {
        Ok(()) => Ok(()),
        // A replayed line after a resume finds the record it made.
        Err(StorageError::Conflict(Conflict::RecordExists)) => {
            match st.storage.get_record(&collection.name, &id).await {
                Ok(Some(existing)) if existing.data == data => Ok(()),
                _ => Err(one(
                    "/id",
                    format!("a record with the id {id} already exists"),
                )),
            }
        }
        Err(StorageError::Conflict(Conflict::Unique { field })) => Err(one(
            &format!("/{field}"),
            "another record already has this value".into(),
        )),
        Err(e) => {
            // The cause goes to the log; the client reads that the line failed.
            tracing::warn!(job = %job.id, line = index + 1, error = %e, "import line not stored");
            Err(one("", "could not be stored; retry the import".into()))
        }
    }
}
