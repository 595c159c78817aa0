//! The core driven like the network layer drives it, with simulated time.

use std::net::SocketAddr;

use super::auth::{Algorithm, ResponseInput, response_hex};
use super::*;

const T0: u64 = 1_800_000_000_000;
pub(super) const DOMAIN: &str = "hotline.test";
pub(super) const PASSWORD: &str = "1234567890";

/// Both algorithms offered, so that SHA-256 (opt-in) is tested too.
fn settings() -> Settings {
    Settings {
        domain: DOMAIN.to_owned(),
        auth: auth::Settings {
            algorithms: vec![Algorithm::Md5, Algorithm::Sha256],
            ..auth::Settings::default()
        },
        ..Settings::default()
    }
}

/// Both clocks at `ms`: the tests that do not step the wall clock keep the two together.
pub(super) fn at(ms: u64) -> Now {
    Now {
        instant: Instant::from_millis(ms),
        wall_ms: ms,
    }
}

impl Core {
    /// The transmits [`Core::poll_output`] would give; events stay queued.
    pub(super) fn take_transmits(&mut self) -> Vec<Transmit> {
        self.transmits.drain(..).collect()
    }

    /// The events [`Core::poll_output`] would give; transmits stay queued.
    pub(super) fn take_events(&mut self) -> Vec<Event> {
        self.events.drain(..).collect()
    }

    /// The bindings changed since the last batch, flushed now; other events stay queued.
    pub(super) fn take_changed_bindings(&mut self) -> Vec<(Extension, Vec<Binding>)> {
        self.flush_bindings();
        let mut changed = Vec::new();
        self.events.retain(|event| match event {
            Event::BindingsChanged(batch) => {
                changed.extend(batch.iter().cloned());
                false
            }
            _ => true,
        });
        changed
    }

    /// The stream connections that authenticated since the last call; other events stay queued.
    pub(super) fn take_authenticated(&mut self) -> Vec<ConnectionId> {
        let mut connections = Vec::new();
        self.events.retain(|event| match event {
            Event::Authenticated(connection) => {
                connections.push(*connection);
                false
            }
            _ => true,
        });
        connections
    }

    /// The bans added since the last call; other events stay queued.
    pub(super) fn take_new_bans(&mut self) -> Vec<Ban> {
        let mut bans = Vec::new();
        self.events.retain(|event| match event {
            Event::BanAdded(ban) => {
                bans.push(ban.clone());
                false
            }
            _ => true,
        });
        bans
    }
}

fn core() -> Core {
    let users = vec![
        User::new(Extension::parse("1000").unwrap(), "Alice", DOMAIN, PASSWORD),
        User::new(Extension::parse("1001").unwrap(), "Bob", DOMAIN, PASSWORD),
    ];
    Core::new(
        settings(),
        listeners(),
        [7; 32],
        users,
        Vec::new(),
        Vec::new(),
        at(T0),
    )
}

fn listeners() -> Vec<(Transport, SocketAddr)> {
    vec![
        (Transport::Udp, "[2001:db8::1]:5060".parse().unwrap()),
        (Transport::Tcp, "[2001:db8::1]:5060".parse().unwrap()),
        (Transport::Tls, "[2001:db8::1]:5061".parse().unwrap()),
    ]
}

fn flow(transport: Transport) -> Flow {
    Flow {
        transport,
        remote: "[2001:db8::5]:5070".parse().unwrap(),
        connection: None,
    }
}

/// Sends `text` and returns the one response, parsed.
fn exchange(core: &mut Core, text: &str, now: u64) -> Message {
    exchange_over(core, text, now, flow(Transport::Udp))
}

/// Sends `text` over `flow` and returns the one response, parsed.
fn exchange_over(core: &mut Core, text: &str, now: u64, flow: Flow) -> Message {
    core.handle(
        Inbound {
            bytes: text.as_bytes(),
            flow,
        },
        at(now),
    );
    let actions = core.take_transmits();
    assert_eq!(actions.len(), 1, "one response to {text}");
    let Transmit { bytes, .. } = &actions[0];
    Message::parse(bytes, 64).unwrap()
}

