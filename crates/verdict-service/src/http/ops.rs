//! Operations: `/health`, `/metrics`, `/openapi.json`, maintenance mode, and
//! the service's problem types (their pages are the library's:
//! `Contract::document_problems`). (`/docs` is Swagger UI, served from the assets the
//! `swagger-ui-dist` crate embeds: no network needed.)

use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::json;
use verdict::headers::RetryAfter;
use verdict::problems::ProblemType;
use verdict::{ApiError, Json};

use crate::fail::Reply;
use crate::state::AppState;

/// `GET /health`: 200 when storage answers, else 503.
pub async fn health(State(st): State<AppState>) -> Reply {
    match st.storage.ping().await {
        Ok(()) => Ok(axum::Json(json!({"status": "ok", "storage": "ok"})).into_response()),
        Err(e) => Err(ApiError::service_unavailable(
            RetryAfter::from_secs(1),
            "The storage is unreachable.",
        )
        .with_code("storage_unavailable")
        .with_title("Storage unavailable")
        .with_cause(e)
        .into()),
    }
}

/// `GET /metrics`.
pub async fn metrics() -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        crate::metrics::handle().render(),
    )
}

/// `GET /docs`: Swagger UI on `/openapi.json`, every asset served by this
/// server; the online spec validator (Swagger UI's default) is off, so the
/// page makes no request elsewhere.
pub async fn docs() -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        )],
        r##"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Verdict API</title>
<link rel="stylesheet" href="/docs/swagger/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="/docs/swagger/swagger-ui-bundle.js"></script>
<script>
window.onload = () => {
  window.ui = SwaggerUIBundle({ url: "/openapi.json", dom_id: "#swagger-ui", validatorUrl: null, deepLinking: true });
};
</script>
</body>
</html>
"##,
    )
}

/// `GET /openapi.json`.
pub async fn openapi(State(st): State<AppState>) -> impl IntoResponse {
    axum::Json(crate::openapi::document(&st.preset))
}

/// The codes the service emits beyond the library's.
pub const SERVICE_PROBLEMS: &[ProblemType] = &[
    ProblemType { code: "collection_not_found", status: 404, title: "Collection not found",
        description: "No collection has this name. List them with GET /v1/collections." },
    ProblemType { code: "record_not_found", status: 404, title: "Record not found",
        description: "No record has this id in this collection. List the records, or look them up by a field." },
    ProblemType { code: "token_not_found", status: 404, title: "Token not found",
        description: "No token has this id (or it is already revoked)." },
    ProblemType { code: "job_not_found", status: 404, title: "Job not found",
        description: "No job has this id." },
    ProblemType { code: "job_result_not_ready", status: 404, title: "No result yet",
        description: "The job has not succeeded (yet): follow its monitor, GET /v1/jobs/{id}." },
    ProblemType { code: "no_match", status: 404, title: "No match",
        description: "No record has the looked-up value in that field." },
    ProblemType { code: "collection_exists", status: 409, title: "Collection exists",
        description: "A collection (or a renamed collection's alias) already has this name. Choose another." },
    ProblemType { code: "record_exists", status: 409, title: "Record exists",
        description: "A record with the id the request gave exists. Read it, or create without an id." },
    ProblemType { code: "unique_violation", status: 409, title: "Unique value taken",
        description: "Another record has this value in a field the collection declares unique." },
    ProblemType { code: "collection_not_empty", status: 409, title: "Collection not empty",
        description: "Delete the records first, or send DELETE ...?force=true." },
    ProblemType { code: "job_finished", status: 409, title: "Job finished",
        description: "A finished job cannot be cancelled." },
    ProblemType { code: "collection_not_granted", status: 403, title: "Collection not granted",
        description: "The token is limited to some collections, and this is not one of them." },
    ProblemType { code: "write_quota_exceeded", status: 403, title: "Write quota exceeded",
        description: "The token's daily write quota (update limit) is used up; it renews at 00:00 UTC." },
    ProblemType { code: "idempotency_key_reused", status: 409, title: "Idempotency key reused",
        description: "The Idempotency-Key was first used with another request. Use a new key for a new request." },
    ProblemType { code: "storage_unavailable", status: 503, title: "Storage unavailable",
        description: "The storage cannot be reached. Retry after `Retry-After` seconds." },
    ProblemType { code: "limits_unavailable", status: 503, title: "Limits unavailable",
        description: "The shared store of rate limits and quotas (Redis) cannot be reached, and a limit that cannot be checked is not enforced. Retry after `Retry-After` seconds." },
    ProblemType { code: "idempotency_key_in_use", status: 409, title: "Idempotency key in use",
        description: "Another request with this Idempotency-Key is still being processed. Retry shortly; you will get its answer." },
    ProblemType { code: "collection_changed", status: 409, title: "Collection changed",
        description: "The collection kept changing (its schema, unique fields or name) while the request was checked against it. Send the request again." },
    ProblemType { code: "import_queue_full", status: 429, title: "Import queue full",
        description: "The token's imports waiting or running already hold as many bytes as it may queue. Start this one once some have finished; `Retry-After` suggests when to look." },
    ProblemType { code: "bootstrap_token", status: 409, title: "Bootstrap token",
        description: "The bootstrap admin token cannot be revoked over the API: restart the service with a new `--admin-token` to replace it." },
];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Maintenance {
    enabled: bool,
    #[serde(default, deserialize_with = "crate::integer::opt_u64")]
    retry_after_seconds: Option<u64>,
}

/// The longest `Retry-After` maintenance may announce: a day. Past it a
/// client is better told to come back than to wait.
pub const MAX_MAINTENANCE_RETRY: u64 = 86_400;

fn maintenance_json(st: &AppState) -> serde_json::Value {
    match st.maintenance.status() {
        Some(r) => json!({"enabled": true, "retry_after_seconds": r.seconds()}),
        None => json!({"enabled": false, "retry_after_seconds": null}),
    }
}

/// `GET /v1/admin/maintenance`.
pub async fn get_maintenance(State(st): State<AppState>) -> Reply {
    Ok(axum::Json(maintenance_json(&st)).into_response())
}

/// `PUT /v1/admin/maintenance`.
pub async fn set_maintenance(State(st): State<AppState>, Json(body): Json<Maintenance>) -> Reply {
    // Checked whether maintenance is switched on or off.
    if body
        .retry_after_seconds
        .is_some_and(|s| !(1..=MAX_MAINTENANCE_RETRY).contains(&s))
    {
        return Err(
            verdict::ApiError::validation_failed(vec![verdict::FieldError::new(
                "/retry_after_seconds",
                format!("must be from 1 to {MAX_MAINTENANCE_RETRY} seconds"),
            )])
            .into(),
        );
    }
    // Every instance follows the shared state within a second; this one at once.
    if body.enabled {
        let seconds = body.retry_after_seconds.unwrap_or(60);
        st.shared.set_maintenance(Some(seconds)).await?;
        st.maintenance.enable(seconds);
    } else {
        st.shared.set_maintenance(None).await?;
        st.maintenance.disable();
    }
    Ok(axum::Json(maintenance_json(&st)).into_response())
}
