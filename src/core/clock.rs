//! Time as the core counts it: whole milliseconds.

use std::time::Duration;

/// A duration in whole milliseconds (saturating).
pub fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
