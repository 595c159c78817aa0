//! The HTTPS side (DESIGN.md): the web listeners, and the certificate hotline obtains and renews
//! from an ACME CA for them and for SIP over TLS.
//!
//! The HTTPS listener answers TLS-ALPN-01 validations and, behind [`http::Router`], the
//! provisioning links ([`provision`]) and the owner's pages ([`owner`]), which reach the core
//! through [`CoreHandle`]; the plain HTTP listener answers HTTP-01 validations. A renewal task
//! keeps the certificate current and swaps it into [`CurrentCertificate`], which both TLS
//! listeners serve from, so no connection is dropped.

pub mod acme;
mod ca;
pub mod challenges;
pub mod dns;
pub mod http;
mod listener;
pub mod owner;
pub mod provision;
pub mod renewal;
pub mod status;

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use tokio::sync::{mpsc, oneshot};
use tracing::{info, warn};

use crate::certificate::{self, CurrentCertificate};
use crate::clock::wall_ms as now_ms;
use crate::config::{ChallengeKind, Config};
use crate::core::bans::Utc;
use crate::data_dir::DataDir;
use crate::net::changes::UserKeys;
use crate::net::inbox::CoreHandle;
use crate::net::{socket, tls};
use crate::store::Store;
use challenges::{Challenges, Host, WebCertificate};
use http::{Gate, Handler, Reply, Request, Response, Router};
use owner::OwnerPages;
use renewal::RenewalState;
use status::CertificateInfo;

/// Where HTTP-01 validations look (RFC 8555 §8.3).
const HTTP01_PATH: &str = "/.well-known/acme-challenge/";

/// Asks the renewal task to renew now; it answers with the outcome for the person who asked.
pub type RenewRequest = oneshot::Sender<Result<String, String>>;

/// Starts the web side: the HTTPS listener when `[web]` is enabled or ACME validates over it,
/// and with ACME, the stored CA certificate served at once if there is one for the current
/// names, the HTTP-01 listener if that is the challenge, and the renewal task. Returns the
/// channel for `hotline cert renew` when ACME is on.
pub fn start(
    config: &Config,
    current: Arc<CurrentCertificate>,
    core: CoreHandle,
    store: Arc<Store>,
    users: Arc<UserKeys>,
    provisioning: Arc<provision::Provisioning>,
) -> anyhow::Result<Option<mpsc::Sender<RenewRequest>>> {
    let acme = config.acme.enabled && config.tls.certificate.is_none();
    if !acme && !config.web.enabled {
        return Ok(None);
    }
    let client = client(config);
    if acme {
        let path = client.certificate_file();
        if status::served_certificate(config) == path {
            match certificate::load_certified_key(&path, &path) {
                Ok(key) => {
                    log_certificate(&key, "TLS certificate from the CA");
                    current.replace(key);
                }
                Err(error) => warn!(%error, "cannot use the certificate from the CA"),
            }
        }
    }
    let listeners = Listeners {
        https: config.web.enabled || (acme && config.acme.challenge == ChallengeKind::TlsAlpn01),
        http: acme && config.acme.challenge == ChallengeKind::Http01,
    };
    let links = provision::Links {
        provisioning,
        core: core.clone(),
    };
    let link_base = provision::link::base(config);
    let owner = OwnerPages::new(core.clone(), store, users, current.clone(), link_base);
    let pages = Router::default()
        .route(provision::link::PATH_PREFIX, links)
        .route("/", owner);
    let pages = Arc::new(pages);
    let gate: Arc<dyn Gate> = Arc::new(core);
    bind_listeners(
        config,
        listeners,
        &client.challenges,
        current.clone(),
        pages,
        Some(gate),
    )?;
    if !acme {
        return Ok(None);
    }
    let (requests, inbox) = mpsc::channel(4);
    tokio::spawn(renew_forever(client, current, inbox));
    Ok(Some(requests))
}

