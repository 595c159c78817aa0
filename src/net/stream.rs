//! TCP and TLS connections: accept within the connection limit, frame messages by
//! Content-Length, answer CRLF keep-alives, and hand messages to the core task.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc};
use tokio_rustls::TlsAcceptor;
use tracing::{debug, info, warn};

use super::server::{Event, Ids, Outlet};
use crate::config::Limits;
use crate::core::Flow;
use crate::sip::{Frame, Transport, next_frame};

/// Messages queued for one connection before the core's sends to it are dropped.
const OUTBOX: usize = 64;

/// What every connection of a listener shares.
pub struct Context {
    pub events: mpsc::Sender<Event>,
    pub ids: Ids,
    pub connections: Arc<Semaphore>,
    pub limits: Limits,
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
        let Ok(permit) = context.connections.clone().try_acquire_owned() else {
            info!(source = %remote, transport = %transport, reason = "connection limit reached", "refused connection");
            continue;
        };
        let context = context.clone();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let _permit = permit;
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
    drop(outbox);
    writing.abort();
    let _ = context.events.send(Event::Closed(id)).await;
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
    let mut buffer: Vec<u8> = Vec::with_capacity(4096);
    let mut chunk = vec![0u8; 16 * 1024];
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
                    return Err("framing error");
                }
            }
        }
        let read = if buffer.is_empty() {
            reader.read(&mut chunk).await
        } else {
            tokio::time::timeout(partial_timeout, reader.read(&mut chunk))
                .await
                .map_err(|_| "partial message timeout")?
        };
        match read {
            Ok(0) => return Ok(()),
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
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
