//! Where the proxy sends a request (RFC 3261 §16.4–16.6): loose routing through hotline's own
//! Routes, in-dialog requests by the dialogs hotline signed, other requests to the callee's
//! registered contacts once the caller authenticated; and each request as forwarded. What
//! decides needs the core's users, registrar, authenticator and listeners; the transactions
//! that carry the request out belong to the [`Proxy`](super::proxy::Proxy).

use std::collections::VecDeque;

use tracing::{debug, info, warn};

use super::clock::Now;
use super::output::Transmit;
use super::proxy::{Fork, Incoming, check_ack};
use super::registrar::Flow;
use super::stateless::Answer;
use super::transaction::Key;
use super::user::Extension;
use super::{AuthKind, Core, Reply};
use crate::sip::{
    Edit, Forwarded, HeaderName, Host, Message, Method, NameAddr, Transport, Uri, Via, drop_first,
    request_uri_form,
};

/// Max-Forwards given to a request that has none, as the seed's
/// `mf_process_maxfwd_header("10")`.
const DEFAULT_MAX_FORWARDS: u32 = 10;

/// A target of a request: the URI to put in the Request-URI and the flow that reaches it.
pub(super) struct Hop {
    pub uri: String,
    pub flow: Flow,
}

impl Core {
    /// A request to proxy (anything but REGISTER, ACK, CANCEL and pings of the server).
    pub(super) fn proxy(
        &mut self,
        request: Message,
        method: Method,
        via: Key,
        flow: Flow,
        now: Now,
        actions: &mut VecDeque<Transmit>,
    ) {
        if self.proxy.retransmission(&via, actions) {
            return;
        }
        // Only what passed authentication, or a signed dialog, may take a transaction.
        let route = match self.route(&request, method, &flow, now) {
            Ok(hops) => Ok(hops),
            Err(Answer::Stateful(reply)) => Err(reply),
            Err(answer) => {
                self.answer_statelessly(&request, &flow, answer, now, actions);
                return;
            }
        };
        if !self.proxy.has_room_for(flow.remote.ip()) {
            warn!(source = %flow.remote, "proxy at its transaction limit, for all or for this source's prefix: 503");
            let reply = Reply::new(503, "Service Unavailable").with("Retry-After", 5);
            actions.push_back(Transmit {
                flow,
                bytes: reply.build(&request, flow.remote),
            });
            return;
        }
        let route = match route {
            Ok(hops) => Ok(hops
                .into_iter()
                .map(|hop| self.fork(&request, method, flow.transport, hop))
                .collect()),
            Err(reply) => {
                self.log_refusal(&request, &flow, reply.status, reply.reason);
                Err((reply.status, reply.build(&request, flow.remote)))
            }
        };
        let new_call = self.note_call(&request, method, now.wall_ms);
        let incoming = Incoming {
            request,
            method,
            key: via,
            upstream: flow,
            new_call,
        };
        self.proxy.start(incoming, route, now, actions);
    }

