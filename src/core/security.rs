//! Security events: typed values that leave the core as [`super::Event::Security`], and their
//! one log line each, with everything in the message text, because journald keeps structured
//! fields apart from the message and Fail2Ban reads only the message. The address is written
//! bare (no brackets, no port) so that a filter's `<ADDR>` matches it.

use std::fmt;
use std::net::SocketAddr;

use super::auth::Rejection;
use super::bans::{Ban, Utc};
use super::registrar::Flow;
use super::user::Extension;

/// Something an outsider did that an administrator (or Fail2Ban) should know about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecurityEvent {
    /// Wrong credentials, or credentials for a user that does not exist.
    AuthenticationFailed {
        flow: Flow,
        user: String,
        reason: Rejection,
    },
    /// A source or prefix went over its flood limit.
    Flood { flow: Flow, scope: String },
    /// Too many authentication failures: the source's messages are dropped for a while.
    Banned {
        flow: Flow,
        ban: Ban,
        failures: usize,
    },
    /// A request from a known scanner, dropped (reported once per source and window).
    Scanner {
        flow: Flow,
        user_agent: &'static str,
        method: String,
    },
    /// A request refused before authentication: a Route or To tag that claims a dialog hotline
    /// did not make, a CANCEL of someone else's call, relaying, a loop. Counted like an
    /// authentication failure.
    Refused {
        flow: Flow,
        method: String,
        status: u16,
        reason: &'static str,
        /// The authenticated user, for a refusal after authentication.
        user: Option<Extension>,
    },
    /// An address or prefix kept opening connections beyond its limit.
    ConnectionLimit { flow: Flow, scope: String },
    /// An address or prefix kept opening connections that never authenticated.
    AnonymousExpired { flow: Flow, scope: String },
    /// A wrong password or token on the owner's pages (`what` says which).
    WebAuthenticationFailed { remote: SocketAddr, what: String },
    /// A source or prefix went over its flood limit with requests for the owner's pages.
    WebFlood { remote: SocketAddr, scope: String },
    /// Too many authentication failures, the last of them on the owner's pages.
    WebBanned {
        remote: SocketAddr,
        ban: Ban,
        failures: usize,
    },
}

/// The transport word of events from the owner's pages.
pub const HTTPS: &str = "https";

impl SecurityEvent {
    /// What happened, as the first words of the line (and the name Fail2Ban filters use).
    pub fn name(&self) -> &'static str {
        match self {
            SecurityEvent::AuthenticationFailed { .. }
            | SecurityEvent::WebAuthenticationFailed { .. } => "authentication failed",
            SecurityEvent::Flood { .. } | SecurityEvent::WebFlood { .. } => "flood detected",
            SecurityEvent::Banned { .. } | SecurityEvent::WebBanned { .. } => "banned",
            SecurityEvent::Scanner { .. } => "scanner detected",
            SecurityEvent::Refused { .. } => "request refused",
            SecurityEvent::ConnectionLimit { .. } => "connection limit reached",
            SecurityEvent::AnonymousExpired { .. } => "anonymous connections expired",
        }
    }

    /// Where it came from: the source address and the transport word.
    pub fn source(&self) -> (SocketAddr, &'static str) {
        match self {
            SecurityEvent::AuthenticationFailed { flow, .. }
            | SecurityEvent::Flood { flow, .. }
            | SecurityEvent::Banned { flow, .. }
            | SecurityEvent::Scanner { flow, .. }
            | SecurityEvent::Refused { flow, .. }
            | SecurityEvent::ConnectionLimit { flow, .. }
            | SecurityEvent::AnonymousExpired { flow, .. } => {
                (flow.remote, flow.transport.as_str())
            }
            SecurityEvent::WebAuthenticationFailed { remote, .. }
            | SecurityEvent::WebFlood { remote, .. }
            | SecurityEvent::WebBanned { remote, .. } => (*remote, HTTPS),
        }
    }
}

/// The log line: `<name> address=<ip> port=<port> transport=<transport> <key=value …>`.
impl fmt::Display for SecurityEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (remote, transport) = self.source();
        write!(
            f,
            "{} address={} port={} transport={transport} ",
            self.name(),
            remote.ip(),
            remote.port(),
        )?;
        match self {
            SecurityEvent::AuthenticationFailed { user, reason, .. } => {
                write!(f, "user={user:?} reason={reason:?}")
            }
            SecurityEvent::WebAuthenticationFailed { what, .. } => write!(f, "what={what}"),
            SecurityEvent::Flood { scope, .. }
            | SecurityEvent::WebFlood { scope, .. }
            | SecurityEvent::ConnectionLimit { scope, .. }
            | SecurityEvent::AnonymousExpired { scope, .. } => write!(f, "scope={scope}"),
            SecurityEvent::Banned { ban, failures, .. }
            | SecurityEvent::WebBanned { ban, failures, .. } => write!(
                f,
                "scope={} until={} failures={failures}",
                ban.scope,
                Utc(ban.until_ms)
            ),
            SecurityEvent::Scanner {
                user_agent, method, ..
            } => write!(f, "user_agent={user_agent} method={method:?}"),
            SecurityEvent::Refused {
                method,
                status,
                reason,
                user,
                ..
            } => {
                write!(f, "method={method:?} status={status} reason={reason:?}")?;
                match user {
                    Some(user) => write!(f, " user={user:?}"),
                    None => Ok(()),
                }
            }
        }
    }
}
