use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};

use redb::TableDefinition;

use super::*;
use crate::core::registrar::{Binding, Flow};
use crate::core::user::User;
use crate::sip::Transport;

fn ext(text: &str) -> Extension {
    Extension::parse(text).unwrap()
}

fn user(extension: &str, name: &str) -> User {
    User::new(ext(extension), name, "example.org", "secret")
}

fn binding(contact: &str, transport: Transport) -> Binding {
    Binding {
        contact: contact.to_owned(),
        expires_at_ms: 1_700_000_000_000,
        call_id: format!("call-{contact}"),
        cseq: 7,
        flow: Flow {
            transport,
            remote: "[2001:db8::5]:5060".parse().unwrap(),
            connection: None,
        },
        user_agent: String::new(),
        since_ms: 0,
    }
}

/// The bindings of one extension as `Store::bindings` lists them.
fn of(extension: &str, bindings: &[Binding]) -> Vec<(Extension, Binding)> {
    bindings
        .iter()
        .map(|b| (ext(extension), b.clone()))
        .collect()
}

fn temp() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hotline.redb");
    (dir, path)
}

#[test]
fn users_round_trip_and_persist() {
    let (_dir, path) = temp();
    let store = Store::open(&path).unwrap();
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(store.users().unwrap(), vec![]);
    let bob = user("2000", "Bob");
    let alice = user("1000", "Alice");
    store.add_user(&bob).unwrap();
    store.add_user(&alice).unwrap();
    assert!(matches!(
        store.add_user(&user("1000", "Mallory")),
        Err(StoreError::UserExists(e)) if e == ext("1000")
    ));
    assert_eq!(store.user(&ext("1000")).unwrap(), Some(alice.clone()));
    assert_eq!(store.user(&ext("3000")).unwrap(), None);
    assert_eq!(store.users().unwrap(), vec![alice.clone(), bob.clone()]);

    let alice2 = User::new(ext("1000"), "Alice Desk", "example.org", "other");
    store.replace_user(&alice2).unwrap();
    assert!(matches!(
        store.replace_user(&user("3000", "Carol")),
        Err(StoreError::NoSuchUser(e)) if e == ext("3000")
    ));
    drop(store);

    let store = Store::open(&path).unwrap();
    assert_eq!(store.users().unwrap(), vec![alice2, bob.clone()]);
    store.remove_user(&ext("1000")).unwrap();
    assert!(matches!(
        store.remove_user(&ext("1000")),
        Err(StoreError::NoSuchUser(_))
    ));
    drop(store);
    assert_eq!(Store::open(&path).unwrap().users().unwrap(), vec![bob]);
}

#[test]
fn install_secret_is_stable() {
    let (_dir, path) = temp();
    let store = Store::open(&path).unwrap();
    let secret = store.install_secret().unwrap();
    assert_ne!(secret, [0; 32]);
    assert_eq!(store.install_secret().unwrap(), secret);
    drop(store);
    assert_eq!(
        Store::open(&path).unwrap().install_secret().unwrap(),
        secret
    );

    let (_other_dir, other) = temp();
    assert_ne!(
        Store::open(&other).unwrap().install_secret().unwrap(),
        secret
    );
}

#[test]
fn second_open_in_this_process_is_locked() {
    // redb takes open-file-description locks, which exclude a second open in the same process too.
    let (_dir, path) = temp();
    let _store = Store::open(&path).unwrap();
    let error = Store::open(&path).err().unwrap();
    assert!(matches!(&error, StoreError::Locked { path: p } if *p == path));
    assert!(error.to_string().contains("is `hotline serve` running?"));
}

const HOLD_ENV: &str = "HOTLINE_TEST_HOLD_STORE";

/// Run by `open_while_another_process_holds_it_is_locked` in a child process.
#[test]
#[ignore = "helper: runs in a child process"]
fn hold_store_open() {
    let Some(path) = std::env::var_os(HOLD_ENV) else {
        return;
    };
    let _store = Store::open(Path::new(&path)).unwrap();
    println!("store open");
    // Holds the store until the parent closes our stdin.
    io::stdin().read_line(&mut String::new()).unwrap();
}

