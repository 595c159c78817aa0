//! The sans-IO protocol core. It never touches a socket, a clock or a file, so every behaviour
//! is testable in microseconds with simulated time.
//!
//! **Inputs**, each with [`Now`], the two clocks read by the network layer (see [`clock`]):
//! [`Core::handle`] for a message that arrived, [`Core::handle_timeout`] when the last
//! [`Output::Timeout`] is due, and the changes of the world around: [`Core::connection_closed`],
//! [`Core::set_user`], [`Core::remove_user`], [`Core::lift_ban`], [`Core::flush_bindings`].
//!
//! **The two clocks.** A monotonic [`Instant`] drives every timer (transactions, the ring
//! timeout, flood windows, dialog lifetimes, retransmission absorption); wall time in Unix
//! milliseconds is used only for what is stored or compared across a restart (binding expiries,
//! bans, nonce ages). A step of the wall clock moves no timer.
//!
//! **One way out.** After any input, the network layer calls [`Core::poll_output`] until it
//! returns [`Output::Timeout`]: before it come the [`Transmit`]s (bytes to send over a flow) and
//! the [`Event`]s (bindings to write, bans to write, security events to log), in order.

pub mod auth;
pub mod bans;
pub mod clock;
pub mod dialog;
pub mod hangup;
pub mod history;
pub mod limits;
pub mod lingering;
mod output;
pub mod proxy;
pub mod registrar;
pub mod route_sign;
mod routing;
pub mod sanity;
pub mod scanners;
pub mod security;
pub mod settings;
mod share;
mod stateless;
pub mod transaction;
pub mod user;
pub mod web;

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use tracing::{info, warn};

use crate::sip::{HeaderName, Host, Message, Method, Response, Transport, Uri};

use self::auth::{Attempt, Authenticator, Peer, Rejection, Verdict, parse_credentials};
use self::bans::{Ban, Bans, Scope, Utc};
use self::hangup::Hangups;
use self::history::History;
use self::limits::{Limiter, Verdict as FloodVerdict};
use self::proxy::Proxy;
use self::registrar::{Binding, RegisterError, Registrar};
use self::route_sign::RouteSigner;
use self::scanners::Sightings;
use self::security::SecurityEvent;
use self::stateless::Answer;
use self::transaction::{Key, ServerTransactions, Timers};
use self::user::{Extension, User};

pub use self::clock::{Instant, Now};
pub use self::output::{Event, Output, Transmit};
pub use self::registrar::{ConnectionId, Flow};
pub use self::settings::Settings;

/// Methods hotline handles: its own, and those it routes to users.
const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, MESSAGE, SUBSCRIBE, NOTIFY, INFO, REFER, UPDATE, PRACK";

/// How often expired bindings, dialogs, transactions and bans are swept out.
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// A message as it arrived.
pub struct Inbound<'a> {
    pub bytes: &'a [u8],
    pub flow: Flow,
}

/// A response hotline makes itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reply {
    pub status: u16,
    pub reason: &'static str,
    pub headers: Vec<(&'static str, String)>,
}

impl Reply {
    pub fn new(status: u16, reason: &'static str) -> Reply {
        Reply {
            status,
            reason,
            headers: Vec::new(),
        }
    }

    pub fn with(mut self, name: &'static str, value: impl fmt::Display) -> Reply {
        self.headers.push((name, value.to_string()));
        self
    }

    pub fn build(&self, request: &Message, remote: SocketAddr) -> Vec<u8> {
        let mut response = Response::to(request, remote, self.status, self.reason);
        for (name, value) in &self.headers {
            response.header(name, value);
        }
        response.finish()
    }

    /// A request for credentials (401 or 407).
    pub fn is_challenge(&self) -> bool {
        matches!(self.status, 401 | 407)
    }
}

/// Who asks for credentials: the registrar (401, RFC 3261 §22.2) or the proxy (407, §22.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AuthKind {
    Registrar,
    Proxy,
}

impl AuthKind {
    fn credentials(self) -> HeaderName {
        match self {
            AuthKind::Registrar => HeaderName::Authorization,
            AuthKind::Proxy => HeaderName::ProxyAuthorization,
        }
    }

    fn challenge(self) -> Reply {
        match self {
            AuthKind::Registrar => Reply::new(401, "Unauthorized"),
            AuthKind::Proxy => Reply::new(407, "Proxy Authentication Required"),
        }
    }

