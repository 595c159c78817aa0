//! Test harness: runs the real `hotline` binary on `[::1]` and talks SIP to it over UDP, TCP and
//! TLS. Every wait is for an event (a log line, a response, end of stream); the timeouts only
//! turn a server that never answers into a failure.
//!
//! Each test crate uses a different part of this module.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::io::{BufRead as _, BufReader, ErrorKind, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use hotline::core::auth::{Algorithm, ResponseInput, response_hex};
use hotline::sip::{Frame, HeaderName, Message, next_frame, unquote};
use md5::{Digest as _, Md5};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use tempfile::TempDir;

/// The SIP domain and Digest realm of every test server.
pub const DOMAIN: &str = "hotline.test";

/// How long to wait for a log line or for the server to exit before failing.
const LOG_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a single socket read may wait before failing.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Headers accepted when parsing what the server sends.
const MAX_HEADERS: usize = 1000;

/// Largest message read from a stream.
const MAX_MESSAGE: usize = 65_535;

unsafe extern "C" {
    /// kill(2) of the C library that std links anyway: std can only send SIGKILL.
    safe fn kill(pid: i32, signal: i32) -> i32;
}

const SIGTERM: i32 = 15;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
    Tls,
}

pub const TRANSPORTS: [Transport; 3] = [Transport::Udp, Transport::Tcp, Transport::Tls];

impl Transport {
    /// The name in `Via` and in the server's log.
    pub fn name(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
            Transport::Tls => "TLS",
        }
    }
}

/// A running `hotline serve` with its own data directory.
pub struct Server {
    dir: TempDir,
    config: PathBuf,
    child: Child,
    log: Arc<Log>,
    udp: SocketAddr,
    tcp: SocketAddr,
    tls: SocketAddr,
}

impl Server {
    /// Starts a server on ephemeral ports of `[::1]`. `extra_toml` holds tables such as
    /// `[registrar]` appended to the configuration.
    ///
    /// Every test speaks from `[::1]`, far faster than a phone, so the flood limits are raised
    /// out of the way unless `extra_toml` has a `[flood]` table of its own. A `[listen]` table
    /// of its own (one address per transport) replaces the ephemeral ports.
    pub fn start(extra_toml: &str) -> Server {
        let dir = TempDir::new().expect("temporary directory");
        let config = write_config(dir.path(), "[::1]", extra_toml);
        Server::spawn(binary(), dir, config)
    }

    /// Like [`Server::start`], with `env` set for the server and the systemd variables
    /// (`NOTIFY_SOCKET`, `WATCHDOG_USEC`, `WATCHDOG_PID`, `JOURNAL_STREAM`) of the test process
    /// removed; returns at once, before the server is ready.
    pub fn start_with_env(extra_toml: &str, env: &[(&str, &OsStr)]) -> Starting {
        let dir = TempDir::new().expect("temporary directory");
        let config = write_config(dir.path(), "[::1]", extra_toml);
        let (child, log) = launch(binary(), &config, Some(env));
        Starting {
            child: KillOnDrop(Some(child)),
            dir,
            config,
            log,
        }
    }

    /// Starts a server on a configuration file written elsewhere (by `hotline setup`, say),
    /// whose `data_dir` is `<dir>/data` and whose listeners are one each of UDP, TCP and TLS.
    pub fn start_with_config(dir: TempDir, config: PathBuf) -> Server {
        Server::spawn(binary(), dir, config)
    }

    /// Starts `hotline serve` with `command` (the binary, or a wrapper that runs it) on `config`
    /// and waits until it is ready.
    fn spawn(command: Command, dir: TempDir, config: PathBuf) -> Server {
        let (child, log, [udp, tcp, tls]) = spawn(command, &config);
        Server {
            dir,
            config,
            child,
            log,
            udp,
            tcp,
            tls,
        }
    }

    /// Stops the server cleanly and starts it again on the same data directory (new ports).
    pub fn restart(&mut self) {
        self.stop();
        self.start_again();
    }

    /// Starts the server again after [`Server::stop`], on the same data directory (new ports).
    pub fn start_again(&mut self) {
        let (child, log, [udp, tcp, tls]) = spawn(binary(), &self.config);
        (self.child, self.log) = (child, log);
        (self.udp, self.tcp, self.tls) = (udp, tcp, tls);
    }

