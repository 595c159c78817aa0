//! Configuration: a TOML file whose every key has a default that is safe on the open internet.
//! `config/hotline.toml` documents each key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::core::auth::Algorithm;
use crate::core::bans::MAX_FAILURES;
use crate::core::{auth, bans, limits, registrar, settings};
use crate::sip::Host;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the configuration file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("`{key}` {problem}: {fix}")]
    Invalid {
        key: &'static str,
        problem: String,
        fix: &'static str,
    },
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The SIP domain and Digest realm: users are `sip:<extension>@<domain>`. Empty means the
    /// machine's hostname.
    pub domain: String,
    /// Other names of this server accepted in request URIs (IP literals are always accepted: a
    /// request that reached us by address is for us).
    pub aliases: Vec<String>,
    /// Where the database, the TLS certificate and the control socket live.
    pub data_dir: PathBuf,
    pub listen: Listen,
    pub tls: Tls,
    pub acme: Acme,
    pub web: Web,
    pub registrar: Registrar,
    pub proxy: Proxy,
    pub flood: Flood,
    pub auth: Auth,
    pub limits: Limits,
    pub bans: Bans,
    pub log: Log,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Listen {
    pub udp: Vec<SocketAddr>,
    pub tcp: Vec<SocketAddr>,
    pub tls: Vec<SocketAddr>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Tls {
    /// PEM certificate chain; without it a self-signed certificate is generated in `data_dir`.
    pub certificate: Option<PathBuf>,
    pub private_key: Option<PathBuf>,
}

/// A certificate from an ACME CA (RFC 8555), obtained and renewed by hotline itself.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Acme {
    /// Off by default: the CA must reach this board by the domain's AAAA record.
    pub enabled: bool,
    /// The CA's directory URL.
    pub directory: String,
    /// `mailto:` addresses for the CA's expiry warnings and policy changes.
    pub contact: Vec<String>,
    pub challenge: ChallengeKind,
    /// PEM root the CA's own HTTPS is verified against instead of the system's roots: a private
    /// CA, or a test CA such as pebble.
    pub directory_root: Option<PathBuf>,
}

/// How the CA checks that this board answers for the domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum ChallengeKind {
    /// RFC 8737, on the HTTPS listener (TCP 443).
    #[serde(rename = "tls-alpn-01")]
    TlsAlpn01,
    /// RFC 8555 §8.3, on the HTTP listener (TCP 80), for networks where 443 is taken.
    #[serde(rename = "http-01")]
    Http01,
}

