//! `hotline backup` and `hotline restore` with the real binary: a running server's users,
//! bindings, ban, owner's password and provisioning links come back on a fresh data directory;
//! the same phones (SIPp) register there with their old passwords, the owner logs in over HTTPS
//! with theirs, and an old link serves the same password. A backup of an older version restores
//! and says what it lacks.

mod common;

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Output;

use common::sipp::sipp;
use common::web::{OWNER_PASSWORD, WEB_TOML, log_in, request};
use common::{Client, Server, Transport, hotline};
use hotline::core::auth::Algorithm;
use hotline::core::user::{Extension, User};
use hotline::data_dir::DataDir;
use hotline::store::Store;
use tempfile::TempDir;

/// Bindings written at once, three failures ban; at debug the server logs each write.
const CONFIG: &str = "[registrar]\nflush_interval = 1\n[bans]\nfailures = 3\n\
                      [log]\nlevel = \"info,hotline::net=debug\"\n";

/// A backup that hotline wrote before version 3, of a server with web pages, an owner's password
/// and extension 1000 with a provisioning link; it holds neither the password nor the link. Its
/// configuration raises the flood limits, as every test's does.
const SCHEMA_2: &str = "tests/backup/schema-2.backup";

/// The password of extension 1000 in [`SCHEMA_2`].
const SCHEMA_2_PASSWORD: &str = "0895397392588980347823109615078579186530";

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

/// A server whose phones registered (SIPp) and whose own address got banned afterwards, with
/// the owner's pages and their password. Also returns the path of a new provisioning link of
/// 1001, and the password it served.
fn busy_server() -> (Server, Vec<(&'static str, String)>, String, String) {
    let server = Server::start(&format!("{CONFIG}{WEB_TOML}"));
    succeeded(&server.owner_passwd(OWNER_PASSWORD));
    let users: Vec<(&str, String)> = EXTENSIONS
        .iter()
        .map(|&extension| (extension, server.user_add(extension, "Desk")))
        .collect();
    let link = link_of(&server.hotline(&["user", "provision", "1001"]));
    let served = served_password(&server, &link).expect("a derived password");
    assert_eq!(served, users[1].1);
    let run = sipp(&server, &pairs(&users), EXTENSIONS.len() as u32);
    assert_eq!(run.code, Some(0), "{}", run.report);
    server.wait_for_log("bindings saved");
    let mut mallory = Client::connect(&server, Transport::Udp);
    for _ in 0..3 {
        let refused = mallory.register("1000", WRONG_PASSWORD, Algorithm::Md5, "");
        assert_eq!(refused.status(), Some(403), "{refused:?}");
    }
    server.wait_for_log("bans saved");
    (server, users, link, served)
}

/// The path (`/p/<token>`) of the link that `hotline user provision EXT` printed.
fn link_of(output: &Output) -> String {
    let out = succeeded(output);
    let start = out
        .find("/p/")
        .unwrap_or_else(|| panic!("no link in {out}"));
    out[start..].split_whitespace().next().unwrap().to_owned()
}

/// The password that the settings card at `link` shows, or `None` when it shows none.
fn served_password(server: &Server, link: &str) -> Option<String> {
    let card = request(server, "GET", &format!("{link}/settings.txt"), &[], "");
    assert_eq!(card.status, 200, "{card:?}");
    card.body
        .lines()
        .find_map(|line| line.trim().strip_prefix("password:"))
        .map(|password| password.trim().to_owned())
        .filter(|password| password.bytes().all(|b| b.is_ascii_digit()))
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
    let (server, users, link, served) = busy_server();
    let backups = TempDir::new().unwrap();
    let file = backups.path().join("hotline.backup");
    let out = succeeded(&server.hotline(&["backup", file.to_str().unwrap()]));
    assert!(
        out.contains("3 extensions, 1 bans, 3 bindings, 3 provisioning links")
            && out.contains("the owner's password")
            && out.contains("scp "),
        "{out}"
    );
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("tls/key.pem"), "{text}");
    let key = std::fs::read(DataDir::new(server.data_dir()).password_key()).unwrap();
    assert!(text.contains(&hex(&key)), "{text}");
    drop(server);

    let (dir, config) = fresh();
    let out = succeeded(&restore(&config, &file, &[]));
    assert!(
        out.contains("Restored 3 extensions") && out.contains("3 provisioning links, the owner's"),
        "{out}"
    );
    assert!(!out.contains("Not in this backup"), "{out}");
    let restored_key = DataDir::new(dir.path().join("data")).password_key();
    assert_eq!(std::fs::read(&restored_key).unwrap(), key);
    let mode = std::fs::metadata(&restored_key)
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
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

    // The owner logs in with the old password, and with no other.
    assert_eq!(log_in(&restored, "not the password").status, 403);
    let answer = log_in(&restored, OWNER_PASSWORD);
    assert_eq!(answer.status, 303, "{answer:?}");
    // The old link serves the same password; a link one character off serves nothing.
    assert_eq!(served_password(&restored, &link).as_deref(), Some(&*served));
    let mut off = link.clone();
    let last = if off.ends_with('A') { "B" } else { "A" };
    off.replace_range(off.len() - 1.., last);
    let answer = request(&restored, "GET", &format!("{off}/settings.txt"), &[], "");
    assert_eq!(answer.status, 404, "{answer:?}");

    // A second restore over users is refused unless asked for, and never while it runs.
    let message = failed(&restore(&config, &file, &[]));
    assert!(message.contains("stop it first"), "{message}");
}

