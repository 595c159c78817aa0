//! The bodies of the fuzz targets, shared by the libFuzzer targets in `fuzz_targets/` and by the
//! stable-toolchain mutation fuzzer in `src/bin/mutate.rs`.
//!
//! Both targets assert that nothing panics, and a little more: every message hotline builds
//! (responses, forwarded requests, CANCEL and ACK) parses again, and no timer is left overdue
//! after `handle_timeout`.

use std::net::SocketAddr;

use hotline::config::Config;
use hotline::core::auth::{Algorithm, ResponseInput, parse_credentials, response_hex};
use hotline::core::sanity;
use hotline::core::user::{Extension, User};
use hotline::core::{Action, ConnectionId, Core, Flow, Inbound};
use hotline::sip::{
    CSeq, Frame, HeaderName, Host, Message, NameAddr, Params, Response, Transport, Uri, Via,
    ack_for, cancel_for, drop_first, is_token, next_frame, srtp_verdict, unquote, without_first,
};

/// The limits of the default configuration.
pub const MAX_HEADERS: usize = 64;
pub const MAX_MESSAGE: usize = 16 * 1024;

/// Generous limit for re-parsing what hotline wrote (it may add a few headers).
const REPARSE_HEADERS: usize = 1024;

pub const DOMAIN: &str = "hotline.test";
pub const PASSWORD: &str = "4061528397106253840192837465019283746501";
const T0: u64 = 1_800_000_000_000;

// ---------------------------------------------------------------------------------------------
// parse

/// The parser, every typed view and the stream framing, on arbitrary bytes.
pub fn parse(data: &[u8]) {
    for max in [MAX_MESSAGE, 64] {
        let _ = next_frame(data, max);
    }
    // Walk the bytes as a stream, as the TCP reader does.
    let mut rest = data;
    while let Ok(Frame::Message(n) | Frame::Ping(n) | Frame::Pong(n)) =
        next_frame(rest, MAX_MESSAGE)
    {
        assert!(
            n > 0 && n <= rest.len(),
            "frame of {n} in {} bytes",
            rest.len()
        );
        if let Ok(message) = Message::parse(&rest[..n], MAX_HEADERS) {
            views(&message);
        }
        rest = &rest[n..];
    }
    if let Ok(message) = Message::parse(data, MAX_HEADERS) {
        views(&message);
    }
    let _ = srtp_verdict(Some("application/sdp"), data);
    if let Ok(text) = std::str::from_utf8(data) {
        values(text);
    }
}

/// Every typed view of a parsed message, and the messages hotline would build from it.
fn views(message: &Message) {
    let _ = (
        message.is_request(),
        message.method(),
        message.method_text(),
    );
    let _ = (message.status(), message.reason(), message.version());
    let _ = (message.content_length(), message.body_problem());
    let _ = (message.head_len(), message.body().len(), message.call_id());
    let _ = (message.cseq(), message.top_via().map(|v| v.branch()));
    if let Some(uri) = message.request_uri() {
        uri_views(uri);
    }
    for name_addr in [message.from(), message.to()].into_iter().flatten() {
        name_addr_views(&name_addr);
    }
    for (name, text, value) in message.all_headers() {
        let _ = (HeaderName::parse(text), name.is_list());
        let _ = message.count(name);
        values(value);
    }
    for name in [
        HeaderName::Via,
        HeaderName::Contact,
        HeaderName::Route,
        HeaderName::RecordRoute,
        HeaderName::Require,
        HeaderName::ProxyRequire,
        HeaderName::Supported,
    ] {
        for value in message.values(name) {
            values(value);
        }
    }
    let _ = srtp_verdict(message.header(HeaderName::ContentType), message.body());
    if message.is_request() {
        for stream in [false, true] {
            let _ = sanity::check(message, 16, stream);
        }
    }
    // What the core builds from a request it can answer: a response, a forwarded copy, and the
    // CANCEL or ACK of a forwarded INVITE. Each must parse again.
    if message.is_request() && message.top_via().is_some() {
        let source: SocketAddr = "[2001:db8::5]:5070".parse().unwrap();
        let mut response = Response::to(message, source, 407, "Proxy Authentication Required");
        response.header("Proxy-Authenticate", "Digest realm=\"hotline.test\"");
        let response = response.finish_with_body("application/sdp", b"v=0\r\n");
        let parsed = reparse("response", &response);
        let forwarded = message.rewrite(
            Some("sip:1000@[2001:db8::6]:5060"),
            &[("Via", "SIP/2.0/UDP [::1]:5060;branch=z9hG4bK-fuzz")],
            drop_first(HeaderName::Route, 1),
            &[("Record-Route", "<sip:[::1]:5060;lr>")],
        );
        reparse("forwarded request", &forwarded);
        if message.method_text() == Some("INVITE") {
            reparse("CANCEL", &cancel_for(message));
            reparse("ACK", &ack_for(message, &parsed));
        }
    }
}