/// `hotline cert renew` while no server runs: binds the challenge listener itself.
pub fn renew_without_server(config: &Config) -> anyhow::Result<String> {
    if !config.acme.enabled {
        bail!("ACME is off: set `enabled = true` in [acme] of the configuration first");
    }
    if config.tls.certificate.is_some() {
        bail!("[tls] names certificate files, so hotline does not obtain one: remove them first");
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    runtime.block_on(async {
        let identity =
            certificate::load_or_generate(&DataDir::new(&config.data_dir), &config.domain, None)?;
        let client = client(config);
        let listeners = Listeners {
            https: config.acme.challenge == ChallengeKind::TlsAlpn01,
            http: config.acme.challenge == ChallengeKind::Http01,
        };
        let pages = Arc::new(Router::default());
        let current = identity.current.clone();
        bind_listeners(config, listeners, &client.challenges, current, pages, None)?;
        let mut state = RenewalState::load(&client.dir);
        Ok(renew(&client, None, &mut state).await?)
    })
}

fn client(config: &Config) -> acme::Client {
    acme::Client {
        acme: config.acme.clone(),
        hosts: acme::hosts(config),
        dir: DataDir::new(&config.data_dir).tls(),
        challenges: Arc::new(Challenges::default()),
    }
}

/// Which web listeners to bind.
#[derive(Clone, Copy)]
struct Listeners {
    https: bool,
    http: bool,
}

fn bind_listeners(
    config: &Config,
    listeners: Listeners,
    challenges: &Arc<Challenges>,
    current: Arc<CurrentCertificate>,
    pages: Arc<Router>,
    gate: Option<Arc<dyn Gate>>,
) -> anyhow::Result<()> {
    let https = config.web.https.iter().filter(|_| listeners.https);
    let http = config.web.http.iter().filter(|_| listeners.http);
    for (transport, &addr) in https.map(|a| ("HTTPS", a)).chain(http.map(|a| ("HTTP", a))) {
        let listener = socket::bind_tcp(addr).with_context(|| {
            format!(
                "cannot listen on {transport} {addr} (a port below 1024 needs root or \
                 CAP_NET_BIND_SERVICE)"
            )
        })?;
        info!(transport = %transport, address = %listener.local_addr()?, "listening");
        if transport == "HTTPS" {
            let resolver = WebCertificate {
                current: current.clone(),
                challenges: challenges.clone(),
            };
            let config = tls::server_config(Arc::new(resolver));
            listener::spawn_https(listener, config, pages.clone(), gate.clone());
        } else {
            let router = Router::default().route(HTTP01_PATH, Http01(challenges.clone()));
            listener::spawn_http(listener, Arc::new(router));
        }
    }
    Ok(())
}

/// Answers `/.well-known/acme-challenge/<token>` with the key authorization.
struct Http01(Arc<Challenges>);

impl Handler for Http01 {
    fn handle(&self, request: Request) -> Reply<'_> {
        let token = request.path().strip_prefix(HTTP01_PATH).unwrap_or_default();
        let response = match self.0.http01(token) {
            Some(key_authorization) => {
                Response::new(200, "application/octet-stream", key_authorization)
            }
            None => Response::not_found(),
        };
        Box::pin(async { response })
    }
}

/// Renews when due (see [`renewal`]) or when asked, and asks the CA for the certificate's
/// renewal window when that is due; sleeps at most an hour at a time, so that a wall clock set
/// by NTP long after boot is taken into account. The state is kept in memory too, so that a
/// data directory that cannot be written never turns the backoff off.
async fn renew_forever(
    client: acme::Client,
    current: Arc<CurrentCertificate>,
    mut requests: mpsc::Receiver<RenewRequest>,
) {
    let mut state = RenewalState::load(&client.dir);
    loop {
        let info = CertificateInfo::read(&client.certificate_file())
            .filter(|info| info.covers(&client.hosts));
        if let Some(info) = &info
            && state.ari_due(now_ms())
        {
            let id = info.ari_id.as_ref();
            renewal::ask_window(&client, id, info.not_after_ms, &mut state, now_ms()).await;
        }
        let due = info.as_ref().map(|info| info.renewal_due(&state).0);
        let mut next = renewal::next_attempt(due, &state);
        if info.is_some() {
            next = next.min(state.ari_poll_at_ms.unwrap_or(u64::MAX));
        }
        let now = now_ms();
        let reply = if next > now {
            let wait = Duration::from_millis((next - now).min(3_600_000));
            tokio::select! {
                () = tokio::time::sleep(wait) => continue,
                Some(reply) = requests.recv() => Some(reply),
            }
        } else {
            None
        };
        let outcome = renew(&client, Some(&current), &mut state).await;
        if let Some(reply) = reply {
            let _ = reply.send(outcome.map_err(|failure| failure.to_string()));
        }
    }
}

