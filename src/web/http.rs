//! HTTP/1.1 for the web listeners, on hyper's server: hyper parses and frames, this module
//! bounds what a client may send (head size, body size, time) and hands each request, body
//! read, to a [`Handler`] through a [`Router`] of path prefixes.
//!
//! Before a handler runs, an optional [`Gate`] decides whether the source may be served at all
//! (bans, flood limits); every response carries the security headers of [`SECURITY_HEADERS`].

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};

pub use crate::core::web::Admission;

/// Longest request head (request line and headers) hyper buffers; hyper's minimum.
pub const MAX_HEAD: usize = 8 * 1024;

/// Longest request body accepted: forms of a few fields.
pub const MAX_BODY: usize = 16 * 1024;

/// How long a client may take to send a request head, and then its body.
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// How long one connection may stay open, however busy: keep-alive is for the few requests of
/// one page, not for holding one of the listener's connections.
pub const CONNECTION_LIFETIME: Duration = Duration::from_secs(120);

/// Sent with every response: no framing, no sniffing, no referrer, resources from this origin
/// only (no script at all), and HTTPS for a year.
pub const SECURITY_HEADERS: [(&str, &str); 5] = [
    (
        "content-security-policy",
        "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; \
         frame-ancestors 'none'; base-uri 'none'",
    ),
    ("x-frame-options", "DENY"),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    ("strict-transport-security", "max-age=31536000"),
];

/// A request as handlers see it: the body read in full (at most [`MAX_BODY`]).
#[derive(Debug, Clone)]
pub struct Request {
    pub method: hyper::Method,
    /// The path and query as sent (`/.well-known/acme-challenge/abc`).
    pub target: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// The client's address, for bans and limits.
    pub remote: SocketAddr,
}

impl Request {
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or_default()
    }

    pub fn query(&self) -> &str {
        self.target.split_once('?').map_or("", |(_, q)| q)
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The value of cookie `name`, from any `Cookie` header.
    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find_map(|(key, value)| (key == name).then_some(value))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    /// Headers beyond the content type and the security headers (`location`, `set-cookie`).
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn new(status: u16, content_type: &'static str, body: impl Into<Vec<u8>>) -> Response {
        Response {
            status,
            content_type,
            headers: Vec::new(),
            body: body.into(),
        }
    }

    pub fn text(status: u16, body: impl Into<String>) -> Response {
        Response::new(status, "text/plain; charset=utf-8", body.into())
    }

    pub fn html(status: u16, body: impl Into<String>) -> Response {
        Response::new(status, "text/html; charset=utf-8", body.into())
    }

    pub fn not_found() -> Response {
        Response::text(404, "not found\n")
    }

    /// `303 See Other`: after a form, the browser loads `location` with GET.
    pub fn see_other(location: &str) -> Response {
        Response::text(303, "").with("location", location)
    }

    pub fn with(mut self, name: &'static str, value: impl Into<String>) -> Response {
        self.headers.push((name, value.into()));
        self
    }

    fn into_hyper(self, head_only: bool) -> hyper::Response<Full<Bytes>> {
        let body = match head_only {
            true => Bytes::new(),
            false => Bytes::from(self.body),
        };
        let mut response = hyper::Response::new(Full::new(body));
        *response.status_mut() =
            hyper::StatusCode::from_u16(self.status).unwrap_or(hyper::StatusCode::OK);
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(self.content_type),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        for (name, value) in SECURITY_HEADERS {
            headers.insert(name, HeaderValue::from_static(value));
        }
        for (name, value) in self.headers {
            if let Ok(value) = HeaderValue::try_from(value) {
                headers.append(name, value);
            }
        }
        response
    }
}

/// A handler's answer, awaited by the connection (handlers may ask the core and wait).
pub type Reply<'a> = Pin<Box<dyn Future<Output = Response> + Send + 'a>>;

/// Answers requests for the paths it serves.
pub trait Handler: Send + Sync {
    fn handle(&self, request: Request) -> Reply<'_>;
}