    /// Sends SIGTERM and asserts a clean exit (status 0).
    pub fn stop(&mut self) {
        let pid = i32::try_from(self.child.id()).expect("pid");
        assert_eq!(kill(pid, SIGTERM), 0, "kill -TERM {pid}");
        self.log.wait(LOG_TIMEOUT, "the server to exit", |state| {
            state.ended.then_some(())
        });
        let status = self.child.wait().expect("wait for the server");
        assert!(status.success(), "the server exited with {status}");
        self.wait_for_log("shutting down");
    }

    pub fn address(&self, transport: Transport) -> SocketAddr {
        match transport {
            Transport::Udp => self.udp,
            Transport::Tcp => self.tcp,
            Transport::Tls => self.tls,
        }
    }

    /// The server's process id, to read its memory from `/proc`.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The HTTPS listener's address (a server with `[web]` enabled on `[::1]:0`).
    pub fn https_address(&self) -> SocketAddr {
        let line = self.wait_for_log("listening transport=HTTPS");
        listener(&line).expect("HTTPS listener line").1
    }

    /// Waits for a log line containing `needle` (since the last start) and returns it.
    pub fn wait_for_log(&self, needle: &str) -> String {
        self.wait_for_logs(needle, 1).pop().expect("one line")
    }

    /// Waits until `count` log lines contain `needle` and returns them.
    pub fn wait_for_logs(&self, needle: &str, count: usize) -> Vec<String> {
        let what = format!("{count} log lines containing {needle:?}");
        self.log.wait(LOG_TIMEOUT, &what, |state| {
            let found: Vec<String> = state
                .lines
                .iter()
                .filter(|line| line.contains(needle))
                .cloned()
                .collect();
            (found.len() >= count).then_some(found)
        })
    }

    /// Every log line so far (since the last start).
    pub fn log_lines(&self) -> Vec<String> {
        self.log.state.lock().unwrap().lines.clone()
    }

    /// Waits for a log line (since the last start) for which `matches` holds, and returns it.
    pub fn wait_for_log_where(&self, what: &str, matches: impl Fn(&str) -> bool) -> String {
        self.log.wait(LOG_TIMEOUT, what, |state| {
            state.lines.iter().find(|line| matches(line)).cloned()
        })
    }

    /// Runs `hotline --config <this server's file> ARGS…` to completion.
    pub fn hotline(&self, args: &[&str]) -> Output {
        hotline(&self.config, args)
    }

