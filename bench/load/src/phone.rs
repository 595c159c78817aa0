//! One phone: a TLS or TCP connection to the target that registers, answers CRLF pings and the
//! calls it receives (as a callee would), and places calls.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::time::Duration;

use anyhow::Context as _;
use hotline::sip::{Frame, Message, Method, next_frame};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpSocket;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_rustls::TlsConnector;

use crate::sip::{self, MAX_HEADERS, MAX_MESSAGE};

/// Where and how the phones connect.
pub struct Settings {
    pub target: SocketAddr,
    /// The SIP domain of request URIs and addresses of record (`[::1]`, `hotline.bench`).
    pub domain: String,
    /// `None`: plain TCP.
    pub tls: Option<(TlsConnector, ServerName<'static>)>,
}

impl Settings {
    fn transport(&self) -> &'static str {
        if self.tls.is_some() { "TLS" } else { "TCP" }
    }

    /// A connection from `source` (any local address when `None`), with the TLS handshake done.
    /// `reset_on_close`: closing sends RST instead of FIN, so that no TIME_WAIT piles up on the
    /// generator's ports.
    async fn connect(
        &self,
        source: Option<IpAddr>,
        reset_on_close: bool,
    ) -> anyhow::Result<(Connection, SocketAddr)> {
        let socket = TcpSocket::new_v6()?;
        if reset_on_close {
            // Deprecated because a lingering close blocks the thread; a zero linger does not.
            #[allow(deprecated)]
            socket.set_linger(Some(Duration::ZERO))?;
        }
        if let Some(source) = source {
            socket.bind(SocketAddr::new(source, 0))?;
        }
        let tcp = socket.connect(self.target).await.context("connect")?;
        tcp.set_nodelay(true)?;
        let local = tcp.local_addr()?;
        let connection: Connection = match &self.tls {
            None => Box::new(tcp),
            Some((connector, name)) => Box::new(
                connector
                    .connect(name.clone(), tcp)
                    .await
                    .context("TLS handshake")?,
            ),
        };
        Ok((connection, local))
    }
}

trait Stream: AsyncRead + AsyncWrite + Unpin {}
impl<T: AsyncRead + AsyncWrite + Unpin> Stream for T {}
type Connection = Box<dyn Stream>;

/// Retransmissions the phones made: 2xx answers repeated because no ACK came within T1, and ACKs
/// repeated for 2xx answers received again.
#[derive(Default)]
pub struct Retransmissions(Cell<u64>);

impl Retransmissions {
    pub fn count(&self) -> u64 {
        self.0.get()
    }

    fn add(&self) {
        self.0.set(self.0.get() + 1);
    }
}

/// One user of the CSV.
#[derive(Clone)]
pub struct User {
    pub extension: String,
    pub password: String,
}

pub struct Phone {
    pub user: User,
    domain: String,
    transport: &'static str,
    /// `[addr]:port` of this end of the connection, for Via and Contact.
    local: String,
    outbox: mpsc::UnboundedSender<Vec<u8>>,
    /// Responses wanted, by Call-ID.
    waiters: RefCell<HashMap<String, mpsc::UnboundedSender<Message>>>,
    /// 2xx answers sent and not yet acknowledged, by `Call-ID CSeq-number`.
    unacknowledged: RefCell<HashMap<String, Rc<Cell<bool>>>>,
    sequence: Cell<u64>,
    register_cseq: Cell<u32>,
    registering: Cell<bool>,
    closed: Cell<bool>,
    pub pongs: Cell<u64>,
    retransmissions: Rc<Retransmissions>,
}

/// Why an operation failed, for the report.
pub type Failure = &'static str;

/// Per-phone timers of RFC 3261: T1 and T2 for 2xx retransmissions, 64·T1 to give up.
const T1: Duration = Duration::from_millis(500);
const T2: Duration = Duration::from_secs(4);
const TIMER_H: Duration = Duration::from_secs(32);

