//! Security events, logged: one line each under the target Fail2Ban's filter reads (see
//! `core::security` for the line itself).

use tracing::warn;

use crate::core::security::SecurityEvent;

pub fn log(event: &SecurityEvent) {
    warn!(target: "hotline::security", "{event}");
}
