//! The two clocks the core is given, never reads: a monotonic instant for every timer, and wall
//! time for what is stored or compared across a restart.
//!
//! A Raspberry Pi has no real-time clock: its wall clock jumps when NTP first answers, often
//! minutes or days after hotline started. Retransmissions, transaction timeouts, the ring timeout,
//! flood windows and dialog lifetimes run on the monotonic instant and do not jump with it;
//! binding expiries, bans and nonce ages are wall times, because they outlive the process.

use std::ops::Add;
use std::time::Duration;

/// A point on a monotonic clock, in milliseconds from an origin the network layer chooses (its
/// start). Only differences between instants mean anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant(u64);

impl Instant {
    pub const fn from_millis(millis: u64) -> Instant {
        Instant(millis)
    }

    /// Milliseconds since the origin.
    pub const fn as_millis(self) -> u64 {
        self.0
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;

    fn add(self, duration: Duration) -> Instant {
        Instant(self.0.saturating_add(millis(duration)))
    }
}

/// "Now" on both clocks, read together by the network layer for each call into the core.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    /// For every timer.
    pub instant: Instant,
    /// Unix time in milliseconds: for binding expiries, bans and nonce ages.
    pub wall_ms: u64,
}

impl Now {
    /// The monotonic instant in milliseconds, the unit of the core's timers.
    pub(crate) fn ms(self) -> u64 {
        self.instant.0
    }
}

/// A duration in whole milliseconds (saturating).
pub fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
