//! Obtaining a certificate from an ACME CA (RFC 8555) with instant-acme: the account, one
//! order for every name, its challenges answered by the web listeners, and the issued chain
//! with its new key written to `<data_dir>/tls/acme.pem` in one step.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, CertificateIdentifier, ChallengeType,
    Identifier, NewAccount, NewOrder, OrderStatus, RetryPolicy,
};
use rcgen::{CertificateParams, DistinguishedName, KeyPair, SanType};
use rustls::sign::CertifiedKey;
use rustls_pki_types::CertificateDer;
use serde::{Deserialize, Serialize};
use tracing::warn;

use super::ca::CaClient;
use super::challenges::{Challenges, Host};
use crate::certificate::{self as tls, TlsError};
use crate::config::{self, ChallengeKind};

/// The account key and URL, owner-only.
pub const ACCOUNT_FILE: &str = "acme-account.toml";

/// The issued chain and its private key in one file, so that a crash never pairs a new key with
/// an old certificate. Owner-only.
pub const CERTIFICATE_FILE: &str = "acme.pem";

/// How long the CA may take to validate, and then to issue.
const POLL: RetryPolicy = RetryPolicy::new()
    .initial_delay(Duration::from_millis(250))
    .backoff(1.5)
    .timeout(Duration::from_secs(60));

const RATE_LIMITED: &str = "urn:ietf:params:acme:error:rateLimited";
/// Problems that mean the CA could not reach or verify this board (RFC 8555 §6.7).
const VALIDATION_FAILURES: [&str; 6] = [
    "urn:ietf:params:acme:error:connection",
    "urn:ietf:params:acme:error:dns",
    "urn:ietf:params:acme:error:tls",
    "urn:ietf:params:acme:error:unauthorized",
    "urn:ietf:params:acme:error:incorrectResponse",
    "urn:ietf:params:acme:error:caa",
];
const REJECTED_IDENTIFIERS: [&str; 2] = [
    "urn:ietf:params:acme:error:rejectedIdentifier",
    "urn:ietf:params:acme:error:unsupportedIdentifier",
];

#[derive(Debug, thiserror::Error)]
pub enum AcmeError {
    #[error(
        "cannot reach the CA at {directory}: {reason}; check that this board reaches the \
         internet over IPv6, and `acme.directory`"
    )]
    Unreachable { directory: String, reason: String },
    #[error(
        "the CA could not validate {detail}; check that the AAAA record of each name points to \
         this board and that TCP port {port} is open to this board in the router's firewall"
    )]
    Validation { detail: String, port: u16 },
    #[error("the CA's rate limit is reached ({detail}); hotline tries again later")]
    RateLimited { detail: String },
    #[error(
        "the CA does not issue certificates for {names} ({detail}); the self-signed \
         certificate stays: use a DNS name as `domain` for a certificate from the CA"
    )]
    Rejected { names: String, detail: String },
    #[error("the CA refused the order: {0}")]
    Ca(String),
    #[error("the CA issued a certificate that {0}; the old certificate stays")]
    Unusable(String),
    #[error("cannot keep the ACME account in {path}: {reason}")]
    Account { path: PathBuf, reason: String },
    #[error(transparent)]
    Certificate(#[from] TlsError),
}

