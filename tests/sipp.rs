//! SIPp, a real SIP peer (Debian's `sip-tester`, UDP only), runs the REGISTER-with-Digest
//! scenario of the benchmark against the real binary.

mod common;

use common::Server;
use common::sipp::sipp;

#[test]
fn sipp_registers_with_digest() {
    let server = Server::start("");
    let extensions = ["1000", "1001", "1002", "1003", "1004"];
    let passwords: Vec<String> = extensions
        .iter()
        .map(|extension| server.user_add(extension, "SIPp"))
        .collect();
    let users: Vec<(&str, &str)> = extensions
        .iter()
        .copied()
        .zip(passwords.iter().map(String::as_str))
        .collect();

    let run = sipp(&server, &users, 50);
    assert_eq!(run.code, Some(0), "{}", run.report);
    let registered = server.wait_for_logs(" registered ", 50);
    for extension in extensions {
        let needle = format!("transport=UDP extension={extension} ");
        assert!(
            registered.iter().any(|line| line.contains(&needle)),
            "{extension} never registered"
        );
    }
}

#[test]
fn sipp_with_a_wrong_password_fails() {
    let server = Server::start("");
    server.user_add("1000", "SIPp");
    let run = sipp(&server, &[("1000", "not-the-password")], 3);
    // 1 is SIPp's "at least one call failed"; fatal errors have other codes.
    assert_eq!(run.code, Some(1), "{}", run.report);
    server.wait_for_logs("authentication failed", 3);
}
