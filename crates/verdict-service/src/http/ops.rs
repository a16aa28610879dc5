//! Operations: `/health`, `/metrics`, `/openapi.json`, maintenance mode, and
//! the service's problem types (their pages are the library's:
//! `Contract::document_problems`). (`/docs` is Swagger UI, served from the assets the
//! `swagger-ui-dist` crate embeds: no network needed.)

use axum::extract::State;
use axum::Extension;
use verdict::auth::Authentication;

use crate::model::tokens::Grants;
use crate::storage::JobState;
use axum::http::{header, HeaderValue};
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::json;
use verdict::Json;

use crate::http::fail::Reply;
use crate::state::AppState;

/// `GET /health`: 200 when storage answers, else 503.
pub async fn health(State(st): State<AppState>) -> Reply {
    if let Err(e) = st.storage.health.ping().await {
        return Err(crate::problems::storage_unavailable(e).into());
    }
    let shared = st.shared.readiness().await?;
    // An instance in maintenance stays ready: it must stay behind the load
    // balancer to answer clients 503 with `Retry-After` itself.
    let maintenance = st.maintenance.status().is_some();
    Ok(axum::Json(json!({
        "status": "ok",
        "storage": "ok",
        "shared": shared,
        "maintenance": maintenance,
    }))
    .into_response())
}

/// `GET /livez`: liveness, 200 whenever the process answers at all (no
/// storage, no Redis: restarting the process would not bring those back).
pub async fn livez() -> impl IntoResponse {
    axum::Json(json!({"status": "ok"}))
}

/// `GET /metrics`; storage, Redis and the process are read now, so the
/// figures are as fresh as the scrape.
pub async fn metrics(State(st): State<AppState>) -> impl IntoResponse {
    let up = |ok: bool| if ok { 1.0 } else { 0.0 };
    let storage = st.storage.health.ping().await.is_ok();
    ::metrics::gauge!("verdict_storage_up").set(up(storage));
    if st.shared.is_shared() {
        let shared = matches!(st.shared.readiness().await, Ok("ok"));
        ::metrics::gauge!("verdict_shared_up").set(up(shared));
    }
    if let Ok(counts) = st.storage.jobs.count_jobs().await {
        for state in [
            JobState::Queued,
            JobState::Running,
            JobState::Succeeded,
            JobState::Failed,
            JobState::Cancelled,
        ] {
            let n = counts
                .iter()
                .find(|(s, _)| *s == state)
                .map_or(0, |(_, n)| *n);
            ::metrics::gauge!("verdict_jobs", "state" => state.as_str()).set(n as f64);
        }
    }
    crate::observe::metrics::process().collect();
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        crate::observe::metrics::handle().render(),
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

/// `GET /openapi.json`. With a token that may read collections, the
/// document also holds the record schema of each one it may use; without
/// one, none (their names and schemas are not public).
pub async fn openapi(State(st): State<AppState>, auth: Option<Extension<Authentication>>) -> Reply {
    let principal = auth.as_ref().and_then(|a| a.0.principal());
    let collections = match principal {
        Some(p) if p.has_scope("read") || p.has_scope("admin") => {
            let grants = p.extension::<Grants>();
            let mut rows = st.storage.collections.list_collections().await?;
            rows.retain(|c| grants.is_none_or(|g| g.allows(c.id)) || p.has_scope("admin"));
            rows
        }
        _ => Vec::new(),
    };
    let doc = crate::surface::openapi::document(&st.preset, &collections);
    let body = crate::surface::openapi::to_json(&doc, st.error_preset().format().content_type());
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response())
}

/// The body of `PUT /v1/admin/maintenance`: on or off, and while on the
/// `Retry-After` to announce (60 s when not given).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Maintenance {
    enabled: bool,
    #[serde(default, deserialize_with = "crate::http::integer::opt_u64")]
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
