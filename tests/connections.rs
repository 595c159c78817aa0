//! Connection slots against the real binary, taken as an attacker would take them: many
//! addresses of two /48s open every TCP connection (or unfinished TLS handshake) that the limits
//! allow, keep them alive and reopen whatever is closed, while phones of another prefix register
//! over TLS and call each other. A sender that trickles a message is cut off once
//! `partial_message_timeout` has passed since its first byte, and one that dribbles a byte per
//! segment is read at a bounded pace.
//!
//! The attack runs in a network namespace of the test's own, where attackers and phones have
//! addresses of their own on the loopback.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv6Addr, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::netns::Netns;
use common::{
    Client, DOMAIN, Server, Transport, authorization, client_hello, generated_root, tls_stream,
};
use hotline::core::auth::Algorithm;
use hotline::sip::{HeaderName, Message};

/// Small limits, so that the attack reaches each of them with few connections: 40 in all, 4 per
/// address, 8 per /64, 16 per /56, 24 per /48. The anonymous deadline is past the end of the
/// test: the attackers' connections give way to the phones, they do not expire.
const LIMITS: &str = "[limits]\nmax_connections = 40\nmax_connections_per_address = 4\n\
    max_connections_per_prefix = [[64, 8], [56, 16], [48, 24]]\nanonymous_timeout = 600\n";

/// The table size of [`LIMITS`].
const MAX_CONNECTIONS: usize = 40;

/// Connections each attacking address tries to hold.
const PER_SOURCE: usize = 6;

/// How often the attackers ping what they hold and reopen what was closed.
const PING_INTERVAL: Duration = Duration::from_millis(500);

/// The longest an attack lasts, should the test hang.
const ATTACK_LIMIT: Duration = Duration::from_secs(120);

/// The phones, in 2001:db8:2::/64: extension and host number. 1000 calls 1001, 1002 calls 1003.
const PHONES: [(&str, u16); 4] = [("1000", 1), ("1001", 2), ("1002", 3), ("1003", 4)];

/// An SRTP offer or answer.
const SDP: &str = "v=0\r\no=- 1 1 IN IP6 ::1\r\ns=-\r\nc=IN IP6 ::1\r\nt=0 0\r\n\
    m=audio 40000 RTP/SAVP 0\r\n\
    a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR\r\n\
    a=rtpmap:0 PCMU/8000\r\n";

/// Three addresses in each of three /64s of each of two /56s, in each of the /48s
/// 2001:db8:1::/48 and 2001:db8:3::/48. Each /48 goes over every limit: its addresses (4), its
/// first /64s (8), its first /56 (16), itself (24), and both together over the table (40).
fn attackers() -> Vec<IpAddr> {
    let mut sources = Vec::new();
    for site in [1, 3] {
        for net in [0x0, 0x1, 0x2, 0x100, 0x101, 0x102] {
            for host in 1..=3 {
                let address = Ipv6Addr::new(0x2001, 0xdb8, site, net, 0, 0, 0, host);
                sources.push(IpAddr::V6(address));
            }
        }
    }
    sources
}

fn phone_address(host: u16) -> IpAddr {
    Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, host).into()
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Attack {
    /// TCP connections kept alive with CRLF pings, never a SIP request.
    Pings,
    /// TLS connections that send a ClientHello and never finish the handshake.
    Hellos,
}

impl Attack {
    fn transport(self) -> Transport {
        match self {
            Attack::Pings => Transport::Tcp,
            Attack::Hellos => Transport::Tls,
        }
    }

    /// A connection from `source`, if the server keeps it.
    fn open(self, server: &Server, source: IpAddr, hello: &[u8]) -> Option<TcpStream> {
        let port = server.address(self.transport()).port();
        let mut stream = TcpStream::connect(SocketAddr::new(source, port)).ok()?;
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        match self {
            Attack::Pings => self.alive(&mut stream).then_some(stream),
            Attack::Hellos => {
                stream.write_all(hello).ok()?;
                // The server's first flight, or the end of a refused connection.
                let mut flight = [0; 4096];
                matches!(stream.read(&mut flight), Ok(n) if n > 0).then_some(stream)
            }
        }
    }

