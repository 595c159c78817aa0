//! "Encrypted media or no call", applied to every SDP the proxy relays (see `sip::sdp` for what
//! makes a stream secure):
//! - an offer in a request (INVITE, re-INVITE, UPDATE, PRACK) that is insecure gets
//!   `488 SRTP Required` and goes no further, and an INVITE that opens a dialog without SDP gets
//!   `488 SDP Required` (its answer would come in the ACK, once the callee answered);
//! - an insecure answer in a provisional response is dropped and its branch cancelled; the caller
//!   gets `488 SRTP Required` for that branch;
//! - an insecure SDP in a 2xx is forwarded, as RFC 3261 §16.7 requires of a proxy, and the
//!   dialog is ended at once with a BYE to both parties; so is one in an ACK.

use std::collections::VecDeque;

use tracing::info;

use super::{Call, Cancel, Shared};
use crate::core::clock::Now;
use crate::core::output::Transmit;
use crate::core::registrar::Flow;
use crate::core::{Core, Reply};
use crate::sip::{HeaderName, Message, SrtpVerdict, srtp_verdict};

/// A dialog hotline must end itself, because of the insecure SDP `why` (see `hangup`).
pub struct HangUp {
    pub call_id: String,
    pub why: SrtpVerdict,
}

impl Core {
    /// `Err` with the 488 for a request whose SDP would start or change media without
    /// encryption; `opens_call` for an INVITE outside a dialog, which must carry an offer.
    pub(in crate::core) fn check_offer(
        &self,
        request: &Message,
        flow: &Flow,
        opens_call: bool,
    ) -> Result<(), Reply> {
        if !negotiates_media(request) {
            return Ok(());
        }
        let offer = sdp_of(request);
        let reason = match &offer {
            SrtpVerdict::NoSdp if opens_call => "SDP Required",
            verdict if verdict.refuses() => "SRTP Required",
            _ => return Ok(()),
        };
        log_insecure(request, flow, &offer);
        Err(Reply::new(488, reason))
    }
}

/// An ACK forwarded in a dialog: with SDP it is the answer to an offer made in a 2xx.
pub(in crate::core) fn check_ack(ack: &Message) -> Option<HangUp> {
    let answer = sdp_of(ack);
    match answer.refuses() {
        true => ack.call_id().map(|call_id| HangUp {
            call_id: call_id.to_owned(),
            why: answer,
        }),
        false => None,
    }
}

impl Call {
    /// A provisional response on branch `index`: true if it must not go upstream, because its
    /// SDP is insecure or an earlier one of the branch was. The branch is cancelled; its final
    /// response will count as hotline's 488 (see [`Call::media_refused`]).
    pub(super) fn refuse_early_answer(
        &mut self,
        shared: &mut Shared,
        index: usize,
        response: &Message,
        now: Now,
        actions: &mut VecDeque<Transmit>,
    ) -> bool {
        let flow = self.clients[index].flow;
        let Some(target) = self.clients[index].target.as_mut() else {
            return false;
        };
        if !target.media_refused {
            let answer = sdp_of(response);
            if !answer.refuses() || !negotiates_media(response) {
                return false;
            }
            log_insecure(response, &flow, &answer);
            target.media_refused = true;
        }
        if target.cancel != Cancel::Sent {
            self.send_cancel(shared, index, now, actions);
        }
        true
    }

    /// After a 2xx from branch `index` went upstream: its dialog must end when the SDP it
    /// carries is insecure, or when its branch was refused for the SDP of a provisional
    /// response.
    pub(super) fn check_answer(&self, index: usize, response: &Message) -> Option<HangUp> {
        let answer = sdp_of(response);
        let insecure = answer.refuses() && negotiates_media(response);
        if !insecure && !self.media_refused(index) {
            return None;
        }
        response.call_id().map(|call_id| HangUp {
            call_id: call_id.to_owned(),
            why: answer,
        })
    }

    /// Branch `index` was refused for the SDP of a provisional response: whatever it answers to
    /// the CANCEL, the caller should see `488 SRTP Required` for it.
    pub(super) fn media_refused(&self, index: usize) -> bool {
        self.clients[index]
            .target
            .as_ref()
            .is_some_and(|t| t.media_refused)
    }
}

fn log_insecure(message: &Message, flow: &Flow, verdict: &SrtpVerdict) {
    info!(
        source = %flow.remote,
        from = ?message.header(HeaderName::From).unwrap_or_default(),
        to = ?message.header(HeaderName::To).unwrap_or_default(),
        status = ?message.status(),
        verdict = ?verdict,
        "refused insecure media"
    );
}

/// A request, or the response to one, of the methods that carry SDP offers and answers
/// (RFC 3261, RFC 3262, RFC 3311). An SDP elsewhere (capabilities in a 200 to OPTIONS,
/// RFC 3261 §11.2) changes no media.
fn negotiates_media(message: &Message) -> bool {
    let method = match message.method_text() {
        Some(method) => Some(method),
        None => message.cseq().map(|c| c.method),
    };
    matches!(method, Some("INVITE" | "UPDATE" | "PRACK" | "ACK"))
}

fn sdp_of(message: &Message) -> SrtpVerdict {
    srtp_verdict(message.header(HeaderName::ContentType), message.body())
}
