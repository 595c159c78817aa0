//! What a stranger without credentials can do, with simulated time: claim a dialog with a To
//! tag and hotline's Route, cancel someone's call, reuse a nonce from another address, make
//! hotline keep state or resend. Each must fail, and the phones' calls must go on.

use super::auth::Algorithm;
use super::proxy_tests::{Net, SDES, Sent, caller, flow, invite, only, phone_b, phone_c, respond};
use super::tests::{DOMAIN, PASSWORD, answer, challenges_of};
use super::*;

/// An in-dialog request to phone B's registered contact, as an attacker writes it.
fn in_dialog(method: &str, route: &str, call_id: &str, from_tag: &str, to_tag: &str) -> String {
    format!(
        "{method} sip:1001@[2001:db8::b]:5080 SIP/2.0\r\n\
         Via: SIP/2.0/UDP [2001:db8:66::1]:5999;branch=z9hG4bK{method}{call_id}{to_tag};rport\r\n\
         Route: {route}\r\nMax-Forwards: 70\r\nFrom: <sip:9999@{DOMAIN}>;tag={from_tag}\r\n\
         To: <sip:1001@{DOMAIN}>;tag={to_tag}\r\nCall-ID: {call_id}\r\nCSeq: 1 {method}\r\n\
         Event: check-sync;reboot=true\r\nContent-Type: application/sdp\r\n\
         Content-Length: {}\r\n\r\n{SDES}",
        SDES.len()
    )
}

fn attacker(port: u16) -> Flow {
    flow(&format!("[2001:db8:66::1]:{port}"), Transport::Udp, None)
}

/// Nothing kept for a request: no call, nothing lingering, no timer.
fn stateless(net: &Net) {
    assert!(net.core.proxy.is_empty());
    assert_eq!(net.core.proxy.lingering(), 0);
    assert_eq!(net.core.proxy.next_timer(), None);
}

#[test]
fn a_to_tag_and_our_route_do_not_make_a_dialog() {
    let mut net = Net::new();
    let (_, signed) = net.ringing();
    let forged_mac =
        "<sip:[2001:db8::1]:5060;transport=udp;lr;hl=00112233445566778899aabbccddeeff>";
    let attempts = [
        ("MESSAGE", "<sip:[2001:db8::1]:5060;lr>", "attack-1"),
        ("NOTIFY", "<sip:hotline.test;lr>", "attack-2"),
        ("BYE", forged_mac, "attack-3"),
        // A real dialog's signature does not fit another Call-ID.
        ("INVITE", signed.as_str(), "attack-4"),
    ];
    for (method, route, call_id) in attempts {
        let sent = net.send(
            attacker(5999),
            &in_dialog(method, route, call_id, "ft1", "xyz"),
        );
        assert_eq!(sent.len(), 1, "{method}: {sent:#?}");
        only(&sent, attacker(5999), 481);
    }
    // The ringing call is untouched, and nothing was kept for the attacker.
    assert_eq!(net.core.proxy.len(), 1);
    // The fifth refusal bans the source like five wrong passwords: then it gets silence.
    let fifth = in_dialog("BYE", forged_mac, "attack-5", "ft1", "xyz");
    only(&net.send(attacker(5999), &fifth), attacker(5999), 481);
    assert!(
        net.core
            .bans
            .is_banned("2001:db8:66::1".parse().unwrap(), net.now)
    );
    assert!(net.send(attacker(5999), &fifth).is_empty());
}

#[test]
fn an_ip_literal_is_our_route_only_at_our_address() {
    let mut net = Net::new();
    net.bind("1001", phone_b());
    // Phone B's address at port 5060 was "ours" when any IP literal was.
    let elsewhere = "<sip:[2001:db8::b]:5060;lr>";
    let sent = net.send(
        attacker(5999),
        &in_dialog("MESSAGE", elsewhere, "x", "a", "b"),
    );
    assert_eq!(
        only(&sent, attacker(5999), 403).reason(),
        Some("Relaying Forbidden")
    );
    assert!(net.core.is_our_route("<sip:[2001:db8::1]:5060;lr>"));
    assert!(net.core.is_our_route("<sip:hotline.test;lr>"));
    assert!(!net.core.is_our_route("<sip:[2001:db8::1]:5070;lr>"));
    assert!(!net.core.is_our_route("<sip:[::]:5060;lr>"));
}

