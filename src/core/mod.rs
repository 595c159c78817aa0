//! The sans-IO protocol core: bytes and time in, actions out. It never touches a socket, a clock
//! or a file, so every behaviour is testable with simulated time.

pub mod auth;
pub mod registrar;
pub mod sanity;
pub mod transaction;
pub mod user;

use std::collections::HashMap;

use tracing::{debug, info, warn};

use crate::config::Config;
use crate::sip::{HeaderName, Host, Message, Method, Response, Transport, Uri};

use self::auth::{Authenticator, Rejection, Verdict, parse_credentials};
use self::registrar::{Binding, RegisterError, Registrar};
use self::transaction::{Key, ServerTransactions};
use self::user::{Extension, User};

pub use self::registrar::{ConnectionId, Flow};

/// Methods hotline answers itself today.
const ALLOW: &str = "REGISTER, OPTIONS";

/// A message as it arrived.
pub struct Inbound<'a> {
    pub bytes: &'a [u8],
    pub flow: Flow,
}

/// What the network layer must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send these bytes over `flow` (for streams, over its connection).
    Send { flow: Flow, bytes: Vec<u8> },
}

pub struct Core {
    domain: String,
    aliases: Vec<String>,
    max_headers: usize,
    users: HashMap<Extension, User>,
    auth: Authenticator,
    registrar: Registrar,
    transactions: ServerTransactions,
}

impl Core {
    /// A core for `config`, with the install's secret, the users and the bindings from the store.
    pub fn new(
        config: &Config,
        secret: [u8; 32],
        users: Vec<User>,
        bindings: Vec<(Extension, Binding)>,
        now_ms: u64,
    ) -> Core {
        let mut core = Core {
            domain: config.domain.clone(),
            aliases: config.aliases.clone(),
            max_headers: config.limits.max_headers,
            users: HashMap::new(),
            auth: Authenticator::new(
                secret,
                config.auth.algorithms.clone(),
                config.auth.nonce_ttl,
                config.auth.max_tracked_nonces,
                now_ms,
            ),
            registrar: Registrar::new(config.registrar.clone(), bindings, now_ms),
            transactions: ServerTransactions::new(config.limits.max_transactions),
        };
        for user in users {
            core.set_user(user);
        }
        core
    }

    /// Adds or replaces a user (after `hotline user add` or `passwd`).
    pub fn set_user(&mut self, user: User) {
        if user.realm != self.domain {
            warn!(
                extension = %user.extension,
                realm = %user.realm,
                domain = %self.domain,
                "user was created for another realm and cannot authenticate: give a new password with `hotline user passwd`"
            );
        }
        self.users.insert(user.extension.clone(), user);
    }

    pub fn remove_user(&mut self, extension: &Extension) {
        self.users.remove(extension);
        self.registrar.remove_extension(extension);
    }

    /// Handles one message and appends what must be sent.
    pub fn handle(&mut self, input: Inbound<'_>, now_ms: u64, actions: &mut Vec<Action>) {
        let flow = input.flow;
        let message = match Message::parse(input.bytes, self.max_headers) {
            Ok(message) => message,
            Err(error) => {
                info!(source = %flow.remote, transport = %flow.transport, reason = %error, "dropped unparsable message");
                return;
            }
        };
        let Some(method) = message.method() else {
            debug!(source = %flow.remote, status = message.status(), "dropped response: no client transaction");
            return;
        };
        let Some(via) = message.top_via() else {
            info!(source = %flow.remote, transport = %flow.transport, reason = "missing or malformed Via", "dropped request");
            return;
        };
        if method == Method::Ack {
            return;
        }
        let key = match flow.transport {
            Transport::Udp => Key::of(&message, &via),
            Transport::Tcp | Transport::Tls => None,
        };
        if let Some(response) = key.as_ref().and_then(|k| self.transactions.response(k)) {
            actions.push(Action::Send {
                flow,
                bytes: response.to_vec(),
            });
            return;
        }
        let response = self.respond(&message, method, &flow, now_ms);
        if let Some(key) = key {
            self.transactions.complete(key, response.clone(), now_ms);
        }
        actions.push(Action::Send {
            flow,
            bytes: response,
        });
    }

    /// Expires bindings and completed transactions; call about once a second.
    pub fn tick(&mut self, now_ms: u64) {
        self.transactions.expire(now_ms);
        for extension in self.registrar.expire(now_ms) {
            info!(%extension, "binding expired");
        }
    }

    pub fn connection_closed(&mut self, connection: ConnectionId) {
        self.registrar.connection_closed(connection);
    }

    /// Bindings changed since the last call, for one batched write to the database.
    pub fn take_changed_bindings(&mut self) -> Vec<(Extension, Vec<Binding>)> {
        self.registrar.take_dirty()
    }

    fn respond(&mut self, request: &Message, method: Method, flow: &Flow, now_ms: u64) -> Vec<u8> {
        if let Err(refusal) = sanity::check(request) {
            return self.refuse(request, flow, refusal.status, refusal.reason);
        }
        match method {
            Method::Register => self.register(request, flow, now_ms),
            Method::Options if self.is_for_server(request) => {
                let mut response = Response::to(request, flow.remote, 200, "OK");
                response
                    .header("Allow", ALLOW)
                    .header("Accept", "application/sdp");
                response.finish()
            }
            _ => {
                let mut response = Response::to(request, flow.remote, 501, "Not Implemented");
                response.header("Allow", ALLOW);
                self.log_refusal(request, flow, 501, "Not Implemented");
                response.finish()
            }
        }
    }

