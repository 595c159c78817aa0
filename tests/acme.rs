//! ACME against a real CA: Debian's pebble, started on `[::1]` with its validation pointed at
//! hotline's web listeners and its DNS at a responder in this test that answers `::1`.

mod common;
#[path = "acme/front.rs"]
mod front;

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use common::{Client, DOMAIN, Server, Transport, free_tcp_port, write_test_ca};
use hotline::core::auth::Algorithm;
use hotline::core::bans::Utc;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use tempfile::TempDir;

/// Answers every AAAA query with `answer` and every other query with no record.
fn spawn_dns(answer: std::net::Ipv6Addr) -> SocketAddr {
    let socket = UdpSocket::bind("[::1]:0").unwrap();
    let address = socket.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut buffer = [0u8; 512];
        while let Ok((length, from)) = socket.recv_from(&mut buffer) {
            let query = &buffer[..length];
            // Header (12 bytes), then one question: name labels, type, class.
            let mut end = 12;
            while end < length && query[end] != 0 {
                end += 1 + usize::from(query[end]);
            }
            if end + 5 > length {
                continue;
            }
            let question = &query[12..end + 5];
            let aaaa = question[question.len() - 4..question.len() - 2] == [0, 28];
            let mut reply = vec![
                query[0],
                query[1],
                0x81,
                0x80,
                0,
                1,
                0,
                u8::from(aaaa),
                0,
                0,
                0,
                0,
            ];
            reply.extend_from_slice(question);
            if aaaa {
                reply.extend_from_slice(&[0xc0, 12, 0, 28, 0, 1, 0, 0, 0, 0, 0, 16]);
                reply.extend_from_slice(&answer.octets());
            }
            let _ = socket.send_to(&reply, from);
        }
    });
    address
}

/// A running pebble and the files it was started with.
struct Pebble {
    child: Child,
    dir: TempDir,
    directory: String,
    management: SocketAddr,
    /// The CA of pebble's own HTTPS certificate (not of what it issues).
    https_root: PathBuf,
}

impl Drop for Pebble {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Pebble {
    /// Starts pebble validating on `[::1]` at `http_port` (HTTP-01) and `tls_port`
    /// (TLS-ALPN-01), issuing certificates valid for `validity` seconds.
    fn start(http_port: u16, tls_port: u16, validity: u64) -> Pebble {
        let dir = TempDir::new().unwrap();
        let https_root = dir.path().join("https-root.pem");
        write_test_ca(dir.path(), "localhost", "https-root.pem");

        let (port, management_port) = (free_tcp_port(), free_tcp_port());
        let config = format!(
            r#"{{"pebble": {{
                "listenAddress": "[::1]:{port}",
                "managementListenAddress": "[::1]:{management_port}",
                "certificate": "{0}/cert.pem",
                "privateKey": "{0}/key.pem",
                "httpPort": {http_port},
                "tlsPort": {tls_port},
                "ocspResponderURL": "",
                "externalAccountBindingRequired": false,
                "certificateValidityPeriod": {validity}
            }}}}"#,
            dir.path().display()
        );
        let config_path = dir.path().join("pebble.json");
        std::fs::write(&config_path, config).unwrap();
        let mut child = Command::new("pebble")
            .arg("-config")
            .arg(&config_path)
            .arg("-dnsserver")
            .arg(spawn_dns(std::net::Ipv6Addr::LOCALHOST).to_string())
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("pebble (Debian package pebble) must be installed");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let ready = lines
            .by_ref()
            .map_while(Result::ok)
            .find(|l| l.contains("ACME directory available"));
        assert!(ready.is_some(), "pebble did not start");
        // Keep reading, so that pebble never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        Pebble {
            child,
            dir,
            directory: format!("https://[::1]:{port}/dir"),
            management: SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, management_port)),
            https_root,
        }
    }

    /// The root of the certificates pebble issues, from its management interface.
    fn issuing_root(&self) -> CertificateDer<'static> {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_file(&self.https_root).unwrap())
            .unwrap();
        let tcp = TcpStream::connect(self.management).unwrap();
        let mut tls = tls_client(roots, "::1", tcp);
        tls.write_all(b"GET /roots/0 HTTP/1.1\r\nHost: [::1]\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut response = Vec::new();
        let _ = tls.read_to_end(&mut response);
        let text = String::from_utf8(response).unwrap();
        let body = &text[text.find("-----BEGIN").expect("a PEM root")..];
        CertificateDer::from_pem_slice(body.as_bytes()).unwrap()
    }

    fn roots(&self) -> rustls::RootCertStore {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.issuing_root()).unwrap();
        roots
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A front before this pebble that suggests `windows` (see [`front::Front`]).
    fn front(&self, windows: Vec<(u64, u64)>) -> front::Front {
        front::Front::start(&self.directory, self.path(), &self.https_root, windows)
    }
}