/// One attempt, whatever the schedule: one log line for its outcome, the state saved, and the
/// new certificate swapped into `current`. On failure the old certificate stays.
async fn renew(
    client: &acme::Client,
    current: Option<&CurrentCertificate>,
    state: &mut RenewalState,
) -> Result<String, RenewalFailure> {
    let existing = CertificateInfo::read(&client.certificate_file());
    let renewal = existing.is_some();
    let replaces = existing
        .and_then(|info| info.ari_id)
        .filter(|id| state.has_window_for(&id.to_string()));
    let now = now_ms();
    let save = |state: &RenewalState| {
        if let Err(error) = state.save(&client.dir) {
            warn!(%error, "cannot save the certificate renewal state");
        }
    };
    // Saved and swapped before the log line, so that whoever reads the line finds both done.
    let obtained = client.obtain(replaces).await.and_then(|key| {
        let info = key.cert.first().and_then(|der| CertificateInfo::parse(der));
        match unusable(info.as_ref(), &client.hosts, now_ms()) {
            Some(why) => Err(acme::AcmeError::Unusable(why)),
            None => Ok(key),
        }
    });
    match obtained {
        Ok(key) => {
            state.succeeded(now);
            save(state);
            if let Some(current) = current {
                current.replace(key.clone());
            }
            Ok(match renewal {
                true => log_certificate(&key, "certificate renewed"),
                false => log_certificate(&key, "certificate issued"),
            })
        }
        Err(error) => {
            let wait = state.failed(error.to_string(), now);
            save(state);
            let retry_at = Utc(now + wait.as_millis() as u64);
            warn!(%error, %retry_at, "certificate renewal failed");
            Err(RenewalFailure {
                error,
                retry_at_ms: retry_at.0,
            })
        }
    }
}

/// Why a certificate the CA issued cannot replace the one served, if it cannot: it must name
/// every host and not have expired. Counted as a failure, so the next order waits its backoff
/// rather than following at once, again and again, until the CA's rate limit.
fn unusable(info: Option<&CertificateInfo>, hosts: &[Host], now_ms: u64) -> Option<String> {
    let Some(info) = info else {
        return Some("cannot be read".to_owned());
    };
    if !info.covers(hosts) {
        let names: Vec<String> = hosts.iter().map(Host::to_string).collect();
        return Some(format!("does not name all of {}", names.join(", ")));
    }
    (info.not_after_ms <= now_ms).then(|| format!("expired at {}", Utc(info.not_after_ms)))
}

/// An attempt that failed, and when hotline tries again by itself.
#[derive(Debug, thiserror::Error)]
#[error("{error}. Next automatic attempt at {}.", Utc(*retry_at_ms))]
pub struct RenewalFailure {
    pub error: acme::AcmeError,
    retry_at_ms: u64,
}

/// Logs `message` with the certificate's names, issuer and expiry; returns them as a sentence.
fn log_certificate(key: &rustls::sign::CertifiedKey, message: &'static str) -> String {
    let Some(info) = key.cert.first().and_then(|der| CertificateInfo::parse(der)) else {
        info!("{message}");
        return format!("{message}.");
    };
    let names: Vec<String> = info.names.iter().map(|h| h.to_string()).collect();
    let (names, expires) = (names.join(", "), Utc(info.not_after_ms));
    info!(%names, issuer = %info.issuer, %expires, "{message}");
    format!(
        "Certificate for {names} from {}, valid until {expires}.",
        info.issuer
    )
}

#[cfg(test)]
mod tests {
    use rcgen::{CertificateParams, KeyPair, date_time_ymd};

    use super::*;

    fn info(name: &str, until_year: i32) -> CertificateInfo {
        let mut params = CertificateParams::new(vec![name.to_owned()]).unwrap();
        params.not_before = date_time_ymd(2020, 1, 1);
        params.not_after = date_time_ymd(until_year, 1, 1);
        let certificate = params.self_signed(&KeyPair::generate().unwrap()).unwrap();
        CertificateInfo::parse(certificate.der()).unwrap()
    }

    #[test]
    fn a_certificate_the_ca_issued_must_name_every_host_and_be_valid() {
        let hosts = [Host::Dns("hotline.test".to_owned())];
        let now = 1_800_000_000_000; // 2027
        assert_eq!(
            unusable(Some(&info("hotline.test", 2030)), &hosts, now),
            None
        );
        let other = unusable(Some(&info("other.test", 2030)), &hosts, now).unwrap();
        assert!(
            other.contains("does not name all of hotline.test"),
            "{other}"
        );
        let expired = unusable(Some(&info("hotline.test", 2021)), &hosts, now).unwrap();
        assert!(expired.starts_with("expired at 2021-01-01"), "{expired}");
        assert!(unusable(None, &hosts, now).is_some());
    }
}
