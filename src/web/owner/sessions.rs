//! The owner's sessions: a random token in a cookie, kept in memory with its CSRF token. A
//! session ends after [`IDLE`] without a request, at logout, or when the owner's password
//! changes (each session remembers the password hash it was opened under).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

use crate::core::auth::{constant_time_eq, hex};

/// Inactivity after which a session ends.
pub const IDLE: Duration = Duration::from_secs(30 * 60);

/// Sessions at once (browsers of one owner); a new one beyond ends the least recently used.
pub const CAPACITY: usize = 16;

/// The session cookie.
pub const COOKIE: &str = "hotline_session";

/// 32 random bytes, hex: the session token and the CSRF token.
pub fn token() -> Option<String> {
    let mut bytes = [0u8; 32];
    SystemRandom::new().fill(&mut bytes).ok()?;
    Some(hex(&bytes))
}

/// Compares secrets in time independent of where they differ, under a key of its own (false
/// if there is no randomness for one).
pub fn same_secret(a: &str, b: &str) -> bool {
    hmac::Key::generate(hmac::HMAC_SHA256, &SystemRandom::new())
        .is_ok_and(|key| constant_time_eq(&key, a.as_bytes(), b.as_bytes()))
}

#[derive(Debug, Clone)]
pub struct Session {
    pub csrf: String,
    /// The owner's password hash when the session opened.
    password: String,
    last_seen: Instant,
}

#[derive(Default)]
pub struct Sessions {
    open: HashMap<String, Session>,
}

impl Sessions {
    /// Opens a session under the password hash `password`; returns its token.
    pub fn open(&mut self, password: &str, now: Instant) -> Option<String> {
        self.open
            .retain(|_, s| now.duration_since(s.last_seen) < IDLE);
        if self.open.len() >= CAPACITY {
            let oldest = self.open.iter().min_by_key(|(_, s)| s.last_seen);
            if let Some(oldest) = oldest.map(|(token, _)| token.clone()) {
                self.open.remove(&oldest);
            }
        }
        let (token, csrf) = (token()?, token()?);
        let session = Session {
            csrf,
            password: password.to_owned(),
            last_seen: now,
        };
        self.open.insert(token.clone(), session);
        Some(token)
    }

    /// The live session of `token` under the current password hash, touched; a session idle too
    /// long or opened under another password ends here.
    pub fn touch(&mut self, token: &str, password: &str, now: Instant) -> Option<Session> {
        let session = self.open.get_mut(token)?;
        if now.duration_since(session.last_seen) >= IDLE || session.password != password {
            self.open.remove(token);
            return None;
        }
        session.last_seen = now;
        Some(session.clone())
    }

    pub fn close(&mut self, token: &str) {
        self.open.remove(token);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_end_when_idle_on_logout_and_on_a_new_password() {
        let mut sessions = Sessions::default();
        let start = Instant::now();
        let token = sessions.open("hash1", start).unwrap();
        assert_eq!(token.len(), 64);
        let later = start + IDLE - Duration::from_secs(1);
        assert!(sessions.touch(&token, "hash1", later).is_some());
        assert!(sessions.touch(&token, "hash1", later + IDLE).is_none());
        let token = sessions.open("hash1", start).unwrap();
        assert!(sessions.touch(&token, "hash2", start).is_none());
        assert!(sessions.touch(&token, "hash1", start).is_none(), "ended");
        let token = sessions.open("hash1", start).unwrap();
        sessions.close(&token);
        assert!(sessions.touch(&token, "hash1", start).is_none());
    }

    #[test]
    fn capacity_ends_the_least_recently_used() {
        let mut sessions = Sessions::default();
        let start = Instant::now();
        let first = sessions.open("h", start).unwrap();
        for i in 1..=CAPACITY as u64 {
            sessions.open("h", start + Duration::from_secs(i)).unwrap();
        }
        assert_eq!(sessions.open.len(), CAPACITY);
        assert!(sessions.touch(&first, "h", start).is_none());
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "ab"));
    }
}
