//! Whole-message tests: IPv6 everywhere a host can stand, responses, and hostile input.

use std::net::SocketAddr;

use super::*;

const MAX_HEADERS: usize = 64;

fn parse(text: &str) -> Message {
    Message::parse(text.as_bytes(), MAX_HEADERS).unwrap()
}

const REGISTER_TLS: &str = "REGISTER sip:[2001:db8::1]:5061;transport=tls SIP/2.0\r\n\
Via: SIP/2.0/TLS [2001:db8::5]:49152;branch=z9hG4bK-524287-1;rport\r\n\
Via: SIP/2.0/TCP [::1]:5060;branch=z9hG4bK-proxy\r\n\
Max-Forwards: 70\r\n\
Contact: <sip:1000@[2001:db8::5]:49152;transport=tls>;expires=600;+sip.instance=\"<urn:uuid:00000000-0000-1000-8000-000000000001>\"\r\n\
To: \"Alice\" <sip:1000@[2001:db8::1]>\r\n\
From: \"Alice\" <sip:1000@[2001:db8::1]>;tag=a73kszlfl\r\n\
Call-ID: 1j9FpLxk3uxtm8tn@2001:db8::5\r\n\
CSeq: 1 REGISTER\r\n\
X-Unknown:   kept   as written  \r\n\
Content-Length: 0\r\n\r\n";

#[test]
fn ipv6_register_over_tls() {
    let m = parse(REGISTER_TLS);
    assert_eq!(m.method(), Some(Method::Register));
    assert_eq!(m.version(), "SIP/2.0");
    let ruri = Uri::parse(m.request_uri().unwrap()).unwrap();
    assert_eq!(ruri.host.to_string(), "[2001:db8::1]");
    assert_eq!(ruri.port, Some(5061));
    assert_eq!(ruri.transport_param(), Some("tls"));

    let via = m.top_via().unwrap();
    assert_eq!(via.transport, "TLS");
    assert_eq!(via.host.to_string(), "[2001:db8::5]");
    assert_eq!(via.port, Some(49152));
    assert_eq!(m.values(HeaderName::Via).count(), 2);

    let contact = NameAddr::parse(m.header(HeaderName::Contact).unwrap()).unwrap();
    let uri = contact.parsed_uri().unwrap();
    assert_eq!(uri.user, Some("1000"));
    assert_eq!(uri.host.to_string(), "[2001:db8::5]");
    assert_eq!(contact.params.get("expires"), Some(Some("600")));

    assert_eq!(m.to().unwrap().parsed_uri().unwrap().user, Some("1000"));
    assert_eq!(m.from().unwrap().tag(), Some("a73kszlfl"));
    assert_eq!(m.call_id(), Some("1j9FpLxk3uxtm8tn@2001:db8::5"));
    assert_eq!(
        m.cseq(),
        Some(CSeq {
            number: 1,
            method: "REGISTER"
        })
    );
    let unknown = m.all_headers().find(|(_, name, _)| *name == "X-Unknown");
    assert_eq!(unknown.map(|(_, _, v)| v), Some("kept   as written"));
    assert!(m.body().is_empty());
}

#[test]
fn response_keeps_ipv6_vias_and_adds_received_rport() {
    let m = parse(REGISTER_TLS);
    let source: SocketAddr = "[2001:db8::5]:40000".parse().unwrap();
    let mut response = Response::to(&m, source, 200, "OK");
    response.header("Expires", 600);
    let bytes = response.finish();
    let r = Message::parse(&bytes, MAX_HEADERS).unwrap();
    assert_eq!(r.status(), Some(200));
    assert_eq!(r.reason(), Some("OK"));
    let vias: Vec<_> = r.values(HeaderName::Via).collect();
    assert_eq!(
        vias,
        [
            "SIP/2.0/TLS [2001:db8::5]:49152;branch=z9hG4bK-524287-1;rport=40000;received=2001:db8::5",
            "SIP/2.0/TCP [::1]:5060;branch=z9hG4bK-proxy",
        ]
    );
    assert!(r.to().unwrap().tag().is_some());
    assert_eq!(r.from().unwrap().tag(), Some("a73kszlfl"));
    assert_eq!(r.call_id(), m.call_id());
    assert_eq!(r.header(HeaderName::Expires), Some("600"));
    assert_eq!(r.content_length(), Ok(Some(0)));

    // A retransmission gets the same To tag.
    let again = Message::parse(&Response::to(&m, source, 200, "OK").finish(), MAX_HEADERS).unwrap();
    assert_eq!(again.to().unwrap().tag(), r.to().unwrap().tag());
}

