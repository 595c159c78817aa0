//! A test-only ACME front: an HTTPS reverse proxy on `[::1]` before pebble, which lacks
//! renewal windows (ARI, RFC 9773) in Debian's version. It passes every request on with its
//! own address as `Host`, so that pebble writes its URLs for the front and checks signed
//! requests against them; it adds `renewalInfo` to the directory and answers it, reflects the
//! `replaces` field of new orders (RFC 9773 §5), and can refuse orders as a CA would.

use std::io::Write as _;
use std::net::{Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hotline::core::bans::Utc;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// How the front answers a new order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Orders {
    /// Forwarded to pebble.
    Forward,
    /// Refused with `rateLimited`, whatever they are for.
    RateLimited,
    /// Refused with `rejectedIdentifier` when they name an IP address (no RFC 8738).
    RejectIp,
}

#[derive(Default)]
struct Seen {
    /// The certificates whose renewal window was asked for, in order, each once.
    asked: Vec<String>,
    /// The `replaces` field of each new order, in order.
    replaces: Vec<Option<String>>,
}

struct Shared {
    /// The window (Unix ms) for the n-th certificate asked about; the last one for later ones.
    windows: Vec<(u64, u64)>,
    orders: Orders,
    seen: Seen,
}

pub struct Front {
    pub directory: String,
    shared: Arc<(Mutex<Shared>, Condvar)>,
}

/// Where pebble is, how to reach it, and the front's own address.
struct Upstream {
    address: SocketAddr,
    /// The root pebble's own certificate comes from.
    roots: rustls::RootCertStore,
    front: String,
}

/// Pebble's paths of the directory and of new orders.
const DIRECTORY: &str = "/dir";
const NEW_ORDER: &str = "/order-plz";

impl Front {
    /// Starts a front before pebble's `directory`, serving with `cert.pem` and `key.pem` of
    /// `dir` (for `::1`, issued by `root`, which pebble's own certificate comes from too).
    pub fn start(directory: &str, dir: &Path, root: &Path, windows: Vec<(u64, u64)>) -> Front {
        let url = directory.strip_prefix("https://").unwrap();
        let authority = url.strip_suffix(DIRECTORY).unwrap();
        let chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_file_iter(dir.join("cert.pem"))
                .unwrap()
                .map(Result::unwrap)
                .collect();
        let key = PrivateKeyDer::from_pem_file(dir.join("key.pem")).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let server = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
        let listener = TcpListener::bind((Ipv6Addr::LOCALHOST, 0)).unwrap();
        let front = format!("[::1]:{}", listener.local_addr().unwrap().port());
        let upstream = Upstream {
            address: authority.parse().unwrap(),
            roots: {
                let mut roots = rustls::RootCertStore::empty();
                roots
                    .add(CertificateDer::from_pem_file(root).unwrap())
                    .unwrap();
                roots
            },
            front: front.clone(),
        };
        let shared = Arc::new((
            Mutex::new(Shared {
                windows,
                orders: Orders::Forward,
                seen: Seen::default(),
            }),
            Condvar::new(),
        ));
        let (server, upstream) = (Arc::new(server), Arc::new(upstream));
        let front = Front {
            directory: format!("https://{front}{DIRECTORY}"),
            shared: shared.clone(),
        };
        std::thread::spawn(move || {
            for tcp in listener.incoming().map_while(Result::ok) {
                let (server, upstream) = (server.clone(), upstream.clone());
                let shared = shared.clone();
                std::thread::spawn(move || {
                    let connection = rustls::ServerConnection::new(server).unwrap();
                    let mut tls = rustls::StreamOwned::new(connection, tcp);
                    if let Some(request) = read_message(&mut tls) {
                        let response = answer(&request, &upstream, &shared);
                        let _ = tls.write_all(&response);
                        tls.conn.send_close_notify();
                        let _ = tls.flush();
                    }
                });
            }
        });
        front
    }

    pub fn set_orders(&self, orders: Orders) {
        self.shared.0.lock().unwrap().orders = orders;
    }

