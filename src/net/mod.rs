//! The tokio layer: sockets, connections and timers around the pure core.

mod admission;
mod bans;
pub mod certificate;
mod control;
mod partial;
mod server;
pub mod socket;
mod stream;
pub mod tls;

pub use server::{DATABASE_NAME, now_ms, serve};
