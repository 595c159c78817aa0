//! TCP and TLS connections: admit them (see [`super::admission`]), frame messages by
//! Content-Length, answer CRLF keep-alives, and hand messages to the core task.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, info, warn};

use super::admission::{Admission, Offence, Refusal, Report, Settings};
use super::inbox::{Event, Ids, Outlet};
use super::partial::{Pace, Partial};
use super::security;
use crate::config::{Flood, Limits};
use crate::core::security::SecurityEvent;
use crate::core::{ConnectionId, Flow};
use crate::sip::{Frame, Framer, FramingError, Transport};

/// Messages queued for one connection before the core's sends to it are dropped.
const OUTBOX: usize = 64;

/// Bytes an idle connection can take in one read: a CRLF ping, or most of a REGISTER. Thousands
/// of phones sit idle, so this, not `max_message_size`, is what each of them holds.
const IDLE_READ: usize = 1024;

/// What every connection of a listener shares.
pub struct Context {
    pub events: mpsc::Sender<Event>,
    pub ids: Ids,
    pub connections: Arc<Connections>,
    pub limits: Limits,
}

/// The connections holding slots: their [`Admission`], and how to close each.
pub struct Connections {
    table: Mutex<Table>,
}

struct Table {
    admission: Admission,
    closers: HashMap<ConnectionId, Arc<Closer>>,
}

/// Tells a connection's task to close, and why.
#[derive(Default)]
struct Closer {
    notify: Notify,
    reason: OnceLock<&'static str>,
}

impl Closer {
    fn close(&self, reason: &'static str) {
        let _ = self.reason.set(reason);
        self.notify.notify_one();
    }

    async fn closed(&self) -> &'static str {
        self.notify.notified().await;
        self.reason.get().copied().unwrap_or("closed")
    }
}

/// One admitted connection; dropping it gives its slot back.
struct Slot {
    connections: Arc<Connections>,
    id: ConnectionId,
    closer: Arc<Closer>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut table = self.connections.lock();
        table.admission.closed(self.id);
        table.closers.remove(&self.id);
    }
}

impl Connections {
    pub fn new(limits: &Limits, flood: &Flood) -> Arc<Connections> {
        let admission = Admission::new(Settings::of(limits, flood), std::time::Instant::now());
        Arc::new(Connections {
            table: Mutex::new(Table {
                admission,
                closers: HashMap::new(),
            }),
        })
    }

    /// A request on `id` passed Digest: the connection is a phone's.
    pub fn authenticated(&self, id: ConnectionId) {
        self.lock().admission.authenticated(id);
    }

    /// Closes the anonymous connections past their deadline, once a second, for ever.
    pub async fn expire(self: Arc<Self>) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            let mut table = self.lock();
            for expired in table.admission.expire(std::time::Instant::now()) {
                if let Some(closer) = table.closers.remove(&expired.id) {
                    closer.close("anonymous timeout");
                }
            }
            report(table.admission.take_reports());
        }
    }

    fn admit(
        self: &Arc<Self>,
        id: ConnectionId,
        transport: Transport,
        remote: SocketAddr,
    ) -> Option<Slot> {
        let mut table = self.lock();
        let admitted = table
            .admission
            .admit(id, (transport, remote), std::time::Instant::now());
        report(table.admission.take_reports());
        let evicted = match admitted {
            Ok(evicted) => evicted,
            Err(refusal) => {
                let (reason, scope) = match refusal {
                    Refusal::Flood => ("connections opened too fast", "flood".to_owned()),
                    Refusal::Scope { scope, .. } if scope.length() == 128 => {
                        ("connection limit per address reached", scope.to_string())
                    }
                    Refusal::Scope { scope, .. } => {
                        ("connection limit per prefix reached", scope.to_string())
                    }
                    Refusal::Full => ("every connection is a phone's", "all".to_owned()),
                };
                info!(source = %remote, transport = %transport, reason, scope = %scope, "refused connection");
                return None;
            }
        };
        if let Some(closer) = evicted.and_then(|e| table.closers.remove(&e)) {
            closer.close("gave way to a new connection");
        }
        let closer = Arc::new(Closer::default());
        table.closers.insert(id, closer.clone());
        Some(Slot {
            connections: self.clone(),
            id,
            closer,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Logs each offending scope as a security event.
fn report(reports: Vec<Report>) {
    for Report {
        offence,
        flow,
        scope,
    } in reports
    {
        let scope = scope.to_string();
        let event = match offence {
            Offence::Flood => SecurityEvent::Flood { flow, scope },
            Offence::Refused => SecurityEvent::ConnectionLimit { flow, scope },
            Offence::Expired => SecurityEvent::AnonymousExpired { flow, scope },
        };
        security::log(&event);
    }
}

pub async fn accept(
    listener: TcpListener,
    transport: Transport,
    acceptor: Option<TlsAcceptor>,
    context: Context,
) {
    let context = Arc::new(context);
    loop {
        let (tcp, remote) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                warn!(%error, "accept failed");
                continue;
            }
        };
        let Some(slot) = context
            .connections
            .admit(context.ids.next(), transport, remote)
        else {
            continue;
        };
        let context = context.clone();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let _ = tcp.set_nodelay(true);
            let fd = tcp.as_raw_fd();
            let Some(acceptor) = acceptor else {
                return run(tcp, transport, remote, &context, (&slot, fd)).await;
            };
            // The handshake counts against the connection limits like any connection, and
            // gives way like any anonymous one.
            let deadline = Duration::from_secs(context.limits.partial_message_timeout);
            let reason = tokio::select! {
                handshake = tokio::time::timeout(deadline, acceptor.accept(tcp)) => match handshake {
                    Ok(Ok(tls)) => return run(tls, transport, remote, &context, (&slot, fd)).await,
                    Ok(Err(error)) => error.to_string(),
                    Err(_) => "timeout".to_owned(),
                },
                reason = slot.closer.closed() => reason.to_owned(),
            };
            info!(source = %remote, transport = %Transport::Tls, reason, "TLS handshake failed");
        });
    }
}

