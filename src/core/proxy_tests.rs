//! The proxy driven like the network drives it, with simulated time: phones on the IPv6
//! documentation prefix call each other through one core.

use std::net::SocketAddr;

use super::auth::Algorithm;
use super::tests::{DOMAIN, PASSWORD, answer, at, challenges_of};
use super::*;

pub(super) const T0: u64 = 1_800_000_000_000;
pub(super) const SDES: &str = "v=0\r\no=- 1 1 IN IP6 2001:db8::a\r\ns=-\r\nc=IN IP6 2001:db8::a\r\nt=0 0\r\n\
    m=audio 4000 RTP/SAVP 0 8\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz\r\n";
const PLAIN: &str = "v=0\r\no=- 1 1 IN IP6 2001:db8::a\r\ns=RTP/SAVP a=crypto\r\nc=IN IP6 2001:db8::a\r\nt=0 0\r\n\
    m=audio 4000 RTP/AVP 0 8\r\n";

pub(super) fn flow(address: &str, transport: Transport, connection: Option<u64>) -> Flow {
    Flow {
        transport,
        remote: address.parse().unwrap(),
        connection: connection.map(ConnectionId),
    }
}

pub(super) fn caller() -> Flow {
    flow("[2001:db8::a]:5070", Transport::Udp, Some(0))
}

pub(super) fn phone_b() -> Flow {
    flow("[2001:db8::b]:5080", Transport::Udp, Some(0))
}

pub(super) fn phone_c() -> Flow {
    flow("[2001:db8::c]:5090", Transport::Tcp, Some(7))
}

pub(super) struct Net {
    pub(super) core: Core,
    /// The monotonic clock, in ms.
    pub(super) now: u64,
    /// How far the wall clock was stepped away from the monotonic one.
    wall_offset: i64,
    /// Calls placed so far, to give each its own branches.
    placed: u32,
}

pub(super) type Sent = Vec<(Flow, Message)>;

impl Net {
    pub(super) fn new() -> Net {
        Net::configured(|_| {})
    }

    /// A core whose default settings `change` adjusts.
    pub(super) fn configured(change: impl FnOnce(&mut Settings)) -> Net {
        let users = ["1000", "1001", "1002"]
            .iter()
            .map(|e| User::new(Extension::parse(e).unwrap(), e, DOMAIN, PASSWORD))
            .collect();
        let mut settings = Settings {
            domain: DOMAIN.to_owned(),
            ..Settings::default()
        };
        change(&mut settings);
        let listeners: Vec<(Transport, SocketAddr)> = vec![
            (Transport::Udp, "[2001:db8::1]:5060".parse().unwrap()),
            (Transport::Tcp, "[2001:db8::1]:5060".parse().unwrap()),
        ];
        Net {
            core: Core::new(
                settings,
                listeners,
                [9; 32],
                users,
                Vec::new(),
                Vec::new(),
                at(T0),
            ),
            now: T0,
            wall_offset: 0,
            placed: 0,
        }
    }

    /// Both clocks now.
    fn clock(&self) -> Now {
        Now {
            instant: Instant::from_millis(self.now),
            wall_ms: self.now.saturating_add_signed(self.wall_offset),
        }
    }

    /// Steps the wall clock, as NTP does on a board without a real-time clock.
    pub fn step_wall_clock(&mut self, ms: i64) {
        self.wall_offset += ms;
    }

    /// Binds `extension` to a contact at `flow` (the registrar is tested elsewhere).
    pub(super) fn bind(&mut self, extension: &str, flow: Flow) {
        let contact = format!("sip:{extension}@{}", flow.remote);
        let text = format!(
            "REGISTER sip:{DOMAIN} SIP/2.0\r\nVia: SIP/2.0/UDP {r};branch=z9hG4bKr\r\n\
             From: <sip:{extension}@{DOMAIN}>;tag=r\r\nTo: <sip:{extension}@{DOMAIN}>\r\n\
             Call-ID: reg-{r}\r\nCSeq: 1 REGISTER\r\nContact: <{contact}>\r\n\r\n",
            r = flow.remote
        );
        let request = Message::parse(text.as_bytes(), 64).unwrap();
        let extension = Extension::parse(extension).unwrap();
        self.core
            .registrar
            .register(&extension, &request, flow, self.clock().wall_ms)
            .unwrap();
    }

