//! Flood limits, like Kamailio's pike but aware that one attacker owns a whole IPv6 prefix:
//! requests are counted per source address and per prefix (/64, /56, /48 by default), so an
//! attacker who takes a new address for every request is still caught by its prefix.
//!
//! A scope (address or prefix) over its limit is *flooding*: a few of its requests per window
//! get `403 Flood detected`, the rest silence, until it has stayed under its limit for the
//! cool-down. A request is charged to the coarsest flooding scope it belongs to, or, when none
//! floods, to every scope. So a flooding address does not use up its neighbours' share of the
//! /64, and a flooding prefix does not fill the address table with the addresses it rotates
//! through.
//!
//! Memory is fixed: each scope level has its own table with a share of the capacity, so a spray
//! of addresses cannot evict prefixes. Within a table the flooding entries are kept apart and
//! never evicted; a new scope replaces the quietest of a few entries at a clock hand, and each
//! eviction also releases a few flooding entries that have cooled down. When a table holds
//! nothing but flooding scopes, a new scope is not tracked at that level and its request passes
//! there (failing open like pike, rather than blocking everyone): the other levels still count
//! it.
//!
//! IPv4 never reaches hotline (its sockets are IPv6-only); an IPv4 or IPv4-mapped source is
//! counted as one address, without prefixes.

use std::hash::{BuildHasher, RandomState};
use std::net::{IpAddr, Ipv6Addr};
use std::time::Duration;

use super::clock::millis;

/// Entries looked at for one eviction, and flooding entries for one sweep.
const PROBES: usize = 4;

/// Limits, all per `window`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The counting window; counts are a sliding estimate over the last window.
    pub window: Duration,
    /// Requests per window from one address.
    pub per_address: u32,
    /// Prefix length and requests per window from all the addresses in one such prefix. A
    /// length above 128 counts as 128.
    pub per_prefix: Vec<(u8, u32)>,
    /// Requests per window that a flooding scope gets `403 Flood detected` for; the others are
    /// dropped, so that hotline never sends floods back.
    pub reply_budget: u32,
    /// How long a flooding scope must stay under its limit to be allowed again.
    pub cooldown: Duration,
    /// Entries in all the tables together, shared equally by the scope levels (the address
    /// table takes the remainder).
    pub capacity: usize,
}

impl Default for Settings {
    /// Pike samples 2 s with 30 requests per address. A desk phone that boots registers, gets
    /// challenged and subscribes to its busy lamps, each subscription challenged too: about 50
    /// requests at once for 24 keys, so 60 per address. A /64 is one household's LAN and a few
    /// phones boot together after a power cut: 120. A /56 is a residential delegation with
    /// several LANs: 200. A /48 is a site, a small office of phones: 400. Three replies tell a
    /// misconfigured phone's owner what happened without answering a flood. A minute's
    /// cool-down lets a phone that misbehaved once back quickly and still outlasts a flood's
    /// pauses. 16 384 entries, 4 096 per level, take 72 bytes each with their index: 1.2 MiB.
    fn default() -> Settings {
        Settings {
            window: Duration::from_secs(2),
            per_address: 60,
            per_prefix: vec![(64, 120), (56, 200), (48, 400)],
            reply_budget: 3,
            cooldown: Duration::from_secs(60),
            capacity: 16_384,
        }
    }
}

/// What to do with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    /// Reply `403 Flood detected`.
    Refuse,
    /// Say nothing.
    Drop,
}

/// Request counts per address and per prefix.
pub struct Limiter {
    window_ms: u64,
    reply_budget: u32,
    cooldown_ms: u64,
    /// Coarsest prefix first, the address table last.
    tables: Vec<Table>,
    /// std's random SipHash keys, as for every `HashMap`: an attacker who picks addresses
    /// cannot pick collisions.
    hasher: RandomState,
    /// Per table, the hash of the request's scope and its entry if any: reused by every check.
    found: Vec<(u64, Option<usize>)>,
    /// Scopes that started flooding since `take_new_floods`, at most `capacity` of them.
    floods: Vec<(u8, Ipv6Addr)>,
    capacity: usize,
}

