//! Transactions (RFC 3261 §17).
//!
//! The four state machines of §17, with the corrections of RFC 6026, deal in bytes, status codes
//! and `now`: their owner parses messages, decides what to forward and carries out each
//! [`Output`] ([`ClientInvite`], [`ClientNonInvite`], [`ServerInvite`], [`ServerNonInvite`]).
//!
//! [`ServerTransactions`] serves requests answered by hotline itself (§17.2.2): over UDP the
//! final response is kept for Timer J, so that a retransmitted request gets the same response
//! instead of being processed twice (a retransmitted REGISTER would otherwise replay its
//! nonce-count and fail).

mod client_invite;
mod client_non_invite;
mod machine;
mod server_invite;
mod server_non_invite;
#[cfg(test)]
mod sim;

use std::collections::{HashMap, VecDeque};

use crate::sip::{Message, Via};

pub use self::client_invite::ClientInvite;
pub use self::client_non_invite::ClientNonInvite;
pub use self::machine::{Output, State, TimerName, Timers};
pub use self::server_invite::ServerInvite;
pub use self::server_non_invite::ServerNonInvite;

/// T1, the RTT estimate of RFC 3261 §17.1.1.1.
pub const T1_MS: u64 = 500;
/// Timer J: how long a completed non-INVITE server transaction absorbs retransmissions.
pub const TIMER_J_MS: u64 = 64 * T1_MS;

/// Transaction key of RFC 3261 §17.2.3: branch, sent-by and method.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Key(String);

impl Key {
    /// `None` for requests without an RFC 3261 branch (magic cookie `z9hG4bK`), which cannot be
    /// matched reliably.
    pub fn of(request: &Message, via: &Via<'_>) -> Option<Key> {
        Key::for_method(via, request.method_text()?)
    }

    /// The key of the transaction a request with this `Via` would belong to with `method`: a
    /// CANCEL, and the ACK for a non-2xx final response, name their INVITE's transaction
    /// (§9.2, §17.2.3).
    pub fn for_method(via: &Via<'_>, method: &str) -> Option<Key> {
        let branch = via.branch().filter(|b| b.starts_with("z9hG4bK"))?;
        let port = via.port.unwrap_or(0);
        Some(Key(format!("{branch} {} {port} {method}", via.host)))
    }
}

/// Completed transactions, bounded: when full the oldest is forgotten first.
pub struct ServerTransactions {
    responses: HashMap<Key, Vec<u8>>,
    /// Keys by expiry time, oldest first (every entry lives exactly Timer J).
    expiry: VecDeque<(u64, Key)>,
    capacity: usize,
}

impl ServerTransactions {
    pub fn new(capacity: usize) -> ServerTransactions {
        ServerTransactions {
            responses: HashMap::new(),
            expiry: VecDeque::new(),
            capacity,
        }
    }

    /// The response already sent for this transaction, if it is a retransmission.
    pub fn response(&self, key: &Key) -> Option<&[u8]> {
        self.responses.get(key).map(Vec::as_slice)
    }

    pub fn complete(&mut self, key: Key, response: Vec<u8>, now_ms: u64) {
        self.expire(now_ms);
        if self.responses.len() >= self.capacity
            && let Some((_, oldest)) = self.expiry.pop_front()
        {
            self.responses.remove(&oldest);
        }
        if self.responses.insert(key.clone(), response).is_none() {
            self.expiry.push_back((now_ms + TIMER_J_MS, key));
        }
    }

    pub fn expire(&mut self, now_ms: u64) {
        while let Some((at, _)) = self.expiry.front() {
            if *at > now_ms {
                break;
            }
            if let Some((_, key)) = self.expiry.pop_front() {
                self.responses.remove(&key);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.responses.len()
    }

    pub fn is_empty(&self) -> bool {
        self.responses.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_for(branch: &str) -> Key {
        let text = format!(
            "REGISTER sip:[::1] SIP/2.0\r\nVia: SIP/2.0/UDP [::1]:5070;branch={branch}\r\nCSeq: 1 REGISTER\r\n\r\n"
        );
        let message = Message::parse(text.as_bytes(), 16).unwrap();
        let via = message.top_via().unwrap();
        Key::of(&message, &via).unwrap()
    }

    #[test]
    fn keeps_responses_for_timer_j() {
        let mut t = ServerTransactions::new(8);
        t.complete(key_for("z9hG4bK1"), b"200".to_vec(), 1000);
        assert_eq!(t.response(&key_for("z9hG4bK1")), Some(&b"200"[..]));
        assert_eq!(t.response(&key_for("z9hG4bK2")), None);
        t.expire(1000 + TIMER_J_MS - 1);
        assert_eq!(t.len(), 1);
        t.expire(1000 + TIMER_J_MS);
        assert!(t.is_empty());
    }

    #[test]
    fn bounded_oldest_first() {
        let mut t = ServerTransactions::new(2);
        for (i, b) in ["z9hG4bKa", "z9hG4bKb", "z9hG4bKc"].iter().enumerate() {
            t.complete(key_for(b), vec![i as u8], i as u64);
        }
        assert_eq!(t.len(), 2);
        assert_eq!(t.response(&key_for("z9hG4bKa")), None);
        assert_eq!(t.response(&key_for("z9hG4bKc")), Some(&[2u8][..]));
    }

    #[test]
    fn no_key_without_magic_cookie() {
        let message = Message::parse(
            b"REGISTER sip:x SIP/2.0\r\nVia: SIP/2.0/UDP [::1];branch=old\r\nCSeq: 1 REGISTER\r\n\r\n",
            16,
        )
        .unwrap();
        assert!(Key::of(&message, &message.top_via().unwrap()).is_none());
    }
}
