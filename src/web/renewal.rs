//! When to renew: at two thirds of the certificate's lifetime (so a 6-day certificate renews
//! with 2 days left, a 90-day one with 30), and after a failure not before a backoff of 10
//! minutes doubling up to 6 hours, with jitter, so that no CA is ever hammered.
//! The state survives restarts in `<data_dir>/tls/acme-state.toml`.

use std::fs;
use std::io;
use std::path::Path;
use std::time::Duration;

use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};

use crate::certificate::{self as tls, TlsError};

pub const STATE_FILE: &str = "acme-state.toml";

const FIRST_BACKOFF: Duration = Duration::from_secs(10 * 60);
const MAX_BACKOFF: Duration = Duration::from_secs(6 * 3600);

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenewalState {
    /// Failed attempts since the last success.
    pub failures: u32,
    pub last_error: Option<String>,
    /// Unix milliseconds of the last attempt, successful or not.
    pub last_attempt_ms: Option<u64>,
    /// Unix milliseconds before which no automatic attempt is made.
    pub retry_at_ms: Option<u64>,
}

impl RenewalState {
    /// The saved state, or a fresh one when there is none or it cannot be read.
    pub fn load(dir: &Path) -> RenewalState {
        fs::read_to_string(dir.join(STATE_FILE))
            .ok()
            .and_then(|text| toml::from_str(&text).ok())
            .unwrap_or_default()
    }

    pub fn save(&self, dir: &Path) -> Result<(), TlsError> {
        let text = toml::to_string(self).map_err(|e| TlsError::Write {
            path: dir.join(STATE_FILE),
            source: io::Error::other(e),
        })?;
        tls::create_private_dir(dir)?;
        tls::write_atomically(&dir.join(STATE_FILE), text.as_bytes(), 0o600)
    }

    pub fn succeeded(&mut self, now_ms: u64) {
        *self = RenewalState {
            last_attempt_ms: Some(now_ms),
            ..RenewalState::default()
        };
    }

    /// Records a failure and returns how long to wait before the next automatic attempt.
    pub fn failed(&mut self, error: String, now_ms: u64) -> Duration {
        self.failures = self.failures.saturating_add(1);
        self.last_error = Some(error);
        self.last_attempt_ms = Some(now_ms);
        let mut random = [0u8; 4];
        let jitter = match SystemRandom::new().fill(&mut random) {
            Ok(()) => u32::from_le_bytes(random),
            Err(_) => u32::MAX,
        };
        let wait = backoff(self.failures, jitter);
        self.retry_at_ms = Some(now_ms + wait.as_millis() as u64);
        wait
    }
}

/// The moment to renew a certificate valid from `not_before` to `not_after` (Unix ms): when a
/// third of its lifetime is left.
pub fn renewal_due(not_before_ms: u64, not_after_ms: u64) -> u64 {
    not_after_ms - not_after_ms.saturating_sub(not_before_ms) / 3
}

/// The wait after the `failures`-th failure in a row: 10 minutes doubling each time up to 6
/// hours, of which `jitter` (uniform over u32) takes off up to a half, so that many boards
/// that failed together do not come back together.
pub fn backoff(failures: u32, jitter: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    let full = FIRST_BACKOFF
        .saturating_mul(1 << doublings)
        .min(MAX_BACKOFF);
    let taken = full.mul_f64(f64::from(jitter) / f64::from(u32::MAX) / 2.0);
    full - taken
}

/// When to try next (Unix ms): the certificate's renewal time (`None`: there is none yet, so
/// now), but never before the backoff after a failure.
pub fn next_attempt(renewal_due_ms: Option<u64>, state: &RenewalState) -> u64 {
    renewal_due_ms
        .unwrap_or(0)
        .max(state.retry_at_ms.unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY_MS: u64 = 86_400_000;

    #[test]
    fn renews_with_a_third_of_the_lifetime_left() {
        assert_eq!(renewal_due(0, 90 * DAY_MS), 60 * DAY_MS);
        assert_eq!(renewal_due(10 * DAY_MS, 16 * DAY_MS), 14 * DAY_MS);
        assert_eq!(renewal_due(5, 5), 5);
    }

    #[test]
    fn backoff_doubles_up_to_six_hours_with_at_most_half_taken_off() {
        let minutes = |d: Duration| d.as_secs() / 60;
        assert_eq!(minutes(backoff(1, 0)), 10);
        assert_eq!(minutes(backoff(2, 0)), 20);
        assert_eq!(minutes(backoff(3, 0)), 40);
        assert_eq!(minutes(backoff(6, 0)), 320);
        assert_eq!(minutes(backoff(7, 0)), 360);
        assert_eq!(minutes(backoff(u32::MAX, 0)), 360);
        assert_eq!(minutes(backoff(1, u32::MAX)), 5);
        assert_eq!(minutes(backoff(u32::MAX, u32::MAX)), 180);
    }

    #[test]
    fn failures_push_the_next_attempt_back_and_success_clears_them() {
        let mut state = RenewalState::default();
        assert_eq!(next_attempt(None, &state), 0);
        assert_eq!(next_attempt(Some(60 * DAY_MS), &state), 60 * DAY_MS);
        let first = state.failed("no answer".into(), DAY_MS);
        assert!(first >= Duration::from_secs(300) && first <= Duration::from_secs(600));
        assert_eq!(
            next_attempt(None, &state),
            DAY_MS + first.as_millis() as u64
        );
        let second = state.failed("no answer".into(), DAY_MS);
        assert!(second >= Duration::from_secs(600));
        assert_eq!(state.failures, 2);
        state.succeeded(2 * DAY_MS);
        assert_eq!(state.failures, 0);
        assert_eq!(state.last_error, None);
        assert_eq!(next_attempt(Some(3 * DAY_MS), &state), 3 * DAY_MS);
    }

    #[test]
    fn state_survives_a_restart() {
        let dir = tempfile::TempDir::new().unwrap();
        let tls = dir.path().join("tls");
        assert_eq!(RenewalState::load(&tls), RenewalState::default());
        let mut state = RenewalState::default();
        state.failed("the CA could not validate".into(), 1_000);
        state.save(&tls).unwrap();
        assert_eq!(RenewalState::load(&tls), state);
    }
}
