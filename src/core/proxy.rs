//! The stateful proxy (RFC 3261 §16): every proxied request gets a server transaction, each
//! target a client transaction (a branch); responses are chosen and forwarded as §16.7 says,
//! CANCEL and the ring timeout cancel the branches, and 2xx responses to INVITE establish the
//! dialogs that in-dialog requests are routed by.
//!
//! [`Proxy`] owns the calls in progress, the dialogs and the transactions that linger after a
//! call; the core decides where a request goes (see `routing.rs`) and hands the proxy the
//! requests it forwards.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::net::IpAddr;

use tracing::{debug, info};

use super::Reply;
use super::clock::{Now, millis};
use super::dialog::{Dialogs, Party, Unknown};
use super::lingering::{Lingerers, Reaction};
use super::output::Transmit;
use super::registrar::Flow;
use super::settings::Settings;
use super::share::Shares;
use super::stateless::Answer;
use super::transaction::{
    ClientInvite, ClientNonInvite, Echo, Key, Lingering, Output, ServerInvite, ServerNonInvite,
    TimerName, Timers,
};
use crate::sip::{Forwarded, HeaderName, Message, Method, NameAddr, Response, drop_first};

mod media_policy;

pub(super) use self::media_policy::{HangUp, check_ack};

/// Calls in progress, the dialogs they established and what lingers of those that ended.
pub struct Proxy {
    calls: HashMap<u64, Call>,
    next_id: u64,
    capacity: usize,
    ring_timeout_ms: u64,
    dialogs: Dialogs,
    shared: Shared,
}

/// What every call writes to besides itself: the indexes by which messages find it, its
/// timers, and what lingers after it.
struct Shared {
    by_server: HashMap<Key, u64>,
    /// Our branches by their number (what follows `branch_prefix`).
    by_branch: HashMap<u64, (u64, usize)>,
    timers: BTreeSet<(u64, u64, Slot)>,
    /// What is left of calls whose transactions only absorb retransmissions.
    lingering: Lingerers,
    /// Calls in progress per /64 of their upstream.
    shares: Shares,
    settings: Timers,
    /// Makes our branches unique across restarts (RFC 3261 §8.1.1.7).
    branch_prefix: String,
    next_branch: u64,
    /// New calls whose caller got a final response, with its status, since the core last took
    /// them: for the owner's Calls page.
    outcomes: Vec<(String, u16)>,
}

/// One target of a request, forwarded: `None` when the connection its contact registered over
/// is gone.
pub(super) struct Fork {
    pub branch: u64,
    pub flow: Flow,
    pub bytes: Vec<u8>,
    /// For an INVITE, what its CANCEL and ACK repeat.
    pub invite: Option<Forwarded>,
}

/// A request to proxy, as it arrived.
pub(super) struct Incoming {
    pub request: Message,
    pub method: Method,
    /// Its transaction's key.
    pub key: Key,
    pub upstream: Flow,
    /// The Call-ID of a new call (an INVITE outside a dialog), for the owner's Calls page.
    pub new_call: Option<String>,
}

/// What a proxied request gets: its forks, or hotline's own final response.
pub(super) type Route = Result<Vec<Option<Fork>>, (u16, Vec<u8>)>;

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

/// The server transaction of a call, whichever machine it is.
impl ServerTx {
    fn new(method: Method, reliable: bool, settings: Timers) -> ServerTx {
        match method {
            Method::Invite => ServerTx::Invite(ServerInvite::new(reliable, settings)),
            _ => ServerTx::NonInvite(ServerNonInvite::new(reliable, settings)),
        }
    }

    fn on_retransmission(&mut self, out: &mut Vec<Output>) {
        match self {
            ServerTx::Invite(tx) => tx.on_retransmission(out),
            ServerTx::NonInvite(tx) => tx.on_retransmission(out),
        }
    }

    fn send_response(&mut self, status: u16, bytes: Vec<u8>, now: u64, out: &mut Vec<Output>) {
        match self {
            ServerTx::Invite(tx) => tx.send_response(status, bytes, now, out),
            ServerTx::NonInvite(tx) => tx.send_response(status, bytes, now, out),
        }
    }

    fn on_timer(&mut self, timer: TimerName, now: u64, out: &mut Vec<Output>) {
        match self {
            ServerTx::Invite(tx) => tx.on_timer(timer, now, out),
            ServerTx::NonInvite(tx) => tx.on_timer(timer, now, out),
        }
    }