#[test]
fn received_only_when_sent_by_differs_and_no_rport() {
    let m = parse(
        "OPTIONS sip:[::1] SIP/2.0\r\nVia: SIP/2.0/UDP [::1]:5070;branch=z9hG4bK1\r\n\
         From: <sip:a@[::1]>;tag=1\r\nTo: <sip:[::1]>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\n\r\n",
    );
    let same: SocketAddr = "[::1]:5070".parse().unwrap();
    let r = Message::parse(&Response::to(&m, same, 200, "OK").finish(), MAX_HEADERS).unwrap();
    assert_eq!(
        r.header(HeaderName::Via),
        Some("SIP/2.0/UDP [::1]:5070;branch=z9hG4bK1")
    );
    let other: SocketAddr = "[2001:db8::7]:5070".parse().unwrap();
    let r = Message::parse(&Response::to(&m, other, 200, "OK").finish(), MAX_HEADERS).unwrap();
    assert_eq!(
        r.header(HeaderName::Via),
        Some("SIP/2.0/UDP [::1]:5070;branch=z9hG4bK1;received=2001:db8::7")
    );
}

#[test]
fn compact_forms_folding_and_lf_only() {
    let m = parse(
        "\r\nINVITE sip:1001@example.org SIP/2.0\n\
         v: SIP/2.0/UDP [::1]:5070;branch=z9hG4bK2\n\
         f: <sip:1000@example.org>\n  ;tag=x\n\
         t: <sip:1001@example.org>\n\
         i: abc\n\
         CSeq:\t 2\n INVITE\n\
         m: <sip:1000@[::1]:5070>\n\
         c: application/sdp\n\
         l: 5\n\nv=0\r\nignored",
    );
    assert_eq!(m.method(), Some(Method::Invite));
    assert_eq!(m.top_via().unwrap().branch(), Some("z9hG4bK2"));
    assert_eq!(m.from().unwrap().tag(), Some("x"));
    assert_eq!(m.cseq().unwrap().number, 2);
    assert_eq!(m.cseq().unwrap().method, "INVITE");
    assert_eq!(m.body(), b"v=0\r\n");
}

#[test]
fn unknown_methods_and_responses() {
    let m = parse("FOO sip:x@example.org SIP/2.0\r\nCSeq: 1 FOO\r\n\r\n");
    assert_eq!(m.method(), Some(Method::Other));
    assert_eq!(m.method_text(), Some("FOO"));
    let r = parse("SIP/2.0 180 Ringing\r\nVia: SIP/2.0/UDP [::1];branch=z9hG4bK3\r\n\r\n");
    assert_eq!(r.status(), Some(180));
    assert!(!r.is_request());
    let r = parse("SIP/2.0 200\r\n\r\n");
    assert_eq!(r.reason(), Some(""));
    let m = parse("OPTIONS sip:x SIP/7.0\r\n\r\n");
    assert_eq!(m.version(), "SIP/7.0");
}

#[test]
fn malformed_messages_are_errors() {
    let cases: &[(&[u8], ParseError)] = &[
        (b"", ParseError::Empty),
        (b"\r\n\r\n", ParseError::Empty),
        (
            b"OPTIONS sip:x SIP/2.0\r\nCall-ID: a\r\n",
            ParseError::Truncated,
        ),
        (b"OPTIONS sip:x SIP/2.0", ParseError::Truncated),
        (b"OPTIONS\r\n\r\n", ParseError::StartLine),
        (b"OPTIONS sip:x\r\n\r\n", ParseError::StartLine),
        (b"OPTIONS sip:x HTTP/1.1\r\n\r\n", ParseError::StartLine),
        (b"OPTIONS sip: x SIP/2.0\r\n\r\n", ParseError::StartLine),
        (b"OPT(IONS sip:x SIP/2.0\r\n\r\n", ParseError::StartLine),
        (b"SIP/2.0 99 Low\r\n\r\n", ParseError::StartLine),
        (b"SIP/2.0 2000 OK\r\n\r\n", ParseError::StartLine),
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", ParseError::StartLine),
        // Found by cargo fuzz: the fourth byte falls inside a two-byte character.
        (
            "abc\u{434} sip:x SIP/2.0\r\n\r\n".as_bytes(),
            ParseError::StartLine,
        ),
        (
            b"OPTIONS sip:x SIP/2.0\r\nno colon\r\n\r\n",
            ParseError::HeaderLine,
        ),
        (
            b"OPTIONS sip:x SIP/2.0\r\nBad Name: v\r\n\r\n",
            ParseError::HeaderLine,
        ),
        (
            b"OPTIONS sip:x SIP/2.0\r\nX: \xff\xfe\r\n\r\n",
            ParseError::NotUtf8,
        ),
    ];
    for (input, expected) in cases {
        assert_eq!(
            Message::parse(input, MAX_HEADERS).unwrap_err(),
            *expected,
            "{}",
            String::from_utf8_lossy(input)
        );
    }
}