impl Phone {
    /// Connects (TLS handshake included) and starts the connection's reader and writer.
    pub async fn connect(
        settings: &Settings,
        user: User,
        source: Option<IpAddr>,
        retransmissions: Rc<Retransmissions>,
    ) -> anyhow::Result<Rc<Phone>> {
        let (connection, local) = settings.connect(source, false).await?;
        let (reader, writer) = tokio::io::split(connection);
        let (outbox, queued) = mpsc::unbounded_channel();
        let phone = Rc::new(Phone {
            user,
            domain: settings.domain.clone(),
            transport: settings.transport(),
            local: format!("[{}]:{}", local.ip(), local.port()),
            outbox,
            waiters: RefCell::default(),
            unacknowledged: RefCell::default(),
            sequence: Cell::new(0),
            register_cseq: Cell::new(0),
            registering: Cell::new(false),
            closed: Cell::new(false),
            pongs: Cell::new(0),
            retransmissions,
        });
        tokio::task::spawn_local(write(writer, queued));
        tokio::task::spawn_local(read(reader, phone.clone()));
        Ok(phone)
    }

    pub fn is_closed(&self) -> bool {
        self.closed.get()
    }

    pub fn ping(&self) {
        let _ = self.outbox.send(b"\r\n\r\n".to_vec());
    }

    fn send(&self, bytes: Vec<u8>) {
        let _ = self.outbox.send(bytes);
    }

    fn unique(&self) -> u64 {
        let n = self.sequence.get() + 1;
        self.sequence.set(n);
        n
    }

    fn via(&self) -> String {
        let (transport, local, n) = (self.transport, &self.local, self.unique());
        let extension = &self.user.extension;
        format!("SIP/2.0/{transport} {local};branch=z9hG4bK{extension}x{n};rport")
    }

    fn contact(&self) -> String {
        let transport = self.transport.to_ascii_lowercase();
        format!(
            "<sip:{}@{};transport={transport}>",
            self.user.extension, self.local
        )
    }

    fn aor(&self, extension: &str) -> String {
        format!("sip:{extension}@{}", self.domain)
    }

    /// Responses with this Call-ID, until the returned waiter is dropped.
    fn wait(self: &Rc<Self>, call_id: &str) -> Waiter {
        let (sender, responses) = mpsc::unbounded_channel();
        self.waiters.borrow_mut().insert(call_id.to_owned(), sender);
        Waiter {
            phone: self.clone(),
            call_id: call_id.to_owned(),
            responses,
        }
    }

    /// Registers (REGISTER, 401, REGISTER with Digest, 200) and returns how long it took.
    /// A phone registers one at a time: `Err("busy")` while its last REGISTER is pending.
    pub async fn register(
        self: &Rc<Self>,
        expires: u32,
        deadline: Instant,
    ) -> Result<Duration, Failure> {
        if self.registering.replace(true) {
            return Err("phone still registering");
        }
        let result = self.register_once(expires, deadline).await;
        self.registering.set(false);
        result
    }

    async fn register_once(
        self: &Rc<Self>,
        expires: u32,
        deadline: Instant,
    ) -> Result<Duration, Failure> {
        let start = Instant::now();
        let call_id = format!("reg-{}-{}", self.user.extension, self.local);
        let mut waiter = self.wait(&call_id);
        let uri = format!("sip:{}", self.domain);
        let aor = format!("<{}>", self.aor(&self.user.extension));
        let from = format!("{aor};tag=r{}", self.unique());
        let (contact, expires) = (self.contact(), expires.to_string());
        let mut authorization: Option<String> = None;
        for _ in 0..3 {
            let cseq = self.register_cseq.get() + 1;
            self.register_cseq.set(cseq);
            let (via, cseq_text) = (self.via(), format!("{cseq} REGISTER"));
            let mut headers = vec![
                ("Via", via.as_str()),
                ("From", from.as_str()),
                ("To", aor.as_str()),
                ("Call-ID", call_id.as_str()),
                ("CSeq", cseq_text.as_str()),
                ("Contact", contact.as_str()),
                ("Expires", expires.as_str()),
            ];
            if let Some(authorization) = &authorization {
                headers.push(("Authorization", authorization.as_str()));
            }
            self.send(sip::request("REGISTER", &uri, &headers, ""));
            let response = waiter.final_response(cseq, deadline).await?;
            match response.status() {
                Some(200..=299) => return Ok(start.elapsed()),
                Some(401) => {
                    let challenge = sip::header(&response, "WWW-Authenticate")
                        .and_then(crate::digest::Challenge::parse)
                        .ok_or("401 without an MD5 challenge")?;
                    let user = &self.user;
                    authorization =
                        Some(challenge.answer(&user.extension, &user.password, "REGISTER", &uri));
                }
                _ => return Err("REGISTER rejected"),
            }
        }
        Err("REGISTER challenged again and again")
    }

