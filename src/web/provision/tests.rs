use std::sync::Arc;

use ring::rand::SystemRandom;

use super::*;
use crate::control::{Accounts, Reply, Request as Control, execute};
use crate::core::user::{Extension, User};

const HOSTILE: [&str; 6] = [
    "<script>alert(1)</script>",
    "Tom & \"Jerry\" 'Q'",
    "Zoë Żółć 電話 🦀",
    "]]> -- <!-- x",
    "\u{202e}evil\u{200b}",
    // The longest name `hotline user add` accepts.
    "ØØØØØØØØØØØØØØØØØØØØØØØØØØØØØØØØØØØØØØØØØØØØØØØØØØØØØØØØØØØØØØØØ",
];

fn config(dir: &std::path::Path) -> Config {
    let mut config = Config::parse(&format!(
        "domain = \"hotline.example.org\"\ndata_dir = \"{}\"\n",
        dir.display()
    ))
    .unwrap();
    config.web.https = vec!["[::1]:8443".parse().unwrap()];
    config
}

fn account(name: &str) -> PhoneAccount {
    let dir = tempfile::tempdir().unwrap();
    let user = User::new(
        Extension::parse("1000").unwrap(),
        name,
        "hotline.example.org",
        "1234",
    );
    let link = link::url(&config(dir.path()), &"T".repeat(link::TOKEN_LEN));
    PhoneAccount::new(&config(dir.path()), &user, Some("1234".into()), link)
}

/// The text of `<section name=…><entry name=…>` in a Linphone file.
fn linphone_entry(doc: &roxmltree::Document<'_>, section: &str, entry: &str) -> String {
    doc.descendants()
        .filter(|n| n.has_tag_name("section") && n.attribute("name") == Some(section))
        .flat_map(|s| s.children())
        .find(|n| n.has_tag_name("entry") && n.attribute("name") == Some(entry))
        .and_then(|n| n.text())
        .unwrap_or_else(|| panic!("no [{section}] {entry}"))
        .to_owned()
}

fn element(doc: &roxmltree::Document<'_>, name: &str) -> String {
    doc.descendants()
        .find(|n| n.has_tag_name(name))
        .unwrap_or_else(|| panic!("no <{name}>"))
        .text()
        .unwrap_or_default()
        .to_owned()
}

/// A Yealink `.cfg` as key → value, checking its syntax: the version line first, then only
/// comments and `key = value` lines, each key once.
fn yealink_keys(cfg: &str) -> std::collections::BTreeMap<String, String> {
    let mut lines = cfg.lines();
    assert_eq!(lines.next(), Some("#!version:1.0.0.1"));
    let mut keys = std::collections::BTreeMap::new();
    for line in lines.filter(|l| !l.starts_with('#')) {
        let (key, value) = line.split_once(" = ").unwrap_or_else(|| panic!("{line:?}"));
        assert!(
            key.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_'),
            "{key:?}"
        );
        assert!(
            keys.insert(key.into(), value.into()).is_none(),
            "{key} twice"
        );
    }
    keys
}

#[test]
fn linphone_sets_tls_srtp_ipv6_and_the_ha1() {
    let account = account("Alice");
    let xml = linphone::config(&account);
    assert!(
        xml.contains("wiki.linphone.org"),
        "the vendor document is named"
    );
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let entry = |section, name| linphone_entry(&doc, section, name);
    assert_eq!(
        entry("proxy_0", "reg_proxy"),
        "<sip:hotline.example.org:5061;transport=tls>"
    );
    assert_eq!(
        entry("proxy_0", "reg_identity"),
        "\"Alice\" <sip:1000@hotline.example.org>"
    );
    assert_eq!(entry("sip", "media_encryption"), "srtp");
    assert_eq!(entry("sip", "media_encryption_mandatory"), "1");
    assert_eq!(entry("sip", "use_ipv6"), "1");
    assert_eq!(entry("sip", "verify_server_certs"), "1");
    assert_eq!(entry("auth_info_0", "username"), "1000");
    assert_eq!(entry("auth_info_0", "ha1"), account.ha1_md5);
    assert_eq!(entry("auth_info_0", "realm"), "hotline.example.org");
    assert!(!xml.contains("1234"), "the password itself stays out");
    assert_eq!(
        entry("misc", "contacts-vcard-list"),
        format!(
            "https://hotline.example.org:8443/p/{}/directory/contacts.vcf",
            "T".repeat(43)
        )
    );
}

