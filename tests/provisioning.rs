//! Phones that set themselves up from one link: a real Linphone (linphonec 5.1) given only its
//! provisioning URL fetches its configuration over HTTPS on IPv6, with hotline's certificate
//! verified against a test CA, registers over TLS and calls baresip with SRTP. Links that are
//! not links (wrong, revoked, one character off, guessed in a flood) all get the same 404 and
//! count towards a ban.

mod common;

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};

use common::baresip::{Phone, SECURE_AUDIO, SRTP_MANDATORY, field, require_baresip};
use common::linphone::{Linphone, SRTP_NEGOTIATED, require_linphonec};
use common::{DOMAIN, Server, tls_stream, write_test_ca};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;
use tempfile::TempDir;

/// A CA of the test's own and a certificate it issued for `hotline.test` and `::1`, which the
/// server serves on SIP over TLS and HTTPS.
struct TestCa {
    dir: TempDir,
}

impl TestCa {
    fn new() -> TestCa {
        let dir = TempDir::new().unwrap();
        write_test_ca(dir.path(), DOMAIN, "ca.pem");
        // The server's name for Linphone, which resolves names itself (belle-sip reads
        // /etc/hosts): hotline.test is ::1.
        std::fs::write(
            dir.path().join("hosts"),
            format!("::1 {DOMAIN}\n::1 localhost\n"),
        )
        .unwrap();
        TestCa { dir }
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    fn hosts(&self) -> PathBuf {
        self.dir.path().join("hosts")
    }

    /// The configuration that serves the issued certificate, and HTTPS on `[::1]:<https>`.
    fn toml(&self, https: u16) -> String {
        format!(
            "[tls]\ncertificate = \"{0}/cert.pem\"\nprivate_key = \"{0}/key.pem\"\n{1}",
            self.dir.path().display(),
            listeners(https),
        )
    }
}

/// HTTPS on `[::1]:<https>` and SIP on free ports. The ports are fixed: the links and the files
/// name them.
fn listeners(https: u16) -> String {
    format!(
        "[web]\nenabled = true\nhttps = [\"[::1]:{https}\"]\n\
         [listen]\nudp = [\"[::1]:{}\"]\ntcp = [\"[::1]:{}\"]\ntls = [\"[::1]:{}\"]\n",
        common::free_tcp_port(),
        common::free_tcp_port(),
        common::free_tcp_port(),
    )
}

/// `hotline user add`: the password and the provisioning link it shows.
fn add_user(server: &Server, extension: &str, name: &str) -> (String, String) {
    let output = server.hotline(&["user", "add", extension, "--name", name]);
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8(output.stdout).unwrap();
    let field = |prefix: &str| {
        stdout
            .lines()
            .find_map(|line| line.trim().strip_prefix(prefix))
            .unwrap_or_else(|| panic!("no {prefix:?} in {stdout}"))
            .trim()
            .to_owned()
    };
    let link = field("https://");
    (field("password:"), format!("https://{link}"))
}

/// One HTTPS GET of `path` from the server at `[::1]:<port>`, as a client that trusts only
/// `root` and checks the name hotline.test; returns the status and the body, or `None` when the
/// server closed the connection without an answer.
fn get(port: u16, root: &Path, path: &str) -> Option<(u16, String)> {
    let mut roots = rustls::RootCertStore::empty();
    for der in CertificateDer::pem_file_iter(root).unwrap() {
        roots.add(der.unwrap()).unwrap();
    }
    let mut tls = tls_stream(roots, TcpStream::connect(("::1", port)).unwrap());
    write!(
        tls,
        "GET {path} HTTP/1.1\r\nHost: {DOMAIN}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = Vec::new();
    let _ = tls.read_to_end(&mut answer);
    let answer = String::from_utf8(answer).unwrap();
    let status = answer.split(' ').nth(1)?.parse().ok()?;
    // Without the date, which may change between two answers.
    let head = answer
        .split_once("\r\n\r\n")
        .map_or(&answer[..], |(h, _)| h);
    let lines: Vec<&str> = head.lines().filter(|l| !l.starts_with("date:")).collect();
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    Some((status, format!("{}\n\n{body}", lines.join("\n"))))
}

/// The path of a link (`/p/<token>`).
fn path_of(link: &str) -> &str {
    &link[link.find("/p/").unwrap()..]
}

#[test]
fn linphone_sets_itself_up_from_its_link_and_calls_baresip_with_srtp() {
    require_linphonec();
    require_baresip();
    let ca = TestCa::new();
    let https = common::free_tcp_port();
    let server = Server::start(&ca.toml(https));
    // baresip insists on reading a CA file where the generated certificate would be (it never
    // verifies with it).
    let tls = server.data_dir().join("tls");
    std::fs::create_dir_all(&tls).unwrap();
    std::fs::copy(ca.root(), tls.join("cert.pem")).unwrap();
    let (bob, _) = add_user(&server, "1001", "Bob");
    let (_, link) = add_user(&server, "1002", "Carol");
    assert_eq!(link, format!("https://{DOMAIN}:{https}{}", path_of(&link)));
    let mut callee = Phone::start(&server, "1001", &bob, SRTP_MANDATORY);

    let mut caller = Linphone::provisioned("1002", &link, &ca.root(), &ca.hosts());
    // The account came from the link: TLS to hotline.test, its certificate checked (chain and
    // name) against the test CA.
    caller.registered(&server);
    caller.command("status register");
    caller.wait_for(&format!(
        "registered, identity=\"Carol\" <sip:1002@{DOMAIN}>"
    ));
    caller.use_files();

    caller.command(&format!("call sip:1001@{DOMAIN}"));
    let incoming = callee.event("CALL_INCOMING");
    assert_eq!(field(&incoming, "peeruri"), format!("sip:1002@{DOMAIN}"));
    callee.command("accept", None);
    callee.event("CALL_ESTABLISHED");
    assert_eq!(field(&callee.event("CALL_MENC"), "param"), SECURE_AUDIO);
    caller.wait_for(&format!("Call 1 with sip:1001@{DOMAIN} connected."));
    caller.wait_for(SRTP_NEGOTIATED);
    assert_eq!(field(&callee.event("CALL_RTPESTAB"), "param"), "audio");
    caller.command("terminate");
    callee.event("CALL_CLOSED");
}

/// With hotline's own self-signed certificate, no file can make Linphone trust it: Linphone
/// checks the link's HTTPS against its own roots before it reads anything, and takes roots only
/// from a file (`[sip] root_ca`). Given only the link, it refuses the server and sets nothing
/// up; given the certificate from the link (its fingerprint on the settings card) as
/// `root_ca`, it sets itself up from the link, keeps that root and registers over TLS with the
/// name checked.
#[test]
fn linphone_trusts_a_self_signed_server_only_through_its_own_root_ca() {
    require_linphonec();
    let ca = TestCa::new();
    let https = common::free_tcp_port();
    let server = Server::start(&listeners(https));
    let (_, link) = add_user(&server, "1002", "Carol");
    let generated = server.data_dir().join("tls/cert.pem");

    let stranger = Linphone::provisioned("1002", &link, Path::new("/nonexistent"), &ca.hosts());
    let refused = stranger.wait_for("SSL handshake failed");
    assert!(
        refused.contains("Certificate verification failed"),
        "{refused}"
    );
    stranger.wait_for(&format!("Cannot connect to [TLS://{DOMAIN}:{https}]"));
    drop(stranger);

    // What the owner hands over: the certificate the link serves, checked by its fingerprint.
    let (status, pem) = get(
        https,
        &generated,
        &format!("{}/certificate.pem", path_of(&link)),
    )
    .unwrap();
    assert_eq!(status, 200);
    let pem = pem.split_once("\n\n").unwrap().1.to_owned();
    let (_, card) = get(
        https,
        &generated,
        &format!("{}/settings.txt", path_of(&link)),
    )
    .unwrap();
    let logged = server.wait_for_log("TLS certificate");
    let fingerprint = logged
        .split_once("fingerprint=")
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .unwrap();
    assert!(
        card.contains(&format!("SHA-256:    {fingerprint}")),
        "{card}"
    );
    let saved = ca.dir.path().join("certificate.pem");
    std::fs::write(&saved, &pem).unwrap();
    let caller = Linphone::provisioned("1002", &link, &saved, &ca.hosts());
    caller.registered(&server);
}

/// Every way of presenting a link that is not one (a wrong token, one character off, a revoked
/// link, a guessed extension, a flood of guesses) gets the very 404 of any other missing page,
/// is logged as an authentication failure without the token, and counts toward a ban of the
/// source, which then gets no answer at all, even for a good link.
#[test]
fn links_that_are_not_links_get_404_and_a_ban() {
    let ca = TestCa::new();
    let https = common::free_tcp_port();
    let failures = 12;
    let server = Server::start(&format!(
        "{}[bans]\nfailures = {failures}\n",
        ca.toml(https)
    ));
    let (_, alice) = add_user(&server, "1000", "Alice");
    let (_, bob) = add_user(&server, "1001", "Bob");
    let fetch = |path: &str| get(https, &ca.root(), path);
    assert_eq!(
        fetch(&format!("{}/settings.txt", path_of(&alice)))
            .unwrap()
            .0,
        200
    );
    // Any other missing page (outside /p/, the owner's pages send a stranger to their login).
    let missing = format!("{}/no-such-file", path_of(&alice));
    let (status, not_found) = fetch(&missing).unwrap();
    assert_eq!(status, 404);
    // The phone book follows the users at once.
    let directory = format!("{}/directory/yealink.xml", path_of(&alice));
    let (_, before) = fetch(&directory).unwrap();
    assert!(before.contains("<Name>Bob</Name>"), "{before}");
    add_user(&server, "1002", "Carol & Dave");
    let (_, after) = fetch(&directory).unwrap();
    assert!(after.contains("<Name>Carol &amp; Dave</Name>"), "{after}");

    // Bob's link revoked; Alice's token one character off, and cut short; guesses.
    let output = server.hotline(&["user", "provision", "1001", "--revoke"]);
    assert!(output.status.success(), "{output:?}");
    let token = &path_of(&alice)[3..];
    let last = token.len() - 1;
    let off = format!(
        "{}{}",
        &token[..last],
        if token.ends_with('A') { 'B' } else { 'A' }
    );
    let mut wrong = vec![
        path_of(&bob).to_owned(),
        format!("/p/{off}"),
        format!("/p/{}", &token[..last]),
        format!("/p/{off}/directory/yealink.xml"),
        "/p/1000".to_owned(),
        "/p/1001/settings.txt".to_owned(),
    ];
    // The flood: guesses of the right form, as fast as one connection each allows.
    wrong.extend((0..failures as usize - wrong.len()).map(|i| format!("/p/{i:0>43}")));
    for (count, path) in wrong.iter().enumerate() {
        assert_eq!(fetch(path), Some((404, not_found.clone())), "{path}");
        let failed = server.wait_for_logs("authentication failed", count + 1);
        assert!(
            failed[count].contains("transport=https what=provisioning link"),
            "{}",
            failed[count]
        );
    }
    server.wait_for_log("banned address=::1");
    assert_eq!(
        fetch(path_of(&alice)),
        None,
        "a banned source gets no answer"
    );
    let log = server.log_lines().join("\n");
    assert!(
        !log.contains(token) && !log.contains(&off),
        "a token was logged"
    );
}