fn reparse(what: &str, bytes: &[u8]) -> Message {
    Message::parse(bytes, REPARSE_HEADERS).unwrap_or_else(|e| {
        panic!(
            "hotline built an unparsable {what} ({e}): {:?}",
            String::from_utf8_lossy(bytes)
        )
    })
}

fn uri_views(text: &str) {
    if let Ok(uri) = Uri::parse(text) {
        let _ = (uri.scheme.as_str(), uri.user, uri.port, uri.headers);
        let _ = uri.transport_param();
        let _ = uri.host.to_string();
        let _ = uri.host.matches(&uri.host);
        let _ = uri.params.iter().count();
        let _ = uri.params.is_well_formed();
    }
}

fn name_addr_views(name_addr: &NameAddr<'_>) {
    let _ = (name_addr.display_name, name_addr.tag());
    let _ = name_addr.params.iter().count();
    uri_views(name_addr.uri);
}

/// The header-value parsers on one value.
fn values(text: &str) {
    uri_views(text);
    if let Some(name_addr) = NameAddr::parse(text) {
        name_addr_views(&name_addr);
    }
    if let Some(via) = Via::parse(text) {
        let _ = (via.transport, via.port, via.branch(), via.host.to_string());
        let _ = via.params.iter().count();
    }
    if let Some(host) = Host::parse(text) {
        let _ = host.to_string();
    }
    let _ = CSeq::parse(text);
    if let Ok(credentials) = parse_credentials(text) {
        let _ = credentials.nc.map(|nc| (nc.as_str(), nc.value()));
    }
    let params = Params::new(text);
    let _ = (
        params.iter().count(),
        params.is_well_formed(),
        params.get("tag"),
    );
    let _ = (unquote(text), is_token(text), without_first(text));
    let _ = Extension::parse(text);
    let _ = Algorithm::from_name(text);
}

// ---------------------------------------------------------------------------------------------
// core

/// UDP peers the fuzzer sends from.
const PEERS: [&str; 4] = [
    "[2001:db8::5]:5070",
    "[2001:db8::6]:5060",
    "[2001:db8:1::7]:5062",
    "[::1]:5080",
];
/// Stream connections: two TCP, one TLS.
const STREAMS: [(Transport, &str); 3] = [
    (Transport::Tcp, "[2001:db8::8]:40000"),
    (Transport::Tcp, "[2001:db8::9]:40001"),
    (Transport::Tls, "[2001:db8::a]:40002"),
];

