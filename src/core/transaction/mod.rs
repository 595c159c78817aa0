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
use std::hash::{BuildHasher, Hash, RandomState};
use std::sync::LazyLock;

use crate::sip::{Message, Method, Via};

pub use self::client_invite::ClientInvite;
pub use self::client_non_invite::ClientNonInvite;
pub use self::machine::{Echo, Lingering, Output, State, TimerName, Timers};
pub use self::server_invite::ServerInvite;
pub use self::server_non_invite::ServerNonInvite;

/// T1, the RTT estimate of RFC 3261 §17.1.1.1.
pub const T1_MS: u64 = 500;
/// Timer J: how long a completed non-INVITE server transaction absorbs retransmissions.
pub const TIMER_J_MS: u64 = 64 * T1_MS;

/// Transaction key of RFC 3261 §17.2.3 (branch, sent-by and method), as 128 bits of SipHash
/// under two random keys of this process: 16 bytes per transaction instead of the text, and
/// without those keys nobody can make two transactions collide.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key(u128);

static KEY_HASHERS: LazyLock<[RandomState; 2]> =
    LazyLock::new(|| [RandomState::new(), RandomState::new()]);

impl Key {
    /// The key of the transaction `request` belongs to; `None` only for a request without a
    /// method or CSeq.
    pub fn of(request: &Message, via: &Via<'_>) -> Option<Key> {
        Key::for_method_text(request, via, request.method_text()?)
    }

    /// The key of the transaction `request` would belong to with `method`: a CANCEL, and the
    /// ACK for a non-2xx final response, name their INVITE's transaction (§9.2, §17.2.3). An
    /// RFC 3261 branch (magic cookie `z9hG4bK` and more) is the key; an older client's request
    /// is matched the RFC 2543 way, by Request-URI, Call-ID, From tag, CSeq number and top Via.
    pub fn for_method(request: &Message, via: &Via<'_>, method: Method) -> Option<Key> {
        Key::for_method_text(request, via, method.as_str())
    }

    fn for_method_text(request: &Message, via: &Via<'_>, method: &str) -> Option<Key> {
        let port = via.port.unwrap_or(0);
        let branch = via.branch().unwrap_or_default();
        if branch.len() > MAGIC_COOKIE.len() && branch.starts_with(MAGIC_COOKIE) {
            return Some(Key::digest((branch, via.host.to_string(), port, method)));
        }
        let from_tag = request.from().and_then(|f| f.tag()).unwrap_or_default();
        Some(Key::digest((
            request.request_uri()?,
            request.call_id()?,
            from_tag,
            request.cseq()?.number,
            (via.host.to_string(), port, branch, method),
        )))
    }

    fn digest(fields: impl Hash) -> Key {
        let [high, low] = KEY_HASHERS.each_ref().map(|keys| keys.hash_one(&fields));
        Key(u128::from(high) << 64 | u128::from(low))
    }
}

/// What RFC 3261 branches start with (§8.1.1.7).
const MAGIC_COOKIE: &str = "z9hG4bK";

/// Below this many slots a table is not worth shrinking: tables keep the room of their busiest
/// moment unless told, and a burst of registrations or calls would hold it for good.
pub const SHRINK_ABOVE: usize = 1024;

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
        if self.responses.insert(key, response).is_none() {
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
        if self.responses.capacity() > SHRINK_ABOVE.max(4 * self.responses.len()) {
            self.responses.shrink_to(2 * self.responses.len());
            self.expiry.shrink_to(2 * self.expiry.len());
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
    fn gives_back_the_room_of_a_burst() {
        let mut t = ServerTransactions::new(8192);
        for i in 0..5000 {
            t.complete(key_for(&format!("z9hG4bK{i}")), vec![0; 100], 0);
        }
        assert!(t.responses.capacity() >= 5000);
        t.expire(TIMER_J_MS);
        assert!(t.is_empty());
        assert!(
            t.responses.capacity() <= SHRINK_ABOVE,
            "{}",
            t.responses.capacity()
        );
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
    fn rfc2543_requests_are_matched_by_their_fields() {
        let key = |text: &str| {
            let message = Message::parse(text.as_bytes(), 16).unwrap();
            Key::of(&message, &message.top_via().unwrap()).unwrap()
        };
        let old = "REGISTER sip:x SIP/2.0\r\nVia: SIP/2.0/UDP [::1];branch=old\r\n\
                   From: <sip:a@x>;tag=1\r\nCall-ID: c\r\nCSeq: 1 REGISTER\r\n\r\n";
        assert_eq!(key(old), key(old));
        assert_ne!(key(old), key(&old.replace("CSeq: 1", "CSeq: 2")));
        assert_ne!(key(old), key(&old.replace("Call-ID: c", "Call-ID: d")));
        // A bare magic cookie is no RFC 3261 branch.
        let bare = old.replace("branch=old", "branch=z9hG4bK");
        assert_ne!(key(&bare), key(&bare.replace("CSeq: 1", "CSeq: 2")));
    }
}
