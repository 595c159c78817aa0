//! Bans of sources that fail authentication again and again: what Fail2Ban does for Kamailio,
//! done in the core so that it works without Fail2Ban and knows that one attacker owns a whole
//! IPv6 prefix.
//!
//! `failures` authentication failures within `window` from one address ban that address; the
//! same number from several addresses of one prefix (`/64` by default) bans the prefix. A ban
//! lasts `duration`, and every message from a banned source is dropped without a reply.
//!
//! Memory is bounded: at most `capacity` failure counters (each keeps at most `failures`
//! timestamps) and, apart from them, at most `capacity` bans, so that counters of new sources
//! never push out a ban in force. A full table drops what protects least: the counter whose
//! last failure is oldest, the ban that ends soonest.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::str::FromStr;
use std::time::Duration;

use super::clock::millis;

/// The most failures a ban may wait for: a counter keeps one timestamp per failure.
pub const MAX_FAILURES: u32 = 100;

/// An address (`2001:db8::66/128`) or an IPv6 prefix (`2001:db8:1:2::/64`), its host bits zero
/// so that one scope has one spelling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Scope {
    network: Ipv6Addr,
    length: u8,
}

impl Scope {
    /// The prefix of `length` bits (at most 128) that holds `ip`; an IPv4 address counts as its
    /// IPv4-mapped IPv6 address.
    pub fn new(ip: IpAddr, length: u8) -> Scope {
        let length = length.min(128);
        let bits = u128::from(ipv6(ip)) & mask(length);
        Scope {
            network: Ipv6Addr::from(bits),
            length,
        }
    }

    /// The scope of one address.
    pub fn address(ip: IpAddr) -> Scope {
        Scope::new(ip, 128)
    }

    pub fn length(&self) -> u8 {
        self.length
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        Scope::new(ip, self.length) == *self
    }

    /// Whether every address of `other` is in this scope.
    fn covers(&self, other: &Scope) -> bool {
        other.length >= self.length && self.contains(IpAddr::V6(other.network))
    }
}

fn ipv6(ip: IpAddr) -> Ipv6Addr {
    match ip {
        IpAddr::V6(ip) => ip,
        IpAddr::V4(ip) => ip.to_ipv6_mapped(),
    }
}

fn mask(length: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(length)).unwrap_or(0)
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.length)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0:?} is not an IPv6 address or prefix: write one such as 2001:db8::66, 2001:db8::66/128 \
     or 2001:db8:1:2::/64"
)]
pub struct ScopeError(String);

/// `2001:db8::66` (one address) or `2001:db8:1:2::/64`; host bits of a prefix are ignored.
impl FromStr for Scope {
    type Err = ScopeError;

    fn from_str(text: &str) -> Result<Scope, ScopeError> {
        let error = || ScopeError(text.to_owned());
        let (address, length) = match text.split_once('/') {
            Some((address, length)) => (address, length.parse().map_err(|_| error())?),
            None => (text, 128),
        };
        let address: Ipv6Addr = address.parse().map_err(|_| error())?;
        if length > 128 {
            return Err(error());
        }
        Ok(Scope::new(IpAddr::V6(address), length))
    }
}

/// What `hotline ban remove` names: a bare address means every ban that covers it (whatever
/// scope the ban has), a prefix or `/128` exactly that ban.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Scope(Scope),
    Address(Ipv6Addr),
}

impl Target {
    pub fn matches(&self, scope: &Scope) -> bool {
        match self {
            Target::Scope(target) => target == scope,
            Target::Address(address) => scope.contains(IpAddr::V6(*address)),
        }
    }
}

impl FromStr for Target {
    type Err = ScopeError;

    fn from_str(text: &str) -> Result<Target, ScopeError> {
        if text.contains('/') {
            text.parse().map(Target::Scope)
        } else {
            text.parse()
                .map(Target::Address)
                .map_err(|_| ScopeError(text.to_owned()))
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Scope(scope) => scope.fmt(f),
            Target::Address(address) => address.fmt(f),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ban {
    pub scope: Scope,
    /// Unix time in milliseconds when the ban ends.
    pub until_ms: u64,
    /// Why, for the administrator: `5 authentication failures in 600 s`.
    pub reason: String,
}

/// A message from a banned source, to be dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dropped {
    pub scope: Scope,
    pub until_ms: u64,
    /// The first message the ban drops: log this one only, so that a flood makes one line.
    pub first: bool,
}

/// A ban that ran out, with the number of messages it dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ended {
    pub ban: Ban,
    pub dropped: u64,
}

/// When failures ban a source, and for how long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Authentication failures from one address, or from one prefix, that ban it.
    pub failures: u32,
    /// How long those failures count.
    pub window: Duration,
    /// How long a ban lasts.
    pub duration: Duration,
    /// Length of the prefix whose addresses count together (a /64 is one subnet, one owner).
    pub prefix: u8,
    /// Sources whose failures are counted, and bans held, each.
    pub capacity: usize,
}

