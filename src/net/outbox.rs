//! What the core sends one connection, queued until the connection's task writes it. A
//! tokio channel would do, but costs each connection about 1.3 KiB while idle (its first block
//! of slots and cache-padded wakers); this holds no allocation but itself while empty.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

/// Messages queued for one connection before the core's sends to it are dropped.
const CAPACITY: usize = 64;

struct Shared {
    queue: Mutex<Queue>,
    notify: Notify,
}

struct Queue {
    messages: VecDeque<Vec<u8>>,
    /// The core still holds the [`Outbox`].
    open: bool,
}

/// The core's end: where it sends a connection's messages.
pub struct Outbox(Arc<Shared>);

/// The connection's end.
pub struct Queued(Arc<Shared>);

/// A new outbox and its other end.
pub fn outbox() -> (Outbox, Queued) {
    let shared = Arc::new(Shared {
        queue: Mutex::new(Queue {
            messages: VecDeque::new(),
            open: true,
        }),
        notify: Notify::new(),
    });
    (Outbox(shared.clone()), Queued(shared))
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Outbox {
    /// Queues `bytes`; gives them back when [`CAPACITY`] messages wait already (the peer does
    /// not read) or the connection is gone.
    pub fn try_send(&self, bytes: Vec<u8>) -> Result<(), Vec<u8>> {
        let mut queue = self.0.lock();
        if queue.messages.len() >= CAPACITY || Arc::strong_count(&self.0) < 2 {
            return Err(bytes);
        }
        queue.messages.push_back(bytes);
        drop(queue);
        self.0.notify.notify_one();
        Ok(())
    }
}

impl Drop for Outbox {
    fn drop(&mut self) {
        self.0.lock().open = false;
        self.0.notify.notify_one();
    }
}

impl Queued {
    /// The next message; `None` once the queue is empty and the core has let go of the outbox.
    /// Cancel-safe: a message is taken only when this returns it.
    pub async fn recv(&self) -> Option<Vec<u8>> {
        loop {
            {
                let mut queue = self.0.lock();
                if let Some(message) = queue.messages.pop_front() {
                    if queue.messages.is_empty() {
                        queue.messages = VecDeque::new();
                    }
                    return Some(message);
                }
                if !queue.open {
                    return None;
                }
            }
            // notify_one keeps a permit when no one waits: a message queued since the check
            // above wakes this at once.
            self.0.notify.notified().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn delivers_in_order_then_ends_when_the_core_lets_go() {
        let (outbox, queued) = outbox();
        outbox.try_send(b"one".to_vec()).unwrap();
        outbox.try_send(b"two".to_vec()).unwrap();
        assert_eq!(queued.recv().await.unwrap(), b"one");
        let waiting = tokio::spawn(async move {
            let mut got = Vec::new();
            while let Some(message) = queued.recv().await {
                got.push(message);
            }
            got
        });
        tokio::task::yield_now().await;
        outbox.try_send(b"three".to_vec()).unwrap();
        drop(outbox);
        assert_eq!(waiting.await.unwrap(), [b"two".to_vec(), b"three".to_vec()]);
    }

    #[test]
    fn refuses_past_capacity_and_after_the_connection_is_gone() {
        let (outbox, queued) = outbox();
        for _ in 0..CAPACITY {
            outbox.try_send(vec![0]).unwrap();
        }
        assert_eq!(outbox.try_send(vec![1]), Err(vec![1]));
        drop(queued);
        let (outbox, queued) = super::outbox();
        drop(queued);
        assert_eq!(outbox.try_send(vec![2]), Err(vec![2]));
    }
}