/// What one byte of the input asks the harness to do (the byte modulo 8).
pub mod op {
    /// peer byte, chunk: a datagram from `PEERS[peer % 4]`.
    pub const DATAGRAM: u8 = 0;
    /// stream byte, chunk: bytes arriving on `STREAMS[stream % 3]`, framed as the network
    /// layer frames them.
    pub const STREAM: u8 = 1;
    /// two bytes (little-endian) times 10 ms pass, then timers and the tick run.
    pub const WAIT: u8 = 2;
    /// peer byte (% 7: four UDP peers, then the three streams), chunk: a request that is sent,
    /// challenged, and sent again with valid Digest credentials for the user in From (To for
    /// REGISTER) if that is 1000 or 1001, else 1000.
    pub const AUTHENTICATED: u8 = 3;
    /// two bytes (status 100 + n % 600), chunk (body): the phone that received the last
    /// request hotline forwarded answers it.
    pub const ANSWER: u8 = 4;
    /// stream byte: that connection closes.
    pub const CLOSE: u8 = 5;
    /// method byte, chunk (body): the caller sends an in-dialog request in the last dialog
    /// hotline confirmed with a 2xx, or a CANCEL of its last INVITE.
    pub const IN_DIALOG: u8 = 6;
    /// The last input again (a retransmission).
    pub const REPEAT: u8 = 7;
}

/// Methods of [`op::IN_DIALOG`], by the method byte modulo their number.
const IN_DIALOG_METHODS: [&str; 6] = ["ACK", "BYE", "CANCEL", "INVITE", "INFO", "UPDATE"];

/// A core fed by a byte program; see [`op`].
pub fn core(data: &[u8]) {
    let mut harness = Harness::new();
    let mut input = Cursor(data);
    while let Some(byte) = input.byte() {
        match byte % 8 {
            op::DATAGRAM => {
                let flow = udp(input.byte().unwrap_or(0));
                let bytes = input.chunk();
                harness.deliver(flow, bytes);
            }
            op::STREAM => {
                let stream = usize::from(input.byte().unwrap_or(0)) % STREAMS.len();
                let bytes = input.chunk();
                harness.stream(stream, bytes);
            }
            op::WAIT => {
                let ms = u64::from(input.u16()) * 10;
                harness.wait(ms);
            }
            op::AUTHENTICATED => {
                let peer = input.byte().unwrap_or(0) % 7;
                let flow = match peer {
                    0..4 => udp(peer),
                    n => stream_flow(usize::from(n - 4)),
                };
                let bytes = input.chunk();
                harness.authenticated(flow, bytes);
            }
            op::ANSWER => {
                let status = 100 + input.u16() % 600;
                let body = input.chunk();
                harness.answer(status, body);
            }
            op::CLOSE => {
                let stream = usize::from(input.byte().unwrap_or(0)) % STREAMS.len();
                harness.close(stream);
            }
            op::IN_DIALOG => {
                let method = IN_DIALOG_METHODS[usize::from(input.byte().unwrap_or(0)) % 6];
                let body = input.chunk();
                harness.in_dialog(method, body);
            }
            _ => harness.repeat(),
        }
    }
    harness.wait(40_000);
    harness.wait(12 * 3600 * 1000);
}

struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn byte(&mut self) -> Option<u8> {
        let (&first, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(first)
    }

    fn u16(&mut self) -> u16 {
        let low = self.byte().unwrap_or(0);
        let high = self.byte().unwrap_or(0);
        u16::from_le_bytes([low, high])
    }

    /// A length (two bytes, little-endian) and that many bytes, or what is left.
    fn chunk(&mut self) -> &'a [u8] {
        let length = usize::from(self.u16()).min(self.0.len());
        let (chunk, rest) = self.0.split_at(length);
        self.0 = rest;
        chunk
    }
}

fn udp(peer: u8) -> Flow {
    Flow {
        transport: Transport::Udp,
        remote: PEERS[usize::from(peer) % PEERS.len()].parse().unwrap(),
        connection: None,
    }
}

fn stream_flow(stream: usize) -> Flow {
    let (transport, remote) = STREAMS[stream];
    Flow {
        transport,
        remote: remote.parse().unwrap(),
        connection: Some(ConnectionId(100 + stream as u64)),
    }
}

struct Harness {
    core: Core,
    now: u64,
    actions: Vec<Action>,
    buffers: [Vec<u8>; 3],
    /// The last request hotline sent to a phone, and where.
    to_phone: Option<(Flow, Vec<u8>)>,
    /// The last 2xx to an INVITE hotline sent to a caller, and where.
    confirmed: Option<(Flow, Vec<u8>)>,
    /// The last INVITE the harness sent with credentials, and from where.
    invite: Option<(Flow, Vec<u8>)>,
    /// The last 401 or 407 hotline sent.
    last_challenge: Option<Vec<u8>>,
    last: Option<(Flow, Vec<u8>)>,
    sequence: u32,
}