fn tls_client(
    roots: rustls::RootCertStore,
    name: &str,
    tcp: TcpStream,
) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from(name.to_owned()).unwrap();
    let connection = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    rustls::StreamOwned::new(connection, tcp)
}

/// The leaf certificate the server's SIP TLS port presents to a client that trusts `roots`
/// only and checks the name `hotline.test`; the handshake fails otherwise.
fn served_leaf(server: &Server, roots: rustls::RootCertStore) -> CertificateDer<'static> {
    let tcp = TcpStream::connect(server.address(Transport::Tls)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut tls = tls_client(roots, DOMAIN, tcp);
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock).expect("TLS handshake");
    }
    tls.conn.peer_certificates().unwrap()[0]
        .clone()
        .into_owned()
}

fn acme_toml(pebble: &Pebble, challenge: &str, https: u16, http: u16) -> String {
    directory_toml(pebble, &pebble.directory, challenge, https, http)
}

/// ACME with the directory at `directory` (pebble's, or a front's before it).
fn directory_toml(
    pebble: &Pebble,
    directory: &str,
    challenge: &str,
    https: u16,
    http: u16,
) -> String {
    format!(
        "[acme]\nenabled = true\ndirectory = \"{directory}\"\ndirectory_root = \"{}\"\n\
         challenge = \"{challenge}\"\n[web]\nhttps = [\"[::1]:{https}\"]\nhttp = [\"[::1]:{http}\"]\n",
        pebble.https_root.display()
    )
}

/// A register over a connection trusting only pebble's root.
fn register(client: &mut Client, password: &str) -> u16 {
    let contact = format!("Contact: {}\r\n", client.contact("1000"));
    let response = client.register("1000", password, Algorithm::Md5, &contact);
    response.status().unwrap()
}

