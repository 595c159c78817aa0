//! When to renew: at a moment chosen at random inside the renewal window the CA suggests
//! (ARI, RFC 9773 §4.2) when it offers one, else at two thirds of the certificate's lifetime
//! (so a 6-day certificate renews with 2 days left, a 90-day one with 30); and after a failure
//! not before a backoff of 10 minutes doubling up to 6 hours, with jitter, so that no CA is
//! ever hammered. The CA's window is asked for at most every 6 hours (longer when its
//! Retry-After says so), whichever certificate it is about.
//! The state survives restarts in `<data_dir>/tls/acme-state.toml`.

use std::fs;
use std::io;
use std::path::Path;
use std::time::Duration;

use instant_acme::CertificateIdentifier;
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use super::acme;
use crate::certificate::{self as tls, TlsError};
use crate::core::bans::Utc;

pub const STATE_FILE: &str = "acme-state.toml";

const FIRST_BACKOFF: Duration = Duration::from_secs(10 * 60);
const MAX_BACKOFF: Duration = Duration::from_secs(6 * 3600);

/// The bounds of the wait between two questions for the CA's renewal window, whatever its
/// Retry-After says (RFC 9773 §4.3.2 asks clients to set such limits).
const ARI_MIN_POLL: Duration = Duration::from_secs(6 * 3600);
const ARI_MAX_POLL: Duration = Duration::from_secs(24 * 3600);

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenewalState {
    /// Failed attempts since the last success.
    pub failures: u32,
    pub last_error: Option<String>,
    /// Unix milliseconds of the last attempt, successful or not.
    pub last_attempt_ms: Option<u64>,
    /// Unix milliseconds before which no automatic attempt is made.
    pub retry_at_ms: Option<u64>,
    /// Unix milliseconds before which the CA's renewal window is not asked for again.
    pub ari_poll_at_ms: Option<u64>,
    /// Why the lifetime rule applies: the CA offers no renewal window, or asking failed.
    pub ari_unavailable: Option<String>,
    /// The CA's last renewal window.
    pub ari_window: Option<Window>,
}

/// A renewal window the CA suggested (RFC 9773 §4.2), in Unix milliseconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    /// The certificate it is for, by its ARI identifier (`keyIdentifier.serial`).
    pub certificate: String,
    pub start_ms: u64,
    pub end_ms: u64,
    /// The moment chosen at random inside it, kept while the CA suggests the same window.
    pub renew_at_ms: u64,
}

