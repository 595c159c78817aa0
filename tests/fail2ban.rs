//! The Fail2Ban filter in config/fail2ban against log output of the real binary: every security
//! event matches, with its address, and no other line does.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;

use common::{Client, Server, TRANSPORTS, Transport};
use hotline::core::auth::Algorithm;

#[test]
fn filter_matches_security_events_and_nothing_else() {
    // Low enough for the end of the test to flood, high enough for its first part.
    let server = Server::start(
        "[flood]\nper_address = 30\nper_prefix = [[64, 1000]]\n[bans]\nfailures = 10\n\
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
    // A BYE that claims a dialog hotline never made.
    let mut claimer = Client::connect(&server, Transport::Tcp);
    let aor = format!("sip:1000@{}", common::DOMAIN);
    let claim = claimer
        .request("BYE", &aor, &aor, "")
        .replace(&format!("To: <{aor}>"), &format!("To: <{aor}>;tag=x"));
    assert_eq!(claimer.send(&claim).status(), Some(481));
    server.wait_for_log("request refused");
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

    // Connections that only ping, until three are refused: the address's three slots are
    // full (the claimer's among them). The refusals are reported, and so are the anonymous
    // connections when their deadline passes.
    let mut pinging = Vec::new();
    let mut refused = 0;
    for _ in 0..20 {
        let mut stream = TcpStream::connect(server.address(Transport::Tcp)).unwrap();
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        let mut pong = [0; 2];
        match stream
            .write_all(b"\r\n\r\n")
            .and_then(|()| stream.read_exact(&mut pong))
        {
            Ok(()) => pinging.push(stream),
            Err(_) => refused += 1,
        }
        if refused == 3 {
            break;
        }
    }
    assert_eq!(refused, 3);
    server.wait_for_log("connection limit reached address=::1 ");
    server.wait_for_log("anonymous connections expired address=::1 ");
    drop((pinging, claimer));

    let (events, others): (Vec<String>, Vec<String>) = server
        .log_lines()
        .into_iter()
        .partition(|line| line.contains("hotline::security"));
    assert!(events.len() >= 8, "{events:?}");
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
