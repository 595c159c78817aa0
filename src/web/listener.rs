//! The web listeners: HTTPS (ACME TLS-ALPN-01 validation, and HTTP for the pages) and plain
//! HTTP (HTTP-01 validation). Each caps its open connections and gives every connection
//! [`http::READ_TIMEOUT`] for its handshake; [`http::serve`] bounds the rest.

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, warn};

use super::challenges::ACME_TLS_ALPN;
use super::http::{self, Gate, Handler};

/// Open connections per listener; more wait in the kernel's backlog.
const MAX_CONNECTIONS: usize = 64;

/// Serves HTTPS on `listener`. `config` picks the certificate (see
/// [`super::challenges::WebCertificate`]); a validation handshake (ALPN `acme-tls/1`) ends
/// after the handshake, as RFC 8737 asks.
pub fn spawn_https(
    listener: TcpListener,
    mut config: rustls::ServerConfig,
    handler: Arc<dyn Handler>,
    gate: Option<Arc<dyn Gate>>,
) {
    config.alpn_protocols = vec![ACME_TLS_ALPN.to_vec(), b"http/1.1".to_vec()];
    let acceptor = TlsAcceptor::from(Arc::new(config));
    spawn(listener, move |tcp, remote| {
        let (acceptor, handler, gate) = (acceptor.clone(), handler.clone(), gate.clone());
        async move {
            let handshake = tokio::time::timeout(http::READ_TIMEOUT, acceptor.accept(tcp));
            let tls = match handshake.await {
                Ok(Ok(tls)) => tls,
                Ok(Err(error)) => return debug!(%error, "HTTPS handshake failed"),
                Err(_) => return,
            };
            if tls.get_ref().1.alpn_protocol() == Some(ACME_TLS_ALPN) {
                debug!("TLS-ALPN-01 validation handshake");
                return;
            }
            http::serve(tls, remote, handler, gate).await;
        }
    });
}

/// Serves plain HTTP on `listener`.
pub fn spawn_http(listener: TcpListener, handler: Arc<dyn Handler>) {
    spawn(listener, move |tcp, remote| {
        http::serve(tcp, remote, handler.clone(), None)
    });
}

fn spawn<F, Fut>(listener: TcpListener, connection: F)
where
    F: Fn(tokio::net::TcpStream, std::net::SocketAddr) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    tokio::spawn(async move {
        loop {
            let Ok(permit) = permits.clone().acquire_owned().await else {
                return;
            };
            match listener.accept().await {
                Ok((tcp, remote)) => {
                    let served = connection(tcp, remote);
                    tokio::spawn(async move {
                        served.await;
                        drop(permit);
                    });
                }
                Err(error) => warn!(%error, "web accept failed"),
            }
        }
    });
}