    fn lingering(&self) -> Option<Lingering> {
        match self {
            ServerTx::Invite(tx) => tx.lingering(),
            ServerTx::NonInvite(tx) => tx.lingering(),
        }
    }
}

enum ClientTx {
    Invite(ClientInvite),
    NonInvite(ClientNonInvite),
}

/// A client transaction of a call (a branch, or a branch's CANCEL), whichever machine it is.
impl ClientTx {
    fn start(
        method: Method,
        bytes: Vec<u8>,
        reliable: bool,
        settings: Timers,
        now: u64,
        out: &mut Vec<Output>,
    ) -> ClientTx {
        match method {
            Method::Invite => {
                ClientTx::Invite(ClientInvite::start(bytes, reliable, settings, now, out))
            }
            _ => ClientTx::NonInvite(ClientNonInvite::start(bytes, reliable, settings, now, out)),
        }
    }

    /// A response to it; true if it goes on to the call. `invite` builds the ACK of an
    /// INVITE's non-2xx final response.
    fn on_response(
        &mut self,
        status: u16,
        invite: Option<&Forwarded>,
        response: &Message,
        now: u64,
        out: &mut Vec<Output>,
    ) -> bool {
        match self {
            ClientTx::Invite(tx) => {
                let ack = || invite.map(|i| i.ack(response)).unwrap_or_default();
                tx.on_response(status, ack, now, out)
            }
            ClientTx::NonInvite(tx) => tx.on_response(status, now, out),
        }
    }

    fn on_timer(&mut self, timer: TimerName, now: u64, out: &mut Vec<Output>) {
        match self {
            ClientTx::Invite(tx) => tx.on_timer(timer, now, out),
            ClientTx::NonInvite(tx) => tx.on_timer(timer, now, out),
        }
    }

    fn lingering(&self) -> Option<Lingering> {
        match self {
            ClientTx::Invite(tx) => tx.lingering(),
            ClientTx::NonInvite(tx) => tx.lingering(),
        }
    }
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
    /// An INVITE as forwarded, to build its CANCEL and ACK: kept until the branch's final
    /// response; `None` for other requests and for a CANCEL's own transaction.
    invite: Option<Forwarded>,
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
    id: u64,
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
    /// The Call-ID of a new call (an INVITE outside a dialog), until its caller has a final
    /// response: for the owner's Calls page.
    new_call: Option<String>,
    /// The timers this call set: a call that only lingers is forgotten before they fire, and
    /// takes them out of the timer set with it, so that the set stays as bounded as the calls.
    timers: Vec<(u64, Slot)>,
}

impl Proxy {
    pub fn new(settings: &Settings, boot_ms: u64) -> Proxy {
        Proxy {
            calls: HashMap::new(),
            next_id: 0,
            capacity: settings.max_transactions,
            ring_timeout_ms: millis(settings.proxy.ring_timeout),
            dialogs: Dialogs::new(settings.proxy.max_dialogs, settings.proxy.dialog_lifetime),
            shared: Shared {
                by_server: HashMap::new(),
                by_branch: HashMap::new(),
                timers: BTreeSet::new(),
                lingering: Lingerers::new(settings.max_lingering_transactions),
                shares: Shares::new(settings.max_transactions_per_prefix),
                settings: Timers::default(),
                branch_prefix: format!("z9hG4bK-hl{boot_ms:x}-"),
                next_branch: 0,
                outcomes: Vec::new(),
            },
        }
    }

    pub fn len(&self) -> usize {
        self.calls.len()
    }

    pub fn is_empty(&self) -> bool {
        self.calls.is_empty()
    }

    /// Transactions kept only to absorb retransmissions.
    pub fn lingering(&self) -> usize {
        self.shared.lingering.len()
    }

    #[cfg(test)]
    pub fn pending_timers(&self) -> usize {
        self.shared.timers.len()
    }

    pub fn dialogs(&self) -> &Dialogs {
        &self.dialogs
    }

    /// The final statuses new calls got since the last time this was asked, by Call-ID.
    pub(super) fn take_outcomes(&mut self) -> Vec<(String, u16)> {
        std::mem::take(&mut self.shared.outcomes)
    }

