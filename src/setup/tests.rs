//! Each step driven from memory, bad answers included, and whole runs on temporary files.

use std::io::Cursor;

use tempfile::TempDir;

use super::*;
use crate::web::owner::password;

/// `/proc/net/if_inet6` of a board with a global, a temporary, a unique local, a link-local and
/// the loopback address.
const IF_INET6: &str = "\
20010db8000100020000000000000005 02 40 00 80     eth0
20010db80001000211223344556677ff 02 40 00 01     eth0
fd000000000000000000000000000002 02 40 00 80     eth0
fe8000000000000000fc00fffe000001 02 40 20 80     eth0
00000000000000000000000000000001 01 80 10 80       lo
";

fn environment(hostname: &str, if_inet6: &str) -> Environment {
    Environment {
        hostname: Some(hostname.to_owned()),
        addresses: parse_if_inet6(if_inet6),
        systemctl: None,
        dns_servers: Vec::new(),
        firewall: None,
        home: None,
    }
}

/// Runs `step` on a terminal dialog fed `input`; returns its result and everything written.
fn on_terminal<T>(input: &str, step: impl FnOnce(&mut Dialog<'_>) -> T) -> (T, String) {
    let mut input = Cursor::new(input.as_bytes().to_vec());
    let mut output = Vec::new();
    let result = step(&mut Dialog::terminal(&mut input, &mut output));
    (result, flat(&output))
}

/// The text with every run of white space made one space: what a person reads, whatever the
/// line breaks.
fn flat(output: &[u8]) -> String {
    let text = String::from_utf8(output.to_vec()).unwrap();
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn from_file<T>(step: impl FnOnce(&mut Dialog<'_>) -> T) -> (T, String) {
    let mut output = Vec::new();
    let result = step(&mut Dialog::answers_file(
        Path::new("answers.toml"),
        &mut output,
    ));
    (result, flat(&output))
}

#[test]
fn addresses_are_read_and_classified() {
    let addresses = parse_if_inet6(IF_INET6);
    assert_eq!(addresses.len(), 5);
    let reaches: Vec<Reach> = addresses.iter().map(InterfaceAddress::reach).collect();
    assert_eq!(
        reaches,
        [
            Reach::Global,
            Reach::Global,
            Reach::UniqueLocal,
            Reach::LinkLocal,
            Reach::Loopback
        ]
    );
    assert_eq!(
        addresses[0].address,
        "2001:db8:1:2::5".parse::<Ipv6Addr>().unwrap()
    );
    assert_eq!(addresses[0].interface, "eth0");
    assert!(addresses[0].stable() && !addresses[1].stable());
    assert!(parse_if_inet6("garbage\n\n0123 01 40 00 80 eth0\n").is_empty());
}

#[test]
fn suggested_domain_is_a_dns_name_or_the_global_address() {
    let env = environment("pbx.example.org", IF_INET6);
    assert_eq!(suggest_domain(&env).as_deref(), Some("pbx.example.org"));
    // A bare hostname is no use to phones elsewhere: the stable global address is (not the
    // temporary one).
    let env = environment("raspberrypi", IF_INET6);
    assert_eq!(suggest_domain(&env).as_deref(), Some("[2001:db8:1:2::5]"));
    let env = environment(
        "raspberrypi",
        "fd000000000000000000000000000002 02 40 00 80 eth0\n",
    );
    assert_eq!(suggest_domain(&env).as_deref(), Some("raspberrypi"));
    let env = environment("bad_name", "");
    assert_eq!(suggest_domain(&env), None);
}

#[test]
fn domain_step_asks_again_after_bad_answers() {
    let config = Config::default();
    let answers = Answers::default();
    let (domain, screen) = on_terminal("bad domain\n192.0.2.1\n\nhotline.test\n", |dialog| {
        ask_domain(dialog, &config, None, &answers)
    });
    assert_eq!(domain.unwrap(), "hotline.test");
    assert!(
        screen.contains("\"bad domain\" is not a host name"),
        "{screen}"
    );
    assert!(screen.contains("hotline speaks IPv6 only"), "{screen}");
    assert!(screen.contains("Please give a domain"), "{screen}");
    assert_eq!(screen.matches("Domain:").count(), 4, "{screen}");

    // Enter takes the default; a bare IPv6 address is written as in a URI.
    let (domain, screen) = on_terminal("\n", |dialog| {
        ask_domain(dialog, &config, Some("pbx.example.org"), &answers)
    });
    assert_eq!(domain.unwrap(), "pbx.example.org");
    assert!(screen.contains("Domain [pbx.example.org]:"), "{screen}");
    let (domain, _) = on_terminal("2001:db8::1\n", |dialog| {
        ask_domain(dialog, &config, None, &answers)
    });
    assert_eq!(domain.unwrap(), "[2001:db8::1]");

    // Input that ends before an answer is an error that says what to do.
    let (domain, _) = on_terminal("bad domain\n", |dialog| {
        ask_domain(dialog, &config, None, &answers)
    });
    let error = domain.unwrap_err().to_string();
    assert!(error.contains("--answers FILE"), "{error}");
}

#[test]
fn domain_from_an_answers_file_is_checked_the_same_way() {
    let config = Config::default();
    let answers = Answers {
        domain: Some("bad domain".into()),
        ..Answers::default()
    };
    let (domain, _) = from_file(|dialog| ask_domain(dialog, &config, Some("x.org"), &answers));
    let error = domain.unwrap_err().to_string();
    assert!(error.starts_with("answers.toml: `domain`: "), "{error}");
    assert!(error.contains("is not a host name"), "{error}");
    // A missing key takes the default.
    let (domain, screen) =
        from_file(|dialog| ask_domain(dialog, &config, Some("x.org"), &Answers::default()));
    assert_eq!(domain.unwrap(), "x.org");
    assert!(screen.contains("Domain: x.org"), "{screen}");
}

#[test]
fn connectivity_check_explains_what_is_missing() {
    let config = Config {
        domain: "pbx.example.org".into(),
        ..Config::default()
    };
    let check = |if_inet6: &str| {
        let addresses = parse_if_inet6(if_inet6);
        on_terminal("", |dialog| {
            check_ipv6(dialog, &addresses, &config).unwrap()
        })
    };
    let (found, screen) = check(IF_INET6);
    assert_eq!(found, Connectivity::Global);
    assert!(
        screen.contains("2001:db8:1:2::5 (eth0): global"),
        "{screen}"
    );
    assert!(screen.contains("UDP port 5060 and TCP port 5060 and TLS port 5061"));

    let (found, screen) = check(&IF_INET6.replace("2001", "fd00"));
    assert_eq!(found, Connectivity::LocalOnly);
    assert!(screen.contains("not reachable from outside"), "{screen}");
    assert!(
        screen.contains("friends outside your network cannot reach"),
        "{screen}"
    );

    let link_local_only = "fe8000000000000000fc00fffe000001 02 40 20 80 eth0\n";
    let (found, screen) = check(link_local_only);
    assert_eq!(found, Connectivity::None);
    assert!(
        screen.contains("No IPv6 address beyond the link-local one"),
        "{screen}"
    );
    assert!(screen.contains("prefix delegation"), "{screen}");

    // A duplicate address (DAD failed) does not count.
    let (found, _) = check("20010db8000100020000000000000005 02 40 00 88 eth0\n");
    assert_eq!(found, Connectivity::None);
}

/// The TLS step on a terminal where the person presses Enter; no network.
fn default_tls(config: &mut Config, domain_changed: bool) -> (anyhow::Result<TlsIdentity>, String) {
    on_terminal("\n", |dialog| {
        let environment = Environment::default();
        ask_tls(
            dialog,
            config,
            domain_changed,
            &Answers::default(),
            &environment,
        )
    })
}

fn config_in(dir: &TempDir) -> Config {
    Config {
        domain: "hotline.test".into(),
        data_dir: dir.path().join("data"),
        ..Config::default()
    }
}

#[test]
fn tls_step_makes_a_self_signed_certificate_by_default() {
    let dir = TempDir::new().unwrap();
    let mut config = config_in(&dir);
    let (identity, screen) = default_tls(&mut config, false);
    let identity = identity.unwrap();
    assert!(identity.generated);
    assert!(
        screen.contains(&identity.fingerprint_sha256[..47]),
        "{screen}"
    );
    assert!(dir.path().join("data/tls/cert.pem").is_file());
    assert_eq!(config.tls, crate::config::Tls::default());

    // Again: the same certificate; after a change of domain `new` is the default.
    let (again, _) = default_tls(&mut config, false);
    assert_eq!(
        again.unwrap().fingerprint_sha256,
        identity.fingerprint_sha256
    );
    config.domain = "other.test".into();
    let (renewed, screen) = default_tls(&mut config, true);
    let renewed = renewed.unwrap();
    assert!(screen.contains("[new]"), "{screen}");
    assert!(renewed.generated);
    assert_ne!(renewed.fingerprint_sha256, identity.fingerprint_sha256);
}

#[test]
fn tls_step_checks_pem_files_and_asks_again() {
    let dir = TempDir::new().unwrap();
    // Two certificates "from a CA", made the way hotline makes its own.
    let ca = |name: &str| {
        let identity = certificate::load_or_generate(
            &DataDir::new(dir.path().join(name)),
            "hotline.test",
            None,
        )
        .unwrap();
        (
            identity.certificate.clone(),
            identity.certificate.with_file_name("key.pem"),
        )
    };
    let (cert_a, key_a) = ca("a");
    let (_, key_b) = ca("b");
    let mut config = config_in(&dir);
    let input = format!(
        "/no/such/cert.pem\n{}\n/no/such/key.pem\n{}\n{}\n{}\n",
        cert_a.display(),
        key_b.display(),
        cert_a.display(),
        key_a.display()
    );
    let (identity, screen) = on_terminal(&input, |dialog| {
        ask_tls(
            dialog,
            &mut config,
            false,
            &Answers::default(),
            &Environment::default(),
        )
    });
    let identity = identity.unwrap();
    assert!(!identity.generated);
    assert!(
        screen.contains("/no/such/cert.pem is not a file"),
        "{screen}"
    );
    assert!(
        screen.contains("/no/such/key.pem is not a file"),
        "{screen}"
    );
    assert!(
        screen.contains("does not belong to the certificate"),
        "{screen}"
    );
    assert_eq!(config.tls.certificate.as_ref(), Some(&cert_a));
    assert_eq!(config.tls.private_key.as_ref(), Some(&key_a));
    assert!(!dir.path().join("data/tls").exists(), "nothing generated");

    // From a file, a key that does not fit is an error naming the key.
    let answers = Answers {
        certificate: Some(cert_a.display().to_string()),
        private_key: Some(key_b.display().to_string()),
        ..Answers::default()
    };
    let (result, _) = from_file(|dialog| {
        ask_tls(
            dialog,
            &mut config,
            false,
            &answers,
            &Environment::default(),
        )
    });
    let error = result.err().unwrap().to_string();
    assert!(
        error.starts_with("answers.toml: `certificate`: "),
        "{error}"
    );
}

fn existing(users: &[(&str, &str)]) -> Vec<ExistingUser> {
    users
        .iter()
        .map(|(extension, name)| ExistingUser {
            summary: UserSummary {
                extension: (*extension).into(),
                display_name: (*name).into(),
            },
            realm: None,
        })
        .collect()
}

#[test]
fn extensions_step_refuses_bad_numbers_and_duplicates() {
    let users = existing(&[("1000", "Alice")]);
    let input = "x100 Bob\n1000 Bob\n1001 Bob\n1001 Bobby\n1002\n1003 Carol Ann Smith\n\n";
    let (new, screen) = on_terminal(input, |dialog| {
        ask_extensions(dialog, &users, &Answers::default())
    });
    let new: Vec<(String, String)> = new
        .unwrap()
        .into_iter()
        .map(|n| (n.extension, n.display_name))
        .collect();
    assert_eq!(
        new,
        [
            ("1001".into(), "Bob".into()),
            ("1002".into(), String::new()),
            ("1003".into(), "Carol Ann Smith".into())
        ]
    );
    assert!(
        screen.contains("Extensions kept as they are: 1000 (Alice)."),
        "{screen}"
    );
    assert!(screen.contains("extension \"x100\" is not valid: use 1 to 15 digits"));
    assert!(screen.contains("extension 1000 is taken (Alice): choose another number"));
    assert!(screen.contains("extension 1001 is taken (Bob)"), "{screen}");

    let long = format!("1004 {}", "x".repeat(MAX_DISPLAY_NAME + 1));
    let taken = BTreeMap::new();
    assert!(
        parse_extension(&long, &taken)
            .unwrap_err()
            .contains("too long")
    );
}

#[test]
fn extensions_from_a_file_keep_existing_ones_and_refuse_duplicates() {
    let users = existing(&[("1000", "Alice")]);
    let answers = Answers {
        extensions: vec!["1000 Alice".into(), "1001 Bob".into()],
        ..Answers::default()
    };
    let (new, screen) = from_file(|dialog| ask_extensions(dialog, &users, &answers));
    assert_eq!(new.unwrap().len(), 1);
    assert!(
        screen.contains("Extension 1000 exists: kept as it is."),
        "{screen}"
    );

    let answers = Answers {
        extensions: vec!["1001 Bob".into(), "1001 Robert".into()],
        ..Answers::default()
    };
    let (new, _) = from_file(|dialog| ask_extensions(dialog, &users, &answers));
    let error = new.unwrap_err().to_string();
    assert!(error.starts_with("answers.toml: `extensions[1]`: extension 1001 is taken"));
}

#[test]
fn yes_or_no() {
    assert_eq!(parse_yes_no("Y"), Ok(true));
    assert_eq!(parse_yes_no("no"), Ok(false));
    assert!(parse_yes_no("maybe").is_err());
}

#[test]
fn phone_settings_are_the_ones_user_add_shows() {
    let config = Config {
        domain: "pbx.example.org".into(),
        ..Config::default()
    };
    assert_eq!(
        phone_settings(&config, "1000", "0123"),
        "  domain:    pbx.example.org\n\
         \x20 server:    pbx.example.org port 5061, transport TLS (recommended)\n\
         \x20 or:        pbx.example.org port 5060, transport UDP or TCP\n\
         \x20 user:      1000\n\
         \x20 password:  0123\n\
         \x20 media:     SRTP mandatory\n"
    );
}

#[test]
fn written_file_is_the_documented_one_with_the_values() {
    let mut table = toml::Table::new();
    let config = config_in(&TempDir::new().unwrap());
    set_values(&mut table, &config);
    let text = render(&table).unwrap();
    assert!(
        text.starts_with("# hotline configuration: every key"),
        "{text}"
    );
    assert!(text.contains("\ndomain = \"hotline.test\"\n"), "{text}");
    assert_eq!(Config::parse(&text).unwrap(), config);

    // Keys the wizard does not ask about stay, and PEM files take the commented lines.
    let mut table: toml::Table =
        toml::from_str("aliases = [\"sip.example.org\"]\n[auth]\nalgorithms = [\"SHA-256\"]\n")
            .unwrap();
    let mut config = config;
    config.tls.certificate = Some("/etc/ssl/chain.pem".into());
    config.tls.private_key = Some("/etc/ssl/key.pem".into());
    set_values(&mut table, &config);
    let text = render(&table).unwrap();
    assert!(
        text.contains("\ncertificate = \"/etc/ssl/chain.pem\"\n"),
        "{text}"
    );
    let written = Config::parse(&text).unwrap();
    assert_eq!(written.aliases, ["sip.example.org"]);
    assert_eq!(
        written.auth.algorithms,
        [crate::core::auth::Algorithm::Sha256]
    );
    assert_eq!(written.tls, config.tls);
}

/// A whole run on the terminal, writing under `dir`.
fn run_on_terminal(
    dir: &TempDir,
    env: &Environment,
    input: &str,
) -> (anyhow::Result<Outcome>, String) {
    let options = Options {
        config_path: dir.path().join("etc/hotline.toml"),
        answers: None,
        service: false,
    };
    on_terminal(input, |dialog| run(&options, env, dialog))
}

fn first_config(dir: &TempDir) {
    let path = dir.path().join("etc/hotline.toml");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let data_dir = dir.path().join("data");
    std::fs::write(
        &path,
        format!(
            "data_dir = \"{}\"\n[listen]\nudp = [\"[::1]:0\"]\ntcp = []\ntls = [\"[::1]:0\"]\n\
             [auth]\nalgorithms = [\"SHA-256\", \"MD5\"]\n",
            data_dir.display()
        ),
    )
    .unwrap();
}

/// The owner's password these runs choose.
const OWNER: &str = "a long owner password";

fn owner_password_in(dir: &TempDir) -> String {
    Store::open(&DataDir::new(dir.path().join("data")).database())
        .unwrap()
        .owner_password()
        .unwrap()
        .expect("an owner password")
}

fn users_in(dir: &TempDir) -> Vec<crate::core::user::User> {
    Store::open(&DataDir::new(dir.path().join("data")).database())
        .unwrap()
        .users()
        .unwrap()
}

#[test]
fn run_writes_the_configuration_and_keeps_users_when_run_again() {
    let dir = TempDir::new().unwrap();
    first_config(&dir);
    let env = environment("raspberrypi", IF_INET6);
    // Domain: Enter (the global address), TLS: Enter, two extensions, done.
    let input = format!("\n\n\n1000 Alice\n1001 Bob\n\n{OWNER}\n{OWNER}\nno\n");
    let (outcome, screen) = run_on_terminal(&dir, &env, &input);
    let outcome = outcome.unwrap();
    assert_eq!(outcome.config.domain, "[2001:db8:1:2::5]");
    assert_eq!(outcome.passwords.len(), 2);
    assert!(
        screen.contains("Extension 1000 (Alice): phone settings"),
        "{screen}"
    );
    assert!(screen.contains(&format!("password: {}", outcome.passwords[0].1)));
    assert!(screen.contains("The service was left alone"), "{screen}");
    let text = std::fs::read_to_string(dir.path().join("etc/hotline.toml")).unwrap();
    let written = Config::parse(&text).unwrap();
    assert_eq!(written, outcome.config);
    assert_eq!(
        written.auth.algorithms.len(),
        2,
        "a key set by hand is kept"
    );
    assert!(written.listen.tcp.is_empty());
    assert!(
        text.contains("# Digest algorithms offered"),
        "documented: {text}"
    );
    let users = users_in(&dir);
    assert_eq!(users.len(), 2);
    assert_eq!(users[0].realm, "[2001:db8:1:2::5]");

    let owner_hash = owner_password_in(&dir);
    assert!(password::verify(&owner_hash, OWNER), "{owner_hash}");
    assert!(
        !screen.contains(OWNER),
        "the password is not shown: {screen}"
    );

    // Again: the domain is the default now, the users are kept with their hashes, and Enter
    // keeps the owner's password.
    let (again, screen) = run_on_terminal(&dir, &env, "\n\n1002 Carol\n\n\n\n");
    let again = again.unwrap();
    assert!(
        screen.contains("The owner has a password already: an empty answer keeps it."),
        "{screen}"
    );
    assert!(screen.contains("(the owner's password: kept;"), "{screen}");
    assert_eq!(owner_password_in(&dir), owner_hash);
    assert!(screen.contains("Domain [[2001:db8:1:2::5]]"), "{screen}");
    assert!(screen.contains("Kept, with their passwords: 1000 (Alice), 1001 (Bob)."));
    assert_eq!(again.passwords.len(), 1);
    let after = users_in(&dir);
    assert_eq!(after.len(), 3);
    assert_eq!(after[..2], users[..]);
    assert!(dir.path().join("etc/hotline.toml.bak").is_file());
}

#[test]
fn a_new_domain_offers_new_passwords() {
    let dir = TempDir::new().unwrap();
    first_config(&dir);
    let env = environment("pbx.example.org", "");
    let input = format!("\n\n\n1000 Alice\n1001 Bob\n\n{OWNER}\n{OWNER}\n\n");
    let (outcome, _) = run_on_terminal(&dir, &env, &input);
    let first = outcome.unwrap();
    assert_eq!(first.config.domain, "pbx.example.org");

    // A new domain: a new certificate by default, and the question of new passwords; "no"
    // leaves the users as they were.
    let input = "sip.example.org\n\n\nmaybe\nno\n\n\n";
    let (outcome, screen) = run_on_terminal(&dir, &env, input);
    let outcome = outcome.unwrap();
    // The domain is a public name: Let's Encrypt first; without a global address it falls
    // back to a new self-signed certificate for the new domain.
    assert!(
        screen.contains("`self-signed` or `new` [lets-encrypt]"),
        "{screen}"
    );
    assert!(
        screen.contains("Made a self-signed certificate"),
        "{screen}"
    );
    assert!(outcome.config.acme.enabled);
    assert!(screen.contains("the passwords of 1000 (Alice), 1001 (Bob) no longer work"));
    assert!(
        screen.contains("\"maybe\": please answer yes or no"),
        "{screen}"
    );
    assert!(outcome.passwords.is_empty());
    assert!(users_in(&dir).iter().all(|u| u.realm == "pbx.example.org"));

    // Run again, the users' hashes still name the old domain: the question comes again.
    let (outcome, screen) = run_on_terminal(&dir, &env, "\n\n\n\n\n\n");
    let outcome = outcome.unwrap();
    assert!(screen.contains("Domain [sip.example.org]"), "{screen}");
    assert!(
        screen.contains("New passwords for them now? (yes/no) [yes]"),
        "{screen}"
    );
    assert_eq!(outcome.passwords.len(), 2);
    assert!(users_in(&dir).iter().all(|u| u.realm == "sip.example.org"));
}

#[test]
fn a_broken_configuration_is_reported_not_overwritten() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("etc/hotline.toml");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, "[registrar]\nmax_contact = 3\n").unwrap();
    let (outcome, _) = run_on_terminal(&dir, &Environment::default(), "");
    let error = format!("{:#}", outcome.unwrap_err());
    assert!(
        error.contains("max_contact") && error.contains("move it away"),
        "{error}"
    );
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "[registrar]\nmax_contact = 3\n"
    );
}