impl Default for Settings {
    /// The defaults of `config/hotline.toml`, which says why.
    fn default() -> Settings {
        Settings {
            failures: 5,
            window: Duration::from_secs(600),
            duration: Duration::from_secs(3600),
            prefix: 64,
            capacity: 4096,
        }
    }
}

pub struct Bans {
    threshold: usize,
    window_ms: u64,
    duration_ms: u64,
    prefix: u8,
    capacity: usize,
    /// Times of recent failures per address and per prefix, oldest first, at most `threshold`.
    failures: HashMap<Scope, VecDeque<u64>>,
    active: HashMap<Scope, Active>,
    /// The prefix lengths of the bans in force: the lookups one message costs (none without
    /// bans).
    lengths: Vec<u8>,
}

struct Active {
    ban: Ban,
    dropped: u64,
}

impl Bans {
    pub fn new(settings: &Settings) -> Bans {
        Bans {
            threshold: settings.failures.clamp(1, MAX_FAILURES) as usize,
            window_ms: millis(settings.window),
            duration_ms: millis(settings.duration),
            prefix: settings.prefix.min(128),
            capacity: settings.capacity.max(1),
            failures: HashMap::new(),
            active: HashMap::new(),
            lengths: Vec::new(),
        }
    }

    /// The number of failures that starts a ban (and that each ban's log line reports).
    pub fn threshold(&self) -> usize {
        self.threshold
    }

    pub fn is_banned(&self, ip: IpAddr, now_ms: u64) -> bool {
        self.covering(ip, now_ms).is_some()
    }

    /// If `ip` is banned, counts one more dropped message and says which ban drops it.
    pub fn drop_from(&mut self, ip: IpAddr, now_ms: u64) -> Option<Dropped> {
        let scope = self.covering(ip, now_ms)?;
        let active = self.active.get_mut(&scope)?;
        active.dropped += 1;
        Some(Dropped {
            scope,
            until_ms: active.ban.until_ms,
            first: active.dropped == 1,
        })
    }

    /// Counts an authentication failure from `ip`; returns the ban it starts, if any. The
    /// address is banned when it alone reached the threshold, else its prefix when the prefix
    /// did. Failures answered by a ban stop counting, so that one banned device and a typo on
    /// another do not ban their whole network.
    pub fn record_failure(&mut self, ip: IpAddr, now_ms: u64) -> Option<Ban> {
        if self.is_banned(ip, now_ms) {
            return None;
        }
        let address = Scope::address(ip);
        let prefix = Scope::new(ip, self.prefix);
        let by_address = self.count(address, now_ms);
        let by_prefix = match prefix == address {
            true => by_address,
            false => self.count(prefix, now_ms),
        };
        let scope = if by_address >= self.threshold {
            address
        } else if by_prefix >= self.threshold {
            prefix
        } else {
            return None;
        };
        self.forget_failures(scope);
        let ban = Ban {
            scope,
            until_ms: now_ms.saturating_add(self.duration_ms),
            reason: format!(
                "{} authentication failures in {} s",
                self.threshold,
                self.window_ms / 1000
            ),
        };
        self.insert(ban.clone());
        Some(ban)
    }

    /// Puts a ban in force (a new one, or one restored from the store). A ban of a scope
    /// already banned extends it (as a new ban: the old one has run out unless restored
    /// twice); when the table is full, the ban that ends soonest goes.
    pub fn insert(&mut self, ban: Ban) {
        if let Some(existing) = self.active.get_mut(&ban.scope) {
            if ban.until_ms > existing.ban.until_ms {
                *existing = Active { ban, dropped: 0 };
            }
            return;
        }
        if self.active.len() >= self.capacity {
            let soonest = self
                .active
                .values()
                .map(|a| &a.ban)
                .min_by_key(|b| b.until_ms);
            match soonest {
                Some(soonest) if soonest.until_ms < ban.until_ms => {
                    let scope = soonest.scope;
                    self.remove(&scope);
                }
                _ => return,
            }
        }
        if !self.lengths.contains(&ban.scope.length) {
            self.lengths.push(ban.scope.length);
            self.lengths.sort_unstable_by(|a, b| b.cmp(a));
        }
        self.active.insert(ban.scope, Active { ban, dropped: 0 });
    }