/// The in-dialog requests of both parties of a signed call: the caller's carry its tag as From
/// tag, the callee's as To tag.
#[test]
fn both_parties_of_a_signed_dialog_are_routed_also_after_a_restart() {
    let mut net = Net::new();
    net.bind("1000", caller());
    let (forwarded, route) = net.ringing();
    let ok = net.reply(phone_b(), respond(&forwarded, phone_b(), 200, "OK", SDES));
    only(&ok, caller(), 200);
    let request = |method: &str, uri: &str, from: &str, to: &str, branch: &str| {
        format!(
            "{method} {uri} SIP/2.0\r\nVia: SIP/2.0/UDP [2001:db8::9]:5070;branch={branch}\r\n\
             Route: {route}\r\nMax-Forwards: 70\r\nFrom: {from}\r\nTo: {to}\r\n\
             Call-ID: call-1\r\nCSeq: 5 {method}\r\nContent-Length: 0\r\n\r\n"
        )
    };
    let alice = format!("<sip:1000@{DOMAIN}>;tag=caller");
    let bob = format!("<sip:1001@{DOMAIN}>;tag=callee");
    let info = request(
        "INFO",
        "sip:callee@[2001:db8::b]:5080",
        &alice,
        &bob,
        "z9hG4bKi1",
    );
    only(&net.send(caller(), &info), phone_b(), 0);
    let reverse = request(
        "INFO",
        "sip:1000@[2001:db8::a]:5070",
        &bob,
        &alice,
        "z9hG4bKi2",
    );
    only(&net.send(phone_b(), &reverse), caller(), 0);

    // A restart forgets the dialog table but not the secret; the bindings come from the store.
    let mut net = Net::new();
    net.bind("1000", caller());
    net.bind("1001", phone_b());
    let bye = request(
        "BYE",
        "sip:1001@[2001:db8::b]:5080",
        &alice,
        &bob,
        "z9hG4bKb1",
    );
    only(&net.send(caller(), &bye), phone_b(), 0);
    let bye = request(
        "BYE",
        "sip:1000@[2001:db8::a]:5070",
        &bob,
        &alice,
        "z9hG4bKb2",
    );
    only(&net.send(phone_b(), &bye), caller(), 0);
    let ack = request(
        "ACK",
        "sip:1001@[2001:db8::b]:5080",
        &alice,
        &bob,
        "z9hG4bKa1",
    );
    only(&net.send(caller(), &ack), phone_b(), 0);
    let unsigned = ack.replace(&route, "<sip:[2001:db8::1]:5060;transport=udp;lr>");
    assert!(net.send(caller(), &unsigned).is_empty());
}

#[test]
fn a_signed_dialog_reaches_its_own_parties_only() {
    let mut net = Net::new();
    net.bind("1000", caller());
    net.bind("1002", phone_c());
    let (forwarded, route) = net.ringing();
    let ok = net.reply(phone_b(), respond(&forwarded, phone_b(), 200, "OK", SDES));
    only(&ok, caller(), 200);
    // The callee knows the call's Call-ID, tags and signed Route: with them it aims at a third
    // phone's Contact, claiming to be anyone.
    let third = format!(
        "MESSAGE sip:1002@{c} SIP/2.0\r\nVia: SIP/2.0/UDP [2001:db8::b]:5080;branch=z9hG4bKm3\r\n\
         Route: {route}\r\nMax-Forwards: 70\r\nFrom: <sip:1001@{DOMAIN}>;tag=callee\r\n\
         To: <sip:1000@{DOMAIN}>;tag=caller\r\nCall-ID: call-1\r\nCSeq: 6 MESSAGE\r\n\
         Content-Length: 0\r\n\r\n",
        c = phone_c().remote
    );
    let sent = net.send(phone_b(), &third);
    assert_eq!(only(&sent, phone_b(), 404).status(), Some(404), "{sent:#?}");
}

