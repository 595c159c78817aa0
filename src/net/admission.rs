//! Which TCP and TLS connections may hold one of the limited slots, so that one attacker cannot
//! lock phones out by opening connections and keeping them alive.
//!
//! - Connections are counted per address and per IPv6 prefix (/64, /56, /48 by default), as the
//!   flood limits count requests: one attacker owns a whole /64, often a /48.
//! - A connection is *anonymous* until a request on it passes Digest; then it is a *phone's*.
//!   An anonymous connection has `anonymous_timeout` to authenticate, from the moment it was
//!   accepted: keep-alives do not extend it.
//! - When every slot is taken, a new connection takes the slot of an anonymous one: the oldest
//!   of the prefix (the widest counted) that holds the most anonymous connections. So an
//!   attacker who reconnects whatever is closed only ever takes its own slots, not those of
//!   phones still authenticating. A phone's connection is never taken: only phones can fill
//!   the table with phones.
//! - New connections are counted like requests, with the flood limits: each costs an accept
//!   and, over TLS, a handshake (a tenth of a millisecond of CPU or more), so one host that
//!   closes and reopens as fast as it can would otherwise keep the core busy.
//! - A scope whose connections keep being refused, or keep expiring unauthenticated, is
//!   reported once (a security event), through a [`Limiter`] of such offences.
//!
//! Pure: the caller gives the time (a monotonic [`Instant`]) and closes what it is told to.
//! Memory is bounded by the connections: each has one entry, and each scope with open
//! connections one counter; the offence limiters have a fixed capacity.

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use crate::config::{Flood, Limits};
use crate::core::bans::Scope;
use crate::core::limits::{self, Limiter, Verdict};
use crate::core::{ConnectionId, Flow};
use crate::sip::Transport;

/// Offences (refusals, or expiries) counted per scope and per window before the scope is
/// reported: a phone refused once in a while is not an attacker.
const OFFENCE_WINDOW_MS: u64 = 60_000;

/// An offending scope is reported again only after this long without offences.
const OFFENCE_COOLDOWN_MS: u64 = 600_000;

/// Offending scopes tracked, per kind of offence: 72 bytes each (see [`limits::Settings`]).
const OFFENCE_CAPACITY: usize = 4096;

/// The connection limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Connections in all.
    pub max_connections: usize,
    /// Connections from one address.
    pub per_address: usize,
    /// Prefix length and connections from all the addresses of one such prefix.
    pub per_prefix: Vec<(u8, usize)>,
    /// How long a connection may stay anonymous.
    pub anonymous_timeout: Duration,
    /// New connections per window, per address and prefix.
    pub attempts: limits::Settings,
}

impl Settings {
    pub fn of(limits: &Limits, flood: &Flood) -> Settings {
        Settings {
            max_connections: limits.max_connections,
            per_address: limits.max_connections_per_address,
            per_prefix: limits.max_connections_per_prefix.clone(),
            anonymous_timeout: Duration::from_secs(limits.anonymous_timeout),
            attempts: flood.settings(),
        }
    }
}

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// This address or prefix opens connections faster than the flood limits allow.
    Flood,
    /// This scope (an address, or a prefix) has as many connections as it may.
    Scope { scope: Scope, limit: usize },
    /// Every slot belongs to a phone.
    Full,
}

/// A connection to close: it stayed anonymous past its deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expired {
    pub id: ConnectionId,
    pub remote: SocketAddr,
}

struct Connection {
    flow: Flow,
    opened: Instant,
    anonymous: bool,
}

/// The connections holding slots, with their counts per scope.
pub struct Admission {
    max_connections: usize,
    anonymous_timeout: Duration,
    /// Prefix lengths and limits, the address (128) last.
    levels: Vec<(u8, usize)>,
    connections: HashMap<ConnectionId, Connection>,
    /// Anonymous connections, oldest first.
    anonymous: BTreeSet<(Instant, u64)>,
    /// Open connections per scope; only scopes with some.
    open: HashMap<Scope, usize>,
    attempts: Limiter,
    refusals: Limiter,
    expiries: Limiter,
    /// Zero of the offence limiters' millisecond clock.
    epoch: Instant,
    /// Scopes to report, since the last `take_reports`.
    reports: Vec<Report>,
}

/// A scope to log as a security event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub offence: Offence,
    /// The connection that made the scope go over.
    pub flow: Flow,
    /// The offending scope: an address bare, a prefix as `2001:db8:1:2::/64`.
    pub scope: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offence {
    /// New connections over the flood limits (reported by the attempts' own limiter).
    Flood,
    /// Connections refused at a limit.
    Refused,
    /// Anonymous connections closed at their deadline.
    Expired,
}

