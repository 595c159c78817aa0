//! The registrar against the real binary: Digest over UDP, TCP and TLS, binding lifetimes,
//! persistence across a restart, and users managed while the server runs.

mod common;

use common::{Client, DOMAIN, Server, TRANSPORTS, Transport, challenges, contacts};
use hotline::core::auth::Algorithm;
use hotline::sip::HeaderName;

/// A 40-digit password that no user has (theirs are random).
const WRONG_PASSWORD: &str = "1234567890123456789012345678901234567890";

/// SHA-256 is opt-in: these tests offer both algorithms.
const BOTH_ALGORITHMS: &str = "[auth]\nalgorithms = [\"MD5\", \"SHA-256\"]\n";

fn contact_header(contact: &str) -> String {
    format!("Contact: {contact}\r\n")
}

fn registers_over(transport: Transport) {
    let server = Server::start("");
    let password = server.user_add("1000", "Alice");
    let mut client = Client::connect(&server, transport);
    let contact = client.contact("1000");
    let ok = client.register("1000", &password, Algorithm::Md5, &contact_header(&contact));
    assert_eq!(ok.status(), Some(200), "{ok:?}");
    assert_eq!(contacts(&ok), [format!("{contact};expires=3600")]);
    let line = server.wait_for_log(" registered ");
    assert!(
        line.contains(&format!(
            "transport={} extension=1000 contacts=1",
            transport.name()
        )),
        "{line}"
    );
}

#[test]
fn registers_over_udp() {
    registers_over(Transport::Udp);
}

#[test]
fn registers_over_tcp() {
    registers_over(Transport::Tcp);
}

#[test]
fn registers_over_tls() {
    registers_over(Transport::Tls);
}

#[test]
fn default_challenge_offers_md5_only() {
    let server = Server::start("");
    let mut client = Client::connect(&server, Transport::Tls);
    let uri = format!("sip:{DOMAIN}");
    let request = client.request("REGISTER", &uri, &format!("sip:1000@{DOMAIN}"), "");
    let challenge = client.send(&request);
    assert_eq!(challenge.status(), Some(401));
    let offered = challenges(&challenge);
    let algorithms: Vec<&str> = offered.iter().map(|c| c.algorithm.as_str()).collect();
    assert_eq!(algorithms, ["MD5"]);
}

#[test]
fn challenge_offers_md5_then_sha256_and_both_register() {
    let server = Server::start(BOTH_ALGORITHMS);
    let password = server.user_add("1000", "Alice");
    let mut client = Client::connect(&server, Transport::Udp);
    let uri = format!("sip:{DOMAIN}");
    let request = client.request("REGISTER", &uri, &format!("sip:1000@{DOMAIN}"), "");
    let challenge = client.send(&request);
    assert_eq!(challenge.status(), Some(401));
    assert_eq!(challenge.reason(), Some("Unauthorized"));
    let offered = challenges(&challenge);
    let algorithms: Vec<&str> = offered.iter().map(|c| c.algorithm.as_str()).collect();
    assert_eq!(algorithms, ["MD5", "SHA-256"]);
    for c in &offered {
        assert_eq!(
            (c.realm.as_str(), c.qop.as_str()),
            (DOMAIN, "auth"),
            "{c:?}"
        );
    }

    let contact = client.contact("1000");
    for algorithm in [Algorithm::Md5, Algorithm::Sha256] {
        let ok = client.register("1000", &password, algorithm, &contact_header(&contact));
        assert_eq!(ok.status(), Some(200), "{}: {ok:?}", algorithm.as_str());
    }
}

#[test]
fn wrong_password_and_unknown_extension_get_the_same_403() {
    let server = Server::start(BOTH_ALGORITHMS);
    server.user_add("1000", "Alice");
    let mut refusals = Vec::new();
    for extension in ["1000", "1001"] {
        let mut client = Client::connect(&server, Transport::Udp);
        let contact = contact_header(&client.contact(extension));
        for algorithm in [Algorithm::Md5, Algorithm::Sha256] {
            let refused = client.register(extension, WRONG_PASSWORD, algorithm, &contact);
            assert_eq!(refused.status(), Some(403), "{extension}: {refused:?}");
            let names: Vec<String> = refused
                .all_headers()
                .map(|(_, name, _)| name.to_owned())
                .collect();
            refusals.push((refused.reason().map(str::to_owned), names));
        }
    }
    assert_eq!(refusals[0].0.as_deref(), Some("Forbidden"));
    assert!(
        refusals.iter().all(|r| *r == refusals[0]),
        "the refusals differ: {refusals:?}"
    );
    server.wait_for_logs("authentication failed", 4);
}