    /// Whether the server still holds `stream`.
    fn alive(self, stream: &mut TcpStream) -> bool {
        match self {
            Attack::Pings => {
                let mut pong = [0; 2];
                stream.write_all(b"\r\n\r\n").is_ok()
                    && stream.read_exact(&mut pong).is_ok()
                    && pong == *b"\r\n"
            }
            Attack::Hellos => {
                stream.set_nonblocking(true).unwrap();
                let mut rest = [0; 4096];
                let alive = loop {
                    match stream.read(&mut rest) {
                        Ok(0) => break false,
                        Ok(_) => continue,
                        Err(e) => break e.kind() == ErrorKind::WouldBlock,
                    }
                };
                stream.set_nonblocking(false).unwrap();
                alive
            }
        }
    }

    /// Holds [`PER_SOURCE`] connections from each of `sources`: every [`PING_INTERVAL`],
    /// checks what it holds and reopens what the server closed, until `stop` (or
    /// [`ATTACK_LIMIT`]). Sends to `ready` how many it still held at the start of the second
    /// round. Returns the rounds made.
    fn run(
        self,
        server: &Server,
        sources: &[IpAddr],
        stop: &AtomicBool,
        ready: mpsc::Sender<usize>,
    ) -> usize {
        let hello = client_hello(server);
        let mut held: Vec<(IpAddr, Option<TcpStream>)> = sources
            .iter()
            .flat_map(|&source| std::iter::repeat_with(move || (source, None)).take(PER_SOURCE))
            .collect();
        let end = Instant::now() + ATTACK_LIMIT;
        let mut rounds = 0;
        while !stop.load(Ordering::Relaxed) && Instant::now() < end {
            for (_, stream) in &mut held {
                if !stream.as_mut().is_some_and(|s| self.alive(s)) {
                    *stream = None;
                }
            }
            rounds += 1;
            if rounds == 2 {
                let _ = ready.send(held.iter().filter(|(_, s)| s.is_some()).count());
            }
            for (source, stream) in &mut held {
                if stream.is_none() {
                    *stream = self.open(server, *source, &hello);
                }
            }
            std::thread::sleep(PING_INTERVAL);
        }
        rounds
    }
}

/// Stops the attack when dropped, also when the test fails.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

#[test]
fn phones_register_and_call_while_attackers_hold_every_connection_they_may() {
    phones_succeed_during(Attack::Pings);
}

#[test]
fn phones_register_and_call_during_a_flood_of_unfinished_tls_handshakes() {
    phones_succeed_during(Attack::Hellos);
}

fn phones_succeed_during(attack: Attack) {
    let netns = Netns::new();
    let sources = attackers();
    for &source in &sources {
        let IpAddr::V6(source) = source else {
            unreachable!()
        };
        netns.add_address(source);
    }
    for (_, host) in PHONES {
        let IpAddr::V6(address) = phone_address(host) else {
            unreachable!()
        };
        netns.add_address(address);
    }
    let server = Server::start_in_netns(&netns, LIMITS);
    let passwords: Vec<String> = PHONES
        .iter()
        .map(|(extension, _)| server.user_add(extension, "Phone"))
        .collect();
    let stop = AtomicBool::new(false);
    let (ready, under_way) = mpsc::channel();
    std::thread::scope(|scope| {
        let attacking = scope.spawn(|| {
            netns.enter();
            attack.run(&server, &sources, &stop, ready)
        });
        let stopping = StopOnDrop(&stop);
        let held = under_way
            .recv_timeout(ATTACK_LIMIT)
            .expect("the attack is under way");
        assert!(held <= MAX_CONNECTIONS, "the attackers hold {held}");
        // Every limit refused some of the attackers' connections.
        for (reason, scope) in [
            ("per address", "2001:db8:1::1/128"),
            ("per prefix", "2001:db8:1::/64"),
            ("per prefix", "2001:db8:1::/56"),
            ("per prefix", "2001:db8:1::/48"),
        ] {
            let needle = format!("reason=\"connection limit {reason} reached\" scope={scope}");
            server.wait_for_log_where(&needle, |line| line.ends_with(&needle));
        }
        let reported = server.wait_for_log("connection limit reached address=2001:db8:1:");
        assert!(reported.contains("scope=2001:db8:1:"), "{reported}");

        netns.run(|| phones_register_and_call(&server, &passwords));
        drop(stopping);
        attacking.join().expect("the attack ran");
    });

    let events: Vec<String> = server
        .log_lines()
        .into_iter()
        .filter(|line| line.contains("hotline::security"))
        .collect();
    let total = events.len();
    let matched = common::fail2ban_regex(&events);
    assert!(
        matched.contains(&format!(
            "Lines: {total} lines, 0 ignored, {total} matched, 0 missed"
        )),
        "{matched}"
    );
    assert!(matched.contains("2001:db8:1:"), "{matched}");
}

