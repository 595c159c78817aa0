//! Answers given before authentication keep no state (RFC 3261 §8.2.7, §16.3), like the
//! challenges: one response per request, no transaction and no resend, so that a stranger can
//! neither fill the transaction table nor have hotline amplify a forged source's traffic. A
//! retransmission is simply answered again, within the flood limits, and an ACK for such a
//! response matches nothing and is dropped.

use std::collections::VecDeque;
use std::net::SocketAddr;

use super::clock::Now;
use super::output::Transmit;
use super::registrar::Flow;
use super::security::SecurityEvent;
use super::{Core, Reply};
use crate::sip::{Message, Transport};

/// How hotline answers a request it handles itself.
pub(super) enum Answer {
    /// After authentication: kept in a transaction that answers retransmissions.
    Stateful(Reply),
    /// Before authentication: sent once and forgotten.
    Stateless(Reply),
    /// Before authentication, and well-formed, yet refused: it claimed what its source does not
    /// have (a dialog, someone else's call, a route through hotline, another domain) or asked
    /// for what no phone needs (Max-Forwards 0, an unknown extension). A security event that
    /// counts toward a ban. Malformed requests stay [`Answer::Stateless`]: they are answered
    /// by the sanity checks, and a phone's quirk must not ban its owner.
    Refused(Reply),
}

impl Core {
    /// Sends `reply` to `request` without keeping anything; a refusal is also logged as a
    /// security event and counted like an authentication failure.
    pub(super) fn answer_statelessly(
        &mut self,
        request: &Message,
        flow: &Flow,
        answer: Answer,
        now: Now,
        actions: &mut VecDeque<Transmit>,
    ) {
        let reply = match answer {
            Answer::Refused(reply) => {
                let refused = SecurityEvent::Refused {
                    flow: *flow,
                    method: request.method_text().unwrap_or_default().to_owned(),
                    status: reply.status,
                    reason: reply.reason,
                    user: None,
                };
                self.report(refused, now.wall_ms);
                self.count_failure(flow, now.wall_ms);
                reply
            }
            Answer::Stateless(reply) | Answer::Stateful(reply) => {
                if reply.status >= 300 && !reply.is_challenge() {
                    self.log_refusal(request, flow, reply.status, reply.reason);
                }
                reply
            }
        };
        actions.push_back(Transmit {
            flow: *flow,
            bytes: reply.build(request, flow.remote),
        });
    }

    /// Whether `remote` (over `transport`) is one hotline must never send requests to on behalf
    /// of a phone: its own listening socket, an unspecified or a multicast address. A REGISTER
    /// with a forged source must not turn hotline against itself or a group. UDP and TCP ports
    /// are apart: a TCP phone may be given the number of hotline's UDP port, and is no loop.
    pub(super) fn is_forbidden_contact(&self, transport: Transport, remote: SocketAddr) -> bool {
        let address = remote.ip();
        address.is_unspecified()
            || address.is_multicast()
            || self.listeners.iter().any(|(listening, listener)| {
                listening.is_stream() == transport.is_stream()
                    && listener.port() == remote.port()
                    && (listener.ip() == address
                        || (listener.ip().is_unspecified() && address.is_loopback()))
            })
    }
}