/// Every refusal before authentication: one response, nothing kept, nothing resent, the ACK
/// absorbed, a retransmission answered again.
#[test]
fn refusals_before_authentication_are_sent_once_and_forgotten() {
    let mut net = Net::new();
    net.bind("1001", phone_b());
    let plain = invite("1001", "z9hG4bKs", 1, None, SDES, "");
    let cases = [
        (plain.replace("Max-Forwards: 70", "Max-Forwards: 0"), 483),
        (
            plain.replace(
                &format!("INVITE sip:1001@{DOMAIN}"),
                "INVITE sip:1001@example.com",
            ),
            403,
        ),
        (
            plain.replace("Max-Forwards: 70", "Proxy-Require: foo\r\nMax-Forwards: 70"),
            420,
        ),
        (
            plain.replace(
                &format!("To: <sip:1001@{DOMAIN}>"),
                &format!("Route: <sip:{DOMAIN};lr>\r\nTo: <sip:1001@{DOMAIN}>;tag=x"),
            ),
            481,
        ),
        (plain.clone(), 407),
    ];
    for (i, (request, status)) in cases.iter().enumerate() {
        // Each from its own /64, so that the refusals do not ban one source.
        let from = flow(&format!("[2001:db8:{i}::a]:5070"), Transport::Udp, None);
        let sent = net.send(from, request);
        assert_eq!(sent.len(), 1, "{status}: {sent:#?}");
        let refusal = only(&sent, from, *status);
        stateless(&net);
        assert!(net.advance(64_000).is_empty(), "no resend of the {status}");
        let ack = format!(
            "ACK sip:1001@{DOMAIN} SIP/2.0\r\nVia: SIP/2.0/UDP [2001:db8::a]:5070;branch=z9hG4bKs\r\n\
             Max-Forwards: 70\r\nFrom: \"Alice\" <sip:1000@{DOMAIN}>;tag=caller\r\nTo: {}\r\n\
             Call-ID: call-1\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n",
            refusal.header(HeaderName::To).unwrap()
        );
        assert!(net.send(from, &ack).is_empty(), "the ACK of the {status}");
        only(&net.send(from, request), from, *status);
        stateless(&net);
    }
}

#[test]
fn only_the_caller_cancels_its_call() {
    let mut net = Net::configured(|s| s.bans.failures = 20);
    let (forwarded, _) = net.ringing();
    let cancel = format!(
        "CANCEL sip:1001@{DOMAIN} SIP/2.0\r\nVia: SIP/2.0/UDP [2001:db8::a]:5070;branch=z9hG4bK1i2;rport\r\n\
         Max-Forwards: 70\r\nFrom: \"Alice\" <sip:1000@{DOMAIN}>;tag=caller\r\nTo: <sip:1001@{DOMAIN}>\r\n\
         Call-ID: call-1\r\nCSeq: 2 CANCEL\r\nContent-Length: 0\r\n\r\n"
    );
    let other_port = flow("[2001:db8::a]:5071", Transport::Udp, Some(0));
    let other_connection = flow("[2001:db8::a]:5070", Transport::Udp, Some(1));
    let other_transport = flow("[2001:db8::a]:5070", Transport::Tcp, Some(0));
    for from in [
        attacker(5070),
        other_port,
        other_connection,
        other_transport,
    ] {
        let sent = net.send(from, &cancel);
        assert_eq!(sent.len(), 1, "{sent:#?}");
        only(&sent, from, 481);
    }
    let wrong = [
        cancel.replace("Call-ID: call-1", "Call-ID: bogus"),
        cancel.replace("tag=caller", "tag=other"),
        cancel.replace("CSeq: 2 CANCEL", "CSeq: 3 CANCEL"),
    ];
    for cancel in &wrong {
        let sent = net.send(caller(), cancel);
        assert_eq!(sent.len(), 1, "{sent:#?}");
        only(&sent, caller(), 481);
    }
    // Still ringing: the answer goes through.
    assert_eq!(net.core.proxy.len(), 1);
    let sent = net.send(caller(), &cancel);
    only(&sent, caller(), 200);
    only(&sent, caller(), 487);
    assert_eq!(only(&sent, phone_b(), 0).method(), Some(Method::Cancel));
    assert_eq!(forwarded.method(), Some(Method::Invite));
}

