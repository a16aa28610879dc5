//! Expiry: idempotent answers after `--idempotency-retention` (24 h by
//! default), finished jobs with their results after `--job-retention` (7
//! days), so neither grows without bound.

use std::time::Duration;

use crate::model::time::now_ms;
use crate::state::AppState;

/// How often expired rows are deleted: a quarter of the shorter retention,
/// between a second and a minute.
fn every(st: &AppState) -> Duration {
    let shortest = st.config.idempotency_retention.min(st.config.job_retention);
    (shortest / 4).clamp(Duration::from_secs(1), Duration::from_secs(60))
}

/// Runs until the process ends.
pub fn spawn(st: AppState) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let period = every(&st);
        loop {
            tokio::time::sleep(period).await;
            let now = now_ms();
            let keys_before = now - st.config.idempotency_retention.as_millis() as i64;
            let jobs_before = now - st.config.job_retention.as_millis() as i64;
            match st.storage.idempotency.purge_idempotent(keys_before).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(answers = n, "expired idempotent answers deleted"),
                Err(e) => tracing::warn!(error = %e, "cannot expire idempotent answers"),
            }
            match st.storage.jobs.purge_jobs(jobs_before).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(jobs = n, "expired finished jobs deleted"),
                Err(e) => tracing::warn!(error = %e, "cannot expire finished jobs"),
            }
        }
    })
}
