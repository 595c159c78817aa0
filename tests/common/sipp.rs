//! SIPp (Debian's `sip-tester`, UDP only) running the REGISTER-with-Digest scenario of the
//! benchmark.

use std::io::ErrorKind;
use std::net::UdpSocket;
use std::process::Command;

use tempfile::TempDir;

use super::{DOMAIN, Server, Transport};

const SCENARIO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sipp/register_auth.xml");

/// What a SIPp run returned, and everything it said, for failure messages.
pub struct Run {
    pub code: Option<i32>,
    pub report: String,
}

/// Runs the scenario for `calls` registrations (50 a second) of `users`, (extension, password)
/// pairs taken in turn.
pub fn sipp(server: &Server, users: &[(&str, &str)], calls: u32) -> Run {
    let dir = TempDir::new().expect("temporary directory");
    let csv: String = users
        .iter()
        .map(|(extension, password)| format!("{extension};{password}\n"))
        .collect();
    std::fs::write(dir.path().join("users.csv"), format!("SEQUENTIAL\n{csv}")).unwrap();
    // Without -p (and with -p 0) SIPp takes 5060 or the next free port above it; a port the
    // kernel picked keeps parallel runs apart and away from SIP servers on the machine.
    let port = UdpSocket::bind("[::1]:0")
        .and_then(|socket| socket.local_addr())
        .expect("free UDP port")
        .port();
    let target = format!("[::1]:{}", server.address(Transport::Udp).port());
    let (calls, port) = (calls.to_string(), port.to_string());
    let output = Command::new("sipp")
        .current_dir(dir.path())
        .arg(&target)
        .args([
            "-sf",
            SCENARIO,
            "-inf",
            "users.csv",
            "-m",
            &calls,
            "-r",
            "50",
        ])
        .args(["-key", "domain", DOMAIN, "-key", "expires", "600"])
        .args(["-auth_uri", DOMAIN, "-i", "::1", "-p", &port])
        .args(["-nostdin", "-timeout", "30", "-timeout_error", "-trace_err"])
        .output();
    let output = match output {
        Ok(output) => output,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            panic!("sipp is not installed: run .ci/run, or apt-get install sip-tester (Debian 12)")
        }
        Err(e) => panic!("cannot run sipp: {e}"),
    };
    let mut report = format!(
        "sipp exited with {}\n--- stdout\n{}\n--- stderr\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.to_string_lossy().ends_with("_errors.log") {
            let errors = std::fs::read_to_string(&path).unwrap_or_default();
            report += &format!("\n--- {}\n{errors}", path.display());
        }
    }
    Run {
        code: output.status.code(),
        report,
    }
}