/// The phones register over TLS from 2001:db8:2::/64, and 1000 calls 1001, 1002 calls 1003.
fn phones_register_and_call(server: &Server, passwords: &[String]) {
    let mut phones: Vec<Client> = PHONES
        .iter()
        .zip(passwords)
        .map(|(&(extension, host), password)| {
            let mut phone = Client::connect_from(server, Transport::Tls, phone_address(host));
            let contact = format!("Contact: {}\r\n", phone.contact(extension));
            let ok = phone.register(extension, password, Algorithm::Md5, &contact);
            assert_eq!(ok.status(), Some(200), "{extension}: {ok:?}");
            phone
        })
        .collect();
    for (caller, callee) in [(0, 1), (2, 3)] {
        let [caller_phone, callee_phone] = phones
            .get_disjoint_mut([caller, callee])
            .expect("two phones");
        call(
            (caller_phone, PHONES[caller].0, &passwords[caller]),
            (callee_phone, PHONES[callee].0),
        );
    }
}

/// A call from `caller` to `callee` through the proxy: INVITE, 407, INVITE with credentials,
/// 200 from the callee, ACK back to it.
fn call((caller, from, password): (&mut Client, &str, &str), (callee, to): (&mut Client, &str)) {
    let uri = format!("sip:{to}@{DOMAIN}");
    let call_id = format!("call-{from}-{to}-{}", std::process::id());
    let mut credentials = String::new();
    for cseq in 1..=2 {
        let invite = format!(
            "INVITE {uri} SIP/2.0\r\n\
             Via: SIP/2.0/TLS {via};branch=z9hG4bK-{call_id}-{cseq}\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:{from}@{DOMAIN}>;tag={from}\r\n\
             To: <{uri}>\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: {cseq} INVITE\r\n\
             Contact: {contact}\r\n\
             {credentials}Content-Type: application/sdp\r\n\
             Content-Length: {length}\r\n\r\n{SDP}",
            via = caller.local(),
            contact = caller.contact(from),
            length = SDP.len(),
        );
        caller.send_raw(invite.as_bytes());
        if cseq == 2 {
            break;
        }
        let challenge = final_response(caller, 1);
        assert_eq!(challenge.status(), Some(407), "{challenge:?}");
        let to_header = challenge.header(HeaderName::To).expect("To");
        let ack = ack(caller, (&uri, "1", ""), (from, to_header, &call_id), 1);
        caller.send_raw(ack.as_bytes());
        credentials = authorization(&challenge, Algorithm::Md5, from, password, "INVITE", &uri);
    }

    // The callee gets the INVITE over its own connection and answers.
    let invite = callee.recv();
    assert_eq!(invite.method_text(), Some("INVITE"), "{invite:?}");
    let mut answer = String::from("SIP/2.0 200 OK\r\n");
    for (name, line, value) in invite.all_headers() {
        match name {
            HeaderName::Via
            | HeaderName::RecordRoute
            | HeaderName::From
            | HeaderName::CallId
            | HeaderName::CSeq => answer += &format!("{line}: {value}\r\n"),
            HeaderName::To => answer += &format!("{line}: {value};tag={to}\r\n"),
            _ => {}
        }
    }
    answer += &format!(
        "Contact: {}\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{SDP}",
        callee.contact(to),
        SDP.len()
    );
    callee.send_raw(answer.as_bytes());

    let ok = final_response(caller, 2);
    assert_eq!(ok.status(), Some(200), "{ok:?}");
    let routes: Vec<&str> = ok.values(HeaderName::RecordRoute).collect();
    let routes: String = routes
        .iter()
        .rev()
        .map(|route| format!("Route: {route}\r\n"))
        .collect();
    let target = ok.header(HeaderName::Contact).expect("Contact in the 200");
    let target = target.trim_start_matches('<').split('>').next().unwrap();
    let to_header = ok.header(HeaderName::To).expect("To");
    let ack = ack(
        caller,
        (target, "ack", &routes),
        (from, to_header, &call_id),
        2,
    );
    caller.send_raw(ack.as_bytes());
    let acked = callee.recv();
    assert_eq!(acked.method_text(), Some("ACK"), "{acked:?}");
}

