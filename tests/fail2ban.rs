//! The Fail2Ban filter in config/fail2ban against log output of the real binary: every security
//! event matches, with its address, and no other line does.

mod common;

use std::path::Path;
use std::process::Command;

use common::{Client, Server, TRANSPORTS, Transport};
use hotline::core::auth::Algorithm;

/// Where Debian's fail2ban keeps the definitions the filter includes.
const COMMON_CONF: &str = "/etc/fail2ban/filter.d/common.conf";

#[test]
fn filter_matches_security_events_and_nothing_else() {
    assert!(
        Path::new(COMMON_CONF).exists(),
        "fail2ban is not installed: run .ci/run (or apt-get install fail2ban)"
    );
    // Low enough for the end of the test to flood, high enough for its first part.
    let server = Server::start(
        "[flood]\nper_address = 30\nper_prefix = [[64, 1000]]\n[bans]\nfailures = 10\n",
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

    let dir = tempfile::tempdir().unwrap();
    let filters = dir.path().join("filter.d");
    std::fs::create_dir(&filters).unwrap();
    std::fs::copy(COMMON_CONF, filters.join("common.conf")).unwrap();
    let filter = filters.join("hotline.conf");
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("config/fail2ban/filter.d/hotline.conf"),
        &filter,
    )
    .unwrap();

    let (events, others): (Vec<String>, Vec<String>) = server
        .log_lines()
        .into_iter()
        .partition(|line| line.contains("hotline::security"));
    assert!(events.len() >= 6, "{events:?}");
    assert!(
        others.iter().any(|l| l.contains("registered")),
        "{others:?}"
    );

    let matched = regex(dir.path(), "events.log", &events, &filter);
    let total = events.len();
    assert!(
        matched.contains(&format!(
            "Lines: {total} lines, 0 ignored, {total} matched, 0 missed"
        )),
        "{matched}"
    );
    assert!(matched.contains("::1"), "the address is found: {matched}");
    let missed = regex(dir.path(), "others.log", &others, &filter);
    assert!(missed.contains(" 0 matched, "), "{missed}");
}

/// Runs fail2ban-regex over `lines` and returns its report.
fn regex(dir: &Path, name: &str, lines: &[String], filter: &Path) -> String {
    let log = dir.join(name);
    std::fs::write(&log, lines.join("\n") + "\n").unwrap();
    let output = Command::new("fail2ban-regex")
        .arg("--print-all-matched")
        .arg(&log)
        .arg(filter)
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