#[test]
fn yealink_sets_tls_srtp_ipv6_and_the_password() {
    let cfg = yealink::config(&account("Alice")).unwrap();
    assert!(
        cfg.contains("Auto Provisioning Guide"),
        "the vendor document is named"
    );
    let keys = yealink_keys(&cfg);
    for (key, value) in [
        ("account.1.enable", "1"),
        ("account.1.user_name", "1000"),
        ("account.1.auth_name", "1000"),
        ("account.1.password", "1234"),
        ("account.1.display_name", "Alice"),
        ("account.1.sip_server.1.address", "hotline.example.org"),
        ("account.1.sip_server.1.port", "5061"),
        ("account.1.sip_server.1.transport_type", "2"),
        ("account.1.srtp_encryption", "2"),
        ("static.network.ip_address_mode", "2"),
        ("static.security.trust_certificates", "1"),
        ("static.security.cn_validation", "1"),
    ] {
        assert_eq!(keys.get(key).map(String::as_str), Some(value), "{key}");
    }
    assert!(keys["remote_phonebook.data.1.url"].ends_with("/directory/yealink.xml"));
    assert!(!keys.contains_key("static.trusted_certificates.url"));
}

#[test]
fn grandstream_sets_tls_srtp_ipv6_and_the_password() {
    let xml = grandstream::config(&account("Alice")).unwrap();
    assert!(xml.contains("Grandstream"), "the vendor document is named");
    let doc = roxmltree::Document::parse(&xml).unwrap();
    assert_eq!(doc.root_element().tag_name().name(), "gs_provision");
    for (key, value) in [
        ("P271", "1"),
        ("P47", "hotline.example.org:5061"),
        ("P35", "1000"),
        ("P36", "1000"),
        ("P34", "1234"),
        ("P3", "Alice"),
        ("P130", "2"),
        ("P183", "2"),
        ("P1415", "1"),
        ("P330", "3"),
        ("P8463", "1"),
    ] {
        assert_eq!(element(&doc, key), value, "{key}");
    }
    assert!(
        !doc.descendants().any(|n| n.has_tag_name("P8433")),
        "no certificate to trust but the CAs'"
    );
    assert_eq!(
        element(&doc, "P331"),
        format!("hotline.example.org:8443/p/{}", "T".repeat(43))
    );
}

#[test]
fn hostile_names_are_escaped_never_broken() {
    for name in HOSTILE {
        let account = account(name);
        let xml = linphone::config(&account);
        let doc = roxmltree::Document::parse(&xml).unwrap_or_else(|e| panic!("{name}: {e}"));
        let identity = linphone_entry(&doc, "proxy_0", "reg_identity");
        assert!(
            identity.ends_with(" <sip:1000@hotline.example.org>"),
            "{identity}"
        );
        // A quote would end the display name early in SIP; it is left out there.
        assert_eq!(identity.matches('"').count(), 2, "{identity}");

        let xml = grandstream::config(&account).unwrap();
        let doc = roxmltree::Document::parse(&xml).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(element(&doc, "P3"), name);

        let keys = yealink_keys(&yealink::config(&account).unwrap());
        assert_eq!(keys["account.1.display_name"], name);

        let users = [User::new(
            Extension::parse("1000").unwrap(),
            name,
            "hotline.example.org",
            "1234",
        )];
        for (directory, tag) in [
            (Directory::Yealink, "Name"),
            (Directory::Cisco, "Name"),
            (Directory::Snom, "Name"),
            (Directory::Grandstream, "FirstName"),
        ] {
            let xml = directory.render(&users, "hotline.example.org");
            let doc = roxmltree::Document::parse(&xml).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(element(&doc, tag), name, "{directory:?}");
        }
    }
}

