//! The owner's pages in a real browser: headless Chromium (Debian's `chromium` and
//! `chromium-driver`) driven through WebDriver by tests/browser/owner.py (python3-selenium),
//! against hotline on `[::1]`, with a baresip phone and a SIP client from a second address of
//! a network namespace of the test's own (needs root, as CI runs).
//!
//! The script saves a screenshot of every page to `$HOTLINE_SCREENSHOTS` (default: a temporary
//! directory, removed after the test).

mod common;

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use common::baresip::{Phone, require_baresip};
use common::netns::in_network_namespace;
use common::web::OWNER_PASSWORD;
use common::{Client, DOMAIN, Server, authorization};
use hotline::core::auth::Algorithm;
use hotline::sip::{HeaderName, Message};

/// The address of the phone that gets banned, beside the browser's `::1`.
const PHONE: &str = "2001:db8::66";

/// A 40-digit SIP password that no user has (theirs are random).
const WRONG: &str = "1234567890123456789012345678901234567890";

#[test]
fn the_owner_runs_the_network_from_a_browser() {
    require_baresip();
    in_network_namespace(&[PHONE], || {
        // A port of its own, which the provisioning links name.
        let https = common::free_tcp_port();
        let server = Server::start(&format!(
            "[web]\nenabled = true\nhttps = [\"[::1]:{https}\"]\n[bans]\nfailures = 3\n"
        ));
        let output = server.owner_passwd(OWNER_PASSWORD);
        assert!(output.status.success(), "{output:?}");
        let temporary = tempfile::TempDir::new().unwrap();
        let shots = std::env::var_os("HOTLINE_SCREENSHOTS")
            .map_or_else(|| temporary.path().to_owned(), PathBuf::from);
        std::fs::create_dir_all(&shots).unwrap();
        let url = format!("https://{DOMAIN}:{}", server.https_address().port());
        let mut script = Command::new("/usr/bin/python3")
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/browser/owner.py"
            ))
            .env("HOTLINE_URL", &url)
            .env(
                "HOTLINE_CERTIFICATE",
                server.data_dir().join("tls/cert.pem"),
            )
            .env("HOTLINE_OWNER_PASSWORD", OWNER_PASSWORD)
            .env("HOTLINE_SCREENSHOTS", &shots)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("run python3 (apt-get install python3-selenium chromium chromium-driver)");
        let mut tell = script.stdin.take().unwrap();
        let mut lines = BufReader::new(script.stdout.take().unwrap()).lines();
        let mut expect = |prefix: &str| -> String {
            let line = lines.next().and_then(Result::ok).unwrap_or_default();
            match line.strip_prefix(prefix) {
                Some(rest) => rest.trim().to_owned(),
                None => panic!("the browser script said {line:?}, not {prefix:?}"),
            }
        };

        expect("LOGGED IN");
        let password = expect("PASSWORD");
        let _phone = Phone::start(&server, "1000", &password, "");
        writeln!(tell, "REGISTERED").unwrap();
        expect("PHONES OK");

        let bob_password = server.user_add("1001", "Bob");
        let mut bob = Client::connect_udp_from(&server, PHONE.parse().unwrap());
        let contact = format!("Contact: {}\r\n", bob.contact("1001"));
        let ok = bob.register("1001", &bob_password, Algorithm::Md5, &contact);
        assert_eq!(ok.status(), Some(200), "{ok:?}");
        let answer = invite_without_sdp(&mut bob, &bob_password);
        let status = answer.status().unwrap();
        assert_eq!(status, 488, "{answer:?}");
        writeln!(tell, "CALLED {status}").unwrap();
        expect("CALLS OK");

        for _ in 0..3 {
            let refused = bob.register("1001", WRONG, Algorithm::Md5, "");
            assert_eq!(refused.status(), Some(403), "{refused:?}");
        }
        server.wait_for_log(&format!(" banned address={PHONE} "));
        writeln!(tell, "BANNED {PHONE}/128").unwrap();
        expect("LIFTED");
        server.wait_for_log(&format!("ban lifted scope={PHONE}/128"));
        let ok = bob.register("1001", &bob_password, Algorithm::Md5, &contact);
        assert_eq!(ok.status(), Some(200), "{ok:?}");
        writeln!(tell, "REGISTERED AGAIN").unwrap();
        expect("LOGGED OUT");
        assert!(script.wait().unwrap().success());
        eprintln!("screenshots in {}", shots.display());
    });
}

/// An INVITE from 1001 to 1000 without SDP, answering the proxy's 407: its final response.
fn invite_without_sdp(client: &mut Client, password: &str) -> Message {
    let uri = format!("sip:1000@{DOMAIN}");
    let from = |request: String| {
        request.replacen(
            &format!("From: <{uri}>"),
            &format!("From: <sip:1001@{DOMAIN}>"),
            1,
        )
    };
    let contact = format!("Contact: {}\r\n", client.contact("1001"));
    let request = from(client.request("INVITE", &uri, &uri, &contact));
    let challenge = client.send(&request);
    assert_eq!(challenge.status(), Some(407), "{challenge:?}");
    let credentials = authorization(&challenge, Algorithm::Md5, "1001", password, "INVITE", &uri);
    let request = from(client.request("INVITE", &uri, &uri, &format!("{contact}{credentials}")));
    let mut response = client.send(&request);
    while response.status().is_some_and(|s| s < 200) {
        response = client.recv();
    }
    // The ACK of a non-2xx answer: the INVITE's branch and CSeq number, the answer's To.
    let to = response.header(HeaderName::To).expect("To");
    let ack = request
        .replacen("INVITE ", "ACK ", 1)
        .replace(" INVITE\r\n", " ACK\r\n")
        .replace(&format!("To: <{uri}>\r\n"), &format!("To: {to}\r\n"));
    client.send_raw(ack.as_bytes());
    response
}
