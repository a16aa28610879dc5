//! State several instances share: rate limits, write quotas, idempotency locks
//! and maintenance mode. In process by default; in Redis with `--shared
//! redis://...`, so a token's budget is one budget across instances.
//!
//! Every decision is one round trip: a Lua script that reads, decides and
//! writes atomically, with Redis's own clock (`TIME`), so instances whose
//! clocks differ still agree. When Redis is unreachable, `--shared-unavailable`
//! decides: `fail` (the default) answers 503 with `Retry-After`, since a limit
//! that cannot be checked is not enforced; `local` falls back to this
//! instance's own limits and logs a warning. The connection manager reconnects
//! by itself, so the service recovers without a restart.
//!
//! Its own crate so that `verdict serve` and `verdict proxy` share one
//! implementation (and one Redis key layout: a gateway and a service given the
//! same `--shared` URL and prefix spend one budget). The errors it answers
//! with belong to whoever runs it: [`Problems`] says how to name them.
//!
//! ```
//! # async fn demo() {
//! use std::time::Duration;
//! use verdict::rate_limit::Quota;
//! use verdict_cluster::{Problems, Shared};
//!
//! let shared = Shared::local(Problems::default());
//! let decision = shared.rate("client-1", Quota::new(10, Duration::from_secs(1))).await.unwrap();
//! assert!(decision.allowed);
//! # }
//! ```

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::BoxFuture;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::Script;
use verdict::rate_limit::{InMemoryStore, Quota, RateDecision, RateLimitStore};
use verdict::ApiError;

/// What to do when Redis cannot be reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum WhenUnavailable {
    /// 503 with `Retry-After`.
    Fail,
    /// This instance's own limits, with a warning in the log.
    Local,
}

/// GCRA: `KEYS[1]` holds the theoretical arrival time in microseconds;
/// `ARGV` = emission interval (µs), burst. Returns
/// `{allowed, remaining, retry_after_us, reset_us}`.
const GCRA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tau = interval * burst
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - tau
if allow_at > now then
  return {0, 0, allow_at - now, tat - now}
end
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1)
return {1, math.floor((now + tau - new_tat) / interval), 0, new_tat - now}
";

/// Write quota: `KEYS[1]` counts this UTC day's writes; `ARGV[1]` is the quota.
/// Returns 1 if one more write was spent, 0 if the quota is used up.
const QUOTA: &str = r"
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
if used >= tonumber(ARGV[1]) then return 0 end
redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], 172800)
return 1
";

/// Releases a lock only if it is still ours.
const UNLOCK: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
";

/// How the owner of the state names the two ways it can refuse a request,
/// so each binary keeps its own problem catalog.
#[derive(Clone, Copy, Debug)]
pub struct Problems {
    /// Redis is unreachable and `--shared-unavailable fail` (a 503 with
    /// `Retry-After`); the cause goes to the log only.
    pub unavailable: fn(&redis::RedisError) -> ApiError,
    /// Another holder kept a lock for too long (a 409).
    pub lock_busy: fn() -> ApiError,
}

impl Default for Problems {
    /// Generic problems: 503 `Retry-After: 1`, and 409.
    fn default() -> Self {
        Problems {
            unavailable: |e| {
                ApiError::service_unavailable(
                    verdict::headers::RetryAfter::from_secs(1),
                    "The shared limits store is unreachable; retry after the delay given.",
                )
                .with_cause(e.to_string())
            },
            lock_busy: || ApiError::conflict("Another request holding this key is still running."),
        }
    }
}

/// The shared store (in process, or Redis).
pub struct Shared {
    problems: Problems,
    redis: Option<Redis>,
    local_limits: InMemoryStore,
    local_quotas: WriteQuotas,
    local_locks: KeyLocks,
    when_unavailable: WhenUnavailable,
    warned_at: AtomicU64,
}

struct Redis {
    conn: ConnectionManager,
    prefix: String,
    gcra: Script,
    quota: Script,
    unlock: Script,
}