    /// Lifts the ban of exactly `scope`; false if there was none.
    pub fn remove(&mut self, scope: &Scope) -> bool {
        let removed = self.active.remove(scope).is_some();
        if removed {
            self.refresh_lengths();
        }
        removed
    }

    /// The bans in force, by scope.
    pub fn list(&self, now_ms: u64) -> Vec<Ban> {
        let mut bans: Vec<Ban> = self
            .active
            .values()
            .filter(|a| a.ban.until_ms > now_ms)
            .map(|a| a.ban.clone())
            .collect();
        bans.sort_by_key(|b| b.scope);
        bans
    }

    /// Ends the bans that ran out and forgets failures older than the window.
    pub fn expire(&mut self, now_ms: u64) -> Vec<Ended> {
        self.forget_stale(now_ms);
        let over: Vec<Scope> = self
            .active
            .values()
            .filter(|a| a.ban.until_ms <= now_ms)
            .map(|a| a.ban.scope)
            .collect();
        let ended = over
            .iter()
            .filter_map(|scope| self.active.remove(scope))
            .map(|a| Ended {
                ban: a.ban,
                dropped: a.dropped,
            })
            .collect::<Vec<_>>();
        if !ended.is_empty() {
            self.refresh_lengths();
        }
        ended
    }

    /// The ban in force that covers `ip`, longest prefix first.
    fn covering(&self, ip: IpAddr, now_ms: u64) -> Option<Scope> {
        self.lengths
            .iter()
            .map(|&length| Scope::new(ip, length))
            .find(|scope| {
                self.active
                    .get(scope)
                    .is_some_and(|a| a.ban.until_ms > now_ms)
            })
    }

    /// Adds a failure at `now_ms` to the counter of `scope`; returns the failures within the
    /// window.
    fn count(&mut self, scope: Scope, now_ms: u64) -> usize {
        if !self.failures.contains_key(&scope) && self.failures.len() >= self.capacity {
            self.make_room(now_ms);
        }
        let window = self.window_ms;
        let times = self.failures.entry(scope).or_default();
        while times
            .front()
            .is_some_and(|&t| now_ms.saturating_sub(t) >= window)
        {
            times.pop_front();
        }
        if times.len() >= self.threshold {
            times.pop_front();
        }
        times.push_back(now_ms);
        times.len()
    }

    /// Frees a counter: one without failures in the window, else the one whose last failure is
    /// oldest.
    fn make_room(&mut self, now_ms: u64) {
        self.forget_stale(now_ms);
        if self.failures.len() < self.capacity {
            return;
        }
        let oldest = self
            .failures
            .iter()
            .min_by_key(|(_, times)| times.back().copied().unwrap_or(0))
            .map(|(scope, _)| *scope);
        if let Some(oldest) = oldest {
            self.failures.remove(&oldest);
        }
    }

    /// Drops the counters without a failure in the window.
    fn forget_stale(&mut self, now_ms: u64) {
        let window = self.window_ms;
        self.failures.retain(|_, times| {
            times
                .back()
                .is_some_and(|&t| now_ms.saturating_sub(t) < window)
        });
    }

    /// Drops the failures a new ban answered: those of the banned address (from its prefix's
    /// counter too), or every counter inside a banned prefix.
    fn forget_failures(&mut self, banned: Scope) {
        if banned.length < 128 {
            self.failures.retain(|scope, _| !banned.covers(scope));
            return;
        }
        let Some(times) = self.failures.remove(&banned) else {
            return;
        };
        let prefix = Scope::new(IpAddr::V6(banned.network), self.prefix);
        if let Some(shared) = self.failures.get_mut(&prefix) {
            for t in times {
                if let Some(i) = shared.iter().position(|&s| s == t) {
                    shared.remove(i);
                }
            }
        }
    }

    fn refresh_lengths(&mut self) {
        self.lengths.clear();
        for scope in self.active.keys() {
            if !self.lengths.contains(&scope.length) {
                self.lengths.push(scope.length);
            }
        }
        self.lengths.sort_unstable_by(|a, b| b.cmp(a));
    }
}