impl Harness {
    fn new() -> Harness {
        let config = Config {
            domain: DOMAIN.to_owned(),
            ..Config::default()
        };
        let users = ["1000", "1001"]
            .iter()
            .map(|e| User::new(Extension::parse(e).unwrap(), "Fuzz", DOMAIN, PASSWORD))
            .collect();
        let listeners = vec![
            (Transport::Udp, "[::1]:5060".parse().unwrap()),
            (Transport::Tcp, "[::1]:5060".parse().unwrap()),
            (Transport::Tls, "[::1]:5061".parse().unwrap()),
        ];
        Harness {
            core: Core::new(&config, listeners, [7; 32], users, Vec::new(), Vec::new(), T0),
            now: T0,
            actions: Vec::new(),
            buffers: Default::default(),
            to_phone: None,
            confirmed: None,
            invite: None,
            last_challenge: None,
            last: None,
            sequence: 0,
        }
    }

    /// One message to the core, then what it sends is checked and remembered.
    fn deliver(&mut self, flow: Flow, bytes: &[u8]) {
        self.last = Some((flow, bytes.to_vec()));
        self.actions.clear();
        let inbound = Inbound { bytes, flow };
        self.core.handle(inbound, self.now, &mut self.actions);
        self.absorb();
    }

    fn absorb(&mut self) {
        for Action::Send { flow, bytes } in std::mem::take(&mut self.actions) {
            let message = reparse("message", &bytes);
            if message.is_request() {
                if message.method_text() != Some("ACK") {
                    self.to_phone = Some((flow, bytes));
                }
            } else if matches!(message.status(), Some(401 | 407)) {
                self.last_challenge = Some(bytes);
            } else if message.status().is_some_and(|s| (200..300).contains(&s))
                && message.cseq().is_some_and(|c| c.method == "INVITE")
            {
                self.confirmed = Some((flow, bytes));
            }
        }
    }

    fn stream(&mut self, index: usize, bytes: &[u8]) {
        let flow = stream_flow(index);
        let mut buffer = std::mem::take(&mut self.buffers[index]);
        buffer.extend_from_slice(bytes);
        loop {
            match next_frame(&buffer, MAX_MESSAGE) {
                Ok(Frame::Message(n)) => {
                    let message: Vec<u8> = buffer.drain(..n).collect();
                    self.deliver(flow, &message);
                }
                Ok(Frame::Ping(n) | Frame::Pong(n)) => {
                    buffer.drain(..n);
                }
                Ok(Frame::Incomplete) => break,
                Err(_) => {
                    buffer.clear();
                    self.core
                        .connection_closed(ConnectionId(100 + index as u64));
                    break;
                }
            }
        }
        self.buffers[index] = buffer;
    }

    fn close(&mut self, index: usize) {
        self.buffers[index].clear();
        self.core
            .connection_closed(ConnectionId(100 + index as u64));
    }

    fn wait(&mut self, ms: u64) {
        self.now += ms;
        self.actions.clear();
        self.core.handle_timeout(self.now, &mut self.actions);
        self.absorb();
        if let Some(next) = self.core.next_timeout() {
            assert!(next > self.now, "timer at {next} overdue at {}", self.now);
        }
        self.core.tick(self.now);
        let _ = self.core.take_changed_bindings();
    }

    fn repeat(&mut self) {
        if let Some((flow, bytes)) = self.last.take() {
            self.deliver(flow, &bytes);
        }
    }

