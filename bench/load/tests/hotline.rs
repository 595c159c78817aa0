//! The generator against a real hotline on `[::1]`: a few phones register, keep alive and call
//! over TLS and TCP, and a phone with a wrong password is refused. hotline is the binary that
//! `cargo test` builds beside this one (`target/<profile>/hotline`).

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, Command, Output, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// How long one run of the generator may take before the test fails.
const RUN_TIMEOUT: Duration = Duration::from_secs(60);

const PHONES: u32 = 6;

/// One 1 s step of 10 REGISTER/s, no retry.
const REGISTER_10: &[&str] = &[
    "register",
    "--rates",
    "10",
    "--duration",
    "1",
    "--retries",
    "0",
];

/// `hotline serve` on ephemeral ports of `[::1]`, with `PHONES` users in a bench users CSV.
struct Hotline {
    dir: TempDir,
    child: Child,
    tls: String,
    tcp: String,
    log: mpsc::Receiver<String>,
}

impl Hotline {
    fn start() -> Hotline {
        let dir = TempDir::new().expect("temporary directory");
        let config = dir.path().join("hotline.toml");
        std::fs::write(
            &config,
            format!(
                "domain = \"hotline.bench\"\ndata_dir = \"{}\"\n\n[listen]\nudp = [\"[::1]:0\"]\n\
                 tcp = [\"[::1]:0\"]\ntls = [\"[::1]:0\"]\n\n[flood]\nper_address = 1000000\n\
                 per_prefix = [[64, 1000000]]\n\n[auth]\nalgorithms = [\"MD5\"]\n",
                dir.path().join("data").display()
            ),
        )
        .expect("write the configuration");
        let mut csv = String::from("SEQUENTIAL\n");
        for extension in 1000..1000 + PHONES {
            let output = hotline(&config)
                .args(["user", "add", &extension.to_string()])
                .output()
                .expect("run hotline user add");
            let stdout = String::from_utf8_lossy(&output.stdout);
            let password = stdout
                .lines()
                .find_map(|line| line.trim().strip_prefix("password:"))
                .unwrap_or_else(|| panic!("no password in {stdout:?}"))
                .trim();
            csv.push_str(&format!("{extension};{password}\n"));
        }
        std::fs::write(dir.path().join("users.csv"), csv).expect("write the users CSV");

        let mut child = hotline(&config)
            .arg("serve")
            .stderr(Stdio::piped())
            .spawn()
            .expect("start hotline serve");
        let log = lines(child.stderr.take().expect("piped stderr"));
        let (mut tls, mut tcp) = (None, None);
        let deadline = Instant::now() + RUN_TIMEOUT;
        while let Ok(line) = log.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            let address = line.split("address=").nth(1).map(|a| a.trim().to_owned());
            if line.contains("listening transport=TLS") {
                tls = address;
            } else if line.contains("listening transport=TCP") {
                tcp = address;
            } else if line.contains(" ready") {
                break;
            }
        }
        Hotline {
            tls: tls.expect("hotline listens on TLS"),
            tcp: tcp.expect("hotline listens on TCP"),
            dir,
            child,
            log,
        }
    }

    /// Runs the generator with `args` (global options, then the test) against `address`.
    fn load(&self, address: &str, transport: &str, users: &Path, args: &[&str]) -> String {
        let child = Command::new(env!("CARGO_BIN_EXE_hotline-load"))
            .args([
                "--target",
                address,
                "--transport",
                transport,
                "--domain",
                "hotline.bench",
            ])
            .arg("--users")
            .arg(users)
            .args(["--phones", &PHONES.to_string(), "--timeout", "5"])
            .arg(format!("--pid={}", self.child.id()))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start hotline-load");
        let output = wait_bounded(child);
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success(),
            "hotline-load failed: {stdout}{stderr}"
        );
        stdout
    }

    fn users(&self) -> PathBuf {
        self.dir.path().join("users.csv")
    }

    /// The log lines hotline wrote so far.
    fn log_lines(&self) -> Vec<String> {
        self.log.try_iter().collect()
    }
}

impl Drop for Hotline {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The hotline binary beside this test's directory: `target/<profile>/hotline`.
fn hotline(config: &Path) -> Command {
    let exe = std::env::current_exe().expect("test executable");
    let binary = exe
        .parent()
        .and_then(Path::parent)
        .map(|profile| profile.join("hotline"))
        .filter(|binary| binary.exists())
        .expect("no hotline binary beside the tests: `cargo test` at the top builds it");
    let mut command = Command::new(binary);
    command.arg("--config").arg(config);
    command
}

fn lines(stderr: ChildStderr) -> mpsc::Receiver<String> {
    let (sender, receiver) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if sender.send(line).is_err() {
                return;
            }
        }
    });
    receiver
}

/// Waits for `child`, killing it after `RUN_TIMEOUT`.
fn wait_bounded(child: Child) -> Output {
    let id = child.id();
    let (sender, receiver) = mpsc::channel();
    thread::spawn(move || {
        let _ = sender.send(child.wait_with_output());
    });
    match receiver.recv_timeout(RUN_TIMEOUT) {
        Ok(output) => output.expect("wait for hotline-load"),
        Err(_) => {
            let _ = Command::new("kill").arg(id.to_string()).status();
            panic!("hotline-load did not finish within {RUN_TIMEOUT:?}");
        }
    }
}

#[test]
fn phones_register_keep_alive_and_call_over_tls() {
    let hotline = Hotline::start();
    let users = hotline.users();
    let registered = hotline.load(&hotline.tls, "tls", &users, REGISTER_10);
    assert!(
        registered.contains("RESULT register max rate with 0 failures: 10/s"),
        "{registered}"
    );
    let held = hotline.load(
        &hotline.tls,
        "tls",
        &users,
        &["hold", "--seconds", "2", "--ping", "1", "--refresh", "1"],
    );
    assert!(
        held.contains(&format!("RESULT hold {PHONES} phones: PASS")),
        "{held}"
    );
    let called = hotline.load(
        &hotline.tls,
        "tls",
        &users,
        &[
            "call",
            "--rates",
            "2",
            "--duration",
            "1",
            "--retries",
            "0",
            "--hold-ms",
            "100",
        ],
    );
    assert!(
        called.contains("RESULT call max rate with 0 failures: 2/s"),
        "{called}"
    );
    // hotline saw the phones as TLS phones, and routed their calls.
    let log = hotline.log_lines();
    assert!(
        log.iter()
            .any(|l| l.contains("registered") && l.contains("transport=TLS"))
    );
}

#[test]
fn phones_register_over_tcp_and_a_wrong_password_is_refused() {
    let hotline = Hotline::start();
    let registered = hotline.load(&hotline.tcp, "tcp", &hotline.users(), REGISTER_10);
    assert!(
        registered.contains("RESULT register max rate with 0 failures: 10/s"),
        "{registered}"
    );

    let csv = std::fs::read_to_string(hotline.users()).expect("users CSV");
    let wrong = hotline.dir.path().join("wrong.csv");
    let wrong_passwords: String = csv
        .lines()
        .map(|line| match line.split_once(';') {
            Some((extension, _)) => format!("{extension};not-the-password\n"),
            None => format!("{line}\n"),
        })
        .collect();
    std::fs::write(&wrong, wrong_passwords).expect("write the CSV");
    let refused = hotline.load(&hotline.tcp, "tcp", &wrong, REGISTER_10);
    assert!(refused.contains("FAIL"), "{refused}");
    assert!(
        refused.contains("RESULT register max rate with 0 failures: none"),
        "{refused}"
    );
}