/// A Unix time in milliseconds, written `2026-05-01T12:00:00Z`: logs and `hotline ban list`
/// show when a ban ends without a time zone database.
pub struct Utc(pub u64);

impl fmt::Display for Utc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let seconds = self.0 / 1000;
        let (days, time) = (seconds / 86_400, seconds % 86_400);
        // Howard Hinnant's civil_from_days, for days since 1970-01-01 (never negative here).
        let z = days + 719_468;
        let era = z / 146_097;
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + u64::from(month <= 2);
        write!(
            f,
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
            time / 3600,
            time / 60 % 60,
            time % 60
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_800_000_000_000;
    const MINUTE: u64 = 60_000;

    fn settings() -> Settings {
        Settings::default()
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn scope(text: &str) -> Scope {
        text.parse().unwrap()
    }

    /// `count` failures from `address`, one a minute from `start`; the last result.
    fn fail(bans: &mut Bans, address: &str, count: u64, start: u64) -> Option<Ban> {
        (0..count)
            .map(|i| bans.record_failure(ip(address), start + i * MINUTE))
            .last()
            .flatten()
    }

    #[test]
    fn scopes_parse_print_and_contain() {
        assert_eq!(scope("2001:db8::66").to_string(), "2001:db8::66/128");
        assert_eq!(scope("2001:db8::66/128"), scope("2001:db8::66"));
        assert_eq!(scope("2001:db8:1:2::/64").to_string(), "2001:db8:1:2::/64");
        assert_eq!(
            scope("2001:db8:1:2:3:4:5:6/64").to_string(),
            "2001:db8:1:2::/64"
        );
        assert_eq!(scope("::/0").to_string(), "::/0");
        assert_eq!(
            Scope::address(ip("192.0.2.1")).to_string(),
            "::ffff:192.0.2.1/128"
        );
        for bad in [
            "",
            "2001:db8::/129",
            "2001:db8::/",
            "/64",
            "192.0.2.1",
            "[::1]",
            "x/64",
        ] {
            assert!(bad.parse::<Scope>().is_err(), "{bad}");
        }
        let prefix = scope("2001:db8:1:2::/64");
        assert!(prefix.contains(ip("2001:db8:1:2:ffff::1")));
        assert!(!prefix.contains(ip("2001:db8:1:3::1")));
        assert!(prefix.covers(&scope("2001:db8:1:2::5")));
        assert!(!scope("2001:db8:1:2::5").covers(&prefix));
    }

    #[test]
    fn targets_name_an_address_or_an_exact_scope() {
        let prefix = scope("2001:db8:1:2::/64");
        let address = scope("2001:db8:1:2::5");
        let bare: Target = "2001:db8:1:2::5".parse().unwrap();
        assert!(bare.matches(&prefix) && bare.matches(&address));
        let exact: Target = "2001:db8:1:2::5/128".parse().unwrap();
        assert!(exact.matches(&address) && !exact.matches(&prefix));
        let net: Target = "2001:db8:1:2::/64".parse().unwrap();
        assert!(net.matches(&prefix) && !net.matches(&address));
        assert_eq!(bare.to_string(), "2001:db8:1:2::5");
        assert!("nonsense".parse::<Target>().is_err());
    }

    #[test]
    fn threshold_within_the_window_bans_the_address() {
        let mut bans = Bans::new(&settings());
        assert_eq!(fail(&mut bans, "2001:db8::66", 4, T0), None);
        assert!(!bans.is_banned(ip("2001:db8::66"), T0 + 4 * MINUTE));
        let ban = bans.record_failure(ip("2001:db8::66"), T0 + 4 * MINUTE);
        let ban = ban.expect("the fifth failure bans");
        assert_eq!(ban.scope, scope("2001:db8::66/128"));
        assert_eq!(ban.until_ms, T0 + 4 * MINUTE + 3_600_000);
        assert_eq!(ban.reason, "5 authentication failures in 600 s");
        assert!(bans.is_banned(ip("2001:db8::66"), T0 + 5 * MINUTE));
        assert!(!bans.is_banned(ip("2001:db8::67"), T0 + 5 * MINUTE));
        assert_eq!(bans.list(T0 + 5 * MINUTE), [ban]);
    }

    #[test]
    fn the_window_slides() {
        let mut bans = Bans::new(&settings());
        assert_eq!(fail(&mut bans, "2001:db8::66", 4, T0), None);
        // Ten minutes after the first failure it no longer counts: four in the window.
        let late = T0 + 10 * MINUTE;
        assert_eq!(bans.record_failure(ip("2001:db8::66"), late), None);
        let ban = bans.record_failure(ip("2001:db8::66"), late + 1);
        assert!(ban.is_some(), "five within ten minutes");
        // Failures far apart never ban.
        let mut bans = Bans::new(&settings());
        for i in 0..50 {
            assert_eq!(
                bans.record_failure(ip("2001:db8::77"), T0 + i * 3 * MINUTE),
                None
            );
        }
    }

    #[test]
    fn addresses_of_one_prefix_add_up() {
        let mut bans = Bans::new(&settings());
        assert_eq!(fail(&mut bans, "2001:db8:1:2::a", 2, T0), None);
        assert_eq!(fail(&mut bans, "2001:db8:1:2::b", 2, T0 + 2 * MINUTE), None);
        let ban = bans.record_failure(ip("2001:db8:1:2::c"), T0 + 4 * MINUTE);
        assert_eq!(ban.map(|b| b.scope), Some(scope("2001:db8:1:2::/64")));
        let later = T0 + 5 * MINUTE;
        assert!(bans.is_banned(ip("2001:db8:1:2::ffff"), later));
        assert!(!bans.is_banned(ip("2001:db8:1:3::a"), later));
        // A record of a banned source (a message in flight) changes nothing.
        assert_eq!(bans.record_failure(ip("2001:db8:1:2::a"), later), None);
    }

    #[test]
    fn a_banned_address_does_not_count_toward_its_prefix() {
        let mut bans = Bans::new(&settings());
        let ban = fail(&mut bans, "2001:db8:1:2::a", 5, T0);
        assert_eq!(ban.map(|b| b.scope), Some(scope("2001:db8:1:2::a")));
        // A neighbour's typos start from zero.
        assert_eq!(fail(&mut bans, "2001:db8:1:2::b", 4, T0 + 5 * MINUTE), None);
        assert!(!bans.is_banned(ip("2001:db8:1:2::b"), T0 + 9 * MINUTE));
        let ban = bans.record_failure(ip("2001:db8:1:2::b"), T0 + 9 * MINUTE);
        assert_eq!(ban.map(|b| b.scope), Some(scope("2001:db8:1:2::b")));
    }

    #[test]
    fn prefix_length_is_configurable() {
        let mut bans = Bans::new(&Settings {
            prefix: 128,
            ..settings()
        });
        for (i, host) in ["a", "b", "c", "d", "e", "f"].iter().enumerate() {
            let failure = bans.record_failure(ip(&format!("2001:db8::{host}")), T0 + i as u64);
            assert_eq!(failure, None);
        }
        let mut bans = Bans::new(&Settings {
            prefix: 48,
            failures: 2,
            ..settings()
        });
        assert_eq!(bans.record_failure(ip("2001:db8:1:2::a"), T0), None);
        let ban = bans.record_failure(ip("2001:db8:1:3::a"), T0 + 1);
        assert_eq!(ban.map(|b| b.scope), Some(scope("2001:db8:1::/48")));
    }

    #[test]
    fn bans_expire_and_count_what_they_dropped() {
        let mut bans = Bans::new(&settings());
        let ban = fail(&mut bans, "2001:db8::66", 5, T0).unwrap();
        let first = bans.drop_from(ip("2001:db8::66"), T0 + 5 * MINUTE).unwrap();
        assert!(first.first);
        assert_eq!((first.scope, first.until_ms), (ban.scope, ban.until_ms));
        for _ in 0..9 {
            let next = bans.drop_from(ip("2001:db8::66"), T0 + 6 * MINUTE).unwrap();
            assert!(!next.first);
        }
        assert_eq!(bans.drop_from(ip("2001:db8::67"), T0 + 6 * MINUTE), None);
        assert_eq!(bans.expire(ban.until_ms - 1), []);
        // Out of force at its end, even before `expire` runs.
        assert!(!bans.is_banned(ip("2001:db8::66"), ban.until_ms));
        assert_eq!(bans.expire(ban.until_ms), [Ended { ban, dropped: 10 }]);
        assert_eq!(bans.list(T0), []);
        // Failures before the ban were forgotten with it.
        assert_eq!(fail(&mut bans, "2001:db8::66", 4, T0 + 2 * 3_600_000), None);
    }

    #[test]
    fn a_new_ban_replaces_one_that_ran_out_before_expire() {
        let mut bans = Bans::new(&settings());
        let old = fail(&mut bans, "2001:db8::66", 5, T0).unwrap();
        bans.drop_from(ip("2001:db8::66"), T0 + 5 * MINUTE).unwrap();
        let new = fail(&mut bans, "2001:db8::66", 5, old.until_ms).unwrap();
        assert!(new.until_ms > old.until_ms);
        let dropped = bans
            .drop_from(ip("2001:db8::66"), new.until_ms - 1)
            .unwrap();
        assert!(dropped.first, "the new ban logs its first drop");
    }

    #[test]
    fn removal_lifts_exactly_one_scope() {
        let mut bans = Bans::new(&settings());
        fail(&mut bans, "2001:db8::66", 5, T0).unwrap();
        assert_eq!(fail(&mut bans, "2001:db8:1:2::a", 3, T0), None);
        fail(&mut bans, "2001:db8:1:2::b", 2, T0 + 3 * MINUTE).unwrap();
        let now = T0 + 6 * MINUTE;
        assert!(!bans.remove(&scope("2001:db8::/64")));
        assert!(bans.remove(&scope("2001:db8::66")));
        assert!(!bans.is_banned(ip("2001:db8::66"), now));
        assert!(bans.is_banned(ip("2001:db8:1:2::a"), now));
        assert!(bans.remove(&scope("2001:db8:1:2::/64")));
        assert!(!bans.is_banned(ip("2001:db8:1:2::a"), now));
        assert_eq!(bans.list(now), []);
    }

    #[test]
    fn restored_bans_apply_and_a_longer_one_extends() {
        let mut bans = Bans::new(&settings());
        let ban = |text: &str, until_ms| Ban {
            scope: scope(text),
            until_ms,
            reason: "restored".into(),
        };
        bans.insert(ban("2001:db8:1::/48", T0 + 10));
        bans.insert(ban("2001:db8::66", T0 + 10));
        assert!(bans.is_banned(ip("2001:db8:1:ffff::1"), T0));
        bans.insert(ban("2001:db8::66", T0 + 20));
        bans.insert(ban("2001:db8::66", T0 + 5));
        assert_eq!(
            bans.list(T0),
            [
                ban("2001:db8::66", T0 + 20),
                ban("2001:db8:1::/48", T0 + 10)
            ]
        );
    }

    #[test]
    fn capacity_bounds_counters_and_bans() {
        let small = Settings {
            capacity: 4,
            failures: 2,
            ..settings()
        };
        let mut bans = Bans::new(&small);
        // Many sources with one failure each: the counters stay at capacity.
        for i in 0..100u64 {
            let address = format!("2001:db8:{i:x}::1");
            assert_eq!(bans.record_failure(ip(&address), T0 + i), None);
            assert!(bans.failures.len() <= 4);
        }
        // The most recent sources are still counted.
        let ban = bans.record_failure(ip("2001:db8:63::1"), T0 + 100);
        assert_eq!(ban.map(|b| b.scope), Some(scope("2001:db8:63::1")));

        // Bans: the one that ends soonest makes room, and counters never push a ban out.
        let mut bans = Bans::new(&small);
        for i in 0..6u64 {
            let address = format!("2001:db8:{i:x}::1");
            fail(&mut bans, &address, 2, T0 + i * 2 * MINUTE).unwrap();
        }
        for i in 0..100u64 {
            let address = format!("2001:db8:1{i:02x}::1");
            bans.record_failure(ip(&address), T0 + 20 * MINUTE + i);
        }
        let now = T0 + 30 * MINUTE;
        let listed: Vec<String> = bans.list(now).iter().map(|b| b.scope.to_string()).collect();
        assert_eq!(
            listed,
            [
                "2001:db8:2::1/128",
                "2001:db8:3::1/128",
                "2001:db8:4::1/128",
                "2001:db8:5::1/128"
            ]
        );
    }

    #[test]
    fn utc_is_iso_8601() {
        assert_eq!(Utc(0).to_string(), "1970-01-01T00:00:00Z");
        assert_eq!(Utc(951_782_400_000).to_string(), "2000-02-29T00:00:00Z");
        assert_eq!(Utc(1_800_000_000_999).to_string(), "2027-01-15T08:00:00Z");
        assert_eq!(Utc(4_102_444_799_000).to_string(), "2099-12-31T23:59:59Z");
    }
}