    /// Sends `bytes`, and again with credentials answering the challenge it got.
    fn authenticated(&mut self, flow: Flow, bytes: &[u8]) {
        self.last_challenge = None;
        self.deliver(flow, bytes);
        let Ok(request) = Message::parse(bytes, MAX_HEADERS) else {
            return;
        };
        let (Some(method), Some(uri)) = (request.method_text(), request.request_uri()) else {
            return;
        };
        let party = match method {
            "REGISTER" => request.to(),
            _ => request.from(),
        };
        let username = party
            .and_then(|n| n.parsed_uri().ok())
            .and_then(|u| u.user)
            .filter(|u| *u == "1000" || *u == "1001")
            .unwrap_or("1000");
        let Some((header, nonce)) = self.challenge() else {
            return;
        };
        let user = User::new(
            Extension::parse(username).unwrap(),
            "Fuzz",
            DOMAIN,
            PASSWORD,
        );
        let ha1: String = user.ha1_md5.iter().map(|b| format!("{b:02x}")).collect();
        let response = response_hex(&ResponseInput {
            algorithm: Algorithm::Md5,
            ha1_hex: &ha1,
            nonce: &nonce,
            nc: "00000001",
            cnonce: "fuzz",
            qop: "auth",
            method,
            uri,
        });
        let credentials = format!(
            "{header}: Digest username=\"{username}\", realm=\"{DOMAIN}\", nonce=\"{nonce}\", \
             uri=\"{uri}\", response=\"{response}\", algorithm=MD5, qop=auth, nc=00000001, \
             cnonce=\"fuzz\"\r\n"
        );
        // A new branch: the same one would be a retransmission.
        self.sequence += 1;
        let text = String::from_utf8_lossy(bytes).replacen(
            "branch=",
            &format!("branch=z9hG4bKauth{}x", self.sequence),
            1,
        );
        let Some(line_end) = text.find('\n') else {
            return;
        };
        let mut again = text[..=line_end].to_owned();
        again.push_str(&credentials);
        again.push_str(&text[line_end + 1..]);
        if method == "INVITE" {
            self.invite = Some((flow, again.clone().into_bytes()));
        }
        self.deliver(flow, again.as_bytes());
    }

    /// The credentials header to send and the MD5 nonce of the last challenge.
    fn challenge(&mut self) -> Option<(&'static str, String)> {
        let bytes = self.last_challenge.take()?;
        let message = Message::parse(&bytes, REPARSE_HEADERS).ok()?;
        let header = match message.status()? {
            401 => "Authorization",
            407 => "Proxy-Authorization",
            _ => return None,
        };
        let challenge = message
            .all_headers()
            .map(|(_, _, value)| value)
            .find(|v| v.starts_with("Digest ") && v.contains("algorithm=MD5"))?;
        let nonce = challenge.split_once("nonce=\"")?.1.split_once('"')?.0;
        Some((header, nonce.to_owned()))
    }

    /// The phone that got the last forwarded request answers it with `status`.
    fn answer(&mut self, status: u16, body: &[u8]) {
        let Some((flow, bytes)) = self.to_phone.clone() else {
            return;
        };
        let Ok(request) = Message::parse(&bytes, REPARSE_HEADERS) else {
            return;
        };
        let mut text = format!("SIP/2.0 {status} Fuzz\r\n");
        for via in request.headers(HeaderName::Via) {
            text.push_str(&format!("Via: {via}\r\n"));
        }
        for (name, header) in [("From", HeaderName::From), ("Call-ID", HeaderName::CallId)] {
            if let Some(value) = request.header(header) {
                text.push_str(&format!("{name}: {value}\r\n"));
            }
        }
        if let Some(to) = request.header(HeaderName::To) {
            let tag = if status > 100 && request.to().is_some_and(|t| t.tag().is_none()) {
                ";tag=phone"
            } else {
                ""
            };
            text.push_str(&format!("To: {to}{tag}\r\n"));
        }
        if let Some(cseq) = request.header(HeaderName::CSeq) {
            text.push_str(&format!("CSeq: {cseq}\r\n"));
        }
        for record_route in request.headers(HeaderName::RecordRoute) {
            text.push_str(&format!("Record-Route: {record_route}\r\n"));
        }
        if status < 300 {
            text.push_str("Contact: <sip:1000@[2001:db8::6]:5060>\r\n");
        }
        if !body.is_empty() {
            text.push_str("Content-Type: application/sdp\r\n");
        }
        text.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
        let mut response = text.into_bytes();
        response.extend_from_slice(body);
        self.deliver(flow, &response);
    }

