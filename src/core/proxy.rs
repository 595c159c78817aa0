//! The stateful proxy (RFC 3261 §16): every proxied request gets a server transaction, each
//! target a client transaction (a branch); responses are chosen and forwarded as §16.7 says,
//! CANCEL and the ring timeout cancel the branches, and 2xx responses to INVITE establish the
//! dialogs that in-dialog requests are routed by.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;

use tracing::{debug, info, warn};

use super::dialog::Party;
use super::lingering::{Lingerers, Reaction};
use super::registrar::Flow;
use super::share::Shares;
use super::stateless::Answer;
use super::transaction::{
    ClientInvite, ClientNonInvite, Echo, Key, Lingering, Output, ServerInvite, ServerNonInvite,
    TimerName, Timers,
};
use super::user::Extension;
use super::{Action, AuthKind, Core, Reply};
use crate::sip::{
    Edit, HeaderName, Host, Message, Method, NameAddr, Response, Transport, Uri, Via, ack_for,
    cancel_for, drop_first, request_uri_form,
};

mod media_policy;

/// Max-Forwards given to a request that has none, as the seed's
/// `mf_process_maxfwd_header("10")`.
const DEFAULT_MAX_FORWARDS: u32 = 10;

/// Proxied requests in progress, their transactions and the timers they asked for.
pub struct Calls {
    calls: HashMap<u64, Call>,
    next_id: u64,
    by_server: HashMap<Key, u64>,
    /// Our branches by their number (what follows `branch_prefix`).
    by_branch: HashMap<u64, (u64, usize)>,
    timers: BTreeSet<(u64, u64, Slot)>,
    /// What is left of calls whose transactions only absorb retransmissions.
    lingering: Lingerers,
    settings: Timers,
    capacity: usize,
    /// Calls in progress per /64 of their upstream.
    shares: Shares,
    /// Makes our branches unique across restarts (RFC 3261 §8.1.1.7).
    branch_prefix: String,
    next_branch: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Slot {
    Server(TimerName),
    Client(usize, TimerName),
    Ring,
}

enum ServerTx {
    Invite(ServerInvite),
    NonInvite(ServerNonInvite),
}

enum ClientTx {
    Invite(ClientInvite),
    NonInvite(ClientNonInvite),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cancel {
    No,
    /// CANCEL once a provisional arrives (§9.1 forbids it before).
    Pending,
    Sent,
}

struct Client {
    tx: ClientTx,
    flow: Flow,
    /// The request as forwarded, to build its CANCEL and ACK: kept until the branch's final
    /// response; `None` for a CANCEL's own transaction.
    request: Option<Message>,
    branch: u64,
    /// `None` for a CANCEL's own transaction.
    target: Option<Target>,
    done: bool,
}

struct Target {
    final_status: Option<u16>,
    cancel: Cancel,
    /// Refused for an insecure SDP in a provisional response (see `media_policy`).
    media_refused: bool,
}

/// A response to send upstream when every branch has answered.
struct Best {
    status: u16,
    /// The downstream response, already rewritten; `None` for one hotline makes itself.
    bytes: Option<Vec<u8>>,
}

struct Call {
    server: ServerTx,
    key: Option<Key>,
    upstream: Flow,
    method: Method,
    /// The request as received, until it is answered and every branch has its final response:
    /// after that the transactions only absorb retransmissions.
    request: Option<Message>,
    clients: Vec<Client>,
    best: Option<Best>,
    /// A final response went upstream (later non-2xx ones are absorbed).
    answered: bool,
    server_done: bool,
    /// The timers this call set: a call that only lingers is forgotten before they fire, and
    /// takes them out of the timer set with it, so that the set stays as bounded as the calls.
    timers: Vec<(u64, Slot)>,
}

impl Calls {
    pub fn new(
        settings: Timers,
        capacity: usize,
        per_prefix: usize,
        lingering: usize,
        boot_ms: u64,
    ) -> Calls {
        Calls {
            calls: HashMap::new(),
            next_id: 0,
            by_server: HashMap::new(),
            by_branch: HashMap::new(),
            timers: BTreeSet::new(),
            lingering: Lingerers::new(lingering),
            settings,
            capacity,
            shares: Shares::new(per_prefix),
            branch_prefix: format!("z9hG4bK-hl{boot_ms:x}-"),
            next_branch: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.calls.len()
    }

    /// Transactions kept only to absorb retransmissions.
    pub fn lingering(&self) -> usize {
        self.lingering.len()
    }

    /// Forgets lingering transactions whose timer has fired.
    pub fn expire(&mut self, now: u64) {
        self.lingering.expire(now);
    }

    pub fn is_empty(&self) -> bool {
        self.calls.is_empty()
    }

    #[cfg(test)]
    pub fn pending_timers(&self) -> usize {
        self.timers.len()
    }

    /// When the next timer is due.
    pub fn next_timer(&self) -> Option<u64> {
        self.timers.first().map(|(at, _, _)| *at)
    }

    /// Whether a new call from `source` fits: the table has room, and the source's /64 holds
    /// less than its share.
    fn has_room_for(&self, source: IpAddr) -> bool {
        self.calls.len() < self.capacity && self.shares.has_room(source)
    }

    /// A new branch: its number, and the Via parameter that carries it.
    fn branch(&mut self) -> (u64, String) {
        self.next_branch += 1;
        let number = self.next_branch;
        (number, format!("{}{number:x}", self.branch_prefix))
    }

    /// The number of one of our branches.
    fn branch_number(&self, branch: &str) -> Option<u64> {
        let digits = branch.strip_prefix(&self.branch_prefix)?;
        u64::from_str_radix(digits, 16).ok()
    }
}

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
        now: u64,
        actions: &mut Vec<Action>,
    ) {
        if let Some(&id) = self.calls.by_server.get(&via) {
            if let Some(call) = self.calls.calls.get_mut(&id) {
                let mut out = Vec::new();
                match &mut call.server {
                    ServerTx::Invite(tx) => tx.on_retransmission(&mut out),
                    ServerTx::NonInvite(tx) => tx.on_retransmission(&mut out),
                }
                transmit(out, call.upstream, actions);
            }
            return;
        }
        if let Some(reaction) = self.calls.lingering.server(&via) {
            if let Reaction::Resend(flow, bytes) = reaction {
                actions.push(Action::Send {
                    flow,
                    bytes: bytes.to_vec(),
                });
            }
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
        if !self.calls.has_room_for(flow.remote.ip()) {
            warn!(source = %flow.remote, "proxy at its transaction limit, for all or for this source's prefix: 503");
            let reply = Reply::new(503, "Service Unavailable").with("Retry-After", 5);
            actions.push(Action::Send {
                flow,
                bytes: reply.build(&request, flow.remote),
            });
            return;
        }
        let reliable = flow.transport.is_stream();
        let settings = self.calls.settings;
        let server = match method {
            Method::Invite => ServerTx::Invite(ServerInvite::new(reliable, settings)),
            _ => ServerTx::NonInvite(ServerNonInvite::new(reliable, settings)),
        };
        let id = self.calls.next_id;
        self.calls.next_id += 1;
        self.calls.by_server.insert(via, id);
        self.calls.shares.add(flow.remote.ip());
        let trying = (method == Method::Invite)
            .then(|| Response::to(&request, flow.remote, 100, "Trying").finish());
        let route = route.map_err(|reply| {
            self.log_refusal(&request, &flow, reply.status, reply.reason);
            (reply.status, reply.build(&request, flow.remote))
        });
        let mut call = Call {
            server,
            key: Some(via),
            upstream: flow,
            method,
            request: None,
            clients: Vec::new(),
            best: None,
            answered: false,
            server_done: false,
            timers: Vec::new(),
        };
        if let Some(trying) = trying {
            self.respond_upstream(id, &mut call, 100, trying, now, actions);
        }
        match route {
            Err((status, bytes)) => {
                self.respond_upstream(id, &mut call, status, bytes, now, actions);
            }
            Ok(hops) => {
                if method == Method::Invite {
                    let ring = now + self.ring_timeout_ms;
                    self.calls.timers.insert((ring, id, Slot::Ring));
                    call.timers.push((ring, Slot::Ring));
                }
                for hop in hops {
                    self.fork(id, &mut call, &request, hop, now, actions);
                }
                call.request = Some(request);
                self.finish_if_all_answered(id, &mut call, now, actions);
            }
        }
        self.put_back(id, call);
    }

    /// Where a request goes, or how hotline itself answers it: statelessly for everything
    /// decided before authentication (or before a dialog's signature is checked).
    fn route(
        &mut self,
        request: &Message,
        method: Method,
        flow: &Flow,
        now: u64,
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
                self.dialogs.saw_request(call_id, uri, cseq.number);
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
        now: u64,
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
            .contacts(&callee, now)
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
    /// with that Contact, else a binding (the dialog table is gone after a restart).
    fn dialog_hop(&self, request: &Message, uri: &str) -> Option<Flow> {
        let call_id = request.call_id()?;
        self.dialogs
            .route(call_id, uri)
            .or_else(|| self.registrar.flow_of_contact(uri))
    }

    /// Sends the request to one target through a new client transaction.
    fn fork(
        &mut self,
        id: u64,
        call: &mut Call,
        request: &Message,
        hop: Hop,
        now: u64,
        actions: &mut Vec<Action>,
    ) {
        if hop.flow.transport.is_stream() && hop.flow.connection.is_none() {
            debug!(target = %hop.uri, "the connection this contact registered over is gone");
            consider(&mut call.best, 480, None);
            return;
        }
        let method = call.method;
        let (branch, via_branch) = self.calls.branch();
        let bytes = self.forwarded(request, method, call.upstream.transport, &hop, &via_branch);
        let Ok(request) = Message::parse(&bytes, usize::MAX) else {
            consider(&mut call.best, 500, None);
            return;
        };
        let reliable = hop.flow.transport.is_stream();
        let settings = self.calls.settings;
        let mut out = Vec::new();
        let tx = match method {
            Method::Invite => ClientTx::Invite(ClientInvite::start(
                bytes, reliable, settings, now, &mut out,
            )),
            _ => ClientTx::NonInvite(ClientNonInvite::start(
                bytes, reliable, settings, now, &mut out,
            )),
        };
        let index = call.clients.len();
        self.calls.by_branch.insert(branch, (id, index));
        call.clients.push(Client {
            tx,
            flow: hop.flow,
            request: Some(request),
            branch,
            target: Some(Target {
                final_status: None,
                cancel: Cancel::No,
                media_refused: false,
            }),
            done: false,
        });
        self.apply(id, call, Some(index), out, actions);
    }

    /// The request as sent to `hop` (§16.6): new Request-URI, our Via on top, our Routes
    /// removed, Max-Forwards decremented, our credentials consumed, Record-Route for dialogs.
    fn forwarded(
        &self,
        request: &Message,
        method: Method,
        arrived: Transport,
        hop: &Hop,
        branch: &str,
    ) -> Vec<u8> {
        let out = hop.flow.transport;
        let via = format!(
            "SIP/2.0/{out} {};branch={branch};rport",
            self.advertised(out)
        );
        let in_dialog = request.to().and_then(|t| t.tag()).is_some();
        let dialog_forming = matches!(method, Method::Invite)
            || matches!(request.method_text(), Some("SUBSCRIBE" | "REFER"));
        let mut prepend = vec![("Via", via)];
        if dialog_forming && !in_dialog {
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
        let routes = request
            .values(HeaderName::Route)
            .take_while(|r| self.is_our_route(r))
            .count();
        let mut drop_routes = drop_first(HeaderName::Route, routes);
        let realm = self.domain.clone();
        let prepend: Vec<(&str, &str)> = prepend.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let has_max_forwards = request.header(HeaderName::MaxForwards).is_some();
        let max_forwards = max_forwards.to_string();
        let append: Vec<(&str, &str)> = match has_max_forwards {
            true => Vec::new(),
            false => vec![("Max-Forwards", max_forwards.as_str())],
        };
        request.rewrite(
            Some(&hop.uri),
            &prepend,
            |header, value| match header {
                HeaderName::Route => drop_routes(header, value),
                HeaderName::MaxForwards => Edit::Replace(max_forwards.clone()),
                HeaderName::ProxyAuthorization if credentials_for(value, &realm) => Edit::Drop,
                _ => Edit::Keep,
            },
            &append,
        )
    }

    /// A response from downstream, matched to its branch by our Via.
    pub(super) fn proxy_response(
        &mut self,
        response: Message,
        flow: Flow,
        now: u64,
        actions: &mut Vec<Action>,
    ) {
        let Some(status) = response.status() else {
            return;
        };
        let branch = response
            .top_via()
            .and_then(|v| v.branch().and_then(|b| self.calls.branch_number(b)));
        let Some(&(id, index)) = branch.and_then(|b| self.calls.by_branch.get(&b)) else {
            match branch.and_then(|b| self.calls.lingering.branch(b)) {
                Some(reaction) => lingering_response(reaction, &response, status, actions),
                None => {
                    debug!(source = %flow.remote, status, "dropped response matching no transaction")
                }
            }
            return;
        };
        let Some(mut call) = self.calls.calls.remove(&id) else {
            return;
        };
        // A CANCEL shares its INVITE's branch; its responses are told apart by CSeq method.
        let index = match response.cseq().map(|c| c.method) {
            Some("CANCEL") => match call
                .clients
                .iter()
                .position(|c| c.target.is_none() && Some(c.branch) == branch)
            {
                Some(index) => index,
                None => {
                    self.put_back(id, call);
                    return;
                }
            },
            _ => index,
        };
        let mut out = Vec::new();
        let client = &mut call.clients[index];
        let pass = match &mut client.tx {
            ClientTx::Invite(tx) => match &client.request {
                Some(request) => {
                    tx.on_response(status, || ack_for(request, &response), now, &mut out)
                }
                None => tx.on_response(status, Vec::new, now, &mut out),
            },
            ClientTx::NonInvite(tx) => tx.on_response(status, now, &mut out),
        };
        let is_branch = client.target.is_some();
        self.apply(id, &mut call, Some(index), out, actions);
        if pass && is_branch {
            self.branch_response(id, &mut call, index, &response, now, actions);
        }
        self.put_back(id, call);
    }

    fn branch_response(
        &mut self,
        id: u64,
        call: &mut Call,
        index: usize,
        response: &Message,
        now: u64,
        actions: &mut Vec<Action>,
    ) {
        let status = response.status().unwrap_or(500);
        if status == 100 {
            return;
        }
        if status < 200 && self.refuse_early_answer(id, call, index, response, now, actions) {
            return;
        }
        let upstream = response.rewrite(None, &[], drop_first(HeaderName::Via, 1), &[]);
        if status < 200 {
            let pending =
                call.clients[index].target.as_ref().map(|t| t.cancel) == Some(Cancel::Pending);
            if pending {
                self.send_cancel(id, call, index, now, actions);
            }
            if !call.answered {
                self.respond_upstream(id, call, status, upstream, now, actions);
            }
            return;
        }
        if let Some(target) = call.clients[index].target.as_mut() {
            target.final_status = Some(status);
        }
        if status < 300 {
            // Without the request the 2xx is a retransmission: its dialog exists already.
            if let Some(request) = &call.request {
                match call.method {
                    Method::Invite => self.established(
                        request,
                        response,
                        call.upstream,
                        call.clients[index].flow,
                        now,
                    ),
                    Method::Bye => {
                        if let Some(call_id) = request.call_id() {
                            self.dialogs.end(call_id);
                        }
                    }
                    _ => {}
                }
            }
            call.answered = true;
            self.respond_upstream(id, call, status, upstream, now, actions);
            self.check_answer(call, index, response, now, actions);
            self.cancel_branches(id, call, now, actions);
            return;
        }
        if status >= 600 {
            self.cancel_branches(id, call, now, actions);
        }
        match call.media_refused(index) {
            true => consider(&mut call.best, 488, None),
            false => consider(&mut call.best, status, Some(upstream)),
        }
        self.finish_if_all_answered(id, call, now, actions);
    }

    /// Records the dialog a 2xx to an INVITE established.
    fn established(
        &mut self,
        invite: &Message,
        ok: &Message,
        caller: Flow,
        callee: Flow,
        now: u64,
    ) {
        let contact = |m: &Message| {
            m.values(HeaderName::Contact)
                .next()
                .and_then(NameAddr::parse)
                .map(|c| c.uri.to_owned())
        };
        if let (Some(call_id), Some(from), Some(to)) =
            (invite.call_id(), contact(invite), contact(ok))
        {
            self.dialogs.establish(
                call_id,
                Party {
                    contact: from,
                    flow: caller,
                    name_addr: invite
                        .header(HeaderName::From)
                        .unwrap_or_default()
                        .to_owned(),
                    cseq: invite.cseq().map_or(0, |c| c.number),
                },
                Party {
                    contact: to,
                    flow: callee,
                    name_addr: ok.header(HeaderName::To).unwrap_or_default().to_owned(),
                    cseq: 0,
                },
                now,
            );
        }
    }

    /// A CANCEL from upstream (§16.10): answered at once, and the INVITE it names is answered
    /// 487 while its branches are cancelled. RFC 3261 matches a CANCEL by branch alone, and
    /// forbids challenging it; but branches are guessable and hotline passes the caller's Via
    /// to every callee, so a CANCEL also has to come from the INVITE's own flow (address,
    /// transport and connection) and name its Call-ID, From tag and CSeq number.
    pub(super) fn proxy_cancel(
        &mut self,
        request: &Message,
        via: &Via<'_>,
        flow: Flow,
        now: u64,
        actions: &mut Vec<Action>,
    ) -> Answer {
        let unknown = || Answer::Refused(Reply::new(481, "Call/Transaction Does Not Exist"));
        let Some(invite) = Key::for_method(request, via, "INVITE") else {
            return unknown();
        };
        let Some(id) = self.calls.by_server.get(&invite).copied() else {
            // An INVITE answered already: the CANCEL has nothing left to do (§9.2).
            return match self.calls.lingering.server(&invite) {
                Some(Reaction::Resend(upstream, _)) if upstream != flow => unknown(),
                Some(_) => Answer::Stateless(Reply::new(200, "OK")),
                None => unknown(),
            };
        };
        let from_caller = self.calls.calls.get(&id).is_some_and(|call| {
            call.upstream == flow && call.request.as_ref().is_some_and(|i| same_call(i, request))
        });
        if !from_caller {
            return unknown();
        }
        let Some(mut call) = self.calls.calls.remove(&id) else {
            return unknown();
        };
        if !call.answered
            && let Some(invite) = &call.request
        {
            info!(source = %flow.remote, "call cancelled by the caller");
            call.answered = true;
            let bytes = Response::to(invite, call.upstream.remote, 487, reason(487)).finish();
            self.respond_upstream(id, &mut call, 487, bytes, now, actions);
            self.cancel_branches(id, &mut call, now, actions);
        }
        self.put_back(id, call);
        Answer::Stateful(Reply::new(200, "OK"))
    }

    /// An ACK: for our non-2xx final it ends the server transaction; an ACK for a 2xx is
    /// end-to-end and follows the dialog, statelessly.
    pub(super) fn proxy_ack(
        &mut self,
        request: &Message,
        via: &Via<'_>,
        flow: Flow,
        now: u64,
        actions: &mut Vec<Action>,
    ) {
        let invite = Key::for_method(request, via, "INVITE");
        if invite.is_some_and(|k| self.calls.lingering.server(&k).is_some()) {
            return;
        }
        let transaction = invite.and_then(|k| self.calls.by_server.get(&k).copied());
        if let Some(id) = transaction
            && let Some(mut call) = self.calls.calls.remove(&id)
        {
            let mut out = Vec::new();
            if let ServerTx::Invite(tx) = &mut call.server {
                tx.on_ack(now, &mut out);
            }
            self.apply(id, &mut call, None, out, actions);
            self.put_back(id, call);
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
        // A stateless forward needs a branch that is the same for retransmissions (§16.11).
        let incoming = via.branch().unwrap_or_default();
        let branch = format!("{}a{:x}", self.calls.branch_prefix, stable_hash(incoming));
        let hop = Hop {
            uri: uri.to_owned(),
            flow: hop_flow,
        };
        let bytes = self.forwarded(request, Method::Ack, flow.transport, &hop, &branch);
        actions.push(Action::Send {
            flow: hop_flow,
            bytes,
        });
        self.check_ack(request, now, actions);
    }

    /// Timers that are due.
    pub fn handle_timeout(&mut self, now: u64, actions: &mut Vec<Action>) {
        self.hangup_timeouts(now, actions);
        while let Some(&(at, id, slot)) = self.calls.timers.first() {
            if at > now {
                break;
            }
            self.calls.timers.pop_first();
            let Some(mut call) = self.calls.calls.remove(&id) else {
                continue;
            };
            let mut out = Vec::new();
            match slot {
                Slot::Ring => {
                    if !call.answered {
                        // A device that already said busy gives a better answer than our 480.
                        info!(source = %call.upstream.remote, "no answer within the ring time");
                        consider(&mut call.best, 480, None);
                        self.send_best(id, &mut call, now, actions);
                        self.cancel_branches(id, &mut call, now, actions);
                    }
                }
                Slot::Server(timer) => {
                    match &mut call.server {
                        ServerTx::Invite(tx) => tx.on_timer(timer, now, &mut out),
                        ServerTx::NonInvite(tx) => tx.on_timer(timer, now, &mut out),
                    }
                    self.apply(id, &mut call, None, out, actions);
                }
                Slot::Client(index, timer) => {
                    match &mut call.clients[index].tx {
                        ClientTx::Invite(tx) => tx.on_timer(timer, now, &mut out),
                        ClientTx::NonInvite(tx) => tx.on_timer(timer, now, &mut out),
                    }
                    let timed_out = out.contains(&Output::Timeout);
                    self.apply(id, &mut call, Some(index), out, actions);
                    let unanswered = call.clients[index]
                        .target
                        .as_ref()
                        .is_some_and(|t| t.final_status.is_none());
                    if timed_out && unanswered {
                        if let Some(target) = call.clients[index].target.as_mut() {
                            target.final_status = Some(408);
                        }
                        consider(&mut call.best, 408, None);
                        self.finish_if_all_answered(id, &mut call, now, actions);
                    }
                }
            }
            self.put_back(id, call);
        }
    }

    /// Sends the best final response once every branch has one (§16.7 step 5).
    fn finish_if_all_answered(
        &mut self,
        id: u64,
        call: &mut Call,
        now: u64,
        actions: &mut Vec<Action>,
    ) {
        let all = call
            .clients
            .iter()
            .filter_map(|c| c.target.as_ref())
            .all(|t| t.final_status.is_some());
        if !call.answered && all {
            self.send_best(id, call, now, actions);
        }
    }

    /// Sends the best final response so far upstream (§16.7 step 6).
    fn send_best(&mut self, id: u64, call: &mut Call, now: u64, actions: &mut Vec<Action>) {
        call.answered = true;
        let best = call.best.take().unwrap_or(Best {
            status: 480,
            bytes: None,
        });
        let (status, bytes) = match best {
            // A 503 from downstream must not make the caller think that hotline is down.
            Best { status: 503, .. } => (500, None),
            Best { status, bytes } => (status, bytes),
        };
        let bytes = match (bytes, &call.request) {
            (Some(bytes), _) => bytes,
            (None, Some(request)) => {
                Response::to(request, call.upstream.remote, status, reason(status)).finish()
            }
            (None, None) => return,
        };
        self.respond_upstream(id, call, status, bytes, now, actions);
    }

    fn cancel_branches(&mut self, id: u64, call: &mut Call, now: u64, actions: &mut Vec<Action>) {
        if call.method != Method::Invite {
            return;
        }
        for index in 0..call.clients.len() {
            let Some(target) = call.clients[index].target.as_mut() else {
                continue;
            };
            if target.final_status.is_some() || target.cancel != Cancel::No {
                continue;
            }
            let proceeding =
                matches!(&call.clients[index].tx, ClientTx::Invite(tx) if tx.has_provisional());
            if proceeding {
                self.send_cancel(id, call, index, now, actions);
            } else if let Some(target) = call.clients[index].target.as_mut() {
                target.cancel = Cancel::Pending;
            }
        }
    }

    fn send_cancel(
        &mut self,
        id: u64,
        call: &mut Call,
        index: usize,
        now: u64,
        actions: &mut Vec<Action>,
    ) {
        if let Some(target) = call.clients[index].target.as_mut() {
            target.cancel = Cancel::Sent;
        }
        let original = &call.clients[index];
        let Some(invite) = &original.request else {
            return;
        };
        let bytes = cancel_for(invite);
        let flow = original.flow;
        let branch = original.branch;
        let mut out = Vec::new();
        let tx = ClientNonInvite::start(
            bytes,
            flow.transport.is_stream(),
            self.calls.settings,
            now,
            &mut out,
        );
        let cancel_index = call.clients.len();
        call.clients.push(Client {
            tx: ClientTx::NonInvite(tx),
            flow,
            request: None,
            branch,
            target: None,
            done: false,
        });
        self.apply(id, call, Some(cancel_index), out, actions);
    }

    /// Sends a response upstream through the server transaction.
    fn respond_upstream(
        &mut self,
        id: u64,
        call: &mut Call,
        status: u16,
        bytes: Vec<u8>,
        now: u64,
        actions: &mut Vec<Action>,
    ) {
        let mut out = Vec::new();
        match &mut call.server {
            ServerTx::Invite(tx) => tx.send_response(status, bytes, now, &mut out),
            ServerTx::NonInvite(tx) => tx.send_response(status, bytes, now, &mut out),
        }
        self.apply(id, call, None, out, actions);
    }

    /// Carries out a transaction's outputs; `client` is `None` for the server transaction.
    fn apply(
        &mut self,
        id: u64,
        call: &mut Call,
        client: Option<usize>,
        out: Vec<Output>,
        actions: &mut Vec<Action>,
    ) {
        let flow = client.map_or(call.upstream, |i| call.clients[i].flow);
        for output in out {
            match output {
                Output::Transmit(bytes) => actions.push(Action::Send { flow, bytes }),
                Output::Schedule { timer, at } => {
                    let slot = client.map_or(Slot::Server(timer), |i| Slot::Client(i, timer));
                    self.calls.timers.insert((at, id, slot));
                    call.timers.push((at, slot));
                }
                Output::Timeout => {}
                Output::Terminated => match client {
                    Some(i) => call.clients[i].done = true,
                    None => call.server_done = true,
                },
            }
        }
    }

    /// Keeps the call, without the requests that no transaction needs any more, unless all its
    /// transactions are over or only linger: then it is forgotten, and what lingers is kept in
    /// its compact form.
    fn put_back(&mut self, id: u64, mut call: Call) {
        let Some(remains) = remains(&call) else {
            let mut all_final = true;
            for client in &mut call.clients {
                match &client.target {
                    Some(target) if target.final_status.is_none() => all_final = false,
                    _ => client.request = None,
                }
            }
            if call.answered && all_final {
                call.request = None;
            }
            self.calls.calls.insert(id, call);
            return;
        };
        for &(at, slot) in &call.timers {
            self.calls.timers.remove(&(at, id, slot));
        }
        self.calls.shares.remove(call.upstream.remote.ip());
        if let Some(key) = &call.key {
            self.calls.by_server.remove(key);
        }
        for client in &call.clients {
            if client.target.is_some() {
                self.calls.by_branch.remove(&client.branch);
            }
        }
        for part in remains {
            match part {
                Remains::Server(key, lingering) => {
                    self.calls
                        .lingering
                        .add_server(key, lingering, call.upstream)
                }
                Remains::Branch(branch, lingering, flow) => {
                    self.calls.lingering.add_branch(branch, lingering, flow)
                }
            }
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

/// A transaction of a call that only lingers.
enum Remains {
    Server(Key, Lingering),
    Branch(u64, Lingering, Flow),
}

/// What is left of the call if all its transactions are over or only linger; `None` while any
/// is still at work.
fn remains(call: &Call) -> Option<Vec<Remains>> {
    let mut parts = Vec::new();
    if !call.server_done {
        let lingering = match &call.server {
            ServerTx::Invite(tx) => tx.lingering(),
            ServerTx::NonInvite(tx) => tx.lingering(),
        }?;
        if let Some(key) = call.key {
            parts.push(Remains::Server(key, lingering));
        }
    }
    for client in call.clients.iter().filter(|c| !c.done) {
        let lingering = match &client.tx {
            ClientTx::Invite(tx) => tx.lingering(),
            ClientTx::NonInvite(tx) => tx.lingering(),
        }?;
        // A CANCEL shares its INVITE's branch, whose entry absorbs the CANCEL's responses.
        if client.target.is_some() {
            let flow = match lingering.echo {
                Echo::PassSuccess => call.upstream,
                _ => client.flow,
            };
            parts.push(Remains::Branch(client.branch, lingering, flow));
        }
    }
    Some(parts)
}

/// A response for a lingering branch: a 2xx to an accepted INVITE goes upstream, a
/// retransmitted failure gets the ACK again, anything else (a CANCEL's response too) is absorbed.
fn lingering_response(
    reaction: Reaction<'_>,
    response: &Message,
    status: u16,
    actions: &mut Vec<Action>,
) {
    if response.cseq().map(|c| c.method) == Some("CANCEL") {
        return;
    }
    match reaction {
        Reaction::PassSuccess(upstream) if (200..300).contains(&status) => {
            actions.push(Action::Send {
                flow: upstream,
                bytes: response.rewrite(None, &[], drop_first(HeaderName::Via, 1), &[]),
            });
        }
        Reaction::Resend(flow, ack) if status >= 300 => actions.push(Action::Send {
            flow,
            bytes: ack.to_vec(),
        }),
        _ => {}
    }
}

/// Keeps the better of two final responses (§16.7 step 6): a 6xx wins, else the lowest class;
/// within a class a phone's response beats one hotline made, else the first stays.
fn consider(best: &mut Option<Best>, status: u16, bytes: Option<Vec<u8>>) {
    let better = match best {
        None => true,
        Some(current) if current.status >= 600 => false,
        Some(current) if status >= 600 || status / 100 < current.status / 100 => true,
        // Within a class, what a phone said beats what hotline made up (a dead connection's 480).
        Some(current) => {
            status / 100 == current.status / 100 && current.bytes.is_none() && bytes.is_some()
        }
    };
    if better {
        *best = Some(Best { status, bytes });
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        408 => "Request Timeout",
        480 => "Temporarily Unavailable",
        487 => "Request Terminated",
        488 => "SRTP Required",
        _ => "Server Internal Error",
    }
}

/// Whether Proxy-Authorization credentials are for our realm (and so consumed by us).
fn credentials_for(value: &str, realm: &str) -> bool {
    super::auth::parse_credentials(value).is_ok_and(|c| c.realm == realm)
}

/// Whether a CANCEL names the INVITE's Call-ID, From tag and CSeq number.
fn same_call(invite: &Message, cancel: &Message) -> bool {
    let number = |m: &Message| m.cseq().map(|c| c.number);
    invite.call_id() == cancel.call_id()
        && invite.from().and_then(|f| f.tag()) == cancel.from().and_then(|f| f.tag())
        && number(invite).is_some()
        && number(invite) == number(cancel)
}

fn stable_hash(text: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    text.hash(&mut hasher);
    hasher.finish()
}

fn transmit(out: Vec<Output>, flow: Flow, actions: &mut Vec<Action>) {
    for output in out {
        if let Output::Transmit(bytes) = output {
            actions.push(Action::Send { flow, bytes });
        }
    }
}