impl Limiter {
    pub fn new(settings: Settings) -> Limiter {
        let mut prefixes: Vec<(u8, u32)> = settings
            .per_prefix
            .iter()
            .map(|&(length, limit)| (length.min(128), limit))
            .collect();
        prefixes.sort_by_key(|&(length, _)| length);
        prefixes.push((128, settings.per_address));
        let share = settings.capacity / prefixes.len();
        let spare = settings.capacity % prefixes.len();
        let last = prefixes.len() - 1;
        let tables: Vec<Table> = prefixes
            .into_iter()
            .enumerate()
            .map(|(level, (length, limit))| {
                let capacity = if level == last { share + spare } else { share };
                Table::new(length, limit, capacity)
            })
            .collect();
        Limiter {
            window_ms: millis(settings.window).max(1),
            reply_budget: settings.reply_budget,
            cooldown_ms: millis(settings.cooldown),
            found: Vec::with_capacity(tables.len()),
            tables,
            hasher: RandomState::new(),
            floods: Vec::new(),
            capacity: settings.capacity,
        }
    }

    /// Counts one request from `source` at `now` (ms) and says what to do with it.
    pub fn check(&mut self, source: IpAddr, now: u64) -> Verdict {
        let (address, first) = match source.to_canonical() {
            IpAddr::V6(address) => (address, 0),
            IpAddr::V4(address) => (address.to_ipv6_mapped(), self.tables.len() - 1),
        };
        let window_ms = self.window_ms;
        let cooldown_ms = self.cooldown_ms;
        let reply_budget = self.reply_budget;
        self.found.clear();
        for table in &mut self.tables[first..] {
            let scope = table.scope(address);
            let hash = self.hasher.hash_one(scope);
            let slot = table.find(hash, scope);
            if let Some(i) = slot
                && i < table.flooding
                && !table.entries[i].cooled(now, cooldown_ms)
            {
                let entry = &mut table.entries[i];
                entry.count(now, window_ms, table.limit);
                return entry.answer(reply_budget);
            }
            self.found.push((hash, slot));
        }
        let mut verdict = Verdict::Allow;
        for (table, &(hash, slot)) in self.tables[first..].iter_mut().zip(&self.found) {
            let scope = table.scope(address);
            let Some(mut i) =
                slot.or_else(|| table.insert(scope, hash, now, window_ms, cooldown_ms))
            else {
                continue;
            };
            if i < table.flooding {
                i = table.release(i);
            }
            if table.entries[i].count(now, window_ms, table.limit) {
                let i = table.block(i);
                let entry = &mut table.entries[i];
                entry.replies = 0;
                if verdict == Verdict::Allow {
                    verdict = entry.answer(reply_budget);
                }
                if self.floods.len() < self.capacity {
                    self.floods.push((table.length, scope));
                }
            }
        }
        verdict
    }

    /// Scopes that started flooding since the last call, for one security log line each: an
    /// address bare, a prefix as `2001:db8:1:2::/64`.
    pub fn take_new_floods(&mut self) -> Vec<String> {
        self.floods
            .drain(..)
            .map(|(length, scope)| match length {
                128 => IpAddr::V6(scope).to_canonical().to_string(),
                _ => format!("{scope}/{length}"),
            })
            .collect()
    }