    /// Waits until the renewal window of `count` certificates was asked for; returns them.
    pub fn wait_for_asked(&self, count: usize) -> Vec<String> {
        self.wait(|seen| (seen.asked.len() >= count).then(|| seen.asked.clone()))
    }

    /// Waits until `count` new orders came; returns their `replaces` fields.
    pub fn wait_for_orders(&self, count: usize) -> Vec<Option<String>> {
        self.wait(|seen| (seen.replaces.len() >= count).then(|| seen.replaces.clone()))
    }

    pub fn orders(&self) -> usize {
        self.shared.0.lock().unwrap().seen.replaces.len()
    }

    fn wait<T>(&self, ready: impl Fn(&Seen) -> Option<T>) -> T {
        let deadline = Instant::now() + Duration::from_secs(60);
        let (lock, changed) = &*self.shared;
        let mut shared = lock.lock().unwrap();
        loop {
            if let Some(found) = ready(&shared.seen) {
                return found;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "the ACME front did not see it in 60 s");
            shared = changed.wait_timeout(shared, left).unwrap().0;
        }
    }
}

/// One HTTP/1.1 message: its head (request or status line and headers) and its body.
struct Message {
    head: String,
    body: Vec<u8>,
}

impl Message {
    fn start_line(&self) -> &str {
        self.head.lines().next().unwrap_or_default()
    }

    fn headers(&self) -> impl Iterator<Item = (&str, &str)> {
        self.head.lines().skip(1).filter_map(|line| {
            let (name, value) = line.split_once(':')?;
            Some((name.trim(), value.trim()))
        })
    }
}

/// Reads a message framed by Content-Length (or by the end of the stream, for responses).
fn read_message(stream: &mut impl std::io::Read) -> Option<Message> {
    let mut raw = Vec::new();
    let mut buffer = [0u8; 4096];
    let end = loop {
        if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break end;
        }
        let read = stream.read(&mut buffer).ok().filter(|&n| n > 0)?;
        raw.extend_from_slice(&buffer[..read]);
    };
    let head = String::from_utf8(raw[..end].to_vec()).ok()?;
    let mut message = Message {
        head,
        body: raw[end + 4..].to_vec(),
    };
    let length = message
        .headers()
        .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, value)| value.parse::<usize>().ok());
    match length {
        Some(length) => {
            while message.body.len() < length {
                let read = stream.read(&mut buffer).ok().filter(|&n| n > 0)?;
                message.body.extend_from_slice(&buffer[..read]);
            }
            message.body.truncate(length);
        }
        None if message.start_line().starts_with("HTTP/") => {
            let _ = stream.read_to_end(&mut message.body);
        }
        None => {}
    }
    Some(message)
}

