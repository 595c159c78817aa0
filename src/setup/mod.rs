//! `hotline setup`: the first-boot wizard of the appliance.
//!
//! Six steps: the domain, a check of the IPv6 connectivity, the TLS certificate, the first
//! extensions, the owner's password, and a summary to copy to the phones. It writes the
//! configuration file (with the HTTPS listener on, for the owner's pages and the provisioning
//! links), creates the users, sets the owner's password, opens the firewall and enables the
//! service. Run again, it keeps the users and the owner's password and offers the values of the
//! existing configuration as defaults.
//!
//! The same steps read their answers from a person at a terminal ([`Dialog`] over any `BufRead`
//! and `Write`, so tests drive it from memory) or from an answers file ([`Answers`], TOML).

mod acme;
mod backup;
pub mod board;
pub mod file;
pub mod firewall;
mod ipv6;
mod owner;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{self, BufRead, Write};
use std::net::{Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, anyhow, bail};
use serde::Deserialize;

use crate::certificate::{self, TlsError, TlsIdentity};
use crate::config::{Config, ConfigError};
use crate::control::{self, ControlError, MAX_DISPLAY_NAME, Reply, Request, UserSummary};
use crate::core::user::Extension;
use crate::data_dir::DataDir;
use crate::sip::Host;
use crate::store::Store;
use crate::web::provision::password::PasswordKey;

pub use board::{SERVICE, give_to_data_dir_owner, open_store};
pub use file::{TEMPLATE, render, write as write_config};
pub use ipv6::{InterfaceAddress, Reach, parse_if_inet6};

/// Where the appliance keeps its configuration (the systemd unit reads it there).
pub const DEFAULT_CONFIG: &str = "/etc/hotline/hotline.toml";

/// Where the appliance keeps its database and certificate.
pub const DEFAULT_DATA_DIR: &str = "/var/lib/hotline";

/// Where `config/nftables.conf` includes drop-ins from.
pub const FIREWALL_DIR: &str = "/etc/nftables.d";

const STEPS: usize = 6;

/// Columns of the text, for the console of a board (80) less a margin.
const WIDTH: usize = 78;

/// What the wizard learns from the machine; tests make their own.
#[derive(Clone, Debug, Default)]
pub struct Environment {
    /// The kernel's hostname.
    pub hostname: Option<String>,
    /// This machine's IPv6 addresses.
    pub addresses: Vec<InterfaceAddress>,
    /// `systemctl`, when systemd runs this machine.
    pub systemctl: Option<PathBuf>,
    /// The DNS servers, for checking the AAAA records before asking an ACME CA.
    pub dns_servers: Vec<SocketAddr>,
    /// The directory of firewall drop-ins that `/etc/nftables.conf` includes, when it does.
    pub firewall: Option<PathBuf>,
    /// The home directory, where the wizard offers to write a backup.
    pub home: Option<PathBuf>,
}

impl Environment {
    /// Reads `/proc` (no libc or NSS: the binary is static) and looks for systemd.
    pub fn detect() -> Environment {
        let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|name| name.trim().to_owned())
            .filter(|name| !name.is_empty());
        let addresses = std::fs::read_to_string("/proc/net/if_inet6")
            .map(|text| parse_if_inet6(&text))
            .unwrap_or_default();
        // sd_booted(3): systemd runs this machine when this directory exists.
        let systemctl = match Path::new("/run/systemd/system").is_dir() {
            true => find_program("systemctl"),
            false => None,
        };
        let firewall = std::fs::read_to_string("/etc/nftables.conf")
            .is_ok_and(|text| text.contains(FIREWALL_DIR))
            .then(|| PathBuf::from(FIREWALL_DIR));
        Environment {
            hostname,
            addresses,
            systemctl,
            dns_servers: crate::web::dns::nameservers(),
            firewall,
            home: backup::home(),
        }
    }
}

fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// The answers file of `hotline setup --answers FILE`: every key is optional, and a missing key
/// takes the default a person would get by pressing Enter.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Answers {
    /// Step 1. Default: the existing configuration's, else the hostname or a global address.
    pub domain: Option<String>,
    /// Default: the existing configuration's, else [`DEFAULT_DATA_DIR`].
    pub data_dir: Option<PathBuf>,
    /// Listening addresses; each given list replaces the existing one (an empty list turns the
    /// transport off).
    pub listen: ListenAnswers,
    /// Step 3: a PEM certificate chain, `self-signed` or `new` (a new self-signed certificate).
    pub certificate: Option<String>,
    /// Step 3: the PEM private key of `certificate`.
    pub private_key: Option<String>,
    /// Step 4: `"1000 Alice"`: the extension and its display name. Extensions that exist already
    /// are kept as they are, so the same file can be given again.
    pub extensions: Vec<String>,
    /// Step 4, when the domain changed: new passwords for the existing extensions (default yes).
    pub renew_passwords: Option<bool>,
    /// Step 5: the owner's password for the owner's pages (at least 10 characters). Needed on a
    /// board without one; missing or empty keeps the one there is.
    pub owner_password: Option<String>,
    /// Enable and start hotline.service (default yes).
    pub service: Option<bool>,
    /// Restore this backup file (`hotline backup`) instead of asking the other questions.
    pub restore: Option<PathBuf>,
    /// The passphrase of an encrypted `restore` file is this file's first line.
    pub passphrase_file: Option<PathBuf>,
    /// Write a backup to this file at the end.
    pub backup: Option<PathBuf>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ListenAnswers {
    pub udp: Option<Vec<SocketAddr>>,
    pub tcp: Option<Vec<SocketAddr>>,
    pub tls: Option<Vec<SocketAddr>>,
    /// The HTTPS listener (`web.https`): an empty list turns it off, with the owner's pages.
    pub https: Option<Vec<SocketAddr>>,
}

impl Answers {
    pub fn load(path: &Path) -> anyhow::Result<Answers> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the answers file {}", path.display()))?;
        toml::from_str(&text).map_err(|error| anyhow!("{}: {error}", path.display()))
    }
}

/// How `hotline setup` was started.
pub struct Options {
    /// The configuration file to write (and whose values are the defaults, if it exists).
    pub config_path: PathBuf,
    /// The answers file and its contents; without one a person answers on the input.
    pub answers: Option<(PathBuf, Answers)>,
    /// Enable and (re)start [`SERVICE`]: false with `--no-service` or `service = false`.
    pub service: bool,
}

