//! Step 3 with a certificate from an ACME CA such as Let's Encrypt: check that the names lead to
//! this board, then obtain the certificate on the spot, through the running server when there
//! is one (it holds the validation port), and keep one that has not expired. When that cannot
//! work yet, say what to fix, serve the self-signed certificate meanwhile, and leave ACME on so
//! that the server keeps trying (with its backoff) until it can; when the CA refuses the names
//! (an IP address without RFC 8738), say so and turn ACME off.
//!
//! The firewall (`config/nftables.conf`) opens the validation port only while ACME is on,
//! through a drop-in file this step writes or removes.

use std::io;
use std::net::{Ipv6Addr, SocketAddr};
use std::path::Path;

use anyhow::{Context as _, bail};

use super::{Dialog, Environment, TlsChoice, ipv6};
use crate::certificate::{self as tls, TlsIdentity};
use crate::clock::wall_ms;
use crate::config::{ChallengeKind, Config};
use crate::control::{self, Reply, Request};
use crate::core::bans::Utc;
use crate::data_dir::DataDir;
use crate::web::acme::AcmeError;
use crate::web::challenges::Host;
use crate::web::status::CertificateInfo;
use crate::web::{self, RenewalFailure, acme, dns};

/// The drop-in that opens the validation port, in the directory `config/nftables.conf`
/// includes.
pub const FIREWALL_FILE: &str = "hotline-acme.nft";

/// Top-level domains no public CA issues for (RFC 6761, RFC 8375, and the private-use names
/// routers hand out).
const PRIVATE_TLDS: [&str; 9] = [
    "test",
    "example",
    "invalid",
    "localhost",
    "local",
    "lan",
    "home",
    "internal",
    "arpa",
];

/// True when `domain` is a DNS name a public CA could issue a certificate for.
pub fn public_name(domain: &str) -> bool {
    let name = domain.trim_end_matches('.').to_ascii_lowercase();
    match name.rsplit_once('.') {
        Some((_, tld)) => !PRIVATE_TLDS.contains(&tld) && tld.parse::<u32>().is_err(),
        None => false,
    }
}

/// Turns ACME on in `config` and tries to obtain the certificate now; returns what the
/// listeners will serve at first.
pub fn obtain(
    dialog: &mut Dialog<'_>,
    config: &mut Config,
    environment: &Environment,
    domain_changed: bool,
) -> anyhow::Result<TlsIdentity> {
    config.acme.enabled = true;
    config.tls.certificate = None;
    config.tls.private_key = None;
    let hosts = acme::hosts(config);
    let names: Vec<String> = hosts.iter().map(Host::to_string).collect();
    let port = match config.acme.challenge {
        ChallengeKind::TlsAlpn01 => 443,
        ChallengeKind::Http01 => 80,
    };
    dialog.say(&format!(
        "The CA ({}) checks that {} leads to this board, on TCP port {port}: the router's \
         firewall must let that port through to this board.",
        config.acme.directory,
        names.join(" and ")
    ))?;
    let problems = check_addresses(&hosts, environment)?;
    for problem in &problems {
        dialog.say(&format!("  {problem}"))?;
    }
    let data_dir = DataDir::new(&config.data_dir);
    let issued = data_dir.tls().join(acme::CERTIFICATE_FILE);
    // One that has not expired stays: the server renews it when due, and asking again would
    // only spend the CA's rate limits (a few duplicate certificates a week at Let's Encrypt).
    let current = CertificateInfo::read(&issued)
        .filter(|info| info.covers(&hosts) && info.not_after_ms > wall_ms());
    if let Some(info) = current {
        dialog.say(&format!(
            "  The certificate for {} from {}, valid until {}, stays: hotline renews it by \
             itself.",
            names.join(", "),
            info.issuer,
            Utc(info.not_after_ms)
        ))?;
        return issued_identity(config);
    }
    if !problems.is_empty() {
        return fall_back(dialog, config, domain_changed);
    }
    // A running server holds the validation port: it answers the CA, as for `hotline cert
    // renew`.
    if control::call(&data_dir.control_socket(), &Request::ListUsers).is_ok() {
        dialog.say(&format!(
            "hotline is running: asking it for a certificate for {}…",
            names.join(", ")
        ))?;
        let reply = control::call(&data_dir.control_socket(), &Request::RenewCertificate);
        return match reply {
            Ok(Reply::CertificateRenewed { message }) => {
                dialog.say(&format!("  {message}"))?;
                issued_identity(config)
            }
            Ok(Reply::Failed { message }) => {
                dialog.say(&format!("  It did not work: {message}"))?;
                fall_back(dialog, config, domain_changed)
            }
            Ok(other) => bail!("the hotline server answered {other:?} to a renewal"),
            Err(error) => {
                dialog.say(&format!("  It did not work: {error}"))?;
                fall_back(dialog, config, domain_changed)
            }
        };
    }
    dialog.say(&format!(
        "Asking the CA for a certificate for {}…",
        names.join(", ")
    ))?;
    match web::renew_without_server(config) {
        Ok(text) => {
            dialog.say(&format!("  {text}"))?;
            issued_identity(config)
        }
        Err(error) => {
            let rejected = error
                .downcast_ref::<RenewalFailure>()
                .map(|failure| &failure.error)
                .filter(|error| matches!(error, AcmeError::Rejected { .. }));
            if let Some(rejected) = rejected {
                // Asking this CA again would not change its mind.
                dialog.say(&format!(
                    "  It did not work: {rejected}\n  So ACME is off: asking this CA again \
                     would not help."
                ))?;
                config.acme.enabled = false;
                return self_signed(config, domain_changed);
            }
            dialog.say(&format!("  It did not work: {error:#}"))?;
            fall_back(dialog, config, domain_changed)
        }
    }
}