    /// One call to `callee`: INVITE, 407, ACK, INVITE with Digest, 180, 200, ACK, hold
    /// (re-INVITE `sendonly`, 200, ACK), `hold` of talk, BYE, 200. Returns the setup time, from
    /// the first INVITE to the 200.
    pub async fn call(
        self: &Rc<Self>,
        callee: &str,
        hold: Duration,
        deadline: Instant,
    ) -> Result<Duration, Failure> {
        let start = Instant::now();
        let n = self.unique();
        let call_id = format!("call-{}-{n}-{}", self.user.extension, self.local);
        let mut waiter = self.wait(&call_id);
        let uri = self.aor(callee);
        let from = format!("<{}>;tag=c{n}", self.aor(&self.user.extension));
        let to = format!("<{uri}>");
        let contact = self.contact();
        let call = Dialog {
            call_id: &call_id,
            from: &from,
        };
        let offer = sip::sdp_offer(n, 1, "sendrecv");

        let via = self.via();
        self.send(call.request("INVITE", &uri, &via, &to, 1, &[], &contact, &offer));
        let challenged = waiter.final_response(1, deadline).await?;
        let challenge = match challenged.status() {
            Some(407) => sip::header(&challenged, "Proxy-Authenticate")
                .and_then(crate::digest::Challenge::parse)
                .ok_or("407 without an MD5 challenge")?,
            _ => return Err("INVITE not challenged"),
        };
        let to_407 = challenged
            .header(hotline::sip::HeaderName::To)
            .unwrap_or(&to);
        self.send(call.request("ACK", &uri, &via, to_407, 1, &[], "", ""));

        let user = &self.user;
        let credentials = challenge.answer(&user.extension, &user.password, "INVITE", &uri);
        let headers = [("Proxy-Authorization", credentials.as_str())];
        let via = self.via();
        self.send(call.request("INVITE", &uri, &via, &to, 2, &headers, &contact, &offer));
        let answered = waiter.final_response(2, deadline).await?;
        if answered.status() != Some(200) {
            return Err("INVITE not answered 200");
        }
        let setup = start.elapsed();
        let to = answered
            .header(hotline::sip::HeaderName::To)
            .ok_or("200 without To")?
            .to_owned();
        let target = answered
            .header(hotline::sip::HeaderName::Contact)
            .map(sip::uri_of)
            .ok_or("200 without Contact")?
            .to_owned();
        let mut routes: Vec<String> = answered
            .values(hotline::sip::HeaderName::RecordRoute)
            .map(str::to_owned)
            .collect();
        routes.reverse();
        let routes: Vec<(&str, &str)> = routes.iter().map(|r| ("Route", r.as_str())).collect();
        let in_dialog = |method, cseq, body| {
            let via = self.via();
            call.request(method, &target, &via, &to, cseq, &routes, &contact, body)
        };
        let ack = in_dialog("ACK", 2, "");
        self.send(ack.clone());

        let hold_offer = sip::sdp_offer(n, 2, "sendonly");
        self.send(in_dialog("INVITE", 3, &hold_offer));
        loop {
            let response = waiter.next(deadline).await?;
            match response.cseq().map(|c| c.number) {
                // The callee saw no ACK in time and repeats its 200: so do we our ACK.
                Some(2) if response.status() == Some(200) => {
                    self.retransmissions.add();
                    self.send(ack.clone());
                }
                Some(3) if response.status().is_some_and(|s| s >= 200) => {
                    if response.status() != Some(200) {
                        return Err("hold not answered 200");
                    }
                    break;
                }
                _ => {}
            }
        }
        self.send(in_dialog("ACK", 3, ""));
        tokio::time::sleep(hold).await;
        self.send(in_dialog("BYE", 4, ""));
        match waiter.final_response(4, deadline).await?.status() {
            Some(200) => Ok(setup),
            _ => Err("BYE not answered 200"),
        }
    }