#[test]
fn the_service_is_enabled_and_started_with_systemctl() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = TempDir::new().unwrap();
    first_config(&dir);
    // A systemctl that records its arguments; `is-active` says the service is not running.
    let log = dir.path().join("systemctl.log");
    let systemctl = dir.path().join("systemctl");
    std::fs::write(
        &systemctl,
        format!(
            "#!/bin/sh\necho \"$*\" >> {}\n[ \"$1\" = is-active ] && exit 3\nexit 0\n",
            log.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&systemctl, std::fs::Permissions::from_mode(0o755)).unwrap();
    let env = Environment {
        systemctl: Some(systemctl),
        ..environment("pbx.example.org", "")
    };
    let answers = Answers {
        owner_password: Some(OWNER.into()),
        ..Answers::default()
    };
    let options = Options {
        config_path: dir.path().join("etc/hotline.toml"),
        answers: Some((dir.path().join("answers.toml"), answers)),
        service: true,
    };
    let (outcome, screen) = from_file(|dialog| run(&options, &env, dialog));
    outcome.unwrap();
    assert!(
        screen.contains("hotline is started (hotline.service)"),
        "{screen}"
    );
    assert!(screen.contains("Note: hotline.service reads /etc/hotline/hotline.toml"));
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "is-active --quiet hotline.service\nenable --now hotline.service\n"
    );
}

