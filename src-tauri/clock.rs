//! The wall clock, read in one place. Protocol code (`oauth/`) never reads it: callers
//! pass `now` in, so every rule can be tested with a fixed time.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::oauth::UnixTime;

/// Seconds since the Unix epoch.
pub fn now() -> UnixTime {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Milliseconds since the Unix epoch (the activity log's time).
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
