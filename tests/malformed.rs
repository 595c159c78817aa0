//! Bad input over UDP and TCP never hurts the server: after each malformed message it still
//! answers OPTIONS with 200 and a request breaking a sanity rule with 400.

mod common;

use common::{Client, DOMAIN, Server, Transport};

/// What the server must do with a malformed message.
#[derive(Debug, Clone, Copy)]
enum Outcome {
    /// Drop it without a word (nothing can or should be answered).
    Silence,
    /// Answer with this status.
    Status(u16),
    /// Close the connection (the stream cannot be resynchronised).
    Closed,
}

use Outcome::{Closed, Silence, Status};

/// A well-formed OPTIONS of `client`, to be broken by a case.
fn options(client: &mut Client) -> String {
    let uri = format!("sip:{DOMAIN}");
    client.request("OPTIONS", &uri, &uri, "")
}

/// `count` short headers, inserted before Content-Length.
fn with_headers(request: &str, count: usize) -> String {
    let extra: String = (0..count).map(|i| format!("X-H{i}: v\r\n")).collect();
    request.replace("Content-Length:", &format!("{extra}Content-Length:"))
}

/// `request` with a 20 000-byte header: over the 16 KiB message limit.
fn oversized(request: &str) -> Vec<u8> {
    let padding = "a".repeat(20_000);
    request
        .replace(
            "Content-Length:",
            &format!("X-Padding: {padding}\r\nContent-Length:"),
        )
        .into_bytes()
}

/// `request` with a header whose value is not UTF-8.
fn not_utf8(request: &str) -> Vec<u8> {
    let (start_line, rest) = request.split_once("\r\n").expect("start line");
    [
        start_line.as_bytes(),
        b"\r\nX-Bytes: \xff\xfe\r\n",
        rest.as_bytes(),
    ]
    .concat()
}

/// A malformed message: made from a fresh well-formed OPTIONS (new branch and CSeq, so that it
/// is never taken for a retransmission), and what the server must do with it.
struct Case {
    name: &'static str,
    make: fn(&str) -> Vec<u8>,
    outcome: Outcome,
}

const fn case(name: &'static str, make: fn(&str) -> Vec<u8>, outcome: Outcome) -> Case {
    Case {
        name,
        make,
        outcome,
    }
}

/// Sends the case, checks its outcome, then that the server still works: on the same
/// connection if it stayed open, on a new one otherwise.
fn check(server: &Server, client: &mut Client, transport: Transport, case: &Case) {
    let name = case.name;
    eprintln!("case: {name} over {transport:?}");
    let good = options(client);
    client.send_raw(&(case.make)(&good));
    match case.outcome {
        Silence => {}
        Status(status) => {
            let response = client.recv();
            assert_eq!(response.status(), Some(status), "{name}: {response:?}");
        }
        Closed => {
            client.expect_closed();
            *client = Client::connect(server, transport);
        }
    }
    let ok = client.options();
    assert_eq!(ok.status(), Some(200), "after {name}: {ok:?}");
    let bad = client.bad_cseq();
    assert_eq!(bad.status(), Some(400), "after {name}: {bad:?}");
}

/// Cases with the same outcome over UDP and TCP.
const COMMON_CASES: [Case; 9] = [
    case(
        "1000 headers",
        |r| with_headers(r, 1000).into_bytes(),
        Silence,
    ),
    case(
        "bare IPv6 host in Via",
        |r| r.replacen("[::1]:", "::1:", 1).into_bytes(),
        Silence,
    ),
    case(
        "bare IPv6 Request-URI",
        |r| {
            r.replacen("OPTIONS sip:hotline.test", "OPTIONS sip:2001:db8::1", 1)
                .into_bytes()
        },
        Status(400),
    ),
    case(
        "bare IPv6 host in To",
        |r| {
            r.replacen("To: <sip:hotline.test>", "To: <sip:1000@2001:db8::1>", 1)
                .into_bytes()
        },
        Status(400),
    ),
    case(
        "bare IPv6 host in From",
        |r| {
            r.replacen("From: <sip:hotline.test>", "From: <sip:1000@::1>", 1)
                .into_bytes()
        },
        Status(400),
    ),
    case(
        "NUL in the method",
        |r| r.replacen("OPTIONS", "OPT\0IONS", 1).into_bytes(),
        Silence,
    ),
    case(
        "NUL in a header name",
        |r| r.replacen("Max-Forwards", "Max\0Forwards", 1).into_bytes(),
        Silence,
    ),
    case("header section not UTF-8", not_utf8, Silence),
    case(
        "a response",
        |_| {
            b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP [::1]:5070;branch=z9hG4bKx\r\n\
              From: <sip:a@hotline.test>;tag=1\r\nTo: <sip:a@hotline.test>\r\n\
              Call-ID: r1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
                .to_vec()
        },
        Silence,
    ),
];

