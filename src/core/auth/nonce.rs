//! Stateless nonces, and the nonce-counts of the nonces that authenticated.
//!
//! A nonce is 56 lower-case hex digits: issue time in ms (8 bytes, big-endian), sequence number
//! (4 bytes), then HMAC-SHA256(secret, issue time ‖ sequence ‖ client ‖ realm) truncated to 16
//! bytes, where the client is the address and transport the nonce was issued to. Issuing one
//! stores nothing, so asking for challenges cannot fill memory, and a nonce opens only for the
//! client it was issued to.

use std::collections::BTreeMap;

use ring::hmac;

use super::{constant_time_eq, hex};

const ID_LEN: usize = 12;
const MAC_LEN: usize = 16;
const NONCE_LEN: usize = 2 * (ID_LEN + MAC_LEN);

/// Identifies a nonce: its issue time, then a sequence number that tells apart nonces issued in
/// the same millisecond. The order is the order of age, which eviction and the horizon rely on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct NonceId {
    pub(super) issued_ms: u64,
    pub(super) sequence: u32,
}

impl NonceId {
    fn to_bytes(self) -> [u8; ID_LEN] {
        let mut bytes = [0; ID_LEN];
        let (time, sequence) = bytes.split_at_mut(8);
        time.copy_from_slice(&self.issued_ms.to_be_bytes());
        sequence.copy_from_slice(&self.sequence.to_be_bytes());
        bytes
    }
}

/// The nonce text for `id` in `realm`, issued to `client`.
pub(super) fn seal(key: &hmac::Key, id: NonceId, realm: &str, client: &[u8]) -> String {
    let id_bytes = id.to_bytes();
    let mut nonce = hex(&id_bytes);
    nonce.push_str(&hex(&mac(key, &id_bytes, realm, client)));
    nonce
}

/// The id of a nonce this server issued for `realm` to `client`; `None` for anything else:
/// malformed, forged, issued for another realm, to another client or under another secret.
pub(super) fn open(key: &hmac::Key, nonce: &str, realm: &str, client: &[u8]) -> Option<NonceId> {
    if nonce.len() != NONCE_LEN {
        return None;
    }
    let mut bytes = [0u8; ID_LEN + MAC_LEN];
    for (byte, pair) in bytes.iter_mut().zip(nonce.as_bytes().chunks_exact(2)) {
        let [high, low] = pair else { return None };
        *byte = lower_hex_digit(*high)? << 4 | lower_hex_digit(*low)?;
    }
    let (id_bytes, given_mac) = bytes.split_at(ID_LEN);
    let (time, sequence) = id_bytes.split_at(8);
    let id = NonceId {
        issued_ms: u64::from_be_bytes(time.try_into().ok()?),
        sequence: u32::from_be_bytes(sequence.try_into().ok()?),
    };
    constant_time_eq(key, &mac(key, id_bytes, realm, client), given_mac).then_some(id)
}

/// The client has a fixed length, so it cannot run into the realm.
fn mac(key: &hmac::Key, id_bytes: &[u8], realm: &str, client: &[u8]) -> [u8; MAC_LEN] {
    let mut context = hmac::Context::with_key(key);
    context.update(id_bytes);
    context.update(client);
    context.update(realm.as_bytes());
    let mut truncated = [0; MAC_LEN];
    for (out, tag) in truncated.iter_mut().zip(context.sign().as_ref()) {
        *out = *tag;
    }
    truncated
}

/// Only lower case, as issued: one nonce has one spelling.
fn lower_hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

/// What a nonce-count means for its nonce.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum NonceCountCheck {
    /// Greater than any accepted before; now recorded.
    Advanced,
    /// Not greater than the last one accepted: a replay, or requests reordered in transit.
    Replayed,
    /// The nonce is at or before the horizon: its count was forgotten (or never seen), so the
    /// request cannot be told from a replay and the client must take a fresh nonce.
    Forgotten,
}

/// The last nonce-count of each nonce that authenticated. Only a client that knows a password
/// can add an entry, and the table holds at most `capacity`, forgetting the oldest nonces first.
/// The horizon is the newest nonce forgotten: anything not in the table and not after it is
/// [`NonceCountCheck::Forgotten`], never trusted afresh.
pub(super) struct NonceCounts {
    last: BTreeMap<NonceId, u32>,
    capacity: usize,
    horizon: Option<NonceId>,
}

impl NonceCounts {
    /// A table that also treats every nonce issued before `forgotten_before_ms` as forgotten:
    /// the counts of a previous run are lost, and its nonces must not become replayable.
    pub(super) fn new(capacity: usize, forgotten_before_ms: u64) -> NonceCounts {
        NonceCounts {
            last: BTreeMap::new(),
            capacity,
            horizon: forgotten_before_ms.checked_sub(1).map(|issued_ms| NonceId {
                issued_ms,
                sequence: u32::MAX,
            }),
        }
    }

    /// Checks and records `nc` for nonce `id`. Entries issued before `expired_before_ms` are
    /// dropped on the way, as their nonces are stale anyway.
    pub(super) fn check(
        &mut self,
        id: NonceId,
        nc: u32,
        expired_before_ms: u64,
    ) -> NonceCountCheck {
        if let Some(last) = self.last.get_mut(&id) {
            if nc > *last {
                *last = nc;
                return NonceCountCheck::Advanced;
            }
            return NonceCountCheck::Replayed;
        }
        if self.horizon.is_some_and(|horizon| id <= horizon) {
            return NonceCountCheck::Forgotten;
        }
        if nc == 0 {
            return NonceCountCheck::Replayed;
        }
        while let Some(entry) = self.last.first_entry() {
            if entry.key().issued_ms >= expired_before_ms {
                break;
            }
            let (expired, _) = entry.remove_entry();
            self.forget(expired);
        }
        self.last.insert(id, nc);
        while self.last.len() > self.capacity {
            let Some((oldest, _)) = self.last.pop_first() else {
                break;
            };
            self.forget(oldest);
        }
        NonceCountCheck::Advanced
    }