    /// The registrar of RFC 3261 §10.3.
    fn register(&mut self, request: &Message, flow: &Flow, now_ms: u64) -> Vec<u8> {
        let request_uri = request.request_uri().and_then(|u| Uri::parse(u).ok());
        if !request_uri.is_some_and(|u| self.is_local(&u.host)) {
            return self.refuse(request, flow, 403, "Domain Not Served");
        }
        if let Some(required) = request.header(HeaderName::Require) {
            let mut response = Response::to(request, flow.remote, 420, "Bad Extension");
            response.header("Unsupported", required);
            self.log_refusal(request, flow, 420, "Bad Extension");
            return response.finish();
        }
        let to = request.to().and_then(|t| t.parsed_uri().ok());
        let Some(to) = to.filter(|t| self.is_local(&t.host)) else {
            return self.refuse(request, flow, 403, "Domain Not Served");
        };
        let extension = match self.authenticate(request, flow, now_ms) {
            Ok(extension) => extension,
            Err(response) => return response,
        };
        if to.user != Some(extension.as_str()) {
            return self.refuse(
                request,
                flow,
                403,
                "Forbidden: To is not the authenticated user",
            );
        }
        let outcome = self.registrar.register(&extension, request, *flow, now_ms);
        let (status, reason) = match outcome {
            Ok(()) => {
                let mut response = Response::to(request, flow.remote, 200, "OK");
                let mut count = 0;
                for binding in self.registrar.contacts(&extension, now_ms) {
                    let expires = binding.remaining_secs(now_ms);
                    response.header(
                        "Contact",
                        format_args!("<{}>;expires={expires}", binding.contact),
                    );
                    count += 1;
                }
                info!(source = %flow.remote, transport = %flow.transport, %extension, contacts = count, "registered");
                return response.finish();
            }
            Err(RegisterError::IntervalTooBrief) => {
                let mut response = Response::to(request, flow.remote, 423, "Interval Too Brief");
                response.header("Min-Expires", self.registrar.min_expires());
                self.log_refusal(request, flow, 423, "Interval Too Brief");
                return response.finish();
            }
            Err(RegisterError::BadRequest(reason)) => (400, reason),
            Err(RegisterError::TooManyContacts) => (403, "Too Many Contacts"),
            Err(RegisterError::Full) => (503, "Registrar Full"),
            Err(RegisterError::OutOfOrder) => (500, "CSeq Out Of Order"),
        };
        self.refuse(request, flow, status, reason)
    }

    /// Digest authentication with `Authorization` (RFC 3261 §22.2). `Err` holds the reply: a
    /// challenge, or 403 for wrong credentials (the same whether or not the user exists).
    fn authenticate(
        &mut self,
        request: &Message,
        flow: &Flow,
        now_ms: u64,
    ) -> Result<Extension, Vec<u8>> {
        let realm = self.domain.as_str();
        let credentials = request
            .headers(HeaderName::Authorization)
            .filter_map(|value| parse_credentials(value).ok())
            .find(|c| c.realm == realm);
        let Some(credentials) = credentials else {
            return Err(self.challenge(request, flow, now_ms, false));
        };
        let user = Extension::parse(&credentials.username)
            .ok()
            .and_then(|e| self.users.get(&e));
        let method = request.method_text().unwrap_or_default();
        let uri = request.request_uri().unwrap_or_default();
        match self
            .auth
            .verify(&credentials, method, uri, realm, user, now_ms)
        {
            Verdict::Authenticated => match user {
                Some(user) => Ok(user.extension.clone()),
                None => Err(self.challenge(request, flow, now_ms, false)),
            },
            Verdict::Stale => Err(self.challenge(request, flow, now_ms, true)),
            Verdict::Rejected(Rejection::InvalidNonce) => {
                debug!(source = %flow.remote, "credentials with a nonce of another secret: challenging again");
                Err(self.challenge(request, flow, now_ms, false))
            }
            Verdict::Rejected(reason) => {
                warn!(
                    source = %flow.remote,
                    transport = %flow.transport,
                    user = ?credentials.username,
                    reason = ?reason,
                    "authentication failed"
                );
                Err(Response::to(request, flow.remote, 403, "Forbidden").finish())
            }
        }
    }

    fn challenge(&mut self, request: &Message, flow: &Flow, now_ms: u64, stale: bool) -> Vec<u8> {
        let mut response = Response::to(request, flow.remote, 401, "Unauthorized");
        for challenge in self.auth.challenges(&self.domain, now_ms, stale) {
            response.header("WWW-Authenticate", challenge.header_value());
        }
        response.finish()
    }

    fn refuse(&self, request: &Message, flow: &Flow, status: u16, reason: &str) -> Vec<u8> {
        self.log_refusal(request, flow, status, reason);
        Response::to(request, flow.remote, status, reason).finish()
    }

    fn log_refusal(&self, request: &Message, flow: &Flow, status: u16, reason: &str) {
        info!(
            source = %flow.remote,
            transport = %flow.transport,
            method = ?request.method_text().unwrap_or_default(),
            status,
            reason,
            "rejected request"
        );
    }

    /// OPTIONS for `sip:<our domain>` without a user: a ping of the server itself.
    fn is_for_server(&self, request: &Message) -> bool {
        request
            .request_uri()
            .and_then(|u| Uri::parse(u).ok())
            .is_some_and(|u| u.user.is_none() && self.is_local(&u.host))
    }

    /// Our domain, an alias, or any IP literal: a request that reached us by address is for us.
    fn is_local(&self, host: &Host<'_>) -> bool {
        matches!(host, Host::Ip(_))
            || std::iter::once(&self.domain)
                .chain(&self.aliases)
                .filter_map(|name| Host::parse(name))
                .any(|name| name.matches(host))
    }
}

#[cfg(test)]
mod tests;