#[test]
fn long_lines_are_wrapped_at_spaces() {
    let text = "  one two three four\nfive six";
    assert_eq!(wrap(text, 12), "  one two\n  three four\nfive six");
    assert_eq!(
        wrap("averyveryverylongword x", 5),
        "averyveryverylongword\nx"
    );
    let fingerprint = (0..32)
        .map(|i| format!("{i:02X}"))
        .collect::<Vec<_>>()
        .join(":");
    let lines = fingerprint_lines(&fingerprint, "  ");
    assert_eq!(lines.lines().count(), 2);
    assert_eq!(lines.replace("\n  ", "").trim(), fingerprint);
}

#[test]
fn files_made_as_root_go_to_the_owner_of_the_data_directory() {
    use std::os::unix::fs::{MetadataExt as _, chown};
    // Only root can give files away; /proc/self belongs to the effective user.
    if std::fs::metadata("/proc/self").unwrap().uid() != 0 {
        eprintln!("skipped: needs root");
        return;
    }
    let dir = TempDir::new().unwrap();
    let data_dir = dir.path().join("data");
    std::fs::create_dir_all(data_dir.join("tls")).unwrap();
    std::fs::write(data_dir.join("tls").join("key.pem"), "key").unwrap();
    std::fs::write(data_dir.join("hotline.redb"), "database").unwrap();
    chown(&data_dir, Some(4321), Some(4322)).unwrap();

    give_to_data_dir_owner(&data_dir).unwrap();
    for path in ["tls", "tls/key.pem", "hotline.redb"] {
        let metadata = std::fs::metadata(data_dir.join(path)).unwrap();
        assert_eq!((metadata.uid(), metadata.gid()), (4321, 4322), "{path}");
    }
}