/// What the wizard did.
#[derive(Debug)]
pub struct Outcome {
    pub config: Config,
    /// Extensions created, or given new passwords, with the password (shown only once).
    pub passwords: Vec<(UserSummary, String)>,
    /// Extensions that were there before and keep their passwords.
    pub kept: Vec<UserSummary>,
    /// SHA-256 fingerprint of the TLS certificate, when TLS is on.
    pub fingerprint: Option<String>,
}

/// Questions and answers: a person at `input`, or the answers file.
pub struct Dialog<'a> {
    /// `None`: the answers come from the file named `source`.
    input: Option<&'a mut dyn BufRead>,
    output: &'a mut dyn Write,
    source: PathBuf,
    /// `input` is this process's standard input: secrets are read with its terminal's echo off.
    stdin: bool,
}

impl<'a> Dialog<'a> {
    /// A person answers each question on `input`; a bad answer is explained and asked again.
    pub fn terminal(input: &'a mut dyn BufRead, output: &'a mut dyn Write) -> Dialog<'a> {
        Dialog {
            input: Some(input),
            output,
            source: PathBuf::new(),
            stdin: false,
        }
    }

    /// Says that the input is this process's standard input, so that secrets such as the
    /// owner's password are read with the terminal's echo off.
    pub fn on_stdin(mut self) -> Dialog<'a> {
        self.stdin = true;
        self
    }

    /// The answers come from the file `source`; a bad answer is an error naming its key.
    pub fn answers_file(source: &Path, output: &'a mut dyn Write) -> Dialog<'a> {
        Dialog {
            input: None,
            output,
            source: source.to_owned(),
            stdin: false,
        }
    }

    fn interactive(&self) -> bool {
        self.input.is_some()
    }

    /// Writes `text` and a newline, wrapped for an 80-column terminal.
    fn say(&mut self, text: &str) -> io::Result<()> {
        writeln!(self.output, "{}", wrap(text, WIDTH))
    }

    /// Asks `prompt` until `parse` accepts the answer; an empty answer means `default`. From an
    /// answers file, `given` (the value of `key`) is the answer.
    fn ask<T>(
        &mut self,
        key: &str,
        prompt: &str,
        default: &str,
        given: Option<&str>,
        mut parse: impl FnMut(&str) -> Result<T, String>,
    ) -> anyhow::Result<T> {
        let Some(input) = self.input.as_mut() else {
            let text = given.unwrap_or(default).trim();
            writeln!(self.output, "{prompt}: {text}")?;
            return parse(text)
                .map_err(|message| anyhow!("{}: `{key}`: {message}", self.source.display()));
        };
        loop {
            match default.is_empty() {
                true => write!(self.output, "{prompt}: ")?,
                false => write!(self.output, "{prompt} [{default}]: ")?,
            }
            self.output.flush()?;
            let mut line = String::new();
            if input.read_line(&mut line)? == 0 {
                return Err(input_ended(prompt));
            }
            let text = match line.trim() {
                "" => default,
                text => text,
            };
            match parse(text) {
                Ok(value) => return Ok(value),
                Err(message) => {
                    let message = wrap(&format!("  {message}"), WIDTH);
                    writeln!(self.output, "{message}\n  Please try again.")?;
                }
            }
        }
    }

    /// Asks `prompt` for a secret on the terminal, with its echo off (see [`Dialog::on_stdin`]).
    /// The answer is taken as typed: spaces count.
    fn read_secret(&mut self, prompt: &str) -> anyhow::Result<String> {
        let Some(input) = self.input.as_mut() else {
            bail!("no terminal to ask {prompt:?} on");
        };
        let quiet = self
            .stdin
            .then(crate::terminal::EchoOff::on_stdin)
            .flatten();
        write!(self.output, "{prompt}: ")?;
        self.output.flush()?;
        let line = crate::terminal::read_line(&mut **input)?;
        if quiet.is_none() {
            // Nothing echoed the Enter that ended the line.
            writeln!(self.output)?;
        }
        line.ok_or_else(|| input_ended(prompt))
    }
}

fn input_ended(prompt: &str) -> anyhow::Error {
    anyhow!(
        "the input ended before the answer to {prompt:?}: run `hotline setup` on a terminal, or \
         give the answers in a file with `hotline setup --answers FILE`"
    )
}

/// Runs the wizard: the questions on `dialog`, then writes the configuration, creates the users,
/// starts the service and shows the summary.
pub fn run(
    options: &Options,
    environment: &Environment,
    dialog: &mut Dialog<'_>,
) -> anyhow::Result<Outcome> {
    let no_answers = Answers::default();
    let answers = options.answers.as_ref().map_or(&no_answers, |(_, a)| a);
    let existing = Existing::load(&options.config_path, environment)?;
    let mut config = existing.config.clone();
    config.data_dir = answers
        .data_dir
        .clone()
        .or_else(|| existing.data_dir.clone())
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
    let listen = &answers.listen;
    for (given, list) in [
        (&listen.udp, &mut config.listen.udp),
        (&listen.tcp, &mut config.listen.tcp),
        (&listen.tls, &mut config.listen.tls),
        (&listen.https, &mut config.web.https),
    ] {
        if let Some(given) = given {
            list.clone_from(given);
        }
    }
    // The owner's pages and the provisioning links the summary shows are on the HTTPS listener.
    config.web.enabled = !config.web.https.is_empty();
    check_all_but_domain(&config).with_context(|| match existing.present {
        true => format!(
            "{}: fix this, then run `hotline setup` again",
            options.config_path.display()
        ),
        false => "the answers file: fix this, then run `hotline setup` again".to_owned(),
    })?;

    dialog.say(&format!(
        "hotline setup: {STEPS} steps to a running phone exchange. Press Enter to take the value \
         in [brackets].\nConfiguration file: {}",
        options.config_path.display()
    ))?;
    if existing.present {
        dialog
            .say("It exists already: its values are the defaults, and the extensions are kept.")?;
    }
    let set_up = existing.domain.is_some();
    if let Some(outcome) = backup::offer_restore(options, environment, dialog, answers, set_up)? {
        if let Some(dir) = &environment.firewall {
            let systemctl = environment.systemctl.as_deref().filter(|_| options.service);
            open_firewall(dialog, dir, &outcome.config, systemctl)?;
        }
        return Ok(outcome);
    }

    heading(dialog, 1, "Domain")?;
    let suggested = existing
        .domain
        .clone()
        .or_else(|| suggest_domain(environment));
    config.domain = ask_domain(dialog, &config, suggested.as_deref(), answers)?;
    let domain_changed = existing
        .realm
        .as_ref()
        .is_some_and(|realm| !realm.eq_ignore_ascii_case(&config.domain));

    heading(dialog, 2, "IPv6 connectivity")?;
    check_ipv6(dialog, &environment.addresses, &config)?;

    heading(dialog, 3, "TLS certificate")?;
    let identity = match config.listen.tls.is_empty() {
        true => {
            dialog.say("No TLS listener is configured (`listen.tls`): nothing to do.")?;
            None
        }
        false => Some(ask_tls(
            dialog,
            &mut config,
            domain_changed,
            answers,
            environment,
        )?),
    };

    heading(dialog, 4, "Extensions")?;
    let users = existing_users(&config.data_dir)?;
    let new = ask_extensions(dialog, &users, answers)?;
    let stale: Vec<UserSummary> = users
        .iter()
        .filter(|user| match &user.realm {
            Some(realm) => !realm.eq_ignore_ascii_case(&config.domain),
            None => domain_changed,
        })
        .map(|user| user.summary.clone())
        .collect();
    let renew = match stale.is_empty() {
        true => false,
        false => ask_renew(dialog, &stale, answers)?,
    };

    heading(dialog, 5, "The owner's pages")?;
    let owner_password = owner::ask_password(
        dialog,
        &config,
        owner::has_password(&config.data_dir)?,
        answers.owner_password.as_deref(),
    )?;

    heading(dialog, 6, "Summary")?;
    let plan = Plan {
        config,
        table: existing.table,
        new,
        renew: if renew { stale } else { Vec::new() },
        kept: users.into_iter().map(|user| user.summary).collect(),
        owner_password,
        domain_changed,
        fingerprint: identity.map(|identity| identity.fingerprint_sha256),
    };
    let outcome = finish(options, environment, dialog, plan)?;
    backup::offer_backup(options, environment, dialog, answers, &outcome.config)?;
    Ok(outcome)
}