fn silent(core: &mut Core, bytes: &[u8]) {
    let inbound = Inbound {
        bytes,
        flow: flow(Transport::Udp),
    };
    core.handle(inbound, at(T0));
    let actions = core.take_transmits();
    assert!(
        actions.is_empty(),
        "no reply to {}",
        String::from_utf8_lossy(bytes)
    );
}

struct Phone {
    user: &'static str,
    password: &'static str,
    cseq: u32,
    branch: u32,
    nc: u32,
}

impl Phone {
    fn new(user: &'static str) -> Phone {
        Phone {
            user,
            password: PASSWORD,
            cseq: 0,
            branch: 0,
            nc: 0,
        }
    }

    fn register(&mut self, extra: &str, authorization: Option<&str>) -> String {
        self.cseq += 1;
        self.branch += 1;
        let auth = authorization
            .map(|a| format!("Authorization: {a}\r\n"))
            .unwrap_or_default();
        format!(
            "REGISTER sip:{DOMAIN} SIP/2.0\r\n\
             Via: SIP/2.0/UDP [2001:db8::5]:5070;branch=z9hG4bK{}-{};rport\r\n\
             Max-Forwards: 70\r\nFrom: <sip:{u}@{DOMAIN}>;tag=ft\r\nTo: <sip:{u}@{DOMAIN}>\r\n\
             Call-ID: call-{u}\r\nCSeq: {} REGISTER\r\n\
             Contact: <sip:{u}@[2001:db8::5]:5070>\r\n{extra}{auth}Content-Length: 0\r\n\r\n",
            self.user,
            self.branch,
            self.cseq,
            u = self.user,
        )
    }

    /// Answers the challenge of `response` with the given algorithm.
    fn credentials(&mut self, response: &Message, algorithm: Algorithm) -> String {
        let challenge = challenges(response)
            .into_iter()
            .find(|v| v.contains(&format!("algorithm={},", algorithm.as_str())))
            .expect("a challenge for the algorithm");
        self.nc += 1;
        let uri = format!("sip:{DOMAIN}");
        answer(
            challenge,
            algorithm,
            self.user,
            self.password,
            "REGISTER",
            &uri,
            self.nc,
        )
    }
}

/// Credentials for a Digest challenge header value, computed the way a phone does.
pub(super) fn answer(
    challenge: &str,
    algorithm: Algorithm,
    user: &str,
    password: &str,
    method: &str,
    uri: &str,
    nc: u32,
) -> String {
    let nonce = challenge
        .split_once("nonce=\"")
        .and_then(|(_, rest)| rest.split_once('"'))
        .expect("a nonce")
        .0;
    let ha1 = hash(algorithm, &format!("{user}:{DOMAIN}:{password}"));
    let nc = format!("{nc:08x}");
    let digest = response_hex(&ResponseInput {
        algorithm,
        ha1_hex: &ha1,
        nonce,
        nc: &nc,
        cnonce: "c0ffee",
        qop: "auth",
        method,
        uri,
    });
    format!(
        "Digest username=\"{user}\", realm=\"{DOMAIN}\", nonce=\"{nonce}\", uri=\"{uri}\", \
         response=\"{digest}\", algorithm={}, cnonce=\"c0ffee\", nc={nc}, qop=auth",
        algorithm.as_str()
    )
}

fn hash(algorithm: Algorithm, text: &str) -> String {
    let bytes: Vec<u8> = match algorithm {
        Algorithm::Md5 => {
            use md5::Digest as _;
            md5::Md5::digest(text.as_bytes()).to_vec()
        }
        Algorithm::Sha256 => ring::digest::digest(&ring::digest::SHA256, text.as_bytes())
            .as_ref()
            .to_vec(),
    };
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn challenges(response: &Message) -> Vec<&str> {
    challenges_of(response, "WWW-Authenticate")
}

/// The values of the challenge headers called `name`, in order.
pub(super) fn challenges_of<'m>(response: &'m Message, name: &str) -> Vec<&'m str> {
    response
        .all_headers()
        .filter(|(_, n, _)| *n == name)
        .map(|(_, _, value)| value)
        .collect()
}