    fn challenge_header(self) -> &'static str {
        match self {
            AuthKind::Registrar => "WWW-Authenticate",
            AuthKind::Proxy => "Proxy-Authenticate",
        }
    }
}

pub struct Core {
    domain: String,
    aliases: Vec<String>,
    /// Where hotline listens: what Record-Route and Via name, and which Routes are ours.
    listeners: Vec<(Transport, SocketAddr)>,
    max_headers: usize,
    max_vias: usize,
    users: HashMap<Extension, User>,
    auth: Authenticator,
    /// Signs the Record-Route of the dialogs hotline makes, and checks the Routes that claim one.
    route_signer: RouteSigner,
    registrar: Registrar,
    transactions: ServerTransactions,
    proxy: Proxy,
    hangups: Hangups,
    limiter: Limiter,
    bans: Bans,
    scanners: Sightings,
    /// Counters and recent calls and events, for the owner's pages.
    history: History,
    /// What [`Core::poll_output`] gives next: transmits first, then events.
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    /// When the next sweep of expired state is due.
    next_sweep: Instant,
    /// When the next batch of changed bindings is due, and how often.
    next_flush: Instant,
    flush_interval: Duration,
}

impl Core {
    /// A core with `settings` listening at `listeners`, with the install's secret, the users, the
    /// bindings and the bans from the store.
    pub fn new(
        settings: Settings,
        listeners: Vec<(Transport, SocketAddr)>,
        secret: [u8; 32],
        users: Vec<User>,
        bindings: Vec<(Extension, Binding)>,
        bans: Vec<Ban>,
        now: Now,
    ) -> Core {
        let proxy = Proxy::new(&settings, now.wall_ms);
        let Settings {
            domain,
            aliases,
            max_headers,
            max_vias,
            max_transactions,
            registrar,
            auth,
            flood,
            bans: ban_settings,
            ..
        } = settings;
        let mut core = Core {
            domain,
            aliases,
            listeners,
            max_headers,
            max_vias,
            users: HashMap::new(),
            auth: Authenticator::new(
                secret,
                auth.algorithms,
                auth.nonce_ttl,
                auth.max_tracked_nonces,
                now.wall_ms,
            ),
            route_signer: RouteSigner::new(&secret),
            flush_interval: registrar.flush_interval,
            next_flush: now.instant + registrar.flush_interval,
            registrar: Registrar::new(registrar, bindings, now.wall_ms),
            transactions: ServerTransactions::new(max_transactions),
            proxy,
            hangups: Hangups::new(Timers::default(), max_transactions, now.wall_ms),
            limiter: Limiter::new(flood),
            bans: Bans::new(&ban_settings),
            scanners: Sightings::new(
                ban_settings.window,
                ban_settings.prefix,
                ban_settings.capacity,
            ),
            history: History::default(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            next_sweep: now.instant + SWEEP_INTERVAL,
        };
        for user in users {
            core.set_user(user);
        }
        for ban in bans {
            core.bans.insert(ban);
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

    /// Handles one message; what it causes waits in [`Core::poll_output`].
    pub fn handle(&mut self, input: Inbound<'_>, now: Now) {
        let mut transmits = std::mem::take(&mut self.transmits);
        self.handle_message(input, now, &mut transmits);
        self.transmits = transmits;
        self.note_outcomes(now);
    }

    /// Records the final statuses new calls got in the history.
    fn note_outcomes(&mut self, now: Now) {
        for (call_id, status) in self.proxy.take_outcomes() {
            self.history.call_answered(&call_id, status, now.wall_ms);
        }
    }

    /// The next thing to do: every [`Transmit`] and [`Event`] the inputs so far caused, then
    /// [`Output::Timeout`] with the instant [`Core::handle_timeout`] is next due (which ends a
    /// round: ask again after the next input).
    pub fn poll_output(&mut self) -> Output {
        if let Some(transmit) = self.transmits.pop_front() {
            return Output::Transmit(transmit);
        }
        if let Some(event) = self.events.pop_front() {
            return Output::Event(event);
        }
        let timers = [self.proxy.next_timer(), self.hangups.next_timer()]
            .into_iter()
            .flatten()
            .min()
            .map(Instant::from_millis);
        let housekeeping = self.next_sweep.min(self.next_flush);
        Output::Timeout(timers.map_or(housekeeping, |at| at.min(housekeeping)))
    }

    fn handle_message(&mut self, input: Inbound<'_>, now: Now, actions: &mut VecDeque<Transmit>) {
        let flow = input.flow;
        // Before parsing: a banned source costs as little as possible and learns nothing.
        if let Some(dropped) = self.bans.drop_from(flow.remote.ip(), now.wall_ms) {
            if dropped.first {
                info!(source = %flow.remote, transport = %flow.transport, scope = %dropped.scope, until = %Utc(dropped.until_ms), "dropping messages from a banned source");
            }
            return;
        }
        let flood = self.limiter.check(flow.remote.ip(), now.ms());
        if flood != FloodVerdict::Allow {
            for scope in self.limiter.take_new_floods() {
                self.report(SecurityEvent::Flood { flow, scope }, now.wall_ms);
            }
            if flood == FloodVerdict::Refuse {
                self.refuse_flood(input.bytes, flow, actions);
            }
            return;
        }
        let message = match Message::parse(input.bytes, self.max_headers) {
            Ok(message) => message,
            Err(error) => {
                info!(source = %flow.remote, transport = %flow.transport, reason = %error, "dropped unparsable message");
                return;
            }
        };
        let Some(method) = message.method() else {
            if !self.hangup_response(&message, now, actions)
                && let Some(hang_up) = self.proxy.response(message, flow, now, actions)
            {
                self.hang_up(hang_up, now, actions);
            }
            return;
        };
        if self.is_from_scanner(&message, &flow, now) {
            return;
        }
        let Some(via) = message.top_via() else {
            info!(source = %flow.remote, transport = %flow.transport, reason = "missing or malformed Via", "dropped request");
            return;
        };
        let sane = sanity::check(&message, self.max_vias, flow.transport.is_stream());
        if method == Method::Ack {
            if sane.is_ok() {
                self.proxy_ack(&message, &via, flow, now, actions);
            }
            return;
        }
        let key = Key::of(&message, &via);
        let local = sane.is_err()
            || matches!(method, Method::Register | Method::Cancel)
            || (method == Method::Options && self.is_for_server(&message));
        if !local {
            if let Some(key) = key {
                self.proxy(message, method, key, flow, now, actions);
            }
            return;
        }
        // Requests answered here after authentication keep their response for retransmissions
        // over UDP.
        let cached = key.filter(|_| flow.transport == Transport::Udp);
        if let Some(response) = cached.as_ref().and_then(|k| self.transactions.response(k)) {
            actions.push_back(Transmit {
                flow,
                bytes: response.to_vec(),
            });
            return;
        }
        let answer = match sane {
            Err(refusal) => Answer::Stateless(Reply::new(refusal.status, refusal.reason)),
            Ok(()) => match method {
                Method::Register => self.register(&message, &flow, now),
                Method::Cancel => self.proxy_cancel(&message, &via, flow, now, actions),
                // What is left is an OPTIONS ping of the server itself.
                _ => Answer::Stateless(
                    Reply::new(200, "OK")
                        .with("Allow", ALLOW)
                        .with("Accept", "application/sdp"),
                ),
            },
        };
        let Answer::Stateful(reply) = answer else {
            self.answer_statelessly(&message, &flow, answer, now, actions);
            return;
        };
        if reply.status >= 300 {
            self.log_refusal(&message, &flow, reply.status, reply.reason);
        }
        let response = reply.build(&message, flow.remote);
        if let Some(key) = cached {
            self.transactions.complete(key, response.clone(), now.ms());
        }
        actions.push_back(Transmit {
            flow,
            bytes: response,
        });
    }

    /// `403 Flood detected`, statelessly, to a request that can be answered at all.
    fn refuse_flood(&self, bytes: &[u8], flow: Flow, actions: &mut VecDeque<Transmit>) {
        let Ok(request) = Message::parse(bytes, self.max_headers) else {
            return;
        };
        let answerable =
            request.top_via().is_some() && !matches!(request.method(), None | Some(Method::Ack));
        if answerable {
            let bytes = Reply::new(403, "Flood detected").build(&request, flow.remote);
            actions.push_back(Transmit { flow, bytes });
        }
    }

    /// Runs what is due at `now`: transaction, ring and hang-up timers, the sweep of expired
    /// state (about once a second) and the batch of changed bindings (every `flush_interval`).
    pub fn handle_timeout(&mut self, now: Now) {
        let mut transmits = std::mem::take(&mut self.transmits);
        self.hangup_timeouts(now, &mut transmits);
        self.proxy.on_timers(now, &mut transmits);
        self.transmits = transmits;
        self.note_outcomes(now);
        if now.instant >= self.next_sweep {
            self.sweep(now);
            self.next_sweep = now.instant + SWEEP_INTERVAL;
        }
        if now.instant >= self.next_flush {
            self.flush_bindings();
            self.next_flush = now.instant + self.flush_interval;
        }
    }

    /// Expires bindings and bans (by wall time), dialogs, completed transactions and scanner
    /// sightings (by the monotonic clock).
    fn sweep(&mut self, now: Now) {
        self.transactions.expire(now.ms());
        self.proxy.expire(now.ms());
        for extension in self.registrar.expire(now.wall_ms) {
            info!(%extension, "binding expired");
        }
        for ended in self.bans.expire(now.wall_ms) {
            info!(scope = %ended.ban.scope, dropped = ended.dropped, "ban ended");
        }
        self.scanners.expire(now.ms());
    }

    pub fn connection_closed(&mut self, connection: ConnectionId) {
        self.registrar.connection_closed(connection);
    }

    /// Emits the bindings changed since the last batch now, as one [`Event::BindingsChanged`]
    /// (at shutdown; otherwise they go every `flush_interval`).
    pub fn flush_bindings(&mut self) {
        let changed = self.registrar.take_dirty();
        if !changed.is_empty() {
            self.events.push_back(Event::BindingsChanged(changed));
        }
    }

    /// Logs `event` (through the network layer) and keeps it for the owner's Security page.
    fn report(&mut self, event: SecurityEvent, now_ms: u64) {
        self.history.security(&event, now_ms);
        self.events.push_back(Event::Security(event));
    }

    /// Lifts the ban of exactly `scope` (after `hotline ban remove`); false if there was none.
    pub fn lift_ban(&mut self, scope: &Scope) -> bool {
        self.bans.remove(scope)
    }

    /// The registrar of RFC 3261 §10.3.
    fn register(&mut self, request: &Message, flow: &Flow, now: Now) -> Answer {
        let request_uri = request.request_uri().and_then(|u| Uri::parse(u).ok());
        if !request_uri.is_some_and(|u| self.is_local(&u.host)) {
            return Answer::Refused(Reply::new(403, "Domain Not Served"));
        }
        if let Some(required) = request.header(HeaderName::Require) {
            return Answer::Refused(Reply::new(420, "Bad Extension").with("Unsupported", required));
        }
        let to = request.to().and_then(|t| t.parsed_uri().ok());
        let Some(to) = to.filter(|t| self.is_local(&t.host)) else {
            return Answer::Refused(Reply::new(403, "Domain Not Served"));
        };
        let extension = match self.authenticate(request, flow, now, AuthKind::Registrar) {
            Ok(extension) => extension,
            Err(reply) => return Answer::Stateless(reply),
        };
        Answer::Stateful(self.bind(&extension, &to, request, flow, now))
    }

    /// Applies an authenticated REGISTER.
    fn bind(
        &mut self,
        extension: &Extension,
        to: &Uri<'_>,
        request: &Message,
        flow: &Flow,
        now: Now,
    ) -> Reply {
        if to.user != Some(extension.as_str()) {
            return Reply::new(403, "Forbidden: To is not the authenticated user");
        }
        if self.is_forbidden_contact(flow.transport, flow.remote) {
            self.report(
                SecurityEvent::Refused {
                    flow: *flow,
                    method: "REGISTER".to_owned(),
                    status: 403,
                    reason: "source may not be bound",
                    user: Some(extension.clone()),
                },
                now.wall_ms,
            );
            return Reply::new(403, "Forbidden: Source Address Not Allowed");
        }
        match self
            .registrar
            .register(extension, request, *flow, now.wall_ms)
        {
            Ok(()) => {
                let mut reply = Reply::new(200, "OK");
                for binding in self.registrar.contacts(extension, now.wall_ms) {
                    let expires = binding.remaining_secs(now.wall_ms);
                    reply = reply.with(
                        "Contact",
                        format_args!("<{}>;expires={expires}", binding.contact),
                    );
                }
                info!(source = %flow.remote, transport = %flow.transport, %extension, contacts = reply.headers.len(), "registered");
                self.history.registration(now.wall_ms);
                reply
            }
            Err(RegisterError::IntervalTooBrief) => Reply::new(423, "Interval Too Brief")
                .with("Min-Expires", self.registrar.min_expires()),
            Err(RegisterError::BadRequest(reason)) => Reply::new(400, reason),
            Err(RegisterError::TooManyContacts) => Reply::new(403, "Too Many Contacts"),
            Err(RegisterError::Full) => Reply::new(503, "Registrar Full"),
            Err(RegisterError::OutOfOrder) => Reply::new(500, "CSeq Out Of Order"),
        }
    }

    /// Digest authentication (RFC 3261 §22). `Err` holds the reply: a challenge, or 403 for
    /// wrong credentials (the same whether or not the user exists).
    fn authenticate(
        &mut self,
        request: &Message,
        flow: &Flow,
        now: Now,
        kind: AuthKind,
    ) -> Result<Extension, Reply> {
        let now_ms = now.wall_ms;
        let realm = self.domain.as_str();
        let credentials = request
            .headers(kind.credentials())
            .filter_map(|value| parse_credentials(value).ok())
            .find(|c| c.realm == realm);
        let Some(credentials) = credentials else {
            return Err(self.challenge(kind, flow, now_ms, false));
        };
        let user = Extension::parse(&credentials.username)
            .ok()
            .and_then(|e| self.users.get(&e));
        let method = request.method_text().unwrap_or_default();
        let uri = request.request_uri().unwrap_or_default();
        let attempt = Attempt {
            method,
            request_uri: uri,
            realm,
            client: Peer::new(flow.remote.ip(), flow.transport),
        };
        match self.auth.verify(&credentials, &attempt, user, now_ms) {
            Verdict::Authenticated => match user {
                Some(user) => {
                    if let Some(connection) = flow.connection.filter(|_| flow.transport.is_stream())
                    {
                        self.events.push_back(Event::Authenticated(connection));
                    }
                    Ok(user.extension.clone())
                }
                None => Err(self.challenge(kind, flow, now_ms, false)),
            },
            Verdict::Stale => Err(self.challenge(kind, flow, now_ms, true)),
            Verdict::Rejected(Rejection::InvalidNonce) => {
                info!(source = %flow.remote, transport = %flow.transport, user = ?credentials.username, "credentials with a nonce issued to another address or transport, or under another secret: challenging again");
                Err(self.challenge(kind, flow, now_ms, false))
            }
            Verdict::Rejected(reason) => {
                let user = credentials.username.to_string();
                let failed = SecurityEvent::AuthenticationFailed {
                    flow: *flow,
                    user,
                    reason,
                };
                self.report(failed, now_ms);
                self.count_failure(flow, now_ms);
                Err(Reply::new(403, "Forbidden"))
            }
        }
    }

    /// Counts an authentication failure toward a ban of its source.
    fn count_failure(&mut self, flow: &Flow, now_ms: u64) {
        if let Some(ban) = self.bans.record_failure(flow.remote.ip(), now_ms) {
            let banned = SecurityEvent::Banned {
                flow: *flow,
                ban: ban.clone(),
                failures: self.bans.threshold(),
            };
            self.report(banned, now_ms);
            self.events.push_back(Event::BanAdded(ban));
        }
    }

    /// A request from a known scanner: dropped without a reply, logged once per source and
    /// window.
    fn is_from_scanner(&mut self, request: &Message, flow: &Flow, now: Now) -> bool {
        let Some(name) = request
            .headers(HeaderName::UserAgent)
            .find_map(scanners::scanner)
        else {
            return false;
        };
        if self.scanners.first_in_window(flow.remote.ip(), now.ms()) {
            let scanner = SecurityEvent::Scanner {
                flow: *flow,
                user_agent: name,
                method: request.method_text().unwrap_or_default().to_owned(),
            };
            self.report(scanner, now.wall_ms);
        }
        true
    }

    /// A challenge whose nonce only `flow`'s address and transport can use.
    fn challenge(&mut self, kind: AuthKind, flow: &Flow, now_ms: u64, stale: bool) -> Reply {
        let mut reply = kind.challenge();
        let peer = Peer::new(flow.remote.ip(), flow.transport);
        for challenge in self.auth.challenges(&self.domain, &peer, now_ms, stale) {
            reply = reply.with(kind.challenge_header(), challenge.header_value());
        }
        reply
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
mod bans_tests;
#[cfg(test)]
mod clock_tests;
#[cfg(test)]
mod proxy_tests;
#[cfg(test)]
mod stranger_tests;
#[cfg(test)]
mod tests;