    /// When the next timer is due (monotonic ms).
    pub fn next_timer(&self) -> Option<u64> {
        self.shared.timers.first().map(|(at, _, _)| *at)
    }

    /// Forgets lingering transactions and dialogs whose time is over (monotonic ms).
    pub fn expire(&mut self, now: u64) {
        self.shared.lingering.expire(now);
        self.dialogs.expire(now);
    }

    /// Whether a new call from `source` fits: the table has room, and the source's /64 holds
    /// less than its share.
    pub(super) fn has_room_for(&self, source: IpAddr) -> bool {
        self.calls.len() < self.capacity && self.shared.shares.has_room(source)
    }

    /// A new branch: its number, and the Via parameter that carries it.
    pub(super) fn branch(&mut self) -> (u64, String) {
        self.shared.next_branch += 1;
        let number = self.shared.next_branch;
        (number, format!("{}{number:x}", self.shared.branch_prefix))
    }

    /// The Via branch of a stateless forward of the request whose branch is `incoming`: the
    /// same for its retransmissions (§16.11).
    pub(super) fn stateless_branch(&self, incoming: &str) -> String {
        format!("{}a{:x}", self.shared.branch_prefix, stable_hash(incoming))
    }

    /// The flow of the dialog party with Contact `contact` in call `call_id`.
    pub(super) fn dialog_route(
        &self,
        call_id: &str,
        contact: &str,
    ) -> Result<Option<Flow>, Unknown> {
        self.dialogs.route(call_id, contact)
    }

    /// The dialogs, for the requests routed in them and for hotline ending one itself.
    pub(super) fn dialogs_mut(&mut self) -> &mut Dialogs {
        &mut self.dialogs
    }

    /// A request of a transaction already here: a retransmission, answered as its transaction
    /// says. False for a new request.
    pub(super) fn retransmission(&mut self, key: &Key, actions: &mut VecDeque<Transmit>) -> bool {
        if let Some(call) = self.call_of(key) {
            let mut out = Vec::new();
            call.server.on_retransmission(&mut out);
            transmit(out, call.upstream, actions);
            return true;
        }
        match self.shared.lingering.server(key) {
            Some(Reaction::Resend(flow, bytes)) => {
                actions.push_back(Transmit {
                    flow,
                    bytes: bytes.to_vec(),
                });
                true
            }
            Some(_) => true,
            None => false,
        }
    }

    /// Starts the call of `incoming`: a server transaction, and a branch per fork or hotline's
    /// own final response.
    pub(super) fn start(
        &mut self,
        incoming: Incoming,
        route: Route,
        now: Now,
        actions: &mut VecDeque<Transmit>,
    ) {
        let Incoming {
            request,
            method,
            key,
            upstream,
            new_call,
        } = incoming;
        let id = self.next_id;
        self.next_id += 1;
        let shared = &mut self.shared;
        shared.by_server.insert(key, id);
        shared.shares.add(upstream.remote.ip());
        let reliable = upstream.transport.is_stream();
        let mut call = Call {
            id,
            server: ServerTx::new(method, reliable, shared.settings),
            key: Some(key),
            upstream,
            new_call,
            method,
            request: None,
            clients: Vec::new(),
            best: None,
            answered: false,
            server_done: false,
            timers: Vec::new(),
        };
        if method == Method::Invite {
            let trying = Response::to(&request, upstream.remote, 100, "Trying").finish();
            call.respond_upstream(shared, 100, trying, now, actions);
        }
        match route {
            Err((status, bytes)) => call.respond_upstream(shared, status, bytes, now, actions),
            Ok(forks) => {
                if method == Method::Invite {
                    call.schedule(shared, now.ms() + self.ring_timeout_ms, Slot::Ring);
                }
                for fork in forks {
                    call.fork(shared, fork, now, actions);
                }
                call.request = Some(request);
                call.finish_if_all_answered(shared, now, actions);
            }
        }
        self.calls.insert(id, call);
        self.settle(id);
    }

