//! The tokio layer: sockets, connections and timers around the pure core.

pub mod socket;
pub mod tls;
