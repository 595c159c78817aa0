use std::os::unix::fs::PermissionsExt as _;

use super::*;
use crate::core::bans::Ban;
use crate::core::registrar::{Binding, Flow};
use crate::core::user::{Extension, User};
use crate::data_dir::DataDir;
use crate::sip::Transport;
use crate::store::provisioning::Provisioning;
use crate::store::{INSTALL_SECRET_KEY, OWNER_PASSWORD_KEY, Snapshot, Store};

/// A backup that `hotline backup` wrote before version 3 (schema 2, as of issue 16): extension
/// 1000 with the password below, an owner's password and a provisioning link, neither of which
/// it holds.
const SCHEMA_2: &str = include_str!("../../tests/backup/schema-2.backup");

fn snapshot() -> Snapshot {
    let extension = Extension::parse("1000").unwrap();
    Snapshot {
        secrets: [
            (INSTALL_SECRET_KEY.to_owned(), vec![7; 32]),
            (
                OWNER_PASSWORD_KEY.to_owned(),
                b"$argon2id$v=19$m=1,t=1,p=1$c2FsdA$aGFzaA".to_vec(),
            ),
        ]
        .into(),
        users: vec![User::new(
            extension.clone(),
            "Alice",
            "example.org",
            "secret",
        )],
        bans: vec![Ban {
            scope: "2001:db8:1:2::/64".parse().unwrap(),
            until_ms: 1_900_000_000_000,
            reason: "5 authentication failures in 600 s".into(),
        }],
        provisioning: vec![(
            extension.clone(),
            Provisioning {
                password_salt: Some([3; 16]),
                link: Some([4; 32]),
            },
        )],
        bindings: vec![(
            extension,
            Binding {
                contact: "<sip:1000@[2001:db8::5]:5060>".into(),
                expires_at_ms: 1_900_000_000_000,
                call_id: "a\"b".into(),
                cseq: 9,
                flow: Flow {
                    transport: Transport::Tls,
                    remote: "[fe80::1%2]:5061".parse().unwrap(),
                    connection: None,
                },
                user_agent: String::new(),
                since_ms: 0,
            },
        )],
    }
}

fn backup() -> Backup {
    Backup {
        schema_version: VERSION,
        hotline_version: "0.1.0".into(),
        created: "2026-12-05T17:00:00Z".into(),
        config: Some("domain = \"example.org\"\n\"data_dir\" = 'x'\n".into()),
        password_key: Some("5a".repeat(32)),
        records: Records::from(&snapshot()),
        files: vec![DataFile {
            path: "tls/cert.pem".into(),
            mode: 0o600,
            contents: hex::encode(b"-----BEGIN CERTIFICATE-----\n"),
        }],
    }
}

#[test]
fn records_round_trip_through_the_file() {
    let backup = backup();
    let text = backup.encode(None).unwrap();
    assert!(text.starts_with(HEADER), "{text}");
    assert!(!Backup::is_encrypted(&text));
    let read = Backup::decode(&text, None).unwrap();
    assert_eq!(read, backup);
    assert_eq!(Snapshot::try_from(&read.records).unwrap(), snapshot());
}

#[test]
fn an_encrypted_file_needs_its_passphrase() {
    let backup = backup();
    let text = backup.encode(Some("correct horse")).unwrap();
    assert!(Backup::is_encrypted(&text));
    assert!(!text.contains("Alice"), "{text}");
    // The secrets are inside the encrypted part.
    for secret in [
        "5a".repeat(32),
        "03".repeat(16),
        "04".repeat(32),
        "07".repeat(32),
    ] {
        assert!(!text.contains(&secret), "{secret} in {text}");
    }
    assert!(matches!(
        Backup::decode(&text, None),
        Err(BackupError::NeedPassphrase)
    ));
    assert!(matches!(
        Backup::decode(&text, Some("wrong horse")),
        Err(BackupError::WrongPassphrase)
    ));
    assert_eq!(
        Backup::decode(&text, Some("correct horse")).unwrap(),
        backup
    );
}