fn heading(dialog: &mut Dialog<'_>, step: usize, title: &str) -> io::Result<()> {
    dialog.say(&format!("\n── Step {step} of {STEPS}: {title} ──"))
}

/// Breaks the lines of `text` longer than `width` at spaces; a continuation keeps the line's
/// indentation. A word longer than a line stays whole.
pub fn wrap(text: &str, width: usize) -> String {
    let mut wrapped = String::with_capacity(text.len() + text.len() / width);
    for (index, line) in text.split('\n').enumerate() {
        if index > 0 {
            wrapped.push('\n');
        }
        let body = line.trim_start();
        let indent = &line[..line.len() - body.len()];
        let mut column = 0;
        for (position, word) in body.split(' ').enumerate() {
            let length = word.chars().count();
            if position == 0 {
                wrapped.push_str(indent);
                column = indent.len();
            } else if column + 1 + length > width && column > indent.len() {
                wrapped.push('\n');
                wrapped.push_str(indent);
                column = indent.len();
            } else {
                wrapped.push(' ');
                column += 1;
            }
            wrapped.push_str(word);
            column += length;
        }
    }
    wrapped
}

/// A SHA-256 fingerprint (32 hex pairs) as two lines of 16 pairs, each indented by `indent`.
fn fingerprint_lines(fingerprint: &str, indent: &str) -> String {
    match fingerprint
        .char_indices()
        .filter(|(_, c)| *c == ':')
        .nth(15)
    {
        Some((middle, _)) => format!(
            "{indent}{}\n{indent}{}",
            &fingerprint[..=middle],
            &fingerprint[middle + 1..]
        ),
        None => format!("{indent}{fingerprint}"),
    }
}

/// The configuration file as it is before the wizard.
struct Existing {
    present: bool,
    /// The file as a table, so that keys the wizard does not ask about are written back.
    table: toml::Table,
    config: Config,
    /// The domain set in the file, if any.
    domain: Option<String>,
    /// The Digest realm of the existing users: the file's domain, or the hostname it stood for.
    realm: Option<String>,
    data_dir: Option<PathBuf>,
}

impl Existing {
    fn load(path: &Path, environment: &Environment) -> anyhow::Result<Existing> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                return Ok(Existing {
                    present: false,
                    table: toml::Table::new(),
                    config: Config::default(),
                    domain: None,
                    realm: None,
                    data_dir: None,
                });
            }
            Err(error) => {
                return Err(error).with_context(|| {
                    format!("cannot read the configuration file {}", path.display())
                });
            }
        };
        let unreadable = |message: String| {
            anyhow!(
                "{}: {message}\nFix the file, or move it away to start from the defaults, then \
                 run `hotline setup` again.",
                path.display()
            )
        };
        let config = Config::parse(&text).map_err(unreadable)?;
        let table: toml::Table = toml::from_str(&text).map_err(|e| unreadable(e.to_string()))?;
        let domain = Some(config.domain.clone()).filter(|d| !d.is_empty());
        let realm = domain.clone().or_else(|| environment.hostname.clone());
        let data_dir = table
            .contains_key("data_dir")
            .then(|| config.data_dir.clone());
        Ok(Existing {
            present: true,
            table,
            config,
            domain,
            realm,
            data_dir,
        })
    }
}

/// Checks everything but the domain, which the wizard asks for.
fn check_all_but_domain(config: &Config) -> Result<(), ConfigError> {
    let mut probe = config.clone();
    probe.domain = "example.org".to_owned();
    probe.validate()
}

// Step 1 ---------------------------------------------------------------------------------------

/// The hostname when it is a DNS name with dots, which phones elsewhere can look up; else the
/// board's stable global IPv6 address; else the bare hostname, which works where the local network
/// resolves it.
pub fn suggest_domain(environment: &Environment) -> Option<String> {
    let hostname = environment
        .hostname
        .as_deref()
        .filter(|name| matches!(Host::parse(name), Some(Host::Name(_))));
    if let Some(name) = hostname.filter(|name| name.trim_end_matches('.').contains('.')) {
        return Some(name.to_owned());
    }
    ipv6::stable_global(&environment.addresses)
        .map(|address| format!("[{address}]"))
        .or_else(|| hostname.map(str::to_owned))
}

