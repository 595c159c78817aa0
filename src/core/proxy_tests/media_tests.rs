//! The media policy in the proxy: every SDP relayed, in requests, provisional and final
//! responses and ACKs, with hotline ending calls whose answer is insecure.

use super::*;
use crate::core::route_sign::RouteSigner;

/// An SDP that offers keys on plain RTP/AVP (best-effort SRTP): insecure.
const BEST_EFFORT: &str = "v=0\r\no=- 1 1 IN IP6 2001:db8::a\r\ns=-\r\nc=IN IP6 2001:db8::a\r\nt=0 0\r\n\
    m=audio 4000 RTP/AVP 0 8\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz\r\n";

/// The Route of every in-dialog request: hotline's Record-Route, signed for call-1 with the
/// test core's secret.
fn route() -> String {
    let signature = RouteSigner::new(&[9; 32]).sign("call-1", "caller");
    format!("Route: <sip:[2001:db8::1]:5060;transport=udp;lr;hl={signature}>\r\n")
}

fn with_sdp(sdp: &str) -> String {
    match sdp {
        "" => "Content-Length: 0\r\n\r\n".to_owned(),
        sdp => format!(
            "Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
            sdp.len()
        ),
    }
}

/// A request of the caller (1000) in the dialog whose callee's To is `to`.
fn from_caller(method: &str, to: &str, cseq: u32, sdp: &str) -> String {
    format!(
        "{method} sip:callee@[2001:db8::b]:5080 SIP/2.0\r\n\
         Via: SIP/2.0/UDP [2001:db8::a]:5070;branch=z9hG4bKa{method}{cseq}\r\n{}\
         Max-Forwards: 70\r\nFrom: \"Alice\" <sip:1000@{DOMAIN}>;tag=caller\r\nTo: {to}\r\n\
         Call-ID: call-1\r\nCSeq: {cseq} {method}\r\nContact: <sip:1000@[2001:db8::a]:5070>\r\n{}",
        route(),
        with_sdp(sdp)
    )
}

/// A request of the callee in the dialog whose callee's To is `to`.
fn from_callee(method: &str, to: &str, cseq: u32, sdp: &str) -> String {
    format!(
        "{method} sip:1000@[2001:db8::a]:5070 SIP/2.0\r\n\
         Via: SIP/2.0/UDP [2001:db8::b]:5080;branch=z9hG4bKb{method}{cseq}\r\n{}\
         Max-Forwards: 70\r\nFrom: {to}\r\nTo: \"Alice\" <sip:1000@{DOMAIN}>;tag=caller\r\n\
         Call-ID: call-1\r\nCSeq: {cseq} {method}\r\nContact: <sip:callee@[2001:db8::b]:5080>\r\n{}",
        route(),
        with_sdp(sdp)
    )
}

/// A secure call from 1000 to 1001 at phone B, answered and acknowledged; the To of its 2xx.
fn secure_call(net: &mut Net) -> String {
    net.bind("1001", phone_b());
    let sent = net.call("1001", SDES, "");
    let forwarded = only(&sent, phone_b(), 0);
    let ok = net.reply(phone_b(), respond(&forwarded, phone_b(), 200, "OK", SDES));
    let to = only(&ok, caller(), 200)
        .header(HeaderName::To)
        .unwrap()
        .to_owned();
    only(
        &net.send(caller(), &from_caller("ACK", &to, 2, "")),
        phone_b(),
        0,
    );
    to
}

/// The BYE hotline sent to `to`, with what it must say.
fn bye(sent: &Sent, to: Flow, from_party: &str, to_party: &str, cseq: u32) -> Message {
    let byes: Vec<&Message> = sent
        .iter()
        .filter(|(f, m)| *f == to && m.method() == Some(Method::Bye))
        .map(|(_, m)| m)
        .collect();
    assert_eq!(byes.len(), 1, "one BYE to {to:?} in {sent:#?}");
    let bye = byes[0].clone();
    assert_eq!(bye.header(HeaderName::From), Some(from_party));
    assert_eq!(bye.header(HeaderName::To), Some(to_party));
    assert_eq!(bye.header(HeaderName::CallId), Some("call-1"));
    assert_eq!(
        bye.header(HeaderName::CSeq),
        Some(format!("{cseq} BYE").as_str())
    );
    let reason = bye.all_headers().find(|(_, name, _)| *name == "Reason");
    assert_eq!(
        reason.map(|(_, _, value)| value),
        Some("SIP;cause=488;text=\"SRTP Required\"")
    );
    bye
}

const ALICE: &str = "\"Alice\" <sip:1000@hotline.test>;tag=caller";