    /// The caller sends a request within the last confirmed dialog, or cancels its INVITE.
    fn in_dialog(&mut self, method: &str, body: &[u8]) {
        if method == "CANCEL" {
            if let Some((flow, bytes)) = self.invite.clone()
                && let Ok(invite) = Message::parse(&bytes, REPARSE_HEADERS)
            {
                self.deliver(flow, &cancel_for(&invite));
            }
            return;
        }
        let Some((flow, bytes)) = self.confirmed.clone() else {
            return;
        };
        let Ok(ok) = Message::parse(&bytes, REPARSE_HEADERS) else {
            return;
        };
        let target = ok
            .values(HeaderName::Contact)
            .next()
            .and_then(NameAddr::parse)
            .map_or("sip:1000@[2001:db8::6]:5060", |c| c.uri)
            .to_owned();
        self.sequence += 1;
        let cseq = ok.cseq().map_or(1, |c| c.number);
        let number = if method == "ACK" {
            cseq
        } else {
            cseq.wrapping_add(self.sequence)
        };
        let mut text = format!(
            "{method} {target} SIP/2.0\r\nVia: SIP/2.0/{} {};branch=z9hG4bKdialog{}\r\n\
             Max-Forwards: 70\r\n",
            flow.transport, flow.remote, self.sequence
        );
        let routes: Vec<&str> = ok.values(HeaderName::RecordRoute).collect();
        for route in routes.iter().rev() {
            text.push_str(&format!("Route: {route}\r\n"));
        }
        for (name, header) in [
            ("From", HeaderName::From),
            ("To", HeaderName::To),
            ("Call-ID", HeaderName::CallId),
        ] {
            if let Some(value) = ok.header(header) {
                text.push_str(&format!("{name}: {value}\r\n"));
            }
        }
        text.push_str(&format!("CSeq: {number} {method}\r\n"));
        if !body.is_empty() {
            text.push_str("Content-Type: application/sdp\r\n");
        }
        text.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
        let mut request = text.into_bytes();
        request.extend_from_slice(body);
        self.deliver(flow, &request);
    }
}

// ---------------------------------------------------------------------------------------------
// seeds

/// Builds a [`core`] input.
#[derive(Default)]
pub struct Program(pub Vec<u8>);

impl Program {
    fn chunk(&mut self, bytes: &[u8]) -> &mut Program {
        let length = u16::try_from(bytes.len()).expect("chunk under 64 KiB");
        self.0.extend_from_slice(&length.to_le_bytes());
        self.0.extend_from_slice(bytes);
        self
    }

    pub fn datagram(&mut self, peer: u8, bytes: &[u8]) -> &mut Program {
        self.0.extend_from_slice(&[op::DATAGRAM, peer]);
        self.chunk(bytes)
    }

    pub fn stream(&mut self, stream: u8, bytes: &[u8]) -> &mut Program {
        self.0.extend_from_slice(&[op::STREAM, stream]);
        self.chunk(bytes)
    }

    pub fn wait(&mut self, ms: u32) -> &mut Program {
        let units = u16::try_from(ms / 10).expect("at most 655 s");
        self.0.push(op::WAIT);
        self.0.extend_from_slice(&units.to_le_bytes());
        self
    }

    pub fn authenticated(&mut self, peer: u8, bytes: &[u8]) -> &mut Program {
        self.0.extend_from_slice(&[op::AUTHENTICATED, peer]);
        self.chunk(bytes)
    }

    pub fn answer(&mut self, status: u16, body: &[u8]) -> &mut Program {
        self.0.push(op::ANSWER);
        self.0.extend_from_slice(&(status - 100).to_le_bytes());
        self.chunk(body)
    }

    pub fn close(&mut self, stream: u8) -> &mut Program {
        self.0.extend_from_slice(&[op::CLOSE, stream]);
        self
    }

