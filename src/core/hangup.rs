//! hotline ending a dialog itself: a BYE to each party (RFC 3261 §15), built from the dialog's
//! record-routed state, each in its own non-INVITE client transaction so that a BYE lost over
//! UDP is sent again. Used when a call would otherwise run with plain media: RFC 3261 makes a
//! proxy forward every 2xx, so an insecure answer cannot be stopped, only ended at once.

use std::collections::{BTreeSet, HashMap, VecDeque};

use tracing::{debug, warn};

use super::Core;
use super::clock::Now;
use super::dialog::Party;
use super::output::Transmit;
use super::proxy::HangUp;
use super::registrar::Flow;
use super::transaction::{ClientNonInvite, Output, TimerName, Timers};
use crate::sip::Message;

/// The BYEs hotline sent and is waiting for, bounded like every other transaction table.
pub struct Hangups {
    byes: HashMap<u64, Bye>,
    timers: BTreeSet<(u64, u64, TimerName)>,
    settings: Timers,
    capacity: usize,
    /// Tells our BYEs' responses apart from the proxy's, across restarts too.
    branch_prefix: String,
    next_branch: u64,
}

struct Bye {
    tx: ClientNonInvite,
    flow: Flow,
    call_id: String,
}

impl Hangups {
    pub fn new(settings: Timers, capacity: usize, boot_ms: u64) -> Hangups {
        Hangups {
            byes: HashMap::new(),
            timers: BTreeSet::new(),
            settings,
            capacity,
            branch_prefix: format!("z9hG4bK-hb{boot_ms:x}-"),
            next_branch: 0,
        }
    }

    /// When the next retransmission or timeout is due.
    pub fn next_timer(&self) -> Option<u64> {
        self.timers.first().map(|(at, _, _)| *at)
    }

    pub fn len(&self) -> usize {
        self.byes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.byes.is_empty()
    }
}

impl Core {
    /// Ends the dialog with a BYE to each party, once, saying why in one log line.
    pub(super) fn hang_up(&mut self, hang_up: HangUp, now: Now, actions: &mut VecDeque<Transmit>) {
        let HangUp { call_id, why } = hang_up;
        let call_id = call_id.as_str();
        let Some([caller, callee]) = self.proxy.dialogs_mut().hang_up(call_id) else {
            return;
        };
        warn!(
            call_id,
            caller = ?caller.name_addr,
            callee = ?callee.name_addr,
            sdp = ?why,
            "insecure media in a dialog: ending it with a BYE to both parties"
        );
        self.send_bye(call_id, &caller, &callee, now, actions);
        self.send_bye(call_id, &callee, &caller, now, actions);
    }

    /// A BYE to `to` in the name of `from`.
    fn send_bye(
        &mut self,
        call_id: &str,
        from: &Party,
        to: &Party,
        now: Now,
        actions: &mut VecDeque<Transmit>,
    ) {
        let host = self.advertised(to.flow.transport);
        let hangups = &mut self.hangups;
        hangups.next_branch += 1;
        let number = hangups.next_branch;
        let bytes = format!(
            "BYE {uri} SIP/2.0\r\n\
             Via: SIP/2.0/{transport} {host};branch={prefix}{number:x};rport\r\n\
             Max-Forwards: 70\r\n\
             From: {from_party}\r\n\
             To: {to_party}\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: {cseq} BYE\r\n\
             Reason: SIP;cause=488;text=\"SRTP Required\"\r\n\
             Content-Length: 0\r\n\r\n",
            uri = to.contact,
            transport = to.flow.transport,
            prefix = hangups.branch_prefix,
            from_party = from.name_addr,
            to_party = to.name_addr,
            cseq = from.cseq.saturating_add(1),
        )
        .into_bytes();
        let flow = to.flow;
        if hangups.byes.len() >= hangups.capacity {
            debug!(
                call_id,
                "BYE table full: the BYE is sent once, without retransmissions"
            );
            actions.push_back(Transmit { flow, bytes });
            return;
        }
        let mut out = Vec::new();
        let reliable = flow.transport.is_stream();
        let tx = ClientNonInvite::start(bytes, reliable, hangups.settings, now.ms(), &mut out);
        let bye = Bye {
            tx,
            flow,
            call_id: call_id.to_owned(),
        };
        hangups.byes.insert(number, bye);
        self.apply_bye(number, out, actions);
    }

    /// A response to one of our BYEs: absorbed here (true), else left to the proxy (false).
    pub(super) fn hangup_response(
        &mut self,
        response: &Message,
        now: Now,
        actions: &mut VecDeque<Transmit>,
    ) -> bool {
        let prefix = &self.hangups.branch_prefix;
        let Some(number) = response
            .top_via()
            .and_then(|v| v.branch().and_then(|b| b.strip_prefix(prefix.as_str())))
            .and_then(|digits| u64::from_str_radix(digits, 16).ok())
        else {
            return false;
        };
        let status = response.status().unwrap_or(500);
        let Some(bye) = self.hangups.byes.get_mut(&number) else {
            return true;
        };
        let mut out = Vec::new();
        if bye.tx.on_response(status, now.ms(), &mut out) && status >= 200 {
            debug!(call_id = %bye.call_id, status, "our BYE was answered");
        }
        self.apply_bye(number, out, actions);
        true
    }

    /// Retransmissions and timeouts of our BYEs that are due.
    pub(super) fn hangup_timeouts(&mut self, now: Now, actions: &mut VecDeque<Transmit>) {
        while let Some(&(at, number, timer)) = self.hangups.timers.first() {
            if at > now.ms() {
                break;
            }
            self.hangups.timers.pop_first();
            let Some(bye) = self.hangups.byes.get_mut(&number) else {
                continue;
            };
            let mut out = Vec::new();
            bye.tx.on_timer(timer, now.ms(), &mut out);
            self.apply_bye(number, out, actions);
        }
    }

    /// Carries out a BYE transaction's outputs; once both BYEs of a dialog are over, hotline
    /// forgets the dialog.
    fn apply_bye(&mut self, number: u64, out: Vec<Output>, actions: &mut VecDeque<Transmit>) {
        let Some(bye) = self.hangups.byes.get(&number) else {
            return;
        };
        let flow = bye.flow;
        let mut over = false;
        for output in out {
            match output {
                Output::Transmit(bytes) => actions.push_back(Transmit { flow, bytes }),
                Output::Schedule { timer, at } => {
                    self.hangups.timers.insert((at, number, timer));
                }
                Output::Timeout => debug!(call_id = %bye.call_id, "our BYE was not answered"),
                Output::Terminated => over = true,
            }
        }
        if !over {
            return;
        }
        let Some(bye) = self.hangups.byes.remove(&number) else {
            return;
        };
        self.hangups.timers.retain(|(_, n, _)| *n != number);
        if !self.hangups.byes.values().any(|b| b.call_id == bye.call_id) {
            self.proxy.dialogs_mut().end(&bye.call_id);
        }
    }
}
