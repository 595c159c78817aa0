//! What transports, the control socket and the web side send the core task, and how it reaches
//! them back.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use crate::core::bans::Scope;
use crate::core::user::{Extension, User};
use crate::core::web::Admission;
use crate::core::{ConnectionId, Core, Flow, Now};

/// What transports and the control socket tell the core task.
pub enum Event {
    Message {
        bytes: Vec<u8>,
        flow: Flow,
    },
    Opened {
        id: ConnectionId,
        outlet: Outlet,
    },
    Closed(ConnectionId),
    UserChanged(User),
    UserRemoved(Extension),
    BansLifted(Vec<Scope>),
    /// Work for the core from the web side (see [`CoreHandle`]).
    Web(CoreJob),
}

/// A closure run by the core task on the core, with the current time.
pub type CoreJob = Box<dyn FnOnce(&mut Core, Now) + Send>;

/// The web side's way into the core task: handlers read and change state through the same
/// event loop as SIP, between two messages, so there is no second source of truth.
#[derive(Clone)]
pub struct CoreHandle(mpsc::Sender<Event>);

impl CoreHandle {
    pub fn new(events: mpsc::Sender<Event>) -> CoreHandle {
        CoreHandle(events)
    }

    /// Runs `job` on the core and returns what it returns; `None` when the server is stopping.
    pub async fn ask<T: Send + 'static>(
        &self,
        job: impl FnOnce(&mut Core, Now) -> T + Send + 'static,
    ) -> Option<T> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let job: CoreJob = Box::new(move |core, now| {
            let _ = reply.send(job(core, now));
        });
        self.0.send(Event::Web(job)).await.ok()?;
        answer.await.ok()
    }

    /// The channel into the core task, for changes written to the store first.
    pub fn events(&self) -> &mpsc::Sender<Event> {
        &self.0
    }
}

impl crate::web::http::Gate for CoreHandle {
    fn admit(
        &self,
        remote: SocketAddr,
    ) -> std::pin::Pin<Box<dyn Future<Output = Admission> + Send + '_>> {
        Box::pin(async move {
            let admission = self.ask(move |core, now| core.admit_web(remote, now));
            admission.await.unwrap_or(Admission::Drop)
        })
    }
}

/// Where to send bytes for a flow.
pub enum Outlet {
    Datagram(Arc<UdpSocket>),
    Stream(super::outbox::Outbox),
}

/// Hands out connection ids; ids are never reused within a run.
#[derive(Clone, Default)]
pub struct Ids(Arc<std::sync::atomic::AtomicU64>);

impl Ids {
    pub fn next(&self) -> ConnectionId {
        ConnectionId(self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
    }
}