fn ask_domain(
    dialog: &mut Dialog<'_>,
    config: &Config,
    suggested: Option<&str>,
    answers: &Answers,
) -> anyhow::Result<String> {
    dialog.say(
        "Phones register as <extension>@<domain> and find the server by the domain. Use a DNS \
         name that points to this board's IPv6 address, or the address itself.\nChanging the \
         domain later means new passwords for every extension.",
    )?;
    dialog.ask(
        "domain",
        "Domain",
        suggested.unwrap_or(""),
        answers.domain.as_deref(),
        |text| parse_domain(config, text),
    )
}

/// A domain as the configuration takes it: a host name, or an IPv6 address (written `[…]`).
pub fn parse_domain(config: &Config, text: &str) -> Result<String, String> {
    if text.is_empty() {
        return Err("Please give a domain, such as `pbx.example.org` or `[2001:db8::1]`.".into());
    }
    let domain = match text.parse::<Ipv6Addr>() {
        Ok(address) => format!("[{address}]"),
        Err(_) => text.to_owned(),
    };
    if let Some(Host::Ip(address)) = Host::parse(&domain)
        && address.is_ipv4()
    {
        return Err(format!(
            "{text} is an IPv4 address, but hotline speaks IPv6 only: give a DNS name or this \
             board's IPv6 address"
        ));
    }
    let mut probe = config.clone();
    probe.domain = domain.clone();
    probe.validate().map_err(|error| error.to_string())?;
    Ok(domain)
}

// Step 2 ---------------------------------------------------------------------------------------

/// What the connectivity check found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Connectivity {
    /// A global address: phones anywhere can reach the board (if the router lets them).
    Global,
    /// Unique local addresses only: phones of this network only.
    LocalOnly,
    /// No usable address beyond link-local and loopback.
    None,
}

/// Tells what the board's addresses mean for phones, in plain words; never asks anything.
pub fn check_ipv6(
    dialog: &mut Dialog<'_>,
    addresses: &[InterfaceAddress],
    config: &Config,
) -> anyhow::Result<Connectivity> {
    let usable: Vec<&InterfaceAddress> = addresses.iter().filter(|a| a.usable()).collect();
    let of = |reach| -> Vec<&InterfaceAddress> {
        usable
            .iter()
            .copied()
            .filter(|a| a.reach() == reach)
            .collect()
    };
    let (global, local) = (of(Reach::Global), of(Reach::UniqueLocal));
    let ports = listening_ports(config);
    for address in &global {
        dialog.say(&format!(
            "  {address}: global, reachable from the internet{}",
            if address.stable() {
                ""
            } else {
                " (a temporary address)"
            }
        ))?;
    }
    for address in &local {
        dialog.say(&format!(
            "  {address}: unique local address (fc00::/7), for phones on your network only"
        ))?;
    }
    let connectivity = if !global.is_empty() {
        dialog.say(&format!(
            "Good: phones outside your network can reach this board, as long as your router's \
             firewall lets in {ports}."
        ))?;
        Connectivity::Global
    } else {
        let what = match local.is_empty() {
            true => {
                "No IPv6 address beyond the link-local one (fe80::/10): friends outside \
                     your network cannot reach it, and phones on your network can hardly use it."
            }
            false => {
                "Only unique local addresses: fine for phones on your network, but not \
                      reachable from outside it, so friends outside your network cannot reach \
                      it."
            }
        };
        dialog.say(&format!(
            "{what}\nTo fix that, turn on IPv6 in your router and check that it gives your \
             network a prefix from your provider (look for \"prefix delegation\" or \
             \"DHCPv6-PD\", and \"router advertisements\"), then run `hotline setup` again. \
             Setup goes on meanwhile."
        ))?;
        match local.is_empty() {
            true => Connectivity::None,
            false => Connectivity::LocalOnly,
        }
    };
    if let Some(Host::Ip(std::net::IpAddr::V6(domain))) = Host::parse(&config.domain)
        && !addresses.iter().any(|a| a.address == domain)
    {
        dialog.say(&format!(
            "Note: the domain {} is not an address of this board: phones will look for the \
             server there.",
            config.domain
        ))?;
    }
    Ok(connectivity)
}

