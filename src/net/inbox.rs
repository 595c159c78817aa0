//! What transports and the control socket send the core task, and how it reaches them back.

use std::sync::Arc;

use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use crate::core::bans::Scope;
use crate::core::user::{Extension, User};
use crate::core::{ConnectionId, Flow};

/// What transports and the control socket tell the core task.
pub enum Event {
    Message { bytes: Vec<u8>, flow: Flow },
    Opened { id: ConnectionId, outlet: Outlet },
    Closed(ConnectionId),
    UserChanged(User),
    UserRemoved(Extension),
    BansLifted(Vec<Scope>),
}

/// Where to send bytes for a flow.
pub enum Outlet {
    Datagram(Arc<UdpSocket>),
    Stream(mpsc::Sender<Vec<u8>>),
}

/// Hands out connection ids; ids are never reused within a run.
#[derive(Clone, Default)]
pub struct Ids(Arc<std::sync::atomic::AtomicU64>);

impl Ids {
    pub fn next(&self) -> ConnectionId {
        ConnectionId(self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
    }
}
