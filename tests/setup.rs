//! `hotline setup` with the real binary: from an answers file, and on a terminal (tmux), then a
//! server started on the configuration it wrote, registering the users it created, with the
//! owner's pages behind the owner's password the wizard set.

mod common;

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::web::{OWNER_PASSWORD, log_in, set_cookie};
use common::{Client, DOMAIN, Server, Transport, hotline};
use hotline::core::auth::Algorithm;
use tempfile::TempDir;

/// What the shell in the terminal prints when setup has ended, before its exit status (tmux's own
/// `pane_dead_status` can stay empty).
const EXIT: &str = "setup ended with status ";

/// How long to wait for the wizard to show something.
const SCREEN_TIMEOUT: Duration = Duration::from_secs(30);

/// The `user:` and `password:` lines of the phone settings in `text`.
fn passwords(text: &str) -> BTreeMap<String, String> {
    let mut found = BTreeMap::new();
    let mut user = None;
    for line in text.lines().map(str::trim) {
        if let Some(extension) = line.strip_prefix("user:") {
            user = Some(extension.trim().to_owned());
        } else if let Some(password) = line.strip_prefix("password:") {
            let password = password.trim().to_owned();
            assert!(
                password.len() == 40 && password.bytes().all(|b| b.is_ascii_digit()),
                "password {password:?}"
            );
            found.insert(user.take().expect("user before password"), password);
        }
    }
    found
}

/// `dir/answers.toml` for a server on `[::1]` with its data in `dir/data`.
fn write_answers(dir: &Path, extensions: &str) -> PathBuf {
    let path = dir.join("answers.toml");
    let text = format!(
        "domain = \"{DOMAIN}\"\ndata_dir = \"{}\"\nextensions = [{extensions}]\nservice = false\n\
         owner_password = \"{OWNER_PASSWORD}\"\n\
         [listen]\nudp = [\"[::1]:0\"]\ntcp = [\"[::1]:0\"]\ntls = [\"[::1]:0\"]\n\
         https = [\"[::1]:0\"]\n",
        dir.join("data").display()
    );
    std::fs::write(&path, text).expect("write the answers");
    path
}