#[test]
fn a_body_shorter_than_content_length_is_marked() {
    let m = parse("OPTIONS sip:x SIP/2.0\r\nl: 10\r\n\r\nshort");
    assert_eq!(m.body_problem(), Some("Body Shorter Than Content-Length"));
    assert_eq!(m.body(), b"short");
    assert_eq!(
        parse("OPTIONS sip:x SIP/2.0\r\nl: 5\r\n\r\nshort").body_problem(),
        None
    );
    for bad in ["l: x", "l: 99999999999", "l: 1\r\nl: 2"] {
        let m = parse(&format!("OPTIONS sip:x SIP/2.0\r\n{bad}\r\n\r\nab"));
        assert_eq!(m.body_problem(), Some("Bad Content-Length"), "{bad}");
    }
}

#[test]
fn header_count_is_bounded() {
    let mut text = String::from("OPTIONS sip:x SIP/2.0\r\n");
    for i in 0..=MAX_HEADERS {
        text.push_str(&format!("X-{i}: v\r\n"));
    }
    text.push_str("\r\n");
    assert_eq!(
        Message::parse(text.as_bytes(), MAX_HEADERS).unwrap_err(),
        ParseError::TooManyHeaders
    );
}

#[test]
fn typed_views_of_bad_headers_are_none() {
    let m = parse(
        "OPTIONS sip:x SIP/2.0\r\nVia: SIP/2.0/UDP 2001:db8::1;branch=z\r\n\
         From: <sip:a@b\r\nCSeq: 4294967296 OPTIONS\r\n\r\n",
    );
    assert!(m.top_via().is_none());
    assert!(m.from().is_none());
    assert!(m.cseq().is_none());
    let m = parse("OPTIONS sip:x SIP/2.0\r\nCSeq: 4294967295 OPTIONS\r\n\r\n");
    assert_eq!(m.cseq().unwrap().number, u32::MAX);
}

/// Every prefix and every single-byte corruption of a real message parses or fails cleanly.
#[test]
fn truncations_and_corruptions_never_panic() {
    let bytes = REGISTER_TLS.as_bytes();
    for cut in 0..bytes.len() {
        let _ = exercise(&bytes[..cut]);
    }
    for i in 0..bytes.len() {
        for replacement in [b'\0', b'[', b']', b':', b';', b'\n', b'"', b'<', 0xff] {
            let mut corrupted = bytes.to_vec();
            corrupted[i] = replacement;
            let _ = exercise(&corrupted);
        }
    }
}

/// Parses and reads every typed view, the way the core would.
fn exercise(bytes: &[u8]) -> Option<()> {
    let m = Message::parse(bytes, MAX_HEADERS).ok()?;
    let _ = m.request_uri().map(Uri::parse);
    let _ = m.top_via();
    let _ = m.cseq();
    let _ = m.to().map(|t| t.parsed_uri());
    let _ = m.from().map(|f| f.parsed_uri());
    for contact in m.values(HeaderName::Contact) {
        let _ = NameAddr::parse(contact).map(|c| c.parsed_uri());
    }
    let source: SocketAddr = "[::1]:5060".parse().ok()?;
    let response = Response::to(&m, source, 400, "Bad Request").finish();
    Message::parse(&response, MAX_HEADERS + 8).ok()?;
    Some(())
}