/// A DNS server on `[::1]` that answers every query with `address` as its AAAA record, or with
/// no record at all.
fn dns_answering(address: Option<Ipv6Addr>) -> SocketAddr {
    let socket = std::net::UdpSocket::bind("[::1]:0").unwrap();
    let local = socket.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut buffer = [0u8; 512];
        while let Ok((length, from)) = socket.recv_from(&mut buffer) {
            let query = &buffer[..length];
            let answers = u8::from(address.is_some());
            let mut reply = vec![query[0], query[1], 0x81, 0x80, 0, 1, 0, answers, 0, 0, 0, 0];
            reply.extend_from_slice(&query[12..]);
            if let Some(address) = address {
                reply.extend_from_slice(&[0xc0, 12, 0, 28, 0, 1, 0, 0, 0, 60, 0, 16]);
                reply.extend_from_slice(&address.octets());
            }
            let _ = socket.send_to(&reply, from);
        }
    });
    local
}

fn public_config(dir: &TempDir) -> Config {
    Config {
        domain: "pbx.example.org".into(),
        ..config_in(dir)
    }
}

#[test]
fn lets_encrypt_is_offered_first_and_a_wrong_aaaa_record_is_named() {
    let dir = TempDir::new().unwrap();
    let mut config = public_config(&dir);
    let env = Environment {
        dns_servers: vec![dns_answering(Some("2001:db8::99".parse().unwrap()))],
        ..environment("pbx", IF_INET6)
    };
    let (identity, screen) = on_terminal("\n", |dialog| {
        ask_tls(dialog, &mut config, false, &Answers::default(), &env)
    });
    assert!(identity.unwrap().generated, "self-signed meanwhile");
    assert!(screen.contains("[lets-encrypt]"), "{screen}");
    assert!(
        screen.contains(
            "The AAAA record of pbx.example.org is 2001:db8::99, not an address of this board. \
             At your DNS provider, change it to: pbx.example.org. AAAA 2001:db8:1:2::5"
        ),
        "{screen}"
    );
    assert!(screen.contains("asks the CA again by itself"), "{screen}");
    assert!(config.acme.enabled, "the server keeps trying");
    assert!(!dir.path().join("data/tls/acme.pem").exists());
    assert!(dir.path().join("data/tls/cert.pem").is_file());
}

