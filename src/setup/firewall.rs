//! The firewall drop-in of the HTTPS listener. `config/nftables.conf` lets in SSH and SIP only,
//! and includes the drop-ins of [`super::FIREWALL_DIR`]; while hotline runs its HTTPS listener
//! (the owner's pages, the provisioning links, ACME's tls-alpn-01), the wizard opens its port
//! there, and closes it when the listener is off.

use std::io;
use std::net::SocketAddr;
use std::path::Path;

use crate::config::{ChallengeKind, Config};

/// The drop-in that lets in the HTTPS listener's ports.
pub const WEB_FILE: &str = "hotline-web.nft";

/// Whether `hotline serve` runs the HTTPS listener with `config`, as [`crate::web::start`]
/// decides: with `[web]` enabled, or for ACME's tls-alpn-01 validation.
pub fn https_runs(config: &Config) -> bool {
    config.web.enabled
        || (config.acme.enabled
            && config.tls.certificate.is_none()
            && config.acme.challenge == ChallengeKind::TlsAlpn01)
}

/// Writes the drop-in that opens the HTTPS listener's ports into `dir` while the listener runs,
/// or removes it; returns whether that changed anything.
pub fn write_web(dir: &Path, config: &Config) -> io::Result<bool> {
    let mut ports: Vec<u16> = config.web.https.iter().map(SocketAddr::port).collect();
    ports.sort_unstable();
    ports.dedup();
    let wanted = (https_runs(config) && !ports.is_empty()).then(|| {
        let ports: Vec<String> = ports.iter().map(u16::to_string).collect();
        format!(
            "# Written by `hotline setup`: hotline's HTTPS listener (the owner's pages, the \
             provisioning links) is reachable (removed when it is off).\n\
             add rule inet filter input tcp dport {{ {} }} accept\n",
            ports.join(", ")
        )
    });
    write_drop_in(&dir.join(WEB_FILE), wanted)
}

/// Writes the drop-in at `path` with `wanted`, or removes it when `None`; returns whether that
/// changed anything.
pub fn write_drop_in(path: &Path, wanted: Option<String>) -> io::Result<bool> {
    let existing = match std::fs::read_to_string(path) {
        Ok(text) => Some(text),
        Err(error) if error.kind() == io::ErrorKind::NotFound => None,
        Err(error) => return Err(error),
    };
    if existing == wanted {
        return Ok(false);
    }
    match wanted {
        Some(text) => {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            std::fs::write(path, text)?;
        }
        None => std::fs::remove_file(path)?,
    }
    Ok(true)
}