/// The web side: the HTTPS listener (the owner's pages, provisioning, ACME TLS-ALPN-01
/// challenges) and the plain HTTP listener for HTTP-01 challenges.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Web {
    /// The HTTPS listener with the owner's pages, ACME or not.
    pub enabled: bool,
    pub https: Vec<SocketAddr>,
    pub http: Vec<SocketAddr>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Registrar {
    /// Shorter registrations get `423 Interval Too Brief`.
    pub min_expires: u32,
    /// Longer registrations are shortened to this.
    pub max_expires: u32,
    /// Used when a REGISTER names no expiry.
    pub default_expires: u32,
    /// Contacts per extension (a desk phone, a softphone, a mobile…).
    pub max_contacts: usize,
    /// Bindings in all: the table an outsider with a password could try to grow.
    pub max_bindings: usize,
    /// Seconds between writes of changed bindings to the database (one fsync per batch).
    pub flush_interval: u64,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Proxy {
    /// Seconds a call may ring before the caller gets 480 and the phones stop ringing.
    pub ring_timeout: u64,
    /// Calls in progress whose in-dialog requests hotline can route.
    pub max_dialogs: usize,
    /// Seconds after which a dialog is forgotten even without a BYE.
    pub dialog_lifetime: u64,
}

/// Flood limits per source address and per IPv6 prefix (Kamailio's pike, aware that one
/// attacker owns a whole prefix).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Flood {
    /// Seconds of the counting window.
    pub window: u64,
    /// Requests per window from one address.
    pub per_address: u32,
    /// `[prefix length, requests per window]` for all the addresses of one prefix.
    pub per_prefix: Vec<(u8, u32)>,
    /// Refused requests per window answered `403 Flood detected`; the rest are dropped.
    pub reply_budget: u32,
    /// Seconds a flooding source must stay under its limit to be let in again.
    pub cooldown: u64,
    /// Sources and prefixes tracked in all (a fixed table).
    pub capacity: usize,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Auth {
    /// Digest algorithms offered, most preferred first.
    pub algorithms: Vec<Algorithm>,
    /// Seconds a nonce stays valid before the phone is re-challenged with `stale=true`.
    pub nonce_ttl: u64,
    /// Nonces whose nonce-count is tracked against replay.
    pub max_tracked_nonces: usize,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest message accepted, in bytes.
    pub max_message_size: usize,
    pub max_headers: usize,
    /// Via entries per request: more than the 70 hops Max-Forwards allows means a loop or an
    /// attack.
    pub max_vias: usize,
    /// Open TCP and TLS connections in all.
    pub max_connections: usize,
    /// Open TCP and TLS connections from one IPv6 address.
    pub max_connections_per_address: usize,
    /// `[prefix length, connections]` from all the addresses of one IPv6 prefix.
    pub max_connections_per_prefix: Vec<(u8, usize)>,
    /// Seconds a connection may stay anonymous: until a request on it passes Digest. CRLF
    /// keep-alives do not extend it. When every connection is taken, the oldest anonymous one
    /// gives way to a new one; a phone's never does.
    pub anonymous_timeout: u64,
    /// Seconds a connection may stay silent before it is closed. Phones keep theirs alive with
    /// CRLF pings or re-registrations, so this is longer than `registrar.max_expires`.
    pub idle_timeout: u64,
    /// Seconds a stream may hold a partial message, or a TLS handshake, before it is closed.
    pub partial_message_timeout: u64,
    /// Transactions in progress (proxied requests, and responses kept to answer retransmitted
    /// requests).
    pub max_transactions: usize,
    /// Proxied transactions past their final response, kept in a few bytes each to absorb
    /// retransmissions: about 100 per call/s.
    pub max_lingering_transactions: usize,
    /// Proxied transactions in progress from one /64 (and so from any one address in it): no
    /// source can take the whole table from the phones.
    pub max_transactions_per_prefix: usize,
}

/// Banning sources that fail authentication again and again (see [`crate::core::bans`]).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Bans {
    /// Authentication failures from one address, or from one prefix, that ban it.
    pub failures: u32,
    /// Seconds within which those failures count.
    pub window: u64,
    /// Seconds a ban lasts.
    pub duration: u64,
    /// Length of the prefix whose addresses count together (a /64 is one subnet, one owner).
    pub prefix: u8,
    /// Sources whose failures are counted, and bans held, each.
    pub capacity: usize,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Log {
    /// `error`, `warn`, `info`, `debug` or `trace`, or a tracing filter directive.
    pub level: String,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            domain: String::new(),
            aliases: Vec::new(),
            data_dir: PathBuf::from("hotline-data"),
            listen: Listen::default(),
            tls: Tls::default(),
            acme: Acme::default(),
            web: Web::default(),
            registrar: Registrar::default(),
            proxy: Proxy::default(),
            flood: Flood::default(),
            auth: Auth::default(),
            limits: Limits::default(),
            bans: Bans::default(),
            log: Log::default(),
        }
    }
}

impl Default for Listen {
    fn default() -> Listen {
        let any = |port| SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, port));
        Listen {
            udp: vec![any(5060)],
            tcp: vec![any(5060)],
            tls: vec![any(5061)],
        }
    }
}