#[test]
fn a_backup_of_an_older_version_restores_and_says_what_it_lacks() {
    let (dir, config) = fresh();
    let out = succeeded(&restore(&config, Path::new(SCHEMA_2), &[]));
    assert!(out.contains("Restored 1 extensions"), "{out}");
    assert!(
        out.contains("the owner's password") && out.contains("`hotline owner passwd`"),
        "{out}"
    );
    assert!(
        out.contains("the provisioning links") && out.contains("`hotline user provision <ext>`"),
        "{out}"
    );
    let restored = Server::start_with_config(dir, config.clone());
    let mut phone = Client::connect(&restored, Transport::Udp);
    let ok = phone.register("1000", SCHEMA_2_PASSWORD, Algorithm::Md5, "");
    assert_eq!(ok.status(), Some(200), "{ok:?}");
    let answer = log_in(&restored, "an old owner password");
    assert_eq!(answer.status, 403, "{answer:?}");
    assert!(
        answer.body.contains("No owner password is set"),
        "{}",
        answer.body
    );
    // What the restore said to do works: a new link, with a new password the phone takes.
    let link = link_of(&hotline(&config, &["user", "provision", "1000"]));
    let password = served_password(&restored, &link).expect("a derived password");
    assert_ne!(password, SCHEMA_2_PASSWORD);
    let ok = phone.register("1000", &password, Algorithm::Md5, "");
    assert_eq!(ok.status(), Some(200), "{ok:?}");

    // Version 1 has the same shape.
    let (_dir, config) = fresh();
    let version_1 = config.with_file_name("version-1.backup");
    let text = std::fs::read_to_string(SCHEMA_2).unwrap();
    std::fs::write(
        &version_1,
        text.replace("\nschema_version = 2\n", "\nschema_version = 1\n"),
    )
    .unwrap();
    let out = succeeded(&restore(&config, &version_1, &[]));
    assert!(
        out.contains("Restored 1 extensions") && out.contains("`hotline owner passwd`"),
        "{out}"
    );
}

/// Far more than the 1 MiB of other control replies goes through the running server.
#[test]
fn a_large_backup_goes_through_the_running_server() {
    const USERS: usize = 5000;
    let mut server = Server::start("");
    server.user_add("1", "First");
    server.stop();
    {
        let store = Store::open(&DataDir::new(server.data_dir()).database()).unwrap();
        let mut snapshot = store.snapshot(0).unwrap();
        snapshot.users.extend((0..USERS).map(|n| {
            let extension = Extension::parse(&format!("{}", 100_000 + n)).unwrap();
            User::new(
                extension,
                "A desk phone with a long name",
                "hotline.test",
                "x",
            )
        }));
        store.restore(&snapshot).unwrap();
    }
    server.start_again();
    let dir = TempDir::new().unwrap();
    let file = dir.path().join("hotline.backup");
    let out = succeeded(&server.hotline(&["backup", file.to_str().unwrap()]));
    assert!(out.contains(&format!("{} extensions", USERS + 1)), "{out}");
    let length = std::fs::metadata(&file).unwrap().len();
    assert!(length > 1 << 20, "{length} bytes");
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
    let key = std::fs::read(DataDir::new(server.data_dir()).password_key()).unwrap();
    assert!(
        // Not `1000`: hex ciphertext may hold those digits by chance.
        text.contains("[encrypted]")
            && !text.contains("extension")
            && !text.contains("ha1")
            && !text.contains(&hex(&key)),
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
fn a_backup_from_a_newer_version_is_refused() {
    let server = Server::start("");
    server.user_add("1000", "Alice");
    let dir = TempDir::new().unwrap();
    let file = dir.path().join("hotline.backup");
    succeeded(&server.hotline(&["backup", file.to_str().unwrap()]));
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("\nschema_version = 3\n"), "{text}");
    std::fs::write(
        &file,
        text.replace("\nschema_version = 3\n", "\nschema_version = 4\n"),
    )
    .unwrap();

    let (_fresh_dir, config) = fresh();
    let message = failed(&restore(&config, &file, &[]));
    assert!(
        message.contains("made by a newer hotline (backup version 4"),
        "{message}"
    );
    assert!(!config.exists());

    let message = failed(&restore(&config, &dir.path().join("missing"), &[]));
    assert!(message.contains("cannot read the backup"), "{message}");
    std::fs::write(&file, "hello").unwrap();
    let message = failed(&restore(&config, &file, &[]));
    assert!(message.contains("not a hotline backup"), "{message}");
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