#[test]
fn register_is_challenged_then_accepted_with_either_algorithm() {
    for algorithm in [Algorithm::Sha256, Algorithm::Md5] {
        let mut core = core();
        let mut phone = Phone::new("1000");
        let challenge = exchange(&mut core, &phone.register("", None), T0);
        assert_eq!(challenge.status(), Some(401));
        let offered = challenges(&challenge);
        assert_eq!(offered.len(), 2);
        assert!(offered[0].contains("algorithm=MD5") && offered[1].contains("algorithm=SHA-256"));
        assert!(
            offered
                .iter()
                .all(|c| c.contains("qop=\"auth\"") && c.contains("realm=\"hotline.test\""))
        );

        let credentials = phone.credentials(&challenge, algorithm);
        let ok = exchange(&mut core, &phone.register("", Some(&credentials)), T0 + 10);
        assert_eq!(ok.status(), Some(200), "{algorithm:?}");
        let contacts: Vec<_> = ok.values(HeaderName::Contact).collect();
        assert_eq!(contacts, ["<sip:1000@[2001:db8::5]:5070>;expires=3600"]);
        assert_eq!(
            ok.header(HeaderName::Via),
            Some(
                "SIP/2.0/UDP [2001:db8::5]:5070;branch=z9hG4bK1000-2;rport=5070;received=2001:db8::5"
            )
        );
        let changed = core.take_changed_bindings();
        assert_eq!(changed.len(), 1);
        assert_eq!(changed[0].1[0].contact, "sip:1000@[2001:db8::5]:5070");
    }
}

#[test]
fn a_port_of_hotline_over_the_other_transport_is_a_phone_like_any() {
    // TLS listens on TCP 5061; UDP 5061 of the same address is another socket, a phone's (the
    // kernel may give a client any free number, even one of a listener of the other transport).
    for (transport, status) in [(Transport::Udp, 200), (Transport::Tcp, 403)] {
        let mut core = core();
        let mut phone = Phone::new("1000");
        let from = Flow {
            transport,
            remote: "[2001:db8::1]:5061".parse().unwrap(),
            connection: None,
        };
        let challenge = exchange_over(&mut core, &phone.register("", None), T0, from);
        let credentials = phone.credentials(&challenge, Algorithm::Md5);
        let register = phone.register("", Some(&credentials));
        let answer = exchange_over(&mut core, &register, T0 + 10, from);
        assert_eq!(answer.status(), Some(status), "{transport:?}");
    }
}

#[test]
fn wrong_password_and_unknown_user_get_the_same_refusal() {
    let mut core = core();
    let mut refusals = Vec::new();
    for (user, password) in [("1000", "wrong"), ("1999", PASSWORD)] {
        let mut phone = Phone::new(user);
        phone.password = password;
        let challenge = exchange(&mut core, &phone.register("", None), T0);
        let credentials = phone.credentials(&challenge, Algorithm::Sha256);
        let refusal = exchange(&mut core, &phone.register("", Some(&credentials)), T0);
        refusals.push((
            refusal.status(),
            refusal.reason().map(str::to_owned),
            refusal.all_headers().count(),
        ));
    }
    assert_eq!(refusals[0], (Some(403), Some("Forbidden".to_owned()), 6));
    assert_eq!(refusals[0], refusals[1]);
    assert!(core.take_changed_bindings().is_empty());
}

#[test]
fn a_user_may_register_only_their_own_extension() {
    let mut core = core();
    let mut phone = Phone::new("1000");
    let challenge = exchange(&mut core, &phone.register("", None), T0);
    let credentials = phone.credentials(&challenge, Algorithm::Md5);
    let text = phone
        .register("", Some(&credentials))
        .replace("To: <sip:1000@", "To: <sip:1001@");
    assert_eq!(exchange(&mut core, &text, T0).status(), Some(403));
}