    /// Answers a request the proxy sent this phone: as a callee, at once (180 and 200 to an
    /// INVITE, 200 to a re-INVITE, BYE or anything else), repeating a 2xx to an INVITE until
    /// its ACK comes.
    fn answer(self: &Rc<Self>, request: Message) {
        let Some(cseq) = request.cseq().map(|c| c.number) else {
            return;
        };
        let key = format!("{} {cseq}", request.call_id().unwrap_or(""));
        match request.method() {
            Some(Method::Ack) => {
                if let Some(acknowledged) = self.unacknowledged.borrow_mut().remove(&key) {
                    acknowledged.set(true);
                }
            }
            Some(Method::Invite) => {
                let tag = format!("a{}", self.unique());
                let contact = self.contact();
                let extra = [("Contact", contact.as_str())];
                let body = std::str::from_utf8(request.body()).unwrap_or("");
                let direction = if body.contains("a=sendonly") {
                    "sendonly"
                } else {
                    "sendrecv"
                };
                if !request
                    .header(hotline::sip::HeaderName::To)
                    .is_some_and(|t| t.contains("tag="))
                {
                    self.send(sip::response(&request, "180 Ringing", &tag, &extra, ""));
                }
                let ok = sip::response(
                    &request,
                    "200 OK",
                    &tag,
                    &extra,
                    &sip::sdp_answer(direction),
                );
                self.send(ok.clone());
                let acknowledged = Rc::new(Cell::new(false));
                self.unacknowledged
                    .borrow_mut()
                    .insert(key.clone(), acknowledged.clone());
                tokio::task::spawn_local(repeat_until_acknowledged(
                    self.clone(),
                    key,
                    ok,
                    acknowledged,
                ));
            }
            _ => self.send(sip::response(&request, "200 OK", "b", &[], "")),
        }
    }
}

/// The caller's side of one call.
struct Dialog<'a> {
    call_id: &'a str,
    from: &'a str,
}

impl Dialog<'_> {
    #[allow(clippy::too_many_arguments)]
    fn request(
        &self,
        method: &str,
        uri: &str,
        via: &str,
        to: &str,
        cseq: u32,
        extra: &[(&str, &str)],
        contact: &str,
        body: &str,
    ) -> Vec<u8> {
        let cseq = format!("{cseq} {method}");
        let mut headers = vec![
            ("Via", via),
            ("From", self.from),
            ("To", to),
            ("Call-ID", self.call_id),
            ("CSeq", cseq.as_str()),
        ];
        headers.extend_from_slice(extra);
        if !contact.is_empty() {
            headers.push(("Contact", contact));
        }
        sip::request(method, uri, &headers, body)
    }
}

/// RFC 3261 §13.3.1.4: a UAS repeats its 2xx, over any transport, until the ACK arrives.
async fn repeat_until_acknowledged(
    phone: Rc<Phone>,
    key: String,
    ok: Vec<u8>,
    acknowledged: Rc<Cell<bool>>,
) {
    let start = Instant::now();
    let mut interval = T1;
    loop {
        tokio::time::sleep(interval).await;
        if acknowledged.get() || phone.is_closed() {
            return;
        }
        if start.elapsed() >= TIMER_H {
            phone.unacknowledged.borrow_mut().remove(&key);
            return;
        }
        phone.retransmissions.add();
        phone.send(ok.clone());
        interval = (interval * 2).min(T2);
    }
}

/// The responses to one Call-ID.
struct Waiter {
    phone: Rc<Phone>,
    call_id: String,
    responses: mpsc::UnboundedReceiver<Message>,
}