/// Both BYEs answered: nothing is left of the call.
fn both_answer(net: &mut Net, to_callee: &Message, to_caller: &Message) {
    let absorbed = net.reply(phone_b(), respond(to_callee, phone_b(), 200, "OK", ""));
    assert!(absorbed.is_empty(), "{absorbed:?}");
    let absorbed = net.reply(caller(), respond(to_caller, caller(), 200, "OK", ""));
    assert!(absorbed.is_empty(), "{absorbed:?}");
    net.advance(64 * 500 + 1);
    assert!(net.core.proxy.dialogs().is_empty());
    assert!(net.core.hangups.is_empty());
    assert!(net.core.proxy.is_empty());
}

#[test]
fn an_insecure_answer_in_a_2xx_is_forwarded_then_both_parties_get_a_bye() {
    let mut net = Net::new();
    net.bind("1001", phone_b());
    let sent = net.call("1001", SDES, "");
    let forwarded = only(&sent, phone_b(), 0);
    let ok = net.reply(phone_b(), respond(&forwarded, phone_b(), 200, "OK", PLAIN));
    let answered = only(&ok, caller(), 200);
    assert_eq!(
        answered.body(),
        PLAIN.as_bytes(),
        "RFC 3261 forwards every 2xx"
    );
    let callee = answered.header(HeaderName::To).unwrap();
    let to_callee = bye(&ok, phone_b(), ALICE, callee, 3);
    assert_eq!(
        to_callee.request_uri(),
        Some("sip:callee@[2001:db8::b]:5080")
    );
    let to_caller = bye(&ok, caller(), callee, ALICE, 1);
    assert_eq!(to_caller.request_uri(), Some("sip:1000@[2001:db8::a]:5070"));
    let order: Vec<u16> = ok
        .iter()
        .filter(|(f, _)| *f == caller())
        .map(|(_, m)| m.status().unwrap_or(0))
        .collect();
    assert_eq!(order, [200, 0], "the caller gets the 2xx before the BYE");
    both_answer(&mut net, &to_callee, &to_caller);
}

#[test]
fn unanswered_byes_are_sent_again_then_given_up() {
    let mut net = Net::new();
    net.bind("1001", phone_b());
    let forwarded = only(&net.call("1001", SDES, ""), phone_b(), 0);
    let ok = net.reply(
        phone_b(),
        respond(&forwarded, phone_b(), 200, "OK", BEST_EFFORT),
    );
    let first = only(&ok, phone_b(), 0);
    assert_eq!(first.method(), Some(Method::Bye));
    let again = net.advance(500);
    let resent = only(&again, phone_b(), 0);
    assert_eq!(
        resent.header(HeaderName::Via),
        first.header(HeaderName::Via)
    );
    only(&again, caller(), 0);
    // The 2xx retransmitted meanwhile gets no second pair of BYEs.
    let twice = net.reply(
        phone_b(),
        respond(&forwarded, phone_b(), 200, "OK", BEST_EFFORT),
    );
    assert!(twice.iter().all(|(_, m)| m.method() != Some(Method::Bye)));
    net.advance(64 * 500);
    assert!(net.core.hangups.is_empty());
    assert!(
        net.core.proxy.dialogs().is_empty(),
        "the dialog is forgotten"
    );
    assert_eq!(net.core.proxy.next_timer(), None);
    assert_eq!(net.core.hangups.next_timer(), None);
}

#[test]
fn an_insecure_early_answer_is_dropped_and_its_branch_cancelled() {
    let mut net = Net::new();
    net.bind("1001", phone_b());
    let forwarded = only(&net.call("1001", SDES, ""), phone_b(), 0);
    let progress = respond(&forwarded, phone_b(), 183, "Session Progress", PLAIN);
    let early = net.reply(phone_b(), progress.clone());
    assert!(early.iter().all(|(f, _)| *f == phone_b()), "{early:?}");
    let cancel = only(&early, phone_b(), 0);
    assert_eq!(cancel.method(), Some(Method::Cancel));
    assert!(
        net.reply(phone_b(), progress).is_empty(),
        "dropped again, one CANCEL"
    );
    net.reply(phone_b(), respond(&cancel, phone_b(), 200, "OK", ""));
    let terminated = net.reply(
        phone_b(),
        respond(&forwarded, phone_b(), 487, "Request Terminated", ""),
    );
    let refused = only(&terminated, caller(), 488);
    assert_eq!(refused.reason(), Some("SRTP Required"));
    assert_eq!(only(&terminated, phone_b(), 0).method(), Some(Method::Ack));
    assert!(net.core.proxy.dialogs().is_empty());
}

#[test]
fn a_secure_early_answer_goes_through() {
    let mut net = Net::new();
    net.bind("1001", phone_b());
    let forwarded = only(&net.call("1001", SDES, ""), phone_b(), 0);
    let early = net.reply(
        phone_b(),
        respond(&forwarded, phone_b(), 183, "Session Progress", SDES),
    );
    assert_eq!(only(&early, caller(), 183).body(), SDES.as_bytes());
}

