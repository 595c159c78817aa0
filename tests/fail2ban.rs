//! The Fail2Ban filter in config/fail2ban against log output of the real binary: every security
//! event matches, with its address, and no other line does.

mod common;

use common::{Client, Server, TRANSPORTS, Transport};
use hotline::core::auth::Algorithm;

#[test]
fn filter_matches_security_events_and_nothing_else() {
    // Low enough for the end of the test to flood, high enough for its first part.
    let server = Server::start(
        "[flood]\nper_address = 30\nper_prefix = [[64, 1000]]\n\
         [limits]\nmax_connections_per_address = 3\nanonymous_timeout = 2\n",
    );
    let password = server.user_add("1000", "Alice");
    let mut client = Client::connect(&server, Transport::Udp);
    let ok = client.register("1000", &password, Algorithm::Md5, "");
    assert_eq!(ok.status(), Some(200));
    assert_eq!(client.options().status(), Some(200));
    for transport in TRANSPORTS {
        let mut attacker = Client::connect(&server, transport);
        let refused = attacker.register("1000", "123456", Algorithm::Md5, "");
        assert_eq!(refused.status(), Some(403));
    }
    let mut unknown = Client::connect(&server, Transport::Udp);
    assert_eq!(
        unknown
            .register("1999", "123456", Algorithm::Md5, "")
            .status(),
        Some(403)
    );
    server.wait_for_logs("authentication failed", 4);
    let mut flooder = Client::connect(&server, Transport::Udp);
    let request = flooder.request(
        "OPTIONS",
        &format!("sip:{}", common::DOMAIN),
        "sip:x@hotline.test",
        "",
    );
    for _ in 0..40 {
        flooder.send_raw(request.as_bytes());
    }
    server.wait_for_log("flood detected");

    // Three connections that only ping, then three more than the address may have: the
    // refusals are reported, and so are the pings' connections when their deadline passes.
    let pinging: Vec<Client> = (0..3)
        .map(|_| {
            let mut client = Client::connect(&server, Transport::Tcp);
            client.send_raw(b"\r\n\r\n");
            assert_eq!(client.recv_exact(2), b"\r\n");
            client
        })
        .collect();
    for _ in 0..3 {
        Client::connect(&server, Transport::Tcp).expect_closed();
    }
    server.wait_for_log("connection limit reached address=::1 ");
    server.wait_for_log("anonymous connections expired address=::1 ");
    drop(pinging);

    let (events, others): (Vec<String>, Vec<String>) = server
        .log_lines()
        .into_iter()
        .partition(|line| line.contains("hotline::security"));
    assert!(events.len() >= 7, "{events:?}");
    assert!(
        others.iter().any(|l| l.contains("registered")),
        "{others:?}"
    );

    let matched = common::fail2ban_regex(&events);
    let total = events.len();
    assert!(
        matched.contains(&format!(
            "Lines: {total} lines, 0 ignored, {total} matched, 0 missed"
        )),
        "{matched}"
    );
    assert!(matched.contains("::1"), "the address is found: {matched}");
    let missed = common::fail2ban_regex(&others);
    assert!(missed.contains(" 0 matched, "), "{missed}");
}
