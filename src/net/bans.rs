//! Writes new bans to the store in the background: a ban is in force in the core at once and on
//! disk a moment later, without the core task waiting for an fsync. Bans that arrive while a
//! write runs go into the next one, so a burst of bans costs a few fsyncs, not one each.

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;
use tokio::task::JoinHandle;
use tracing::{debug, error, warn};

use crate::clock::wall_ms;
use crate::core::bans::Ban;
use crate::store::Store;

/// Bans waiting to be written. More means the disk is far behind; the ban still holds in
/// memory until the server stops.
const QUEUE: usize = 256;

pub struct BanWriter {
    queue: mpsc::Sender<Ban>,
    task: JoinHandle<()>,
}

impl BanWriter {
    pub fn spawn(store: Arc<Store>) -> BanWriter {
        let (queue, pending) = mpsc::channel(QUEUE);
        let task = tokio::spawn(write(store, pending));
        BanWriter { queue, task }
    }

    /// Queues a ban for writing; never waits.
    pub fn save(&self, ban: Ban) {
        if let Err(TrySendError::Full(ban) | TrySendError::Closed(ban)) = self.queue.try_send(ban) {
            warn!(scope = %ban.scope, "ban not saved: the database is behind; it holds until the server stops");
        }
    }

    /// Writes what is queued, then returns.
    pub async fn finish(self) {
        drop(self.queue);
        if let Err(e) = self.task.await {
            error!(error = %e, "ban writer failed");
        }
    }
}

async fn write(store: Arc<Store>, mut pending: mpsc::Receiver<Ban>) {
    while let Some(ban) = pending.recv().await {
        let mut batch = vec![ban];
        while let Ok(ban) = pending.try_recv() {
            batch.push(ban);
        }
        let count = batch.len();
        let store = store.clone();
        let written = tokio::task::spawn_blocking(move || store.save_bans(&batch, wall_ms())).await;
        match written {
            Ok(Ok(())) => debug!(count, "bans saved"),
            Ok(Err(e)) => error!(error = %e, "cannot save bans"),
            Err(e) => error!(error = %e, "ban writer failed"),
        }
    }
}
