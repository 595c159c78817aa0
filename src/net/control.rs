//! The server's end of the control socket: `hotline user …` and `hotline ban …` while the server
//! holds the database.
//! Each change is written to the store first, then the core learns of it.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::mpsc;
use tracing::warn;

use super::changes::{UserKeys, carry_out};
use super::inbox::Event;
use crate::control::{MAX_MESSAGE, Reply, Request, decode_request, encode_reply};
use crate::store::Store;
use crate::web::RenewRequest;

/// How long a client may take to send its request.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Binds the socket (owner-only) and serves it in the background.
pub fn listen(
    path: &Path,
    store: Arc<Store>,
    users: Arc<UserKeys>,
    events: mpsc::Sender<Event>,
    renewals: Option<mpsc::Sender<RenewRequest>>,
) -> anyhow::Result<()> {
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            bail!(
                "another hotline server answers on {}: stop it first",
                path.display()
            );
        }
        // Left behind by a server that did not shut down cleanly.
        std::fs::remove_file(path)
            .with_context(|| format!("cannot remove the stale socket {}", path.display()))?;
    }
    let listener = UnixListener::bind(path)
        .with_context(|| format!("cannot create the control socket {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    tokio::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    let (store, users) = (store.clone(), users.clone());
                    let (events, renewals) = (events.clone(), renewals.clone());
                    tokio::spawn(serve(stream, store, users, events, renewals));
                }
                Err(error) => warn!(%error, "control socket accept failed"),
            }
        }
    });
    Ok(())
}

async fn serve(
    mut stream: UnixStream,
    store: Arc<Store>,
    users: Arc<UserKeys>,
    events: mpsc::Sender<Event>,
    renewals: Option<mpsc::Sender<RenewRequest>>,
) {
    let mut bytes = Vec::new();
    let mut limited = (&mut stream).take(MAX_MESSAGE as u64 + 1);
    let read = limited.read_to_end(&mut bytes);
    let (reply, limit) = match tokio::time::timeout(READ_TIMEOUT, read).await {
        Ok(Ok(_)) => match decode_request(&bytes) {
            Ok(Request::RenewCertificate) => (renew(renewals).await, MAX_MESSAGE),
            Ok(request) => {
                let limit = request.reply_limit();
                (carry_out(request, store, users, &events).await, limit)
            }
            Err(error) => {
                let message = error.to_string();
                (Reply::Failed { message }, MAX_MESSAGE)
            }
        },
        Ok(Err(error)) => {
            warn!(%error, "control socket read failed");
            return;
        }
        Err(_) => return,
    };
    match encode_reply(&reply, limit) {
        Ok(text) => {
            let _ = stream.write_all(text.as_bytes()).await;
            let _ = stream.shutdown().await;
        }
        Err(error) => warn!(%error, "cannot encode control reply"),
    }
}

/// Asks the renewal task to renew now and waits for the outcome.
async fn renew(renewals: Option<mpsc::Sender<RenewRequest>>) -> Reply {
    let Some(renewals) = renewals else {
        return Reply::Failed {
            message: "ACME is off in the running server's configuration: set `enabled = true` \
                      in [acme] and restart it"
                .to_owned(),
        };
    };
    let (reply, outcome) = tokio::sync::oneshot::channel();
    if renewals.send(reply).await.is_err() {
        return Reply::Failed {
            message: "the server's renewal task has stopped".to_owned(),
        };
    }
    match outcome.await {
        Ok(Ok(message)) => Reply::CertificateRenewed { message },
        Ok(Err(message)) => Reply::Failed { message },
        Err(_) => Reply::Failed {
            message: "the server's renewal task has stopped".to_owned(),
        },
    }
}
