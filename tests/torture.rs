//! The torture test messages of RFC 4475 (§3.1.1 valid, §3.1.2 invalid, §3.2 transaction layer,
//! §3.3 application layer, §3.4 backward compatibility) and RFC 5118 §4 (IPv6), sent byte for
//! byte to the real server over UDP and over TCP, one server for all of them.
//!
//! The messages are in `tests/torture/<name>.dat`, exactly as the RFCs give them once their
//! `<allOneLine>`, `<hex>` and `<repeat>` markup is decoded, with CRLF line ends. The table
//! [`CASES`] says what hotline must answer to each, and why. What a message is sent as may
//! differ from the file only by the rewrites a case lists (to aim a registration at
//! `hotline.test`, or to correct a Content-Length the RFC itself gets wrong) and by one rule for
//! all: every RFC 3261 branch (`z9hG4bK…`) gets a suffix unique to the sending, since the RFCs
//! reuse branches across independent messages and hotline, like any transaction layer, would
//! take a second message with the same branch and sent-by for a retransmission.
//!
//! Provenance: the RFC texts could not be fetched where the corpus was made, so the messages
//! were transcribed from public test suites that quote them (reSIProcate's
//! `RFC4475TortureTests.cxx` quotes RFC 4475 section by section; two independent transcriptions
//! of RFC 5118 agree), the 342-byte PKCS#7 part of mpart01 from a hex copy of the RFC's `<hex>`
//! block. Every Content-Length agrees with its body (which checks the transcription), except
//! where the RFCs' own do not: dblreq's second request, RFC 5118 §4.6, §4.8 and §4.9; the table
//! notes each.
//!
//! Each message is followed on the same socket or connection by an `OPTIONS sip:hotline.test`:
//! what arrives before its 200 is hotline's answer to the message, so silence needs no timed
//! wait. A silent drop must also show in the server's log with the reason the table names
//! (`dropped unparsable message`, `dropped response matching no transaction`, …). When TCP is
//! closed, a new connection must get its 200. The timeouts only turn a server that never
//! answers into a failure.
//!
//! Over TCP, framing is by Content-Length (RFC 3261 §18.3): a message without one (inv2543) is
//! answered 400 and the connection closed; one with a negative (ncl) or ambiguous (mcl01) one
//! cannot be framed, so the connection is closed; a Content-Length larger than what follows (clerr) leaves the server waiting for the
//! rest of the body until `limits.partial_message_timeout` (1 s here), then it closes. Over UDP
//! the same messages are answered 400 (RFC 3261 §18.3, RFC 4475 §3.1.2.2, §3.1.2.3, §3.3.9).
//!
//! Expected outcomes follow hotline's policy: it serves `hotline.test` (and any IP literal),
//! refuses to relay anything else (403), challenges every request it would route (401 for
//! REGISTER, 407 otherwise), and drops what it cannot answer. A valid message must get the
//! answer its semantics call for, never a 400 or 5xx; an invalid one gets 400 or silence, or the
//! status the RFC names (505, 416, 420, 483, 400 for a bad Content-Length). Where the RFC lets
//! an element be liberal, [`Expect::OneOf`] lists every answer it allows.

mod common;

