//! The jobs' HTTP side: `POST .../exports` and `POST .../imports` answer 202
//! with the monitor's `Location`; `GET /v1/jobs/{id}` shows progress, then
//! 303 to the result; `DELETE` cancels a job that has not finished (409 once
//! it has). The worker that runs them is the `jobs` module.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use bytes::Bytes;
use serde_json::{json, Value};
use verdict::auth::{Authenticated, Principal};
use verdict::extract::RawBody;
use verdict::negotiate::Negotiated;
use verdict::ApiError;

use crate::http::fail::{Fail, Reply};
use crate::http::resolve::resolve;
use crate::model::imports::line_count;
use crate::model::time::{now_ms, rfc3339};
use crate::model::tokens::Grants;
use crate::state::AppState;
use crate::storage::{CollectionRow, JobRow, JobState, StorageError};
use crate::surface::urls;

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
        "monitor": urls::job(&j.id),
        "result": j.state.eq(&JobState::Succeeded).then(|| urls::job_result(&j.id)),
    });
    if j.kind == "import" {
        out["imported"] = json!(j.imported);
        out["failed"] = json!(j.failed);
    }
    out
}

fn job_not_found(id: &str) -> ApiError {
    crate::problems::job_not_found(id)
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
        .jobs
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
            HeaderValue::from_str(&urls::job(&job.id)).expect("uuid"),
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
        .jobs
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
        return Err(crate::problems::collection_not_granted(Some(&job.collection)).into());
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
                HeaderValue::from_str(&urls::job_result(&id)).expect("uuid"),
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
    negotiated: Option<Extension<Negotiated>>,
) -> Reply {
    let job = visible_job(&st, &p, &id).await?;
    let ndjson = negotiated
        .as_ref()
        .is_some_and(|n| n.0.media_type() == "application/x-ndjson");
    if ndjson && job.kind != "export" {
        // Only an export's records have a line-per-record form.
        return Err(ApiError::not_acceptable(&["application/json"]).into());
    }
    let document = match job.state {
        JobState::Succeeded => st.storage.jobs.job_result(&id, 0).await?,
        _ => None,
    };
    let not_ready =
        || -> Fail { crate::problems::job_result_not_ready(&id, job.state.as_str()).into() };
    let exported = job.kind == "export" && job.state == JobState::Succeeded;
    let body = match document {
        Some(first) if exported => export_body(st, job, first, ndjson),
        None if exported => export_body(st, job, Vec::new(), ndjson),
        Some(doc) => Body::from(doc),
        None => return Err(not_ready()),
    };
    let media = if ndjson {
        "application/x-ndjson"
    } else {
        "application/json"
    };
    Ok(Response::builder()
        .header(header::CONTENT_TYPE, media)
        .header(header::VARY, "Accept")
        .body(body)
        .map_err(ApiError::internal)?)
}

/// `{"collection", "count", "records": [...]}` with the records read chunk
/// by chunk; or (`ndjson`) one record a line, the form an import takes.
fn export_body(st: AppState, job: JobRow, first: Vec<u8>, ndjson: bool) -> Body {
    let head = format!(
        "{{\"collection\":{},\"count\":{},\"records\":[",
        Value::String(job.collection.clone()),
        job.processed
    );
    struct Cursor {
        ndjson: bool,
        st: AppState,
        id: String,
        next: i64,
        first: Option<Vec<u8>>,
        wrote_any: bool,
        done: bool,
    }
    let cursor = Cursor {
        ndjson,
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
                match c.st.storage.jobs.job_result(&c.id, seq).await {
                    Ok(chunk) => chunk,
                    Err(e) => return Some((Err(std::io::Error::other(e.to_string())), c)),
                }
            }
        };
        let Some(chunk) = chunk else {
            c.done = true;
            let tail: &'static [u8] = if c.ndjson { b"" } else { b"]}" };
            return Some((Ok(Bytes::from_static(tail)), c));
        };
        if c.ndjson {
            return Some((ndjson_lines(&chunk).map_err(std::io::Error::other), c));
        }
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
    let head = if ndjson { String::new() } else { head };
    let head = futures_util::stream::once(async move { Ok(Bytes::from(head)) });
    // Fused: a compressing layer may poll once more after the end, which
    // `unfold` answers with a panic.
    Body::from_stream(futures_util::StreamExt::fuse(
        futures_util::StreamExt::chain(head, chunks),
    ))
}

/// `DELETE /v1/jobs/{id}`: cancel.
pub async fn cancel(
    State(st): State<AppState>,
    Path(id): Path<String>,
    Authenticated(p): Authenticated,
) -> Reply {
    visible_job(&st, &p, &id).await?;
    match st.storage.jobs.cancel_job(&id, now_ms()).await {
        Ok(_) => Ok(StatusCode::NO_CONTENT.into_response()),
        Err(StorageError::NotFound) => Err(job_not_found(&id).into()),
        Err(e) => Err(e.into()),
    }
}

/// `DELETE /v1/jobs/{id}/result`: a finished job goes, with its result
/// (an export's can be large) and its report, before `--job-retention` would
/// remove it; a queued or running one is 409 (cancel it first).
pub async fn delete_finished(
    State(st): State<AppState>,
    Path(id): Path<String>,
    Authenticated(p): Authenticated,
) -> Reply {
    visible_job(&st, &p, &id).await?;
    match st.storage.jobs.delete_finished_job(&id).await {
        Ok(()) => Ok(StatusCode::NO_CONTENT.into_response()),
        Err(StorageError::NotFound) => Err(job_not_found(&id).into()),
        Err(e) => Err(e.into()),
    }
}

/// A stored chunk of an export (records separated by commas, as the JSON
/// form splices them in) as one record a line.
fn ndjson_lines(chunk: &[u8]) -> Result<Bytes, serde_json::Error> {
    if chunk.is_empty() {
        return Ok(Bytes::new());
    }
    let mut array = Vec::with_capacity(chunk.len() + 2);
    array.push(b'[');
    array.extend_from_slice(chunk);
    array.push(b']');
    let records: Vec<&serde_json::value::RawValue> = serde_json::from_slice(&array)?;
    let mut out = Vec::with_capacity(chunk.len() + records.len());
    for record in records {
        out.extend_from_slice(record.get().as_bytes());
        out.push(b'\n');
    }
    Ok(Bytes::from(out))
}