const UDP_CASES: [Case; 6] = [
    case("empty datagram", |_| Vec::new(), Silence),
    case("CRLF keep-alive", |_| b"\r\n\r\n".to_vec(), Silence),
    case(
        "binary garbage",
        |_| (0..=255u8).cycle().take(3000).collect(),
        Silence,
    ),
    case(
        "text garbage",
        |_| b"Hello, hotline!\r\n\r\n".to_vec(),
        Silence,
    ),
    case(
        "truncated message",
        |r| r.as_bytes()[..r.len() / 2].to_vec(),
        Silence,
    ),
    case("datagram over 16 KiB", oversized, Silence),
];

const TCP_CASES: [Case; 5] = [
    case(
        "text garbage",
        |_| b"Hello, hotline!\r\n\r\n".to_vec(),
        Closed,
    ),
    case(
        "binary garbage",
        |_| (0..=255u8).cycle().take(20_000).collect(),
        Closed,
    ),
    case(
        "huge Content-Length",
        |r| {
            r.replace("Content-Length: 0", "Content-Length: 999999999")
                .into_bytes()
        },
        Closed,
    ),
    case(
        "Content-Length headers that disagree",
        |r| {
            r.replace("Content-Length: 0", "Content-Length: 0\r\nl: 1")
                .into_bytes()
        },
        Closed,
    ),
    case("message over 16 KiB", oversized, Closed),
];

#[test]
fn udp_survives_malformed_datagrams() {
    let server = Server::start("");
    let mut client = Client::connect(&server, Transport::Udp);
    for case in UDP_CASES.iter().chain(&COMMON_CASES) {
        check(&server, &mut client, Transport::Udp, case);
    }
    server.wait_for_log("reason=\"message too large\"");
}

#[test]
fn tcp_survives_malformed_streams() {
    let server = Server::start("");
    let mut client = Client::connect(&server, Transport::Tcp);
    for case in TCP_CASES.iter().chain(&COMMON_CASES) {
        check(&server, &mut client, Transport::Tcp, case);
    }
}

/// RFC 3261 §18.3: a datagram request that ends before its Content-Length SHOULD get 400, as
/// Kamailio's sanity check 128 does; hotline drops it without a word.
#[test]
fn udp_request_with_body_shorter_than_content_length_gets_400() {
    let server = Server::start("");
    let mut client = Client::connect(&server, Transport::Udp);
    let short = case(
        "body shorter than Content-Length",
        |r| {
            r.replace("Content-Length: 0", "Content-Length: 50")
                .into_bytes()
        },
        Status(400),
    );
    check(&server, &mut client, Transport::Udp, &short);
}

/// Control characters are not allowed in header values (RFC 3261 §25.1); a NUL in the Call-ID
/// must not be echoed back in a 200.
#[test]
fn nul_in_a_header_value_gets_400() {
    let server = Server::start("");
    let nul = case(
        "NUL in the Call-ID",
        |r| r.replacen("Call-ID: ", "Call-ID: \0", 1).into_bytes(),
        Status(400),
    );
    for transport in [Transport::Udp, Transport::Tcp] {
        let mut client = Client::connect(&server, transport);
        check(&server, &mut client, transport, &nul);
    }
}

#[test]
fn tcp_connection_stalled_mid_message_is_closed() {
    let server = Server::start("[limits]\npartial_message_timeout = 1\n");
    let mut client = Client::connect(&server, Transport::Tcp);
    let good = options(&mut client);
    let with_body = good.replace("Content-Length: 0", "Content-Length: 10");
    for half in [&good[..good.len() / 2], with_body.as_str()] {
        let mut client = Client::connect(&server, Transport::Tcp);
        client.send_raw(half.as_bytes());
        client.expect_closed();
    }
    server.wait_for_logs("reason=\"partial message timeout\"", 2);
    let ok = client.options();
    assert_eq!(ok.status(), Some(200), "{ok:?}");
}

/// RFC 3261 §18.3: Content-Length is mandatory on streams. Without it the message cannot be
/// framed, but it can still be answered 400 before the connection closes.
#[test]
fn tcp_request_without_content_length_gets_400_then_close() {
    let server = Server::start("");
    let mut client = Client::connect(&server, Transport::Tcp);
    let without = options(&mut client).replace("Content-Length: 0\r\n", "");
    client.send_raw(without.as_bytes());
    let response = client.recv();
    assert_eq!(response.status(), Some(400), "{response:?}");
    assert_eq!(response.reason(), Some("Content-Length Required"));
    client.expect_closed();
}