#[test]
fn credentials_count_only_from_the_address_that_was_challenged() {
    let mut net = Net::new();
    net.bind("1001", phone_b());
    let first = invite("1001", "z9hG4bKn1", 1, None, SDES, "");
    let challenge = only(&net.send(caller(), &first), caller(), 407);
    let header = &challenges_of(&challenge, "Proxy-Authenticate")[0];
    let uri = format!("sip:1001@{DOMAIN}");
    let credentials = answer(header, Algorithm::Md5, "1000", PASSWORD, "INVITE", &uri, 1);
    let second = invite("1001", "z9hG4bKn2", 2, Some(&credentials), SDES, "");
    let forger = flow("[2001:db8::66]:5070", Transport::Udp, None);
    let sent = net.send(forger, &second);
    assert_eq!(sent.len(), 1, "{sent:#?}");
    let again = only(&sent, forger, 407);
    assert_ne!(challenges_of(&again, "Proxy-Authenticate")[0], *header);
    // Not a wrong password: the owner of the nonce is not banned, and can still use it.
    only(&net.send(caller(), &second), phone_b(), 0);
}

/// A REGISTER for 1000 from `from`, authenticated after its challenge; what hotline sent.
fn register_from(net: &mut Net, from: Flow) -> Sent {
    let source = from.remote;
    let transport = from.transport.as_str();
    let register = |auth: &str| {
        format!(
            "REGISTER sip:{DOMAIN} SIP/2.0\r\nVia: SIP/2.0/{transport} {source};branch=z9hG4bK{}\r\n\
             Max-Forwards: 70\r\nFrom: <sip:1000@{DOMAIN}>;tag=r\r\nTo: <sip:1000@{DOMAIN}>\r\n\
             Call-ID: reg\r\nCSeq: {} REGISTER\r\nContact: <sip:1000@{source}>\r\n{auth}\
             Content-Length: 0\r\n\r\n",
            auth.len(),
            auth.len() + 1
        )
    };
    let challenge = only(&net.send(from, &register("")), from, 401);
    let header = &challenges_of(&challenge, "WWW-Authenticate")[0];
    let uri = format!("sip:{DOMAIN}");
    let credentials = answer(
        header,
        Algorithm::Md5,
        "1000",
        PASSWORD,
        "REGISTER",
        &uri,
        1,
    );
    net.send(
        from,
        &register(&format!("Authorization: {credentials}\r\n")),
    )
}

#[test]
fn a_register_binds_no_address_of_hotline_nor_a_group() {
    for source in ["[2001:db8::1]:5060", "[ff02::1]:5060", "[::]:5070"] {
        let mut net = Net::new();
        let from = flow(source, Transport::Udp, None);
        let sent = register_from(&mut net, from);
        assert_eq!(
            only(&sent, from, 403).reason(),
            Some("Forbidden: Source Address Not Allowed")
        );
        assert_eq!(net.core.registrar.total(), 0, "{source}");
    }
    // hotline's TCP port, as the source of a TCP connection: its own listener.
    let mut net = Net::new();
    let from = flow("[2001:db8::1]:5060", Transport::Tcp, None);
    only(&register_from(&mut net, from), from, 403);
}

#[test]
fn no_prefix_holds_more_than_its_share_of_transactions() {
    let mut net = Net::configured(|s| s.max_transactions_per_prefix = 2);
    net.bind("1001", phone_b());
    only(&net.call("1001", SDES, ""), phone_b(), 0);
    only(&net.call("1001", SDES, ""), phone_b(), 0);
    let third = net.call("1001", SDES, "");
    assert_eq!(third.len(), 1, "{third:#?}");
    only(&third, caller(), 503);
    // Another prefix still has room; an unauthenticated request is challenged, as ever.
    let neighbour = flow("[2001:db8:1::a]:5070", Transport::Udp, None);
    only(&net.call_from(neighbour, "1001", SDES, ""), phone_b(), 0);
    let stranger = invite("1001", "z9hG4bKst", 1, None, SDES, "");
    only(&net.send(caller(), &stranger), caller(), 407);
    // Once the caller's calls end (Timer B, then Timer H without ACK), its share is back.
    net.advance(2 * 64 * 500 + 1);
    assert!(net.core.proxy.is_empty());
    only(&net.call("1001", SDES, ""), phone_b(), 0);
}

#[test]
fn a_full_table_challenges_strangers_and_refuses_the_newest_call() {
    let mut net = Net::configured(|s| s.max_transactions = 1);
    net.bind("1001", phone_b());
    only(&net.call("1001", SDES, ""), phone_b(), 0);
    let stranger = invite("1001", "z9hG4bKst", 1, None, SDES, "");
    only(&net.send(attacker(5070), &stranger), attacker(5070), 407);
    let sent: Sent = net.call("1001", SDES, "");
    only(&sent, caller(), 503);
}