impl Shared {
    /// In-process state (one instance).
    pub fn local(problems: Problems) -> Self {
        Shared {
            problems,
            redis: None,
            local_limits: InMemoryStore::new(),
            local_quotas: WriteQuotas::default(),
            local_locks: Default::default(),
            when_unavailable: WhenUnavailable::Fail,
            warned_at: AtomicU64::new(0),
        }
    }

    /// State in Redis at `url`, keys under `prefix:`. Connects lazily: an
    /// instance may start while Redis is down.
    pub fn redis(
        url: &str,
        prefix: &str,
        when_unavailable: WhenUnavailable,
        problems: Problems,
    ) -> Result<Self, String> {
        let client = redis::Client::open(url).map_err(|e| format!("bad Redis URL: {e}"))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_millis(500)))
            .set_response_timeout(Some(Duration::from_millis(500)))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let conn = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|e| format!("cannot set up Redis: {e}"))?;
        Ok(Shared {
            redis: Some(Redis {
                conn,
                prefix: prefix.to_string(),
                gcra: Script::new(GCRA),
                quota: Script::new(QUOTA),
                unlock: Script::new(UNLOCK),
            }),
            when_unavailable,
            ..Shared::local(problems)
        })
    }

    /// Whether the state is shared through Redis.
    pub fn is_shared(&self) -> bool {
        self.redis.is_some()
    }

    /// The error or fallback when Redis failed: 503, or `None` to use local state.
    fn unavailable(&self, e: &redis::RedisError) -> Option<ApiError> {
        match self.when_unavailable {
            WhenUnavailable::Fail => Some((self.problems.unavailable)(e)),
            WhenUnavailable::Local => {
                // One warning a minute is enough to say it.
                let now = now_ms() as u64;
                let last = self.warned_at.load(Ordering::Relaxed);
                if now.saturating_sub(last) > 60_000 {
                    self.warned_at.store(now, Ordering::Relaxed);
                    tracing::warn!(error = %e, "Redis unreachable: using this instance's own limits");
                }
                None
            }
        }
    }

    /// Spends one request of `key`'s budget.
    pub async fn rate(&self, key: &str, quota: Quota) -> Result<RateDecision, ApiError> {
        let Some(r) = &self.redis else {
            return Ok(self.local_limits.decide(key, quota));
        };
        let interval_us = (quota.replenish_interval().as_micros() as u64).max(1);
        let redis_key = format!(
            "{}:rl:{}:{}:{}",
            r.prefix,
            key,
            quota.requests,
            quota.per.as_millis()
        );
        let mut conn = r.conn.clone();
        let result: redis::RedisResult<(i64, i64, i64, i64)> = r
            .gcra
            .key(redis_key)
            .arg(interval_us)
            .arg(quota.requests)
            .invoke_async(&mut conn)
            .await;
        match result {
            Ok((allowed, remaining, retry_us, reset_us)) => Ok(RateDecision {
                allowed: allowed == 1,
                limit: quota.requests,
                remaining: remaining.max(0) as u32,
                reset: Duration::from_micros(reset_us.max(0) as u64),
                retry_after: Duration::from_micros(retry_us.max(0) as u64),
            }),
            Err(e) => match self.unavailable(&e) {
                Some(err) => Err(err),
                None => Ok(self.local_limits.decide(key, quota)),
            },
        }
    }

    /// Spends one write of `token`'s daily quota; `false` when used up.
    pub async fn spend_write(
        &self,
        token: &str,
        quota: u32,
        now_ms: i64,
    ) -> Result<bool, ApiError> {
        let Some(r) = &self.redis else {
            return Ok(self.local_quotas.spend(token, quota, now_ms));
        };
        let day = now_ms.div_euclid(DAY_MS);
        let mut conn = r.conn.clone();
        let result: redis::RedisResult<i64> = r
            .quota
            .key(format!("{}:quota:{}:{}", r.prefix, token, day))
            .arg(quota)
            .invoke_async(&mut conn)
            .await;
        match result {
            Ok(spent) => Ok(spent == 1),
            Err(e) => match self.unavailable(&e) {
                Some(err) => Err(err),
                None => Ok(self.local_quotas.spend(token, quota, now_ms)),
            },
        }
    }

    /// Holds `key` (an idempotency key) across instances until the guard drops;
    /// a second holder waits (up to 10 s, then 409: the first is still running).
    pub async fn lock(&self, key: &str) -> Result<LockGuard, ApiError> {
        let Some(r) = &self.redis else {
            let lock = self.local_locks.get(key);
            return Ok(LockGuard(Held::Local {
                _held: lock.lock_owned().await,
            }));
        };
        let redis_key = format!("{}:lock:{}", r.prefix, key);
        let token = uuid::Uuid::new_v4().simple().to_string();
        let mut conn = r.conn.clone();
        for _ in 0..500 {
            let set: redis::RedisResult<Option<String>> = redis::cmd("SET")
                .arg(&redis_key)
                .arg(&token)
                .arg("NX")
                .arg("PX")
                .arg(30_000)
                .query_async(&mut conn)
                .await;
            match set {
                Ok(Some(_)) => {
                    return Ok(LockGuard(Held::Redis {
                        conn,
                        key: redis_key,
                        token,
                        unlock: r.unlock.clone(),
                    }))
                }
                Ok(None) => tokio::time::sleep(Duration::from_millis(20)).await,
                Err(e) => {
                    return match self.unavailable(&e) {
                        Some(err) => Err(err),
                        None => {
                            let lock = self.local_locks.get(key);
                            Ok(LockGuard(Held::Local {
                                _held: lock.lock_owned().await,
                            }))
                        }
                    }
                }
            }
        }
        Err((self.problems.lock_busy)())
    }

    /// Publishes maintenance mode to every instance (`None`: off).
    pub async fn set_maintenance(&self, retry_after: Option<u64>) -> Result<(), ApiError> {
        let Some(r) = &self.redis else { return Ok(()) };
        let mut conn = r.conn.clone();
        let key = format!("{}:maintenance", r.prefix);
        let res: redis::RedisResult<()> = match retry_after {
            Some(s) => {
                redis::cmd("SET")
                    .arg(&key)
                    .arg(s)
                    .query_async(&mut conn)
                    .await
            }
            None => redis::cmd("DEL").arg(&key).query_async(&mut conn).await,
        };
        res.map_err(|e| (self.problems.unavailable)(&e))
    }

    /// For the readiness probe: `"local"` (nothing shared), `"ok"` (Redis
    /// answers), `"unreachable"` (Redis is away and limits fall back to this
    /// instance's), or the 503 every limited request would get now.
    pub async fn readiness(&self) -> Result<&'static str, ApiError> {
        let Some(r) = &self.redis else {
            return Ok("local");
        };
        let mut conn = r.conn.clone();
        match redis::cmd("PING").query_async::<String>(&mut conn).await {
            Ok(_) => Ok("ok"),
            Err(e) => match self.unavailable(&e) {
                Some(error) => Err(error),
                None => Ok("unreachable"),
            },
        }
    }

    /// Reads maintenance mode as the instances share it; `Err` if unknown now.
    pub async fn maintenance(&self) -> Result<Option<u64>, String> {
        let Some(r) = &self.redis else {
            return Err("not shared".into());
        };
        let mut conn = r.conn.clone();
        redis::cmd("GET")
            .arg(format!("{}:maintenance", r.prefix))
            .query_async::<Option<u64>>(&mut conn)
            .await
            .map_err(|e| e.to_string())
    }
}