/// `UDP and TCP port 5060 and TLS port 5061`, or what the configuration says.
fn listening_ports(config: &Config) -> String {
    let ports = |list: &[SocketAddr]| {
        let mut ports: Vec<u16> = list.iter().map(SocketAddr::port).collect();
        ports.dedup();
        ports
            .iter()
            .map(u16::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let l = &config.listen;
    let mut parts = Vec::new();
    for (name, list) in [("UDP", &l.udp), ("TCP", &l.tcp), ("TLS", &l.tls)] {
        if !list.is_empty() {
            parts.push(format!("{name} port {}", ports(list)));
        }
    }
    parts.join(" and ")
}

// Step 3 ---------------------------------------------------------------------------------------

/// The certificate: from an ACME CA, generated in `<data_dir>/tls/` or PEM files from a CA.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TlsChoice {
    /// Obtained and renewed by hotline from the ACME CA of `acme.directory` (Let's Encrypt).
    Acme,
    /// The self-signed certificate in the data directory, made now if there is none; `renew`
    /// replaces an existing one (after a change of domain, say).
    SelfSigned {
        renew: bool,
    },
    Files {
        certificate: PathBuf,
        key: PathBuf,
    },
}

/// `self-signed`, `new` or the path of a certificate file.
pub fn parse_tls_choice(text: &str) -> Result<TlsChoice, String> {
    match text {
        "" => Err("Please give `lets-encrypt`, a file name, `self-signed` or `new`.".to_owned()),
        "lets-encrypt" | "letsencrypt" | "acme" => Ok(TlsChoice::Acme),
        "self-signed" | "selfsigned" => Ok(TlsChoice::SelfSigned { renew: false }),
        "new" => Ok(TlsChoice::SelfSigned { renew: true }),
        path => {
            let certificate = PathBuf::from(path);
            match certificate.is_file() {
                true => Ok(TlsChoice::Files {
                    certificate,
                    key: PathBuf::new(),
                }),
                false => Err(format!(
                    "{path} is not a file: give `lets-encrypt`, the path of a PEM certificate \
                     chain (such as /etc/letsencrypt/live/pbx.example.org/fullchain.pem), \
                     `self-signed` or `new`"
                )),
            }
        }
    }
}

fn ask_tls(
    dialog: &mut Dialog<'_>,
    config: &mut Config,
    domain_changed: bool,
    answers: &Answers,
    environment: &Environment,
) -> anyhow::Result<TlsIdentity> {
    let generated = DataDir::new(&config.data_dir).certificate();
    let existing_files = config
        .tls
        .certificate
        .clone()
        .zip(config.tls.private_key.clone());
    dialog.say(
        "Phones check the server's identity with its certificate. With `lets-encrypt`, \
         hotline obtains one that every phone trusts from Let's Encrypt (or the ACME CA of \
         `acme.directory`) and renews it itself; the domain must be a public DNS name whose \
         AAAA record names this board. Or hotline makes a `self-signed` one (each phone asks \
         once whether to trust it), or uses the PEM files of a certificate you have.",
    )?;
    let default = match &existing_files {
        Some((certificate, _)) => certificate.display().to_string(),
        None if config.acme.enabled || acme::public_name(&config.domain) => {
            "lets-encrypt".to_owned()
        }
        None if domain_changed && generated.is_file() => {
            dialog.say(&format!(
                "The self-signed certificate {} was made for the previous domain: `new` (the \
                 default) makes one for {}; phones will ask to trust it again.",
                generated.display(),
                config.domain
            ))?;
            "new".to_owned()
        }
        None => "self-signed".to_owned(),
    };
    loop {
        let choice = dialog.ask(
            "certificate",
            "Certificate: `lets-encrypt`, PEM file, `self-signed` or `new`",
            &default,
            answers.certificate.as_deref(),
            parse_tls_choice,
        )?;
        let choice = match choice {
            TlsChoice::Files { certificate, .. } => {
                let default_key = existing_files
                    .as_ref()
                    .filter(|(c, _)| *c == certificate)
                    .map(|(_, key)| key.display().to_string())
                    .unwrap_or_default();
                let key = dialog.ask(
                    "private_key",
                    "Its private key: PEM file",
                    &default_key,
                    answers.private_key.as_deref(),
                    |text| match text {
                        "" => Err("Please give the path of the certificate's private key (PEM).")?,
                        path if Path::new(path).is_file() => Ok(PathBuf::from(path)),
                        path => Err(format!("{path} is not a file: give the path of a PEM key")),
                    },
                )?;
                TlsChoice::Files { certificate, key }
            }
            TlsChoice::Acme => {
                let identity = acme::obtain(dialog, config, environment, domain_changed)?;
                describe_certificate(dialog, &identity)?;
                return Ok(identity);
            }
            choice => choice,
        };
        config.acme.enabled = false;
        match use_certificate(config, &choice) {
            Ok(identity) => {
                describe_certificate(dialog, &identity)?;
                return Ok(identity);
            }
            Err(error) if dialog.interactive() && matches!(choice, TlsChoice::Files { .. }) => {
                dialog.say(&format!("  {error}\n  Please try again."))?;
            }
            Err(error) => {
                return Err(match choice {
                    TlsChoice::Files { .. } => {
                        anyhow!("{}: `certificate`: {error}", dialog.source.display())
                    }
                    TlsChoice::SelfSigned { .. } | TlsChoice::Acme => error.into(),
                });
            }
        }
    }
}

/// Loads the chosen files, or makes the self-signed certificate right away; records the choice
/// in `config`.
fn use_certificate(config: &mut Config, choice: &TlsChoice) -> Result<TlsIdentity, TlsError> {
    let data_dir = DataDir::new(&config.data_dir);
    match choice {
        TlsChoice::Files { certificate, key } => {
            let identity =
                certificate::load_or_generate(&data_dir, &config.domain, Some((certificate, key)))?;
            config.tls.certificate = Some(certificate.clone());
            config.tls.private_key = Some(key.clone());
            Ok(identity)
        }
        TlsChoice::SelfSigned { .. } | TlsChoice::Acme => {
            if *choice == (TlsChoice::SelfSigned { renew: true }) {
                for path in [data_dir.certificate(), data_dir.private_key()] {
                    let mut old = path.clone().into_os_string();
                    old.push(".old");
                    match std::fs::rename(&path, old) {
                        Err(error) if error.kind() != io::ErrorKind::NotFound => {
                            return Err(TlsError::Write {
                                path,
                                source: error,
                            });
                        }
                        _ => {}
                    }
                }
            }
            config.tls.certificate = None;
            config.tls.private_key = None;
            certificate::load_or_generate(&data_dir, &config.domain, None)
        }
    }
}

fn describe_certificate(dialog: &mut Dialog<'_>, identity: &TlsIdentity) -> io::Result<()> {
    let what = match identity.generated {
        true => "Made a self-signed certificate",
        false => "Using the certificate",
    };
    dialog.say(&format!(
        "{what} {}\n  SHA-256 fingerprint:\n{}",
        identity.certificate.display(),
        fingerprint_lines(&identity.fingerprint_sha256, "  ")
    ))
}

// Step 4 ---------------------------------------------------------------------------------------

/// An extension to create.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewExtension {
    pub extension: String,
    pub display_name: String,
}

/// A user already in the database; the realm when the database itself was read.
struct ExistingUser {
    summary: UserSummary,
    realm: Option<String>,
}

/// The users there are: from the running server, or from the database file if there is one.
fn existing_users(data_dir: &Path) -> anyhow::Result<Vec<ExistingUser>> {
    let data_dir = DataDir::new(data_dir);
    match control::call(&data_dir.control_socket(), &Request::ListUsers) {
        Ok(Reply::Users { users }) => {
            return Ok(users
                .into_iter()
                .map(|summary| ExistingUser {
                    summary,
                    realm: None,
                })
                .collect());
        }
        Ok(other) => bail!("the hotline server answered {other:?} to a list of users"),
        Err(ControlError::NoServer { .. }) => {}
        Err(error) => return Err(error.into()),
    }
    let database = data_dir.database();
    if !database.exists() {
        return Ok(Vec::new());
    }
    let store = Store::open(&database)?;
    Ok(store
        .users()?
        .iter()
        .map(|user| ExistingUser {
            summary: UserSummary::from(user),
            realm: Some(user.realm.clone()),
        })
        .collect())
}