    /// A response from downstream, matched to its branch by our Via; a 2xx with insecure
    /// media asks for its dialog to be ended.
    pub(super) fn response(
        &mut self,
        response: Message,
        flow: Flow,
        now: Now,
        actions: &mut VecDeque<Transmit>,
    ) -> Option<HangUp> {
        let status = response.status()?;
        let branch = response.top_via().and_then(|v| {
            v.branch()
                .and_then(|b| b.strip_prefix(&self.shared.branch_prefix))
                .and_then(|digits| u64::from_str_radix(digits, 16).ok())
        });
        let Some(&(id, index)) = branch.and_then(|b| self.shared.by_branch.get(&b)) else {
            match branch.and_then(|b| self.shared.lingering.branch(b)) {
                Some(reaction) => lingering_response(reaction, &response, status, actions),
                None => {
                    debug!(source = %flow.remote, status, "dropped response matching no transaction")
                }
            }
            return None;
        };
        let call = self.calls.get_mut(&id)?;
        // A CANCEL shares its INVITE's branch; its responses are told apart by CSeq method.
        let index = match response.cseq().map(|c| Method::parse(c.method)) {
            Some(Method::Cancel) => {
                let cancel = call
                    .clients
                    .iter()
                    .position(|c| c.target.is_none() && Some(c.branch) == branch);
                cancel?
            }
            _ => index,
        };
        let shared = &mut self.shared;
        let mut out = Vec::new();
        let client = &mut call.clients[index];
        let invite = client.invite.as_ref();
        let pass = client
            .tx
            .on_response(status, invite, &response, now.ms(), &mut out);
        let is_branch = client.target.is_some();
        call.apply(shared, Some(index), out, actions);
        let hang_up = match pass && is_branch {
            true => call.branch_response(shared, &mut self.dialogs, index, &response, now, actions),
            false => None,
        };
        self.settle(id);
        hang_up
    }

    /// A CANCEL from upstream (§16.10) for the INVITE of key `invite`: answered at once, and
    /// the INVITE is answered 487 while its branches are cancelled. RFC 3261 matches a CANCEL
    /// by branch alone, and forbids challenging it; but branches are guessable and hotline
    /// passes the caller's Via to every callee, so a CANCEL also has to come from the INVITE's
    /// own flow (address, transport and connection) and name its Call-ID, From tag and CSeq
    /// number.
    pub(super) fn cancel(
        &mut self,
        request: &Message,
        invite: Key,
        flow: Flow,
        now: Now,
        actions: &mut VecDeque<Transmit>,
    ) -> Answer {
        let unknown = || Answer::Refused(Reply::new(481, "Call/Transaction Does Not Exist"));
        let Some(id) = self.shared.by_server.get(&invite).copied() else {
            // An INVITE answered already: the CANCEL has nothing left to do (§9.2).
            return match self.shared.lingering.server(&invite) {
                Some(Reaction::Resend(upstream, _)) if upstream != flow => unknown(),
                Some(_) => Answer::Stateless(Reply::new(200, "OK")),
                None => unknown(),
            };
        };
        let Some(call) = self.calls.get_mut(&id) else {
            return unknown();
        };
        let from_caller =
            call.upstream == flow && call.request.as_ref().is_some_and(|i| same_call(i, request));
        if !from_caller {
            return unknown();
        }
        if !call.answered
            && let Some(invite) = &call.request
        {
            info!(source = %flow.remote, "call cancelled by the caller");
            call.answered = true;
            let bytes = Response::to(invite, call.upstream.remote, 487, reason(487)).finish();
            call.respond_upstream(&mut self.shared, 487, bytes, now, actions);
            call.cancel_branches(&mut self.shared, now, actions);
        }
        self.settle(id);
        Answer::Stateful(Reply::new(200, "OK"))
    }

    /// An ACK for the INVITE of key `invite`: absorbed when it acknowledges our non-2xx final
    /// response (it ends the server transaction); false when it matches no transaction (an ACK
    /// for a 2xx, end to end).
    pub(super) fn ack(
        &mut self,
        invite: Option<Key>,
        now: Now,
        actions: &mut VecDeque<Transmit>,
    ) -> bool {
        let Some(invite) = invite else {
            return false;
        };
        if self.shared.lingering.server(&invite).is_some() {
            return true;
        }
        let Some(&id) = self.shared.by_server.get(&invite) else {
            return false;
        };
        let Some(call) = self.calls.get_mut(&id) else {
            return false;
        };
        let mut out = Vec::new();
        if let ServerTx::Invite(tx) = &mut call.server {
            tx.on_ack(now.ms(), &mut out);
        }
        call.apply(&mut self.shared, None, out, actions);
        self.settle(id);
        true
    }