#[test]
fn open_while_another_process_holds_it_is_locked() {
    let (_dir, path) = temp();
    Store::open(&path)
        .unwrap()
        .add_user(&user("1000", "Alice"))
        .unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "store::tests::hold_store_open",
            "--ignored",
            "--nocapture",
        ])
        .env(HOLD_ENV, &path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let opened = stdout
        .by_ref()
        .map(Result::unwrap)
        .any(|line| line.contains("store open"));
    assert!(opened, "the child did not open the store");

    assert!(matches!(Store::open(&path), Err(StoreError::Locked { .. })));

    drop(child.stdin.take());
    // Read to the end, so that the child's last lines do not meet a closed pipe.
    stdout.for_each(drop);
    assert!(child.wait().unwrap().success());
    assert_eq!(Store::open(&path).unwrap().users().unwrap().len(), 1);
}

#[test]
fn bindings_are_saved_in_batches() {
    let (_dir, path) = temp();
    let store = Store::open(&path).unwrap();
    for (e, name) in [("1000", "Alice"), ("2000", "Bob"), ("3000", "Carol")] {
        store.add_user(&user(e, name)).unwrap();
    }
    let mut link_local = binding("sip:3000@[fe80::1]", Transport::Udp);
    link_local.flow.remote = "[fe80::1%2]:5060".parse().unwrap();
    let alice = vec![
        binding("sip:1000@[2001:db8::5]:5060", Transport::Udp),
        binding("sips:1000@[2001:db8::6]:5061", Transport::Tls),
    ];
    let bob = vec![binding(
        "sip:2000@[2001:db8::7];transport=tcp",
        Transport::Tcp,
    )];
    store
        .save_bindings(&[
            (ext("1000"), alice.clone()),
            (ext("2000"), bob.clone()),
            (ext("3000"), vec![link_local.clone()]),
        ])
        .unwrap();
    drop(store);

    let store = Store::open(&path).unwrap();
    let all = [
        of("1000", &alice),
        of("2000", &bob),
        of("3000", &[link_local]),
    ]
    .concat();
    assert_eq!(store.bindings().unwrap(), all);

    // Only the listed extensions change: Alice's replaced, Bob's deleted, Carol's kept.
    let refreshed = vec![Binding {
        expires_at_ms: 1_700_003_600_000,
        cseq: 8,
        ..alice[1].clone()
    }];
    store
        .save_bindings(&[(ext("1000"), refreshed.clone()), (ext("2000"), vec![])])
        .unwrap();
    let carol = store.bindings().unwrap().split_off(1);
    assert_eq!(
        store.bindings().unwrap(),
        [of("1000", &refreshed), carol.clone()].concat()
    );

    store.remove_user(&ext("1000")).unwrap();
    assert_eq!(store.bindings().unwrap(), carol);
}

#[test]
fn bindings_of_a_removed_user_are_dropped() {
    let (_dir, path) = temp();
    let store = Store::open(&path).unwrap();
    store.add_user(&user("1000", "Alice")).unwrap();
    let batch = [
        (
            ext("1000"),
            vec![binding("sip:1000@[2001:db8::5]", Transport::Udp)],
        ),
        (
            ext("9999"),
            vec![binding("sip:9999@[2001:db8::9]", Transport::Udp)],
        ),
    ];
    store.save_bindings(&batch).unwrap();
    assert_eq!(store.bindings().unwrap(), of("1000", &batch[0].1));
}

#[test]
fn replacing_bindings_leaves_longer_extensions_alone() {
    let (_dir, path) = temp();
    let store = Store::open(&path).unwrap();
    store.add_user(&user("100", "Front desk")).unwrap();
    store.add_user(&user("1000", "Alice")).unwrap();
    let alice = vec![binding("sip:1000@[2001:db8::5]", Transport::Udp)];
    store
        .save_bindings(&[
            (
                ext("100"),
                vec![binding("sip:100@[2001:db8::1]", Transport::Udp)],
            ),
            (ext("1000"), alice.clone()),
        ])
        .unwrap();
    store.save_bindings(&[(ext("100"), vec![])]).unwrap();
    assert_eq!(store.bindings().unwrap(), of("1000", &alice));
    store.remove_user(&ext("100")).unwrap();
    assert_eq!(store.bindings().unwrap(), of("1000", &alice));
}

fn tamper(path: &Path, write: impl FnOnce(&WriteTransaction)) {
    let db = Database::create(path).unwrap();
    let txn = db.begin_write().unwrap();
    write(&txn);
    txn.commit().unwrap();
}

