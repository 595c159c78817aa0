//! The TLS side of a phone's connection, on rustls' unbuffered API: the caller owns every
//! buffer, so a connection holds received bytes only while a TLS record is incomplete. (The
//! buffered API keeps a 4 KiB receive buffer for each connection's whole life, a third of what
//! an idle phone cost.) Pure: bytes in, plaintext and bytes to send out.

use std::sync::Arc;

use rustls::ServerConfig;
use rustls::server::{ServerConnectionData, UnbufferedServerConnection};
use rustls::unbuffered::{
    AppDataRecord, ConnectionState, EncodeError, EncodeTlsData, EncryptError,
    InsufficientSizeError, UnbufferedStatus, WriteTraffic,
};

/// Received bytes a session may hold: one record of the largest size TLS allows (RFC 5246
/// §6.2.3; TLS 1.3's are smaller). Only a handshake message spread over records would need
/// more, and what a client sends a server without client certificates fits in one. A peer past
/// it is refused.
const MAX_PENDING: usize = 5 + 0x4000 + 0x800;

/// Bytes a record adds to the data it carries: header, tag and TLS 1.3's content type (and
/// TLS 1.2's explicit nonce) fit in this.
const RECORD_OVERHEAD: usize = 64;

/// The largest plaintext of one record.
const MAX_FRAGMENT: usize = 0x4000;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Tls(#[from] rustls::Error),
    #[error("a TLS record or handshake message too large")]
    TooLarge,
    #[error("TLS handshake not complete")]
    Handshaking,
    #[error("TLS encryption failed: {0}")]
    Encrypt(EncryptError),
}

/// One TLS server connection.
pub struct TlsSession {
    connection: UnbufferedServerConnection,
    /// Received bytes not yet processed: an incomplete record (or handshake message). Empty and
    /// unallocated between records.
    pending: Vec<u8>,
}

/// What the peer's bytes amounted to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Received {
    /// More may come.
    Open,
    /// The peer sent close_notify: nothing more will come.
    Closed,
}

impl TlsSession {
    pub fn new(config: Arc<ServerConfig>) -> Result<TlsSession, Error> {
        Ok(TlsSession {
            connection: UnbufferedServerConnection::new(config)?,
            pending: Vec::new(),
        })
    }

    pub fn is_handshaking(&self) -> bool {
        self.connection.is_handshaking()
    }

    /// Bytes of an incomplete record held.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Takes `received` bytes (and may decrypt them in place): appends the application data to
    /// `plaintext`, and what TLS must send back (handshake, alerts) to `outgoing`. On an error,
    /// `outgoing` holds the alert to send before closing.
    pub fn receive(
        &mut self,
        received: &mut [u8],
        plaintext: &mut Vec<u8>,
        outgoing: &mut Vec<u8>,
    ) -> Result<Received, Error> {
        let connection = &mut self.connection;
        let state = if self.pending.is_empty() {
            let (consumed, state) = process(connection, received, plaintext, outgoing)?;
            self.pending.extend_from_slice(&received[consumed..]);
            state
        } else {
            self.pending.extend_from_slice(received);
            let (consumed, state) = process(connection, &mut self.pending, plaintext, outgoing)?;
            self.pending.drain(..consumed);
            state
        };
        if self.pending.is_empty() {
            self.pending = Vec::new();
        } else if self.pending.len() > MAX_PENDING {
            return Err(Error::TooLarge);
        }
        Ok(state)
    }

    /// Encrypts `data` into `outgoing`.
    pub fn send(&mut self, data: &[u8], outgoing: &mut Vec<u8>) -> Result<(), Error> {
        let room = data.len() + data.len().div_ceil(MAX_FRAGMENT).max(1) * RECORD_OVERHEAD;
        self.write(outgoing, room, |traffic, buffer| {
            encrypted(traffic.encrypt(data, buffer))
        })
    }

    /// Appends a close_notify alert to `outgoing`, once the handshake is complete.
    pub fn close(&mut self, outgoing: &mut Vec<u8>) -> Result<(), Error> {
        self.write(outgoing, RECORD_OVERHEAD, |traffic, buffer| {
            encrypted(traffic.queue_close_notify(buffer))
        })
    }

