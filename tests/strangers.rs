//! The attacks of issue 10 replayed against the real binary, over UDP and TCP: requests that
//! claim a dialog with a To tag and hotline's Route, refusals that would be resent, a CANCEL
//! of someone else's call, a nonce used from another address. Each fails, is answered once and
//! logged, and the phones are unharmed.

mod common;

use std::time::Duration;

use common::netns::in_network_namespace;
use common::{Client, DOMAIN, Server, Transport, authorization, challenges};
use hotline::core::auth::Algorithm;
use hotline::sip::{HeaderName, Message, Response};

/// How long a refused request is given to be answered again: Timer G would resend at 0.5 s.
const NO_RESEND: Duration = Duration::from_millis(1_200);

const SDES: &str = "v=0\r\no=- 1 1 IN IP6 ::1\r\ns=-\r\nc=IN IP6 ::1\r\nt=0 0\r\n\
    m=audio 4000 RTP/SAVP 0\r\n\
    a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz\r\n";

/// A registered phone for `extension`.
fn phone(server: &Server, extension: &str, password: &str) -> Client {
    let mut phone = Client::connect(server, Transport::Udp);
    let contact = format!("Contact: {}\r\n", phone.contact(extension));
    let ok = phone.register(extension, password, Algorithm::Md5, &contact);
    assert_eq!(ok.status(), Some(200), "{ok:?}");
    phone
}

/// The phone got nothing but the answer to its own ping: requests are handled in order, so
/// anything forwarded to it before would have come first.
fn got_nothing(phone: &mut Client) {
    assert_eq!(phone.options().status(), Some(200));
}

/// An in-dialog request as the attacker of the issue wrote it, to `target` (the phone's
/// contact URI) through `route`, with an SRTP offer.
fn claim(attacker: &mut Client, method: &str, target: &str, route: &str) -> String {
    let to = format!("sip:1000@{DOMAIN}");
    let headers = format!(
        "Route: {route}\r\nEvent: check-sync;reboot=true\r\nContent-Type: application/sdp\r\n"
    );
    attacker
        .request(method, target, &to, &headers)
        .replace(
            &format!("To: <{to}>\r\n"),
            &format!("To: <{to}>;tag=xyz\r\n"),
        )
        .replace(
            "Content-Length: 0\r\n\r\n",
            &format!("Content-Length: {}\r\n\r\n{SDES}", SDES.len()),
        )
}

#[test]
fn requests_claiming_a_dialog_never_reach_the_phone() {
    // Eight refusals must not ban ::1, where the phone lives too.
    let server = Server::start("[bans]\nfailures = 9\n");
    let password = server.user_add("1000", "Alice");
    let mut victim = phone(&server, "1000", &password);
    let target = victim
        .contact("1000")
        .trim_matches(|c| c == '<' || c == '>')
        .to_owned();
    let port = server.address(Transport::Udp).port();
    let routes = [
        format!("<sip:{DOMAIN}:{port};lr>"),
        format!("<sip:[::1]:{port};transport=udp;lr>"),
    ];
    let mut refused = 0;
    for transport in [Transport::Udp, Transport::Tcp] {
        let mut attacker = Client::connect(&server, transport);
        for (method, route) in ["MESSAGE", "NOTIFY", "BYE", "INVITE"]
            .iter()
            .zip(routes.iter().cycle())
        {
            let request = claim(&mut attacker, method, &target, route);
            let response = attacker.send(&request);
            assert_eq!(response.status(), Some(481), "{method}: {response:?}");
            refused += 1;
        }
        got_nothing(&mut victim);
    }
    let lines = server.wait_for_logs("request refused address=::1 ", refused);
    assert!(
        lines.iter().any(|l| l.ends_with(
            " transport=TCP method=\"NOTIFY\" status=481 reason=\"Call/Transaction Does Not Exist\""
        )),
        "{lines:#?}"
    );
    // Counted like wrong passwords: one more bans the source.
    let mut attacker = Client::connect(&server, Transport::Udp);
    let request = claim(&mut attacker, "MESSAGE", &target, &routes[0]);
    assert_eq!(attacker.send(&request).status(), Some(481));
    server.wait_for_log("banned address=::1 ");
}

