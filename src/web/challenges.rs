//! The ACME challenges hotline is answering right now: HTTP-01 tokens (RFC 8555 §8.3) and
//! TLS-ALPN-01 certificates (RFC 8737). Only hotline's own ACME client adds entries, one per
//! identifier of an order, and removes them when the order is done.

use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

use rcgen::{CertificateParams, CustomExtension, KeyPair, SanType};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::certificate::CurrentCertificate;

/// The ALPN protocol of TLS-ALPN-01 validation handshakes (RFC 8737 §6.2).
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

#[derive(Debug, Default)]
pub struct Challenges(Mutex<Pending>);

#[derive(Debug, Default)]
struct Pending {
    /// HTTP-01: token and key authorization.
    http: Vec<(String, String)>,
    /// TLS-ALPN-01: the server name the CA asks for, and the validation certificate.
    alpn: Vec<(String, Arc<CertifiedKey>)>,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot make the TLS-ALPN-01 validation certificate for {name}: {reason}")]
pub struct ChallengeError {
    name: String,
    reason: String,
}

impl Challenges {
    fn pending(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn add_http01(&self, token: &str, key_authorization: &str) {
        self.pending()
            .http
            .push((token.to_owned(), key_authorization.to_owned()));
    }

    /// The key authorization for `token`, as the body of
    /// `/.well-known/acme-challenge/<token>`.
    pub fn http01(&self, token: &str) -> Option<String> {
        let pending = self.pending();
        let found = pending.http.iter().find(|(t, _)| t == token);
        found.map(|(_, key_authorization)| key_authorization.clone())
    }

    /// Makes the self-signed validation certificate for `host` (a DNS name or an IP address)
    /// carrying `digest`, the SHA-256 of the key authorization, in a critical acmeIdentifier
    /// extension.
    pub fn add_tls_alpn01(&self, host: &Host, digest: &[u8]) -> Result<(), ChallengeError> {
        let name = host.server_name();
        let error = |reason: String| ChallengeError {
            name: name.clone(),
            reason,
        };
        let mut params = CertificateParams::default();
        params.subject_alt_names = vec![match host {
            Host::Dns(dns) => SanType::DnsName(
                dns.as_str()
                    .try_into()
                    .map_err(|e: rcgen::Error| error(e.to_string()))?,
            ),
            Host::Ip(ip) => SanType::IpAddress(*ip),
        }];
        params.custom_extensions = vec![CustomExtension::new_acme_identifier(digest)];
        let key = KeyPair::generate().map_err(|e| error(e.to_string()))?;
        let certificate = params.self_signed(&key).map_err(|e| error(e.to_string()))?;
        let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let signing_key = rustls::crypto::ring::default_provider()
            .key_provider
            .load_private_key(der)
            .map_err(|e| error(e.to_string()))?;
        let certified = CertifiedKey::new(vec![certificate.der().clone()], signing_key);
        self.pending().alpn.push((name, Arc::new(certified)));
        Ok(())
    }

    fn tls_alpn01(&self, server_name: &str) -> Option<Arc<CertifiedKey>> {
        let pending = self.pending();
        let found = pending.alpn.iter().find(|(name, _)| name == server_name);
        found.map(|(_, key)| key.clone())
    }

    /// Forgets every challenge: the order they belonged to is finished.
    pub fn clear(&self) {
        let mut pending = self.pending();
        pending.http.clear();
        pending.alpn.clear();
    }
}

/// What a certificate is for: a DNS name or an IP address (RFC 8738).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    Dns(String),
    Ip(IpAddr),
}

impl std::fmt::Display for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Host::Dns(name) => f.write_str(name),
            Host::Ip(ip) => write!(f, "{ip}"),
        }
    }
}

impl Host {
    /// The TLS server name a CA sends when validating this host: the name itself, or for an
    /// address its reverse-mapping name (RFC 8738 §6).
    pub fn server_name(&self) -> String {
        match self {
            Host::Dns(name) => name.to_ascii_lowercase(),
            Host::Ip(IpAddr::V4(ip)) => {
                let [a, b, c, d] = ip.octets();
                format!("{d}.{c}.{b}.{a}.in-addr.arpa")
            }
            Host::Ip(IpAddr::V6(ip)) => {
                let mut name = String::with_capacity(72);
                for byte in ip.octets().iter().rev() {
                    name.push_str(&format!("{:x}.{:x}.", byte & 0xf, byte >> 4));
                }
                name + "ip6.arpa"
            }
        }
    }
}

/// The HTTPS listener's certificate choice: the validation certificate for a TLS-ALPN-01
/// handshake, the server certificate for everything else.
#[derive(Debug)]
pub struct WebCertificate {
    pub current: Arc<CurrentCertificate>,
    pub challenges: Arc<Challenges>,
}

impl ResolvesServerCert for WebCertificate {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let validation = hello
            .alpn()
            .is_some_and(|mut protocols| protocols.any(|p| p == ACME_TLS_ALPN));
        if validation {
            return self
                .challenges
                .tls_alpn01(&hello.server_name()?.to_ascii_lowercase());
        }
        self.current.resolve(hello)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reverse_names_of_addresses() {
        assert_eq!(
            Host::Ip("2001:db8::567:89ab".parse().unwrap()).server_name(),
            "b.a.9.8.7.6.5.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa"
        );
        assert_eq!(
            Host::Ip("192.0.2.5".parse().unwrap()).server_name(),
            "5.2.0.192.in-addr.arpa"
        );
        assert_eq!(
            Host::Dns("SIP.Example.org".into()).server_name(),
            "sip.example.org"
        );
    }

    #[test]
    fn http01_tokens_are_answered_until_cleared() {
        let challenges = Challenges::default();
        challenges.add_http01("token-a", "token-a.thumbprint");
        assert_eq!(
            challenges.http01("token-a").as_deref(),
            Some("token-a.thumbprint")
        );
        assert_eq!(challenges.http01("token-b"), None);
        challenges.clear();
        assert_eq!(challenges.http01("token-a"), None);
    }
}