#[test]
fn a_newer_schema_is_refused() {
    let (_dir, path) = temp();
    Store::open(&path)
        .unwrap()
        .add_user(&user("1000", "Alice"))
        .unwrap();
    tamper(&path, |txn| {
        txn.open_table(META)
            .unwrap()
            .insert(SCHEMA_VERSION_KEY, 3)
            .unwrap();
    });
    let error = Store::open(&path).err().unwrap();
    assert!(matches!(
        error,
        StoreError::SchemaTooNew {
            found: 3,
            supported: 2
        }
    ));
    assert!(error.to_string().contains("newer hotline"), "{error}");
}

#[test]
fn a_bad_schema_version_is_corrupt() {
    let (_dir, path) = temp();
    Store::open(&path).unwrap();
    tamper(&path, |txn| {
        txn.open_table(META)
            .unwrap()
            .insert(SCHEMA_VERSION_KEY, 0)
            .unwrap();
    });
    assert!(matches!(Store::open(&path), Err(StoreError::Corrupt(_))));

    tamper(&path, |txn| {
        txn.open_table(META)
            .unwrap()
            .remove(SCHEMA_VERSION_KEY)
            .unwrap();
    });
    assert!(matches!(Store::open(&path), Err(StoreError::Corrupt(_))));
}

#[test]
fn a_schema_version_of_the_wrong_type_is_corrupt() {
    let (_dir, path) = temp();
    tamper(&path, |txn| {
        let meta: TableDefinition<&str, &str> = TableDefinition::new("meta");
        txn.open_table(meta)
            .unwrap()
            .insert(SCHEMA_VERSION_KEY, "1")
            .unwrap();
    });
    assert!(matches!(Store::open(&path), Err(StoreError::Corrupt(_))));
}

#[test]
fn a_foreign_redb_file_is_refused() {
    let (_dir, path) = temp();
    tamper(&path, |txn| {
        let other: TableDefinition<u64, u64> = TableDefinition::new("other");
        txn.open_table(other).unwrap().insert(1, 2).unwrap();
    });
    assert!(matches!(Store::open(&path), Err(StoreError::Corrupt(_))));
}

#[test]
fn a_file_that_is_not_a_database_is_refused() {
    let (_dir, path) = temp();
    std::fs::write(&path, "[server]\nrealm = \"example.org\"\n".repeat(200)).unwrap();
    assert!(matches!(Store::open(&path), Err(StoreError::Corrupt(_))));
}

#[test]
fn bad_user_values_are_corrupt() {
    for (key, md5_len, sha256_len) in [("1000", 15, 32), ("1000", 16, 0), ("alice", 16, 32)] {
        let (_dir, path) = temp();
        Store::open(&path).unwrap();
        tamper(&path, |txn| {
            let value = (
                "Alice",
                "example.org",
                &[0u8; 64][..md5_len],
                &[0u8; 64][..sha256_len],
            );
            txn.open_table(USERS).unwrap().insert(key, value).unwrap();
        });
        let store = Store::open(&path).unwrap();
        assert!(
            matches!(store.users(), Err(StoreError::Corrupt(_))),
            "{key}"
        );
        if key == "1000" {
            assert!(matches!(store.user(&ext(key)), Err(StoreError::Corrupt(_))));
        }
    }
}

#[test]
fn bad_binding_values_are_corrupt() {
    for (key, transport, source) in [
        ("1000", 3, "[2001:db8::5]:5060"),
        ("1000", 0, "2001:db8::5"),
        ("", 0, "[2001:db8::5]:5060"),
    ] {
        let (_dir, path) = temp();
        Store::open(&path).unwrap();
        tamper(&path, |txn| {
            txn.open_table(BINDINGS)
                .unwrap()
                .insert(
                    (key, "sip:x@[2001:db8::5]"),
                    (1, "call", 1, transport, source),
                )
                .unwrap();
        });
        let store = Store::open(&path).unwrap();
        assert!(
            matches!(store.bindings(), Err(StoreError::Corrupt(_))),
            "{key} {transport} {source}"
        );
    }
}

#[test]
fn a_bad_install_secret_is_corrupt() {
    let (_dir, path) = temp();
    Store::open(&path).unwrap();
    tamper(&path, |txn| {
        txn.open_table(SECRETS)
            .unwrap()
            .insert(INSTALL_SECRET_KEY, &[1u8; 31][..])
            .unwrap();
    });
    let store = Store::open(&path).unwrap();
    assert!(matches!(
        store.install_secret(),
        Err(StoreError::Corrupt(_))
    ));
}

