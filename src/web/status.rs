//! What `hotline cert status` shows: the certificate being served, read from its file, and
//! where its renewal stands. It reads files only, so it works whether or not the server runs;
//! the server keeps the files current.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use instant_acme::CertificateIdentifier;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject as _;
use x509_parser::extensions::GeneralName;

use super::acme::{self, CERTIFICATE_FILE};
use super::challenges::Host;
use super::renewal::{self, RenewalState, Source};
use crate::config::Config;
use crate::core::bans::Utc;

/// The parts of a certificate that matter for serving and renewing it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateInfo {
    pub issuer: String,
    pub self_signed: bool,
    pub names: Vec<Host>,
    /// Unix milliseconds.
    pub not_before_ms: u64,
    pub not_after_ms: u64,
    /// Its identifier for the CA's renewal windows (RFC 9773 §4.1).
    pub ari_id: Option<CertificateIdentifier<'static>>,
}

impl CertificateInfo {
    /// The leaf (first certificate) of the PEM file at `path`; `None` when there is none or it
    /// cannot be parsed.
    pub fn read(path: &Path) -> Option<CertificateInfo> {
        let der = CertificateDer::from_pem_file(path).ok()?;
        CertificateInfo::parse(&der)
    }

    pub fn parse(der: &[u8]) -> Option<CertificateInfo> {
        let (_, certificate) = x509_parser::parse_x509_certificate(der).ok()?;
        let mut names = Vec::new();
        if let Ok(Some(san)) = certificate.subject_alternative_name() {
            for name in &san.value.general_names {
                match name {
                    GeneralName::DNSName(dns) => names.push(Host::Dns(dns.to_ascii_lowercase())),
                    GeneralName::IPAddress(bytes) => {
                        if let Ok(octets) = <[u8; 16]>::try_from(*bytes) {
                            names.push(Host::Ip(IpAddr::from(octets)));
                        } else if let Ok(octets) = <[u8; 4]>::try_from(*bytes) {
                            names.push(Host::Ip(IpAddr::from(octets)));
                        }
                    }
                    _ => {}
                }
            }
        }
        let ms = |seconds: i64| u64::try_from(seconds).unwrap_or(0).saturating_mul(1000);
        let validity = certificate.validity();
        Some(CertificateInfo {
            issuer: certificate.issuer().to_string(),
            self_signed: certificate.issuer() == certificate.subject(),
            names,
            not_before_ms: ms(validity.not_before.timestamp()),
            not_after_ms: ms(validity.not_after.timestamp()),
            ari_id: acme::certificate_id(der),
        })
    }

    /// When to renew it, given what the CA said about renewal windows, and why then.
    pub fn renewal_due<'a>(&self, state: &'a RenewalState) -> (u64, Source<'a>) {
        let id = self.ari_id.as_ref().map(ToString::to_string);
        state.renewal_due(id.as_deref(), self.not_before_ms, self.not_after_ms)
    }

    /// True when it names every one of `hosts`.
    pub fn covers(&self, hosts: &[Host]) -> bool {
        hosts.iter().all(|host| self.names.contains(host))
    }

    fn names(&self) -> String {
        let names: Vec<String> = self.names.iter().map(Host::to_string).collect();
        names.join(", ")
    }
}

/// The file the server serves its certificate from: the configured one, else the ACME
/// certificate when ACME is on and one was issued for the current names, else the generated
/// self-signed one.
pub fn served_certificate(config: &Config) -> PathBuf {
    if let Some(certificate) = &config.tls.certificate {
        return certificate.clone();
    }
    let dir = config.data_dir.join("tls");
    let issued = dir.join(CERTIFICATE_FILE);
    let hosts = acme::hosts(config);
    let current = CertificateInfo::read(&issued).is_some_and(|info| info.covers(&hosts));
    match config.acme.enabled && current {
        true => issued,
        false => dir.join("cert.pem"),
    }
}

/// The text of `hotline cert status`.
pub fn report(config: &Config, now_ms: u64) -> String {
    let mut text = String::new();
    let path = served_certificate(config);
    let _ = writeln!(text, "Certificate:   {}", path.display());
    let info = CertificateInfo::read(&path);
    match &info {
        Some(info) => {
            let kind = if info.self_signed {
                " (self-signed)"
            } else {
                ""
            };
            let days = info.not_after_ms.saturating_sub(now_ms) / 86_400_000;
            let _ = writeln!(text, "Issuer:        {}{kind}", info.issuer);
            let _ = writeln!(text, "Names:         {}", info.names());
            let _ = writeln!(
                text,
                "Expires:       {} ({days} days left)",
                Utc(info.not_after_ms)
            );
        }
        None => {
            let _ = writeln!(
                text,
                "               none yet: hotline makes one when it starts"
            );
        }
    }
    if config.tls.certificate.is_some() {
        let _ = writeln!(
            text,
            "ACME:          off: [tls] names the certificate files"
        );
        return text;
    }
    if !config.acme.enabled {
        let _ = writeln!(
            text,
            "ACME:          off: set `enabled = true` in [acme] (or run `hotline setup`) for a \
             certificate phones trust"
        );
        return text;
    }
    let _ = writeln!(text, "ACME:          {}", config.acme.directory);
    let dir = config.data_dir.join("tls");
    let state = RenewalState::load(&dir);
    let issued = path.ends_with(CERTIFICATE_FILE);
    let due = info.filter(|_| issued).map(|info| info.renewal_due(&state));
    let next = renewal::next_attempt(due.map(|(due, _)| due), &state);
    let when = if next <= now_ms {
        "now".to_owned()
    } else {
        Utc(next).to_string()
    };
    let _ = writeln!(text, "Next renewal:  {when}");
    match due.map(|(_, source)| source) {
        Some(Source::Window(window)) => {
            let _ = writeln!(
                text,
                "               inside the renewal window the CA suggests (ARI): {} to {}",
                Utc(window.start_ms),
                Utc(window.end_ms)
            );
        }
        Some(Source::Lifetime(reason)) => {
            let poll = state.ari_poll_at_ms.filter(|&at| at > now_ms);
            let why = match (reason, poll) {
                (Some(reason), _) => format!(" ({reason})"),
                (None, Some(at)) => {
                    format!(" (until the CA's renewal window, asked for at {})", Utc(at))
                }
                (None, None) => String::new(),
            };
            let _ = writeln!(
                text,
                "               with a third of the lifetime left{why}"
            );
        }
        None => {}
    }
    if let Some(error) = &state.last_error {
        let _ = writeln!(
            text,
            "Last error:    {error} ({} failed attempts in a row)",
            state.failures
        );
    }
    text
}
