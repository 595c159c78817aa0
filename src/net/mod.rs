//! The tokio layer: sockets, connections and timers around the pure core.