#[test]
fn retransmissions_get_the_same_response_without_reprocessing() {
    let mut core = core();
    let mut phone = Phone::new("1000");
    let challenge = exchange(&mut core, &phone.register("", None), T0);
    let credentials = phone.credentials(&challenge, Algorithm::Md5);
    let request = phone.register("", Some(&credentials));
    assert!(core.transactions.is_empty(), "a challenge keeps no state");
    let first = exchange(&mut core, &request, T0);
    assert_eq!(first.status(), Some(200));
    core.take_changed_bindings();
    // Without the transaction the replayed nonce-count would be refused.
    let again = exchange(&mut core, &request, T0 + 500);
    assert_eq!(format!("{again:?}"), format!("{first:?}"));
    assert!(core.take_changed_bindings().is_empty());
    // After Timer J the same request is processed anew and its nonce-count is a replay.
    core.handle_timeout(at(T0 + transaction::TIMER_J_MS));
    assert_eq!(
        exchange(&mut core, &request, T0 + transaction::TIMER_J_MS).status(),
        Some(403)
    );
}

#[test]
fn expired_nonce_is_stale_and_phone_retries() {
    let mut core = core();
    let mut phone = Phone::new("1000");
    let challenge = exchange(&mut core, &phone.register("", None), T0);
    let credentials = phone.credentials(&challenge, Algorithm::Sha256);
    let later = T0 + 301_000;
    let stale = exchange(&mut core, &phone.register("", Some(&credentials)), later);
    assert_eq!(stale.status(), Some(401));
    assert!(challenges(&stale).iter().all(|c| c.ends_with("stale=true")));
    let credentials = phone.credentials(&stale, Algorithm::Sha256);
    assert_eq!(
        exchange(&mut core, &phone.register("", Some(&credentials)), later).status(),
        Some(200)
    );
}

#[test]
fn removal_expiry_and_limits() {
    let mut core = core();
    let mut phone = Phone::new("1000");
    let register = |core: &mut Core, phone: &mut Phone, extra: &str, now| {
        let challenge = exchange(core, &phone.register(extra, None), now);
        let credentials = phone.credentials(&challenge, Algorithm::Md5);
        exchange(core, &phone.register(extra, Some(&credentials)), now)
    };
    let brief = register(&mut core, &mut phone, "Expires: 30\r\n", T0);
    assert_eq!(brief.status(), Some(423));
    assert_eq!(brief.header(HeaderName::MinExpires), Some("60"));

    assert_eq!(
        register(&mut core, &mut phone, "Expires: 60\r\n", T0).status(),
        Some(200)
    );
    core.handle_timeout(at(T0 + 59_000));
    assert_eq!(core.registrar.total(), 1);
    core.handle_timeout(at(T0 + 60_000));
    assert_eq!(core.registrar.total(), 0);

    assert_eq!(
        register(&mut core, &mut phone, "", T0 + 61_000).status(),
        Some(200)
    );
    let removed = register(&mut core, &mut phone, "Expires: 0\r\n", T0 + 62_000);
    assert_eq!(removed.status(), Some(200));
    assert_eq!(removed.values(HeaderName::Contact).count(), 0);
    assert_eq!(core.registrar.total(), 0);

    let required = exchange(&mut core, &phone.register("Require: gruu\r\n", None), T0);
    assert_eq!(required.status(), Some(420));
    assert_eq!(
        required
            .all_headers()
            .find(|(_, n, _)| *n == "Unsupported")
            .map(|h| h.2),
        Some("gruu")
    );
}