/// Let's Encrypt's production directory.
pub const LETS_ENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";

impl Default for Acme {
    fn default() -> Acme {
        Acme {
            enabled: false,
            directory: LETS_ENCRYPT.to_owned(),
            contact: Vec::new(),
            challenge: ChallengeKind::TlsAlpn01,
            directory_root: None,
        }
    }
}

impl Default for Web {
    fn default() -> Web {
        let any = |port| SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, port));
        Web {
            enabled: false,
            https: vec![any(443)],
            http: vec![any(80)],
        }
    }
}
// The core's defaults are the file's: each section starts from them.

impl Default for Registrar {
    fn default() -> Registrar {
        let core = registrar::Settings::default();
        Registrar {
            min_expires: seconds(core.min_expires) as u32,
            max_expires: seconds(core.max_expires) as u32,
            default_expires: seconds(core.default_expires) as u32,
            max_contacts: core.max_contacts,
            max_bindings: core.max_bindings,
            flush_interval: seconds(core.flush_interval),
        }
    }
}

impl Default for Proxy {
    fn default() -> Proxy {
        let core = settings::Proxy::default();
        Proxy {
            ring_timeout: seconds(core.ring_timeout),
            max_dialogs: core.max_dialogs,
            dialog_lifetime: seconds(core.dialog_lifetime),
        }
    }
}

impl Default for Flood {
    /// The reasons for these figures are on [`crate::core::limits::Settings`].
    fn default() -> Flood {
        let core = limits::Settings::default();
        Flood {
            window: seconds(core.window),
            per_address: core.per_address,
            per_prefix: core.per_prefix,
            reply_budget: core.reply_budget,
            cooldown: seconds(core.cooldown),
            capacity: core.capacity,
        }
    }
}

impl Default for Auth {
    fn default() -> Auth {
        let core = auth::Settings::default();
        Auth {
            algorithms: core.algorithms,
            nonce_ttl: seconds(core.nonce_ttl),
            max_tracked_nonces: core.max_tracked_nonces,
        }
    }
}

impl Default for Limits {
    fn default() -> Limits {
        let core = settings::Settings::default();
        Limits {
            max_message_size: 16 * 1024,
            max_headers: core.max_headers,
            max_vias: core.max_vias,
            max_connections: 4096,
            max_connections_per_address: 16,
            max_connections_per_prefix: vec![(64, 32), (56, 64), (48, 128)],
            anonymous_timeout: 30,
            idle_timeout: 3660,
            partial_message_timeout: 10,
            max_transactions: core.max_transactions,
            max_lingering_transactions: core.max_lingering_transactions,
            max_transactions_per_prefix: core.max_transactions_per_prefix,
        }
    }
}

impl Default for Bans {
    fn default() -> Bans {
        let core = bans::Settings::default();
        Bans {
            failures: core.failures,
            window: seconds(core.window),
            duration: seconds(core.duration),
            prefix: core.prefix,
            capacity: core.capacity,
        }
    }
}

impl Flood {
    /// The core's flood limits (the network layer counts connection attempts with them too).
    pub fn settings(&self) -> limits::Settings {
        limits::Settings {
            window: Duration::from_secs(self.window),
            per_address: self.per_address,
            per_prefix: self.per_prefix.clone(),
            reply_budget: self.reply_budget,
            cooldown: Duration::from_secs(self.cooldown),
            capacity: self.capacity,
        }
    }
}

fn seconds(duration: Duration) -> u64 {
    duration.as_secs()
}

impl Default for Log {
    fn default() -> Log {
        Log {
            level: "info".to_owned(),
        }
    }
}