/// Milliseconds since the Unix epoch.
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// A Redis URL without its password, for messages and logs.
pub fn redacted(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let host = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
            format!("{scheme}://{host}")
        }
        None => "(a malformed URL)".to_string(),
    }
}

/// Writes per token per UTC day, in this process.
#[derive(Default)]
pub(crate) struct WriteQuotas {
    used: Mutex<HashMap<String, (i64, u32)>>,
}

const DAY_MS: i64 = 86_400_000;

impl WriteQuotas {
    /// Spends one write of `token`'s quota for the day of `now_ms`; `false` when used up.
    pub(crate) fn spend(&self, token: &str, quota: u32, now_ms: i64) -> bool {
        let day = now_ms.div_euclid(DAY_MS);
        let mut used = self.used.lock().expect("not poisoned");
        let entry = used.entry(token.to_string()).or_insert((day, 0));
        if entry.0 != day {
            *entry = (day, 0);
        }
        if entry.1 >= quota {
            return false;
        }
        entry.1 += 1;
        true
    }
}

/// One in-process lock per idempotency key, so concurrent retries wait for the first.
#[derive(Default)]
pub(crate) struct KeyLocks {
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl KeyLocks {
    /// The lock of `key`.
    pub(crate) fn get(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut m = self.locks.lock().expect("not poisoned");
        if m.len() > 10_000 {
            m.retain(|_, l| Arc::strong_count(l) > 1);
        }
        m.entry(key.to_string()).or_default().clone()
    }
}

/// A held idempotency lock.
pub struct LockGuard(Held);

/// How a [`LockGuard`] holds its key.
enum Held {
    /// This instance's own lock of the key (not shared, or Redis away with
    /// `--shared-unavailable local`), released on drop.
    Local {
        /// Held until the guard drops.
        _held: tokio::sync::OwnedMutexGuard<()>,
    },
    /// A lock in Redis (it expires by itself after 30 s), released on drop
    /// if still ours.
    Redis {
        /// The connection to release it with.
        conn: ConnectionManager,
        /// The Redis key locked (under the `--shared-prefix`).
        key: String,
        /// The random value this holder set, so it releases only its own lock.
        token: String,
        /// The script that deletes the key if it still holds `token`.
        unlock: Script,
    },
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if let Held::Redis {
            conn,
            key,
            token,
            unlock,
        } = &self.0
        {
            let (mut conn, key, token, unlock) =
                (conn.clone(), key.clone(), token.clone(), unlock.clone());
            // Released in the background; the lock also expires by itself.
            tokio::spawn(async move {
                let _: redis::RedisResult<i64> =
                    unlock.key(key).arg(token).invoke_async(&mut conn).await;
            });
        }
    }
}

