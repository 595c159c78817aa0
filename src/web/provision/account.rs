//! Everything a phone's configuration says about one extension, gathered once for every format.

use std::fmt::Write as _;

use crate::config::Config;
use crate::core::user::{Extension, User};

/// One extension as its provisioning files describe it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PhoneAccount {
    /// The SIP domain and Digest realm.
    pub domain: String,
    /// The domain as the host of a URI: an IPv6 address in brackets.
    pub server: String,
    /// The SIP over TLS port.
    pub port: u16,
    pub extension: Extension,
    pub display_name: String,
    /// `None` for a password from before provisioning, which only its HA1 remembers.
    pub password: Option<String>,
    /// H(extension:realm:password) in hex, for clients that take it instead of the password.
    pub ha1_md5: String,
    /// The provisioning link (`https://…/p/<token>`), which the directory URLs extend.
    pub link: String,
    /// The self-signed certificate (PEM) phones must trust, until a CA's replaces it.
    pub self_signed: Option<String>,
}

impl PhoneAccount {
    pub fn new(config: &Config, user: &User, password: Option<String>, link: String) -> Self {
        let server = match config.domain.parse::<std::net::Ipv6Addr>() {
            Ok(ip) => format!("[{ip}]"),
            Err(_) => config.domain.clone(),
        };
        PhoneAccount {
            domain: config.domain.clone(),
            server,
            port: config.listen.tls.first().map_or(5061, |a| a.port()),
            extension: user.extension.clone(),
            display_name: user.display_name.clone(),
            password,
            ha1_md5: crate::core::auth::hex(&user.ha1_md5),
            link,
            self_signed: None,
        }
    }

    /// The name phones show for the account: the display name, else the extension.
    pub fn label(&self) -> &str {
        match self.display_name.is_empty() {
            true => self.extension.as_str(),
            false => &self.display_name,
        }
    }

    /// A file under the link, such as `directory/yealink.xml`.
    pub fn url(&self, file: &str) -> String {
        format!("{}/{file}", self.link)
    }
}

/// The plain settings card, for a person at a phone's keypad or web page.
pub fn card(account: &PhoneAccount) -> String {
    let mut text = String::new();
    let _ = writeln!(text, "Phone settings for extension {}", account.extension);
    let _ = writeln!(text, "  domain:     {}", account.domain);
    let _ = writeln!(
        text,
        "  server:     {} port {}, transport TLS",
        account.server, account.port
    );
    let _ = writeln!(text, "  user:       {}", account.extension);
    match &account.password {
        Some(password) => {
            let _ = writeln!(text, "  password:   {password}");
        }
        None => {
            let _ = writeln!(
                text,
                "  password:   the one shown when the extension was created"
            );
        }
    }
    let _ = writeln!(text, "  media:      SRTP mandatory");
    let _ = writeln!(text, "  network:    IPv6");
    let _ = writeln!(
        text,
        "  directory:  {}",
        account.url("directory/yealink.xml")
    );
    if let Some(pem) = &account.self_signed {
        let _ = writeln!(
            text,
            "  trust:      the server's self-signed certificate, {}",
            account.url("certificate.pem")
        );
        if let Some(fingerprint) = fingerprint(pem) {
            let _ = writeln!(text, "  SHA-256:    {fingerprint}");
        }
    }
    text
}

/// The SHA-256 fingerprint of the first certificate in `pem`, as phones and the server's log
/// show it.
pub fn fingerprint(pem: &str) -> Option<String> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject as _;
    let der = CertificateDer::from_pem_slice(pem.as_bytes()).ok()?;
    Some(crate::certificate::fingerprint(&der))
}