#[test]
fn tls_alpn01_issues_and_a_forced_renewal_swaps_without_dropping_connections() {
    let (https, http) = (free_tcp_port(), free_tcp_port());
    let pebble = Pebble::start(http, https, 3600);
    let server = Server::start(&acme_toml(&pebble, "tls-alpn-01", https, http));
    let issued = server.wait_for_log("certificate issued");
    assert!(issued.contains(DOMAIN), "{issued}");
    let roots = pebble.roots();
    let first = served_leaf(&server, roots.clone());

    let password = server.user_add("1000", "Alice");
    let mut before = Client::connect_tls(&server, roots.clone());
    assert_eq!(register(&mut before, &password), 200);

    let output = server.hotline(&["cert", "renew"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{output:?}");
    assert!(stdout.contains(DOMAIN), "{stdout}");
    server.wait_for_log("certificate renewed");

    let second = served_leaf(&server, roots);
    assert_ne!(first, second, "a new connection sees the new certificate");
    assert_eq!(
        register(&mut before, &password),
        200,
        "the old connection still works"
    );

    let status = server.hotline(&["cert", "status"]);
    let status = String::from_utf8_lossy(&status.stdout);
    assert!(status.contains("acme.pem"), "{status}");
    assert!(status.contains("Pebble"), "{status}");
    assert!(!status.contains("Last error"), "{status}");
    let _ = pebble.path();
}

#[test]
fn http01_issues() {
    let (https, http) = (free_tcp_port(), free_tcp_port());
    let pebble = Pebble::start(http, https, 3600);
    let server = Server::start(&acme_toml(&pebble, "http-01", https, http));
    server.wait_for_log("certificate issued");
    served_leaf(&server, pebble.roots());
}

#[test]
fn short_lived_certificates_renew_by_themselves() {
    let (https, http) = (free_tcp_port(), free_tcp_port());
    // Renewed with a third of 15 s left: 10 s after issuance.
    let pebble = Pebble::start(http, https, 15);
    let server = Server::start(&acme_toml(&pebble, "tls-alpn-01", https, http));
    server.wait_for_log("certificate issued");
    let first = served_leaf(&server, pebble.roots());
    server.wait_for_log("certificate renewed");
    assert_ne!(served_leaf(&server, pebble.roots()), first);
}

#[test]
fn unreachable_ca_and_unreachable_challenge_keep_the_old_certificate_and_back_off() {
    let (https, http) = (free_tcp_port(), free_tcp_port());
    // The CA validates on a port where nothing listens: the challenge is unreachable.
    let pebble = Pebble::start(http, free_tcp_port(), 3600);
    let server = Server::start(&acme_toml(&pebble, "tls-alpn-01", https, http));
    let failure = server.wait_for_log("certificate renewal failed");
    assert!(failure.contains("could not validate"), "{failure}");
    assert!(failure.contains("AAAA record"), "{failure}");
    assert!(failure.contains("port 443"), "{failure}");
    // The self-signed certificate is still served.
    served_leaf(&server, generated_root(&server));
    let status = server.hotline(&["cert", "status"]);
    let status = String::from_utf8_lossy(&status.stdout);
    assert!(status.contains("1 failed attempts in a row"), "{status}");
    assert!(
        !status.contains("Next renewal:  now"),
        "backed off: {status}"
    );
    drop(pebble);

    // The CA is gone: a clear error, and the next attempt later still.
    let output = server.hotline(&["cert", "renew"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("cannot reach the CA"), "{stderr}");
    assert!(stderr.contains("Next automatic attempt"), "{stderr}");
    let status = server.hotline(&["cert", "status"]);
    let status = String::from_utf8_lossy(&status.stdout);
    assert!(status.contains("2 failed attempts in a row"), "{status}");
    served_leaf(&server, generated_root(&server));
}

fn generated_root(server: &Server) -> rustls::RootCertStore {
    let mut roots = rustls::RootCertStore::empty();
    let path = server.data_dir().join("tls/cert.pem");
    roots
        .add(CertificateDer::from_pem_file(path).unwrap())
        .unwrap();
    roots
}

/// A configuration of `domain` with ACME by `challenge`, in a new directory.
fn config_file(domain: &str, acme: &str) -> (TempDir, PathBuf) {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("hotline.toml");
    let text = format!(
        "domain = \"{domain}\"\ndata_dir = \"{}\"\n[listen]\nudp = [\"[::1]:0\"]\n\
         tcp = [\"[::1]:0\"]\ntls = [\"[::1]:0\"]\n{acme}",
        dir.path().join("data").display()
    );
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

fn leaf_for(
    address: SocketAddr,
    roots: rustls::RootCertStore,
    name: &str,
) -> CertificateDer<'static> {
    let tcp = TcpStream::connect(address).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut tls = tls_client(roots, name, tcp);
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock).expect("TLS handshake");
    }
    tls.conn.peer_certificates().unwrap()[0]
        .clone()
        .into_owned()
}

#[test]
fn an_ipv6_domain_gets_an_ip_certificate() {
    let (https, http) = (free_tcp_port(), free_tcp_port());
    let pebble = Pebble::start(http, https, 3600);
    let (dir, config) = config_file("[::1]", &acme_toml(&pebble, "tls-alpn-01", https, http));
    let server = Server::start_with_config(dir, config);
    let issued = server.wait_for_log("certificate issued");
    assert!(issued.contains("names=::1"), "{issued}");
    leaf_for(server.address(Transport::Tls), pebble.roots(), "::1");
}

#[test]
fn cert_renew_without_a_server_obtains_the_certificate_it_then_serves() {
    let (https, http) = (free_tcp_port(), free_tcp_port());
    let pebble = Pebble::start(http, https, 3600);
    let (dir, config) = config_file(DOMAIN, &acme_toml(&pebble, "http-01", https, http));
    let before = Command::new(env!("CARGO_BIN_EXE_hotline"))
        .arg("--config")
        .arg(&config)
        .args(["cert", "status"])
        .output()
        .unwrap();
    let before = String::from_utf8_lossy(&before.stdout);
    assert!(before.contains("Next renewal:  now"), "{before}");
    let output = Command::new(env!("CARGO_BIN_EXE_hotline"))
        .arg("--config")
        .arg(&config)
        .args(["cert", "renew"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let key = dir.path().join("data/tls/acme.pem");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&key).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    let account = dir.path().join("data/tls/acme-account.toml");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&account).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);

    let server = Server::start_with_config(dir, config);
    server.wait_for_log("TLS certificate from the CA");
    served_leaf(&server, pebble.roots());
    assert!(
        !server
            .log_lines()
            .iter()
            .any(|l| l.contains("certificate issued"))
    );
}