/// `1000 Alice Liddell`: the extension, then the display name (may be empty). `taken` maps the
/// extensions already there, or chosen, to their names.
pub fn parse_extension(
    text: &str,
    taken: &BTreeMap<String, String>,
) -> Result<NewExtension, String> {
    let (number, name) = text
        .split_once(char::is_whitespace)
        .map_or((text, ""), |(number, name)| (number, name.trim()));
    let extension = Extension::parse(number)
        .map_err(|error| format!("{error}, then the name: `1000 Alice`"))?;
    if let Some(owner) = taken.get(extension.as_str()) {
        let owner = match owner.is_empty() {
            true => String::new(),
            false => format!(" ({owner})"),
        };
        return Err(format!(
            "extension {extension} is taken{owner}: choose another number"
        ));
    }
    if name.chars().count() > MAX_DISPLAY_NAME || name.chars().any(char::is_control) {
        return Err(format!(
            "the name is too long: use at most {MAX_DISPLAY_NAME} characters"
        ));
    }
    Ok(NewExtension {
        extension: extension.to_string(),
        display_name: name.to_owned(),
    })
}

fn ask_extensions(
    dialog: &mut Dialog<'_>,
    users: &[ExistingUser],
    answers: &Answers,
) -> anyhow::Result<Vec<NewExtension>> {
    let mut taken: BTreeMap<String, String> = users
        .iter()
        .map(|u| (u.summary.extension.clone(), u.summary.display_name.clone()))
        .collect();
    if !users.is_empty() {
        let list: Vec<String> = users.iter().map(|u| describe(&u.summary)).collect();
        dialog.say(&format!(
            "Extensions kept as they are: {}.",
            list.join(", ")
        ))?;
    }
    dialog.say(
        "Each phone registers with an extension: its number and the name shown to the people it \
         calls, such as `1000 Alice`. Each gets a strong random password, shown at the end.",
    )?;
    let mut new = Vec::new();
    if !dialog.interactive() {
        for (index, line) in answers.extensions.iter().enumerate() {
            let number = line.split_whitespace().next().unwrap_or_default();
            if users.iter().any(|u| u.summary.extension == number) {
                dialog.say(&format!("Extension {number} exists: kept as it is."))?;
                continue;
            }
            let key = format!("extensions[{index}]");
            let extension = dialog.ask(&key, "Extension", "", Some(line), |text| {
                parse_extension(text, &taken)
            })?;
            taken.insert(extension.extension.clone(), extension.display_name.clone());
            new.push(extension);
        }
        return Ok(new);
    }
    dialog.say("An empty line ends the list.")?;
    loop {
        let extension = dialog.ask(
            "extensions",
            "Extension and name",
            "",
            None,
            |text| match text {
                "" => Ok(None),
                text => parse_extension(text, &taken).map(Some),
            },
        )?;
        let Some(extension) = extension else {
            return Ok(new);
        };
        taken.insert(extension.extension.clone(), extension.display_name.clone());
        new.push(extension);
    }
}

pub fn parse_yes_no(text: &str) -> Result<bool, String> {
    match text.to_ascii_lowercase().as_str() {
        "y" | "yes" => Ok(true),
        "n" | "no" => Ok(false),
        _ => Err(format!("{text:?}: please answer yes or no")),
    }
}

fn ask_renew(
    dialog: &mut Dialog<'_>,
    stale: &[UserSummary],
    answers: &Answers,
) -> anyhow::Result<bool> {
    let list: Vec<String> = stale.iter().map(describe).collect();
    dialog.say(&format!(
        "The domain changed, and passwords are tied to the domain: the passwords of {} no \
         longer work. New passwords let those phones register again.",
        list.join(", ")
    ))?;
    let given = answers
        .renew_passwords
        .map(|yes| if yes { "yes" } else { "no" });
    dialog.ask(
        "renew_passwords",
        "New passwords for them now? (yes/no)",
        "yes",
        given,
        parse_yes_no,
    )
}

// Step 6 ---------------------------------------------------------------------------------------

/// Everything decided: what [`finish`] carries out.
struct Plan {
    config: Config,
    table: toml::Table,
    new: Vec<NewExtension>,
    renew: Vec<UserSummary>,
    kept: Vec<UserSummary>,
    /// The owner's new password hash; `None` keeps the one there is.
    owner_password: Option<String>,
    domain_changed: bool,
    fingerprint: Option<String>,
}

fn finish(
    options: &Options,
    environment: &Environment,
    dialog: &mut Dialog<'_>,
    plan: Plan,
) -> anyhow::Result<Outcome> {
    let systemctl = environment.systemctl.as_deref().filter(|_| options.service);
    // The running service is stopped while the users are written, so that their passwords are
    // made for the new domain and the database is free; `enable --now` starts it again.
    let was_running = match systemctl {
        Some(systemctl) => {
            let active = Command::new(systemctl)
                .args(["is-active", "--quiet", SERVICE])
                .status()
                .is_ok_and(|status| status.success());
            if active {
                systemctl_run(systemctl, &["stop", SERVICE])?;
            }
            active
        }
        None => false,
    };
    let result = write_and_create(options, dialog, &plan).and_then(|written| {
        give_to_data_dir_owner(&written.config.data_dir)?;
        Ok(written)
    });
    if let (Ok(written), Some(dir)) = (&result, &environment.firewall) {
        open_firewall(
            dialog,
            dir,
            &written.config,
            environment.systemctl.as_deref(),
        )?;
    }
    let started =
        systemctl.map(|systemctl| systemctl_run(systemctl, &["enable", "--now", SERVICE]));
    let Written {
        config,
        passwords,
        links,
        server_running,
    } = result?;

    let mut text = String::new();
    match (systemctl, started) {
        (Some(_), Some(Ok(()))) => {
            let what = if was_running { "restarted" } else { "started" };
            let _ = writeln!(
                text,
                "hotline is {what} ({SERVICE}), and starts at every boot."
            );
            if options.config_path != Path::new(DEFAULT_CONFIG) {
                let _ = writeln!(
                    text,
                    "Note: {SERVICE} reads {DEFAULT_CONFIG}, not {}.",
                    options.config_path.display()
                );
            }
        }
        (Some(_), Some(Err(error))) => {
            let _ = writeln!(
                text,
                "Could not start {SERVICE}: {error:#}\nSee `systemctl status {SERVICE}` and \
                 `journalctl -u {SERVICE}`, or start hotline by hand: {}",
                serve_command(options)
            );
        }
        _ if !options.service => {
            let _ = writeln!(
                text,
                "The service was left alone, as asked. {}",
                start_hint(options, server_running)
            );
        }
        _ => {
            let _ = writeln!(
                text,
                "systemd does not run this machine, so setup cannot start the service. {}",
                start_hint(options, server_running)
            );
        }
    }
    if let Some(fingerprint) = &plan.fingerprint {
        let _ = writeln!(
            text,
            "\nTLS certificate SHA-256 fingerprint (a phone that shows one: check it is this):\n{}",
            fingerprint_lines(fingerprint, "  ")
        );
    }
    let _ = match (config.web.enabled, &plan.owner_password) {
        (true, password) => writeln!(
            text,
            "\nThe owner's pages: {}/ (the owner's password: {}; `hotline owner passwd` \
             changes it).",
            crate::web::provision::link::base(&config),
            if password.is_some() {
                "the new one"
            } else {
                "kept"
            }
        ),
        (false, _) => writeln!(
            text,
            "\nThe owner's pages are off: `web.https` lists no address in the configuration."
        ),
    };
    let renewed: Vec<&str> = plan.renew.iter().map(|u| u.extension.as_str()).collect();
    let kept: Vec<String> = plan
        .kept
        .iter()
        .filter(|user| !renewed.contains(&user.extension.as_str()))
        .map(describe)
        .collect();
    if !kept.is_empty() {
        let _ = writeln!(text, "\nKept, with their passwords: {}.", kept.join(", "));
    }
    for (user, password) in &passwords {
        let _ = writeln!(text, "\nExtension {}: phone settings", describe(user));
        text.push_str(&phone_settings(&config, &user.extension, password));
    }
    if passwords.is_empty() {
        let _ = writeln!(
            text,
            "\nNo new extensions. Add one with `hotline user add 1000 --name \"Alice\"`."
        );
    } else {
        let _ = writeln!(
            text,
            "\nCopy these settings to the phones now: the passwords are shown only this once, \
             and only their hashes are stored. `hotline user passwd <extension>` makes a new \
             one, `hotline user add` adds an extension."
        );
    }
    write!(dialog.output, "{}", wrap(&text, WIDTH))?;
    // Not wrapped: a QR code's lines are drawn with spaces.
    for (user, token) in &links {
        write!(
            dialog.output,
            "\n{}",
            provisioning_link(&config, user, token)
        )?;
    }
    dialog.output.flush()?;
    Ok(Outcome {
        config,
        passwords,
        kept: plan.kept,
        fingerprint: plan.fingerprint,
    })
}

