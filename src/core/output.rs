//! What leaves the core, through [`super::Core::poll_output`] alone.

use super::bans::Ban;
use super::clock::Instant;
use super::registrar::{Binding, ConnectionId, Flow};
use super::security::SecurityEvent;
use super::user::Extension;

/// The next thing the network layer must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Send bytes.
    Transmit(Transmit),
    /// Record or report something.
    Event(Event),
    /// Nothing more for now: call [`super::Core::handle_timeout`] at this instant (or earlier
    /// with another input, after which this is asked again).
    Timeout(Instant),
}

/// Bytes to send over a flow (for streams, over its connection).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    pub flow: Flow,
    pub bytes: Vec<u8>,
}

/// What happened that outlives the message: for the store, and for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The bindings of these extensions changed since the last batch (every `flush_interval`,
    /// and on [`super::Core::flush_bindings`]): write them in one transaction. An empty list
    /// means the extension has none left.
    BindingsChanged(Vec<(Extension, Vec<Binding>)>),
    /// A ban started: write it, so that a restart does not forgive the source.
    BanAdded(Ban),
    /// Log it (see [`SecurityEvent`]'s line).
    Security(SecurityEvent),
    /// A request on this stream connection passed Digest: it is a phone's now, and keeps its
    /// slot (see `net::admission`).
    Authenticated(ConnectionId),
}