#[test]
fn expired_binding_is_removed() {
    let server = Server::start("[registrar]\nmin_expires = 1\ndefault_expires = 1\n");
    let password = server.user_add("1000", "Alice");
    let mut client = Client::connect(&server, Transport::Udp);
    let contact = client.contact("1000");
    let ok = client.register("1000", &password, Algorithm::Md5, &contact_header(&contact));
    assert_eq!(contacts(&ok), [format!("{contact};expires=1")]);

    let line = server.wait_for_log("binding expired");
    assert!(line.contains("extension=1000"), "{line}");
    let query = client.register("1000", &password, Algorithm::Md5, "");
    assert_eq!(query.status(), Some(200), "{query:?}");
    assert_eq!(contacts(&query), Vec::<String>::new());
}

#[test]
fn expires_zero_removes_one_binding() {
    let server = Server::start("");
    let password = server.user_add("1000", "Alice");
    let mut client = Client::connect(&server, Transport::Udp);
    let desk = client.contact("1000");
    let soft = "<sip:1000@[::1]:5999;transport=udp>";
    let both = format!("Contact: {desk}, {soft}\r\n");
    let ok = client.register("1000", &password, Algorithm::Md5, &both);
    assert_eq!(contacts(&ok).len(), 2, "{ok:?}");

    let remove = format!("Contact: {desk}\r\nExpires: 0\r\n");
    let ok = client.register("1000", &password, Algorithm::Md5, &remove);
    assert_eq!(ok.status(), Some(200), "{ok:?}");
    assert_eq!(contacts(&ok), [format!("{soft};expires=3600")]);
}

#[test]
fn contact_star_removes_every_binding() {
    let server = Server::start("");
    let password = server.user_add("1000", "Alice");
    let mut client = Client::connect(&server, Transport::Tcp);
    let both = format!(
        "Contact: {}\r\nContact: <sip:1000@[::1]:5999>\r\n",
        client.contact("1000")
    );
    let ok = client.register("1000", &password, Algorithm::Md5, &both);
    assert_eq!(contacts(&ok).len(), 2, "{ok:?}");

    let all = "Contact: *\r\nExpires: 0\r\n";
    let ok = client.register("1000", &password, Algorithm::Md5, all);
    assert_eq!(ok.status(), Some(200), "{ok:?}");
    assert_eq!(contacts(&ok), Vec::<String>::new());
    let query = client.register("1000", &password, Algorithm::Md5, "");
    assert_eq!(contacts(&query), Vec::<String>::new());
}

#[test]
fn too_brief_expiry_gets_423_with_min_expires() {
    let server = Server::start("");
    let password = server.user_add("1000", "Alice");
    let mut client = Client::connect(&server, Transport::Udp);
    let brief = format!("Contact: {}\r\nExpires: 59\r\n", client.contact("1000"));
    let refused = client.register("1000", &password, Algorithm::Md5, &brief);
    assert_eq!(refused.status(), Some(423), "{refused:?}");
    assert_eq!(refused.header(HeaderName::MinExpires), Some("60"));
    let query = client.register("1000", &password, Algorithm::Md5, "");
    assert_eq!(contacts(&query), Vec::<String>::new());
}

#[test]
fn binding_survives_a_restart() {
    let mut server = Server::start("");
    let password = server.user_add("1000", "Alice");
    let mut client = Client::connect(&server, Transport::Udp);
    let contact = client.contact("1000");
    let ok = client.register("1000", &password, Algorithm::Md5, &contact_header(&contact));
    assert_eq!(ok.status(), Some(200), "{ok:?}");

    server.restart();
    let line = server.wait_for_log("database loaded");
    assert!(line.contains("users=1 bindings=1"), "{line}");
    let mut client = Client::connect(&server, Transport::Udp);
    let query = client.register("1000", &password, Algorithm::Md5, "");
    let listed = contacts(&query);
    assert_eq!(listed.len(), 1, "{query:?}");
    assert!(
        listed[0].starts_with(&format!("{contact};expires=")),
        "{listed:?}"
    );
}