/// Turns an API problem into the error that tells the owner what to check.
fn classify(error: instant_acme::Error, hosts: &[Host], challenge: ChallengeKind) -> AcmeError {
    match error {
        instant_acme::Error::Api(problem) => {
            let detail = problem
                .detail
                .clone()
                .unwrap_or_else(|| problem.to_string());
            let kind = problem.r#type.as_deref().unwrap_or_default();
            let subkinds = problem.subproblems.iter();
            let rejected = REJECTED_IDENTIFIERS.contains(&kind)
                || subkinds
                    .filter_map(|s| s.r#type.as_deref())
                    .any(|k| REJECTED_IDENTIFIERS.contains(&k));
            if kind == RATE_LIMITED {
                AcmeError::RateLimited { detail }
            } else if VALIDATION_FAILURES.contains(&kind) {
                AcmeError::Validation {
                    detail,
                    port: public_port(challenge),
                }
            } else if rejected {
                AcmeError::Rejected {
                    names: names(hosts),
                    detail,
                }
            } else {
                AcmeError::Ca(detail)
            }
        }
        error => AcmeError::Ca(error.to_string()),
    }
}

/// The port the CA connects to, whatever port the listener has behind the router.
fn public_port(challenge: ChallengeKind) -> u16 {
    match challenge {
        ChallengeKind::TlsAlpn01 => 443,
        ChallengeKind::Http01 => 80,
    }
}

fn names(hosts: &[Host]) -> String {
    let names: Vec<String> = hosts.iter().map(Host::to_string).collect();
    names.join(", ")
}

/// The identifiers hotline asks for: the domain and the aliases that are DNS names, or the
/// domain alone when it is an IP address (RFC 8738).
pub fn hosts(config: &config::Config) -> Vec<Host> {
    let host = |text: &str| match crate::sip::Host::parse(text)? {
        crate::sip::Host::Name(name) => Some(Host::Dns(name.to_ascii_lowercase())),
        crate::sip::Host::Ip(ip) => Some(Host::Ip(ip)),
    };
    let Some(domain) = host(&config.domain) else {
        return Vec::new();
    };
    if let Host::Ip(_) = domain {
        return vec![domain];
    }
    let mut hosts = vec![domain];
    for alias in config.aliases.iter().filter_map(|a| host(a)) {
        if matches!(alias, Host::Dns(_)) && !hosts.contains(&alias) {
            hosts.push(alias);
        }
    }
    hosts
}

/// One ACME client configuration, for the server's renewals and for `hotline cert renew`.
pub struct Client {
    pub acme: config::Acme,
    pub hosts: Vec<Host>,
    /// `<data_dir>/tls`
    pub dir: PathBuf,
    pub challenges: Arc<Challenges>,
}

#[derive(Serialize, Deserialize)]
struct StoredAccount {
    directory: String,
    credentials: AccountCredentials,
}

impl Client {
    pub fn certificate_file(&self) -> PathBuf {
        self.dir.join(CERTIFICATE_FILE)
    }

    /// Orders a certificate for every host, answers the challenges, and writes the chain and
    /// its new key. The order names the certificate it `replaces` (RFC 9773 §5) when the CA
    /// suggested a renewal window for it. The challenges are forgotten whatever the outcome.
    pub async fn obtain(
        &self,
        replaces: Option<CertificateIdentifier<'static>>,
    ) -> Result<Arc<CertifiedKey>, AcmeError> {
        let result = self.order(replaces).await;
        self.challenges.clear();
        result
    }

    /// The renewal window the CA suggests for `certificate` (RFC 9773), in Unix milliseconds,
    /// and how long to wait before asking again; `None` when the CA offers no windows.
    pub async fn renewal_window(
        &self,
        certificate: &CertificateIdentifier<'_>,
    ) -> Result<Option<((u64, u64), Duration)>, AcmeError> {
        let account = self.account().await?;
        let (info, retry_after) = match account.renewal_info(certificate).await {
            Ok(answer) => answer,
            Err(instant_acme::Error::Unsupported(_)) => return Ok(None),
            Err(error) => return Err(classify(error, &self.hosts, self.acme.challenge)),
        };
        let window = info.suggested_window;
        let ms = |seconds: i64| u64::try_from(seconds).unwrap_or(0).saturating_mul(1000);
        let window = (
            ms(window.start.unix_timestamp()),
            ms(window.end.unix_timestamp()),
        );
        Ok(Some((window, retry_after)))
    }

    async fn order(
        &self,
        replaces: Option<CertificateIdentifier<'static>>,
    ) -> Result<Arc<CertifiedKey>, AcmeError> {
        let account = self.account().await?;
        let identifiers: Vec<Identifier> = self
            .hosts
            .iter()
            .map(|host| match host {
                Host::Dns(name) => Identifier::Dns(name.clone()),
                Host::Ip(ip) => Identifier::Ip(*ip),
            })
            .collect();
        let classify = |error| classify(error, &self.hosts, self.acme.challenge);
        let replacing = match replaces {
            Some(replaces) => {
                let order = NewOrder::new(&identifiers).replaces(replaces);
                match account.new_order(&order).await {
                    Ok(order) => Some(order),
                    // A CA may refuse the replacement (already replaced, say): a plain
                    // order still renews.
                    Err(error) => {
                        warn!(%error, "the CA refused an order replacing the certificate");
                        None
                    }
                }
            }
            None => None,
        };
        let mut order = match replacing {
            Some(order) => order,
            None => account
                .new_order(&NewOrder::new(&identifiers))
                .await
                .map_err(classify)?,
        };

        let kind = match self.acme.challenge {
            ChallengeKind::TlsAlpn01 => ChallengeType::TlsAlpn01,
            ChallengeKind::Http01 => ChallengeType::Http01,
        };
        let mut authorizations = order.authorizations();
        while let Some(authorization) = authorizations.next().await {
            let mut authorization = authorization.map_err(classify)?;
            if authorization.status == AuthorizationStatus::Valid {
                continue;
            }
            let host = match authorization.identifier().identifier {
                Identifier::Ip(ip) => Host::Ip(*ip),
                Identifier::Dns(name) => Host::Dns(name.clone()),
                other => return Err(AcmeError::Ca(format!("unexpected identifier {other:?}"))),
            };
            let Some(mut challenge) = authorization.challenge(kind.clone()) else {
                return Err(AcmeError::Ca(format!(
                    "the CA offers no {kind:?} challenge for {}",
                    host.server_name()
                )));
            };
            let key_authorization = challenge.key_authorization();
            match self.acme.challenge {
                ChallengeKind::Http01 => self
                    .challenges
                    .add_http01(&challenge.token, key_authorization.as_str()),
                ChallengeKind::TlsAlpn01 => self
                    .challenges
                    .add_tls_alpn01(&host, key_authorization.digest().as_ref())
                    .map_err(|error| AcmeError::Ca(error.to_string()))?,
            }
            challenge.set_ready().await.map_err(classify)?;
        }

        let status = order.poll_ready(&POLL).await.map_err(classify)?;
        if status != OrderStatus::Ready {
            let mut details = Vec::new();
            let mut authorizations = order.authorizations();
            while let Some(Ok(authorization)) = authorizations.next().await {
                let name = authorization.identifier().to_string();
                for challenge in &authorization.challenges {
                    if let Some(problem) = &challenge.error {
                        let detail = problem.detail.as_deref().unwrap_or("no detail");
                        details.push(format!("{name}: {detail}"));
                    }
                }
            }
            if details.is_empty() {
                details.push(format!("the order is {status:?}"));
            }
            return Err(AcmeError::Validation {
                detail: details.join("; "),
                port: public_port(self.acme.challenge),
            });
        }

        let key = KeyPair::generate().map_err(|e| AcmeError::Ca(e.to_string()))?;
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        for host in &self.hosts {
            params.subject_alt_names.push(match host {
                Host::Dns(name) => SanType::DnsName(
                    name.as_str()
                        .try_into()
                        .map_err(|e: rcgen::Error| AcmeError::Ca(e.to_string()))?,
                ),
                Host::Ip(ip) => SanType::IpAddress(*ip),
            });
        }
        let request = params
            .serialize_request(&key)
            .map_err(|e| AcmeError::Ca(e.to_string()))?;
        order.finalize_csr(request.der()).await.map_err(classify)?;
        let chain = order.poll_certificate(&POLL).await.map_err(classify)?;

        let path = self.certificate_file();
        tls::create_private_dir(&self.dir)?;
        tls::write_atomically(&path, (chain + &key.serialize_pem()).as_bytes(), 0o600)?;
        Ok(tls::load_certified_key(&path, &path)?)
    }

    /// The stored account for this directory, or a new one (whose terms of service the owner
    /// accepted by enabling ACME).
    async fn account(&self) -> Result<Account, AcmeError> {
        let path = self.dir.join(ACCOUNT_FILE);
        let directory = &self.acme.directory;
        let unreachable = |error: instant_acme::Error| AcmeError::Unreachable {
            directory: directory.clone(),
            reason: error.to_string(),
        };
        let builder = || {
            let client = CaClient::new(self.acme.directory_root.as_deref())
                .map_err(|error| instant_acme::Error::Other(Box::new(error)))?;
            Ok::<_, instant_acme::Error>(Account::builder_with_http(Box::new(client)))
        };
        let account_error = |reason: String| AcmeError::Account {
            path: path.clone(),
            reason,
        };
        if let Some(stored) = read_account(&path).map_err(account_error)?
            && stored.directory == *directory
        {
            let builder = builder().map_err(unreachable)?;
            return builder
                .from_credentials(stored.credentials)
                .await
                .map_err(unreachable);
        }
        let contact: Vec<&str> = self.acme.contact.iter().map(String::as_str).collect();
        let new_account = NewAccount {
            contact: &contact,
            terms_of_service_agreed: true,
            only_return_existing: false,
        };
        let builder = builder().map_err(unreachable)?;
        let (account, credentials) =
            match builder.create(&new_account, directory.clone(), None).await {
                Ok(created) => created,
                Err(instant_acme::Error::Api(problem)) => {
                    let error = instant_acme::Error::Api(problem);
                    return Err(classify(error, &self.hosts, self.acme.challenge));
                }
                Err(error) => return Err(unreachable(error)),
            };
        let stored = StoredAccount {
            directory: directory.clone(),
            credentials,
        };
        let text = toml::to_string(&stored).map_err(|e| account_error(e.to_string()))?;
        tls::create_private_dir(&self.dir)?;
        tls::write_atomically(&path, text.as_bytes(), 0o600)?;
        Ok(account)
    }
}

/// The ARI identifier of a certificate (RFC 9773 §4.1); `None` without an authority key
/// identifier.
pub fn certificate_id(der: &[u8]) -> Option<CertificateIdentifier<'static>> {
    let der = CertificateDer::from(der);
    CertificateIdentifier::try_from(&der)
        .ok()
        .map(CertificateIdentifier::into_owned)
}

fn read_account(path: &Path) -> Result<Option<StoredAccount>, String> {
    match fs::read_to_string(path) {
        Ok(text) => toml::from_str(&text)
            .map(Some)
            .map_err(|e| format!("{e}; remove the file to register a new account")),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(error.to_string()),
    }
}