/// An ACK from `caller` for the INVITE of `cseq`: to `uri` with branch suffix `branch` and
/// the `routes` lines, in the dialog of `from`, `to_header` and `call_id`.
fn ack(
    caller: &Client,
    (uri, branch, routes): (&str, &str, &str),
    (from, to_header, call_id): (&str, &str, &str),
    cseq: u32,
) -> String {
    format!(
        "ACK {uri} SIP/2.0\r\n\
         Via: SIP/2.0/TLS {via};branch=z9hG4bK-{call_id}-{branch}\r\n\
         Max-Forwards: 70\r\n\
         {routes}\
         From: <sip:{from}@{DOMAIN}>;tag={from}\r\n\
         To: {to_header}\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: {cseq} ACK\r\n\
         Content-Length: 0\r\n\r\n",
        via = caller.local(),
    )
}

/// Reads past provisional responses to the final response for `cseq`.
fn final_response(client: &mut Client, cseq: u32) -> Message {
    loop {
        let response = client.recv();
        let status = response.status().expect("a response");
        if response.cseq().is_some_and(|c| c.number == cseq) && status >= 200 {
            return response;
        }
    }
}

/// An OPTIONS ping of the server with a body of `body` bytes, framed for TCP.
fn options(body: usize) -> Vec<u8> {
    let mut message = format!(
        "OPTIONS sip:{DOMAIN} SIP/2.0\r\n\
         Via: SIP/2.0/TCP [::1]:5999;branch=z9hG4bK-dribble\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:dribble@{DOMAIN}>;tag=d\r\n\
         To: <sip:{DOMAIN}>\r\n\
         Call-ID: dribble\r\n\
         CSeq: 1 OPTIONS\r\n\
         Content-Type: text/plain\r\n\
         Content-Length: {body}\r\n\r\n"
    )
    .into_bytes();
    message.resize(message.len() + body, b'x');
    message
}

/// A TCP connection to `server` that sends each write at once.
fn connect_without_delay(server: &Server) -> TcpStream {
    let stream = TcpStream::connect(server.address(Transport::Tcp)).unwrap();
    stream.set_nodelay(true).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
}

#[test]
fn a_message_trickled_slower_than_the_deadline_is_cut_off_after_it() {
    let server = Server::start("[limits]\npartial_message_timeout = 2\n");
    let deadline = Duration::from_secs(2);
    let message = options(0);
    let mut stream = TcpStream::connect(server.address(Transport::Tcp)).unwrap();
    // One byte every 400 ms: each read comes well within the deadline, the message never does.
    stream
        .set_read_timeout(Some(Duration::from_millis(400)))
        .unwrap();
    let first_byte = Instant::now();
    let mut sent = 0;
    let mut reply = [0; 1024];
    for &byte in &message {
        if stream.write_all(&[byte]).is_err() {
            break;
        }
        sent += 1;
        match stream.read(&mut reply) {
            Ok(0) => break,
            Ok(n) => panic!(
                "the trickled message was answered: {}",
                String::from_utf8_lossy(&reply[..n])
            ),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => break,
        }
    }
    let closed_after = first_byte.elapsed();
    assert!(sent < message.len(), "the connection stayed open");
    assert!(closed_after >= deadline, "closed after {closed_after:?}");
    server.wait_for_log("reason=\"partial message timeout\"");
}