    fn forget(&mut self, id: NonceId) {
        self.horizon = self.horizon.max(Some(id));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> hmac::Key {
        hmac::Key::new(hmac::HMAC_SHA256, &[7; 32])
    }

    fn id(issued_ms: u64, sequence: u32) -> NonceId {
        NonceId {
            issued_ms,
            sequence,
        }
    }

    #[test]
    fn nonces_round_trip_and_resist_tampering() {
        let key = key();
        let nonce = seal(&key, id(1_700_000_000_123, 42), "example.org", b"a");
        assert_eq!(nonce.len(), NONCE_LEN);
        assert!(nonce.starts_with("0000018bcfe5687b0000002a"), "{nonce}");
        assert_eq!(
            open(&key, &nonce, "example.org", b"a"),
            Some(id(1_700_000_000_123, 42))
        );
        assert_eq!(open(&key, &nonce, "example.org", b"b"), None);

        assert_eq!(open(&key, &nonce, "example.net", b"a"), None);
        let other_key = hmac::Key::new(hmac::HMAC_SHA256, &[8; 32]);
        assert_eq!(open(&other_key, &nonce, "example.org", b"a"), None);
        assert_eq!(open(&key, &nonce.to_uppercase(), "example.org", b"a"), None);
        assert_eq!(open(&key, &nonce[1..], "example.org", b"a"), None);
        assert_eq!(open(&key, &format!("{nonce}0"), "example.org", b"a"), None);
        assert_eq!(open(&key, "", "example.org", b"a"), None);
        assert_eq!(
            open(&key, &"é".repeat(NONCE_LEN / 2), "example.org", b"a"),
            None
        );
        for at in 0..nonce.len() {
            let mut tampered = nonce.clone().into_bytes();
            tampered[at] = if tampered[at] == b'0' { b'1' } else { b'0' };
            let tampered = String::from_utf8(tampered).unwrap();
            assert_eq!(
                open(&key, &tampered, "example.org", b"a"),
                None,
                "byte {at}"
            );
        }
    }

    #[test]
    fn counts_must_grow() {
        let mut counts = NonceCounts::new(4, 0);
        assert_eq!(counts.check(id(5, 0), 0, 0), NonceCountCheck::Replayed);
        assert_eq!(counts.check(id(5, 0), 1, 0), NonceCountCheck::Advanced);
        assert_eq!(counts.check(id(5, 0), 1, 0), NonceCountCheck::Replayed);
        assert_eq!(counts.check(id(5, 0), 3, 0), NonceCountCheck::Advanced);
        assert_eq!(counts.check(id(5, 0), 2, 0), NonceCountCheck::Replayed);
        assert_eq!(counts.check(id(5, 1), 1, 0), NonceCountCheck::Advanced);
    }

    #[test]
    fn eviction_moves_the_horizon() {
        let mut counts = NonceCounts::new(2, 0);
        assert_eq!(counts.check(id(10, 0), 1, 0), NonceCountCheck::Advanced);
        assert_eq!(counts.check(id(20, 1), 1, 0), NonceCountCheck::Advanced);
        assert_eq!(counts.check(id(30, 2), 1, 0), NonceCountCheck::Advanced);
        // The oldest nonce was evicted; its next request must not pass as new.
        assert_eq!(counts.check(id(10, 0), 2, 0), NonceCountCheck::Forgotten);
        // Nor may any nonce issued before it that never authenticated.
        assert_eq!(counts.check(id(5, 9), 1, 0), NonceCountCheck::Forgotten);
        assert_eq!(counts.check(id(20, 1), 2, 0), NonceCountCheck::Advanced);
        assert_eq!(counts.check(id(30, 2), 2, 0), NonceCountCheck::Advanced);
        // A nonce older than everything tracked yet newer than the horizon enters and is evicted
        // at once, so it stays usable only once.
        assert_eq!(counts.check(id(15, 3), 1, 0), NonceCountCheck::Advanced);
        assert_eq!(counts.check(id(15, 3), 2, 0), NonceCountCheck::Forgotten);
        assert_eq!(counts.last.len(), 2);
    }

    #[test]
    fn zero_capacity_accepts_each_nonce_once() {
        let mut counts = NonceCounts::new(0, 0);
        assert_eq!(counts.check(id(1, 0), 1, 0), NonceCountCheck::Advanced);
        assert_eq!(counts.check(id(1, 0), 2, 0), NonceCountCheck::Forgotten);
        assert!(counts.last.is_empty());
    }

    #[test]
    fn expired_entries_are_dropped() {
        let mut counts = NonceCounts::new(10, 0);
        assert_eq!(counts.check(id(100, 0), 1, 0), NonceCountCheck::Advanced);
        assert_eq!(counts.check(id(200, 1), 1, 0), NonceCountCheck::Advanced);
        assert_eq!(counts.check(id(300, 2), 1, 150), NonceCountCheck::Advanced);
        assert_eq!(counts.last.len(), 2);
        assert_eq!(counts.check(id(100, 0), 2, 150), NonceCountCheck::Forgotten);
    }

    #[test]
    fn nonces_of_a_previous_run_are_forgotten() {
        let mut counts = NonceCounts::new(10, 1_000);
        assert_eq!(
            counts.check(id(999, u32::MAX), 5, 0),
            NonceCountCheck::Forgotten
        );
        assert_eq!(counts.check(id(1_000, 0), 1, 0), NonceCountCheck::Advanced);
    }
}