/// Where the next renewal time comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source<'a> {
    /// The CA's renewal window.
    Window(&'a Window),
    /// A third of the lifetime left, with the reason when ARI was asked for and not had.
    Lifetime(Option<&'a str>),
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

    /// Clears the failures; what the CA said about renewal windows stays, so that the new
    /// certificate's window is asked for no sooner than the next poll.
    pub fn succeeded(&mut self, now_ms: u64) {
        *self = RenewalState {
            last_attempt_ms: Some(now_ms),
            ari_poll_at_ms: self.ari_poll_at_ms,
            ari_unavailable: self.ari_unavailable.take(),
            ari_window: self.ari_window.take(),
            ..RenewalState::default()
        };
    }

    /// Records a failure and returns how long to wait before the next automatic attempt.
    pub fn failed(&mut self, error: String, now_ms: u64) -> Duration {
        self.failures = self.failures.saturating_add(1);
        self.last_error = Some(error);
        self.last_attempt_ms = Some(now_ms);
        let wait = backoff(self.failures, random());
        self.retry_at_ms = Some(now_ms + wait.as_millis() as u64);
        wait
    }

    /// True when the CA's renewal window is to be asked for now.
    pub fn ari_due(&self, now_ms: u64) -> bool {
        self.ari_poll_at_ms.is_none_or(|at| at <= now_ms)
    }

    /// Records the CA's window `start_ms..end_ms` for `certificate` (valid until
    /// `not_after_ms`), and when to ask again: after `retry_after`, within the poll bounds.
    /// A window that ends before it starts or after the certificate expires is not used.
    pub fn ari_answered(
        &mut self,
        certificate: &str,
        (start_ms, end_ms): (u64, u64),
        not_after_ms: u64,
        retry_after: Duration,
        now_ms: u64,
    ) -> Result<&Window, String> {
        let wait = retry_after.clamp(ARI_MIN_POLL, ARI_MAX_POLL);
        self.ari_poll_at_ms = Some(now_ms + wait.as_millis() as u64);
        if end_ms <= start_ms || end_ms > not_after_ms {
            let reason = format!(
                "the CA suggested an unusable renewal window ({} to {}, for a certificate \
                 valid until {})",
                Utc(start_ms),
                Utc(end_ms),
                Utc(not_after_ms)
            );
            self.ari_unavailable = Some(reason.clone());
            self.ari_window = None;
            return Err(reason);
        }
        self.ari_unavailable = None;
        let unchanged = self.ari_window.as_ref().is_some_and(|window| {
            (window.certificate.as_str(), window.start_ms, window.end_ms)
                == (certificate, start_ms, end_ms)
        });
        if !unchanged {
            let spread = (end_ms - start_ms) as f64 * f64::from(random()) / f64::from(u32::MAX);
            self.ari_window = Some(Window {
                certificate: certificate.to_owned(),
                start_ms,
                end_ms,
                renew_at_ms: start_ms + spread as u64,
            });
        }
        Ok(self.ari_window.as_ref().expect("set above"))
    }

    /// Records that the CA gave no window (`reason`): the lifetime rule applies, and the
    /// question is asked again after `wait`, no sooner than the poll bounds allow.
    pub fn ari_failed(&mut self, reason: String, wait: Duration, now_ms: u64) {
        let wait = wait.max(ARI_MIN_POLL);
        self.ari_poll_at_ms = Some(now_ms + wait.as_millis() as u64);
        self.ari_unavailable = Some(reason);
    }

    /// True when the CA suggested a renewal window for `certificate`: it has ARI, and a new
    /// order may name the certificate it replaces.
    pub fn has_window_for(&self, certificate: &str) -> bool {
        self.ari_window
            .as_ref()
            .is_some_and(|window| window.certificate == certificate)
    }

    /// When to renew the certificate `certificate` (its ARI identifier, if it has one) valid
    /// from `not_before_ms` to `not_after_ms`, and why then.
    pub fn renewal_due(
        &self,
        certificate: Option<&str>,
        not_before_ms: u64,
        not_after_ms: u64,
    ) -> (u64, Source<'_>) {
        let window = self
            .ari_window
            .as_ref()
            .filter(|window| Some(window.certificate.as_str()) == certificate);
        match window {
            Some(window) => (window.renew_at_ms, Source::Window(window)),
            None => (
                renewal_due(not_before_ms, not_after_ms),
                Source::Lifetime(self.ari_unavailable.as_deref()),
            ),
        }
    }
}

/// Asks the CA for the renewal window of the certificate `certificate` (its ARI identifier, if
/// it has one) valid until `not_after_ms`; records the answer in `state`, saved, then logs it in
/// one line.
pub async fn ask_window(
    client: &acme::Client,
    certificate: Option<&CertificateIdentifier<'_>>,
    not_after_ms: u64,
    state: &mut RenewalState,
    now_ms: u64,
) {
    let failed = |state: &mut RenewalState, reason: String, wait| {
        state.ari_failed(reason.clone(), wait, now_ms);
        Some(reason)
    };
    let fallback = match certificate {
        None => {
            let reason = "the certificate has no authority key identifier, which ARI needs";
            failed(state, reason.to_owned(), ARI_MAX_POLL)
        }
        Some(id) => match client.renewal_window(id).await {
            Ok(Some((window, retry_after))) => {
                let id = id.to_string();
                let answer = state.ari_answered(&id, window, not_after_ms, retry_after, now_ms);
                answer.err()
            }
            Ok(None) => {
                let reason = "the CA offers no renewal windows (ARI)";
                failed(state, reason.to_owned(), ARI_MAX_POLL)
            }
            Err(error) => {
                let reason = format!("asking the CA for a renewal window failed: {error}");
                failed(state, reason, ARI_MIN_POLL)
            }
        },
    };
    if let Err(error) = state.save(&client.dir) {
        warn!(%error, "cannot save the certificate renewal state");
    }
    match (fallback, &state.ari_window) {
        (None, Some(window)) => info!(
            start = %Utc(window.start_ms),
            end = %Utc(window.end_ms),
            renew_at = %Utc(window.renew_at_ms),
            "renewal window from the CA"
        ),
        (reason, _) => info!(
            reason = reason.unwrap_or_default(),
            "renewing with a third of the lifetime left"
        ),
    }
}

/// Uniform over u32, from the system's random source.
fn random() -> u32 {
    let mut random = [0u8; 4];
    match SystemRandom::new().fill(&mut random) {
        Ok(()) => u32::from_le_bytes(random),
        Err(_) => u32::MAX,
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
    fn a_renewal_window_is_kept_with_its_moment_until_the_ca_moves_it() {
        let mut state = RenewalState::default();
        let (now, not_after) = (DAY_MS, 90 * DAY_MS);
        assert!(state.ari_due(now));
        let window = (50 * DAY_MS, 52 * DAY_MS);
        let hour = Duration::from_secs(3600);
        let chosen = state
            .ari_answered("a.1", window, not_after, hour, now)
            .unwrap()
            .renew_at_ms;
        assert!((window.0..=window.1).contains(&chosen));
        assert_eq!(state.renewal_due(Some("a.1"), 0, not_after).0, chosen);
        let (_, source) = state.renewal_due(Some("a.1"), 0, not_after);
        assert!(matches!(source, Source::Window(_)));
        // Another certificate: the lifetime rule.
        let (due, source) = state.renewal_due(Some("b.2"), 0, not_after);
        assert_eq!((due, source), (60 * DAY_MS, Source::Lifetime(None)));
        // Retry-After of an hour is stretched to 6 hours; of days, shortened to one.
        assert_eq!(state.ari_poll_at_ms, Some(now + 6 * 3_600_000));
        assert!(!state.ari_due(now + 3_600_000));
        let again = state
            .ari_answered("a.1", window, not_after, hour * 72, now)
            .unwrap();
        assert_eq!(
            again.renew_at_ms, chosen,
            "the same window keeps its moment"
        );
        assert_eq!(state.ari_poll_at_ms, Some(now + DAY_MS));
        let moved = (10 * DAY_MS, 10 * DAY_MS + 1000);
        let moved_to = state
            .ari_answered("a.1", moved, not_after, hour, now)
            .unwrap();
        assert!((moved.0..=moved.1).contains(&moved_to.renew_at_ms));
        // A renewal keeps what the CA said, and when to ask it next.
        state.succeeded(now);
        assert!(state.has_window_for("a.1"));
        assert_eq!(state.ari_poll_at_ms, Some(now + 6 * 3_600_000));
    }

    #[test]
    fn without_a_usable_window_the_lifetime_rule_holds_and_says_why() {
        let mut state = RenewalState::default();
        let not_after = 90 * DAY_MS;
        for window in [(5, 5), (6, 5), (80 * DAY_MS, 91 * DAY_MS)] {
            let error = state
                .ari_answered("a.1", window, not_after, Duration::ZERO, 0)
                .unwrap_err();
            assert!(error.contains("unusable renewal window"), "{error}");
            let (due, source) = state.renewal_due(Some("a.1"), 0, not_after);
            assert_eq!(due, 60 * DAY_MS);
            assert_eq!(source, Source::Lifetime(Some(error.as_str())));
        }
        state.ari_failed("no ARI".into(), Duration::from_secs(60), DAY_MS);
        assert_eq!(state.ari_poll_at_ms, Some(DAY_MS + 6 * 3_600_000));
        assert_eq!(
            state.renewal_due(None, 0, not_after).1,
            Source::Lifetime(Some("no ARI"))
        );
    }

    #[test]
    fn state_survives_a_restart() {
        let dir = tempfile::TempDir::new().unwrap();
        let tls = dir.path().join("tls");
        assert_eq!(RenewalState::load(&tls), RenewalState::default());
        let mut state = RenewalState::default();
        state.failed("the CA could not validate".into(), 1_000);
        let window = (2_000, 3_000);
        let _ = state.ari_answered("a.1", window, 4_000, Duration::ZERO, 1_000);
        state.save(&tls).unwrap();
        assert_eq!(RenewalState::load(&tls), state);
    }
}
