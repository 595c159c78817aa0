//! Security events, logged: one line each under the target Fail2Ban's filter reads (see
//! `core::security` for the line itself).
//!
//! The core's events come out of [`Core::poll_output`](crate::core::Core::poll_output) already
//! in its history, and are written with [`write`]. The network layer's own (connection limits,
//! anonymous connections expiring: see `admission`) go through [`log`] to the core first, so
//! that they take the same path: the owner's Security page and the 24-hour chart count them,
//! and the core hands them back to be written.

use tokio::sync::mpsc;
use tracing::warn;

use super::inbox::Event;
use crate::core::security::SecurityEvent;

/// An event of the network layer: to the core, which records and returns it; written at once
/// when the core's inbox is full or closed (never waits, never lost from the log).
pub fn log(core: &mpsc::Sender<Event>, event: &SecurityEvent) {
    let forwarded = event.clone();
    let job = Box::new(move |core: &mut crate::core::Core, now| core.network_event(forwarded, now));
    if core.try_send(Event::Web(job)).is_err() {
        write(event);
    }
}

/// Writes the line of an event the core has recorded.
pub fn write(event: &SecurityEvent) {
    warn!(target: "hotline::security", "{event}");
}