    pub fn in_dialog(&mut self, method: &str, body: &[u8]) -> &mut Program {
        let index = IN_DIALOG_METHODS.iter().position(|m| *m == method).unwrap() as u8;
        self.0.extend_from_slice(&[op::IN_DIALOG, index]);
        self.chunk(body)
    }

    pub fn repeat(&mut self) -> &mut Program {
        self.0.push(op::REPEAT);
        self
    }
}

/// An SRTP offer or answer.
pub const SDP: &str = "v=0\r\no=- 1 1 IN IP6 2001:db8::5\r\ns=-\r\nc=IN IP6 2001:db8::5\r\n\
t=0 0\r\nm=audio 40000 RTP/SAVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n\
a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz\r\n";

/// A REGISTER of `extension` from `sent_by` over `transport`.
pub fn register(extension: &str, transport: &str, sent_by: &str, branch: &str) -> String {
    let lower = transport.to_ascii_lowercase();
    format!(
        "REGISTER sip:{DOMAIN} SIP/2.0\r\n\
         Via: SIP/2.0/{transport} {sent_by};branch=z9hG4bK{branch};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:{extension}@{DOMAIN}>;tag=f{branch}\r\n\
         To: <sip:{extension}@{DOMAIN}>\r\n\
         Call-ID: reg-{extension}-{branch}\r\n\
         CSeq: 1 REGISTER\r\n\
         Contact: <sip:{extension}@{sent_by};transport={lower}>;expires=3600\r\n\
         Expires: 3600\r\n\
         Content-Length: 0\r\n\r\n"
    )
}