    /// `hotline owner passwd` with `password` on its standard input.
    pub fn owner_passwd(&self, password: &str) -> Output {
        let mut child = binary()
            .arg("--config")
            .arg(&self.config)
            .args(["owner", "passwd"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run hotline owner passwd");
        let mut stdin = child.stdin.take().expect("stdin");
        writeln!(stdin, "{password}").expect("write the password");
        drop(stdin);
        child.wait_with_output().expect("hotline owner passwd")
    }

    /// `hotline user add EXT --name NAME`; returns the password it shows.
    pub fn user_add(&self, extension: &str, name: &str) -> String {
        let output = self.hotline(&["user", "add", extension, "--name", name]);
        password_of(&output)
    }

    /// `hotline user passwd EXT`; returns the new password.
    pub fn user_passwd(&self, extension: &str) -> String {
        password_of(&self.hotline(&["user", "passwd", extension]))
    }

    pub fn user_remove(&self, extension: &str) {
        let output = self.hotline(&["user", "remove", extension]);
        assert!(output.status.success(), "user remove: {output:?}");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A server started by [`Server::start_with_env`] that may not be ready yet.
pub struct Starting {
    /// Killed on drop unless [`Starting::ready`] took it; before `dir` goes.
    child: KillOnDrop,
    dir: TempDir,
    config: PathBuf,
    log: Arc<Log>,
}

impl Starting {
    /// Waits for `ready` in the log and learns the listeners' addresses from it.
    pub fn ready(self) -> Server {
        let [udp, tcp, tls] = wait_ready(&self.log);
        let Starting {
            mut child,
            dir,
            config,
            log,
        } = self;
        Server {
            dir,
            config,
            child: child.0.take().expect("the server process"),
            log,
            udp,
            tcp,
            tls,
        }
    }
}

struct KillOnDrop(Option<Child>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The password line of `user add` or `user passwd`: forty digits.
fn password_of(output: &Output) -> String {
    assert!(output.status.success(), "hotline user: {output:?}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let password = stdout
        .lines()
        .find_map(|line| line.trim().strip_prefix("password:"))
        .unwrap_or_else(|| panic!("no password line in {stdout}"))
        .trim()
        .to_owned();
    assert!(
        password.len() == 40 && password.bytes().all(|b| b.is_ascii_digit()),
        "password {password:?}"
    );
    password
}

/// Writes a test configuration into `dir`, listening on ephemeral ports of `host` (`[::1]`, or
/// `[::]` in a network namespace) unless `extra_toml` has a `[listen]` table. Every test speaks
/// from one address, far faster than a phone, so the flood limits are raised out of the way
/// unless `extra_toml` has a `[flood]` table.
fn write_config(dir: &Path, host: &str, extra_toml: &str) -> PathBuf {
    let config = dir.join("hotline.toml");
    let data_dir = dir.join("data");
    let flood = match extra_toml.contains("[flood]") {
        true => String::new(),
        false => "[flood]\nper_address = 1000000\nper_prefix = [[64, 1000000]]\n".to_owned(),
    };
    let listen = match extra_toml.contains("[listen]") {
        true => String::new(),
        false => {
            format!("[listen]\nudp = [\"{host}:0\"]\ntcp = [\"{host}:0\"]\ntls = [\"{host}:0\"]\n")
        }
    };
    let text = format!(
        "domain = \"{DOMAIN}\"\ndata_dir = \"{}\"\n{listen}{flood}{extra_toml}\n",
        data_dir.display()
    );
    std::fs::write(&config, text).expect("write the configuration");
    config
}

/// Runs `hotline --config CONFIG ARGS…` to completion.
pub fn hotline(config: &Path, args: &[&str]) -> Output {
    binary()
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .expect("run hotline")
}

/// The binary under test.
fn binary() -> Command {
    Command::new(env!("CARGO_BIN_EXE_hotline"))
}

/// Starts `hotline serve` with `command` (the binary, or a wrapper that runs it) and waits
/// for `ready`; returns the UDP, TCP and TLS addresses.
fn spawn(command: Command, config: &Path) -> (Child, Arc<Log>, [SocketAddr; 3]) {
    let (child, log) = launch(command, config, None);
    let addresses = wait_ready(&log);
    (child, log, addresses)
}

/// Starts `hotline serve` with its stderr read into a [`Log`]. With `env`, the systemd
/// variables of the test process are removed and `env` is set.
fn launch(
    mut command: Command,
    config: &Path,
    env: Option<&[(&str, &OsStr)]>,
) -> (Child, Arc<Log>) {
    command
        .arg("--config")
        .arg(config)
        .arg("serve")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Some(env) = env {
        for name in [
            "NOTIFY_SOCKET",
            "WATCHDOG_USEC",
            "WATCHDOG_PID",
            "JOURNAL_STREAM",
        ] {
            command.env_remove(name);
        }
        command.envs(env.iter().copied());
    }
    let mut child = command.spawn().expect("start hotline");
    let log = Arc::new(Log::default());
    let stderr = child.stderr.take().expect("stderr");
    let reader = log.clone();
    std::thread::spawn(move || reader.read(stderr));
    (child, log)
}

/// Waits for `ready` in the log; returns the UDP, TCP and TLS addresses logged before it.
fn wait_ready(log: &Log) -> [SocketAddr; 3] {
    let listeners: Vec<(String, SocketAddr)> =
        log.wait(LOG_TIMEOUT, "the server to be ready", |state| {
            state
                .lines
                .iter()
                .any(|line| line.ends_with("ready"))
                .then(|| state.lines.iter().filter_map(|l| listener(l)).collect())
        });
    let address = |transport: Transport| {
        let found: Vec<SocketAddr> = listeners
            .iter()
            .filter(|(t, _)| *t == transport.name())
            .map(|(_, a)| *a)
            .collect();
        assert_eq!(
            found.len(),
            1,
            "{} listeners: {listeners:?}",
            transport.name()
        );
        found[0]
    };
    TRANSPORTS.map(address)
}

/// `… listening transport=UDP address=[::1]:40123` → ("UDP", address).
fn listener(line: &str) -> Option<(String, SocketAddr)> {
    let mut words = line.split_whitespace().skip_while(|w| *w != "listening");
    words.next()?;
    let transport = words.next()?.strip_prefix("transport=")?;
    let address = words.next()?.strip_prefix("address=")?.parse().ok()?;
    Some((transport.to_owned(), address))
}

/// The server's stderr, line by line, as it arrives.
#[derive(Default)]
struct Log {
    state: Mutex<LogState>,
    changed: Condvar,
}

#[derive(Default)]
struct LogState {
    lines: Vec<String>,
    /// The server closed stderr: it exited.
    ended: bool,
}

impl Log {
    fn read(&self, stderr: ChildStderr) {
        let mut reader = BufReader::new(stderr);
        let mut line = Vec::new();
        loop {
            line.clear();
            let read = reader.read_until(b'\n', &mut line);
            let mut state = self.state.lock().unwrap();
            match read {
                Ok(0) | Err(_) => {
                    state.ended = true;
                    self.changed.notify_all();
                    return;
                }
                Ok(_) => {
                    let text = String::from_utf8_lossy(&line).trim_end().to_owned();
                    eprintln!("server: {text}");
                    state.lines.push(text);
                    self.changed.notify_all();
                }
            }
        }
    }

    /// Waits until `found` returns something; fails after `timeout` or when the server exited
    /// without it.
    fn wait<T>(
        &self,
        timeout: Duration,
        what: &str,
        mut found: impl FnMut(&LogState) -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + timeout;
        let mut state = self.state.lock().unwrap();
        loop {
            if let Some(value) = found(&state) {
                return value;
            }
            assert!(!state.ended, "the server exited while waiting for {what}");
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "timed out waiting for {what}");
            state = self.changed.wait_timeout(state, left).unwrap().0;
        }
    }
}

/// Makes branch parameters, tags, Call-IDs and cnonces unique within the test process.
fn unique(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}{}x{n}", std::process::id())
}

/// A stream the client reads and writes: TCP or TLS over TCP.
trait Stream: Read + Write + Send {}
impl<S: Read + Write + Send> Stream for S {}

enum Channel {
    Datagram(UdpSocket),
    Stream {
        stream: Box<dyn Stream>,
        received: Vec<u8>,
    },
}

/// A minimal SIP user agent on `[::1]`: one socket or connection to the server, one Call-ID.
pub struct Client {
    transport: Transport,
    channel: Channel,
    local: SocketAddr,
    call_id: String,
    cseq: u32,
}

impl Client {
    /// Opens a socket or connection to `server` (TLS verified against its certificate).
    pub fn connect(server: &Server, transport: Transport) -> Client {
        let remote = server.address(transport);
        if transport != Transport::Udp {
            return Client::over_stream(server, transport, remote);
        }
        let socket = UdpSocket::bind("[::1]:0").expect("bind UDP");
        socket.connect(remote).expect("connect UDP");
        socket.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
        Client {
            transport,
            local: socket.local_addr().unwrap(),
            channel: Channel::Datagram(socket),
            call_id: unique("call-"),
            cseq: 0,
        }
    }

    /// A TCP or TLS client connected to `remote` (TLS verified against the server's generated
    /// certificate).
    fn over_stream(server: &Server, transport: Transport, remote: SocketAddr) -> Client {
        let roots = (transport == Transport::Tls).then(|| generated_root(server));
        Client::over_tcp(transport, remote, roots)
    }

    /// A TCP client connected to `remote`, or with `roots` a TLS client trusting only them.
    fn over_tcp(
        transport: Transport,
        remote: SocketAddr,
        roots: Option<rustls::RootCertStore>,
    ) -> Client {
        let tcp = TcpStream::connect(remote).expect("connect TCP");
        tcp.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
        let local = tcp.local_addr().unwrap();
        let stream: Box<dyn Stream> = match roots {
            Some(roots) => Box::new(tls_stream(roots, tcp)),
            None => Box::new(tcp),
        };
        let received = Vec::new();
        Client {
            transport,
            channel: Channel::Stream { stream, received },
            local,
            call_id: unique("call-"),
            cseq: 0,
        }
    }

    /// Opens a TLS connection to `server` that trusts only `roots` and checks the
    /// certificate is for `hotline.test`.
    pub fn connect_tls(server: &Server, roots: rustls::RootCertStore) -> Client {
        Client::over_tcp(Transport::Tls, server.address(Transport::Tls), Some(roots))
    }

    /// A TCP or TLS client whose connection comes from `source`, an address of the network
    /// namespace it runs in ([`netns::Netns::run`]) where the server listens on `[::]`: a
    /// connection to an address of one's own comes from that address.
    pub fn connect_from(server: &Server, transport: Transport, source: IpAddr) -> Client {
        assert_ne!(transport, Transport::Udp, "connect_from is for TCP and TLS");
        let remote = SocketAddr::new(source, server.address(transport).port());
        let client = Client::over_stream(server, transport, remote);
        assert_eq!(client.local.ip(), source);
        client
    }

    /// A UDP client whose requests come from `address` (one of this host's own).
    pub fn connect_udp_from(server: &Server, address: IpAddr) -> Client {
        let socket = UdpSocket::bind((address, 0)).expect("bind UDP");
        socket
            .connect(server.address(Transport::Udp))
            .expect("connect UDP");
        socket.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
        Client {
            transport: Transport::Udp,
            local: socket.local_addr().unwrap(),
            channel: Channel::Datagram(socket),
            call_id: unique("call-"),
            cseq: 0,
        }
    }

    /// Sends a request and asserts that nothing comes back within `wait` (over UDP: a dropped
    /// request has no event to wait for).
    pub fn send_unanswered(&mut self, request: &str, wait: Duration) {
        self.send_raw(request.as_bytes());
        self.expect_silence(wait);
    }

    /// Asserts that nothing arrives for `wait` (UDP): an absence sends no event to await.
    pub fn expect_silence(&mut self, wait: Duration) {
        let Channel::Datagram(socket) = &self.channel else {
            panic!("expect_silence needs UDP");
        };
        socket.set_read_timeout(Some(wait)).unwrap();
        let mut buffer = vec![0; 65_536];
        let received = socket.recv(&mut buffer);
        socket.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
        match received {
            Ok(length) => panic!(
                "expected no reply, got {}",
                String::from_utf8_lossy(&buffer[..length])
            ),
            Err(e) => assert!(
                matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
                "{e}"
            ),
        }
    }

    /// The client's own address and port.
    pub fn local(&self) -> SocketAddr {
        self.local
    }

    /// `<sip:EXT@[::1]:PORT;transport=…>`: where this client is reachable.
    pub fn contact(&self, extension: &str) -> String {
        let transport = self.transport.name().to_ascii_lowercase();
        format!("<sip:{extension}@{};transport={transport}>", self.local)
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        match &mut self.channel {
            Channel::Datagram(socket) => {
                let sent = socket.send(bytes).expect("send datagram");
                assert_eq!(sent, bytes.len());
            }
            Channel::Stream { stream, .. } => {
                stream.write_all(bytes).expect("write");
                stream.flush().expect("flush");
            }
        }
    }

    /// Reads the next message from the server.
    pub fn recv(&mut self) -> Message {
        let bytes = self.recv_bytes();
        Message::parse(&bytes, MAX_HEADERS).unwrap_or_else(|e| {
            panic!(
                "unparsable message ({e}): {}",
                String::from_utf8_lossy(&bytes)
            )
        })
    }

    /// Reads the next message as bytes: one datagram, or one frame of the stream.
    pub fn recv_bytes(&mut self) -> Vec<u8> {
        match &mut self.channel {
            Channel::Datagram(socket) => {
                let mut buffer = vec![0; 65_536];
                let length = socket
                    .recv(&mut buffer)
                    .unwrap_or_else(|e| panic!("no datagram from the server: {e}"));
                buffer.truncate(length);
                buffer
            }
            Channel::Stream { stream, received } => loop {
                match next_frame(received, MAX_MESSAGE) {
                    Ok(Frame::Message(length)) => return received.drain(..length).collect(),
                    Ok(Frame::Incomplete) => {}
                    other => panic!(
                        "unexpected {other:?} from the server: {:?}",
                        String::from_utf8_lossy(received)
                    ),
                }
                let mut chunk = [0; 16 * 1024];
                match stream.read(&mut chunk) {
                    Ok(0) => panic!("the server closed the connection"),
                    Ok(n) => received.extend_from_slice(&chunk[..n]),
                    Err(e) => panic!("no message from the server: {e}"),
                }
            },
        }
    }

    /// Reads exactly `length` bytes from the stream, outside SIP framing (keep-alives).
    pub fn recv_exact(&mut self, length: usize) -> Vec<u8> {
        let Channel::Stream { stream, received } = &mut self.channel else {
            panic!("recv_exact needs a stream transport");
        };
        assert!(received.is_empty(), "unread bytes: {received:?}");
        let mut bytes = vec![0; length];
        stream.read_exact(&mut bytes).expect("read from the server");
        bytes
    }

    /// Waits for the server to close the stream, failing if it sends anything first.
    pub fn expect_closed(&mut self) {
        let Channel::Stream { stream, received } = &mut self.channel else {
            panic!("expect_closed needs a stream transport");
        };
        let mut chunk = [0; 4096];
        loop {
            match stream.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => received.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == ErrorKind::ConnectionReset => break,
                Err(e) => panic!("the server did not close the connection: {e}"),
            }
        }
        assert!(
            received.is_empty(),
            "the server sent {:?} before closing",
            String::from_utf8_lossy(received)
        );
    }

    /// A request of this client's dialog (next CSeq, new branch); `to` is also the From URI.
    /// `headers` are whole lines ending in CRLF.
    pub fn request(&mut self, method: &str, uri: &str, to: &str, headers: &str) -> String {
        self.cseq += 1;
        format!(
            "{method} {uri} SIP/2.0\r\n\
             Via: SIP/2.0/{} {};branch={};rport\r\n\
             Max-Forwards: 70\r\n\
             From: <{to}>;tag={}\r\n\
             To: <{to}>\r\n\
             Call-ID: {}\r\n\
             CSeq: {} {method}\r\n\
             {headers}\
             Content-Length: 0\r\n\r\n",
            self.transport.name(),
            self.local,
            unique("z9hG4bK"),
            unique("tag"),
            self.call_id,
            self.cseq,
        )
    }

    /// Sends a request and returns the response, which must belong to it.
    pub fn send(&mut self, request: &str) -> Message {
        self.send_raw(request.as_bytes());
        let response = self.recv();
        let sent = Message::parse(request.as_bytes(), MAX_HEADERS).expect("own request");
        assert_eq!(response.call_id(), sent.call_id(), "{response:?}");
        assert_eq!(response.cseq(), sent.cseq(), "{response:?}");
        response
    }

    /// OPTIONS sip:hotline.test: a ping of the server.
    pub fn options(&mut self) -> Message {
        let uri = format!("sip:{DOMAIN}");
        let request = self.request("OPTIONS", &uri, &uri, "");
        self.send(&request)
    }

    /// A request that parses but breaks a sanity rule (its CSeq names another method).
    pub fn bad_cseq(&mut self) -> Message {
        let uri = format!("sip:{DOMAIN}");
        let request = self
            .request("OPTIONS", &uri, &uri, "")
            .replace(" OPTIONS\r\n", " INVITE\r\n");
        self.send(&request)
    }

    /// REGISTER for `extension`, answering the challenge of `algorithm` with `password`;
    /// returns the final response. `headers` go into both requests (Contact, Expires…).
    pub fn register(
        &mut self,
        extension: &str,
        password: &str,
        algorithm: Algorithm,
        headers: &str,
    ) -> Message {
        let uri = format!("sip:{DOMAIN}");
        let aor = format!("sip:{extension}@{DOMAIN}");
        let request = self.request("REGISTER", &uri, &aor, headers);
        let challenge = self.send(&request);
        assert_eq!(challenge.status(), Some(401), "{challenge:?}");
        let offered = challenges(&challenge);
        let nonce = offered
            .iter()
            .find(|c| c.algorithm == algorithm.as_str())
            .unwrap_or_else(|| panic!("no {} challenge: {challenge:?}", algorithm.as_str()))
            .nonce
            .clone();
        let cnonce = unique("cnonce");
        let ha1_hex = ha1(algorithm, extension, password);
        let response = response_hex(&ResponseInput {
            algorithm,
            ha1_hex: &ha1_hex,
            nonce: &nonce,
            nc: "00000001",
            cnonce: &cnonce,
            qop: "auth",
            method: "REGISTER",
            uri: &uri,
        });
        let authorization = format!(
            "Authorization: Digest username=\"{extension}\", realm=\"{DOMAIN}\", \
             nonce=\"{nonce}\", uri=\"{uri}\", response=\"{response}\", algorithm={}, \
             qop=auth, nc=00000001, cnonce=\"{cnonce}\"\r\n",
            algorithm.as_str()
        );
        let request = self.request("REGISTER", &uri, &aor, &(authorization + headers));
        self.send(&request)
    }
}

/// A `WWW-Authenticate: Digest …` header, as far as the tests need it.
#[derive(Debug)]
pub struct Challenge {
    pub realm: String,
    pub nonce: String,
    pub algorithm: String,
    pub qop: String,
}

/// The Digest challenges of a 401, in order.
pub fn challenges(response: &Message) -> Vec<Challenge> {
    response
        .all_headers()
        .filter(|(_, name, _)| name.eq_ignore_ascii_case("WWW-Authenticate"))
        .map(|(_, _, value)| {
            let params = value
                .strip_prefix("Digest ")
                .unwrap_or_else(|| panic!("not a Digest challenge: {value}"));
            let param = |wanted: &str| {
                params
                    .split(',')
                    .filter_map(|p| p.trim().split_once('='))
                    .find(|(name, _)| name.eq_ignore_ascii_case(wanted))
                    .map(|(_, v)| unquote(v).to_owned())
                    .unwrap_or_else(|| panic!("no {wanted} in {value}"))
            };
            Challenge {
                realm: param("realm"),
                nonce: param("nonce"),
                algorithm: param("algorithm"),
                qop: param("qop"),
            }
        })
        .collect()
}

/// The `Authorization` (for a 401) or `Proxy-Authorization` (for a 407) header line, with
/// CRLF, that answers the challenge of `algorithm` in `challenge` for `extension`, for a request
/// with `method` and Request-URI `uri`.
pub fn authorization(
    challenge: &Message,
    algorithm: Algorithm,
    extension: &str,
    password: &str,
    method: &str,
    uri: &str,
) -> String {
    let (offered_in, answer_in) = match challenge.status() {
        Some(407) => ("Proxy-Authenticate", "Proxy-Authorization"),
        _ => ("WWW-Authenticate", "Authorization"),
    };
    let value = challenge
        .all_headers()
        .filter(|(_, name, _)| name.eq_ignore_ascii_case(offered_in))
        .map(|(_, _, value)| value)
        .find(|value| value.contains(&format!("algorithm={}", algorithm.as_str())))
        .unwrap_or_else(|| panic!("no {} challenge: {challenge:?}", algorithm.as_str()));
    let nonce = value
        .split(',')
        .filter_map(|p| p.trim().trim_start_matches("Digest ").split_once('='))
        .find(|(name, _)| name.eq_ignore_ascii_case("nonce"))
        .map(|(_, v)| unquote(v).to_owned())
        .unwrap_or_else(|| panic!("no nonce in {value}"));
    let cnonce = unique("cnonce");
    let response = response_hex(&ResponseInput {
        algorithm,
        ha1_hex: &ha1(algorithm, extension, password),
        nonce: &nonce,
        nc: "00000001",
        cnonce: &cnonce,
        qop: "auth",
        method,
        uri,
    });
    format!(
        "{answer_in}: Digest username=\"{extension}\", realm=\"{DOMAIN}\", nonce=\"{nonce}\", \
         uri=\"{uri}\", response=\"{response}\", algorithm={}, qop=auth, nc=00000001, \
         cnonce=\"{cnonce}\"\r\n",
        algorithm.as_str()
    )
}

/// The Contact values of a response (the registered bindings of a 200 to REGISTER).
pub fn contacts(response: &Message) -> Vec<String> {
    response
        .values(HeaderName::Contact)
        .map(str::to_owned)
        .collect()
}

/// H(username:realm:password) in lower-case hex.
fn ha1(algorithm: Algorithm, extension: &str, password: &str) -> String {
    let text = format!("{extension}:{DOMAIN}:{password}");
    let digest: Vec<u8> = match algorithm {
        Algorithm::Md5 => Md5::digest(text.as_bytes()).to_vec(),
        Algorithm::Sha256 => ring::digest::digest(&ring::digest::SHA256, text.as_bytes())
            .as_ref()
            .to_vec(),
    };
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The server's generated self-signed certificate as the only root.
pub fn generated_root(server: &Server) -> rustls::RootCertStore {
    let certificate = server.data_dir().join("tls/cert.pem");
    let mut roots = rustls::RootCertStore::empty();
    for der in CertificateDer::pem_file_iter(&certificate).expect("read cert.pem") {
        roots.add(der.expect("PEM certificate")).expect("root");
    }
    roots
}

/// A TLS client that trusts only `roots` and checks the certificate is for `hotline.test`.
pub fn tls_stream(
    roots: rustls::RootCertStore,
    tcp: TcpStream,
) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    rustls::StreamOwned::new(tls_client(roots), tcp)
}

/// A TCP port of `[::1]` free right now, for programs that cannot report the one they bound.
/// Below the kernel's ephemeral range (32768 and up): a port one of them bound as `:0` can
/// never be handed out in between, as one from `[::1]:0` could.
pub fn free_tcp_port() -> u16 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let offset = u64::from(std::process::id()).wrapping_mul(12);
    for _ in 0..12_000 {
        let n = offset.wrapping_add(NEXT.fetch_add(1, Ordering::Relaxed));
        let port = 20_000 + (n % 12_000) as u16;
        if TcpListener::bind(("::1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free TCP port of [::1] in 20000-31999");
}

/// The first flight of a TLS client of `server`: a ClientHello, for handshakes never finished.
pub fn client_hello(server: &Server) -> Vec<u8> {
    let mut client = tls_client(generated_root(server));
    let mut hello = Vec::new();
    while client.wants_write() {
        client.write_tls(&mut hello).expect("write the ClientHello");
    }
    hello
}

fn tls_client(roots: rustls::RootCertStore) -> rustls::ClientConnection {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from(DOMAIN).expect("server name");
    rustls::ClientConnection::new(Arc::new(config), name).expect("TLS client")
}

/// Where Debian's fail2ban keeps the definitions the filter includes.
const FAIL2BAN_COMMON: &str = "/etc/fail2ban/filter.d/common.conf";

/// Runs fail2ban-regex with the filter of config/fail2ban over `lines` (log lines of the
/// server) and returns its report.
pub fn fail2ban_regex(lines: &[String]) -> String {
    assert!(
        Path::new(FAIL2BAN_COMMON).exists(),
        "fail2ban is not installed: run .ci/run (or apt-get install fail2ban)"
    );
    let dir = TempDir::new().expect("temporary directory");
    let filters = dir.path().join("filter.d");
    std::fs::create_dir(&filters).unwrap();
    std::fs::copy(FAIL2BAN_COMMON, filters.join("common.conf")).unwrap();
    let filter = filters.join("hotline.conf");
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("config/fail2ban/filter.d/hotline.conf"),
        &filter,
    )
    .unwrap();
    let log = dir.path().join("hotline.log");
    std::fs::write(&log, lines.join("\n") + "\n").unwrap();
    let output = Command::new("fail2ban-regex")
        .arg("--print-all-matched")
        .arg(&log)
        .arg(&filter)
        .output()
        .expect("fail2ban-regex runs (apt-get install fail2ban)");
    let report = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{report}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    report
}

// ---- Network namespaces: more source addresses than `::1` (tests/common/netns.rs) ----------

pub mod baresip;
pub mod linphone;
pub mod netns;
pub mod sipp;

// ---- HTTPS: the web listener (tests/common/web.rs) ------------------------------------------

pub mod web;

/// Makes a CA of the test's own and a certificate it issued for `name` and `::1`, and writes
/// them into `dir` as `root` (the CA), `cert.pem` and `key.pem` (the certificate and its key).
pub fn write_test_ca(dir: &Path, name: &str, root: &str) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, SanType};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec![name.to_owned()]).unwrap();
    params
        .subject_alt_names
        .push(SanType::IpAddress(std::net::Ipv6Addr::LOCALHOST.into()));
    let leaf = params.signed_by(&key, &issuer).unwrap();
    std::fs::write(dir.join(root), ca.pem()).unwrap();
    std::fs::write(dir.join("cert.pem"), leaf.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), key.serialize_pem()).unwrap();
}