/// Serves one connection until it closes or breaks the framing rules.
async fn run<S>(
    stream: S,
    transport: Transport,
    remote: SocketAddr,
    context: &Context,
    (slot, fd): (&Slot, RawFd),
) where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let id = slot.id;
    let (mut reader, writer) = tokio::io::split(stream);
    let (outbox, queued) = mpsc::channel(OUTBOX);
    let opened = Event::Opened {
        id,
        outlet: Outlet::Stream(outbox.clone()),
    };
    if context.events.send(opened).await.is_err() {
        return;
    }
    let writing = tokio::spawn(write(writer, queued));
    let flow = Flow {
        transport,
        remote,
        connection: Some(id),
    };
    debug!(source = %remote, transport = %transport, connection = id.0, "connection opened");
    let mut reads = 0;
    let read = read(
        &mut reader,
        flow,
        &outbox,
        context,
        (&slot.closer, fd, &mut reads),
    )
    .await;
    if let Err(reason) = read {
        info!(source = %remote, transport = %transport, reason, "connection closed");
    }
    debug!(source = %remote, transport = %transport, connection = id.0, reads, "connection ended");
    // Once the core forgets the outlet, the writer sends what is queued and closes cleanly
    // (TLS close_notify); a peer that does not read gets no longer than a slow sender would.
    drop(outbox);
    let _ = context.events.send(Event::Closed(id)).await;
    let linger = Duration::from_secs(context.limits.partial_message_timeout);
    let abort = writing.abort_handle();
    if tokio::time::timeout(linger, writing).await.is_err() {
        abort.abort();
    }
}

/// Reads messages until end of stream (`Ok`) or a reason to close.
async fn read<R: AsyncRead + Unpin>(
    reader: &mut R,
    flow: Flow,
    outbox: &mpsc::Sender<Vec<u8>>,
    context: &Context,
    (closer, fd, reads): (&Closer, RawFd, &mut u64),
) -> Result<(), &'static str> {
    let max = context.limits.max_message_size;
    let partial_timeout = Duration::from_secs(context.limits.partial_message_timeout);
    let idle_timeout = Duration::from_secs(context.limits.idle_timeout);
    let mut framer = Framer::default();
    // Only what has arrived and is not yet a whole message: an idle connection holds no buffer
    // but the IDLE_READ bytes its next read needs.
    let mut buffer: Vec<u8> = Vec::new();
    let mut pace = Pace::default();
    let mut read_at = Instant::now();
    let mut partial: Option<Partial> = None;
    loop {
        let mut framed = false;
        let mut ponged = false;
        loop {
            let length = match framer.next(&buffer, max) {
                Ok(Frame::Incomplete) => break,
                Ok(Frame::Ping(length)) => {
                    // One pong answers all the pings of a read: a flood of them gets no more
                    // writes than reads.
                    if !ponged {
                        let _ = outbox.try_send(b"\r\n".to_vec());
                        ponged = true;
                    }
                    length
                }
                Ok(Frame::Pong(length)) => length,
                Ok(Frame::Message(length)) => {
                    let bytes: Vec<u8> = buffer.drain(..length).collect();
                    let event = Event::Message { bytes, flow };
                    context
                        .events
                        .send(event)
                        .await
                        .map_err(|_| "server stopping")?;
                    0
                }
                Err(error) => {
                    warn!(source = %flow.remote, transport = %flow.transport, reason = %error, "dropped stream");
                    if let FramingError::MissingContentLength(head) = error {
                        // The core answers it 400 before the connection closes.
                        let bytes = buffer[..head].to_vec();
                        let _ = context.events.send(Event::Message { bytes, flow }).await;
                    }
                    return Err("framing error");
                }
            };
            buffer.drain(..length);
            framed = true;
        }
        // What is left after a frame began with the last read.
        partial = match (buffer.is_empty(), partial) {
            (true, _) => None,
            (false, Some(partial)) if !framed => {
                if partial.is_dribbled(fd, buffer.len()) {
                    return Err("message dribbled in tiny segments");
                }
                Some(partial)
            }
            (false, _) => Some(Partial::new(read_at, fd)),
        };
        let (deadline, reason) = match partial {
            None => (read_at + idle_timeout, "idle timeout"),
            Some(partial) => (partial.since + partial_timeout, "partial message timeout"),
        };
        let room = match partial {
            None => {
                buffer = Vec::new();
                IDLE_READ
            }
            // The rest in one read, as before (reads are paced): memory a partial message
            // holds only while it is partial.
            Some(_) => max,
        };
        // Bounded: framing refuses a buffer past `max` that holds no whole message.
        buffer.reserve(room);
        let paced = pace.next(Instant::now());
        let read = async {
            if let Some(at) = paced {
                tokio::time::sleep_until(at).await;
            }
            reader.read_buf(&mut buffer).await
        };
        let read = tokio::select! {
            read = tokio::time::timeout_at(deadline, read) => read.map_err(|_| reason)?,
            reason = closer.closed() => return Err(reason),
        };
        read_at = Instant::now();
        *reads += 1;
        match read {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            Err(_) => return Err("read error"),
        }
    }
}

async fn write<W: AsyncWrite + Unpin>(mut writer: W, mut queued: mpsc::Receiver<Vec<u8>>) {
    while let Some(bytes) = queued.recv().await {
        if writer.write_all(&bytes).await.is_err() {
            return;
        }
    }
    let _ = writer.shutdown().await;
}