    /// Transaction and ring timers that are due.
    pub(super) fn on_timers(&mut self, now: Now, actions: &mut VecDeque<Transmit>) {
        while let Some(&(at, id, slot)) = self.shared.timers.first() {
            if at > now.ms() {
                break;
            }
            self.shared.timers.pop_first();
            let Some(call) = self.calls.get_mut(&id) else {
                continue;
            };
            call.on_timer(&mut self.shared, slot, now, actions);
            self.settle(id);
        }
    }

    fn call_of(&mut self, key: &Key) -> Option<&mut Call> {
        let id = self.shared.by_server.get(key)?;
        self.calls.get_mut(id)
    }

    /// After an event of call `id`: keeps the call, without the requests that no transaction
    /// needs any more, unless all its transactions are over or only linger; then it is
    /// forgotten, and what lingers is kept in its compact form.
    fn settle(&mut self, id: u64) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let Some(remains) = remains(call) else {
            let mut all_final = true;
            for client in &mut call.clients {
                match &client.target {
                    Some(target) if target.final_status.is_none() => all_final = false,
                    _ => client.invite = None,
                }
            }
            if call.answered && all_final {
                call.request = None;
            }
            return;
        };
        let Some(call) = self.calls.remove(&id) else {
            return;
        };
        let shared = &mut self.shared;
        for &(at, slot) in &call.timers {
            shared.timers.remove(&(at, id, slot));
        }
        shared.shares.remove(call.upstream.remote.ip());
        if let Some(key) = &call.key {
            shared.by_server.remove(key);
        }
        for client in &call.clients {
            if client.target.is_some() {
                shared.by_branch.remove(&client.branch);
            }
        }
        for part in remains {
            match part {
                Remains::Server(key, lingering) => {
                    shared.lingering.add_server(key, lingering, call.upstream)
                }
                Remains::Branch(branch, lingering, flow) => {
                    shared.lingering.add_branch(branch, lingering, flow)
                }
            }
        }
    }
}

/// Records the dialog a 2xx to an INVITE established.
fn established(
    dialogs: &mut Dialogs,
    invite: &Message,
    ok: &Message,
    caller: Flow,
    callee: Flow,
    now: Now,
) {
    let contact = |m: &Message| {
        m.values(HeaderName::Contact)
            .next()
            .and_then(NameAddr::parse)
            .map(|c| c.uri.to_owned())
    };
    if let (Some(call_id), Some(from), Some(to)) = (invite.call_id(), contact(invite), contact(ok))
    {
        dialogs.establish(
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
            now.ms(),
        );
    }
}

impl Call {
    fn schedule(&mut self, shared: &mut Shared, at: u64, slot: Slot) {
        shared.timers.insert((at, self.id, slot));
        self.timers.push((at, slot));
    }

    /// Sends the request to one target through a new client transaction.
    fn fork(
        &mut self,
        shared: &mut Shared,
        fork: Option<Fork>,
        now: Now,
        actions: &mut VecDeque<Transmit>,
    ) {
        let Some(fork) = fork else {
            consider(&mut self.best, 480, None);
            return;
        };
        let reliable = fork.flow.transport.is_stream();
        let mut out = Vec::new();
        let tx = ClientTx::start(
            self.method,
            fork.bytes,
            reliable,
            shared.settings,
            now.ms(),
            &mut out,
        );
        let index = self.clients.len();
        shared.by_branch.insert(fork.branch, (self.id, index));
        self.clients.push(Client {
            tx,
            flow: fork.flow,
            invite: fork.invite,
            branch: fork.branch,
            target: Some(Target {
                final_status: None,
                cancel: Cancel::No,
                media_refused: false,
            }),
            done: false,
        });
        self.apply(shared, Some(index), out, actions);
    }