    /// Entries in all the tables, at most `Settings::capacity`.
    pub fn len(&self) -> usize {
        self.tables.iter().map(|t| t.entries.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Where `Table::slots` has no entry.
const EMPTY: usize = usize::MAX;

/// The scopes of one prefix length. `entries[..flooding]` are flooding (or were, until a touch
/// or the sweep notices they have cooled down), the others are candidates for eviction.
///
/// `slots` indexes the entries by scope: open addressing with linear probing, at most half
/// full, allocated once, so a lookup is one hash and a few probes and the table never grows.
struct Table {
    length: u8,
    limit: u32,
    capacity: usize,
    entries: Vec<Entry>,
    /// Entry numbers at their hash's slot or just after; a power of two, twice the capacity
    /// or more.
    slots: Vec<usize>,
    flooding: usize,
    /// Where the next eviction looks, among the entries that are not flooding.
    hand: usize,
    /// Where the next sweep for cooled-down entries looks, among the flooding ones.
    sweep: usize,
}

impl Table {
    fn new(length: u8, limit: u32, capacity: usize) -> Table {
        Table {
            length,
            limit,
            capacity,
            entries: Vec::with_capacity(capacity),
            slots: vec![EMPTY; capacity.saturating_mul(2).next_power_of_two()],
            flooding: 0,
            hand: 0,
            sweep: 0,
        }
    }

    fn scope(&self, address: Ipv6Addr) -> Ipv6Addr {
        let mask = u128::MAX
            .checked_shl(u32::from(128 - self.length))
            .unwrap_or(0);
        Ipv6Addr::from(u128::from(address) & mask)
    }

    fn find(&self, hash: u64, scope: Ipv6Addr) -> Option<usize> {
        self.probe(hash, scope).ok().map(|p| self.slots[p])
    }

    /// The slot of `scope`, or the empty slot where it would go. There is always an empty
    /// slot: there are more slots than entries.
    fn probe(&self, hash: u64, scope: Ipv6Addr) -> Result<usize, usize> {
        let mask = self.slots.len() - 1;
        let mut p = hash as usize & mask;
        loop {
            match self.slots[p] {
                EMPTY => return Err(p),
                i if self.entries[i].hash == hash && self.entries[i].scope == scope => {
                    return Ok(p);
                }
                _ => p = (p + 1) & mask,
            }
        }
    }

    /// Empties slot `hole`, moving back the entries after it that probing would no longer
    /// reach (deletion without tombstones).
    fn unlink(&mut self, mut hole: usize) {
        let mask = self.slots.len() - 1;
        let mut p = hole;
        loop {
            p = (p + 1) & mask;
            let i = self.slots[p];
            if i == EMPTY {
                break;
            }
            let home = self.entries[i].hash as usize & mask;
            if p.wrapping_sub(home) & mask >= p.wrapping_sub(hole) & mask {
                self.slots[hole] = i;
                hole = p;
            }
        }
        self.slots[hole] = EMPTY;
    }

    /// Makes room for `scope`, which is not in the table, and returns its new entry, or
    /// `None` when every entry floods.
    fn insert(
        &mut self,
        scope: Ipv6Addr,
        hash: u64,
        now: u64,
        window_ms: u64,
        cooldown_ms: u64,
    ) -> Option<usize> {
        let fresh = Entry::new(scope, hash, now / window_ms);
        let i = if self.entries.len() < self.capacity {
            self.entries.push(fresh);
            self.entries.len() - 1
        } else {
            let victim = self.victim(now, window_ms, cooldown_ms)?;
            let old = &self.entries[victim];
            if let Ok(p) = self.probe(old.hash, old.scope) {
                self.unlink(p);
            }
            self.entries[victim] = fresh;
            victim
        };
        if let Err(p) = self.probe(hash, scope) {
            self.slots[p] = i;
        }
        Some(i)
    }

    /// Releases flooding entries that have cooled down, a few per call, then picks the quietest
    /// of a few entries at the clock hand among those that do not flood.
    fn victim(&mut self, now: u64, window_ms: u64, cooldown_ms: u64) -> Option<usize> {
        for _ in 0..PROBES {
            if self.flooding == 0 {
                break;
            }
            let i = self.sweep % self.flooding;
            if self.entries[i].cooled(now, cooldown_ms) {
                self.release(i);
            } else {
                self.sweep = i + 1;
            }
        }
        let candidates = self.entries.len() - self.flooding;
        if candidates == 0 {
            return None;
        }
        let start = self.hand % candidates;
        let probes = PROBES.min(candidates);
        self.hand = start + probes;
        let mut victim = self.flooding + start;
        let mut lightest = self.entries[victim].weight(now, window_ms);
        for p in start + 1..start + probes {
            let i = self.flooding + p % candidates;
            let weight = self.entries[i].weight(now, window_ms);
            if weight < lightest {
                victim = i;
                lightest = weight;
            }
        }
        Some(victim)
    }

    /// Moves entry `i` among the flooding ones and returns where it now is.
    fn block(&mut self, i: usize) -> usize {
        let to = self.flooding;
        self.swap(i, to);
        self.flooding += 1;
        to
    }

    /// Moves flooding entry `i` among the others and returns where it now is.
    fn release(&mut self, i: usize) -> usize {
        self.flooding -= 1;
        let to = self.flooding;
        self.swap(i, to);
        to
    }

    fn swap(&mut self, i: usize, j: usize) {
        if i == j {
            return;
        }
        let slot = |entry: &Entry| self.probe(entry.hash, entry.scope).ok();
        let (slot_i, slot_j) = (slot(&self.entries[i]), slot(&self.entries[j]));
        self.entries.swap(i, j);
        if let Some(p) = slot_i {
            self.slots[p] = j;
        }
        if let Some(p) = slot_j {
            self.slots[p] = i;
        }
    }
}

/// One scope's counts: a two-bucket sliding window, the previous window's count weighted by how
/// much of it still overlaps the last `window_ms`.
struct Entry {
    scope: Ipv6Addr,
    hash: u64,
    /// The window `current` counts in: `now / window_ms`.
    window: u64,
    current: u32,
    previous: u32,
    /// Refusals sent in the current window, while flooding.
    replies: u32,
    /// When the scope was last over its limit.
    over_at: u64,
}

impl Entry {
    fn new(scope: Ipv6Addr, hash: u64, window: u64) -> Entry {
        Entry {
            scope,
            hash,
            window,
            current: 0,
            previous: 0,
            replies: 0,
            over_at: 0,
        }
    }
    /// Counts a request at `now` and says whether the scope is now over `limit`.
    fn count(&mut self, now: u64, window_ms: u64, limit: u32) -> bool {
        let window = now / window_ms;
        if window > self.window {
            self.previous = if window == self.window + 1 {
                self.current
            } else {
                0
            };
            self.current = 0;
            self.replies = 0;
            self.window = window;
        }
        self.current = self.current.saturating_add(1);
        let over = self.rate(now, window_ms) > u64::from(limit).saturating_mul(window_ms);
        if over {
            self.over_at = now;
        }
        over
    }

    /// Requests in the last window, times `window_ms` to stay in integers.
    fn rate(&self, now: u64, window_ms: u64) -> u64 {
        let window = now / window_ms;
        let (previous, current) = match window.saturating_sub(self.window) {
            0 => (self.previous, self.current),
            1 => (self.current, 0),
            _ => (0, 0),
        };
        let overlap = window_ms - now % window_ms;
        u64::from(previous)
            .saturating_mul(overlap)
            .saturating_add(u64::from(current).saturating_mul(window_ms))
    }

    /// The answer to a request while flooding: a refusal while the window's budget lasts.
    fn answer(&mut self, budget: u32) -> Verdict {
        if self.replies < budget {
            self.replies += 1;
            Verdict::Refuse
        } else {
            Verdict::Drop
        }
    }

    /// What eviction minimises: the quietest first, then the least recently counted.
    fn weight(&self, now: u64, window_ms: u64) -> (u64, u64) {
        (self.rate(now, window_ms), self.window)
    }

    /// Whether a flooding scope has stayed under its limit for the cool-down.
    fn cooled(&self, now: u64, cooldown_ms: u64) -> bool {
        now >= self.over_at.saturating_add(cooldown_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    /// Address `host` in the /64 numbered `net` of the /56 numbered `subnet` of `site`, a /48.
    fn address(site: u16, subnet: u8, net: u8, host: u64) -> IpAddr {
        let net = (u128::from(subnet) << 8) | u128::from(net);
        let bits = (0x2001_0db8_u128 << 96) | (u128::from(site) << 80) | (net << 64);
        IpAddr::V6(Ipv6Addr::from(bits | u128::from(host)))
    }

    fn verdicts(
        limiter: &mut Limiter,
        sources: impl Iterator<Item = IpAddr>,
        now: u64,
    ) -> Vec<Verdict> {
        sources.map(|s| limiter.check(s, now)).collect()
    }

    fn count(verdicts: &[Verdict], wanted: Verdict) -> usize {
        verdicts.iter().filter(|&&v| v == wanted).count()
    }

    #[test]
    fn one_address_flooding_is_refused_then_dropped_until_it_cools_down() {
        let mut limiter = Limiter::new(Settings::default());
        let source = ip("2001:db8:1:2::1");
        let seen = verdicts(&mut limiter, std::iter::repeat_n(source, 100), 1_000);
        assert!(seen[..60].iter().all(|&v| v == Verdict::Allow));
        assert_eq!(seen[60..63], [Verdict::Refuse; 3]);
        assert!(seen[63..].iter().all(|&v| v == Verdict::Drop));
        assert_eq!(limiter.take_new_floods(), ["2001:db8:1:2::1"]);
        assert!(limiter.take_new_floods().is_empty());

        // Quiet but not yet for the whole cool-down: each window refuses again, then drops.
        assert_eq!(limiter.check(source, 30_000), Verdict::Refuse);
        assert_eq!(limiter.check(source, 60_999), Verdict::Refuse);
        assert_eq!(limiter.check(source, 61_000), Verdict::Allow);
        assert!(limiter.take_new_floods().is_empty());
    }

    #[test]
    fn a_steady_rate_just_under_the_limit_is_never_refused() {
        let mut limiter = Limiter::new(Settings::default());
        let source = ip("2001:db8::7");
        // 2000 / 34 = 58.8 requests per window against a limit of 60, for ten minutes.
        for now in (0..600_000).step_by(34) {
            assert_eq!(limiter.check(source, now), Verdict::Allow, "at {now} ms");
        }
        assert!(limiter.take_new_floods().is_empty());
    }

    #[test]
    fn a_new_address_per_request_is_caught_by_its_64() {
        let mut limiter = Limiter::new(Settings::default());
        let seen = verdicts(&mut limiter, (1..=130).map(|h| address(1, 0, 0, h)), 1_000);
        assert_eq!(count(&seen[..120], Verdict::Allow), 120);
        assert_eq!(seen[120..123], [Verdict::Refuse; 3]);
        assert_eq!(count(&seen[123..], Verdict::Drop), 7);
        assert_eq!(limiter.take_new_floods(), ["2001:db8:1::/64"]);

        // The /48 was charged 121 requests; /64s in other /56s have the other 279.
        let others = (0..300).map(|n| address(1, 1 + (n % 10) as u8, (n / 10) as u8, 1));
        let seen = verdicts(&mut limiter, others, 1_000);
        assert_eq!(count(&seen[..279], Verdict::Allow), 279);
        assert_eq!(seen[279], Verdict::Refuse);
        assert_eq!(limiter.take_new_floods(), ["2001:db8:1::/48"]);
    }

    #[test]
    fn a_flooding_address_leaves_its_neighbours_alone() {
        let mut limiter = Limiter::new(Settings::default());
        let flooder = address(1, 0, 0, 1);
        let seen = verdicts(&mut limiter, std::iter::repeat_n(flooder, 1_000), 1_000);
        assert_eq!(count(&seen, Verdict::Allow), 60);

        // Another /64, even in the same /56, is not affected.
        let elsewhere = verdicts(
            &mut limiter,
            std::iter::repeat_n(address(1, 0, 1, 1), 60),
            1_000,
        );
        assert_eq!(count(&elsewhere, Verdict::Allow), 60);

        // In the same /64, the requests refused once the flooder floods are charged to it
        // alone: a neighbour has what its first 61 requests left of the /64's 120.
        let neighbour = address(1, 0, 0, 2);
        let seen = verdicts(&mut limiter, std::iter::repeat_n(neighbour, 60), 1_000);
        assert_eq!(count(&seen[..59], Verdict::Allow), 59);
        assert_eq!(seen[59], Verdict::Refuse);
        assert_ne!(limiter.check(address(1, 0, 0, 3), 1_000), Verdict::Allow);
        assert_eq!(
            limiter.take_new_floods(),
            ["2001:db8:1::1", "2001:db8:1::/64"]
        );
    }

    #[test]
    fn ipv4_mapped_sources_count_as_one_address() {
        let mut limiter = Limiter::new(Settings::default());
        let seen = verdicts(
            &mut limiter,
            std::iter::repeat_n(ip("::ffff:192.0.2.1"), 61),
            1_000,
        );
        assert_eq!(seen[60], Verdict::Refuse);
        assert_eq!(limiter.check(ip("192.0.2.1"), 1_000), Verdict::Refuse);
        assert_eq!(limiter.check(ip("192.0.2.2"), 1_000), Verdict::Allow);
        assert_eq!(limiter.take_new_floods(), ["192.0.2.1"]);
        assert_eq!(limiter.len(), 2);
    }

    #[test]
    fn eviction_keeps_busy_entries_and_tables_of_floods_fail_open() {
        let settings = Settings {
            per_prefix: Vec::new(),
            capacity: 16,
            ..Settings::default()
        };
        let mut limiter = Limiter::new(settings);
        let busy = ip("2001:db8::1");
        verdicts(&mut limiter, std::iter::repeat_n(busy, 50), 1_000);
        verdicts(
            &mut limiter,
            (2..10_000).map(|h| address(2, 0, 0, h)),
            1_000,
        );
        assert_eq!(limiter.len(), 16);
        let seen = verdicts(&mut limiter, std::iter::repeat_n(busy, 11), 1_000);
        assert_eq!(seen[10], Verdict::Refuse);

        for host in 1..16 {
            verdicts(
                &mut limiter,
                std::iter::repeat_n(address(3, 0, 0, host), 61),
                1_000,
            );
        }
        let untracked = verdicts(
            &mut limiter,
            std::iter::repeat_n(ip("2001:db8:4::1"), 100),
            1_000,
        );
        assert_eq!(count(&untracked, Verdict::Allow), 100);
        // Once a flooding entry has cooled down, new scopes take its place again.
        let seen = verdicts(
            &mut limiter,
            std::iter::repeat_n(ip("2001:db8:4::1"), 61),
            62_000,
        );
        assert_eq!(seen[60], Verdict::Refuse);
    }

    /// xorshift64*: random-looking addresses without a dependency.
    struct Addresses(u64);

    impl Iterator for Addresses {
        type Item = IpAddr;

        fn next(&mut self) -> Option<IpAddr> {
            let mut half = || {
                self.0 ^= self.0 >> 12;
                self.0 ^= self.0 << 25;
                self.0 ^= self.0 >> 27;
                u128::from(self.0.wrapping_mul(0x2545_f491_4f6c_dd1d))
            };
            Some(IpAddr::V6(Ipv6Addr::from((half() << 64) | half())))
        }
    }

    #[test]
    fn a_million_sources_neither_outgrow_the_tables_nor_release_floods() {
        let settings = Settings::default();
        let capacity = settings.capacity;
        let mut limiter = Limiter::new(settings);
        let address_flood = address(1, 0, 0, 1);
        verdicts(&mut limiter, std::iter::repeat_n(address_flood, 61), 0);
        verdicts(&mut limiter, (1..=121).map(|h| address(2, 0, 0, h)), 0);
        verdicts(&mut limiter, (0..401).map(|n| address(3, n as u8, 0, 1)), 0);
        assert_eq!(
            limiter.take_new_floods(),
            ["2001:db8:1::1", "2001:db8:2::/64", "2001:db8:3::/48"]
        );
        let probes = |limiter: &mut Limiter, n: u64, now: u64| {
            let sources = [
                address_flood,
                address(2, 0, 0, 1_000 + n),
                address(3, 9, 9, n),
            ];
            for source in sources {
                assert_ne!(
                    limiter.check(source, now),
                    Verdict::Allow,
                    "{source} at {now} ms"
                );
            }
        };

        // A million requests over 20 s, from random addresses all over the internet.
        for (n, source) in Addresses(0x9e37_79b9_7f4a_7c15).take(1_000_000).enumerate() {
            let now = n as u64 / 50;
            assert_eq!(limiter.check(source, now), Verdict::Allow);
            assert!(limiter.len() <= capacity);
            if n % 10_000 == 0 {
                probes(&mut limiter, n as u64, now);
            }
        }
        assert_eq!(limiter.len(), capacity);
        probes(&mut limiter, 0, 20_000);
        assert!(limiter.take_new_floods().is_empty());
        for table in &limiter.tables {
            let linked = table.slots.iter().filter(|&&i| i != EMPTY).count();
            assert_eq!(linked, table.entries.len());
            for (i, entry) in table.entries.iter().enumerate() {
                assert_eq!(table.find(entry.hash, entry.scope), Some(i));
            }
        }
    }
}