#[test]
fn an_incomplete_tls_record_is_cut_off_at_the_partial_message_deadline() {
    let server = Server::start("[limits]\npartial_message_timeout = 2\n");
    let tcp = TcpStream::connect(server.address(Transport::Tls)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut tls = tls_stream(generated_root(&server), tcp);
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock).unwrap();
    }
    // A whole message in one TLS record, all of it but its last byte: hotline decrypts
    // nothing, and holds the record as it would hold a partial message.
    tls.conn.writer().write_all(&options(0)).unwrap();
    let mut record = Vec::new();
    while tls.conn.wants_write() {
        tls.conn.write_tls(&mut record).unwrap();
    }
    let sent = Instant::now();
    tls.sock.write_all(&record[..record.len() - 1]).unwrap();
    let mut rest = Vec::new();
    let closed = tls.sock.read_to_end(&mut rest);
    let closed_after = sent.elapsed();
    assert!(closed.is_ok(), "not closed: {closed:?}");
    assert!(
        closed_after >= Duration::from_secs(2),
        "closed after {closed_after:?}"
    );
    server.wait_for_log("reason=\"partial message timeout\"");
}

#[test]
fn a_message_dribbled_one_byte_per_segment_is_cut_off() {
    let server = Server::start("[log]\nlevel = \"debug\"\n");
    let message = options(4000);
    let mut stream = connect_without_delay(&server);
    let local = stream.local_addr().unwrap();
    // A byte a millisecond: slower than the server reads, so each read finds a byte or two.
    let mut sent = 0;
    for &byte in &message {
        if stream.write_all(&[byte]).is_err() {
            break;
        }
        sent += 1;
        std::thread::sleep(Duration::from_millis(1));
    }
    let mut reply = Vec::new();
    let closed = stream.read_to_end(&mut reply);
    assert!(
        reply.is_empty(),
        "answered: {}",
        String::from_utf8_lossy(&reply)
    );
    assert!(
        closed.is_ok() || sent < message.len(),
        "not closed: {closed:?}"
    );
    server.wait_for_log(&format!(
        "connection closed source={local} transport=TCP reason=\"message dribbled in tiny segments\""
    ));

    // Cut off after a few dozen reads, not one per byte.
    let line = server.wait_for_log_where("the connection's end", |l| {
        l.contains("connection ended") && l.contains(&format!("source={local} "))
    });
    let reads: usize = line
        .split_whitespace()
        .find_map(|word| word.strip_prefix("reads="))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no reads in {line}"));
    assert!(reads <= 64, "{reads} reads for {sent} segments");
}

#[test]
fn a_client_hello_dribbled_one_byte_per_segment_is_cut_off() {
    let server = Server::start("[log]\nlevel = \"debug\"\n");
    let hello = client_hello(&server);
    let mut stream = TcpStream::connect(server.address(Transport::Tls)).unwrap();
    stream.set_nodelay(true).unwrap();
    let local = stream.local_addr().unwrap();
    for &byte in &hello {
        if stream.write_all(&[byte]).is_err() {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    server.wait_for_log(&format!(
        "TLS handshake failed source={local} transport=TLS reason=\"message dribbled in tiny segments\""
    ));
    // The server wrote no ServerHello: the handshake never got that far.
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut reply = Vec::new();
    let _ = stream.read_to_end(&mut reply);
    assert!(!reply.starts_with(&[0x16]), "a handshake record: {reply:?}");
}

#[test]
fn a_message_in_a_few_segments_is_answered() {
    let server = Server::start("");
    let message = options(4000);
    let mut stream = connect_without_delay(&server);
    // Header line by header line, then the body in 500-byte pieces: as a careless phone would.
    let head_end = message.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let (head, body) = message.split_at(head_end);
    for piece in head
        .split_inclusive(|&b| b == b'\n')
        .chain(body.chunks(500))
    {
        stream.write_all(piece).unwrap();
        stream.flush().unwrap();
    }
    let mut reply = Vec::new();
    let mut chunk = [0; 4096];
    while !reply.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut chunk).expect("a reply");
        assert!(n > 0, "closed without a reply");
        reply.extend_from_slice(&chunk[..n]);
    }
    assert!(reply.starts_with(b"SIP/2.0 200 "), "{reply:?}");
}