#[test]
fn user_added_while_running_registers_at_once() {
    let server = Server::start(BOTH_ALGORITHMS);
    let password = server.user_add("1000", "Alice");
    server.wait_for_log("user saved extension=1000");
    let list = server.hotline(&["user", "list"]);
    assert!(list.status.success(), "{list:?}");
    let listed = String::from_utf8_lossy(&list.stdout);
    assert_eq!(listed.trim_end(), format!("{:<16} Alice", "1000"));

    let mut client = Client::connect(&server, Transport::Tls);
    let ok = client.register(
        "1000",
        &password,
        Algorithm::Sha256,
        &contact_header(&client.contact("1000")),
    );
    assert_eq!(ok.status(), Some(200), "{ok:?}");
}

#[test]
fn user_added_while_stopped_registers_after_start() {
    let mut server = Server::start("");
    let alice = server.user_add("1000", "Alice");
    let mut client = Client::connect(&server, Transport::Udp);
    let contact = contact_header(&client.contact("1000"));
    let ok = client.register("1000", &alice, Algorithm::Md5, &contact);
    assert_eq!(ok.status(), Some(200), "{ok:?}");

    server.stop();
    let bob = server.user_add("1001", "Bob");
    server.start_again();
    let line = server.wait_for_log("database loaded");
    assert!(line.contains("users=2 bindings=1"), "{line}");
    let mut client = Client::connect(&server, Transport::Udp);
    let contact = contact_header(&client.contact("1001"));
    let ok = client.register("1001", &bob, Algorithm::Md5, &contact);
    assert_eq!(ok.status(), Some(200), "{ok:?}");
}

#[test]
fn user_removed_while_running_is_refused() {
    let server = Server::start("");
    let password = server.user_add("1000", "Alice");
    let mut client = Client::connect(&server, Transport::Udp);
    let contact = contact_header(&client.contact("1000"));
    let ok = client.register("1000", &password, Algorithm::Md5, &contact);
    assert_eq!(ok.status(), Some(200), "{ok:?}");

    server.user_remove("1000");
    server.wait_for_log("user removed extension=1000");
    let refused = client.register("1000", &password, Algorithm::Md5, &contact);
    assert_eq!(refused.status(), Some(403), "{refused:?}");
}

#[test]
fn new_password_while_running_replaces_the_old_one() {
    let server = Server::start("");
    let old = server.user_add("1000", "Alice");
    let new = server.user_passwd("1000");
    assert_ne!(old, new);
    let mut client = Client::connect(&server, Transport::Tcp);
    let contact = contact_header(&client.contact("1000"));
    let refused = client.register("1000", &old, Algorithm::Md5, &contact);
    assert_eq!(refused.status(), Some(403), "{refused:?}");
    let ok = client.register("1000", &new, Algorithm::Md5, &contact);
    assert_eq!(ok.status(), Some(200), "{ok:?}");
}

/// Challenges are stateless (RFC 3261 §8.2.7), as Kamailio's: a retransmission gets a fresh
/// one. (An authenticated REGISTER's retransmission gets the same 200: see the core's tests.)
#[test]
fn retransmitted_challenged_register_gets_a_fresh_challenge_over_udp() {
    let server = Server::start("");
    let mut client = Client::connect(&server, Transport::Udp);
    let request = client.request(
        "REGISTER",
        &format!("sip:{DOMAIN}"),
        "sip:1000@hotline.test",
        "",
    );
    client.send_raw(request.as_bytes());
    let first = client.recv();
    client.send_raw(request.as_bytes());
    let second = client.recv();
    assert_eq!(first.status(), Some(401), "{first:?}");
    assert_eq!(second.status(), Some(401), "{second:?}");
    assert_ne!(challenges(&first)[0].nonce, challenges(&second)[0].nonce);
}

#[test]
fn crlf_keep_alive_gets_crlf_over_streams() {
    let server = Server::start("");
    for transport in [Transport::Tcp, Transport::Tls] {
        let mut client = Client::connect(&server, transport);
        client.send_raw(b"\r\n\r\n");
        assert_eq!(client.recv_exact(2), b"\r\n", "{transport:?}");
        let ok = client.options();
        assert_eq!(ok.status(), Some(200), "{transport:?}: {ok:?}");
    }
}

#[test]
fn options_gets_200_over_every_transport() {
    let server = Server::start("");
    for transport in TRANSPORTS {
        let mut client = Client::connect(&server, transport);
        let ok = client.options();
        assert_eq!(ok.status(), Some(200), "{transport:?}: {ok:?}");
        let allow = ok.all_headers().find(|(_, name, _)| *name == "Allow");
        assert!(
            allow.is_some_and(|(_, _, value)| value.contains("REGISTER")),
            "{ok:?}"
        );
    }
}
