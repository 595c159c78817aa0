//! TCP and TLS connections: admit them (see [`super::admission`]), frame messages by
//! Content-Length, answer CRLF keep-alives, and hand messages to the core task. One task per
//! connection reads, writes and keeps its deadlines; an idle one holds no buffer.

use std::collections::HashMap;
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use rustls::ServerConfig;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::admission::{Admission, Offence, Refusal, Report, Settings};
use super::inbox::{Event, Ids, Outlet};
use super::outbox::{self, Queued};
use super::partial::{Pace, Partial};
use super::security;
use super::session::{self, Received, TlsSession};
use crate::config::{Flood, Limits};
use crate::core::security::SecurityEvent;
use crate::core::{ConnectionId, Flow};
use crate::sip::{Frame, Framer, FramingError, Transport};

/// Bytes taken from the socket in one read, into a chunk on the stack: a connection keeps only
/// what is left of an incomplete message (or TLS record). Thousands of phones sit idle, and an
/// idle one holds no buffer at all.
const READ_CHUNK: usize = 16 * 1024;

/// Unwritten bytes past which a ping gets no pong: the peer does not read.
const PONG_ROOM: usize = 4096;

/// What every connection of a listener shares.
pub struct Context {
    pub events: mpsc::Sender<Event>,
    pub ids: Ids,
    pub connections: Arc<Connections>,
    pub limits: Limits,
}