#[test]
fn damaged_pages_are_corrupt_not_a_panic() {
    let (_dir, path) = temp();
    let store = Store::open(&path).unwrap();
    for i in 0..50 {
        store
            .add_user(&user(&(1000 + i).to_string(), "Alice"))
            .unwrap();
    }
    drop(store);
    let original = std::fs::read(&path).unwrap();
    let mut corrupt = 0;
    for offset in (0..original.len()).step_by(499) {
        let mut bytes = original.clone();
        bytes[offset] ^= 0x5a;
        std::fs::write(&path, &bytes).unwrap();
        match Store::open(&path).and_then(|store| store.users()) {
            Ok(users) => assert_eq!(users.len(), 50),
            Err(StoreError::Corrupt(_)) => corrupt += 1,
            Err(other) => panic!("byte {offset}: {other}"),
        }
    }
    assert!(corrupt > 0);
}

/// A file as hotline 1 wrote it: version 1, no `provisioning` table, a user with a random
/// password.
fn version_1_file(path: &Path) {
    Store::open(path)
        .unwrap()
        .add_user(&user("1000", "Alice"))
        .unwrap();
    tamper(path, |txn| {
        txn.delete_table(PROVISIONING).unwrap();
        txn.open_table(META)
            .unwrap()
            .insert(SCHEMA_VERSION_KEY, 1)
            .unwrap();
    });
}

#[test]
fn version_1_is_migrated_and_its_users_kept() {
    let (_dir, path) = temp();
    version_1_file(&path);
    let store = Store::open(&path).unwrap();
    assert_eq!(store.users().unwrap(), vec![user("1000", "Alice")]);
    // A password from before provisioning: only its hashes are known.
    assert_eq!(
        store.provisioning(&ext("1000")).unwrap(),
        provisioning::Provisioning::default()
    );
    assert_eq!(store.links().unwrap(), vec![]);
    drop(store);
    let db = Database::open(&path).unwrap();
    let txn = db.begin_read().unwrap();
    let version = txn
        .open_table(META)
        .unwrap()
        .get(SCHEMA_VERSION_KEY)
        .unwrap();
    assert_eq!(version.map(|v| v.value()), Some(2));
}

#[test]
fn salts_and_links_round_trip_and_go_with_the_user() {
    let (_dir, path) = temp();
    let store = Store::open(&path).unwrap();
    let (salt, link, other) = ([7u8; 16], [9u8; 32], [10u8; 32]);
    store
        .add_user_with_salt(&user("1000", "Alice"), &salt, &other)
        .unwrap();
    assert!(matches!(
        store.add_user_with_salt(&user("1000", "Mallory"), &salt, &link),
        Err(StoreError::UserExists(_))
    ));
    assert_eq!(store.links().unwrap(), vec![(ext("1000"), other)]);
    assert!(matches!(
        store.set_link(&ext("2000"), Some(&link)),
        Err(StoreError::NoSuchUser(_))
    ));
    store.set_link(&ext("1000"), Some(&link)).unwrap();
    assert_eq!(store.links().unwrap(), vec![(ext("1000"), link)]);
    // A new link ends the old one; a new salt keeps the link.
    store.set_link(&ext("1000"), Some(&other)).unwrap();
    store
        .replace_user_with_salt(&user("1000", "Alice"), &[8u8; 16])
        .unwrap();
    drop(store);
    let store = Store::open(&path).unwrap();
    assert_eq!(
        store.provisioning(&ext("1000")).unwrap(),
        provisioning::Provisioning {
            password_salt: Some([8u8; 16]),
            link: Some(other),
        }
    );
    store.set_link(&ext("1000"), None).unwrap();
    assert_eq!(store.links().unwrap(), vec![]);
    store.set_link(&ext("1000"), Some(&link)).unwrap();
    store.remove_user(&ext("1000")).unwrap();
    assert_eq!(store.links().unwrap(), vec![]);
    assert_eq!(
        store.provisioning(&ext("1000")).unwrap(),
        provisioning::Provisioning::default()
    );
}

#[test]
fn a_bad_provisioning_row_is_corrupt() {
    let (_dir, path) = temp();
    Store::open(&path)
        .unwrap()
        .add_user(&user("1000", "Alice"))
        .unwrap();
    tamper(&path, |txn| {
        txn.open_table(PROVISIONING)
            .unwrap()
            .insert("1000", (&[1u8; 5][..], &[][..]))
            .unwrap();
    });
    let store = Store::open(&path).unwrap();
    assert!(matches!(
        store.provisioning(&ext("1000")),
        Err(StoreError::Corrupt(_))
    ));
}
