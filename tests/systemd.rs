//! hotline under systemd: the unit file passes `systemd-analyze verify`, and the server speaks
//! the `sd_notify` protocol (`READY=1`, `WATCHDOG=1`, `STOPPING=1`) to a `NOTIFY_SOCKET` that the
//! test owns, as systemd's would be.

mod common;

use std::ffi::OsStr;
use std::net::{Ipv6Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Client, DOMAIN, Server, TRANSPORTS, Transport};
use tempfile::TempDir;

/// How long to wait for one notification before failing.
const NOTIFY_TIMEOUT: Duration = Duration::from_secs(30);

/// The unit as shipped, and the binary path its `ExecStart=` names.
const UNIT: &str = include_str!("../config/hotline.service");
const INSTALLED_BINARY: &str = "/usr/bin/hotline";

/// `systemd-analyze verify` also checks that the `ExecStart=` binary exists, and nothing is
/// installed in /usr/bin here: verify a copy whose `ExecStart=` names the binary under test,
/// with the same arguments.
#[test]
fn unit_passes_systemd_analyze_verify() {
    let exec_start = format!("ExecStart={INSTALLED_BINARY} ");
    assert_eq!(
        UNIT.lines()
            .filter(|l| l.starts_with("ExecStart="))
            .collect::<Vec<_>>(),
        [format!(
            "{exec_start}--config /etc/hotline/hotline.toml serve"
        )],
        "the unit's ExecStart="
    );
    let dir = TempDir::new().expect("temporary directory");
    let unit = dir.path().join("hotline.service");
    let text = UNIT.replace(
        &exec_start,
        &format!("ExecStart={} ", env!("CARGO_BIN_EXE_hotline")),
    );
    std::fs::write(&unit, text).expect("write the unit");
    let output = match Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit)
        .output()
    {
        Ok(output) => output,
        Err(e) => panic!(
            "cannot run systemd-analyze ({e}): install it with `apt-get install systemd` \
             (.ci/run does)"
        ),
    };
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "systemd-analyze verify failed ({}):\n{stderr}",
        output.status
    );
    // Warnings (an unknown key, a bad value that is ignored) do not change the exit status.
    let about_the_unit: Vec<&str> = stderr.lines().filter(|l| l.contains("hotline")).collect();
    assert!(
        about_the_unit.is_empty(),
        "systemd-analyze verify warns:\n{}",
        about_the_unit.join("\n")
    );
}

/// `READY=1` comes once every listener is bound: at that moment, before the test reads any
/// log, UDP answers an OPTIONS and TCP and TLS accept connections.
#[test]
fn ready_once_every_listener_answers() {
    let [udp, tcp, tls] = free_ports().map(|port| SocketAddr::from((Ipv6Addr::LOCALHOST, port)));
    let listen = format!("[listen]\nudp = [\"{udp}\"]\ntcp = [\"{tcp}\"]\ntls = [\"{tls}\"]\n");
    let notify = NotifySocket::new();
    let starting = Server::start_with_env(&listen, &[("NOTIFY_SOCKET", notify.path())]);
    assert_eq!(notify.next(), ["READY=1"]);

    let socket = UdpSocket::bind("[::1]:0").expect("bind UDP");
    socket.connect(udp).expect("connect UDP");
    socket.set_read_timeout(Some(NOTIFY_TIMEOUT)).unwrap();
    let local = socket.local_addr().unwrap();
    let options = format!(
        "OPTIONS sip:{DOMAIN} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bKready;rport\r\n\
         Max-Forwards: 70\r\nFrom: <sip:{DOMAIN}>;tag=ready\r\nTo: <sip:{DOMAIN}>\r\n\
         Call-ID: ready\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    );
    socket.send(options.as_bytes()).expect("send OPTIONS");
    let mut buffer = [0u8; 65_536];
    let length = socket.recv(&mut buffer).expect("a response over UDP");
    let response = String::from_utf8_lossy(&buffer[..length]);
    assert!(response.starts_with("SIP/2.0 200 "), "{response}");
    for address in [tcp, tls] {
        TcpStream::connect(address).unwrap_or_else(|e| panic!("connect to {address}: {e}"));
    }

    // And the whole way, TLS handshake included, on the addresses the log reports.
    let server = starting.ready();
    for transport in TRANSPORTS {
        assert_eq!(
            server.address(transport).port(),
            match transport {
                Transport::Udp => udp.port(),
                Transport::Tcp => tcp.port(),
                Transport::Tls => tls.port(),
            }
        );
        let response = Client::connect(&server, transport).options();
        assert_eq!(response.status(), Some(200), "{transport:?}: {response:?}");
    }
}

/// With `WATCHDOG_USEC` the core task pings every half interval (100 ms here), starting after
/// `READY=1`.
#[test]
fn watchdog_pings_with_watchdog_usec() {
    let notify = NotifySocket::new();
    let started = Instant::now();
    let mut server = Server::start_with_env(
        "",
        &[
            ("NOTIFY_SOCKET", notify.path()),
            ("WATCHDOG_USEC", OsStr::new("200000")),
        ],
    )
    .ready();
    assert_eq!(notify.next(), ["READY=1"]);
    for _ in 0..5 {
        assert_eq!(notify.next(), ["WATCHDOG=1"]);
    }
    // The first ping goes at once, the fifth no sooner than 4 × 100 ms later. (Only a lower
    // bound: on a busy machine the pings may come late.)
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(400),
        "5 pings in {elapsed:?}"
    );
    server.stop();
    let rest = notify.until("STOPPING=1");
    assert!(
        rest.iter().all(|l| l == "WATCHDOG=1" || l == "STOPPING=1"),
        "{rest:?}"
    );
}