/// The certificate from the CA, as the listeners will serve it.
fn issued_identity(config: &Config) -> anyhow::Result<TlsIdentity> {
    let data_dir = DataDir::new(&config.data_dir);
    let issued = data_dir.tls().join(acme::CERTIFICATE_FILE);
    Ok(tls::load_or_generate(
        &data_dir,
        &config.domain,
        Some((&issued, &issued)),
    )?)
}

fn fall_back(
    dialog: &mut Dialog<'_>,
    config: &mut Config,
    domain_changed: bool,
) -> anyhow::Result<TlsIdentity> {
    dialog.say(
        "Until it works, hotline serves a self-signed certificate, and asks the CA again by \
         itself: after 10 minutes, then less and less often. `hotline cert renew` asks at once.",
    )?;
    self_signed(config, domain_changed)
}

/// The self-signed certificate, made anew when it was for the previous domain.
fn self_signed(config: &mut Config, domain_changed: bool) -> anyhow::Result<TlsIdentity> {
    let renew = domain_changed;
    Ok(super::use_certificate(
        config,
        &TlsChoice::SelfSigned { renew },
    )?)
}

/// What is wrong with the AAAA records of `hosts`, as sentences saying which record to create.
fn check_addresses(hosts: &[Host], environment: &Environment) -> anyhow::Result<Vec<String>> {
    let board: Vec<Ipv6Addr> = environment
        .addresses
        .iter()
        .filter(|a| a.reach() == ipv6::Reach::Global)
        .map(|a| a.address)
        .collect();
    let Some(wanted) = ipv6::stable_global(&environment.addresses).or(board.first().copied())
    else {
        return Ok(vec![
            "This board has no global IPv6 address (see step 2), so the CA cannot reach it."
                .to_owned(),
        ]);
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    let mut problems = Vec::new();
    for host in hosts {
        let Host::Dns(name) = host else { continue };
        let found = runtime.block_on(dns::lookup_aaaa_at(name, &environment.dns_servers));
        let record = format!("{name}. AAAA {wanted}");
        match found {
            Ok(addresses) if addresses.iter().any(|a| board.contains(a)) => {}
            Ok(addresses) => {
                let listed: Vec<String> = addresses.iter().map(Ipv6Addr::to_string).collect();
                problems.push(format!(
                    "The AAAA record of {name} is {}, not an address of this board. At your DNS \
                     provider, change it to: {record}",
                    listed.join(", ")
                ));
            }
            Err(dns::DnsError::NoSuchName { .. } | dns::DnsError::NoAddress { .. }) => {
                problems.push(format!(
                    "{name} has no AAAA record. At your DNS provider, create: {record}"
                ));
            }
            Err(error) => problems.push(format!(
                "Cannot check the AAAA record of {name} ({error}). It must be: {record}"
            )),
        }
    }
    Ok(problems)
}

/// Writes the firewall drop-in into `dir` when ACME is on (opening the validation port), or
/// removes it; returns whether it changed.
pub fn write_firewall(dir: &Path, config: &Config) -> io::Result<bool> {
    let path = dir.join(FIREWALL_FILE);
    let ports: Vec<u16> = match config.acme.challenge {
        ChallengeKind::TlsAlpn01 => config.web.https.iter().map(SocketAddr::port).collect(),
        ChallengeKind::Http01 => config.web.http.iter().map(SocketAddr::port).collect(),
    };
    let wanted = (config.acme.enabled && config.tls.certificate.is_none()).then(|| {
        let ports: Vec<String> = ports.iter().map(u16::to_string).collect();
        format!(
            "# Written by `hotline setup`: ACME validation reaches hotline (removed when ACME \
             is off).\nadd rule inet filter input tcp dport {{ {} }} accept\n",
            ports.join(", ")
        )
    });
    super::firewall::write_drop_in(&path, wanted)
}