/// Hands a request to the handler of the longest matching path prefix; 404 when none matches.
#[derive(Default)]
pub struct Router {
    routes: Vec<(&'static str, Box<dyn Handler>)>,
}

impl Router {
    pub fn route(mut self, prefix: &'static str, handler: impl Handler + 'static) -> Router {
        self.routes.push((prefix, Box::new(handler)));
        self.routes
            .sort_by_key(|(prefix, _)| std::cmp::Reverse(prefix.len()));
        self
    }
}

impl Handler for Router {
    fn handle(&self, request: Request) -> Reply<'_> {
        let path = request.path();
        match self
            .routes
            .iter()
            .find(|(prefix, _)| path.starts_with(prefix))
        {
            Some((_, handler)) => handler.handle(request),
            None => Box::pin(async { Response::not_found() }),
        }
    }
}

/// Decides [`Admission`] per request (the core's ban table and flood limiter, see
/// [`crate::net::inbox::CoreHandle`]).
pub trait Gate: Send + Sync {
    fn admit(&self, remote: SocketAddr) -> Pin<Box<dyn Future<Output = Admission> + Send + '_>>;
}

/// Serves HTTP/1.1 on one connection from `remote` until the client closes it, a limit of this
/// module is reached, or [`CONNECTION_LIFETIME`] ends.
pub async fn serve<S>(
    stream: S,
    remote: SocketAddr,
    handler: Arc<dyn Handler>,
    gate: Option<Arc<dyn Gate>>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
        let (handler, gate) = (handler.clone(), gate.clone());
        async move {
            let admission = match &gate {
                Some(gate) => gate.admit(remote).await,
                None => Admission::Serve,
            };
            let head_only = request.method() == hyper::Method::HEAD;
            let response = match admission {
                Admission::Drop => return Err(Banned),
                Admission::Refuse => {
                    Response::text(429, "too many requests\n").with("connection", "close")
                }
                Admission::Serve => match read(request, remote).await {
                    Ok(request) => handler.handle(request).await,
                    Err(refusal) => refusal,
                },
            };
            Ok::<_, Banned>(response.into_hyper(head_only))
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(READ_TIMEOUT)
        .max_buf_size(MAX_HEAD)
        .max_headers(64);
    let connection = builder.serve_connection(TokioIo::new(stream), service);
    let _ = tokio::time::timeout(CONNECTION_LIFETIME, connection).await;
}

/// What a banned source gets: its connection ends without an answer.
#[derive(Debug, thiserror::Error)]
#[error("source banned")]
struct Banned;

/// Reads the body within [`READ_TIMEOUT`] and at most [`MAX_BODY`] bytes.
async fn read(request: hyper::Request<Incoming>, remote: SocketAddr) -> Result<Request, Response> {
    let (parts, body) = request.into_parts();
    if hyper::body::Body::size_hint(&body).lower() > MAX_BODY as u64 {
        return Err(Response::text(413, "request body too large\n"));
    }
    let collect = Limited::new(body, MAX_BODY).collect();
    let body = match tokio::time::timeout(READ_TIMEOUT, collect).await {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(error)) if error.is::<http_body_util::LengthLimitError>() => {
            return Err(Response::text(413, "request body too large\n"));
        }
        Ok(Err(_)) | Err(_) => return Err(Response::text(400, "incomplete request body\n")),
    };
    let target = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    if !target.starts_with('/') {
        return Err(Response::text(400, "malformed request target\n"));
    }
    Ok(Request {
        method: parts.method,
        target,
        headers: parts.headers,
        body,
        remote,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    struct Echo;

    impl Handler for Echo {
        fn handle(&self, request: Request) -> Reply<'_> {
            Box::pin(async move {
                let body = format!(
                    "{} {} {}",
                    request.method,
                    request.target,
                    String::from_utf8_lossy(&request.body)
                );
                Response::text(200, body)
            })
        }
    }

    struct Deny(Admission);

    impl Gate for Deny {
        fn admit(&self, _: SocketAddr) -> Pin<Box<dyn Future<Output = Admission> + Send + '_>> {
            Box::pin(async { self.0 })
        }
    }

    async fn exchange_with(
        handler: impl Handler + 'static,
        gate: Option<Arc<dyn Gate>>,
        request: &[u8],
    ) -> String {
        let (mut client, server) = tokio::io::duplex(64 * 1024);
        let remote = "[::1]:1234".parse().unwrap();
        let served = tokio::spawn(serve(server, remote, Arc::new(handler), gate));
        client.write_all(request).await.unwrap();
        let mut answer = Vec::new();
        let _ = client.read_to_end(&mut answer).await;
        served.await.unwrap();
        String::from_utf8_lossy(&answer).into_owned()
    }

    async fn exchange(handler: impl Handler + 'static, request: &[u8]) -> String {
        exchange_with(handler, None, request).await
    }

    #[tokio::test]
    async fn routes_by_longest_prefix_with_security_headers() {
        let request = b"GET /a/b?c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
        let answer = exchange(Router::default().route("/a/", Echo), request).await;
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
        assert!(answer.ends_with("\r\n\r\nGET /a/b?c "), "{answer}");
        for (name, value) in SECURITY_HEADERS {
            assert!(answer.contains(&format!("{name}: {value}\r\n")), "{answer}");
        }
        let request = b"GET /b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
        let answer = exchange(Router::default().route("/a/", Echo), request).await;
        assert!(answer.starts_with("HTTP/1.1 404 "), "{answer}");
    }

    #[tokio::test]
    async fn reads_bodies_chunked_or_not() {
        let request =
            b"POST /f HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\na=b&c";
        let answer = exchange(Echo, request).await;
        assert!(answer.ends_with("POST /f a=b&c"), "{answer}");
        let request = b"POST /f HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\na=b\r\n0\r\n\r\n";
        let answer = exchange(Echo, request).await;
        assert!(answer.ends_with("POST /f a=b"), "{answer}");
    }

    #[tokio::test]
    async fn refuses_what_is_too_large_or_malformed() {
        let too_long = format!(
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
            MAX_BODY + 1
        );
        let answer = exchange(Echo, too_long.as_bytes()).await;
        assert!(answer.starts_with("HTTP/1.1 413 "), "{answer}");
        let mut huge = b"GET / HTTP/1.1\r\nx: ".to_vec();
        huge.resize(MAX_HEAD + 2048, b'a');
        let answer = exchange(Echo, &huge).await;
        assert!(answer.starts_with("HTTP/1.1 431 "), "{answer}");
        for request in [
            &b"GET / SIP/2.0\r\n\r\n"[..],
            b"GET / HTTP/1.1\r\nno colon\r\n\r\n",
        ] {
            let answer = exchange(Echo, request).await;
            assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");
        }
    }

    #[tokio::test]
    async fn gate_refuses_or_drops() {
        let request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
        let answer = exchange_with(Echo, Some(Arc::new(Deny(Admission::Refuse))), request).await;
        assert!(answer.starts_with("HTTP/1.1 429 "), "{answer}");
        let answer = exchange_with(Echo, Some(Arc::new(Deny(Admission::Drop))), request).await;
        assert!(answer.is_empty(), "{answer}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_client_is_cut_off() {
        let (mut client, server) = tokio::io::duplex(1024);
        let remote = "[::1]:1234".parse().unwrap();
        let started = tokio::time::Instant::now();
        let served = tokio::spawn(serve(server, remote, Arc::new(Echo), None));
        client.write_all(b"GET / HTTP/1.1\r\nHost").await.unwrap();
        served.await.unwrap();
        // Virtual time: the head's timeout ended the connection, not its lifetime.
        let waited = started.elapsed();
        assert!(
            waited >= READ_TIMEOUT && waited < CONNECTION_LIFETIME,
            "{waited:?}"
        );
    }

    #[test]
    fn cookies_are_found_by_name() {
        let mut headers = HeaderMap::new();
        headers.append(header::COOKIE, HeaderValue::from_static("a=1; session=xyz"));
        headers.append(header::COOKIE, HeaderValue::from_static("b=2"));
        let request = Request {
            method: hyper::Method::GET,
            target: "/p?q=1".to_owned(),
            headers,
            body: Bytes::new(),
            remote: "[::1]:1".parse().unwrap(),
        };
        assert_eq!(request.cookie("session"), Some("xyz"));
        assert_eq!(request.cookie("b"), Some("2"));
        assert_eq!(request.cookie("sess"), None);
        assert_eq!((request.path(), request.query()), ("/p", "q=1"));
    }
}