#[test]
fn a_missing_aaaa_record_from_an_answers_file_says_which_record_to_create() {
    let dir = TempDir::new().unwrap();
    let mut config = public_config(&dir);
    let env = Environment {
        dns_servers: vec![dns_answering(None)],
        ..environment("pbx", IF_INET6)
    };
    let answers = Answers {
        certificate: Some("lets-encrypt".into()),
        ..Answers::default()
    };
    let (identity, screen) =
        from_file(|dialog| ask_tls(dialog, &mut config, false, &answers, &env));
    assert!(identity.unwrap().generated);
    assert!(
        screen.contains(
            "pbx.example.org has no AAAA record. At your DNS provider, create: \
             pbx.example.org. AAAA 2001:db8:1:2::5"
        ),
        "{screen}"
    );
    assert!(config.acme.enabled);
}

#[test]
fn only_public_names_default_to_lets_encrypt() {
    for name in ["pbx.example.org", "sip.example.com.", "a.b.co"] {
        assert!(acme::public_name(name), "{name}");
    }
    for name in [
        "hotline.test",
        "pbx",
        "pbx.lan",
        "box.home.arpa",
        "[2001:db8::1]",
        "192.0.2.1",
    ] {
        assert!(!acme::public_name(name), "{name}");
    }
}

