use super::*;
use crate::core::bans::Ban;
use crate::core::registrar::{Binding, Flow};
use crate::core::user::{Extension, User};
use crate::sip::Transport;
use crate::store::{Snapshot, Store};

fn snapshot() -> Snapshot {
    let extension = Extension::parse("1000").unwrap();
    Snapshot {
        install_secret: Some([7; 32]),
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
        schema_version: SCHEMA_VERSION,
        hotline_version: "0.1.0".into(),
        created: "2026-12-05T17:00:00Z".into(),
        config: Some("domain = \"example.org\"\n\"data_dir\" = 'x'\n".into()),
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
fn a_newer_schema_is_refused_and_an_older_file_read() {
    // A newer hotline may have changed everything else: the version is checked first.
    let newer = SCHEMA_VERSION + 1;
    let text = format!("schema_version = {newer}\nusers = \"a new shape\"\n");
    let error = Backup::decode(&text, None).unwrap_err();
    assert!(matches!(
        error,
        BackupError::TooNew { found, supported } if found == newer && supported == SCHEMA_VERSION
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
    assert!(snapshot.bans.is_empty() && snapshot.install_secret.is_none());
    assert!(read.config.is_none() && read.files.is_empty());

    for (text, needle) in [
        ("", "no schema_version"),
        ("schema_version = 0", "no schema_version"),
        ("schema_version = \"1\"", "no schema_version"),
        ("[[[", "not a hotline backup"),
        (
            "schema_version = 1\nhotline_version = \"\"\ncreated = \"\"\nextra = 1",
            "extra",
        ),
    ] {
        let error = Backup::decode(text, None).unwrap_err();
        assert!(error.to_string().contains(needle), "{text}: {error}");
    }
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
            &|r: &mut Records| r.install_secret = Some("00".into()),
            "install secret",
        ),
    ] as [(&dyn Fn(&mut Records), &str); 5]
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
    let fresh_secret = target.install_secret().unwrap();
    let records = Records::from(&source.snapshot(0).unwrap());
    target
        .restore(&Snapshot::try_from(&records).unwrap())
        .unwrap();
    assert_eq!(target.snapshot(0).unwrap(), wanted);
    assert_ne!(target.install_secret().unwrap(), fresh_secret);
    assert_eq!(target.install_secret().unwrap(), [7; 32]);

    // Bindings of an extension without a user are not restored.
    let mut orphan = wanted.clone();
    orphan.users.clear();
    target.restore(&orphan).unwrap();
    assert!(target.bindings().unwrap().is_empty());
}
