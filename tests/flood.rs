//! Flood limits against the real binary, with real SIPp peers: a flood does not lock out the
//! phones of other networks. The server runs in a network namespace of the test's own, so that
//! the flood and the phone come from different addresses (`::1` and the documentation prefix on
//! the namespace's loopback).

mod common;

use std::fs::File;
use std::io::ErrorKind;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use common::netns::Netns;
use common::{DOMAIN, Server, Transport};
use tempfile::TempDir;

const FLOOD: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sipp/flood.xml");
const REGISTER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sipp/register_auth.xml");

/// The default limits of config/hotline.toml, spelt out so that the harness keeps them.
const DEFAULT_LIMITS: &str = "[flood]\nwindow = 2\nper_address = 60\n\
     per_prefix = [[64, 120], [56, 200], [48, 400]]\nreply_budget = 3\ncooldown = 60\n";

/// The phone, in another /48 than every flood.
const PHONE: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, 1);

/// The UDP port of every SIPp (each has an address of its own, the namespace is the test's own).
const SIPP_PORT: &str = "5070";

/// Registrations of the phone, and per second: 10 requests a second, under the limit of 30.
const REGISTRATIONS: u32 = 20;
const REGISTRATIONS_PER_SECOND: u32 = 5;

/// An upper bound of every SIPp run, in seconds: floods are stopped once the phone is done.
const SIPP_TIMEOUT: &str = "60";

/// A SIPp in the namespace; killed on drop if still running. Its output goes to files in its
/// directory (a pipe nobody reads would stall a long flood).
struct Sipp {
    child: Option<Child>,
    dir: TempDir,
    what: String,
}

impl Sipp {
    /// SIPp from `source` to `target` running `scenario` with `args`, in `dir`.
    fn spawn(
        netns: &Netns,
        what: String,
        dir: TempDir,
        (source, target): (IpAddr, SocketAddr),
        scenario: &str,
        args: &[&str],
    ) -> Sipp {
        let output = |name: &str| Stdio::from(File::create(dir.path().join(name)).unwrap());
        let mut command: Command = netns.command("sipp");
        command
            .current_dir(dir.path())
            .arg(target.to_string())
            .args(["-sf", scenario])
            .args(args)
            .args(["-key", "domain", DOMAIN])
            .args(["-i", &source.to_string(), "-p", SIPP_PORT])
            .args(["-nostdin", "-timeout", SIPP_TIMEOUT, "-timeout_error"])
            .stdin(Stdio::null())
            .stdout(output("stdout"))
            .stderr(output("stderr"));
        let child = command.spawn().expect("run ip netns exec … sipp");
        Sipp {
            child: Some(child),
            dir,
            what,
        }
    }

    /// A flood of OPTIONS from `source`: `rate` a second, for `seconds` at most.
    fn flood(netns: &Netns, source: Ipv6Addr, target: SocketAddr, rate: u32, seconds: u32) -> Sipp {
        let (rate, calls) = (rate.to_string(), (rate * seconds).to_string());
        let what = format!("the flood from {source}");
        let args = ["-m", &calls, "-r", &rate];
        let dir = TempDir::new().expect("temporary directory");
        Sipp::spawn(netns, what, dir, (source.into(), target), FLOOD, &args)
    }

    /// [`REGISTRATIONS`] registrations of `extension` with Digest from `source`.
    fn phone(
        netns: &Netns,
        source: Ipv6Addr,
        target: SocketAddr,
        extension: &str,
        password: &str,
    ) -> Sipp {
        let dir = TempDir::new().expect("temporary directory");
        std::fs::write(
            dir.path().join("users.csv"),
            format!("SEQUENTIAL\n{extension};{password}\n"),
        )
        .unwrap();
        let (calls, rate) = (
            REGISTRATIONS.to_string(),
            REGISTRATIONS_PER_SECOND.to_string(),
        );
        let args = [
            "-inf",
            "users.csv",
            "-m",
            &calls,
            "-r",
            &rate,
            "-key",
            "expires",
            "600",
            "-auth_uri",
            DOMAIN,
            "-trace_err",
        ];
        let what = format!("the phone at {source}");
        Sipp::spawn(netns, what, dir, (source.into(), target), REGISTER, &args)
    }

    /// Whether SIPp has not exited yet.
    fn is_running(&mut self) -> bool {
        let child = self.child.as_mut().expect("running or waited for");
        child.try_wait().expect("try_wait sipp").is_none()
    }