/// A request from 1001 at `PEERS[0]` to 1000, with `body` as SDP when not empty.
pub fn request(method: &str, branch: &str, body: &str) -> String {
    let content_type = if body.is_empty() {
        ""
    } else {
        "Content-Type: application/sdp\r\n"
    };
    format!(
        "{method} sip:1000@{DOMAIN} SIP/2.0\r\n\
         Via: SIP/2.0/UDP [2001:db8::5]:5070;branch=z9hG4bK{branch};rport\r\n\
         Max-Forwards: 70\r\n\
         From: \"Bob\" <sip:1001@{DOMAIN}>;tag=b{branch}\r\n\
         To: <sip:1000@{DOMAIN}>\r\n\
         Call-ID: call-{branch}@2001:db8::5\r\n\
         CSeq: 1 {method}\r\n\
         Contact: <sip:1001@[2001:db8::5]:5070>\r\n\
         Supported: replaces, 100rel\r\n\
         {content_type}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// Core programs that reach the registrar, the proxy's forking and dialogs, CANCEL and the
/// timers; `corpus` (such as the RFC 4475/5118 messages) is added as datagrams and as streams.
pub fn core_seeds(corpus: &[(String, Vec<u8>)]) -> Vec<(String, Vec<u8>)> {
    let udp_phone = register("1000", "UDP", "[2001:db8::6]:5060", "r1");
    let tcp_phone = register("1000", "TCP", "[2001:db8::8]:40000", "r2");
    let invite = request("INVITE", "i1", SDP);
    let mut seeds = Vec::new();
    let mut add = |name: &str, program: &mut Program| {
        seeds.push((name.to_owned(), std::mem::take(&mut program.0)));
    };
    add(
        "call",
        Program::default()
            .authenticated(1, udp_phone.as_bytes())
            .authenticated(0, invite.as_bytes())
            .answer(180, b"")
            .answer(200, SDP.as_bytes())
            .in_dialog("ACK", b"")
            .in_dialog("INVITE", SDP.as_bytes())
            .answer(200, SDP.as_bytes())
            .in_dialog("ACK", b"")
            .in_dialog("BYE", b"")
            .answer(200, b"")
            .wait(40_000),
    );
    add(
        "cancel",
        Program::default()
            .authenticated(1, udp_phone.as_bytes())
            .authenticated(0, invite.as_bytes())
            .answer(180, b"")
            .in_dialog("CANCEL", b"")
            .answer(487, b"")
            .wait(40_000),
    );
    add(
        "ring-timeout",
        Program::default()
            .authenticated(1, udp_phone.as_bytes())
            .authenticated(0, invite.as_bytes())
            .answer(100, b"")
            .wait(61_000)
            .answer(487, b"")
            .wait(40_000),
    );
    add(
        "fork-tcp",
        Program::default()
            .authenticated(1, udp_phone.as_bytes())
            .authenticated(4, tcp_phone.as_bytes())
            .authenticated(0, invite.as_bytes())
            .answer(486, b"")
            .repeat()
            .wait(600)
            .close(0)
            .wait(40_000),
    );
    add(
        "message",
        Program::default()
            .authenticated(1, udp_phone.as_bytes())
            .authenticated(0, request("MESSAGE", "m1", "").as_bytes())
            .answer(200, b"")
            .authenticated(0, request("INVITE", "i2", "").as_bytes())
            .wait(40_000),
    );
    let ping = format!(
        "OPTIONS sip:{DOMAIN} SIP/2.0\r\nVia: SIP/2.0/TCP [2001:db8::8]:40000;branch=z9hG4bKp1\r\n\
         From: <sip:{DOMAIN}>;tag=p\r\nTo: <sip:{DOMAIN}>\r\nCall-ID: ping\r\nCSeq: 1 OPTIONS\r\n\
         Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    );
    let mut stream = ping.clone().into_bytes();
    stream.extend_from_slice(b"\r\n\r\n");
    stream.extend_from_slice(ping.replace("z9hG4bKp1", "z9hG4bKp2").as_bytes());
    let half = ping.len() / 2;
    add(
        "stream",
        Program::default()
            .stream(0, &stream)
            .stream(0, &ping.as_bytes()[..half])
            .stream(0, &ping.as_bytes()[half..])
            .stream(1, b"\r\n")
            .stream(2, udp_phone.replace("UDP", "TLS").as_bytes())
            .close(2),
    );
    for (name, bytes) in corpus {
        add(
            &format!("datagram-{name}"),
            Program::default().datagram(0, bytes).repeat(),
        );
        add(
            &format!("stream-{name}"),
            Program::default().stream(1, bytes),
        );
    }
    seeds
}

/// Whole messages for the parse target.
pub fn parse_seeds() -> Vec<(String, Vec<u8>)> {
    vec![
        (
            "register".to_owned(),
            register("1000", "UDP", "[2001:db8::6]:5060", "r1").into_bytes(),
        ),
        (
            "invite".to_owned(),
            request("INVITE", "i1", SDP).into_bytes(),
        ),
        (
            "message".to_owned(),
            request("MESSAGE", "m1", "").into_bytes(),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The seed programs reach what they are meant to reach, so that the fuzzer starts deep.
    #[test]
    fn call_seed_reaches_the_dialog() {
        let seeds = core_seeds(&[]);
        let call = &seeds.iter().find(|(n, _)| n == "call").unwrap().1;
        // Run the program without its final waits and look at the harness.
        let mut harness = Harness::new();
        let udp_phone = register("1000", "UDP", "[2001:db8::6]:5060", "r1");
        harness.authenticated(udp(1), udp_phone.as_bytes());
        assert!(harness.to_phone.is_none());
        harness.authenticated(udp(0), request("INVITE", "i1", SDP).as_bytes());
        let (flow, forwarded) = harness.to_phone.clone().expect("INVITE forwarded");
        assert_eq!(flow.remote, udp(1).remote);
        assert!(forwarded.starts_with(b"INVITE sip:1000@[2001:db8::6]:5060"));
        harness.answer(200, SDP.as_bytes());
        assert!(harness.confirmed.is_some(), "2xx relayed to the caller");
        harness.in_dialog("ACK", b"");
        harness.in_dialog("BYE", b"");
        let (_, bye) = harness.to_phone.clone().unwrap();
        assert!(
            bye.starts_with(b"BYE "),
            "{}",
            String::from_utf8_lossy(&bye)
        );
        core(call);
    }
}
