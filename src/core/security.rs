//! Security events: one line each, with everything in the message text, because journald keeps
//! structured fields apart from the message and Fail2Ban reads only the message. The address is
//! written bare (no brackets, no port) so that a filter's `<ADDR>` matches it.

use std::fmt;

use tracing::warn;

use super::registrar::Flow;

/// What happened, as the first words of the line (and the name Fail2Ban filters use).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// Wrong credentials, or credentials for a user that does not exist.
    AuthenticationFailed,
    /// A source or prefix went over its flood limit.
    Flood,
    /// Too many authentication failures: the source's messages are dropped for a while.
    Banned,
    /// A request from a known scanner, dropped (logged once per source and window).
    Scanner,
    /// A request refused before authentication: a Route or To tag that claims a dialog hotline
    /// did not make, a CANCEL of someone else's call, relaying, a loop. Counted like an
    /// authentication failure.
    Refused,
    /// An address or prefix kept opening connections beyond its limit.
    ConnectionLimit,
    /// An address or prefix kept opening connections that never authenticated.
    AnonymousExpired,
}

impl Event {
    pub fn as_str(self) -> &'static str {
        match self {
            Event::AuthenticationFailed => "authentication failed",
            Event::Flood => "flood detected",
            Event::Banned => "banned",
            Event::Scanner => "scanner detected",
            Event::Refused => "request refused",
            Event::ConnectionLimit => "connection limit reached",
            Event::AnonymousExpired => "anonymous connections expired",
        }
    }
}

/// Logs `event` from `flow` with `detail` (`key=value` pairs).
pub fn report(event: Event, flow: &Flow, detail: fmt::Arguments<'_>) {
    warn!(
        target: "hotline::security",
        "{} address={} port={} transport={} {detail}",
        event.as_str(),
        flow.remote.ip(),
        flow.remote.port(),
        flow.transport,
    );
}