    /// Runs `encrypt` in the WriteTraffic state, on `room` bytes at the end of `outgoing`, more
    /// if `encrypt` says it needs more.
    fn write(
        &mut self,
        outgoing: &mut Vec<u8>,
        mut room: usize,
        mut encrypt: impl FnMut(&mut WriteTraffic<'_, ServerConnectionData>, &mut [u8]) -> Encrypted,
    ) -> Result<(), Error> {
        // Whatever TLS has to send first (a key update), then the data: a few rounds at most.
        for _ in 0..8 {
            let UnbufferedStatus { discard, state } =
                self.connection.process_tls_records(&mut self.pending);
            match state? {
                ConnectionState::WriteTraffic(mut traffic) => {
                    let start = outgoing.len();
                    loop {
                        outgoing.resize(start + room, 0);
                        match encrypt(&mut traffic, &mut outgoing[start..]) {
                            Ok(written) => {
                                outgoing.truncate(start + written);
                                break;
                            }
                            Err(Ok(InsufficientSizeError { required_size }))
                                if room < required_size =>
                            {
                                room = required_size
                            }
                            Err(Ok(_)) => {
                                outgoing.truncate(start);
                                return Err(Error::TooLarge);
                            }
                            Err(Err(error)) => {
                                outgoing.truncate(start);
                                return Err(error);
                            }
                        }
                    }
                    self.pending.drain(..discard);
                    return Ok(());
                }
                ConnectionState::EncodeTlsData(mut encode) => encode_into(&mut encode, outgoing)?,
                ConnectionState::TransmitTlsData(transmit) => transmit.done(),
                // `receive` takes every whole record, so nothing else is due here.
                _ => return Err(Error::Handshaking),
            }
            self.pending.drain(..discard);
        }
        Err(Error::Handshaking)
    }
}

/// What an encryption into a buffer gave: bytes written, or the room it needs, or an error.
type Encrypted = Result<usize, Result<InsufficientSizeError, Error>>;

fn encrypted(result: Result<usize, EncryptError>) -> Encrypted {
    result.map_err(|error| match error {
        EncryptError::InsufficientSize(size) => Ok(size),
        error => Err(Error::Encrypt(error)),
    })
}

/// Processes the records of `buffer` until TLS needs more bytes. Returns how many bytes of the
/// front of `buffer` are done with.
fn process(
    connection: &mut UnbufferedServerConnection,
    buffer: &mut [u8],
    plaintext: &mut Vec<u8>,
    outgoing: &mut Vec<u8>,
) -> Result<(usize, Received), Error> {
    let mut consumed = 0;
    loop {
        let UnbufferedStatus { mut discard, state } =
            connection.process_tls_records(&mut buffer[consumed..]);
        let state = match state {
            Ok(state) => state,
            Err(error) => {
                flush_alert(connection, outgoing);
                return Err(error.into());
            }
        };
        let more = match state {
            ConnectionState::ReadTraffic(mut traffic) => {
                while let Some(record) = traffic.next_record() {
                    let AppDataRecord {
                        discard: extra,
                        payload,
                    } = record?;
                    discard += extra;
                    plaintext.extend_from_slice(payload);
                }
                None
            }
            ConnectionState::EncodeTlsData(mut encode) => {
                encode_into(&mut encode, outgoing)?;
                None
            }
            // The caller sends `outgoing` in order, before anything it encrypts later.
            ConnectionState::TransmitTlsData(transmit) => {
                transmit.done();
                None
            }
            ConnectionState::PeerClosed | ConnectionState::Closed => Some(Received::Closed),
            // Needs more bytes: during the handshake, or between application records.
            _ => Some(Received::Open),
        };
        consumed += discard;
        if let Some(received) = more {
            return Ok((consumed, received));
        }
    }
}

/// After an error, rustls queues the alert that tells the peer why: encodes it into `outgoing`.
/// With no bytes, so that rustls does not read the faulty ones again.
fn flush_alert(connection: &mut UnbufferedServerConnection, outgoing: &mut Vec<u8>) {
    if let Ok(ConnectionState::EncodeTlsData(mut encode)) =
        connection.process_tls_records(&mut []).state
    {
        let _ = encode_into(&mut encode, outgoing);
    }
}

/// Appends a handshake record to `outgoing`.
fn encode_into<Data>(
    encode: &mut EncodeTlsData<'_, Data>,
    outgoing: &mut Vec<u8>,
) -> Result<(), Error> {
    let start = outgoing.len();
    let required = match encode.encode(&mut []) {
        Ok(_) => return Ok(()),
        Err(EncodeError::InsufficientSize(InsufficientSizeError { required_size })) => {
            required_size
        }
        Err(EncodeError::AlreadyEncoded) => return Ok(()),
    };
    outgoing.resize(start + required, 0);
    match encode.encode(&mut outgoing[start..]) {
        Ok(written) => {
            outgoing.truncate(start + written);
            Ok(())
        }
        Err(_) => {
            outgoing.truncate(start);
            Err(Error::TooLarge)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::certificate::load_or_generate;
    use crate::data_dir::DataDir;
    use crate::net::tls::server_config;
    use crate::net::tls::tests::{client_config, tls11_client_hello};
    use rustls::pki_types::ServerName;
    use rustls::{ClientConfig, ClientConnection, HandshakeKind};
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    use tempfile::TempDir;

    fn configs(
        version: &'static rustls::SupportedProtocolVersion,
    ) -> (Arc<ServerConfig>, Arc<ClientConfig>, TempDir) {
        let data = TempDir::new().unwrap();
        let identity = load_or_generate(&DataDir::new(data.path()), "hotline.test", None).unwrap();
        let server = Arc::new(server_config(identity.current.clone()));
        let root = CertificateDer::from_pem_file(&identity.certificate).unwrap();
        let client = client_config(root, version);
        (server, Arc::new(client), data)
    }

    /// Moves the client's bytes to the session `split` bytes at a time, and the session's back;
    /// returns the plaintext the session received.
    fn exchange(
        client: &mut ClientConnection,
        session: &mut TlsSession,
        split: usize,
    ) -> Result<Vec<u8>, Error> {
        let mut plaintext = Vec::new();
        for _ in 0..100 {
            let mut wire = Vec::new();
            while client.wants_write() {
                client.write_tls(&mut wire).unwrap();
            }
            let mut outgoing = Vec::new();
            for chunk in wire.chunks_mut(split) {
                session.receive(chunk, &mut plaintext, &mut outgoing)?;
            }
            if wire.is_empty() && outgoing.is_empty() {
                return Ok(plaintext);
            }
            let mut reader = &outgoing[..];
            while !reader.is_empty() {
                client.read_tls(&mut reader).unwrap();
            }
            client.process_new_packets().unwrap();
        }
        panic!("no end to the exchange");
    }

    #[test]
    fn handshakes_and_carries_data_both_ways_in_any_split() {
        for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
            for split in [1, 7, 300, 100_000] {
                let (server, client_config, _data) = configs(version);
                let name = ServerName::try_from("hotline.test").unwrap();
                let mut client = ClientConnection::new(client_config, name).unwrap();
                let mut session = TlsSession::new(server).unwrap();
                assert!(session.is_handshaking());
                exchange(&mut client, &mut session, split).unwrap();
                assert!(!session.is_handshaking() && !client.is_handshaking());

                let message = vec![b'x'; 40_000];
                std::io::Write::write_all(&mut client.writer(), &message).unwrap();
                let received = exchange(&mut client, &mut session, split).unwrap();
                assert_eq!(received, message, "{version:?} in pieces of {split}");
                assert_eq!(session.pending(), 0, "nothing held between records");
                assert_eq!(session.pending.capacity(), 0);

                let mut outgoing = Vec::new();
                let reply = &message[..10_000];
                session.send(b"pong", &mut outgoing).unwrap();
                session.send(reply, &mut outgoing).unwrap();
                let mut reader = &outgoing[..];
                while !reader.is_empty() {
                    client.read_tls(&mut reader).unwrap();
                    client.process_new_packets().unwrap();
                }
                let mut echoed = vec![0; 4 + reply.len()];
                std::io::Read::read_exact(&mut client.reader(), &mut echoed).unwrap();
                assert_eq!(&echoed[..4], b"pong");
                assert_eq!(&echoed[4..], reply);

                let mut outgoing = Vec::new();
                session.close(&mut outgoing).unwrap();
                client.read_tls(&mut &outgoing[..]).unwrap();
                let state = client.process_new_packets().unwrap();
                assert!(state.peer_has_closed(), "close_notify sent");
                client.send_close_notify();
                let mut wire = Vec::new();
                client.write_tls(&mut wire).unwrap();
                let closed = session.receive(&mut wire, &mut Vec::new(), &mut Vec::new());
                assert_eq!(closed.unwrap(), Received::Closed);
            }
        }
    }

    #[test]
    fn a_reconnecting_client_resumes_its_session_from_a_ticket() {
        for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
            let (server, client_config, _data) = configs(version);
            assert!(
                server.ticketer.enabled(),
                "stateless tickets, not the session cache"
            );
            let mut kinds = Vec::new();
            for _ in 0..2 {
                let name = ServerName::try_from("hotline.test").unwrap();
                let mut client = ClientConnection::new(client_config.clone(), name).unwrap();
                // A fresh session each time, as for a new connection.
                let mut session = TlsSession::new(server.clone()).unwrap();
                exchange(&mut client, &mut session, 100_000).unwrap();
                kinds.push(client.handshake_kind().unwrap());
            }
            assert_eq!(
                kinds,
                [HandshakeKind::Full, HandshakeKind::Resumed],
                "{version:?}"
            );
        }
    }

    #[test]
    fn refuses_tls11_with_a_protocol_version_alert() {
        let (server, _, _data) = configs(&rustls::version::TLS13);
        let mut record = tls11_client_hello();
        let mut session = TlsSession::new(server).unwrap();
        let mut outgoing = Vec::new();
        let result = session.receive(&mut record, &mut Vec::new(), &mut outgoing);
        assert!(matches!(result, Err(Error::Tls(_))), "{result:?}");
        assert_eq!(outgoing.len(), 7, "{outgoing:?}");
        assert_eq!(outgoing[0], 0x15, "an alert record");
        assert_eq!(
            outgoing[3..],
            [0x00, 0x02, 0x02, 70],
            "fatal protocol_version"
        );
    }

    #[test]
    fn refuses_an_oversized_record() {
        let (server, client_config, _data) = configs(&rustls::version::TLS13);
        let name = ServerName::try_from("hotline.test").unwrap();
        let mut client = ClientConnection::new(client_config, name).unwrap();
        let mut session = TlsSession::new(server).unwrap();
        exchange(&mut client, &mut session, 1000).unwrap();
        // An application data record that claims 65,535 bytes, more than TLS allows.
        let mut record = vec![0x17, 0x03, 0x03, 0xff, 0xff];
        record.resize(5 + 0x4000, 0);
        let result = session.receive(&mut record, &mut Vec::new(), &mut Vec::new());
        assert!(result.is_err(), "{result:?}");
    }
}
