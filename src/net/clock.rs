//! The clocks the core is given: a monotonic instant counted from the server's start, which
//! arms every timer, and the wall clock, for what is stored.

use std::time::Duration;

use crate::clock::wall_ms;
use crate::core::{Instant, Now};

pub struct Clock {
    origin: tokio::time::Instant,
}

impl Clock {
    pub fn start() -> Clock {
        Clock {
            origin: tokio::time::Instant::now(),
        }
    }

    /// Both clocks, read now.
    pub fn now(&self) -> Now {
        let elapsed = u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX);
        Now {
            instant: Instant::from_millis(elapsed),
            wall_ms: wall_ms(),
        }
    }

    /// When a core instant comes, for a tokio timer: the wall clock plays no part.
    pub fn deadline(&self, at: Instant) -> tokio::time::Instant {
        self.origin + Duration::from_millis(at.as_millis())
    }
}
