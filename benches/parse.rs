//! Parsing, framing and response building: what every request costs before the core decides
//! anything. Each benchmark handles one message, so the throughput line is messages per second.

use std::hint::black_box;
use std::net::SocketAddr;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hotline::sip::{Frame, HeaderName, Message, NameAddr, Response, Uri, Via, next_frame};

const MAX_HEADERS: usize = 64;
const MAX_MESSAGE: usize = 16 * 1024;

/// An authenticated re-REGISTER as a desk phone sends it: 13 headers, IPv6 Via and Contact.
const REGISTER: &str = "REGISTER sip:hotline.test SIP/2.0\r\n\
Via: SIP/2.0/UDP [2001:db8:1:2::5]:5060;branch=z9hG4bK-524287-1---e9a6b1d7c3f05a21;rport\r\n\
Max-Forwards: 70\r\n\
Contact: <sip:1000@[2001:db8:1:2::5]:5060;transport=udp>;+sip.instance=\"<urn:uuid:00000000-0000-1000-8000-001565a1b2c3>\";expires=3600\r\n\
To: <sip:1000@hotline.test>\r\n\
From: \"Alice\" <sip:1000@hotline.test>;tag=9f3c2a71\r\n\
Call-ID: 6d1e0c9a4b7f2e58@2001:db8:1:2::5\r\n\
CSeq: 2 REGISTER\r\n\
Expires: 3600\r\n\
Allow: INVITE, ACK, CANCEL, BYE, NOTIFY, REFER, OPTIONS, INFO, UPDATE, MESSAGE\r\n\
Supported: path, replaces\r\n\
User-Agent: Yealink SIP-T46U 108.86.0.20\r\n\
Authorization: Digest username=\"1000\", realm=\"hotline.test\", \
nonce=\"0000018d3a7f2c400000002a9c1e5b7d3f60a8e24b91c7d05e3f6a1b\", uri=\"sip:hotline.test\", \
response=\"5f2d8e1c0b9a7f6e3d4c2b1a09f8e7d6\", algorithm=MD5, cnonce=\"a8f3c1d2\", nc=00000002, qop=auth\r\n\
Content-Length: 0\r\n\r\n";

/// An SRTP offer over IPv6 (two crypto suites, G.722/PCMU/PCMA, DTMF), about 600 bytes.
const SDP: &str = "v=0\r\n\
o=- 3912345678 3912345679 IN IP6 2001:db8:1:2::5\r\n\
s=SIP Call\r\n\
c=IN IP6 2001:db8:1:2::5\r\n\
t=0 0\r\n\
m=audio 40000 RTP/SAVP 9 0 8 18 101\r\n\
a=rtpmap:9 G722/8000\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:18 G729/8000\r\n\
a=fmtp:18 annexb=no\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-15\r\n\
a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz\r\n\
a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:NzB4d1BINUAvLEw6UzF3WSJ+PSdFcGdUJShpX1Zj\r\n\
a=ptime:20\r\n\
a=maxptime:40\r\n\
a=rtcp:40001 IN IP6 2001:db8:1:2::5\r\n\
a=rtcp-mux\r\n\
a=sendrecv\r\n";

fn invite() -> String {
    format!(
        "INVITE sip:1001@hotline.test SIP/2.0\r\n\
Via: SIP/2.0/UDP [2001:db8:1:2::5]:5060;branch=z9hG4bK-524287-1---4f7a2c9e1b3d5a60;rport\r\n\
Max-Forwards: 70\r\n\
Contact: <sip:1000@[2001:db8:1:2::5]:5060;transport=udp>\r\n\
To: <sip:1001@hotline.test>\r\n\
From: \"Alice\" <sip:1000@hotline.test>;tag=51c0e8a2\r\n\
Call-ID: 0b7c3e9d5a1f4862@2001:db8:1:2::5\r\n\
CSeq: 2 INVITE\r\n\
Allow: INVITE, ACK, CANCEL, BYE, NOTIFY, REFER, OPTIONS, INFO, UPDATE, MESSAGE\r\n\
Supported: replaces, timer\r\n\
User-Agent: Yealink SIP-T46U 108.86.0.20\r\n\
Proxy-Authorization: Digest username=\"1000\", realm=\"hotline.test\", \
nonce=\"0000018d3a7f2c400000002b71d0e93a5c4f2b8e6a1d7c3f90b2e4a5\", uri=\"sip:1001@hotline.test\", \
response=\"0d9c8b7a6f5e4d3c2b1a0f9e8d7c6b5a\", algorithm=MD5, cnonce=\"b71e04c9\", nc=00000001, qop=auth\r\n\
Content-Type: application/sdp\r\n\
Content-Length: {}\r\n\r\n{SDP}",
        SDP.len()
    )
}