#[test]
fn the_firewall_opens_the_validation_port_only_while_acme_is_on() {
    let dir = TempDir::new().unwrap();
    let drop_in = dir.path().join(acme::FIREWALL_FILE);
    let mut config = public_config(&dir);
    assert!(!acme::write_firewall(dir.path(), &config).unwrap());
    assert!(!drop_in.exists());
    config.acme.enabled = true;
    assert!(acme::write_firewall(dir.path(), &config).unwrap());
    let text = std::fs::read_to_string(&drop_in).unwrap();
    assert!(
        text.contains("add rule inet filter input tcp dport { 443 } accept"),
        "{text}"
    );
    assert!(
        !acme::write_firewall(dir.path(), &config).unwrap(),
        "unchanged"
    );
    config.acme.challenge = crate::config::ChallengeKind::Http01;
    assert!(acme::write_firewall(dir.path(), &config).unwrap());
    let text = std::fs::read_to_string(&drop_in).unwrap();
    assert!(text.contains("tcp dport { 80 } accept"), "{text}");
    config.acme.enabled = false;
    assert!(acme::write_firewall(dir.path(), &config).unwrap());
    assert!(!drop_in.exists());
}

#[test]
fn a_backup_made_at_the_end_restores_at_the_start_on_a_new_card() {
    let old = TempDir::new().unwrap();
    first_config(&old);
    let env = Environment {
        home: Some(old.path().to_owned()),
        ..environment("pbx.example.org", "")
    };
    // No restore, the defaults, one extension, then Enter: the backup in the home directory.
    let input = format!("\n\n\n1000 Alice\n\n{OWNER}\n{OWNER}\n\n");
    let (outcome, screen) = run_on_terminal(&old, &env, &input);
    outcome.unwrap();
    let file = old.path().join("hotline.backup");
    assert!(
        screen.contains(&format!("Backup file, or `no` [{}]", file.display())),
        "{screen}"
    );
    assert!(screen.contains("scp 'root@[ADDRESS]:"), "{screen}");
    let text = std::fs::read_to_string(&file).unwrap();

    // The new card: its own paths, so the backup's configuration names the new data directory.
    let new = TempDir::new().unwrap();
    first_config(&new);
    let old_data = old.path().join("data").display().to_string();
    let new_data = new.path().join("data").display().to_string();
    let moved = new.path().join("hotline.backup");
    std::fs::write(&moved, text.replace(&old_data, &new_data)).unwrap();
    let input = format!("{}\n", moved.display());
    let (outcome, screen) = run_on_terminal(&new, &environment("other", ""), &input);
    let outcome = outcome.unwrap();
    assert!(screen.contains("Restored 1 extensions"), "{screen}");
    assert!(
        screen.contains("Back, with their passwords: 1000 (Alice)."),
        "{screen}"
    );
    assert_eq!(outcome.config.domain, "pbx.example.org");
    assert_eq!(users_in(&new), users_in(&old));
    let certificate = |dir: &TempDir| std::fs::read(dir.path().join("data/tls/cert.pem")).unwrap();
    assert_eq!(certificate(&new), certificate(&old));
}