impl Config {
    /// Reads `path`, or the embedded defaults without one; then fills in the domain and checks.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let mut config = match path {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_owned(),
                    source,
                })?;
                Config::parse(&text).map_err(|message| ConfigError::Syntax {
                    path: path.to_owned(),
                    message,
                })?
            }
            None => Config::default(),
        };
        if config.domain.is_empty() {
            config.domain = hostname().ok_or(ConfigError::Invalid {
                key: "domain",
                problem: "is not set and the hostname cannot be read".to_owned(),
                fix: "set `domain = \"your.domain\"` in the configuration file",
            })?;
        }
        config.validate()?;
        Ok(config)
    }

    /// Parses TOML; the error text names the key and line.
    pub fn parse(text: &str) -> Result<Config, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, problem: &str, fix| {
            Err(ConfigError::Invalid {
                key,
                problem: problem.to_owned(),
                fix,
            })
        };
        if Host::parse(&self.domain).is_none() {
            return invalid(
                "domain",
                &format!("{:?} is not a host name or IP address", self.domain),
                "use a name such as `hotline.example.org` or an address such as `[2001:db8::1]`",
            );
        }
        if let Some(alias) = self.aliases.iter().find(|a| Host::parse(a).is_none()) {
            return invalid(
                "aliases",
                &format!("contains {alias:?}, which is not a host name or IP address"),
                "list names such as `pbx.example.org`",
            );
        }
        let l = &self.listen;
        if l.udp.is_empty() && l.tcp.is_empty() && l.tls.is_empty() {
            return invalid(
                "listen",
                "has no address",
                "give at least one of `listen.udp`, `listen.tcp`, `listen.tls`, such as `[\"[::]:5060\"]`",
            );
        }
        if let Some(addr) = l
            .udp
            .iter()
            .chain(&l.tcp)
            .chain(&l.tls)
            .find(|a| a.is_ipv4())
        {
            return invalid(
                "listen",
                &format!("contains the IPv4 address {addr}"),
                "hotline speaks IPv6 only: use `[::]:5060` or a specific IPv6 address",
            );
        }
        if self.tls.certificate.is_some() != self.tls.private_key.is_some() {
            return invalid(
                "tls",
                "has only one of `certificate` and `private_key`",
                "set both, or neither to use a generated self-signed certificate",
            );
        }
        self.validate_acme()?;
        let algorithms = &self.auth.algorithms;
        let repeated = algorithms
            .iter()
            .enumerate()
            .any(|(i, a)| algorithms[..i].contains(a));
        if algorithms.is_empty() || repeated {
            return invalid(
                "auth.algorithms",
                "must list each algorithm at most once, and at least one",
                "use [\"MD5\", \"SHA-256\"], [\"SHA-256\", \"MD5\"] or one of them",
            );
        }
        if let Some(length) = invalid_prefix(&self.flood.per_prefix) {
            return invalid(
                "flood.per_prefix",
                &format!("has the prefix length {length} or a limit of 0"),
                "give [length, limit] pairs with lengths from 1 to 127, such as [[64, 120], [48, 400]]",
            );
        }
        if let Some(length) = invalid_prefix(&self.limits.max_connections_per_prefix) {
            return invalid(
                "limits.max_connections_per_prefix",
                &format!("has the prefix length {length} or a limit of 0"),
                "give [length, connections] pairs with lengths from 1 to 127, such as [[64, 32], [48, 128]]",
            );
        }
        if self.flood.capacity > 1 << 20 {
            return invalid(
                "flood.capacity",
                &format!("is {}", self.flood.capacity),
                "use at most 1048576 entries (default 16384)",
            );
        }
        let r = &self.registrar;
        if r.min_expires == 0
            || r.min_expires > r.default_expires
            || r.default_expires > r.max_expires
        {
            return invalid(
                "registrar",
                &format!(
                    "needs 0 < min_expires <= default_expires <= max_expires, got {} / {} / {}",
                    r.min_expires, r.default_expires, r.max_expires
                ),
                "for example min_expires = 60, default_expires = 3600, max_expires = 3600",
            );
        }
        let positive = [
            ("registrar.max_contacts", r.max_contacts as u64),
            ("registrar.max_bindings", r.max_bindings as u64),
            ("registrar.flush_interval", r.flush_interval),
            ("proxy.ring_timeout", self.proxy.ring_timeout),
            ("proxy.max_dialogs", self.proxy.max_dialogs as u64),
            ("proxy.dialog_lifetime", self.proxy.dialog_lifetime),
            ("flood.window", self.flood.window),
            ("flood.per_address", u64::from(self.flood.per_address)),
            ("flood.cooldown", self.flood.cooldown),
            ("flood.capacity", self.flood.capacity as u64),
            ("auth.nonce_ttl", self.auth.nonce_ttl),
            (
                "auth.max_tracked_nonces",
                self.auth.max_tracked_nonces as u64,
            ),
            ("limits.max_headers", self.limits.max_headers as u64),
            ("limits.max_vias", self.limits.max_vias as u64),
            ("limits.max_connections", self.limits.max_connections as u64),
            (
                "limits.max_connections_per_address",
                self.limits.max_connections_per_address as u64,
            ),
            ("limits.idle_timeout", self.limits.idle_timeout),
            ("limits.anonymous_timeout", self.limits.anonymous_timeout),
            (
                "limits.partial_message_timeout",
                self.limits.partial_message_timeout,
            ),
            (
                "limits.max_transactions",
                self.limits.max_transactions as u64,
            ),
            (
                "limits.max_lingering_transactions",
                self.limits.max_lingering_transactions as u64,
            ),
            (
                "limits.max_transactions_per_prefix",
                self.limits.max_transactions_per_prefix as u64,
            ),
            ("bans.window", self.bans.window),
            ("bans.duration", self.bans.duration),
            ("bans.capacity", self.bans.capacity as u64),
        ];
        if let Some((key, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return invalid(
                key,
                "is 0",
                "use a positive number (the defaults are in config/hotline.toml)",
            );
        }
        if !(1..=MAX_FAILURES).contains(&self.bans.failures) {
            return invalid(
                "bans.failures",
                &format!("is {}", self.bans.failures),
                "use a number from 1 to 100 (default 5)",
            );
        }
        if !(32..=128).contains(&self.bans.prefix) {
            return invalid(
                "bans.prefix",
                &format!("is {}", self.bans.prefix),
                "use a prefix length from 32 to 128: 64 (one subnet, the default), 56 or 48 \
                 (a customer's whole site), 128 (each address alone)",
            );
        }
        if !(1024..=65_535).contains(&self.limits.max_message_size) {
            return invalid(
                "limits.max_message_size",
                &format!("is {}", self.limits.max_message_size),
                "use a size from 1024 to 65535 bytes (default 16384)",
            );
        }
        Ok(())
    }

    fn validate_acme(&self) -> Result<(), ConfigError> {
        let invalid = |key, problem: String, fix| Err(ConfigError::Invalid { key, problem, fix });
        if let Some(addr) = self
            .web
            .https
            .iter()
            .chain(&self.web.http)
            .find(|a| a.is_ipv4())
        {
            return invalid(
                "web",
                format!("contains the IPv4 address {addr}"),
                "hotline speaks IPv6 only: use `[::]:443` or a specific IPv6 address",
            );
        }
        if self.web.enabled && self.web.https.is_empty() {
            return invalid(
                "web.https",
                "is empty but [web] is enabled".to_owned(),
                "give an address such as `[::]:443`, or set `enabled = false` in [web]",
            );
        }
        if !self.acme.enabled {
            return Ok(());
        }
        if !self.acme.directory.starts_with("https://") {
            return invalid(
                "acme.directory",
                format!("{:?} is not an https:// URL", self.acme.directory),
                "use the CA's directory URL, such as \"https://acme-v02.api.letsencrypt.org/directory\"",
            );
        }
        if let Some(contact) = self.acme.contact.iter().find(|c| !c.starts_with("mailto:")) {
            return invalid(
                "acme.contact",
                format!("contains {contact:?}"),
                "list addresses such as \"mailto:owner@example.org\"",
            );
        }
        let listeners = match self.acme.challenge {
            ChallengeKind::TlsAlpn01 => ("web.https", &self.web.https),
            ChallengeKind::Http01 => ("web.http", &self.web.http),
        };
        if listeners.1.is_empty() {
            return invalid(
                listeners.0,
                "is empty but the ACME challenge needs it".to_owned(),
                "give an address such as `[::]:443` (tls-alpn-01) or `[::]:80` (http-01)",
            );
        }
        Ok(())
    }

    /// `sip:<domain>` as phones address the registrar.
    pub fn realm(&self) -> &str {
        &self.domain
    }

    /// The core's settings: the one place where the file's seconds become durations.
    pub fn core(&self) -> settings::Settings {
        let secs = Duration::from_secs;
        let (r, p, f, a, l, b) = (
            &self.registrar,
            &self.proxy,
            &self.flood,
            &self.auth,
            &self.limits,
            &self.bans,
        );
        settings::Settings {
            domain: self.domain.clone(),
            aliases: self.aliases.clone(),
            max_headers: l.max_headers,
            max_vias: l.max_vias,
            max_transactions: l.max_transactions,
            max_lingering_transactions: l.max_lingering_transactions,
            max_transactions_per_prefix: l.max_transactions_per_prefix,
            proxy: settings::Proxy {
                ring_timeout: secs(p.ring_timeout),
                max_dialogs: p.max_dialogs,
                dialog_lifetime: secs(p.dialog_lifetime),
            },
            registrar: registrar::Settings {
                min_expires: secs(r.min_expires.into()),
                max_expires: secs(r.max_expires.into()),
                default_expires: secs(r.default_expires.into()),
                max_contacts: r.max_contacts,
                max_bindings: r.max_bindings,
                flush_interval: secs(r.flush_interval),
            },
            auth: auth::Settings {
                algorithms: a.algorithms.clone(),
                nonce_ttl: secs(a.nonce_ttl),
                max_tracked_nonces: a.max_tracked_nonces,
            },
            flood: f.settings(),
            bans: bans::Settings {
                failures: b.failures,
                window: secs(b.window),
                duration: secs(b.duration),
                prefix: b.prefix,
                capacity: b.capacity,
            },
        }
    }
}

