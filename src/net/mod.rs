//! The tokio layer: sockets, connections and timers around the pure core.

mod admission;
mod bans;
mod bindings;
mod clock;
mod control;
mod inbox;
mod partial;
mod security;
mod server;
pub mod socket;
mod stream;
pub mod tls;

pub use server::serve;