#[test]
fn a_restore_from_an_answers_file_stops_and_starts_the_service() {
    use std::os::unix::fs::PermissionsExt as _;
    let old = TempDir::new().unwrap();
    first_config(&old);
    let options = Options {
        config_path: old.path().join("etc/hotline.toml"),
        answers: Some((
            old.path().join("answers.toml"),
            Answers {
                domain: Some("pbx.example.org".into()),
                extensions: vec!["1000 Alice".into()],
                owner_password: Some(OWNER.into()),
                backup: Some(old.path().join("hotline.backup")),
                ..Answers::default()
            },
        )),
        service: false,
    };
    from_file(|dialog| run(&options, &environment("pbx", ""), dialog))
        .0
        .unwrap();

    // The new card's paths in the backup's configuration.
    let new = TempDir::new().unwrap();
    let file = new.path().join("hotline.backup");
    let text = std::fs::read_to_string(old.path().join("hotline.backup")).unwrap();
    let (old_data, new_data) = (old.path().join("data"), new.path().join("data"));
    let text = text.replace(&*old_data.to_string_lossy(), &new_data.to_string_lossy());
    std::fs::write(&file, text).unwrap();
    let log = new.path().join("systemctl.log");
    let systemctl = new.path().join("systemctl");
    std::fs::write(
        &systemctl,
        format!("#!/bin/sh\necho \"$*\" >> {}\nexit 0\n", log.display()),
    )
    .unwrap();
    std::fs::set_permissions(&systemctl, std::fs::Permissions::from_mode(0o755)).unwrap();
    let env = Environment {
        systemctl: Some(systemctl),
        ..environment("other", "")
    };
    let options = Options {
        config_path: new.path().join("etc/hotline.toml"),
        answers: Some((
            new.path().join("answers.toml"),
            Answers {
                restore: Some(file),
                ..Answers::default()
            },
        )),
        service: true,
    };
    let (outcome, screen) = from_file(|dialog| run(&options, &env, dialog));
    let outcome = outcome.unwrap();
    assert!(
        screen.contains("hotline is started (hotline.service)"),
        "{screen}"
    );
    assert_eq!(outcome.config.domain, "pbx.example.org");
    assert_eq!(users_in(&new), users_in(&old));
    let started = "stop hotline.service\nenable --now hotline.service\n";
    assert_eq!(std::fs::read_to_string(&log).unwrap(), started);

    // Again: the database holds extensions now, so the restore is refused, and the service is
    // started again all the same.
    let (outcome, _) = from_file(|dialog| run(&options, &env, dialog));
    let error = format!("{:#}", outcome.unwrap_err());
    assert!(error.contains("add --replace"), "{error}");
    assert_eq!(std::fs::read_to_string(&log).unwrap(), started.repeat(2));
}

#[test]
fn the_owner_password_is_asked_twice_without_showing_it() {
    let config = Config {
        domain: "pbx.example.org".into(),
        ..Config::default()
    };
    // Empty, too short, two that differ, then the same twice.
    let input = format!("\nshort\n{OWNER}\nanother long one\n{OWNER}\n{OWNER}\n");
    let (hash, screen) = on_terminal(&input, |dialog| {
        owner::ask_password(dialog, &config, false, None)
    });
    let hash = hash.unwrap().expect("a new password");
    assert!(
        hash.starts_with("$argon2id$v=19$m=16384,t=2,p=1$"),
        "stored as `hotline owner passwd` stores it: {hash}"
    );
    assert!(password::verify(&hash, OWNER));
    assert!(screen.contains("at https://pbx.example.org/,"), "{screen}");
    assert!(
        screen.contains("the owner's pages need a password: choose one of at least 10"),
        "{screen}"
    );
    assert!(
        screen.contains("the password is too short: use at least 10 characters"),
        "{screen}"
    );
    assert!(
        screen.contains("the two passwords differ: type the same one twice"),
        "{screen}"
    );
    let prompt = "Owner password (not shown as you type):";
    assert_eq!(screen.matches(prompt).count(), 4, "{screen}");
    assert_eq!(screen.matches("The same again:").count(), 2, "{screen}");
    assert!(!screen.contains(OWNER), "{screen}");

    // With a password there, Enter keeps it.
    let (kept, screen) = on_terminal("\n", |dialog| {
        owner::ask_password(dialog, &config, true, None)
    });
    assert_eq!(kept.unwrap(), None);
    assert!(screen.contains("an empty answer keeps it"), "{screen}");

    // Input that ends before the second answer is an error that says what to do.
    let (ended, _) = on_terminal(&format!("{OWNER}\n"), |dialog| {
        owner::ask_password(dialog, &config, false, None)
    });
    let error = ended.unwrap_err().to_string();
    assert!(error.contains("--answers FILE"), "{error}");
}