#[test]
fn a_2xx_after_an_insecure_early_answer_ends_the_call() {
    let mut net = Net::new();
    net.bind("1001", phone_b());
    let forwarded = only(&net.call("1001", SDES, ""), phone_b(), 0);
    net.reply(
        phone_b(),
        respond(&forwarded, phone_b(), 183, "Session Progress", PLAIN),
    );
    // The callee answered before the CANCEL arrived, without repeating its SDP.
    let ok = net.reply(phone_b(), respond(&forwarded, phone_b(), 200, "OK", ""));
    let callee = only(&ok, caller(), 200)
        .header(HeaderName::To)
        .unwrap()
        .to_owned();
    bye(&ok, phone_b(), ALICE, &callee, 3);
    bye(&ok, caller(), &callee, ALICE, 1);
}

#[test]
fn insecure_offers_in_a_dialog_get_488_and_the_call_goes_on() {
    let mut net = Net::new();
    let to = secure_call(&mut net);
    for (method, sdp) in [
        ("INVITE", PLAIN),
        ("UPDATE", BEST_EFFORT),
        ("INVITE", "v=0\r\n"),
    ] {
        let refused = net.send(caller(), &from_caller(method, &to, 5, sdp));
        let refused = only(&refused, caller(), 488);
        assert_eq!(refused.reason(), Some("SRTP Required"), "{method}");
        let refused = net.send(phone_b(), &from_callee(method, &to, 5, sdp));
        assert_eq!(
            only(&refused, phone_b(), 488).reason(),
            Some("SRTP Required")
        );
    }
    // Session refreshes (RFC 4028) carry no SDP: they pass.
    let refresh = net.send(caller(), &from_caller("UPDATE", &to, 6, ""));
    assert_eq!(only(&refresh, phone_b(), 0).method_text(), Some("UPDATE"));
    let refresh = net.send(phone_b(), &from_callee("INVITE", &to, 6, ""));
    assert_eq!(only(&refresh, caller(), 0).method(), Some(Method::Invite));
    let secure = net.send(caller(), &from_caller("UPDATE", &to, 7, SDES));
    assert_eq!(only(&secure, phone_b(), 0).body(), SDES.as_bytes());
    assert_eq!(net.core.proxy.dialogs().len(), 1);
}

#[test]
fn an_insecure_answer_to_an_update_ends_the_call_with_fresh_cseqs() {
    let mut net = Net::new();
    let to = secure_call(&mut net);
    // The callee sent requests of its own: hotline's BYE in its name must go above them.
    let info = net.send(phone_b(), &from_callee("INFO", &to, 41, ""));
    only(&info, caller(), 0);
    let update = net.send(caller(), &from_caller("UPDATE", &to, 7, SDES));
    let update = only(&update, phone_b(), 0);
    let ok = net.reply(phone_b(), respond(&update, phone_b(), 200, "OK", PLAIN));
    only(&ok, caller(), 200);
    let to_callee = bye(&ok, phone_b(), ALICE, &to, 8);
    let to_caller = bye(&ok, caller(), &to, ALICE, 42);
    both_answer(&mut net, &to_callee, &to_caller);
}

#[test]
fn an_insecure_answer_in_an_ack_ends_the_call() {
    let mut net = Net::new();
    let to = secure_call(&mut net);
    // A re-INVITE without SDP: the callee offers in its 2xx, the caller answers in the ACK.
    let reinvite = net.send(caller(), &from_caller("INVITE", &to, 9, ""));
    let reinvite = only(&reinvite, phone_b(), 0);
    let offer = net.reply(phone_b(), respond(&reinvite, phone_b(), 200, "OK", SDES));
    only(&offer, caller(), 200);
    let ack = net.send(caller(), &from_caller("ACK", &to, 9, PLAIN));
    let forwarded: Vec<&Message> = ack
        .iter()
        .filter(|(f, m)| *f == phone_b() && m.method() == Some(Method::Ack))
        .map(|(_, m)| m)
        .collect();
    assert_eq!(forwarded.len(), 1, "the ACK is still forwarded: {ack:?}");
    let to_callee = bye(&ack, phone_b(), ALICE, &to, 10);
    let to_caller = bye(&ack, caller(), &to, ALICE, 1);
    both_answer(&mut net, &to_callee, &to_caller);
}

#[test]
fn sdp_outside_offer_and_answer_changes_nothing() {
    let mut net = Net::new();
    let to = secure_call(&mut net);
    // OPTIONS in the dialog, and its 200 listing capabilities as SDP with plain RTP.
    let options = net.send(caller(), &from_caller("OPTIONS", &to, 5, PLAIN));
    let options = only(&options, phone_b(), 0);
    let ok = net.reply(phone_b(), respond(&options, phone_b(), 200, "OK", PLAIN));
    assert_eq!(ok.len(), 1, "only the 200 goes upstream: {ok:?}");
    only(&ok, caller(), 200);
    assert!(net.core.hangups.is_empty());
    assert_eq!(net.core.proxy.dialogs().len(), 1);
}
