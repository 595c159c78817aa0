//! ACME against a real CA: Debian's pebble, started on `[::1]` with its validation pointed at
//! hotline's web listeners and its DNS at a responder in this test that answers `::1`.

mod common;

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use common::{Client, DOMAIN, Server, Transport, write_test_ca};
use hotline::core::auth::Algorithm;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use tempfile::TempDir;

/// A port of `[::1]` free right now, for programs that cannot report the one they bound.
fn free_port() -> u16 {
    TcpListener::bind("[::1]:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

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

        let (port, management_port) = (free_port(), free_port());
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
    format!(
        "[acme]\nenabled = true\ndirectory = \"{}\"\ndirectory_root = \"{}\"\n\
         challenge = \"{challenge}\"\n[web]\nhttps = [\"[::1]:{https}\"]\nhttp = [\"[::1]:{http}\"]\n",
        pebble.directory,
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
    let (https, http) = (free_port(), free_port());
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
    let (https, http) = (free_port(), free_port());
    let pebble = Pebble::start(http, https, 3600);
    let server = Server::start(&acme_toml(&pebble, "http-01", https, http));
    server.wait_for_log("certificate issued");
    served_leaf(&server, pebble.roots());
}

#[test]
fn short_lived_certificates_renew_by_themselves() {
    let (https, http) = (free_port(), free_port());
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
    let (https, http) = (free_port(), free_port());
    // The CA validates on a port where nothing listens: the challenge is unreachable.
    let pebble = Pebble::start(http, free_port(), 3600);
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
    let (https, http) = (free_port(), free_port());
    let pebble = Pebble::start(http, https, 3600);
    let (dir, config) = config_file("[::1]", &acme_toml(&pebble, "tls-alpn-01", https, http));
    let server = Server::start_with_config(dir, config);
    let issued = server.wait_for_log("certificate issued");
    assert!(issued.contains("names=::1"), "{issued}");
    leaf_for(server.address(Transport::Tls), pebble.roots(), "::1");
}

#[test]
fn cert_renew_without_a_server_obtains_the_certificate_it_then_serves() {
    let (https, http) = (free_port(), free_port());
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

/// The wizard's Let's Encrypt path against pebble: the AAAA record names the board (an
/// address of the test's own environment), the certificate is obtained on the spot, the
/// firewall drop-in opens the port, and the server started on the written file serves it.
fn wizard_obtains_the_certificate(terminal: bool) {
    use hotline::setup::{Answers, Dialog, Environment, Options, parse_if_inet6};
    let (https, http) = (free_port(), free_port());
    let pebble = Pebble::start(http, https, 3600);
    let (dir, config) = config_file(
        "pbx.example.org",
        &acme_toml(&pebble, "tls-alpn-01", https, http),
    );
    let board: std::net::Ipv6Addr = "2001:db8:1:2::5".parse().unwrap();
    let firewall = dir.path().join("nftables.d");
    let environment = Environment {
        hostname: Some("pbx".into()),
        addresses: parse_if_inet6("20010db8000100020000000000000005 02 40 00 80 eth0\n"),
        systemctl: None,
        dns_servers: vec![spawn_dns(board)],
        firewall: Some(firewall.clone()),
        home: None,
    };
    let answers = Answers {
        certificate: Some("lets-encrypt".into()),
        extensions: vec!["1000 Alice".into()],
        owner_password: Some("a long owner password".into()),
        service: Some(false),
        ..Answers::default()
    };
    let answers_path = dir.path().join("answers.toml");
    let options = Options {
        config_path: config.clone(),
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
    assert!(
        screen.contains("Asking the CA for a certificate for pbx.example.org"),
        "{screen}"
    );
    assert!(
        screen.contains("Certificate for pbx.example.org from"),
        "{screen}"
    );
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