#[test]
fn the_owner_password_from_an_answers_file_is_checked_the_same_way() {
    let config = Config {
        domain: "pbx.example.org".into(),
        ..Config::default()
    };
    let (hash, screen) =
        from_file(|dialog| owner::ask_password(dialog, &config, false, Some(OWNER)));
    assert!(password::verify(&hash.unwrap().unwrap(), OWNER));
    assert!(
        screen.contains("Owner password: set, from the answers file"),
        "{screen}"
    );
    assert!(!screen.contains(OWNER), "{screen}");

    for given in [None, Some("")] {
        let (missing, _) = from_file(|dialog| owner::ask_password(dialog, &config, false, given));
        let error = missing.unwrap_err().to_string();
        assert!(
            error.starts_with("answers.toml: `owner_password`: the owner's pages need a password"),
            "{error}"
        );
    }
    let (short, _) = from_file(|dialog| owner::ask_password(dialog, &config, false, Some("short")));
    let error = short.unwrap_err().to_string();
    assert_eq!(
        error,
        "answers.toml: `owner_password`: the password is too short: use at least 10 characters"
    );
    let (kept, screen) = from_file(|dialog| owner::ask_password(dialog, &config, true, None));
    assert_eq!(kept.unwrap(), None);
    assert!(screen.contains("Owner password: kept"), "{screen}");
}

#[test]
fn the_firewall_opens_https_while_its_listener_runs() {
    let dir = TempDir::new().unwrap();
    let drop_in = dir.path().join(firewall::WEB_FILE);
    let mut config = public_config(&dir);
    assert!(!firewall::write_web(dir.path(), &config).unwrap());
    assert!(!drop_in.exists(), "the listener is off by default");
    config.web.enabled = true;
    config.web.https = ["[::]:443", "[2001:db8::1]:443", "[::]:8443"]
        .iter()
        .map(|address| address.parse().unwrap())
        .collect();
    assert!(firewall::write_web(dir.path(), &config).unwrap());
    let text = std::fs::read_to_string(&drop_in).unwrap();
    assert!(
        text.contains("\nadd rule inet filter input tcp dport { 443, 8443 } accept\n"),
        "{text}"
    );
    assert!(
        !firewall::write_web(dir.path(), &config).unwrap(),
        "unchanged"
    );
    config.web.enabled = false;
    assert!(firewall::write_web(dir.path(), &config).unwrap());
    assert!(!drop_in.exists());
    // ACME's tls-alpn-01 validation runs the listener too.
    config.acme.enabled = true;
    assert!(firewall::write_web(dir.path(), &config).unwrap());
    assert!(drop_in.exists());
}

#[test]
fn setup_turns_the_https_listener_on_and_opens_the_firewall() {
    let dir = TempDir::new().unwrap();
    first_config(&dir);
    let firewall_dir = dir.path().join("nftables.d");
    let env = Environment {
        firewall: Some(firewall_dir.clone()),
        ..environment("pbx.example.org", "")
    };
    let run_with = |answers: Answers| {
        let options = Options {
            config_path: dir.path().join("etc/hotline.toml"),
            answers: Some((dir.path().join("answers.toml"), answers)),
            service: false,
        };
        from_file(|dialog| run(&options, &env, dialog))
    };
    let (outcome, screen) = run_with(Answers {
        certificate: Some("self-signed".into()),
        owner_password: Some(OWNER.into()),
        ..Answers::default()
    });
    let config = outcome.unwrap().config;
    assert!(config.web.enabled);
    assert_eq!(config.web.https, ["[::]:443".parse().unwrap()]);
    let written = Config::load(Some(&dir.path().join("etc/hotline.toml"))).unwrap();
    assert!(written.web.enabled, "written into the file");
    assert!(
        screen.contains("Firewall: opened the HTTPS listener's port"),
        "{screen}"
    );
    assert!(
        screen.contains(
            "The owner's pages: https://pbx.example.org/ (the owner's password: the new one;"
        ),
        "{screen}"
    );
    assert!(firewall_dir.join(firewall::WEB_FILE).is_file());

    // An empty list of HTTPS addresses turns the listener off, and closes the port; the owner's
    // password is kept.
    let (outcome, screen) = run_with(Answers {
        certificate: Some("self-signed".into()),
        listen: ListenAnswers {
            https: Some(Vec::new()),
            ..ListenAnswers::default()
        },
        ..Answers::default()
    });
    assert!(!outcome.unwrap().config.web.enabled);
    assert!(
        screen.contains("Firewall: closed the HTTPS listener's port"),
        "{screen}"
    );
    assert!(screen.contains("Owner password: kept"), "{screen}");
    assert!(screen.contains("The owner's pages are off"), "{screen}");
    assert!(!firewall_dir.join(firewall::WEB_FILE).exists());
    assert!(password::verify(&owner_password_in(&dir), OWNER));
}