/// What [`write_and_create`] did.
struct Written {
    /// The configuration as written.
    config: Config,
    /// The new passwords.
    passwords: Vec<(UserSummary, String)>,
    /// The new provisioning links' tokens.
    links: Vec<(UserSummary, String)>,
    /// A server answered on the control socket (and keeps running).
    server_running: bool,
}

/// Writes the configuration file and creates the users.
fn write_and_create(
    options: &Options,
    dialog: &mut Dialog<'_>,
    plan: &Plan,
) -> anyhow::Result<Written> {
    let config = &plan.config;
    let socket = DataDir::new(&config.data_dir).control_socket();
    let server_running = control::call(&socket, &Request::ListUsers).is_ok();
    if server_running && plan.domain_changed {
        bail!(
            "a hotline server is running with the previous domain, and passwords made through it \
             would be for that domain: stop it (`systemctl stop {SERVICE}`, or end `hotline \
             serve`), then run `hotline setup` again"
        );
    }

    let mut table = plan.table.clone();
    set_values(&mut table, config);
    let text = render(&table).context("cannot write the configuration as TOML")?;
    let written = Config::parse(&text).map_err(|e| anyhow!("the new configuration: {e}"))?;
    written.validate()?;
    let backup = file::write(&options.config_path, &text).with_context(|| {
        format!(
            "cannot write the configuration file {}: run `hotline setup` as root, or choose \
             another file with `hotline --config FILE setup`",
            options.config_path.display()
        )
    })?;
    dialog.say(&format!("Wrote {}.", options.config_path.display()))?;
    if let Some(backup) = backup {
        dialog.say(&format!(
            "The previous file is kept as {}.",
            backup.display()
        ))?;
    }

    let (mut passwords, mut links) = (Vec::new(), Vec::new());
    // Renewed extensions get a new link too: the old one names the old domain.
    let requests = plan
        .renew
        .iter()
        .flat_map(|user| {
            let extension = user.extension.clone();
            [
                Request::ResetPassword {
                    extension: extension.clone(),
                },
                Request::ProvisionUser {
                    extension,
                    revoke: false,
                },
            ]
        })
        .chain(plan.new.iter().map(|new| Request::AddUser {
            extension: new.extension.clone(),
            display_name: new.display_name.clone(),
        }));
    for request in requests {
        match manage(&written.data_dir, written.realm(), &request)? {
            Reply::Created {
                user,
                password,
                token,
            } => {
                links.push((user.clone(), token));
                passwords.push((user, password));
            }
            Reply::PasswordReset { user, password } => passwords.push((user, password)),
            Reply::Provisioned { user, token, .. } => links.push((user, token)),
            Reply::Failed { message } => bail!("{message}"),
            other => bail!("unexpected reply to {request:?}: {other:?}"),
        }
    }
    if let Some(hash) = &plan.owner_password {
        let request = Request::SetOwnerPassword { hash: hash.clone() };
        match manage(&written.data_dir, written.realm(), &request)? {
            Reply::OwnerPasswordSet => {}
            Reply::Failed { message } => bail!("cannot set the owner's password: {message}"),
            other => bail!("unexpected reply to setting the owner's password: {other:?}"),
        }
    }
    Ok(Written {
        config: written,
        passwords,
        links,
        server_running,
    })
}