/// The connections holding slots: their [`Admission`], how to close each, and the core's inbox
/// for the security events admission reports.
pub struct Connections {
    table: Mutex<Table>,
    core: mpsc::Sender<Event>,
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
    pub fn new(limits: &Limits, flood: &Flood, core: mpsc::Sender<Event>) -> Arc<Connections> {
        let admission = Admission::new(Settings::of(limits, flood), std::time::Instant::now());
        Arc::new(Connections {
            table: Mutex::new(Table {
                admission,
                closers: HashMap::new(),
            }),
            core,
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
            report(&self.core, table.admission.take_reports());
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
        report(&self.core, table.admission.take_reports());
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

/// Reports each offending scope to the core as a security event.
fn report(core: &mpsc::Sender<Event>, reports: Vec<Report>) {
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
        security::log(core, &event);
    }
}

pub async fn accept(
    listener: TcpListener,
    transport: Transport,
    tls: Option<Arc<ServerConfig>>,
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
        let tls = tls.clone();
        tokio::spawn(serve_connection(
            (tcp, remote),
            transport,
            tls,
            context.clone(),
            slot,
        ));
    }
}

/// Serves one admitted connection from accept to close.
async fn serve_connection(
    (tcp, remote): (TcpStream, SocketAddr),
    transport: Transport,
    tls: Option<Arc<ServerConfig>>,
    context: Arc<Context>,
    slot: Slot,
) {
    let _ = tcp.set_nodelay(true);
    let flow = Flow {
        transport,
        remote,
        connection: Some(slot.id),
    };
    let mut connection = Connection {
        tcp,
        tls: None,
        flow,
        context: &context,
        slot: &slot,
        buffer: Vec::new(),
        unsent: Vec::new(),
        reads: 0,
    };
    if let Some(config) = tls {
        // The handshake counts against the connection limits like any connection, and gives
        // way like any anonymous one.
        if let Err(reason) = connection.handshake(config).await {
            info!(source = %remote, transport = %Transport::Tls, reason, "TLS handshake failed");
            return;
        }
    }
    connection.run().await;
}

/// Why reading broke off.
#[derive(Debug, thiserror::Error)]
enum Broken {
    #[error("read error: {0}")]
    Read(std::io::Error),
    #[error(transparent)]
    Tls(#[from] session::Error),
}

/// One admitted connection, served by one task: it reads, writes and keeps the deadlines.
struct Connection<'a> {
    tcp: TcpStream,
    /// Boxed: the task's future holds the connection, and a TCP one needs no TLS state.
    tls: Option<Box<TlsSession>>,
    flow: Flow,
    context: &'a Context,
    slot: &'a Slot,
    /// Plaintext received that is not yet a whole message; unallocated when empty.
    buffer: Vec<u8>,
    /// Bytes to write (encrypted, over TLS), in order; unallocated when all are written.
    unsent: Vec<u8>,
    reads: u64,
}

impl Connection<'_> {
    /// Runs the TLS handshake, within `partial_message_timeout`, paced and cut off when
    /// dribbled like any message.
    async fn handshake(&mut self, config: Arc<ServerConfig>) -> Result<(), String> {
        self.tls = Some(Box::new(
            TlsSession::new(config).map_err(|error| error.to_string())?,
        ));
        let slot = self.slot;
        let started = Instant::now();
        let deadline = started + Duration::from_secs(self.context.limits.partial_message_timeout);
        let fd = self.tcp.as_raw_fd();
        let partial = Partial::new(started, fd);
        let mut pace = Pace::default();
        while self.tls.as_ref().is_some_and(|tls| tls.is_handshaking()) {
            let paced = pace.next(Instant::now());
            let ready = async {
                self.flush().await?;
                readable(&self.tcp, paced).await
            };
            tokio::select! {
                ready = tokio::time::timeout_at(deadline, ready) => match ready {
                    Ok(Ok(())) => {}
                    Ok(Err(error)) => return Err(error.to_string()),
                    Err(_) => return Err("timeout".to_owned()),
                },
                reason = slot.closer.closed() => return Err(reason.to_owned()),
            }
            match self.receive(READ_CHUNK) {
                Ok(None | Some(Received::Open)) => {
                    let held = self.tls.as_ref().map_or(0, |tls| tls.pending());
                    if held > 0 && partial.is_dribbled(fd, held) {
                        return Err("message dribbled in tiny segments".to_owned());
                    }
                }
                Ok(Some(Received::Closed)) => return Err("end of stream".to_owned()),
                Err(error) => {
                    // The alert that says why, if the socket takes it now.
                    let _ = self.write_now();
                    return Err(error.to_string());
                }
            }
        }
        Ok(())
    }

    /// Serves the connection until it closes or breaks the framing rules, then closes it.
    async fn run(&mut self) {
        let (context, id, remote, transport) = (
            self.context,
            self.slot.id,
            self.flow.remote,
            self.flow.transport,
        );
        let (outbox, queued) = outbox::outbox();
        let opened = Event::Opened {
            id,
            outlet: Outlet::Stream(outbox),
        };
        if context.events.send(opened).await.is_err() {
            return;
        }
        debug!(source = %remote, transport = %transport, connection = id.0, "connection opened");
        if let Err(reason) = self.serve(&queued).await {
            info!(source = %remote, transport = %transport, reason, "connection closed");
        }
        debug!(source = %remote, transport = %transport, connection = id.0, reads = self.reads, "connection ended");
        // Once the core forgets the outlet, the outbox ends: what the core sent before is
        // written, then the connection closes cleanly (TLS close_notify). A peer that does not
        // read gets no longer than a slow sender would.
        let _ = context.events.send(Event::Closed(id)).await;
        let linger = Duration::from_secs(context.limits.partial_message_timeout);
        let _ = tokio::time::timeout(linger, self.finish(&queued)).await;
    }

    /// Reads messages and writes what the core sends until end of stream (`Ok`) or a reason
    /// to close.
    async fn serve(&mut self, queued: &Queued) -> Result<(), &'static str> {
        let context = self.context;
        let closer = &self.slot.closer;
        let max = context.limits.max_message_size;
        let partial_timeout = Duration::from_secs(context.limits.partial_message_timeout);
        let idle_timeout = Duration::from_secs(context.limits.idle_timeout);
        let fd = self.tcp.as_raw_fd();
        let mut framer = Framer::default();
        let mut pace = Pace::default();
        let mut read_at = Instant::now();
        let mut partial: Option<Partial> = None;
        let mut paced = None;
        // Whether bytes arrived since the buffer was last framed (the handshake's may have).
        let mut arrived = true;
        loop {
            if arrived {
                arrived = false;
                let framed = self.frame(&mut framer, max).await?;
                // What is left after a frame began with the last read: plaintext, or an
                // incomplete TLS record.
                let held = self.buffer.len() + self.tls.as_ref().map_or(0, |tls| tls.pending());
                partial = match (held, partial) {
                    (0, _) => None,
                    (_, Some(partial)) if !framed => {
                        if partial.is_dribbled(fd, held) {
                            return Err("message dribbled in tiny segments");
                        }
                        Some(partial)
                    }
                    (_, _) => Some(Partial::new(read_at, fd)),
                };
                if self.buffer.is_empty() {
                    self.buffer = Vec::new();
                }
                paced = pace.next(Instant::now());
            }
            let (deadline, reason) = match partial {
                None => (read_at + idle_timeout, "idle timeout"),
                Some(partial) => (partial.since + partial_timeout, "partial message timeout"),
            };
            let writing = !self.unsent.is_empty();
            tokio::select! {
                () = tokio::time::sleep_until(deadline) => return Err(reason),
                reason = closer.closed() => return Err(reason),
                ready = readable(&self.tcp, paced) => {
                    ready.map_err(|_| "read error")?;
                    // No more than makes the buffer one byte longer than the largest
                    // message, which framing refuses: a connection holds at most that, and an
                    // incomplete TLS record.
                    let room = (max + 1).saturating_sub(self.buffer.len()).clamp(1, READ_CHUNK);
                    match self.receive(room) {
                        Ok(None) => {}
                        Ok(Some(Received::Open)) => {
                            read_at = Instant::now();
                            arrived = true;
                        }
                        Ok(Some(Received::Closed)) => return Ok(()),
                        Err(Broken::Read(_)) => return Err("read error"),
                        Err(Broken::Tls(error)) => {
                            debug!(source = %self.flow.remote, %error, "TLS error");
                            let _ = self.write_now();
                            return Err("TLS error");
                        }
                    }
                }
                ready = self.tcp.writable(), if writing => {
                    ready.map_err(|_| "write error")?;
                    self.write_now().map_err(|_| "write error")?;
                }
                bytes = queued.recv(), if !writing => {
                    let Some(bytes) = bytes else { return Err("server stopping") };
                    self.queue(&bytes).map_err(|_| "TLS error")?;
                    self.write_now().map_err(|_| "write error")?;
                }
            }
        }
    }