fn setup_with_answers(config: &Path, answers: &Path) -> String {
    let output = hotline(config, &["setup", "--answers", answers.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "hotline setup failed: {}\n{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// The owner's pages let the owner in with the password the wizard set, and nobody else.
fn owner_logs_in(server: &Server) {
    let answer = log_in(server, "not the owner's password");
    assert_eq!(answer.status, 403, "{answer:?}");
    let answer = log_in(server, OWNER_PASSWORD);
    assert_eq!(answer.status, 303, "{answer:?}");
    assert!(
        set_cookie(&answer, "hotline_session").is_some(),
        "{answer:?}"
    );
}

fn register(server: &Server, transport: Transport, extension: &str, password: &str) {
    let mut client = Client::connect(server, transport);
    let contact = format!("Contact: {}\r\n", client.contact(extension));
    let ok = client.register(extension, password, Algorithm::Md5, &contact);
    assert_eq!(ok.status(), Some(200), "{ok:?}");
}

#[test]
fn answers_file_sets_up_a_server_whose_users_register() {
    let dir = TempDir::new().unwrap();
    let config = dir.path().join("etc/hotline.toml");
    let answers = write_answers(dir.path(), "\"1000 Alice\", \"1001 Bob\"");
    let stdout = setup_with_answers(&config, &answers);
    let first = passwords(&stdout);
    assert_eq!(
        first.keys().collect::<Vec<_>>(),
        ["1000", "1001"],
        "{stdout}"
    );
    assert!(stdout.contains("transport TLS"), "{stdout}");
    assert!(stdout.contains("SRTP mandatory"), "{stdout}");
    assert!(stdout.contains("SHA-256 fingerprint"), "{stdout}");
    assert!(
        stdout.contains("Owner password: set, from the answers file"),
        "{stdout}"
    );
    assert!(!stdout.contains(OWNER_PASSWORD), "{stdout}");

    // The server runs on what setup wrote, with the certificate setup made.
    let mut server = Server::start_with_config(dir, config.clone());
    register(&server, Transport::Tls, "1000", &first["1000"]);
    register(&server, Transport::Udp, "1001", &first["1001"]);
    owner_logs_in(&server);

    // Again, while the server runs: 1000 is kept, 1002 is made through the server.
    let answers = write_answers(
        server.data_dir().parent().unwrap(),
        "\"1000 Alice\", \"1002 Carol\"",
    );
    let stdout = setup_with_answers(&config, &answers);
    assert!(
        stdout.contains("Extension 1000 exists: kept as it is."),
        "{stdout}"
    );
    assert!(
        stdout.contains("A hotline server is running: restart it"),
        "{stdout}"
    );
    let second = passwords(&stdout);
    assert_eq!(second.keys().collect::<Vec<_>>(), ["1002"], "{stdout}");
    register(&server, Transport::Tcp, "1002", &second["1002"]);

    // After a restart on the rewritten file, every password still works.
    server.restart();
    register(&server, Transport::Tls, "1000", &first["1000"]);
    register(&server, Transport::Tls, "1001", &first["1001"]);
    register(&server, Transport::Tls, "1002", &second["1002"]);
    let list = server.hotline(&["user", "list"]);
    let list = String::from_utf8_lossy(&list.stdout);
    assert_eq!(list.lines().count(), 3, "{list}");
}

#[test]
fn a_bad_answers_file_says_which_answer_is_wrong() {
    let dir = TempDir::new().unwrap();
    let config = dir.path().join("hotline.toml");
    let answers = write_answers(dir.path(), "\"1000 Alice\", \"10x1 Bob\"");
    let output = hotline(&config, &["setup", "--answers", answers.to_str().unwrap()]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("answers.toml: `extensions[1]`: extension \"10x1\" is not valid"),
        "{stderr}"
    );
    assert!(!config.exists(), "nothing is written after a bad answer");

    std::fs::write(&answers, "domian = \"x.org\"\n").unwrap();
    let output = hotline(&config, &["setup", "--answers", answers.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success() && stderr.contains("domian"),
        "{stderr}"
    );
}

/// A private tmux server running one command in a pane that stays after it exits.
struct Terminal {
    socket: String,
}

impl Terminal {
    fn start(dir: &Path, command: &str) -> Terminal {
        let conf = dir.join("tmux.conf");
        std::fs::write(
            &conf,
            "set -g remain-on-exit on\nset -g history-limit 10000\n",
        )
        .unwrap();
        // One tmux server per terminal: tests run in parallel.
        static STARTED: AtomicUsize = AtomicUsize::new(0);
        let terminal = Terminal {
            socket: format!(
                "hotline-setup-{}-{}",
                std::process::id(),
                STARTED.fetch_add(1, Ordering::Relaxed)
            ),
        };
        let status = Command::new("tmux")
            .args(["-L", &terminal.socket, "-f"])
            .arg(&conf)
            .args([
                "new-session",
                "-d",
                "-s",
                "setup",
                "-x",
                "150",
                "-y",
                "50",
                command,
            ])
            .status()
            .expect("tmux is needed for this test: `apt-get install tmux` (.ci/run does)");
        assert!(status.success(), "tmux new-session: {status}");
        terminal
    }

    fn tmux(&self, args: &[&str]) -> String {
        let output = Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .output()
            .expect("run tmux");
        assert!(output.status.success(), "tmux {args:?}: {output:?}");
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Everything the pane showed, wrapped lines joined.
    fn screen(&self) -> String {
        self.tmux(&["capture-pane", "-p", "-J", "-S", "-", "-t", "setup"])
    }

    /// Waits until the screen shows `needle` `count` times.
    fn wait_for(&self, needle: &str, count: usize) -> String {
        let deadline = Instant::now() + SCREEN_TIMEOUT;
        loop {
            let screen = self.screen();
            if screen.matches(needle).count() >= count {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {count} × {needle:?} on the screen:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn type_line(&self, text: &str) {
        if !text.is_empty() {
            self.tmux(&["send-keys", "-t", "setup", "-l", text]);
        }
        self.tmux(&["send-keys", "-t", "setup", "Enter"]);
    }

    /// Waits for the line the command prints as it ends (see [`EXIT`]); returns its status.
    fn wait_for_exit(&self) -> i32 {
        let screen = self.wait_for(EXIT, 1);
        let status = screen
            .lines()
            .find_map(|line| line.trim().strip_prefix(EXIT))
            .expect("the exit line");
        status.trim().parse().expect("exit status")
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .status();
    }
}

#[test]
fn on_a_terminal_bad_answers_are_asked_again() {
    let dir = TempDir::new().unwrap();
    // An existing file: its data directory and listeners are the defaults the wizard keeps.
    let config = dir.path().join("hotline.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = \"{}\"\n[listen]\nudp = [\"[::1]:0\"]\ntcp = [\"[::1]:0\"]\n\
             tls = [\"[::1]:0\"]\n[web]\nhttps = [\"[::1]:0\"]\n",
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let command = format!(
        "{} --config {} setup --no-service; echo \"{EXIT}$?\"",
        env!("CARGO_BIN_EXE_hotline"),
        config.display()
    );
    let terminal = Terminal::start(dir.path(), &command);

    // A board not set up yet: a backup may be restored first; Enter sets up a new hotline.
    terminal.wait_for("Backup file: ", 1);
    terminal.type_line("");
    terminal.wait_for("Domain [", 1);
    terminal.type_line("bad domain");
    terminal.wait_for("\"bad domain\" is not a host name", 1);
    terminal.wait_for("Domain [", 2);
    terminal.type_line(DOMAIN);

    terminal.wait_for(
        "Certificate: `lets-encrypt`, PEM file, `self-signed` or `new` [self-signed]: ",
        1,
    );
    terminal.type_line("/no/such/file.pem");
    terminal.wait_for("/no/such/file.pem is not a file", 1);
    terminal.wait_for("[self-signed]: ", 2);
    terminal.type_line("");

    terminal.wait_for("SHA-256 fingerprint", 1);
    terminal.wait_for("Extension and name: ", 1);
    terminal.type_line("10x0 Alice");
    terminal.wait_for("extension \"10x0\" is not valid", 1);
    terminal.wait_for("Extension and name: ", 2);
    terminal.type_line("1000 Alice");
    terminal.wait_for("Extension and name: ", 3);
    terminal.type_line("1000 Bob");
    terminal.wait_for("extension 1000 is taken (Alice)", 1);
    terminal.wait_for("Extension and name: ", 4);
    terminal.type_line("");

    // The owner's password: too short, then two that differ, then the same twice; never shown.
    let prompt = "Owner password (not shown as you type): ";
    terminal.wait_for(prompt, 1);
    terminal.type_line("too brief");
    terminal.wait_for("the password is too short: use at least 10 characters", 1);
    terminal.wait_for(prompt, 2);
    terminal.type_line(OWNER_PASSWORD);
    terminal.wait_for("The same again: ", 1);
    terminal.type_line("a different long password");
    terminal.wait_for("the two passwords differ", 1);
    terminal.wait_for(prompt, 3);
    terminal.type_line(OWNER_PASSWORD);
    terminal.wait_for("The same again: ", 2);
    terminal.type_line(OWNER_PASSWORD);
    terminal.wait_for("Backup file, or `no` [", 1);
    terminal.type_line("no");

    assert_eq!(terminal.wait_for_exit(), 0, "{}", terminal.screen());
    let screen = terminal.screen();
    assert!(
        screen.contains("Extension 1000 (Alice): phone settings"),
        "{screen}"
    );
    let found = passwords(&screen);
    assert_eq!(found.keys().collect::<Vec<_>>(), ["1000"], "{screen}");
    for typed in [OWNER_PASSWORD, "too brief", "a different long password"] {
        assert!(!screen.contains(typed), "{typed:?} echoed:\n{screen}");
    }
    assert!(screen.contains("The owner's pages: https://"), "{screen}");
    drop(terminal);

    let server = Server::start_with_config(dir, config);
    register(&server, Transport::Tls, "1000", &found["1000"]);
    owner_logs_in(&server);
}

#[test]
fn owner_passwd_on_a_terminal_does_not_echo_the_password() {
    let dir = TempDir::new().unwrap();
    let config = dir.path().join("hotline.toml");
    let data_dir = dir.path().join("data");
    std::fs::write(&config, format!("data_dir = \"{}\"\n", data_dir.display())).unwrap();
    let command = format!(
        "{} --config {} owner passwd; echo \"{EXIT}$?\"",
        env!("CARGO_BIN_EXE_hotline"),
        config.display()
    );
    let terminal = Terminal::start(dir.path(), &command);
    terminal.wait_for("New owner password (not shown as you type): ", 1);
    terminal.type_line(OWNER_PASSWORD);
    terminal.wait_for("The same again: ", 1);
    terminal.type_line(OWNER_PASSWORD);
    assert_eq!(terminal.wait_for_exit(), 0, "{}", terminal.screen());
    let screen = terminal.screen();
    assert!(!screen.contains(OWNER_PASSWORD), "echoed:\n{screen}");
    assert!(screen.contains("The owner's password is set"), "{screen}");
    drop(terminal);
    let database = hotline::data_dir::DataDir::new(&data_dir).database();
    let store = hotline::store::Store::open(&database).unwrap();
    let hash = store.owner_password().unwrap().expect("a password");
    assert!(hotline::web::owner::password::verify(&hash, OWNER_PASSWORD));
    drop(store);

    // From a pipe, for scripts: one line, checked the same way.
    let mut child = Command::new(env!("CARGO_BIN_EXE_hotline"))
        .arg("--config")
        .arg(&config)
        .args(["owner", "passwd"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "too brief").unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("the password is too short: use at least 10 characters"),
        "{stderr}"
    );
}
