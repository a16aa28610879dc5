//! Time as the service stores it (unix milliseconds) and shows it (RFC 3339).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Now, in unix milliseconds.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Unix milliseconds as a `SystemTime`.
pub fn system_time(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64)
}

/// Unix milliseconds as RFC 3339 (`2026-11-24T07:13:00.123Z`).
pub fn rfc3339(ms: i64) -> String {
    humantime::format_rfc3339_millis(system_time(ms)).to_string()
}

/// An RFC 3339 time (as [`rfc3339`] writes it, `Z` or an offset-free UTC
/// time) in unix milliseconds; `None` if it is not one, or before 1970.
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    let at = humantime::parse_rfc3339_weak(text).ok()?;
    let ms = at.duration_since(UNIX_EPOCH).ok()?.as_millis();
    i64::try_from(ms).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip_through_their_text() {
        let now = now_ms();
        assert_eq!(parse_rfc3339(&rfc3339(now)), Some(now));
        assert_eq!(parse_rfc3339("yesterday"), None);
    }
}