    /// Takes the whole messages and keep-alives off the front of the buffer. Returns whether
    /// it took any.
    async fn frame(&mut self, framer: &mut Framer, max: usize) -> Result<bool, &'static str> {
        let flow = self.flow;
        let mut framed = false;
        let mut ponged = false;
        loop {
            let length = match framer.next(&self.buffer, max) {
                Ok(Frame::Incomplete) => return Ok(framed),
                Ok(Frame::Ping(length)) => {
                    // One pong answers all the pings of a read: a flood of them gets no more
                    // writes than reads, and none while the peer does not read.
                    if !ponged && self.unsent.len() < PONG_ROOM {
                        self.queue(b"\r\n").map_err(|_| "TLS error")?;
                        ponged = true;
                    }
                    length
                }
                Ok(Frame::Pong(length)) => length,
                Ok(Frame::Message(length)) => {
                    let bytes: Vec<u8> = self.buffer.drain(..length).collect();
                    let event = Event::Message { bytes, flow };
                    self.context
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
                        let bytes = self.buffer[..head].to_vec();
                        let _ = self
                            .context
                            .events
                            .send(Event::Message { bytes, flow })
                            .await;
                    }
                    return Err("framing error");
                }
            };
            self.buffer.drain(..length);
            framed = true;
        }
    }

    /// Reads up to `room` bytes of what the socket holds, once, into a chunk on the stack:
    /// plaintext goes to the buffer, what TLS answers to `unsent`. `None`: nothing was there
    /// after all.
    fn receive(&mut self, room: usize) -> Result<Option<Received>, Broken> {
        let mut chunk = [0; READ_CHUNK];
        let length = match self.tcp.try_read(&mut chunk[..room]) {
            Ok(0) => return Ok(Some(Received::Closed)),
            Ok(length) => length,
            Err(error) if error.kind() == ErrorKind::WouldBlock => return Ok(None),
            Err(error) => return Err(Broken::Read(error)),
        };
        self.reads += 1;
        let received = &mut chunk[..length];
        match &mut self.tls {
            None => {
                self.buffer.extend_from_slice(received);
                Ok(Some(Received::Open))
            }
            Some(session) => Ok(Some(session.receive(
                received,
                &mut self.buffer,
                &mut self.unsent,
            )?)),
        }
    }

    /// Adds `bytes` to what is to be written, encrypted over TLS.
    fn queue(&mut self, bytes: &[u8]) -> Result<(), session::Error> {
        match &mut self.tls {
            None => self.unsent.extend_from_slice(bytes),
            Some(session) => session.send(bytes, &mut self.unsent)?,
        }
        Ok(())
    }

    /// Writes as much of `unsent` as the socket takes now.
    fn write_now(&mut self) -> std::io::Result<()> {
        while !self.unsent.is_empty() {
            match self.tcp.try_write(&self.unsent) {
                Ok(written) => {
                    self.unsent.drain(..written);
                }
                Err(error) if error.kind() == ErrorKind::WouldBlock => return Ok(()),
                Err(error) => return Err(error),
            }
        }
        self.unsent = Vec::new();
        Ok(())
    }

    /// Writes all of `unsent`.
    async fn flush(&mut self) -> std::io::Result<()> {
        while !self.unsent.is_empty() {
            self.tcp.writable().await?;
            self.write_now()?;
        }
        Ok(())
    }

    /// Writes what the core still sends until it forgets the connection, then closes it.
    async fn finish(&mut self, queued: &Queued) {
        if self.flush().await.is_err() {
            return;
        }
        while let Some(bytes) = queued.recv().await {
            if self.queue(&bytes).is_err() || self.flush().await.is_err() {
                return;
            }
        }
        if let Some(session) = &mut self.tls {
            let _ = session.close(&mut self.unsent);
        }
        if self.flush().await.is_ok() {
            let _ = self.tcp.shutdown().await;
        }
    }
}

/// Ready to read, once the pace allows.
async fn readable(tcp: &TcpStream, paced: Option<Instant>) -> std::io::Result<()> {
    if let Some(at) = paced {
        tokio::time::sleep_until(at).await;
    }
    tcp.readable().await
}