#[test]
fn options_to_the_server() {
    let mut core = core();
    let options = format!(
        "OPTIONS sip:{DOMAIN} SIP/2.0\r\nVia: SIP/2.0/UDP [2001:db8::5]:5070;branch=z9hG4bKo\r\n\
         From: <sip:monitor@{DOMAIN}>;tag=m\r\nTo: <sip:{DOMAIN}>\r\nCall-ID: o1\r\nCSeq: 1 OPTIONS\r\n\
         Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    );
    let ok = exchange(&mut core, &options, T0);
    assert_eq!(ok.status(), Some(200));
    let by_address = options.replace(
        &format!("OPTIONS sip:{DOMAIN}"),
        "OPTIONS sip:[2001:db8::1]:5060",
    );
    assert_eq!(exchange(&mut core, &by_address, T0).status(), Some(200));
    let elsewhere = options
        .replace(&format!("OPTIONS sip:{DOMAIN}"), "OPTIONS sip:example.com")
        .replace("z9hG4bKo", "z9hG4bKp");
    assert_eq!(exchange(&mut core, &elsewhere, T0).status(), Some(403));
}

#[test]
fn register_for_another_domain_is_refused() {
    let mut core = core();
    let mut phone = Phone::new("1000");
    let text = phone.register("", None).replace(
        &format!("REGISTER sip:{DOMAIN}"),
        "REGISTER sip:example.com",
    );
    let refused = exchange(&mut core, &text, T0);
    assert_eq!(
        (refused.status(), refused.reason()),
        (Some(403), Some("Domain Not Served"))
    );
}

#[test]
fn bad_input_gets_an_error_or_silence() {
    let mut core = core();
    silent(&mut core, b"");
    silent(&mut core, b"\x00\x01garbage\r\n\r\n");
    silent(
        &mut core,
        b"REGISTER sip:hotline.test SIP/2.0\r\nVia: SIP/2.0/UDP [2001:db8::5]:5070",
    );
    silent(
        &mut core,
        b"REGISTER sip:hotline.test SIP/2.0\r\nCall-ID: x\r\n\r\n",
    );
    silent(
        &mut core,
        b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP [::1];branch=z9hG4bK1\r\n\r\n",
    );
    silent(
        &mut core,
        b"ACK sip:1000@hotline.test SIP/2.0\r\nVia: SIP/2.0/UDP [::1];branch=z9hG4bK1\r\n\r\n",
    );
    silent(
        &mut core,
        b"REGISTER sip:hotline.test SIP/2.0\r\nVia: SIP/2.0/UDP 2001:db8::5:5070\r\n\r\n",
    );
    silent(&mut core, &vec![b'A'; 70_000]);

    let mut phone = Phone::new("1000");
    let cases = [
        (
            phone
                .register("", None)
                .replace("SIP/2.0\r\nVia", "SIP/3.0\r\nVia"),
            505,
        ),
        (
            phone
                .register("", None)
                .replace("REGISTER sip:", "REGISTER nosuch:"),
            416,
        ),
        (
            phone
                .register("", None)
                .replace("CSeq: 3 REGISTER", "CSeq: 3 INVITE"),
            400,
        ),
        (
            phone
                .register("", None)
                .replace("Call-ID: call-1000\r\n", ""),
            400,
        ),
        (
            phone
                .register("", None)
                .replace("To: <sip:1000@hotline.test>", "To: <sip:1000@[2001:db8::1>"),
            400,
        ),
        (
            phone.register("", None).replace(
                "Contact: <sip:1000@[2001:db8::5]:5070>",
                "Contact: <sip:1000@2001:db8::5>",
            ),
            401,
        ),
    ];
    for (text, status) in cases {
        assert_eq!(
            exchange(&mut core, &text, T0).status(),
            Some(status),
            "{text}"
        );
    }
}

#[test]
fn bindings_survive_through_the_store_shape() {
    let mut core = core();
    let mut phone = Phone::new("1000");
    let challenge = exchange(&mut core, &phone.register("", None), T0);
    let credentials = phone.credentials(&challenge, Algorithm::Md5);
    exchange(&mut core, &phone.register("", Some(&credentials)), T0);
    let saved: Vec<(Extension, Binding)> = core
        .take_changed_bindings()
        .into_iter()
        .flat_map(|(e, list)| list.into_iter().map(move |b| (e.clone(), b)))
        .collect();
    let users = vec![User::new(
        Extension::parse("1000").unwrap(),
        "Alice",
        DOMAIN,
        PASSWORD,
    )];
    let restarted = Core::new(
        settings(),
        listeners(),
        [7; 32],
        users,
        saved,
        Vec::new(),
        at(T0 + 1000),
    );
    let extension = Extension::parse("1000").unwrap();
    let remote: SocketAddr = "[2001:db8::5]:5070".parse().unwrap();
    let contacts: Vec<_> = restarted
        .registrar
        .contacts(&extension, T0 + 1000)
        .collect();
    assert_eq!(contacts.len(), 1);
    assert_eq!(contacts[0].flow.remote, remote);
}

#[test]
fn a_flooding_source_gets_403_then_silence() {
    let mut core = core();
    let options = |n: u32| {
        format!(
            "OPTIONS sip:{DOMAIN} SIP/2.0\r\nVia: SIP/2.0/UDP [2001:db8::5]:5070;branch=z9hG4bKf{n}\r\n\
             From: <sip:monitor@{DOMAIN}>;tag=m\r\nTo: <sip:{DOMAIN}>\r\nCall-ID: f{n}\r\n\
             CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
        )
    };
    let limit = Settings::default().flood.per_address;
    for n in 0..limit {
        assert_eq!(exchange(&mut core, &options(n), T0).status(), Some(200));
    }
    let refused = exchange(&mut core, &options(limit), T0);
    assert_eq!(
        (refused.status(), refused.reason()),
        (Some(403), Some("Flood detected"))
    );
    for n in limit + 1..limit + 3 {
        assert_eq!(exchange(&mut core, &options(n), T0).status(), Some(403));
    }
    silent(&mut core, options(limit + 3).as_bytes());
    // The address flooded, once; its /64 did not.
    let lines: Vec<String> = core
        .take_events()
        .iter()
        .map(|event| match event {
            Event::Security(event) => event.to_string(),
            other => panic!("a security event expected: {other:?}"),
        })
        .collect();
    assert_eq!(
        lines,
        ["flood detected address=2001:db8::5 port=5070 transport=UDP scope=2001:db8::5"]
    );
}

#[test]
fn only_a_request_that_passes_digest_makes_its_connection_a_phones() {
    let mut core = core();
    let connection = ConnectionId(9);
    let tcp = Flow {
        connection: Some(connection),
        ..flow(Transport::Tcp)
    };
    let options = format!(
        "OPTIONS sip:{DOMAIN} SIP/2.0\r\nVia: SIP/2.0/TCP [2001:db8::5]:5070;branch=z9hG4bKo\r\n\
         Max-Forwards: 70\r\nFrom: <sip:x@{DOMAIN}>;tag=o\r\nTo: <sip:{DOMAIN}>\r\n\
         Call-ID: o\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    );
    assert_eq!(
        exchange_over(&mut core, &options, T0, tcp).status(),
        Some(200)
    );
    let mut phone = Phone::new("1000");
    phone.password = "wrong";
    let challenge = exchange_over(&mut core, &phone.register("", None), T0, tcp);
    assert_eq!(challenge.status(), Some(401));
    let credentials = phone.credentials(&challenge, Algorithm::Md5);
    let refused = exchange_over(&mut core, &phone.register("", Some(&credentials)), T0, tcp);
    assert_eq!(refused.status(), Some(403));
    assert!(core.take_authenticated().is_empty());

    phone.password = PASSWORD;
    let challenge = exchange_over(&mut core, &phone.register("", None), T0, tcp);
    let credentials = phone.credentials(&challenge, Algorithm::Md5);
    let ok = exchange_over(&mut core, &phone.register("", Some(&credentials)), T0, tcp);
    assert_eq!(ok.status(), Some(200));
    assert_eq!(core.take_authenticated(), [connection]);
    assert!(core.take_authenticated().is_empty());

    // Over UDP there is no connection to keep.
    let mut phone = Phone::new("1001");
    let challenge = exchange(&mut core, &phone.register("", None), T0);
    let credentials = phone.credentials(&challenge, Algorithm::Md5);
    let ok = exchange(&mut core, &phone.register("", Some(&credentials)), T0);
    assert_eq!(ok.status(), Some(200));
    assert!(core.take_authenticated().is_empty());
}