#[test]
fn a_newer_version_is_refused_and_an_older_file_read() {
    // A newer hotline may have changed everything else: the version is checked first.
    let newer = VERSION + 1;
    let text = format!("schema_version = {newer}\nusers = \"a new shape\"\n");
    let error = Backup::decode(&text, None).unwrap_err();
    assert!(matches!(
        error,
        BackupError::TooNew { found, supported } if found == newer && supported == VERSION
    ));
    assert!(error.to_string().contains("newer hotline"), "{error}");

    // Written before bans existed, and without a configuration or files.
    let older = "schema_version = 1\nhotline_version = \"0.0.9\"\ncreated = \"\"\n\
                 [records]\n[[records.users]]\nextension = \"1000\"\ndisplay_name = \"\"\n\
                 realm = \"example.org\"\nha1_md5 = \"00000000000000000000000000000000\"\n\
                 ha1_sha256 = \"0000000000000000000000000000000000000000000000000000000000000000\"\n";
    let read = Backup::decode(older, None).unwrap();
    let snapshot = Snapshot::try_from(&read.records).unwrap();
    assert_eq!(snapshot.users.len(), 1);
    assert!(snapshot.bans.is_empty() && snapshot.secrets.is_empty());
    assert!(read.config.is_none() && read.files.is_empty());
    assert_eq!(
        Missing::of(&read, false),
        [Missing::OwnerPassword, Missing::ProvisioningLinks]
    );

    for (text, needle) in [
        ("", "no schema_version"),
        ("schema_version = 0", "no schema_version"),
        ("schema_version = \"1\"", "no schema_version"),
        ("[[[", "not a hotline backup"),
        (
            "schema_version = 1\nhotline_version = \"\"\ncreated = \"\"\nextra = 1",
            "extra",
        ),
        (
            "schema_version = 3\nhotline_version = \"\"\ncreated = \"\"\n\
             [records]\ninstall_secret = \"00\"",
            "install_secret",
        ),
    ] {
        let error = Backup::decode(text, None).unwrap_err();
        assert!(error.to_string().contains(needle), "{text}: {error}");
    }
}

#[test]
fn a_schema_2_backup_keeps_its_install_secret_and_says_what_it_lacks() {
    let read = Backup::decode(SCHEMA_2, None).unwrap();
    assert_eq!(read.schema_version, 2);
    let snapshot = Snapshot::try_from(&read.records).unwrap();
    assert_eq!(
        snapshot.secrets.keys().collect::<Vec<_>>(),
        [INSTALL_SECRET_KEY]
    );
    assert_eq!(snapshot.users.len(), 1);
    assert!(snapshot.provisioning.is_empty() && read.password_key.is_none());
    let missing = Missing::of(&read, false);
    assert_eq!(
        missing,
        [Missing::OwnerPassword, Missing::ProvisioningLinks]
    );
    assert!(missing[0].to_string().contains("`hotline owner passwd`"));
    assert!(
        missing[1]
            .to_string()
            .contains("`hotline user provision <ext>`")
    );

    // The current version lacks nothing, unless its password key is gone.
    let mut current = backup();
    assert!(Missing::of(&current, true).is_empty());
    current.password_key = None;
    assert!(Missing::of(&current, false).is_empty());
    assert_eq!(Missing::of(&current, true), [Missing::PasswordKey]);
}

#[test]
fn a_restore_puts_back_the_secrets_the_links_and_the_password_key() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let options = Restore {
        config_path: dir.path().join("hotline.toml"),
        data_dir: Some(data_dir.clone()),
        replace: true,
    };
    let restored = restore(&options, &backup()).unwrap();
    assert!(restored.missing.is_empty() && restored.owner_password);
    assert_eq!(restored.links, 1);
    let key = DataDir::new(&data_dir).password_key();
    assert_eq!(std::fs::read(&key).unwrap(), [0x5a; 32]);
    let mode = std::fs::metadata(&key).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let names: Vec<_> = std::fs::read_dir(&data_dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(
        !names.iter().any(|name| name.ends_with(".restoring")),
        "{names:?}"
    );
    let store = Store::open(&DataDir::new(&data_dir).database()).unwrap();
    assert_eq!(store.snapshot(0).unwrap(), snapshot());
    drop(store);

    // Without its key, the salts would derive wrong passwords: they are dropped, links kept.
    let mut keyless = backup();
    keyless.password_key = None;
    std::fs::remove_file(&key).unwrap();
    let restored = restore(&options, &keyless).unwrap();
    assert_eq!(restored.missing, [Missing::PasswordKey]);
    assert!(!key.exists());
    let store = Store::open(&DataDir::new(&data_dir).database()).unwrap();
    let extension = Extension::parse("1000").unwrap();
    assert_eq!(
        store.provisioning(&extension).unwrap(),
        Provisioning {
            password_salt: None,
            link: Some([4; 32]),
        }
    );
    drop(store);

    // A damaged key is refused before anything is written.
    let mut damaged = backup();
    damaged.password_key = Some("5a".repeat(31));
    let error = restore(&options, &damaged).unwrap_err();
    assert!(error.to_string().contains("password key"), "{error}");
    assert!(!key.exists());
}

