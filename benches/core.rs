//! The core's REGISTER path as the network layer drives it (one datagram in, one response out),
//! and Digest verification alone. Each benchmark handles one request, so the throughput line is
//! requests per second.
//!
//! Every request carries a fresh branch (a retransmission would be answered from the transaction
//! table instead), and each authenticated one a higher CSeq and nonce-count (a replayed
//! nonce-count is refused), so the requests are built outside the measured routine.

mod common;

use std::hint::black_box;
use std::time::{Duration, Instant};

use common::{at, exchange};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use hotline::core::auth::{
    Algorithm, Attempt, Authenticator, Credentials, Peer, ResponseInput, Verdict,
    parse_credentials, response_hex,
};
use hotline::core::user::{Extension, User};
use hotline::core::{Core, Event, Flow, Inbound, Output, Settings, Transmit};
use hotline::sip::{HeaderName, Message, Transport};

const T0: u64 = 1_800_000_000_000;
const DOMAIN: &str = "hotline.test";
const REQUEST_URI: &str = "sip:hotline.test";
const EXTENSION: &str = "1000";
const PASSWORD: &str = "4061528397106253840192837465019283746501";
const SECRET: [u8; 32] = [7; 32];
/// Verification benchmarks build their inputs in chunks of this many, to bound memory.
const CHUNK: u64 = 4096;

/// Every request comes from one address: without flood limits, as in the proxy benchmarks; both
/// algorithms offered, so that SHA-256 (opt-in) is measured too.
fn settings() -> Settings {
    let mut settings = Settings {
        domain: DOMAIN.to_owned(),
        ..Settings::default()
    };
    settings.auth.algorithms = vec![Algorithm::Md5, Algorithm::Sha256];
    settings.flood.per_address = u32::MAX;
    settings.flood.per_prefix.clear();
    settings
}

/// A core with 1,000 users, as a small network has.
fn core() -> Core {
    let users = (1000..2000)
        .map(|n| {
            let extension = Extension::parse(&n.to_string()).unwrap();
            User::new(extension, "Bench", DOMAIN, PASSWORD)
        })
        .collect();
    let listeners = vec![(Transport::Udp, "[::1]:5060".parse().expect("an address"))];
    Core::new(
        settings(),
        listeners,
        SECRET,
        users,
        Vec::new(),
        Vec::new(),
        at(T0),
    )
}

fn user() -> User {
    User::new(
        Extension::parse(EXTENSION).unwrap(),
        "Bench",
        DOMAIN,
        PASSWORD,
    )
}

fn flow() -> Flow {
    Flow {
        transport: Transport::Udp,
        remote: "[2001:db8:1:2::5]:5060".parse().unwrap(),
        connection: None,
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A REGISTER as a desk phone sends it, with a unique branch.
fn register(branch: u64, cseq: u64, authorization: Option<&str>) -> String {
    let authorization = authorization
        .map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default();
    format!(
        "REGISTER {REQUEST_URI} SIP/2.0\r\n\
         Via: SIP/2.0/UDP [2001:db8:1:2::5]:5060;branch=z9hG4bK-bench-{branch:016x};rport\r\n\
         Max-Forwards: 70\r\n\
         Contact: <sip:{EXTENSION}@[2001:db8:1:2::5]:5060;transport=udp>\r\n\
         To: <sip:{EXTENSION}@{DOMAIN}>\r\n\
         From: \"Alice\" <sip:{EXTENSION}@{DOMAIN}>;tag=9f3c2a71\r\n\
         Call-ID: 6d1e0c9a4b7f2e58@2001:db8:1:2::5\r\n\
         CSeq: {cseq} REGISTER\r\n\
         Expires: 3600\r\n\
         Allow: INVITE, ACK, CANCEL, BYE, NOTIFY, REFER, OPTIONS, INFO, UPDATE, MESSAGE\r\n\
         Supported: path, replaces\r\n\
         User-Agent: Yealink SIP-T46U 108.86.0.20\r\n\
         {authorization}Content-Length: 0\r\n\r\n"
    )
}

/// The `Authorization` value a phone answers `nonce` with, using nonce-count `nc`.
fn authorization(user: &User, algorithm: Algorithm, nonce: &str, nc: u32) -> String {
    let ha1 = match algorithm {
        Algorithm::Md5 => hex(&user.ha1_md5),
        Algorithm::Sha256 => hex(&user.ha1_sha256),
    };
    let nc = format!("{nc:08x}");
    let response = response_hex(&ResponseInput {
        algorithm,
        ha1_hex: &ha1,
        nonce,
        nc: &nc,
        cnonce: "a8f3c1d2",
        qop: "auth",
        method: "REGISTER",
        uri: REQUEST_URI,
    });
    format!(
        "Digest username=\"{}\", realm=\"{DOMAIN}\", nonce=\"{nonce}\", uri=\"{REQUEST_URI}\", \
         response=\"{response}\", algorithm={}, cnonce=\"a8f3c1d2\", nc={nc}, qop=auth",
        user.extension,
        algorithm.as_str()
    )
}

/// Hands one datagram to the core and returns the response it sends.
fn handle<'a>(core: &mut Core, bytes: &[u8], now: u64, actions: &'a mut Vec<Transmit>) -> &'a [u8] {
    actions.clear();
    let input = Inbound {
        bytes,
        flow: flow(),
    };
    exchange(core, input, now, actions);
    let [Transmit { bytes, .. }] = actions.as_slice() else {
        panic!("one response expected, got {actions:?}");
    };
    bytes
}

fn status(response: &[u8]) -> u16 {
    Message::parse(response, 64).unwrap().status().unwrap()
}