/// Runs the wizard on `config` with the answer `lets-encrypt`, from an answers file or on a
/// terminal, on a board whose AAAA record names it (an address of the test's own environment,
/// with the firewall drop-ins beside `config`); returns what it showed.
fn run_wizard(config: &Path, terminal: bool) -> String {
    use hotline::setup::{Answers, Dialog, Environment, Options, parse_if_inet6};
    let dir = config.parent().unwrap();
    let board: std::net::Ipv6Addr = "2001:db8:1:2::5".parse().unwrap();
    let environment = Environment {
        hostname: Some("pbx".into()),
        addresses: parse_if_inet6("20010db8000100020000000000000005 02 40 00 80 eth0\n"),
        systemctl: None,
        dns_servers: vec![spawn_dns(board)],
        firewall: Some(dir.join("nftables.d")),
        home: None,
    };
    let answers = Answers {
        certificate: Some("lets-encrypt".into()),
        extensions: vec!["1000 Alice".into()],
        owner_password: Some("a long owner password".into()),
        service: Some(false),
        ..Answers::default()
    };
    let answers_path = dir.join("answers.toml");
    let options = Options {
        config_path: config.to_owned(),
        answers: (!terminal).then(|| (answers_path.clone(), answers)),
        service: false,
    };
    let mut output = Vec::new();
    let input = "\n\n1000 Alice\n\na long owner password\na long owner password\n\n";
    let mut input = std::io::Cursor::new(input.as_bytes().to_vec());
    let mut dialog = match terminal {
        true => Dialog::terminal(&mut input, &mut output),
        false => Dialog::answers_file(&answers_path, &mut output),
    };
    let outcome = hotline::setup::run(&options, &environment, &mut dialog);
    let screen = String::from_utf8(output).unwrap();
    outcome.unwrap_or_else(|error| panic!("{error:#}\n{screen}"));
    assert!(screen.contains("[lets-encrypt]") || !terminal, "{screen}");
    screen
}