/// The rate limiter's store, for the library's `RateLimitLayer`.
pub struct SharedLimits(pub Arc<Shared>);

impl RateLimitStore for SharedLimits {
    fn check<'a>(
        &'a self,
        key: &'a str,
        quota: Quota,
    ) -> BoxFuture<'a, Result<RateDecision, ApiError>> {
        Box::pin(self.0.rate(key, quota))
    }

    /// Without Redis the decision is the in-process limiter's, made at once.
    fn check_now(&self, key: &str, quota: Quota) -> Option<Result<RateDecision, ApiError>> {
        match &self.0.redis {
            None => Some(Ok(self.0.local_limits.decide(key, quota))),
            Some(_) => None,
        }
    }

    /// The in-process limiter decides without Redis (and while it is away).
    fn prepare(&self, quota: Quota) {
        self.0.local_limits.prepare(quota);
    }
}

/// Follows the shared maintenance state every second (when shared).
pub fn spawn_maintenance_follower(
    shared: Arc<Shared>,
    switch: verdict::maintenance::MaintenanceSwitch,
) {
    if !shared.is_shared() {
        return;
    }
    tokio::spawn(async move {
        loop {
            match shared.maintenance().await {
                Ok(Some(s)) => switch.enable(s),
                Ok(None) => switch.disable(),
                Err(_) => {} // keep the last known state while Redis is away
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotas_count_per_day() {
        let q = WriteQuotas::default();
        assert!(q.spend("t", 2, 0));
        assert!(q.spend("t", 2, 10));
        assert!(!q.spend("t", 2, 20));
        assert!(q.spend("t", 2, DAY_MS));
    }
}