    /// A response a branch passed on; a 2xx establishes or ends a dialog, or must be hung up.
    fn branch_response(
        &mut self,
        shared: &mut Shared,
        dialogs: &mut Dialogs,
        index: usize,
        response: &Message,
        now: Now,
        actions: &mut VecDeque<Transmit>,
    ) -> Option<HangUp> {
        let status = response.status().unwrap_or(500);
        if status == 100 {
            return None;
        }
        if status < 200 && self.refuse_early_answer(shared, index, response, now, actions) {
            return None;
        }
        let upstream = response.rewrite(None, &[], drop_first(HeaderName::Via, 1), &[]);
        if status < 200 {
            let pending =
                self.clients[index].target.as_ref().map(|t| t.cancel) == Some(Cancel::Pending);
            if pending {
                self.send_cancel(shared, index, now, actions);
            }
            if !self.answered {
                self.respond_upstream(shared, status, upstream, now, actions);
            }
            return None;
        }
        if let Some(target) = self.clients[index].target.as_mut() {
            target.final_status = Some(status);
        }
        if status < 300 {
            // Without the request the 2xx is a retransmission: its dialog exists already.
            if let Some(request) = &self.request {
                match self.method {
                    Method::Invite => {
                        let callee = self.clients[index].flow;
                        established(dialogs, request, response, self.upstream, callee, now);
                    }
                    Method::Bye => {
                        if let Some(call_id) = request.call_id() {
                            dialogs.end(call_id);
                        }
                    }
                    _ => {}
                }
            }
            self.answered = true;
            self.respond_upstream(shared, status, upstream, now, actions);
            let hang_up = self.check_answer(index, response);
            self.cancel_branches(shared, now, actions);
            return hang_up;
        }
        if status >= 600 {
            self.cancel_branches(shared, now, actions);
        }
        match self.media_refused(index) {
            true => consider(&mut self.best, 488, None),
            false => consider(&mut self.best, status, Some(upstream)),
        }
        self.finish_if_all_answered(shared, now, actions);
        None
    }

    fn on_timer(
        &mut self,
        shared: &mut Shared,
        slot: Slot,
        now: Now,
        actions: &mut VecDeque<Transmit>,
    ) {
        let mut out = Vec::new();
        match slot {
            Slot::Ring => {
                if !self.answered {
                    // A device that already said busy gives a better answer than our 480.
                    info!(source = %self.upstream.remote, "no answer within the ring time");
                    consider(&mut self.best, 480, None);
                    self.send_best(shared, now, actions);
                    self.cancel_branches(shared, now, actions);
                }
            }
            Slot::Server(timer) => {
                self.server.on_timer(timer, now.ms(), &mut out);
                self.apply(shared, None, out, actions);
            }
            Slot::Client(index, timer) => {
                self.clients[index].tx.on_timer(timer, now.ms(), &mut out);
                let timed_out = out.contains(&Output::Timeout);
                self.apply(shared, Some(index), out, actions);
                let unanswered = self.clients[index]
                    .target
                    .as_ref()
                    .is_some_and(|t| t.final_status.is_none());
                if timed_out && unanswered {
                    if let Some(target) = self.clients[index].target.as_mut() {
                        target.final_status = Some(408);
                    }
                    consider(&mut self.best, 408, None);
                    self.finish_if_all_answered(shared, now, actions);
                }
            }
        }
    }

    /// Sends the best final response once every branch has one (§16.7 step 5).
    fn finish_if_all_answered(
        &mut self,
        shared: &mut Shared,
        now: Now,
        actions: &mut VecDeque<Transmit>,
    ) {
        let all = self
            .clients
            .iter()
            .filter_map(|c| c.target.as_ref())
            .all(|t| t.final_status.is_some());
        if !self.answered && all {
            self.send_best(shared, now, actions);
        }
    }

    /// Sends the best final response so far upstream (§16.7 step 6).
    fn send_best(&mut self, shared: &mut Shared, now: Now, actions: &mut VecDeque<Transmit>) {
        self.answered = true;
        let best = self.best.take().unwrap_or(Best {
            status: 480,
            bytes: None,
        });
        let (status, bytes) = match best {
            // A 503 from downstream must not make the caller think that hotline is down.
            Best { status: 503, .. } => (500, None),
            Best { status, bytes } => (status, bytes),
        };
        let bytes = match (bytes, &self.request) {
            (Some(bytes), _) => bytes,
            (None, Some(request)) => {
                Response::to(request, self.upstream.remote, status, reason(status)).finish()
            }
            (None, None) => return,
        };
        self.respond_upstream(shared, status, bytes, now, actions);
    }