#[test]
fn directories_list_every_extension() {
    let users = [
        User::new(Extension::parse("1000").unwrap(), "Alice", "d", "p"),
        User::new(Extension::parse("2000").unwrap(), "", "d", "p"),
    ];
    let xml = Directory::Yealink.render(&users, "d");
    let doc = roxmltree::Document::parse(&xml).unwrap();
    assert_eq!(
        doc.root_element().tag_name().name(),
        "YealinkIPPhoneDirectory"
    );
    let entries: Vec<(String, String)> = doc
        .descendants()
        .filter(|n| n.has_tag_name("DirectoryEntry"))
        .map(|e| {
            let text = |tag| {
                e.children()
                    .find(|n| n.has_tag_name(tag))
                    .and_then(|n| n.text())
                    .unwrap()
                    .to_owned()
            };
            (text("Name"), text("Telephone"))
        })
        .collect();
    assert_eq!(
        entries,
        [
            ("Alice".into(), "1000".into()),
            ("2000".into(), "2000".into())
        ]
    );
    let xml = Directory::Grandstream.render(&users, "d");
    let doc = roxmltree::Document::parse(&xml).unwrap();
    assert_eq!(doc.root_element().tag_name().name(), "AddressBook");
    assert_eq!(element(&doc, "phonenumber"), "1000");
    let vcf = Directory::VCard.render(
        &[User::new(
            Extension::parse("1000").unwrap(),
            "A;b,c\\",
            "d",
            "p",
        )],
        "[::1]",
    );
    assert_eq!(
        vcf,
        "BEGIN:VCARD\r\nVERSION:4.0\r\nFN:A\\;b\\,c\\\\\r\nIMPP:sip:1000@[::1]\r\nEND:VCARD\r\n"
    );
}

struct Network {
    _dir: tempfile::TempDir,
    store: Arc<Store>,
    passwords: PasswordKey,
    provisioning: Provisioning,
}

impl Network {
    fn new() -> Network {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(&dir.path().join("hotline.redb")).unwrap());
        let passwords = PasswordKey::load_or_create(dir.path(), &SystemRandom::new()).unwrap();
        let provisioning = Provisioning::new(
            Arc::new(config(dir.path())),
            store.clone(),
            passwords.clone(),
        );
        Network {
            _dir: dir,
            store,
            passwords,
            provisioning,
        }
    }

    fn run(&self, request: Control) -> Reply {
        let accounts = Accounts {
            realm: "hotline.example.org",
            passwords: &self.passwords,
        };
        execute(&self.store, &accounts, &SystemRandom::new(), &request)
    }

    /// Adds a user; returns its password and link token.
    fn add(&self, extension: &str, name: &str) -> (String, String) {
        match self.run(Control::AddUser {
            extension: extension.into(),
            display_name: name.into(),
        }) {
            Reply::Created {
                password, token, ..
            } => (password, token),
            other => panic!("{other:?}"),
        }
    }

    fn get(&self, path: &str, user_agent: &str) -> Answer {
        let mut headers = hyper::HeaderMap::new();
        headers.insert(
            hyper::header::USER_AGENT,
            hyper::header::HeaderValue::from_str(user_agent).unwrap(),
        );
        self.provisioning.answer(&Request {
            method: hyper::Method::GET,
            target: path.into(),
            headers,
            body: bytes::Bytes::new(),
            remote: "[2001:db8::1]:40000".parse().unwrap(),
        })
    }
}

fn body(answer: &Answer) -> String {
    String::from_utf8(answer.response.body.clone()).unwrap()
}

fn refused(answer: &Answer) {
    assert_eq!(answer.response, Response::not_found());
    assert!(answer.failed_link);
}