/// Without `WATCHDOG_USEC`, or when `WATCHDOG_PID` names another process, no `WATCHDOG=1`
/// between `READY=1` and `STOPPING=1`, however busy the core task was (an enabled watchdog
/// pings on the loop's first turn).
#[test]
fn no_watchdog_pings_unless_asked() {
    let cases: [&[(&str, &str)]; 2] = [&[], &[("WATCHDOG_USEC", "200000"), ("WATCHDOG_PID", "1")]];
    for watchdog in cases {
        let notify = NotifySocket::new();
        let mut env = vec![("NOTIFY_SOCKET", notify.path())];
        env.extend(watchdog.iter().map(|&(k, v)| (k, OsStr::new(v))));
        let mut server = Server::start_with_env("", &env).ready();
        assert_eq!(notify.next(), ["READY=1"], "{watchdog:?}");
        let mut client = Client::connect(&server, Transport::Udp);
        for _ in 0..10 {
            assert_eq!(client.options().status(), Some(200));
        }
        server.stop();
        assert_eq!(notify.until("STOPPING=1"), ["STOPPING=1"], "{watchdog:?}");
    }
}

/// SIGTERM: `STOPPING=1`, then a clean exit (status 0).
#[test]
fn sigterm_sends_stopping_and_exits_cleanly() {
    let notify = NotifySocket::new();
    let starting = Server::start_with_env("", &[("NOTIFY_SOCKET", notify.path())]);
    assert_eq!(notify.next(), ["READY=1"]);
    let mut server = starting.ready();
    server.stop(); // asserts exit status 0
    assert_eq!(notify.next(), ["STOPPING=1"]);
}

/// A UDP port and two TCP ports on `[::1]` that are free now, below the ephemeral range
/// (32768 and up) from which the other tests' servers draw theirs, so none of them takes one
/// before this test's server binds it.
fn free_ports() -> [u16; 3] {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let seed = (std::process::id() ^ nanos) as u16;
    let mut port = 20_000 + seed % 10_000;
    let mut next_free = |tcp: bool| loop {
        port = if port >= 32_000 { 20_000 } else { port + 1 };
        let address = SocketAddr::from((Ipv6Addr::LOCALHOST, port));
        let free = match tcp {
            true => TcpListener::bind(address).is_ok(),
            false => UdpSocket::bind(address).is_ok(),
        };
        if free {
            return port;
        }
    };
    [next_free(false), next_free(true), next_free(true)]
}

/// A Unix datagram socket in a temporary directory, playing systemd's notification socket.
struct NotifySocket {
    socket: UnixDatagram,
    path: PathBuf,
    _dir: TempDir,
}

impl NotifySocket {
    fn new() -> NotifySocket {
        let dir = TempDir::new().expect("temporary directory");
        let path = dir.path().join("notify");
        let socket = UnixDatagram::bind(&path).expect("bind the notification socket");
        NotifySocket {
            socket,
            path,
            _dir: dir,
        }
    }

    fn path(&self) -> &OsStr {
        self.path.as_os_str()
    }

    /// The lines of the next notification; fails after [`NOTIFY_TIMEOUT`].
    fn next(&self) -> Vec<String> {
        self.next_before(Instant::now() + NOTIFY_TIMEOUT)
            .expect("timed out waiting for a notification")
    }

    fn next_before(&self, deadline: Instant) -> Option<Vec<String>> {
        let left = deadline.saturating_duration_since(Instant::now());
        self.socket
            .set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .unwrap();
        let mut buffer = [0u8; 4096];
        let length = self.socket.recv(&mut buffer).ok()?;
        let text = std::str::from_utf8(&buffer[..length]).expect("UTF-8 notification");
        Some(text.lines().map(str::to_owned).collect())
    }

    /// Every line up to and including the first notification that holds `line`.
    fn until(&self, line: &str) -> Vec<String> {
        let deadline = Instant::now() + NOTIFY_TIMEOUT;
        let mut lines = Vec::new();
        loop {
            let Some(next) = self.next_before(deadline) else {
                panic!("timed out waiting for {line}; got {lines:?}");
            };
            let done = next.iter().any(|l| l == line);
            lines.extend(next);
            if done {
                return lines;
            }
        }
    }
}
