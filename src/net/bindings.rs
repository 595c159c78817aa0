//! Writes changed bindings to the store in the background: the core hands out a batch every
//! `flush_interval`, and the write (an fsync) runs beside the core task, which keeps answering.
//! One write at a time; batches that arrive meanwhile are merged into the next one.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{debug, error};

use crate::core::registrar::Binding;
use crate::core::user::Extension;
use crate::store::Store;

type Batch = Vec<(Extension, Vec<Binding>)>;

pub struct BindingWriter {
    /// Unbounded, as the core sends at most one batch per flush interval.
    queue: mpsc::UnboundedSender<Batch>,
    task: JoinHandle<()>,
}

impl BindingWriter {
    pub fn spawn(store: Arc<Store>) -> BindingWriter {
        let (queue, pending) = mpsc::unbounded_channel();
        let task = tokio::spawn(write(store, pending));
        BindingWriter { queue, task }
    }

    /// Queues a batch for writing; never waits.
    pub fn save(&self, batch: Batch) {
        if self.queue.send(batch).is_err() {
            error!("binding writer is gone: bindings not saved");
        }
    }

    /// Writes what is queued, then returns.
    pub async fn finish(self) {
        drop(self.queue);
        if let Err(e) = self.task.await {
            error!(error = %e, "binding writer failed");
        }
    }
}

async fn write(store: Arc<Store>, mut pending: mpsc::UnboundedReceiver<Batch>) {
    while let Some(batch) = pending.recv().await {
        // The latest list of an extension replaces the earlier ones.
        let mut merged: BTreeMap<Extension, Vec<Binding>> = batch.into_iter().collect();
        while let Ok(more) = pending.try_recv() {
            merged.extend(more);
        }
        let changed: Batch = merged.into_iter().collect();
        let count = changed.len();
        let store = store.clone();
        let written = tokio::task::spawn_blocking(move || store.save_bindings(&changed)).await;
        match written {
            Ok(Ok(())) => debug!(extensions = count, "bindings saved"),
            Ok(Err(e)) => error!(error = %e, "cannot save bindings"),
            Err(e) => error!(error = %e, "binding writer failed"),
        }
    }
}
