//! What a request costs between parsing and the reply: the sanity check, the transaction key and
//! the table of answered requests (at its configured size), and the proxy's routing decision for
//! an INVITE to a registered phone (407 challenge, then the authenticated INVITE forwarded).
//! Each benchmark handles one request, so the throughput line is requests per second.

mod common;

use std::hint::black_box;
use std::time::{Duration, Instant};

use common::{at, exchange};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use hotline::core::auth::{Algorithm, ResponseInput, response_hex};
use hotline::core::sanity;
use hotline::core::transaction::{Key, ServerTransactions};
use hotline::core::user::{Extension, User};
use hotline::core::{Core, Flow, Inbound, Settings, Transmit};
use hotline::sip::{Message, Transport};

const T0: u64 = 1_800_000_000_000;
const DOMAIN: &str = "hotline.test";
const PASSWORD: &str = "4061528397106253840192837465019283746501";
const CALLER: &str = "1000";
const CALLEE: &str = "1001";
const MAX_HEADERS: usize = 64;
/// Authenticated INVITEs handled by one fresh core: every call leaves its transactions behind,
/// so the tables grow to this size during a batch, as under a sustained call rate.
const CALLS_PER_CORE: u64 = 2000;

/// An SRTP offer as SIPp's caller sends it.
const SDP: &str = "v=0\r\no=user1 53655765 2353687637 IN IP6 2001:db8::a\r\ns=-\r\n\
c=IN IP6 2001:db8::a\r\nt=0 0\r\nm=audio 6000 RTP/SAVP 0\r\n\
a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz\r\n\
a=rtpmap:0 PCMU/8000\r\n";

fn flow(address: &str) -> Flow {
    Flow {
        transport: Transport::Udp,
        remote: address.parse().unwrap(),
        connection: None,
    }
}

fn caller() -> Flow {
    flow("[2001:db8::a]:5070")
}

fn callee() -> Flow {
    flow("[2001:db8::b]:5080")
}

fn user(extension: &str) -> User {
    User::new(
        Extension::parse(extension).unwrap(),
        "Bench",
        DOMAIN,
        PASSWORD,
    )
}