    fn cancel_branches(&mut self, shared: &mut Shared, now: Now, actions: &mut VecDeque<Transmit>) {
        if self.method != Method::Invite {
            return;
        }
        for index in 0..self.clients.len() {
            let Some(target) = self.clients[index].target.as_mut() else {
                continue;
            };
            if target.final_status.is_some() || target.cancel != Cancel::No {
                continue;
            }
            let proceeding =
                matches!(&self.clients[index].tx, ClientTx::Invite(tx) if tx.has_provisional());
            if proceeding {
                self.send_cancel(shared, index, now, actions);
            } else if let Some(target) = self.clients[index].target.as_mut() {
                target.cancel = Cancel::Pending;
            }
        }
    }

    fn send_cancel(
        &mut self,
        shared: &mut Shared,
        index: usize,
        now: Now,
        actions: &mut VecDeque<Transmit>,
    ) {
        if let Some(target) = self.clients[index].target.as_mut() {
            target.cancel = Cancel::Sent;
        }
        let original = &self.clients[index];
        let Some(invite) = &original.invite else {
            return;
        };
        let bytes = invite.cancel();
        let flow = original.flow;
        let branch = original.branch;
        let mut out = Vec::new();
        let tx = ClientNonInvite::start(
            bytes,
            flow.transport.is_stream(),
            shared.settings,
            now.ms(),
            &mut out,
        );
        let cancel_index = self.clients.len();
        self.clients.push(Client {
            tx: ClientTx::NonInvite(tx),
            flow,
            invite: None,
            branch,
            target: None,
            done: false,
        });
        self.apply(shared, Some(cancel_index), out, actions);
    }

    /// Sends a response upstream through the server transaction.
    fn respond_upstream(
        &mut self,
        shared: &mut Shared,
        status: u16,
        bytes: Vec<u8>,
        now: Now,
        actions: &mut VecDeque<Transmit>,
    ) {
        if status >= 200
            && let Some(call_id) = self.new_call.take()
        {
            shared.outcomes.push((call_id, status));
        }
        let mut out = Vec::new();
        self.server.send_response(status, bytes, now.ms(), &mut out);
        self.apply(shared, None, out, actions);
    }

    /// Carries out a transaction's outputs; `client` is `None` for the server transaction.
    fn apply(
        &mut self,
        shared: &mut Shared,
        client: Option<usize>,
        out: Vec<Output>,
        actions: &mut VecDeque<Transmit>,
    ) {
        let flow = client.map_or(self.upstream, |i| self.clients[i].flow);
        for output in out {
            match output {
                Output::Transmit(bytes) => actions.push_back(Transmit { flow, bytes }),
                Output::Schedule { timer, at } => {
                    let slot = client.map_or(Slot::Server(timer), |i| Slot::Client(i, timer));
                    self.schedule(shared, at, slot);
                }
                Output::Timeout => {}
                Output::Terminated => match client {
                    Some(i) => self.clients[i].done = true,
                    None => self.server_done = true,
                },
            }
        }
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
        let lingering = call.server.lingering()?;
        if let Some(key) = call.key {
            parts.push(Remains::Server(key, lingering));
        }
    }
    for client in call.clients.iter().filter(|c| !c.done) {
        let lingering = client.tx.lingering()?;
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
    actions: &mut VecDeque<Transmit>,
) {
    if response.cseq().map(|c| Method::parse(c.method)) == Some(Method::Cancel) {
        return;
    }
    match reaction {
        Reaction::PassSuccess(upstream) if (200..300).contains(&status) => {
            actions.push_back(Transmit {
                flow: upstream,
                bytes: response.rewrite(None, &[], drop_first(HeaderName::Via, 1), &[]),
            });
        }
        Reaction::Resend(flow, ack) if status >= 300 => actions.push_back(Transmit {
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

/// Whether a CANCEL names the INVITE's Call-ID, From tag and CSeq number.
fn same_call(invite: &Message, cancel: &Message) -> bool {
    let number = |m: &Message| m.cseq().map(|c| c.number);
    invite.call_id() == cancel.call_id()
        && invite.from().and_then(|f| f.tag()) == cancel.from().and_then(|f| f.tag())
        && number(invite).is_some()
        && number(invite) == number(cancel)
}

fn transmit(out: Vec<Output>, flow: Flow, actions: &mut VecDeque<Transmit>) {
    for output in out {
        if let Output::Transmit(bytes) = output {
            actions.push_back(Transmit { flow, bytes });
        }
    }
}

fn stable_hash(text: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    text.hash(&mut hasher);
    hasher.finish()
}