impl Waiter {
    async fn next(&mut self, deadline: Instant) -> Result<Message, Failure> {
        match tokio::time::timeout_at(deadline, self.responses.recv()).await {
            Ok(Some(response)) => Ok(response),
            Ok(None) => Err("connection closed"),
            Err(_) => Err("timeout"),
        }
    }

    /// The first final response to the request with CSeq number `cseq`.
    async fn final_response(&mut self, cseq: u32, deadline: Instant) -> Result<Message, Failure> {
        loop {
            let response = self.next(deadline).await?;
            let final_status = response.status().is_some_and(|s| s >= 200);
            if final_status && response.cseq().map(|c| c.number) == Some(cseq) {
                return Ok(response);
            }
        }
    }
}

impl Drop for Waiter {
    fn drop(&mut self) {
        self.phone.waiters.borrow_mut().remove(&self.call_id);
    }
}

async fn write<W: AsyncWrite + Unpin>(mut writer: W, mut queued: mpsc::UnboundedReceiver<Vec<u8>>) {
    while let Some(bytes) = queued.recv().await {
        if writer.write_all(&bytes).await.is_err() {
            return;
        }
    }
    let _ = writer.shutdown().await;
}

/// Frames what arrives: pongs are counted, responses handed to their waiter,
/// requests answered. At the end of the connection every waiter learns it.
async fn read<R: AsyncRead + Unpin>(mut reader: R, phone: Rc<Phone>) {
    let mut buffer = Vec::with_capacity(4096);
    let mut chunk = vec![0u8; 16 * 1024];
    'connection: loop {
        loop {
            // A server does not ping its phones: a CRLF is the pong to ours (the framing would
            // wait for a second CRLF that might make it a ping).
            if buffer.starts_with(b"\r\n") {
                buffer.drain(..2);
                phone.pongs.set(phone.pongs.get() + 1);
                continue;
            }
            match next_frame(&buffer, MAX_MESSAGE) {
                Ok(Frame::Incomplete) => break,
                Ok(Frame::Ping(length) | Frame::Pong(length)) => {
                    buffer.drain(..length);
                }
                Ok(Frame::Message(length)) => {
                    let bytes: Vec<u8> = buffer.drain(..length).collect();
                    let Ok(message) = Message::parse(&bytes, MAX_HEADERS) else {
                        continue;
                    };
                    if message.is_request() {
                        phone.answer(message);
                    } else if let Some(call_id) = message.call_id() {
                        let waiter = phone.waiters.borrow().get(call_id).cloned();
                        if let Some(waiter) = waiter {
                            let _ = waiter.send(message);
                        }
                    }
                }
                Err(_) => break 'connection,
            }
        }
        match reader.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
        }
    }
    phone.closed.set(true);
    phone.waiters.borrow_mut().clear();
}

/// One handshake for the handshake ladder: connect, TLS handshake, a CRLF ping and its pong,
/// then close at once (with RST). Returns the time
/// to the pong.
pub async fn handshake(
    settings: &Settings,
    source: Option<IpAddr>,
    deadline: Instant,
) -> Result<Duration, Failure> {
    let start = Instant::now();
    let attempt = async {
        let (mut connection, _) = settings.connect(source, true).await.map_err(|e| {
            if e.to_string().contains("TLS") {
                "TLS handshake failed"
            } else {
                "connect failed"
            }
        })?;
        connection
            .write_all(b"\r\n\r\n")
            .await
            .map_err(|_| "write failed")?;
        let mut pong = [0u8; 2];
        connection
            .read_exact(&mut pong)
            .await
            .map_err(|_| "no pong")?;
        Ok::<_, Failure>(connection)
    };
    let connection = tokio::time::timeout_at(deadline, attempt)
        .await
        .map_err(|_| "timeout")??;
    let latency = start.elapsed();
    drop(connection);
    Ok(latency)
}

/// The TLS connector the phones share.
pub fn tls_connector() -> TlsConnector {
    TlsConnector::from(crate::tls::client_config())
}