/// Refusals before authentication are stateless: one response, no resend, the ACK absorbed.
#[test]
fn refusals_before_authentication_are_answered_once() {
    // Each refusal counts toward a ban: eight must not ban ::1 yet.
    let server = Server::start("[bans]\nfailures = 9\n");
    let password = server.user_add("1000", "Alice");
    let _phone = phone(&server, "1000", &password);
    let port = server.address(Transport::Udp).port();
    let uri = format!("sip:1000@{DOMAIN}");
    let cases = [
        ("Max-Forwards: 0\r\n", uri.clone(), 483),
        ("", "sip:1000@example.com".to_owned(), 403),
        ("Proxy-Require: foo\r\n", uri.clone(), 420),
        (
            &*format!("Route: <sip:{DOMAIN}:{port};lr>\r\n"),
            uri.clone(),
            481,
        ),
    ];
    for (extra, request_uri, status) in cases {
        let mut client = Client::connect(&server, Transport::Udp);
        let mut request =
            client.request("INVITE", &request_uri, &format!("sip:1000@{DOMAIN}"), extra);
        if extra.starts_with("Max-Forwards") {
            request = request.replace("Max-Forwards: 70\r\n", "");
        }
        if status == 481 {
            request = request.replacen(
                &format!("To: <sip:1000@{DOMAIN}>"),
                &format!("To: <sip:1000@{DOMAIN}>;tag=x"),
                1,
            );
        }
        let response = client.send(&request);
        assert_eq!(response.status(), Some(status), "{response:?}");
        let ack = ack_of(&request, &response);
        client.send_unanswered(&ack, NO_RESEND);
        // A retransmission gets the same answer again, and again only once.
        assert_eq!(client.send(&request).status(), Some(status));
        client.send_unanswered(&ack, NO_RESEND);
    }
}

/// The ACK of a non-2xx final response (RFC 3261 §17.1.1.3).
fn ack_of(invite: &str, response: &Message) -> String {
    let request = Message::parse(invite.as_bytes(), 64).unwrap();
    let via = request.header(HeaderName::Via).unwrap();
    let from = request.header(HeaderName::From).unwrap();
    let to = response.header(HeaderName::To).unwrap();
    let call_id = request.call_id().unwrap();
    let number = request.cseq().unwrap().number;
    let uri = request.request_uri().unwrap();
    format!(
        "ACK {uri} SIP/2.0\r\nVia: {via}\r\nMax-Forwards: 70\r\nFrom: {from}\r\nTo: {to}\r\n\
         Call-ID: {call_id}\r\nCSeq: {number} ACK\r\nContent-Length: 0\r\n\r\n"
    )
}

/// An authenticated INVITE from 1000 to 1001 over `caller`'s transport, ringing at `callee`;
/// returns the INVITE as sent and as the callee got it.
fn ringing(
    server: &Server,
    caller: &mut Client,
    callee: &mut Client,
    password: &str,
) -> (String, Message) {
    let uri = format!("sip:1001@{DOMAIN}");
    let sdp = format!(
        "Content-Type: application/sdp\r\nContact: {}\r\n",
        caller.contact("1000")
    );
    let with_body = |request: String| {
        request
            .replace(
                &format!("From: <{uri}>"),
                &format!("From: <sip:1000@{DOMAIN}>"),
            )
            .replace(
                "Content-Length: 0\r\n\r\n",
                &format!("Content-Length: {}\r\n\r\n{SDES}", SDES.len()),
            )
    };
    let first = with_body(caller.request("INVITE", &uri, &uri, &sdp));
    let challenge = caller.send(&first);
    assert_eq!(challenge.status(), Some(407), "{challenge:?}");
    caller.send_raw(ack_of(&first, &challenge).as_bytes());
    let credentials = authorization(&challenge, Algorithm::Md5, "1000", password, "INVITE", &uri);
    let invite = with_body(caller.request("INVITE", &uri, &uri, &(credentials + &sdp)));
    caller.send_raw(invite.as_bytes());
    assert_eq!(caller.recv().status(), Some(100));
    let forwarded = callee.recv();
    assert_eq!(forwarded.method_text(), Some("INVITE"), "{forwarded:?}");
    let ringing = Response::to(&forwarded, server.address(Transport::Udp), 180, "Ringing").finish();
    callee.send_raw(&ringing);
    assert_eq!(caller.recv().status(), Some(180));
    (invite, forwarded)
}