    pub(super) fn send(&mut self, from: Flow, text: &str) -> Sent {
        let inbound = Inbound {
            bytes: text.as_bytes(),
            flow: from,
        };
        self.core.handle(inbound, self.clock());
        parse_all(self.core.take_transmits())
    }

    /// Sends `response` (built by a phone) back through the core.
    pub(super) fn reply(&mut self, from: Flow, response: Vec<u8>) -> Sent {
        self.send(from, std::str::from_utf8(&response).unwrap())
    }

    /// Lets time pass, firing due timers in order.
    pub(super) fn advance(&mut self, ms: u64) -> Sent {
        let end = self.now + ms;
        let mut sent = Vec::new();
        loop {
            let due = match self.core.poll_output() {
                Output::Transmit(transmit) => {
                    sent.push(transmit);
                    continue;
                }
                Output::Event(_) => continue,
                Output::Timeout(due) => due.as_millis(),
            };
            if due > end {
                break;
            }
            self.now = due.max(self.now);
            self.core.handle_timeout(self.clock());
        }
        self.now = end;
        parse_all(sent)
    }

    /// A call from 1000 that rings at phone B, bound as 1001: the INVITE phone B got, and the
    /// Record-Route hotline put into it.
    pub(super) fn ringing(&mut self) -> (Message, String) {
        self.bind("1001", phone_b());
        let sent = self.call("1001", SDES, "");
        let forwarded = only(&sent, phone_b(), 0);
        self.reply(
            phone_b(),
            respond(&forwarded, phone_b(), 180, "Ringing", ""),
        );
        let route = forwarded
            .header(HeaderName::RecordRoute)
            .unwrap()
            .to_owned();
        (forwarded, route)
    }

    /// Places an authenticated INVITE from 1000 at the caller flow to `to`; returns what the
    /// core sent for the authenticated INVITE.
    pub(super) fn call(&mut self, to: &str, sdp: &str, extra: &str) -> Sent {
        self.call_from(caller(), to, sdp, extra)
    }

    /// Places an authenticated INVITE from 1000 at `from`.
    pub(super) fn call_from(&mut self, from: Flow, to: &str, sdp: &str, extra: &str) -> Sent {
        self.placed += 1;
        let n = self.placed;
        let first = invite(to, &format!("z9hG4bK{n}i1"), 1, None, sdp, extra);
        let sent = self.send(from, &first);
        let challenge = only(&sent, from, 407);
        let ack = format!(
            "ACK sip:{to}@{DOMAIN} SIP/2.0\r\nVia: SIP/2.0/UDP [2001:db8::a]:5070;branch=z9hG4bK{n}i1\r\n\
             From: <sip:1000@{DOMAIN}>;tag=caller\r\nTo: {}\r\nCall-ID: call-1\r\nCSeq: 1 ACK\r\n\r\n",
            challenge.header(HeaderName::To).unwrap()
        );
        assert!(
            self.send(from, &ack).is_empty(),
            "ACK of the 407 is absorbed"
        );
        let header = &challenges_of(&challenge, "Proxy-Authenticate")[0];
        let uri = format!("sip:{to}@{DOMAIN}");
        let credentials = answer(header, Algorithm::Md5, "1000", PASSWORD, "INVITE", &uri, 1);
        let second = invite(
            to,
            &format!("z9hG4bK{n}i2"),
            2,
            Some(&credentials),
            sdp,
            extra,
        );
        self.send(from, &second)
    }
}

pub(super) fn parse_all(transmits: Vec<Transmit>) -> Sent {
    transmits
        .into_iter()
        .map(|Transmit { flow, bytes }| (flow, Message::parse(&bytes, 128).unwrap()))
        .collect()
}

