//! TCP and TLS connections: accept within the connection limit, frame messages by
//! Content-Length, answer CRLF keep-alives, and hand messages to the core task.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_rustls::TlsAcceptor;
use tracing::{debug, info, warn};

use super::server::{Event, Ids, Outlet};
use crate::config::Limits;
use crate::core::Flow;
use crate::sip::{Frame, FramingError, Transport, next_frame};

/// Messages queued for one connection before the core's sends to it are dropped.
const OUTBOX: usize = 64;

/// Bytes an idle connection can take in one read: a CRLF ping, or most of a REGISTER. Thousands
/// of phones sit idle, so this, not `max_message_size`, is what each of them holds.
const IDLE_READ: usize = 1024;

/// Bytes read at once into a partial message.
const PARTIAL_READ: usize = 4096;

/// What every connection of a listener shares.
pub struct Context {
    pub events: mpsc::Sender<Event>,
    pub ids: Ids,
    pub admission: Arc<Admission>,
    pub limits: Limits,
}

/// Open TCP and TLS connections, counted in all and per remote address, so that one host cannot
/// take every connection. The per-address map holds only addresses with open connections, so
/// it is bounded by the total.
pub struct Admission {
    total: Arc<Semaphore>,
    per_address: Mutex<HashMap<IpAddr, usize>>,
    max_per_address: usize,
}

/// One admitted connection; dropping it gives its place back.
struct Ticket {
    admission: Arc<Admission>,
    address: IpAddr,
    _permit: OwnedSemaphorePermit,
}

impl Admission {
    pub fn new(limits: &Limits) -> Arc<Admission> {
        Arc::new(Admission {
            total: Arc::new(Semaphore::new(limits.max_connections)),
            per_address: Mutex::new(HashMap::new()),
            max_per_address: limits.max_connections_per_address,
        })
    }

    fn admit(self: &Arc<Self>, address: IpAddr) -> Result<Ticket, &'static str> {
        let permit = self
            .total
            .clone()
            .try_acquire_owned()
            .map_err(|_| "connection limit reached")?;
        let mut open = self.per_address.lock().unwrap_or_else(|e| e.into_inner());
        let count = open.entry(address).or_insert(0);
        if *count >= self.max_per_address {
            return Err("connection limit per address reached");
        }
        *count += 1;
        Ok(Ticket {
            admission: self.clone(),
            address,
            _permit: permit,
        })
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut open = self
            .admission
            .per_address
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(count) = open.get_mut(&self.address) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.address);
            }
        }
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
        let ticket = match context.admission.admit(remote.ip()) {
            Ok(ticket) => ticket,
            Err(reason) => {
                info!(source = %remote, transport = %transport, reason, "refused connection");
                continue;
            }
        };
        let context = context.clone();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let _ticket = ticket;
            let _ = tcp.set_nodelay(true);
            match acceptor {
                None => run(tcp, transport, remote, &context).await,
                Some(acceptor) => {
                    let deadline = Duration::from_secs(context.limits.partial_message_timeout);
                    match tokio::time::timeout(deadline, acceptor.accept(tcp)).await {
                        Ok(Ok(tls)) => run(tls, transport, remote, &context).await,
                        Ok(Err(error)) => {
                            info!(source = %remote, transport = %Transport::Tls, reason = %error, "TLS handshake failed")
                        }
                        Err(_) => {
                            info!(source = %remote, transport = %Transport::Tls, reason = "timeout", "TLS handshake failed")
                        }
                    }
                }
            }
        });
    }
}

/// Serves one connection until it closes or breaks the framing rules.
async fn run<S>(stream: S, transport: Transport, remote: SocketAddr, context: &Context)
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let id = context.ids.next();
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
    if let Err(reason) = read(&mut reader, flow, &outbox, context).await {
        info!(source = %remote, transport = %transport, reason, "connection closed");
    }
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
) -> Result<(), &'static str> {
    let max = context.limits.max_message_size;
    let partial_timeout = Duration::from_secs(context.limits.partial_message_timeout);
    let idle_timeout = Duration::from_secs(context.limits.idle_timeout);
    // Only what has arrived and is not yet a whole message: an idle connection holds no buffer
    // but the IDLE_READ bytes its next read needs.
    let mut buffer: Vec<u8> = Vec::new();
    loop {
        loop {
            match next_frame(&buffer, max) {
                Ok(Frame::Incomplete) => break,
                Ok(Frame::Ping(length)) => {
                    buffer.drain(..length);
                    let _ = outbox.try_send(b"\r\n".to_vec());
                }
                Ok(Frame::Pong(length)) => {
                    buffer.drain(..length);
                }
                Ok(Frame::Message(length)) => {
                    let bytes: Vec<u8> = buffer.drain(..length).collect();
                    let event = Event::Message { bytes, flow };
                    context
                        .events
                        .send(event)
                        .await
                        .map_err(|_| "server stopping")?;
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
            }
        }
        let (deadline, reason, room) = match buffer.is_empty() {
            true => {
                buffer = Vec::new();
                (idle_timeout, "idle timeout", IDLE_READ)
            }
            false => (partial_timeout, "partial message timeout", PARTIAL_READ),
        };
        // Bounded: framing refuses a buffer past `max` that holds no whole message.
        buffer.reserve(room);
        let read = tokio::time::timeout(deadline, reader.read_buf(&mut buffer))
            .await
            .map_err(|_| reason)?;
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