    /// Records a new call or the end of one in the history; the Call-ID of a new call.
    fn note_call(&mut self, request: &Message, method: Method, now_ms: u64) -> Option<String> {
        let call_id = request.call_id()?;
        let in_dialog = request.to().is_some_and(|to| to.tag().is_some());
        match method {
            Method::Invite if !in_dialog => {
                let party = |name_addr: Option<NameAddr<'_>>| {
                    name_addr
                        .and_then(|n| n.parsed_uri().ok())
                        .and_then(|u| u.user)
                        .unwrap_or_default()
                        .to_owned()
                };
                let to = request.request_uri().and_then(|u| Uri::parse(u).ok());
                let to = to.and_then(|u| u.user).unwrap_or_default();
                self.history
                    .call_started(call_id, &party(request.from()), to, now_ms);
                Some(call_id.to_owned())
            }
            Method::Bye => {
                self.history.call_ended(call_id, now_ms);
                None
            }
            _ => None,
        }
    }

    /// `request` as forwarded to `hop` on a new branch; `None` when the connection the hop's
    /// contact registered over is gone.
    fn fork(
        &mut self,
        request: &Message,
        method: Method,
        arrived: Transport,
        hop: Hop,
    ) -> Option<Fork> {
        if hop.flow.transport.is_stream() && hop.flow.connection.is_none() {
            debug!(target = %hop.uri, "the connection this contact registered over is gone");
            return None;
        }
        let (branch, via_branch) = self.proxy.branch();
        let (bytes, invite) = self.forwarded(request, method, arrived, &hop, &via_branch);
        Some(Fork {
            branch,
            flow: hop.flow,
            bytes,
            invite,
        })
    }

    /// Where a request goes, or how hotline itself answers it: statelessly for everything
    /// decided before authentication (or before a dialog's signature is checked).
    fn route(
        &mut self,
        request: &Message,
        method: Method,
        flow: &Flow,
        now: Now,
    ) -> Result<Vec<Hop>, Answer> {
        let max_forwards = match request.header(HeaderName::MaxForwards) {
            Some(value) => value.trim().parse::<u32>().unwrap_or(0),
            None => DEFAULT_MAX_FORWARDS + 1,
        };
        if max_forwards == 0 {
            return Err(Answer::Refused(Reply::new(483, "Too Many Hops")));
        }
        if let Some(required) = request.header(HeaderName::ProxyRequire) {
            return Err(Answer::Refused(
                Reply::new(420, "Bad Extension").with("Unsupported", required),
            ));
        }
        let routes: Vec<&str> = request.values(HeaderName::Route).collect();
        let ours = routes.iter().take_while(|r| self.is_our_route(r)).count();
        if ours < routes.len() {
            return Err(Answer::Refused(Reply::new(403, "Relaying Forbidden")));
        }
        let in_dialog = request.to().and_then(|t| t.tag()).is_some();
        if in_dialog {
            // Only a dialog hotline record-routed, proven by its signature: neither a To tag nor
            // a phone's Contact, which anyone who was in a call with it knows, is enough.
            if !self.route_signer.is_signed(request) {
                return Err(Answer::Refused(Reply::new(
                    481,
                    "Call/Transaction Does Not Exist",
                )));
            }
            self.check_offer(request, flow, false)
                .map_err(Answer::Stateful)?;
            let uri = request.request_uri().unwrap_or_default();
            debug!(source = %flow.remote, method = ?request.method_text().unwrap_or_default(), "routing in-dialog request");
            if let (Some(call_id), Some(cseq)) = (request.call_id(), request.cseq()) {
                self.proxy
                    .dialogs_mut()
                    .saw_request(call_id, uri, cseq.number);
            }
            return match self.dialog_hop(request, uri) {
                Some(flow) => Ok(vec![Hop {
                    uri: uri.to_owned(),
                    flow,
                }]),
                None => Err(Answer::Stateful(Reply::new(404, "Not Found"))),
            };
        }
        let uri = request
            .request_uri()
            .and_then(|u| Uri::parse(u).ok())
            .ok_or(Answer::Stateless(Reply::new(400, "Bad Request-URI")))?;
        if !self.is_local(&uri.host) {
            return Err(Answer::Refused(Reply::new(403, "Relaying Forbidden")));
        }
        let caller = self
            .authenticate(request, flow, now, AuthKind::Proxy)
            .map_err(Answer::Stateless)?;
        self.route_authenticated(request, method, flow, &uri, &caller, now)
            .map_err(Answer::Stateful)
    }

    /// Where an authenticated request outside any dialog goes: the callee's contacts.
    fn route_authenticated(
        &mut self,
        request: &Message,
        method: Method,
        flow: &Flow,
        uri: &Uri<'_>,
        caller: &Extension,
        now: Now,
    ) -> Result<Vec<Hop>, Reply> {
        let from_user = request
            .from()
            .and_then(|f| f.parsed_uri().ok())
            .and_then(|u| u.user);
        if from_user != Some(caller.as_str()) {
            return Err(Reply::new(403, "From Is Not The Authenticated User"));
        }
        self.check_offer(request, flow, method == Method::Invite)?;
        let callee = uri
            .user
            .and_then(|u| Extension::parse(u).ok())
            .filter(|e| self.users.contains_key(e))
            .ok_or(Reply::new(404, "Not Found"))?;
        let hops: Vec<Hop> = self
            .registrar
            .contacts(&callee, now.wall_ms)
            .map(|b| Hop {
                uri: request_uri_form(&b.contact),
                flow: b.flow,
            })
            .collect();
        if hops.is_empty() {
            return Err(Reply::new(480, "Temporarily Unavailable"));
        }
        info!(
            source = %flow.remote,
            method = ?request.method_text().unwrap_or_default(),
            from = %caller,
            to = %callee,
            branches = hops.len(),
            "routing request"
        );
        Ok(hops)
    }

    /// The flow for an in-dialog request whose dialog signature verified: the dialog's party
    /// with that Contact, and no one else (a party must not reach third phones with the
    /// signature of its own call); a binding only when the dialog is not known here (the table
    /// is gone after a restart).
    fn dialog_hop(&self, request: &Message, uri: &str) -> Option<Flow> {
        let call_id = request.call_id()?;
        self.proxy
            .dialog_route(call_id, uri)
            .unwrap_or_else(|_| self.registrar.flow_of_contact(uri))
    }

    /// The request as sent to `hop` (§16.6): new Request-URI, our Via on top, our Routes
    /// removed, Max-Forwards decremented, our credentials consumed, Record-Route for dialogs;
    /// for an INVITE, also what its CANCEL and ACK repeat.
    fn forwarded(
        &self,
        request: &Message,
        method: Method,
        arrived: Transport,
        hop: &Hop,
        branch: &str,
    ) -> (Vec<u8>, Option<Forwarded>) {
        let out = hop.flow.transport;
        let via = format!(
            "SIP/2.0/{out} {};branch={branch};rport",
            self.advertised(out)
        );
        let in_dialog = request.to().and_then(|t| t.tag()).is_some();
        let routes = request
            .values(HeaderName::Route)
            .take_while(|r| self.is_our_route(r))
            .count();
        let invite = (method == Method::Invite).then(|| {
            Forwarded::new(
                request,
                &hop.uri,
                &via,
                drop_first(HeaderName::Route, routes),
            )
        });
        let mut prepend = vec![("Via", via)];
        if method.forms_dialog() && !in_dialog {
            let signature = self.route_signer.sign(
                request.call_id().unwrap_or_default(),
                request.from().and_then(|f| f.tag()).unwrap_or_default(),
            );
            // RFC 5658: one entry per side when the transports differ, the callee's side first.
            prepend.push(("Record-Route", self.record_route(out, &signature)));
            if arrived != out {
                prepend.push(("Record-Route", self.record_route(arrived, &signature)));
            }
        }
        let max_forwards = request
            .header(HeaderName::MaxForwards)
            .and_then(|v| v.trim().parse::<u32>().ok())
            .map_or(DEFAULT_MAX_FORWARDS, |v| v.saturating_sub(1));
        let mut drop_routes = drop_first(HeaderName::Route, routes);
        let realm = self.domain.clone();
        let prepend: Vec<(&str, &str)> = prepend.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let has_max_forwards = request.header(HeaderName::MaxForwards).is_some();
        let max_forwards = max_forwards.to_string();
        let append: Vec<(&str, &str)> = match has_max_forwards {
            true => Vec::new(),
            false => vec![("Max-Forwards", max_forwards.as_str())],
        };
        let bytes = request.rewrite(
            Some(&hop.uri),
            &prepend,
            |header, value| match header {
                HeaderName::Route => drop_routes(header, value),
                HeaderName::MaxForwards => Edit::Replace(max_forwards.clone()),
                HeaderName::ProxyAuthorization if credentials_for(value, &realm) => Edit::Drop,
                _ => Edit::Keep,
            },
            &append,
        );
        (bytes, invite)
    }

    /// A CANCEL from upstream (§16.10), for the proxy to match to its INVITE.
    pub(super) fn proxy_cancel(
        &mut self,
        request: &Message,
        via: &Via<'_>,
        flow: Flow,
        now: Now,
        actions: &mut VecDeque<Transmit>,
    ) -> Answer {
        match Key::for_method(request, via, Method::Invite) {
            Some(invite) => self.proxy.cancel(request, invite, flow, now, actions),
            None => Answer::Refused(Reply::new(481, "Call/Transaction Does Not Exist")),
        }
    }

    /// An ACK: for our non-2xx final it ends the server transaction; an ACK for a 2xx is
    /// end-to-end and follows the dialog, statelessly.
    pub(super) fn proxy_ack(
        &mut self,
        request: &Message,
        via: &Via<'_>,
        flow: Flow,
        now: Now,
        actions: &mut VecDeque<Transmit>,
    ) {
        let invite = Key::for_method(request, via, Method::Invite);
        if self.proxy.ack(invite, now, actions) {
            return;
        }
        let routes = request.values(HeaderName::Route).count();
        let ours = request
            .values(HeaderName::Route)
            .take_while(|r| self.is_our_route(r))
            .count();
        let uri = request.request_uri().unwrap_or_default();
        let hop = (ours > 0 && ours == routes && self.route_signer.is_signed(request))
            .then(|| self.dialog_hop(request, uri))
            .flatten();
        let Some(hop_flow) = hop else {
            debug!(source = %flow.remote, "dropped ACK outside any dialog");
            return;
        };
        let branch = self
            .proxy
            .stateless_branch(via.branch().unwrap_or_default());
        let hop = Hop {
            uri: uri.to_owned(),
            flow: hop_flow,
        };
        let (bytes, _) = self.forwarded(request, Method::Ack, flow.transport, &hop, &branch);
        actions.push_back(Transmit {
            flow: hop_flow,
            bytes,
        });
        if let Some(hang_up) = check_ack(request) {
            self.hang_up(hang_up, now, actions);
        }
    }

    /// A Route URI that names this server (loose routing, RFC 3261 §16.4): our domain or an
    /// alias at one of our ports, or exactly one of our listening addresses. Not any IP literal,
    /// which would make every phone's address "ours".
    pub(super) fn is_our_route(&self, route: &str) -> bool {
        let Some(uri) = NameAddr::parse(route).and_then(|r| r.parsed_uri().ok()) else {
            return false;
        };
        let port = uri.port.unwrap_or(5060);
        self.listeners.iter().any(|(_, addr)| {
            addr.port() == port
                && match uri.host {
                    Host::Ip(ip) => Host::Ip(addr.ip()).matches(&uri.host) && !ip.is_unspecified(),
                    Host::Name(_) => self.is_local(&uri.host),
                }
        })
    }

    /// `host:port` at which this server is reached over `transport`.
    pub(super) fn advertised(&self, transport: Transport) -> String {
        let listener = self
            .listeners
            .iter()
            .find(|(t, _)| *t == transport)
            .or(self.listeners.first());
        match listener {
            Some((_, addr)) if !addr.ip().is_unspecified() => {
                format!("[{}]:{}", addr.ip(), addr.port())
            }
            Some((_, addr)) => format!("{}:{}", self.domain, addr.port()),
            None => self.domain.clone(),
        }
    }

    /// Our Record-Route entry, signed for its dialog (see [`super::route_sign`]).
    fn record_route(&self, transport: Transport, signature: &str) -> String {
        let transport_param = transport.as_str().to_ascii_lowercase();
        format!(
            "<sip:{};transport={transport_param};lr;{}={signature}>",
            self.advertised(transport),
            super::route_sign::PARAM
        )
    }
}

/// Whether Proxy-Authorization credentials are for our realm (and so consumed by us).
fn credentials_for(value: &str, realm: &str) -> bool {
    super::auth::parse_credentials(value).is_ok_and(|c| c.realm == realm)
}