/// The wizard's Let's Encrypt path against pebble: the AAAA record names the board, the
/// certificate is obtained on the spot, the firewall drop-in opens the port, and the server
/// started on the written file serves it.
fn wizard_obtains_the_certificate(terminal: bool) {
    let (https, http) = (free_tcp_port(), free_tcp_port());
    let pebble = Pebble::start(http, https, 3600);
    let (dir, config) = config_file(
        "pbx.example.org",
        &acme_toml(&pebble, "tls-alpn-01", https, http),
    );
    let screen = run_wizard(&config, terminal);
    assert!(
        screen.contains("Asking the CA for a certificate for pbx.example.org"),
        "{screen}"
    );
    assert!(
        screen.contains("Certificate for pbx.example.org from"),
        "{screen}"
    );
    let firewall = dir.path().join("nftables.d");
    let drop_in = std::fs::read_to_string(firewall.join("hotline-acme.nft")).unwrap();
    assert!(
        drop_in.contains(&format!("tcp dport {{ {https} }} accept")),
        "{drop_in}"
    );

    let server = Server::start_with_config(dir, config);
    server.wait_for_log("TLS certificate from the CA");
    leaf_for(
        server.address(Transport::Tls),
        pebble.roots(),
        "pbx.example.org",
    );
}

#[test]
fn wizard_from_an_answers_file_obtains_the_certificate() {
    wizard_obtains_the_certificate(false);
}

#[test]
fn wizard_on_a_terminal_obtains_the_certificate() {
    wizard_obtains_the_certificate(true);
}

const DAY_MS: u64 = 86_400_000;
/// Long enough for renewal windows weeks away.
const THIRTY_DAYS_S: u64 = 30 * 86_400;

/// The wall clock to the second, as renewal windows are written.
fn now_ms() -> u64 {
    hotline::clock::wall_ms() / 1000 * 1000
}

fn cert_status(server: &Server) -> String {
    let status = server.hotline(&["cert", "status"]);
    String::from_utf8_lossy(&status.stdout).into_owned()
}

#[test]
fn a_renewal_window_already_open_renews_at_once_replacing_the_certificate() {
    let (https, http) = (free_tcp_port(), free_tcp_port());
    let pebble = Pebble::start(http, https, THIRTY_DAYS_S);
    let now = now_ms();
    // The first certificate's window has passed; the next one's is weeks away.
    let front = pebble.front(vec![
        (now - 7_200_000, now - 3_600_000),
        (now + 20 * DAY_MS, now + 21 * DAY_MS),
    ]);
    let toml = directory_toml(&pebble, &front.directory, "tls-alpn-01", https, http);
    let server = Server::start(&toml);
    server.wait_for_log("certificate issued");
    let first = front.wait_for_asked(1)[0].clone();
    server.wait_for_log("certificate renewed");
    assert_eq!(
        front.wait_for_orders(2),
        [None, Some(first)],
        "the renewal names the certificate it replaces"
    );
    served_leaf(&server, pebble.roots());
    // The new certificate's window is asked for at the next poll, hours later: meanwhile the
    // lifetime rule holds, and status says so.
    let status = cert_status(&server);
    assert!(
        status.contains("with a third of the lifetime left (until the CA's renewal window"),
        "{status}"
    );
    assert!(!status.contains("Next renewal:  now"), "{status}");
}

#[test]
fn a_renewal_window_weeks_away_is_waited_for_and_shown() {
    let (https, http) = (free_tcp_port(), free_tcp_port());
    let pebble = Pebble::start(http, https, THIRTY_DAYS_S);
    let now = now_ms();
    // Later than the lifetime rule (20 days), so that status can only show it from ARI.
    let window = (now + 25 * DAY_MS, now + 26 * DAY_MS);
    let front = pebble.front(vec![window]);
    let toml = directory_toml(&pebble, &front.directory, "tls-alpn-01", https, http);
    let server = Server::start(&toml);
    server.wait_for_log("certificate issued");
    let logged = server.wait_for_log("renewal window from the CA");
    assert!(logged.contains(&Utc(window.0).to_string()), "{logged}");

    let status = cert_status(&server);
    let (start, end) = (Utc(window.0).to_string(), Utc(window.1).to_string());
    assert!(
        status.contains(&format!(
            "inside the renewal window the CA suggests (ARI): {start} to {end}"
        )),
        "{status}"
    );
    let next = status
        .lines()
        .find_map(|line| line.strip_prefix("Next renewal:  "))
        .unwrap();
    assert!(
        start.as_str() <= next && next <= end.as_str(),
        "{next} is in the window: {status}"
    );
    assert_eq!(front.orders(), 1, "no renewal yet");
    assert!(
        !server
            .log_lines()
            .iter()
            .any(|l| l.contains("certificate renewed"))
    );
}