/// The first prefix length of `[length, limit]` pairs that is out of 1..=127 or has a limit of
/// 0.
fn invalid_prefix<N: PartialEq + Default>(pairs: &[(u8, N)]) -> Option<u8> {
    pairs
        .iter()
        .find(|(length, limit)| !(1..128).contains(length) || *limit == N::default())
        .map(|(length, _)| *length)
}

/// The kernel's hostname; no libc or NSS needed (the appliance binary is static).
fn hostname() -> Option<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let name = name.trim();
    (!name.is_empty()).then(|| name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_defaults_are_valid() {
        let config = Config::load(None).unwrap();
        assert!(!config.domain.is_empty());
        assert_eq!(config.listen.tls[0].port(), 5061);
    }

    #[test]
    fn documented_file_shows_the_defaults() {
        let text = include_str!("../config/hotline.toml");
        let mut config = Config::parse(text).unwrap();
        assert_eq!(config, Config::default());
        config.domain = "example.org".to_owned();
        config.validate().unwrap();
    }

    #[test]
    fn the_core_gets_the_values_of_the_file() {
        let mut config = Config::parse(include_str!("../config/hotline.toml")).unwrap();
        config.domain = "example.org".to_owned();
        let expected = settings::Settings {
            domain: "example.org".to_owned(),
            ..settings::Settings::default()
        };
        assert_eq!(config.core(), expected);
        config.proxy.ring_timeout = 5;
        config.bans.window = 7;
        let core = config.core();
        assert_eq!(core.proxy.ring_timeout, Duration::from_secs(5));
        assert_eq!(core.bans.window, Duration::from_secs(7));
    }

    #[test]
    fn errors_name_the_key() {
        let err = Config::parse("[registrar]\nmax_contact = 3\n").unwrap_err();
        assert!(err.contains("max_contact"), "{err}");
        let err = Config::parse("[registrar]\nmin_expires = \"soon\"\n").unwrap_err();
        assert!(err.contains("min_expires"), "{err}");

        let mut config =
            Config::parse("domain = \"example.org\"\n[listen]\nudp = [\"0.0.0.0:5060\"]\n")
                .unwrap();
        let err = config.validate().unwrap_err().to_string();
        assert!(err.starts_with("`listen`") && err.contains("IPv6"), "{err}");

        config = Config::parse("domain = \"bad domain\"\n").unwrap();
        assert!(
            config
                .validate()
                .unwrap_err()
                .to_string()
                .starts_with("`domain`")
        );

        config = Config::parse("domain = \"x.org\"\n[registrar]\nmin_expires = 7200\n").unwrap();
        assert!(
            config
                .validate()
                .unwrap_err()
                .to_string()
                .starts_with("`registrar`")
        );

        config = Config::parse("domain = \"x.org\"\n[bans]\nprefix = 16\n").unwrap();
        assert!(
            config
                .validate()
                .unwrap_err()
                .to_string()
                .starts_with("`bans.prefix`")
        );

        config = Config::parse("domain = \"x.org\"\n[bans]\nfailures = 0\n").unwrap();
        assert!(
            config
                .validate()
                .unwrap_err()
                .to_string()
                .starts_with("`bans.failures`")
        );

        config = Config::parse("domain = \"x.org\"\n[limits]\nmax_headers = 0\n").unwrap();
        assert!(
            config
                .validate()
                .unwrap_err()
                .to_string()
                .starts_with("`limits.max_headers`")
        );

        for pairs in ["[[64, 0]]", "[[128, 4]]", "[[0, 4]]"] {
            let text =
                format!("domain = \"x.org\"\n[limits]\nmax_connections_per_prefix = {pairs}\n");
            config = Config::parse(&text).unwrap();
            let error = config.validate().unwrap_err().to_string();
            assert!(
                error.starts_with("`limits.max_connections_per_prefix`"),
                "{error}"
            );
        }
    }

    #[test]
    fn acme_errors_name_the_key() {
        let check = |text: &str| {
            let config = Config::parse(&format!("domain = \"x.org\"\n{text}")).unwrap();
            config.validate().unwrap_err().to_string()
        };
        let err = check("[acme]\nenabled = true\ndirectory = \"http://ca.test/dir\"\n");
        assert!(err.starts_with("`acme.directory`"), "{err}");
        let err = check("[acme]\nenabled = true\ncontact = [\"me@x.org\"]\n");
        assert!(
            err.starts_with("`acme.contact`") && err.contains("mailto:"),
            "{err}"
        );
        let err = check("[acme]\nenabled = true\n[web]\nhttps = []\n");
        assert!(err.starts_with("`web.https`"), "{err}");
        let err = check("[acme]\nenabled = true\nchallenge = \"http-01\"\n[web]\nhttp = []\n");
        assert!(err.starts_with("`web.http`"), "{err}");
        let err = check("[web]\nhttps = [\"0.0.0.0:443\"]\n");
        assert!(err.starts_with("`web`") && err.contains("IPv6"), "{err}");
        let err = Config::parse("[acme]\nchallenge = \"dns-01\"\n").unwrap_err();
        assert!(err.contains("challenge"), "{err}");
        // Off, the web listeners may be left empty.
        let config = Config::parse("domain = \"x.org\"\n[web]\nhttps = []\n").unwrap();
        config.validate().unwrap();
    }
}