/// Puts the wizard's values into the table of the configuration file; keeps every other key.
fn set_values(table: &mut toml::Table, config: &Config) {
    use toml::Value;
    let addresses =
        |list: &[SocketAddr]| Value::Array(list.iter().map(|a| a.to_string().into()).collect());
    let path = |path: &Path| Value::String(path.display().to_string());
    table.insert("domain".into(), config.domain.clone().into());
    table.insert("data_dir".into(), path(&config.data_dir));
    let mut section = |name: &str| {
        let entry = table
            .entry(name)
            .or_insert_with(|| Value::Table(toml::Table::new()));
        if !entry.is_table() {
            *entry = Value::Table(toml::Table::new());
        }
        entry.as_table_mut().expect("a table").clone()
    };
    let mut listen = section("listen");
    listen.insert("udp".into(), addresses(&config.listen.udp));
    listen.insert("tcp".into(), addresses(&config.listen.tcp));
    listen.insert("tls".into(), addresses(&config.listen.tls));
    let mut tls = section("tls");
    match (&config.tls.certificate, &config.tls.private_key) {
        (Some(certificate), Some(key)) => {
            tls.insert("certificate".into(), path(certificate));
            tls.insert("private_key".into(), path(key));
        }
        _ => {
            tls.remove("certificate");
            tls.remove("private_key");
        }
    }
    let mut acme = section("acme");
    acme.insert("enabled".into(), config.acme.enabled.into());
    let mut web = section("web");
    web.insert("enabled".into(), config.web.enabled.into());
    web.insert("https".into(), addresses(&config.web.https));
    table.insert("listen".into(), Value::Table(listen));
    table.insert("tls".into(), Value::Table(tls));
    table.insert("acme".into(), Value::Table(acme));
    table.insert("web".into(), Value::Table(web));
}

/// Opens the HTTPS listener's port in the firewall while it runs and the ACME validation port
/// while ACME is on, closes them otherwise, and reloads the firewall when that changed something.
fn open_firewall(
    dialog: &mut Dialog<'_>,
    dir: &Path,
    config: &Config,
    systemctl: Option<&Path>,
) -> anyhow::Result<()> {
    let cannot = || format!("cannot write the firewall drop-ins in {}", dir.display());
    let https = firewall::write_web(dir, config).with_context(cannot)?;
    let validation = acme::write_firewall(dir, config).with_context(cannot)?;
    for (changed, open, what, file) in [
        (
            https,
            firewall::https_runs(config),
            "the HTTPS listener's port",
            firewall::WEB_FILE,
        ),
        (
            validation,
            config.acme.enabled,
            "the ACME validation port",
            acme::FIREWALL_FILE,
        ),
    ] {
        if changed {
            let verb = if open { "opened" } else { "closed" };
            let path = dir.join(file);
            dialog.say(&format!("Firewall: {verb} {what} ({}).", path.display()))?;
        }
    }
    if !(https || validation) {
        return Ok(());
    }
    if let Some(systemctl) = systemctl {
        systemctl_run(systemctl, &["try-reload-or-restart", "nftables.service"])?;
    }
    Ok(())
}

fn systemctl_run(systemctl: &Path, args: &[&str]) -> anyhow::Result<()> {
    let output = Command::new(systemctl)
        .args(args)
        .output()
        .with_context(|| format!("cannot run {}", systemctl.display()))?;
    if output.status.success() {
        return Ok(());
    }
    bail!(
        "`systemctl {}` failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr).trim()
    )
}

fn serve_command(options: &Options) -> String {
    format!("hotline --config {} serve", options.config_path.display())
}

fn start_hint(options: &Options, server_running: bool) -> String {
    match server_running {
        true => format!(
            "A hotline server is running: restart it to use the new configuration \
             (`systemctl restart {SERVICE}`, or end it and run `{}`).",
            serve_command(options)
        ),
        false => format!(
            "Start hotline with `systemctl enable --now {SERVICE}`, or by hand: `{}`.",
            serve_command(options)
        ),
    }
}

// Shared with `hotline user` ---------------------------------------------------------------------

/// Asks the running server over its control socket, or opens the database when no server runs:
/// what `hotline user …` and `hotline ban …` do.
pub fn manage(data_dir: &Path, realm: &str, request: &Request) -> anyhow::Result<Reply> {
    match control::call(&DataDir::new(data_dir).control_socket(), request) {
        Ok(reply) => Ok(reply),
        Err(ControlError::NoServer { .. }) => {
            let store = open_store(data_dir)?;
            let rng = ring::rand::SystemRandom::new();
            let passwords = PasswordKey::load_or_create(data_dir, &rng)?;
            let accounts = control::Accounts {
                realm,
                passwords: &passwords,
            };
            Ok(control::execute(&store, &accounts, &rng, request))
        }
        Err(error) => Err(error.into()),
    }
}

/// `1000 (Alice)`, or `1000` without a name.
pub fn describe(user: &UserSummary) -> String {
    match user.display_name.is_empty() {
        true => user.extension.clone(),
        false => format!("{} ({})", user.extension, user.display_name),
    }
}

/// An extension's provisioning link, as a URL and as a QR code: what `hotline user add`,
/// `hotline user provision` and the wizard's summary show.
pub fn provisioning_link(config: &Config, user: &UserSummary, token: &str) -> String {
    let url = crate::web::provision::link::url(config, token);
    let mut text = wrap(
        &format!(
            "Provisioning link for extension {} (a secret, like a password): a phone that \
             fetches it sets itself up.\n",
            describe(user)
        ),
        WIDTH,
    );
    let _ = writeln!(text, "  {url}");
    if let Some(code) = crate::web::provision::qr::render(&url) {
        text.push_str(&code);
        text.push('\n');
    }
    let hint = format!(
        "Linphone: scan the code, or enter the link as the remote provisioning URL. Yealink: \
         the link is the auto provisioning server URL. Grandstream: the link without https:// \
         is the config server path, with HTTPS. `hotline user provision {} --revoke` ends it.\n",
        user.extension
    );
    text.push_str(&wrap(&hint, WIDTH));
    if !firewall::https_runs(config) {
        text.push_str(&wrap(
            "Note: the HTTPS listener is off, so phones cannot fetch the link yet: set \
             `enabled = true` in [web] of the configuration and restart hotline.\n",
            WIDTH,
        ));
    }
    text
}

/// What a person types into a phone's account settings, one indented line each.
pub fn phone_settings(config: &Config, extension: &str, password: &str) -> String {
    let port = |ports: &[SocketAddr]| ports.first().map(SocketAddr::port);
    let domain = &config.domain;
    let mut text = format!("  domain:    {domain}\n");
    if let Some(port) = port(&config.listen.tls) {
        let _ = writeln!(
            text,
            "  server:    {domain} port {port}, transport TLS (recommended)"
        );
    }
    if let Some(port) = port(&config.listen.udp).or(port(&config.listen.tcp)) {
        let _ = writeln!(
            text,
            "  or:        {domain} port {port}, transport UDP or TCP"
        );
    }
    let _ = writeln!(text, "  user:      {extension}");
    let _ = writeln!(text, "  password:  {password}");
    let _ = writeln!(text, "  media:     SRTP mandatory");
    text
}