    /// Waits for SIPp to exit (its `-timeout` bounds the wait); returns its exit code and a
    /// report of everything it wrote, for failure messages.
    fn wait(&mut self) -> (Option<i32>, String) {
        let mut child = self.child.take().expect("not waited for yet");
        let status = child.wait().expect("wait for sipp");
        let mut report = format!("{} (sipp) exited with {status}", self.what);
        append_files(&mut report, self.dir.path());
        (status.code(), report)
    }
}

impl Drop for Sipp {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Appends the text files of `dir` (SIPp's output and error logs) to `report`.
fn append_files(report: &mut String, dir: &Path) {
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    paths.sort();
    for path in paths {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        *report += &format!("\n--- {}\n{text}", path.display());
    }
}

/// Fails at once, rather than by a timeout, if SIPp is missing (`ip netns exec` would start).
fn require_sipp() {
    match Command::new("sipp").arg("-v").output() {
        Ok(_) => {}
        Err(e) if e.kind() == ErrorKind::NotFound => {
            panic!("sipp is not installed: run .ci/run, or apt-get install sip-tester (Debian 12)")
        }
        Err(e) => panic!("cannot run sipp: {e}"),
    }
}

/// Runs the phone to completion while the floods go on, and checks that every registration
/// succeeded and that the floods outlasted it.
fn phone_registers_during(netns: &Netns, server: &Server, floods: &mut [Sipp]) {
    let password = server.user_add("1000", "Desk phone");
    let target = SocketAddr::new(PHONE.into(), server.address(Transport::Udp).port());
    let mut phone = Sipp::phone(netns, PHONE, target, "1000", &password);
    let (code, report) = phone.wait();
    assert_eq!(code, Some(0), "{report}");
    for flood in floods.iter_mut() {
        assert!(
            flood.is_running(),
            "{} ended before the phone was done: it should last longer",
            flood.what
        );
    }
    let needle = format!("registered source=[{PHONE}]:");
    let count = usize::try_from(REGISTRATIONS).unwrap();
    let registered = server.wait_for_logs(&needle, count);
    assert!(
        registered
            .iter()
            .all(|line| line.contains("transport=UDP extension=1000 ")),
        "{registered:#?}"
    );
}

/// The security lines of the server so far.
fn floods_logged(server: &Server) -> Vec<String> {
    server
        .log_lines()
        .into_iter()
        .filter(|line| line.contains("flood detected"))
        .collect()
}

#[test]
fn a_phone_registers_while_loopback_floods() {
    require_sipp();
    let netns = Netns::new();
    netns.add_address(PHONE);
    let server = Server::start_in_netns(&netns, DEFAULT_LIMITS);
    let target = SocketAddr::new(
        Ipv6Addr::LOCALHOST.into(),
        server.address(Transport::Udp).port(),
    );

    // 300 a second from one address, ten times its limit, for 30 s at most.
    let mut floods = [Sipp::flood(&netns, Ipv6Addr::LOCALHOST, target, 300, 30)];
    let line = server.wait_for_log("flood detected address=::1 ");
    assert!(
        line.contains("WARN hotline::security:") && line.contains("transport=UDP scope=::1"),
        "{line}"
    );

    phone_registers_during(&netns, &server, &mut floods);
    // One line per flood, however long it lasts.
    assert_eq!(floods_logged(&server), [line]);
}

#[test]
fn a_phone_registers_while_a_64_floods_from_many_addresses() {
    require_sipp();
    let netns = Netns::new();
    netns.add_address(PHONE);
    let server = Server::start_in_netns(&netns, DEFAULT_LIMITS);
    let port = server.address(Transport::Udp).port();

    // 20 addresses of one /64, each at 10 requests a second (20 a window, a third of the limit
    // per address), together 400 a window, over the /64's 120.
    let sources: Vec<Ipv6Addr> = (1..=20)
        .map(|n| Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, n))
        .collect();
    for &source in &sources {
        netns.add_address(source);
    }
    let mut floods: Vec<Sipp> = sources
        .iter()
        .map(|&source| {
            let target = SocketAddr::new(source.into(), port);
            Sipp::flood(&netns, source, target, 10, 30)
        })
        .collect();
    let line = server.wait_for_log("flood detected address=2001:db8:1::");
    assert!(line.ends_with(" scope=2001:db8:1::/64"), "{line}");

    phone_registers_during(&netns, &server, &mut floods);
    // The /64 was caught, and none of its addresses went over their own limit.
    assert_eq!(floods_logged(&server), [line]);
}