/// A core with 1,000 users and flood limits out of the way (all requests come from two phones).
fn core() -> Core {
    let mut settings = Settings {
        domain: DOMAIN.to_owned(),
        ..Settings::default()
    };
    settings.flood.per_address = u32::MAX;
    settings.flood.per_prefix.clear();
    let users = (1000..2000).map(|n| user(&n.to_string())).collect();
    let listeners = vec![(Transport::Udp, "[2001:db8::1]:5060".parse().unwrap())];
    Core::new(
        settings,
        listeners,
        [7; 32],
        users,
        Vec::new(),
        Vec::new(),
        at(T0),
    )
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Digest credentials of `extension` (MD5, qop=auth) for `nonce` and nonce-count `nc`.
fn credentials(extension: &str, nonce: &str, nc: u64, method: &str, uri: &str) -> String {
    let nc = format!("{nc:08x}");
    let response = response_hex(&ResponseInput {
        algorithm: Algorithm::Md5,
        ha1_hex: &hex(&user(extension).ha1_md5),
        nonce,
        nc: &nc,
        cnonce: "a8f3c1d2",
        qop: "auth",
        method,
        uri,
    });
    format!(
        "Digest username=\"{extension}\", realm=\"{DOMAIN}\", nonce=\"{nonce}\", uri=\"{uri}\", \
         response=\"{response}\", algorithm=MD5, cnonce=\"a8f3c1d2\", nc={nc}, qop=auth"
    )
}

fn register(branch: &str, cseq: u64, authorization: Option<&str>) -> String {
    let authorization = authorization
        .map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default();
    format!(
        "REGISTER sip:{DOMAIN} SIP/2.0\r\n\
         Via: SIP/2.0/UDP [2001:db8::b]:5080;branch=z9hG4bK-{branch};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:{CALLEE}@{DOMAIN}>;tag=reg\r\nTo: <sip:{CALLEE}@{DOMAIN}>\r\n\
         Call-ID: reg-1001@2001:db8::b\r\nCSeq: {cseq} REGISTER\r\n\
         Contact: <sip:{CALLEE}@[2001:db8::b]:5080>\r\nExpires: 3600\r\n\
         {authorization}Content-Length: 0\r\n\r\n"
    )
}

/// A call's INVITE from 1000 to 1001 as SIPp's caller sends it, with its own branch and Call-ID.
fn invite(call: u64, cseq: u32, authorization: Option<&str>) -> String {
    let authorization = authorization
        .map(|a| format!("Proxy-Authorization: {a}\r\n"))
        .unwrap_or_default();
    format!(
        "INVITE sip:{CALLEE}@{DOMAIN} SIP/2.0\r\n\
         Via: SIP/2.0/UDP [2001:db8::a]:5070;branch=z9hG4bK-{call}-{cseq};rport\r\n\
         From: <sip:{CALLER}@{DOMAIN}>;tag={call}\r\nTo: <sip:{CALLEE}@{DOMAIN}>\r\n\
         Call-ID: {call}-bench@2001:db8::a\r\nCSeq: {cseq} INVITE\r\n\
         Contact: <sip:{CALLER}@[2001:db8::a]:5070>\r\nMax-Forwards: 70\r\n\
         Subject: Performance Test\r\n{authorization}\
         Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{SDP}",
        SDP.len()
    )
}

/// Hands one message to the core and returns what it sends.
fn handle(core: &mut Core, flow: Flow, bytes: &[u8], now: u64) -> Vec<Transmit> {
    let mut sent = Vec::new();
    exchange(core, Inbound { bytes, flow }, now, &mut sent);
    sent
}

/// The nonce of the challenge header `name` in the response with `status` among `actions`.
fn challenge_nonce(actions: &[Transmit], status: u16, name: &str) -> String {
    let response = actions
        .iter()
        .map(|Transmit { bytes, .. }| Message::parse(bytes, MAX_HEADERS).unwrap())
        .find(|response| response.status() == Some(status))
        .unwrap_or_else(|| panic!("no {status} in {actions:?}"));
    let (_, _, value) = response
        .all_headers()
        .find(|(_, n, _)| n.eq_ignore_ascii_case(name))
        .expect("a challenge");
    let nonce = value.split_once("nonce=\"").unwrap().1;
    nonce.split_once('"').unwrap().0.to_owned()
}

/// Binds the callee's contact through the registrar, as the phone would.
fn bind_callee(core: &mut Core, now: u64) {
    let actions = handle(core, callee(), register("r1", 1, None).as_bytes(), now);
    let nonce = challenge_nonce(&actions, 401, "WWW-Authenticate");
    let authorization = credentials(CALLEE, &nonce, 1, "REGISTER", &format!("sip:{DOMAIN}"));
    let actions = handle(
        core,
        callee(),
        register("r2", 2, Some(&authorization)).as_bytes(),
        now,
    );
    let [Transmit { bytes, .. }] = actions.as_slice() else {
        panic!("one response expected, got {actions:?}");
    };
    assert!(bytes.starts_with(b"SIP/2.0 200 "));
}

fn sanity_check(c: &mut Criterion) {
    let mut group = c.benchmark_group("sanity");
    group.throughput(Throughput::Elements(1));
    let register = register("r1", 1, Some(&credentials(CALLEE, "0", 1, "REGISTER", "x")));
    let invite = invite(1, 2, Some(&credentials(CALLER, "0", 1, "INVITE", "x")));
    for (name, text) in [("register", &register), ("invite", &invite)] {
        let message = Message::parse(text.as_bytes(), MAX_HEADERS).unwrap();
        assert_eq!(sanity::check(&message, 70, false), Ok(()));
        group.bench_function(name, |b| {
            b.iter(|| sanity::check(black_box(&message), 70, false))
        });
    }
    group.finish();
}

fn transactions(c: &mut Criterion) {
    let mut group = c.benchmark_group("transaction");
    group.throughput(Throughput::Elements(1));
    let invite = invite(1, 2, None);
    let message = Message::parse(invite.as_bytes(), MAX_HEADERS).unwrap();
    let via = message.top_via().unwrap();
    group.bench_function("key_of/invite", |b| {
        b.iter(|| Key::of(black_box(&message), black_box(&via)))
    });

    // The table of answered requests full at its default capacity, as under a REGISTER load.
    let capacity = Settings::default().max_transactions;
    let mut table = ServerTransactions::new(capacity);
    let keys: Vec<Key> = (0..capacity as u64)
        .map(|n| {
            let text = register(&format!("{n:016x}"), 1, None);
            let message = Message::parse(text.as_bytes(), MAX_HEADERS).unwrap();
            Key::of(&message, &message.top_via().unwrap()).unwrap()
        })
        .collect();
    for key in &keys {
        table.complete(*key, vec![0; 400], T0);
    }
    assert_eq!(table.len(), capacity);
    let miss = Key::of(&message, &via).unwrap();
    let mut n = 0;
    group.bench_function(format!("lookup_hit/{capacity}"), |b| {
        b.iter(|| {
            n = (n + 7919) % keys.len();
            assert!(table.response(black_box(&keys[n])).is_some());
        })
    });
    group.bench_function(format!("lookup_miss/{capacity}"), |b| {
        b.iter(|| assert!(table.response(black_box(&miss)).is_none()))
    });
    // A miss and then the answer stored, evicting the oldest: a new REGISTER over UDP.
    let mut branch = capacity as u64;
    group.bench_function(format!("complete_full/{capacity}"), |b| {
        b.iter_batched(
            || {
                branch += 1;
                let text = register(&format!("{branch:016x}"), 1, None);
                let message = Message::parse(text.as_bytes(), MAX_HEADERS).unwrap();
                Key::of(&message, &message.top_via().unwrap()).unwrap()
            },
            |key| {
                assert!(table.response(&key).is_none());
                table.complete(key, vec![0; 400], T0);
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

/// Times `n` INVITEs from the caller handled by a fresh core with the callee registered: with
/// credentials (each with the next nonce-count) or without. Returns the time and how many
/// requests were forwarded to the callee and how many challenged.
fn place_calls(n: u64, authenticated: bool) -> (Duration, usize, usize) {
    let mut core = core();
    bind_callee(&mut core, T0);
    let actions = handle(&mut core, caller(), invite(0, 1, None).as_bytes(), T0);
    let nonce = challenge_nonce(&actions, 407, "Proxy-Authenticate");
    let uri = format!("sip:{CALLEE}@{DOMAIN}");
    let requests: Vec<String> = (1..=n)
        .map(|call| {
            if authenticated {
                let authorization = credentials(CALLER, &nonce, call, "INVITE", &uri);
                invite(call, 2, Some(&authorization))
            } else {
                invite(call, 1, None)
            }
        })
        .collect();
    let mut actions = Vec::new();
    let start = Instant::now();
    for request in &requests {
        let inbound = Inbound {
            bytes: black_box(request.as_bytes()),
            flow: caller(),
        };
        exchange(&mut core, inbound, T0 + 10, &mut actions);
    }
    let elapsed = start.elapsed();
    let forwarded = actions
        .iter()
        .filter(|Transmit { flow, .. }| *flow == callee())
        .count();
    let challenged = actions
        .iter()
        .filter(|Transmit { bytes, .. }| bytes.starts_with(b"SIP/2.0 407 "))
        .count();
    (elapsed, forwarded, challenged)
}

fn routing(c: &mut Criterion) {
    let mut group = c.benchmark_group("route");
    group.throughput(Throughput::Elements(1));
    // Each batch starts from a fresh core, so that the transaction tables hold up to
    // CALLS_PER_CORE calls, not everything criterion ever sent.
    let cases = [("invite_challenge_407", false), ("invite_forward", true)];
    for (name, authenticated) in cases {
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut elapsed = Duration::ZERO;
                let mut left = iters;
                while left > 0 {
                    let n = left.min(CALLS_PER_CORE);
                    left -= n;
                    let (time, forwarded, challenged) = place_calls(n, authenticated);
                    let expected = if authenticated { (n, 0) } else { (0, n) };
                    assert_eq!((forwarded as u64, challenged as u64), expected);
                    elapsed += time;
                }
                elapsed
            })
        });
    }
    group.finish();
}

criterion_group!(benches, sanity_check, transactions, routing);
criterion_main!(benches);
