//! The web listeners: HTTPS (ACME TLS-ALPN-01 validation, and HTTP for the pages) and plain
//! HTTP (HTTP-01 validation). Each caps its open connections and gives every connection
//! [`http::READ_TIMEOUT`] for its handshake; [`http::serve`] bounds the rest.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, warn};

use super::challenges::ACME_TLS_ALPN;
use super::http::{self, Gate, Handler};

/// Open connections per listener; more wait in the kernel's backlog.
const MAX_CONNECTIONS: usize = 64;

/// Open connections from one /64 at a time: one attacker owns a whole prefix, and must not hold
/// every connection while the CA (from elsewhere) tries to validate.
const MAX_PER_PREFIX: usize = 8;

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
    let prefixes = Arc::new(Prefixes::default());
    tokio::spawn(async move {
        loop {
            let Ok(permit) = permits.clone().acquire_owned().await else {
                return;
            };
            match listener.accept().await {
                Ok((tcp, peer)) => {
                    let Some(admitted) = Prefixes::admit(&prefixes, peer.ip()) else {
                        debug!(source = %peer, "web connection refused: too many from its /64");
                        continue;
                    };
                    let served = connection(tcp, peer);
                    tokio::spawn(async move {
                        served.await;
                        drop((admitted, permit));
                    });
                }
                Err(error) => warn!(%error, "web accept failed"),
            }
        }
    });
}

/// Open connections per /64; an entry exists only while one is open, so there are at most
/// [`MAX_CONNECTIONS`].
#[derive(Default)]
struct Prefixes(Mutex<HashMap<u64, usize>>);

/// One admitted connection; its prefix's count goes down when it is dropped.
struct Admitted {
    prefixes: Arc<Prefixes>,
    prefix: u64,
}

impl Prefixes {
    fn admit(prefixes: &Arc<Prefixes>, ip: IpAddr) -> Option<Admitted> {
        let prefix = match ip {
            IpAddr::V6(ip) => (ip.to_bits() >> 64) as u64,
            IpAddr::V4(ip) => u64::from(ip.to_bits()),
        };
        let mut open = prefixes.0.lock().unwrap_or_else(PoisonError::into_inner);
        let count = open.entry(prefix).or_default();
        if *count >= MAX_PER_PREFIX {
            return None;
        }
        *count += 1;
        Some(Admitted {
            prefixes: prefixes.clone(),
            prefix,
        })
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut open = self
            .prefixes
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.prefix) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.prefix);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::web::http::{Reply, Request, Response, Router};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    struct Hello;

    impl Handler for Hello {
        fn handle(&self, _: Request) -> Reply<'_> {
            Box::pin(async { Response::text(200, "hello") })
        }
    }

    async fn get(address: std::net::SocketAddr) -> String {
        let mut tcp = tokio::net::TcpStream::connect(address).await.unwrap();
        tcp.write_all(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut answer = String::new();
        let _ = tcp.read_to_string(&mut answer).await;
        answer
    }

    #[tokio::test]
    async fn one_prefix_cannot_hold_every_connection() {
        let listener = crate::net::socket::bind_tcp("[::1]:0".parse().unwrap()).unwrap();
        let address = listener.local_addr().unwrap();
        spawn_http(listener, Arc::new(Router::default().route("/", Hello)));
        let mut idle = Vec::new();
        for _ in 0..MAX_PER_PREFIX {
            idle.push(tokio::net::TcpStream::connect(address).await.unwrap());
        }
        // The listener has taken the idle ones in when it answers (or refuses) the next.
        assert_eq!(
            get(address).await,
            "",
            "refused: its /64 holds {MAX_PER_PREFIX}"
        );
        drop(idle.pop());
        // The freed place shows once the listener has seen the close.
        let mut answer = String::new();
        for _ in 0..1000 {
            answer = get(address).await;
            if !answer.is_empty() {
                break;
            }
        }
        assert!(answer.ends_with("hello"), "{answer}");
    }
}