/// The nonce of the first (MD5) challenge in a 401.
fn nonce_of(response: &[u8]) -> String {
    let message = Message::parse(response, 64).unwrap();
    let challenge = message
        .all_headers()
        .find(|(_, name, _)| name.eq_ignore_ascii_case("WWW-Authenticate"))
        .expect("a challenge")
        .2;
    let nonce = challenge.split_once("nonce=\"").unwrap().1;
    nonce.split_once('"').unwrap().0.to_owned()
}

fn register_path(c: &mut Criterion) {
    let mut group = c.benchmark_group("core");
    group.throughput(Throughput::Elements(1));

    // (a) REGISTER without credentials → 401 with one challenge per algorithm.
    {
        let mut core = core();
        let mut actions = Vec::new();
        let first = register(0, 1, None);
        let response = handle(&mut core, first.as_bytes(), T0, &mut actions);
        assert_eq!(
            status(response),
            401,
            "{}",
            String::from_utf8_lossy(response)
        );
        let mut branch = 0;
        group.bench_function("register_challenge_401", |b| {
            b.iter_batched_ref(
                || {
                    branch += 1;
                    register(branch, 1, None)
                },
                |request| {
                    let response =
                        handle(&mut core, black_box(request.as_bytes()), T0, &mut actions);
                    assert!(response.starts_with(b"SIP/2.0 401 "));
                },
                BatchSize::SmallInput,
            )
        });
    }

    // (b) REGISTER with valid credentials → 200, refreshing the phone's binding: the same nonce
    // with a growing nonce-count and CSeq, as phones re-register.
    for algorithm in [Algorithm::Md5, Algorithm::Sha256] {
        let mut core = core();
        let user = user();
        let mut actions = Vec::new();
        let challenge = handle(&mut core, register(0, 1, None).as_bytes(), T0, &mut actions);
        let nonce = nonce_of(challenge);
        let now = T0 + 10;
        let mut count: u32 = 1;
        let first = register(1, 2, Some(&authorization(&user, algorithm, &nonce, count)));
        let response = handle(&mut core, first.as_bytes(), now, &mut actions);
        let ok = Message::parse(response, 64).unwrap();
        assert_eq!(ok.status(), Some(200), "{ok:?}");
        assert_eq!(ok.values(HeaderName::Contact).count(), 1);
        let name = format!("register_ok_200/{}", algorithm.as_str());
        group.bench_function(name, |b| {
            b.iter_batched_ref(
                || {
                    count += 1;
                    let credentials = authorization(&user, algorithm, &nonce, count);
                    register(u64::from(count), u64::from(count) + 1, Some(&credentials))
                },
                |request| {
                    let response =
                        handle(&mut core, black_box(request.as_bytes()), now, &mut actions);
                    assert!(response.starts_with(b"SIP/2.0 200 "));
                },
                BatchSize::SmallInput,
            )
        });
        // The binding was refreshed, not multiplied.
        core.flush_bindings();
        let Output::Event(Event::BindingsChanged(changed)) = core.poll_output() else {
            panic!("changed bindings expected");
        };
        assert_eq!(changed[0].1.len(), 1);
    }

    // A retransmitted REGISTER, answered from the transaction table.
    {
        let mut core = core();
        let mut actions = Vec::new();
        let request = register(1, 1, None);
        handle(&mut core, request.as_bytes(), T0, &mut actions);
        group.bench_function("register_retransmission", |b| {
            b.iter(|| {
                let response = handle(&mut core, black_box(request.as_bytes()), T0, &mut actions);
                assert!(response.starts_with(b"SIP/2.0 401 "));
            })
        });
    }
    group.finish();
}

fn digest(c: &mut Criterion) {
    let mut group = c.benchmark_group("digest");
    group.throughput(Throughput::Elements(1));
    let user = user();
    let header = authorization(&user, Algorithm::Md5, &"0".repeat(56), 1);
    group.bench_function("parse_credentials", |b| {
        b.iter(|| parse_credentials(black_box(&header)).unwrap())
    });

    for algorithm in [Algorithm::Md5, Algorithm::Sha256] {
        let mut auth = Authenticator::new(
            SECRET,
            vec![Algorithm::Md5, Algorithm::Sha256],
            Duration::from_secs(300),
            4096,
            T0,
        );
        let peer = Peer::new("2001:db8::a".parse().unwrap(), Transport::Udp);
        let nonce = auth.challenges(DOMAIN, &peer, T0, false)[0].nonce.clone();
        let now = T0 + 10;
        let mut count: u32 = 0;
        let name = format!("verify/{}", algorithm.as_str());
        // Credentials borrow from their header text, so a chunk of headers is built and parsed
        // first, then only the verification of each is timed.
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut elapsed = Duration::ZERO;
                let mut left = iters;
                while left > 0 {
                    let n = left.min(CHUNK);
                    left -= n;
                    let headers: Vec<String> = (0..n)
                        .map(|_| {
                            count += 1;
                            authorization(&user, algorithm, &nonce, count)
                        })
                        .collect();
                    let credentials: Vec<Credentials<'_>> = headers
                        .iter()
                        .map(|h| parse_credentials(h).unwrap())
                        .collect();
                    let mut authenticated = 0;
                    let start = Instant::now();
                    for credentials in &credentials {
                        let attempt = Attempt {
                            method: "REGISTER",
                            request_uri: REQUEST_URI,
                            realm: DOMAIN,
                            client: peer,
                        };
                        let verdict =
                            auth.verify(black_box(credentials), &attempt, Some(&user), now);
                        authenticated += u64::from(black_box(verdict) == Verdict::Authenticated);
                    }
                    elapsed += start.elapsed();
                    assert_eq!(authenticated, n);
                }
                elapsed
            })
        });
    }
    group.finish();
}

criterion_group!(benches, register_path, digest);
criterion_main!(benches);