fn source() -> SocketAddr {
    "[2001:db8:1:2::5]:5060".parse().unwrap()
}

/// What the registrar reads of a request: top Via and its branch, From and To with their URIs,
/// Call-ID, CSeq and the first Contact with its URI.
#[inline(never)]
fn registrar_views(message: &Message) -> (usize, u32) {
    let via = message.top_via().expect("Via");
    let branch = via.branch().expect("branch");
    let from = message.from().expect("From");
    let from_uri = from.parsed_uri().expect("From URI");
    let from_tag = from.tag().expect("From tag");
    let to = message.to().expect("To");
    let to_uri = to.parsed_uri().expect("To URI");
    let call_id = message.call_id().expect("Call-ID");
    let cseq = message.cseq().expect("CSeq");
    let contact = message
        .values(HeaderName::Contact)
        .next()
        .and_then(NameAddr::parse)
        .expect("Contact");
    let contact_uri = Uri::parse(contact.uri).expect("Contact URI");
    black_box((&via, &from_uri, &to_uri, &contact_uri, &contact.params));
    (
        branch.len() + from_tag.len() + call_id.len() + to_uri.user.map_or(0, str::len),
        cseq.number,
    )
}

fn parse(c: &mut Criterion) {
    let invite = invite();
    let messages = [
        ("register", REGISTER.as_bytes()),
        ("invite", invite.as_bytes()),
    ];
    for (_, bytes) in messages {
        assert!(bytes.len() < MAX_MESSAGE);
        let message = Message::parse(bytes, MAX_HEADERS).expect("parses");
        registrar_views(&message);
        assert!(Via::parse(message.header(HeaderName::Via).unwrap()).is_some());
        assert_eq!(
            next_frame(bytes, MAX_MESSAGE),
            Ok(Frame::Message(bytes.len()))
        );
    }
    let invite_message = Message::parse(invite.as_bytes(), MAX_HEADERS).unwrap();
    assert_eq!(invite_message.body(), SDP.as_bytes());
    eprintln!(
        "REGISTER {} bytes, INVITE {} bytes (SDP {} bytes)",
        REGISTER.len(),
        invite.len(),
        SDP.len()
    );

    let mut group = c.benchmark_group("sip");
    group.throughput(Throughput::Elements(1));
    for (name, bytes) in messages {
        group.bench_function(format!("parse/{name}"), |b| {
            b.iter(|| Message::parse(black_box(bytes), MAX_HEADERS).unwrap())
        });
        let message = Message::parse(bytes, MAX_HEADERS).unwrap();
        group.bench_function(format!("views/{name}"), |b| {
            b.iter(|| registrar_views(black_box(&message)))
        });
        group.bench_function(format!("parse_and_views/{name}"), |b| {
            b.iter(|| {
                let message = Message::parse(black_box(bytes), MAX_HEADERS).unwrap();
                registrar_views(&message)
            })
        });
        group.bench_function(format!("next_frame/{name}"), |b| {
            b.iter(|| next_frame(black_box(bytes), MAX_MESSAGE))
        });
    }

    let register = Message::parse(REGISTER.as_bytes(), MAX_HEADERS).unwrap();
    let source = source();
    group.bench_function("response/200_ok", |b| {
        b.iter(|| Response::to(black_box(&register), source, 200, "OK").finish())
    });
    // What the registrar sends: the 200 with the binding's Contact and its remaining expiry.
    group.bench_function("response/200_ok_contact", |b| {
        b.iter(|| {
            let mut response = Response::to(black_box(&register), source, 200, "OK");
            response.header(
                "Contact",
                format_args!(
                    "<{}>;expires={}",
                    "sip:1000@[2001:db8:1:2::5]:5060;transport=udp", 3600
                ),
            );
            response.finish()
        })
    });
    group.finish();
}

criterion_group!(benches, parse);
criterion_main!(benches);
