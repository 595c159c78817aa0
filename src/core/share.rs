//! Each /64's share of the proxy's transaction table: one household, or one attacker with all
//! the addresses of its prefix, can hold at most so many transactions in progress, so that the
//! table always has room for the other phones.

use std::collections::HashMap;
use std::net::IpAddr;

/// Transactions in progress per /64, each at most `limit`.
pub struct Shares {
    by_prefix: HashMap<u64, usize>,
    limit: usize,
}

impl Shares {
    pub fn new(limit: usize) -> Shares {
        Shares {
            by_prefix: HashMap::new(),
            limit,
        }
    }

    /// Whether `source`'s /64 may start another transaction.
    pub fn has_room(&self, source: IpAddr) -> bool {
        self.by_prefix.get(&prefix_64(source)).copied().unwrap_or(0) < self.limit
    }

    pub fn add(&mut self, source: IpAddr) {
        *self.by_prefix.entry(prefix_64(source)).or_default() += 1;
    }

    pub fn remove(&mut self, source: IpAddr) {
        let prefix = prefix_64(source);
        if let Some(count) = self.by_prefix.get_mut(&prefix) {
            *count -= 1;
            if *count == 0 {
                self.by_prefix.remove(&prefix);
            }
        }
    }
}

/// The /64 an address belongs to (an IPv4 address counts alone).
fn prefix_64(address: IpAddr) -> u64 {
    match address {
        IpAddr::V6(v6) => (v6.to_bits() >> 64) as u64,
        IpAddr::V4(v4) => u64::from(v4.to_bits()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_holds_at_most_its_limit() {
        let mut shares = Shares::new(2);
        let a: IpAddr = "2001:db8::a".parse().unwrap();
        let b: IpAddr = "2001:db8::b".parse().unwrap();
        let other: IpAddr = "2001:db8:0:1::a".parse().unwrap();
        shares.add(a);
        assert!(shares.has_room(b));
        shares.add(b);
        assert!(!shares.has_room(a), "a /64 counts all its addresses");
        assert!(shares.has_room(other));
        shares.remove(a);
        assert!(shares.has_room(b));
        shares.remove(b);
        assert!(shares.by_prefix.is_empty());
    }
}