fn answer(request: &Message, upstream: &Upstream, shared: &(Mutex<Shared>, Condvar)) -> Vec<u8> {
    let mut parts = request.start_line().split(' ');
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    if method == "GET" && path == DIRECTORY {
        let directory = forward(upstream, request);
        let body = String::from_utf8(directory.body.clone()).unwrap();
        let body = body.replacen(
            '{',
            &format!(
                "{{\"renewalInfo\": \"https://{}/renewal-info\",",
                upstream.front
            ),
            1,
        );
        return respond(&directory, body.as_bytes());
    }
    if let Some(certificate) = path.strip_prefix("/renewal-info/") {
        let (lock, changed) = shared;
        let mut shared = lock.lock().unwrap();
        let asked = &mut shared.seen.asked;
        let index = match asked.iter().position(|c| c == certificate) {
            Some(index) => index,
            None => {
                asked.push(certificate.to_owned());
                asked.len() - 1
            }
        };
        let (start, end) = shared.windows[index.min(shared.windows.len() - 1)];
        changed.notify_all();
        let body = format!(
            "{{\"suggestedWindow\": {{\"start\": \"{}\", \"end\": \"{}\"}}}}",
            Utc(start),
            Utc(end)
        );
        return format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nRetry-After: 21600\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes();
    }
    let response = forward(upstream, request);
    if method != "POST" || path != NEW_ORDER {
        return respond(&response, &response.body);
    }
    let payload = payload(&request.body);
    let replaces = json_string(&payload, "replaces");
    let orders = {
        let (lock, changed) = shared;
        let mut shared = lock.lock().unwrap();
        shared.seen.replaces.push(replaces.clone());
        changed.notify_all();
        shared.orders
    };
    let refusal = match orders {
        Orders::RateLimited => Some(("rateLimited", "too many certificates for this name")),
        Orders::RejectIp if payload.contains("\"ip\"") => Some((
            "rejectedIdentifier",
            "this CA does not issue certificates for IP addresses",
        )),
        _ => None,
    };
    if let Some((kind, detail)) = refusal {
        let body = format!(
            "{{\"type\": \"urn:ietf:params:acme:error:{kind}\", \"detail\": \"{detail}\", \
             \"status\": 400}}"
        );
        let nonce = response
            .headers()
            .find(|(name, _)| name.eq_ignore_ascii_case("replay-nonce"))
            .map(|(_, value)| format!("Replay-Nonce: {value}\r\n"))
            .unwrap_or_default();
        return format!(
            "HTTP/1.1 400 Bad Request\r\nContent-Type: application/problem+json\r\n\
             {nonce}Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes();
    }
    let body = String::from_utf8(response.body.clone()).unwrap();
    let body = match replaces {
        Some(replaces) if response.start_line().contains(" 201 ") => {
            body.replacen('{', &format!("{{\"replaces\": \"{replaces}\","), 1)
        }
        _ => body,
    };
    respond(&response, body.as_bytes())
}

/// The decoded JWS payload of an ACME POST.
fn payload(body: &[u8]) -> String {
    let body = String::from_utf8_lossy(body);
    let encoded = json_string(&body, "payload").unwrap_or_default();
    String::from_utf8(URL_SAFE_NO_PAD.decode(encoded).unwrap()).unwrap()
}

/// The string value of `"key"` in a JSON text (the first one).
fn json_string(json: &str, key: &str) -> Option<String> {
    let at = json.find(&format!("\"{key}\""))? + key.len() + 2;
    let rest = json[at..].trim_start().strip_prefix(':')?.trim_start();
    let rest = rest.strip_prefix('"')?;
    Some(rest[..rest.find('"')?].to_owned())
}

/// Passes `request` on to pebble with the front as `Host`; returns pebble's response. HTTP/1.0,
/// so that pebble frames its answer by closing the connection.
fn forward(upstream: &Upstream, request: &Message) -> Message {
    let tcp = TcpStream::connect(upstream.address).unwrap();
    let mut tls = super::tls_client(upstream.roots.clone(), "::1", tcp);
    let line = request.start_line();
    let method_and_path = line.rsplit_once(' ').map_or(line, |(start, _)| start);
    let mut head = format!("{method_and_path} HTTP/1.0\r\nHost: {}\r\n", upstream.front);
    for (name, value) in request.headers() {
        let skipped = ["host", "content-length", "connection"];
        if !skipped.iter().any(|s| name.eq_ignore_ascii_case(s)) {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", request.body.len()));
    tls.write_all(head.as_bytes()).unwrap();
    tls.write_all(&request.body).unwrap();
    tls.flush().unwrap();
    let mut response = read_message(&mut tls).expect("pebble answers");
    if method_and_path.starts_with("HEAD ") {
        response.body.clear();
    }
    response
}

/// `response` with `body` instead of its own.
fn respond(response: &Message, body: &[u8]) -> Vec<u8> {
    let mut head = response.start_line().to_owned() + "\r\n";
    for (name, value) in response.headers() {
        let skipped = ["content-length", "connection", "transfer-encoding"];
        if !skipped.iter().any(|s| name.eq_ignore_ascii_case(s)) {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    head.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    ));
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}