impl Admission {
    pub fn new(settings: Settings, now: Instant) -> Admission {
        let mut levels: Vec<(u8, usize)> = settings
            .per_prefix
            .iter()
            .map(|&(length, limit)| (length.min(127), limit))
            .collect();
        levels.sort_by_key(|&(length, _)| length);
        levels.push((128, settings.per_address));
        // Two offences per address and window pass; a prefix may have twice as many as the
        // next longer one, so that one offending address is reported as itself alone.
        let offences = limits::Settings {
            window: Duration::from_millis(OFFENCE_WINDOW_MS),
            per_address: 2,
            per_prefix: levels[..levels.len() - 1]
                .iter()
                .rev()
                .zip(1..)
                .map(|(&(length, _), n)| (length, 2 << n))
                .collect(),
            reply_budget: 0,
            cooldown: Duration::from_millis(OFFENCE_COOLDOWN_MS),
            capacity: OFFENCE_CAPACITY,
        };
        Admission {
            max_connections: settings.max_connections,
            anonymous_timeout: settings.anonymous_timeout,
            levels,
            connections: HashMap::new(),
            anonymous: BTreeSet::new(),
            open: HashMap::new(),
            attempts: Limiter::new(settings.attempts),
            refusals: Limiter::new(offences.clone()),
            expiries: Limiter::new(offences),
            epoch: now,
            reports: Vec::new(),
        }
    }

    /// Admits connection `id` of `transport` from `remote`, anonymous. `Ok` holds the
    /// anonymous connection whose slot it took, to be closed at once.
    pub fn admit(
        &mut self,
        id: ConnectionId,
        (transport, remote): (Transport, SocketAddr),
        now: Instant,
    ) -> Result<Option<ConnectionId>, Refusal> {
        let flow = Flow {
            transport,
            remote,
            connection: Some(id),
        };
        let address = remote.ip();
        if !self.offend(Offence::Flood, flow, now) {
            return Err(Refusal::Flood);
        }
        let at_limit = self
            .scopes(address)
            .find(|&(scope, limit)| self.open.get(&scope).copied().unwrap_or(0) >= limit);
        if let Some((scope, limit)) = at_limit {
            self.offend(Offence::Refused, flow, now);
            return Err(Refusal::Scope { scope, limit });
        }
        let mut evicted = None;
        if self.connections.len() >= self.max_connections {
            let Some(victim) = self.victim() else {
                self.offend(Offence::Refused, flow, now);
                return Err(Refusal::Full);
            };
            evicted = Some(victim);
            self.closed(victim);
        }
        for (scope, _) in self.scopes(address).collect::<Vec<_>>() {
            *self.open.entry(scope).or_insert(0) += 1;
        }
        let connection = Connection {
            flow,
            opened: now,
            anonymous: true,
        };
        self.anonymous.insert((now, id.0));
        self.connections.insert(id, connection);
        Ok(evicted)
    }

    /// A request on `id` passed Digest: it is a phone's connection from now on.
    pub fn authenticated(&mut self, id: ConnectionId) {
        if let Some(connection) = self.connections.get_mut(&id)
            && connection.anonymous
        {
            connection.anonymous = false;
            self.anonymous.remove(&(connection.opened, id.0));
        }
    }

    /// Frees the slot of `id`, if it still holds one.
    pub fn closed(&mut self, id: ConnectionId) {
        let Some(connection) = self.connections.remove(&id) else {
            return;
        };
        if connection.anonymous {
            self.anonymous.remove(&(connection.opened, id.0));
        }
        for (scope, _) in self.scopes(connection.flow.remote.ip()).collect::<Vec<_>>() {
            if let Some(count) = self.open.get_mut(&scope) {
                *count -= 1;
                if *count == 0 {
                    self.open.remove(&scope);
                }
            }
        }
    }

    /// Frees the slots of the anonymous connections past their deadline at `now`; they are to
    /// be closed.
    pub fn expire(&mut self, now: Instant) -> Vec<Expired> {
        let mut expired = Vec::new();
        while let Some(&(opened, id)) = self.anonymous.first() {
            if now < opened + self.anonymous_timeout {
                break;
            }
            let id = ConnectionId(id);
            let flow = self.connections[&id].flow;
            self.closed(id);
            self.offend(Offence::Expired, flow, now);
            expired.push(Expired {
                id,
                remote: flow.remote,
            });
        }
        expired
    }