pub(super) fn invite(
    to: &str,
    branch: &str,
    cseq: u32,
    auth: Option<&str>,
    sdp: &str,
    extra: &str,
) -> String {
    let auth = auth
        .map(|a| format!("Proxy-Authorization: {a}\r\n"))
        .unwrap_or_default();
    format!(
        "INVITE sip:{to}@{DOMAIN} SIP/2.0\r\nVia: SIP/2.0/UDP [2001:db8::a]:5070;branch={branch};rport\r\n\
         Max-Forwards: 70\r\nFrom: \"Alice\" <sip:1000@{DOMAIN}>;tag=caller\r\nTo: <sip:{to}@{DOMAIN}>\r\n\
         Call-ID: call-1\r\nCSeq: {cseq} INVITE\r\nContact: <sip:1000@[2001:db8::a]:5070>\r\n\
         {auth}{extra}Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    )
}

/// The one message sent to `to` with `status` (or the request, for `status` 0).
pub(super) fn only(sent: &Sent, to: Flow, status: u16) -> Message {
    let found: Vec<&Message> = sent
        .iter()
        .filter(|(f, m)| *f == to && m.status().unwrap_or(0) == status)
        .map(|(_, m)| m)
        .collect();
    assert_eq!(found.len(), 1, "one {status} to {to:?} in {sent:#?}");
    found[0].clone()
}

/// What a phone answers to a request it received.
pub(super) fn respond(
    request: &Message,
    from: Flow,
    status: u16,
    reason: &str,
    sdp: &str,
) -> Vec<u8> {
    let mut response = Response::to(request, from.remote, status, reason);
    response.header("Contact", format!("<sip:callee@{}>", from.remote));
    match sdp {
        "" => response.finish(),
        sdp => response.finish_with_body("application/sdp", sdp.as_bytes()),
    }
}

#[test]
fn a_call_is_set_up_and_torn_down() {
    let mut net = Net::new();
    net.bind("1001", phone_b());
    let sent = net.call("1001", SDES, "");
    only(&sent, caller(), 100);
    let forwarded = only(&sent, phone_b(), 0);
    assert_eq!(forwarded.request_uri(), Some("sip:1001@[2001:db8::b]:5080"));
    assert_eq!(forwarded.values(HeaderName::Via).count(), 2);
    assert!(
        forwarded
            .top_via()
            .unwrap()
            .branch()
            .unwrap()
            .starts_with("z9hG4bK-hl")
    );
    assert_eq!(forwarded.header(HeaderName::MaxForwards), Some("69"));
    assert_eq!(forwarded.header(HeaderName::ProxyAuthorization), None);
    let record_route = forwarded
        .header(HeaderName::RecordRoute)
        .unwrap()
        .to_owned();
    assert!(
        record_route.starts_with("<sip:[2001:db8::1]:5060;transport=udp;lr;hl="),
        "{record_route}"
    );
    assert_eq!(forwarded.body(), SDES.as_bytes());

    let ringing = net.reply(
        phone_b(),
        respond(&forwarded, phone_b(), 180, "Ringing", ""),
    );
    let upstream = only(&ringing, caller(), 180);
    assert_eq!(upstream.values(HeaderName::Via).count(), 1);
    assert_eq!(upstream.top_via().unwrap().branch(), Some("z9hG4bK1i2"));

    let ok = net.reply(phone_b(), respond(&forwarded, phone_b(), 200, "OK", SDES));
    let answered = only(&ok, caller(), 200);
    assert_eq!(answered.body(), SDES.as_bytes());
    let to = answered.header(HeaderName::To).unwrap().to_owned();

    let in_dialog = |method: &str, branch: &str, cseq: u32| {
        format!(
            "{method} sip:callee@[2001:db8::b]:5080 SIP/2.0\r\n\
             Via: SIP/2.0/UDP [2001:db8::a]:5070;branch={branch}\r\n\
             Route: {record_route}\r\nMax-Forwards: 70\r\n\
             From: \"Alice\" <sip:1000@{DOMAIN}>;tag=caller\r\nTo: {to}\r\nCall-ID: call-1\r\n\
             CSeq: {cseq} {method}\r\nContent-Length: 0\r\n\r\n"
        )
    };
    let ack = net.send(caller(), &in_dialog("ACK", "z9hG4bKack", 2));
    let ack = only(&ack, phone_b(), 0);
    assert_eq!(ack.method_text(), Some("ACK"));
    assert_eq!(ack.header(HeaderName::Route), None);

    let bye = net.send(caller(), &in_dialog("BYE", "z9hG4bKbye", 3));
    let bye = only(&bye, phone_b(), 0);
    assert_eq!(bye.method(), Some(Method::Bye));
    let done = net.reply(phone_b(), respond(&bye, phone_b(), 200, "OK", ""));
    only(&done, caller(), 200);
    assert!(net.core.proxy.dialogs().is_empty());
    net.advance(64 * 500 + 1);
    assert!(net.core.proxy.is_empty(), "every transaction ends");
}

#[test]
fn busy_is_passed_back_and_acknowledged() {
    let mut net = Net::new();
    net.bind("1001", phone_b());
    let sent = net.call("1001", SDES, "");
    let forwarded = only(&sent, phone_b(), 0);
    let busy = net.reply(
        phone_b(),
        respond(&forwarded, phone_b(), 486, "Busy Here", ""),
    );
    only(&busy, caller(), 486);
    let ack = only(&busy, phone_b(), 0);
    assert_eq!(ack.method_text(), Some("ACK"));
    assert_eq!(
        ack.top_via().unwrap().branch(),
        forwarded.top_via().unwrap().branch()
    );
    // The caller's ACK leaves only lingering transactions: the branch still acknowledges a
    // retransmitted 486 (Timer D), the server transaction absorbs the ACK again (Timer I).
    let caller_ack = format!(
        "ACK sip:1001@{DOMAIN} SIP/2.0\r\nVia: SIP/2.0/UDP [2001:db8::a]:5070;branch=z9hG4bK1i2\r\n\
         From: <sip:1000@{DOMAIN}>;tag=caller\r\nTo: <sip:1001@{DOMAIN}>;tag=busy\r\n\
         Call-ID: call-1\r\nCSeq: 2 ACK\r\n\r\n"
    );
    assert!(net.send(caller(), &caller_ack).is_empty());
    assert!(net.core.proxy.is_empty());
    assert_eq!(net.core.proxy.lingering(), 2);
    assert!(net.send(caller(), &caller_ack).is_empty());
    let again = net.reply(
        phone_b(),
        respond(&forwarded, phone_b(), 486, "Busy Here", ""),
    );
    assert_eq!(only(&again, phone_b(), 0).method_text(), Some("ACK"));
    assert_eq!(again.len(), 1);
    net.core.handle_timeout(at(net.now + 32_000));
    assert_eq!(net.core.proxy.lingering(), 0);
}

#[test]
fn an_answered_call_lingers_in_a_few_bytes() {
    let mut net = Net::new();
    net.bind("1001", phone_b());
    let sent = net.call("1001", SDES, "");
    let forwarded = only(&sent, phone_b(), 0);
    let ok = respond(&forwarded, phone_b(), 200, "OK", SDES);
    only(&net.reply(phone_b(), ok.clone()), caller(), 200);
    assert!(net.core.proxy.is_empty());
    assert_eq!(net.core.proxy.lingering(), 2);
    assert_eq!(
        net.core.proxy.pending_timers(),
        0,
        "timers left by a forgotten call"
    );
    // Until the ACK the callee retransmits its 2xx, which still goes upstream (Timer M)...
    let again = net.reply(phone_b(), ok);
    assert_eq!(only(&again, caller(), 200).body(), SDES.as_bytes());
    assert_eq!(again.len(), 1);
    // ...and a retransmitted INVITE is absorbed (Timer L), not challenged or routed again.
    let retransmission = invite("1001", "z9hG4bK1i2", 2, None, SDES, "");
    assert!(net.send(caller(), &retransmission).is_empty());
    let to = format!("<sip:1001@{DOMAIN}>;tag=b");
    let route = forwarded.header(HeaderName::RecordRoute).unwrap();
    let bye = format!(
        "BYE sip:callee@[2001:db8::b]:5080 SIP/2.0\r\n\
         Via: SIP/2.0/UDP [2001:db8::a]:5070;branch=z9hG4bKbye\r\n\
         Route: {route}\r\nMax-Forwards: 70\r\n\
         From: \"Alice\" <sip:1000@{DOMAIN}>;tag=caller\r\nTo: {to}\r\nCall-ID: call-1\r\n\
         CSeq: 3 BYE\r\nContent-Length: 0\r\n\r\n"
    );
    let forwarded_bye = only(&net.send(caller(), &bye), phone_b(), 0);
    let done = net.reply(phone_b(), respond(&forwarded_bye, phone_b(), 200, "OK", ""));
    let first = only(&done, caller(), 200);
    assert_eq!(net.core.proxy.lingering(), 4);
    assert_eq!(net.core.proxy.pending_timers(), 0);
    // A retransmitted BYE gets the same 200 (Timer J) without reaching the callee again.
    let again = net.send(caller(), &bye);
    assert_eq!(again.len(), 1);
    assert_eq!(
        format!("{:?}", only(&again, caller(), 200)),
        format!("{first:?}")
    );
    net.core.handle_timeout(at(net.now + 5_000));
    assert_eq!(net.core.proxy.lingering(), 3, "Timer K is T4");
    net.core.handle_timeout(at(net.now + 32_000));
    assert_eq!(net.core.proxy.lingering(), 0);
}

#[test]
fn a_challenge_keeps_no_state() {
    let mut net = Net::new();
    net.bind("1001", phone_b());
    let first = invite("1001", "z9hG4bKc1", 1, None, SDES, "");
    let challenge = only(&net.send(caller(), &first), caller(), 407);
    assert!(net.core.proxy.is_empty());
    assert_eq!(net.core.proxy.lingering(), 0);
    // A retransmission gets a fresh challenge (RFC 3261 §8.2.7).
    let again = only(&net.send(caller(), &first), caller(), 407);
    assert_ne!(
        challenges_of(&again, "Proxy-Authenticate"),
        challenges_of(&challenge, "Proxy-Authenticate")
    );
    assert!(net.core.proxy.is_empty());
}

#[test]
fn forking_rings_both_and_cancels_the_other_on_answer() {
    let mut net = Net::new();
    net.bind("1001", phone_b());
    net.bind("1001", phone_c());
    let sent = net.call("1001", SDES, "");
    let to_b = only(&sent, phone_b(), 0);
    let to_c = only(&sent, phone_c(), 0);
    assert!(to_c.top_via().unwrap().transport == "TCP");
    net.reply(phone_c(), respond(&to_c, phone_c(), 180, "Ringing", ""));
    let ok = net.reply(phone_b(), respond(&to_b, phone_b(), 200, "OK", SDES));
    only(&ok, caller(), 200);
    let cancel = only(&ok, phone_c(), 0);
    assert_eq!(cancel.method(), Some(Method::Cancel));
    assert_eq!(
        cancel.top_via().unwrap().branch(),
        to_c.top_via().unwrap().branch()
    );
    let cancelled = net.reply(phone_c(), respond(&cancel, phone_c(), 200, "OK", ""));
    assert!(cancelled.is_empty());
    let terminated = net.reply(
        phone_c(),
        respond(&to_c, phone_c(), 487, "Request Terminated", ""),
    );
    assert!(
        terminated.iter().all(|(f, _)| *f == phone_c()),
        "the 487 is not forwarded"
    );
}

#[test]
fn cancel_from_the_caller() {
    let mut net = Net::new();
    net.ringing();
    let cancel = format!(
        "CANCEL sip:1001@{DOMAIN} SIP/2.0\r\nVia: SIP/2.0/UDP [2001:db8::a]:5070;branch=z9hG4bK1i2;rport\r\n\
         Max-Forwards: 70\r\nFrom: \"Alice\" <sip:1000@{DOMAIN}>;tag=caller\r\nTo: <sip:1001@{DOMAIN}>\r\n\
         Call-ID: call-1\r\nCSeq: 2 CANCEL\r\nContent-Length: 0\r\n\r\n"
    );
    let sent = net.send(caller(), &cancel);
    let ok = only(&sent, caller(), 200);
    assert_eq!(ok.cseq().unwrap().method, "CANCEL");
    only(&sent, caller(), 487);
    let downstream = only(&sent, phone_b(), 0);
    assert_eq!(downstream.method(), Some(Method::Cancel));
    let unknown = cancel.replace("z9hG4bK1i2", "z9hG4bKnothing");
    only(&net.send(caller(), &unknown), caller(), 481);
}

#[test]
fn refusals_before_routing() {
    let mut net = Net::new();
    net.bind("1001", phone_b());
    only(&net.call("1002", SDES, ""), caller(), 480);
    only(&net.call("1999", SDES, ""), caller(), 404);
    let insecure = net.call("1001", PLAIN, "");
    assert_eq!(
        only(&insecure, caller(), 488).reason(),
        Some("SRTP Required")
    );
    let no_sdp = net.call("1001", "", "");
    assert_eq!(only(&no_sdp, caller(), 488).reason(), Some("SDP Required"));

    let hops = invite("1001", "z9hG4bKmf", 1, None, SDES, "")
        .replace("Max-Forwards: 70", "Max-Forwards: 0");
    only(&net.send(caller(), &hops), caller(), 483);
    let foreign = invite("1001", "z9hG4bKfd", 1, None, SDES, "").replace(
        &format!("INVITE sip:1001@{DOMAIN}"),
        "INVITE sip:1001@example.com",
    );
    only(&net.send(caller(), &foreign), caller(), 403);
    assert!(net.core.proxy.dialogs().is_empty());
}

#[test]
fn unanswered_branches_are_retransmitted_then_time_out() {
    let mut net = Net::new();
    net.bind("1001", phone_b());
    let sent = net.call("1001", SDES, "");
    only(&sent, phone_b(), 0);
    // Timer A over UDP: retransmissions at 0.5, 1.5, 3.5, 7.5, 15.5 and 31.5 s.
    let retransmitted = net.advance(31_999);
    assert_eq!(
        retransmitted
            .iter()
            .filter(|(f, _)| *f == phone_b())
            .count(),
        6
    );
    let timeout = net.advance(1);
    only(&timeout, caller(), 408);
}

#[test]
fn ringing_too_long_gets_480_and_a_cancel() {
    let mut net = Net::new();
    net.bind("1001", phone_b());
    let sent = net.call("1001", SDES, "");
    let forwarded = only(&sent, phone_b(), 0);
    net.reply(
        phone_b(),
        respond(&forwarded, phone_b(), 180, "Ringing", ""),
    );
    let timeout = net.advance(60_000);
    only(&timeout, caller(), 480);
    let cancel = only(&timeout, phone_b(), 0);
    assert_eq!(cancel.method(), Some(Method::Cancel));
}

#[test]
fn a_contact_whose_connection_is_gone_fails_at_once() {
    let mut net = Net::new();
    net.bind("1001", phone_c());
    net.core.connection_closed(ConnectionId(7));
    let sent = net.call("1001", SDES, "");
    only(&sent, caller(), 480);
    assert!(sent.iter().all(|(f, _)| *f == caller()));
}

#[test]
fn non_invite_requests_are_routed_too() {
    let mut net = Net::new();
    net.bind("1001", phone_b());
    let message = format!(
        "MESSAGE sip:1001@{DOMAIN} SIP/2.0\r\nVia: SIP/2.0/UDP [2001:db8::a]:5070;branch=z9hG4bKm1\r\n\
         Max-Forwards: 70\r\nFrom: <sip:1000@{DOMAIN}>;tag=m\r\nTo: <sip:1001@{DOMAIN}>\r\n\
         Call-ID: msg-1\r\nCSeq: 1 MESSAGE\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nhi"
    );
    let challenge = only(&net.send(caller(), &message), caller(), 407);
    let header = &challenges_of(&challenge, "Proxy-Authenticate")[0];
    let uri = format!("sip:1001@{DOMAIN}");
    let credentials = answer(header, Algorithm::Md5, "1000", PASSWORD, "MESSAGE", &uri, 1);
    let authenticated = message.replace("z9hG4bKm1", "z9hG4bKm2").replace(
        "CSeq: 1",
        &format!("Proxy-Authorization: {credentials}\r\nCSeq: 2"),
    );
    let sent = net.send(caller(), &authenticated);
    let forwarded = only(&sent, phone_b(), 0);
    assert_eq!(forwarded.body(), b"hi");
    assert_eq!(forwarded.header(HeaderName::RecordRoute), None);
    let delivered = net.reply(phone_b(), respond(&forwarded, phone_b(), 200, "OK", ""));
    only(&delivered, caller(), 200);
    // The retransmitted request gets the same answer without reaching the phone again.
    let again = net.send(caller(), &authenticated);
    only(&again, caller(), 200);
}

#[path = "proxy_tests/media_tests.rs"]
mod media_tests;
