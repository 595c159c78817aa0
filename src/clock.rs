//! The wall clock, read at the edges: what is stored or shown (binding expiries, bans, nonce
//! ages) is in Unix milliseconds, so that it keeps its meaning across a restart.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
