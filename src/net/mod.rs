//! The tokio layer: sockets, connections and timers around the pure core.

mod admission;
mod bans;
mod bindings;
pub mod changes;
mod clock;
mod control;
pub mod inbox;
mod outbox;
mod partial;
mod security;
mod server;
mod session;
pub mod socket;
mod stream;
pub mod tls;

pub use server::serve;