#[test]
fn a_link_serves_its_extension_in_the_format_asked_for() {
    let network = Network::new();
    let (password, token) = network.add("1000", "Alice");
    let linphone = network.get(&format!("/p/{token}"), "Linphone/5.1.2 (belle-sip/5.1.1)");
    assert_eq!(linphone.response.status, 200);
    assert!(!linphone.failed_link);
    assert!(body(&linphone).contains("<section name=\"auth_info_0\">"));
    let yealink = network.get(&format!("/p/{token}"), "Yealink SIP-T46S 66.86.0.15");
    assert_eq!(
        yealink_keys(&body(&yealink))["account.1.password"],
        password
    );
    let mac = network.get(&format!("/p/{token}/805ec0123456.cfg"), "");
    assert_eq!(mac.response.body, yealink.response.body);
    let grandstream = network.get(&format!("/p/{token}/cfg000b82123456.xml"), "");
    assert!(body(&grandstream).contains(&format!("<P34>{password}</P34>")));
    let card = network.get(&format!("/p/{token}?x=1"), "Mozilla/5.0");
    let unknown = network.get(&format!("/p/{token}"), "Unknown");
    assert_eq!(unknown.response.body, linphone.response.body);
    assert!(
        body(&card).contains(&format!("password:   {password}")),
        "{}",
        body(&card)
    );
    // The hashes stored are those of the password the files carry.
    let stored = network
        .store
        .user(&Extension::parse("1000").unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(
        stored,
        User::new(
            stored.extension.clone(),
            "Alice",
            "hotline.example.org",
            &password
        )
    );
    // A file the link does not have: 404, but the link itself was right.
    let missing = network.get(&format!("/p/{token}/../secrets"), "");
    assert_eq!(missing.response, Response::not_found());
    assert!(!missing.failed_link);
    assert!(
        network
            .get(&format!("/p/{token}/certificate.pem"), "")
            .response
            .status
            == 404
    );
}

#[test]
fn wrong_revoked_and_near_links_get_the_same_404() {
    let network = Network::new();
    let (_, token) = network.add("1000", "Alice");
    let mut near = token.clone().into_bytes();
    near[10] = if near[10] == b'a' { b'b' } else { b'a' };
    let near = String::from_utf8(near).unwrap();
    for path in [
        format!("/p/{near}"),
        format!("/p/{near}/directory/yealink.xml"),
        format!("/p/{}", &token[..42]),
        format!("/p/{token}x"),
        "/p/".to_owned(),
        "/p/1000".to_owned(),
        format!("/p/{}", "A".repeat(43)),
        format!("/p/{}", "%".repeat(43)),
    ] {
        refused(&network.get(&path, "Linphone"));
    }
    // A new link ends the old one; revoking ends the new one.
    let Reply::Provisioned {
        token: new,
        password: None,
        ..
    } = network.run(Control::ProvisionUser {
        extension: "1000".into(),
        revoke: false,
    })
    else {
        panic!("not provisioned");
    };
    refused(&network.get(&format!("/p/{token}"), "Linphone"));
    assert_eq!(
        network
            .get(&format!("/p/{new}"), "Linphone")
            .response
            .status,
        200
    );
    assert_eq!(
        network.run(Control::ProvisionUser {
            extension: "1000".into(),
            revoke: true,
        }),
        Reply::LinkRevoked {
            extension: "1000".into()
        }
    );
    refused(&network.get(&format!("/p/{new}"), "Linphone"));
    refused(&network.get(&format!("/p/{new}/directory/yealink.xml"), ""));
    // Removing the user ends its link too.
    let (_, token) = network.add("2000", "Bob");
    network.run(Control::RemoveUser {
        extension: "2000".into(),
    });
    refused(&network.get(&format!("/p/{token}"), ""));
}

#[test]
fn the_directory_follows_the_users() {
    let network = Network::new();
    let (_, token) = network.add("1000", "Alice");
    let directory = |file: &str| body(&network.get(&format!("/p/{token}/directory/{file}"), ""));
    assert!(directory("yealink.xml").contains("<Name>Alice</Name>"));
    assert!(!directory("yealink.xml").contains("Bob"));
    network.add("2000", "Bob & Co");
    assert!(directory("yealink.xml").contains("<Name>Bob &amp; Co</Name>"));
    assert!(directory("cisco.xml").contains("<CiscoIPPhoneDirectory>"));
    assert!(directory("snom.xml").contains("<SnomIPPhoneDirectory>"));
    assert!(directory("contacts.vcf").contains("IMPP:sip:2000@hotline.example.org"));
    let phonebook = body(&network.get(&format!("/p/{token}/phonebook.xml"), ""));
    assert!(phonebook.contains("<phonenumber>2000</phonenumber>"));
    network.run(Control::RemoveUser {
        extension: "2000".into(),
    });
    assert!(!directory("grandstream.xml").contains("2000"));
    assert_eq!(
        network
            .get(&format!("/p/{token}/directory/other.xml"), "")
            .response,
        Response::not_found()
    );
}

#[test]
fn a_password_from_before_links_is_renewed_by_provisioning() {
    let network = Network::new();
    // As hotline 1 created users: a random password, no salt.
    let old = User::new(
        Extension::parse("1000").unwrap(),
        "Alice",
        "hotline.example.org",
        "9",
    );
    network.store.add_user(&old).unwrap();
    let Reply::Provisioned {
        token,
        password: Some(password),
        ..
    } = network.run(Control::ProvisionUser {
        extension: "1000".into(),
        revoke: false,
    })
    else {
        panic!("not provisioned with a new password");
    };
    let card = body(&network.get(&format!("/p/{token}/settings.txt"), ""));
    assert!(card.contains(&password), "{card}");
    // Provisioning again keeps the (now derivable) password.
    assert!(matches!(
        network.run(Control::ProvisionUser {
            extension: "1000".into(),
            revoke: false,
        }),
        Reply::Provisioned { password: None, .. }
    ));
    let message = match network.run(Control::ProvisionUser {
        extension: "3000".into(),
        revoke: false,
    }) {
        Reply::Failed { message } => message,
        other => panic!("{other:?}"),
    };
    assert!(message.contains("no user with extension 3000"), "{message}");
}

#[test]
fn a_self_signed_certificate_is_offered_for_trust() {
    let network = Network::new();
    let (_, token) = network.add("1000", "Alice");
    let tls = network._dir.path().join("tls");
    std::fs::create_dir_all(&tls).unwrap();
    let pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
    std::fs::write(tls.join("cert.pem"), pem).unwrap();
    let served = network.get(&format!("/p/{token}/certificate.pem"), "");
    assert_eq!(body(&served), pem);
    let keys = yealink_keys(&body(
        &network.get(&format!("/p/{token}/y000000000028.cfg"), ""),
    ));
    assert_eq!(
        keys["static.trusted_certificates.url"],
        format!("https://hotline.example.org:8443/p/{token}/certificate.pem")
    );
    let grandstream = body(&network.get(&format!("/p/{token}/cfg000b82000000.xml"), ""));
    let doc = roxmltree::Document::parse(&grandstream).unwrap();
    assert_eq!(element(&doc, "P8433"), pem);
    assert_eq!(element(&doc, "P8502"), "2");
    assert_eq!(element(&doc, "P8463"), "1");
    let linphone = body(&network.get(&format!("/p/{token}/linphone.xml"), ""));
    let doc = roxmltree::Document::parse(&linphone).unwrap();
    assert!(linphone.contains("root_ca is a path on the phone"));
    assert_eq!(linphone_entry(&doc, "sip", "verify_server_certs"), "1");
    assert!(
        !linphone.contains("\"root_ca\""),
        "the phone's own roots stay"
    );
    let card = body(&network.get(&format!("/p/{token}/settings.txt"), ""));
    let fingerprint = account::fingerprint(pem).unwrap();
    assert!(
        card.contains(&format!("SHA-256:    {fingerprint}")),
        "{card}"
    );
}