/// The CANCEL of `invite` (same branch, Call-ID, From, CSeq number).
fn cancel_of(invite: &str) -> String {
    let request = Message::parse(invite.as_bytes(), 64).unwrap();
    let via = request.header(HeaderName::Via).unwrap();
    let from = request.header(HeaderName::From).unwrap();
    let to = request.header(HeaderName::To).unwrap();
    let call_id = request.call_id().unwrap();
    let number = request.cseq().unwrap().number;
    let uri = request.request_uri().unwrap();
    format!(
        "CANCEL {uri} SIP/2.0\r\nVia: {via}\r\nMax-Forwards: 70\r\nFrom: {from}\r\nTo: {to}\r\n\
         Call-ID: {call_id}\r\nCSeq: {number} CANCEL\r\nContent-Length: 0\r\n\r\n"
    )
}

#[test]
fn only_the_caller_cancels_its_call_over_udp_and_tcp() {
    let server = Server::start("");
    let caller_password = server.user_add("1000", "Alice");
    let callee_password = server.user_add("1001", "Bob");
    let mut callee = phone(&server, "1001", &callee_password);
    for transport in [Transport::Udp, Transport::Tcp] {
        let mut caller = Client::connect(&server, transport);
        let (invite, forwarded) = ringing(&server, &mut caller, &mut callee, &caller_password);
        let cancel = cancel_of(&invite);
        // The caller's branch and Via sent-by, from another port or connection, and with
        // another Call-ID from the caller itself.
        let mut stranger = Client::connect(&server, transport);
        assert_eq!(stranger.send(&cancel).status(), Some(481));
        let bogus = cancel.replace(
            &format!("Call-ID: {}", forwarded.call_id().unwrap()),
            "Call-ID: bogus",
        );
        caller.send_raw(bogus.as_bytes());
        assert_eq!(caller.recv().status(), Some(481));
        got_nothing(&mut callee);
        // Still ringing: the caller's own CANCEL ends it.
        caller.send_raw(cancel.as_bytes());
        let mut statuses = vec![caller.recv().status(), caller.recv().status()];
        statuses.sort();
        assert_eq!(statuses, [Some(200), Some(487)]);
        let cancelled = callee.recv();
        assert_eq!(cancelled.method_text(), Some("CANCEL"), "{cancelled:?}");
        let address = server.address(Transport::Udp);
        callee.send_raw(&Response::to(&cancelled, address, 200, "OK").finish());
        callee.send_raw(&Response::to(&forwarded, address, 487, "Request Terminated").finish());
        assert_eq!(callee.recv().method_text(), Some("ACK"));
    }
    server.wait_for_logs("request refused address=::1 ", 4);
}

/// A nonce is good only from the address it was issued to: an account holder who takes a
/// challenge at its own address cannot register from another (forged) one.
#[test]
fn a_nonce_issued_to_another_address_is_refused() {
    in_network_namespace(&["::2"], || {
        let server = Server::start("");
        let password = server.user_add("1000", "Alice");
        let mut own = Client::connect(&server, Transport::Udp);
        let uri = format!("sip:{DOMAIN}");
        let aor = format!("sip:1000@{DOMAIN}");
        let first = own.request("REGISTER", &uri, &aor, "");
        let challenge = own.send(&first);
        assert_eq!(challenge.status(), Some(401));
        let credentials = authorization(
            &challenge,
            Algorithm::Md5,
            "1000",
            &password,
            "REGISTER",
            &uri,
        );
        let mut forged = Client::connect_udp_from(&server, "::2".parse().unwrap());
        let contact = format!("Contact: {}\r\n", forged.contact("1000"));
        let request = forged.request("REGISTER", &uri, &aor, &(credentials + &contact));
        let refused = forged.send(&request);
        assert_eq!(refused.status(), Some(401), "{refused:?}");
        assert_ne!(
            challenges(&refused)[0].nonce,
            challenges(&challenge)[0].nonce
        );
        let line = server.wait_for_log("nonce issued to another address");
        assert!(line.contains("source=[::2]:"), "{line}");
    });
}
