//! Changes to users and bans, from the control socket or the owner's pages: each is written to
//! the store first, then the core learns of it.

use std::sync::Arc;

use ring::rand::SystemRandom;
use tokio::sync::mpsc;
use tracing::info;

use super::inbox::Event;
use crate::control::{Accounts, Reply, Request, execute};
use crate::core::user::Extension;
use crate::store::Store;
use crate::web::provision::password::PasswordKey;

/// The realm and password key user management needs (see [`Accounts`]).
pub struct UserKeys {
    pub realm: String,
    pub passwords: PasswordKey,
}

/// Executes the request on a blocking thread (it waits for fsync), then tells the core.
pub async fn carry_out(
    request: Request,
    store: Arc<Store>,
    users: Arc<UserKeys>,
    events: &mpsc::Sender<Event>,
) -> Reply {
    let done = tokio::task::spawn_blocking(move || {
        let accounts = Accounts {
            realm: &users.realm,
            passwords: &users.passwords,
        };
        let reply = execute(&store, &accounts, &SystemRandom::new(), &request);
        let event = match &reply {
            Reply::Created { user, .. }
            | Reply::PasswordReset { user, .. }
            | Reply::Renamed { user }
            | Reply::Provisioned {
                user,
                password: Some(_),
                ..
            } => Extension::parse(&user.extension)
                .ok()
                .and_then(|e| store.user(&e).ok().flatten())
                .map(Event::UserChanged),
            Reply::Removed { extension } => {
                Extension::parse(extension).ok().map(Event::UserRemoved)
            }
            Reply::BansLifted { scopes } => Some(Event::BansLifted(
                scopes.iter().filter_map(|s| s.parse().ok()).collect(),
            )),
            Reply::Users { .. }
            | Reply::Provisioned { .. }
            | Reply::LinkRevoked { .. }
            | Reply::OwnerPasswordSet
            | Reply::OwnerPassword { .. }
            | Reply::Bans { .. }
            | Reply::CertificateRenewed { .. }
            | Reply::Snapshot { .. }
            | Reply::Failed { .. } => None,
        };
        (reply, event)
    })
    .await;
    match done {
        Ok((reply, event)) => {
            if let Some(event) = event {
                match &event {
                    Event::UserChanged(user) => info!(extension = %user.extension, "user saved"),
                    Event::UserRemoved(extension) => info!(%extension, "user removed"),
                    Event::BansLifted(scopes) => {
                        for scope in scopes {
                            info!(%scope, "ban lifted");
                        }
                    }
                    _ => {}
                }
                let _ = events.send(event).await;
            }
            reply
        }
        Err(error) => Reply::Failed {
            message: format!("the server failed to carry out the request: {error}"),
        },
    }
}