use std::io::{ErrorKind, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use common::{Client, DOMAIN, Server, Transport, authorization, contacts};
use hotline::core::auth::Algorithm;
use hotline::sip::{Frame, Message, next_frame};

/// Where the messages are.
const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/torture");

/// How long one read may wait before the server counts as not answering.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// The extension the registration cases authenticate as.
const EXTENSION: &str = "1000";

/// Log messages of silent drops.
const UNPARSABLE: &str = "dropped unparsable message";
const NO_VIA: &str = "missing or malformed Via";
const NO_TRANSACTION: &str = "dropped response matching no transaction";
/// Any silent drop.
const DROPPED: &str = "dropped";

/// Rewrites aiming a REGISTER of `sip:user@example.com` at `sip:1000@hotline.test`.
const REGISTER_USER: &[(&str, &str)] = &[
    ("REGISTER sip:example.com ", "REGISTER sip:hotline.test "),
    (
        "To: sip:user@example.com\r\n",
        "To: sip:1000@hotline.test\r\n",
    ),
    (
        "From: sip:user@example.com;",
        "From: sip:1000@hotline.test;",
    ),
];

/// The same for RFC 5118, whose Request-URIs are IP literals (which hotline serves).
const REGISTER_USER_5118: &[(&str, &str)] = &[
    (
        "To: sip:user@example.com\r\n",
        "To: sip:1000@hotline.test\r\n",
    ),
    (
        "From: sip:user@example.com;",
        "From: sip:1000@hotline.test;",
    ),
];

/// What hotline must do with a message on one transport.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// Exactly one final response, with this status (provisional ones are not counted).
    Reply(u16),
    /// These final responses, in order (a stream carrying two messages).
    Replies(&'static [u16]),
    /// No response, and a log line about this source containing the text.
    Silent(&'static str),
    /// The connection is closed without a response.
    Closed,
    /// This response, then the connection is closed (a stream message that cannot be framed).
    ReplyThenClosed(u16),
    /// Any of these.
    OneOf(&'static [Expect]),
}

use Expect::{Closed, OneOf, Replies, Reply, ReplyThenClosed, Silent};

/// Answer 400, or drop what cannot be answered: the RFC's "respond with 400 Bad Request".
const BAD_REQUEST: Expect = OneOf(&[Reply(400), Silent(DROPPED)]);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// The RFC calls the message valid (well-formed; semantics may still call for an error).
    Valid,
    Invalid,
}

use Verdict::{Invalid, Valid};

/// A further check of the final response.
type Check = fn(&Message) -> Result<(), String>;

/// One message of the corpus and what hotline must do with it.
struct Case {
    /// `tests/torture/<name>.dat`, the RFC's name for the message.
    name: &'static str,
    /// The RFC and section.
    rfc: &'static str,
    verdict: Verdict,
    udp: Expect,
    tcp: Expect,
    /// Replacements applied before sending; `{n}` becomes a number unique to the sending.
    rewrite: &'static [(&'static str, &'static str)],
    /// Answer a 401 with credentials of extension 1000, then remove its bindings again.
    register: bool,
    /// More to check in the final response.
    check: Option<Check>,
    /// Why this is the right answer.
    why: &'static str,
}

const fn case(
    name: &'static str,
    rfc: &'static str,
    verdict: Verdict,
    expect: Expect,
    why: &'static str,
) -> Case {
    Case {
        name,
        rfc,
        verdict,
        udp: expect,
        tcp: expect,
        rewrite: &[],
        register: false,
        check: None,
        why,
    }
}

impl Case {
    const fn tcp(mut self, expect: Expect) -> Case {
        self.tcp = expect;
        self
    }

    const fn rewrite(mut self, rewrite: &'static [(&'static str, &'static str)]) -> Case {
        self.rewrite = rewrite;
        self
    }

    const fn register(mut self) -> Case {
        self.register = true;
        self
    }

    const fn check(mut self, check: Check) -> Case {
        self.check = Some(check);
        self
    }
}

/// Every message of both RFCs and what hotline must do with it.
#[rustfmt::skip]
const CASES: &[Case] = &[
    // RFC 4475 §3.1.1: valid messages. A parser must accept them; hotline then answers what
    // their Request-URI and dialog state call for.
    case("wsinv", "4475 §3.1.1.1", Valid, Reply(403),
        "in-dialog INVITE (To tag) with a Route to services.example.com: not ours to relay. \
         Max-Forwards 0068 and CSeq 0009 have leading zeros; the top Via has an RFC 2543 branch"),
    case("intmeth", "4475 §3.1.1.2", Valid, Reply(403),
        "unknown method to example.com: relaying refused (RFC: a proxy 404s an unknown URI). \
         The To display name holds quoted-pair BEL, NUL and DEL; `?` and `;` are legal in the user part"),
    case("esc01", "4475 §3.1.1.3", Valid, Reply(403),
        "INVITE to example.net: relaying refused"),
    case("escnull", "4475 §3.1.1.4", Valid, Reply(401),
        "REGISTER of sip:null-%00-null@hotline.test: challenged, the %00 AOR parsed")
        .rewrite(&[
            ("REGISTER sip:example.com ", "REGISTER sip:hotline.test "),
            ("@example.com\r\n", "@hotline.test\r\n"),
            ("@example.com;", "@hotline.test;"),
        ]),
    case("esc02", "4475 §3.1.1.5", Valid, Reply(403),
        "unknown method RE%47IST%45R (not REGISTER) to registrar.example.com: relaying refused"),
    case("lwsdisp", "4475 §3.1.1.6", Valid, Reply(403),
        "OPTIONS to a user at example.com: relaying refused"),
    case("longreq", "4475 §3.1.1.7", Valid, Reply(403),
        "INVITE to example.com: relaying refused. 34 Via values, the top one without branch \
         (RFC 2543)"),
    case("dblreq", "4475 §3.1.1.8", Valid, Reply(403),
        "REGISTER for example.com: 403; the INVITE after it in the datagram is noise (RFC 3261 \
         §18.3). Over TCP the INVITE is a second message: 100 and 403. Its Content-Length says \
         150 but its body is 153 bytes (`m =video` and .15 addresses), so it is corrected to \
         keep the stream in step; over UDP it is noise either way")
        .tcp(Replies(&[403, 403]))
        .rewrite(&[(
            "z9hG4bKkdjuw380234\r\nContent-Type: application/sdp\r\nContent-Length: 150\r\n",
            "z9hG4bKkdjuw380234\r\nContent-Type: application/sdp\r\nContent-Length: 153\r\n",
        )]),
    case("semiuri", "4475 §3.1.1.9", Valid, Reply(403),
        "OPTIONS to user `user;par=u@example.net` at example.com: relaying refused"),
    case("transports", "4475 §3.1.1.10", Valid, Reply(403),
        "OPTIONS to example.com, Vias with SCTP, TLS and an UNKNOWN transport: relaying refused"),
    case("mpart01", "4475 §3.1.1.11", Valid, Reply(403),
        "MESSAGE with a binary multipart body and a Route to 127.0.0.1:5080: relaying refused"),
    case("unreason", "4475 §3.1.1.12", Valid, Silent(NO_TRANSACTION),
        "a 200 with a UTF-8 reason phrase: parsed, matches no transaction, dropped"),
    case("noreason", "4475 §3.1.1.13", Valid, Silent(NO_TRANSACTION),
        "a 100 without reason phrase: parsed, matches no transaction, dropped"),

    // RFC 4475 §3.1.2: invalid messages.
    case("badinv01", "4475 §3.1.2.1", Invalid, OneOf(&[Reply(400), Silent(NO_VIA)]),
        "empty Via and Contact parameters; the top Via cannot be parsed, so no answer can go back"),
    case("clerr", "4475 §3.1.2.2", Invalid, Reply(400),
        "Content-Length 9999 over a 154-byte body: 400 over UDP; over TCP the rest of the body \
         never comes and the connection is closed")
        .tcp(Closed),
    case("ncl", "4475 §3.1.2.3", Invalid, Reply(400),
        "Content-Length -999: an error over UDP (RFC: respond with an error), close over TCP")
        .tcp(Closed),
    case("scalar02", "4475 §3.1.2.4", Invalid, Reply(400),
        "CSeq 36893488147419103232 is over 2**32-1: 400"),
    case("scalarlg", "4475 §3.1.2.5", Invalid, Silent(DROPPED),
        "a response with out-of-range scalars: discarded"),
    case("quotbal", "4475 §3.1.2.6", Invalid, BAD_REQUEST,
        "unterminated quote in the To display name"),
    case("ltgtruri", "4475 §3.1.2.7", Invalid, OneOf(&[Reply(400), Silent(UNPARSABLE), Reply(403)]),
        "Request-URI in <>: 400, or liberal (ignore the brackets) and relaying refused"),
    case("lwsruri", "4475 §3.1.2.8", Invalid, OneOf(&[Reply(400), Silent(UNPARSABLE), Reply(403)]),
        "LWS inside the Request-URI: 400, or liberal and relaying refused"),
    case("lwsstart", "4475 §3.1.2.9", Invalid, OneOf(&[Reply(400), Silent(UNPARSABLE), Reply(403)]),
        "several SP between request-line elements: reject, or liberal and relaying refused"),
    case("trws", "4475 §3.1.2.10", Invalid, OneOf(&[Reply(400), Silent(UNPARSABLE), Reply(403)]),
        "SP after SIP/2.0 in the request line: reject, or liberal and relaying refused"),
    case("escruri", "4475 §3.1.2.11", Invalid, OneOf(&[Reply(403), Reply(400), Silent(DROPPED)]),
        "escaped headers in the Request-URI: 400, or ignore them; example.com is not relayed"),
    case("baddate", "4475 §3.1.2.12", Invalid, OneOf(&[Reply(403), Reply(400), Silent(DROPPED)]),
        "non-GMT Date, which hotline does not read: relaying refused (400 also allowed)"),
    case("regbadct", "4475 §3.1.2.13", Invalid, OneOf(&[Reply(400), Reply(200)]),
        "REGISTER whose Contact has an escaped header outside <>: after authentication, 400 or \
         a liberal 200")
        .rewrite(REGISTER_USER)
        .register(),
    case("badaspec", "4475 §3.1.2.14", Invalid, OneOf(&[Reply(400), Silent(UNPARSABLE), Reply(403)]),
        "spaces around the To addr-spec: 400, or liberal and relaying refused"),
    case("baddn", "4475 §3.1.2.15", Invalid, BAD_REQUEST,
        "unquoted display names with commas"),
    case("badvers", "4475 §3.1.2.16", Invalid, Reply(505),
        "SIP/7.0: 505 Version Not Supported"),
    case("mismatch01", "4475 §3.1.2.17", Invalid, Reply(400),
        "CSeq method INVITE on an OPTIONS: 400"),
    case("mismatch02", "4475 §3.1.2.18", Invalid, OneOf(&[Reply(501), Reply(400)]),
        "unknown method with a CSeq of INVITE: 501, or 400"),
    case("bigcode", "4475 §3.1.2.19", Invalid, Silent(DROPPED),
        "status code 4294967301: dropped"),

    // RFC 4475 §3.2: transaction layer.
    case("badbranch", "4475 §3.2.1", Valid, OneOf(&[Reply(400), Reply(403)]),
        "branch of the magic cookie alone: 400, or RFC 2543 matching and relaying refused. The \
         sent-by gets a port unique to the sending, so that UDP and TCP are two transactions")
        .rewrite(&[("192.0.2.1;branch=z9hG4bK\r\n", "192.0.2.1:{n};branch=z9hG4bK\r\n")]),

    // RFC 4475 §3.3: application layer.
    case("insuf", "4475 §3.3.1", Invalid, BAD_REQUEST,
        "no To, From, Call-ID or Max-Forwards"),
    case("unkscm", "4475 §3.3.2", Valid, Reply(416),
        "Request-URI scheme nobodyKnowsThisScheme: 416"),
    case("novelsc", "4475 §3.3.3", Valid, Reply(416),
        "Request-URI scheme soap.beep: 416"),
    case("unksm2", "4475 §3.3.4", Valid, OneOf(&[Reply(400), Reply(403)]),
        "REGISTER whose To is isbn: and From http:: a registrar answers 400 (the AOR must be \
         SIP); as the proxy of example.com, 403"),
    case("bext01", "4475 §3.3.5", Valid, Reply(420),
        "Proxy-Require of unknown options: 420 listing them in Unsupported (Require is for the UAS)")
        .check(unsupported_lists_proxy_require),
    case("invut", "4475 §3.3.6", Valid, Reply(403),
        "INVITE with an unknown Content-Type to example.com: relaying refused (a UAS would 415)"),
    case("regaut01", "4475 §3.3.7", Valid, Reply(401),
        "REGISTER with an unknown Authorization scheme: challenged with Digest")
        .rewrite(&[
            ("REGISTER sip:example.com ", "REGISTER sip:hotline.test "),
            ("j.user@example.com", "j.user@hotline.test"),
        ]),
    case("multi01", "4475 §3.3.8", Invalid, BAD_REQUEST,
        "two CSeq, Call-ID, To, From and Max-Forwards"),
    case("mcl01", "4475 §3.3.9", Invalid, Reply(400),
        "two different Content-Length: an error over UDP, close over TCP")
        .tcp(Closed),
    case("bcast", "4475 §3.3.10", Valid, Silent(NO_TRANSACTION),
        "a 200 with a broadcast Via: matches no transaction, dropped"),
    case("zeromf", "4475 §3.3.11", Valid, Reply(483),
        "OPTIONS to another element with Max-Forwards 0: 483"),
    case("cparam01", "4475 §3.3.12", Valid, Reply(200),
        "REGISTER whose bare Contact has ;unknownparam: a contact-param, not in the bound URI")
        .rewrite(&[
            ("REGISTER sip:example.com ", "REGISTER sip:hotline.test "),
            ("watson@example.com", "1000@hotline.test"),
        ])
        .register()
        .check(|r| bound(r, "<sip:+19725552222@gw1.example.net>;")),
    case("cparam02", "4475 §3.3.13", Valid, Reply(200),
        "REGISTER whose Contact has ;unknownparam inside <>: a URI parameter, bound with it")
        .rewrite(&[
            ("REGISTER sip:example.com ", "REGISTER sip:hotline.test "),
            ("watson@example.com", "1000@hotline.test"),
        ])
        .register()
        .check(|r| bound(r, "<sip:+19725552222@gw1.example.net;unknownparam>;")),
    case("regescrt", "4475 §3.3.14", Valid, Reply(200),
        "REGISTER whose Contact URI has an escaped Route header: accepted and bound as written")
        .rewrite(REGISTER_USER)
        .register()
        .check(|r| bound(r, "<sip:user@example.com?Route=%3Csip:sip.example.com%3E>;")),
    case("sdp01", "4475 §3.3.15", Valid, Reply(403),
        "INVITE accepting only text/nobodyKnowsThis, to example.com: relaying refused (a UAS \
         would 406)"),

    // RFC 4475 §3.4: backward compatibility.
    case("inv2543", "4475 §3.4.1", Valid, OneOf(&[Reply(403), Reply(400)]),
        "RFC 2543 INVITE (no branch, From tag, Max-Forwards or Content-Length) to example.com: \
         relaying refused, or 400 by an element without RFC 2543 compatibility (the RFC makes \
         it optional). Over TCP it cannot be framed without Content-Length")
        .tcp(ReplyThenClosed(400)),

    // RFC 5118 §4: IPv6. Request-URIs with an IP literal are hotline's own.
    case("ipv6-good", "5118 §4.1", Valid, Reply(200),
        "REGISTER to [2001:db8::10]: after authentication the IPv6 Contact is bound")
        .rewrite(REGISTER_USER_5118)
        .register()
        .check(|r| bound(r, "<sip:caller@[2001:db8::1]>;")),
    case("ipv6-bad", "5118 §4.2", Invalid, BAD_REQUEST,
        "Request-URI host 2001:db8::10 without brackets"),
    case("port-ambiguous", "5118 §4.3", Valid, Reply(200),
        "REGISTER to [2001:db8::10:5070], an address and no port")
        .rewrite(REGISTER_USER_5118)
        .register()
        .check(|r| bound(r, "<sip:caller@[2001:db8::1]>;")),
    case("port-unambiguous", "5118 §4.4", Valid, Reply(200),
        "REGISTER to [2001:db8::10]:5070")
        .rewrite(REGISTER_USER_5118)
        .register()
        .check(|r| bound(r, "<sip:caller@[2001:db8::1]>;")),
    case("via-received-param-with-delim", "5118 §4.5", Valid, Reply(481),
        "BYE (To tag) with received=[2001:db8::9:255]: parsed; in no dialog hotline signed, 481"),
    case("via-received-param-no-delim", "5118 §4.5", Valid, Reply(200),
        "OPTIONS to [2001:db8::10] with received=2001:db8::9:255: a ping of hotline, 200"),
    case("ipv6-in-sdp", "5118 §4.6", Valid, Reply(407),
        "INVITE to user@[2001:db8::10] with IPv6 SDP: challenged. The RFC's Content-Length \
         (268) is not its body's (251) and is corrected")
        .rewrite(&[("Content-Length: 268\r\n", "Content-Length: 251\r\n")]),
    case("mult-ip-in-header", "5118 §4.7", Valid, Reply(481),
        "BYE (To tag) with IPv6 and IPv4 Vias, to host.example.net: in no dialog hotline signed, 481"),
    case("mult-ip-in-sdp", "5118 §4.8", Valid, Reply(407),
        "INVITE to user@[2001:db8::10] with IPv4 and IPv6 c= lines: challenged. Content-Length \
         181 corrected to the body's 189")
        .rewrite(&[("Content-Length: 181\r\n", "Content-Length: 189\r\n")]),
    case("ipv4-mapped-ipv6", "5118 §4.9", Valid, Reply(403),
        "INVITE to example.com from [::ffff:192.0.2.10]: relaying refused. Content-Length 236 \
         corrected to the body's 245")
        .rewrite(&[("Content-Length: 236\r\n", "Content-Length: 245\r\n")]),
    case("ipv6-bug-abnf-3-colons", "5118 §4.10", Invalid,
        OneOf(&[Reply(400), Silent(DROPPED), Reply(407)]),
        "[2001:db8:::192.0.2.1] is no IPv6 address (RFC 4291; RFC 5954 fixed the ABNF that \
         allowed it): 400, or a robust reading and a challenge"),
    case("ipv6-correct-abnf-2-colons", "5118 §4.10", Valid, Reply(407),
        "OPTIONS to user@[2001:db8::192.0.2.1]: for a user of hotline, challenged"),
];

/// bext01: the Unsupported header names the Proxy-Require options, not the Require ones.
fn unsupported_lists_proxy_require(response: &Message) -> Result<(), String> {
    let unsupported: Vec<&str> = response
        .all_headers()
        .filter(|(_, name, _)| name.eq_ignore_ascii_case("Unsupported"))
        .map(|(_, _, value)| value)
        .collect();
    let all = unsupported.join(", ");
    let listed = ["noProxiesSupportThis", "norDoAnyProxiesSupportThis"]
        .iter()
        .all(|option| all.contains(option));
    if listed && !all.contains("nothingSupportsThis") {
        Ok(())
    } else {
        Err(format!("Unsupported: {all:?}"))
    }
}

/// A 200 to REGISTER lists a binding that starts with `prefix`.
fn bound(response: &Message, prefix: &str) -> Result<(), String> {
    let bindings = contacts(response);
    if bindings.iter().any(|c| c.starts_with(prefix)) {
        Ok(())
    } else {
        Err(format!("no binding {prefix}… in {bindings:?}"))
    }
}

/// Numbers unique to each sending, for branches and rewrites.
fn next_number() -> u32 {
    static NEXT: AtomicU32 = AtomicU32::new(1000);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

fn replace(bytes: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if !from.is_empty() && bytes[i..].starts_with(from) {
            out.extend_from_slice(to);
            i += from.len();
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    out
}

/// `token` characters of RFC 3261 §25.1.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b)
}

/// Makes the message's transactions unique with `.n`: every RFC 3261 branch that has more than
/// the magic cookie, every RFC 2543 branch (`branch=` without the cookie), and the Call-ID, since
/// RFC 2543 requests are matched by their fields and the same message sent twice would be one
/// transaction.
fn unique_branches(bytes: &[u8], n: u32) -> Vec<u8> {
    const COOKIE: &[u8] = b"z9hG4bK";
    let suffix = format!(".{n}");
    let bytes = suffix_tokens(bytes, COOKIE, None, &suffix);
    let bytes = suffix_tokens(&bytes, b"branch=", Some(COOKIE), &suffix);
    unique_call_id(&bytes, &suffix)
}

/// Appends `suffix` to every non-empty token that follows `marker`, unless it starts with
/// `unless`.
fn suffix_tokens(bytes: &[u8], marker: &[u8], unless: Option<&[u8]>, suffix: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + 64);
    let mut i = 0;
    while i < bytes.len() {
        let start = i + marker.len();
        let skip = unless.is_some_and(|u| bytes[start.min(bytes.len())..].starts_with(u));
        if bytes[i..].starts_with(marker) && !skip {
            let end = start
                + bytes[start..]
                    .iter()
                    .take_while(|&&b| is_token_byte(b))
                    .count();
            out.extend_from_slice(&bytes[i..end]);
            if end > start {
                out.extend_from_slice(suffix.as_bytes());
            }
            i = end;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    out
}

/// The first Call-ID, with `suffix`.
fn unique_call_id(bytes: &[u8], suffix: &str) -> Vec<u8> {
    let start = [&b"\r\nCall-ID:"[..], b"\r\ni:"]
        .iter()
        .filter_map(|name| {
            bytes
                .windows(name.len())
                .position(|w| w.eq_ignore_ascii_case(name))
                .map(|at| at + name.len())
        })
        .min();
    let Some(start) = start else {
        return bytes.to_vec();
    };
    let value = bytes[start..]
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .map_or(start, |skip| start + skip);
    let end = value
        + bytes[value..]
            .iter()
            .take_while(|b| !b.is_ascii_whitespace())
            .count();
    [&bytes[..end], suffix.as_bytes(), &bytes[end..]].concat()
}

/// The case's message as it is sent: rewritten, with unique branches.
fn prepare(case: &Case, original: &[u8]) -> Vec<u8> {
    let n = next_number();
    let mut bytes = original.to_vec();
    for (from, to) in case.rewrite {
        let to = to.replace("{n}", &n.to_string());
        let rewritten = replace(&bytes, from.as_bytes(), to.as_bytes());
        assert_ne!(
            rewritten, bytes,
            "{}: rewrite {from:?} matches nothing",
            case.name
        );
        bytes = rewritten;
    }
    unique_branches(&bytes, n)
}

/// One socket or connection to the server.
enum Conn {
    Udp(UdpSocket),
    Tcp {
        stream: TcpStream,
        received: Vec<u8>,
    },
}

enum Received {
    Message(Vec<u8>),
    Closed,
    Timeout,
}

impl Conn {
    fn open(server: &Server, transport: Transport) -> Conn {
        let remote = server.address(transport);
        match transport {
            Transport::Udp => {
                let socket = UdpSocket::bind("[::1]:0").expect("bind UDP");
                socket.connect(remote).expect("connect UDP");
                socket.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
                Conn::Udp(socket)
            }
            Transport::Tcp => {
                let stream = TcpStream::connect(remote).expect("connect TCP");
                stream.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
                Conn::Tcp {
                    stream,
                    received: Vec::new(),
                }
            }
            Transport::Tls => unreachable!("the corpus runs over UDP and TCP"),
        }
    }

    fn local(&self) -> SocketAddr {
        match self {
            Conn::Udp(socket) => socket.local_addr().unwrap(),
            Conn::Tcp { stream, .. } => stream.local_addr().unwrap(),
        }
    }

    fn transport(&self) -> &'static str {
        match self {
            Conn::Udp(_) => "UDP",
            Conn::Tcp { .. } => "TCP",
        }
    }

    /// Sends `bytes`; false when the server has closed the connection.
    fn send(&mut self, bytes: &[u8]) -> bool {
        match self {
            Conn::Udp(socket) => {
                assert_eq!(socket.send(bytes).expect("send datagram"), bytes.len());
                true
            }
            Conn::Tcp { stream, .. } => stream.write_all(bytes).is_ok(),
        }
    }

    fn receive(&mut self) -> Received {
        match self {
            Conn::Udp(socket) => {
                let mut buffer = vec![0; 65_536];
                match socket.recv(&mut buffer) {
                    Ok(n) => {
                        buffer.truncate(n);
                        Received::Message(buffer)
                    }
                    Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                        Received::Timeout
                    }
                    Err(e) => panic!("receive a datagram: {e}"),
                }
            }
            Conn::Tcp { stream, received } => loop {
                match next_frame(received, 65_535) {
                    Ok(Frame::Message(n)) => {
                        return Received::Message(received.drain(..n).collect());
                    }
                    Ok(Frame::Ping(n) | Frame::Pong(n)) => {
                        received.drain(..n);
                        continue;
                    }
                    Ok(Frame::Incomplete) => {}
                    Err(e) => panic!("unframable bytes from the server ({e}): {received:?}"),
                }
                let mut chunk = [0; 16 * 1024];
                match stream.read(&mut chunk) {
                    Ok(0) => return Received::Closed,
                    Ok(n) => received.extend_from_slice(&chunk[..n]),
                    Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                        return Received::Timeout;
                    }
                    Err(e)
                        if matches!(
                            e.kind(),
                            ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted
                        ) =>
                    {
                        return Received::Closed;
                    }
                    Err(e) => panic!("read from the server: {e}"),
                }
            },
        }
    }
}

/// An `OPTIONS sip:hotline.test` with a fresh Call-ID, and that Call-ID.
fn ping(conn: &Conn) -> (Vec<u8>, String) {
    let n = next_number();
    let call_id = format!("alive-{n}-{}", std::process::id());
    let text = format!(
        "OPTIONS sip:{DOMAIN} SIP/2.0\r\n\
         Via: SIP/2.0/{} {};branch=z9hG4bKalive{n};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:{DOMAIN}>;tag=alive{n}\r\n\
         To: <sip:{DOMAIN}>\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: 1 OPTIONS\r\n\
         Content-Length: 0\r\n\r\n",
        conn.transport(),
        conn.local()
    );
    (text.into_bytes(), call_id)
}

/// What the server did with one message.
#[derive(Debug, Default)]
struct Observed {
    /// Final responses to the message, retransmissions left out.
    finals: Vec<u16>,
    /// The last of them.
    last: Option<Message>,
    /// The connection was closed.
    closed: bool,
    /// For silence: the log line about the drop.
    drop_log: Option<String>,
}

impl Observed {
    fn describe(&self) -> String {
        if self.closed {
            return format!("closed after {:?}", self.finals);
        }
        match (&self.last, &self.drop_log) {
            (Some(last), _) => format!(
                "{:?} (last: {} {})",
                self.finals,
                last.status().unwrap_or(0),
                last.reason().unwrap_or("")
            ),
            (None, Some(line)) => {
                let from = line.find(DROPPED).unwrap_or(0);
                format!("silence: {}", &line[from..])
            }
            (None, None) => "silence".to_owned(),
        }
    }
}

fn matches(expect: Expect, observed: &Observed) -> bool {
    match expect {
        Reply(status) => !observed.closed && observed.finals == [status],
        Replies(statuses) => !observed.closed && observed.finals == statuses,
        Silent(reason) => {
            !observed.closed
                && observed.finals.is_empty()
                && observed
                    .drop_log
                    .as_deref()
                    .is_some_and(|l| l.contains(reason))
        }
        Closed => observed.closed && observed.finals.is_empty(),
        ReplyThenClosed(status) => observed.closed && observed.finals == [status],
        OneOf(any) => any.iter().any(|e| matches(*e, observed)),
    }
}

/// Reads until the 200 to the ping with `call_id`; what comes first is the server's answer to
/// the message before the ping. `Err` when the server does not answer the ping.
fn collect(conn: &mut Conn, call_id: &str, observed: &mut Observed) -> Result<(), String> {
    let mut seen: Vec<Vec<u8>> = Vec::new();
    loop {
        let bytes = match conn.receive() {
            Received::Message(bytes) => bytes,
            Received::Closed => {
                observed.closed = true;
                return Ok(());
            }
            Received::Timeout => {
                return Err(format!(
                    "no answer to the liveness OPTIONS within {READ_TIMEOUT:?} (got {:?} before)",
                    observed.finals
                ));
            }
        };
        let message = Message::parse(&bytes, 1000).map_err(|e| {
            format!(
                "unparsable message from the server ({e}): {:?}",
                String::from_utf8_lossy(&bytes)
            )
        })?;
        let Some(status) = message.status() else {
            return Err(format!("a request from the server: {message:?}"));
        };
        if message.call_id() == Some(call_id) {
            if status < 200 {
                continue;
            }
            if status != 200 {
                return Err(format!("the liveness OPTIONS got {status}: {message:?}"));
            }
            return Ok(());
        }
        if seen.contains(&bytes) {
            continue; // a retransmission (an INVITE's final response over UDP)
        }
        seen.push(bytes);
        if status >= 200 {
            observed.finals.push(status);
            observed.last = Some(message);
        }
    }
}

/// Sends `bytes` on a new socket or connection, then the ping; returns what the server did.
fn exchange(server: &Server, transport: Transport, bytes: &[u8]) -> Result<Observed, String> {
    let mut conn = Conn::open(server, transport);
    let source = conn.local().to_string();
    let mut observed = Observed::default();
    if conn.send(bytes) {
        let (ping, call_id) = ping(&conn);
        if conn.send(&ping) {
            collect(&mut conn, &call_id, &mut observed)?;
        } else {
            observed.closed = true;
        }
    } else {
        observed.closed = true;
    }
    if observed.closed {
        // The server must still serve a new connection.
        let mut conn = Conn::open(server, transport);
        let (ping, call_id) = ping(&conn);
        assert!(conn.send(&ping), "send the liveness OPTIONS");
        let mut after = Observed::default();
        collect(&mut conn, &call_id, &mut after)?;
        if after.closed || !after.finals.is_empty() {
            return Err(format!(
                "a new connection after the close: {}",
                after.describe()
            ));
        }
    } else if observed.finals.is_empty() {
        let tag = format!("source={source} ");
        let line = server.wait_for_log_where(&format!("a drop logged for {source}"), |line| {
            line.contains(DROPPED) && line.contains(&tag)
        });
        observed.drop_log = Some(line);
    }
    Ok(observed)
}

/// `bytes` with an Authorization line answering `challenge`, the next CSeq and new branches.
fn with_credentials(case: &Case, original: &[u8], challenge: &Message, password: &str) -> Vec<u8> {
    let text = String::from_utf8(prepare(case, original)).expect("REGISTER cases are text");
    let (request_line, rest) = text.split_once("\r\n").expect("request line");
    let uri = request_line.split(' ').nth(1).expect("Request-URI");
    let header = authorization(
        challenge,
        Algorithm::Md5,
        EXTENSION,
        password,
        "REGISTER",
        uri,
    );
    let mut lines: Vec<String> = rest.split("\r\n").map(str::to_owned).collect();
    for line in &mut lines {
        if let Some(value) = line.strip_prefix("CSeq: ") {
            let (number, method) = value.split_once(' ').expect("CSeq");
            *line = format!("CSeq: {} {method}", number.parse::<u64>().unwrap() + 1);
        }
    }
    format!("{request_line}\r\n{header}{}", lines.join("\r\n")).into_bytes()
}

/// Runs one case over one transport: what the server did, or (`Err`) how it failed.
fn run(
    server: &Server,
    password: &str,
    case: &Case,
    transport: Transport,
) -> Result<String, String> {
    let path = format!("{CORPUS}/{}.dat", case.name);
    let original = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let expect = match transport {
        Transport::Udp => case.udp,
        _ => case.tcp,
    };
    let mut observed = exchange(server, transport, &prepare(case, &original))?;
    if case.register && observed.finals == [401] {
        let challenge = observed.last.take().unwrap();
        let authorized = with_credentials(case, &original, &challenge, password);
        observed = exchange(server, transport, &authorized)?;
        let cleanup = Client::connect(server, Transport::Udp).register(
            EXTENSION,
            password,
            Algorithm::Md5,
            "Contact: *\r\nExpires: 0\r\n",
        );
        assert_eq!(
            cleanup.status(),
            Some(200),
            "remove the bindings: {cleanup:?}"
        );
    }
    if !matches(expect, &observed) {
        return Err(format!("expected {expect:?}, got {}", observed.describe()));
    }
    if let (Some(check), Some(last)) = (case.check, &observed.last) {
        check(last)?;
    }
    Ok(observed.describe())
}

#[test]
fn every_corpus_file_has_a_case() {
    let mut files: Vec<String> = std::fs::read_dir(CORPUS)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter_map(|n| n.strip_suffix(".dat").map(str::to_owned))
        .collect();
    files.sort();
    let mut names: Vec<String> = CASES.iter().map(|c| c.name.to_owned()).collect();
    names.sort();
    assert_eq!(files, names);
    // 13 + 19 valid and invalid parser tests, 1 transaction-layer test, 15 application-layer
    // tests and 1 backward-compatibility test in RFC 4475; 12 messages in RFC 5118.
    assert_eq!(CASES.len(), 49 + 12);
}

#[test]
fn rfc4475_and_rfc5118_over_udp_and_tcp() {
    // Many cases are refused before authentication (another domain, Proxy-Require…), each a
    // failure toward a ban of ::1: the most the configuration allows keeps the run unbanned.
    let server = Server::start(
        "[limits]\npartial_message_timeout = 1\n[bans]\nfailures = 100\n[log]\nlevel = \"debug\"\n",
    );
    let password = server.user_add(EXTENSION, "Torture");
    let mut failures = Vec::new();
    let mut table = String::new();
    for case in CASES {
        for transport in [Transport::Udp, Transport::Tcp] {
            let outcome = panic::catch_unwind(AssertUnwindSafe(|| {
                run(&server, &password, case, transport)
            }))
            .unwrap_or_else(|panic| {
                let message = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_default();
                Err(format!("panicked: {message}"))
            });
            let verdict = match case.verdict {
                Valid => "valid",
                Invalid => "invalid",
            };
            let status = match &outcome {
                Ok(observed) => format!("ok: {observed}"),
                Err(e) => format!("FAIL {e}"),
            };
            table.push_str(&format!(
                "{:<30} {:<15} {:<7} {:<3} {status}\n",
                case.name,
                case.rfc,
                verdict,
                transport.name()
            ));
            if let Err(e) = outcome {
                failures.push(format!(
                    "{} ({}, {verdict}) over {}: {e}\n    expected because: {}",
                    case.name,
                    case.rfc,
                    transport.name(),
                    case.why
                ));
            }
        }
    }
    eprintln!("{table}");
    // Still alive after everything.
    let ok = Client::connect(&server, Transport::Udp).options();
    assert_eq!(ok.status(), Some(200));
    assert!(
        failures.is_empty(),
        "{} of {} torture runs failed:\n{}",
        failures.len(),
        CASES.len() * 2,
        failures.join("\n")
    );
}

/// An SRTP offer, which hotline requires of an INVITE.
const SRTP_OFFER: &str = "v=0\r\no=- 1 1 IN IP6 ::1\r\ns=-\r\nc=IN IP6 ::1\r\nt=0 0\r\n\
    m=audio 40000 RTP/SAVP 0\r\n\
    a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz\r\n";

/// The sequel of regescrt (RFC 4475 §3.3.14) and escruri (§3.1.2.11): a binding may carry an
/// escaped header (and a `method` parameter), but a proxy that sends a request to it must take
/// them out of the Request-URI (RFC 3261 §16.6 step 2; §19.1.1 Table 1 allows neither there).
#[test]
fn escaped_headers_of_a_binding_stay_out_of_forwarded_request_uris() {
    let server = Server::start("");
    let callee = server.user_add("1000", "Callee");
    let caller = server.user_add("1001", "Caller");
    let mut phone = Client::connect(&server, Transport::Udp);
    let contact = phone
        .contact("1000")
        .replace('>', ";method=BYE?Route=%3Csip:elsewhere.example.org%3E>");
    let registered = phone.register(
        "1000",
        &callee,
        Algorithm::Md5,
        &format!("Contact: {contact}\r\n"),
    );
    assert_eq!(registered.status(), Some(200), "{registered:?}");

    let mut client = Client::connect(&server, Transport::Udp);
    let uri = format!("sip:1000@{DOMAIN}");
    let invite = |client: &mut Client, credentials: &str| {
        client
            .request("INVITE", &uri, &format!("sip:1001@{DOMAIN}"), credentials)
            .replacen(
                &format!("To: <sip:1001@{DOMAIN}>"),
                &format!("To: <{uri}>"),
                1,
            )
            .replace(
                "Content-Length: 0\r\n\r\n",
                &format!(
                    "Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{SRTP_OFFER}",
                    SRTP_OFFER.len()
                ),
            )
    };
    let first = invite(&mut client, "");
    client.send_raw(first.as_bytes());
    let challenge = loop {
        let response = client.recv();
        if response.status() != Some(100) {
            break response;
        }
    };
    assert_eq!(challenge.status(), Some(407), "{challenge:?}");
    let credentials = authorization(&challenge, Algorithm::Md5, "1001", &caller, "INVITE", &uri);
    let second = invite(&mut client, &credentials);
    client.send_raw(second.as_bytes());
    let forwarded = phone.recv();
    assert_eq!(forwarded.method_text(), Some("INVITE"), "{forwarded:?}");
    let target = forwarded.request_uri().unwrap();
    assert!(
        !target.contains('?') && !target.contains("method="),
        "forwarded Request-URI {target}"
    );
}
