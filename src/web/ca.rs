//! HTTPS to the ACME CA: one HTTP/1.1 request per connection, which is all an ACME exchange
//! needs (a handful of requests per renewal). Names are resolved by [`super::dns`]; the CA is
//! verified against the system's roots (`ca-certificates`) or one configured root.
//!
//! It stands in for hyper, whose HTTP/2 and connection pooling would add more than a megabyte
//! to a binary that talks to its CA a few times a month.

use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::BodyExt as _;
use instant_acme::{BodyWrapper, BytesResponse, HttpClient};
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// The largest response accepted: a certificate chain or an order is a few kilobytes.
const MAX_RESPONSE: u64 = 1 << 20;

/// How long one request may take, connection and TLS handshake included.
const TIMEOUT: Duration = Duration::from_secs(30);

pub struct CaClient {
    tls: TlsConnector,
}

impl CaClient {
    /// Trusts `root` alone, or else the system's roots.
    pub fn new(root: Option<&Path>) -> io::Result<CaClient> {
        let mut roots = RootCertStore::empty();
        match root {
            Some(root) => {
                let der = CertificateDer::from_pem_file(root).map_err(|error| {
                    io::Error::other(format!("cannot read {}: {error}", root.display()))
                })?;
                roots.add(der).map_err(io::Error::other)?;
            }
            None => {
                let found = rustls_native_certs::load_native_certs();
                roots.add_parsable_certificates(found.certs);
                if roots.is_empty() {
                    return Err(io::Error::other(
                        "no CA root certificates on this system: install the package \
                         ca-certificates",
                    ));
                }
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(io::Error::other)?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(CaClient {
            tls: TlsConnector::from(Arc::new(config)),
        })
    }
}

impl HttpClient for CaClient {
    fn request(
        &self,
        request: Request<BodyWrapper<Bytes>>,
    ) -> Pin<Box<dyn Future<Output = Result<BytesResponse, instant_acme::Error>> + Send>> {
        let tls = self.tls.clone();
        Box::pin(async move {
            let exchange = tokio::time::timeout(TIMEOUT, exchange(tls, request));
            match exchange.await {
                Ok(result) => result,
                Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "no answer in time")),
            }
            .map_err(|error| instant_acme::Error::Other(Box::new(error)))
        })
    }
}

async fn exchange(
    tls: TlsConnector,
    request: Request<BodyWrapper<Bytes>>,
) -> io::Result<BytesResponse> {
    let invalid = |what: &str| io::Error::new(io::ErrorKind::InvalidInput, what.to_owned());
    let (parts, body) = request.into_parts();
    let body = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(never) => match never {},
    };
    if parts.uri.scheme_str() != Some("https") {
        return Err(invalid("the CA's URLs must be https://"));
    }
    let authority = parts.uri.authority().ok_or_else(|| invalid("no host"))?;
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    let port = authority.port_u16().unwrap_or(443);
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());

    let addresses: Vec<IpAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![ip],
        Err(_) => super::dns::lookup_aaaa(host)
            .await
            .map_err(io::Error::other)?
            .into_iter()
            .map(IpAddr::V6)
            .collect(),
    };
    let mut tcp = Err(io::Error::other(format!("{host} has no address")));
    for address in addresses {
        tcp = TcpStream::connect(SocketAddr::new(address, port)).await;
        if tcp.is_ok() {
            break;
        }
    }
    let name = ServerName::try_from(host.to_owned()).map_err(|_| invalid("bad host name"))?;
    let mut stream = tls.connect(name, tcp?).await?;

    let mut head = format!("{} {path} HTTP/1.1\r\nhost: {authority}\r\n", parts.method);
    for (name, value) in &parts.headers {
        let value = value.to_str().map_err(|_| invalid("header value"))?;
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!(
        "content-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    ));
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(&body).await?;
    stream.flush().await?;

    let mut raw = Vec::new();
    let read = (&mut stream)
        .take(MAX_RESPONSE + 1)
        .read_to_end(&mut raw)
        .await;
    match read {
        Ok(_) => {}
        // Servers that close without close_notify: the length check below catches truncation.
        Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => {}
        Err(error) => return Err(error),
    }
    if raw.len() as u64 > MAX_RESPONSE {
        return Err(io::Error::other("the CA's response is too large"));
    }
    parse_response(&raw)
}

/// Parses a whole HTTP/1.1 response: the body by Content-Length, chunked, or up to the end.
fn parse_response(raw: &[u8]) -> io::Result<BytesResponse> {
    let malformed = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_owned());
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| malformed("incomplete response head"))?;
    let head = std::str::from_utf8(&raw[..end]).map_err(|_| malformed("response head"))?;
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|line| line.strip_prefix("HTTP/1."))
        .and_then(|rest| rest.get(2..5))
        .and_then(|code| code.parse::<u16>().ok())
        .ok_or_else(|| malformed("status line"))?;
    let mut response = Response::builder().status(status);
    let (mut length, mut chunked) = (None, false);
    for line in lines {
        let (name, value) = line.split_once(':').ok_or_else(|| malformed("header"))?;
        let (name, value) = (name.trim(), value.trim());
        if name.eq_ignore_ascii_case("content-length") {
            length = Some(value.parse::<usize>().map_err(|_| malformed("length"))?);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.eq_ignore_ascii_case("chunked");
        }
        response = response.header(name, value);
    }
    let rest = &raw[end + 4..];
    let body = match (chunked, length) {
        (true, _) => dechunk(rest).ok_or_else(|| malformed("chunked body"))?,
        (false, Some(length)) => rest
            .get(..length)
            .ok_or_else(|| malformed("truncated body"))?
            .to_vec(),
        (false, None) => rest.to_vec(),
    };
    let (parts, ()) = response
        .body(())
        .map_err(|error| malformed(&error.to_string()))?
        .into_parts();
    Ok(BytesResponse {
        parts,
        body: Box::new(Bytes::from(body)),
    })
}

fn dechunk(mut rest: &[u8]) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line_end = rest.windows(2).position(|w| w == b"\r\n")?;
        let size = std::str::from_utf8(&rest[..line_end]).ok()?;
        let size = usize::from_str_radix(size.split(';').next()?.trim(), 16).ok()?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Some(body);
        }
        body.extend_from_slice(rest.get(..size)?);
        rest = rest.get(size + 2..)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(response: BytesResponse) -> Vec<u8> {
        let mut body = response.body;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(body.into_bytes()).unwrap().to_vec()
    }

    #[test]
    fn reads_bodies_by_length_chunked_and_to_the_end() {
        let response = parse_response(
            b"HTTP/1.1 201 Created\r\nReplay-Nonce: abc\r\nContent-Length: 5\r\n\r\nhello!",
        )
        .unwrap();
        assert_eq!(response.parts.status, 201);
        assert_eq!(response.parts.headers["replay-nonce"], "abc");
        assert_eq!(body(response), b"hello");

        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
                        4\r\nwiki\r\n6;x=y\r\npedia \r\n0\r\n\r\n";
        assert_eq!(body(parse_response(chunked).unwrap()), b"wikipedia ");

        let unframed = b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nall of it";
        assert_eq!(body(parse_response(unframed).unwrap()), b"all of it");
    }

    #[test]
    fn refuses_broken_responses() {
        for raw in [
            &b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nshort"[..],
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
            b"SIP/2.0 200 OK\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
            b"HTTP/1.1 200 OK\r\n",
        ] {
            assert!(
                parse_response(raw).is_err(),
                "{:?}",
                String::from_utf8_lossy(raw)
            );
        }
    }
}