    /// Scopes that started offending since the last call: one security event each.
    pub fn take_reports(&mut self) -> Vec<Report> {
        std::mem::take(&mut self.reports)
    }

    /// Connections holding a slot.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.connections.len()
    }

    /// The oldest anonymous connection of the widest scope with the most anonymous ones.
    fn victim(&self) -> Option<ConnectionId> {
        let widest = |id: u64| {
            let address = self.connections[&ConnectionId(id)].flow.remote.ip();
            self.scopes(address).next().map(|(scope, _)| scope)
        };
        let mut anonymous: HashMap<Scope, (usize, u64)> = HashMap::new();
        for &(_, id) in &self.anonymous {
            if let Some(scope) = widest(id) {
                anonymous.entry(scope).or_insert((0, id)).0 += 1;
            }
        }
        // The most connections; of those scopes, the one whose oldest came first.
        let busiest = anonymous.values().max_by_key(|&&(count, oldest)| {
            let opened = self.connections[&ConnectionId(oldest)].opened;
            (count, std::cmp::Reverse((opened, oldest)))
        })?;
        Some(ConnectionId(busiest.1))
    }

    /// Counts an offence (for [`Offence::Flood`]: an attempt) of `flow`'s address; a scope that
    /// goes over is reported. True while the address is within its limit.
    fn offend(&mut self, offence: Offence, flow: Flow, now: Instant) -> bool {
        let now_ms = self.millis(now);
        let limiter = match offence {
            Offence::Flood => &mut self.attempts,
            Offence::Refused => &mut self.refusals,
            Offence::Expired => &mut self.expiries,
        };
        if limiter.check(flow.remote.ip(), now_ms) == Verdict::Allow {
            return true;
        }
        for scope in limiter.take_new_floods() {
            self.reports.push(Report {
                offence,
                flow,
                scope,
            });
        }
        false
    }

    /// The offence limiters' clock.
    fn millis(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.epoch).as_millis() as u64
    }

    /// The scopes `address` counts in, with their limits: an IPv4 address only as itself.
    fn scopes(&self, address: IpAddr) -> impl Iterator<Item = (Scope, usize)> + '_ {
        let ipv4 = matches!(address.to_canonical(), IpAddr::V4(_));
        let skip = if ipv4 { self.levels.len() - 1 } else { 0 };
        self.levels[skip..]
            .iter()
            .map(move |&(length, limit)| (Scope::new(address.to_canonical(), length), limit))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> Settings {
        Settings {
            max_connections: 8,
            per_address: 2,
            per_prefix: vec![(64, 3), (48, 5)],
            anonymous_timeout: Duration::from_secs(30),
            attempts: limits::Settings {
                per_address: 1000,
                per_prefix: vec![(64, 1000)],
                ..limits::Settings::default()
            },
        }
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    /// A TCP connection from port 5060 of `address`.
    fn tcp(address: IpAddr) -> (Transport, SocketAddr) {
        (Transport::Tcp, SocketAddr::new(address, 5060))
    }

    fn flow(id: u64, address: &str) -> Flow {
        let (transport, remote) = tcp(ip(address));
        Flow {
            transport,
            remote,
            connection: Some(ConnectionId(id)),
        }
    }

    /// Admits connections with ids from `first` on, from `addresses`, at `now`.
    fn admit_all(
        admission: &mut Admission,
        first: u64,
        addresses: &[&str],
        now: Instant,
    ) -> Vec<Result<Option<ConnectionId>, Refusal>> {
        addresses
            .iter()
            .zip(first..)
            .map(|(address, id)| admission.admit(ConnectionId(id), tcp(ip(address)), now))
            .collect()
    }

    fn scope_refusal(text: &str, limit: usize) -> Result<Option<ConnectionId>, Refusal> {
        Err(Refusal::Scope {
            scope: text.parse().unwrap(),
            limit,
        })
    }

    #[test]
    fn connections_are_limited_per_address_and_per_prefix() {
        let t0 = Instant::now();
        let mut admission = Admission::new(settings(), t0);
        let seen = admit_all(
            &mut admission,
            1,
            &[
                "2001:db8:1:1::1",
                "2001:db8:1:1::1",
                "2001:db8:1:1::1",
                "2001:db8:1:1::2",
                "2001:db8:1:1::3",
                "2001:db8:1:2::1",
                "2001:db8:1:3::1",
                "2001:db8:1:4::1",
                "2001:db8:2::1",
            ],
            t0,
        );
        assert_eq!(
            seen,
            [
                Ok(None),
                Ok(None),
                scope_refusal("2001:db8:1:1::1", 2),
                Ok(None),
                scope_refusal("2001:db8:1:1::/64", 3),
                Ok(None),
                Ok(None),
                scope_refusal("2001:db8:1::/48", 5),
                Ok(None),
            ]
        );
        assert_eq!(admission.len(), 6);

        // A closed connection gives its place back, at every level.
        admission.closed(ConnectionId(1));
        assert_eq!(
            admission.admit(ConnectionId(20), tcp(ip("2001:db8:1:1::1")), t0),
            Ok(None)
        );
        // IPv4 counts as one address, without prefixes.
        let seen = admit_all(&mut admission, 30, &["192.0.2.1", "192.0.2.1"], t0);
        assert_eq!(seen, [Ok(None), Ok(None)]);
        assert_eq!(
            admission.admit(ConnectionId(32), tcp(ip("192.0.2.2")), t0),
            Ok(Some(ConnectionId(2))),
            "the table is full: the oldest anonymous connection gives way"
        );
    }

    #[test]
    fn a_full_table_evicts_the_oldest_anonymous_connection_and_never_a_phone() {
        let t0 = Instant::now();
        let mut admission = Admission::new(settings(), t0);
        let seconds = |s| t0 + Duration::from_secs(s);
        // Eight /48s, one connection each; the first two authenticate.
        for n in 0..8u64 {
            let address = ip(&format!("2001:db8:{n}::1"));
            assert_eq!(
                admission.admit(ConnectionId(n), tcp(address), seconds(n)),
                Ok(None)
            );
        }
        admission.authenticated(ConnectionId(0));
        admission.authenticated(ConnectionId(1));
        let newcomer = |n: u64| ip(&format!("2001:db8:{}::1", 100 + n));
        for (n, oldest) in (2..8).enumerate() {
            let id = ConnectionId(100 + n as u64);
            assert_eq!(
                admission.admit(id, tcp(newcomer(n as u64)), seconds(10)),
                Ok(Some(ConnectionId(oldest)))
            );
        }
        assert_eq!(admission.len(), 8);
        // Now only newcomers are anonymous: they give way in the order they came.
        admission.authenticated(ConnectionId(100));
        assert_eq!(
            admission.admit(ConnectionId(200), tcp(newcomer(50)), seconds(11)),
            Ok(Some(ConnectionId(101)))
        );
        for id in [102, 103, 104, 105, 200] {
            admission.authenticated(ConnectionId(id));
        }
        // Every slot is a phone's: the next one is refused, and phones keep theirs.
        assert_eq!(
            admission.admit(ConnectionId(300), tcp(newcomer(60)), seconds(12)),
            Err(Refusal::Full)
        );
        assert_eq!(admission.len(), 8);
        assert!(admission.expire(seconds(3600)).is_empty());
        assert_eq!(admission.len(), 8);
    }

    #[test]
    fn a_new_connection_takes_a_slot_of_the_prefix_with_the_most_anonymous_ones() {
        let t0 = Instant::now();
        let mut admission = Admission::new(settings(), t0);
        let seconds = |s| t0 + Duration::from_secs(s);
        // A phone still authenticating, then an attacker's /48 with four connections (one
        // under its limit), then three more from elsewhere: the table is full.
        let phone = ip("2001:db8:2::1");
        admission
            .admit(ConnectionId(1), tcp(phone), seconds(0))
            .unwrap();
        let attacker = ["2001:db8:1:1::1", "2001:db8:1:1::2", "2001:db8:1:2::1"];
        let attacker = [attacker[0], attacker[1], attacker[2], attacker[2]];
        let seen = admit_all(&mut admission, 10, &attacker, seconds(1));
        assert!(seen.iter().all(|s| *s == Ok(None)), "{seen:?}");
        let others = ["2001:db8:3::1", "2001:db8:4::1", "2001:db8:5::1"];
        admit_all(&mut admission, 20, &others, seconds(2));
        // The attacker reconnects whatever is closed, from ever new /64s: it takes its own
        // slots, never the phone's, which is older.
        for n in 0..20 {
            let address = ip(&format!("2001:db8:1:{n}0::1"));
            let evicted = admission.admit(ConnectionId(100 + n), tcp(address), seconds(3));
            let evicted = evicted.unwrap().unwrap();
            assert!(evicted.0 >= 10 && evicted.0 != 1, "{evicted:?}");
        }
        admission.authenticated(ConnectionId(1));
        assert!(admission.expire(seconds(3)).is_empty());
    }

    #[test]
    fn anonymous_connections_expire_and_keep_alives_do_not_count() {
        let t0 = Instant::now();
        let mut admission = Admission::new(settings(), t0);
        let at = |ms| t0 + Duration::from_millis(ms);
        admit_all(&mut admission, 1, &["2001:db8::1", "2001:db8:1::1"], at(0));
        admit_all(&mut admission, 3, &["2001:db8:2::1"], at(5_000));
        // A keep-alive is not a request that passed Digest: the net layer tells nothing, and
        // the deadline stays where it was.
        assert!(admission.expire(at(29_999)).is_empty());
        admission.authenticated(ConnectionId(2));
        let expired = admission.expire(at(30_000));
        assert_eq!(
            expired,
            [Expired {
                id: ConnectionId(1),
                remote: tcp(ip("2001:db8::1")).1,
            }]
        );
        assert_eq!(admission.expire(at(34_999)), []);
        assert_eq!(admission.expire(at(35_000)).len(), 1);
        // The phone's connection stays, and the expired ones' places are free again.
        assert_eq!(admission.len(), 1);
        assert!(admission.expire(at(10_000_000)).is_empty());
        admission.authenticated(ConnectionId(1));
        admission.closed(ConnectionId(1));
        assert_eq!(admission.len(), 1);
    }

    #[test]
    fn connections_opened_faster_than_the_flood_limits_are_refused() {
        let t0 = Instant::now();
        let settings = Settings {
            attempts: limits::Settings {
                per_address: 3,
                per_prefix: vec![(64, 5)],
                ..limits::Settings::default()
            },
            ..settings()
        };
        let mut admission = Admission::new(settings, t0);
        // Open, close, open again: concurrency stays at one, the rate does not.
        for id in 0..3 {
            assert_eq!(
                admission.admit(ConnectionId(id), tcp(ip("2001:db8::1")), t0),
                Ok(None)
            );
            admission.closed(ConnectionId(id));
        }
        assert_eq!(
            admission.admit(ConnectionId(3), tcp(ip("2001:db8::1")), t0),
            Err(Refusal::Flood)
        );
        assert_eq!(
            admission.take_reports(),
            [Report {
                offence: Offence::Flood,
                flow: flow(3, "2001:db8::1"),
                scope: "2001:db8::1".to_owned(),
            }]
        );
        let seen = admit_all(
            &mut admission,
            10,
            &["2001:db8::2", "2001:db8::3", "2001:db8::4"],
            t0,
        );
        // The /64 counted the first address's four attempts: it allows one more.
        assert_eq!(seen, [Ok(None), Err(Refusal::Flood), Err(Refusal::Flood)]);
        // Another prefix, and the same one a window later, are let in.
        assert_eq!(
            admission.admit(ConnectionId(20), tcp(ip("2001:db8:1::1")), t0),
            Ok(None)
        );
        let later = t0 + Duration::from_secs(120);
        assert_eq!(
            admission.admit(ConnectionId(21), tcp(ip("2001:db8::5")), later),
            Ok(None)
        );
    }

    #[test]
    fn repeated_offences_are_reported_once_per_scope() {
        let t0 = Instant::now();
        let mut admission = Admission::new(settings(), t0);
        let at = |ms| t0 + Duration::from_millis(ms);
        admit_all(&mut admission, 1, &["2001:db8::1", "2001:db8::1"], at(0));
        for n in 0..10 {
            assert!(
                admission
                    .admit(ConnectionId(10 + n), tcp(ip("2001:db8::1")), at(n))
                    .is_err()
            );
        }
        assert_eq!(
            admission.take_reports(),
            [Report {
                offence: Offence::Refused,
                flow: flow(12, "2001:db8::1"),
                scope: "2001:db8::1".to_owned(),
            }]
        );

        // Many addresses of one /64, each expiring once: the /64 is reported.
        let mut admission = Admission::new(settings(), t0);
        for n in 0..6u64 {
            let address = ip(&format!("2001:db8:5:5::{}", n + 1));
            admission
                .admit(ConnectionId(n), tcp(address), at(n))
                .unwrap();
            assert_eq!(admission.expire(at(n + 30_000)).len(), 1);
        }
        assert_eq!(
            admission.take_reports(),
            [Report {
                offence: Offence::Expired,
                flow: flow(4, "2001:db8:5:5::5"),
                scope: "2001:db8:5:5::/64".to_owned(),
            }]
        );
        assert!(admission.take_reports().is_empty());
    }
}