#[test]
fn a_ca_without_ip_certificates_leaves_the_self_signed_one_and_says_why() {
    let (https, http) = (free_tcp_port(), free_tcp_port());
    let pebble = Pebble::start(http, https, 3600);
    let front = pebble.front(vec![(0, 1)]);
    front.set_orders(front::Orders::RejectIp);
    let toml = directory_toml(&pebble, &front.directory, "tls-alpn-01", https, http);
    let (dir, config) = config_file("[::1]", &toml);
    let mut server = Server::start_with_config(dir, config.clone());
    let failure = server.wait_for_log("certificate renewal failed");
    assert!(
        failure.contains("does not issue certificates for ::1"),
        "{failure}"
    );
    assert!(
        failure.contains("self-signed certificate stays"),
        "{failure}"
    );
    leaf_for(
        server.address(Transport::Tls),
        generated_root(&server),
        "::1",
    );
    let status = cert_status(&server);
    assert!(status.contains("(self-signed)"), "{status}");
    assert!(
        status.contains("Last error:    the CA does not issue certificates for ::1"),
        "{status}"
    );
    server.stop();

    // The wizard says why too, and turns ACME off rather than asking again.
    let screen = run_wizard(&config, false);
    assert!(
        screen.contains("the CA does not issue certificates for ::1"),
        "{screen}"
    );
    assert!(
        screen.contains("the self-signed certificate stays"),
        "{screen}"
    );
    assert!(
        screen.contains("So ACME is off: asking this CA again would not help"),
        "{screen}"
    );
    let written = std::fs::read_to_string(&config).unwrap();
    let acme = &written[written.find("[acme]").unwrap()..];
    assert!(acme.contains("enabled = false"), "{written}");
}

#[test]
fn the_wizard_asks_the_running_server_for_the_certificate_and_keeps_it_after() {
    let (https, http) = (free_tcp_port(), free_tcp_port());
    let pebble = Pebble::start(http, https, 3600);
    let now = now_ms();
    let front = pebble.front(vec![(now + 1_800_000, now + 2_400_000)]);
    // The server's own first attempt fails: it backs off for minutes.
    front.set_orders(front::Orders::RateLimited);
    let toml = directory_toml(&pebble, &front.directory, "tls-alpn-01", https, http);
    let (dir, config) = config_file("pbx.example.org", &toml);
    let server = Server::start_with_config(dir, config.clone());
    let failure = server.wait_for_log("certificate renewal failed");
    assert!(failure.contains("rate limit"), "{failure}");
    front.set_orders(front::Orders::Forward);

    // The server holds the validation port: the wizard asks it, as `hotline cert renew` does.
    let screen = run_wizard(&config, true);
    assert!(
        screen.contains("hotline is running: asking it for a certificate for pbx.example.org"),
        "{screen}"
    );
    assert!(
        screen.contains("Certificate for pbx.example.org from"),
        "{screen}"
    );
    server.wait_for_log("certificate issued");
    leaf_for(
        server.address(Transport::Tls),
        pebble.roots(),
        "pbx.example.org",
    );

    // Run again, it keeps that certificate rather than spend the CA's rate limits.
    let orders = front.orders();
    let again = run_wizard(&config, false);
    assert!(
        again.contains("stays: hotline renews it by itself"),
        "{again}"
    );
    assert_eq!(front.orders(), orders);
}
