//! `hotline backup` and `hotline restore` with the real binary: a running server's users,
//! bindings and ban come back on a fresh data directory, and the same phones (SIPp) register
//! there with their old passwords.

mod common;

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Output;

use common::sipp::sipp;
use common::{Client, Server, Transport, hotline};
use hotline::core::auth::Algorithm;
use tempfile::TempDir;

/// Bindings written at once, three failures ban; at debug the server logs each write.
const CONFIG: &str = "[registrar]\nflush_interval = 1\n[bans]\nfailures = 3\n\
                      [log]\nlevel = \"info,hotline::net=debug\"\n";

const WRONG_PASSWORD: &str = "1234567890123456789012345678901234567890";

const EXTENSIONS: [&str; 3] = ["1000", "1001", "1002"];

fn succeeded(output: &Output) -> String {
    assert!(output.status.success(), "{output:?}");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn failed(output: &Output) -> String {
    assert!(!output.status.success(), "{output:?}");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A server whose phones registered (SIPp) and whose own address got banned afterwards.
fn busy_server() -> (Server, Vec<(&'static str, String)>) {
    let server = Server::start(CONFIG);
    let users: Vec<(&str, String)> = EXTENSIONS
        .iter()
        .map(|&extension| (extension, server.user_add(extension, "Desk")))
        .collect();
    let run = sipp(&server, &pairs(&users), EXTENSIONS.len() as u32);
    assert_eq!(run.code, Some(0), "{}", run.report);
    server.wait_for_log("bindings saved");
    let mut mallory = Client::connect(&server, Transport::Udp);
    for _ in 0..3 {
        let refused = mallory.register("1000", WRONG_PASSWORD, Algorithm::Md5, "");
        assert_eq!(refused.status(), Some(403), "{refused:?}");
    }
    server.wait_for_log("bans saved");
    (server, users)
}

fn pairs<'a>(users: &'a [(&'a str, String)]) -> Vec<(&'a str, &'a str)> {
    users.iter().map(|(e, p)| (*e, p.as_str())).collect()
}

/// A fresh directory for the restored hotline: its configuration file and `data`.
fn fresh() -> (TempDir, PathBuf) {
    let dir = TempDir::new().unwrap();
    let config = dir.path().join("hotline.toml");
    (dir, config)
}

fn restore(config: &Path, backup: &Path, extra: &[&str]) -> Output {
    let data_dir = config.parent().unwrap().join("data");
    let mut args = vec![
        "restore",
        backup.to_str().unwrap(),
        "--data-dir",
        data_dir.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    hotline(config, &args)
}

#[test]
fn a_running_server_is_restored_on_a_fresh_data_directory() {
    let (server, users) = busy_server();
    let backups = TempDir::new().unwrap();
    let file = backups.path().join("hotline.backup");
    let out = succeeded(&server.hotline(&["backup", file.to_str().unwrap()]));
    assert!(
        out.contains("3 extensions, 1 bans, 3 bindings") && out.contains("scp "),
        "{out}"
    );
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        text.contains("BEGIN PRIVATE KEY") || text.contains("tls/key.pem"),
        "{text}"
    );
    drop(server);

    let (dir, config) = fresh();
    let out = succeeded(&restore(&config, &file, &[]));
    assert!(out.contains("Restored 3 extensions"), "{out}");
    let restored = Server::start_with_config(dir, config.clone());
    let loaded = restored.wait_for_log("database loaded");
    assert!(
        loaded.contains("users=3") && loaded.contains("bindings=3") && loaded.contains("bans=1"),
        "{loaded}"
    );
    let bans = succeeded(&hotline(&config, &["ban", "list"]));
    assert!(bans.starts_with("::1/128 "), "{bans}");
    // The ban is the old one: ::1 gets no answer until it is lifted.
    succeeded(&hotline(&config, &["ban", "remove", "::1"]));

    let run = sipp(&restored, &pairs(&users), EXTENSIONS.len() as u32);
    assert_eq!(run.code, Some(0), "{}", run.report);
    restored.wait_for_logs(" registered ", EXTENSIONS.len());

    // A second restore over users is refused unless asked for, and never while it runs.
    let message = failed(&restore(&config, &file, &[]));
    assert!(message.contains("stop it first"), "{message}");
}

#[test]
fn encrypted_backups_need_their_passphrase() {
    let server = Server::start("");
    let password = server.user_add("1000", "Alice");
    let dir = TempDir::new().unwrap();
    let file = dir.path().join("hotline.backup");
    let secret = dir.path().join("passphrase");
    std::fs::write(&secret, "correct horse battery\n").unwrap();
    let short = dir.path().join("short");
    std::fs::write(&short, "horse\n").unwrap();
    let encrypt = |passphrase: &Path| {
        server.hotline(&[
            "backup",
            file.to_str().unwrap(),
            "--passphrase-file",
            passphrase.to_str().unwrap(),
        ])
    };
    let message = failed(&encrypt(&short));
    assert!(message.contains("shorter than 8 characters"), "{message}");
    succeeded(&encrypt(&secret));
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        // Not `1000`: hex ciphertext may hold those digits by chance.
        text.contains("[encrypted]") && !text.contains("extension") && !text.contains("ha1"),
        "{text}"
    );

    let (fresh_dir, config) = fresh();
    let wrong = fresh_dir.path().join("wrong");
    std::fs::write(&wrong, "correct horse battery staple\n").unwrap();
    let message = failed(&restore(
        &config,
        &file,
        &["--passphrase-file", wrong.to_str().unwrap()],
    ));
    assert!(message.contains("passphrase is wrong"), "{message}");
    assert!(!config.exists(), "nothing is written on a wrong passphrase");
    // Without a terminal to ask on, the missing passphrase is named.
    let message = failed(&restore(&config, &file, &[]));
    assert!(message.contains("--passphrase-file"), "{message}");

    succeeded(&restore(
        &config,
        &file,
        &["--passphrase-file", secret.to_str().unwrap()],
    ));
    let mut restored = Server::start_with_config(fresh_dir, config.clone());
    let mut phone = Client::connect(&restored, Transport::Udp);
    let ok = phone.register("1000", &password, Algorithm::Md5, "");
    assert_eq!(ok.status(), Some(200), "{ok:?}");

    // Over a database with users: only with --replace, and never while the server runs.
    restored.stop();
    let message = failed(&restore(
        &config,
        &file,
        &["--passphrase-file", secret.to_str().unwrap()],
    ));
    assert!(message.contains("add --replace"), "{message}");
    succeeded(&restore(
        &config,
        &file,
        &["--passphrase-file", secret.to_str().unwrap(), "--replace"],
    ));
}

#[test]
fn a_backup_from_a_newer_schema_is_refused() {
    let server = Server::start("");
    server.user_add("1000", "Alice");
    let dir = TempDir::new().unwrap();
    let file = dir.path().join("hotline.backup");
    succeeded(&server.hotline(&["backup", file.to_str().unwrap()]));
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("\nschema_version = 2\n"), "{text}");
    std::fs::write(
        &file,
        text.replace("\nschema_version = 2\n", "\nschema_version = 3\n"),
    )
    .unwrap();

    let (_fresh_dir, config) = fresh();
    let message = failed(&restore(&config, &file, &[]));
    assert!(
        message.contains("made by a newer hotline (database schema version 3"),
        "{message}"
    );
    assert!(!config.exists());

    let message = failed(&restore(&config, &dir.path().join("missing"), &[]));
    assert!(message.contains("cannot read the backup"), "{message}");
    std::fs::write(&file, "hello").unwrap();
    let message = failed(&restore(&config, &file, &[]));
    assert!(message.contains("not a hotline backup"), "{message}");
}
