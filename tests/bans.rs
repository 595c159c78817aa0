//! Bans against the real binary: wrong passwords ban their source, whose requests then get no
//! reply at all; the ban survives a restart, `hotline ban list` shows it and `hotline ban remove`
//! lifts it. Sources other than `::1` live in a network namespace of the test's own, which
//! needs root (as CI runs) and `ip` from iproute2.

mod common;

use std::process::Output;
use std::time::Duration;

use common::netns::in_network_namespace;
use common::{Client, DOMAIN, Server, Transport};
use hotline::core::auth::Algorithm;

/// A 40-digit password that no user has (theirs are random).
const WRONG_PASSWORD: &str = "1234567890123456789012345678901234567890";

/// Three failures ban; at debug, the server logs when bans are on disk.
const CONFIG: &str = "[bans]\nfailures = 3\n[log]\nlevel = \"info,hotline::net=debug\"\n";

/// How long a dropped request is given to be answered anyway: there is no event to wait for.
const SILENCE: Duration = Duration::from_millis(300);

const DROPPING: &str = "dropping messages from a banned source";

fn contact_header(client: &Client) -> String {
    format!("Contact: {}\r\n", client.contact("1000"))
}

/// An unauthenticated REGISTER for 1000 (a server that answers sends a 401).
fn register_request(client: &mut Client) -> String {
    let uri = format!("sip:{DOMAIN}");
    client.request("REGISTER", &uri, &format!("sip:1000@{DOMAIN}"), "")
}

fn fail(client: &mut Client, times: usize) {
    for _ in 0..times {
        let refused = client.register("1000", WRONG_PASSWORD, Algorithm::Md5, "");
        assert_eq!(refused.status(), Some(403), "{refused:?}");
    }
}

fn stdout(output: &Output) -> String {
    assert!(output.status.success(), "{output:?}");
    String::from_utf8_lossy(&output.stdout)
        .trim_end()
        .to_owned()
}

#[test]
fn failures_ban_the_source_until_the_ban_is_lifted() {
    let mut server = Server::start(CONFIG);
    let password = server.user_add("1000", "Alice");
    let mut mallory = Client::connect(&server, Transport::Udp);
    fail(&mut mallory, 3);
    let line = server.wait_for_log(" banned ");
    assert!(line.contains(" banned address=::1 port="), "{line}");
    assert!(
        line.contains(" scope=::1/128 until=") && line.ends_with(" failures=3"),
        "{line}"
    );
    server.wait_for_log("bans saved");

    let request = register_request(&mut mallory);
    mallory.send_unanswered(&request, SILENCE);
    let line = server.wait_for_log(DROPPING);
    assert!(line.contains("scope=::1/128"), "{line}");
    let listed = stdout(&server.hotline(&["ban", "list"]));
    assert!(listed.starts_with("::1/128 "), "{listed}");
    assert!(listed.contains(" (60 min left)"), "{listed}");
    assert!(
        listed.ends_with("  3 authentication failures in 600 s"),
        "{listed}"
    );

    server.stop();
    // Without a server the command reads the database itself.
    assert_eq!(stdout(&server.hotline(&["ban", "list"])), listed);
    server.start_again();
    let line = server.wait_for_log("database loaded");
    assert!(line.contains("users=1 bindings=0 bans=1"), "{line}");
    let mut mallory = Client::connect(&server, Transport::Udp);
    let request = register_request(&mut mallory);
    mallory.send_unanswered(&request, SILENCE);
    server.wait_for_log(DROPPING);

    let lifted = server.hotline(&["ban", "remove", "::1"]);
    assert_eq!(stdout(&lifted), "Lifted the ban of ::1/128.");
    server.wait_for_log("ban lifted scope=::1/128");
    let contact = contact_header(&mallory);
    let ok = mallory.register("1000", &password, Algorithm::Md5, &contact);
    assert_eq!(ok.status(), Some(200), "{ok:?}");
    assert_eq!(stdout(&server.hotline(&["ban", "list"])), "No bans.");
    let again = server.hotline(&["ban", "remove", "::1"]);
    assert!(!again.status.success(), "{again:?}");
    let message = String::from_utf8_lossy(&again.stderr);
    assert!(message.contains("no ban covers ::1"), "{message}");
}

#[test]
fn a_ban_covers_its_source_alone_or_its_whole_prefix() {
    let addresses = ["2001:db8::a", "2001:db8::b", "2001:db8::c", "2001:db8:1::1"];
    in_network_namespace(&addresses, || {
        let server = Server::start(CONFIG);
        let password = server.user_add("1000", "Alice");
        let from = |address: &str| Client::connect_udp_from(&server, address.parse().unwrap());

        let mut mallory = Client::connect(&server, Transport::Udp);
        fail(&mut mallory, 3);
        server.wait_for_log("banned address=::1 ");
        let mut alice = from("2001:db8:1::1");
        let contact = contact_header(&alice);
        let ok = alice.register("1000", &password, Algorithm::Md5, &contact);
        assert_eq!(
            ok.status(),
            Some(200),
            "the right password from elsewhere: {ok:?}"
        );

        // Two addresses of one /64 add up: the whole prefix is banned.
        fail(&mut from("2001:db8::a"), 2);
        fail(&mut from("2001:db8::b"), 1);
        let line = server.wait_for_log("scope=2001:db8::/64");
        assert!(line.contains(" banned address=2001:db8::b "), "{line}");
        let mut carol = from("2001:db8::c");
        let request = register_request(&mut carol);
        carol.send_unanswered(&request, SILENCE);
        let ok = alice.register("1000", &password, Algorithm::Md5, &contact);
        assert_eq!(ok.status(), Some(200), "{ok:?}");

        server.wait_for_logs("bans saved", 2);
        let listed = stdout(&server.hotline(&["ban", "list"]));
        let scopes: Vec<&str> = listed
            .lines()
            .filter_map(|line| line.split_whitespace().next())
            .collect();
        assert_eq!(scopes, ["2001:db8::/64", "::1/128"], "{listed}");
        // An address lifts the ban that covers it.
        let lifted = server.hotline(&["ban", "remove", "2001:db8::c"]);
        assert_eq!(stdout(&lifted), "Lifted the ban of 2001:db8::/64.");
        server.wait_for_log("ban lifted scope=2001:db8::/64");
        let contact = contact_header(&carol);
        let ok = carol.register("1000", &password, Algorithm::Md5, &contact);
        assert_eq!(ok.status(), Some(200), "{ok:?}");
    });
}

#[test]
fn scanners_get_no_reply_and_one_log_line() {
    let server = Server::start("");
    let mut scanner = Client::connect(&server, Transport::Udp);
    let uri = format!("sip:{DOMAIN}");
    for _ in 0..3 {
        let probe = scanner.request("OPTIONS", &uri, &uri, "User-Agent: friendly-scanner\r\n");
        scanner.send_unanswered(&probe, SILENCE);
    }
    // The server handles one source's datagrams in order: once this is answered, the probes
    // have been dropped.
    let ping = scanner.request("OPTIONS", &uri, &uri, "User-Agent: baresip v3.10.1\r\n");
    assert_eq!(scanner.send(&ping).status(), Some(200));
    let lines = server.wait_for_logs(" scanner detected address=", 1);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].contains(" scanner detected address=::1 port=")
            && lines[0].ends_with(" transport=UDP user_agent=friendly-scanner method=\"OPTIONS\""),
        "{}",
        lines[0]
    );
}