#[test]
fn a_backup_too_large_to_restore_is_not_written() {
    let mut large = backup();
    large.config = Some("#".repeat(MAX_FILE_BYTES as usize));
    let error = large.encode(None).unwrap_err();
    assert!(matches!(error, BackupError::TooLarge { .. }), "{error}");
    let message = error.to_string();
    assert!(
        message.contains("more than `hotline restore` reads") && !message.contains("--encrypt"),
        "{message}"
    );
    // Encrypted, half as much is too much.
    large.config = Some("#".repeat(MAX_FILE_BYTES as usize / 2));
    let error = large.encode(Some("correct horse")).unwrap_err();
    assert!(error.to_string().contains("without --encrypt"), "{error}");
}

#[test]
fn bad_records_are_refused_by_name() {
    let mut records = Records::from(&snapshot());
    records.users[0].ha1_md5 = "abc".into();
    let error = Snapshot::try_from(&records).unwrap_err();
    assert!(
        error.to_string().contains("MD5 HA1 of extension 1000"),
        "{error}"
    );

    for (change, needle) in [
        (
            &|r: &mut Records| r.users[0].extension = "alice".into(),
            "1 to 15 digits",
        ),
        (
            &|r: &mut Records| r.bans[0].scope = "::/200".into(),
            "::/200",
        ),
        (
            &|r: &mut Records| r.bindings[0].transport = "SCTP".into(),
            "unknown transport",
        ),
        (
            &|r: &mut Records| r.bindings[0].source = "nowhere".into(),
            "bad source",
        ),
        (
            &|r: &mut Records| {
                r.secrets.insert(INSTALL_SECRET_KEY.into(), "00".into());
            },
            "the secret \"install\"",
        ),
        (
            &|r: &mut Records| {
                r.secrets.insert(OWNER_PASSWORD_KEY.into(), "ff".into());
            },
            "the secret \"owner_password\"",
        ),
        (
            &|r: &mut Records| r.provisioning[0].password_salt = Some("00".into()),
            "password salt of extension 1000",
        ),
        (
            &|r: &mut Records| r.provisioning[0].link_hash = Some("zz".into()),
            "link hash of extension 1000",
        ),
    ] as [(&dyn Fn(&mut Records), &str); 8]
    {
        let mut records = Records::from(&snapshot());
        change(&mut records);
        let error = Snapshot::try_from(&records).unwrap_err();
        assert!(error.to_string().contains(needle), "{needle}: {error}");
    }
}

#[test]
fn a_store_snapshot_restores_into_another_store() {
    let dir = tempfile::tempdir().unwrap();
    let source = Store::open(&dir.path().join("a.redb")).unwrap();
    let wanted = snapshot();
    source.restore(&wanted).unwrap();
    assert_eq!(source.snapshot(0).unwrap(), wanted);
    // Expired bans are left out.
    assert!(source.snapshot(2_000_000_000_000).unwrap().bans.is_empty());

    let target = Store::open(&dir.path().join("b.redb")).unwrap();
    target
        .add_user(&User::new(
            Extension::parse("2000").unwrap(),
            "Bob",
            "x",
            "y",
        ))
        .unwrap();
    target.set_owner_password("$argon2id$fresh").unwrap();
    let fresh_secret = target.install_secret().unwrap();
    let records = Records::from(&source.snapshot(0).unwrap());
    target
        .restore(&Snapshot::try_from(&records).unwrap())
        .unwrap();
    assert_eq!(target.snapshot(0).unwrap(), wanted);
    assert_ne!(target.install_secret().unwrap(), fresh_secret);
    assert_eq!(target.install_secret().unwrap(), [7; 32]);
    assert_eq!(
        target.owner_password().unwrap().as_deref(),
        Some("$argon2id$v=19$m=1,t=1,p=1$c2FsdA$aGFzaA")
    );
    let extension = Extension::parse("1000").unwrap();
    assert_eq!(target.links().unwrap(), [(extension, [4; 32])]);

    // Bindings and links of an extension without a user are not restored.
    let mut orphan = wanted.clone();
    orphan.users.clear();
    target.restore(&orphan).unwrap();
    assert!(target.bindings().unwrap().is_empty());
    assert!(target.links().unwrap().is_empty());
}
